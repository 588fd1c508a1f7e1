//! Metadata replacement on S3: the object copied onto itself with `MetadataDirective::Replace`.
//!
//! Takes a key, the new user metadata and the ETag the caller last saw; gives the object with
//! the new metadata and the same body (S3 copies server-side: no body byte passes through the
//! gateway), or [`MetadataReplaced::Changed`] when the object is gone or has another ETag.
//! A HeadObject first checks the ETag and reads what a `REPLACE` copy would otherwise reset
//! (content type and encoding, disposition, language, cache control, expiry, storage class,
//! server-side encryption, website redirect); the copy itself carries `CopySourceIfMatch` and
//! `If-Match`, so an overwrite between the HeadObject and the copy makes S3 refuse it (412 or
//! 409) instead of clobbering the newer object. Objects above [`COPY_SINGLE_MAX`] (S3's 5 GiB
//! single-copy limit) are copied with UploadPartCopy parts, each with `CopySourceIfMatch`, and a
//! CompleteMultipartUpload with `If-Match`; the object then gets a multipart ETag. Tags are
//! kept (the default tagging directive copies them); in a versioned bucket the copy is a new
//! version and the old one keeps its old metadata. Fails with `Upstream` for anything else.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::operation::head_object::HeadObjectOutput;
use aws_sdk_s3::primitives::DateTime;
use aws_sdk_s3::types::{MetadataDirective, ServerSideEncryption, StorageClass};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use super::stage::{COPY_PART_SIZE, COPY_SINGLE_MAX, CopyParts};
use super::{S3Store, Upload, read_failure, status, upstream};
use crate::store::{MetadataReplaced, PutResult, StoreError};

/// `x-amz-copy-source` is `bucket/key` with the key URL-encoded, its slashes kept.
const COPY_SOURCE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'/');

/// What a `REPLACE` copy would reset unless it is sent again.
struct Kept {
    content_type: Option<String>,
    content_encoding: Option<String>,
    content_disposition: Option<String>,
    content_language: Option<String>,
    cache_control: Option<String>,
    expires: Option<DateTime>,
    storage_class: Option<StorageClass>,
    sse: Option<ServerSideEncryption>,
    sse_kms_key_id: Option<String>,
    bucket_key_enabled: Option<bool>,
    website_redirect_location: Option<String>,
}

impl Kept {
    #[allow(deprecated)] // `expires` is the typed form of the header CopyObject takes.
    fn from_head(h: &HeadObjectOutput) -> Kept {
        Kept {
            content_type: h.content_type.clone(),
            content_encoding: h.content_encoding.clone(),
            content_disposition: h.content_disposition.clone(),
            content_language: h.content_language.clone(),
            cache_control: h.cache_control.clone(),
            expires: h.expires,
            storage_class: h.storage_class.clone(),
            sse: h.server_side_encryption.clone(),
            sse_kms_key_id: h.ssekms_key_id.clone(),
            bucket_key_enabled: h.bucket_key_enabled,
            website_redirect_location: h.website_redirect_location.clone(),
        }
    }
}

/// Sets every [`Kept`] attribute on a CopyObject or CreateMultipartUpload builder.
macro_rules! keep {
    ($builder:expr, $k:expr) => {
        $builder
            .set_content_type($k.content_type.clone())
            .set_content_encoding($k.content_encoding.clone())
            .set_content_disposition($k.content_disposition.clone())
            .set_content_language($k.content_language.clone())
            .set_cache_control($k.cache_control.clone())
            .set_expires($k.expires)
            .set_storage_class($k.storage_class.clone())
            .set_server_side_encryption($k.sse.clone())
            .set_ssekms_key_id($k.sse_kms_key_id.clone())
            .set_bucket_key_enabled($k.bucket_key_enabled)
            .set_website_redirect_location($k.website_redirect_location.clone())
    };
}

/// S3's answers for "the object is not the one you named": gone, another ETag, or a
/// concurrent conditional write.
fn changed<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> bool {
    if err.code() == Some("NoSuchBucket") {
        return false;
    }
    matches!(
        err.code(),
        Some("PreconditionFailed" | "ConditionalRequestConflict" | "NoSuchKey")
    ) || matches!(status(err), Some(404 | 409 | 412))
}

impl S3Store {
    pub(super) async fn replace_metadata_with(
        &self,
        key: &str,
        metadata: BTreeMap<String, String>,
        if_match: &str,
        single_max: u64,
        part_size: u64,
    ) -> Result<MetadataReplaced, StoreError> {
        let head = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await;
        let head = match head {
            Ok(h) => h,
            Err(e) => {
                return match read_failure("HeadObject", &e) {
                    StoreError::NotFound => Ok(MetadataReplaced::Changed),
                    other => Err(other),
                };
            }
        };
        if head.e_tag.as_deref() != Some(if_match) {
            return Ok(MetadataReplaced::Changed);
        }
        let size = head.content_length.unwrap_or(0).max(0) as u64;
        let kept = Kept::from_head(&head);
        let source = format!("{}/{}", self.bucket, utf8_percent_encode(key, COPY_SOURCE));
        let metadata: HashMap<String, String> = metadata.into_iter().collect();
        if size > single_max {
            let copy = PartCopy {
                store: self,
                key,
                source: &source,
                if_match,
                size,
                part_size,
            };
            return copy.run(metadata, &kept).await;
        }
        let copied = keep!(self.client.copy_object(), kept)
            .bucket(&self.bucket)
            .key(key)
            .copy_source(&source)
            .copy_source_if_match(if_match)
            .if_match(if_match)
            .metadata_directive(MetadataDirective::Replace)
            .set_metadata(Some(metadata))
            .send()
            .await;
        match copied {
            Ok(out) => Ok(MetadataReplaced::Done(PutResult {
                etag: out.copy_object_result.and_then(|r| r.e_tag),
            })),
            Err(e) if changed(&e) => Ok(MetadataReplaced::Changed),
            Err(e) => Err(upstream("CopyObject", &e)),
        }
    }

    pub(super) async fn replace_metadata_default(
        &self,
        key: &str,
        metadata: BTreeMap<String, String>,
        if_match: &str,
    ) -> Result<MetadataReplaced, StoreError> {
        self.replace_metadata_with(key, metadata, if_match, COPY_SINGLE_MAX, COPY_PART_SIZE)
            .await
    }
}

/// A multipart copy of an object onto itself, every step conditional on its ETag.
struct PartCopy<'a> {
    store: &'a S3Store,
    key: &'a str,
    source: &'a str,
    if_match: &'a str,
    size: u64,
    part_size: u64,
}

impl PartCopy<'_> {
    async fn run(
        &self,
        metadata: HashMap<String, String>,
        kept: &Kept,
    ) -> Result<MetadataReplaced, StoreError> {
        let client = &self.store.client;
        let created = keep!(client.create_multipart_upload(), kept)
            .bucket(&self.store.bucket)
            .key(self.key)
            .set_metadata(Some(metadata))
            .send()
            .await
            .map_err(|e| upstream("CreateMultipartUpload", &e))?;
        let id = created
            .upload_id
            .ok_or_else(|| StoreError::Upstream("CreateMultipartUpload: no upload id".into()))?;
        // Aborted on any error and when dropped.
        let mut upload = Upload {
            client: client.clone(),
            bucket: self.store.bucket.clone(),
            key: self.key.to_owned(),
            id: Some(id.clone()),
        };
        let result = self.parts_and_complete(&id).await;
        match result {
            Ok(MetadataReplaced::Done(put)) => {
                upload.id = None;
                Ok(MetadataReplaced::Done(put))
            }
            other => {
                upload.abort().await;
                other
            }
        }
    }

    async fn parts_and_complete(&self, id: &str) -> Result<MetadataReplaced, StoreError> {
        let client = &self.store.client;
        let copied = CopyParts {
            bucket: &self.store.bucket,
            key: self.key,
            upload_id: id,
            source: self.source,
            size: self.size,
            part_size: self.part_size,
            if_match: Some(self.if_match),
        }
        .run(client)
        .await;
        let done = match copied {
            Ok(done) => done,
            Err(e) if changed(&e) => return Ok(MetadataReplaced::Changed),
            Err(e) => return Err(upstream("UploadPartCopy", &e)),
        };
        let out = client
            .complete_multipart_upload()
            .bucket(&self.store.bucket)
            .key(self.key)
            .upload_id(id)
            .if_match(self.if_match)
            .multipart_upload(done)
            .send()
            .await;
        match out {
            Ok(out) => Ok(MetadataReplaced::Done(PutResult { etag: out.e_tag })),
            Err(e) if changed(&e) => Ok(MetadataReplaced::Changed),
            Err(e) => Err(upstream("CompleteMultipartUpload", &e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use bytes::Bytes;
    use futures_util::StreamExt;

    use super::*;
    use crate::store::{ByteStream, ObjectStore, PutOptions};

    /// A fresh bucket on the test endpoint, or `None` (with a note) when none is set.
    async fn bucket(name: &str) -> Option<S3Store> {
        let Ok(endpoint) = std::env::var("GATEHOUSE_TEST_S3_ENDPOINT") else {
            eprintln!("skipped: set GATEHOUSE_TEST_S3_ENDPOINT (e.g. a moto server)");
            return None;
        };
        let name = format!("{name}-{}", ulid::Ulid::new().to_string().to_lowercase());
        let store = S3Store::new(None, Some(&endpoint), true, &name)
            .await
            .expect("client");
        store.create_bucket_if_missing().await.expect("bucket");
        Some(store)
    }

    fn body(data: Vec<u8>) -> ByteStream {
        let chunks: Vec<Result<Bytes, StoreError>> = data
            .chunks(1 << 20)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        Box::pin(futures_util::stream::iter(chunks))
    }

    fn meta(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    async fn read(store: &S3Store, key: &str) -> Vec<u8> {
        let mut got = store.get(key, None).await.unwrap().body;
        let mut out = Vec::new();
        while let Some(chunk) = got.next().await {
            out.extend_from_slice(&chunk.unwrap());
        }
        out
    }

    async fn put(store: &S3Store, key: &str, data: Vec<u8>, m: &[(&str, &str)]) -> String {
        let opts = PutOptions {
            content_type: Some("text/csv".into()),
            metadata: meta(m),
            content_length: Some(data.len() as u64),
        };
        store
            .put(key, body(data), opts)
            .await
            .unwrap()
            .etag
            .unwrap()
    }

    #[test]
    fn copy_sources_are_url_encoded_with_slashes_kept() {
        let encoded = utf8_percent_encode("a b/ü+?#%/x-y_z.~", COPY_SOURCE).to_string();
        assert_eq!(encoded, "a%20b/%C3%BC%2B%3F%23%25/x-y_z.~");
    }

    #[tokio::test]
    async fn s3_metadata_is_replaced_only_under_the_expected_etag() {
        let Some(store) = bucket("replace").await else {
            return;
        };
        // A key that needs encoding in x-amz-copy-source.
        let key = "dir/a b+ü.csv";
        let etag = put(
            &store,
            key,
            b"a,b\n1,2\n".to_vec(),
            &[("a", "1"), ("b", "2")],
        )
        .await;
        let done = store
            .replace_metadata(key, meta(&[("a", "9")]), &etag)
            .await
            .unwrap();
        assert!(matches!(done, MetadataReplaced::Done(_)), "{done:?}");
        let after = store.head(key).await.unwrap();
        assert_eq!(
            after.metadata,
            meta(&[("a", "9")]),
            "the whole map is replaced"
        );
        assert_eq!(after.content_type.as_deref(), Some("text/csv"), "kept");
        assert_eq!(after.etag.as_deref(), Some(etag.as_str()), "same body");
        assert_eq!(read(&store, key).await, b"a,b\n1,2\n");

        // Overwritten since: the stale ETag changes nothing.
        let newer = put(&store, key, b"newer".to_vec(), &[]).await;
        assert_ne!(newer, etag);
        let stale = store
            .replace_metadata(key, meta(&[("a", "stale")]), &etag)
            .await
            .unwrap();
        assert_eq!(stale, MetadataReplaced::Changed);
        assert!(store.head(key).await.unwrap().metadata.is_empty());
        assert_eq!(read(&store, key).await, b"newer");

        let gone = store
            .replace_metadata("missing", meta(&[("a", "1")]), &etag)
            .await
            .unwrap();
        assert_eq!(gone, MetadataReplaced::Changed);
        assert!(matches!(
            store.head("missing").await,
            Err(StoreError::NotFound)
        ));
    }

    #[tokio::test]
    async fn s3_objects_above_the_single_copy_limit_are_copied_in_parts() {
        let Some(store) = bucket("replace-big").await else {
            return;
        };
        let data: Vec<u8> = (0..(11usize << 20)).map(|i| (i % 251) as u8).collect();
        let etag = put(&store, "big", data.clone(), &[("a", "1")]).await;
        // Parts of at least 5 MiB, as S3 requires; a 1 MiB "single-copy limit" forces them.
        let done = store
            .replace_metadata_with("big", meta(&[("a", "2")]), &etag, 1 << 20, 5 << 20)
            .await
            .unwrap();
        let MetadataReplaced::Done(put) = done else {
            panic!("{done:?}");
        };
        let after = store.head("big").await.unwrap();
        assert_eq!(after.etag, put.etag, "the multipart copy's ETag");
        assert_eq!(
            (after.metadata, after.size, after.content_type.as_deref()),
            (meta(&[("a", "2")]), data.len() as u64, Some("text/csv"))
        );
        assert_eq!(read(&store, "big").await, data);
        let uploads = store
            .client
            .list_multipart_uploads()
            .bucket(&store.bucket)
            .send()
            .await
            .unwrap();
        assert!(uploads.uploads().is_empty(), "no upload left open");
        // The old ETag no longer matches: nothing is copied, no upload is left open.
        let stale = store
            .replace_metadata_with("big", meta(&[("a", "3")]), &etag, 1 << 20, 5 << 20)
            .await
            .unwrap();
        assert_eq!(stale, MetadataReplaced::Changed);
        assert_eq!(
            store.head("big").await.unwrap().metadata,
            meta(&[("a", "2")])
        );
    }
}
