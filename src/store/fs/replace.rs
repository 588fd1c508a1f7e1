//! Metadata replacement for the embedded store, and the bucket's cross-process writer lock.
//!
//! Takes a key, the new user metadata and the ETag the caller last saw; gives the object with
//! only its `meta/` file rewritten (temp file, fsync, rename), the body untouched, or
//! [`MetadataReplaced::Changed`] when the object is gone or has another ETag. Fails with
//! `Upstream` for I/O errors and for an object whose metadata does not describe its body
//! (left by a crash between the two renames of an overwrite).
//!
//! `gatehouse keys rewrap` writes metadata from its own process while the gateway may be
//! writing the same bucket, so the per-key locks of one process are not enough: every write
//! (commit, delete, this) also holds an exclusive `flock` on `<bucket>/writer.lock` around its
//! renames. The check of ETag and body identity and the rename happen under both locks.

use std::collections::BTreeMap;
use std::io::ErrorKind;
use std::path::Path;

use super::{Dirs, LOCKS, TempFile, body_id, io_failure, parse_meta, sync_dir, write_synced};
use crate::store::{MetadataReplaced, PutResult, StoreError};

const WRITER_LOCK: &str = "writer.lock";

/// Held while a writer renames files of the bucket; released on drop (the file is closed).
pub(super) struct WriterLock(#[allow(dead_code)] std::fs::File);

impl Dirs {
    /// Takes the bucket's cross-process writer lock, waiting for other processes. Blocking.
    pub(super) fn writer_lock(&self) -> Result<WriterLock, StoreError> {
        let path = self.objects.with_file_name(WRITER_LOCK);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| io_failure("open bucket writer lock", e))?;
        // One open file description per holder, so holders in this process exclude each other too.
        file.lock()
            .map_err(|e| io_failure("lock bucket writer lock", e))?;
        Ok(WriterLock(file))
    }

    /// Rewrites the metadata of the object at `rel` if its ETag is `if_match`. Blocking.
    pub(super) fn replace_metadata(
        &self,
        rel: &Path,
        stripe: usize,
        metadata: BTreeMap<String, String>,
        if_match: &str,
    ) -> Result<MetadataReplaced, StoreError> {
        let meta_temp = TempFile(Some(self.tmp.join(format!("{}.meta", ulid::Ulid::new()))));
        let _lock = LOCKS[stripe].lock();
        let _writers = self.writer_lock()?;
        let (body_path, meta_path) = (self.objects.join(rel), self.meta.join(rel));
        let stat = match std::fs::metadata(&body_path) {
            Ok(s) => s,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(MetadataReplaced::Changed),
            Err(e) => return Err(io_failure("stat object", e)),
        };
        let raw = match std::fs::read(&meta_path) {
            Ok(raw) => raw,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(MetadataReplaced::Changed),
            Err(e) => return Err(io_failure("read metadata", e)),
        };
        let mut meta = parse_meta(&raw)?;
        if meta.etag != if_match {
            return Ok(MetadataReplaced::Changed);
        }
        if meta.body_id != body_id(&stat) || meta.size != stat.len() {
            return Err(StoreError::Upstream(
                "object metadata does not match its body (interrupted overwrite?)".into(),
            ));
        }
        meta.metadata = metadata;
        let json = serde_json::to_vec(&meta)
            .map_err(|e| StoreError::Upstream(format!("encode metadata: {e}")))?;
        if let Some(path) = &meta_temp.0 {
            write_synced(path, &json).map_err(|e| io_failure("write metadata", e))?;
        }
        meta_temp
            .rename_to(&meta_path)
            .map_err(|e| io_failure("replace metadata", e))?;
        if let Some(parent) = meta_path.parent() {
            sync_dir(parent);
        }
        Ok(MetadataReplaced::Done(PutResult {
            etag: Some(meta.etag),
        }))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use bytes::Bytes;
    use futures_util::StreamExt;

    use super::*;
    use crate::store::fs::FsStore;
    use crate::store::{ByteStream, ObjectStore, PutOptions};

    fn body(data: &'static [u8]) -> ByteStream {
        Box::pin(futures_util::stream::iter([Ok(Bytes::from_static(data))]))
    }

    fn meta(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    async fn read(store: &FsStore, key: &str) -> Vec<u8> {
        let mut got = store.get(key, None).await.unwrap().body;
        let mut out = Vec::new();
        while let Some(chunk) = got.next().await {
            out.extend_from_slice(&chunk.unwrap());
        }
        out
    }

    #[tokio::test]
    async fn metadata_is_replaced_only_under_the_expected_etag() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsStore::open(dir.path()).await.unwrap();
        let opts = PutOptions {
            content_type: Some("text/csv".into()),
            metadata: meta(&[("a", "1"), ("b", "2")]),
            content_length: None,
        };
        let put = store.put("k/x", body(b"hello"), opts).await.unwrap();
        let etag = put.etag.clone().unwrap();
        let before = store.head("k/x").await.unwrap();

        let done = store
            .replace_metadata("k/x", meta(&[("a", "9")]), &etag)
            .await
            .unwrap();
        assert_eq!(done, MetadataReplaced::Done(put.clone()));
        let after = store.head("k/x").await.unwrap();
        assert_eq!(
            after.metadata,
            meta(&[("a", "9")]),
            "the whole map is replaced"
        );
        assert_eq!(
            (
                after.size,
                &after.etag,
                &after.content_type,
                after.last_modified
            ),
            (
                before.size,
                &before.etag,
                &before.content_type,
                before.last_modified
            ),
            "everything else is kept"
        );
        assert_eq!(read(&store, "k/x").await, b"hello");

        // A stale ETag (the object was overwritten since) changes nothing.
        let newer = store
            .put("k/x", body(b"newer"), PutOptions::default())
            .await
            .unwrap();
        assert_ne!(newer.etag.as_deref(), Some(etag.as_str()));
        let stale = store
            .replace_metadata("k/x", meta(&[("a", "stale")]), &etag)
            .await
            .unwrap();
        assert_eq!(stale, MetadataReplaced::Changed);
        let now = store.head("k/x").await.unwrap();
        assert!(now.metadata.is_empty());
        assert_eq!(read(&store, "k/x").await, b"newer");

        // A missing object is `Changed`, and nothing is created.
        let gone = store
            .replace_metadata("missing", meta(&[("a", "1")]), &etag)
            .await
            .unwrap();
        assert_eq!(gone, MetadataReplaced::Changed);
        assert!(matches!(
            store.head("missing").await,
            Err(StoreError::NotFound)
        ));
        let tmp: Vec<_> = std::fs::read_dir(dir.path().join("tmp")).unwrap().collect();
        assert!(tmp.is_empty(), "no temp files are left behind");
    }

    #[tokio::test]
    async fn writers_hold_the_bucket_lock_across_processes() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsStore::open(dir.path()).await.unwrap();
        let etag = store
            .put("k", body(b"x"), PutOptions::default())
            .await
            .unwrap()
            .etag
            .unwrap();
        let held = store.dirs.writer_lock().unwrap();
        // Another open file description (as another process has) cannot take it meanwhile.
        let other = std::fs::OpenOptions::new()
            .write(true)
            .open(dir.path().join(WRITER_LOCK))
            .unwrap();
        assert!(matches!(
            other.try_lock(),
            Err(std::fs::TryLockError::WouldBlock)
        ));
        drop(held);
        other.try_lock().expect("free once released");
        other.unlock().unwrap();
        let done = store
            .replace_metadata("k", meta(&[("c", "3")]), &etag)
            .await
            .unwrap();
        assert!(matches!(done, MetadataReplaced::Done(_)));
        assert_eq!(store.head("k").await.unwrap().metadata, meta(&[("c", "3")]));
    }
}
