//! A compiled detector: one entity's regex with its keywords, validator, context and limits.
//!
//! Takes the validated fields of one `[[detector]]` table; gives a [`Detector`] whose regex is
//! byte-oriented (ASCII classes, `\d` is `[0-9]`, `^`/`$` match at line ends), bounded in length
//! and compiled with size limits into regex-automata's linear-time engines. `compile_regex`
//! fails with a one-line reason (syntax, can match empty, unbounded, too big).

use std::sync::Arc;

use regex_automata::dfa::{StartKind, dense};
use regex_automata::meta;
use regex_automata::nfa::thompson;
use regex_automata::util::captures::Captures;
use regex_automata::util::syntax;
use regex_automata::{MatchKind, PatternID};
use regex_syntax::hir::{Hir, HirKind};

use super::validate::Validator;

/// The longest `max_len` a detector may declare; bounds the stream carry-over.
pub const MAX_MATCH_LEN: usize = 64 * 1024;
/// The widest `context_window` a detector may declare.
pub const MAX_CONTEXT_WINDOW: usize = 4096;
/// Compiled NFA size limit per regex (the `regex` crate's default is 10 MiB).
const NFA_SIZE_LIMIT: usize = 4 << 20;
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
    /// Index of the regex's `value` group (the finding is that group, not the whole match).
    pub(crate) value_group: Option<usize>,
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

    pub(crate) fn create_captures(&self) -> Option<Captures> {
        self.value_group.map(|_| self.regex.create_captures())
    }
}

/// A regex compiled for detection, with what the engine needs to know about it.
pub(crate) struct CompiledRegex {
    pub regex: meta::Regex,
    pub hir: Arc<Hir>,
    pub value_group: Option<usize>,
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
    let value_group = regex.group_info().to_index(PatternID::ZERO, VALUE_GROUP);
    Ok(CompiledRegex {
        regex,
        hir: Arc::new(hir),
        value_group,
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
        assert_eq!(compile_regex(r"(?i)ab").unwrap().value_group, None);
        assert_eq!(
            compile_regex(r"(k)=(?P<value>\d{2})").unwrap().value_group,
            Some(2)
        );
    }
}
