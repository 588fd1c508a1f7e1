//! The rules that learn what is usual for a partner: `new_source_ip`, `unusual_hours`,
//! `volume_spike`.
//!
//! Takes an authenticated event of a configured partner and `now`; updates that partner's
//! baseline in [`RuleState`](super::state::RuleState) and gives an alert when the event
//! falls outside it, once the baseline has learnt enough. The algorithms are written down in
//! docs/audit.md ("Alerts").

use std::net::IpAddr;

use jiff::Timestamp;

use super::rules::{Engine, after, before};
use super::state::{HOURS_PER_WEEK, Hours, Networks, Volume, evict};
use super::{Alert, Rule};
use crate::audit::Event;

const WEEK_SECS: i64 = 7 * 86_400;
/// Most idle hours folded into a volume baseline at once (8 weeks); past that, the baseline
/// has decayed to the idle level anyway.
const MAX_IDLE_HOURS: i64 = 8 * 7 * 24;

impl Engine {
    /// `new_source_ip`: the client address cut to the configured prefix, compared with the
    /// networks the partner was seen from within `forget_after`.
    pub(super) fn new_source_ip(
        &mut self,
        partner: &str,
        ev: &Event,
        now: Timestamp,
    ) -> Option<Alert> {
        let rule = self.cfg.new_source_ip.clone();
        let ip: IpAddr = ev.client_ip.parse().ok()?;
        let len = if ip.is_ipv4() {
            rule.ipv4_prefix
        } else {
            rule.ipv6_prefix
        };
        let net = ipnet::IpNet::new(ip, len).ok()?.trunc().to_string();
        if !self.state.new_source_ip.contains_key(partner) {
            evict(&mut self.state.new_source_ip, self.cfg.max_subjects);
        }
        let n = self
            .state
            .new_source_ip
            .entry(partner.to_owned())
            .or_insert_with(|| Networks {
                since: now,
                seen: Default::default(),
            });
        let forget_from = before(now, rule.forget_after);
        let known = n.seen.get(&net).is_some_and(|t| *t > forget_from);
        if !known {
            n.seen.retain(|_, t| *t > forget_from);
            evict(&mut n.seen, rule.max_networks);
        }
        n.seen.insert(net.clone(), now);
        let others = n.seen.len() - 1;
        let learned = now >= after(n.since, rule.learning);
        let subject = format!("{partner} {net}");
        if known || !learned || !self.fire(Rule::NewSourceIp, &subject, now) {
            return None;
        }
        Some(Alert::new(
            Rule::NewSourceIp,
            Some(partner),
            &subject,
            now,
            format!(
                "partner {partner} seen from a new network {net} (client {})",
                ev.client_ip
            ),
            serde_json::json!({
                "network": net,
                "client_ip": ev.client_ip,
                "known_networks": others,
                "request_id": ev.request_id,
            }),
        ))
    }

    /// `unusual_hours`: the event's hour of the week (in the configured zone) against the
    /// partner's decayed hour-of-week histogram; checked before the event is counted.
    pub(super) fn unusual_hours(
        &mut self,
        partner: &str,
        ev: &Event,
        now: Timestamp,
    ) -> Option<Alert> {
        let rule = self.cfg.unusual_hours.clone();
        let local = rule.timezone.to_datetime(ev.time);
        let slot = usize::from(local.weekday().to_monday_zero_offset().unsigned_abs()) * 24
            + usize::from(local.hour().unsigned_abs());
        let week = now.as_second().div_euclid(WEEK_SECS);
        if !self.state.unusual_hours.contains_key(partner) {
            evict(&mut self.state.unusual_hours, self.cfg.max_subjects);
        }
        let h = self
            .state
            .unusual_hours
            .entry(partner.to_owned())
            .or_insert_with(|| Hours {
                since: now,
                last: now,
                week,
                events: 0,
                counts: vec![0.0; HOURS_PER_WEEK],
            });
        if week > h.week {
            let keep = f64::from(rule.weeks.saturating_sub(1)) / f64::from(rule.weeks.max(1));
            let factor = keep.powi(i32::try_from(week - h.week).unwrap_or(i32::MAX).min(1000));
            h.counts.iter_mut().for_each(|c| *c *= factor);
            h.week = week;
        }
        let total: f64 = h.counts.iter().sum();
        // Nothing left to compare with (all decayed away): no verdict.
        let percent = if total > 0.0 {
            h.counts[slot] / total * 100.0
        } else {
            100.0
        };
        let learned = h.events >= rule.learning_events && now >= after(h.since, rule.learning);
        let events = h.events;
        h.counts[slot] += 1.0;
        h.events += 1;
        h.last = now;
        if !learned || percent >= rule.min_percent || !self.fire(Rule::UnusualHours, partner, now) {
            return None;
        }
        let hour = format!("{} {:02}:00", weekday_name(local.weekday()), local.hour());
        let zone = rule.timezone.iana_name().unwrap_or("UTC").to_owned();
        Some(Alert::new(
            Rule::UnusualHours,
            Some(partner),
            partner,
            now,
            format!(
                "partner {partner} active at {hour} {zone}, an hour with {percent:.2}% of its traffic (below {}%)",
                rule.min_percent
            ),
            serde_json::json!({
                "hour_of_week": hour,
                "timezone": zone,
                "percent": (percent * 1000.0).round() / 1000.0,
                "min_percent": rule.min_percent,
                "requests_counted": events,
                "client_ip": ev.client_ip,
                "request_id": ev.request_id,
            }),
        ))
    }

    /// `volume_spike`: bytes in and out of the current clock hour against the EWMA mean and
    /// standard deviation of the partner's completed hours (idle hours count as 0).
    pub(super) fn volume_spike(
        &mut self,
        partner: &str,
        ev: &Event,
        now: Timestamp,
    ) -> Option<Alert> {
        let bytes = ev.bytes_in.saturating_add(ev.bytes_out);
        if bytes == 0 {
            return None;
        }
        let rule = self.cfg.volume_spike.clone();
        let hour = now.as_second().div_euclid(3600);
        if !self.state.volume_spike.contains_key(partner) {
            evict(&mut self.state.volume_spike, self.cfg.max_subjects);
        }
        let v = self
            .state
            .volume_spike
            .entry(partner.to_owned())
            .or_insert_with(|| Volume {
                hour,
                current: 0,
                mean: 0.0,
                var: 0.0,
                hours: 0,
                last: now,
            });
        if hour > v.hour {
            fold(v, v.current as f64, rule.ewma_alpha);
            for _ in 0..(hour - v.hour - 1).min(MAX_IDLE_HOURS) {
                fold(v, 0.0, rule.ewma_alpha);
            }
            v.hour = hour;
            v.current = 0;
        }
        v.current = v.current.saturating_add(bytes);
        v.last = now;
        let stddev = v.var.max(0.0).sqrt();
        let limit = (rule.min_bytes as f64).max(v.mean + rule.stddevs * stddev);
        let (current, mean, hours) = (v.current, v.mean, v.hours);
        if hours < rule.learning_hours
            || (current as f64) <= limit
            || !self.fire(Rule::VolumeSpike, partner, now)
        {
            return None;
        }
        Some(Alert::new(
            Rule::VolumeSpike,
            Some(partner),
            partner,
            now,
            format!(
                "partner {partner} moved {} this hour; baseline {} ± {} (limit {})",
                bytes_text(current as f64),
                bytes_text(mean),
                bytes_text(stddev),
                bytes_text(limit)
            ),
            serde_json::json!({
                "hour_bytes": current,
                "baseline_mean": mean.round(),
                "baseline_stddev": stddev.round(),
                "limit": limit.round(),
                "baseline_hours": hours,
                "client_ip": ev.client_ip,
                "request_id": ev.request_id,
            }),
        ))
    }
}

/// One completed hour into the exponentially weighted mean and variance.
fn fold(v: &mut Volume, x: f64, alpha: f64) {
    if v.hours == 0 {
        v.mean = x;
        v.var = 0.0;
    } else {
        let diff = x - v.mean;
        let incr = alpha * diff;
        v.mean += incr;
        v.var = (1.0 - alpha) * (v.var + diff * incr);
    }
    v.hours = v.hours.saturating_add(1);
}

fn weekday_name(d: jiff::civil::Weekday) -> &'static str {
    use jiff::civil::Weekday::*;
    match d {
        Monday => "Mon",
        Tuesday => "Tue",
        Wednesday => "Wed",
        Thursday => "Thu",
        Friday => "Fri",
        Saturday => "Sat",
        Sunday => "Sun",
    }
}

/// `1.5 GiB`, `320 KiB`, `12 B`.
fn bytes_text(b: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b.max(0.0);
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{v:.0} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}
