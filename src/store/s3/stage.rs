//! Staged uploads on S3: upload under [`STAGING_PREFIX`], then publish with a server-side copy.
//!
//! Takes a body and the final key; `stage` uploads it (streamed, as `put` does) to a fresh
//! key under [`STAGING_PREFIX`], and `commit` copies it to the final key with the metadata
//! replaced by the staged metadata plus what the caller adds, then deletes the staging key.
//! CopyObject is atomic: the final key shows the old object or the new one with all of its
//! metadata, never a body without it. Objects above [`COPY_SINGLE_MAX`] are copied with a
//! multipart copy ([`COPY_PART_SIZE`] parts), which S3 also publishes atomically on completion.
//! A staged upload that is dropped is deleted by a spawned task; one left by a crash stays
//! until a lifecycle rule on the staging prefix removes it (docs/operations.md).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use aws_sdk_s3::Client;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{DisplayErrorContext, SdkError};
use aws_sdk_s3::operation::upload_part_copy::UploadPartCopyError;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, MetadataDirective};
use futures_util::StreamExt;

use super::{S3Store, upstream};
use crate::store::{
    ByteStream, ObjectStore, PutOptions, PutResult, STAGING_PREFIX, Staged, StoreError,
};

/// Largest object copied with one CopyObject (S3's limit is 5 GiB).
pub const COPY_SINGLE_MAX: u64 = 5 << 30;
/// Part size of a multipart copy.
pub const COPY_PART_SIZE: u64 = 512 << 20;

/// The staging object; deleted on drop unless committed.
struct S3Staged {
    guard: StagingKey,
    opts: PutOptions,
}

struct StagingKey {
    client: Client,
    bucket: String,
    key: Option<String>,
}

impl Drop for StagingKey {
    fn drop(&mut self) {
        let Some(key) = self.key.take() else { return };
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let (client, bucket) = (self.client.clone(), self.bucket.clone());
            rt.spawn(async move { delete_staging(&client, &bucket, &key).await });
        }
    }
}

/// The parts of a multipart upload copied from another object, range by range.
pub(super) struct CopyParts<'a> {
    pub bucket: &'a str,
    pub key: &'a str,
    pub upload_id: &'a str,
    /// `bucket/key` of the object copied, URL-encoded.
    pub source: &'a str,
    pub size: u64,
    pub part_size: u64,
    /// Every part copy is conditional on the source still having this ETag.
    pub if_match: Option<&'a str>,
}

impl CopyParts<'_> {
    /// Copies every part (UploadPartCopy, `part_size` bytes each); gives what completes the
    /// upload. The caller completes or aborts it.
    pub(super) async fn run(
        &self,
        client: &Client,
    ) -> Result<CompletedMultipartUpload, SdkError<UploadPartCopyError, HttpResponse>> {
        let mut parts = Vec::new();
        let (mut first, mut number) = (0u64, 1);
        while first < self.size {
            let last = (first + self.part_size).min(self.size) - 1;
            let out = client
                .upload_part_copy()
                .bucket(self.bucket)
                .key(self.key)
                .upload_id(self.upload_id)
                .part_number(number)
                .copy_source(self.source)
                .set_copy_source_if_match(self.if_match.map(str::to_owned))
                .copy_source_range(format!("bytes={first}-{last}"))
                .send()
                .await?;
            parts.push(
                CompletedPart::builder()
                    .part_number(number)
                    .set_e_tag(out.copy_part_result.and_then(|r| r.e_tag))
                    .build(),
            );
            first = last + 1;
            number += 1;
        }
        Ok(CompletedMultipartUpload::builder()
            .set_parts(Some(parts))
            .build())
    }
}

async fn delete_staging(client: &Client, bucket: &str, key: &str) {
    if let Err(e) = client.delete_object().bucket(bucket).key(key).send().await {
        tracing::warn!(bucket = %bucket, reason = %DisplayErrorContext(&e), "delete of a staged upload failed");
    }
}

impl S3Store {
    pub(super) async fn stage_upload(
        &self,
        key: &str,
        body: ByteStream,
        opts: PutOptions,
    ) -> Result<Staged, StoreError> {
        let staging = format!("{STAGING_PREFIX}{}", ulid::Ulid::new());
        // Counted on the way through: no HeadObject afterwards for the size.
        let stored = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&stored);
        let body: ByteStream = Box::pin(body.inspect(move |chunk| {
            if let Ok(c) = chunk {
                counter.fetch_add(c.len() as u64, Ordering::Relaxed);
            }
        }));
        self.put(&staging, body, opts.clone()).await?;
        let guard = StagingKey {
            client: self.client.clone(),
            bucket: self.bucket.clone(),
            key: Some(staging.clone()),
        };
        let size = stored.load(Ordering::Relaxed);
        Ok(Staged {
            key: key.to_owned(),
            size,
            inner: Box::new(S3Staged { guard, opts }),
        })
    }

    pub(super) async fn commit_staged(
        &self,
        staged: Staged,
        metadata: BTreeMap<String, String>,
    ) -> Result<PutResult, StoreError> {
        self.commit_with(staged, metadata, COPY_SINGLE_MAX, COPY_PART_SIZE)
            .await
    }

    pub(super) async fn commit_with(
        &self,
        staged: Staged,
        metadata: BTreeMap<String, String>,
        single_max: u64,
        part_size: u64,
    ) -> Result<PutResult, StoreError> {
        let Ok(st) = staged.inner.downcast::<S3Staged>() else {
            return Err(StoreError::Upstream(
                "staged upload of another store".into(),
            ));
        };
        let S3Staged {
            mut guard,
            mut opts,
        } = *st;
        let Some(from) = guard.key.clone() else {
            return Err(StoreError::Upstream(
                "staged upload already committed".into(),
            ));
        };
        opts.metadata.extend(metadata);
        let source = format!("{}/{from}", self.bucket);
        let put = if staged.size <= single_max {
            let out = self
                .client
                .copy_object()
                .bucket(&self.bucket)
                .key(&staged.key)
                .copy_source(&source)
                .metadata_directive(MetadataDirective::Replace)
                .set_metadata(Some(opts.metadata.clone().into_iter().collect()))
                .set_content_type(opts.content_type.clone())
                .send()
                .await
                .map_err(|e| upstream("CopyObject", &e))?;
            PutResult {
                etag: out.copy_object_result.and_then(|r| r.e_tag),
            }
        } else {
            self.copy_multipart(&source, &staged.key, staged.size, part_size, &opts)
                .await?
        };
        guard.key = None;
        delete_staging(&self.client, &self.bucket, &from).await;
        Ok(put)
    }

    async fn copy_multipart(
        &self,
        source: &str,
        key: &str,
        size: u64,
        part_size: u64,
        opts: &PutOptions,
    ) -> Result<PutResult, StoreError> {
        // Aborted on any error and when dropped, like a multipart put.
        let mut upload = self.create_upload(key, opts).await?;
        let id = upload.id.clone().unwrap_or_default();
        let copied = CopyParts {
            bucket: &self.bucket,
            key,
            upload_id: &id,
            source,
            size,
            part_size,
            if_match: None,
        }
        .run(&self.client)
        .await;
        let done = match copied {
            Ok(done) => done,
            Err(e) => {
                upload.abort().await;
                return Err(upstream("UploadPartCopy", &e));
            }
        };
        let out = self
            .client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(&id)
            .multipart_upload(done)
            .send()
            .await;
        match out {
            Ok(out) => {
                upload.id = None;
                Ok(PutResult { etag: out.e_tag })
            }
            Err(e) => {
                upload.abort().await;
                Err(upstream("CompleteMultipartUpload", &e))
            }
        }
    }
}
