//! End to end: access conditions, rate limits and token-endpoint limits as a partner meets
//! them through the running gateway (issue 3). Pure policy edge cases (DST, IPv6, window
//! edges) are unit-tested in src/policy.

mod common;

use common::{Gateway, LOOSE_TOKEN_LIMITS, Setup};
use reqwest::StatusCode;

const PARTNERS: &[(&str, &str, &str)] = &[
    (
        "full",
        "active",
        r#"
[[grants]]
share = "exports"
prefix = ""
actions = ["read", "list", "write", "delete"]
"#,
    ),
    (
        "faraway",
        "active",
        r#"allow_cidrs = ["10.0.0.0/8", "2001:db8::/32"]
[[grants]]
share = "exports"
prefix = ""
actions = ["read", "list"]
"#,
    ),
    (
        "local",
        "active",
        r#"allow_cidrs = ["127.0.0.0/8", "::1/128"]
[[deny]]
share = "exports"
prefix = "private/"
[[grants]]
share = "exports"
prefix = ""
actions = ["read", "list"]
max_classification = "internal"
"#,
    ),
    (
        "limited",
        "active",
        r#"
[rate_limits]
requests = "2/m"
burst = 2
[[grants]]
share = "exports"
prefix = ""
actions = ["read"]
"#,
    ),
    (
        "closing",
        "active",
        r#"
[[grants]]
share = "exports"
prefix = ""
actions = ["read"]
valid_until = "VALID_UNTIL"
"#,
    ),
];

async fn start(gateway_extra: &'static str) -> Gateway {
    let until = (jiff::Timestamp::now() + jiff::SignedDuration::from_secs(120)).to_string();
    let partners: Vec<(&'static str, &'static str, &'static str)> = PARTNERS
        .iter()
        .map(|(id, st, g)| {
            (
                *id,
                *st,
                &*Box::leak(g.replace("VALID_UNTIL", &until).into_boxed_str()),
            )
        })
        .collect();
    Gateway::start(Setup {
        partners,
        gateway_extra,
        ..Setup::default()
    })
    .await
}

async fn seed(g: &Gateway, key: &str, classification: Option<&str>) {
    let meta = classification
        .map(|c| ("classification".to_string(), c.to_string()))
        .into_iter()
        .collect();
    g.store_put(key, b"data".to_vec(), meta).await;
}

#[tokio::test]
async fn source_network_is_enforced_and_named() {
    let g = start(LOOSE_TOKEN_LIMITS).await;
    seed(&g, "report.csv", Some("public")).await;
    let t = g.token("faraway").await;
    let resp = g.get(&t, "/exports/report.csv").await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let rid = resp.headers()["x-amz-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    let body = resp.text().await.unwrap();
    assert_eq!(common::s3_code(&body), "AccessDenied");
    assert!(
        body.contains("ip_not_allowed"),
        "session-level reasons are shown: {body}"
    );
    assert!(!body.contains("data"), "{body}");
    assert_eq!(g.audit_event(&rid).await["reason"], "ip_not_allowed");
    // From an allowed network the same object is served.
    let t = g.token("local").await;
    let resp = g.get(&t, "/exports/report.csv").await;
    assert_eq!(resp.status(), StatusCode::OK);
    g.stop().await;
}

#[tokio::test]
async fn classification_ceiling_and_explicit_deny_look_like_missing_keys() {
    let g = start(LOOSE_TOKEN_LIMITS).await;
    seed(&g, "open.csv", Some("internal")).await;
    seed(&g, "secret.csv", Some("confidential")).await;
    seed(&g, "unlabelled.csv", None).await;
    seed(&g, "private/p.csv", Some("public")).await;
    let t = g.token("local").await;
    let get = |k: &'static str| {
        let (g, t) = (&g, &t);
        async move {
            let resp = g.get(t, &format!("/exports/{k}")).await;
            let rid = resp.headers()["x-amz-request-id"]
                .to_str()
                .unwrap()
                .to_string();
            (resp.status(), resp.text().await.unwrap(), rid)
        }
    };
    assert_eq!(get("open.csv").await.0, StatusCode::OK);
    for (key, reason) in [
        ("secret.csv", "classification_exceeded"),
        ("unlabelled.csv", "classification_exceeded"),
        ("private/p.csv", "explicitly_denied"),
    ] {
        let (status, body, rid) = get(key).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{key}");
        assert_eq!(common::s3_code(&body), "NoSuchKey", "{key}");
        assert!(
            !body.contains(reason),
            "object-level reasons stay internal: {body}"
        );
        assert_eq!(g.audit_event(&rid).await["reason"], reason, "{key}");
    }
    // HEAD says the same thing GET does, and a range cannot probe the size.
    let resp = g
        .client
        .head(g.url("/exports/secret.csv"))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    let resp = g
        .client
        .get(g.url("/exports/secret.csv"))
        .bearer_auth(&t)
        .header("range", "bytes=100-")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    // Denied prefixes never show up in listings.
    let list = g
        .get(&t, "/exports?list-type=2")
        .await
        .text()
        .await
        .unwrap();
    assert!(
        list.contains("open.csv") && !list.contains("private/"),
        "{list}"
    );
    g.stop().await;
}

#[tokio::test]
async fn partners_cannot_set_reserved_metadata() {
    let g = start(LOOSE_TOKEN_LIMITS).await;
    let t = g.token("full").await;
    let resp = g
        .client
        .put(g.url("/exports/x.csv"))
        .bearer_auth(&t)
        .header("x-amz-meta-classification", "public")
        .body("a")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let resp = g.get(&t, "/exports/x.csv").await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    g.stop().await;
}

#[tokio::test]
async fn request_rate_limit_answers_slow_down_with_retry_after() {
    let g = start(LOOSE_TOKEN_LIMITS).await;
    seed(&g, "a.txt", Some("public")).await;
    let t = g.token("limited").await;
    for _ in 0..2 {
        let resp = g.get(&t, "/exports/a.txt").await;
        assert_eq!(resp.status(), StatusCode::OK);
    }
    let resp = g.get(&t, "/exports/a.txt").await;
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    let retry: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=30).contains(&retry), "{retry}");
    let body = resp.text().await.unwrap();
    assert_eq!(common::s3_code(&body), "SlowDown");
    assert!(body.contains("rate_limited"), "{body}");
    // Another partner is not affected.
    let other = g.token("full").await;
    let resp = g.get(&other, "/exports/a.txt").await;
    assert_eq!(resp.status(), StatusCode::OK);
    g.stop().await;
}

#[tokio::test]
async fn tokens_never_outlive_the_grant_that_justified_them() {
    let g = start(LOOSE_TOKEN_LIMITS).await;
    let assertion = g.assertion("closing");
    let (status, body) = g
        .token_request(&[
            ("grant_type", "client_credentials"),
            ("client_id", "closing"),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", &assertion),
            ("external_id", &g.partner("closing").external_id),
        ])
        .await;
    assert_eq!(status, 200, "{body}");
    let expires_in = body["expires_in"].as_u64().unwrap();
    assert!(
        (60..=120).contains(&expires_in),
        "capped by the grant's valid_until: {expires_in}"
    );
    g.stop().await;
}

#[tokio::test]
async fn token_endpoint_locks_out_a_pair_after_failures() {
    let g = start("[token_limits]\nper_ip = \"10000/s\"\nlockout_after = 3\nlockout_window = \"1m\"\nlockout_for = \"1m\"\n").await;
    let ext = g.partner("full").external_id.clone();
    let form = |assertion: String, ext: String| {
        vec![
            ("grant_type", "client_credentials".to_string()),
            ("client_id", "full".to_string()),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".to_string(),
            ),
            ("client_assertion", assertion),
            ("external_id", ext),
        ]
    };
    for _ in 0..3 {
        let f = form(g.assertion("full"), "wrong-external-id-xxxx".into());
        let resp = g
            .client
            .post(g.url("/v1/token"))
            .form(&f)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    }
    // Now even a correct request from this address is refused, without checking it.
    let resp = g
        .client
        .post(g.url("/v1/token"))
        .form(&form(g.assertion("full"), ext))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(resp.headers().contains_key("retry-after"));
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "temporarily_unavailable");
    // Other partners from the same address are not locked.
    assert!(!g.token("local").await.is_empty());
    g.stop().await;
}

#[tokio::test]
async fn token_endpoint_limits_requests_per_client_ip() {
    let g = start("[token_limits]\nper_ip = \"3/m\"\nper_ip_burst = 3\n").await;
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let f = [("grant_type", "client_credentials")];
        statuses.push(
            g.client
                .post(g.url("/v1/token"))
                .form(&f)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16(),
        );
    }
    assert_eq!(statuses, [400, 400, 400, 429, 429]);
    g.stop().await;
}

async fn start_with_listener(listener: &'static str) -> Gateway {
    Gateway::start(Setup {
        partners: PARTNERS[..3].to_vec(),
        listener,
        ..Setup::default()
    })
    .await
}

async fn status_with_xff(g: &Gateway, token: &str, xff: &str) -> (u16, String) {
    let resp = g
        .client
        .get(g.url("/exports/a.txt"))
        .bearer_auth(token)
        .header("x-forwarded-for", xff)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let rid = resp.headers()["x-amz-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    (
        status,
        g.audit_event(&rid).await["client_ip"]
            .as_str()
            .unwrap()
            .to_string(),
    )
}

#[tokio::test]
async fn forwarded_for_is_believed_only_from_trusted_proxies() {
    // No trusted proxies: a forged header changes nothing.
    let g = start_with_listener("").await;
    seed(&g, "a.txt", Some("public")).await;
    let t = g.token("faraway").await;
    assert_eq!(
        status_with_xff(&g, &t, "10.1.2.3").await,
        (403, "127.0.0.1".to_string())
    );
    g.stop().await;

    // Loopback is a trusted proxy: the right-most untrusted hop is the client.
    let g = start_with_listener("trusted_proxies = [\"127.0.0.1/32\"]").await;
    seed(&g, "a.txt", Some("public")).await;
    let t = g.token("faraway").await;
    assert_eq!(
        status_with_xff(&g, &t, "10.1.2.3").await,
        (200, "10.1.2.3".to_string())
    );
    // A client-chosen left part cannot get past what the proxy appended.
    assert_eq!(
        status_with_xff(&g, &t, "10.6.6.6, 192.0.2.1").await,
        (403, "192.0.2.1".to_string())
    );
    assert_eq!(
        status_with_xff(&g, &t, "2001:db8::9").await,
        (200, "2001:db8::9".to_string())
    );
    g.stop().await;
}

#[tokio::test]
async fn proxy_protocol_v2_from_a_trusted_peer_sets_the_client() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let g =
        start_with_listener("trusted_proxies = [\"127.0.0.1/32\"]\nproxy_protocol = true").await;
    seed(&g, "a.txt", Some("public")).await;
    let t = g.token_via_proxy("faraway", "10.9.9.9").await;
    let mut tls = g.raw_connect_via_proxy("10.9.9.9").await;
    let req = format!(
        "GET /exports/a.txt HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {t}\r\nconnection: close\r\n\r\n"
    );
    tls.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    tls.read_to_string(&mut out).await.unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    // A trusted peer that sends no PROXY header is cut off (its TLS hello is not a header).
    let tcp = tokio::net::TcpStream::connect(g.addr).await.unwrap();
    assert!(g.tls_over(tcp).await.is_err());
    g.stop().await;
}

/// A token minted before a grant's `valid_until` stops working at `valid_until`, even inside
/// the token's clock-skew leeway: every request re-checks the grant.
#[tokio::test]
async fn access_ends_at_valid_until_mid_session() {
    let until = (jiff::Timestamp::now() + jiff::SignedDuration::from_secs(6)).to_string();
    let grants: &'static str = Box::leak(
        format!("[[grants]]\nshare = \"exports\"\nprefix = \"\"\nactions = [\"read\"]\nvalid_until = \"{until}\"\n").into_boxed_str(),
    );
    let g = Gateway::start(Setup {
        partners: vec![("brief", "active", grants)],
        ..Setup::default()
    })
    .await;
    seed(&g, "a.txt", Some("public")).await;
    let t = g.token("brief").await;
    let resp = g.get(&t, "/exports/a.txt").await;
    assert_eq!(resp.status(), StatusCode::OK);
    // Wait until just past valid_until, however long the start took.
    let left = until
        .parse::<jiff::Timestamp>()
        .unwrap()
        .duration_since(jiff::Timestamp::now());
    tokio::time::sleep(
        std::time::Duration::try_from(left).unwrap_or_default()
            + std::time::Duration::from_millis(500),
    )
    .await;
    let resp = g.get(&t, "/exports/a.txt").await;
    let status = resp.status();
    let body = resp.text().await.unwrap();
    assert!(
        status == StatusCode::FORBIDDEN || status == StatusCode::UNAUTHORIZED,
        "{status}: {body}"
    );
    assert!(
        body.contains("access_expired") || common::s3_code(&body) == "ExpiredToken",
        "{body}"
    );
    g.stop().await;
}
