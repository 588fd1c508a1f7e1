//! Envelope tests: round trips, ranges, tampering, streams, test vectors.

use bytes::Bytes;

use super::EnvelopeError;
use super::derive::{ContentKey, ObjectLocation};
use super::format::{ObjectId, SEGMENT_CIPHERTEXT_SIZE, SEGMENT_SIZE, segment_offset};
use super::open::Opener;
use super::range::OpenPlan;
use super::seal::Sealer;

mod ranges;
mod roundtrip;
mod streams;
mod tamper;
mod vectors;

pub(super) const S: usize = SEGMENT_SIZE;
pub(super) const CS: usize = SEGMENT_CIPHERTEXT_SIZE;
pub(super) const DATA_KEY: [u8; 32] = [0x42; 32];
pub(super) const AT: ObjectLocation<'static> = ObjectLocation {
    bucket: "gatehouse-data",
    key: "shares/demo/report.csv",
};

/// Deterministic, non-repeating within a segment: catches reordered or misplaced bytes.
pub(super) fn pattern(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u64).wrapping_mul(2_654_435_761).to_le_bytes()[1] ^ (i / 251) as u8)
        .collect()
}

pub(super) fn segment_start(index: usize) -> usize {
    segment_offset(index as u64) as usize
}

/// Seals `plain` fed in pieces of the given sizes (cycled); returns the ciphertext chunks.
pub(super) fn seal_chunks(key: ContentKey, plain: &[u8], pieces: &[usize]) -> Vec<Bytes> {
    let mut sealer = Sealer::new(key);
    let mut out = Vec::new();
    let input = Bytes::copy_from_slice(plain);
    let mut at = 0;
    for size in pieces.iter().cycle() {
        if at >= input.len() {
            break;
        }
        let end = (at + size.max(&1)).min(input.len());
        sealer.push(input.slice(at..end), &mut out).expect("push");
        at = end;
    }
    sealer.finish(&mut out).expect("finish");
    out
}

pub(super) fn seal(plain: &[u8]) -> Vec<u8> {
    seal_with(ObjectId([7; 16]), AT, plain)
}

pub(super) fn seal_with(id: ObjectId, at: ObjectLocation<'_>, plain: &[u8]) -> Vec<u8> {
    let key = ContentKey::for_new_object(&DATA_KEY, id, at).expect("derive");
    seal_chunks(key, plain, &[S]).concat()
}

/// The key an opener of `seal`'s output gets after the commitment check.
pub(super) fn open_key() -> ContentKey {
    let sealed = ContentKey::for_new_object(&DATA_KEY, ObjectId([7; 16]), AT).expect("derive");
    ContentKey::for_header(&DATA_KEY, sealed.header(), AT).expect("commitment")
}

/// What an opener gave before it stopped, and how it stopped.
#[derive(Debug)]
pub(super) struct Opened {
    pub out: Vec<u8>,
    pub chunks: usize,
    pub result: Result<(), EnvelopeError>,
}

/// Feeds `ct` in pieces of the given sizes (cycled), then finishes, stopping at an error.
pub(super) fn open_pieces(key: ContentKey, plan: OpenPlan, ct: &[u8], pieces: &[usize]) -> Opened {
    let mut opener = Opener::new(key, plan);
    let input = Bytes::copy_from_slice(ct);
    let (mut out, mut chunks) = (Vec::new(), 0);
    let mut at = 0;
    let mut sizes = pieces.iter().cycle();
    let mut result = Ok(());
    while at < input.len() {
        let end = (at + sizes.next().copied().unwrap_or(1).max(1)).min(input.len());
        let mut got = Vec::new();
        result = opener.push(input.slice(at..end), &mut got);
        chunks += got.len();
        got.iter().for_each(|c| out.extend_from_slice(c));
        if result.is_err() {
            break;
        }
        at = end;
    }
    if result.is_ok() {
        let mut got = Vec::new();
        result = opener.finish(&mut got);
        assert!(got.is_empty(), "finish never gives output");
    }
    Opened {
        out,
        chunks,
        result,
    }
}

pub(super) fn open_whole(ct: &[u8]) -> Opened {
    let plan = OpenPlan::whole(ct.len() as u64).expect("plan");
    open_pieces(open_key(), plan, ct, &[10_000])
}
