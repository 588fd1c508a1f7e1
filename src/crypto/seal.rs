//! Sealing: plaintext chunks in, envelope ciphertext chunks out.
//!
//! Takes a [`ContentKey`] and the plaintext in chunks of any size; gives the header, then one
//! ciphertext chunk per 64 KiB segment. One segment is held back (the look-ahead) until more
//! input or the end of the stream says whether it is the last, so memory is one segment plus
//! the buffers the consumer still holds. A segment that arrives whole inside one input chunk
//! is held by reference and encrypted straight into its output buffer; smaller chunks are
//! gathered into that buffer and encrypted in place. Fails only on misuse (push after finish)
//! or an internal crypto error.

use bytes::{Buf, Bytes};

use super::EnvelopeError;
use super::buffer::SegmentPool;
use super::derive::ContentKey;
use super::format::{SEGMENT_SIZE, TAG_LEN};

/// The plaintext of the segment being built.
enum Pending {
    Empty,
    /// A whole segment inside one input chunk: not copied.
    Held(Bytes),
    /// Plaintext gathered from smaller chunks into an output buffer.
    Gathered(Vec<u8>, usize),
}

/// Chunk-in, chunk-out sealer of one object.
pub struct Sealer {
    key: ContentKey,
    header_sent: bool,
    pending: Pending,
    pool: SegmentPool,
    index: u64,
    finished: bool,
}

impl Sealer {
    pub fn new(key: ContentKey) -> Sealer {
        Sealer {
            key,
            header_sent: false,
            pending: Pending::Empty,
            pool: SegmentPool::default(),
            index: 0,
            finished: false,
        }
    }

    /// Takes the next plaintext chunk; appends finished ciphertext chunks to `out`.
    pub fn push(&mut self, mut input: Bytes, out: &mut Vec<Bytes>) -> Result<(), EnvelopeError> {
        if self.finished {
            return Err(EnvelopeError::Misuse("push after finish"));
        }
        self.send_header(out);
        while !input.is_empty() {
            let full = match &self.pending {
                Pending::Empty => false,
                Pending::Held(_) => true,
                Pending::Gathered(_, n) => *n == SEGMENT_SIZE,
            };
            if full {
                // More plaintext follows, so the held segment is not the last.
                self.seal(false, out)?;
            }
            match &mut self.pending {
                Pending::Empty if input.len() >= SEGMENT_SIZE => {
                    self.pending = Pending::Held(input.split_to(SEGMENT_SIZE));
                }
                Pending::Empty => {
                    let mut buf = self.pool.take();
                    let n = input.len();
                    buf[..n].copy_from_slice(&input);
                    input.advance(n);
                    self.pending = Pending::Gathered(buf, n);
                }
                Pending::Gathered(buf, n) => {
                    let take = (SEGMENT_SIZE - *n).min(input.len());
                    buf[*n..*n + take].copy_from_slice(&input[..take]);
                    input.advance(take);
                    *n += take;
                }
                Pending::Held(_) => return Err(EnvelopeError::Misuse("segment not sealed")),
            }
        }
        Ok(())
    }

    /// Ends the plaintext: seals the held segment as the last one.
    pub fn finish(&mut self, out: &mut Vec<Bytes>) -> Result<(), EnvelopeError> {
        if self.finished {
            return Err(EnvelopeError::Misuse("finish after finish"));
        }
        self.send_header(out);
        self.seal(true, out)?;
        self.finished = true;
        Ok(())
    }

    fn send_header(&mut self, out: &mut Vec<Bytes>) {
        if !self.header_sent {
            self.header_sent = true;
            out.push(Bytes::copy_from_slice(&self.key.header().to_bytes()));
        }
    }

    fn seal(&mut self, last: bool, out: &mut Vec<Bytes>) -> Result<(), EnvelopeError> {
        let index = self.index;
        let (buf, len) = match std::mem::replace(&mut self.pending, Pending::Empty) {
            Pending::Held(plain) => {
                let mut buf = self.pool.take();
                let (ct, tag) = buf[..plain.len() + TAG_LEN].split_at_mut(plain.len());
                self.key.seal_segment_into(index, last, &plain, ct, tag)?;
                (buf, plain.len())
            }
            Pending::Gathered(mut buf, n) => {
                let (in_out, tag) = buf[..n + TAG_LEN].split_at_mut(n);
                tag.copy_from_slice(&self.key.seal_segment(index, last, in_out)?);
                (buf, n)
            }
            // Only an empty object ends with nothing pending: one empty segment.
            Pending::Empty => {
                let mut buf = self.pool.take();
                let tag = self.key.seal_segment(index, last, &mut [])?;
                buf[..TAG_LEN].copy_from_slice(&tag);
                (buf, 0)
            }
        };
        out.push(self.pool.freeze(buf, 0..len + TAG_LEN));
        self.index += 1;
        Ok(())
    }
}
