//! S3 (or S3-compatible) object store: one [`S3Store`] is one bucket.
//!
//! Takes validated internal keys and streamed bodies; gives S3's objects, streamed as they
//! arrive, and ListObjectsV2 pages. Credentials come from the standard AWS chain; building a
//! store does no network I/O (the region, when not given, comes from the environment or the
//! profile files, else `us-east-1`; instance metadata is not asked at start-up).
//!
//! Fails with [`StoreError`]: `NotFound` for NoSuchKey or a 404 on HeadObject/GetObject (but
//! NoSuchBucket is `Upstream`), `InvalidRange { size }` for InvalidRange/416 (the size from the
//! error's `Content-Range: bytes */N`, else from a HeadObject), `Body` when the supplied body
//! fails or does not match its declared length (the body's own error is returned unchanged),
//! and `Upstream` for everything else, with the SDK's error chain as detail for logs.
//!
//! `put` streams: a body of known length up to [`SINGLE_PUT_MAX`] goes out as one PutObject
//! whose last bytes are held back until the body has ended cleanly, so a body that fails or
//! runs long or short aborts the request and S3 stores nothing. Anything larger, or of unknown
//! length, is a multipart upload of [`PART_SIZE`] parts buffered one at a time (a body of
//! unknown length that ends within the first part is one buffered PutObject); the upload is
//! completed only after the body has ended cleanly and aborted on any error or when the
//! future is dropped.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use aws_config::BehaviorVersion;
use aws_config::environment::EnvironmentVariableRegionProvider;
use aws_config::meta::region::RegionProviderChain;
use aws_config::profile::region::ProfileFileRegionProvider;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::{Region, StalledStreamProtectionConfig};
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::{ByteStream as SdkByteStream, DateTime};
use aws_sdk_s3::types::{
    BucketLocationConstraint, CompletedMultipartUpload, CompletedPart, CreateBucketConfiguration,
};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use http_body::{Body, Frame, SizeHint};

use super::{
    ByteRange, ByteStream, GetObject, ListEntry, ListPage, ListRequest, ObjectMeta, ObjectStore,
    PutOptions, PutResult, Staged, StoreError,
};

/// Largest known-length body sent as one streamed PutObject.
pub const SINGLE_PUT_MAX: u64 = 16 * 1024 * 1024;
/// Multipart part size; at most 10 000 parts, so about 78 GiB per object.
pub const PART_SIZE: usize = 8 * 1024 * 1024;
const MAX_PARTS: i32 = 10_000;
const DEFAULT_REGION: &str = "us-east-1";
/// ListObjectsV2 returns at most this many entries per call.
const S3_MAX_KEYS: usize = 1000;

/// One S3 bucket.
pub struct S3Store {
    client: Client,
    bucket: String,
}

impl S3Store {
    /// Builds the client; `endpoint_url` and `force_path_style` serve S3-compatible servers.
    pub async fn new(
        region: Option<&str>,
        endpoint_url: Option<&str>,
        force_path_style: bool,
        bucket: &str,
    ) -> Result<S3Store, StoreError> {
        let region = match region {
            Some(r) => RegionProviderChain::first_try(Region::new(r.to_owned())),
            None => RegionProviderChain::first_try(EnvironmentVariableRegionProvider::new())
                .or_else(ProfileFileRegionProvider::new())
                .or_else(Region::from_static(DEFAULT_REGION)),
        };
        let mut loader = aws_config::defaults(BehaviorVersion::latest()).region(region);
        if let Some(url) = endpoint_url {
            loader = loader.endpoint_url(url);
        }
        let shared = loader.load().await;
        // A partner pausing its upload is for the gateway's own timeouts to judge; the SDK's
        // upload stall detection would report it as an S3 failure.
        let stalls = StalledStreamProtectionConfig::enabled()
            .upload_enabled(false)
            .build();
        let config = aws_sdk_s3::config::Builder::from(&shared)
            .force_path_style(force_path_style)
            .stalled_stream_protection(stalls)
            .build();
        Ok(S3Store {
            client: Client::from_conf(config),
            bucket: bucket.to_owned(),
        })
    }

    /// Creates the bucket unless it exists already (tests and tooling).
    pub async fn create_bucket_if_missing(&self) -> Result<(), StoreError> {
        let region = self
            .client
            .config()
            .region()
            .map(Region::as_ref)
            .unwrap_or(DEFAULT_REGION);
        let location = (region != DEFAULT_REGION).then(|| {
            let constraint = BucketLocationConstraint::from(region);
            CreateBucketConfiguration::builder()
                .location_constraint(constraint)
                .build()
        });
        let created = self
            .client
            .create_bucket()
            .bucket(&self.bucket)
            .set_create_bucket_configuration(location)
            .send()
            .await;
        match created {
            Ok(_) => Ok(()),
            Err(e)
                if matches!(
                    e.code(),
                    Some("BucketAlreadyOwnedByYou" | "BucketAlreadyExists")
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(upstream("CreateBucket", &e)),
        }
    }

    async fn object_size(&self, key: &str) -> Result<u64, StoreError> {
        Ok(self.head(key).await?.size)
    }

    /// One PutObject streaming a body of known length.
    async fn put_streamed(
        &self,
        key: &str,
        body: ByteStream,
        opts: &PutOptions,
        len: u64,
    ) -> Result<PutResult, StoreError> {
        let failure = Arc::new(parking_lot::Mutex::new(None));
        let checked = CheckedBody {
            stream: std::sync::Mutex::new(body),
            expected: len,
            seen: 0,
            held: None,
            done: false,
            failure: failure.clone(),
        };
        let sent = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_length(len as i64)
            .set_content_type(opts.content_type.clone())
            .set_metadata(user_metadata(opts))
            .body(SdkByteStream::from_body_1_x(checked))
            .send()
            .await;
        match sent {
            Ok(out) => Ok(PutResult { etag: out.e_tag }),
            Err(e) => Err(failure
                .lock()
                .take()
                .unwrap_or_else(|| upstream("PutObject", &e))),
        }
    }

    /// One PutObject of a body already in memory.
    async fn put_buffered(
        &self,
        key: &str,
        data: Bytes,
        opts: &PutOptions,
    ) -> Result<PutResult, StoreError> {
        let out = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_length(data.len() as i64)
            .set_content_type(opts.content_type.clone())
            .set_metadata(user_metadata(opts))
            .body(SdkByteStream::from(data))
            .send()
            .await
            .map_err(|e| upstream("PutObject", &e))?;
        Ok(PutResult { etag: out.e_tag })
    }

    async fn put_multipart(
        &self,
        key: &str,
        body: ByteStream,
        opts: &PutOptions,
    ) -> Result<PutResult, StoreError> {
        let mut parts = PartReader {
            body,
            expected: opts.content_length,
            seen: 0,
            leftover: None,
            ended: false,
        };
        let (first, last) = parts.next_part().await?;
        if last {
            return self.put_buffered(key, first, opts).await;
        }
        let mut upload = self.create_upload(key, opts).await?;
        match upload.send_parts(first, &mut parts).await {
            Ok(done) => Ok(done),
            Err(e) => {
                upload.abort().await;
                Err(e)
            }
        }
    }
}

#[async_trait::async_trait]
impl ObjectStore for S3Store {
    async fn head(&self, key: &str) -> Result<ObjectMeta, StoreError> {
        let out = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| read_failure("HeadObject", &e))?;
        Ok(ObjectMeta {
            size: out.content_length.unwrap_or(0).max(0) as u64,
            etag: out.e_tag,
            last_modified: out.last_modified.as_ref().and_then(timestamp),
            content_type: out.content_type,
            metadata: out.metadata.unwrap_or_default().into_iter().collect(),
        })
    }

    async fn get(&self, key: &str, range: Option<ByteRange>) -> Result<GetObject, StoreError> {
        let sent = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .set_range(range.map(ByteRange::to_header))
            .send()
            .await;
        let out = match sent {
            Ok(out) => out,
            Err(e) if e.code() == Some("InvalidRange") || status(&e) == Some(416) => {
                let header = e
                    .raw_response()
                    .and_then(|r| r.headers().get("content-range"));
                let size = match header.and_then(parse_unsatisfied) {
                    Some(size) => size,
                    None => self.object_size(key).await?,
                };
                return Err(StoreError::InvalidRange { size });
            }
            Err(e) => return Err(read_failure("GetObject", &e)),
        };
        let served = out.content_range.as_deref().and_then(parse_content_range);
        let length = out.content_length.unwrap_or(0).max(0) as u64;
        let meta = ObjectMeta {
            size: served.map_or(length, |(_, _, total)| total),
            etag: out.e_tag,
            last_modified: out.last_modified.as_ref().and_then(timestamp),
            content_type: out.content_type,
            metadata: out.metadata.unwrap_or_default().into_iter().collect(),
        };
        let range = range.and(served).map(|(first, last, _)| (first, last));
        Ok(GetObject {
            meta,
            range,
            body: stream_body(out.body),
        })
    }

    async fn put(
        &self,
        key: &str,
        body: ByteStream,
        opts: PutOptions,
    ) -> Result<PutResult, StoreError> {
        match opts.content_length {
            Some(len) if len <= SINGLE_PUT_MAX => self.put_streamed(key, body, &opts, len).await,
            _ => self.put_multipart(key, body, &opts).await,
        }
    }

    async fn stage(
        &self,
        key: &str,
        body: ByteStream,
        opts: PutOptions,
    ) -> Result<Staged, StoreError> {
        self.stage_upload(key, body, opts).await
    }

    async fn commit(
        &self,
        staged: Staged,
        metadata: std::collections::BTreeMap<String, String>,
    ) -> Result<PutResult, StoreError> {
        self.commit_staged(staged, metadata).await
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        match self
            .client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => match read_failure("DeleteObject", &e) {
                StoreError::NotFound => Ok(()),
                other => Err(other),
            },
        }
    }

    async fn list(&self, req: &ListRequest) -> Result<ListPage, StoreError> {
        if req.max_keys == 0 {
            return Ok(ListPage::default());
        }
        // One extra entry, so dropping a repeated common prefix still fills the page.
        let ask = (req.max_keys.saturating_add(1)).min(S3_MAX_KEYS);
        let out = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(&req.prefix)
            .set_delimiter(req.delimiter.clone().filter(|d| !d.is_empty()))
            .set_start_after(req.start_after.clone())
            .max_keys(ask as i32)
            .send()
            .await
            .map_err(|e| upstream("ListObjectsV2", &e))?;
        let objects = out
            .contents()
            .iter()
            .filter_map(|o| {
                Some(ListEntry {
                    key: o.key()?.to_owned(),
                    size: o.size().unwrap_or(0).max(0) as u64,
                    etag: o.e_tag().map(str::to_owned),
                    last_modified: o.last_modified().and_then(timestamp),
                })
            })
            .collect();
        let after = req.start_after.as_deref().unwrap_or("");
        // S3 takes start_after as a key only: a common prefix at or before it (the previous
        // page's last item, or the group holding it) would be repeated.
        let prefixes = out
            .common_prefixes()
            .iter()
            .filter_map(|p| p.prefix())
            .filter(|p| *p > after)
            .map(str::to_owned)
            .collect();
        Ok(trim_page(
            objects,
            prefixes,
            req.max_keys,
            out.is_truncated().unwrap_or(false),
        ))
    }

    async fn replace_metadata(
        &self,
        key: &str,
        metadata: std::collections::BTreeMap<String, String>,
        if_match_etag: &str,
    ) -> Result<super::MetadataReplaced, StoreError> {
        self.replace_metadata_default(key, metadata, if_match_etag)
            .await
    }
}

/// Keeps the first `max_keys` of keys and prefixes together, in key order.
fn trim_page(
    objects: Vec<ListEntry>,
    prefixes: Vec<String>,
    max_keys: usize,
    truncated: bool,
) -> ListPage {
    let mut page = ListPage {
        is_truncated: truncated,
        ..ListPage::default()
    };
    let mut objects = objects.into_iter().peekable();
    let mut prefixes = prefixes.into_iter().peekable();
    loop {
        let take_object = match (objects.peek(), prefixes.peek()) {
            (Some(o), Some(p)) => o.key.as_str() < p.as_str(),
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => break,
        };
        if page.objects.len() + page.common_prefixes.len() == max_keys {
            page.is_truncated = true;
            break;
        }
        if take_object {
            page.objects.extend(objects.next());
        } else {
            page.common_prefixes.extend(prefixes.next());
        }
    }
    page
}

/// A multipart upload in flight; aborted in the background if dropped before completion.
struct Upload {
    client: Client,
    bucket: String,
    key: String,
    id: Option<String>,
}

impl S3Store {
    /// Starts a multipart upload of `key` with the content type and metadata of `opts`; the
    /// guard aborts it on error and when dropped unless completed.
    async fn create_upload(&self, key: &str, opts: &PutOptions) -> Result<Upload, StoreError> {
        let created = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .set_content_type(opts.content_type.clone())
            .set_metadata(user_metadata(opts))
            .send()
            .await
            .map_err(|e| upstream("CreateMultipartUpload", &e))?;
        let id = created
            .upload_id
            .ok_or_else(|| StoreError::Upstream("CreateMultipartUpload: no upload id".into()))?;
        Ok(Upload {
            client: self.client.clone(),
            bucket: self.bucket.clone(),
            key: key.to_owned(),
            id: Some(id),
        })
    }
}

impl Upload {
    async fn send_parts(
        &mut self,
        first: Bytes,
        parts: &mut PartReader,
    ) -> Result<PutResult, StoreError> {
        let id = self.id.clone().unwrap_or_default();
        let (mut part, mut last, mut number) = (first, false, 1);
        let mut completed = Vec::new();
        loop {
            let out = self
                .client
                .upload_part()
                .bucket(&self.bucket)
                .key(&self.key)
                .upload_id(&id)
                .part_number(number)
                .content_length(part.len() as i64)
                .body(SdkByteStream::from(part))
                .send()
                .await
                .map_err(|e| upstream("UploadPart", &e))?;
            completed.push(
                CompletedPart::builder()
                    .part_number(number)
                    .set_e_tag(out.e_tag)
                    .build(),
            );
            if last {
                break;
            }
            (part, last) = parts.next_part().await?;
            if part.is_empty() {
                break;
            }
            number += 1;
            if number > MAX_PARTS {
                return Err(StoreError::Body(format!(
                    "object larger than {MAX_PARTS} parts"
                )));
            }
        }
        let done = CompletedMultipartUpload::builder()
            .set_parts(Some(completed))
            .build();
        let out = self
            .client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(&id)
            .multipart_upload(done)
            .send()
            .await
            .map_err(|e| upstream("CompleteMultipartUpload", &e))?;
        self.id = None;
        Ok(PutResult { etag: out.e_tag })
    }

    async fn abort(mut self) {
        if let Some(id) = self.id.take() {
            abort_upload(
                self.client.clone(),
                self.bucket.clone(),
                self.key.clone(),
                id,
            )
            .await;
        }
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        let Some(id) = self.id.take() else { return };
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let (client, bucket, key) =
                (self.client.clone(), self.bucket.clone(), self.key.clone());
            rt.spawn(abort_upload(client, bucket, key, id));
        }
    }
}

async fn abort_upload(client: Client, bucket: String, key: String, id: String) {
    let aborted = client
        .abort_multipart_upload()
        .bucket(&bucket)
        .key(&key)
        .upload_id(&id)
        .send()
        .await;
    if let Err(e) = aborted {
        tracing::warn!(bucket = %bucket, reason = %DisplayErrorContext(&e), "abort of multipart upload failed");
    }
}

/// Cuts a body into parts, checking it against its declared length.
struct PartReader {
    body: ByteStream,
    expected: Option<u64>,
    seen: u64,
    leftover: Option<Bytes>,
    ended: bool,
}

impl PartReader {
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, StoreError> {
        if let Some(b) = self.leftover.take() {
            return Ok(Some(b));
        }
        while !self.ended {
            match self.body.next().await {
                Some(Ok(b)) if b.is_empty() => {}
                Some(Ok(b)) => {
                    self.seen += b.len() as u64;
                    return match self.expected {
                        Some(n) if self.seen > n => Err(too_long(n)),
                        _ => Ok(Some(b)),
                    };
                }
                Some(Err(e)) => return Err(e),
                None => {
                    self.ended = true;
                    if let Some(n) = self.expected.filter(|n| *n != self.seen) {
                        return Err(too_short(self.seen, n));
                    }
                }
            }
        }
        Ok(None)
    }

    /// The next part (at most [`PART_SIZE`]) and whether the body ended cleanly after it.
    async fn next_part(&mut self) -> Result<(Bytes, bool), StoreError> {
        let mut buf = BytesMut::new();
        while buf.len() < PART_SIZE {
            let Some(mut chunk) = self.next_chunk().await? else {
                return Ok((buf.freeze(), true));
            };
            let room = PART_SIZE - buf.len();
            if chunk.len() > room {
                self.leftover = Some(chunk.split_off(room));
            }
            buf.extend_from_slice(&chunk);
        }
        // Look one chunk ahead, so the last part is known to be the last.
        let next = self.next_chunk().await?;
        let last = next.is_none();
        self.leftover = next;
        Ok((buf.freeze(), last))
    }
}

/// A known-length request body that fails instead of ending short or running long, and
/// holds back its last bytes until the source has ended cleanly.
struct CheckedBody {
    /// Behind a mutex only to be `Sync` as the SDK requires; reached through `get_mut`.
    stream: std::sync::Mutex<ByteStream>,
    expected: u64,
    seen: u64,
    held: Option<Bytes>,
    done: bool,
    /// The first failure, returned by `put` instead of the SDK's wrapping of it.
    failure: Arc<parking_lot::Mutex<Option<StoreError>>>,
}

impl CheckedBody {
    fn fail(&mut self, e: StoreError) -> Poll<Option<Result<Frame<Bytes>, StoreError>>> {
        let detail = StoreError::Body(e.to_string());
        self.failure.lock().get_or_insert(e);
        self.done = true;
        Poll::Ready(Some(Err(detail)))
    }
}

impl Body for CheckedBody {
    type Data = Bytes;
    type Error = StoreError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, StoreError>>> {
        let this = self.get_mut();
        while !this.done {
            let stream = this
                .stream
                .get_mut()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            match ready!(stream.as_mut().poll_next(cx)) {
                Some(Ok(chunk)) if chunk.is_empty() => {}
                Some(Ok(chunk)) => {
                    this.seen += chunk.len() as u64;
                    if this.seen > this.expected {
                        return this.fail(too_long(this.expected));
                    }
                    if this.seen < this.expected {
                        return Poll::Ready(Some(Ok(Frame::data(chunk))));
                    }
                    this.held = Some(chunk);
                }
                Some(Err(e)) => return this.fail(e),
                None if this.seen < this.expected => {
                    return this.fail(too_short(this.seen, this.expected));
                }
                None => {
                    this.done = true;
                    return Poll::Ready(this.held.take().map(|c| Ok(Frame::data(c))));
                }
            }
        }
        Poll::Ready(None)
    }

    fn is_end_stream(&self) -> bool {
        self.done && self.held.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.expected)
    }
}

fn too_long(n: u64) -> StoreError {
    StoreError::Body(format!("body longer than its content-length {n}"))
}

fn too_short(seen: u64, n: u64) -> StoreError {
    StoreError::Body(format!("body ended after {seen} of {n} bytes"))
}

/// The SDK body as `Bytes` chunks, as they arrive; an error ends the stream.
fn stream_body(body: SdkByteStream) -> ByteStream {
    Box::pin(futures_util::stream::unfold(
        Some(body),
        |state| async move {
            let mut body = state?;
            match body.next().await? {
                Ok(chunk) => Some((Ok(chunk), Some(body))),
                Err(e) => {
                    let detail = format!("read S3 body: {}", DisplayErrorContext(&e));
                    Some((Err(StoreError::Upstream(detail)), None))
                }
            }
        },
    ))
}

fn user_metadata(opts: &PutOptions) -> Option<HashMap<String, String>> {
    (!opts.metadata.is_empty()).then(|| opts.metadata.clone().into_iter().collect())
}

/// `bytes first-last/total` as served.
fn parse_content_range(value: &str) -> Option<(u64, u64, u64)> {
    let (span, total) = value.strip_prefix("bytes ")?.split_once('/')?;
    let (first, last) = span.split_once('-')?;
    Some((
        first.trim().parse().ok()?,
        last.trim().parse().ok()?,
        total.trim().parse().ok()?,
    ))
}

/// `bytes */total` of a 416.
fn parse_unsatisfied(value: &str) -> Option<u64> {
    value.strip_prefix("bytes */")?.trim().parse().ok()
}

fn timestamp(t: &DateTime) -> Option<jiff::Timestamp> {
    jiff::Timestamp::new(t.secs(), t.subsec_nanos() as i32).ok()
}

fn status<E>(err: &SdkError<E, HttpResponse>) -> Option<u16> {
    err.raw_response().map(|r| r.status().as_u16())
}

fn upstream<E: std::error::Error + 'static>(
    op: &str,
    err: &SdkError<E, HttpResponse>,
) -> StoreError {
    StoreError::Upstream(format!("{op}: {}", DisplayErrorContext(err)))
}

/// NoSuchKey or a 404 is a missing object; a missing bucket is an upstream fault.
fn read_failure<E>(op: &str, err: &SdkError<E, HttpResponse>) -> StoreError
where
    E: std::error::Error + ProvideErrorMetadata + 'static,
{
    match (err.code(), status(err)) {
        (Some("NoSuchBucket"), _) => upstream(op, err),
        (Some("NoSuchKey" | "NotFound"), _) | (_, Some(404)) => StoreError::NotFound,
        _ => upstream(op, err),
    }
}

mod replace;
mod stage;

#[cfg(test)]
mod tests;
