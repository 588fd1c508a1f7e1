//! Detector packs: the `dlp-patterns/*.toml` files operators edit, loaded into a [`Pack`].
//!
//! Takes a directory of TOML files (or in-memory sources); gives the compiled detectors in file
//! name order, then file order. Fails with every problem found, each as `file:line: reason`:
//! TOML syntax, unknown or missing fields, bad regexes, validators, limits, duplicate ids, and
//! `examples` / `negative_examples` that do not behave as stated (each example is run through
//! the engine with that detector alone).

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use parking_lot::Mutex;
use regex_automata::dfa::dense;
use sha2::{Digest, Sha256};

use super::detector::{Detector, compile_set_dfa};

/// The pack shipped in the binary: every file of `dlp-patterns/` at build time.
const BUILTIN: &[(&str, &str)] = &[
    (
        "financial.toml",
        include_str!("../../dlp-patterns/financial.toml"),
    ),
    (
        "network.toml",
        include_str!("../../dlp-patterns/network.toml"),
    ),
    ("pii.toml", include_str!("../../dlp-patterns/pii.toml")),
    (
        "secrets.toml",
        include_str!("../../dlp-patterns/secrets.toml"),
    ),
];

/// Longest keyword or context word.
pub const MAX_WORD_LEN: usize = 64;

/// One problem in a pattern file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternError {
    pub file: String,
    /// 1-based; 0 when the problem is with the file as a whole.
    pub line: usize,
    pub reason: String,
}

impl fmt::Display for PatternError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file, self.reason)
        } else {
            write!(f, "{}:{}: {}", self.file, self.line, self.reason)
        }
    }
}

/// Every problem found while loading a pack, one per line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternErrors(pub Vec<PatternError>);

impl fmt::Display for PatternErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for PatternErrors {}

/// Keyword-free set DFAs built for this pack, by detector ids (`None`: over the size limit).
type SetCache = HashMap<Vec<String>, Option<Arc<dense::DFA<Vec<u32>>>>>;

/// A set of detectors loaded together, with a version naming its exact contents.
#[derive(Debug, Clone)]
pub struct Pack {
    pub detectors: Vec<Detector>,
    version: String,
    /// Shared by clones: engines for the same detectors reuse one DFA (it takes ~0.5 s to build).
    sets: Arc<Mutex<SetCache>>,
}

impl Pack {
    /// The pack compiled into the binary (`dlp-patterns/` of this source tree).
    pub fn builtin() -> Pack {
        static PACK: std::sync::OnceLock<Pack> = std::sync::OnceLock::new();
        PACK.get_or_init(|| {
            let sources = BUILTIN.iter().map(|(n, t)| (n.to_string(), t.to_string()));
            Pack::from_sources(sources).expect("the built-in detector pack is tested")
        })
        .clone()
    }

    /// Loads every `*.toml` file of `dir`, in file name order.
    pub fn load_dir(dir: &Path) -> Result<Pack, PatternErrors> {
        let fail = |reason: String| {
            PatternErrors(vec![PatternError {
                file: dir.display().to_string(),
                line: 0,
                reason,
            }])
        };
        let entries = std::fs::read_dir(dir).map_err(|e| fail(format!("cannot read: {e}")))?;
        let mut paths = Vec::new();
        for entry in entries {
            let path = entry.map_err(|e| fail(format!("cannot read: {e}")))?.path();
            if path.extension().is_some_and(|x| x == "toml") {
                paths.push(path);
            }
        }
        paths.sort();
        if paths.is_empty() {
            return Err(fail("no *.toml detector files".into()));
        }
        let mut sources = Vec::new();
        let mut errors = Vec::new();
        for path in paths {
            match std::fs::read_to_string(&path) {
                Ok(text) => sources.push((path.display().to_string(), text)),
                Err(e) => errors.push(PatternError {
                    file: path.display().to_string(),
                    line: 0,
                    reason: format!("cannot read: {e}"),
                }),
            }
        }
        match Pack::from_sources(sources) {
            Ok(pack) if errors.is_empty() => Ok(pack),
            Ok(_) => Err(PatternErrors(errors)),
            Err(PatternErrors(more)) => {
                errors.extend(more);
                Err(PatternErrors(errors))
            }
        }
    }

    /// Loads `(file name, TOML text)` pairs, in the order given.
    pub fn from_sources(
        sources: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Pack, PatternErrors> {
        let mut errors = Vec::new();
        let mut detectors: Vec<Detector> = Vec::new();
        let mut digest = Sha256::new();
        for (file, text) in sources {
            digest.update(file.rsplit(['/', '\\']).next().unwrap_or(&file).as_bytes());
            digest.update([0]);
            digest.update(text.as_bytes());
            digest.update([0]);
            let file: Arc<str> = file.into();
            let raw: raw::RawFile = match toml::from_str(&text) {
                Ok(raw) => raw,
                Err(e) => {
                    let line = e.span().map_or(0, |s| line_of(&text, s.start));
                    errors.push(PatternError {
                        file: file.to_string(),
                        line,
                        reason: e.message().trim().to_string(),
                    });
                    continue;
                }
            };
            if raw.detector.is_empty() {
                errors.push(PatternError {
                    file: file.to_string(),
                    line: 0,
                    reason: "no [[detector]] tables".into(),
                });
            }
            for table in raw.detector {
                let line = line_of(&text, table.span().start);
                let mut err = |span: std::ops::Range<usize>, reason: String| {
                    errors.push(PatternError {
                        file: file.to_string(),
                        line: line_of(&text, span.start),
                        reason,
                    })
                };
                if let Some(d) = raw::build(table.into_inner(), &file, line, &text, &mut err) {
                    if let Some(first) = detectors.iter().find(|x| x.id == d.id) {
                        let reason = format!(
                            "duplicate detector id `{}` (first in {}:{})",
                            d.id, first.source, first.line
                        );
                        errors.push(PatternError {
                            file: file.to_string(),
                            line,
                            reason,
                        });
                    } else {
                        detectors.push(d);
                    }
                }
            }
        }
        if errors.is_empty() {
            for d in &detectors {
                errors.extend(super::engine::check_examples(d));
            }
        }
        if errors.is_empty() {
            let hash = digest.finalize();
            let version = hash[..8].iter().map(|b| format!("{b:02x}")).collect();
            Ok(Pack {
                detectors,
                version,
                sets: Arc::default(),
            })
        } else {
            Err(PatternErrors(errors))
        }
    }

    /// Hex digest of the files' names and contents: names the exact pack a verdict came from.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The keyword-free set DFA over the detectors with these ids, built once per pack.
    pub(crate) fn set_dfa(&self, ids: &[&str]) -> Option<Arc<dense::DFA<Vec<u32>>>> {
        let key: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
        let mut sets = self.sets.lock();
        sets.entry(key)
            .or_insert_with(|| {
                let hirs: Vec<&regex_syntax::hir::Hir> = ids
                    .iter()
                    .filter_map(|id| self.detectors.iter().find(|d| &*d.id == *id))
                    .map(|d| &*d.hir)
                    .collect();
                match compile_set_dfa(&hirs) {
                    Ok(dfa) => Some(Arc::new(dfa)),
                    Err(e) => {
                        tracing::warn!(reason = %e, "DLP keyword-free detectors run one by one");
                        None
                    }
                }
            })
            .clone()
    }

    /// The entities the pack detects, sorted, without duplicates.
    pub fn entities(&self) -> Vec<Arc<str>> {
        let mut v: Vec<Arc<str>> = self.detectors.iter().map(|d| d.entity.clone()).collect();
        v.sort();
        v.dedup();
        v
    }
}

/// 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

mod raw;

#[cfg(test)]
mod tests;
