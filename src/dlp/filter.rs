//! The gateway adapter: a [`ByteStream`] in, the scanned [`ByteStream`] out.
//!
//! Takes a [`Scanner`] and an object body; gives the transformed body and a [`SummaryHandle`]
//! that holds the stream's totals (for the audit event) once it has ended. Fails closed: an
//! error from the body is passed on and ends the stream; a `block` finding ends the stream with
//! an error item ([`BLOCKED`]) before any later byte goes out, and the summary says blocked.
//! Where `block` must be honoured before the first byte (GET), decide from a `Detect` pre-scan
//! instead; this adapter is the last line.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::Stream;
use parking_lot::Mutex;

use super::stream::{Scanner, Summary};
use crate::store::{ByteStream, StoreError};

/// The reason carried by the error item that ends a blocked stream.
pub const BLOCKED: &str = "content blocked by the DLP profile";

/// Shared view of a stream's totals; complete once the stream has ended.
#[derive(Debug, Clone, Default)]
pub struct SummaryHandle(Arc<Mutex<(Summary, bool)>>);

impl SummaryHandle {
    /// Totals so far.
    pub fn get(&self) -> Summary {
        self.0.lock().0.clone()
    }

    /// Whether the stream ran to its end (or failed): the totals are final.
    pub fn is_complete(&self) -> bool {
        self.0.lock().1
    }

    fn set(&self, summary: Summary, complete: bool) {
        *self.0.lock() = (summary, complete);
    }
}

/// Wraps `body` so that every chunk goes through `scanner` (findings are counted, not kept).
pub fn scan_stream(mut scanner: Scanner, body: ByteStream) -> (ByteStream, SummaryHandle) {
    scanner.keep_findings(false);
    let handle = SummaryHandle::default();
    let stream = ScanStream {
        scanner,
        body,
        ready: VecDeque::new(),
        scratch: Vec::new(),
        state: State::Running,
        handle: handle.clone(),
    };
    (Box::pin(stream), handle)
}

#[derive(PartialEq, Eq)]
enum State {
    Running,
    /// Input ended or failed; drain `ready`, then yield the error (if any), then end.
    Ending,
    Done,
}

struct ScanStream {
    scanner: Scanner,
    body: ByteStream,
    ready: VecDeque<Bytes>,
    scratch: Vec<Bytes>,
    state: State,
    handle: SummaryHandle,
}

impl ScanStream {
    fn take_output(&mut self) {
        self.ready
            .extend(self.scratch.drain(..).filter(|b| !b.is_empty()));
    }
}

impl Stream for ScanStream {
    type Item = Result<Bytes, StoreError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if this.scanner.blocked() && this.state != State::Done {
                this.state = State::Done;
                this.ready.clear();
                this.handle.set(this.scanner.summary(), true);
                return Poll::Ready(Some(Err(StoreError::Body(BLOCKED.into()))));
            }
            if let Some(b) = this.ready.pop_front() {
                return Poll::Ready(Some(Ok(b)));
            }
            match this.state {
                State::Done => return Poll::Ready(None),
                State::Ending => {
                    this.state = State::Done;
                    this.handle.set(this.scanner.summary(), true);
                    return Poll::Ready(None);
                }
                State::Running => {}
            }
            match this.body.as_mut().poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(chunk))) => {
                    this.scanner.push(chunk, &mut this.scratch);
                    this.take_output();
                    this.handle.set(this.scanner.summary(), false);
                }
                Poll::Ready(Some(Err(e))) => {
                    // Nothing held back goes out: the transfer is aborted, not ended.
                    this.state = State::Done;
                    this.ready.clear();
                    this.handle.set(this.scanner.summary(), true);
                    return Poll::Ready(Some(Err(e)));
                }
                Poll::Ready(None) => {
                    this.scanner.finish(&mut this.scratch);
                    this.take_output();
                    this.state = State::Ending;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt;

    use super::*;
    use crate::dlp::{Action, Engine, Pack, Profile, ScanMode};

    fn body(parts: Vec<Result<&'static str, StoreError>>) -> ByteStream {
        Box::pin(futures_util::stream::iter(
            parts
                .into_iter()
                .map(|p| p.map(|s| Bytes::from_static(s.as_bytes()))),
        ))
    }

    async fn collect(s: ByteStream) -> (String, Option<String>) {
        let items: Vec<_> = s.collect().await;
        let mut text = String::new();
        let mut err = None;
        for item in items {
            match item {
                Ok(b) => text.push_str(std::str::from_utf8(&b).unwrap()),
                Err(e) => err = Some(e.to_string()),
            }
        }
        (text, err)
    }

    fn engine(profile: Profile) -> Arc<Engine> {
        Arc::new(Engine::compile(&Pack::builtin(), &profile).unwrap())
    }

    #[tokio::test]
    async fn stream_adapter_masks_across_chunks_and_reports_totals() {
        let e = engine(Profile::default_masking());
        let parts = vec![
            Ok("card 4111 1111 "),
            Ok("1111 1111 and mail "),
            Ok("ann@example.org."),
        ];
        let (s, handle) = scan_stream(e.scanner(ScanMode::Transform), body(parts));
        let (text, err) = collect(s).await;
        assert_eq!(err, None);
        assert_eq!(text, "card **** **** **** 1111 and mail ***@*******.***.");
        assert!(handle.is_complete());
        let summary = handle.get();
        assert_eq!(summary.total(), 2);
        assert_eq!((summary.bytes_in, summary.bytes_out), (50, 50));
    }

    #[tokio::test]
    async fn stream_adapter_fails_closed_on_block_and_on_body_errors() {
        let mut p = Profile::default_masking();
        p.actions.insert("PRIVATE_KEY".into(), Action::Block);
        let e = engine(p);
        let pem = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo\n-----END RSA PRIVATE KEY-----\n";
        let (s, handle) = scan_stream(
            e.scanner(ScanMode::Transform),
            body(vec![Ok("x\n"), Ok(pem)]),
        );
        let (text, err) = collect(s).await;
        assert_eq!(
            err.as_deref(),
            Some(&*format!("request body failed: {BLOCKED}"))
        );
        assert!(!text.contains("MIIE"), "{text}");
        assert!(handle.get().blocked);

        let e = engine(Profile::default_masking());
        let parts = vec![Ok("ssn 536-22-"), Err(StoreError::Upstream("reset".into()))];
        let (s, handle) = scan_stream(e.scanner(ScanMode::Transform), body(parts));
        let (text, err) = collect(s).await;
        assert!(err.unwrap().contains("reset"));
        assert!(
            !text.contains("536"),
            "held-back bytes must not leak: {text}"
        );
        assert!(handle.is_complete());
    }
}
