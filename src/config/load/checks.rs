//! Pure checks on single values: names, bucket names, prefixes, host names, URLs, paths.
//!
//! Each takes a value as written and gives either the normalised value or a message that
//! quotes it. None of them touches the file system.

use std::net::IpAddr;
use std::path::{Component, Path, PathBuf};

/// Share names a partner-facing path may not start with: they are the gateway's own routes.
pub const RESERVED_SHARE_NAMES: [&str; 2] = ["v1", ".well-known"];

/// Longest partner-visible or internal prefix, the same limit as an object key.
const MAX_PREFIX_BYTES: usize = 1024;

/// Partner ids, share, store and key names: `[a-z0-9][a-z0-9-_.]{0,62}`.
pub fn name(what: &str, s: &str) -> Result<(), String> {
    let mut chars = s.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    let rest_ok = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c));
    if first_ok && rest_ok && s.len() <= 63 {
        Ok(())
    } else {
        Err(format!(
            "invalid {what} {s:?}: use 1 to 63 of a-z, 0-9, '-', '_', '.', starting with a letter or digit"
        ))
    }
}

/// A share name: a [`name`] that is also not one of the [`RESERVED_SHARE_NAMES`].
pub fn share_name(s: &str) -> Result<(), String> {
    name("share name", s)?;
    if RESERVED_SHARE_NAMES.contains(&s) {
        return Err(format!(
            "share name {s:?} is reserved for the gateway's own paths"
        ));
    }
    Ok(())
}

/// S3 bucket naming rules (general purpose buckets), also used for `fs` bucket directories.
pub fn bucket(s: &str) -> Result<(), String> {
    let bad = |why: &str| Err(format!("invalid bucket name {s:?}: {why}"));
    if !(3..=63).contains(&s.len()) {
        return bad("must be 3 to 63 characters");
    }
    if !s
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-')
    {
        return bad("use only a-z, 0-9, '.' and '-'");
    }
    let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    if !edge(s.chars().next()) || !edge(s.chars().last()) {
        return bad("must begin and end with a letter or digit");
    }
    if s.contains("..") || s.contains(".-") || s.contains("-.") {
        return bad("no '..', '.-' or '-.'");
    }
    if s.parse::<std::net::Ipv4Addr>().is_ok() {
        return bad("must not look like an IP address");
    }
    if s.starts_with("xn--")
        || s.starts_with("sthree-")
        || s.ends_with("-s3alias")
        || s.ends_with("--ol-s3")
    {
        return bad("uses a prefix or suffix S3 reserves");
    }
    Ok(())
}

/// Normalises a key prefix: empty stays empty; otherwise it must not start with `/`, every
/// segment must be a name (not empty, `.` or `..`), no backslash or control character, and
/// the result ends with `/` so that it matches whole segments.
pub fn prefix(s: &str) -> Result<String, String> {
    if s.is_empty() {
        return Ok(String::new());
    }
    let bad = |why: &str| Err(format!("invalid prefix {s:?}: {why}"));
    if s.starts_with('/') {
        return bad("must not start with '/'");
    }
    if s.chars().any(char::is_control) || s.contains('\\') {
        return bad("must not contain control characters or '\\'");
    }
    let body = s.strip_suffix('/').unwrap_or(s);
    if body
        .split('/')
        .any(|seg| seg.is_empty() || seg == "." || seg == "..")
    {
        return bad("must not contain empty, '.' or '..' segments");
    }
    if body.len() + 1 > MAX_PREFIX_BYTES {
        return bad("longer than 1024 bytes");
    }
    Ok(format!("{body}/"))
}

/// Two normalised prefixes overlap when one is a prefix of the other (the empty prefix
/// overlaps everything). Both end in `/`, so this compares whole segments.
pub fn prefixes_overlap(a: &str, b: &str) -> bool {
    a.starts_with(b) || b.starts_with(a)
}

/// A DNS name or IP address for the dev certificate.
pub fn host(s: &str) -> Result<(), String> {
    if s.parse::<IpAddr>().is_ok() {
        return Ok(());
    }
    let label_ok = |l: &str| {
        (1..=63).contains(&l.len())
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if s.len() <= 253 && s.split('.').all(label_ok) {
        Ok(())
    } else {
        Err(format!(
            "invalid host name {s:?}: expected a DNS name or an IP address"
        ))
    }
}

/// An absolute `https://` URL with a host.
pub fn https_url(what: &str, s: &str) -> Result<(), String> {
    match s.parse::<http::Uri>() {
        Ok(u) if u.scheme_str() == Some("https") && u.host().is_some_and(|h| !h.is_empty()) => {
            Ok(())
        }
        _ => Err(format!("{what} {s:?} must be an absolute https:// URL")),
    }
}

/// An absolute `https://` URL, or `http://` to a loopback host (a local S3-compatible server).
pub fn endpoint_url(s: &str) -> Result<(), String> {
    let uri = s.parse::<http::Uri>().ok();
    let host = uri.as_ref().and_then(|u| u.host()).unwrap_or("");
    let loopback = host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    match uri.as_ref().and_then(|u| u.scheme_str()) {
        Some("https") if !host.is_empty() => Ok(()),
        Some("http") if loopback => Ok(()),
        _ => Err(format!(
            "endpoint_url {s:?} must be an https:// URL (http:// only to a loopback host)"
        )),
    }
}

/// Removes `.` and resolves `..` lexically, without touching the file system (the path may
/// not exist yet). Symbolic links are not followed.
pub fn normalise_path(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => match out.components().next_back() {
                Some(Component::Normal(_)) => {
                    out.pop();
                }
                Some(Component::RootDir | Component::Prefix(_)) => {}
                _ => out.push(".."),
            },
            other => out.push(other),
        }
    }
    out
}

/// True when one normalised path equals or contains the other (compared by components).
pub fn paths_overlap(a: &Path, b: &Path) -> bool {
    a.starts_with(b) || b.starts_with(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_documented_pattern() {
        for ok in ["demo", "a", "0", "acme-corp_eu.1", &"a".repeat(63)] {
            assert!(name("partner id", ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "Demo",
            "-a",
            ".a",
            "_a",
            "a b",
            "a/b",
            "é",
            &"a".repeat(64),
        ] {
            let e = name("partner id", bad).unwrap_err();
            assert!(e.contains(&format!("{bad:?}")), "{e}");
        }
        assert!(share_name("v1").unwrap_err().contains("reserved"));
        assert!(share_name(".well-known").is_err());
        assert!(share_name("v2").is_ok());
    }

    #[test]
    fn bucket_names_follow_s3_rules() {
        for ok in ["demo", "my.bucket-1", "abc", &"a".repeat(63)] {
            assert!(bucket(ok).is_ok(), "{ok}");
        }
        for bad in [
            "ab",
            "Demo",
            "a_b",
            "-ab",
            "ab-",
            "a..b",
            "a.-b",
            "192.168.1.1",
            "xn--ab",
            "ab-s3alias",
            &"a".repeat(64),
        ] {
            assert!(bucket(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn prefixes_are_normalised_and_traversal_rejected() {
        assert_eq!(prefix("").unwrap(), "");
        assert_eq!(prefix("reports").unwrap(), "reports/");
        assert_eq!(prefix("reports/2024/").unwrap(), "reports/2024/");
        for bad in [
            "/abs", "a/../b", "..", "./a", "a/./b", "a//b", "a\\b", "a\u{7}b", "/",
        ] {
            let e = prefix(bad).unwrap_err();
            assert!(e.contains(&format!("{bad:?}")), "{e}");
        }
        assert!(prefixes_overlap("", "a/"));
        assert!(prefixes_overlap("a/b/", "a/"));
        assert!(!prefixes_overlap("a/", "ab/"));
    }

    #[test]
    fn hosts_and_urls() {
        for ok in ["localhost", "127.0.0.1", "::1", "gw.example.com"] {
            assert!(host(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a b", "-a.com", "a..com"] {
            assert!(host(bad).is_err(), "{bad}");
        }
        assert!(https_url("token.url", "https://127.0.0.1:8443/v1/token").is_ok());
        assert!(https_url("token.url", "http://127.0.0.1:8443/v1/token").is_err());
        assert!(https_url("token.url", "/v1/token").is_err());
        assert!(endpoint_url("http://127.0.0.1:5000").is_ok());
        assert!(endpoint_url("http://[::1]:5000").is_ok());
        assert!(endpoint_url("http://localhost:5000").is_ok());
        assert!(endpoint_url("https://s3.eu-west-1.amazonaws.com").is_ok());
        assert!(endpoint_url("http://minio.internal:9000").is_err());
    }

    #[test]
    fn paths_normalise_lexically() {
        assert_eq!(
            normalise_path(Path::new("/a/b/../c/./d")),
            PathBuf::from("/a/c/d")
        );
        assert_eq!(normalise_path(Path::new("/a/../../b")), PathBuf::from("/b"));
        assert_eq!(
            normalise_path(Path::new("../../a")),
            PathBuf::from("../../a")
        );
        assert!(paths_overlap(Path::new("/a/b"), Path::new("/a")));
        assert!(paths_overlap(Path::new("/a"), Path::new("/a")));
        assert!(!paths_overlap(Path::new("/a/bc"), Path::new("/a/b")));
    }
}
