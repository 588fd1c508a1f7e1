//! HTTP side of `POST /v1/token`.
//!
//! Takes the request, reads a bounded form body and hands it to the token authority (client
//! credentials or RFC 8693 token exchange); gives the RFC 6749 JSON answer (never cached) and
//! fills the token event of the audit trail. The per-IP limit applies to every request; a
//! (partner, client IP) pair locked out after failed attempts is refused before anything is
//! verified, whichever grant the attempts used.

use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body::Body;
use http_body_util::{BodyExt, Limited};

use crate::audit::{Decision, Kind};
use crate::body::{self, ResponseBody};
use crate::pipeline::Ctx;
use crate::state::State;

/// Largest token request body accepted.
pub const MAX_FORM_BYTES: usize = 64 * 1024;

pub async fn handle<B>(state: &State, ctx: &mut Ctx, req: Request<B>) -> Response<ResponseBody>
where
    B: Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    ctx.event.kind = Kind::Token;
    if req.method() != Method::POST {
        return oauth_error(
            ctx,
            StatusCode::METHOD_NOT_ALLOWED,
            "invalid_request",
            "use POST",
            "method_not_allowed",
        );
    }
    let form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            ct.split(';').next().is_some_and(|m| {
                m.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            })
        });
    if !form {
        return oauth_error(
            ctx,
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "content type must be application/x-www-form-urlencoded",
            "malformed_request",
        );
    }
    let bytes = match Limited::new(req.into_body(), MAX_FORM_BYTES)
        .collect()
        .await
    {
        Ok(collected) => collected.to_bytes(),
        Err(_) => {
            return oauth_error(
                ctx,
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "request body too large or incomplete",
                "malformed_request",
            );
        }
    };
    ctx.event.bytes_in = bytes.len() as u64;
    let ip = ctx.client_ip;
    if let Err(e) = state.limiters.token_request(ip) {
        return slow_down(ctx, &e);
    }
    // A (partner, client IP) pair with too many failed attempts is refused before any
    // signature is checked; a stranger elsewhere cannot lock the partner out. For a token
    // exchange without client_id the partner is the one the subject token's issuer names.
    let form = match crate::auth::read_form(&bytes) {
        Ok(form) => form,
        Err(e) => {
            let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST);
            return oauth_error(ctx, status, e.error, e.description, e.reason);
        }
    };
    let claimed = state.auth.claimed_partner(&form);
    if let Some(id) = &claimed
        && let Err(e) = state.limiters.lockout().check(id, ip)
    {
        ctx.event.partner = Some(id.chars().take(128).collect());
        return slow_down(ctx, &e);
    }
    match state.auth.token_request(form, jiff::Timestamp::now()).await {
        Ok(issued) => {
            state.limiters.lockout().record_success(&issued.partner, ip);
            ctx.event.decision = Decision::Allow;
            ctx.event.reason = if issued.issued_token_type.is_some() {
                "token_exchanged"
            } else {
                "token_issued"
            }
            .into();
            ctx.event.partner = Some(issued.partner.clone());
            ctx.event.session_id = Some(issued.session_id.clone());
            ctx.event.key_id = issued.key_id.clone();
            ctx.event.expires_in = Some(issued.expires_in);
            ctx.event.scopes = Some(issued.scopes.clone());
            ctx.event.requested_scopes = issued.requested_scopes.clone();
            ctx.event.amr = Some(issued.amr.clone());
            ctx.event.idp = issued.idp.clone();
            json_response(StatusCode::OK, issued.to_json())
        }
        Err(e) => {
            ctx.event.partner = e.partner.clone();
            if e.auth_failed
                && let Some(id) = &claimed
            {
                // The failure that locks the pair is still answered as what it was.
                let _ = state.limiters.lockout().record_failure(id, ip);
            }
            let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST);
            oauth_error(ctx, status, e.error, e.description, e.reason)
        }
    }
}

/// 429 with `Retry-After`: the per-IP limit or a lockout.
fn slow_down(ctx: &mut Ctx, e: &crate::ratelimit::RateLimited) -> Response<ResponseBody> {
    let mut resp = oauth_error(
        ctx,
        StatusCode::TOO_MANY_REQUESTS,
        "temporarily_unavailable",
        "too many token requests; retry later",
        e.reason(),
    );
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(e.retry_after_secs()));
    resp
}

fn oauth_error(
    ctx: &mut Ctx,
    status: StatusCode,
    error: &str,
    description: &str,
    reason: &str,
) -> Response<ResponseBody> {
    ctx.event.decision = Decision::Deny;
    ctx.event.reason = reason.into();
    let mut resp = json_response(
        status,
        serde_json::json!({ "error": error, "error_description": description }),
    );
    if status == StatusCode::UNAUTHORIZED {
        resp.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    resp
}

fn json_response(status: StatusCode, value: serde_json::Value) -> Response<ResponseBody> {
    let mut resp = Response::new(body::full(value.to_string()));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    resp
}
