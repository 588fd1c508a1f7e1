//! The audit trail: one JSON line per token event and per data request, allowed or denied,
//! hash-chained and signed.
//!
//! Takes typed [`Event`]s from the pipeline; gives a tamper-evident trail of segment files
//! under the audit directory, written by a dedicated thread so request tasks never block on
//! disk. Layout: [`chain`] (the hash chain and file names), [`keys`] (Ed25519 checkpoint keys),
//! `writer` (the thread: group commit, checkpoints, rotation, retention), [`flood`]
//! (aggregation of unauthenticated refusals), [`verify`], [`search`] and [`cli`] (the analyst's
//! `gatehouse audit` commands). Fails closed: when a write or sync fails, [`Audit::healthy`]
//! turns false and the pipeline refuses requests until a later write succeeds, and a request
//! that serves object bytes first waits for its durable `request_start` record
//! ([`Audit::before_first_byte`]). Events are written through this module only, never through
//! `tracing`, and never hold tokens, keys, external ids or object contents.

pub mod anchor;
pub mod archive;
pub mod chain;
pub mod cli;
pub mod flood;
pub mod keys;
pub mod ocsf;
pub mod search;
pub mod trace;
pub mod verify;
mod writer;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;

use serde::Serialize;
use tokio::sync::oneshot;

use crate::config::AuditConfig;
use writer::{Msg, Shared, Writer};

/// Allowed or denied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    Allow,
    Deny,
}

/// What kind of event a line records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// `POST /v1/token`, issued or refused.
    Token,
    /// A data-plane request (or a refused attempt at one).
    Request,
    /// An operator action through the admin listener (revocation).
    Admin,
    /// An alert raised by a rule of `crate::alerts` (reason: the rule id).
    Alert,
    /// The end of a session (reason: `session_expired`, `session_revoked`,
    /// `partner_suspended`), with its totals; its start is the `token` event that issued it.
    Session,
}

/// The TLS connection a token was issued over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TlsFacts {
    /// `TLSv1_3` or `TLSv1_2`.
    pub version: &'static str,
    /// IANA name of the cipher suite, e.g. `TLS13_AES_256_GCM_SHA384`.
    pub cipher: &'static str,
}

/// One audit record. Optional fields are omitted when unknown.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    pub time: jiff::Timestamp,
    pub kind: Kind,
    pub request_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partner: Option<String>,
    pub client_ip: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    pub method: String,
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub share: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub range: Option<String>,
    pub status: u16,
    pub decision: Decision,
    /// Stable reason code (`ok` for allowed requests).
    pub reason: String,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// The response body ended early (client went away or upstream failed).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub aborted: bool,
    pub duration_ms: f64,
    /// Token events: the partner key that signed the assertion.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// Token events: lifetime granted, seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<String>>,
    /// Data requests on shares with a DLP profile: the profile, what it did, and its findings
    /// by entity, detector and action with counts (never the values).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dlp: Option<crate::data::DlpRecord>,
    /// Token events: the TLS version and cipher suite of the connection.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsFacts>,
    /// Token events: the identity provider (issuer) whose token was exchanged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idp: Option<String>,
    /// Token events: the session's authentication methods (RFC 8176 `amr`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub amr: Option<Vec<String>>,
    /// Token events: the shares the client asked for in `scope` (absent: it named none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requested_scopes: Option<Vec<String>>,
    /// Data requests on envelope shares: the data key's wrapping key and where its plaintext
    /// came from (cache or key service).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_key: Option<trace::DataKeyUse>,
    /// Data requests: time spent waiting on the object store (until its response headers;
    /// for uploads, until the body was stored), ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream_ms: Option<f64>,
}

impl Event {
    /// An event of `kind` arriving now, with a fresh request id and nothing else known yet
    /// (denied, status 0, no reason): producers set what they know with struct-update syntax.
    pub fn blank(kind: Kind) -> Event {
        Event {
            time: jiff::Timestamp::now(),
            kind,
            request_id: ulid::Ulid::new().to_string(),
            session_id: None,
            partner: None,
            client_ip: String::new(),
            user_agent: None,
            method: String::new(),
            path: String::new(),
            share: None,
            key: None,
            range: None,
            status: 0,
            decision: Decision::Deny,
            reason: String::new(),
            bytes_in: 0,
            bytes_out: 0,
            aborted: false,
            duration_ms: 0.0,
            key_id: None,
            expires_in: None,
            scopes: None,
            dlp: None,
            tls: None,
            idp: None,
            amr: None,
            requested_scopes: None,
            data_key: None,
            upstream_ms: None,
        }
    }
}

/// The trail could not confirm a record: the request must be refused (fail closed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the audit trail cannot be written")]
pub struct Unavailable;

/// Handle to the audit writer. Cheap to clone.
#[derive(Clone)]
pub struct Audit {
    inner: Arc<Inner>,
}

struct Inner {
    tx: mpsc::Sender<Msg>,
    shared: Arc<Shared>,
    key_id: String,
    /// The S3 archive task, when `[audit.archive]` is set; taken by [`Audit::close`].
    archive: parking_lot::Mutex<Option<archive::Handle>>,
    archive_progress: Option<tokio::sync::watch::Receiver<archive::Progress>>,
}

impl Audit {
    /// Opens (creating) the audit directory and the checkpoint key, continues the trail's
    /// chain and starts the writer thread. Fails when the directory, the key or the active
    /// file cannot be created or read. Blocking.
    pub fn open(cfg: &AuditConfig) -> std::io::Result<Audit> {
        let writer = Writer::start(cfg, jiff::Timestamp::now())?;
        let key_id = writer.key_id().to_string();
        let (tx, rx) = mpsc::channel::<Msg>();
        let shared = Arc::new(Shared {
            healthy: AtomicBool::new(true),
            written: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            flood: parking_lot::Mutex::new(flood::Flood::new(
                cfg.unauthenticated_burst,
                cfg.unauthenticated_interval,
            )),
            wake: tokio::sync::Notify::new(),
            durable: parking_lot::Mutex::new(None),
        });
        let archive = cfg
            .archive
            .as_ref()
            .map(|a| archive::start(a, &cfg.dir, shared.clone()))
            .transpose()?;
        let archive_progress = archive.as_ref().map(archive::Handle::progress);
        let s = shared.clone();
        std::thread::Builder::new()
            .name("gatehouse-audit".into())
            .spawn(move || writer.run(rx, &s))?;
        Ok(Audit {
            inner: Arc::new(Inner {
                tx,
                shared,
                key_id,
                archive: parking_lot::Mutex::new(archive),
                archive_progress,
            }),
        })
    }

    /// False after a failed write, until a later write succeeds. Requests are refused meanwhile.
    pub fn healthy(&self) -> bool {
        self.inner.shared.healthy.load(Ordering::Acquire)
    }

    /// Events on disk so far: records given to [`Audit::record`] and
    /// [`Audit::record_durable`] (`request_start` included), not checkpoints, `trail_opened`
    /// or aggregated summaries (for tests and metrics).
    pub fn written(&self) -> u64 {
        self.inner.shared.written.load(Ordering::Acquire)
    }

    /// Failed write attempts since start (for metrics).
    pub fn write_failures(&self) -> u64 {
        self.inner.shared.failures.load(Ordering::Relaxed)
    }

    /// The id of the key that signs this trail's checkpoints.
    pub fn key_id(&self) -> &str {
        &self.inner.key_id
    }

    /// Queues one event. Never blocks. Unauthenticated refusals past their budget are only
    /// counted (see [`flood`]).
    pub fn record(&self, event: &Event) {
        if is_unauthenticated_refusal(event) {
            let admitted = self.inner.shared.flood.lock().admit(
                &event.client_ip,
                &event.reason,
                std::time::Instant::now(),
                event.time,
            );
            if !admitted {
                return;
            }
        }
        if let Some(body) = self.serialise(event) {
            self.send(Msg::Record(body, None));
        }
    }

    /// Queues one event and completes once it is on disk (synced), sharing the sync with
    /// every record queued meanwhile. Fails when the trail cannot write it.
    pub async fn record_durable(&self, event: &Event) -> Result<(), Unavailable> {
        let body = self.serialise(event).ok_or(Unavailable)?;
        self.durable(body).await
    }

    /// The durable-before-first-byte rule: when the response about to be sent for `draft`
    /// carries object bytes (an allowed GET of a key, 200 or 206), records a copy of it as a
    /// `request_start` record and waits until that is synced. Otherwise completes at once.
    /// The request's own record follows when its body has ended.
    pub async fn before_first_byte(&self, draft: &Event, status: u16) -> Result<(), Unavailable> {
        let serves_object = draft.kind == Kind::Request
            && draft.method == "GET"
            && draft.key.is_some()
            && matches!(status, 200 | 206)
            && (draft.reason.is_empty() || draft.reason == "ok");
        if !serves_object {
            return Ok(());
        }
        self.durable(start_record(draft, status)?).await
    }

    /// Uploads: a durable `request_start` record (status 0: not known yet) before the first
    /// byte of the body is stored, so no object is written that the trail does not know of.
    pub async fn before_store(&self, draft: &Event) -> Result<(), Unavailable> {
        self.durable(start_record(draft, 0)?).await
    }

    async fn durable(&self, body: Vec<u8>) -> Result<(), Unavailable> {
        let (tx, rx) = oneshot::channel();
        self.send(Msg::Record(body, Some(tx)));
        confirmed(rx).await
    }

    /// Completes once everything queued so far, and the aggregated refusals counted so far,
    /// are on disk.
    pub async fn flush(&self) -> Result<(), Unavailable> {
        let (tx, rx) = oneshot::channel();
        self.send(Msg::Flush(tx));
        confirmed(rx).await
    }

    /// The shutdown hook: writes everything queued and a signed `shutdown` checkpoint, syncs,
    /// and stops the writer. Events recorded afterwards are refused (the gateway reports
    /// unhealthy). Call once, after the listener has drained.
    pub async fn close(&self) -> Result<(), Unavailable> {
        let (tx, rx) = oneshot::channel();
        self.send(Msg::Close(tx));
        let closed = confirmed(rx).await;
        let archive = self.inner.archive.lock().take();
        if let Some(a) = archive {
            a.finish().await;
        }
        closed
    }

    /// What the S3 archive has anchored and shipped so far; `None` without `[audit.archive]`.
    pub fn archive_progress(&self) -> Option<tokio::sync::watch::Receiver<archive::Progress>> {
        self.inner.archive_progress.clone()
    }

    /// The event as the OCSF record the writer chains, made on the caller's thread so the
    /// single writer thread only chains, writes and syncs.
    fn serialise(&self, event: &Event) -> Option<Vec<u8>> {
        let line = ocsf::encode_event(event);
        if line.is_none() {
            tracing::error!("audit event could not be serialised");
            self.inner.shared.healthy.store(false, Ordering::Release);
        }
        line
    }

    fn send(&self, msg: Msg) {
        if self.inner.tx.send(msg).is_err() {
            self.inner.shared.healthy.store(false, Ordering::Release);
        }
    }
}

/// The `request_start` record of `draft`: its fields so far, allowed, with `status`.
fn start_record(draft: &Event, status: u16) -> Result<Vec<u8>, Unavailable> {
    if draft.kind == Kind::Request {
        return Ok(ocsf::encode_request(draft, Some(status)));
    }
    let mut start = serde_json::to_value(draft).map_err(|_| Unavailable)?;
    start["kind"] = "request_start".into();
    start["status"] = status.into();
    start["decision"] = "allow".into();
    start["reason"] = "ok".into();
    Ok(ocsf::encode_value(start))
}

async fn confirmed(rx: oneshot::Receiver<bool>) -> Result<(), Unavailable> {
    match rx.await {
        Ok(true) => Ok(()),
        _ => Err(Unavailable),
    }
}

/// A refusal made before anyone was authenticated: what a flood without valid tokens makes.
fn is_unauthenticated_refusal(event: &Event) -> bool {
    match event.kind {
        Kind::Request => event.decision == Decision::Deny && event.session_id.is_none(),
        Kind::Token => matches!(event.reason.as_str(), "token_rate_limited" | "locked_out"),
        Kind::Admin | Kind::Alert | Kind::Session => false,
    }
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
