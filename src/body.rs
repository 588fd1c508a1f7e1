//! Bodies in and out of the pipeline.
//!
//! Takes hyper's request body and store streams; gives a counted, size-limited upload stream
//! and a response body that records the request's audit event exactly once, when the body has
//! been sent completely or abandoned (then marked `aborted`). A store error mid-stream becomes
//! a body error, so hyper aborts the response instead of ending it cleanly; when that error
//! says the stored object failed authentication (an envelope object tampered with after its
//! response started), the event's decision becomes `deny` with reason
//! [`INTEGRITY_FAILURE_REASON`], so the trail tells it from a client that went away.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::StreamExt;
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, Empty, Full, StreamBody, combinators::UnsyncBoxBody};

use crate::audit::{Audit, Decision, Event};
use crate::store::{ByteStream, StoreError};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// The response body type of the whole gateway.
pub type ResponseBody = UnsyncBoxBody<Bytes, BoxError>;

pub fn empty() -> ResponseBody {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

pub fn full(data: impl Into<Bytes>) -> ResponseBody {
    Full::new(data.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

pub fn stream(s: ByteStream) -> ResponseBody {
    BodyExt::boxed_unsync(StreamBody::new(
        s.map(|r| r.map(Frame::data).map_err(|e| Box::new(e) as BoxError)),
    ))
}

/// Paces a stream through byte-rate limits: each chunk waits until it may pass.
pub fn paced(s: ByteStream, pacing: crate::ratelimit::Pacing) -> ByteStream {
    if pacing.is_unlimited() {
        return s;
    }
    Box::pin(s.then(move |chunk| {
        let pacing = pacing.clone();
        async move {
            if let Ok(c) = &chunk {
                pacing.acquire(c.len() as u64).await;
            }
            chunk
        }
    }))
}

/// Ends a transfer in flight when the access that started it ends: the session or partner
/// is revoked, the partner is suspended or removed by a reload, or the partner's or grant's
/// `valid_until` passes. Checked at most every
/// half second; a cut transfer fails (the response is aborted, an upload stores nothing).
#[derive(Clone)]
pub struct Cutoff {
    pub revocations: std::sync::Arc<crate::revocation::Revocations>,
    /// Suspension or removal of the partner by a reload.
    pub gate: std::sync::Arc<crate::state::PartnerGate>,
    pub partner: String,
    pub session_id: String,
    pub issued_at: jiff::Timestamp,
    pub deadline: Option<jiff::Timestamp>,
}

impl Cutoff {
    fn ended(&self) -> bool {
        let now = jiff::Timestamp::now();
        self.deadline.is_some_and(|d| now >= d)
            || !self.gate.is_active(&self.partner)
            || self
                .revocations
                .is_revoked(&self.partner, &self.session_id, self.issued_at)
    }
}

/// Wraps a stream so it fails once `cutoff` says the access has ended.
pub fn guarded(s: ByteStream, cutoff: Cutoff) -> ByteStream {
    let mut next_check = std::time::Instant::now();
    Box::pin(s.map(move |chunk| {
        if chunk.is_ok() && std::time::Instant::now() >= next_check {
            next_check = std::time::Instant::now() + std::time::Duration::from_millis(500);
            if cutoff.ended() {
                return Err(StoreError::Body("access ended during the transfer".into()));
            }
        }
        chunk
    }))
}

/// Counters shared between an upload stream and the request that owns it.
#[derive(Default, Debug)]
pub struct Upload {
    pub bytes: AtomicU64,
    /// Set when the body went over the limit.
    pub too_large: AtomicBool,
}

/// Turns a request body into a store stream that counts bytes and fails past `limit`.
pub fn upload<B>(body: B, limit: u64, counters: Arc<Upload>) -> ByteStream
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let frames = http_body_util::BodyStream::new(body);
    Box::pin(frames.filter_map(move |frame| {
        let counters = counters.clone();
        async move {
            match frame {
                Ok(f) => {
                    let data = f.into_data().ok()?;
                    let total = counters
                        .bytes
                        .fetch_add(data.len() as u64, Ordering::AcqRel)
                        + data.len() as u64;
                    if total > limit {
                        counters.too_large.store(true, Ordering::Release);
                        return Some(Err(StoreError::Body("body exceeds the size limit".into())));
                    }
                    Some(Ok(data))
                }
                Err(e) => Some(Err(StoreError::Body(e.to_string()))),
            }
        }
    }))
}

/// The audit reason of a response cut because the stored object failed authentication (the
/// same code a failure found before the response started gets).
pub const INTEGRITY_FAILURE_REASON: &str = "object_integrity_failed";

/// Whether a response body error is an integrity failure of the stored object.
fn is_integrity_failure(e: &BoxError) -> bool {
    e.downcast_ref::<StoreError>()
        .is_some_and(crate::crypto::stream::is_integrity_failure)
}

/// A response body that records `event` once it is finished or dropped.
pub struct Recorded {
    inner: ResponseBody,
    event: Option<Event>,
    audit: Audit,
    /// Metrics and live sessions, told about the event once it is recorded.
    observers: Option<std::sync::Arc<crate::state::Observers>>,
    sent: u64,
    done: bool,
    /// The body failed because the stored object did not authenticate.
    integrity_failed: bool,
    started: std::time::Instant,
    /// Dropped with the body: rate-limit permits held for the whole transfer.
    _hold: Option<Box<dyn Send>>,
}

impl Recorded {
    pub fn new(
        inner: ResponseBody,
        event: Event,
        audit: Audit,
        started: std::time::Instant,
        hold: Option<Box<dyn Send>>,
    ) -> Recorded {
        let done = inner.is_end_stream();
        Recorded {
            inner,
            event: Some(event),
            audit,
            observers: None,
            sent: 0,
            done,
            integrity_failed: false,
            started,
            _hold: hold,
        }
    }

    /// Also tells `observers` about the event once it is recorded.
    pub fn observed_by(mut self, observers: std::sync::Arc<crate::state::Observers>) -> Recorded {
        self.observers = Some(observers);
        self
    }

    fn finish(&mut self) {
        if let Some(mut ev) = self.event.take() {
            ev.bytes_out = self.sent;
            ev.aborted = !self.done;
            if self.integrity_failed {
                ev.decision = Decision::Deny;
                ev.reason = INTEGRITY_FAILURE_REASON.into();
            }
            ev.duration_ms = self.started.elapsed().as_secs_f64() * 1000.0;
            self.audit.record(&ev);
            if let Some(o) = &self.observers {
                o.observe(&ev);
            }
        }
    }
}

impl Body for Recorded {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let res = Pin::new(&mut this.inner).poll_frame(cx);
        match &res {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(d) = frame.data_ref() {
                    this.sent += d.len() as u64;
                }
                // hyper stops polling once the body says it has ended.
                if this.inner.is_end_stream() {
                    this.done = true;
                    this.finish();
                }
            }
            Poll::Ready(None) => {
                this.done = true;
                this.finish();
            }
            Poll::Ready(Some(Err(e))) => {
                this.integrity_failed = is_integrity_failure(e);
                this.finish();
            }
            Poll::Pending => {}
        }
        res
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Recorded {
    fn drop(&mut self) {
        self.finish();
    }
}
