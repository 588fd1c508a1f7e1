//! The data plane: S3 operations on shares.
//!
//! Takes a request whose path names a share; runs parse (key validation first) ->
//! authenticate (bearer) -> authorize (grants, conditions, deny rules) -> rate limits ->
//! store, and gives the S3 response. Keys the partner may not see answer exactly like missing
//! keys; shares it has no grant on answer like missing shares; session-level refusals (IP,
//! time window, expiry, MFA, rate) name their reason. Store outages become 503 without detail.

mod dlp;
mod envelope;
mod list;
mod object;

pub use dlp::{DLP_HEADER, DlpRecord, DlpRuntime, FindingCount};

use http::{HeaderMap, Request, Response, StatusCode, header};
use http_body::Body;

use crate::auth;
use crate::body::{self, ResponseBody};
use crate::config::{Action, Classification, PartnerConfig};
use crate::pipeline::{Ctx, Refusal};
use crate::policy::{self, Decision, Denial};
use crate::ratelimit::{Admission, Pacing, RateLimited};
use crate::s3api::{self, Operation, S3Error};
use crate::state::{Share, State};
use crate::store::{ObjectMeta, StoreError};

/// Object metadata name holding the gateway-assigned classification.
pub const CLASSIFICATION_META: &str = "classification";

/// Metadata names partners may not set: the gateway writes them.
pub fn is_reserved_metadata(name: &str) -> bool {
    name == CLASSIFICATION_META || name.starts_with("gatehouse-")
}

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
    let ps = policy::Session {
        config: &state.config,
        partner,
        scopes: &session.scopes,
        client_ip: Some(ctx.client_ip),
        amr: &session.amr,
        now: jiff::Timestamp::now(),
    };
    ps.check_partner()
        .map_err(|d| denial_refusal(d, Action::Read))?;
    match op {
        Operation::ListShares => Ok(list::xml(s3api::list_shares_xml(
            &partner.id,
            &policy::shares_visible(&ps),
        ))),
        Operation::HeadShare { share } => {
            policy::list_scope(&ps, &share).map_err(|d| decision_refusal(d, Action::List))?;
            Ok(Response::new(body::empty()))
        }
        Operation::ListObjects { share, params } => {
            let scope =
                policy::list_scope(&ps, &share).map_err(|d| decision_refusal(d, Action::List))?;
            admit(state, ctx, partner, None)?;
            list::list(state, &scope, &share, params).await
        }
        Operation::GetObject { share, key, range }
        | Operation::HeadObject { share, key, range } => {
            let head = ctx.event.method == "HEAD";
            let access = Access::check(state, &session, &ps, &share, &key, Action::Read)?;
            let admission = admit(state, ctx, partner, Some(access.grant))?;
            object::read(state, ctx, &access, range, head, admission).await
        }
        Operation::PutObject { share, key } => {
            let access = Access::check(state, &session, &ps, &share, &key, Action::Write)?;
            let admission = admit(state, ctx, partner, Some(access.grant))?;
            object::put(state, ctx, &access, req, admission).await
        }
        Operation::DeleteObject { share, key } => {
            let access = Access::check(state, &session, &ps, &share, &key, Action::Delete)?;
            admit(state, ctx, partner, Some(access.grant))?;
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

/// An operation on one key that policy allowed before the object was looked at.
pub(crate) struct Access<'a> {
    session: &'a policy::Session<'a>,
    share: String,
    key: String,
    action: Action,
    grant: usize,
    max_object_size: Option<u64>,
    /// Ends transfers in flight when this access ends.
    cutoff: crate::body::Cutoff,
}

impl<'a> Access<'a> {
    fn check(
        state: &State,
        auth: &auth::Session,
        session: &'a policy::Session<'a>,
        share: &str,
        key: &str,
        action: Action,
    ) -> Result<Access<'a>, Refusal> {
        let req = policy::Request {
            session,
            share,
            key,
            action,
            object: None,
        };
        let allowed = policy::evaluate(&req)
            .into_result()
            .map_err(|d| denial_refusal(d, action))?;
        // Staged uploads of S3 shares wait under this prefix: never served, written or deleted.
        if internal_key(state, share, key).starts_with(crate::store::STAGING_PREFIX) {
            let error = match action {
                Action::Read => S3Error::NoSuchKey,
                _ => S3Error::AccessDenied,
            };
            return Err(Refusal::new(error, "reserved_key"));
        }
        let grant_end = session
            .partner
            .grants
            .get(allowed.grant)
            .and_then(|g| g.conditions.valid_until);
        let cutoff = crate::body::Cutoff {
            revocations: state.revocations.clone(),
            gate: state.gate.clone(),
            partner: auth.partner.clone(),
            session_id: auth.session_id.clone(),
            issued_at: auth.issued_at,
            deadline: policy::deadline(
                policy::partner_end(session.partner),
                std::iter::once(grant_end),
                session.now,
            ),
        };
        Ok(Access {
            session,
            share: share.to_string(),
            key: key.to_string(),
            action,
            grant: allowed.grant,
            max_object_size: allowed.max_object_size,
            cutoff,
        })
    }

    /// Checks what depends on the object itself: classification and size.
    fn check_object(
        &self,
        classification: Option<Classification>,
        size: Option<u64>,
    ) -> Result<(), Refusal> {
        let req = policy::Request {
            session: self.session,
            share: &self.share,
            key: &self.key,
            action: self.action,
            object: Some(policy::Object {
                classification,
                size,
            }),
        };
        policy::evaluate(&req)
            .into_result()
            .map(drop)
            .map_err(|d| denial_refusal(d, self.action))
    }
}

/// The classification an object carries; unreadable values count as restricted.
fn classification_of(meta: &ObjectMeta) -> Option<Classification> {
    meta.metadata
        .get(CLASSIFICATION_META)
        .map(|c| Classification::parse(c).unwrap_or(Classification::Restricted))
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

fn authenticate(
    state: &State,
    ctx: &mut Ctx,
    headers: &HeaderMap,
) -> Result<auth::Session, Refusal> {
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
            // An authentic token refused for its partner: on record under whose it is. Not its
            // session: a refusal without one stays an unauthenticated one (flood budget,
            // alert baselines).
            ctx.event.partner = e.partner;
            Refusal::new(error, e.reason)
        })?;
    ctx.event.partner = Some(session.partner.clone());
    ctx.event.session_id = Some(session.session_id.clone());
    if state
        .revocations
        .is_revoked(&session.partner, &session.session_id, session.issued_at)
    {
        return Err(Refusal::public(S3Error::InvalidToken, "revoked"));
    }
    Ok(session)
}

/// Byte pacing for one transfer: downloads and uploads.
pub(crate) struct Pacings {
    download: Pacing,
    upload: Pacing,
}

/// Rate limits after policy allowed: the admission (concurrency permits) is held until the
/// response body ends; its byte pacing is handed to the transfer.
fn admit(
    state: &State,
    ctx: &mut Ctx,
    partner: &PartnerConfig,
    grant: Option<usize>,
) -> Result<Pacings, Refusal> {
    let admission: Admission = state.limiters.admit(partner, grant).map_err(rate_refusal)?;
    let pacings = Pacings {
        download: admission.download.clone(),
        upload: admission.upload.clone(),
    };
    ctx.hold = Some(Box::new(admission));
    Ok(pacings)
}

fn rate_refusal(e: RateLimited) -> Refusal {
    Refusal {
        retry_after: Some(e.retry_after_secs()),
        ..Refusal::public(S3Error::SlowDown, e.reason())
    }
}

fn decision_refusal(d: Decision, action: Action) -> Refusal {
    match d {
        Decision::Deny { denial, .. } => denial_refusal(denial, action),
        Decision::Allow(_) => Refusal::new(S3Error::InternalError, "policy_inconsistent"),
    }
}

/// Session-level denials name their reason; object-level ones look like a missing share or
/// key (reads) or a plain `AccessDenied` (lists, writes, deletes).
fn denial_refusal(d: Denial, action: Action) -> Refusal {
    match d {
        _ if d.is_session_level() => Refusal::public(S3Error::AccessDenied, d.reason()),
        Denial::ShareNotGranted => Refusal::new(S3Error::NoSuchBucket, d.reason()),
        Denial::ObjectTooLarge if action == Action::Write => {
            Refusal::new(S3Error::EntityTooLarge, d.reason())
        }
        _ if action == Action::Read => Refusal::new(S3Error::NoSuchKey, d.reason()),
        _ => Refusal::new(S3Error::AccessDenied, d.reason()),
    }
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
