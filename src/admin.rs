//! The admin listener: health, and revocation of sessions and partners.
//!
//! Takes the runtime [`State`] and a loopback address (plain HTTP/1.1; `check` refuses any
//! other address until this listener speaks TLS). Gives `GET /healthz` without credentials
//! and `POST /revoke` with the admin bearer token (a random token in a 0600 file created on
//! first run, compared in constant time). A revocation is persisted before it is
//! acknowledged and recorded in the audit trail. Fails with 401 on a bad token, 400 on a bad
//! body, 503 when the revocation cannot be persisted.

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
pub async fn run(listener: TcpListener, state: Arc<State>, shutdown: impl Future<Output = ()>) {
    tokio::pin!(shutdown);
    loop {
        let (tcp, _) = tokio::select! {
            a = listener.accept() => match a { Ok(a) => a, Err(_) => continue },
            () = &mut shutdown => return,
        };
        let state = state.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(handle(state, req).await) }
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
}

async fn handle<B>(state: Arc<State>, req: Request<B>) -> Response<Full<Bytes>>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/healthz") => reply(StatusCode::OK, "ok\n"),
        (&Method::POST, "/revoke") => {
            if !authorized(&state, &req) {
                return reply(
                    StatusCode::UNAUTHORIZED,
                    "{\"error\":\"admin token required\"}\n",
                );
            }
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
    state.audit.record(&Event {
        time: now,
        kind: Kind::Admin,
        request_id: ulid::Ulid::new().to_string(),
        session_id: (what == "session").then(|| id.clone()),
        partner: (what == "partner").then(|| id.clone()),
        client_ip: "admin".into(),
        user_agent: None,
        method: "POST".into(),
        path: "/revoke".into(),
        share: None,
        key: None,
        range: None,
        status: 200,
        decision: Decision::Allow,
        reason: format!("{what}_revoked"),
        bytes_in: 0,
        bytes_out: 0,
        aborted: false,
        duration_ms: 0.0,
        key_id: None,
        expires_in: None,
        scopes: None,
    });
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
