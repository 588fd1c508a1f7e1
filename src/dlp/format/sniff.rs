//! Sniffing: the first bytes of a body decide whether it is scannable, and its format when
//! nothing declared one.
//!
//! Takes the first [`SNIFF_LEN`] bytes (or the whole body when shorter); gives [`Sniffed`].
//! Compressed and archive magic, any NUL byte, or more than 10% invalid UTF-8 make a body
//! unscannable. Otherwise the format is JSON when the first non-blank byte opens an object or
//! array (NDJSON when several lines each start with `{`), CSV/TSV when the complete lines
//! agree on at least one delimiter per line, else text. Never fails.

use super::{Format, Unscannable};

/// Bytes looked at before deciding.
pub const SNIFF_LEN: usize = 8192;

/// What the first bytes say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sniffed {
    /// Fewer than [`SNIFF_LEN`] bytes and the body has not ended.
    NeedMore,
    Unscannable(Unscannable),
    /// Scannable; the format the bytes look like.
    Scannable(Format),
}

const MAGIC: &[(&[u8], &str)] = &[
    (b"\x1f\x8b", "gzip"),
    (b"PK\x03\x04", "zip"),
    (b"PK\x05\x06", "zip"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"BZh", "bzip2"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"7z\xbc\xaf\x27\x1c", "7z"),
    (b"%PDF-", "pdf"),
];

/// Decides from `prefix` (the body's first bytes); `complete`: the body has no more.
pub fn sniff(prefix: &[u8], complete: bool) -> Sniffed {
    if prefix.len() < SNIFF_LEN && !complete {
        return Sniffed::NeedMore;
    }
    let head = &prefix[..prefix.len().min(SNIFF_LEN)];
    if let Some((_, kind)) = MAGIC.iter().find(|(m, _)| head.starts_with(m)) {
        return Sniffed::Unscannable(Unscannable::Compressed(kind));
    }
    if head.contains(&0) {
        return Sniffed::Unscannable(Unscannable::Binary);
    }
    if invalid_utf8(head, !complete || prefix.len() > SNIFF_LEN) * 10 > head.len() {
        return Sniffed::Unscannable(Unscannable::NotText);
    }
    Sniffed::Scannable(guess(head, complete && prefix.len() <= SNIFF_LEN))
}

/// Bytes that are not part of valid UTF-8 (a sequence cut by the end of `cut` input is not).
fn invalid_utf8(mut s: &[u8], cut: bool) -> usize {
    let mut bad = 0;
    loop {
        match std::str::from_utf8(s) {
            Ok(_) => return bad,
            Err(e) => {
                let valid = e.valid_up_to();
                match e.error_len() {
                    Some(n) => {
                        bad += n;
                        s = &s[valid + n..];
                    }
                    None if cut => return bad,
                    None => return bad + (s.len() - valid),
                }
            }
        }
    }
}

fn guess(head: &[u8], whole: bool) -> Format {
    let body = head.strip_prefix(b"\xef\xbb\xbf").unwrap_or(head);
    let first = body.iter().position(|b| !b.is_ascii_whitespace());
    if let Some(i) = first
        && matches!(body[i], b'{' | b'[')
    {
        let lines: Vec<&[u8]> = body[i..]
            .split(|&b| b == b'\n')
            .map(|l| l.trim_ascii())
            .filter(|l| !l.is_empty())
            .collect();
        let objects = lines.iter().filter(|l| l.starts_with(b"{")).count();
        let ndjson = lines.len() >= 2
            && objects == lines.len()
            && lines
                .iter()
                .take(lines.len() - 1)
                .all(|l| l.ends_with(b"}"));
        return if ndjson { Format::Ndjson } else { Format::Json };
    }
    // Complete lines only: the last one may be cut.
    let mut lines: Vec<&[u8]> = body.split(|&b| b == b'\n').collect();
    if !whole || lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    let lines: Vec<&[u8]> = lines.into_iter().take(20).collect();
    if lines.len() >= 2 {
        for (delim, format) in [(b'\t', Format::Tsv), (b',', Format::Csv)] {
            let count = |l: &[u8]| l.iter().filter(|&&b| b == delim).count();
            let n = count(lines[0]);
            if n >= 1 && lines.iter().all(|l| count(l) == n) {
                return format;
            }
        }
    }
    Format::Text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magic_nul_and_invalid_utf8_are_unscannable() {
        let u = |b: &[u8]| sniff(b, true);
        assert_eq!(
            u(b"\x1f\x8b\x08\x00rest"),
            Sniffed::Unscannable(Unscannable::Compressed("gzip"))
        );
        assert_eq!(
            u(b"PK\x03\x04...."),
            Sniffed::Unscannable(Unscannable::Compressed("zip"))
        );
        assert_eq!(
            u(b"\x28\xb5\x2f\xfdxx"),
            Sniffed::Unscannable(Unscannable::Compressed("zstd"))
        );
        assert_eq!(
            u(b"name,ssn\nann\x00,1\n"),
            Sniffed::Unscannable(Unscannable::Binary)
        );
        let junk: Vec<u8> = (0..400u32).map(|i| 0x80 + (i % 64) as u8).collect();
        assert_eq!(u(&junk), Sniffed::Unscannable(Unscannable::NotText));
        // A few Latin-1 bytes in text are still text.
        let mut text = b"caf\xe9 ".to_vec();
        text.extend_from_slice(&b"plain words here. ".repeat(10));
        assert_eq!(u(&text), Sniffed::Scannable(Format::Text));
        // A UTF-8 character cut by the sniff window is not invalid.
        let mut long = "é".repeat(SNIFF_LEN / 2).into_bytes();
        long.truncate(SNIFF_LEN - 1);
        long.push(0xc3);
        assert_eq!(sniff(&long, false), Sniffed::Scannable(Format::Text));
    }

    #[test]
    fn structure_is_guessed_from_the_first_lines() {
        let s = |b: &str| sniff(b.as_bytes(), true);
        assert_eq!(s("a,b\n1,2\n"), Sniffed::Scannable(Format::Csv));
        assert_eq!(s("a\tb\n1\t2\n"), Sniffed::Scannable(Format::Tsv));
        assert_eq!(s(" {\"a\": [1,\n2]}"), Sniffed::Scannable(Format::Json));
        assert_eq!(
            s("{\"a\":1}\n{\"a\":2}\n"),
            Sniffed::Scannable(Format::Ndjson)
        );
        assert_eq!(s("[1,2]"), Sniffed::Scannable(Format::Json));
        assert_eq!(s("hello, world\nbye\n"), Sniffed::Scannable(Format::Text));
        assert_eq!(sniff(b"a,b\n", false), Sniffed::NeedMore);
    }
}
