//! Detect passes over whole objects: the upload tap of PUT and the pre-scan of GET and HEAD.
//!
//! Takes an object scanner (detect mode) and a body; [`tap`] passes the body through unchanged
//! while scanning it (constant memory: the scanner's carry-over) and ends it with an error
//! item as soon as a `block` finding or unscannable content under `on_unscannable = "block"`
//! is seen, so the store never completes such an upload; [`prescan`] reads a body to its end
//! (or to the first block) and gives the [`Verdict`]. Findings are counted, never kept.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use parking_lot::Mutex;

use super::verdict::Verdict;
use crate::dlp::Scanner;
use crate::store::{ByteStream, StoreError};

/// The scan state of one detect pass.
struct Inspection {
    scanner: Scanner,
    scratch: Vec<Bytes>,
}

impl Inspection {
    fn new(mut scanner: Scanner) -> Inspection {
        scanner.keep_findings(false);
        Inspection {
            scanner,
            scratch: Vec::new(),
        }
    }

    fn push(&mut self, chunk: &Bytes) {
        self.scanner.push(chunk.clone(), &mut self.scratch);
        self.scratch.clear();
    }

    fn finish(&mut self) {
        self.scanner.finish(&mut self.scratch);
        self.scratch.clear();
    }

    /// A `block` finding, or unscannable content under `on_unscannable = "block"`.
    fn blocked(&self) -> bool {
        self.scanner.blocked()
    }

    /// Unscannable content (blocked or passed): nothing more to learn from the rest.
    fn settled(&self) -> bool {
        self.blocked() || self.scanner.summary().unscannable.is_some()
    }

    fn verdict(&self) -> Verdict {
        Verdict::from_summary(&self.scanner.summary())
    }
}

/// How an upload's scan ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inbound {
    /// Still running (or the body failed for another reason).
    Running,
    /// A `block` finding: the upload was failed.
    Blocked(Verdict),
    /// Unscannable content under `on_unscannable = "block"`: the upload was failed.
    UnscannableBlocked,
    /// The whole body was scanned (or passed as unscannable).
    Complete(Verdict),
}

/// Shared view of a tap's outcome.
#[derive(Clone)]
pub struct InboundHandle(Arc<Mutex<Inbound>>);

impl InboundHandle {
    pub fn get(&self) -> Inbound {
        self.0.lock().clone()
    }
}

/// Passes `body` through unchanged while scanning it; fails it on `block` or on unscannable
/// content the profile refuses.
pub fn tap(scanner: Scanner, body: ByteStream) -> (ByteStream, InboundHandle) {
    let handle = InboundHandle(Arc::new(Mutex::new(Inbound::Running)));
    let tap = Tap {
        inspection: Inspection::new(scanner),
        body,
        handle: handle.clone(),
        done: false,
    };
    (Box::pin(tap), handle)
}

struct Tap {
    inspection: Inspection,
    body: ByteStream,
    handle: InboundHandle,
    done: bool,
}

impl Tap {
    /// The refusal the scan so far calls for, recorded in the handle.
    fn refusal(&mut self) -> Option<StoreError> {
        if !self.inspection.blocked() {
            return None;
        }
        let verdict = self.inspection.verdict();
        let outcome = if verdict.unscannable {
            Inbound::UnscannableBlocked
        } else {
            Inbound::Blocked(verdict)
        };
        *self.handle.0.lock() = outcome;
        self.done = true;
        Some(StoreError::Body(crate::dlp::BLOCKED.into()))
    }
}

impl Stream for Tap {
    type Item = Result<Bytes, StoreError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        match this.body.as_mut().poll_next(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(chunk))) => {
                this.inspection.push(&chunk);
                match this.refusal() {
                    Some(e) => Poll::Ready(Some(Err(e))),
                    None => Poll::Ready(Some(Ok(chunk))),
                }
            }
            Poll::Ready(Some(Err(e))) => {
                this.done = true;
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(None) => {
                this.inspection.finish();
                if let Some(e) = this.refusal() {
                    return Poll::Ready(Some(Err(e)));
                }
                *this.handle.0.lock() = Inbound::Complete(this.inspection.verdict());
                this.done = true;
                Poll::Ready(None)
            }
        }
    }
}

/// Reads `body` through a detect pass; stops early at the first `block` finding or once the
/// content is known to be unscannable.
pub async fn prescan(scanner: Scanner, mut body: ByteStream) -> Result<Verdict, StoreError> {
    let mut inspection = Inspection::new(scanner);
    loop {
        match body.next().await {
            Some(chunk) => {
                inspection.push(&chunk?);
                if inspection.settled() {
                    break;
                }
            }
            None => {
                inspection.finish();
                break;
            }
        }
    }
    Ok(inspection.verdict())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dlp::format::FormatHint;
    use crate::dlp::{Action, Engine, Pack, Profile, ScanMode};

    fn scanner(block_keys: bool, pass: bool) -> Scanner {
        let mut p = Profile::default_masking();
        if block_keys {
            p.actions.insert("PRIVATE_KEY".into(), Action::Block);
        }
        if pass {
            p.on_unscannable = crate::dlp::format::OnUnscannable::Pass;
        }
        let e = Arc::new(Engine::compile(&Pack::builtin(), &p).unwrap());
        let hint = FormatHint {
            content_type: Some("text/plain"),
            name: Some("x.txt"),
            forced: None,
        };
        e.scanner_for(ScanMode::Detect, &hint)
    }

    fn body(parts: &[&'static [u8]]) -> ByteStream {
        let items: Vec<Result<Bytes, StoreError>> =
            parts.iter().map(|p| Ok(Bytes::from_static(p))).collect();
        Box::pin(futures_util::stream::iter(items))
    }

    async fn drain(s: ByteStream) -> (Vec<u8>, Option<StoreError>) {
        let mut out = Vec::new();
        let mut s = s;
        while let Some(item) = s.next().await {
            match item {
                Ok(b) => out.extend_from_slice(&b),
                Err(e) => return (out, Some(e)),
            }
        }
        (out, None)
    }

    const PEM: &[u8] = b"-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo\n-----END RSA PRIVATE KEY-----\n";
    const GZIP: &[u8] = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03zz";

    #[tokio::test]
    async fn the_tap_passes_bytes_unchanged_and_counts_findings() {
        let (s, h) = tap(
            scanner(true, false),
            body(&[b"card 4111 1111 ", b"1111 1111\n"]),
        );
        let (out, err) = drain(s).await;
        assert!(err.is_none());
        assert_eq!(out, b"card 4111 1111 1111 1111\n");
        match h.get() {
            Inbound::Complete(v) => {
                assert_eq!(v.findings.len(), 1);
                assert_eq!(v.findings[0].detector, "credit_card");
                assert_eq!(v.findings[0].count, 1);
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn the_tap_fails_the_body_on_block_and_on_refused_unscannable_content() {
        let (s, h) = tap(scanner(true, false), body(&[b"x\n", PEM]));
        let (_, err) = drain(s).await;
        assert!(err.is_some());
        assert!(matches!(h.get(), Inbound::Blocked(_)), "{:?}", h.get());

        let (s, h) = tap(scanner(true, false), body(&[GZIP]));
        assert!(drain(s).await.1.is_some());
        assert_eq!(h.get(), Inbound::UnscannableBlocked);

        let (s, h) = tap(scanner(true, true), body(&[GZIP]));
        let (out, err) = drain(s).await;
        assert!(err.is_none());
        assert_eq!(out, GZIP);
        match h.get() {
            Inbound::Complete(v) => assert!(v.unscannable),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn prescan_gives_the_same_verdict_as_the_tap() {
        let parts: &[&'static [u8]] = &[b"mail ann@example.org, ", b"ssn 536-22-8845\n"];
        let v = prescan(scanner(false, false), body(parts)).await.unwrap();
        let (s, h) = tap(scanner(false, false), body(parts));
        drain(s).await;
        assert_eq!(h.get(), Inbound::Complete(v.clone()));
        assert_eq!(v.findings.len(), 2);
        let v = prescan(scanner(true, false), body(&[PEM])).await.unwrap();
        assert!(v.blocks());
    }
}
