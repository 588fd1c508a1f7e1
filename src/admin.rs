//! The admin listener: health, readiness, reload, and revocation of sessions and partners.
//!
//! Takes the [`Live`] configuration and a loopback address (plain HTTP/1.1; `check` refuses
//! any other address until this listener speaks TLS). Gives, without credentials,
//! `GET /healthz` (the process serves) and `GET /readyz` (configuration loaded, every store
//! and the key service answer, the audit trail is writable); with the admin bearer token (a
//! random token in a 0600 file created on first run, compared in constant time)
//! `POST /reload` and `POST /revoke`. A revocation is persisted before it is acknowledged;
//! revocations and reloads are recorded in the audit trail. Fails with 401 on a bad token,
//! 400 on a bad body, 422 on a rejected configuration, 503 when a revocation cannot be
//! persisted.

use std::convert::Infallible;
use std::future::Future;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;

use crate::audit::{Decision, Event, Kind};
use crate::reload::Live;
use crate::state::State;

/// Reads the admin token file, creating it with a fresh random token when missing, and gives
/// the token's SHA-256 (the token itself is not kept).
pub fn token_digest(path: &Path) -> std::io::Result<[u8; 32]> {
    use std::os::unix::fs::OpenOptionsExt;
    if !path.exists() {
        let mut raw = [0u8; 32];
        aws_lc_rs::rand::fill(&mut raw).map_err(|_| std::io::Error::other("no randomness"))?;
        let token = base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, raw);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)?;
        f.write_all(token.as_bytes())?;
        f.sync_all()?;
    }
    let token = std::fs::read_to_string(path)?;
    Ok(Sha256::digest(token.trim().as_bytes()).into())
}

/// Serves the admin API on `listener` until `shutdown` completes.
pub async fn run(listener: TcpListener, live: Arc<Live>, shutdown: impl Future<Output = ()>) {
    tokio::pin!(shutdown);
    loop {
        let (tcp, _) = tokio::select! {
            a = listener.accept() => match a { Ok(a) => a, Err(_) => continue },
            () = &mut shutdown => return,
        };
        let live = live.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let live = live.clone();
                async move { Ok::<_, Infallible>(handle(live, req).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(std::time::Duration::from_secs(10))
                .serve_connection(TokioIo::new(tcp), service)
                .await;
        });
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RevokeRequest {
    session: Option<String>,
    partner: Option<String>,
    /// Why, for the audit trail: `suspended` or `removed` (offboarding); default a plain
    /// revocation.
    reason: Option<String>,
}

async fn handle<B>(live: Arc<Live>, req: Request<B>) -> Response<Full<Bytes>>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let state = live.state();
    let path = req.uri().path();
    let open = matches!(path, "/healthz" | "/readyz");
    if !open && !authorized(&state, &req) {
        return reply(
            StatusCode::UNAUTHORIZED,
            "{\"error\":\"admin token required\"}\n",
        );
    }
    match (req.method(), path) {
        (&Method::GET, "/healthz") => reply(StatusCode::OK, "ok\n"),
        (&Method::GET, "/readyz") => readyz(&live).await,
        (&Method::POST, "/reload") => reload(&live).await,
        (&Method::GET, "/metrics") => metrics(&live),
        (&Method::GET, "/sessions") => sessions(&state),
        (&Method::POST, "/revoke") => {
            let Ok(body) = Limited::new(req.into_body(), 4096).collect().await else {
                return reply(
                    StatusCode::BAD_REQUEST,
                    "{\"error\":\"body too large or incomplete\"}\n",
                );
            };
            match serde_json::from_slice::<RevokeRequest>(&body.to_bytes()) {
                Ok(r) => revoke(state, r).await,
                Err(_) => reply(
                    StatusCode::BAD_REQUEST,
                    "{\"error\":\"expected {\\\"session\\\": ID} or {\\\"partner\\\": ID}\"}\n",
                ),
            }
        }
        _ => reply(StatusCode::NOT_FOUND, "{\"error\":\"not found\"}\n"),
    }
}

/// `POST /reload`: 200 with what changed, or 422 with every error (old config in force).
async fn reload(live: &Live) -> Response<Full<Bytes>> {
    let result = live.reload().await;
    let state = live.state();
    let (status, reason, body) = match &result {
        Ok(outcome) => (
            StatusCode::OK,
            "config_reloaded",
            serde_json::json!({ "reloaded": true, "partners": outcome.partners,
                "shares": outcome.shares, "restart_needed": outcome.restart_needed }),
        ),
        Err(e) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            "config_rejected",
            serde_json::json!({ "reloaded": false,
                "errors": e.to_string().lines().collect::<Vec<_>>() }),
        ),
    };
    record(&state, &admin_event("/reload", status, reason, None, None));
    reply(status, &format!("{body}\n"))
}

/// Whether this gateway can serve: the configuration is loaded (it is, or this would not
/// answer), the audit trail is writable, every store answers a one-key listing and the key
/// service makes a data key. Probes run at most every few seconds; answers in between reuse
/// the last result so a busy load balancer cannot turn readiness checks into KMS traffic.
async fn readyz(live: &Live) -> Response<Full<Bytes>> {
    let problems = live.readiness().await;
    if problems.is_empty() {
        reply(StatusCode::OK, "{\"ready\":true}\n")
    } else {
        let body = serde_json::json!({ "ready": false, "problems": problems });
        reply(StatusCode::SERVICE_UNAVAILABLE, &format!("{body}\n"))
    }
}

/// `GET /metrics`: the Prometheus (OpenMetrics) text exposition.
fn metrics(live: &Live) -> Response<Full<Bytes>> {
    let state = live.state();
    let (reloads_ok, reloads_failed) = live.counts();
    let cache = state.keys.as_ref().map(|k| k.stats()).unwrap_or_default();
    let now = crate::metrics::Scrape {
        live_sessions: state.observers.sessions.live_count(
            jiff::Timestamp::now(),
            &state.revocations,
            &state.gate,
        ) as u64,
        audit_written: state.audit.written(),
        audit_failures: state.audit.write_failures(),
        audit_healthy: state.audit.healthy(),
        reloads_ok,
        reloads_failed,
        data_key_requests: cache.hits + cache.joined + cache.misses,
        data_key_cache_hits: cache.hits + cache.joined,
        key_service_calls: cache.misses,
        archive: state.audit.archive_progress().map(|p| *p.borrow()),
    };
    let mut resp = reply(StatusCode::OK, &state.observers.metrics.render(now));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static(
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        ),
    );
    resp
}

/// `GET /sessions`: live sessions, newest first (no tokens, only ids and facts).
fn sessions(state: &State) -> Response<Full<Bytes>> {
    let live =
        state
            .observers
            .sessions
            .live(jiff::Timestamp::now(), &state.revocations, &state.gate);
    let body = serde_json::json!({ "sessions": live });
    reply(StatusCode::OK, &format!("{body}\n"))
}

/// Records an operator action in the audit trail and the metrics.
fn record(state: &State, ev: &Event) {
    state.audit.record(ev);
    state.observers.observe(ev);
}

/// An audit event for an operator action through this listener.
fn admin_event(
    path: &str,
    status: StatusCode,
    reason: &str,
    session_id: Option<String>,
    partner: Option<String>,
) -> Event {
    Event {
        session_id,
        partner,
        client_ip: "admin".into(),
        method: "POST".into(),
        path: path.into(),
        status: status.as_u16(),
        decision: if status.is_success() {
            Decision::Allow
        } else {
            Decision::Deny
        },
        reason: reason.into(),
        ..Event::blank(Kind::Admin)
    }
}

fn authorized<B>(state: &State, req: &Request<B>) -> bool {
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let digest: [u8; 32] = Sha256::digest(given.trim().as_bytes()).into();
    bool::from(digest.ct_eq(&state.admin_token_digest))
}

async fn revoke(state: Arc<State>, r: RevokeRequest) -> Response<Full<Bytes>> {
    let now = jiff::Timestamp::now();
    let reason = match r.reason.as_deref() {
        None => None,
        Some("suspended") => Some("partner_suspended"),
        Some("removed") => Some("partner_removed"),
        Some(_) => {
            return reply(
                StatusCode::BAD_REQUEST,
                "{\"error\":\"reason must be suspended or removed\"}\n",
            );
        }
    };
    let (what, id) = match (r.session, r.partner) {
        (Some(s), None) if !s.is_empty() && s.len() <= 128 => ("session", s),
        (None, Some(p)) if !p.is_empty() && p.len() <= 128 => ("partner", p),
        _ => {
            return reply(
                StatusCode::BAD_REQUEST,
                "{\"error\":\"give exactly one of session, partner\"}\n",
            );
        }
    };
    let (revocations, target) = (state.revocations.clone(), id.clone());
    let result = tokio::task::spawn_blocking(move || match what {
        "session" => revocations.revoke_session(&target, now),
        _ => revocations.revoke_partner(&target, now),
    })
    .await
    .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())));
    if let Err(e) = result {
        tracing::error!(error = %e, "revocation could not be persisted; not acknowledged");
        return reply(
            StatusCode::SERVICE_UNAVAILABLE,
            "{\"error\":\"revocation could not be persisted\"}\n",
        );
    }
    record(
        &state,
        &admin_event(
            "/revoke",
            StatusCode::OK,
            &reason.map_or_else(|| format!("{what}_revoked"), str::to_string),
            (what == "session").then(|| id.clone()),
            (what == "partner").then(|| id.clone()),
        ),
    );
    tracing::info!(what, id = %id, "revoked");
    reply(StatusCode::OK, &format!("{{\"revoked\":\"{what}\"}}\n"))
}

fn reply(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body.to_string())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    resp
}
