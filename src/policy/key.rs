//! Object key validation.
//!
//! Takes the raw (still percent-encoded) path after the share segment and gives a validated
//! key, or the reason it is refused. Runs before anything else sees a key, so no later stage
//! has to think about traversal: `.`/`..` segments, empty segments, backslashes, control
//! characters, invalid UTF-8, encoded traversal and over-long keys never get through.

use percent_encoding::percent_decode_str;

/// S3's key length limit, in bytes of UTF-8.
pub const MAX_KEY_BYTES: usize = 1024;

/// Why a key was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("object key is empty")]
    Empty,
    #[error("object key is longer than 1024 bytes")]
    TooLong,
    #[error("object key is not valid UTF-8")]
    NotUtf8,
    #[error("object key contains a control character")]
    ControlCharacter,
    #[error("object key contains a backslash")]
    Backslash,
    #[error("object key contains an empty, '.' or '..' segment")]
    BadSegment,
    #[error("object key is not correctly percent-encoded")]
    BadEncoding,
}

impl KeyError {
    /// Stable reason code for the audit trail.
    pub fn reason(self) -> &'static str {
        match self {
            KeyError::Empty => "key_empty",
            KeyError::TooLong => "key_too_long",
            KeyError::NotUtf8 => "key_not_utf8",
            KeyError::ControlCharacter => "key_control_char",
            KeyError::Backslash => "key_backslash",
            KeyError::BadSegment => "key_bad_segment",
            KeyError::BadEncoding => "key_bad_encoding",
        }
    }
}

/// Decodes one percent-encoded path remainder into an object key and validates it.
pub fn decode_key(raw: &str) -> Result<String, KeyError> {
    check_encoding(raw)?;
    let bytes: Vec<u8> = percent_decode_str(raw).collect();
    let key = String::from_utf8(bytes).map_err(|_| KeyError::NotUtf8)?;
    validate_key(&key)?;
    Ok(key)
}

/// Validates an already-decoded key (also used for prefixes from query strings).
pub fn validate_key(key: &str) -> Result<(), KeyError> {
    if key.is_empty() {
        return Err(KeyError::Empty);
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(KeyError::TooLong);
    }
    if key.chars().any(char::is_control) {
        return Err(KeyError::ControlCharacter);
    }
    if key.contains('\\') {
        return Err(KeyError::Backslash);
    }
    // A trailing '/' (folder marker objects) is allowed; every other segment must be a name.
    let body = key.strip_suffix('/').unwrap_or(key);
    if body
        .split('/')
        .any(|seg| seg.is_empty() || seg == "." || seg == "..")
    {
        return Err(KeyError::BadSegment);
    }
    Ok(())
}

/// Validates a listing prefix: like a key, but it may be empty and may end anywhere.
pub fn validate_prefix(prefix: &str) -> Result<(), KeyError> {
    if prefix.is_empty() {
        return Ok(());
    }
    if prefix.len() > MAX_KEY_BYTES {
        return Err(KeyError::TooLong);
    }
    if prefix.chars().any(char::is_control) {
        return Err(KeyError::ControlCharacter);
    }
    if prefix.contains('\\') {
        return Err(KeyError::Backslash);
    }
    // Only complete segments can be checked; the last one may be partial (but not "." or "..").
    let mut segs: Vec<&str> = prefix.split('/').collect();
    let last = segs.pop().unwrap_or_default();
    if segs.iter().any(|s| s.is_empty() || *s == "." || *s == "..") || last == ".." {
        return Err(KeyError::BadSegment);
    }
    Ok(())
}

fn check_encoding(raw: &str) -> Result<(), KeyError> {
    let b = raw.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let ok =
                i + 2 < b.len() && b[i + 1].is_ascii_hexdigit() && b[i + 2].is_ascii_hexdigit();
            if !ok {
                return Err(KeyError::BadEncoding);
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_keys() {
        assert_eq!(decode_key("a/b/c.txt").unwrap(), "a/b/c.txt");
        assert_eq!(
            decode_key("with%20space/%C3%A9t%C3%A9").unwrap(),
            "with space/été"
        );
        assert_eq!(decode_key("folder/").unwrap(), "folder/");
        assert_eq!(decode_key("..a/b..").unwrap(), "..a/b..");
        assert_eq!(decode_key(&"k".repeat(1024)).unwrap().len(), 1024);
    }

    #[test]
    fn refuses_every_traversal_form() {
        let cases = [
            ("..", KeyError::BadSegment),
            ("../x", KeyError::BadSegment),
            ("a/../b", KeyError::BadSegment),
            ("a/./b", KeyError::BadSegment),
            ("./a", KeyError::BadSegment),
            ("a//b", KeyError::BadSegment),
            ("/a", KeyError::BadSegment),
            ("a/..", KeyError::BadSegment),
            ("%2e%2e/x", KeyError::BadSegment),
            ("%2E%2E%2Fx", KeyError::BadSegment),
            ("a%2f..%2fb", KeyError::BadSegment),
            ("a%5c..%5cb", KeyError::Backslash),
            ("a\\b", KeyError::Backslash),
            ("a%00b", KeyError::ControlCharacter),
            ("a%0ab", KeyError::ControlCharacter),
            ("a%7fb", KeyError::ControlCharacter),
            ("%ff%fe", KeyError::NotUtf8),
            ("%c0%ae%c0%ae/x", KeyError::NotUtf8),
            ("a%2", KeyError::BadEncoding),
            ("a%zz", KeyError::BadEncoding),
            ("", KeyError::Empty),
        ];
        for (raw, want) in cases {
            assert_eq!(decode_key(raw), Err(want), "{raw:?}");
        }
        assert_eq!(decode_key(&"k".repeat(1025)), Err(KeyError::TooLong));
        assert_eq!(decode_key(&"%41".repeat(1025)), Err(KeyError::TooLong));
    }

    #[test]
    fn prefixes_may_be_partial() {
        assert!(validate_prefix("").is_ok());
        assert!(validate_prefix("ac").is_ok());
        assert!(validate_prefix("acme/").is_ok());
        assert!(validate_prefix("acme/.").is_ok());
        assert_eq!(validate_prefix("acme/../"), Err(KeyError::BadSegment));
        assert_eq!(validate_prefix("acme/.."), Err(KeyError::BadSegment));
        assert_eq!(validate_prefix("/x"), Err(KeyError::BadSegment));
    }
}
