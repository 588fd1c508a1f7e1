//! The request pipeline: the one place the stage order is written.
//!
//! Takes a decoded HTTP request and the connection facts; gives a response. Every request,
//! allowed or refused, leaves exactly one audit event (recorded when its body has been sent).
//! Partners see S3 errors with a request id and nothing internal.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body::Body;
use http_body_util::BodyExt;

use crate::audit::{Decision, Event, Kind};
use crate::body::{self, ResponseBody};
use crate::s3api::S3Error;
use crate::state::State;
use crate::{data, tokens};

/// Facts about the connection a request came in on.
#[derive(Debug, Clone, Copy)]
pub struct ConnInfo {
    pub client_ip: IpAddr,
    /// TLS version and cipher suite (recorded with the token events that start sessions).
    pub tls: Option<crate::audit::TlsFacts>,
}

/// A refusal: what the partner sees and the reason code the audit trail keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    pub error: S3Error,
    pub reason: &'static str,
    /// The reason is session level (who, where, when, how fast) and may be shown.
    pub public: bool,
    /// Seconds for a `Retry-After` header.
    pub retry_after: Option<u64>,
}

impl Refusal {
    pub fn new(error: S3Error, reason: &'static str) -> Refusal {
        Refusal {
            error,
            reason,
            public: false,
            retry_after: None,
        }
    }

    /// A refusal whose reason code the partner is told.
    pub fn public(error: S3Error, reason: &'static str) -> Refusal {
        Refusal {
            public: true,
            ..Refusal::new(error, reason)
        }
    }
}

/// Per-request context: request id, client, the audit draft every stage fills in.
pub struct Ctx {
    pub started: Instant,
    pub client_ip: IpAddr,
    pub event: Event,
    /// Kept alive until the response body has ended (rate-limit permits).
    pub hold: Option<Box<dyn Send>>,
}

impl Ctx {
    fn new<B>(req: &Request<B>, conn: ConnInfo) -> Ctx {
        let header = |n: header::HeaderName| {
            req.headers()
                .get(n)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        Ctx {
            started: Instant::now(),
            client_ip: conn.client_ip,
            hold: None,
            event: Event {
                client_ip: conn.client_ip.to_string(),
                user_agent: header(header::USER_AGENT).map(|ua| ua.chars().take(256).collect()),
                method: req.method().to_string(),
                path: req.uri().path().chars().take(2048).collect(),
                range: header(header::RANGE).map(|r| r.chars().take(64).collect()),
                ..Event::blank(Kind::Request)
            },
        }
    }
}

/// Handles one request through every stage, in order.
pub async fn handle<B>(state: Arc<State>, conn: ConnInfo, req: Request<B>) -> Response<ResponseBody>
where
    B: Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let mut ctx = Ctx::new(&req, conn);
    let forwarded = req
        .headers()
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok());
    ctx.client_ip = state.trusted_proxies.client_ip(conn.client_ip, forwarded);
    ctx.event.client_ip = ctx.client_ip.to_string();
    let result = if !state.audit.healthy() {
        Err(Refusal::new(
            S3Error::ServiceUnavailable,
            "audit_unavailable",
        ))
    } else {
        let (result, trace) = crate::audit::trace::scope(async {
            match req.uri().path() {
                "/v1/token" => {
                    ctx.event.tls = conn.tls;
                    Ok(tokens::handle(&state, &mut ctx, req).await)
                }
                "/.well-known/jwks.json" => Ok(jwks(&state)),
                _ => data::handle(&state, &mut ctx, req).await,
            }
        })
        .await;
        ctx.event.upstream_ms = trace.upstream_ms();
        ctx.event.data_key = trace.data_key;
        result
    };
    // Durable before the first byte: a response with object bytes waits for its synced record.
    let result = match result {
        Ok(resp) => match state
            .audit
            .before_first_byte(&ctx.event, resp.status().as_u16())
            .await
        {
            Ok(()) => Ok(resp),
            Err(_) => Err(Refusal::new(
                S3Error::ServiceUnavailable,
                "audit_unavailable",
            )),
        },
        refused => refused,
    };
    finish(&state, ctx, result)
}

fn jwks(state: &State) -> Response<ResponseBody> {
    let mut resp = Response::new(body::full(state.auth.jwks().to_string()));
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/jwk-set+json"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    resp
}

/// Renders a refusal, stamps the request id, and ties the audit event to the response body.
fn finish(
    state: &State,
    mut ctx: Ctx,
    result: Result<Response<ResponseBody>, Refusal>,
) -> Response<ResponseBody> {
    let mut resp = match result {
        Ok(resp) => {
            if ctx.event.reason.is_empty() {
                ctx.event.decision = Decision::Allow;
                ctx.event.reason = "ok".into();
            }
            resp
        }
        Err(refusal) => {
            ctx.event.decision = Decision::Deny;
            ctx.event.reason = refusal.reason.into();
            let mut resp = error_response(
                refusal.error,
                &ctx,
                refusal.public.then_some(refusal.reason),
            );
            if let Some(secs) = refusal.retry_after {
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(secs));
            }
            resp
        }
    };
    ctx.event.status = resp.status().as_u16();
    if let Ok(v) = HeaderValue::from_str(&ctx.event.request_id) {
        resp.headers_mut().insert("x-amz-request-id", v);
    }
    let (parts, inner) = resp.into_parts();
    let recorded =
        body::Recorded::new(inner, ctx.event, state.audit.clone(), ctx.started, ctx.hold)
            .observed_by(state.observers.clone());
    Response::from_parts(parts, recorded.boxed_unsync())
}

pub fn error_response(error: S3Error, ctx: &Ctx, reason: Option<&str>) -> Response<ResponseBody> {
    let is_head = ctx.event.method == "HEAD";
    let body = if is_head {
        body::empty()
    } else {
        body::full(error.to_xml(&ctx.event.path, &ctx.event.request_id, reason))
    };
    let mut resp = Response::new(body);
    *resp.status_mut() = error.status();
    let h = resp.headers_mut();
    if !is_head {
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/xml"),
        );
    }
    if error.status() == StatusCode::UNAUTHORIZED {
        h.insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer error=\"invalid_token\""),
        );
    }
    resp
}
