//! GET and HEAD on a share with a DLP profile.
//!
//! Takes an allowed [`Access`] and the profile in force; gives the transformed object. Before
//! any byte goes out it knows the object's findings: from the verdict recorded at upload when
//! it names the same pack and profile, else from a detect pass over the object, after which
//! the object is fetched again and served only if it is the same version (ETag, size, time).
//! So `block` and unscannable content are refused before the first byte, and HEAD answers as
//! GET would (it reads the object when no verdict applies). The body is scanned from byte 0
//! (after envelope decryption); a Range is served from the transformed stream and only when
//! the transformation keeps lengths for this object; otherwise it is refused, never answered
//! with an unscanned slice. The upstream ETag is dropped (the body differs); Content-Length is
//! sent only when the length provably does not change.

use http::{HeaderValue, Response, StatusCode, header};

use super::inbound::prescan;
use super::verdict::{VERDICT_META, Verdict};
use super::{Active, DLP_HEADER, DlpRecord};
use crate::body::{self, ResponseBody};
use crate::config::Classification;
use crate::data::object::{object_headers, unsatisfiable};
use crate::data::{Access, Pacings, classification_of, internal_key, share_of, store_refusal};
use crate::dlp::format::OnUnscannable;
use crate::dlp::{ScanMode, scan_stream};
use crate::pipeline::{Ctx, Refusal};
use crate::s3api::S3Error;
use crate::state::State;
use crate::store::{ByteRange, ByteStream, ObjectMeta, StoreError};

/// One version of an object: its metadata, plaintext size and (for GET) plaintext from byte 0.
struct Fetched {
    meta: ObjectMeta,
    size: u64,
    body: Option<ByteStream>,
}

async fn fetch(state: &State, access: &Access<'_>, with_body: bool) -> Result<Fetched, Refusal> {
    let share = share_of(state, &access.share)?;
    let ikey = internal_key(state, &access.share, &access.key);
    let (meta, body) = if with_body {
        let got = share.store.get(&ikey, None).await.map_err(store_refusal)?;
        (got.meta, Some(got.body))
    } else {
        (share.store.head(&ikey).await.map_err(store_refusal)?, None)
    };
    let (size, body) = if share.config.encrypt {
        crate::data::envelope::plaintext(state, access, &meta, body).await?
    } else {
        (meta.size, body)
    };
    Ok(Fetched { meta, size, body })
}

fn same_version(a: &ObjectMeta, b: &ObjectMeta) -> bool {
    a.etag == b.etag && a.size == b.size && a.last_modified == b.last_modified
}

fn prescan_refusal(e: StoreError) -> Refusal {
    if crate::crypto::stream::is_integrity_failure(&e) {
        // An envelope object that fails authentication while it is scanned: the same code as
        // when it fails while it is served.
        tracing::warn!("envelope object failed authentication during the DLP pre-scan");
        return Refusal::new(S3Error::InternalError, "object_integrity_failed");
    }
    match e {
        StoreError::Upstream(_) | StoreError::NotFound => store_refusal(e),
        other => {
            tracing::warn!(error = %other, "DLP pre-scan could not read the object");
            Refusal::new(S3Error::InternalError, "dlp_prescan_failed")
        }
    }
}

pub(in crate::data) async fn read(
    state: &State,
    ctx: &mut Ctx,
    access: &Access<'_>,
    active: &Active<'_>,
    range: Option<ByteRange>,
    head: bool,
    pacings: Pacings,
) -> Result<Response<ResponseBody>, Refusal> {
    let mut object = fetch(state, access, !head).await?;
    // Objects without a classification of their own count as restricted on DLP shares.
    let class = classification_of(&object.meta).unwrap_or(Classification::Restricted);
    access.check_object(Some(class), Some(object.size))?;
    let recorded = object
        .meta
        .metadata
        .get(VERDICT_META)
        .and_then(|v| Verdict::decode(v, &active.pack_version, active.fingerprint));
    let (found, source) = match recorded {
        Some(v) => (v, "recorded"),
        None => {
            let body = match object.body.take() {
                Some(b) => b,
                None => {
                    // HEAD: scan the version it describes from now on.
                    let scanned = fetch(state, access, true).await?;
                    let class =
                        classification_of(&scanned.meta).unwrap_or(Classification::Restricted);
                    access.check_object(Some(class), Some(scanned.size))?;
                    (object.meta, object.size) = (scanned.meta, scanned.size);
                    scanned.body.unwrap_or_else(empty)
                }
            };
            let scanner = scanner(active, access, &object.meta, ScanMode::Detect);
            let v = prescan(scanner, body).await.map_err(prescan_refusal)?;
            if !head {
                let again = fetch(state, access, true).await?;
                if !same_version(&again.meta, &object.meta) {
                    return Err(Refusal::new(S3Error::ServiceUnavailable, "object_changed"));
                }
                object = again;
            }
            (v, "prescan")
        }
    };
    let mut record = DlpRecord {
        profile: active.profile.name.clone(),
        outcome: "transformed",
        source,
        classification: None,
        findings: found.findings.clone(),
    };
    let refusal = if found.blocks() {
        Some(("blocked", "dlp_blocked"))
    } else if found.unscannable && active.profile.on_unscannable == OnUnscannable::Block {
        Some(("unscannable_blocked", "dlp_unscannable"))
    } else {
        None
    };
    if let Some((outcome, reason)) = refusal {
        record.outcome = outcome;
        ctx.event.dlp = Some(record);
        return Err(Refusal::public(S3Error::AccessDenied, reason));
    }
    if found.unscannable {
        record.outcome = "unscannable_passed";
    }
    let keeps_length = found.keeps_length();
    ctx.event.dlp = Some(record);
    let served = match range {
        None => None,
        Some(_) if !keeps_length => {
            return Err(Refusal::public(
                S3Error::NotImplemented,
                "dlp_range_unsupported",
            ));
        }
        Some(r) => match r.resolve(object.size) {
            Some(span) => Some(span),
            None => return Ok(unsatisfiable(ctx, object.size)),
        },
    };
    let body = match object.body {
        None => body::empty(),
        Some(plain) => {
            // Unscannable content the profile passes goes through the scanner unchanged.
            let scanner = scanner(active, access, &object.meta, ScanMode::Transform);
            let out = scan_stream(scanner, plain).0;
            let out = match served {
                Some((first, last)) => slice(out, first, last - first + 1),
                None => out,
            };
            body::stream(body::guarded(
                body::paced(out, pacings.download),
                access.cutoff.clone(),
            ))
        }
    };
    let mut resp = Response::new(body);
    let h = resp.headers_mut();
    object_headers(h, &object.meta);
    // The body is not the stored one: its ETag (and any stored checksum) would not match.
    h.remove(header::ETAG);
    let mark = if found.unscannable {
        "unscanned"
    } else {
        "transformed"
    };
    h.insert(DLP_HEADER, HeaderValue::from_static(mark));
    h.insert(
        header::ACCEPT_RANGES,
        HeaderValue::from_static(if keeps_length { "bytes" } else { "none" }),
    );
    if let Some((first, last)) = served {
        *resp.status_mut() = StatusCode::PARTIAL_CONTENT;
        let v = format!("bytes {first}-{last}/{}", object.size);
        if let Ok(v) = HeaderValue::from_str(&v) {
            resp.headers_mut().insert(header::CONTENT_RANGE, v);
        }
    }
    if keeps_length {
        let length = served.map_or(object.size, |(a, b)| b - a + 1);
        resp.headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    }
    Ok(resp)
}

/// An object scanner for this object: format from its stored type and key, then sniffing.
fn scanner(
    active: &Active<'_>,
    access: &Access<'_>,
    meta: &ObjectMeta,
    mode: ScanMode,
) -> crate::dlp::Scanner {
    active.scanner(mode, &access.key, meta.content_type.as_deref())
}

fn empty() -> ByteStream {
    Box::pin(futures_util::stream::empty())
}

/// Bytes `[skip, skip + take)` of a stream; stops reading once they have been passed on.
fn slice(s: ByteStream, skip: u64, take: u64) -> ByteStream {
    use futures_util::StreamExt;
    let end = skip + take;
    Box::pin(futures_util::stream::unfold(
        (s, 0u64),
        move |(mut s, mut pos)| async move {
            while pos < end {
                let chunk = match s.next().await? {
                    Ok(c) => c,
                    Err(e) => return Some((Err(e), (s, end))),
                };
                let (start, stop) = (pos, pos + chunk.len() as u64);
                pos = stop;
                let (a, b) = (skip.max(start), end.min(stop));
                if a < b {
                    let part = chunk.slice((a - start) as usize..(b - start) as usize);
                    return Some((Ok(part), (s, pos)));
                }
            }
            None
        },
    ))
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use futures_util::StreamExt;

    use super::*;

    #[test]
    fn a_prescan_integrity_failure_has_the_integrity_reason() {
        let tampered =
            crate::crypto::stream::stream_error(&crate::crypto::EnvelopeError::Truncated);
        assert_eq!(prescan_refusal(tampered).reason, "object_integrity_failed");
        let outage = StoreError::Upstream("connection reset".into());
        assert_ne!(prescan_refusal(outage).reason, "object_integrity_failed");
    }

    fn chunks(parts: &[&'static str]) -> ByteStream {
        let items: Vec<Result<Bytes, StoreError>> = parts
            .iter()
            .map(|p| Ok(Bytes::from_static(p.as_bytes())))
            .collect();
        Box::pin(futures_util::stream::iter(items))
    }

    async fn text(s: ByteStream) -> String {
        let parts: Vec<_> = s.collect().await;
        parts
            .into_iter()
            .map(|p| String::from_utf8(p.unwrap().to_vec()).unwrap())
            .collect()
    }

    #[tokio::test]
    async fn slices_cut_across_chunks() {
        let parts = ["abc", "defg", "", "hij"];
        assert_eq!(text(slice(chunks(&parts), 0, 10)).await, "abcdefghij");
        assert_eq!(text(slice(chunks(&parts), 2, 3)).await, "cde");
        assert_eq!(text(slice(chunks(&parts), 7, 100)).await, "hij");
        assert_eq!(text(slice(chunks(&parts), 9, 1)).await, "j");
        assert_eq!(text(slice(chunks(&parts), 3, 4)).await, "defg");
    }

    #[test]
    fn versions_compare_etag_size_and_time() {
        let a = ObjectMeta {
            size: 3,
            etag: Some("\"x\"".into()),
            ..Default::default()
        };
        assert!(same_version(&a, &a.clone()));
        let b = ObjectMeta {
            etag: Some("\"y\"".into()),
            ..a.clone()
        };
        assert!(!same_version(&a, &b));
        let c = ObjectMeta {
            size: 4,
            ..a.clone()
        };
        assert!(!same_version(&a, &c));
    }
}
