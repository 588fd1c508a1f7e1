//! DLP profiles as the data path sees them.
//!
//! Takes nothing: plain validated values built by `config::load` from `[dlp]` and
//! `[dlp.profiles.*]`. Gives [`DlpConfig`] and [`DlpProfile`] (detectors, an action per
//! entity, what to do with unscannable content, how findings classify an upload), the
//! engine [`Profile`](crate::dlp::Profile) a profile compiles to, a fingerprint that names
//! exactly what decides its findings, and the strictness comparison that grant overrides must
//! pass. Never fails; the loader has checked everything against the detector pack.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use sha2::{Digest, Sha256};

use super::Classification;
use crate::dlp::format::{CsvOptions, FieldRule, FieldTarget};
use crate::dlp::{Action, FpeKey, Pack, TokenKey};

/// `[dlp]`: the data owner's token secret, FF1 key file and the named profiles.
#[derive(Debug, Clone, Default)]
pub struct DlpConfig {
    /// The data owner's secret that per-partner `tokenize` / `hash` keys are derived from.
    /// Created (0600) by the dev bootstrap; never logged.
    pub token_secret_file: PathBuf,
    /// The wrapped FF1 key (`gatehouse dlp fpe-key`) for `tokenize_fpe`; unwrapped by the
    /// key service (`[key_service]`) at start and reload. Required when a profile uses it.
    pub fpe_key_file: Option<PathBuf>,
    pub profiles: BTreeMap<String, DlpProfile>,
    /// The detector pack the profiles were checked against while loading, so the runtime
    /// does not load and compile it again.
    pub checked_pack: CheckedPack,
}

/// The pack a configuration was checked against; empty until the check ran. Shared by
/// clones of one loaded configuration.
#[derive(Clone, Default)]
pub struct CheckedPack(Arc<OnceLock<Pack>>);

impl CheckedPack {
    pub fn set(&self, pack: &Pack) {
        let _ = self.0.set(pack.clone());
    }

    pub fn get(&self) -> Option<Pack> {
        self.0.get().cloned()
    }
}

impl std::fmt::Debug for CheckedPack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0.get() {
            Some(p) => write!(f, "CheckedPack({})", p.version()),
            None => f.write_str("CheckedPack(none)"),
        }
    }
}

/// What happens to content the engine cannot scan (binary, compressed, not text).
pub use crate::dlp::format::OnUnscannable as Unscannable;

/// One `[dlp.profiles.NAME]`.
#[derive(Debug, Clone, PartialEq)]
pub struct DlpProfile {
    pub name: String,
    /// Detector ids that run; `None`: every detector of the pack.
    pub detectors: Option<Vec<String>>,
    /// Action per entity; others get `default_action`.
    pub actions: BTreeMap<String, Action>,
    pub default_action: Action,
    /// CSV/TSV column rules by header name (by 1-based position when `csv.has_header` is
    /// false): the whole cell, whatever it contains.
    pub columns: BTreeMap<String, Action>,
    /// JSON/NDJSON field-path rules (`customer.ssn`, `$.items[*].card`).
    pub fields: BTreeMap<String, Action>,
    pub on_unscannable: Unscannable,
    /// Classification an upload gets per entity found (overrides the built-in table).
    pub classify: BTreeMap<String, Classification>,
    /// Lowest classification an upload gets, also when nothing was found.
    pub min_classification: Classification,
    /// CSV/TSV dialect (`csv = { has_header = false }`).
    pub csv: CsvOptions,
}

/// The built-in classification of an entity found in an upload.
pub fn default_classification(entity: &str) -> Classification {
    match entity {
        "PRIVATE_KEY"
        | "AWS_ACCESS_KEY_ID"
        | "AWS_SECRET_ACCESS_KEY"
        | "GITHUB_TOKEN"
        | "SLACK_TOKEN"
        | "SLACK_WEBHOOK_URL"
        | "STRIPE_KEY"
        | "GENERIC_SECRET"
        | "JWT" => Classification::Restricted,
        "EMAIL_ADDRESS" | "PHONE_NUMBER" | "IP_ADDRESS" => Classification::Internal,
        // Cards, SSNs, IBANs, routing numbers, passports, dates of birth and any entity of a
        // custom pack.
        _ => Classification::Confidential,
    }
}

/// How strict an action is, for comparing a grant's override with its share's profile:
/// `allow < mask < tokenize = hash < redact < block`; a mask keeping fewer characters is
/// stricter than one keeping more.
fn rank(a: Action) -> (u8, usize) {
    match a {
        Action::Allow => (0, 0),
        Action::Mask { keep_last, .. } => (1, usize::MAX - keep_last),
        Action::Tokenize | Action::TokenizeFpe | Action::Hash => (2, 0),
        Action::Redact => (3, 0),
        Action::Block => (4, 0),
    }
}

impl DlpProfile {
    /// A column rule's name read as a 1-based position (`"3"`), given 0-based; for CSV without
    /// a header.
    pub fn column_position(name: &str) -> Option<usize> {
        name.trim().parse::<usize>().ok()?.checked_sub(1)
    }

    /// The engine profile for one partner: its token key, and the FF1 key with the partner
    /// id as tweak.
    pub fn to_engine(
        &self,
        key: Option<TokenKey>,
        fpe: Option<(FpeKey, &str)>,
    ) -> crate::dlp::Profile {
        let has_header = self.csv.has_header;
        let columns = self.columns.iter().map(|(c, a)| {
            match DlpProfile::column_position(c).filter(|_| !has_header) {
                Some(i) => FieldRule {
                    target: FieldTarget::ColumnIndex(i),
                    action: *a,
                    entity: "FIELD".into(),
                },
                None => FieldRule::column(c, *a),
            }
        });
        let fields = self.fields.iter().map(|(p, a)| FieldRule::path(p, *a));
        let profile = crate::dlp::Profile {
            name: self.name.clone(),
            detectors: self.detectors.clone(),
            actions: self.actions.clone(),
            default_action: self.default_action,
            key,
            field_rules: columns.chain(fields).collect(),
            on_unscannable: self.on_unscannable,
            csv: self.csv,
            ..crate::dlp::Profile::default()
        };
        match fpe {
            Some((fpe, partner)) => profile.with_fpe(fpe, partner),
            None => profile,
        }
    }

    /// Whether any action needs the partner's token key (`tokenize`, `hash`).
    pub fn needs_key(&self) -> bool {
        self.all_actions()
            .any(|a| matches!(a, Action::Tokenize | Action::Hash))
    }

    /// Whether any action is `tokenize_fpe` (needs the FF1 key and the partner as tweak).
    pub fn needs_fpe(&self) -> bool {
        self.all_actions().any(|a| a == Action::TokenizeFpe)
    }

    /// Whether engines differ per partner (keyed actions).
    pub fn per_partner(&self) -> bool {
        self.needs_key() || self.needs_fpe()
    }

    /// Whether any action can change the length of the content.
    pub fn changes_length(&self) -> bool {
        self.all_actions().any(|a| a.changes_length())
    }

    fn all_actions(&self) -> impl Iterator<Item = Action> + '_ {
        std::iter::once(self.default_action)
            .chain(self.actions.values().copied())
            .chain(self.columns.values().copied())
            .chain(self.fields.values().copied())
    }

    /// The action for an entity.
    pub fn action_for(&self, entity: &str) -> Action {
        self.actions
            .get(entity)
            .copied()
            .unwrap_or(self.default_action)
    }

    /// The classification an upload with a finding of `entity` gets at least.
    pub fn classification_for(&self, entity: &str) -> Classification {
        self.classify
            .get(entity)
            .copied()
            .unwrap_or_else(|| default_classification(entity))
            .max(self.min_classification)
    }

    /// 16 hex digits naming what decides this profile's findings and verdicts (detectors,
    /// actions, unscannable handling), so a verdict recorded under it is used only by the
    /// same profile.
    pub fn fingerprint(&self) -> String {
        let mut h = Sha256::new();
        h.update(format!(
            "{:?}\0{:?}\0{:?}\0{:?}\0{:?}\0{}{}",
            self.detectors,
            self.actions,
            self.default_action,
            self.columns,
            self.fields,
            self.on_unscannable.name(),
            // Only a non-default dialect is named, so verdicts recorded before it existed hold.
            if self.csv.has_header {
                ""
            } else {
                "\0no-header"
            }
        ));
        h.finalize()[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// Why `self` is weaker than `base` (empty: at least as strict). Entities not named in
    /// either profile get the default actions, so comparing the named ones and the defaults
    /// covers every entity of any pack.
    pub fn weaker_than(&self, base: &DlpProfile) -> Vec<String> {
        let mut why = Vec::new();
        let named = self.actions.keys().chain(base.actions.keys());
        for entity in named.collect::<std::collections::BTreeSet<_>>() {
            let (mine, theirs) = (self.action_for(entity), base.action_for(entity));
            if rank(mine) < rank(theirs) {
                why.push(format!(
                    "{entity}: {} is weaker than {}",
                    mine.name(),
                    theirs.name()
                ));
            }
        }
        if rank(self.default_action) < rank(base.default_action) {
            why.push(format!(
                "default_action {} is weaker than {}",
                self.default_action.name(),
                base.default_action.name()
            ));
        }
        match (&self.detectors, &base.detectors) {
            (None, _) => {}
            (Some(_), None) => why.push("it runs fewer detectors (the base runs all)".into()),
            (Some(mine), Some(theirs)) => {
                for d in theirs.iter().filter(|d| !mine.contains(d)) {
                    why.push(format!("detector {d} does not run"));
                }
            }
        }
        for (what, mine, theirs) in [
            ("column", &self.columns, &base.columns),
            ("field", &self.fields, &base.fields),
        ] {
            for (name, action) in theirs {
                match mine.get(name) {
                    Some(a) if rank(*a) >= rank(*action) => {}
                    Some(a) => why.push(format!(
                        "{what} {name}: {} is weaker than {}",
                        a.name(),
                        action.name()
                    )),
                    None => why.push(format!(
                        "{what} {name}: no rule (the base has {})",
                        action.name()
                    )),
                }
            }
        }
        if self.csv != base.csv && !base.columns.is_empty() {
            why.push(
                "its csv dialect differs, so the base's column rules cover other cells".into(),
            );
        }
        if self.on_unscannable == Unscannable::Pass && base.on_unscannable == Unscannable::Block {
            why.push("on_unscannable pass is weaker than block".into());
        }
        why
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(default_action: Action) -> DlpProfile {
        DlpProfile {
            name: "p".into(),
            detectors: None,
            actions: BTreeMap::new(),
            default_action,
            columns: BTreeMap::new(),
            fields: BTreeMap::new(),
            on_unscannable: Unscannable::Block,
            classify: BTreeMap::new(),
            min_classification: Classification::Public,
            csv: CsvOptions::default(),
        }
    }

    fn mask(keep_last: usize) -> Action {
        Action::Mask {
            with: '*',
            keep_last,
        }
    }

    #[test]
    fn strictness_compares_every_named_entity_defaults_detectors_and_unscannable() {
        let base = {
            let mut p = profile(mask(0));
            p.actions.insert("CREDIT_CARD".into(), mask(4));
            p
        };
        assert!(base.weaker_than(&base).is_empty());
        let mut stricter = profile(Action::Redact);
        stricter.actions.insert("US_SSN".into(), Action::Block);
        assert!(stricter.weaker_than(&base).is_empty());

        let mut weaker = profile(mask(0));
        weaker.actions.insert("CREDIT_CARD".into(), mask(6));
        weaker.actions.insert("EMAIL_ADDRESS".into(), Action::Allow);
        weaker.detectors = Some(vec!["email".into()]);
        weaker.on_unscannable = Unscannable::Pass;
        let why = weaker.weaker_than(&base);
        assert_eq!(why.len(), 4, "{why:?}");
        assert!(why[0].starts_with("CREDIT_CARD"), "{why:?}");
        assert!(why[1].starts_with("EMAIL_ADDRESS"), "{why:?}");
        assert!(
            profile(Action::Allow)
                .weaker_than(&base)
                .iter()
                .any(|w| w.contains("default_action"))
        );
    }

    #[test]
    fn classification_uses_overrides_then_the_table_then_the_floor() {
        let mut p = profile(mask(0));
        assert_eq!(
            p.classification_for("PRIVATE_KEY"),
            Classification::Restricted
        );
        assert_eq!(
            p.classification_for("EMAIL_ADDRESS"),
            Classification::Internal
        );
        assert_eq!(p.classification_for("CUSTOM"), Classification::Confidential);
        p.classify
            .insert("EMAIL_ADDRESS".into(), Classification::Public);
        assert_eq!(
            p.classification_for("EMAIL_ADDRESS"),
            Classification::Public
        );
        p.min_classification = Classification::Internal;
        assert_eq!(
            p.classification_for("EMAIL_ADDRESS"),
            Classification::Internal
        );
    }

    #[test]
    fn fingerprints_change_with_what_decides_findings() {
        let a = profile(mask(0));
        let mut b = a.clone();
        assert_eq!(a.fingerprint(), b.fingerprint());
        assert_eq!(a.fingerprint().len(), 16);
        b.actions.insert("US_SSN".into(), Action::Block);
        assert_ne!(a.fingerprint(), b.fingerprint());
        let mut c = a.clone();
        c.on_unscannable = Unscannable::Pass;
        assert_ne!(a.fingerprint(), c.fingerprint());
        let mut d = a.clone();
        d.classify.insert("X".into(), Classification::Public);
        assert_eq!(a.fingerprint(), d.fingerprint());
    }
}
