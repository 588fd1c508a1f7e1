//! Every tampering is refused, and what came out before the refusal is exactly the
//! authenticated prefix: whole segments before the bad one, nothing of the bad one.

use super::*;
use crate::crypto::format::{HEADER_LEN, Header, TAG_LEN};

const LEN: usize = 3 * S + 100;
const SEGMENTS: usize = 4;

fn segment(ct: &[u8], i: usize) -> &[u8] {
    let end = if i + 1 == SEGMENTS {
        ct.len()
    } else {
        segment_start(i + 1)
    };
    &ct[segment_start(i)..end]
}

/// Opens `ct` as a whole object of `declared` ciphertext bytes (the store's size), once in
/// small chunks (segments gathered, opened in place) and once in one chunk (segments opened
/// straight from the input); both must stop at the same place.
fn open_declared(ct: &[u8], declared: usize) -> Opened {
    let plan = match OpenPlan::whole(declared as u64) {
        Ok(plan) => plan,
        Err(e) => {
            return Opened {
                out: Vec::new(),
                chunks: 0,
                result: Err(e),
            };
        }
    };
    let gathered = open_pieces(open_key(), plan, ct, &[7_777]);
    let direct = open_pieces(open_key(), plan, ct, &[ct.len()]);
    assert_eq!(gathered.result, direct.result);
    assert!(gathered.out == direct.out);
    gathered
}

#[track_caller]
fn refused(opened: Opened, plain: &[u8], prefix: usize, err: EnvelopeError) {
    assert_eq!(opened.result, Err(err));
    assert_eq!(opened.out.len(), prefix, "authenticated prefix length");
    assert!(opened.out == plain[..prefix], "prefix is the plaintext");
}

fn setup() -> (Vec<u8>, Vec<u8>) {
    let plain = pattern(LEN);
    let ct = seal(&plain);
    (plain, ct)
}

#[test]
fn a_flipped_header_bit_is_refused_before_any_output() {
    let (plain, ct) = setup();
    for at in [0, 4, 5, 7, 10, 25, 26, HEADER_LEN - 1] {
        let mut bad = ct.clone();
        bad[at] ^= 0x10;
        let opened = open_declared(&bad, bad.len());
        refused(
            opened,
            &plain,
            0,
            EnvelopeError::Header("does not match the object's metadata"),
        );
    }
}

#[test]
fn a_flipped_bit_in_any_segment_body_or_tag_stops_before_that_segment() {
    let (plain, ct) = setup();
    for i in 0..SEGMENTS {
        let len = segment(&ct, i).len();
        for offset in [0, len / 2, len - TAG_LEN - 1, len - TAG_LEN, len - 1] {
            let mut bad = ct.clone();
            bad[segment_start(i) + offset] ^= 0x01;
            let err = EnvelopeError::Segment { index: i as u64 };
            refused(open_declared(&bad, bad.len()), &plain, i * S, err);
        }
    }
}

#[test]
fn truncation_at_and_inside_segments_is_refused() {
    let (plain, ct) = setup();
    for k in 1..SEGMENTS {
        let cuts = [0, 1, 20, CS / 2].map(|d| segment_start(k) + d);
        for cut in cuts.into_iter().filter(|&c| c < ct.len()) {
            let short = &ct[..cut];
            // The connection drops: the declared size is the original one.
            refused(
                open_declared(short, ct.len()),
                &plain,
                k * S,
                EnvelopeError::Truncated,
            );
            // The stored object itself was cut: the size agrees with the bytes.
            let opened = open_declared(short, short.len());
            let expected = match crate::crypto::format::plaintext_size(cut as u64) {
                // An impossible size is refused before anything is read.
                Err(e) => (0, e),
                // Otherwise the new last segment fails: its flag or length is wrong.
                Ok(_) if cut == segment_start(k) => (
                    (k - 1) * S,
                    EnvelopeError::Segment {
                        index: k as u64 - 1,
                    },
                ),
                Ok(_) => (k * S, EnvelopeError::Segment { index: k as u64 }),
            };
            refused(opened, &plain, expected.0, expected.1);
        }
    }
    refused(
        open_declared(&ct[..HEADER_LEN - 1], ct.len()),
        &plain,
        0,
        EnvelopeError::Truncated,
    );
}

#[test]
fn a_removed_last_segment_is_refused() {
    let (plain, ct) = setup();
    let without = &ct[..segment_start(SEGMENTS - 1)];
    let err = EnvelopeError::Segment {
        index: SEGMENTS as u64 - 2,
    };
    refused(
        open_declared(without, without.len()),
        &plain,
        (SEGMENTS - 2) * S,
        err,
    );
}

#[test]
fn swapped_and_duplicated_segments_are_refused() {
    let (plain, ct) = setup();
    let mut swapped = ct[..segment_start(1)].to_vec();
    for i in [2, 1, 3] {
        swapped.extend_from_slice(segment(&ct, i));
    }
    let err = EnvelopeError::Segment { index: 1 };
    refused(open_declared(&swapped, swapped.len()), &plain, S, err);

    let mut duplicated = ct[..segment_start(2)].to_vec();
    for i in [1, 2, 3] {
        duplicated.extend_from_slice(segment(&ct, i));
    }
    let err = EnvelopeError::Segment { index: 2 };
    refused(
        open_declared(&duplicated, duplicated.len()),
        &plain,
        2 * S,
        err,
    );

    // The last segment moved forward, flag and all: refused at its new place.
    let mut early_end = ct[..segment_start(1)].to_vec();
    early_end.extend_from_slice(segment(&ct, 3));
    let err = EnvelopeError::Segment { index: 1 };
    refused(open_declared(&early_end, early_end.len()), &plain, S, err);
}

#[test]
fn bytes_past_the_end_abort_after_the_complete_plaintext() {
    let (plain, ct) = setup();
    let mut long = ct.clone();
    long.extend_from_slice(b"extra");
    refused(
        open_declared(&long, ct.len()),
        &plain,
        LEN,
        EnvelopeError::TrailingData,
    );
    // Stored with the extra bytes: the size no longer matches the segment layout.
    let opened = open_declared(&long, long.len());
    assert!(opened.result.is_err() && opened.out.len() <= 3 * S);
}

#[test]
fn an_object_copied_to_another_key_or_bucket_fails_the_commitment() {
    let (_, ct) = setup();
    let header = Header::parse(&ct).expect("header");
    let moved = ObjectLocation {
        key: "shares/other/report.csv",
        ..AT
    };
    let rebucketed = ObjectLocation {
        bucket: "gatehouse-other",
        ..AT
    };
    for at in [moved, rebucketed] {
        assert_eq!(
            ContentKey::for_header(&DATA_KEY, &header, at).err(),
            Some(EnvelopeError::Commitment)
        );
    }
    // The same object under its own location opens.
    assert!(ContentKey::for_header(&DATA_KEY, &header, AT).is_ok());
}

#[test]
fn another_version_of_the_same_key_does_not_open_with_these_metadata() {
    // Two writes to one key (same data key here, to reach the body checks): the metadata of
    // the second and the body of the first do not mix.
    let plain = pattern(LEN);
    let first = seal_with(ObjectId([1; 16]), AT, &plain);
    let second = seal_with(ObjectId([2; 16]), AT, &plain);
    let second_header = Header::parse(&second).expect("header");
    let key = ContentKey::for_header(&DATA_KEY, &second_header, AT).expect("commitment");
    let plan = OpenPlan::whole(first.len() as u64).expect("plan");
    let opened = open_pieces(key, plan, &first, &[CS]);
    refused(
        opened,
        &plain,
        0,
        EnvelopeError::Header("does not match the object's metadata"),
    );
    // A ranged read skips the header: the segments themselves refuse the other key.
    let key = ContentKey::for_header(&DATA_KEY, &second_header, AT).expect("commitment");
    let served = (segment_start(1) as u64, segment_start(2) as u64 - 1);
    let plan = OpenPlan::range(first.len() as u64, (S as u64, S as u64), served).expect("plan");
    let opened = open_pieces(
        key,
        plan,
        &first[served.0 as usize..=served.1 as usize],
        &[CS],
    );
    refused(opened, &plain, 0, EnvelopeError::Segment { index: 1 });
}

#[test]
fn an_opener_stays_failed() {
    let (_, mut ct) = setup();
    ct[segment_start(1)] ^= 1;
    let plan = OpenPlan::whole(ct.len() as u64).expect("plan");
    let mut opener = Opener::new(open_key(), plan);
    let mut out = Vec::new();
    let err = opener
        .push(Bytes::copy_from_slice(&ct), &mut out)
        .expect_err("tampered");
    assert_eq!(err, EnvelopeError::Segment { index: 1 });
    assert_eq!(out.concat(), pattern(S));
    let mut more = Vec::new();
    assert_eq!(
        opener.push(Bytes::from_static(b"x"), &mut more),
        Err(err.clone())
    );
    assert_eq!(opener.finish(&mut more), Err(err));
    assert!(more.is_empty());
}
