//! Object reads and writes: GET, HEAD and PUT of one key.
//!
//! Takes an [`Access`] that policy allowed before the object was seen; checks what depends on
//! the object (classification, size) before any byte goes out or is stored, streams bodies in
//! constant memory through the byte pacing of the partner's rate limits, and gives the S3
//! response with the object's headers.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, header};
use http_body::Body;

use super::dlp::write::PutError;
use super::{
    Access, Pacings, classification_of, internal_key, is_reserved_metadata, share_of, store_refusal,
};
use crate::body::{self, ResponseBody, Upload};
use crate::pipeline::{Ctx, Refusal};
use crate::s3api::{self, S3Error};
use crate::state::State;
use crate::store::{ByteRange, ObjectMeta, PutOptions, StoreError};

pub(super) async fn read(
    state: &State,
    ctx: &mut Ctx,
    access: &Access<'_>,
    range: Option<ByteRange>,
    head: bool,
    pacings: Pacings,
) -> Result<Response<ResponseBody>, Refusal> {
    if let Some(active) = super::dlp::active(state, access).await? {
        return super::dlp::read::read(state, ctx, access, &active, range, head, pacings).await;
    }
    if share_of(state, &access.share)?.config.encrypt
        && let Some(resp) = super::envelope::read(state, ctx, access, range, head, &pacings).await?
    {
        return Ok(resp);
    }
    let store = &share_of(state, &access.share)?.store;
    let ikey = internal_key(state, &access.share, &access.key);
    let (meta, served, stream) = if head {
        let meta = store.head(&ikey).await.map_err(store_refusal)?;
        access.check_object(classification_of(&meta), Some(meta.size))?;
        let served = match range {
            Some(r) => Some(
                r.resolve(meta.size)
                    .ok_or(StoreError::InvalidRange { size: meta.size }),
            ),
            None => None,
        };
        (meta, served, None)
    } else {
        match store.get(&ikey, range).await {
            Ok(got) => {
                // Nothing of the body has been read yet: a refusal here sends no object byte.
                access.check_object(classification_of(&got.meta), Some(got.meta.size))?;
                (got.meta, got.range.map(Ok), Some(got.body))
            }
            Err(StoreError::InvalidRange { size }) => {
                // Say nothing about the object's size unless the partner may read it.
                let meta = store.head(&ikey).await.map_err(store_refusal)?;
                access.check_object(classification_of(&meta), Some(meta.size))?;
                return Ok(unsatisfiable(ctx, size));
            }
            Err(e) => return Err(store_refusal(e)),
        }
    };
    let served = match served {
        Some(Err(StoreError::InvalidRange { size })) => return Ok(unsatisfiable(ctx, size)),
        Some(Err(e)) => return Err(store_refusal(e)),
        Some(Ok(r)) => Some(r),
        None => None,
    };
    let body = stream.map_or_else(body::empty, |s| {
        body::stream(body::guarded(
            body::paced(s, pacings.download),
            access.cutoff.clone(),
        ))
    });
    let mut resp = Response::new(body);
    let h = resp.headers_mut();
    object_headers(h, &meta);
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    let length = match served {
        Some((first, last)) => {
            *resp.status_mut() = StatusCode::PARTIAL_CONTENT;
            if let Ok(v) = HeaderValue::from_str(&format!("bytes {first}-{last}/{}", meta.size)) {
                resp.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            last - first + 1
        }
        None => meta.size,
    };
    resp.headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    Ok(resp)
}

pub(super) fn unsatisfiable(ctx: &mut Ctx, size: u64) -> Response<ResponseBody> {
    ctx.event.reason = "range_not_satisfiable".into();
    let mut resp = crate::pipeline::error_response(S3Error::InvalidRange, ctx, None);
    if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
        resp.headers_mut().insert(header::CONTENT_RANGE, v);
    }
    resp
}

pub(super) fn object_headers(h: &mut HeaderMap, meta: &ObjectMeta) {
    let ct = meta
        .content_type
        .as_deref()
        .unwrap_or("application/octet-stream");
    if let Ok(v) = HeaderValue::from_str(ct) {
        h.insert(header::CONTENT_TYPE, v);
    }
    if let Some(v) = meta
        .etag
        .as_deref()
        .and_then(|e| HeaderValue::from_str(e).ok())
    {
        h.insert(header::ETAG, v);
    }
    if let Some(v) = meta
        .last_modified
        .and_then(|t| HeaderValue::from_str(&s3api::http_date(t)).ok())
    {
        h.insert(header::LAST_MODIFIED, v);
    }
    for (name, value) in meta
        .metadata
        .iter()
        .filter(|(n, _)| !crate::crypto::metadata::is_reserved(n))
    {
        let name = http::HeaderName::from_bytes(format!("x-amz-meta-{name}").as_bytes());
        if let (Ok(name), Ok(value)) = (name, HeaderValue::from_str(value)) {
            h.insert(name, value);
        }
    }
}

/// Largest total of user metadata names and values, as S3's 2 KB limit.
const MAX_METADATA_BYTES: usize = 2048;

pub(super) async fn put<B>(
    state: &State,
    ctx: &mut Ctx,
    access: &Access<'_>,
    req: Request<B>,
    pacings: Pacings,
) -> Result<Response<ResponseBody>, Refusal>
where
    B: Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let limit = access
        .max_object_size
        .map_or(state.config.limits.max_put_bytes, |m| {
            m.min(state.config.limits.max_put_bytes)
        });
    let headers = req.headers();
    let content_length = match headers.get(header::CONTENT_LENGTH) {
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|s| s.parse::<u64>().ok())
                .ok_or(Refusal::new(S3Error::InvalidArgument, "bad_content_length"))?,
        ),
        None => None,
    };
    if content_length.is_some_and(|n| n > limit) {
        return Err(Refusal::new(S3Error::EntityTooLarge, "object_too_large"));
    }
    let encrypt = share_of(state, &access.share)?.config.encrypt;
    let dlp = super::dlp::active(state, access).await?;
    // Without DLP an upload carries the share's default classification; with DLP it is
    // classified from its content once received (and checked again then), at least the
    // profile's minimum.
    access.check_object(
        dlp.as_ref().map(|a| a.profile.min_classification),
        content_length,
    )?;
    let mut budget = if encrypt {
        MAX_METADATA_BYTES - crate::crypto::metadata::METADATA_BUDGET
    } else {
        MAX_METADATA_BYTES
    };
    if dlp.is_some() {
        budget -= super::dlp::METADATA_RESERVE;
    }
    let metadata = user_metadata(headers, budget)?;
    let opts = PutOptions {
        content_type: headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        metadata,
        content_length,
    };
    // A durable record of the upload before any byte of it is stored (fail closed).
    state
        .audit
        .before_store(&ctx.event)
        .await
        .map_err(|_| Refusal::new(S3Error::ServiceUnavailable, "audit_unavailable"))?;
    let counters = Arc::new(Upload::default());
    let mut stream = body::guarded(
        body::paced(
            body::upload(req.into_body(), limit, counters.clone()),
            pacings.upload,
        ),
        access.cutoff.clone(),
    );
    let result = match &dlp {
        Some(active) => {
            super::dlp::write::put(state, ctx, access, active, stream, opts, encrypt).await
        }
        None => {
            let mut opts = opts;
            if encrypt {
                (stream, opts) = super::envelope::seal(state, access, stream, opts).await?;
            }
            let store = &share_of(state, &access.share)?.store;
            store
                .put(
                    &internal_key(state, &access.share, &access.key),
                    stream,
                    opts,
                )
                .await
                .map_err(PutError::Store)
        }
    };
    ctx.event.bytes_in = counters.bytes.load(Ordering::Acquire);
    let put = result.map_err(|e| match e {
        PutError::Refused(r) => r,
        PutError::Store(_) if counters.too_large.load(Ordering::Acquire) => {
            Refusal::new(S3Error::EntityTooLarge, "object_too_large")
        }
        PutError::Store(e) => store_refusal(e),
    })?;
    let mut resp = Response::new(body::empty());
    if let Some(v) = put
        .etag
        .as_deref()
        .and_then(|e| HeaderValue::from_str(e).ok())
    {
        resp.headers_mut().insert(header::ETAG, v);
    }
    Ok(resp)
}

/// `x-amz-meta-*` headers, refusing names the gateway reserves and oversized totals.
fn user_metadata(headers: &HeaderMap, budget: usize) -> Result<BTreeMap<String, String>, Refusal> {
    let mut metadata = BTreeMap::new();
    for (name, value) in headers {
        if let Some(m) = name.as_str().strip_prefix("x-amz-meta-") {
            if is_reserved_metadata(m) {
                return Err(Refusal::new(S3Error::InvalidArgument, "reserved_metadata"));
            }
            let value = value
                .to_str()
                .map_err(|_| Refusal::new(S3Error::InvalidArgument, "bad_metadata"))?;
            metadata.insert(m.to_string(), value.to_string());
        }
    }
    if metadata
        .iter()
        .map(|(k, v)| k.len() + v.len())
        .sum::<usize>()
        > budget
    {
        return Err(Refusal::new(S3Error::InvalidArgument, "metadata_too_large"));
    }
    Ok(metadata)
}
