use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use futures_util::stream;

use super::*;

fn body(data: &[u8]) -> ByteStream {
    let chunks: Vec<Result<Bytes, StoreError>> = data
        .chunks(7)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    Box::pin(stream::iter(chunks))
}

async fn put(store: &FsStore, key: &str, data: &[u8]) -> PutResult {
    let opts = PutOptions {
        content_length: Some(data.len() as u64),
        ..PutOptions::default()
    };
    store.put(key, body(data), opts).await.expect("put")
}

async fn read(store: &FsStore, key: &str, range: Option<ByteRange>) -> Result<Vec<u8>, StoreError> {
    let got = store.get(key, range).await?;
    let mut out = Vec::new();
    let mut b = got.body;
    while let Some(chunk) = b.next().await {
        out.extend_from_slice(&chunk?);
    }
    Ok(out)
}

async fn bucket() -> (tempfile::TempDir, FsStore) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = FsStore::open(&dir.path().join("bucket"))
        .await
        .expect("open");
    (dir, store)
}

fn temp_count(store: &FsStore) -> usize {
    std::fs::read_dir(&store.dirs.tmp).expect("tmp dir").count()
}

#[tokio::test]
async fn round_trip_keeps_body_and_metadata() {
    let (_dir, store) = bucket().await;
    let opts = PutOptions {
        content_type: Some("text/plain".into()),
        metadata: BTreeMap::from([("owner".into(), "ops".into())]),
        content_length: Some(11),
    };
    let put = store
        .put("docs/a.txt", body(b"hello world"), opts)
        .await
        .expect("put");
    assert_eq!(
        put.etag.as_deref(),
        Some("\"5eb63bbbe01eeed093cb22bb8f5acdc3\"")
    );
    let meta = store.head("docs/a.txt").await.expect("head");
    assert_eq!(meta.size, 11);
    assert_eq!(meta.etag, put.etag);
    assert_eq!(meta.content_type.as_deref(), Some("text/plain"));
    assert_eq!(meta.metadata.get("owner").map(String::as_str), Some("ops"));
    assert!(meta.last_modified.is_some());
    assert_eq!(
        read(&store, "docs/a.txt", None).await.expect("get"),
        b"hello world"
    );
    assert!(matches!(
        store.head("docs/b.txt").await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.get("docs", None).await,
        Err(StoreError::NotFound)
    ));
}

#[tokio::test]
async fn a_key_and_keys_below_it_coexist() {
    let (_dir, store) = bucket().await;
    for key in ["a", "a/b", "a/b/c"] {
        put(&store, key, key.as_bytes()).await;
    }
    for key in ["a", "a/b", "a/b/c"] {
        assert_eq!(read(&store, key, None).await.expect("get"), key.as_bytes());
    }
}

#[tokio::test]
async fn odd_and_long_keys_round_trip_and_list() {
    let (_dir, store) = bucket().await;
    let long = format!("deep/{}", "é/x".repeat(1019 / 4)); // multi-byte, > 1000 bytes
    let longest = "k".repeat(1024);
    let keys = [
        "with space",
        "100%",
        "üñí/cødé",
        ".",
        "a..b",
        "~tilde",
        "q?x=1&y#z",
        &long,
        &longest,
    ];
    for key in keys {
        put(&store, key, key.as_bytes()).await;
        assert_eq!(
            read(&store, key, None).await.expect("get"),
            key.as_bytes(),
            "{key}"
        );
    }
    let page = store
        .list(&ListRequest {
            max_keys: 100,
            ..ListRequest::default()
        })
        .await
        .expect("list");
    let listed: Vec<&str> = page.objects.iter().map(|o| o.key.as_str()).collect();
    let mut expected = keys.to_vec();
    expected.sort();
    assert_eq!(listed, expected);
}

#[tokio::test]
async fn ranges_follow_rfc_9110() {
    let (_dir, store) = bucket().await;
    let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    put(&store, "r", &data).await;
    let from = |first, last| Some(ByteRange::From { first, last });
    assert_eq!(
        read(&store, "r", from(0, Some(0)))
            .await
            .expect("first byte"),
        &data[..1]
    );
    assert_eq!(
        read(&store, "r", from(70_000, Some(140_000)))
            .await
            .expect("mid"),
        &data[70_000..=140_000]
    );
    assert_eq!(
        read(&store, "r", from(199_990, None)).await.expect("open"),
        &data[199_990..]
    );
    assert_eq!(
        read(&store, "r", Some(ByteRange::Suffix(5)))
            .await
            .expect("suffix"),
        &data[199_995..]
    );
    assert_eq!(
        read(&store, "r", Some(ByteRange::Suffix(900_000)))
            .await
            .expect("big suffix"),
        data
    );
    let got = store.get("r", from(10, Some(19))).await.expect("get");
    assert_eq!((got.range, got.meta.size), (Some((10, 19)), 200_000));
    for bad in [from(200_000, None), Some(ByteRange::Suffix(0))] {
        assert!(matches!(
            store.get("r", bad).await,
            Err(StoreError::InvalidRange { size: 200_000 })
        ));
    }
    put(&store, "empty", b"").await;
    assert!(matches!(
        store.get("empty", from(0, None)).await,
        Err(StoreError::InvalidRange { size: 0 })
    ));
    assert_eq!(read(&store, "empty", None).await.expect("empty"), b"");
}

#[tokio::test]
async fn overwrite_replaces_body_and_metadata() {
    let (_dir, store) = bucket().await;
    let first = put(&store, "k", b"first version").await;
    let opts = PutOptions {
        content_type: Some("a/b".into()),
        ..PutOptions::default()
    };
    let second = store
        .put("k", body(b"second"), opts)
        .await
        .expect("overwrite");
    assert_ne!(first.etag, second.etag);
    let meta = store.head("k").await.expect("head");
    assert_eq!(
        (meta.size, meta.etag, meta.content_type.as_deref()),
        (6, second.etag, Some("a/b"))
    );
    assert_eq!(read(&store, "k", None).await.expect("get"), b"second");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_overwrites_from_two_stores_stay_consistent() {
    let (dir, store) = bucket().await;
    let other = FsStore::open(&dir.path().join("bucket"))
        .await
        .expect("second store");
    let versions: Vec<Vec<u8>> = (0..6u8)
        .map(|i| vec![b'a' + i; 1000 + 10 * usize::from(i)])
        .collect();
    put(&store, "hot", &versions[0]).await;
    async fn overwrite(target: &FsStore, versions: &[Vec<u8>], offset: usize) {
        for round in 0..30 {
            put(target, "hot", &versions[(round + offset) % versions.len()]).await;
        }
    }
    let reader = async {
        for _ in 0..150 {
            let got = store.get("hot", None).await.expect("get during overwrites");
            let (size, etag) = (got.meta.size, got.meta.etag.clone());
            let mut data = Vec::new();
            let mut b = got.body;
            while let Some(chunk) = b.next().await {
                data.extend_from_slice(&chunk.expect("chunk"));
            }
            assert_eq!(data.len() as u64, size);
            assert_eq!(etag, Some(format!("\"{}\"", hex(&Md5::digest(&data)))));
        }
    };
    tokio::join!(
        overwrite(&store, &versions, 0),
        overwrite(&other, &versions, 3),
        reader
    );
    let meta = other.head("hot").await.expect("head");
    assert_eq!(
        read(&store, "hot", None).await.expect("get").len() as u64,
        meta.size
    );
    assert_eq!(temp_count(&store), 0);
}

#[tokio::test]
async fn delete_removes_object_and_metadata() {
    let (_dir, store) = bucket().await;
    let long = "d".repeat(500);
    for key in ["gone", long.as_str()] {
        put(&store, key, b"x").await;
        store.delete(key).await.expect("delete");
        assert!(matches!(store.head(key).await, Err(StoreError::NotFound)));
        store
            .delete(key)
            .await
            .expect("deleting a missing key succeeds");
    }
    for dir in [&store.dirs.objects, &store.dirs.meta] {
        assert_eq!(
            std::fs::read_dir(dir).expect("dir").count(),
            0,
            "empty directories pruned"
        );
    }
}

/// Keys or common prefixes, in order, as S3 groups them.
fn expected_items(keys: &BTreeSet<String>, prefix: &str, delimiter: Option<&str>) -> Vec<String> {
    let mut items: Vec<String> = Vec::new();
    for key in keys.iter().filter(|k| k.starts_with(prefix)) {
        let item = match delimiter.and_then(|d| key[prefix.len()..].find(d).map(|i| (i, d))) {
            Some((i, d)) => key[..prefix.len() + i + d.len()].to_owned(),
            None => key.clone(),
        };
        if items.last() != Some(&item) {
            items.push(item);
        }
    }
    items
}

#[tokio::test]
async fn paginated_listing_matches_s3_grouping() {
    let (_dir, store) = bucket().await;
    let edge = format!("p/{}", "x".repeat(98)); // 100 bytes: one full path component
    let mut keys: BTreeSet<String> = [
        "a", "a/b", "a/b/c", "a/c", "a/d/e", "a/d/f", "a0", "b/c/1", "b/c/2", "b/cd", "b/c~", "bé",
        "b~", "c", "zz/top", "~",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    keys.extend([
        edge.clone(),
        format!("{edge}/y"),
        format!("{edge}z"),
        format!("{edge}/yy/{}", "w".repeat(300)),
    ]);
    for key in &keys {
        put(&store, key, b"v").await;
    }
    for prefix in ["", "a", "a/", "b/c", "p/", &edge, "nothing"] {
        for delimiter in [None, Some("/"), Some("/c"), Some("é")] {
            let want = expected_items(&keys, prefix, delimiter);
            for max_keys in [1, 2, 3, 1000] {
                let mut got = Vec::new();
                let mut start_after = None;
                for _ in 0..100 {
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
    let zero = ListRequest {
        max_keys: 0,
        ..ListRequest::default()
    };
    assert_eq!(store.list(&zero).await.expect("list"), ListPage::default());
}

#[tokio::test]
async fn start_after_inside_a_group_skips_the_group() {
    let (_dir, store) = bucket().await;
    for key in ["a/w", "a/x", "a/y", "b"] {
        put(&store, key, b"v").await;
    }
    for start in ["a/x", "a/"] {
        let req = ListRequest {
            delimiter: Some("/".into()),
            start_after: Some(start.into()),
            max_keys: 10,
            ..ListRequest::default()
        };
        let page = store.list(&req).await.expect("list");
        assert!(page.common_prefixes.is_empty(), "{start}");
        assert_eq!(
            page.objects
                .iter()
                .map(|o| o.key.as_str())
                .collect::<Vec<_>>(),
            ["b"]
        );
    }
}

#[tokio::test]
async fn failed_bodies_leave_nothing() {
    let (_dir, store) = bucket().await;
    put(&store, "kept", b"old").await;
    let failing: ByteStream = Box::pin(stream::iter([
        Ok(Bytes::from_static(b"partial")),
        Err(StoreError::Body("client went away".into())),
    ]));
    let err = store.put("new", failing, PutOptions::default()).await;
    assert!(matches!(err, Err(StoreError::Body(m)) if m == "client went away"));
    for (data, declared) in [(&b"short"[..], 10), (&b"too long"[..], 3)] {
        let opts = PutOptions {
            content_length: Some(declared),
            ..PutOptions::default()
        };
        assert!(matches!(
            store.put("kept", body(data), opts).await,
            Err(StoreError::Body(_))
        ));
    }
    assert!(matches!(store.head("new").await, Err(StoreError::NotFound)));
    assert_eq!(
        read(&store, "kept", None).await.expect("old version"),
        b"old"
    );
    assert_eq!(temp_count(&store), 0);
}

#[tokio::test]
async fn dropped_put_removes_its_temp_file() {
    let (_dir, store) = bucket().await;
    let (tx, reached) = tokio::sync::oneshot::channel();
    let signal = stream::once(async move { tx.send(()).ok() }).filter_map(|_| async { None });
    let stalled: ByteStream = Box::pin(body(b"start").chain(signal).chain(stream::pending()));
    let mut put = Box::pin(store.put("stalled", stalled, PutOptions::default()));
    tokio::select! {
        _ = &mut put => panic!("a stalled put finished"),
        _ = reached => {}
    }
    assert_eq!(temp_count(&store), 1);
    drop(put);
    for _ in 0..100 {
        if temp_count(&store) == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(temp_count(&store), 0);
    assert!(matches!(
        store.head("stalled").await,
        Err(StoreError::NotFound)
    ));
}

#[tokio::test]
async fn nothing_is_written_outside_the_bucket_directory() {
    let (dir, store) = bucket().await;
    let long = "../".repeat(300);
    for key in [
        "../escape",
        "/abs",
        "a/../../b",
        "..",
        long.as_str(),
        "x\\..\\y",
        "nul\0byte",
    ] {
        put(&store, key, b"v").await;
        assert_eq!(read(&store, key, None).await.expect("get"), b"v");
        let names = |d: &Path| {
            let mut v: Vec<String> = std::fs::read_dir(d)
                .expect("dir")
                .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
                .collect();
            v.sort();
            v
        };
        assert_eq!(names(dir.path()), ["bucket"]);
        assert_eq!(
            names(&dir.path().join("bucket")),
            ["meta", "objects", "tmp", "writer.lock"]
        );
        store.delete(key).await.expect("delete");
    }
}

#[tokio::test]
async fn staged_uploads_are_invisible_until_committed_and_gone_when_dropped() {
    let (_dir, store) = bucket().await;
    put(&store, "k", b"old").await;
    let opts = PutOptions {
        content_type: Some("text/plain".into()),
        metadata: BTreeMap::from([("a".to_string(), "1".to_string())]),
        content_length: Some(3),
    };
    let staged = store.stage("k", body(b"new"), opts.clone()).await.unwrap();
    assert_eq!(staged.size, 3);
    assert_eq!(read(&store, "k", None).await.unwrap(), b"old");
    let listed = store
        .list(&ListRequest {
            max_keys: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(listed.objects.len(), 1);
    let extra = BTreeMap::from([("classification".to_string(), "public".to_string())]);
    let put = store.commit(staged, extra).await.unwrap();
    assert_eq!(read(&store, "k", None).await.unwrap(), b"new");
    let meta = store.head("k").await.unwrap();
    assert_eq!(meta.etag, put.etag);
    assert_eq!(meta.content_type.as_deref(), Some("text/plain"));
    assert_eq!(meta.metadata["a"], "1");
    assert_eq!(meta.metadata["classification"], "public");
    assert_eq!(temp_count(&store), 0);

    let staged = store.stage("other", body(b"xyz"), opts).await.unwrap();
    assert_eq!(temp_count(&store), 1);
    drop(staged);
    // The temp file is removed by a blocking task spawned on drop.
    for _ in 0..100 {
        if temp_count(&store) == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(temp_count(&store), 0);
    assert!(matches!(
        store.head("other").await,
        Err(StoreError::NotFound)
    ));
}
