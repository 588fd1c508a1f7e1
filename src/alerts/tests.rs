//! Every rule on synthetic event streams with the time passed in, the cool-down, the bounds,
//! and restarts (state written, read back, rules carry on).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;

use super::*;
use crate::audit::Decision;
use crate::config::AlertsConfig;
use crate::data::{DlpRecord, FindingCount};

/// Monday 2026-01-05 00:00 UTC.
const MONDAY: i64 = 1_767_571_200;
const HOUR: i64 = 3600;
const DAY: i64 = 24 * HOUR;

fn at(secs: i64) -> Timestamp {
    Timestamp::from_second(MONDAY + secs).unwrap()
}

fn cfg() -> AlertsConfig {
    let mut c = AlertsConfig::off(PathBuf::from("unused.json"));
    c.enabled = true;
    c
}

fn engine(c: &AlertsConfig) -> Engine {
    Engine::new(c, ["acme".into(), "globex".into()], RuleState::new())
}

/// A data request at `t` by `partner` (authenticated: it has a session) from `ip`.
fn request(t: Timestamp, partner: Option<&str>, ip: &str, decision: Decision) -> Event {
    Event {
        time: t,
        request_id: format!("r-{}", t.as_second()),
        session_id: partner.map(|p| format!("s-{p}")),
        partner: partner.map(str::to_owned),
        client_ip: ip.into(),
        user_agent: Some("agent".into()),
        method: "GET".into(),
        path: "/exports/a.csv".into(),
        share: Some("exports".into()),
        key: Some("a.csv".into()),
        status: if decision == Decision::Allow {
            200
        } else {
            403
        },
        decision,
        reason: if decision == Decision::Allow {
            "ok".into()
        } else {
            "no_grant".into()
        },
        bytes_out: 10,
        duration_ms: 1.0,
        ..Event::blank(Kind::Request)
    }
}

/// A refused request without a token (no partner, no session).
fn stranger(t: Timestamp, ip: &str) -> Event {
    let mut e = request(t, None, ip, Decision::Deny);
    e.reason = "token_missing".into();
    e.status = 401;
    e
}

/// A token request for `claimed` (refused or issued).
fn token(t: Timestamp, claimed: &str, ip: &str, decision: Decision) -> Event {
    let mut e = request(t, Some(claimed), ip, decision);
    e.kind = Kind::Token;
    e.session_id = (decision == Decision::Allow).then(|| "s-new".into());
    e.reason = if decision == Decision::Allow {
        "token_issued".into()
    } else {
        "bad_assertion_signature".into()
    };
    e
}

fn rules(alerts: &[Alert]) -> Vec<&'static str> {
    alerts.iter().map(|a| a.rule.id()).collect()
}

/// Only `rule` enabled.
fn only(rule: Rule) -> AlertsConfig {
    let mut c = cfg();
    c.denial_burst.enabled = rule == Rule::DenialBurst;
    c.token_failures.enabled = rule == Rule::TokenFailures;
    c.new_source_ip.enabled = rule == Rule::NewSourceIp;
    c.unusual_hours.enabled = rule == Rule::UnusualHours;
    c.volume_spike.enabled = rule == Rule::VolumeSpike;
    c.dlp_block.enabled = rule == Rule::DlpBlock;
    c
}

#[test]
fn denial_burst_needs_threshold_denials_within_the_window_then_cools_down() {
    let mut c = only(Rule::DenialBurst);
    c.denial_burst.threshold = 5;
    c.denial_burst.window = Duration::from_secs(60);
    c.denial_burst.cooldown = Duration::from_secs(600);
    let mut e = engine(&c);
    // Five denials spread over 80 s: never five within 60 s.
    for i in 0..5 {
        let t = at(i * 20);
        assert!(
            e.observe(&request(t, Some("acme"), "192.0.2.1", Decision::Deny), t)
                .is_empty()
        );
    }
    // Allowed requests do not count.
    let t = at(81);
    assert!(
        e.observe(&request(t, Some("acme"), "192.0.2.1", Decision::Allow), t)
            .is_empty()
    );
    // Two more at 82 and 83 make five within 60 s (40, 60, 80, 82, 83).
    assert!(
        e.observe(
            &request(at(82), Some("acme"), "192.0.2.1", Decision::Deny),
            at(82)
        )
        .is_empty()
    );
    let raised = e.observe(
        &request(at(83), Some("acme"), "192.0.2.1", Decision::Deny),
        at(83),
    );
    assert_eq!(rules(&raised), ["denial_burst"]);
    let a = &raised[0];
    assert_eq!(a.partner.as_deref(), Some("acme"));
    assert_eq!(a.subject, "acme");
    assert_eq!(a.severity, Severity::Warning);
    assert_eq!(a.details["count"], 5);
    assert_eq!(a.time, at(83));
    // Still bursting, but within the cool-down: nothing more.
    for s in 84..200 {
        assert!(
            e.observe(
                &request(at(s), Some("acme"), "192.0.2.1", Decision::Deny),
                at(s)
            )
            .is_empty()
        );
    }
    // After the cool-down (600 s from 83), a new burst alerts again.
    let mut raised = Vec::new();
    for s in 700..705 {
        raised.extend(e.observe(
            &request(at(s), Some("acme"), "192.0.2.1", Decision::Deny),
            at(s),
        ));
    }
    assert_eq!(rules(&raised), ["denial_burst"]);
    assert_eq!(raised[0].time, at(704));
}

#[test]
fn unauthenticated_denials_are_counted_per_client_ip() {
    let mut c = only(Rule::DenialBurst);
    c.denial_burst.threshold = 3;
    let mut e = engine(&c);
    let mut raised = Vec::new();
    for s in 0..3 {
        // Two clients interleaved: only the one with three denials alerts.
        raised.extend(e.observe(&stranger(at(s), "198.51.100.7"), at(s)));
        if s < 2 {
            raised.extend(e.observe(&stranger(at(s), "198.51.100.8"), at(s)));
        }
    }
    assert_eq!(rules(&raised), ["denial_burst"]);
    assert_eq!(raised[0].subject, "ip:198.51.100.7");
    assert_eq!(raised[0].partner, None);
    assert!(
        raised[0].summary.contains("client 198.51.100.7"),
        "{}",
        raised[0].summary
    );
}

#[test]
fn token_failures_count_per_configured_partner_and_per_ip_for_strangers() {
    let mut c = only(Rule::TokenFailures);
    c.token_failures.threshold = 3;
    c.token_failures.window = Duration::from_secs(900);
    let mut e = engine(&c);
    let mut raised = Vec::new();
    for (i, ip) in ["192.0.2.1", "192.0.2.2", "192.0.2.3"].iter().enumerate() {
        let t = at(i64::try_from(i).unwrap() * 200);
        // Issued tokens and a made-up client id in between change nothing for acme.
        raised.extend(e.observe(&token(t, "acme", ip, Decision::Allow), t));
        raised.extend(e.observe(&token(t, "nobody-we-know", ip, Decision::Deny), t));
        raised.extend(e.observe(&token(t, "acme", ip, Decision::Deny), t));
    }
    assert_eq!(rules(&raised), ["token_failures"]);
    assert_eq!(
        raised[0].subject, "acme",
        "failures from three IPs add up for the partner"
    );
    assert_eq!(raised[0].details["last_reason"], "bad_assertion_signature");
    // The unknown client id is never a subject: its failures count per client IP.
    let state = e.state();
    assert!(
        state
            .token_failures
            .keys()
            .all(|k| k == "acme" || k.starts_with("ip:"))
    );
    assert!(!state.token_failures.contains_key("nobody-we-know"));
}

#[test]
fn new_source_ip_learns_first_then_alerts_once_per_new_network() {
    let mut c = only(Rule::NewSourceIp);
    c.new_source_ip.learning = Duration::from_secs(7 * 86400);
    c.new_source_ip.forget_after = Duration::from_secs(30 * 86400);
    let mut e = engine(&c);
    let ok = |t, ip: &str| request(t, Some("acme"), ip, Decision::Allow);
    // Learning week: two networks, no alerts.
    assert!(e.observe(&ok(at(0), "192.0.2.10"), at(0)).is_empty());
    assert!(
        e.observe(&ok(at(DAY), "2001:db8:1:2::5"), at(DAY))
            .is_empty()
    );
    assert!(
        e.observe(&ok(at(3 * DAY), "203.0.113.1"), at(3 * DAY))
            .is_empty()
    );
    // After learning: same /24 and same /64 are known.
    let t = at(8 * DAY);
    assert!(e.observe(&ok(t, "192.0.2.99"), t).is_empty());
    assert!(e.observe(&ok(t, "2001:db8:1:2:ffff::1"), t).is_empty());
    // A refused stranger from a new network teaches nothing and raises nothing.
    assert!(e.observe(&stranger(t, "198.51.100.1"), t).is_empty());
    // A new network alerts once.
    let raised = e.observe(&ok(t, "198.51.100.20"), t);
    assert_eq!(rules(&raised), ["new_source_ip"]);
    assert_eq!(raised[0].subject, "acme 198.51.100.0/24");
    assert_eq!(raised[0].details["network"], "198.51.100.0/24");
    assert_eq!(raised[0].details["known_networks"], 3);
    assert!(
        e.observe(&ok(at(8 * DAY + 60), "198.51.100.21"), at(8 * DAY + 60))
            .is_empty()
    );
    // globex has its own baseline: still learning.
    assert!(
        e.observe(
            &request(t, Some("globex"), "198.51.100.20", Decision::Allow),
            t
        )
        .is_empty()
    );
    // 203.0.113.0/24 was last seen on day 3; 31 days later it counts as new again.
    let t = at(34 * DAY + 1);
    assert_eq!(
        rules(&e.observe(&ok(t, "203.0.113.1"), t)),
        ["new_source_ip"]
    );
    // Networks not seen within forget_after are dropped when a new one arrives; the others
    // (seen on day 8) stay.
    assert_eq!(e.state().new_source_ip["acme"].seen.len(), 4);
}

#[test]
fn new_source_ip_keeps_at_most_max_networks_per_partner() {
    let mut c = only(Rule::NewSourceIp);
    c.new_source_ip.max_networks = 10;
    c.new_source_ip.learning = Duration::ZERO;
    c.new_source_ip.cooldown = Duration::ZERO;
    let mut e = engine(&c);
    let mut alerts = 0;
    for i in 0..50 {
        let t = at(i);
        let ip = format!("10.0.{i}.1");
        alerts += e
            .observe(&request(t, Some("acme"), &ip, Decision::Allow), t)
            .len();
    }
    assert_eq!(alerts, 50, "no learning period: every network is new");
    assert!(e.state().new_source_ip["acme"].seen.len() <= 10);
    assert!(
        e.state().new_source_ip["acme"]
            .seen
            .contains_key("10.0.49.0/24")
    );
}

/// Three weeks of office hours (Mon-Fri 09:00-17:00 in `zone`), 8 requests an hour.
fn office_weeks(e: &mut Engine, zone: &str) -> Vec<Alert> {
    let tz = jiff::tz::TimeZone::get(zone).unwrap();
    let mut raised = Vec::new();
    for day in 0..21 {
        let date = jiff::civil::date(2026, 1, 5) + jiff::Span::new().days(day);
        if date.weekday().to_monday_zero_offset() >= 5 {
            continue;
        }
        for hour in 9..17 {
            for m in 0..8 {
                let t = tz.to_timestamp(date.at(hour, m * 7, 0, 0)).unwrap();
                raised
                    .extend(e.observe(&request(t, Some("acme"), "192.0.2.1", Decision::Allow), t));
            }
        }
    }
    raised
}

#[test]
fn unusual_hours_alerts_outside_the_learnt_week_in_the_partners_zone() {
    let mut c = only(Rule::UnusualHours);
    c.unusual_hours.timezone = jiff::tz::TimeZone::get("Europe/Berlin").unwrap();
    c.unusual_hours.learning_events = 200;
    c.unusual_hours.learning = Duration::from_secs(14 * 86400);
    c.unusual_hours.min_percent = 0.5;
    c.unusual_hours.cooldown = Duration::from_secs(3600);
    let mut e = engine(&c);
    assert!(
        office_weeks(&mut e, "Europe/Berlin").is_empty(),
        "usual hours never alert"
    );
    // Monday 2026-01-26, 10:30 Berlin = 09:30 UTC: usual.
    let t = at(21 * DAY + 9 * HOUR + 1800);
    assert!(
        e.observe(&request(t, Some("acme"), "192.0.2.1", Decision::Allow), t)
            .is_empty()
    );
    // Sunday 2026-02-01, 03:10 Berlin = 02:10 UTC: unusual.
    let t = at(27 * DAY + 2 * HOUR + 600);
    let raised = e.observe(&request(t, Some("acme"), "192.0.2.1", Decision::Allow), t);
    assert_eq!(rules(&raised), ["unusual_hours"]);
    assert_eq!(raised[0].details["hour_of_week"], "Sun 03:00");
    assert_eq!(raised[0].details["timezone"], "Europe/Berlin");
    assert_eq!(raised[0].details["percent"], 0.0);
    // Another unusual access within the cool-down: nothing more.
    let t = at(27 * DAY + 2 * HOUR + 900);
    assert!(
        e.observe(&request(t, Some("acme"), "192.0.2.1", Decision::Allow), t)
            .is_empty()
    );
}

#[test]
fn unusual_hours_stays_quiet_while_learning() {
    let mut c = only(Rule::UnusualHours);
    c.unusual_hours.learning_events = 10_000;
    let mut e = engine(&c);
    assert!(office_weeks(&mut e, "UTC").is_empty());
    let t = at(27 * DAY + 2 * HOUR);
    assert!(
        e.observe(&request(t, Some("acme"), "192.0.2.1", Decision::Allow), t)
            .is_empty(),
        "fewer than learning_events requests counted"
    );
}

/// `bytes` moved by acme in one request at `t`.
fn traffic(e: &mut Engine, t: Timestamp, bytes: u64) -> Vec<Alert> {
    let mut r = request(t, Some("acme"), "192.0.2.1", Decision::Allow);
    r.bytes_out = bytes;
    e.observe(&r, t)
}

#[test]
fn volume_spike_compares_the_hour_with_the_trailing_ewma_baseline() {
    let mut c = only(Rule::VolumeSpike);
    c.volume_spike.min_bytes = 10 << 20;
    c.volume_spike.stddevs = 4.0;
    c.volume_spike.ewma_alpha = 0.1;
    c.volume_spike.learning_hours = 24;
    c.volume_spike.cooldown = Duration::from_secs(3600);
    let mut e = engine(&c);
    // 48 hours alternating 20 MiB and 30 MiB: mean ≈ 25 MiB, stddev ≈ 5 MiB.
    for h in 0..48 {
        let mib = if h % 2 == 0 { 20 } else { 30 };
        assert!(
            traffic(&mut e, at(h * HOUR + 60), mib << 20).is_empty(),
            "hour {h}"
        );
    }
    // 40 MiB is within mean + 4 sd (≈ 45 MiB).
    assert!(traffic(&mut e, at(48 * HOUR + 60), 40 << 20).is_empty());
    // The next hour climbs past the limit in its third request.
    assert!(traffic(&mut e, at(49 * HOUR + 60), 20 << 20).is_empty());
    assert!(traffic(&mut e, at(49 * HOUR + 120), 20 << 20).is_empty());
    let raised = traffic(&mut e, at(49 * HOUR + 180), 20 << 20);
    assert_eq!(rules(&raised), ["volume_spike"]);
    let d = &raised[0].details;
    assert_eq!(d["hour_bytes"], 60u64 << 20);
    let (mean, sd) = (
        d["baseline_mean"].as_f64().unwrap(),
        d["baseline_stddev"].as_f64().unwrap(),
    );
    assert!(
        (20.0 * 1048576.0..32.0 * 1048576.0).contains(&mean),
        "{mean}"
    );
    assert!((2.0 * 1048576.0..8.0 * 1048576.0).contains(&sd), "{sd}");
    // Cooled down for the rest of the hour.
    assert!(traffic(&mut e, at(49 * HOUR + 240), 50 << 20).is_empty());
}

#[test]
fn volume_spike_needs_learning_hours_and_the_floor() {
    let mut c = only(Rule::VolumeSpike);
    c.volume_spike.min_bytes = 1 << 20;
    c.volume_spike.learning_hours = 24;
    let mut e = engine(&c);
    for h in 0..10 {
        assert!(traffic(&mut e, at(h * HOUR), 1 << 10).is_empty());
    }
    // Only ten hours of baseline: an hour 2000 times the usual does not alert yet.
    assert!(traffic(&mut e, at(10 * HOUR), 2 << 20).is_empty());
    // Idle for a day: the idle hours count, so the baseline has 40 hours. Its mean + 4 sd
    // is about 0.87 MiB: 900 KiB is above it but below the 1 MiB floor; 1100 KiB is above both.
    assert!(traffic(&mut e, at(40 * HOUR), 900 << 10).is_empty());
    assert_eq!(
        rules(&traffic(&mut e, at(40 * HOUR + 1), 200 << 10)),
        ["volume_spike"]
    );
    assert!(e.state().volume_spike["acme"].hours >= 24);
}

fn dlp_event(t: Timestamp, outcome: &'static str, key: &str) -> Event {
    let mut r = request(t, Some("acme"), "192.0.2.1", Decision::Deny);
    r.key = Some(key.into());
    r.reason = "dlp_blocked".into();
    r.dlp = Some(DlpRecord {
        profile: "pii".into(),
        outcome,
        source: "prescan",
        classification: None,
        findings: vec![
            FindingCount {
                entity: "us_ssn".into(),
                detector: "us-ssn".into(),
                action: "block",
                count: 3,
            },
            FindingCount {
                entity: "email".into(),
                detector: "email".into(),
                action: "mask",
                count: 1,
            },
        ],
    });
    r
}

#[test]
fn dlp_block_alerts_on_every_blocked_object_once_per_cooldown() {
    let mut c = only(Rule::DlpBlock);
    c.dlp_block.cooldown = Duration::from_secs(600);
    let mut e = engine(&c);
    assert!(
        e.observe(&dlp_event(at(0), "transformed", "a.csv"), at(0))
            .is_empty()
    );
    let raised = e.observe(&dlp_event(at(1), "blocked", "a.csv"), at(1));
    assert_eq!(rules(&raised), ["dlp_block"]);
    let a = &raised[0];
    assert_eq!(a.severity, Severity::Critical);
    assert_eq!(a.subject, "acme exports/a.csv");
    assert_eq!(a.details["entities"], serde_json::json!(["us_ssn"]));
    assert!(a.summary.contains("profile pii: us_ssn"), "{}", a.summary);
    assert!(
        e.observe(&dlp_event(at(2), "blocked", "a.csv"), at(2))
            .is_empty(),
        "cooling down"
    );
    assert_eq!(
        rules(&e.observe(&dlp_event(at(3), "blocked", "b.csv"), at(3))),
        ["dlp_block"]
    );
    assert_eq!(
        rules(&e.observe(&dlp_event(at(700), "blocked", "a.csv"), at(700))),
        ["dlp_block"]
    );
}

#[test]
fn subjects_are_bounded() {
    let mut c = only(Rule::DenialBurst);
    c.max_subjects = 50;
    let mut e = engine(&c);
    for i in 0..1000 {
        let ip = format!("10.{}.{}.1", i / 256, i % 256);
        e.observe(&stranger(at(i), &ip), at(i));
    }
    let kept = &e.state().denial_burst;
    assert!(kept.len() <= 50, "{}", kept.len());
    assert!(
        kept.contains_key("ip:10.3.231.1"),
        "the newest subject is kept"
    );
}

#[test]
fn a_reload_changes_the_rules_and_keeps_what_was_learnt() {
    let mut c = only(Rule::DenialBurst);
    c.denial_burst.threshold = 10;
    let mut e = engine(&c);
    for s in 0..4 {
        assert!(e.observe(&stranger(at(s), "192.0.2.9"), at(s)).is_empty());
    }
    c.denial_burst.threshold = 5;
    e.reconfigure(&c, ["acme".to_string()]);
    assert_eq!(
        rules(&e.observe(&stranger(at(5), "192.0.2.9"), at(5))),
        ["denial_burst"]
    );
    // globex is no longer configured: its events count per client IP.
    assert!(
        e.observe(
            &request(at(6), Some("globex"), "192.0.2.77", Decision::Deny),
            at(6)
        )
        .is_empty()
    );
    assert!(e.state().denial_burst.contains_key("ip:192.0.2.77"));
}

#[test]
fn state_survives_a_restart_through_its_json() {
    let mut c = cfg();
    c.denial_burst.threshold = 5;
    c.new_source_ip.learning = Duration::from_secs(DAY as u64);
    c.unusual_hours.enabled = false;
    let mut e = engine(&c);
    for s in 0..4 {
        e.observe(&stranger(at(s), "192.0.2.9"), at(s));
    }
    e.observe(
        &request(at(10), Some("acme"), "192.0.2.1", Decision::Allow),
        at(10),
    );
    let json = e.state().to_json();
    let loaded = RuleState::from_json(&json).unwrap();
    assert_eq!(&loaded, e.state());
    let mut after = Engine::new(&c, ["acme".into()], loaded);
    // The fifth denial after the restart completes the burst started before it.
    assert_eq!(
        rules(&after.observe(&stranger(at(20), "192.0.2.9"), at(20))),
        ["denial_burst"]
    );
    // acme's learning period started before the restart, and its network is known.
    let t = at(2 * DAY);
    assert!(
        after
            .observe(&request(t, Some("acme"), "192.0.2.50", Decision::Allow), t)
            .is_empty()
    );
    assert_eq!(
        rules(&after.observe(&request(t, Some("acme"), "203.0.113.5", Decision::Allow), t)),
        ["new_source_ip"]
    );
    assert!(RuleState::from_json(br#"{"version":99}"#).is_err());
    assert!(RuleState::from_json(b"not json").is_err());
}

#[test]
fn the_audit_event_of_an_alert_names_the_rule_and_carries_no_traffic() {
    let trigger = dlp_event(at(1), "blocked", "a.csv");
    let mut e = engine(&only(Rule::DlpBlock));
    let alert = e.observe(&trigger, at(1)).remove(0);
    let ev = audit_event(&alert, &trigger);
    assert_eq!(ev.kind, Kind::Alert);
    assert_eq!(ev.reason, "dlp_block");
    assert_eq!(ev.method, "ALERT");
    assert_eq!(ev.path, alert.summary);
    assert_eq!(ev.request_id, trigger.request_id);
    assert_eq!(
        (ev.bytes_in, ev.bytes_out, ev.user_agent.as_deref()),
        (0, 0, None)
    );
    let line = serde_json::to_value(&ev).unwrap();
    assert_eq!(line["kind"], "alert");
    let webhook = serde_json::to_value(&alert).unwrap();
    for k in [
        "rule", "severity", "partner", "subject", "time", "summary", "details",
    ] {
        assert!(
            webhook.get(k).is_some(),
            "webhook body lacks {k}: {webhook}"
        );
    }
    assert_eq!(webhook["rule"], "dlp_block");
    assert_eq!(webhook["severity"], "critical");
}

/// A clock the test sets.
struct FakeClock(parking_lot::Mutex<Timestamp>);

impl Clock for FakeClock {
    fn now(&self) -> Timestamp {
        *self.0.lock()
    }
}

/// Audit records of kind `alert` in `dir`.
fn alert_lines(dir: &std::path::Path) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap_or_default();
        out.extend(
            text.lines()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .map(|v| crate::audit::ocsf::native(&v))
                .filter(|v| v["kind"] == "alert"),
        );
    }
    out
}

#[tokio::test]
async fn the_runtime_records_counts_and_persists_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let audit_cfg = crate::config::AuditConfig::at(dir.path().join("audit"));
    let audit = Audit::open(&audit_cfg).unwrap();
    let counters = AlertCounters::detached();
    let mut c = only(Rule::DenialBurst);
    c.state_file = dir.path().join("alerts-state.json");
    c.denial_burst.threshold = 3;
    let clock = Arc::new(FakeClock(parking_lot::Mutex::new(at(0))));
    let start = || Alerts::with_clock(clock.clone(), Arc::new(webhook::Sleep));
    let partners = vec!["acme".to_string()];

    let first = start();
    first
        .configure(&c, partners.clone(), &audit, counters.clone())
        .await;
    first.observe(&stranger(at(0), "192.0.2.9"));
    *clock.0.lock() = at(1);
    first.observe(&stranger(at(1), "192.0.2.9"));
    first.shutdown().await;
    drop(first);
    assert!(c.state_file.exists(), "written at shutdown");

    let second = start();
    second
        .configure(&c, partners.clone(), &audit, counters.clone())
        .await;
    *clock.0.lock() = at(2);
    second.observe(&stranger(at(2), "192.0.2.9"));
    assert_eq!(
        counters.alerts_of("denial_burst"),
        1,
        "the burst spans the restart"
    );
    audit.flush().await.unwrap();
    let lines = alert_lines(&audit_cfg.dir);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["reason"], "denial_burst");
    assert_eq!(lines[0]["client_ip"], "192.0.2.9");

    // Turned off by a reload: the state is written and nothing more is raised.
    let mut off = c.clone();
    off.enabled = false;
    second
        .configure(&off, partners, &audit, counters.clone())
        .await;
    assert!(second.snapshot().is_none());
    for s in 3..10 {
        second.observe(&stranger(at(s), "192.0.2.9"));
    }
    assert_eq!(counters.alerts_of("denial_burst"), 1);
    let saved = RuleState::from_json(&std::fs::read(&c.state_file).unwrap()).unwrap();
    assert_eq!(saved.denial_burst["ip:192.0.2.9"].len(), 3);
    audit.close().await.unwrap();
}
