//! Object stores behind the shares.
//!
//! Takes internal object keys (share prefix already applied, already validated) and gives
//! streamed bodies, metadata and sorted listings. One [`ObjectStore`] value is one bucket:
//! a directory of the embedded `fs` store or an S3 bucket. Fails with [`StoreError`], which
//! tells a missing object or an unsatisfiable range from an upstream outage.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::Stream;

use crate::config::StoreConfig;

pub mod fs;
pub mod s3;
mod timed;

pub use timed::Timed;

/// A streamed object body. Errors mid-stream mean the transfer must be aborted, not ended.
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, StoreError>> + Send>>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("no such key")]
    NotFound,
    #[error("range not satisfiable for object of {size} bytes")]
    InvalidRange { size: u64 },
    /// The body supplied to `put` failed (client aborted, size limit hit, ...). Nothing was stored.
    #[error("request body failed: {0}")]
    Body(String),
    /// The store itself failed: I/O error, S3 error, timeout. Internal detail, never shown to partners.
    #[error("store failure: {0}")]
    Upstream(String),
}

/// A byte range as the client asked for it (`Range: bytes=...`), before the size is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteRange {
    /// `bytes=a-b` (inclusive) or `bytes=a-` when `last` is `None`.
    From { first: u64, last: Option<u64> },
    /// `bytes=-n`: the last n bytes.
    Suffix(u64),
}

impl ByteRange {
    /// Resolves against an object size into an inclusive `(first, last)`, or `None` when
    /// unsatisfiable (RFC 9110 §14.1.2).
    pub fn resolve(self, size: u64) -> Option<(u64, u64)> {
        match self {
            ByteRange::From { first, last } => {
                if first >= size {
                    return None;
                }
                let last = last.map_or(size - 1, |l| l.min(size - 1));
                (last >= first).then_some((first, last))
            }
            ByteRange::Suffix(0) => None,
            ByteRange::Suffix(n) => {
                if size == 0 {
                    return None;
                }
                Some((size.saturating_sub(n), size - 1))
            }
        }
    }

    /// The `Range` header value for this range.
    pub fn to_header(self) -> String {
        match self {
            ByteRange::From {
                first,
                last: Some(l),
            } => format!("bytes={first}-{l}"),
            ByteRange::From { first, last: None } => format!("bytes={first}-"),
            ByteRange::Suffix(n) => format!("bytes=-{n}"),
        }
    }
}

/// What a store knows about one object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectMeta {
    pub size: u64,
    /// Quoted, as S3 sends it.
    pub etag: Option<String>,
    pub last_modified: Option<jiff::Timestamp>,
    pub content_type: Option<String>,
    /// User metadata (`x-amz-meta-*` without the prefix), lower-case names.
    pub metadata: BTreeMap<String, String>,
}

/// A body being served.
pub struct GetObject {
    pub meta: ObjectMeta,
    /// Inclusive range served, when a range was asked for.
    pub range: Option<(u64, u64)>,
    pub body: ByteStream,
}

#[derive(Debug, Clone, Default)]
pub struct PutOptions {
    pub content_type: Option<String>,
    pub metadata: BTreeMap<String, String>,
    /// Content-Length when the client sent one.
    pub content_length: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutResult {
    pub etag: Option<String>,
}

/// Internal keys under this prefix hold staged uploads of stores without a private staging
/// area (S3): the data path never serves or lists them.
pub const STAGING_PREFIX: &str = ".gatehouse-staging/";

/// An upload received completely into the store's staging area, not yet visible under `key`.
/// [`ObjectStore::commit`] publishes it; dropping it discards it (best effort for S3, where a
/// lifecycle rule on [`STAGING_PREFIX`] removes what a crash left behind).
pub struct Staged {
    pub key: String,
    /// Stored bytes.
    pub size: u64,
    /// Store-specific: where the body waits and how to discard it.
    pub(crate) inner: Box<dyn std::any::Any + Send>,
}

impl std::fmt::Debug for Staged {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Staged")
            .field("key", &self.key)
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

/// One ListObjectsV2-style page request against internal keys.
#[derive(Debug, Clone, Default)]
pub struct ListRequest {
    pub prefix: String,
    pub delimiter: Option<String>,
    /// Only keys (and common prefixes) strictly after this one.
    pub start_after: Option<String>,
    pub max_keys: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListEntry {
    pub key: String,
    pub size: u64,
    pub etag: Option<String>,
    pub last_modified: Option<jiff::Timestamp>,
}

/// Keys and common prefixes in ascending byte order of key, at most `max_keys` of both together.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListPage {
    pub objects: Vec<ListEntry>,
    pub common_prefixes: Vec<String>,
    pub is_truncated: bool,
}

/// One bucket of an object store.
#[async_trait::async_trait]
pub trait ObjectStore: Send + Sync + 'static {
    async fn head(&self, key: &str) -> Result<ObjectMeta, StoreError>;
    async fn get(&self, key: &str, range: Option<ByteRange>) -> Result<GetObject, StoreError>;
    /// Streams `body` into the object; the object becomes visible only once the whole body has
    /// arrived and been stored. On any error nothing is visible and nothing is left behind.
    async fn put(
        &self,
        key: &str,
        body: ByteStream,
        opts: PutOptions,
    ) -> Result<PutResult, StoreError>;
    /// Streams `body` into a staging area: nothing becomes visible under `key` (nor in any
    /// listing of the share). On error nothing is left behind.
    async fn stage(
        &self,
        key: &str,
        body: ByteStream,
        opts: PutOptions,
    ) -> Result<Staged, StoreError>;
    /// Makes a staged upload visible under its key, atomically, with `metadata` added to the
    /// metadata it was staged with. On error the key is unchanged and the upload discarded.
    async fn commit(
        &self,
        staged: Staged,
        metadata: BTreeMap<String, String>,
    ) -> Result<PutResult, StoreError>;
    /// Deleting a missing key succeeds, as in S3.
    async fn delete(&self, key: &str) -> Result<(), StoreError>;
    async fn list(&self, req: &ListRequest) -> Result<ListPage, StoreError>;
    /// Replaces the user metadata of `key` (the whole map; content type and the other system
    /// metadata are kept) without rewriting its body, only while the object's ETag is still
    /// `if_match_etag`: a concurrent overwrite or delete is never clobbered and gives
    /// [`MetadataReplaced::Changed`]. S3 gives the object a new `LastModified` (and, above the
    /// single-copy limit, a multipart ETag); the `fs` store keeps both.
    async fn replace_metadata(
        &self,
        key: &str,
        metadata: BTreeMap<String, String>,
        if_match_etag: &str,
    ) -> Result<MetadataReplaced, StoreError>;
}

/// What [`ObjectStore::replace_metadata`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetadataReplaced {
    /// The metadata was replaced; the object's ETag now.
    Done(PutResult),
    /// The object no longer has the expected ETag (overwritten or deleted): nothing changed.
    Changed,
}

/// Opens one bucket of a configured store.
/// Calls through it report their time to the request's audit event ([`Timed`]).
pub async fn open(store: &StoreConfig, bucket: &str) -> Result<Arc<dyn ObjectStore>, StoreError> {
    let inner: Arc<dyn ObjectStore> = match store {
        StoreConfig::Fs { root } => Arc::new(fs::FsStore::open(&root.join(bucket)).await?),
        StoreConfig::S3 {
            region,
            endpoint_url,
            force_path_style,
        } => Arc::new(
            s3::S3Store::new(
                region.as_deref(),
                endpoint_url.as_deref(),
                *force_path_style,
                bucket,
            )
            .await?,
        ),
    };
    Ok(Arc::new(Timed(inner)))
}

#[cfg(test)]
mod tests {
    use super::ByteRange;

    #[test]
    fn ranges_resolve_like_rfc_9110() {
        let r = |first, last| ByteRange::From { first, last };
        assert_eq!(r(0, Some(0)).resolve(10), Some((0, 0)));
        assert_eq!(r(2, Some(100)).resolve(10), Some((2, 9)));
        assert_eq!(r(9, None).resolve(10), Some((9, 9)));
        assert_eq!(r(10, None).resolve(10), None);
        assert_eq!(r(0, None).resolve(0), None);
        assert_eq!(ByteRange::Suffix(3).resolve(10), Some((7, 9)));
        assert_eq!(ByteRange::Suffix(30).resolve(10), Some((0, 9)));
        assert_eq!(ByteRange::Suffix(0).resolve(10), None);
        assert_eq!(ByteRange::Suffix(5).resolve(0), None);
    }
}
