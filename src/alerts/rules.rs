//! The rule engine: one finished event and the time in, the alerts it raises out.
//!
//! Takes the rules' settings, the configured partner ids and each [`Event`] with `now`
//! passed in by the caller (the clock is never read here, so tests drive it with synthetic
//! streams); gives [`Alert`]s, at most one per rule and subject per cool-down. Window rules
//! (`denial_burst`, `token_failures`) and `dlp_block` are here; the baseline rules are in
//! `baselines`. Cannot fail: an event a rule cannot read (no partner, an
//! unparseable client address) is skipped by that rule.
//!
//! Subjects are a configured partner id, or `ip:<client address>` when the event has no
//! configured partner (a refused stranger, an unknown claimed `client_id`), so the state and
//! the alert labels never grow with names an attacker chooses.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::time::Duration;

use jiff::Timestamp;

use super::state::{RuleState, evict};
use super::{Alert, Rule};
use crate::audit::{Decision, Event, Kind};
use crate::config::{AlertsConfig, BurstRule};

/// Longest object key quoted in a `dlp_block` subject.
const MAX_KEY_IN_SUBJECT: usize = 200;

/// The rules of one configuration and what they remember.
pub struct Engine {
    pub(super) cfg: AlertsConfig,
    known: HashSet<String>,
    pub(super) state: RuleState,
}

impl Engine {
    pub fn new(
        cfg: &AlertsConfig,
        partners: impl IntoIterator<Item = String>,
        state: RuleState,
    ) -> Engine {
        let mut e = Engine {
            cfg: cfg.clone(),
            known: HashSet::new(),
            state,
        };
        e.reconfigure(cfg, partners);
        e
    }

    /// Takes the rules and partners of a new configuration; what was learnt is kept (cut to
    /// the new bounds).
    pub fn reconfigure(&mut self, cfg: &AlertsConfig, partners: impl IntoIterator<Item = String>) {
        self.cfg = cfg.clone();
        self.known = partners.into_iter().collect();
        self.state.bound(
            cfg.max_subjects,
            [
                cfg.denial_burst.threshold as usize,
                cfg.token_failures.threshold as usize,
            ],
            cfg.new_source_ip.max_networks,
        );
    }

    pub fn state(&self) -> &RuleState {
        &self.state
    }

    /// Runs every enabled rule on one finished event at `now`.
    pub fn observe(&mut self, ev: &Event, now: Timestamp) -> Vec<Alert> {
        let mut out = Vec::new();
        if matches!(ev.kind, Kind::Alert | Kind::Admin) {
            return out;
        }
        let partner = ev
            .partner
            .as_deref()
            .filter(|p| self.known.contains(*p))
            .map(str::to_owned);
        let subject = partner
            .clone()
            .unwrap_or_else(|| format!("ip:{}", ev.client_ip));
        let denied = ev.decision == Decision::Deny;
        if denied && ev.kind == Kind::Request && self.cfg.denial_burst.enabled {
            out.extend(self.burst(Rule::DenialBurst, &subject, partner.as_deref(), ev, now));
        }
        if denied && ev.kind == Kind::Token && self.cfg.token_failures.enabled {
            out.extend(self.burst(Rule::TokenFailures, &subject, partner.as_deref(), ev, now));
        }
        if let Some(p) = partner.as_deref().filter(|_| authenticated(ev)) {
            if self.cfg.new_source_ip.enabled {
                out.extend(self.new_source_ip(p, ev, now));
            }
            if self.cfg.unusual_hours.enabled {
                out.extend(self.unusual_hours(p, ev, now));
            }
            if self.cfg.volume_spike.enabled && ev.kind == Kind::Request {
                out.extend(self.volume_spike(p, ev, now));
            }
        }
        if self.cfg.dlp_block.enabled {
            out.extend(self.dlp_block(&subject, partner.as_deref(), ev, now));
        }
        out
    }

    /// True when `rule` may alert on `subject` at `now` (its cool-down has passed); records
    /// the alert's time.
    pub(super) fn fire(&mut self, rule: Rule, subject: &str, now: Timestamp) -> bool {
        let key = format!("{}/{subject}", rule.id());
        let cooldown = self.cooldown(rule);
        if let Some(last) = self.state.cooldowns.get(&key)
            && now < after(*last, cooldown)
        {
            return false;
        }
        if !self.state.cooldowns.contains_key(&key) {
            evict(&mut self.state.cooldowns, self.cfg.max_subjects);
        }
        self.state.cooldowns.insert(key, now);
        true
    }

    fn cooldown(&self, rule: Rule) -> Duration {
        match rule {
            Rule::DenialBurst => self.cfg.denial_burst.cooldown,
            Rule::TokenFailures => self.cfg.token_failures.cooldown,
            Rule::NewSourceIp => self.cfg.new_source_ip.cooldown,
            Rule::UnusualHours => self.cfg.unusual_hours.cooldown,
            Rule::VolumeSpike => self.cfg.volume_spike.cooldown,
            Rule::DlpBlock => self.cfg.dlp_block.cooldown,
        }
    }

    /// `denial_burst` and `token_failures`: the subject's latest `threshold` event times are
    /// kept; when all of them lie within `window` of `now`, the burst is there.
    fn burst(
        &mut self,
        rule: Rule,
        subject: &str,
        partner: Option<&str>,
        ev: &Event,
        now: Timestamp,
    ) -> Option<Alert> {
        let (settings, map): (&BurstRule, &mut BTreeMap<String, VecDeque<Timestamp>>) = match rule {
            Rule::DenialBurst => (&self.cfg.denial_burst, &mut self.state.denial_burst),
            _ => (&self.cfg.token_failures, &mut self.state.token_failures),
        };
        if !map.contains_key(subject) {
            evict(map, self.cfg.max_subjects);
        }
        let times = map.entry(subject.to_owned()).or_default();
        times.push_back(now);
        let threshold = settings.threshold as usize;
        while times.len() > threshold {
            times.pop_front();
        }
        let from = before(now, settings.window);
        while times.front().is_some_and(|t| *t <= from) {
            times.pop_front();
        }
        let count = times.len();
        let window = super::show(settings.window);
        if count < threshold || !self.fire(rule, subject, now) {
            return None;
        }
        let what = if rule == Rule::DenialBurst {
            "refused requests"
        } else {
            "failed token requests"
        };
        let who = match partner {
            Some(p) => format!("partner {p}"),
            None => format!("client {}", ev.client_ip),
        };
        Some(Alert::new(
            rule,
            partner,
            subject,
            now,
            format!("{count} {what} from {who} within {window}"),
            serde_json::json!({
                "count": count,
                "threshold": threshold,
                "window": window,
                "client_ip": ev.client_ip,
                "last_reason": ev.reason,
                "request_id": ev.request_id,
            }),
        ))
    }

    /// `dlp_block`: any event whose DLP outcome is `blocked`.
    fn dlp_block(
        &mut self,
        who: &str,
        partner: Option<&str>,
        ev: &Event,
        now: Timestamp,
    ) -> Option<Alert> {
        let dlp = ev.dlp.as_ref().filter(|d| d.outcome == "blocked")?;
        let share = ev.share.as_deref().unwrap_or("-");
        let key: String = ev
            .key
            .as_deref()
            .unwrap_or("")
            .chars()
            .take(MAX_KEY_IN_SUBJECT)
            .collect();
        let subject = format!("{who} {share}/{key}");
        if !self.fire(Rule::DlpBlock, &subject, now) {
            return None;
        }
        let mut entities: Vec<&str> = dlp
            .findings
            .iter()
            .filter(|f| f.action == "block")
            .map(|f| f.entity.as_str())
            .collect();
        entities.sort_unstable();
        entities.dedup();
        Some(Alert::new(
            Rule::DlpBlock,
            partner,
            &subject,
            now,
            format!(
                "DLP blocked {} {share}/{key} for {} (profile {}: {})",
                ev.method,
                partner.map_or_else(
                    || format!("client {}", ev.client_ip),
                    |p| format!("partner {p}")
                ),
                dlp.profile,
                if entities.is_empty() {
                    "-".to_owned()
                } else {
                    entities.join(", ")
                }
            ),
            serde_json::json!({
                "method": ev.method,
                "share": share,
                "key": key,
                "profile": dlp.profile,
                "entities": entities,
                "client_ip": ev.client_ip,
                "request_id": ev.request_id,
            }),
        ))
    }
}

/// An event of a partner whose credentials checked out: an issued token, or a request made
/// with a valid access token.
fn authenticated(ev: &Event) -> bool {
    match ev.kind {
        Kind::Token => ev.decision == Decision::Allow,
        Kind::Request => ev.session_id.is_some(),
        Kind::Admin | Kind::Alert | Kind::Session => false,
    }
}

/// `t - d`, clamped to the earliest instant.
pub(super) fn before(t: Timestamp, d: Duration) -> Timestamp {
    jiff::SignedDuration::try_from(d)
        .ok()
        .and_then(|d| t.checked_sub(d).ok())
        .unwrap_or(Timestamp::MIN)
}

/// `t + d`, clamped to the latest instant.
pub(super) fn after(t: Timestamp, d: Duration) -> Timestamp {
    jiff::SignedDuration::try_from(d)
        .ok()
        .and_then(|d| t.checked_add(d).ok())
        .unwrap_or(Timestamp::MAX)
}
