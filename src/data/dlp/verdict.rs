//! What a scan of a whole object found, kept as object metadata and read back before serving.
//!
//! Takes a scan's [`Summary`]; gives the metadata value
//! `v2;<pack version>;<profile fingerprint>;<format|unscannable>;<finding>,...` with each
//! finding `<detector or rule label>:<ENTITY>:<action>=<count>` (labels percent-encoded), and
//! parses it back only when pack version and fingerprint match the profile in force, so a
//! changed pack or profile never reuses an old verdict. From it: the findings for the audit
//! event, whether the profile blocks, and whether the transformed content keeps its length.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

use super::FindingCount;
use crate::dlp::{Action, Summary};

/// Object metadata name of the verdict (reserved: partners cannot set `gatehouse-*`).
pub const VERDICT_META: &str = "gatehouse-dlp";
/// Longest verdict value recorded; a longer one is not recorded (reads then pre-scan).
const MAX_VALUE: usize = 400;
/// Characters kept as they are in labels: the rest is percent-encoded.
const LABEL: &AsciiSet = &NON_ALPHANUMERIC.remove(b'_').remove(b'-').remove(b'.');

/// Findings of a whole object under one profile.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Verdict {
    /// The content was not scanned (binary, compressed, not text).
    pub unscannable: bool,
    /// The format it was scanned as (`text`, `csv`, `tsv`, `json`, `ndjson`).
    pub format: String,
    pub findings: Vec<FindingCount>,
}

impl Verdict {
    pub fn from_summary(summary: &Summary) -> Verdict {
        Verdict {
            unscannable: summary.unscannable.is_some(),
            format: summary.format.map_or("text", |f| f.name()).to_owned(),
            findings: summary
                .counts
                .iter()
                .filter(|c| c.3 > 0)
                .map(|(entity, detector, action, count)| FindingCount {
                    entity: entity.to_string(),
                    detector: detector.to_string(),
                    action: action.name(),
                    count: *count,
                })
                .collect(),
        }
    }

    /// The metadata value, or `None` when it would be too long to keep.
    pub fn encode(&self, pack: &str, fingerprint: &str) -> Option<String> {
        let status = if self.unscannable {
            "unscannable"
        } else {
            &self.format
        };
        let findings: Vec<String> = self
            .findings
            .iter()
            .map(|f| {
                let label = utf8_percent_encode(&f.detector, LABEL);
                format!("{label}:{}:{}={}", f.entity, f.action, f.count)
            })
            .collect();
        let value = format!("v2;{pack};{fingerprint};{status};{}", findings.join(","));
        (value.len() <= MAX_VALUE).then_some(value)
    }

    /// The verdict in `value` when it was made with this pack and profile.
    pub fn decode(value: &str, pack: &str, fingerprint: &str) -> Option<Verdict> {
        let mut parts = value.split(';');
        let (v, p, f, status, list) = (
            parts.next()?,
            parts.next()?,
            parts.next()?,
            parts.next()?,
            parts.next()?,
        );
        if parts.next().is_some() || v != "v2" || p != pack || f != fingerprint {
            return None;
        }
        let (unscannable, format) = match status {
            "unscannable" => (true, "text"),
            "text" | "csv" | "tsv" | "json" | "ndjson" => (false, status),
            _ => return None,
        };
        let mut findings = Vec::new();
        for item in list.split(',').filter(|c| !c.is_empty()) {
            let (what, count) = item.rsplit_once('=')?;
            let mut fields = what.split(':');
            let (label, entity, action) = (fields.next()?, fields.next()?, fields.next()?);
            if fields.next().is_some() {
                return None;
            }
            findings.push(FindingCount {
                entity: entity.to_owned(),
                detector: percent_decode_str(label).decode_utf8().ok()?.into_owned(),
                action: action_name(action)?,
                count: count.parse().ok()?,
            });
        }
        Some(Verdict {
            unscannable,
            format: format.to_owned(),
            findings,
        })
    }

    /// Whether any finding's action is `block`.
    pub fn blocks(&self) -> bool {
        self.findings.iter().any(|f| f.action == "block")
    }

    /// Whether the transformed content has the stored content's length: unscannable content
    /// passes unchanged, and otherwise every action found must keep lengths in this format
    /// ([`Action::keeps_length`]).
    pub fn keeps_length(&self) -> bool {
        let json = matches!(self.format.as_str(), "json" | "ndjson");
        self.unscannable
            || self
                .findings
                .iter()
                .all(|f| Action::from_name(f.action).is_some_and(|a: Action| a.keeps_length(json)))
    }
}

/// The static name of an action named in a verdict.
fn action_name(name: &str) -> Option<&'static str> {
    Action::from_name(name).map(|a| a.name())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(detector: &str, entity: &str, action: &'static str, count: u64) -> FindingCount {
        FindingCount {
            entity: entity.into(),
            detector: detector.into(),
            action,
            count,
        }
    }

    #[test]
    fn verdicts_round_trip_only_for_the_same_pack_and_profile() {
        let v = Verdict {
            unscannable: false,
            format: "csv".into(),
            findings: vec![
                finding("credit_card", "CREDIT_CARD", "mask", 3),
                finding("column:e-mail, home;x", "FIELD", "redact", 12),
            ],
        };
        let value = v.encode("abcd", "f00d").unwrap();
        assert_eq!(
            value,
            "v2;abcd;f00d;csv;credit_card:CREDIT_CARD:mask=3,column%3Ae-mail%2C%20home%3Bx:FIELD:redact=12"
        );
        assert_eq!(Verdict::decode(&value, "abcd", "f00d"), Some(v));
        assert_eq!(Verdict::decode(&value, "abce", "f00d"), None);
        assert_eq!(Verdict::decode(&value, "abcd", "f00e"), None);
        let u = Verdict {
            unscannable: true,
            format: "text".into(),
            findings: vec![],
        };
        let value = u.encode("abcd", "f00d").unwrap();
        assert_eq!(Verdict::decode(&value, "abcd", "f00d"), Some(u));
        for bad in [
            "v1;abcd;f00d;text;",
            "v2;abcd;f00d;maybe;",
            "v2;abcd;f00d;text;email:EMAIL:mask=x",
            "v2;abcd;f00d;text;email:EMAIL:shred=1",
            "v2;abcd;f00d;text;email=1",
            "v2;abcd;f00d;text;;",
            "",
        ] {
            assert_eq!(Verdict::decode(bad, "abcd", "f00d"), None, "{bad}");
        }
        let long = Verdict {
            findings: (0..40)
                .map(|i| finding(&format!("detector_{i}"), "ENTITY", "mask", 1_000_000))
                .collect(),
            ..Verdict::default()
        };
        assert_eq!(long.encode("abcd", "f00d"), None);
    }

    #[test]
    fn block_and_length_follow_the_actions_found_and_the_format() {
        let v = |format: &str, actions: &[&'static str]| Verdict {
            unscannable: false,
            format: format.into(),
            findings: actions.iter().map(|a| finding("d", "E", a, 1)).collect(),
        };
        assert!(!v("text", &["mask", "redact"]).blocks());
        assert!(v("text", &["mask", "block"]).blocks());
        assert!(v("text", &["mask", "allow"]).keeps_length());
        assert!(v("text", &[]).keeps_length());
        assert!(!v("text", &["mask", "tokenize"]).keeps_length());
        assert!(!v("json", &["mask"]).keeps_length());
        assert!(v("json", &["allow"]).keeps_length());
    }
}
