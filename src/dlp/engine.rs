//! The compiled engine: a pack's detectors filtered and given actions by a profile.
//!
//! Takes a [`Pack`] and a [`Profile`]; gives an [`Engine`] holding one Aho-Corasick DFA for
//! every keyword and context word (the words open candidate windows for their detectors), and
//! one DFA over the regexes of the detectors that have neither (the keyword-free set; its match
//! events open their windows). Both run over every byte in interleaved lanes; per-detector
//! regexes then confirm inside the windows. Per-stream state lives in a `Scanner`; an `Engine`
//! is immutable and shared.
//! The profile's column and field-path rules become extra targets after the detectors (their
//! findings are forced, not searched), and its structural settings (CSV dialect,
//! `on_unscannable`) are kept for the scanners.
//! [`Engine::compile`] fails with every problem of the profile at once (unknown detector ids or
//! entities, mask characters, keyed actions without a key, bad field paths).

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use aho_corasick::MatchKind;
use parking_lot::Mutex;
use regex_automata::dfa::dense;

use super::action::{Action, Keys, Profile};
use super::detector::{Detector, Scratch};
use super::format::{CsvOptions, FieldPath, FieldTarget, FormatHint, OnUnscannable};
use super::fpe::Ff1;
use super::pattern::{Pack, PatternError};
use super::stream::{ScanMode, Scanner};

/// What opens a detector's candidate windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Trigger {
    /// Its keywords, or its context words when it has no keywords.
    Words,
    /// Its regex's match events in the keyword-free set DFA.
    Set,
    /// Everywhere: the set DFA would exceed its size limit, so the regex searches the stream.
    Everywhere,
}

/// A detector as the engine runs it.
#[derive(Debug)]
pub(crate) struct Slot {
    pub det: Detector,
    pub action: Action,
    pub trigger: Trigger,
}

/// The keyword-free detectors' regexes in one DFA that reports every match end.
#[derive(Debug)]
pub(crate) struct SetDfa {
    pub dfa: Arc<dense::DFA<Vec<u32>>>,
    /// Slot of each pattern.
    pub slots: Vec<u32>,
    /// Longest `max_len` among them: the lanes' warm-up.
    pub warm: usize,
}

/// One keyword or context word of the automaton.
#[derive(Debug, Default)]
pub(crate) struct Word {
    pub len: usize,
    /// Detectors whose candidate windows this word opens.
    pub triggers: Vec<u32>,
    pub keyword_of: Vec<u32>,
    pub context_of: Vec<u32>,
}

/// A column or field-path rule as the engine runs it.
#[derive(Debug)]
pub(crate) struct RuleSlot {
    /// `column:ssn`, `path:customer.ssn`: the detector name its findings carry.
    pub label: Arc<str>,
    pub entity: Arc<str>,
    pub action: Action,
    pub target: RuleTarget,
}

#[derive(Debug)]
pub(crate) enum RuleTarget {
    /// Lowercased, trimmed header name.
    Column(Vec<u8>),
    ColumnIndex(usize),
    Path(FieldPath),
}

/// What a finding reports and does, whether from a detector or a rule.
pub(crate) struct Target<'a> {
    pub entity: &'a Arc<str>,
    pub id: &'a Arc<str>,
    pub action: Action,
    pub priority: i32,
}

/// The profile does not fit the pack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileErrors(pub Vec<String>);

impl fmt::Display for ProfileErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join("\n"))
    }
}

impl std::error::Error for ProfileErrors {}

/// Detectors, automata and actions for one profile over one pack.
#[derive(Debug)]
pub struct Engine {
    pub(crate) slots: Vec<Slot>,
    pub(crate) ac: Option<aho_corasick::dfa::DFA>,
    pub(crate) words: Vec<Word>,
    pub(crate) max_word: usize,
    pub(crate) set: Option<SetDfa>,
    /// Look-ahead after which every candidate start is final (largest detector horizon).
    pub(crate) horizon: usize,
    /// Bytes kept before the frontier: the widest context window plus boundary bytes.
    pub(crate) lookback: usize,
    pub(crate) keys: Keys,
    /// Column and path rules; their target index is `slots.len() + i`.
    pub(crate) rules: Vec<RuleSlot>,
    pub(crate) on_unscannable: OnUnscannable,
    pub(crate) csv: CsvOptions,
    /// Per target: its place when findings of the same span tie (higher priority, then pack
    /// order, first).
    pub(crate) ranks: Vec<u32>,
    profile: String,
    pack_version: String,
    /// Regex caches of finished scanners, for the next ones.
    pool: Mutex<Vec<CacheSet>>,
}

/// One scanner's regex scratch space, per detector.
type CacheSet = Vec<Scratch>;

/// Cache sets kept for reuse; more concurrent scanners than this create fresh ones.
const POOL: usize = 64;

impl Engine {
    /// Compiles `profile` over `pack`.
    pub fn compile(pack: &Pack, profile: &Profile) -> Result<Engine, ProfileErrors> {
        let mut errors = profile.check_actions();
        let entities = pack.entities();
        for entity in profile.actions.keys() {
            if !entities.iter().any(|e| **e == **entity) {
                errors.push(format!(
                    "profile `{}`: unknown entity `{entity}`",
                    profile.name
                ));
            }
        }
        let selected: Vec<&Detector> = match &profile.detectors {
            None => pack.detectors.iter().collect(),
            Some(ids) => {
                for id in ids {
                    if !pack.detectors.iter().any(|d| *d.id == **id) {
                        errors.push(format!(
                            "profile `{}`: unknown detector `{id}`",
                            profile.name
                        ));
                    }
                }
                pack.detectors
                    .iter()
                    .filter(|d| ids.iter().any(|id| **id == *d.id))
                    .collect()
            }
        };
        let mut rules = Vec::new();
        for rule in &profile.field_rules {
            let target = match &rule.target {
                FieldTarget::Column(name) => {
                    RuleTarget::Column(name.trim().to_ascii_lowercase().into_bytes())
                }
                FieldTarget::ColumnIndex(i) => RuleTarget::ColumnIndex(*i),
                FieldTarget::Path(p) => match FieldPath::parse(p) {
                    Ok(path) => RuleTarget::Path(path),
                    Err(e) => {
                        errors.push(format!("profile `{}`: {e}", profile.name));
                        continue;
                    }
                },
            };
            rules.push(RuleSlot {
                label: rule.label().into(),
                entity: rule.entity.as_str().into(),
                action: rule.action,
                target,
            });
        }
        if !errors.is_empty() {
            return Err(ProfileErrors(errors));
        }
        let slots = selected
            .iter()
            .map(|d| ((*d).clone(), profile.action_for(&d.entity)))
            .collect();
        let keys = Keys {
            hmac: profile.key.as_ref().map(|k| k.hmac_key()),
            fpe: match (&profile.fpe_key, &profile.partner) {
                (Some(k), Some(p)) => Some(Ff1::new(k, p)),
                _ => None,
            },
        };
        let set_dfa = |set: &[u32]| {
            let ids: Vec<&str> = set.iter().map(|&i| &*selected[i as usize].id).collect();
            pack.set_dfa(&ids)
        };
        let mut engine = build(slots, keys, &profile.name, pack.version(), set_dfa)
            .map_err(|e| ProfileErrors(vec![e]))?;
        engine.rules = rules;
        engine.ranks = engine.tie_ranks();
        engine.on_unscannable = profile.on_unscannable;
        engine.csv = profile.csv;
        Ok(engine)
    }

    /// A scanner for one stream of plain text: no format parsing and no binary check (use
    /// [`Engine::scanner_for`] for object bodies).
    pub fn scanner(self: &Arc<Self>, mode: ScanMode) -> Scanner {
        Scanner::new(Arc::clone(self), mode, None)
    }

    /// A scanner for one object body. The format comes from `hint` (forced, then
    /// Content-Type, then the name's extension), else from sniffing the first bytes; those
    /// bytes are always checked for compressed or binary content, which follows the profile's
    /// `on_unscannable` (see [`Summary::unscannable`](super::Summary::unscannable)). Output is
    /// held back until the first [`SNIFF_LEN`](super::format::SNIFF_LEN) bytes (or the end)
    /// have arrived.
    pub fn scanner_for(self: &Arc<Self>, mode: ScanMode, hint: &FormatHint<'_>) -> Scanner {
        Scanner::new(Arc::clone(self), mode, Some(hint.declared()))
    }

    /// Whether output always has the input's length for bodies of `format`, whatever is
    /// found (the gateway decides per object, from what was found: see `Verdict`).
    #[cfg(test)]
    pub(crate) fn preserves_length(&self, format: super::Format) -> bool {
        let json = matches!(format, super::Format::Json | super::Format::Ndjson);
        self.slots
            .iter()
            .map(|s| s.action)
            .chain(self.rules.iter().map(|r| r.action))
            .all(|a| a.keeps_length(json))
    }

    /// Detectors and rules: target `i` of a candidate.
    pub(crate) fn target(&self, i: u32) -> Target<'_> {
        let i = i as usize;
        match self.slots.get(i) {
            Some(s) => Target {
                entity: &s.det.entity,
                id: &s.det.id,
                action: s.action,
                priority: s.det.priority,
            },
            None => {
                let r = &self.rules[i - self.slots.len()];
                Target {
                    entity: &r.entity,
                    id: &r.label,
                    action: r.action,
                    priority: i32::MAX,
                }
            }
        }
    }

    /// Per target, its rank among all targets ordered by priority (highest first), then index.
    fn tie_ranks(&self) -> Vec<u32> {
        let mut order: Vec<u32> = (0..self.targets() as u32).collect();
        order.sort_by_key(|&i| (std::cmp::Reverse(self.target(i).priority), i));
        let mut rank = vec![0; order.len()];
        for (r, &i) in order.iter().enumerate() {
            rank[i as usize] = r as u32;
        }
        rank
    }

    /// Number of targets: detectors, then rules.
    pub(crate) fn targets(&self) -> usize {
        self.slots.len() + self.rules.len()
    }

    /// Name of the profile this engine was compiled from.
    pub fn profile(&self) -> &str {
        &self.profile
    }

    /// Version of the pack this engine was compiled from.
    pub fn pack_version(&self) -> &str {
        &self.pack_version
    }

    /// `(detector id, entity, action)` for every detector that runs.
    pub fn detectors(&self) -> impl Iterator<Item = (&str, &str, Action)> {
        self.slots
            .iter()
            .map(|s| (&*s.det.id, &*s.det.entity, s.action))
    }

    /// Largest number of bytes a scanner holds back (carry-over) between chunks.
    pub fn carry_over(&self) -> usize {
        self.horizon + self.lookback
    }

    pub(crate) fn take_caches(&self) -> CacheSet {
        self.pool
            .lock()
            .pop()
            .unwrap_or_else(|| self.slots.iter().map(|_| Scratch::default()).collect())
    }

    pub(crate) fn return_caches(&self, caches: CacheSet) {
        let mut pool = self.pool.lock();
        if pool.len() < POOL && caches.len() == self.slots.len() {
            pool.push(caches);
        }
    }

    /// Whether any detector's or rule's action is `block`.
    pub fn can_block(&self) -> bool {
        self.slots.iter().any(|s| s.action == Action::Block)
            || self.rules.iter().any(|r| r.action == Action::Block)
    }
}

pub(crate) fn build(
    slots: Vec<(Detector, Action)>,
    keys: Keys,
    profile: &str,
    pack_version: &str,
    set_dfa: impl FnOnce(&[u32]) -> Option<Arc<dense::DFA<Vec<u32>>>>,
) -> Result<Engine, String> {
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut words: Vec<Word> = Vec::new();
    let mut patterns: Vec<String> = Vec::new();
    let mut engine_slots = Vec::new();
    for (i, (det, action)) in slots.into_iter().enumerate() {
        let i = i as u32;
        let listed = det.keywords.iter().map(|k| (k, true, true));
        let context = det
            .context
            .iter()
            .map(|c| (c, false, det.keywords.is_empty()));
        for (w, is_keyword, triggers) in listed.chain(context) {
            let at = *index.entry(w.clone()).or_insert_with(|| {
                patterns.push(w.clone());
                words.push(Word {
                    len: w.len(),
                    ..Word::default()
                });
                words.len() - 1
            });
            let word = &mut words[at];
            let list = if is_keyword {
                &mut word.keyword_of
            } else {
                &mut word.context_of
            };
            if !list.contains(&i) {
                list.push(i);
            }
            if triggers && !word.triggers.contains(&i) {
                word.triggers.push(i);
            }
        }
        let trigger = if det.keywords.is_empty() && det.context.is_empty() {
            Trigger::Set
        } else {
            Trigger::Words
        };
        engine_slots.push(Slot {
            det,
            action,
            trigger,
        });
    }
    let ac = if patterns.is_empty() {
        None
    } else {
        let ac = aho_corasick::dfa::DFA::builder()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::Standard)
            .start_kind(aho_corasick::StartKind::Unanchored)
            .prefilter(false)
            .build(&patterns)
            .map_err(|e| format!("keywords do not compile: {e}"))?;
        Some(ac)
    };
    let set_slots: Vec<u32> = (0..engine_slots.len() as u32)
        .filter(|&i| engine_slots[i as usize].trigger == Trigger::Set)
        .collect();
    let set = match set_slots.is_empty() {
        true => None,
        false => match set_dfa(&set_slots) {
            Some(dfa) => Some(SetDfa {
                dfa,
                warm: set_slots
                    .iter()
                    .map(|&i| engine_slots[i as usize].det.max_len)
                    .max()
                    .unwrap_or(0),
                slots: set_slots,
            }),
            None => {
                for &i in &set_slots {
                    engine_slots[i as usize].trigger = Trigger::Everywhere;
                }
                None
            }
        },
    };
    let mut engine = Engine {
        horizon: engine_slots
            .iter()
            .map(|s| s.det.horizon())
            .max()
            .unwrap_or(1),
        lookback: engine_slots
            .iter()
            .map(|s| s.det.context_window)
            .max()
            .unwrap_or(0)
            + 2,
        max_word: patterns.iter().map(String::len).max().unwrap_or(1),
        slots: engine_slots,
        ac,
        words,
        set,
        keys,
        rules: Vec::new(),
        on_unscannable: OnUnscannable::Block,
        csv: CsvOptions::default(),
        profile: profile.to_string(),
        pack_version: pack_version.to_string(),
        pool: Mutex::new(Vec::new()),
        ranks: Vec::new(),
    };
    engine.ranks = engine.tie_ranks();
    Ok(engine)
}

/// Runs one detector's examples and negative examples through an engine holding only it.
pub(crate) fn check_examples(det: &Detector) -> Vec<PatternError> {
    let err = |line, reason| PatternError {
        file: det.source.to_string(),
        line,
        reason,
    };
    let action = Action::Mask {
        with: '*',
        keep_last: 0,
    };
    let set_dfa = |_: &[u32]| {
        super::detector::compile_set_dfa(&[&*det.hir])
            .ok()
            .map(Arc::new)
    };
    let engine = match build(
        vec![(det.clone(), action)],
        Keys::default(),
        "examples",
        "",
        set_dfa,
    ) {
        Ok(e) => Arc::new(e),
        Err(e) => return vec![err(det.line, e)],
    };
    let mut errors = Vec::new();
    for ex in &det.examples {
        let found = super::stream::findings_in(&engine, ex.text.as_bytes());
        let text = |f: &super::stream::Finding| {
            String::from_utf8_lossy(&ex.text.as_bytes()[f.start as usize..f.end as usize])
                .into_owned()
        };
        let texts: Vec<String> = found.iter().map(text).collect();
        if !texts.contains(&ex.expect) {
            let reason = format!(
                "detector `{}`: example {:?} should give {:?}, gives {:?}",
                det.id, ex.text, ex.expect, texts
            );
            errors.push(err(ex.line, reason));
        }
    }
    for ex in &det.negative_examples {
        let found = super::stream::findings_in(&engine, ex.text.as_bytes());
        if let Some(f) = found.first() {
            let value = &ex.text.as_bytes()[f.start as usize..f.end as usize];
            let reason = format!(
                "detector `{}`: negative example {:?} gives {:?}",
                det.id,
                ex.text,
                String::from_utf8_lossy(value)
            );
            errors.push(err(ex.line, reason));
        }
    }
    errors
}
