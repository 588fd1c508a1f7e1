//! Access conditions, explicit deny rules and rate limits, as the policy and the rate limiter
//! see them.
//!
//! Takes nothing: these are plain validated values built by `config::load` (or by hand in
//! tests). Gives [`Conditions`] (partner and grant level), [`DenyRule`], [`Classification`],
//! [`TimeWindow`], [`RateLimits`] and [`TokenLimits`]. Every field has a `Default` that means
//! "no condition" or "no limit", except [`TokenLimits`], whose defaults are real limits.
//! Evaluating them is `policy`'s and `ratelimit`'s job, not this module's.

use std::fmt;
use std::time::Duration;

use ipnet::IpNet;
use jiff::civil::Weekday;
use jiff::tz::TimeZone;

use super::ActionSet;

/// How sensitive an object is. Ordered: `Public < Internal < Confidential < Restricted`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum Classification {
    Public,
    Internal,
    Confidential,
    /// The most sensitive level, and the fail-safe default of a share.
    #[default]
    Restricted,
}

impl Classification {
    pub const ALL: [Classification; 4] = [
        Classification::Public,
        Classification::Internal,
        Classification::Confidential,
        Classification::Restricted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Classification::Public => "public",
            Classification::Internal => "internal",
            Classification::Confidential => "confidential",
            Classification::Restricted => "restricted",
        }
    }

    /// Parses the lowercase name; anything else is `None`.
    pub fn parse(s: &str) -> Option<Classification> {
        Classification::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

impl fmt::Display for Classification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Conditions that must all hold for access; used at partner level (they bound every grant)
/// and at grant level (they narrow that grant). The default holds always.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Conditions {
    /// Client networks allowed; empty means any address.
    pub allow_cidrs: Vec<IpNet>,
    /// Time windows; empty means at any time, otherwise inside at least one of them.
    pub windows: Vec<TimeWindow>,
    /// Access starts at this instant (inclusive).
    pub valid_from: Option<jiff::Timestamp>,
    /// Access ends at this instant (exclusive). At partner level the partner file's
    /// `valid_until` lives in [`PartnerConfig::valid_until`](super::PartnerConfig); when both
    /// are set the earlier one applies.
    pub valid_until: Option<jiff::Timestamp>,
    /// The session's `amr` must show a second factor.
    pub require_mfa: bool,
    /// Highest classification that may be read, written or deleted; `None`: no ceiling.
    pub max_classification: Option<Classification>,
    /// Largest object, in bytes, that may be read or written; `None`: no limit here.
    pub max_object_size: Option<u64>,
    /// Grants only: a DLP profile, at least as strict as the share's, used instead of it.
    pub dlp_profile: Option<String>,
}

/// A weekly time window in an IANA time zone, e.g. `mon-fri 08:00-18:00 Europe/Berlin`.
/// When `to <= from` the window runs past midnight into the next day; `days` names the day
/// it starts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeWindow {
    pub days: DaySet,
    /// Start, seconds after local midnight, `0..86400`.
    pub from: u32,
    /// End, seconds after local midnight, `0..=86400` (`86400` is `24:00`).
    pub to: u32,
    pub tz: TimeZone,
}

impl fmt::Display for TimeWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hm = |s: u32| format!("{:02}:{:02}", s / 3600, s / 60 % 60);
        let tz = self.tz.iana_name().unwrap_or("(unnamed zone)");
        write!(f, "{} {}-{} {tz}", self.days, hm(self.from), hm(self.to))
    }
}

/// A set of weekdays.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct DaySet(u8);

impl DaySet {
    pub const ALL: DaySet = DaySet(0x7f);
    const NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

    pub fn empty() -> DaySet {
        DaySet(0)
    }

    pub fn insert(&mut self, day: Weekday) {
        self.0 |= 1 << day.to_monday_zero_offset();
    }

    pub fn contains(self, day: Weekday) -> bool {
        self.0 & (1 << day.to_monday_zero_offset()) != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// `mon`..`sun` to a weekday.
    pub fn day(name: &str) -> Option<Weekday> {
        let i = DaySet::NAMES.iter().position(|n| *n == name)?;
        Weekday::from_monday_zero_offset(i8::try_from(i).ok()?).ok()
    }
}

impl fmt::Display for DaySet {
    /// Runs of three or more days print as ranges: `mon-fri`, `mon,wed,fri`, `sat,sun`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let has = |i: usize| self.0 & (1 << i) != 0;
        let mut parts = Vec::new();
        let mut i = 0;
        while i < 7 {
            if !has(i) {
                i += 1;
                continue;
            }
            let start = i;
            while i + 1 < 7 && has(i + 1) {
                i += 1;
            }
            match i - start {
                0 => parts.push(DaySet::NAMES[start].to_owned()),
                1 => parts.extend([DaySet::NAMES[start], DaySet::NAMES[i]].map(str::to_owned)),
                _ => parts.push(format!("{}-{}", DaySet::NAMES[start], DaySet::NAMES[i])),
            }
            i += 1;
        }
        f.write_str(&parts.join(","))
    }
}

impl fmt::Debug for DaySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DaySet({self})")
    }
}

/// An explicit deny: `actions` on keys under `prefix` in `share` are refused whatever the
/// grants say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DenyRule {
    pub share: String,
    /// Normalised like a grant prefix: empty (whole share) or ending in `/`.
    pub prefix: String,
    pub actions: ActionSet,
}

/// `count` events per `per`, e.g. 100 per second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub count: u32,
    pub per: Duration,
}

impl Rate {
    /// Time between two events at this rate (never zero).
    pub fn period(self) -> Duration {
        (self.per / self.count.max(1)).max(Duration::from_nanos(1))
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unit = match self.per.as_secs() {
            1 => "s",
            60 => "m",
            3600 => "h",
            _ => return write!(f, "{}/{:?}", self.count, self.per),
        };
        write!(f, "{}/{unit}", self.count)
    }
}

/// A request rate with the burst a client may spend at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestRate {
    pub rate: Rate,
    /// At least 1.
    pub burst: u32,
}

/// Rate limits of a partner or of one grant. The default limits nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RateLimits {
    pub requests: Option<RequestRate>,
    /// Requests in flight at once.
    pub concurrent: Option<u32>,
    /// Bytes per second sent to the partner (downloads are paced, not refused).
    pub download: Option<u64>,
    /// Bytes per second accepted from the partner (uploads are paced).
    pub upload: Option<u64>,
}

impl RateLimits {
    pub fn is_unlimited(&self) -> bool {
        *self == RateLimits::default()
    }
}

/// Gateway-wide limits of the token endpoint (`[rate_limits]` in gatehouse.toml).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenLimits {
    /// Token requests per client IP (IPv6: per /64).
    pub per_ip: RequestRate,
    /// Failed client assertions for one (partner, client IP) pair ...
    pub lockout_after: u32,
    /// ... within this window ...
    pub lockout_window: Duration,
    /// ... lock that pair out for this long.
    pub lockout_for: Duration,
}

impl Default for TokenLimits {
    fn default() -> Self {
        TokenLimits {
            per_ip: RequestRate {
                rate: Rate {
                    count: 60,
                    per: Duration::from_secs(60),
                },
                burst: 20,
            },
            lockout_after: 5,
            lockout_window: Duration::from_secs(15 * 60),
            lockout_for: Duration::from_secs(15 * 60),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifications_are_ordered_and_named() {
        assert!(Classification::Public < Classification::Internal);
        assert!(Classification::Confidential < Classification::Restricted);
        assert_eq!(Classification::default(), Classification::Restricted);
        for c in Classification::ALL {
            assert_eq!(Classification::parse(c.as_str()), Some(c));
        }
        assert_eq!(Classification::parse("Secret"), None);
    }

    #[test]
    fn day_sets_print_as_ranges() {
        let set = |days: &[&str]| {
            let mut s = DaySet::empty();
            for d in days {
                s.insert(DaySet::day(d).unwrap());
            }
            s.to_string()
        };
        assert_eq!(set(&["mon", "tue", "wed", "thu", "fri"]), "mon-fri");
        assert_eq!(set(&["sat", "sun"]), "sat,sun");
        assert_eq!(set(&["mon", "wed", "fri"]), "mon,wed,fri");
        assert_eq!(DaySet::ALL.to_string(), "mon-sun");
    }

    #[test]
    fn rates_have_a_period() {
        let r = Rate {
            count: 100,
            per: Duration::from_secs(1),
        };
        assert_eq!(r.period(), Duration::from_millis(10));
        assert_eq!(r.to_string(), "100/s");
    }
}
