//! JSON field paths for structural rules: `customer.ssn`, `$.items[*].card`, `a["odd key"][0]`.
//!
//! Takes the path text of a rule; gives a [`FieldPath`] that matches a value's position (the
//! keys and array indexes from the document root) when the path is a prefix of it, so a path to
//! an object or array covers everything below it. Syntax: an optional `$`, then segments
//! `.name` (the first may omit the dot), `.*` (any key), `["name"]` or `['name']`, `[N]`
//! (array index) and `[*]` (any index). Key names match exactly (case-sensitive, as JSON keys
//! are; escapes in keys are compared as written). Parsing fails with [`FieldPathError`].

use std::fmt;

/// One segment of a path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Key(Vec<u8>),
    AnyKey,
    Index(u64),
    AnyIndex,
}

/// One step of a value's position in a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step<'a> {
    /// An object member; `None` when its key is too long to be compared.
    Key(Option<&'a [u8]>),
    Index(u64),
}

/// A parsed JSON field path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldPath {
    segments: Vec<Segment>,
}

/// Why a path does not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldPathError {
    pub path: String,
    pub reason: &'static str,
}

impl fmt::Display for FieldPathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bad field path `{}`: {}", self.path, self.reason)
    }
}

impl std::error::Error for FieldPathError {}

/// Longest key a path may name (longer document keys never match a named segment).
pub const MAX_KEY: usize = 256;

impl FieldPath {
    pub fn parse(text: &str) -> Result<FieldPath, FieldPathError> {
        let err = |reason| FieldPathError {
            path: text.to_string(),
            reason,
        };
        let s = text.trim();
        let mut rest = s.strip_prefix('$').unwrap_or(s).as_bytes();
        let mut segments = Vec::new();
        let mut first = true;
        while !rest.is_empty() {
            match rest[0] {
                b'.' => {
                    let (seg, r) = name(&rest[1..]).ok_or_else(|| err("empty key after `.`"))?;
                    segments.push(seg);
                    rest = r;
                }
                b'[' => {
                    let close = rest
                        .iter()
                        .position(|&b| b == b']')
                        .ok_or_else(|| err("`[` without `]`"))?;
                    let inner = &rest[1..close];
                    let seg = match inner {
                        b"*" => Segment::AnyIndex,
                        [q @ (b'"' | b'\''), key @ .., end] if end == q => {
                            if key.is_empty() || key.contains(q) {
                                return Err(err("bad quoted key"));
                            }
                            Segment::Key(key.to_vec())
                        }
                        _ => {
                            let n = std::str::from_utf8(inner)
                                .ok()
                                .and_then(|t| t.parse::<u64>().ok())
                                .ok_or_else(|| {
                                    err("`[...]` holds `*`, a number or a quoted key")
                                })?;
                            Segment::Index(n)
                        }
                    };
                    segments.push(seg);
                    rest = &rest[close + 1..];
                }
                _ if first && s.as_bytes().first() != Some(&b'$') => {
                    let (seg, r) = name(rest).ok_or_else(|| err("empty key"))?;
                    segments.push(seg);
                    rest = r;
                }
                _ => return Err(err("expected `.` or `[`")),
            }
            first = false;
        }
        if segments
            .iter()
            .any(|s| matches!(s, Segment::Key(k) if k.len() > MAX_KEY))
        {
            return Err(err("key longer than 256 bytes"));
        }
        Ok(FieldPath { segments })
    }

    /// Whether a value at `position` (root first) is this path or below it.
    pub fn covers(&self, position: &[Step<'_>]) -> bool {
        self.segments.len() <= position.len()
            && self
                .segments
                .iter()
                .zip(position)
                .all(|(seg, step)| match (seg, step) {
                    (Segment::AnyKey, Step::Key(_)) | (Segment::AnyIndex, Step::Index(_)) => true,
                    (Segment::Key(k), Step::Key(Some(key))) => k == key,
                    (Segment::Index(n), Step::Index(i)) => n == i,
                    _ => false,
                })
    }
}

/// A key name up to the next `.` or `[`.
fn name(s: &[u8]) -> Option<(Segment, &[u8])> {
    let end = s
        .iter()
        .position(|&b| b == b'.' || b == b'[')
        .unwrap_or(s.len());
    let (key, rest) = s.split_at(end);
    match key {
        [] => None,
        b"*" => Some((Segment::AnyKey, rest)),
        _ => Some((Segment::Key(key.to_vec()), rest)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(s: &str) -> Step<'_> {
        Step::Key(Some(s.as_bytes()))
    }

    #[test]
    fn paths_parse_and_cover_their_subtrees() {
        let p = FieldPath::parse("customer.ssn").unwrap();
        assert_eq!(p, FieldPath::parse("$.customer.ssn").unwrap());
        assert_eq!(p, FieldPath::parse("$['customer'][\"ssn\"]").unwrap());
        assert!(p.covers(&[k("customer"), k("ssn")]));
        assert!(p.covers(&[k("customer"), k("ssn"), Step::Index(2)]));
        assert!(!p.covers(&[k("customer")]));
        assert!(!p.covers(&[k("customer"), k("SSN")]));
        assert!(!p.covers(&[k("customer"), Step::Key(None)]));
        let items = FieldPath::parse("$.items[*].card").unwrap();
        assert!(items.covers(&[k("items"), Step::Index(7), k("card")]));
        assert!(!items.covers(&[k("items"), k("x"), k("card")]));
        let first = FieldPath::parse("items[0]").unwrap();
        assert!(first.covers(&[k("items"), Step::Index(0), k("card")]));
        assert!(!first.covers(&[k("items"), Step::Index(1)]));
        let any = FieldPath::parse("*.secret").unwrap();
        assert!(any.covers(&[k("a"), k("secret")]));
        assert!(FieldPath::parse("$").unwrap().covers(&[]));
        assert!(FieldPath::parse("[*]").unwrap().covers(&[Step::Index(3)]));
    }

    #[test]
    fn bad_paths_say_why() {
        for bad in ["a..b", "a[", "a[x]", "a.", "$x", "a['']", "a[\"b]"] {
            let e = FieldPath::parse(bad).unwrap_err();
            assert_eq!(e.path, bad);
            assert!(e.to_string().starts_with("bad field path"), "{e}");
        }
    }
}
