use proptest::prelude::*;

use super::*;
use crate::crypto::format::{HEADER_LEN, TAG_LEN, ciphertext_size, plaintext_size};

#[test]
fn round_trips_at_segment_edges_and_several_mib() {
    for len in [0, 1, S - 1, S, S + 1, 2 * S, 3 * 1024 * 1024 + 5] {
        let plain = pattern(len);
        let chunks = seal_chunks(open_key(), &plain, &[S]);
        let ct = chunks.concat();
        assert_eq!(
            Some(ct.len() as u64),
            ciphertext_size(len as u64),
            "len {len}"
        );
        assert_eq!(plaintext_size(ct.len() as u64), Ok(len as u64));
        // The header, then one chunk a segment, each a full segment but the last.
        assert_eq!(chunks[0].len(), HEADER_LEN);
        assert_eq!(chunks.len(), 1 + len.div_ceil(S).max(1));
        assert!(chunks[1..chunks.len() - 1].iter().all(|c| c.len() == CS));
        let opened = open_whole(&ct);
        assert_eq!(opened.result, Ok(()), "len {len}");
        assert!(opened.out == plain, "len {len}: plaintext differs");
        assert_eq!(opened.chunks, len.div_ceil(S));
    }
}

#[test]
fn whole_segments_in_one_chunk_take_the_direct_path() {
    let plain = pattern(3 * S + 5);
    // Plaintext chunks of exactly one segment are held, not copied, then sealed.
    let ct = seal_chunks(open_key(), &plain, &[S]).concat();
    assert!(ct == seal_chunks(open_key(), &plain, &[999]).concat());
    let plan = OpenPlan::whole(ct.len() as u64).expect("plan");
    let mut pieces = vec![HEADER_LEN];
    pieces.extend([CS; 4]);
    let opened = open_pieces(open_key(), plan, &ct, &pieces);
    assert_eq!(opened.result, Ok(()));
    assert!(opened.out == plain);
}

#[test]
fn an_empty_object_is_the_header_and_one_tag() {
    let ct = seal(&[]);
    assert_eq!(ct.len(), HEADER_LEN + TAG_LEN);
    let opened = open_whole(&ct);
    assert_eq!((opened.out.len(), opened.result), (0, Ok(())));
}

#[test]
fn sealing_is_independent_of_input_chunking() {
    let plain = pattern(3 * S + 17);
    let one = seal(&plain);
    for pieces in [&[1][..], &[7, S - 1, 3], &[S + 1], &[4 * S]] {
        let ct = seal_chunks(open_key(), &plain, pieces).concat();
        assert!(ct == one, "pieces {pieces:?}");
    }
}

#[test]
fn push_after_finish_is_refused() {
    let mut sealer = Sealer::new(open_key());
    let mut out = Vec::new();
    sealer.finish(&mut out).expect("finish");
    assert!(sealer.push(Bytes::from_static(b"x"), &mut out).is_err());
    assert!(sealer.finish(&mut out).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn random_chunkings_round_trip(
        len in prop_oneof![0usize..300, (S - 300)..(S + 300), (2 * S - 50)..(4 * S + 50)],
        seal_pieces in prop::collection::vec(1usize..(2 * S), 1..6),
        open_pieces_sizes in prop::collection::vec(1usize..(2 * CS), 1..6),
    ) {
        let plain = pattern(len);
        let ct = seal_chunks(open_key(), &plain, &seal_pieces).concat();
        let plan = OpenPlan::whole(ct.len() as u64).expect("plan");
        let opened = open_pieces(open_key(), plan, &ct, &open_pieces_sizes);
        prop_assert_eq!(opened.result, Ok(()));
        prop_assert!(opened.out == plain);
    }
}
