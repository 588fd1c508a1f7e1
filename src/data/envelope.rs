//! Envelope-encrypted shares on the data path.
//!
//! Takes an allowed [`Access`] on a share with `encrypt = "envelope"`; PUT seals the body
//! while streaming (data key from the key service, metadata merged into the object's), GET
//! and HEAD open it: sizes are plaintext sizes, a Range fetches only the segments it needs,
//! and no byte of a segment goes out before it authenticates (a failure later aborts the
//! body). Fails closed: a key service that is down gives 503; an object whose key or
//! segments do not check out gives 500 and is logged; a plaintext object is refused unless
//! the share sets `accept_plaintext`.

use http::{HeaderValue, Response, StatusCode, header};

use super::object::{object_headers, unsatisfiable};
use super::{Access, Pacings, classification_of, internal_key, share_of, store_refusal};
use crate::body::{self, ResponseBody};
use crate::crypto::{self, CryptoError, EnvelopeError, ObjectLocation, OpenPlan};
use crate::pipeline::{Ctx, Refusal};
use crate::s3api::S3Error;
use crate::state::State;
use crate::store::{ByteRange, ByteStream, ObjectMeta, PutOptions, StoreError};

/// Whether stored metadata says the object is envelope-encrypted.
pub(super) fn is_sealed(meta: &ObjectMeta) -> bool {
    meta.metadata.contains_key(crypto::metadata::META_VERSION)
}

fn keys(state: &State) -> Result<&crypto::DataKeyCache, Refusal> {
    state
        .keys
        .as_deref()
        .ok_or(Refusal::new(S3Error::InternalError, "key_service_missing"))
}

pub(super) fn crypto_refusal(e: CryptoError) -> Refusal {
    match e {
        CryptoError::Key(k) if k.is_refusal() => {
            tracing::warn!(error = %k, "data key refused for a stored object: moved, swapped or tampered");
            Refusal::new(S3Error::InternalError, "object_key_refused")
        }
        CryptoError::Key(k) => {
            tracing::warn!(error = %k, "key service unavailable; refusing");
            Refusal::new(S3Error::ServiceUnavailable, "key_service_unavailable")
        }
        CryptoError::Envelope(EnvelopeError::NotEncrypted) => plaintext_refusal(),
        CryptoError::Envelope(e) => {
            tracing::warn!(error = %e, "envelope check failed for a stored object");
            Refusal::new(S3Error::InternalError, "object_integrity_failed")
        }
    }
}

fn plaintext_refusal() -> Refusal {
    tracing::warn!("plaintext object found in an envelope share; refused");
    Refusal::new(S3Error::InternalError, "object_not_encrypted")
}

fn plain_size(meta: &ObjectMeta) -> Result<u64, Refusal> {
    crypto::plaintext_size(meta.size).map_err(|e| crypto_refusal(e.into()))
}

/// Whether a plaintext object in this share may be served as it is.
fn plaintext_allowed(state: &State, access: &Access<'_>) -> Result<(), Refusal> {
    let share = share_of(state, &access.share)?;
    if share.config.accept_plaintext {
        Ok(())
    } else {
        Err(plaintext_refusal())
    }
}

/// GET or HEAD of an envelope-encrypted object. `Ok(None)`: the object is plaintext and the
/// share accepts that; the caller serves it the ordinary way.
pub(super) async fn read(
    state: &State,
    ctx: &mut Ctx,
    access: &Access<'_>,
    range: Option<ByteRange>,
    head: bool,
    pacings: &Pacings,
) -> Result<Option<Response<ResponseBody>>, Refusal> {
    let share = share_of(state, &access.share)?;
    let ikey = internal_key(state, &access.share, &access.key);
    let at = ObjectLocation {
        bucket: &share.config.bucket,
        key: &ikey,
    };
    let (meta, stream, served_cipher) = if head {
        (
            share.store.head(&ikey).await.map_err(store_refusal)?,
            None,
            None,
        )
    } else {
        match share
            .store
            .get(&ikey, range.map(crypto::ciphertext_request))
            .await
        {
            Ok(got) => (got.meta, Some(got.body), got.range),
            Err(StoreError::InvalidRange { .. }) => (
                share.store.head(&ikey).await.map_err(store_refusal)?,
                None,
                None,
            ),
            Err(e) => return Err(store_refusal(e)),
        }
    };
    if !is_sealed(&meta) {
        plaintext_allowed(state, access)?;
        return Ok(None);
    }
    let plain = plain_size(&meta)?;
    access.check_object(classification_of(&meta), Some(plain))?;
    let served = match range {
        Some(r) => match r.resolve(plain) {
            Some(span) => Some(span),
            None => return Ok(Some(unsatisfiable(ctx, plain))),
        },
        None => None,
    };
    let length = served.map_or(plain, |(a, b)| b - a + 1);
    let body = match stream {
        None if head => body::empty(),
        None => return Ok(Some(unsatisfiable(ctx, plain))),
        Some(ciphertext) => {
            let plan = match served {
                Some(span) => OpenPlan::range(
                    meta.size,
                    span,
                    served_cipher.unwrap_or((0, meta.size.saturating_sub(1))),
                ),
                None => OpenPlan::whole(meta.size),
            }
            .map_err(|e| crypto_refusal(e.into()))?;
            let opened = crypto::open_object(keys(state)?, at, &meta.metadata, plan, ciphertext)
                .await
                .map_err(crypto_refusal)?;
            body::stream(body::guarded(
                body::paced(opened, pacings.download.clone()),
                access.cutoff.clone(),
            ))
        }
    };
    let mut resp = Response::new(body);
    object_headers(resp.headers_mut(), &meta);
    resp.headers_mut()
        .insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Some((a, b)) = served {
        *resp.status_mut() = StatusCode::PARTIAL_CONTENT;
        if let Ok(v) = HeaderValue::from_str(&format!("bytes {a}-{b}/{plain}")) {
            resp.headers_mut().insert(header::CONTENT_RANGE, v);
        }
    }
    resp.headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    Ok(Some(resp))
}

/// The plaintext size of an object of an envelope share and, given its whole stored body, the
/// plaintext from byte 0 (for DLP, which scans from the start). A plaintext object is passed
/// through only when the share accepts plaintext.
pub(super) async fn plaintext(
    state: &State,
    access: &Access<'_>,
    meta: &ObjectMeta,
    body: Option<ByteStream>,
) -> Result<(u64, Option<ByteStream>), Refusal> {
    if !is_sealed(meta) {
        plaintext_allowed(state, access)?;
        return Ok((meta.size, body));
    }
    let plain = plain_size(meta)?;
    let Some(ciphertext) = body else {
        return Ok((plain, None));
    };
    let share = share_of(state, &access.share)?;
    let ikey = internal_key(state, &access.share, &access.key);
    let at = ObjectLocation {
        bucket: &share.config.bucket,
        key: &ikey,
    };
    let plan = OpenPlan::whole(meta.size).map_err(|e| crypto_refusal(e.into()))?;
    let opened = crypto::open_object(keys(state)?, at, &meta.metadata, plan, ciphertext)
        .await
        .map_err(crypto_refusal)?;
    Ok((plain, Some(opened)))
}

/// Seals an upload for an envelope share: the sealed body and the options to store it with.
pub(super) async fn seal(
    state: &State,
    access: &Access<'_>,
    plaintext: ByteStream,
    opts: PutOptions,
) -> Result<(ByteStream, PutOptions), Refusal> {
    let share = share_of(state, &access.share)?;
    let ikey = internal_key(state, &access.share, &access.key);
    let at = ObjectLocation {
        bucket: &share.config.bucket,
        key: &ikey,
    };
    crypto::seal_for_put(
        keys(state)?,
        share.config.key_id.as_deref(),
        &access.share,
        at,
        plaintext,
        opts,
    )
    .await
    .map_err(crypto_refusal)
}

/// Listing sizes of an envelope share are plaintext sizes.
pub(super) fn listed_size(size: u64) -> u64 {
    crypto::plaintext_size(size).unwrap_or(size)
}
