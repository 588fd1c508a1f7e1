//! Profiles and actions: what happens to a finding of each entity.
//!
//! Takes a [`Profile`] (plain Rust values; parsing profiles from config is the config module's
//! job) and a finding's bytes; gives the replacement bytes. [`Action::Tokenize`] and
//! [`Action::Hash`] are keyed (HMAC-SHA256 with the profile's [`TokenKey`], one per partner, so
//! two partners cannot join on tokens and a 9-digit SSN cannot be reversed by hashing all of
//! them). [`Action::TokenizeFpe`] is FF1 with the data owner's [`FpeKey`] and the partner id as
//! tweak (see [`super::fpe`]). Replacements keep CSV and JSON valid: inside a JSON string an
//! escape sequence is masked whole, a JSON number that is replaced becomes a string.
//! Validation of a profile against a pack happens in `Engine::compile`.

use std::collections::BTreeMap;
use std::fmt;

use aws_lc_rs::hmac;
use bytes::BytesMut;

use super::format::{CsvOptions, FieldRule, OnUnscannable};
use super::fpe::{Ff1, FpeKey};

/// What to do with a finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Replace letters and digits with `with` (ASCII), keeping the last `keep_last` of them;
    /// punctuation and whitespace stay. Length preserving.
    Mask { with: char, keep_last: usize },
    /// Replace with `[REDACTED:ENTITY]`.
    Redact,
    /// Replace with `tok_` and 16 base32 characters of a keyed HMAC of the value:
    /// deterministic per key, so joins within one partner's data still work.
    Tokenize,
    /// Replace with the 64 hex characters of a keyed HMAC-SHA256 of the value.
    Hash,
    /// Report the content as blocked (the caller fails the request); the value is redacted in
    /// any output so a caller that streams anyway leaks nothing.
    Block,
    /// Report the finding; leave the bytes unchanged.
    Allow,
    /// Format-preserving encryption (FF1, NIST SP 800-38G, AES-256) of the value's digits with
    /// the profile's [`FpeKey`] and its `partner` as tweak: digits stay digits, everything
    /// else (separators, letters) stays in place, the length is kept, and the data owner
    /// reverses it with `gatehouse dlp detokenize`. Values with fewer than 6 digits (below
    /// NIST's minimum domain of 10^6) are masked instead and counted in
    /// [`Summary::fpe_fallbacks`](super::Summary::fpe_fallbacks).
    TokenizeFpe,
}

impl Action {
    /// The name used in findings, audit events and config.
    pub fn name(&self) -> &'static str {
        match self {
            Action::Mask { .. } => "mask",
            Action::Redact => "redact",
            Action::Tokenize => "tokenize",
            Action::Hash => "hash",
            Action::Block => "block",
            Action::Allow => "allow",
            Action::TokenizeFpe => "tokenize_fpe",
        }
    }

    /// The action a config name denotes (`mask` with `*` keeping nothing); `None` if unknown.
    /// Config maps `mask` options (character, keep last) itself.
    pub fn from_name(name: &str) -> Option<Action> {
        Some(match name {
            "mask" => Action::Mask {
                with: '*',
                keep_last: 0,
            },
            "redact" => Action::Redact,
            "tokenize" => Action::Tokenize,
            "tokenize_fpe" => Action::TokenizeFpe,
            "hash" => Action::Hash,
            "block" => Action::Block,
            "allow" => Action::Allow,
            _ => return None,
        })
    }

    /// Whether the replacement can differ in length from the value.
    /// In JSON, a replaced number becomes a string (two quotes more) whatever the action; see
    /// [`Action::keeps_length`].
    pub fn changes_length(&self) -> bool {
        !matches!(
            self,
            Action::Mask { .. } | Action::Allow | Action::TokenizeFpe
        )
    }

    /// Whether content keeps its length when this action applies to findings in it: `allow`
    /// changes nothing; `mask` and `tokenize_fpe` keep lengths, except in JSON (`json`),
    /// where a replaced number becomes a string.
    pub fn keeps_length(&self, json: bool) -> bool {
        *self == Action::Allow || !json && !self.changes_length()
    }

    fn needs_key(&self) -> bool {
        matches!(self, Action::Tokenize | Action::Hash)
    }
}

/// A 256-bit key for `tokenize` and `hash`. Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenKey([u8; 32]);

impl fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenKey(..)")
    }
}

impl TokenKey {
    pub fn new(bytes: [u8; 32]) -> TokenKey {
        TokenKey(bytes)
    }

    /// The per-partner key derived from a data owner's master secret:
    /// HMAC-SHA256(master, "gatehouse-dlp-token-key\0" || partner).
    pub fn derive(master: &[u8], partner: &str) -> TokenKey {
        let key = hmac::Key::new(hmac::HMAC_SHA256, master);
        let mut ctx = hmac::Context::with_key(&key);
        ctx.update(b"gatehouse-dlp-token-key\0");
        ctx.update(partner.as_bytes());
        let mut out = [0u8; 32];
        out.copy_from_slice(ctx.sign().as_ref());
        TokenKey(out)
    }

    pub(crate) fn hmac_key(&self) -> hmac::Key {
        hmac::Key::new(hmac::HMAC_SHA256, &self.0)
    }
}

/// Which detectors run and what happens to each entity.
///
/// Build one with [`Profile::default_masking`], [`Profile::uniform`] or a struct literal ending
/// in `..Profile::default()`, then the `with_*` methods for the structural and FPE settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    pub name: String,
    /// Detector ids to run; `None` runs every detector of the pack.
    pub detectors: Option<Vec<String>>,
    /// Action per entity (e.g. `"CREDIT_CARD"`); entities not listed get `default_action`.
    pub actions: BTreeMap<String, Action>,
    pub default_action: Action,
    /// Needed when any action is `tokenize` or `hash`.
    pub key: Option<TokenKey>,
    /// Column and field-path rules for CSV/TSV and JSON/NDJSON bodies, first match wins.
    /// Config: e.g. `columns = { ssn = "mask" }`, `fields = { "customer.ssn" = "redact" }`.
    pub field_rules: Vec<FieldRule>,
    /// What happens to compressed, binary or non-text bodies (default: block).
    pub on_unscannable: OnUnscannable,
    /// CSV/TSV dialect (default: the first record is a header).
    pub csv: CsvOptions,
    /// The data owner's FF1 key; needed when any action is `tokenize_fpe`.
    pub fpe_key: Option<FpeKey>,
    /// The partner this profile is compiled for: the FF1 tweak. Needed with `tokenize_fpe`.
    pub partner: Option<String>,
}

impl Default for Profile {
    /// [`Profile::default_masking`].
    fn default() -> Profile {
        Profile::default_masking()
    }
}

impl Profile {
    /// The built-in `default` profile: every detector; mask everything with `*`, keeping the
    /// last four digits of payment cards.
    pub fn default_masking() -> Profile {
        let mut actions = BTreeMap::new();
        actions.insert(
            "CREDIT_CARD".to_string(),
            Action::Mask {
                with: '*',
                keep_last: 4,
            },
        );
        Profile {
            name: "default".into(),
            detectors: None,
            actions,
            default_action: Action::Mask {
                with: '*',
                keep_last: 0,
            },
            key: None,
            field_rules: Vec::new(),
            on_unscannable: OnUnscannable::Block,
            csv: CsvOptions::default(),
            fpe_key: None,
            partner: None,
        }
    }

    /// Every detector, one action for every entity.
    pub fn uniform(name: &str, action: Action, key: Option<TokenKey>) -> Profile {
        Profile {
            name: name.into(),
            detectors: None,
            actions: BTreeMap::new(),
            default_action: action,
            key,
            ..Profile::default_masking()
        }
    }

    /// Adds a column or field-path rule (after the existing ones).
    pub fn with_field_rule(mut self, rule: FieldRule) -> Profile {
        self.field_rules.push(rule);
        self
    }

    /// Sets what happens to bodies that cannot be scanned.
    pub fn with_on_unscannable(mut self, on: OnUnscannable) -> Profile {
        self.on_unscannable = on;
        self
    }

    /// Sets the CSV/TSV dialect.
    pub fn with_csv(mut self, csv: CsvOptions) -> Profile {
        self.csv = csv;
        self
    }

    /// Sets the FF1 key and the partner whose id is the tweak (for `tokenize_fpe`).
    pub fn with_fpe(mut self, key: FpeKey, partner: &str) -> Profile {
        self.fpe_key = Some(key);
        self.partner = Some(partner.to_string());
        self
    }

    /// The action for an entity.
    pub fn action_for(&self, entity: &str) -> Action {
        self.actions
            .get(entity)
            .copied()
            .unwrap_or(self.default_action)
    }

    /// Problems with the actions alone (mask characters, missing key), one line each.
    pub(crate) fn check_actions(&self) -> Vec<String> {
        let mut errors = Vec::new();
        let labels: Vec<String> = self.field_rules.iter().map(FieldRule::label).collect();
        let all = std::iter::once(("default_action", &self.default_action))
            .chain(self.actions.iter().map(|(k, v)| (k.as_str(), v)))
            .chain(
                labels
                    .iter()
                    .zip(&self.field_rules)
                    .map(|(l, r)| (l.as_str(), &r.action)),
            );
        for (what, action) in all {
            if let Action::Mask { with, .. } = action
                && !(with.is_ascii_graphic() || *with == ' ')
            {
                errors.push(format!(
                    "{what}: the mask character must be printable ASCII"
                ));
            }
            if action.needs_key() && self.key.is_none() {
                errors.push(format!("{what}: `{}` needs a token key", action.name()));
            }
            if *action == Action::TokenizeFpe && (self.fpe_key.is_none() || self.partner.is_none())
            {
                errors.push(format!(
                    "{what}: `tokenize_fpe` needs an FPE key and a partner (the tweak)"
                ));
            }
        }
        for rule in &self.field_rules {
            let ok = !rule.entity.is_empty()
                && rule
                    .entity
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
            if !ok {
                errors.push(format!(
                    "{}: entity `{}` must be [A-Z0-9_]",
                    rule.label(),
                    rule.entity
                ));
            }
        }
        errors
    }
}

/// Where a finding sits, for replacements that keep the format valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Shape {
    /// Text or a CSV cell.
    #[default]
    Plain,
    /// Inside a JSON string: escape sequences are masked whole.
    JsonString,
    /// A whole JSON number: a replacement is written as a JSON string.
    JsonNumber,
}

/// The keys of a compiled profile.
#[derive(Default)]
pub(crate) struct Keys {
    pub hmac: Option<hmac::Key>,
    pub fpe: Option<Ff1>,
}

impl fmt::Debug for Keys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Keys(..)")
    }
}

/// Writes the replacement of `value` (a finding of `entity`) under `action` to `out`. Gives
/// true when `tokenize_fpe` fell back to masking (fewer than 6 digits).
pub(crate) fn apply(
    action: Action,
    entity: &str,
    value: &[u8],
    keys: &Keys,
    shape: Shape,
    out: &mut BytesMut,
) -> bool {
    let quote = shape == Shape::JsonNumber && action != Action::Allow;
    if quote {
        out.extend_from_slice(b"\"");
    }
    let fell_back = replace(action, entity, value, keys, shape, out);
    if quote {
        out.extend_from_slice(b"\"");
    }
    fell_back
}

fn replace(
    action: Action,
    entity: &str,
    value: &[u8],
    keys: &Keys,
    shape: Shape,
    out: &mut BytesMut,
) -> bool {
    let key = keys.hmac.as_ref();
    let json = shape == Shape::JsonString;
    match action {
        Action::Allow => out.extend_from_slice(value),
        Action::Mask { with, keep_last } => mask(value, with as u8, keep_last, json, out),
        Action::TokenizeFpe => {
            let ff1 = keys
                .fpe
                .as_ref()
                .expect("Engine::compile checks that tokenize_fpe has a key");
            if !ff1.encrypt_digits(value, out) {
                mask(value, b'*', 0, json, out);
                return true;
            }
        }
        Action::Redact | Action::Block => {
            out.extend_from_slice(b"[REDACTED:");
            out.extend_from_slice(entity.as_bytes());
            out.extend_from_slice(b"]");
        }
        Action::Tokenize => {
            let tag = keyed(key, b"gatehouse-dlp-tokenize\0", value);
            out.extend_from_slice(b"tok_");
            base32(&tag[..10], out);
        }
        Action::Hash => {
            let tag = keyed(key, b"gatehouse-dlp-hash\0", value);
            const HEX: &[u8; 16] = b"0123456789abcdef";
            for b in tag {
                out.extend_from_slice(&[HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
            }
        }
    }
    false
}

/// Bytes a mask replaces: all but ASCII punctuation, whitespace and control bytes.
const MASKABLE: [bool; 256] = {
    let mut table = [false; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        table[i] = !(b.is_ascii_punctuation() || b.is_ascii_whitespace() || b.is_ascii_control());
        i += 1;
    }
    table
};

#[inline]
fn maskable(b: u8) -> bool {
    MASKABLE[usize::from(b)]
}

/// How each byte of `value` is masked: `0` kept (punctuation, whitespace), `1` masked unless
/// among the last kept, `2` always masked: inside a JSON string every byte of an escape
/// sequence (`\n`, `\u00e9`), so none is left half or turned into a bare quote.
fn mask_classes(value: &[u8], json: bool) -> impl Iterator<Item = u8> + '_ {
    let mut escape = 0usize;
    value.iter().enumerate().map(move |(i, &b)| {
        if escape > 0 {
            escape -= 1;
            return 2;
        }
        if json && b == b'\\' {
            escape = if value.get(i + 1) == Some(&b'u') {
                5
            } else {
                1
            };
            return 2;
        }
        u8::from(maskable(b))
    })
}

fn mask(value: &[u8], with: u8, keep_last: usize, json: bool, out: &mut BytesMut) {
    let total = mask_classes(value, json).filter(|&c| c == 1).count();
    // The first `masked` maskable bytes are masked, the last `keep_last` kept.
    let mut masked = total.saturating_sub(keep_last);
    let at = out.len();
    out.extend_from_slice(value);
    for (b, class) in out[at..].iter_mut().zip(mask_classes(value, json)) {
        match class {
            0 => {}
            2 => *b = with,
            _ if masked > 0 => {
                masked -= 1;
                *b = with;
            }
            _ => {}
        }
    }
}

fn keyed(key: Option<&hmac::Key>, domain: &[u8], value: &[u8]) -> [u8; 32] {
    let key = key.expect("Engine::compile checks that keyed actions have a key");
    let mut ctx = hmac::Context::with_key(key);
    ctx.update(domain);
    ctx.update(value);
    let mut tag = [0u8; 32];
    tag.copy_from_slice(ctx.sign().as_ref());
    tag
}

/// RFC 4648 base32, lowercase, no padding.
fn base32(data: &[u8], out: &mut BytesMut) {
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    let mut acc: u32 = 0;
    let mut bits = 0;
    for &b in data {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.extend_from_slice(&[ALPHABET[((acc >> bits) & 31) as usize]]);
        }
    }
    if bits > 0 {
        out.extend_from_slice(&[ALPHABET[((acc << (5 - bits)) & 31) as usize]]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_in(action: Action, value: &str, key: Option<&TokenKey>, shape: Shape) -> String {
        let mut out = BytesMut::new();
        let keys = Keys {
            hmac: key.map(TokenKey::hmac_key),
            fpe: None,
        };
        apply(
            action,
            "CREDIT_CARD",
            value.as_bytes(),
            &keys,
            shape,
            &mut out,
        );
        String::from_utf8(out.to_vec()).unwrap()
    }

    fn run(action: Action, value: &str, key: Option<&TokenKey>) -> String {
        run_in(action, value, key, Shape::Plain)
    }

    #[test]
    fn json_replacements_keep_the_document_valid() {
        let m = Action::Mask {
            with: '*',
            keep_last: 2,
        };
        let v = r"ann\n\u00e9@x.io";
        let out = run_in(m, v, None, Shape::JsonString);
        assert_eq!(out, r"***********@*.io");
        assert_eq!(out.len(), v.len());
        assert_eq!(
            run_in(m, "536228845", None, Shape::JsonNumber),
            "\"*******45\""
        );
        assert_eq!(
            run_in(Action::Redact, "1", None, Shape::JsonNumber),
            "\"[REDACTED:CREDIT_CARD]\""
        );
        assert_eq!(run_in(Action::Allow, "12", None, Shape::JsonNumber), "12");
        for (action, value) in [(m, r#"a\\b\"c"#), (Action::Redact, r"\u0041")] {
            let out = run_in(action, value, None, Shape::JsonString);
            let doc = format!("{{\"k\": \"{out}\"}}");
            assert!(
                serde_json::from_str::<serde_json::Value>(&doc).is_ok(),
                "{doc}"
            );
        }
    }

    #[test]
    fn action_names_round_trip() {
        for a in [
            Action::Redact,
            Action::Tokenize,
            Action::TokenizeFpe,
            Action::Hash,
            Action::Block,
            Action::Allow,
        ] {
            assert_eq!(Action::from_name(a.name()), Some(a));
        }
        assert_eq!(Action::from_name("mask").unwrap().name(), "mask");
        assert_eq!(Action::from_name("scramble"), None);
    }

    #[test]
    fn mask_preserves_length_and_punctuation_and_keeps_the_last_n() {
        let m = |keep_last| Action::Mask {
            with: '#',
            keep_last,
        };
        assert_eq!(
            run(m(4), "4111-1111-1111-1234", None),
            "####-####-####-1234"
        );
        assert_eq!(run(m(0), "a.b@c.io", None), "#.#@#.##");
        assert_eq!(run(m(30), "12-34", None), "12-34");
    }

    #[test]
    fn redact_block_and_allow() {
        assert_eq!(run(Action::Redact, "x", None), "[REDACTED:CREDIT_CARD]");
        assert_eq!(run(Action::Block, "x", None), "[REDACTED:CREDIT_CARD]");
        assert_eq!(run(Action::Allow, "4111", None), "4111");
    }

    #[test]
    fn tokens_are_deterministic_per_key_and_differ_between_partners() {
        let a = TokenKey::derive(b"owner master secret", "partner-a");
        let b = TokenKey::derive(b"owner master secret", "partner-b");
        let t1 = run(Action::Tokenize, "536-22-8845", Some(&a));
        assert_eq!(t1, run(Action::Tokenize, "536-22-8845", Some(&a)));
        assert_ne!(t1, run(Action::Tokenize, "536-22-8846", Some(&a)));
        assert_ne!(t1, run(Action::Tokenize, "536-22-8845", Some(&b)));
        assert!(t1.starts_with("tok_") && t1.len() == 20, "{t1}");
        assert!(
            t1[4..]
                .bytes()
                .all(|c| c.is_ascii_lowercase() || (b'2'..=b'7').contains(&c))
        );
        let h = run(Action::Hash, "536-22-8845", Some(&a));
        assert_eq!(h.len(), 64);
        assert_ne!(h, run(Action::Hash, "536-22-8845", Some(&b)));
        assert!(!format!("{a:?}").contains(|c: char| c.is_ascii_digit()));
    }

    #[test]
    fn base32_matches_rfc4648() {
        let enc = |s: &[u8]| {
            let mut out = BytesMut::new();
            base32(s, &mut out);
            String::from_utf8(out.to_vec()).unwrap()
        };
        assert_eq!(enc(b"foobar"), "mzxw6ytboi");
        assert_eq!(enc(b"f"), "my");
    }

    #[test]
    fn profiles_with_keyed_actions_need_a_key() {
        let p = Profile::uniform("p", Action::Tokenize, None);
        assert_eq!(p.check_actions().len(), 1);
        let bad = Profile::uniform(
            "p",
            Action::Mask {
                with: 'é',
                keep_last: 0,
            },
            None,
        );
        assert_eq!(bad.check_actions().len(), 1);
        assert!(Profile::default_masking().check_actions().is_empty());
        let fpe = Profile::uniform("p", Action::TokenizeFpe, None);
        assert_eq!(fpe.check_actions().len(), 1);
        let fpe = fpe.with_fpe(FpeKey::new([7; 32]), "partner-a");
        assert!(fpe.check_actions().is_empty());
        let bad_rule = Profile::default()
            .with_field_rule(FieldRule::column("ssn", Action::Hash).with_entity("bad entity"));
        assert_eq!(
            bad_rule.check_actions().len(),
            2,
            "{:?}",
            bad_rule.check_actions()
        );
    }
}
