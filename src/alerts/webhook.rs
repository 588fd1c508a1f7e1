//! The alert webhook: a bounded queue and one sender task.
//!
//! Takes alerts ([`Outbox::push`], never waits: a short lock and a notify) and the receiver's
//! settings (swapped on reload); gives one JSON POST per alert (the [`Alert`] as its body),
//! sent in order by [`run`]. A 2xx answer delivers it; a connection error, a timeout, 408,
//! 429 or 5xx is retried after `backoff`, doubled each time up to `max_backoff`, until
//! `max_attempts` are used; any other answer refuses it at once. When the queue is full the
//! oldest waiting alert is dropped. Every outcome is counted
//! (`gatehouse_alert_webhooks_total{result}`), and every alert is in the audit trail anyway.
//! With a secret, each POST carries `x-gatehouse-signature: t=<unix seconds>,sha256=<hex>`,
//! the HMAC-SHA256 of `<t>.<body>` under the secret.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use aws_lc_rs::hmac;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::{Alert, Clock};
use crate::config::{WebhookConfig, WebhookSecret};
use crate::metrics::AlertCounters;

/// The header that carries the HMAC signature.
pub const SIGNATURE_HEADER: &str = "x-gatehouse-signature";

/// How the sender waits between attempts (the tests record the waits instead).
#[async_trait::async_trait]
pub trait Pause: Send + Sync + 'static {
    async fn pause(&self, d: Duration);
}

/// Waits on the Tokio timer.
pub struct Sleep;

#[async_trait::async_trait]
impl Pause for Sleep {
    async fn pause(&self, d: Duration) {
        tokio::time::sleep(d).await;
    }
}

/// Alerts waiting to be posted, and where to.
pub struct Outbox {
    settings: ArcSwapOption<WebhookConfig>,
    queue: parking_lot::Mutex<VecDeque<Vec<u8>>>,
    ready: Notify,
    counters: AlertCounters,
}

impl Outbox {
    pub fn new(settings: Option<WebhookConfig>, counters: AlertCounters) -> Arc<Outbox> {
        Arc::new(Outbox {
            settings: ArcSwapOption::from(settings.map(Arc::new)),
            queue: parking_lot::Mutex::new(VecDeque::new()),
            ready: Notify::new(),
            counters,
        })
    }

    /// Takes the receiver of a new configuration (`None`: no webhook; nothing is queued).
    pub fn set(&self, settings: Option<WebhookConfig>) {
        self.settings.store(settings.map(Arc::new));
    }

    /// Queues one alert; when the queue is full, drops the oldest waiting one.
    pub fn push(&self, alert: &Alert) {
        let Some(settings) = self.settings.load_full() else {
            return;
        };
        let Ok(body) = serde_json::to_vec(alert) else {
            return;
        };
        {
            let mut q = self.queue.lock();
            while q.len() >= settings.queue {
                q.pop_front();
                self.counters.webhook("dropped");
            }
            q.push_back(body);
        }
        self.ready.notify_one();
    }

    /// Alerts waiting.
    pub fn len(&self) -> usize {
        self.queue.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The oldest waiting alert, when there is one.
    async fn next(&self) -> Vec<u8> {
        loop {
            if let Some(body) = self.queue.lock().pop_front() {
                return body;
            }
            self.ready.notified().await;
        }
    }
}

/// Posts queued alerts one at a time, in order, until `stop`.
pub async fn run(
    outbox: Arc<Outbox>,
    pause: Arc<dyn Pause>,
    clock: Arc<dyn Clock>,
    stop: CancellationToken,
) {
    let client = match reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "alert webhook client cannot be set up; alerts stay in the audit trail only");
            return;
        }
    };
    loop {
        let body = tokio::select! {
            () = stop.cancelled() => return,
            body = outbox.next() => body,
        };
        let delivered = tokio::select! {
            () = stop.cancelled() => return,
            ok = deliver(&outbox, &client, &*pause, &*clock, &body) => ok,
        };
        outbox
            .counters
            .webhook(if delivered { "delivered" } else { "failed" });
    }
}

/// What one attempt came to.
enum Attempt {
    Delivered,
    /// Worth another try: no answer, a timeout, 408, 429, 5xx.
    Retry(String),
    /// The receiver refused it for good (another 4xx, a redirect).
    Refused(u16),
}

/// Tries one alert until it is delivered, refused, or its attempts are used up.
async fn deliver(
    outbox: &Outbox,
    client: &reqwest::Client,
    pause: &dyn Pause,
    clock: &dyn Clock,
    body: &[u8],
) -> bool {
    let mut attempt = 1;
    loop {
        let Some(s) = outbox.settings.load_full() else {
            return false;
        };
        match post(client, &s, body, clock.now()).await {
            Attempt::Delivered => return true,
            Attempt::Refused(status) => {
                tracing::warn!(status, "alert webhook refused an alert");
                return false;
            }
            Attempt::Retry(why) if attempt >= s.max_attempts => {
                tracing::warn!(attempts = attempt, error = %why, "alert webhook unreachable; alert given up");
                return false;
            }
            Attempt::Retry(why) => {
                tracing::debug!(attempt, error = %why, "alert webhook attempt failed; retrying");
                pause.pause(backoff(&s, attempt)).await;
                attempt += 1;
            }
        }
    }
}

/// The wait after failed attempt number `attempt` (1-based): `backoff × 2^(attempt-1)`,
/// at most `max_backoff`.
pub fn backoff(s: &WebhookConfig, attempt: u32) -> Duration {
    let factor = 2u32.saturating_pow(attempt.saturating_sub(1));
    s.backoff.saturating_mul(factor).min(s.max_backoff)
}

async fn post(
    client: &reqwest::Client,
    s: &WebhookConfig,
    body: &[u8],
    now: jiff::Timestamp,
) -> Attempt {
    let mut req = client
        .post(&s.url)
        .timeout(s.timeout)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body.to_vec());
    if let Some(secret) = &s.secret {
        req = req.header(SIGNATURE_HEADER, signature(secret, now.as_second(), body));
    }
    match req.send().await {
        Ok(resp) => {
            let status = resp.status().as_u16();
            match status {
                200..=299 => Attempt::Delivered,
                408 | 429 | 500..=599 => Attempt::Retry(format!("HTTP {status}")),
                _ => Attempt::Refused(status),
            }
        }
        Err(e) => Attempt::Retry(e.without_url().to_string()),
    }
}

/// `t=<unix seconds>,sha256=<hex of HMAC-SHA256(secret, "<t>." ‖ body)>`.
pub fn signature(secret: &WebhookSecret, unix_seconds: i64, body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, &secret.0);
    let mut ctx = hmac::Context::with_key(&key);
    ctx.update(format!("{unix_seconds}.").as_bytes());
    ctx.update(body);
    let tag = ctx.sign();
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("t={unix_seconds},sha256={hex}")
}

#[cfg(test)]
#[path = "webhook_tests.rs"]
mod tests;
