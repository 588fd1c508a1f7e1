//! Envelope seal and open throughput beside raw AES-256-GCM (same aws-lc-rs, same 64 KiB
//! segments) on 16 MiB.
//!
//! `cargo bench --bench envelope -- --warm-up-time 1 --measurement-time 3`
//!
//! - `raw_seal` / `raw_open`: one AES-256-GCM call per 64 KiB segment, from the same input
//!   buffer into one reused output buffer: the least any streaming encryptor must do with input
//!   it does not own. `raw_*_in_place` run in place over a private mutable copy made just
//!   before the timing (so the data is cache-warm): an upper bound no stream reaches.
//! - `seal`: the `Sealer` fed 64 KiB `Bytes` chunks (each a whole segment, held by reference,
//!   encrypted into a pooled buffer), output dropped as it comes, like a body being written.
//! - `open_segment_aligned`: the `Opener` fed the header, then whole segments (each decrypted
//!   from the input chunk into a pooled buffer).
//! - `open_64k_chunks`: fed 64 KiB chunks, which never hold a whole 64 KiB + 16 segment (as the
//!   fs store's 64 KiB reads do not), so every segment is gathered by one copy first.

use std::hint::black_box;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, UnboundKey};
use bytes::Bytes;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use gatehouse::crypto::format::{
    HEADER_LEN, SEGMENT_CIPHERTEXT_SIZE, SEGMENT_SIZE, TAG_LEN, segment_nonce,
};
use gatehouse::crypto::stream::ChunkFilter;
use gatehouse::crypto::{ContentKey, ObjectId, ObjectLocation, OpenPlan, Opener, Sealer};

const SIZE: usize = 16 * 1024 * 1024;
const CHUNK: usize = 64 * 1024;
const AT: ObjectLocation<'static> = ObjectLocation {
    bucket: "bench",
    key: "bench/object",
};

fn content_key() -> ContentKey {
    ContentKey::for_new_object(&[7; 32], ObjectId([1; 16]), AT).expect("derive")
}

fn raw_key() -> LessSafeKey {
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &[7; 32]).expect("key"))
}

/// Feeds `data` as a `first`-byte piece, then `chunk`-byte pieces, then finishes; drops the
/// output as it comes, returns its size.
fn pump(filter: &mut impl ChunkFilter, data: &Bytes, first: usize, chunk: usize) -> usize {
    let mut out = Vec::with_capacity(4);
    let mut total = 0;
    let mut start = 0;
    while start < data.len() {
        let end = (start + if start == 0 { first } else { chunk }).min(data.len());
        filter.push(data.slice(start..end), &mut out).expect("push");
        total += out.drain(..).map(|b| black_box(b).len()).sum::<usize>();
        start = end;
    }
    filter.finish(&mut out).expect("finish");
    total + out.drain(..).map(|b| b.len()).sum::<usize>()
}

fn seal_all(plain: &Bytes) -> Bytes {
    let mut sealer = Sealer::new(content_key());
    let mut out = Vec::new();
    sealer.push(plain.clone(), &mut out).expect("push");
    sealer.finish(&mut out).expect("finish");
    out.concat().into()
}

fn envelope(c: &mut Criterion) {
    let plain = Bytes::from((0..SIZE).map(|i| (i % 251) as u8).collect::<Vec<u8>>());
    let sealed = seal_all(&plain);
    let key = raw_key();
    let mut raw_sealed = plain.to_vec();
    let mut raw_tags = Vec::new();
    for (i, segment) in raw_sealed.chunks_mut(SEGMENT_SIZE).enumerate() {
        let tag = key
            .seal_in_place_separate_tag(segment_nonce(i as u64, false), Aad::empty(), segment)
            .expect("seal");
        raw_tags.push(tag);
    }
    let raw_ciphertext: Vec<u8> = raw_sealed
        .chunks(SEGMENT_SIZE)
        .zip(&raw_tags)
        .flat_map(|(ct, tag)| ct.iter().chain(tag.as_ref()).copied())
        .collect();

    let mut group = c.benchmark_group("envelope_16MiB");
    group.throughput(Throughput::Bytes(SIZE as u64));
    group.sample_size(20);

    group.bench_function("raw_seal_in_place", |b| {
        b.iter_batched_ref(
            || plain.to_vec(),
            |buf| {
                for (i, segment) in buf.chunks_mut(SEGMENT_SIZE).enumerate() {
                    let nonce = segment_nonce(i as u64, false);
                    let tag = key.seal_in_place_separate_tag(nonce, Aad::empty(), segment);
                    black_box(tag.expect("seal").as_ref().len());
                }
            },
            BatchSize::LargeInput,
        )
    });
    group.bench_function("raw_seal", |b| {
        let mut out = vec![0u8; SEGMENT_CIPHERTEXT_SIZE];
        b.iter(|| {
            for (i, segment) in plain.chunks(SEGMENT_SIZE).enumerate() {
                let nonce = segment_nonce(i as u64, false);
                let (ct, tag) = out.split_at_mut(segment.len());
                key.seal_out_of_place_scatter(nonce, Aad::empty(), segment, ct, &[], tag)
                    .expect("seal");
                black_box(&out);
            }
        })
    });
    group.bench_function("seal", |b| {
        b.iter(|| pump(&mut Sealer::new(content_key()), &plain, CHUNK, CHUNK))
    });
    group.bench_function("raw_open_in_place", |b| {
        b.iter_batched_ref(
            || raw_ciphertext.clone(),
            |buf| {
                for (i, segment) in buf.chunks_mut(SEGMENT_CIPHERTEXT_SIZE).enumerate() {
                    let nonce = segment_nonce(i as u64, false);
                    let plain = key.open_in_place(nonce, Aad::empty(), segment);
                    black_box(plain.expect("open"));
                }
            },
            BatchSize::LargeInput,
        )
    });
    group.bench_function("raw_open", |b| {
        let mut out = vec![0u8; SEGMENT_SIZE];
        b.iter(|| {
            for (i, segment) in raw_ciphertext.chunks(SEGMENT_CIPHERTEXT_SIZE).enumerate() {
                let nonce = segment_nonce(i as u64, false);
                let (ct, tag) = segment.split_at(segment.len() - TAG_LEN);
                key.open_separate_gather(nonce, Aad::empty(), ct, tag, &mut out[..ct.len()])
                    .expect("open");
                black_box(&out);
            }
        })
    });
    let plan = OpenPlan::whole(sealed.len() as u64).expect("plan");
    group.bench_function("open_64k_chunks", |b| {
        b.iter(|| {
            let n = pump(&mut Opener::new(content_key(), plan), &sealed, CHUNK, CHUNK);
            assert_eq!(n, SIZE);
        })
    });
    group.bench_function("open_segment_aligned", |b| {
        b.iter(|| {
            let opener = &mut Opener::new(content_key(), plan);
            let n = pump(opener, &sealed, HEADER_LEN, SEGMENT_CIPHERTEXT_SIZE);
            assert_eq!(n, SIZE);
        })
    });
    group.finish();
}

criterion_group!(benches, envelope);
criterion_main!(benches);
