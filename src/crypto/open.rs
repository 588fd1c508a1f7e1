//! Opening: envelope ciphertext chunks in, authenticated plaintext chunks out.
//!
//! Takes a [`ContentKey`] (its commitment already checked), an [`OpenPlan`] and the served
//! ciphertext in chunks of any size; gives the plaintext of each segment only after that
//! segment's tag has verified, trimmed to the plan's range. Memory is one segment plus the
//! output buffers the consumer still holds. Fails with [`EnvelopeError`] on a header that
//! differs from the metadata, a segment that does not authenticate (tampered, reordered,
//! duplicated, or the wrong last-segment flag, which catches truncation and removal of the
//! last segment), bytes missing at the end, or bytes past the end. After a failure `out` holds
//! exactly the authenticated output of the chunk up to the failing segment, and every later
//! call fails again.
//!
//! A segment that arrives whole inside one input chunk is decrypted straight into its output
//! buffer; one split across chunks is gathered into that buffer and decrypted in place.

use bytes::{Buf, Bytes};

use super::EnvelopeError;
use super::buffer::SegmentPool;
use super::derive::ContentKey;
use super::format::{HEADER_LEN, TAG_LEN, segment_offset};
use super::range::OpenPlan;

/// Chunk-in, chunk-out opener of one object or range.
pub struct Opener {
    key: ContentKey,
    header: [u8; HEADER_LEN],
    plan: OpenPlan,
    /// Ciphertext offset of the next input byte.
    pos: u64,
    /// Next segment to open.
    index: u64,
    /// Ciphertext of the current segment gathered so far, and its length.
    gathered: Option<(Vec<u8>, usize)>,
    pool: SegmentPool,
    skip: u64,
    remaining: u64,
    failed: Option<EnvelopeError>,
}

impl Opener {
    pub fn new(key: ContentKey, plan: OpenPlan) -> Opener {
        Opener {
            header: key.header().to_bytes(),
            key,
            plan,
            pos: plan.served_start,
            index: plan.first_segment,
            gathered: None,
            pool: SegmentPool::default(),
            skip: plan.skip,
            remaining: plan.take,
            failed: None,
        }
    }

    /// Takes the next ciphertext chunk; appends authenticated plaintext chunks to `out`.
    pub fn push(&mut self, input: Bytes, out: &mut Vec<Bytes>) -> Result<(), EnvelopeError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let result = self.consume(input, out);
        if let Err(e) = &result {
            self.fail(e.clone());
        }
        result
    }

    /// Ends the ciphertext: fails unless every planned byte arrived.
    pub fn finish(&mut self, _out: &mut Vec<Bytes>) -> Result<(), EnvelopeError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        if self.pos != self.plan.served_end {
            let e = EnvelopeError::Truncated;
            self.fail(e.clone());
            return Err(e);
        }
        Ok(())
    }

    fn fail(&mut self, e: EnvelopeError) {
        self.failed = Some(e);
        self.gathered = None;
    }

    fn consume(&mut self, mut input: Bytes, out: &mut Vec<Bytes>) -> Result<(), EnvelopeError> {
        let first_offset = segment_offset(self.plan.first_segment);
        while !input.is_empty() {
            let n = if self.pos < first_offset {
                // Before the first planned segment: the header (checked against the
                // metadata's) or whole segments outside the range (skipped unread).
                let n = chunk_len(first_offset - self.pos, &input);
                self.check_header(&input[..n])?;
                n
            } else if self.index <= self.plan.last_segment {
                self.segment(&input, out)?
            } else {
                // After the last planned segment: the rest of what was served, unread.
                let n = chunk_len(self.plan.served_end - self.pos, &input);
                if n < input.len() {
                    return Err(EnvelopeError::TrailingData);
                }
                n
            };
            input.advance(n);
            self.pos += n as u64;
        }
        Ok(())
    }

    fn check_header(&self, bytes: &[u8]) -> Result<(), EnvelopeError> {
        let header_len = HEADER_LEN as u64;
        if self.pos >= header_len {
            return Ok(());
        }
        let start = self.pos as usize;
        let end = (start + bytes.len()).min(HEADER_LEN);
        if bytes[..end - start] != self.header[start..end] {
            return Err(EnvelopeError::Header(
                "does not match the object's metadata",
            ));
        }
        Ok(())
    }

    /// Consumes the current segment's bytes from `input`, opening it once complete; returns
    /// how many bytes it took.
    fn segment(&mut self, input: &[u8], out: &mut Vec<Bytes>) -> Result<usize, EnvelopeError> {
        let need = self.plan.segment_len(self.index) as usize;
        let last = self.index + 1 == self.plan.segments;
        let plain_len = need - TAG_LEN;
        let (buf, taken) = match self.gathered.take() {
            None if input.len() >= need => {
                let mut buf = self.pool.take();
                let (ct, tag) = input[..need].split_at(plain_len);
                self.key
                    .open_segment_into(self.index, last, ct, tag, &mut buf[..plain_len])?;
                (buf, need)
            }
            gathered => {
                let (mut buf, have) = gathered.unwrap_or_else(|| (self.pool.take(), 0));
                let n = (need - have).min(input.len());
                buf[have..have + n].copy_from_slice(&input[..n]);
                if have + n < need {
                    self.gathered = Some((buf, have + n));
                    return Ok(n);
                }
                self.key
                    .open_segment_in_place(self.index, last, &mut buf[..need])?;
                (buf, n)
            }
        };
        self.release(self.pool.freeze(buf, 0..plain_len), out);
        self.index += 1;
        Ok(taken)
    }

    /// Gives out the part of an authenticated segment's plaintext that the plan asks for.
    fn release(&mut self, mut plain: Bytes, out: &mut Vec<Bytes>) {
        let skip = self.skip.min(plain.len() as u64);
        plain.advance(skip as usize);
        self.skip -= skip;
        plain.truncate(self.remaining.min(plain.len() as u64) as usize);
        self.remaining -= plain.len() as u64;
        if !plain.is_empty() {
            out.push(plain);
        }
    }
}

/// `want` bytes, or the whole chunk when it is shorter.
fn chunk_len(want: u64, input: &Bytes) -> usize {
    want.min(input.len() as u64) as usize
}
