//! Store streams through a sealer or an opener.
//!
//! Takes a [`ByteStream`] and a [`Sealer`] or [`Opener`]; gives a [`ByteStream`] of the
//! transformed chunks, polled lazily so memory stays at one segment plus the chunks in flight.
//! An input error passes through unchanged (so a PUT still sees `StoreError::Body`); a seal or
//! open failure becomes a `StoreError::Upstream` item naming the envelope error, after the
//! output that authenticated before it ([`is_integrity_failure`] tells the ones where the
//! stored object failed authentication, so the audit event can say so). After any error the stream ends, and it never ends
//! cleanly after one, so the HTTP layer aborts the response instead of finishing it.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::Stream;

use super::EnvelopeError;
use super::open::Opener;
use super::seal::Sealer;
use crate::store::{ByteStream, StoreError};

/// A chunk-in, chunk-out body transform with an end-of-stream call.
pub trait ChunkFilter: Send + Unpin + 'static {
    /// On error, `out` holds what was produced before the failure and may still be sent.
    fn push(&mut self, input: Bytes, out: &mut Vec<Bytes>) -> Result<(), EnvelopeError>;
    fn finish(&mut self, out: &mut Vec<Bytes>) -> Result<(), EnvelopeError>;
}

impl ChunkFilter for Sealer {
    fn push(&mut self, input: Bytes, out: &mut Vec<Bytes>) -> Result<(), EnvelopeError> {
        Sealer::push(self, input, out)
    }
    fn finish(&mut self, out: &mut Vec<Bytes>) -> Result<(), EnvelopeError> {
        Sealer::finish(self, out)
    }
}

impl ChunkFilter for Opener {
    fn push(&mut self, input: Bytes, out: &mut Vec<Bytes>) -> Result<(), EnvelopeError> {
        Opener::push(self, input, out)
    }
    fn finish(&mut self, out: &mut Vec<Bytes>) -> Result<(), EnvelopeError> {
        Opener::finish(self, out)
    }
}

/// The ciphertext of `plaintext`: header first, then the segments.
pub fn seal_stream(sealer: Sealer, plaintext: ByteStream) -> ByteStream {
    Box::pin(Filtered::new(sealer, plaintext))
}

/// The authenticated plaintext of `ciphertext`; an `Err` item on any integrity failure.
pub fn open_stream(opener: Opener, ciphertext: ByteStream) -> ByteStream {
    Box::pin(Filtered::new(opener, ciphertext))
}

/// How the error item of an integrity failure starts (see [`is_integrity_failure`]).
const INTEGRITY_FAILURE: &str = "envelope integrity: ";

/// The error item an envelope failure becomes in a store stream.
pub fn stream_error(e: &EnvelopeError) -> StoreError {
    if e.is_integrity_failure() {
        StoreError::Upstream(format!("{INTEGRITY_FAILURE}{e}"))
    } else {
        StoreError::Upstream(format!("envelope: {e}"))
    }
}

/// True for the error item an opened stream ends with when the stored object itself failed
/// authentication (tampered, truncated, extended, moved), as opposed to a store that failed
/// to deliver it or a transfer cut for other reasons. Input errors pass through an open
/// unchanged and never start with this marker, which only [`stream_error`] writes.
pub fn is_integrity_failure(e: &StoreError) -> bool {
    matches!(e, StoreError::Upstream(detail) if detail.starts_with(INTEGRITY_FAILURE))
}

enum Phase {
    Running,
    /// Input ended and the filter finished; send what is ready, then end.
    Ended,
    /// Send what is ready, then this error, then nothing.
    Failing(StoreError),
    Done,
}

struct Filtered<F> {
    filter: F,
    input: ByteStream,
    ready: VecDeque<Bytes>,
    scratch: Vec<Bytes>,
    phase: Phase,
}

impl<F: ChunkFilter> Filtered<F> {
    fn new(filter: F, input: ByteStream) -> Filtered<F> {
        Filtered {
            filter,
            input,
            ready: VecDeque::new(),
            scratch: Vec::new(),
            phase: Phase::Running,
        }
    }

    fn collect(&mut self, result: Result<(), EnvelopeError>, at_end: bool) {
        self.ready.extend(self.scratch.drain(..));
        self.phase = match result {
            Err(e) => Phase::Failing(stream_error(&e)),
            Ok(()) if at_end => Phase::Ended,
            Ok(()) => Phase::Running,
        };
    }
}

impl<F: ChunkFilter> Stream for Filtered<F> {
    type Item = Result<Bytes, StoreError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if let Some(chunk) = this.ready.pop_front() {
                return Poll::Ready(Some(Ok(chunk)));
            }
            match std::mem::replace(&mut this.phase, Phase::Done) {
                Phase::Done | Phase::Ended => return Poll::Ready(None),
                Phase::Failing(e) => return Poll::Ready(Some(Err(e))),
                Phase::Running => this.phase = Phase::Running,
            }
            match this.input.as_mut().poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(chunk))) => {
                    let r = this.filter.push(chunk, &mut this.scratch);
                    this.collect(r, false);
                }
                Poll::Ready(Some(Err(e))) => this.phase = Phase::Failing(e),
                Poll::Ready(None) => {
                    let r = this.filter.finish(&mut this.scratch);
                    this.collect(r, true);
                }
            }
        }
    }
}
