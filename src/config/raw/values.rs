//! Typed scalar values parsed while the TOML is deserialised.
//!
//! Each type takes a TOML string (byte sizes also take an integer; timestamps and dates also
//! take a native TOML date-time) and gives the typed value. A bad value fails deserialisation
//! with a message that quotes it, so toml attaches the line and the caller reports
//! `file:line: invalid duration "15x": ...`.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};

use crate::config::model::{Action, PartnerStatus};

/// A duration written the humantime way: `"60s"`, `"15m"`, `"1h 30m"`, `"12h"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct HumanDuration(pub Duration);

impl TryFrom<String> for HumanDuration {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        humantime::parse_duration(s.trim())
            .map(HumanDuration)
            .map_err(|e| {
                format!("invalid duration {s:?}: {e} (write e.g. \"60s\", \"15m\", \"12h\")")
            })
    }
}

/// A socket address such as `"127.0.0.1:8443"` or `"[::1]:8443"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Addr(pub SocketAddr);

impl TryFrom<String> for Addr {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse().map(Addr).map_err(|_| {
            format!(
                "invalid socket address {s:?} (write e.g. \"127.0.0.1:8443\" or \"[::1]:8443\")"
            )
        })
    }
}

/// One of the grant actions: `read`, `list`, `write`, `delete`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct ActionName(pub Action);

impl TryFrom<String> for ActionName {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Action::parse(&s)
            .map(ActionName)
            .ok_or_else(|| format!("unknown action {s:?} (expected read, list, write or delete)"))
    }
}

/// Partner status: `active` or `suspended`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Status(pub PartnerStatus);

impl TryFrom<String> for Status {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        match s.as_str() {
            "active" => Ok(Status(PartnerStatus::Active)),
            "suspended" => Ok(Status(PartnerStatus::Suspended)),
            _ => Err(format!(
                "unknown status {s:?} (expected \"active\" or \"suspended\")"
            )),
        }
    }
}

/// Kind of object store: `fs` (embedded) or `s3`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum StoreKind {
    Fs,
    S3,
}

impl TryFrom<String> for StoreKind {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        match s.as_str() {
            "fs" => Ok(StoreKind::Fs),
            "s3" => Ok(StoreKind::S3),
            _ => Err(format!(
                "unknown store type {s:?} (expected \"fs\" or \"s3\")"
            )),
        }
    }
}

/// An instant with a UTC offset (RFC 3339), e.g. `"2027-01-01T00:00:00Z"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timestamp(pub jiff::Timestamp);

impl TryFrom<String> for Timestamp {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse().map(Timestamp).map_err(|e| {
            format!("invalid timestamp {s:?}: {e} (write e.g. \"2027-01-01T00:00:00Z\")")
        })
    }
}

/// A calendar date, e.g. `"2027-06-30"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Date(pub jiff::civil::Date);

impl TryFrom<String> for Date {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
            .map(Date)
            .map_err(|e| format!("invalid date {s:?}: {e} (write e.g. \"2027-06-30\")"))
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = d.deserialize_any(DateTimeText("an RFC 3339 timestamp"))?;
        Timestamp::try_from(text).map_err(de::Error::custom)
    }
}

impl<'de> Deserialize<'de> for Date {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = d.deserialize_any(DateTimeText("a date such as \"2027-06-30\""))?;
        Date::try_from(text).map_err(de::Error::custom)
    }
}

/// Takes a string or a native TOML date-time (which toml hands over as a one-entry map
/// holding its text), gives the text.
struct DateTimeText(&'static str);

impl<'de> Visitor<'de> for DateTimeText {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<String, E> {
        Ok(s.to_owned())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<String, A::Error> {
        match map.next_entry::<String, String>()? {
            Some((_, text)) => Ok(text),
            None => Err(de::Error::invalid_type(de::Unexpected::Map, &self)),
        }
    }
}

/// A byte count: an integer, or a string such as `"5GiB"`, `"16 KiB"`, `"10MB"`, `"1024"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub u64);

const BYTE_UNITS: [(&str, u64); 7] = [
    ("B", 1),
    ("KB", 1000),
    ("MB", 1000 * 1000),
    ("GB", 1000 * 1000 * 1000),
    ("KiB", 1 << 10),
    ("MiB", 1 << 20),
    ("GiB", 1 << 30),
];

impl ByteSize {
    /// Parses `<digits>[ ]<unit>` with the units B, KB, MB, GB (powers of 1000) and KiB,
    /// MiB, GiB (powers of 1024); no unit means bytes.
    pub fn parse(s: &str) -> Result<ByteSize, String> {
        let t = s.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (digits, unit) = (&t[..split], t[split..].trim_start());
        let bad = |why: &str| {
            format!("invalid byte size {s:?}: {why} (write e.g. \"16MiB\", \"5GiB\" or 1024)")
        };
        if digits.is_empty() {
            return Err(bad("expected a whole number followed by an optional unit"));
        }
        let n: u64 = digits.parse().map_err(|_| bad("number too large"))?;
        let factor = if unit.is_empty() {
            1
        } else {
            BYTE_UNITS
                .iter()
                .find(|(name, _)| *name == unit)
                .map(|(_, f)| *f)
                .ok_or_else(|| bad("unknown unit; use B, KB, MB, GB, KiB, MiB or GiB"))?
        };
        n.checked_mul(factor)
            .map(ByteSize)
            .ok_or_else(|| bad("too large"))
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ByteSizeVisitor)
    }
}

struct ByteSizeVisitor;

impl Visitor<'_> for ByteSizeVisitor {
    type Value = ByteSize;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a byte size such as 1024 or \"16MiB\"")
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<ByteSize, E> {
        Ok(ByteSize(n))
    }

    fn visit_i64<E: de::Error>(self, n: i64) -> Result<ByteSize, E> {
        u64::try_from(n)
            .map(ByteSize)
            .map_err(|_| E::custom(format!("invalid byte size {n}: must not be negative")))
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<ByteSize, E> {
        ByteSize::parse(s).map_err(E::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_sizes_parse_with_binary_and_decimal_units() {
        let ok = [
            ("1024", 1024),
            ("0", 0),
            ("16MiB", 16 << 20),
            ("16 MiB", 16 << 20),
            ("5GiB", 5 << 30),
            ("3KiB", 3072),
            ("2KB", 2000),
            ("7MB", 7_000_000),
            ("1GB", 1_000_000_000),
            ("12B", 12),
        ];
        for (s, n) in ok {
            assert_eq!(ByteSize::parse(s), Ok(ByteSize(n)), "{s}");
        }
        for s in [
            "",
            "GiB",
            "5 gib",
            "1.5GiB",
            "-1",
            "5XB",
            "99999999999999999999",
            "17179869184GiB",
        ] {
            let e = ByteSize::parse(s).unwrap_err();
            assert!(e.contains(&format!("{s:?}")), "{e}");
        }
    }

    #[test]
    fn typed_strings_quote_the_bad_value() {
        let e = HumanDuration::try_from("15x".to_owned()).unwrap_err();
        assert!(e.contains("\"15x\""), "{e}");
        assert_eq!(
            HumanDuration::try_from("1h".to_owned()),
            Ok(HumanDuration(Duration::from_secs(3600)))
        );
        assert!(
            Addr::try_from("localhost:80".to_owned())
                .unwrap_err()
                .contains("\"localhost:80\"")
        );
        assert!(
            ActionName::try_from("writ".to_owned())
                .unwrap_err()
                .contains("\"writ\"")
        );
        assert!(
            Status::try_from("on".to_owned())
                .unwrap_err()
                .contains("\"on\"")
        );
        assert!(
            Timestamp::try_from("2027-13-01".to_owned())
                .unwrap_err()
                .contains("\"2027-13-01\"")
        );
        assert!(
            Date::try_from("30/06/2027".to_owned())
                .unwrap_err()
                .contains("\"30/06/2027\"")
        );
    }
}
