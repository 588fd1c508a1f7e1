//! The data plane: S3 operations on shares.
//!
//! Takes a request whose path names a share; runs parse (key validation first) ->
//! authenticate (bearer) -> authorize (grants) -> store, and gives the S3 response. Keys the
//! partner may not see answer exactly like missing keys; shares it has no grant on answer like
//! missing shares. Store outages become 503 without detail.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, header};
use http_body::Body;

use crate::auth::Session;
use crate::body::{self, ResponseBody, Upload};
use crate::config::{Action, PartnerConfig};
use crate::pipeline::{Ctx, Refusal};
use crate::policy::{self, Denial, ListSource};
use crate::s3api::{self, ListParams, ListResult, ListedObject, Operation, S3Error};
use crate::state::{Share, State};
use crate::store::{ListRequest, ObjectMeta, PutOptions, StoreError};

pub async fn handle<B>(
    state: &State,
    ctx: &mut Ctx,
    req: Request<B>,
) -> Result<Response<ResponseBody>, Refusal>
where
    B: Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let range = req
        .headers()
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok());
    let op = s3api::parse(req.method(), req.uri().path(), req.uri().query(), range)
        .map_err(|e| Refusal::new(e, parse_reason(e)))?;
    ctx.event.share = op.share().map(str::to_owned);
    ctx.event.key = op.key().map(str::to_owned);
    let session = authenticate(state, ctx, req.headers())?;
    let partner = state
        .partner(&session.partner)
        .ok_or(Refusal::new(S3Error::InvalidToken, "partner_unknown"))?;
    match op {
        Operation::ListShares => Ok(xml(s3api::list_shares_xml(
            &partner.id,
            &policy::visible_shares(partner, &session.scopes),
        ))),
        Operation::HeadShare { share } => {
            policy::share_grants(partner, &session.scopes, &share).map_err(share_refusal)?;
            Ok(Response::new(body::empty()))
        }
        Operation::ListObjects { share, params } => {
            list(state, partner, &session, &share, params).await
        }
        Operation::GetObject { share, key, range }
        | Operation::HeadObject { share, key, range } => {
            let head = ctx.event.method == "HEAD";
            allow(partner, &session, &share, &key, Action::Read)?;
            read(state, ctx, &share, &key, range, head).await
        }
        Operation::PutObject { share, key } => {
            allow(partner, &session, &share, &key, Action::Write)?;
            put(state, ctx, &share, &key, req).await
        }
        Operation::DeleteObject { share, key } => {
            allow(partner, &session, &share, &key, Action::Delete)?;
            let store = &share_of(state, &share)?.store;
            store
                .delete(&internal_key(state, &share, &key))
                .await
                .map_err(store_refusal)?;
            let mut resp = Response::new(body::empty());
            *resp.status_mut() = StatusCode::NO_CONTENT;
            Ok(resp)
        }
    }
}

fn parse_reason(e: S3Error) -> &'static str {
    match e {
        S3Error::InvalidObjectKey | S3Error::KeyTooLong => "invalid_key",
        S3Error::NoSuchBucket => "invalid_share_name",
        S3Error::NotImplemented => "not_implemented",
        S3Error::MethodNotAllowed => "method_not_allowed",
        S3Error::InvalidRange => "invalid_range",
        _ => "malformed_request",
    }
}

fn authenticate(state: &State, ctx: &mut Ctx, headers: &HeaderMap) -> Result<Session, Refusal> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .ok_or(Refusal::new(S3Error::InvalidToken, "token_missing"))?;
    let session = state
        .auth
        .verify_bearer(token, jiff::Timestamp::now())
        .map_err(|e| {
            let error = if e.reason == "token_expired" {
                S3Error::ExpiredToken
            } else {
                S3Error::InvalidToken
            };
            Refusal::new(error, e.reason)
        })?;
    ctx.event.partner = Some(session.partner.clone());
    ctx.event.session_id = Some(session.session_id.clone());
    Ok(session)
}

/// Object-level refusals look like a missing key for reads, like a missing share when the
/// partner has no grant on the share at all, and like `AccessDenied` for writes and deletes.
fn allow(
    partner: &PartnerConfig,
    session: &Session,
    share: &str,
    key: &str,
    action: Action,
) -> Result<(), Refusal> {
    policy::authorize(partner, &session.scopes, share, key, action).map_err(|d| match d {
        Denial::ShareNotGranted => share_refusal(d),
        _ if action == Action::Read => Refusal::new(S3Error::NoSuchKey, d.reason()),
        _ => Refusal::new(S3Error::AccessDenied, d.reason()),
    })
}

fn share_refusal(d: Denial) -> Refusal {
    Refusal::new(S3Error::NoSuchBucket, d.reason())
}

fn share_of<'a>(state: &'a State, share: &str) -> Result<&'a Share, Refusal> {
    // Grants are validated against shares at load, so a miss here is a broken invariant.
    state
        .shares
        .get(share)
        .ok_or(Refusal::new(S3Error::InternalError, "share_not_configured"))
}

fn internal_key(state: &State, share: &str, key: &str) -> String {
    let prefix = state
        .shares
        .get(share)
        .map_or("", |s| s.config.prefix.as_str());
    format!("{prefix}{key}")
}

fn store_refusal(e: StoreError) -> Refusal {
    match e {
        StoreError::NotFound => Refusal::new(S3Error::NoSuchKey, "no_such_key"),
        StoreError::InvalidRange { .. } => {
            Refusal::new(S3Error::InvalidRange, "range_not_satisfiable")
        }
        StoreError::Body(_) => Refusal::new(S3Error::IncompleteBody, "upload_incomplete"),
        StoreError::Upstream(detail) => {
            tracing::warn!(error = %detail, "object store request failed");
            Refusal::new(S3Error::ServiceUnavailable, "store_unavailable")
        }
    }
}

async fn read(
    state: &State,
    ctx: &mut Ctx,
    share: &str,
    key: &str,
    range: Option<crate::store::ByteRange>,
    head: bool,
) -> Result<Response<ResponseBody>, Refusal> {
    let store = &share_of(state, share)?.store;
    let ikey = internal_key(state, share, key);
    let result = if head {
        store.head(&ikey).await.map(|meta| {
            let served = range.map(|r| {
                r.resolve(meta.size)
                    .ok_or(StoreError::InvalidRange { size: meta.size })
            });
            (meta, served, None)
        })
    } else {
        store
            .get(&ikey, range)
            .await
            .map(|got| (got.meta, got.range.map(Ok), Some(got.body)))
    };
    let (meta, served, stream) = match result {
        Ok((_, Some(Err(StoreError::InvalidRange { size })), _))
        | Err(StoreError::InvalidRange { size }) => {
            return Ok(unsatisfiable(ctx, size));
        }
        Ok((meta, served, stream)) => (meta, served.and_then(Result::ok), stream),
        Err(e) => return Err(store_refusal(e)),
    };
    let body = stream.map_or_else(body::empty, body::stream);
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

fn unsatisfiable(ctx: &mut Ctx, size: u64) -> Response<ResponseBody> {
    ctx.event.reason = "range_not_satisfiable".into();
    let mut resp = crate::pipeline::error_response(S3Error::InvalidRange, ctx);
    if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
        resp.headers_mut().insert(header::CONTENT_RANGE, v);
    }
    resp
}

fn object_headers(h: &mut HeaderMap, meta: &ObjectMeta) {
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
    for (name, value) in &meta.metadata {
        let name = http::HeaderName::from_bytes(format!("x-amz-meta-{name}").as_bytes());
        if let (Ok(name), Ok(value)) = (name, HeaderValue::from_str(value)) {
            h.insert(name, value);
        }
    }
}

async fn put<B>(
    state: &State,
    ctx: &mut Ctx,
    share: &str,
    key: &str,
    req: Request<B>,
) -> Result<Response<ResponseBody>, Refusal>
where
    B: Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let limit = state.config.limits.max_put_bytes;
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
    let mut metadata = std::collections::BTreeMap::new();
    for (name, value) in headers {
        if let Some(m) = name.as_str().strip_prefix("x-amz-meta-") {
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
        > 2048
    {
        return Err(Refusal::new(S3Error::InvalidArgument, "metadata_too_large"));
    }
    let opts = PutOptions {
        content_type: headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        metadata,
        content_length,
    };
    let counters = Arc::new(Upload::default());
    let stream = body::upload(req.into_body(), limit, counters.clone());
    let store = &share_of(state, share)?.store;
    let result = store
        .put(&internal_key(state, share, key), stream, opts)
        .await;
    ctx.event.bytes_in = counters.bytes.load(std::sync::atomic::Ordering::Acquire);
    let put = result.map_err(|e| {
        if counters
            .too_large
            .load(std::sync::atomic::Ordering::Acquire)
        {
            Refusal::new(S3Error::EntityTooLarge, "object_too_large")
        } else {
            store_refusal(e)
        }
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

/// Where a paginated listing stands: the plan step and the last partner-visible key served.
#[derive(serde::Serialize, serde::Deserialize)]
struct Cursor {
    i: usize,
    a: String,
}

async fn list(
    state: &State,
    partner: &PartnerConfig,
    session: &Session,
    share: &str,
    params: ListParams,
) -> Result<Response<ResponseBody>, Refusal> {
    let grants = policy::share_grants(partner, &session.scopes, share).map_err(share_refusal)?;
    if !grants.iter().any(|g| g.actions.contains(Action::List)) {
        return Err(Refusal::new(
            S3Error::AccessDenied,
            Denial::NoGrant.reason(),
        ));
    }
    let plan = policy::list_plan(&grants, &params.prefix, params.delimiter.as_deref());
    let cursor = match &params.continuation_token {
        Some(t) => decode_cursor(t).ok_or(Refusal::new(
            S3Error::InvalidArgument,
            "bad_continuation_token",
        ))?,
        None => Cursor {
            i: 0,
            a: String::new(),
        },
    };
    let share_cfg = &share_of(state, share)?.config;
    let store = &share_of(state, share)?.store;
    let strip = |k: &str| k.strip_prefix(share_cfg.prefix.as_str()).map(str::to_owned);
    let (mut objects, mut prefixes, mut last) = (Vec::new(), Vec::new(), None::<(usize, String)>);
    let mut truncated = false;
    let mut i = cursor.i;
    while i < plan.len() {
        let remaining = params.max_keys - objects.len() - prefixes.len();
        if remaining == 0 {
            truncated = true;
            break;
        }
        let after = (i == cursor.i && !cursor.a.is_empty()).then(|| cursor.a.clone());
        match &plan[i] {
            ListSource::Upstream(p) => {
                let req = ListRequest {
                    prefix: format!("{}{p}", share_cfg.prefix),
                    delimiter: params.delimiter.clone(),
                    start_after: after.map(|a| format!("{}{a}", share_cfg.prefix)),
                    max_keys: remaining,
                };
                let page = store.list(&req).await.map_err(store_refusal)?;
                for o in page.objects {
                    let Some(key) = strip(&o.key) else { continue };
                    objects.push((key, o.size, o.etag, o.last_modified));
                }
                for cp in page.common_prefixes {
                    let Some(cp) = strip(&cp) else { continue };
                    prefixes.push(cp);
                }
                // The page's last item, in key order, is where the next page starts after.
                let newest = objects
                    .last()
                    .map(|o| &o.0)
                    .into_iter()
                    .chain(prefixes.last())
                    .max();
                if let Some(a) = newest {
                    last = Some((i, a.clone()));
                }
                if page.is_truncated {
                    truncated = true;
                    break;
                }
            }
            ListSource::Folder {
                common_prefix,
                probes,
            } => {
                if after.is_none()
                    && folder_exists(store.as_ref(), &share_cfg.prefix, probes).await?
                {
                    last = Some((i, common_prefix.clone()));
                    prefixes.push(common_prefix.clone());
                }
            }
        }
        i += 1;
    }
    // Merge sorted keys and common prefixes only matters inside one upstream step; S3 returns
    // them in one order, so sort the two together by name for stable output.
    prefixes.sort();
    let next_token = truncated.then(|| match &last {
        Some((i, a)) => encode_cursor(&Cursor {
            i: *i,
            a: a.clone(),
        }),
        None => encode_cursor(&Cursor {
            i,
            a: String::new(),
        }),
    });
    let result = ListResult {
        share,
        params: &params,
        objects: objects
            .iter()
            .map(|(k, size, etag, lm)| ListedObject {
                key: k,
                size: *size,
                etag: etag.as_deref(),
                last_modified: *lm,
            })
            .collect(),
        common_prefixes: prefixes.iter().map(String::as_str).collect(),
        next_token,
    };
    Ok(xml(result.to_xml()))
}

async fn folder_exists(
    store: &dyn crate::store::ObjectStore,
    share_prefix: &str,
    probes: &[String],
) -> Result<bool, Refusal> {
    for p in probes {
        let req = ListRequest {
            prefix: format!("{share_prefix}{p}"),
            delimiter: None,
            start_after: None,
            max_keys: 1,
        };
        if !store
            .list(&req)
            .await
            .map_err(store_refusal)?
            .objects
            .is_empty()
        {
            return Ok(true);
        }
    }
    Ok(false)
}

fn encode_cursor(c: &Cursor) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(c).unwrap_or_default())
}

fn decode_cursor(t: &str) -> Option<Cursor> {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(t).ok()?).ok()
}

fn xml(body: String) -> Response<ResponseBody> {
    let mut resp = Response::new(body::full(body));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/xml"),
    );
    resp
}
