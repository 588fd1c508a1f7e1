//! A compiled detector: one entity's regex with its keywords, validator, context and limits.
//!
//! Takes the validated fields of one `[[detector]]` table; gives a [`Detector`] whose regex is
//! byte-oriented (ASCII classes, `\d` is `[0-9]`, `^`/`$` match at line ends), bounded in length
//! and compiled with size limits into regex-automata's linear-time engines. `compile_regex`
//! fails with a one-line reason (syntax, can match empty, unbounded, too big).

use std::ops::Range;
use std::sync::Arc;

use regex_automata::dfa::{StartKind, dense, onepass};
use regex_automata::meta;
use regex_automata::nfa::thompson::{self, backtrack};
use regex_automata::util::captures::Captures;
use regex_automata::util::primitives::NonMaxUsize;
use regex_automata::util::syntax;
use regex_automata::{Anchored, Input, Match, MatchKind, PatternID};
use regex_syntax::hir::{Hir, HirKind};

use super::validate::Validator;

/// The longest `max_len` a detector may declare; bounds the stream carry-over.
pub const MAX_MATCH_LEN: usize = 64 * 1024;
/// The widest `context_window` a detector may declare.
pub const MAX_CONTEXT_WINDOW: usize = 4096;
/// Compiled NFA size limit per regex (the `regex` crate's default is 10 MiB).
const NFA_SIZE_LIMIT: usize = 4 << 20;
/// Size limit of a `value` group's one-pass DFA (the meta regex's default).
const ONEPASS_LIMIT: usize = 1 << 20;
/// Lazy DFA cache per regex and scanner.
const HYBRID_CACHE: usize = 2 << 20;
/// The capture group whose span is the finding, when a regex has it.
pub const VALUE_GROUP: &str = "value";

/// One example from a pattern file: `text` must produce a finding whose bytes are `expect`.
#[derive(Debug, Clone)]
pub struct Example {
    pub text: String,
    pub expect: String,
    /// Line of the example in its file.
    pub line: usize,
}

/// A negative example: `text` must not produce a finding from this detector.
#[derive(Debug, Clone)]
pub struct NegativeExample {
    pub text: String,
    pub line: usize,
}

/// A detector ready to run. Cheap to clone (the compiled regex is shared).
#[derive(Debug, Clone)]
pub struct Detector {
    pub id: Arc<str>,
    pub entity: Arc<str>,
    pub description: Option<String>,
    pub pattern: String,
    pub(crate) regex: meta::Regex,
    /// Resolves the regex's `value` group, when it has one (the finding is that group, not the
    /// whole match).
    pub(crate) value: Option<Arc<ValueGroup>>,
    /// Lowercased; a match needs one within `context_window` of it (or inside it).
    pub keywords: Vec<String>,
    pub validator: Option<Validator>,
    /// Lowercased; when present, one must occur within `context_window` bytes of the finding.
    pub context: Vec<String>,
    pub context_window: usize,
    pub max_len: usize,
    pub allow: Vec<Vec<u8>>,
    pub priority: i32,
    pub examples: Vec<Example>,
    pub negative_examples: Vec<NegativeExample>,
    /// File name and line of the `[[detector]]` table.
    pub source: Arc<str>,
    pub line: usize,
    pub(crate) hir: Arc<Hir>,
}

impl Detector {
    /// Bytes of look-ahead a candidate start needs before it is final in a stream:
    /// the longest match, the context window after it and one byte for `\b`.
    pub(crate) fn horizon(&self) -> usize {
        self.max_len + self.context_window + 1
    }

    /// Whether the value is on this detector's allow-list.
    pub(crate) fn allowed(&self, value: &[u8]) -> bool {
        self.allow.iter().any(|a| a == value)
    }

    /// The leftmost-first match in `span` of `hay` (anchored at its start when `anchored`).
    pub(crate) fn find(
        &self,
        scratch: &mut Scratch,
        hay: &[u8],
        span: Range<usize>,
        anchored: bool,
    ) -> Option<Match> {
        let anchored = if anchored {
            Anchored::Yes
        } else {
            Anchored::No
        };
        let input = Input::new(hay).span(span).anchored(anchored);
        let cache = scratch
            .meta
            .get_or_insert_with(|| self.regex.create_cache());
        self.regex.search_with(cache, &input)
    }

    /// The bounds of the `value` group in the match that spans exactly `span` of `hay`;
    /// `None` when the regex has no such group or it did not take part (the finding is then the
    /// whole match).
    pub(crate) fn value_bounds(
        &self,
        scratch: &mut Scratch,
        hay: &[u8],
        span: Range<usize>,
    ) -> Option<(usize, usize)> {
        let v = self.value.as_deref()?;
        let len = span.len();
        let input = Input::new(hay).span(span).anchored(Anchored::Yes);
        let slots = &mut scratch.slots;
        slots.clear();
        slots.resize(2 * v.group + 2, None);
        let ok = match &v.engine {
            ValueEngine::OnePass(dfa) => {
                let cache = scratch.onepass.get_or_insert_with(|| dfa.create_cache());
                dfa.try_search_slots(cache, &input, slots).is_ok()
            }
            ValueEngine::Backtrack(bt) if len <= bt.max_haystack_len() => {
                let cache = scratch.backtrack.get_or_insert_with(|| bt.create_cache());
                bt.try_search_slots(cache, &input, slots).is_ok()
            }
            ValueEngine::Backtrack(_) => false,
        };
        if !ok {
            // Longer than the backtracker's bitset allows: the meta regex (its PikeVM).
            let cache = scratch
                .meta
                .get_or_insert_with(|| self.regex.create_cache());
            let caps = scratch
                .meta_caps
                .get_or_insert_with(|| self.regex.create_captures());
            self.regex.search_captures_with(cache, &input, caps);
            let g = caps.get_group(v.group)?;
            return Some((g.start, g.end));
        }
        Some((slots[2 * v.group]?.get(), slots[2 * v.group + 1]?.get()))
    }
}

/// The engine that finds the `value` group inside a known match, over the same NFA semantics
/// (leftmost-first) as the detector's regex: a one-pass DFA when the regex is one-pass, else a
/// bounded backtracker (linear in the match: it visits each state and position once).
#[derive(Debug)]
pub(crate) struct ValueGroup {
    engine: ValueEngine,
    group: usize,
}

#[derive(Debug)]
enum ValueEngine {
    OnePass(Box<onepass::DFA>),
    Backtrack(backtrack::BoundedBacktracker),
}

impl ValueGroup {
    fn compile(hir: &Hir) -> Result<Option<ValueGroup>, String> {
        if !has_group(hir, VALUE_GROUP) {
            return Ok(None);
        }
        let nfa = thompson::Compiler::new()
            .configure(
                thompson::Config::new()
                    .utf8(false)
                    .nfa_size_limit(Some(NFA_SIZE_LIMIT))
                    .which_captures(thompson::WhichCaptures::All),
            )
            .build_from_hir(hir)
            .map_err(|e| format!("regex does not compile within the size limits: {e}"))?;
        let Some(group) = nfa.group_info().to_index(PatternID::ZERO, VALUE_GROUP) else {
            return Ok(None);
        };
        let onepass = onepass::Builder::new()
            .configure(onepass::Config::new().size_limit(Some(ONEPASS_LIMIT)))
            .build_from_nfa(nfa.clone());
        let engine = match onepass {
            Ok(dfa) => ValueEngine::OnePass(Box::new(dfa)),
            Err(_) => ValueEngine::Backtrack(
                backtrack::BoundedBacktracker::new_from_nfa(nfa)
                    .map_err(|e| format!("regex does not compile: {e}"))?,
            ),
        };
        Ok(Some(ValueGroup { engine, group }))
    }
}

/// One scanner's scratch space for one detector's engines, each created on first use.
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    meta: Option<meta::Cache>,
    onepass: Option<onepass::Cache>,
    backtrack: Option<backtrack::Cache>,
    meta_caps: Option<Captures>,
    slots: Vec<Option<NonMaxUsize>>,
}

/// A regex compiled for detection, with what the engine needs to know about it.
pub(crate) struct CompiledRegex {
    pub regex: meta::Regex,
    pub hir: Arc<Hir>,
    pub value: Option<Arc<ValueGroup>>,
}

fn syntax_config() -> syntax::Config {
    syntax::Config::new()
        .unicode(false)
        .utf8(false)
        .multi_line(true)
        .nest_limit(64)
}

fn parse(pattern: &str) -> Result<Hir, String> {
    let c = syntax_config();
    regex_syntax::ParserBuilder::new()
        .unicode(c.get_unicode())
        .utf8(c.get_utf8())
        .multi_line(c.get_multi_line())
        .nest_limit(c.get_nest_limit())
        .build()
        .parse(pattern)
        .map_err(|e| {
            // regex-syntax errors are multi-line drawings; keep the last line (the reason).
            let text = e.to_string();
            let reason = text
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("");
            format!("bad regex: {}", reason.trim().trim_start_matches("error: "))
        })
}

fn meta_config(captures: bool) -> meta::Config {
    let which = if captures {
        thompson::WhichCaptures::All
    } else {
        thompson::WhichCaptures::Implicit
    };
    meta::Config::new()
        .nfa_size_limit(Some(NFA_SIZE_LIMIT))
        .hybrid_cache_capacity(HYBRID_CACHE)
        .utf8_empty(false)
        .which_captures(which)
}

/// Parses and compiles one detector regex. `max_len` is the detector's declared limit.
pub(crate) fn compile_regex(pattern: &str) -> Result<CompiledRegex, String> {
    let hir = parse(pattern)?;
    let props = hir.properties();
    if props.minimum_len().unwrap_or(0) == 0 {
        return Err("regex can match the empty string".into());
    }
    if props.maximum_len().is_none() {
        return Err(
            "regex can match unbounded lengths; use bounded repetition like {1,64} instead of + or *"
                .into(),
        );
    }
    let regex = meta::Builder::new()
        .configure(meta_config(has_group(&hir, VALUE_GROUP)))
        .syntax(syntax_config())
        .build_from_hir(&hir)
        .map_err(|e| format!("regex does not compile within the size limits: {e}"))?;
    let value = ValueGroup::compile(&hir)?.map(Arc::new);
    Ok(CompiledRegex {
        regex,
        hir: Arc::new(hir),
        value,
    })
}

/// Size limit of the keyword-free set's DFA (the default pack's is about 4.5 MiB).
const SET_DFA_LIMIT: usize = 16 << 20;
/// Memory limit while building it.
const SET_DETERMINIZE_LIMIT: usize = 64 << 20;

/// One DFA over several detectors' regexes that reports every pattern at every match end
/// (unanchored, overlapping). Fails when it would exceed the size limits.
pub(crate) fn compile_set_dfa(hirs: &[&Hir]) -> Result<dense::DFA<Vec<u32>>, String> {
    let nfa = thompson::Compiler::new()
        .configure(
            thompson::Config::new()
                .utf8(false)
                .nfa_size_limit(Some(NFA_SIZE_LIMIT))
                .which_captures(thompson::WhichCaptures::None),
        )
        .build_many_from_hir(hirs)
        .map_err(|e| format!("the keyword-free detectors do not compile together: {e}"))?;
    dense::Builder::new()
        .configure(
            dense::Config::new()
                .match_kind(MatchKind::All)
                .start_kind(StartKind::Unanchored)
                .accelerate(false)
                .dfa_size_limit(Some(SET_DFA_LIMIT))
                .determinize_size_limit(Some(SET_DETERMINIZE_LIMIT)),
        )
        .build_from_nfa(&nfa)
        .map_err(|e| format!("the keyword-free detectors' DFA is too big: {e}"))
}

fn has_group(hir: &Hir, name: &str) -> bool {
    match hir.kind() {
        HirKind::Capture(c) => c.name.as_deref() == Some(name) || has_group(&c.sub, name),
        HirKind::Repetition(r) => has_group(&r.sub, name),
        HirKind::Concat(hs) | HirKind::Alternation(hs) => hs.iter().any(|h| has_group(h, name)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regexes_must_be_non_empty_bounded_and_valid() {
        assert!(compile_regex(r"\d{3}").is_ok());
        let e = compile_regex(r"\d*").err().unwrap();
        assert!(e.contains("empty"), "{e}");
        let e = compile_regex(r"\d+").err().unwrap();
        assert!(e.contains("unbounded"), "{e}");
        let e = compile_regex(r"(\d{3}").err().unwrap();
        assert!(e.starts_with("bad regex"), "{e}");
        assert!(!e.contains('\n'), "{e}");
        let e = compile_regex(r"(?:\w{1,1000}){1,1000}").err().unwrap();
        assert!(e.contains("size limit"), "{e}");
    }

    #[test]
    fn value_groups_are_found() {
        let group = |re| compile_regex(re).unwrap().value.map(|v| v.group);
        assert_eq!(group(r"(?i)ab"), None);
        assert_eq!(group(r"(k)=(?P<value>\d{2})"), Some(2));
    }
}
