//! Connection limits: idle connections, slow request heads, the connection cap, header size,
//! and draining on shutdown.

mod common;

use std::time::Duration;

use common::{Gateway, Setup};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn start(listener: &'static str) -> Gateway {
    Gateway::start(Setup {
        listener,
        ..Setup::default()
    })
    .await
}

/// Reads until EOF or `limit`; true when the server closed the connection in time.
async fn closed_within<S: tokio::io::AsyncRead + Unpin>(
    s: &mut S,
    limit: Duration,
) -> (bool, String) {
    let mut out = Vec::new();
    let done = tokio::time::timeout(limit, s.read_to_end(&mut out)).await;
    (
        matches!(done, Ok(Ok(_)) | Ok(Err(_))),
        String::from_utf8_lossy(&out).into_owned(),
    )
}

#[tokio::test]
async fn idle_connections_are_closed() {
    let g = start("idle_timeout = \"2s\"\nheader_read_timeout = \"30s\"").await;
    let mut tls = g.raw_connect().await;
    let (closed, _) = closed_within(&mut tls, Duration::from_secs(5)).await;
    assert!(
        closed,
        "an idle connection must be closed after idle_timeout"
    );

    // A connection that keeps moving is not idle.
    let t = g.token("full").await;
    let mut tls = g.raw_connect().await;
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(600)).await;
        let req =
            format!("GET /exports/none HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {t}\r\n\r\n");
        tls.write_all(req.as_bytes()).await.unwrap();
        let mut buf = [0u8; 4096];
        let n = tls.read(&mut buf).await.unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 404"));
    }
    g.stop().await;
}

#[tokio::test]
async fn slow_request_heads_are_cut_off() {
    let g = start("header_read_timeout = \"1s\"").await;
    let mut tls = g.raw_connect().await;
    tls.write_all(b"GET /exports/x HTTP/1.1\r\nhost: x\r\n")
        .await
        .unwrap();
    let (closed, _) = closed_within(&mut tls, Duration::from_secs(5)).await;
    assert!(
        closed,
        "a request head that never completes must not hold the connection"
    );
    g.stop().await;
}

#[tokio::test]
async fn oversized_headers_are_refused() {
    let g = start("max_header_bytes = 8192").await;
    let big = "a".repeat(64 * 1024);
    let raw = g
        .raw(
            format!(
                "GET /exports/x HTTP/1.1\r\nhost: x\r\nx-big: {big}\r\nconnection: close\r\n\r\n"
            )
            .as_bytes(),
        )
        .await;
    assert!(
        !raw.starts_with("HTTP/1.1 2"),
        "{}",
        &raw[..raw.len().min(200)]
    );
    g.stop().await;
}

#[tokio::test]
async fn connection_cap_closes_extra_connections() {
    let g = start("max_connections = 2").await;
    let _a = g.raw_connect().await;
    let _b = g.raw_connect().await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    // The third TCP connection is accepted and closed at once, so its handshake fails.
    let tcp = tokio::net::TcpStream::connect(g.addr).await.unwrap();
    let mut roots = rustls::RootCertStore::empty();
    use rustls_pki_types::pem::PemObject;
    for cert in rustls_pki_types::CertificateDer::pem_slice_iter(g.ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let cfg = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        gatehouse::tls::provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let third = tokio_rustls::TlsConnector::from(std::sync::Arc::new(cfg))
        .connect(name, tcp)
        .await;
    assert!(
        third.is_err(),
        "a connection over max_connections must be refused"
    );
    drop((_a, _b));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let _c = g.raw_connect().await;
    g.stop().await;
}

#[tokio::test]
async fn shutdown_drains_in_flight_requests() {
    // A generous grace period: on a loaded machine the drain must not be cut by the timer.
    let g = start("shutdown_grace = \"60s\"").await;
    let t = g.token("full").await;
    let body = vec![9u8; 4 * 1024 * 1024];
    let resp = g
        .client
        .put(g.url("/exports/drain.bin"))
        .bearer_auth(&t)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    // Start a download, read a little, then ask the gateway to stop: the body still completes.
    let resp = g
        .client
        .get(g.url("/exports/drain.bin"))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let stopping = tokio::spawn(g.stop());
    let bytes = resp.bytes().await.unwrap();
    assert_eq!(bytes.len(), 4 * 1024 * 1024);
    stopping.await.unwrap();
}
