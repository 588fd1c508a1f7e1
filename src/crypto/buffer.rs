//! Segment buffers that come back when the body writer is done with them.
//!
//! Takes nothing; gives one stream's buffers of one ciphertext segment each, already
//! initialised, and turns a filled buffer into [`Bytes`] whose drop returns the buffer to the
//! stream's pool. So a steady stream neither allocates nor zero-fills per segment, in safe code
//! (a `BytesMut` split off to the consumer cannot be reused before it is dropped, and growing
//! it back means writing every byte). Holds at most [`IDLE`] idle buffers; cannot fail.

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;

use super::format::SEGMENT_CIPHERTEXT_SIZE;

/// Idle buffers kept per stream; more in flight are allocated and freed normally.
pub const IDLE: usize = 2;

/// One stream's buffer pool.
#[derive(Clone, Default)]
pub(crate) struct SegmentPool(Arc<Mutex<Vec<Vec<u8>>>>);

impl SegmentPool {
    /// A buffer of exactly one ciphertext segment, contents unspecified.
    pub(crate) fn take(&self) -> Vec<u8> {
        self.0
            .lock()
            .pop()
            .unwrap_or_else(|| vec![0; SEGMENT_CIPHERTEXT_SIZE])
    }

    /// `buf[range]` as `Bytes`; the buffer returns to the pool when the last clone drops.
    pub(crate) fn freeze(&self, buf: Vec<u8>, range: Range<usize>) -> Bytes {
        Bytes::from_owner(Pooled {
            buf,
            range,
            pool: self.clone(),
        })
    }

    fn give_back(&self, buf: Vec<u8>) {
        let mut idle = self.0.lock();
        if idle.len() < IDLE && buf.len() == SEGMENT_CIPHERTEXT_SIZE {
            idle.push(buf);
        }
    }
}

struct Pooled {
    buf: Vec<u8>,
    range: Range<usize>,
    pool: SegmentPool,
}

impl AsRef<[u8]> for Pooled {
    fn as_ref(&self) -> &[u8] {
        &self.buf[self.range.clone()]
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        self.pool.give_back(std::mem::take(&mut self.buf));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_return_when_dropped() {
        let pool = SegmentPool::default();
        let mut buf = pool.take();
        buf[..3].copy_from_slice(b"abc");
        let ptr = buf.as_ptr();
        let bytes = pool.freeze(buf, 0..3);
        assert_eq!(&bytes[..], b"abc");
        let clone = bytes.slice(1..);
        drop(bytes);
        assert!(pool.0.lock().is_empty(), "still in use by a clone");
        drop(clone);
        let again = pool.take();
        assert_eq!(again.as_ptr(), ptr, "the same buffer again");
        drop(again);
        let many: Vec<_> = (0..5).map(|_| pool.freeze(pool.take(), 0..1)).collect();
        drop(many);
        assert_eq!(pool.0.lock().len(), IDLE);
    }
}
