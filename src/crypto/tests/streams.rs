//! The data path's view: store streams through `seal_object` / `open_object` with the local
//! key service behind the data-key cache.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;

use super::*;
use crate::crypto::envelope::{open_object, seal_object};
use crate::crypto::keys::KeyError;
use crate::crypto::local::LocalKeyService;
use crate::crypto::metadata::META_WRAPPED_KEY;
use crate::crypto::{CryptoError, DataKeyCache};
use crate::store::{ByteStream, StoreError};

fn stream_of(chunks: Vec<Result<Bytes, StoreError>>) -> ByteStream {
    Box::pin(futures_util::stream::iter(chunks))
}

fn chunked(data: &[u8], piece: usize) -> ByteStream {
    let data = Bytes::copy_from_slice(data);
    let chunks = (0..data.len())
        .step_by(piece)
        .map(|i| Ok(data.slice(i..(i + piece).min(data.len()))))
        .collect();
    stream_of(chunks)
}

/// Every item of a stream: the bytes before the first error, the error, and whether the
/// stream ended after it.
async fn drain(mut s: ByteStream) -> (Vec<u8>, Option<StoreError>) {
    let mut out = Vec::new();
    while let Some(item) = s.next().await {
        match item {
            Ok(b) => out.extend_from_slice(&b),
            Err(e) => {
                assert!(s.next().await.is_none(), "nothing after an error");
                return (out, Some(e));
            }
        }
    }
    (out, None)
}

struct Fixture {
    _dir: tempfile::TempDir,
    cache: DataKeyCache,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let keys = LocalKeyService::open_or_create(&dir.path().join("keys")).expect("keys");
    Fixture {
        _dir: dir,
        cache: DataKeyCache::new(Arc::new(keys), 64, Duration::from_secs(300)),
    }
}

async fn put(
    f: &Fixture,
    at: ObjectLocation<'_>,
    plain: &[u8],
) -> (Vec<u8>, BTreeMap<String, String>) {
    let sealed = seal_object(&f.cache, None, "demo", at, chunked(plain, 10_000))
        .await
        .expect("seal");
    let (ct, err) = drain(sealed.body).await;
    assert!(err.is_none());
    (ct, sealed.metadata)
}

async fn get(
    f: &Fixture,
    at: ObjectLocation<'_>,
    meta: &BTreeMap<String, String>,
    ct: &[u8],
) -> Result<(Vec<u8>, Option<StoreError>), CryptoError> {
    get_declared(f, at, meta, ct, ct.len()).await
}

/// As the store would serve `ct` while declaring `declared` bytes (a dropped connection).
async fn get_declared(
    f: &Fixture,
    at: ObjectLocation<'_>,
    meta: &BTreeMap<String, String>,
    ct: &[u8],
    declared: usize,
) -> Result<(Vec<u8>, Option<StoreError>), CryptoError> {
    let plan = OpenPlan::whole(declared as u64)?;
    let body = open_object(&f.cache, at, meta, plan, chunked(ct, 16 * 1024)).await?;
    Ok(drain(body).await)
}

#[tokio::test]
async fn put_then_get_through_streams_calls_the_key_service_once() {
    let f = fixture();
    let plain = pattern(2 * S + 3);
    let (ct, meta) = put(&f, AT, &plain).await;
    assert!(meta.keys().all(|k| k.starts_with("gatehouse-")));
    for _ in 0..3 {
        let (out, err) = get(&f, AT, &meta, &ct).await.expect("open");
        assert!(err.is_none() && out == plain);
    }
    let stats = f.cache.stats();
    assert_eq!(
        (stats.misses, stats.hits),
        (0, 3),
        "the write cached its key"
    );
}

#[tokio::test]
async fn a_bad_segment_ends_the_stream_with_an_error_after_the_good_ones() {
    let f = fixture();
    let plain = pattern(3 * S);
    let (mut ct, meta) = put(&f, AT, &plain).await;
    ct[segment_start(2) + 5] ^= 1;
    let (out, err) = get(&f, AT, &meta, &ct).await.expect("open");
    assert!(out == plain[..2 * S]);
    let err = err.expect("aborted, not ended");
    assert!(
        matches!(&err, StoreError::Upstream(m) if m.contains("segment 2")),
        "{err}"
    );
    // Cut short: an error item, never a clean end.
    let cut = &ct[..segment_start(1) + 9];
    let (out, err) = get_declared(&f, AT, &meta, cut, ct.len())
        .await
        .expect("open");
    assert!(out == plain[..S]);
    assert!(matches!(&err, Some(StoreError::Upstream(m)) if m.contains("ends early")));
    assert!(
        err.as_ref()
            .is_some_and(crate::crypto::stream::is_integrity_failure)
    );
}

#[tokio::test]
async fn integrity_failures_are_told_from_a_failing_store() {
    let f = fixture();
    let plain = pattern(2 * S);
    let (mut ct, meta) = put(&f, AT, &plain).await;
    // The store fails after the first segment: its error passes through, not an integrity one.
    let first = Bytes::copy_from_slice(&ct[..segment_start(1)]);
    let failing = stream_of(vec![
        Ok(first),
        Err(StoreError::Upstream(
            "read S3 body: connection reset".into(),
        )),
    ]);
    let plan = OpenPlan::whole(ct.len() as u64).expect("plan");
    let body = open_object(&f.cache, AT, &meta, plan, failing)
        .await
        .expect("open");
    let (out, err) = drain(body).await;
    assert!(out == plain[..S]);
    let err = err.expect("aborted");
    assert!(!crate::crypto::stream::is_integrity_failure(&err), "{err}");
    // A tampered segment, and a tampered header (before any plaintext byte), are.
    for at in [segment_start(1) + 3, 20] {
        ct[at] ^= 1;
        let (_, err) = get(&f, AT, &meta, &ct).await.expect("open");
        let err = err.expect("aborted");
        assert!(crate::crypto::stream::is_integrity_failure(&err), "{err}");
        ct[at] ^= 1;
    }
}

#[tokio::test]
async fn an_upload_error_passes_through_unchanged() {
    let f = fixture();
    let body = stream_of(vec![
        Ok(Bytes::from(pattern(S + 10))),
        Err(StoreError::Body("client went away".into())),
        Ok(Bytes::from_static(b"never read")),
    ]);
    let sealed = seal_object(&f.cache, None, "demo", AT, body)
        .await
        .expect("seal");
    let (out, err) = drain(sealed.body).await;
    assert!(matches!(err, Some(StoreError::Body(m)) if m == "client went away"));
    // The header and the first segment; the held-back segment never goes out.
    assert_eq!(out.len(), segment_start(1));
}

#[tokio::test]
async fn moved_objects_and_swapped_metadata_are_refused_by_the_key_service() {
    let f = fixture();
    let plain = pattern(S + 1);
    let (ct_a, meta_a) = put(&f, AT, &plain).await;
    let other = ObjectLocation {
        key: "shares/demo/other.csv",
        ..AT
    };
    let (_ct_b, meta_b) = put(&f, other, &plain).await;
    // Read once so the key is cached: the cache must not let a moved copy skip the check.
    assert!(get(&f, AT, &meta_a, &ct_a).await.is_ok());
    let elsewhere = ObjectLocation {
        bucket: "gatehouse-copy",
        ..AT
    };
    for (at, meta) in [(other, &meta_a), (elsewhere, &meta_a), (AT, &meta_b)] {
        let r = get(&f, at, meta, &ct_a).await;
        assert!(
            matches!(r, Err(CryptoError::Key(KeyError::Refused(_)))),
            "{at:?}: {r:?}"
        );
    }
    let mut bad_wrap = meta_a.clone();
    bad_wrap.insert(META_WRAPPED_KEY.into(), "AAAA".into());
    let r = get(&f, AT, &bad_wrap, &ct_a).await;
    assert!(
        matches!(r, Err(CryptoError::Key(KeyError::Refused(_)))),
        "{r:?}"
    );
    let r = get(&f, AT, &BTreeMap::new(), &ct_a).await;
    assert_eq!(
        r.err(),
        Some(CryptoError::Envelope(EnvelopeError::NotEncrypted))
    );
}

/// Peak resident memory of this process (`VmHWM`), in bytes.
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

#[tokio::test]
async fn a_gibibyte_streams_through_seal_and_open_in_flat_memory() {
    const GIB: usize = 1 << 30;
    // 16 KiB chunks as hyper delivers them; the same bytes again and again cost no memory.
    let chunk = Bytes::from(pattern(16 * 1024));
    let source = || -> ByteStream {
        let chunk = chunk.clone();
        Box::pin(futures_util::stream::iter(
            (0..GIB / chunk.len()).map(move |_| Ok(chunk.clone())),
        ))
    };
    let f = fixture();
    let before = peak_rss();
    let sealed = seal_object(&f.cache, None, "demo", AT, source())
        .await
        .expect("seal");
    // The sealed stream goes straight into the opener: both directions run over the whole
    // GiB, one chunk at a time, and nothing is kept.
    let plan =
        OpenPlan::whole(crate::crypto::ciphertext_size(GIB as u64).expect("size")).expect("plan");
    let mut opened = open_object(&f.cache, AT, &sealed.metadata, plan, sealed.body)
        .await
        .expect("open");
    let (mut total, mut at) = (0usize, 0usize);
    while let Some(item) = opened.next().await {
        let b = item.expect("authenticated");
        // Spot-check content: the plaintext is the chunk repeated.
        let offset = at % chunk.len();
        let n = b.len().min(chunk.len() - offset);
        assert!(b[..n] == chunk[offset..offset + n]);
        total += b.len();
        at += b.len();
    }
    assert_eq!(total, GIB);
    let grown = peak_rss().saturating_sub(before);
    assert!(grown < 64 << 20, "peak RSS grew by {} MiB", grown >> 20);
}
