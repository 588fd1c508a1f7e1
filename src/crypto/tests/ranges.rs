use proptest::prelude::*;

use super::*;
use crate::crypto::format::{ciphertext_size, plaintext_size};
use crate::crypto::range::{ciphertext_range, ciphertext_request};
use crate::store::ByteRange;

/// 3 full segments and a short fourth.
const LEN: usize = 3 * S + 100;

fn edges() -> Vec<usize> {
    vec![
        0,
        1,
        S - 1,
        S,
        S + 1,
        2 * S - 1,
        2 * S,
        3 * S - 1,
        3 * S,
        3 * S + 1,
        LEN - 1,
    ]
}

/// Serves `request` from `ct` as a store would: resolve, then slice. Returns the served range.
fn serve(ct: &[u8], request: ByteRange) -> Option<((u64, u64), &[u8])> {
    let (first, last) = request.resolve(ct.len() as u64)?;
    Some(((first, last), &ct[first as usize..=last as usize]))
}

fn read(ct: &[u8], plain_range: ByteRange, pieces: &[usize]) -> Result<(Vec<u8>, u64), String> {
    let plaintext = plaintext_size(ct.len() as u64).map_err(|e| e.to_string())?;
    let (served, body) = serve(ct, ciphertext_request(plain_range)).ok_or("store: 416")?;
    let wanted = plain_range.resolve(plaintext).ok_or("gateway: 416")?;
    let plan = OpenPlan::range(ct.len() as u64, wanted, served).map_err(|e| e.to_string())?;
    assert_eq!(plan.plaintext_len(), wanted.1 - wanted.0 + 1);
    let opened = open_pieces(open_key(), plan, body, pieces);
    opened.result.map_err(|e| e.to_string())?;
    Ok((opened.out, body.len() as u64))
}

/// Ciphertext bytes of the segments holding plaintext first..=last.
fn segments_len(first: usize, last: usize) -> u64 {
    let (a, b) = (first / S, last / S);
    let end = if b == LEN / S {
        ciphertext_size(LEN as u64).unwrap_or(0) as usize
    } else {
        segment_start(b + 1)
    };
    (end - segment_start(a)) as u64
}

#[test]
fn every_range_between_segment_edges_reads_only_its_segments() {
    let plain = pattern(LEN);
    let ct = seal(&plain);
    for &first in &edges() {
        for &last in edges().iter().filter(|&&l| l >= first) {
            let range = ByteRange::From {
                first: first as u64,
                last: Some(last as u64),
            };
            let (out, fetched) = read(&ct, range, &[9_000]).expect("read");
            assert!(out == plain[first..=last], "{first}-{last}");
            assert_eq!(fetched, segments_len(first, last), "{first}-{last} fetched");
            let exact = ciphertext_range(LEN as u64, first as u64, last as u64).expect("range");
            assert_eq!(exact.1 - exact.0 + 1, fetched);
        }
        let open_ended = ByteRange::From {
            first: first as u64,
            last: None,
        };
        let (out, fetched) = read(&ct, open_ended, &[CS]).expect("read");
        assert!(out == plain[first..], "{first}-");
        assert_eq!(fetched, segments_len(first, LEN - 1));
    }
}

#[test]
fn suffix_ranges_skip_surplus_segments_unread() {
    let plain = pattern(LEN);
    let ct = seal(&plain);
    for n in [
        1,
        100,
        101,
        S - 1,
        S,
        S + 100,
        LEN - 1,
        LEN,
        LEN + 1_000_000,
    ] {
        let (out, fetched) = read(&ct, ByteRange::Suffix(n as u64), &[5_000]).expect("read");
        let start = LEN.saturating_sub(n);
        assert!(out == plain[start..], "suffix {n}");
        // At most one segment more than the segments needed.
        assert!(
            fetched <= segments_len(start, LEN - 1) + CS as u64,
            "suffix {n}"
        );
    }
}

#[test]
fn unsatisfiable_ranges_are_told_apart() {
    let ct = seal(&pattern(LEN));
    let past_end = ByteRange::From {
        first: LEN as u64,
        last: None,
    };
    // Within the last segment's ciphertext: the store serves it, the plan refuses it.
    assert_eq!(read(&ct, past_end, &[1]), Err("gateway: 416".into()));
    let far = ByteRange::From {
        first: 10 * S as u64,
        last: None,
    };
    assert_eq!(read(&ct, far, &[1]), Err("store: 416".into()));
    let empty = seal(&[]);
    assert_eq!(
        read(
            &empty,
            ByteRange::From {
                first: 0,
                last: None
            },
            &[1]
        ),
        Err("gateway: 416".into())
    );
}

#[test]
fn a_range_opener_needs_every_planned_byte_and_no_more() {
    let ct = seal(&pattern(LEN));
    let served = (segment_start(1) as u64, segment_start(2) as u64 - 1);
    let plan = OpenPlan::range(ct.len() as u64, (S as u64, S as u64 + 9), served).expect("plan");
    let body = &ct[served.0 as usize..=served.1 as usize];
    let short = open_pieces(open_key(), plan, &body[..body.len() - 1], &[CS]);
    assert_eq!(short.result, Err(EnvelopeError::Truncated));
    assert!(short.out.is_empty(), "nothing of the unverified segment");
    let mut long = body.to_vec();
    long.push(0);
    let long = open_pieces(open_key(), plan, &long, &[CS + 1]);
    assert_eq!(long.result, Err(EnvelopeError::TrailingData));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn random_ranges_match_the_plaintext(
        first in 0usize..LEN,
        len in 1usize..(2 * S),
        piece in 1usize..(2 * CS),
    ) {
        let plain = pattern(LEN);
        let ct = seal(&plain);
        let last = (first + len - 1).min(LEN - 1);
        let range = ByteRange::From { first: first as u64, last: Some(last as u64) };
        let (out, _) = read(&ct, range, &[piece]).expect("read");
        prop_assert!(out == plain[first..=last]);
    }
}
