//! Aggregation of unauthenticated refusals, so a flood can neither fill the disk nor push the
//! gateway into its fail-closed state.
//!
//! Takes each refusal that has no authenticated session (data-plane requests refused before a
//! session was known: missing or bad token, malformed paths; token requests refused by the
//! per-IP limiter or lockout) with its client IP, reason and time. Time is cut into fixed
//! windows of `interval`; in each window the first `burst` refusals of a client IP, and at most
//! [`MAX_INDIVIDUAL`] in all, are recorded one by one; the rest are only counted. When the
//! window ends, each IP with counted refusals gives one `refusals_aggregated` record (count by
//! reason, first and last time). At most [`MAX_IPS`] addresses are tracked per window; further
//! ones share the bucket `"*"`, which records nothing individually. Time is a parameter, so
//! the algorithm is tested without clocks.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use serde::Serialize;

/// Most client IPs tracked in one window; others are counted under `"*"`.
pub const MAX_IPS: usize = 4096;
/// Most unauthenticated refusals recorded one by one per window, all IPs together.
pub const MAX_INDIVIDUAL: u32 = 1000;
/// The bucket for addresses past [`MAX_IPS`].
const OVERFLOW: &str = "*";

/// One `refusals_aggregated` record.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub time: jiff::Timestamp,
    pub kind: &'static str,
    pub client_ip: String,
    pub decision: &'static str,
    /// Refusals counted (not recorded one by one) in this window.
    pub count: u64,
    pub reasons: BTreeMap<String, u64>,
    pub first: jiff::Timestamp,
    pub last: jiff::Timestamp,
}

#[derive(Default)]
struct Bucket {
    individual: u32,
    counted: u64,
    reasons: BTreeMap<String, u64>,
    first: Option<jiff::Timestamp>,
    last: Option<jiff::Timestamp>,
}

pub struct Flood {
    burst: u32,
    interval: Duration,
    window_end: Option<Instant>,
    individual: u32,
    buckets: HashMap<String, Bucket>,
    ready: Vec<Summary>,
}

impl Flood {
    pub fn new(burst: u32, interval: Duration) -> Flood {
        Flood {
            burst,
            interval,
            window_end: None,
            individual: 0,
            buckets: HashMap::new(),
            ready: Vec::new(),
        }
    }

    /// Whether this refusal is written as its own record (`true`) or only counted.
    pub fn admit(&mut self, ip: &str, reason: &str, now: Instant, at: jiff::Timestamp) -> bool {
        self.roll(now);
        let window_end = *self.window_end.get_or_insert(now + self.interval);
        debug_assert!(now < window_end);
        let key = if self.buckets.contains_key(ip) || self.buckets.len() < MAX_IPS {
            ip
        } else {
            OVERFLOW
        };
        let bucket = self.buckets.entry(key.to_string()).or_default();
        if key != OVERFLOW && bucket.individual < self.burst && self.individual < MAX_INDIVIDUAL {
            bucket.individual += 1;
            self.individual += 1;
            return true;
        }
        bucket.counted += 1;
        *bucket.reasons.entry(reason.to_string()).or_default() += 1;
        bucket.first.get_or_insert(at);
        bucket.last = Some(at);
        false
    }

    /// When the current window ends, if anything was counted in it.
    pub fn due(&self) -> Option<Instant> {
        self.window_end
            .filter(|_| self.buckets.values().any(|b| b.counted > 0))
    }

    /// Summaries of ended windows; with `all`, also of the current one (flush, shutdown).
    pub fn take(&mut self, now: Instant, all: bool) -> Vec<Summary> {
        self.roll(now);
        if all {
            self.close_window();
        }
        std::mem::take(&mut self.ready)
    }

    fn roll(&mut self, now: Instant) {
        if self.window_end.is_some_and(|end| now >= end) {
            self.close_window();
        }
    }

    fn close_window(&mut self) {
        let mut summaries: Vec<Summary> = self
            .buckets
            .drain()
            .filter(|(_, b)| b.counted > 0)
            .map(|(ip, b)| {
                let (first, last) = (b.first.unwrap_or_default(), b.last.unwrap_or_default());
                Summary {
                    time: last,
                    kind: "refusals_aggregated",
                    client_ip: ip,
                    decision: "deny",
                    count: b.counted,
                    reasons: b.reasons,
                    first,
                    last,
                }
            })
            .collect();
        summaries.sort_by(|a, b| a.client_ip.cmp(&b.client_ip));
        self.ready.extend(summaries);
        self.window_end = None;
        self.individual = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: i64) -> jiff::Timestamp {
        jiff::Timestamp::from_second(1_800_000_000 + s).unwrap()
    }

    #[test]
    fn records_a_burst_per_ip_then_counts_and_summarises_at_window_end() {
        let t0 = Instant::now();
        let mut f = Flood::new(3, Duration::from_secs(60));
        let admitted = (0..10)
            .filter(|i| f.admit("10.0.0.1", "token_missing", t0, ts(*i)))
            .count();
        assert_eq!(admitted, 3);
        assert!(f.admit("10.0.0.2", "token_bad_signature", t0, ts(0)));
        assert!(f.take(t0 + Duration::from_secs(59), false).is_empty());
        assert_eq!(f.due(), Some(t0 + Duration::from_secs(60)));
        let s = f.take(t0 + Duration::from_secs(60), false);
        assert_eq!(s.len(), 1, "only the IP with counted refusals: {s:?}");
        assert_eq!(s[0].client_ip, "10.0.0.1");
        assert_eq!(s[0].count, 7);
        assert_eq!(s[0].reasons["token_missing"], 7);
        assert_eq!((s[0].first, s[0].last), (ts(3), ts(9)));
        // A new window starts with a fresh burst.
        assert!(f.admit(
            "10.0.0.1",
            "token_missing",
            t0 + Duration::from_secs(61),
            ts(61)
        ));
        assert_eq!(f.due(), None, "nothing counted yet in the new window");
    }

    #[test]
    fn many_addresses_share_the_overflow_bucket_and_a_global_cap() {
        let t0 = Instant::now();
        let mut f = Flood::new(1, Duration::from_secs(60));
        let mut individual = 0;
        for i in 0..(MAX_IPS + 10) {
            if f.admit(&format!("ip{i}"), "token_missing", t0, ts(0)) {
                individual += 1;
            }
        }
        assert_eq!(individual, MAX_INDIVIDUAL as usize);
        let s = f.take(t0, true);
        let counted: u64 = s.iter().map(|s| s.count).sum();
        assert_eq!(counted as usize + individual, MAX_IPS + 10);
        assert!(s.iter().any(|s| s.client_ip == "*" && s.count == 10));
        assert!(s.len() <= MAX_IPS + 1);
    }
}
