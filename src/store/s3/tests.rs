use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use futures_util::stream;

use super::*;

const ENDPOINT_VAR: &str = "GATEHOUSE_TEST_S3_ENDPOINT";

/// A fresh bucket on the test endpoint, or `None` (with a note) when no endpoint is set.
async fn bucket(name: &str) -> Option<S3Store> {
    let Ok(endpoint) = std::env::var(ENDPOINT_VAR) else {
        eprintln!("skipped: set {ENDPOINT_VAR} (e.g. a moto server) to run the S3 tests");
        return None;
    };
    let name = format!("{name}-{}", ulid::Ulid::new().to_string().to_lowercase());
    let store = S3Store::new(None, Some(&endpoint), true, &name)
        .await
        .expect("client");
    store
        .create_bucket_if_missing()
        .await
        .expect("create bucket");
    store
        .create_bucket_if_missing()
        .await
        .expect("creating twice is fine");
    Some(store)
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

/// `data` in chunks of `chunk` bytes.
fn body(data: &[u8], chunk: usize) -> ByteStream {
    let chunks: Vec<Result<Bytes, StoreError>> = data
        .chunks(chunk)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    Box::pin(stream::iter(chunks))
}

fn failing_after(data: &[u8]) -> ByteStream {
    let head = stream::iter([Ok(Bytes::copy_from_slice(data))]);
    Box::pin(head.chain(stream::iter([Err(StoreError::Body(
        "client went away".into(),
    ))])))
}

/// `data` in 1 MiB chunks, then no end; `reached` fires once the stall is reached.
fn stalls_after(data: &[u8]) -> (ByteStream, tokio::sync::oneshot::Receiver<()>) {
    let (tx, reached) = tokio::sync::oneshot::channel();
    let signal = stream::once(async move { tx.send(()).ok() }).filter_map(|_| async { None });
    (
        Box::pin(body(data, 1 << 20).chain(signal).chain(stream::pending())),
        reached,
    )
}

fn sized(len: usize) -> PutOptions {
    PutOptions {
        content_length: Some(len as u64),
        ..PutOptions::default()
    }
}

async fn read(store: &S3Store, key: &str, range: Option<ByteRange>) -> Result<Vec<u8>, StoreError> {
    let mut got = store.get(key, range).await?.body;
    let mut out = Vec::new();
    while let Some(chunk) = got.next().await {
        out.extend_from_slice(&chunk?);
    }
    Ok(out)
}

async fn open_uploads(store: &S3Store) -> usize {
    let out = store
        .client
        .list_multipart_uploads()
        .bucket(&store.bucket)
        .send()
        .await;
    out.expect("list uploads").uploads().len()
}

#[tokio::test]
async fn s3_objects_round_trip_with_ranges_and_not_found() {
    let Some(store) = bucket("roundtrip").await else {
        return;
    };
    let opts = PutOptions {
        content_type: Some("text/plain".into()),
        metadata: BTreeMap::from([("owner".into(), "ops".into())]),
        content_length: Some(11),
    };
    let put = store
        .put("docs/a.txt", body(b"hello world", 4), opts)
        .await
        .expect("put");
    assert_eq!(
        put.etag.as_deref(),
        Some("\"5eb63bbbe01eeed093cb22bb8f5acdc3\"")
    );
    let meta = store.head("docs/a.txt").await.expect("head");
    assert_eq!((meta.size, meta.etag.clone()), (11, put.etag.clone()));
    assert_eq!(meta.content_type.as_deref(), Some("text/plain"));
    assert_eq!(meta.metadata.get("owner").map(String::as_str), Some("ops"));
    assert!(meta.last_modified.is_some());
    assert_eq!(
        read(&store, "docs/a.txt", None).await.expect("get"),
        b"hello world"
    );

    let from = |first, last| Some(ByteRange::From { first, last });
    let got = store
        .get("docs/a.txt", from(2, Some(4)))
        .await
        .expect("range");
    assert_eq!((got.range, got.meta.size), (Some((2, 4)), 11));
    assert_eq!(got.meta.metadata, meta.metadata);
    assert_eq!(
        read(&store, "docs/a.txt", from(6, None))
            .await
            .expect("open range"),
        b"world"
    );
    let suffix = read(&store, "docs/a.txt", Some(ByteRange::Suffix(3)))
        .await
        .expect("suffix");
    assert_eq!(suffix, b"rld");
    let whole = read(&store, "docs/a.txt", Some(ByteRange::Suffix(50)))
        .await
        .expect("suffix");
    assert_eq!(whole, b"hello world");
    let bad = store.get("docs/a.txt", from(11, None)).await;
    assert!(
        matches!(bad, Err(StoreError::InvalidRange { size: 11 })),
        "{:?}",
        bad.err()
    );

    assert!(matches!(
        store.head("docs/missing").await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.get("docs/missing", None).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.get("docs/missing", from(0, None)).await,
        Err(StoreError::NotFound)
    ));
    store.delete("docs/a.txt").await.expect("delete");
    assert!(matches!(
        store.head("docs/a.txt").await,
        Err(StoreError::NotFound)
    ));
    store
        .delete("docs/a.txt")
        .await
        .expect("deleting a missing key succeeds");

    let other = S3Store::new(
        None,
        std::env::var(ENDPOINT_VAR).ok().as_deref(),
        true,
        "no-such-bucket-gh",
    )
    .await
    .expect("client");
    assert!(matches!(
        other.get("k", None).await,
        Err(StoreError::Upstream(_))
    ));
}

#[tokio::test]
async fn s3_puts_stream_with_and_without_length() {
    let Some(store) = bucket("puts").await else {
        return;
    };
    let big = pattern(20 * 1024 * 1024 + 12_345);
    let cases: [(&str, usize, bool); 5] = [
        ("empty", 0, true),
        ("small-known", 1024 * 1024 + 3, true),
        ("small-unknown", 3 * 1024 * 1024, false),
        ("big-known", big.len(), true),
        ("big-unknown", big.len(), false),
    ];
    for (key, len, known) in cases {
        let opts = if known {
            sized(len)
        } else {
            PutOptions::default()
        };
        let put = store
            .put(key, body(&big[..len], 64 * 1024), opts)
            .await
            .expect(key);
        assert!(put.etag.is_some());
        assert_eq!(
            store.head(key).await.expect("head").size,
            len as u64,
            "{key}"
        );
        assert!(
            read(&store, key, None).await.expect("get") == big[..len],
            "{key}"
        );
    }
    // Exactly one part, and a part boundary at the very end.
    let exact = &big[..2 * PART_SIZE];
    store
        .put("two-parts", body(exact, 1 << 20), PutOptions::default())
        .await
        .expect("put");
    assert!(read(&store, "two-parts", None).await.expect("get") == exact);
    let tail = read(&store, "big-unknown", Some(ByteRange::Suffix(100)))
        .await
        .expect("tail");
    assert_eq!(tail, &big[big.len() - 100..]);
    assert_eq!(open_uploads(&store).await, 0);
}

#[tokio::test]
async fn s3_failed_bodies_leave_nothing() {
    let Some(store) = bucket("failures").await else {
        return;
    };
    let data = pattern(9 * 1024 * 1024);
    let cases: [(&str, ByteStream, PutOptions); 6] = [
        ("short", body(&data[..100], 10), sized(200)),
        ("long", body(&data[..300], 10), sized(200)),
        ("failing-known", failing_after(&data[..100]), sized(200)),
        (
            "failing-known-at-end",
            failing_after(&data[..200]),
            sized(200),
        ),
        (
            "failing-unknown",
            failing_after(&data[..100]),
            PutOptions::default(),
        ),
        (
            "failing-multipart",
            failing_after(&data),
            PutOptions::default(),
        ),
    ];
    for (key, stream, opts) in cases {
        let err = store.put(key, stream, opts).await;
        assert!(matches!(err, Err(StoreError::Body(_))), "{key}: {err:?}");
        assert!(
            matches!(store.head(key).await, Err(StoreError::NotFound)),
            "{key}"
        );
    }
    let short_multipart = store
        .put("short-multipart", body(&data, 1 << 20), sized(30 << 20))
        .await;
    assert!(matches!(short_multipart, Err(StoreError::Body(_))));
    assert_eq!(open_uploads(&store).await, 0);

    // A dropped multipart put aborts its upload in the background.
    let (stalled, reached) = stalls_after(&data);
    let mut put = Box::pin(store.put("stalled", stalled, PutOptions::default()));
    tokio::select! {
        _ = &mut put => panic!("a stalled put finished"),
        _ = reached => {}
    }
    assert_eq!(
        open_uploads(&store).await,
        1,
        "part 1 was sent before the stall"
    );
    drop(put);
    for _ in 0..50 {
        if open_uploads(&store).await == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(open_uploads(&store).await, 0);
    let page = store
        .list(&ListRequest {
            max_keys: 100,
            ..ListRequest::default()
        })
        .await
        .expect("list");
    assert!(page.objects.is_empty(), "{:?}", page.objects);
}

#[tokio::test]
async fn s3_listing_pages_like_the_fs_store() {
    let Some(store) = bucket("listing").await else {
        return;
    };
    let keys: BTreeSet<String> = [
        "a", "a/b", "a/b/c", "a/c", "a/d/e", "a/d/f", "a0", "b/c/1", "b/c/2", "b/cd", "bé", "c",
        "zz/top",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    for key in &keys {
        store.put(key, body(b"v", 1), sized(1)).await.expect("put");
    }
    for prefix in ["", "a", "a/", "b/c", "nothing"] {
        for delimiter in [None, Some("/"), Some("/c")] {
            let mut want: Vec<String> = Vec::new();
            for key in keys.iter().filter(|k| k.starts_with(prefix)) {
                let rest = &key[prefix.len()..];
                let item = match delimiter.and_then(|d| rest.find(d).map(|i| i + d.len())) {
                    Some(end) => key[..prefix.len() + end].to_owned(),
                    None => key.clone(),
                };
                if want.last() != Some(&item) {
                    want.push(item);
                }
            }
            for max_keys in [1, 2, 1000] {
                let (mut got, mut start_after) = (Vec::new(), None);
                for _ in 0..50 {
                    let req = ListRequest {
                        prefix: prefix.to_owned(),
                        delimiter: delimiter.map(str::to_owned),
                        start_after: start_after.clone(),
                        max_keys,
                    };
                    let page = store.list(&req).await.expect("list");
                    let mut items: Vec<String> =
                        page.objects.iter().map(|o| o.key.clone()).collect();
                    items.extend(page.common_prefixes.iter().cloned());
                    items.sort();
                    assert!(items.len() <= max_keys);
                    assert!(page.objects.iter().all(|o| o.size == 1 && o.etag.is_some()));
                    start_after = items.last().cloned().or(start_after);
                    got.extend(items);
                    if !page.is_truncated {
                        break;
                    }
                }
                assert_eq!(
                    got, want,
                    "prefix {prefix:?} delimiter {delimiter:?} max_keys {max_keys}"
                );
            }
        }
    }
}

#[tokio::test]
async fn building_a_store_does_no_network_io() {
    let built = tokio::time::timeout(
        Duration::from_secs(2),
        S3Store::new(None, Some("http://192.0.2.1:9"), false, "any"),
    );
    assert!(built.await.expect("no waiting on the network").is_ok());
}

#[test]
fn pages_merge_keys_and_prefixes_in_order() {
    let entry = |key: &str| ListEntry {
        key: key.into(),
        size: 0,
        etag: None,
        last_modified: None,
    };
    let objects = vec![entry("a"), entry("c"), entry("e")];
    let prefixes = vec!["b/".to_owned(), "d/".to_owned()];
    let page = trim_page(objects.clone(), prefixes.clone(), 3, false);
    assert_eq!(page.objects, [entry("a"), entry("c")]);
    assert_eq!(
        (page.common_prefixes, page.is_truncated),
        (vec!["b/".to_owned()], true)
    );
    let page = trim_page(objects, prefixes, 5, false);
    assert_eq!(
        (
            page.objects.len(),
            page.common_prefixes.len(),
            page.is_truncated
        ),
        (3, 2, false)
    );
}

#[test]
fn content_ranges_parse() {
    assert_eq!(parse_content_range("bytes 0-9/100"), Some((0, 9, 100)));
    assert_eq!(parse_content_range("bytes */100"), None);
    assert_eq!(parse_unsatisfied("bytes */100"), Some(100));
    assert_eq!(parse_unsatisfied("bytes 0-9/100"), None);
}

#[tokio::test]
async fn s3_staged_uploads_commit_by_copy_and_leave_no_staging_key() {
    let Some(store) = bucket("staged").await else {
        return;
    };
    let staging = ListRequest {
        prefix: crate::store::STAGING_PREFIX.into(),
        max_keys: 10,
        ..Default::default()
    };
    let mut opts = sized(3);
    opts.metadata.insert("a".into(), "1".into());
    opts.content_type = Some("text/plain".into());
    let staged = store
        .stage("k", body(b"new", 2), opts.clone())
        .await
        .unwrap();
    assert!(matches!(store.head("k").await, Err(StoreError::NotFound)));
    assert_eq!(store.list(&staging).await.unwrap().objects.len(), 1);
    let extra = BTreeMap::from([("classification".to_string(), "public".to_string())]);
    store.commit(staged, extra.clone()).await.unwrap();
    assert_eq!(read(&store, "k", None).await.unwrap(), b"new");
    let meta = store.head("k").await.unwrap();
    assert_eq!(meta.metadata["a"], "1");
    assert_eq!(meta.metadata["classification"], "public");
    assert_eq!(meta.content_type.as_deref(), Some("text/plain"));
    assert!(store.list(&staging).await.unwrap().objects.is_empty());

    // Above the single-copy limit the copy is multipart (parts of at least 5 MiB on S3).
    let data = pattern(11 << 20);
    let mut opts = sized(data.len());
    opts.metadata.insert("a".into(), "2".into());
    let staged = store
        .stage("big", body(&data, 1 << 20), opts)
        .await
        .unwrap();
    store
        .commit_with(staged, extra, 1 << 20, 5 << 20)
        .await
        .unwrap();
    assert_eq!(read(&store, "big", None).await.unwrap(), data);
    let meta = store.head("big").await.unwrap();
    assert_eq!(
        (meta.metadata["a"].as_str(), meta.size),
        ("2", data.len() as u64)
    );
    assert_eq!(meta.metadata["classification"], "public");
    assert_eq!(open_uploads(&store).await, 0);

    // Without a Content-Length (a chunked upload) the size is what went through, and the
    // multipart copy takes all of it.
    let staged = store
        .stage("chunked", body(&data, 1 << 20), PutOptions::default())
        .await
        .unwrap();
    assert_eq!(staged.size, data.len() as u64);
    store
        .commit_with(staged, BTreeMap::new(), 1 << 20, 5 << 20)
        .await
        .unwrap();
    assert_eq!(read(&store, "chunked", None).await.unwrap(), data);
    assert_eq!(open_uploads(&store).await, 0);

    // A dropped staged upload is deleted.
    let staged = store.stage("gone", body(b"x", 1), sized(1)).await.unwrap();
    drop(staged);
    for _ in 0..100 {
        if store.list(&staging).await.unwrap().objects.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(store.list(&staging).await.unwrap().objects.is_empty());
    assert!(matches!(
        store.head("gone").await,
        Err(StoreError::NotFound)
    ));
}
