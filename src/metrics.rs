//! Prometheus metrics for the admin listener's `GET /metrics`.
//!
//! Takes every finished request's audit [`Event`] ([`Metrics::observe`], called next to the
//! audit record, so metrics and trail count the same things) and, at scrape time, the
//! gauges and counters other modules keep (live sessions, data-key cache, audit writer,
//! reloads: [`Scrape`]). Gives the OpenMetrics text exposition. Labels are bounded by the
//! configuration (partner ids, share names, status codes, DLP entities), never taken from
//! request input: an unauthenticated request counts under partner `-`, an unknown share
//! under `-`.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::audit::{Decision, Event, Kind};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    kind: &'static str,
    partner: String,
    share: String,
    decision: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TrafficLabels {
    partner: String,
    share: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RuleLabels {
    rule: &'static str,
}

/// The alert counters, for the alert engine and its webhook sender (cheap to clone; every
/// clone counts into the same registry).
#[derive(Clone, Debug)]
pub struct AlertCounters {
    alerts: Family<RuleLabels, Counter>,
    webhooks: Family<ResultLabels, Counter>,
}

impl AlertCounters {
    /// One alert raised by `rule` (a rule id from `crate::alerts`).
    pub fn alert(&self, rule: &'static str) {
        self.alerts.get_or_create(&RuleLabels { rule }).inc();
    }

    /// One alert's webhook outcome: `delivered`, `failed` (attempts used up or refused by
    /// the receiver) or `dropped` (queue full: the oldest waiting alert is dropped).
    pub fn webhook(&self, result: &'static str) {
        self.webhooks.get_or_create(&ResultLabels { result }).inc();
    }

    /// Standalone counters, registered nowhere (tests).
    pub fn detached() -> AlertCounters {
        AlertCounters {
            alerts: Family::default(),
            webhooks: Family::default(),
        }
    }

    /// The count of `rule`'s alerts so far.
    pub fn alerts_of(&self, rule: &'static str) -> u64 {
        self.alerts.get_or_create(&RuleLabels { rule }).get()
    }

    /// The count of webhook outcomes `result` so far.
    pub fn webhooks_of(&self, result: &'static str) -> u64 {
        self.webhooks.get_or_create(&ResultLabels { result }).get()
    }
}

/// Values read from other modules when `/metrics` is scraped.
#[derive(Debug, Default, Clone, Copy)]
pub struct Scrape {
    pub live_sessions: u64,
    pub audit_written: u64,
    pub audit_failures: u64,
    pub audit_healthy: bool,
    pub reloads_ok: u64,
    pub reloads_failed: u64,
    pub data_key_requests: u64,
    pub data_key_cache_hits: u64,
    pub key_service_calls: u64,
    /// The S3 archive's progress, when `[audit.archive]` is set.
    pub archive: Option<crate::audit::archive::Progress>,
}

/// The registry and its instruments; one per process, kept across reloads.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    denials: Family<ReasonLabels, Counter>,
    bytes_in: Family<TrafficLabels, Counter>,
    bytes_out: Family<TrafficLabels, Counter>,
    aborted: Family<KindLabels, Counter>,
    duration: Family<KindLabels, Histogram>,
    upstream: Family<KindLabels, Histogram>,
    dlp_findings: Family<DlpLabels, Counter>,
    live_sessions: Gauge,
    audit_healthy: Gauge,
    audit_records: Counter,
    audit_failures: Counter,
    reloads: Family<ResultLabels, Counter>,
    data_keys: Counter,
    data_key_hits: Counter,
    key_service_calls: Counter,
    archive_anchored_seq: Gauge,
    archive_shipped: Gauge,
    archive_failures: Counter,
    alert_counters: AlertCounters,
    /// The configured partner ids and share names: the only values the `partner` and `share`
    /// labels take (others, such as a claimed `client_id` or a share named in a refused
    /// path, count under `-`), so request input cannot grow the label sets.
    known: parking_lot::RwLock<Known>,
    /// Serialises scrapes (the counters above are brought up to date during one).
    scrape: parking_lot::Mutex<()>,
    scrapes: AtomicU64,
}

#[derive(Default)]
struct Known {
    partners: HashSet<String>,
    shares: HashSet<String>,
}

/// Labels of DLP findings: entity and action.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DlpLabels {
    pub entity: String,
    pub action: String,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("gatehouse");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "requests",
            "Requests by kind (request, token, admin), partner, share, decision and HTTP status",
            requests.clone(),
        );
        let denials = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "denials",
            "Refused requests by stable reason code",
            denials.clone(),
        );
        let bytes_in = Family::<TrafficLabels, Counter>::default();
        registry.register(
            "received_bytes",
            "Request body bytes received from partners",
            bytes_in.clone(),
        );
        let bytes_out = Family::<TrafficLabels, Counter>::default();
        registry.register(
            "sent_bytes",
            "Response body bytes sent to partners",
            bytes_out.clone(),
        );
        let aborted = Family::<KindLabels, Counter>::default();
        registry.register(
            "aborted_responses",
            "Responses whose body ended early (client gone, upstream or integrity failure, cut off)",
            aborted.clone(),
        );
        let duration = Family::<KindLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0005, 2.0, 18))
        });
        registry.register(
            "request_duration_seconds",
            "Time from the request head to the end of the response body",
            duration.clone(),
        );
        let upstream = Family::<KindLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0005, 2.0, 18))
        });
        registry.register(
            "upstream_duration_seconds",
            "Time a data request waited on the object store (until its response headers)",
            upstream.clone(),
        );
        let dlp_findings = Family::<DlpLabels, Counter>::default();
        registry.register(
            "dlp_findings",
            "DLP findings by entity and action (values are never recorded)",
            dlp_findings.clone(),
        );
        let live_sessions = Gauge::default();
        registry.register(
            "live_sessions",
            "Sessions issued and neither expired nor revoked",
            live_sessions.clone(),
        );
        let audit_healthy = Gauge::default();
        registry.register(
            "audit_healthy",
            "1 while the audit trail is writable; 0 while requests are refused for it",
            audit_healthy.clone(),
        );
        let audit_records = Counter::default();
        registry.register(
            "audit_records",
            "Audit records written",
            audit_records.clone(),
        );
        let audit_failures = Counter::default();
        registry.register(
            "audit_write_failures",
            "Failed audit writes (requests are refused until a write succeeds)",
            audit_failures.clone(),
        );
        let reloads = Family::<ResultLabels, Counter>::default();
        registry.register(
            "config_reloads",
            "Configuration reloads, applied or rejected",
            reloads.clone(),
        );
        let data_keys = Counter::default();
        registry.register(
            "data_key_requests",
            "Data keys asked of the data-key cache (generate and decrypt)",
            data_keys.clone(),
        );
        let data_key_hits = Counter::default();
        registry.register(
            "data_key_cache_hits",
            "Data keys served from the cache without a key service call",
            data_key_hits.clone(),
        );
        let key_service_calls = Counter::default();
        registry.register(
            "key_service_calls",
            "Calls to the key service (KMS GenerateDataKey and Decrypt, or the local key file)",
            key_service_calls.clone(),
        );
        let archive_anchored_seq = Gauge::default();
        registry.register(
            "audit_archive_anchored_seq",
            "Chain position of the newest checkpoint anchored in the S3 archive",
            archive_anchored_seq.clone(),
        );
        let archive_shipped = Gauge::default();
        registry.register(
            "audit_archive_shipped_files",
            "Sealed audit files shipped to the S3 archive",
            archive_shipped.clone(),
        );
        let archive_failures = Counter::default();
        registry.register(
            "audit_archive_failures",
            "Archive passes that failed (retried with backoff)",
            archive_failures.clone(),
        );
        let alert_counters = AlertCounters::detached();
        registry.register(
            "alerts",
            "Alerts raised, by rule",
            alert_counters.alerts.clone(),
        );
        registry.register(
            "alert_webhooks",
            "Alert webhook outcomes: delivered, failed (after retries or refused), dropped (queue full)",
            alert_counters.webhooks.clone(),
        );
        Metrics {
            registry,
            alert_counters,
            requests,
            denials,
            bytes_in,
            bytes_out,
            aborted,
            duration,
            upstream,
            dlp_findings,
            live_sessions,
            audit_healthy,
            audit_records,
            audit_failures,
            reloads,
            data_keys,
            data_key_hits,
            key_service_calls,
            archive_anchored_seq,
            archive_shipped,
            archive_failures,
            known: parking_lot::RwLock::new(Known::default()),
            scrape: parking_lot::Mutex::new(()),
            scrapes: AtomicU64::new(0),
        }
    }

    /// Sets the partner ids and share names of the configuration in force (at start and on
    /// every reload).
    pub fn set_known(
        &self,
        partners: impl IntoIterator<Item = String>,
        shares: impl IntoIterator<Item = String>,
    ) {
        *self.known.write() = Known {
            partners: partners.into_iter().collect(),
            shares: shares.into_iter().collect(),
        };
    }

    /// Counts one finished request, token event or operator action.
    pub fn observe(&self, ev: &Event) {
        let kind = match ev.kind {
            Kind::Request => "request",
            Kind::Token => "token",
            Kind::Admin => "admin",
            Kind::Alert => "alert",
            Kind::Session => "session",
        };
        let (partner, share) = {
            let known = self.known.read();
            let label = |v: &Option<String>, set: &HashSet<String>| match v {
                Some(v) if set.contains(v) => v.clone(),
                _ => "-".to_string(),
            };
            (
                label(&ev.partner, &known.partners),
                label(&ev.share, &known.shares),
            )
        };
        let decision = match ev.decision {
            Decision::Allow => "allow",
            Decision::Deny => "deny",
        };
        self.requests
            .get_or_create(&RequestLabels {
                kind,
                partner: partner.clone(),
                share: share.clone(),
                decision,
                status: ev.status,
            })
            .inc();
        if ev.decision == Decision::Deny {
            self.denials
                .get_or_create(&ReasonLabels {
                    reason: ev.reason.clone(),
                })
                .inc();
        }
        if ev.kind == Kind::Request && (ev.bytes_in > 0 || ev.bytes_out > 0) {
            let traffic = TrafficLabels { partner, share };
            self.bytes_in.get_or_create(&traffic).inc_by(ev.bytes_in);
            self.bytes_out.get_or_create(&traffic).inc_by(ev.bytes_out);
        }
        if ev.aborted {
            self.aborted.get_or_create(&KindLabels { kind }).inc();
        }
        self.duration
            .get_or_create(&KindLabels { kind })
            .observe(ev.duration_ms / 1000.0);
        if let Some(ms) = ev.upstream_ms {
            self.upstream
                .get_or_create(&KindLabels { kind })
                .observe(ms / 1000.0);
        }
        if let Some(dlp) = &ev.dlp {
            for f in &dlp.findings {
                self.dlp(&f.entity, f.action, f.count);
            }
        }
    }

    /// The alert counters (`alerts_total{rule}`, `alert_webhooks_total{result}`).
    pub fn alert_counters(&self) -> AlertCounters {
        self.alert_counters.clone()
    }

    /// Counts one alert raised by `rule`.
    pub fn alert(&self, rule: &'static str) {
        self.alert_counters.alert(rule);
    }

    /// Counts DLP findings (entity, action, how many).
    pub fn dlp(&self, entity: &str, action: &str, count: u64) {
        self.dlp_findings
            .get_or_create(&DlpLabels {
                entity: entity.to_string(),
                action: action.to_string(),
            })
            .inc_by(count);
    }

    /// The OpenMetrics text exposition, with the scrape-time values brought up to date.
    pub fn render(&self, now: Scrape) -> String {
        let _one = self.scrape.lock();
        self.scrapes.fetch_add(1, Ordering::Relaxed);
        self.live_sessions
            .set(i64::try_from(now.live_sessions).unwrap_or(i64::MAX));
        self.audit_healthy.set(i64::from(now.audit_healthy));
        catch_up(&self.audit_records, now.audit_written);
        catch_up(&self.audit_failures, now.audit_failures);
        catch_up(
            &self
                .reloads
                .get_or_create(&ResultLabels { result: "applied" }),
            now.reloads_ok,
        );
        catch_up(
            &self
                .reloads
                .get_or_create(&ResultLabels { result: "rejected" }),
            now.reloads_failed,
        );
        catch_up(&self.data_keys, now.data_key_requests);
        catch_up(&self.data_key_hits, now.data_key_cache_hits);
        catch_up(&self.key_service_calls, now.key_service_calls);
        if let Some(a) = &now.archive {
            self.archive_anchored_seq
                .set(i64::try_from(a.anchored_seq).unwrap_or(i64::MAX));
            self.archive_shipped
                .set(i64::try_from(a.shipped).unwrap_or(i64::MAX));
            catch_up(&self.archive_failures, a.failures);
        }
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// Raises a counter that mirrors a monotonic total kept elsewhere to that total.
fn catch_up(counter: &Counter, total: u64) {
    let seen = counter.get();
    if total > seen {
        counter.inc_by(total - seen);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: Kind, partner: Option<&str>, decision: Decision, status: u16) -> Event {
        Event {
            request_id: "r".into(),
            partner: partner.map(str::to_string),
            client_ip: "192.0.2.1".into(),
            method: "GET".into(),
            path: "/s/k".into(),
            share: Some("s".into()),
            key: Some("k".into()),
            status,
            decision,
            reason: if decision == Decision::Allow {
                "ok".into()
            } else {
                "no_grant".into()
            },
            bytes_out: 10,
            duration_ms: 3.0,
            ..Event::blank(kind)
        }
    }

    #[test]
    fn requests_are_counted_by_partner_share_decision_and_status() {
        let m = Metrics::new();
        m.set_known(["acme".to_string()], ["s".to_string()]);
        m.observe(&event(Kind::Request, Some("acme"), Decision::Allow, 200));
        let mut read = event(Kind::Request, Some("acme"), Decision::Allow, 200);
        read.upstream_ms = Some(1.5);
        m.observe(&read);
        m.observe(&event(Kind::Request, None, Decision::Deny, 403));
        m.dlp("us_ssn", "mask", 3);
        let text = m.render(Scrape {
            live_sessions: 2,
            audit_healthy: true,
            reloads_ok: 1,
            data_key_requests: 10,
            data_key_cache_hits: 9,
            key_service_calls: 1,
            archive: Some(crate::audit::archive::Progress {
                anchored_seq: 42,
                shipped: 3,
                failures: 2,
                clean_passes: 5,
            }),
            ..Scrape::default()
        });
        for line in [
            "gatehouse_requests_total{kind=\"request\",partner=\"acme\",share=\"s\",decision=\"allow\",status=\"200\"} 2",
            "gatehouse_requests_total{kind=\"request\",partner=\"-\",share=\"s\",decision=\"deny\",status=\"403\"} 1",
            "gatehouse_denials_total{reason=\"no_grant\"} 1",
            "gatehouse_sent_bytes_total{partner=\"acme\",share=\"s\"} 20",
            "gatehouse_dlp_findings_total{entity=\"us_ssn\",action=\"mask\"} 3",
            "gatehouse_live_sessions 2",
            "gatehouse_audit_healthy 1",
            "gatehouse_audit_write_failures_total 0",
            "gatehouse_config_reloads_total{result=\"applied\"} 1",
            "gatehouse_data_key_cache_hits_total 9",
            "gatehouse_key_service_calls_total 1",
            "gatehouse_request_duration_seconds_count{kind=\"request\"} 3",
            "gatehouse_upstream_duration_seconds_count{kind=\"request\"} 1",
            "gatehouse_audit_archive_anchored_seq 42",
            "gatehouse_audit_archive_shipped_files 3",
            "gatehouse_audit_archive_failures_total 2",
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn alerts_are_counted_by_rule_and_webhook_outcome() {
        let m = Metrics::new();
        m.alert("denial_burst");
        m.alert("denial_burst");
        m.alert_counters().webhook("dropped");
        let text = m.render(Scrape::default());
        assert!(
            text.contains("gatehouse_alerts_total{rule=\"denial_burst\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("gatehouse_alert_webhooks_total{result=\"dropped\"} 1"),
            "{text}"
        );
    }

    #[test]
    fn names_from_request_input_never_become_labels() {
        let m = Metrics::new();
        m.set_known(["acme".to_string()], ["s".to_string()]);
        for i in 0..50 {
            // A claimed client_id and a share named in a refused path, both made up.
            let mut ev = event(
                Kind::Token,
                Some(&format!("nobody-{i}")),
                Decision::Deny,
                401,
            );
            ev.share = Some(format!("made-up-{i}"));
            m.observe(&ev);
        }
        let text = m.render(Scrape::default());
        assert!(
            !text.contains("nobody-") && !text.contains("made-up-"),
            "{text}"
        );
        assert!(
            text.contains(
                "gatehouse_requests_total{kind=\"token\",partner=\"-\",share=\"-\",decision=\"deny\",status=\"401\"} 50"
            ),
            "{text}"
        );
    }

    #[test]
    fn mirrored_totals_only_move_forward() {
        let m = Metrics::new();
        let at = |n| {
            m.render(Scrape {
                audit_written: n,
                ..Scrape::default()
            })
        };
        assert!(at(5).contains("gatehouse_audit_records_total 5"));
        assert!(at(3).contains("gatehouse_audit_records_total 5"));
        assert!(at(8).contains("gatehouse_audit_records_total 8"));
    }
}
