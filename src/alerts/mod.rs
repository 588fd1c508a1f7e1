//! Alerts: rules evaluated on the stream of finished events.
//!
//! Takes every finished token event and data request ([`Alerts::observe`], called by
//! `state::Observers` next to the metrics) and the `[alerts]` configuration
//! ([`Alerts::configure`], at start and on every reload: new rules apply at once, what the
//! rules learnt is kept). Gives alerts: each one is an audit event (`kind = "alert"`,
//! `reason` = the rule id), a count in `gatehouse_alerts_total{rule}`, and a JSON POST to
//! the configured webhook ([`webhook`]: bounded queue, retries with backoff, never on the
//! request's path). Rules and their algorithms: [`rules`] (windows, DLP blocks) and
//! `baselines` (new networks, usual hours, volume); docs/audit.md ("Alerts") writes them
//! down. What the rules learnt survives restarts ([`state`]: a JSON file written atomically
//! every `save_interval` when changed and at shutdown, read at start).
//!
//! Time comes from a [`Clock`], so tests drive the rules with synthetic streams. Never
//! blocks or awaits on the observe path: one short mutex-guarded update, then a non-blocking
//! audit record, a counter and a queue push. Fails soft: an unreadable state file is
//! logged and the rules start learning afresh; an unreachable webhook is retried, then
//! counted as failed. Alerts never carry object contents, tokens or DLP-matched values.

mod baselines;
pub mod rules;
pub mod state;
pub mod webhook;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use jiff::Timestamp;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::audit::{Audit, Event, Kind};
use crate::config::AlertsConfig;
use crate::metrics::AlertCounters;
pub use rules::Engine;
pub use state::RuleState;

/// The rules, by their stable ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    DenialBurst,
    TokenFailures,
    NewSourceIp,
    UnusualHours,
    VolumeSpike,
    DlpBlock,
}

impl Rule {
    pub const ALL: [Rule; 6] = [
        Rule::DenialBurst,
        Rule::TokenFailures,
        Rule::NewSourceIp,
        Rule::UnusualHours,
        Rule::VolumeSpike,
        Rule::DlpBlock,
    ];

    /// The id in configuration tables, audit `reason`, metrics and webhook bodies.
    pub fn id(self) -> &'static str {
        match self {
            Rule::DenialBurst => "denial_burst",
            Rule::TokenFailures => "token_failures",
            Rule::NewSourceIp => "new_source_ip",
            Rule::UnusualHours => "unusual_hours",
            Rule::VolumeSpike => "volume_spike",
            Rule::DlpBlock => "dlp_block",
        }
    }

    pub fn severity(self) -> Severity {
        match self {
            Rule::NewSourceIp | Rule::UnusualHours => Severity::Info,
            Rule::DenialBurst | Rule::TokenFailures | Rule::VolumeSpike => Severity::Warning,
            Rule::DlpBlock => Severity::Critical,
        }
    }
}

/// How urgent an alert is (fixed per rule).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

/// One alert: also the webhook's JSON body.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alert {
    pub rule: Rule,
    pub severity: Severity,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partner: Option<String>,
    /// What the cool-down is kept for: a partner id, `ip:<address>`, or a partner and a
    /// network or object.
    pub subject: String,
    pub time: Timestamp,
    /// One sentence for a human.
    pub summary: String,
    /// The rule's figures (counts, window, baseline) and the triggering `request_id`.
    pub details: serde_json::Value,
}

impl Alert {
    pub fn new(
        rule: Rule,
        partner: Option<&str>,
        subject: &str,
        time: Timestamp,
        summary: String,
        details: serde_json::Value,
    ) -> Alert {
        Alert {
            rule,
            severity: rule.severity(),
            partner: partner.map(str::to_owned),
            subject: subject.to_owned(),
            time,
            summary,
            details,
        }
    }
}

/// Where the rules get the time.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Timestamp;
}

/// The system clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// A duration the way the configuration writes it.
fn show(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

/// The alert engine of the process, shared across reloads (in `state::Observers`).
pub struct Alerts {
    running: ArcSwapOption<Running>,
    clock: Arc<dyn Clock>,
    pause: Arc<dyn webhook::Pause>,
    /// One `configure` at a time.
    configuring: tokio::sync::Mutex<()>,
}

/// The engine and its outputs while alerts are enabled.
struct Running {
    engine: parking_lot::Mutex<Engine>,
    audit: Audit,
    counters: AlertCounters,
    outbox: Arc<webhook::Outbox>,
    clock: Arc<dyn Clock>,
    /// The state changed since it was last written.
    dirty: AtomicBool,
    /// One write of the state file at a time.
    saving: tokio::sync::Mutex<()>,
    /// Stops the saver and the webhook sender.
    stop: CancellationToken,
    /// Alerts written and sent in the current minute (the global cap).
    sent: parking_lot::Mutex<(i64, u32)>,
}

/// Most alerts written to the trail and sent to the webhook per minute, whatever the rule
/// and subject: an attacker who spreads denials over many addresses cannot turn alerts into
/// a flood. Alerts beyond it are counted as `alerts_total{rule="suppressed"}` and logged.
pub const MAX_ALERTS_PER_MINUTE: u32 = 60;

impl Default for Alerts {
    fn default() -> Self {
        Alerts::with_clock(Arc::new(SystemClock), Arc::new(webhook::Sleep))
    }
}

impl Drop for Alerts {
    fn drop(&mut self) {
        if let Some(r) = self.running.load_full() {
            r.stop.cancel();
        }
    }
}

impl Alerts {
    /// An engine that reads time from `clock` and waits between webhook attempts with `pause`.
    pub fn with_clock(clock: Arc<dyn Clock>, pause: Arc<dyn webhook::Pause>) -> Alerts {
        Alerts {
            running: ArcSwapOption::empty(),
            clock,
            pause,
            configuring: tokio::sync::Mutex::new(()),
        }
    }

    /// Applies the `[alerts]` settings of the configuration in force, with its partner ids.
    /// The first enabled configuration reads the state file and starts the saver and the
    /// webhook sender; later ones swap the rules and keep what was learnt; a disabled one
    /// writes the state and stops. Needs a Tokio runtime.
    pub async fn configure(
        &self,
        cfg: &AlertsConfig,
        partners: Vec<String>,
        audit: &Audit,
        counters: AlertCounters,
    ) {
        let _one = self.configuring.lock().await;
        match (cfg.enabled, self.running.load_full()) {
            (false, None) => {}
            (false, Some(r)) => {
                self.running.store(None);
                r.save().await;
                r.stop.cancel();
            }
            (true, Some(r)) => {
                r.engine.lock().reconfigure(cfg, partners);
                r.outbox.set(cfg.webhook.clone());
                r.dirty.store(true, Ordering::Release);
            }
            (true, None) => {
                let state = load_state(&cfg.state_file).await;
                let outbox = webhook::Outbox::new(cfg.webhook.clone(), counters.clone());
                let running = Arc::new(Running {
                    engine: parking_lot::Mutex::new(Engine::new(cfg, partners, state)),
                    audit: audit.clone(),
                    counters,
                    outbox: outbox.clone(),
                    clock: self.clock.clone(),
                    dirty: AtomicBool::new(false),
                    saving: tokio::sync::Mutex::new(()),
                    stop: CancellationToken::new(),
                    sent: parking_lot::Mutex::new((i64::MIN, 0)),
                });
                tokio::spawn(webhook::run(
                    outbox,
                    self.pause.clone(),
                    self.clock.clone(),
                    running.stop.clone(),
                ));
                tokio::spawn(saver(Arc::downgrade(&running), running.stop.clone()));
                self.running.store(Some(running));
            }
        }
    }

    /// Runs the rules on one finished event and sends out what they raise. Cheap and
    /// non-blocking; alert events themselves are not observed.
    pub fn observe(&self, ev: &Event) {
        if ev.kind == Kind::Alert {
            return;
        }
        let guard = self.running.load();
        let Some(r) = guard.as_ref() else {
            return;
        };
        let now = r.clock.now();
        let raised = r.engine.lock().observe(ev, now);
        r.dirty.store(true, Ordering::Release);
        for alert in &raised {
            r.emit(alert, ev);
        }
    }

    /// Writes the rules' state now, when it changed.
    pub async fn save(&self) {
        if let Some(r) = self.running.load_full() {
            r.save().await;
        }
    }

    /// The shutdown hook: writes the state and stops the saver and the webhook sender.
    pub async fn shutdown(&self) {
        if let Some(r) = self.running.load_full() {
            r.save().await;
            r.stop.cancel();
        }
    }

    /// A copy of what the rules remember now (`None` when alerts are off).
    pub fn snapshot(&self) -> Option<RuleState> {
        let guard = self.running.load();
        guard.as_ref().map(|r| r.engine.lock().state().clone())
    }
}

impl Running {
    /// Audit event, counter, webhook: none of them waits.
    fn emit(&self, alert: &Alert, trigger: &Event) {
        {
            let minute = self.clock.now().as_second().div_euclid(60);
            let mut sent = self.sent.lock();
            if sent.0 != minute {
                *sent = (minute, 0);
            }
            if sent.1 >= MAX_ALERTS_PER_MINUTE {
                if sent.1 == MAX_ALERTS_PER_MINUTE {
                    tracing::warn!(
                        cap = MAX_ALERTS_PER_MINUTE,
                        "alert cap reached; further alerts this minute are counted, not sent"
                    );
                }
                sent.1 = sent.1.saturating_add(1);
                self.counters.alert("suppressed");
                return;
            }
            sent.1 += 1;
        }
        tracing::warn!(
            rule = alert.rule.id(),
            subject = %alert.subject,
            summary = %alert.summary,
            "alert raised"
        );
        self.audit.record(&audit_event(alert, trigger));
        self.counters.alert(alert.rule.id());
        self.outbox.push(alert);
    }

    async fn save(&self) {
        let _one = self.saving.lock().await;
        if !self.dirty.swap(false, Ordering::AcqRel) {
            return;
        }
        let (state, path) = {
            let e = self.engine.lock();
            (e.state().clone(), e.cfg.state_file.clone())
        };
        let written = tokio::task::spawn_blocking(move || {
            crate::atomic_file::write(&path, &state.to_json(), crate::atomic_file::PRIVATE)
                .map_err(|e| format!("{}: {e}", path.display()))
        })
        .await
        .unwrap_or_else(|e| Err(e.to_string()));
        if let Err(e) = written {
            self.dirty.store(true, Ordering::Release);
            tracing::warn!(error = %e, "alert state could not be written; will retry");
        }
    }

    fn save_interval(&self) -> Duration {
        self.engine.lock().cfg.save_interval
    }
}

/// Writes the state every `save_interval` while it changes, until stopped.
async fn saver(running: std::sync::Weak<Running>, stop: CancellationToken) {
    loop {
        let Some(interval) = running.upgrade().map(|r| r.save_interval()) else {
            return;
        };
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
        match running.upgrade() {
            Some(r) => r.save().await,
            None => return,
        }
    }
}

/// Reads the state file; a missing file is a fresh start, a bad one is logged and replaced.
async fn load_state(path: &Path) -> RuleState {
    match tokio::fs::read(path).await {
        Ok(bytes) => RuleState::from_json(&bytes).unwrap_or_else(|e| {
            tracing::error!(file = %path.display(), error = %e, "alert state file unreadable; the rules start learning afresh");
            RuleState::new()
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => RuleState::new(),
        Err(e) => {
            tracing::error!(file = %path.display(), error = %e, "alert state file cannot be read; the rules start learning afresh");
            RuleState::new()
        }
    }
}

/// The audit record of an alert: the triggering event's identity (request id, session,
/// partner, client IP, share, key, status, decision) with `kind = "alert"`, `reason` = the
/// rule id, `method = "ALERT"` and `path` = the summary; no traffic figures, and DLP
/// findings (entities and counts, never values) only for `dlp_block`.
pub fn audit_event(alert: &Alert, trigger: &Event) -> Event {
    Event {
        time: alert.time,
        request_id: trigger.request_id.clone(),
        session_id: trigger.session_id.clone(),
        partner: alert.partner.clone(),
        client_ip: trigger.client_ip.clone(),
        method: "ALERT".into(),
        path: alert.summary.clone(),
        share: trigger.share.clone(),
        key: trigger.key.clone(),
        status: trigger.status,
        decision: trigger.decision,
        reason: alert.rule.id().into(),
        dlp: (alert.rule == Rule::DlpBlock)
            .then(|| trigger.dlp.clone())
            .flatten(),
        ..Event::blank(Kind::Alert)
    }
}

#[cfg(test)]
mod tests;
