//! The hash chain and the segment files it runs through.
//!
//! Takes a serialised record (one JSON object whose last member is an object: the OCSF
//! `unmapped` extension, see [`super::ocsf`]) and the chain's head; gives the exact line
//! written: the record with a `chain` object spliced in as the last member of that object,
//! `{"seq":N,"prev":"<hex SHA-256 of the previous line>"}`, plus `"prev_file"` on the first
//! record of a file. A line's hash is SHA-256 over its bytes without the newline, so a verifier
//! needs no canonical form: it hashes what it reads. Also names and orders the segment files
//! (`audit-YYYY-MM-DD.jsonl`, then `audit-YYYY-MM-DD.N.jsonl` for later segments that day).

use sha2::{Digest, Sha256};

/// `prev` of the very first record of a trail.
pub const GENESIS: [u8; 32] = [0; 32];

/// SHA-256 of one line, without its newline.
pub fn line_hash(line: &[u8]) -> [u8; 32] {
    Sha256::digest(line).into()
}

pub fn hex(bytes: &[u8; 32]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

pub fn parse_hex(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 || !s.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// The last record written: its sequence number (0 before the first), its line hash and the
/// file that holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub seq: u64,
    pub hash: [u8; 32],
    pub file: Option<String>,
}

impl Head {
    pub fn genesis() -> Head {
        Head {
            seq: 0,
            hash: GENESIS,
            file: None,
        }
    }

    /// Chains `record` as the next line of `file` and advances the head. The record must be
    /// a JSON object ending in an object member, as [`super::ocsf::encode`] gives.
    pub fn append(&mut self, record: &[u8], file: &str) -> Vec<u8> {
        let line = self.link(record, file);
        self.advance(&line, file);
        line
    }

    /// The line `record` becomes as the next record of `file`, without advancing.
    pub fn link(&self, record: &[u8], file: &str) -> Vec<u8> {
        debug_assert!(record.starts_with(b"{") && record.ends_with(b"}}"));
        let open = &record[..record.len() - 2];
        let mut line = Vec::with_capacity(record.len() + 160);
        line.extend_from_slice(open);
        if !open.ends_with(b"{") {
            line.push(b',');
        }
        line.extend_from_slice(b"\"chain\":{\"seq\":");
        line.extend_from_slice((self.seq + 1).to_string().as_bytes());
        line.extend_from_slice(b",\"prev\":\"");
        line.extend_from_slice(hex(&self.hash).as_bytes());
        line.push(b'"');
        if self.file.as_deref() != Some(file)
            && let Some(prev) = &self.file
        {
            line.extend_from_slice(b",\"prev_file\":");
            line.extend_from_slice(serde_json::to_string(prev).unwrap_or_default().as_bytes());
        }
        line.extend_from_slice(b"}}}");
        line
    }

    pub fn advance(&mut self, line: &[u8], file: &str) {
        self.seq += 1;
        self.hash = line_hash(line);
        self.file = Some(file.to_string());
    }
}

/// The chain fields of a parsed line.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct Link {
    pub seq: u64,
    pub prev: String,
    #[serde(default)]
    pub prev_file: Option<String>,
}

/// The `chain` object of a line (in `unmapped`, or at the top of a line written before the
/// trail was OCSF), if it has a well-formed one.
pub fn link_of(value: &serde_json::Value) -> Option<Link> {
    let chain = super::ocsf::extension(value).get("chain")?;
    serde_json::from_value(chain.clone()).ok()
}

/// The ordering key of a segment file name: `(day, n)`; `None` for other names.
pub fn segment_key(name: &str) -> Option<(String, u32)> {
    let rest = name.strip_prefix("audit-")?.strip_suffix(".jsonl")?;
    let (day, n) = match rest.split_once('.') {
        Some((day, n)) => (day, n.parse::<u32>().ok().filter(|n| *n > 0)?),
        None => (rest, 0),
    };
    let valid = day.len() == 10
        && day.bytes().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                b == b'-'
            } else {
                b.is_ascii_digit()
            }
        });
    valid.then(|| (day.to_string(), n))
}

/// The file name of segment `n` of `day` (`YYYY-MM-DD`).
pub fn segment_name(day: &str, n: u32) -> String {
    if n == 0 {
        format!("audit-{day}.jsonl")
    } else {
        format!("audit-{day}.{n}.jsonl")
    }
}

/// The segment files in `dir`, oldest first.
pub fn segments(dir: &std::path::Path) -> std::io::Result<Vec<String>> {
    let mut names: Vec<(String, u32, String)> = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if let Some((day, n)) = segment_key(&name) {
            names.push((day, n, name));
        }
    }
    names.sort();
    Ok(names.into_iter().map(|(_, _, name)| name).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_records_in_order_and_names_the_previous_file() {
        let mut head = Head::genesis();
        let a = head.append(
            br#"{"class_uid":6003,"unmapped":{"kind":"request"}}"#,
            "audit-2026-01-01.jsonl",
        );
        assert_eq!(
            String::from_utf8(a.clone()).unwrap(),
            format!(
                r#"{{"class_uid":6003,"unmapped":{{"kind":"request","chain":{{"seq":1,"prev":"{}"}}}}}}"#,
                "0".repeat(64)
            )
        );
        let b = head.append(
            br#"{"class_uid":3002,"unmapped":{"kind":"token"}}"#,
            "audit-2026-01-02.jsonl",
        );
        let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
        let link = link_of(&v).unwrap();
        assert_eq!(link.seq, 2);
        assert_eq!(parse_hex(&link.prev), Some(line_hash(&a)));
        assert_eq!(link.prev_file.as_deref(), Some("audit-2026-01-01.jsonl"));
        let c = head.append(
            br#"{"class_uid":0,"unmapped":{}}"#,
            "audit-2026-01-02.jsonl",
        );
        assert!(
            c.starts_with(br#"{"class_uid":0,"unmapped":{"chain":{"seq":3,"#),
            "{c:?}"
        );
        assert!(
            link_of(&serde_json::from_slice(&c).unwrap())
                .unwrap()
                .prev_file
                .is_none()
        );
        // A line written before the trail was OCSF keeps its chain at the top.
        let old: serde_json::Value =
            serde_json::from_str(r#"{"kind":"request","chain":{"seq":4,"prev":"00"}}"#).unwrap();
        assert_eq!(link_of(&old).unwrap().seq, 4);
    }

    #[test]
    fn segment_names_sort_by_day_then_number() {
        assert_eq!(
            segment_key("audit-2026-01-02.jsonl"),
            Some(("2026-01-02".into(), 0))
        );
        assert_eq!(
            segment_key("audit-2026-01-02.11.jsonl"),
            Some(("2026-01-02".into(), 11))
        );
        for bad in [
            "audit-2026-01-02.0.jsonl",
            "audit-x.jsonl",
            "audit-2026-01-02.jsonl.tmp",
        ] {
            assert_eq!(segment_key(bad), None, "{bad}");
        }
        let dir = tempfile::tempdir().unwrap();
        for n in [
            "audit-2026-01-02.10.jsonl",
            "audit-2026-01-02.2.jsonl",
            "audit-2026-01-01.jsonl",
            "audit-2026-01-02.jsonl",
            "other.txt",
        ] {
            std::fs::write(dir.path().join(n), b"").unwrap();
        }
        assert_eq!(
            segments(dir.path()).unwrap(),
            [
                "audit-2026-01-01.jsonl",
                "audit-2026-01-02.jsonl",
                "audit-2026-01-02.2.jsonl",
                "audit-2026-01-02.10.jsonl"
            ]
        );
    }

    #[test]
    fn hex_round_trips() {
        let h = line_hash(b"x");
        assert_eq!(parse_hex(&hex(&h)), Some(h));
        assert_eq!(parse_hex("zz"), None);
    }
}
