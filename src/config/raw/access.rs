//! Typed values and tables of the access keys: CIDRs, time windows, classifications, rates,
//! deny rules and rate-limit tables.
//!
//! Each value type takes the TOML string (or inline table, for a window) and gives the typed
//! value; a bad value fails deserialisation with a message quoting it, so the loader reports
//! `file:line: invalid CIDR "10.0.0.1/8": ...`. Cross-field checks (valid_from before
//! valid_until, a share that exists) are `load`'s.

use std::time::Duration;

use ipnet::IpNet;
use jiff::tz::{TimeZone, TimeZoneDatabase};
use serde::Deserialize;
use toml::Spanned;

use super::values::{ActionName, ByteSize, HumanDuration};
use crate::config::model::{Classification, DaySet, Rate, TimeWindow};

/// A client network: `"192.0.2.0/24"`, `"2001:db8::/32"`, or one address (`"192.0.2.7"`,
/// taken as /32 or /128). Host bits must be zero: `"10.1.2.3/8"` is refused, because the
/// operator may have meant /32.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Cidr(pub IpNet);

impl TryFrom<String> for Cidr {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let t = s.trim();
        let net = match t.parse::<IpNet>() {
            Ok(net) => net,
            Err(_) => match t.parse::<std::net::IpAddr>() {
                Ok(ip) => IpNet::from(ip),
                Err(_) => {
                    return Err(format!(
                        "invalid CIDR {s:?} (write e.g. \"192.0.2.0/24\", \"2001:db8::/32\" or one address)"
                    ));
                }
            },
        };
        if net.trunc() != net {
            return Err(format!(
                "invalid CIDR {s:?}: host bits are set; write {:?} for the network or the address alone",
                net.trunc().to_string()
            ));
        }
        Ok(Cidr(net))
    }
}

/// Days of the week: `"mon-fri"`, `"sat,sun"`, `"fri-mon"` (ranges may wrap), `"mon,wed-fri"`,
/// or `"daily"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Days(pub DaySet);

impl TryFrom<String> for Days {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let bad = || {
            format!(
                "invalid days {s:?} (write e.g. \"mon-fri\", \"sat,sun\", \"fri-mon\" or \"daily\")"
            )
        };
        let t = s.trim();
        if t == "daily" {
            return Ok(Days(DaySet::ALL));
        }
        let mut set = DaySet::empty();
        for part in t.split(',').map(str::trim) {
            let (a, b) = part.split_once('-').unwrap_or((part, part));
            let a = DaySet::day(a.trim()).ok_or_else(bad)?;
            let b = DaySet::day(b.trim()).ok_or_else(bad)?;
            let mut d = a;
            loop {
                set.insert(d);
                if d == b {
                    break;
                }
                d = d.next();
            }
        }
        Ok(Days(set))
    }
}

/// A wall-clock time `"HH:MM"`, `00:00` to `24:00`, as seconds after midnight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct ClockTime(pub u32);

impl TryFrom<String> for ClockTime {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let bad = || format!("invalid time {s:?} (write \"HH:MM\", from \"00:00\" to \"24:00\")");
        let (h, m) = s.split_once(':').ok_or_else(bad)?;
        let two_digits = |x: &str| x.len() == 2 && x.bytes().all(|b| b.is_ascii_digit());
        if !two_digits(h) || !two_digits(m) {
            return Err(bad());
        }
        let (h, m): (u32, u32) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
        if m > 59 || h > 24 || (h == 24 && m != 0) {
            return Err(bad());
        }
        Ok(ClockTime(h * 3600 + m * 60))
    }
}

/// An IANA time zone name such as `"Europe/Berlin"` or `"UTC"`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Zone(pub TimeZone);

impl TryFrom<String> for Zone {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        find_zone(&s).map(Zone).ok_or_else(|| {
            format!("unknown time zone {s:?} (write an IANA name such as \"Europe/Berlin\")")
        })
    }
}

/// Looks a zone up in the system database, then in the copy compiled into the binary, so
/// zones resolve on machines without `/usr/share/zoneinfo`. Fixed offsets and POSIX strings
/// are not accepted: they would not follow daylight-saving rules.
pub fn find_zone(name: &str) -> Option<TimeZone> {
    static BUNDLED: std::sync::LazyLock<TimeZoneDatabase> =
        std::sync::LazyLock::new(TimeZoneDatabase::bundled);
    if name.is_empty() || name.starts_with(['+', '-']) || name.contains(',') {
        return None;
    }
    jiff::tz::db().get(name).or_else(|_| BUNDLED.get(name)).ok()
}

/// One entry of `windows`: `{ days = "mon-fri", from = "08:00", to = "18:00", tz = "..." }`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "WindowTable")]
pub struct Window(pub TimeWindow);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowTable {
    days: Option<Days>,
    from: ClockTime,
    to: ClockTime,
    tz: Zone,
}

impl TryFrom<WindowTable> for Window {
    type Error = String;
    fn try_from(t: WindowTable) -> Result<Self, String> {
        if t.from.0 == 86400 {
            return Err("window from = \"24:00\": a window must start before midnight".to_owned());
        }
        if t.from == t.to {
            return Err(
                "window from and to are equal; for the whole day write from = \"00:00\", to = \"24:00\""
                    .to_owned(),
            );
        }
        Ok(Window(TimeWindow {
            days: t.days.map_or(DaySet::ALL, |d| d.0),
            from: t.from.0,
            to: t.to.0,
            tz: t.tz.0,
        }))
    }
}

/// One of `public`, `internal`, `confidential`, `restricted`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct ClassificationName(pub Classification);

impl TryFrom<String> for ClassificationName {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Classification::parse(&s).map(ClassificationName).ok_or_else(|| {
            format!(
                "unknown classification {s:?} (expected public, internal, confidential or restricted)"
            )
        })
    }
}

/// Highest rate accepted, in events per second.
const MAX_EVENTS_PER_SECOND: u64 = 1_000_000;

/// A rate `"<count>/<unit>"`, unit `s`, `m` or `h`: `"100/s"`, `"600/m"`, `"20/h"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct RateSpec(pub Rate);

impl TryFrom<String> for RateSpec {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let bad = |why: &str| {
            format!("invalid rate {s:?}: {why} (write e.g. \"100/s\", \"600/m\" or \"20/h\")")
        };
        let (n, unit) = s.trim().split_once('/').ok_or_else(|| bad("no '/'"))?;
        let per = match unit.trim() {
            "s" => Duration::from_secs(1),
            "m" => Duration::from_secs(60),
            "h" => Duration::from_secs(3600),
            _ => return Err(bad("unit must be s, m or h")),
        };
        let count: u32 = n
            .trim()
            .parse()
            .map_err(|_| bad("count must be a whole number"))?;
        if count == 0 {
            return Err(bad("count must be above 0"));
        }
        if u64::from(count) > MAX_EVENTS_PER_SECOND * per.as_secs() {
            return Err(bad("more than 1000000 per second"));
        }
        Ok(RateSpec(Rate { count, per }))
    }
}

/// A byte rate `"<byte size>/s"`: `"10MiB/s"`, `"500 KB/s"`, `"1048576/s"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct ByteRate(pub u64);

impl TryFrom<String> for ByteRate {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let bad = |why: String| {
            format!("invalid byte rate {s:?}: {why} (write e.g. \"10MiB/s\" or \"500KB/s\")")
        };
        let size = s
            .trim()
            .strip_suffix("/s")
            .ok_or_else(|| bad("must end in \"/s\"".to_owned()))?;
        let n = ByteSize::parse(size).map_err(bad)?.0;
        if n == 0 {
            return Err(bad("must be above 0".to_owned()));
        }
        Ok(ByteRate(n))
    }
}

/// One `[[deny]]` entry of a partner file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DenyTable {
    pub share: Spanned<String>,
    pub prefix: Option<Spanned<String>>,
    /// Absent: every action.
    pub actions: Option<Spanned<Vec<Spanned<ActionName>>>>,
}

/// `[rate_limits]` of a partner file, or `rate_limits` of a grant.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitsTable {
    pub requests: Option<Spanned<RateSpec>>,
    pub burst: Option<Spanned<u32>>,
    pub concurrent: Option<Spanned<u32>>,
    pub download: Option<Spanned<ByteRate>>,
    pub upload: Option<Spanned<ByteRate>>,
}

/// `[token_limits]` of gatehouse.toml.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenLimitsTable {
    pub per_ip: Option<Spanned<RateSpec>>,
    pub per_ip_burst: Option<Spanned<u32>>,
    pub lockout_after: Option<Spanned<u32>>,
    pub lockout_window: Option<Spanned<HumanDuration>>,
    pub lockout_for: Option<Spanned<HumanDuration>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err<T: TryFrom<String, Error = String> + std::fmt::Debug>(s: &str) -> String {
        let e = T::try_from(s.to_owned()).unwrap_err();
        assert!(e.contains(&format!("{s:?}")), "{e}");
        e
    }

    #[test]
    fn cidrs_take_networks_and_single_addresses_and_refuse_host_bits() {
        let ok = |s: &str| Cidr::try_from(s.to_owned()).unwrap().0.to_string();
        assert_eq!(ok("192.0.2.0/24"), "192.0.2.0/24");
        assert_eq!(ok("2001:db8::/32"), "2001:db8::/32");
        assert_eq!(ok("192.0.2.7"), "192.0.2.7/32");
        assert_eq!(ok("::1"), "::1/128");
        assert!(err::<Cidr>("10.1.2.3/8").contains("\"10.0.0.0/8\""));
        err::<Cidr>("10.0.0.0/33");
        err::<Cidr>("example.com");
        err::<Cidr>("");
    }

    #[test]
    fn days_take_lists_and_wrapping_ranges() {
        let days = |s: &str| Days::try_from(s.to_owned()).unwrap().0.to_string();
        assert_eq!(days("mon-fri"), "mon-fri");
        assert_eq!(days("fri-mon"), "mon,fri-sun");
        assert_eq!(days("sat, sun"), "sat,sun");
        assert_eq!(days("daily"), "mon-sun");
        assert_eq!(days("mon,wed-fri"), "mon,wed-fri");
        for bad in ["", "monday", "mon-", "Mon", "mon;tue"] {
            err::<Days>(bad);
        }
    }

    #[test]
    fn clock_times_run_from_midnight_to_24_00() {
        let t = |s: &str| ClockTime::try_from(s.to_owned()).unwrap().0;
        assert_eq!(t("00:00"), 0);
        assert_eq!(t("08:30"), 8 * 3600 + 1800);
        assert_eq!(t("24:00"), 86400);
        for bad in ["8:00", "24:01", "25:00", "12:60", "12", "12:00:00", "ab:cd"] {
            err::<ClockTime>(bad);
        }
    }

    #[test]
    fn zones_are_iana_names_only() {
        assert!(Zone::try_from("Europe/Berlin".to_owned()).is_ok());
        assert!(Zone::try_from("UTC".to_owned()).is_ok());
        for bad in ["Europe/Nowhere", "+01:00", "CET-1CEST,M3.5.0,M10.5.0/3", ""] {
            err::<Zone>(bad);
        }
    }

    #[test]
    fn the_bundled_zone_database_is_compiled_in() {
        let db = TimeZoneDatabase::bundled();
        assert!(db.get("Europe/Berlin").is_ok());
        assert!(db.get("America/New_York").is_ok());
    }

    #[test]
    fn rates_and_byte_rates_parse() {
        let r = |s: &str| RateSpec::try_from(s.to_owned()).unwrap().0;
        assert_eq!(r("100/s").period(), Duration::from_millis(10));
        assert_eq!(r("60/m").period(), Duration::from_secs(1));
        assert_eq!(r("2/h").period(), Duration::from_secs(1800));
        for bad in ["100", "0/s", "10/d", "1.5/s", "-1/s", "1000001/s"] {
            err::<RateSpec>(bad);
        }
        let b = |s: &str| ByteRate::try_from(s.to_owned()).unwrap().0;
        assert_eq!(b("10MiB/s"), 10 << 20);
        assert_eq!(b("500KB/s"), 500_000);
        for bad in ["10MiB", "0/s", "10XB/s"] {
            err::<ByteRate>(bad);
        }
        assert!(err::<ClassificationName>("secret").contains("restricted"));
    }
}
