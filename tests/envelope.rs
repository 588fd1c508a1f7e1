//! End to end: envelope-encrypted shares through the running gateway, with the local key
//! file on the embedded store and with KMS + S3 served by moto (issue 4).

#[macro_use]
mod common;

use common::{Backend, Gateway, Setup};
use futures_util::StreamExt;
use reqwest::StatusCode;

both_backends!(
    round_trips_at_segment_edges,
    ranges_read_only_what_they_need,
    tampered_segment_aborts_the_body,
    moved_or_plaintext_objects_are_refused
);

async fn gw(backend: Backend) -> Gateway {
    Gateway::start(Setup {
        backend,
        encrypt: true,
        ..Setup::default()
    })
    .await
}

fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 % 251) as u8).collect()
}

async fn round_trips_at_segment_edges(backend: Backend) {
    let g = gw(backend).await;
    let t = g.token("full").await;
    for size in [0usize, 1, 65_535, 65_536, 65_537, 3 * 1024 * 1024 + 5] {
        let body = pattern(size);
        let key = format!("/exports/size-{size}.bin");
        let resp = g
            .client
            .put(g.url(&key))
            .bearer_auth(&t)
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{size}");
        let resp = g
            .client
            .get(g.url(&key))
            .bearer_auth(&t)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.headers()["content-length"], size.to_string().as_str());
        assert!(
            resp.headers()
                .keys()
                .all(|k| !k.as_str().starts_with("x-amz-meta-gatehouse")),
            "envelope metadata stays inside"
        );
        assert_eq!(resp.bytes().await.unwrap().as_ref(), &body[..], "{size}");
        let head = g
            .client
            .head(g.url(&key))
            .bearer_auth(&t)
            .send()
            .await
            .unwrap();
        assert_eq!(head.headers()["content-length"], size.to_string().as_str());
        // What the store holds is ciphertext, larger than the plaintext, never the plaintext.
        let (stored, meta) = g.store_get(&format!("size-{size}.bin")).await;
        assert!(stored.len() > size && meta.metadata.contains_key("gatehouse-envelope"));
        if size >= 16 {
            assert!(
                !stored.windows(16).any(|w| w == &body[..16]),
                "{size}: plaintext reached the store"
            );
        }
    }
    let list = g
        .client
        .get(g.url("/exports?list-type=2&prefix=size-65536"))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        list.contains("<Size>65536</Size>"),
        "listings report plaintext sizes: {list}"
    );
    g.stop().await;
}

async fn ranges_read_only_what_they_need(backend: Backend) {
    let g = gw(backend).await;
    let t = g.token("full").await;
    let size = 5 * 65_536 + 100;
    let body = pattern(size);
    g.client
        .put(g.url("/exports/r.bin"))
        .bearer_auth(&t)
        .body(body.clone())
        .send()
        .await
        .unwrap();
    for (range, a, b) in [
        ("bytes=0-0", 0, 0),
        ("bytes=65535-65536", 65_535, 65_536),
        ("bytes=131072-", 131_072, size - 1),
        ("bytes=-100", size - 100, size - 1),
        ("bytes=100000-200000", 100_000, 200_000),
    ] {
        let resp = g
            .client
            .get(g.url("/exports/r.bin"))
            .bearer_auth(&t)
            .header("range", range)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT, "{range}");
        assert_eq!(
            resp.headers()["content-range"],
            format!("bytes {a}-{b}/{size}").as_str()
        );
        assert_eq!(
            resp.bytes().await.unwrap().as_ref(),
            &body[a..=b],
            "{range}"
        );
    }
    let resp = g
        .client
        .get(g.url("/exports/r.bin"))
        .bearer_auth(&t)
        .header("range", format!("bytes={size}-"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(
        resp.headers()["content-range"],
        format!("bytes */{size}").as_str(),
        "the plaintext size"
    );
    g.stop().await;
}

async fn tampered_segment_aborts_the_body(backend: Backend) {
    let g = gw(backend).await;
    let t = g.token("full").await;
    let body = pattern(4 * 65_536);
    g.client
        .put(g.url("/exports/t.bin"))
        .bearer_auth(&t)
        .body(body.clone())
        .send()
        .await
        .unwrap();
    let (mut stored, meta) = g.store_get("t.bin").await;
    // Flip one bit inside the third segment's ciphertext.
    let at = stored.len() / 2 + 1000;
    stored[at] ^= 0x01;
    g.store_put("t.bin", stored, meta.metadata).await;
    // HTTP/1.1, so headers and the authenticated prefix arrive before the abort (over h2 the
    // stream reset may overtake them); the h2 abort is a RST_STREAM either way.
    let h1 = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(g.ca_pem.as_bytes()).unwrap()])
        .http1_only()
        .build()
        .unwrap();
    let resp = h1
        .get(g.url("/exports/t.bin"))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        StatusCode::OK,
        "the failure comes after headers"
    );
    let rid = resp.headers()["x-amz-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    let mut got = Vec::new();
    let mut stream = resp.bytes_stream();
    let mut aborted = false;
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(c) => got.extend_from_slice(&c),
            Err(_) => {
                aborted = true;
                break;
            }
        }
    }
    assert!(aborted, "the body must be aborted, never ended cleanly");
    assert!(got.len() < body.len());
    assert_eq!(
        got.len() % 65_536,
        0,
        "only whole authenticated segments went out"
    );
    assert_eq!(&got[..], &body[..got.len()], "and they are the right bytes");
    // The trail says why: the object failed authentication, not a client that went away.
    let ev = g.audit_event(&rid).await;
    assert_eq!(
        (&ev["reason"], &ev["decision"], &ev["aborted"]),
        (
            &serde_json::json!("object_integrity_failed"),
            &serde_json::json!("deny"),
            &serde_json::json!(true)
        ),
        "{ev}"
    );
    g.stop().await;
}

async fn moved_or_plaintext_objects_are_refused(backend: Backend) {
    let g = gw(backend).await;
    let t = g.token("full").await;
    let body = pattern(70_000);
    g.client
        .put(g.url("/exports/a.bin"))
        .bearer_auth(&t)
        .body(body.clone())
        .send()
        .await
        .unwrap();
    let (stored, meta) = g.store_get("a.bin").await;
    // The same ciphertext and metadata under another key: the binding to the key refuses it.
    g.store_put("b.bin", stored, meta.metadata).await;
    let resp = g
        .client
        .get(g.url("/exports/b.bin"))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let text = resp.text().await.unwrap();
    assert!(
        !text.contains("gatehouse-") && !text.contains("commitment"),
        "{text}"
    );
    // A plaintext object in an envelope share is not served.
    g.store_put("plain.bin", b"not encrypted".to_vec(), Default::default())
        .await;
    let resp = g
        .client
        .get(g.url("/exports/plain.bin"))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
    // The original is still fine.
    let resp = g
        .client
        .get(g.url("/exports/a.bin"))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.bytes().await.unwrap().as_ref(), &body[..]);
    g.stop().await;
}

/// Fail closed: with the key service unreachable, uploads are refused before anything is
/// stored, and reads of existing objects are refused too.
#[tokio::test]
async fn unreachable_kms_refuses_requests() {
    let g = Gateway::start(Setup {
        backend: Backend::Fs,
        encrypt: true,
        gateway_extra: "[token_limits]\nper_ip = \"10000/s\"\n[key_service]\ntype = \"kms\"\nregion = \"us-east-1\"\nendpoint_url = \"http://127.0.0.1:9\"\nkey_id = \"alias/none\"\n",
        ..Setup::default()
    })
    .await;
    let t = g.token("full").await;
    let resp = g
        .client
        .put(g.url("/exports/x.bin"))
        .bearer_auth(&t)
        .body("secret")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    let rid = resp.headers()["x-amz-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(
        g.audit_event(&rid).await["reason"],
        "key_service_unavailable"
    );
    let resp = g
        .client
        .get(g.url("/exports/x.bin"))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND, "nothing was stored");
    g.stop().await;
}
