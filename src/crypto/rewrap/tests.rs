use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::*;
use crate::crypto::metadata::{META_KEY_ID, META_WRAPPED_KEY};
use crate::crypto::{DataKeyCache, ObjectLocation, OpenPlan, open_object, seal_object};
use crate::store::fs::FsStore;
use crate::store::{ByteStream, PutOptions};

const BUCKET: &str = "b";

fn once(data: Vec<u8>) -> ByteStream {
    Box::pin(futures_util::stream::once(
        async move { Ok(Bytes::from(data)) },
    ))
}

async fn collect(mut s: ByteStream) -> Result<Vec<u8>, StoreError> {
    let mut out = Vec::new();
    while let Some(chunk) = s.next().await {
        out.extend_from_slice(&chunk?);
    }
    Ok(out)
}

struct Fixture {
    _dir: tempfile::TempDir,
    key_file: std::path::PathBuf,
    store: FsStore,
    /// As the gateway holds it: the data-key cache over its own view of the key file.
    cache: DataKeyCache,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("kek");
    let service = LocalKeyService::open_or_create(&key_file).unwrap();
    let cache = DataKeyCache::new(Arc::new(service), 100, Duration::from_secs(300));
    let store = FsStore::open(&dir.path().join(BUCKET)).await.unwrap();
    Fixture {
        _dir: dir,
        key_file,
        store,
        cache,
    }
}

impl Fixture {
    async fn seal(&self, key: &str, data: &[u8]) {
        let at = ObjectLocation {
            bucket: BUCKET,
            key,
        };
        let sealed = seal_object(&self.cache, None, "demo", at, once(data.to_vec()))
            .await
            .unwrap();
        let opts = PutOptions {
            metadata: sealed.metadata,
            ..PutOptions::default()
        };
        self.store.put(key, sealed.body, opts).await.unwrap();
    }

    async fn open(&self, key: &str) -> Result<Vec<u8>, String> {
        let got = self.store.get(key, None).await.unwrap();
        let at = ObjectLocation {
            bucket: BUCKET,
            key,
        };
        let plan = OpenPlan::whole(got.meta.size).unwrap();
        let body = open_object(&self.cache, at, &got.meta.metadata, plan, got.body)
            .await
            .map_err(|e| e.to_string())?;
        collect(body).await.map_err(|e| e.to_string())
    }

    /// Another process's view of the key file, with a new key appended: the rewrap tool's.
    fn rotated(&self) -> Rewrapper {
        let keys = LocalKeyService::open(&self.key_file).unwrap();
        keys.rotate().unwrap();
        Rewrapper::local(keys, None).unwrap()
    }

    async fn run(&self, to: &Rewrapper, dry_run: bool) -> (Report, Vec<String>) {
        let mut seen = Vec::new();
        let report = rewrap_all(&self.store, BUCKET, "s/", to, dry_run, |key, _| {
            seen.push(key.to_owned())
        })
        .await
        .unwrap();
        seen.sort();
        (report, seen)
    }

    async fn metadata(&self, key: &str) -> BTreeMap<String, String> {
        self.store.head(key).await.unwrap().metadata
    }
}

#[tokio::test]
async fn a_share_moves_to_the_new_key_and_stays_readable() {
    let f = fixture().await;
    let data: Vec<u8> = (0..70_000u32).map(|i| (i % 251) as u8).collect();
    f.seal("s/a", &data).await;
    f.seal("s/dir/b", b"bee").await;
    f.seal("elsewhere", b"outside the share's prefix").await;
    let plain = PutOptions {
        metadata: BTreeMap::from([("classification".to_string(), "public".to_string())]),
        ..PutOptions::default()
    };
    f.store
        .put("s/plain", once(b"plain".to_vec()), plain)
        .await
        .unwrap();
    let old = f.metadata("s/a").await;
    let target = f.rotated();
    let new_id = target.target().to_owned();
    assert_ne!(old[META_KEY_ID], new_id);

    // A dry run says what it would do and changes nothing.
    let (report, _) = f.run(&target, true).await;
    assert_eq!((report.would_rewrap, report.rewrapped), (2, 0));
    assert_eq!(f.metadata("s/a").await, old);

    let (report, seen) = f.run(&target, false).await;
    assert_eq!(seen, ["s/a", "s/dir/b", "s/plain"]);
    assert_eq!(report.rewrapped, 2);
    assert_eq!(report.plaintext, ["s/plain"]);
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    let new = f.metadata("s/a").await;
    assert_eq!(new[META_KEY_ID], new_id);
    assert_ne!(new[META_WRAPPED_KEY], old[META_WRAPPED_KEY]);
    for (name, value) in &old {
        if name != META_KEY_ID && name != META_WRAPPED_KEY {
            assert_eq!(&new[name], value, "{name} is kept");
        }
    }
    assert_eq!(
        f.metadata("elsewhere").await[META_KEY_ID],
        old[META_KEY_ID],
        "only the share's prefix"
    );
    assert_eq!(
        f.metadata("s/plain").await["classification"],
        "public",
        "plaintext objects are not touched"
    );
    // The gateway's own service picks up the new key from the file and opens both.
    assert_eq!(f.open("s/a").await.unwrap(), data);
    assert_eq!(f.open("s/dir/b").await.unwrap(), b"bee");

    // A second run finds nothing to do.
    let (report, _) = f.run(&target, false).await;
    assert_eq!((report.rewrapped, report.already_under_target), (0, 2));
}

#[tokio::test]
async fn bad_objects_are_reported_and_the_rest_goes_on() {
    let f = fixture().await;
    f.seal("s/good", b"good").await;
    f.seal("s/moved-from", b"moved").await;
    f.seal("s/broken", b"broken").await;
    // The same ciphertext and metadata under another key: its context no longer matches.
    let (moved, meta) = {
        let got = f.store.get("s/moved-from", None).await.unwrap();
        (collect(got.body).await.unwrap(), got.meta.metadata)
    };
    let opts = PutOptions {
        metadata: meta,
        ..PutOptions::default()
    };
    f.store.put("s/moved-to", once(moved), opts).await.unwrap();
    let mut broken = f.metadata("s/broken").await;
    broken.insert(META_WRAPPED_KEY.into(), "***".into());
    let etag = f.store.head("s/broken").await.unwrap().etag.unwrap();
    f.store
        .replace_metadata("s/broken", broken, &etag)
        .await
        .unwrap();

    let target = f.rotated();
    let (report, _) = f.run(&target, false).await;
    assert_eq!(report.rewrapped, 2, "s/good and s/moved-from");
    let failures: BTreeMap<_, _> = report.failures.into_iter().collect();
    assert_eq!(failures.len(), 2, "{failures:?}");
    assert!(matches!(
        failures["s/moved-to"],
        RewrapError::Key(KeyError::Refused(_))
    ));
    assert!(matches!(failures["s/broken"], RewrapError::Metadata(_)));
    // The refused object was left as it was: still under the old key, still refused to read.
    assert_ne!(f.metadata("s/moved-to").await[META_KEY_ID], target.target());
    assert!(f.open("s/moved-to").await.is_err());
    assert_eq!(f.open("s/good").await.unwrap(), b"good");
}

#[test]
fn an_unknown_local_target_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let keys = LocalKeyService::open_or_create(&dir.path().join("kek")).unwrap();
    let newest = keys.key_ids().pop().unwrap();
    assert!(matches!(
        Rewrapper::local(keys, Some("local-nope")),
        Err(KeyError::KeyUnusable(_))
    ));
    let keys = LocalKeyService::open(&dir.path().join("kek")).unwrap();
    assert_eq!(Rewrapper::local(keys, None).unwrap().target(), newest);
}
