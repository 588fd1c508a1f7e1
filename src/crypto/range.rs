//! Range reads: from a plaintext byte range to the whole segments that cover it.
//!
//! Takes the partner's plaintext range and, once the store has answered, the object's
//! ciphertext size and the ciphertext range it served; gives the [`ByteRange`] to ask the store
//! for (no size needed, so a ranged GET is one store read) and the [`OpenPlan`] an opener
//! follows: which segments arrive, which one is the object's last, and how many plaintext
//! bytes to drop and keep. Fails with [`EnvelopeError::RangeNotSatisfiable`] (answer 416 with
//! the plaintext size) or [`EnvelopeError::RangeNotServed`] when the served bytes do not cover
//! the segments needed.

use crate::store::ByteRange;

use super::EnvelopeError;
use super::format::{
    SEGMENT_CIPHERTEXT_SIZE, SEGMENT_SIZE, TAG_LEN, ciphertext_size, plaintext_size, segment_count,
    segment_offset,
};

const S: u64 = SEGMENT_SIZE as u64;
const CS: u64 = SEGMENT_CIPHERTEXT_SIZE as u64;
const TAG: u64 = TAG_LEN as u64;

/// The ciphertext range to request for a plaintext range, before the object size is known.
///
/// `bytes=a-b` becomes the segments holding a..=b (the store clamps the end to the object);
/// `bytes=-n` becomes a suffix long enough to hold the segments of the last n plaintext bytes
/// (less than one segment more than needed; the opener skips the surplus without decrypting).
/// Neither includes the header: the commitment comes from the metadata.
pub fn ciphertext_request(range: ByteRange) -> ByteRange {
    match range {
        ByteRange::From { first, last } => ByteRange::From {
            first: segment_offset_saturating(first / S),
            last: last.map(|l| segment_offset_saturating(l / S + 1).saturating_sub(1)),
        },
        ByteRange::Suffix(0) => ByteRange::Suffix(0),
        ByteRange::Suffix(n) => ByteRange::Suffix(suffix_cover(n)),
    }
}

/// Ciphertext suffix length that holds the segments of the last `n` plaintext bytes whatever
/// the object size: with `L` plaintext bytes in the last segment and `d = n - L` before it, the
/// segments take `L + 16 + ceil(d / S) * (S + 16) <= n + S + 15 + 16 * ceil((n - 1) / S)`
/// bytes (or `L + 16 <= S + 16` when `n <= L`). Less than one segment more than needed.
fn suffix_cover(n: u64) -> u64 {
    n.saturating_add(S + 15)
        .saturating_add((n - 1).div_ceil(S).saturating_mul(TAG))
}

/// The exact ciphertext range (inclusive) of the segments holding plaintext `first..=last`, for
/// callers that know the plaintext size already (after a HEAD). `None` when unsatisfiable.
pub fn ciphertext_range(plaintext: u64, first: u64, last: u64) -> Option<(u64, u64)> {
    if first > last || last >= plaintext {
        return None;
    }
    // Every offset below is at most the ciphertext size, so nothing past here overflows.
    let size = ciphertext_size(plaintext)?;
    let (a, b) = (first / S, last / S);
    let end = if b + 1 == segment_count(plaintext) {
        size
    } else {
        segment_offset(b + 1)
    };
    Some((segment_offset(a), end - 1))
}

fn segment_offset_saturating(index: u64) -> u64 {
    index
        .checked_mul(CS)
        .and_then(|o| o.checked_add(segment_offset(0)))
        .unwrap_or(u64::MAX)
}

/// What one opener receives and gives out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenPlan {
    pub(crate) ciphertext_size: u64,
    /// Segments in the whole object.
    pub(crate) segments: u64,
    /// Ciphertext offsets of the first input byte and one past the last.
    pub(crate) served_start: u64,
    pub(crate) served_end: u64,
    pub(crate) first_segment: u64,
    pub(crate) last_segment: u64,
    /// Plaintext bytes to drop from the first segment, then to give out.
    pub(crate) skip: u64,
    pub(crate) take: u64,
}

impl OpenPlan {
    /// The whole object, header first, of `ciphertext_size` bytes.
    pub fn whole(ciphertext_size: u64) -> Result<OpenPlan, EnvelopeError> {
        let plaintext = plaintext_size(ciphertext_size)?;
        let segments = segment_count(plaintext);
        Ok(OpenPlan {
            ciphertext_size,
            segments,
            served_start: 0,
            served_end: ciphertext_size,
            first_segment: 0,
            last_segment: segments - 1,
            skip: 0,
            take: plaintext,
        })
    }

    /// Plaintext `first..=last` of an object of `ciphertext_size` bytes, from the inclusive
    /// ciphertext range `served` that the store sent.
    pub fn range(
        ciphertext_size: u64,
        (first, last): (u64, u64),
        served: (u64, u64),
    ) -> Result<OpenPlan, EnvelopeError> {
        let plaintext = plaintext_size(ciphertext_size)?;
        if first > last || last >= plaintext {
            return Err(EnvelopeError::RangeNotSatisfiable {
                plaintext_size: plaintext,
            });
        }
        let (needed_start, needed_last) =
            ciphertext_range(plaintext, first, last).ok_or(EnvelopeError::RangeNotServed)?;
        if served.0 > needed_start || served.1 < needed_last || served.1 >= ciphertext_size {
            return Err(EnvelopeError::RangeNotServed);
        }
        let first_segment = first / S;
        Ok(OpenPlan {
            ciphertext_size,
            segments: segment_count(plaintext),
            served_start: served.0,
            served_end: served.1 + 1,
            first_segment,
            last_segment: last / S,
            skip: first - first_segment * S,
            take: last - first + 1,
        })
    }

    /// Plaintext bytes the opener gives out (the response's Content-Length).
    pub fn plaintext_len(&self) -> u64 {
        self.take
    }

    /// Plaintext size of the whole object (for Content-Range).
    pub fn object_plaintext_size(&self) -> u64 {
        // Valid by construction: the size was checked when the plan was made.
        plaintext_size(self.ciphertext_size).unwrap_or(0)
    }

    /// Ciphertext bytes of segment `index`.
    pub(crate) fn segment_len(&self, index: u64) -> u64 {
        if index + 1 == self.segments {
            self.ciphertext_size - segment_offset(index)
        } else {
            CS
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::format::HEADER_LEN;

    const H: u64 = HEADER_LEN as u64;

    #[test]
    fn requests_cover_whole_segments() {
        let r = |first, last| ciphertext_request(ByteRange::From { first, last });
        let from = |first, last| ByteRange::From { first, last };
        assert_eq!(r(0, Some(0)), from(H, Some(H + CS - 1)));
        assert_eq!(r(S - 1, Some(S)), from(H, Some(H + 2 * CS - 1)));
        assert_eq!(r(S, None), from(H + CS, None));
        assert_eq!(r(u64::MAX, None), from(u64::MAX, None));
        assert_eq!(
            ciphertext_request(ByteRange::Suffix(1)),
            ByteRange::Suffix(CS)
        );
        assert_eq!(
            ciphertext_request(ByteRange::Suffix(S)),
            ByteRange::Suffix(2 * S + 15 + TAG)
        );
    }

    #[test]
    fn exact_ranges_at_segment_edges() {
        let p = 2 * S + 10;
        let c = ciphertext_size(p).expect("fits");
        assert_eq!(ciphertext_range(p, 0, 0), Some((H, H + CS - 1)));
        assert_eq!(ciphertext_range(p, S, S), Some((H + CS, H + 2 * CS - 1)));
        assert_eq!(ciphertext_range(p, S - 1, 2 * S), Some((H, c - 1)));
        assert_eq!(ciphertext_range(p, p - 1, p - 1), Some((H + 2 * CS, c - 1)));
        assert_eq!(ciphertext_range(p, p, p), None);
        assert_eq!(ciphertext_range(0, 0, 0), None);
    }

    #[test]
    fn plans_refuse_uncovered_or_unsatisfiable_ranges() {
        let p = 3 * S;
        let c = ciphertext_size(p).expect("fits");
        let plan = OpenPlan::range(c, (S + 5, 2 * S), (H + CS, c - 1)).expect("plan");
        assert_eq!((plan.first_segment, plan.last_segment), (1, 2));
        assert_eq!((plan.skip, plan.take), (5, S - 4));
        assert_eq!(plan.segment_len(2), CS);
        assert_eq!(
            OpenPlan::range(c, (0, p), (0, c - 1)),
            Err(EnvelopeError::RangeNotSatisfiable { plaintext_size: p })
        );
        assert_eq!(
            OpenPlan::range(c, (S, S), (H + CS + 1, c - 1)),
            Err(EnvelopeError::RangeNotServed)
        );
        assert_eq!(
            OpenPlan::range(c, (S, S), (H + CS, H + 2 * CS - 2)),
            Err(EnvelopeError::RangeNotServed)
        );
        assert_eq!(
            OpenPlan::whole(c + 1),
            Err(EnvelopeError::CiphertextSize(c + 1))
        );
    }
}
