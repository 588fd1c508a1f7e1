//! Profiles and actions: what happens to a finding of each entity.
//!
//! Takes a [`Profile`] (plain Rust values; parsing profiles from config is the config module's
//! job) and a finding's bytes; gives the replacement bytes. [`Action::Tokenize`] and
//! [`Action::Hash`] are keyed (HMAC-SHA256 with the profile's [`TokenKey`], one per partner, so
//! two partners cannot join on tokens and a 9-digit SSN cannot be reversed by hashing all of
//! them). Validation of a profile against a pack happens in `Engine::compile`.

use std::collections::BTreeMap;
use std::fmt;

use aws_lc_rs::hmac;
use bytes::BytesMut;

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
        }
    }

    /// Whether the replacement can differ in length from the value.
    pub fn changes_length(&self) -> bool {
        !matches!(self, Action::Mask { .. } | Action::Allow)
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
        }
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
        let all = std::iter::once(("default_action", &self.default_action))
            .chain(self.actions.iter().map(|(k, v)| (k.as_str(), v)));
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
        }
        errors
    }
}

/// Writes the replacement of `value` (a finding of `entity`) under `action` to `out`.
pub(crate) fn apply(
    action: Action,
    entity: &str,
    value: &[u8],
    key: Option<&hmac::Key>,
    out: &mut BytesMut,
) {
    match action {
        Action::Allow => out.extend_from_slice(value),
        Action::Mask { with, keep_last } => mask(value, with as u8, keep_last, out),
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
}

fn maskable(b: u8) -> bool {
    !(b.is_ascii_punctuation() || b.is_ascii_whitespace() || b.is_ascii_control())
}

fn mask(value: &[u8], with: u8, keep_last: usize, out: &mut BytesMut) {
    let total = value.iter().filter(|&&b| maskable(b)).count();
    let masked = total.saturating_sub(keep_last);
    let mut seen = 0;
    out.extend(value.iter().map(|&b| {
        if !maskable(b) {
            return b;
        }
        seen += 1;
        if seen <= masked { with } else { b }
    }));
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

    fn run(action: Action, value: &str, key: Option<&TokenKey>) -> String {
        let mut out = BytesMut::new();
        let k = key.map(TokenKey::hmac_key);
        apply(
            action,
            "CREDIT_CARD",
            value.as_bytes(),
            k.as_ref(),
            &mut out,
        );
        String::from_utf8(out.to_vec()).unwrap()
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
    }
}
