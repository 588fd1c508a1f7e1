//! What the rules remember between events, and its file.
//!
//! Takes nothing but the rules' updates; gives [`RuleState`], which serialises to the JSON
//! state file (written whole through [`crate::atomic_file`], mode 0600: it holds partners'
//! client networks) and reads back from it. Bounded: every map keeps at most `max_subjects`
//! entries and drops the least recently seen tenth when full ([`evict`]); a loaded file is
//! cut to the same bounds. A file of another version, or one that does not parse, is
//! reported by [`RuleState::from_json`] and the caller starts empty.

use std::collections::{BTreeMap, VecDeque};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// Version of the state file's format.
pub const VERSION: u32 = 1;

/// Hours in a week: the buckets of the usual-hours histogram.
pub const HOURS_PER_WEEK: usize = 168;

/// Every rule's memory.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RuleState {
    pub version: u32,
    /// `denial_burst`: per subject, the times of its latest denials (at most `threshold`).
    #[serde(default)]
    pub denial_burst: BTreeMap<String, VecDeque<Timestamp>>,
    /// `token_failures`: per subject, the times of its latest failures.
    #[serde(default)]
    pub token_failures: BTreeMap<String, VecDeque<Timestamp>>,
    /// `new_source_ip`: per partner.
    #[serde(default)]
    pub new_source_ip: BTreeMap<String, Networks>,
    /// `unusual_hours`: per partner.
    #[serde(default)]
    pub unusual_hours: BTreeMap<String, Hours>,
    /// `volume_spike`: per partner.
    #[serde(default)]
    pub volume_spike: BTreeMap<String, Volume>,
    /// Last alert per `<rule>/<subject>`, for the cool-down.
    #[serde(default)]
    pub cooldowns: BTreeMap<String, Timestamp>,
}

/// The client networks a partner was seen from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Networks {
    /// First seen: the learning period runs from here.
    pub since: Timestamp,
    /// Network (`203.0.113.0/24`) -> last seen.
    pub seen: BTreeMap<String, Timestamp>,
}

/// A partner's hour-of-week histogram.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hours {
    pub since: Timestamp,
    pub last: Timestamp,
    /// Week number (Unix time / 7 days) the counts were last decayed to.
    pub week: i64,
    /// Requests counted (not decayed), for the learning minimum.
    pub events: u64,
    /// Decayed request counts per hour of the week, Monday 00:00 first.
    pub counts: Vec<f64>,
}

/// A partner's bytes per hour and their trailing baseline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Volume {
    /// Hour number (Unix time / 1 h) of `current`.
    pub hour: i64,
    /// Bytes so far in that hour.
    pub current: u64,
    /// Exponentially weighted mean and variance of completed hours' bytes.
    pub mean: f64,
    pub var: f64,
    /// Completed hours folded into the baseline.
    pub hours: u32,
    pub last: Timestamp,
}

/// When a subject was last seen, for eviction.
pub trait LastSeen {
    fn last_seen(&self) -> Timestamp;
}

impl LastSeen for VecDeque<Timestamp> {
    fn last_seen(&self) -> Timestamp {
        self.back().copied().unwrap_or(Timestamp::UNIX_EPOCH)
    }
}

impl LastSeen for Networks {
    fn last_seen(&self) -> Timestamp {
        self.seen.values().max().copied().unwrap_or(self.since)
    }
}

impl LastSeen for Hours {
    fn last_seen(&self) -> Timestamp {
        self.last
    }
}

impl LastSeen for Volume {
    fn last_seen(&self) -> Timestamp {
        self.last
    }
}

impl LastSeen for Timestamp {
    fn last_seen(&self) -> Timestamp {
        *self
    }
}

/// Makes room for one more entry in `map` (at most `cap`): when full, drops the least
/// recently seen tenth (at least one), so a flood of new subjects costs a sort now and then,
/// not a scan per event.
pub fn evict<V: LastSeen>(map: &mut BTreeMap<String, V>, cap: usize) {
    if map.len() < cap {
        return;
    }
    let target = cap.saturating_sub(cap / 10 + 1);
    let mut ages: Vec<(Timestamp, String)> = map
        .iter()
        .map(|(k, v)| (v.last_seen(), k.clone()))
        .collect();
    ages.sort();
    for (_, k) in ages.into_iter().take(map.len() - target) {
        map.remove(&k);
    }
}

/// Cuts `map` to at most `cap` entries, the least recently seen first.
fn trim<V: LastSeen>(map: &mut BTreeMap<String, V>, cap: usize) {
    if map.len() > cap {
        evict(map, cap + 1);
        while map.len() > cap {
            evict(map, map.len());
        }
    }
}

impl RuleState {
    pub fn new() -> RuleState {
        RuleState {
            version: VERSION,
            ..RuleState::default()
        }
    }

    /// The state file's text.
    pub fn to_json(&self) -> Vec<u8> {
        // Maps of strings, numbers and timestamps always serialise.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Reads a state file's text; histograms of the wrong length are dropped.
    pub fn from_json(bytes: &[u8]) -> Result<RuleState, String> {
        let mut s: RuleState = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        if s.version != VERSION {
            return Err(format!(
                "state file version {} (this gateway writes {VERSION})",
                s.version
            ));
        }
        s.unusual_hours
            .retain(|_, h| h.counts.len() == HOURS_PER_WEEK);
        Ok(s)
    }

    /// Applies the bounds of the configuration in force (after a load or a reload).
    pub fn bound(&mut self, max_subjects: usize, burst_len: [usize; 2], max_networks: usize) {
        trim(&mut self.denial_burst, max_subjects);
        trim(&mut self.token_failures, max_subjects);
        trim(&mut self.new_source_ip, max_subjects);
        trim(&mut self.unusual_hours, max_subjects);
        trim(&mut self.volume_spike, max_subjects);
        trim(&mut self.cooldowns, max_subjects);
        for (map, len) in [
            (&mut self.denial_burst, burst_len[0]),
            (&mut self.token_failures, burst_len[1]),
        ] {
            for times in map.values_mut() {
                while times.len() > len {
                    times.pop_front();
                }
            }
        }
        for n in self.new_source_ip.values_mut() {
            trim(&mut n.seen, max_networks);
        }
    }
}
