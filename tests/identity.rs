//! End to end: the token endpoint's refusals and the bearer checks on data requests.

mod common;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{Gateway, Setup};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;

const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

async fn start() -> Gateway {
    Gateway::start(Setup::default()).await
}

fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}

/// Signs arbitrary assertion claims with the partner's real key.
fn assertion_with(g: &Gateway, id: &str, claims: serde_json::Value) -> String {
    let p = g.partner(id);
    let key = EncodingKey::from_ed_pem(p.key_pem.as_bytes()).unwrap();
    let mut h = Header::new(Algorithm::EdDSA);
    h.kid = Some(p.key_id.clone());
    jsonwebtoken::encode(&h, &claims, &key).unwrap()
}

fn claims(g: &Gateway, id: &str, exp_in: i64) -> serde_json::Value {
    json!({"iss": id, "sub": id, "aud": g.url("/v1/token"), "iat": now(), "exp": now() + exp_in, "jti": ulid::Ulid::new().to_string()})
}

async fn request(
    g: &Gateway,
    id: &str,
    assertion: &str,
    external_id: &str,
) -> (u16, serde_json::Value) {
    g.token_request(&[
        ("grant_type", "client_credentials"),
        ("client_id", id),
        ("client_assertion_type", ASSERTION_TYPE),
        ("client_assertion", assertion),
        ("external_id", external_id),
    ])
    .await
}

async fn last_token_reason(g: &Gateway) -> String {
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let lines = g.audit_lines(0).await;
    let ev = lines
        .iter()
        .rev()
        .find(|l| l["kind"] == "token")
        .expect("a token event");
    ev["reason"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn token_endpoint_refusals() {
    let g = start().await;
    let ext = g.partner("acme").external_id.clone();

    // The happy path answers per RFC 6749 §5.1 and is never cached.
    let resp = g
        .client
        .post(g.url("/v1/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "acme"),
            ("client_assertion_type", ASSERTION_TYPE),
            ("client_assertion", &g.assertion("acme")),
            ("external_id", &ext),
            ("scope", "exports"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    // The session start on record: what was asked, what was granted, how it authenticated,
    // over which TLS.
    let start = g.audit_event(&common::request_id(&resp)).await;
    assert_eq!(start["requested_scopes"], serde_json::json!(["exports"]));
    assert_eq!(start["scopes"], serde_json::json!(["exports"]));
    assert_eq!(start["amr"], serde_json::json!(["pop"]));
    assert!(
        start.get("idp").is_none(),
        "a client assertion, no identity provider"
    );
    assert!(
        start["tls"]["version"]
            .as_str()
            .is_some_and(|v| v.starts_with("TLS"))
    );
    assert!(start["expires_in"].as_u64().is_some_and(|s| s > 0));
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert!(body["expires_in"].as_u64().unwrap() <= 900);
    assert!(body["session_id"].as_str().is_some());

    // Signed by another partner's key.
    let forged = {
        let other = g.partner("full");
        let key = EncodingKey::from_ed_pem(other.key_pem.as_bytes()).unwrap();
        let mut h = Header::new(Algorithm::EdDSA);
        h.kid = Some(g.partner("acme").key_id.clone());
        jsonwebtoken::encode(&h, &claims(&g, "acme", 60), &key).unwrap()
    };
    let (status, body) = request(&g, "acme", &forged, &ext).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client"))
    );
    assert_eq!(last_token_reason(&g).await, "bad_assertion_signature");

    // Wrong external id: same client-facing answer, its own audit reason.
    let (status, body2) = request(&g, "acme", &g.assertion("acme"), "wrong-external-id-0000").await;
    assert_eq!((status, &body2), (401, &body));
    assert_eq!(last_token_reason(&g).await, "wrong_external_id");

    // Expired assertion, and one that asks to live too long.
    let expired = assertion_with(
        &g,
        "acme",
        json!({"iss": "acme", "sub": "acme", "aud": g.url("/v1/token"), "iat": now() - 600, "exp": now() - 300, "jti": "e1"}),
    );
    let (status, _) = request(&g, "acme", &expired, &ext).await;
    assert!(status == 400 || status == 401, "{status}");
    assert_eq!(last_token_reason(&g).await, "assertion_expired");
    let (status, _) = request(
        &g,
        "acme",
        &assertion_with(&g, "acme", claims(&g, "acme", 3600)),
        &ext,
    )
    .await;
    assert!(status == 400 || status == 401);

    // Wrong audience.
    let mut c = claims(&g, "acme", 60);
    c["aud"] = json!("https://elsewhere.example/v1/token");
    let (status, _) = request(&g, "acme", &assertion_with(&g, "acme", c), &ext).await;
    assert!(status == 400 || status == 401);

    // Replay: the same assertion twice.
    let once = g.assertion("acme");
    assert_eq!(request(&g, "acme", &once, &ext).await.0, 200);
    let (status, body) = request(&g, "acme", &once, &ext).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "invalid_grant");
    assert_eq!(last_token_reason(&g).await, "assertion_replayed");

    // Unknown and suspended partners.
    let (status, body) = request(&g, "nobody", &g.assertion("acme"), &ext).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client"))
    );
    assert_eq!(last_token_reason(&g).await, "unknown_partner");
    let dormant = g.partner("dormant").external_id.clone();
    let (status, _) = request(&g, "dormant", &g.assertion("dormant"), &dormant).await;
    assert!(status == 400 || status == 401);
    assert_eq!(last_token_reason(&g).await, "partner_suspended");

    // Wrong grant type and a GET are refused per RFC 6749 §5.2.
    let (status, body) = g
        .token_request(&[("grant_type", "password"), ("client_id", "acme")])
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("unsupported_grant_type"))
    );
    let resp = g.client.get(g.url("/v1/token")).send().await.unwrap();
    assert_eq!(resp.status(), 405);

    // A token scoped to a share the partner has no grant on is refused.
    let (status, body) = g
        .token_request(&[
            ("grant_type", "client_credentials"),
            ("client_id", "acme"),
            ("client_assertion_type", ASSERTION_TYPE),
            ("client_assertion", &g.assertion("acme")),
            ("external_id", &ext),
            ("scope", "other"),
        ])
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_scope"))
    );
    g.stop().await;
}

fn gateway_key(g: &Gateway) -> (EncodingKey, String) {
    let sk = &g.state.config.token.signing_keys[0];
    let pem = std::fs::read(&sk.file).unwrap();
    (EncodingKey::from_ed_pem(&pem).unwrap(), sk.id.clone())
}

fn access_claims(g: &Gateway, iat: i64, exp: i64) -> serde_json::Value {
    let cfg = &g.state.config.token;
    json!({"iss": cfg.issuer, "aud": cfg.audience, "sub": "full", "sid": "s-test", "jti": ulid::Ulid::new().to_string(),
           "iat": iat, "nbf": iat, "exp": exp, "scope": "exports", "amr": ["pop"], "pkid": "full-k1", "client_id": "full"})
}

async fn bearer_status(g: &Gateway, token: &str) -> (u16, String) {
    let resp = g
        .client
        .get(g.url("/exports/k"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let rid = resp.headers()["x-amz-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    let body = resp.text().await.unwrap();
    if status == 401 {
        assert!(body.contains("<RequestId>"), "{body}");
    }
    (
        status,
        g.audit_event(&rid).await["reason"]
            .as_str()
            .unwrap()
            .to_string(),
    )
}

#[tokio::test]
async fn bearer_refusals() {
    let g = start().await;
    let (key, kid) = gateway_key(&g);
    let sign = |claims: &serde_json::Value, kid: &str| {
        let mut h = Header::new(Algorithm::EdDSA);
        h.kid = Some(kid.to_string());
        h.typ = Some("at+jwt".into());
        jsonwebtoken::encode(&h, claims, &key).unwrap()
    };
    // A correctly forged-with-the-real-key token works: the harness is sound.
    let good = sign(&access_claims(&g, now(), now() + 300), &kid);
    assert_eq!(
        bearer_status(&g, &good).await,
        (404, "no_such_key".to_string())
    );

    let expired = sign(&access_claims(&g, now() - 3600, now() - 120), &kid);
    assert_eq!(
        bearer_status(&g, &expired).await,
        (401, "token_expired".to_string())
    );
    let mut future = access_claims(&g, now() + 600, now() + 900);
    future["iat"] = json!(now());
    assert_eq!(bearer_status(&g, &sign(&future, &kid)).await.0, 401);
    let mut aud = access_claims(&g, now(), now() + 300);
    aud["aud"] = json!("someone-else");
    assert_eq!(bearer_status(&g, &sign(&aud, &kid)).await.0, 401);
    let mut iss = access_claims(&g, now(), now() + 300);
    iss["iss"] = json!("https://evil.example");
    assert_eq!(bearer_status(&g, &sign(&iss, &kid)).await.0, 401);
    assert_eq!(
        bearer_status(
            &g,
            &sign(&access_claims(&g, now(), now() + 300), "no-such-kid")
        )
        .await
        .0,
        401
    );
    let mut suspended = access_claims(&g, now(), now() + 300);
    suspended["sub"] = json!("dormant");
    assert_eq!(bearer_status(&g, &sign(&suspended, &kid)).await.0, 401);

    // alg none.
    let none_header =
        URL_SAFE_NO_PAD.encode(json!({"alg": "none", "typ": "at+jwt", "kid": kid}).to_string());
    let payload = URL_SAFE_NO_PAD.encode(access_claims(&g, now(), now() + 300).to_string());
    assert_eq!(
        bearer_status(&g, &format!("{none_header}.{payload}."))
            .await
            .0,
        401
    );

    // HS256 keyed with the gateway's public key (PEM text and raw bytes).
    let jwks: serde_json::Value = g
        .client
        .get(g.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let x = jwks["keys"][0]["x"].as_str().unwrap().to_string();
    let public_raw = URL_SAFE_NO_PAD.decode(&x).unwrap();
    for secret in [public_raw.clone(), x.as_bytes().to_vec()] {
        let mut h = Header::new(Algorithm::HS256);
        h.kid = Some(kid.clone());
        h.typ = Some("at+jwt".into());
        let t = jsonwebtoken::encode(
            &h,
            &access_claims(&g, now(), now() + 300),
            &EncodingKey::from_secret(&secret),
        )
        .unwrap();
        assert_eq!(bearer_status(&g, &t).await.0, 401);
    }

    // Tampered payload: widen the scope after signing.
    let parts: Vec<&str> = good.split('.').collect();
    let mut c = access_claims(&g, now(), now() + 300);
    c["scope"] = json!("exports other");
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(c.to_string()),
        parts[2]
    );
    assert_eq!(
        bearer_status(&g, &tampered).await,
        (401, "token_bad_signature".to_string())
    );
    g.stop().await;
}

#[tokio::test]
async fn jwks_publishes_the_signing_key() {
    let g = start().await;
    let resp = g
        .client
        .get(g.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let jwks: serde_json::Value = resp.json().await.unwrap();
    let key = &jwks["keys"][0];
    assert_eq!(key["kid"], g.state.config.token.signing_keys[0].id.as_str());
    assert_eq!(key["kty"], "OKP");
    assert!(key.get("d").is_none(), "never the private part");
    g.stop().await;
}
