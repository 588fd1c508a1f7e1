//! The partner listener: accept loop, TLS handshake, HTTP/1.1 and HTTP/2, graceful shutdown.
//!
//! Takes a bound TCP listener, the [`Live`] configuration and a shutdown future; serves until the
//! future completes, then stops accepting and drains in-flight requests for up to
//! `listener.shutdown_grace`. Enforces the connection limit, the TLS handshake timeout, the
//! request-head timeout and size limits, and closes idle connections.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

use crate::idle::IdleIo;
use crate::pipeline::{self, ConnInfo};
use crate::reload::Live;

/// Serves partners on `listener` until `shutdown` completes, then drains.
pub async fn run(
    listener: TcpListener,
    live: Arc<Live>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    // Listener settings are read once: a reload reports changes to them as needing a restart.
    let cfg = live.state().config.listener.clone();
    let permits = Arc::new(Semaphore::new(cfg.max_connections));
    let graceful = GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(cfg.header_read_timeout)
        .max_buf_size(cfg.max_header_bytes.max(8192))
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(cfg.max_header_bytes).unwrap_or(u32::MAX))
        .max_concurrent_streams(128)
        .keep_alive_interval(Some(cfg.idle_timeout / 2))
        .keep_alive_timeout(cfg.idle_timeout / 2);
    let builder = Arc::new(builder);
    tracing::info!(addr = %listener.local_addr()?, "listening");
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tracing::warn!(peer = %peer, "connection limit reached; closing new connection");
            drop(tcp);
            continue;
        };
        let _ = tcp.set_nodelay(true);
        // Each connection takes the certificate and proxy settings in force when it arrives;
        // each request on it the state in force when the request arrives.
        let conn_state = live.state();
        let acceptor = TlsAcceptor::from(conn_state.tls.clone());
        let (live, builder, watcher) = (live.clone(), builder.clone(), graceful.watcher());
        let mut conn_info = ConnInfo {
            client_ip: peer.ip(),
            tls: None,
        };
        tokio::spawn(async move {
            let _permit = permit;
            let mut tcp = tcp;
            let proxies = &conn_state.trusted_proxies;
            if proxies.proxy_protocol && proxies.trusts(peer.ip()) {
                match crate::client_ip::read_proxy_v2(&mut tcp, cfg.handshake_timeout).await {
                    Ok(Some(source)) => conn_info.client_ip = source,
                    Ok(None) => {}
                    Err(e) => {
                        tracing::warn!(peer = %peer, reason = %e, "PROXY protocol header refused; closing");
                        return;
                    }
                }
            }
            let tls = match tokio::time::timeout(cfg.handshake_timeout, acceptor.accept(tcp)).await
            {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::debug!(peer = %peer, reason = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(peer = %peer, "TLS handshake timed out");
                    return;
                }
            };
            drop(conn_state);
            let session = tls.get_ref().1;
            if let (Some(version), Some(suite)) = (
                session.protocol_version(),
                session.negotiated_cipher_suite(),
            ) {
                conn_info.tls = Some(crate::audit::TlsFacts {
                    version: version.as_str().unwrap_or("unknown"),
                    cipher: suite.suite().as_str().unwrap_or("unknown"),
                });
            }
            let service = service_fn(move |req| {
                let state = live.state();
                async move { Ok::<_, Infallible>(pipeline::handle(state, conn_info, req).await) }
            });
            let (io, activity) = IdleIo::new(tls);
            let conn = builder
                .serve_connection(TokioIo::new(io), service)
                .into_owned();
            tokio::select! {
                result = watcher.watch(conn) => if let Err(e) = result {
                    tracing::debug!(peer = %peer, reason = %e, "connection ended with an error");
                },
                () = activity.idle_for(cfg.idle_timeout) => {
                    tracing::debug!(peer = %peer, "closing idle connection");
                }
            }
        });
    }
    drop(listener);
    tracing::info!(
        connections = graceful.count(),
        "shutting down; draining in-flight requests"
    );
    if tokio::time::timeout(cfg.shutdown_grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("shutdown grace period ended with requests still in flight");
    }
    Ok(())
}
