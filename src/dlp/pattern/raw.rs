//! The raw form of a detector file (serde, unknown fields rejected) and its validation into a
//! [`Detector`].
//!
//! Takes one `[[detector]]` table with the spans toml kept; gives the detector, or reports
//! every problem of the table through a callback as `(span, reason)`.

use std::sync::Arc;

use serde::Deserialize;
use toml::Spanned;

use super::super::detector::{
    Detector, Example, MAX_CONTEXT_WINDOW, MAX_MATCH_LEN, NegativeExample, compile_regex,
};
use super::super::validate::Validator;
use super::{MAX_WORD_LEN, line_of};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFile {
    #[serde(default)]
    pub detector: Vec<Spanned<RawDetector>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDetector {
    id: Spanned<String>,
    entity: Spanned<String>,
    #[serde(default)]
    description: Option<String>,
    regex: Spanned<String>,
    #[serde(default)]
    keywords: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    validator: Option<Spanned<String>>,
    #[serde(default)]
    context: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    context_window: Option<Spanned<usize>>,
    max_len: Spanned<usize>,
    #[serde(default)]
    allow: Vec<String>,
    #[serde(default)]
    priority: i32,
    #[serde(default)]
    examples: Vec<Spanned<RawExample>>,
    #[serde(default)]
    negative_examples: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExample {
    text: String,
    #[serde(rename = "match")]
    expect: String,
}

/// Validates one table; reports each problem through `err` and gives the detector if none.
pub(super) fn build(
    raw: RawDetector,
    file: &Arc<str>,
    line: usize,
    text: &str,
    err: &mut impl FnMut(std::ops::Range<usize>, String),
) -> Option<Detector> {
    let mut ok = true;
    let mut fail = |span: std::ops::Range<usize>, reason: String| {
        ok = false;
        err(span, reason)
    };
    let id_ok = |s: &str, upper: bool| {
        !s.is_empty()
            && s.bytes().all(|b| {
                b == b'_'
                    || b.is_ascii_digit()
                    || if upper {
                        b.is_ascii_uppercase()
                    } else {
                        b.is_ascii_lowercase()
                    }
            })
    };
    if !id_ok(raw.id.get_ref(), false) {
        fail(
            raw.id.span(),
            "`id` must be lowercase letters, digits and `_`".into(),
        );
    }
    if !id_ok(raw.entity.get_ref(), true) {
        fail(
            raw.entity.span(),
            "`entity` must be uppercase letters, digits and `_`".into(),
        );
    }
    let compiled = match compile_regex(raw.regex.get_ref()) {
        Ok(c) => Some(c),
        Err(e) => {
            fail(raw.regex.span(), e);
            None
        }
    };
    let max_len = *raw.max_len.get_ref();
    if !(1..=MAX_MATCH_LEN).contains(&max_len) {
        fail(
            raw.max_len.span(),
            format!("`max_len` must be 1 to {MAX_MATCH_LEN}"),
        );
    }
    let validator = raw
        .validator
        .as_ref()
        .and_then(|v| match v.get_ref().parse::<Validator>() {
            Ok(v) => Some(v),
            Err(e) => {
                fail(v.span(), e);
                None
            }
        });
    let mut words = |list: &Option<Spanned<Vec<String>>>, what: &str| -> Vec<String> {
        let Some(list) = list else {
            return Vec::new();
        };
        for w in list.get_ref() {
            if w.is_empty() || w.len() > MAX_WORD_LEN {
                fail(
                    list.span(),
                    format!("{what} must be 1 to {MAX_WORD_LEN} bytes"),
                );
            }
        }
        list.get_ref()
            .iter()
            .map(|w| w.to_ascii_lowercase())
            .collect()
    };
    let keywords = words(&raw.keywords, "keywords");
    let context = words(&raw.context, "context words");
    let context_window = match &raw.context_window {
        Some(w) if *w.get_ref() > MAX_CONTEXT_WINDOW => {
            fail(
                w.span(),
                format!("`context_window` must be at most {MAX_CONTEXT_WINDOW}"),
            );
            0
        }
        Some(w) => *w.get_ref(),
        None if !context.is_empty() => {
            let span = raw.context.as_ref().map_or(raw.id.span(), Spanned::span);
            fail(span, "`context` needs a `context_window` (bytes)".into());
            0
        }
        None => 0,
    };
    if raw.examples.is_empty() {
        let span = raw.id.span();
        fail(
            span,
            format!("detector `{}` has no `examples`", raw.id.get_ref()),
        );
    }
    let examples = raw
        .examples
        .iter()
        .map(|e| Example {
            text: e.get_ref().text.clone(),
            expect: e.get_ref().expect.clone(),
            line: line_of(text, e.span().start),
        })
        .collect();
    let negative_examples = raw
        .negative_examples
        .iter()
        .map(|e| NegativeExample {
            text: e.get_ref().clone(),
            line: line_of(text, e.span().start),
        })
        .collect();
    let compiled = compiled?;
    if !ok {
        return None;
    }
    Some(Detector {
        id: raw.id.into_inner().into(),
        entity: raw.entity.into_inner().into(),
        description: raw.description,
        pattern: raw.regex.into_inner(),
        regex: compiled.regex,
        value: compiled.value,
        keywords,
        validator,
        context,
        context_window,
        max_len,
        allow: raw.allow.into_iter().map(String::into_bytes).collect(),
        priority: raw.priority,
        examples,
        negative_examples,
        source: file.clone(),
        line,
        hir: compiled.hir,
    })
}
