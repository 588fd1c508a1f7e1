//! End to end: RFC 8693 token exchange against a partner identity provider whose JWKS is
//! served over TLS on loopback (its own CA, trusted through the partner's `ca_file`), through
//! the real gateway: key rotation, unknown kids and the refetch cool-down (counted on the
//! JWKS server), every refusal looking alike, `amr` driving `require_mfa`, the lockout, and
//! `gatehouse check` refusing a shared issuer without a tenant claim.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use common::idp::IdpKey;
use common::{Gateway, LOOSE_TOKEN_LIMITS, Setup};
use http_body_util::Full;
use parking_lot::Mutex;
use serde_json::{Value, json};

const EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const JWT_TYPE: &str = "urn:ietf:params:oauth:token-type:jwt";
const ISSUER: &str = "https://login.idp.test/";
const AUDIENCE: &str = "gatehouse-client";
const REFUSED: &str = "the subject token or external id was not accepted";

/// The identity provider's JWKS endpoint: HTTPS on 127.0.0.1 with a certificate from its
/// own CA; each path serves its own document and counts its hits.
struct Idp {
    port: u16,
    ca_file: PathBuf,
    docs: Arc<Mutex<BTreeMap<String, Vec<u8>>>>,
    hits: Arc<Mutex<BTreeMap<String, Arc<AtomicU64>>>>,
    _dir: tempfile::TempDir,
}

impl Idp {
    async fn start() -> Idp {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
        let dir = tempfile::tempdir().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        let ca_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let cert = CertificateParams::new(vec!["127.0.0.1".to_owned()])
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
        let ca_file = dir.path().join("idp-ca.pem");
        std::fs::write(&ca_file, ca_cert.pem()).unwrap();
        std::fs::write(dir.path().join("idp.pem"), cert.pem()).unwrap();
        std::fs::write(dir.path().join("idp.key"), key.serialize_pem()).unwrap();
        let tls =
            gatehouse::tls::server_config(&dir.path().join("idp.pem"), &dir.path().join("idp.key"))
                .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let idp = Idp {
            port,
            ca_file,
            docs: Arc::default(),
            hits: Arc::default(),
            _dir: dir,
        };
        let (docs, hits) = (idp.docs.clone(), idp.hits.clone());
        tokio::spawn(async move {
            let acceptor = tokio_rustls::TlsAcceptor::from(tls);
            loop {
                let (tcp, _) = listener.accept().await.unwrap();
                let (acceptor, docs, hits) = (acceptor.clone(), docs.clone(), hits.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(move |req| {
                        let path = req.uri().path().to_owned();
                        if let Some(n) = hits.lock().get(&path) {
                            n.fetch_add(1, Ordering::SeqCst);
                        }
                        let doc = docs.lock().get(&path).cloned();
                        async move {
                            let resp = match doc {
                                Some(d) => http::Response::new(Full::new(bytes::Bytes::from(d))),
                                None => {
                                    let mut r = http::Response::new(Full::default());
                                    *r.status_mut() = http::StatusCode::NOT_FOUND;
                                    r
                                }
                            };
                            Ok::<_, std::convert::Infallible>(resp)
                        }
                    });
                    let io = hyper_util::rt::TokioIo::new(tls);
                    let _ = hyper_util::server::conn::auto::Builder::new(
                        hyper_util::rt::TokioExecutor::new(),
                    )
                    .serve_connection(io, service)
                    .await;
                });
            }
        });
        idp
    }

    /// Serves `keys` at `path` from now on.
    fn publish(&self, path: &str, keys: &[&IdpKey]) {
        let keys: Vec<&Value> = keys.iter().map(|k| &k.jwk).collect();
        let doc = serde_json::to_vec(&json!({ "keys": keys })).unwrap();
        self.docs.lock().insert(path.to_owned(), doc);
        self.hits.lock().entry(path.to_owned()).or_default();
    }

    fn hits(&self, path: &str) -> u64 {
        self.hits.lock()[path].load(Ordering::SeqCst)
    }

    fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.port)
    }

    /// A `[federation]` table for a partner of this IdP.
    fn federation(&self, path: &str, tenant: Option<&str>) -> String {
        let tenant = tenant
            .map(|t| format!("tenant_claim = \"tid\"\ntenant = \"{t}\"\n"))
            .unwrap_or_default();
        format!(
            "[federation]\nissuer = \"{ISSUER}\"\naudience = \"{AUDIENCE}\"\njwks = \"{}\"\nca_file = \"{}\"\n{tenant}mfa_acr = [\"urn:idp:acr:mfa\"]\n",
            self.url(path),
            self.ca_file.display()
        )
    }
}

/// Grants of every federated test partner: `open/` for anyone, `secret/` needs MFA.
const GRANTS: &str = r#"
[[grants]]
share = "exports"
prefix = "open/"
actions = ["read"]
[[grants]]
share = "exports"
prefix = "secret/"
actions = ["read"]
require_mfa = true
"#;

/// A gateway with partners `acme` (tenant `t-acme`, JWKS at `/acme`) and `beta` (tenant
/// `t-beta`, JWKS at `/beta`), both of the one issuer.
async fn gateway(idp: &Idp, token_limits: &'static str) -> Gateway {
    let partner = |path: &str, tenant: &str| -> &'static str {
        Box::leak(format!("{GRANTS}\n{}", idp.federation(path, Some(tenant))).into_boxed_str())
    };
    let g = Gateway::start(Setup {
        partners: vec![
            ("acme", "active", partner("/acme", "t-acme")),
            ("beta", "active", partner("/beta", "t-beta")),
        ],
        gateway_extra: token_limits,
        ..Setup::default()
    })
    .await;
    g.store_put("secret/plan.txt", b"top".to_vec(), BTreeMap::new())
        .await;
    g.store_put("open/readme.txt", b"hi".to_vec(), BTreeMap::new())
        .await;
    g
}

fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}

/// Claims of a login of tenant `tid` with `amr`.
fn login(tid: &str, amr: &[&str]) -> Value {
    json!({"iss": ISSUER, "aud": AUDIENCE, "sub": "alice@partner", "tid": tid,
           "iat": now(), "exp": now() + 600, "amr": amr})
}

/// A token exchange; gives status, JSON body and the request id.
async fn exchange(g: &Gateway, token: &str, partner: &str) -> (u16, Value, String) {
    exchange_with(g, token, &g.partner(partner).external_id, &[]).await
}

async fn exchange_with(
    g: &Gateway,
    token: &str,
    external_id: &str,
    extra: &[(&str, &str)],
) -> (u16, Value, String) {
    let mut form = vec![
        ("grant_type", EXCHANGE),
        ("subject_token", token),
        ("subject_token_type", JWT_TYPE),
        ("external_id", external_id),
    ];
    form.extend_from_slice(extra);
    g.token_request_id(&form).await
}

/// Exchanges and expects an access token.
async fn access_token(g: &Gateway, token: &str, partner: &str) -> String {
    let (status, body, _) = exchange(g, token, partner).await;
    assert_eq!(status, 200, "{body}");
    body["access_token"].as_str().unwrap().to_owned()
}

async fn reason(g: &Gateway, request_id: &str) -> String {
    g.audit_event(request_id).await["reason"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exchanged_tokens_carry_mfa_only_when_the_idp_saw_two_factors() {
    let idp = Idp::start().await;
    let key = IdpKey::new("k1");
    idp.publish("/acme", &[&key]);
    idp.publish("/beta", &[&key]);
    let g = gateway(&idp, LOOSE_TOKEN_LIMITS).await;

    let (status, body, id) =
        exchange(&g, &key.sign(&login("t-acme", &["pwd", "otp"])), "acme").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["issued_token_type"],
        "urn:ietf:params:oauth:token-type:access_token"
    );
    assert_eq!(body["token_type"], "Bearer");
    assert!(body["expires_in"].as_u64().unwrap() <= 600);
    let event = g.audit_event(&id).await;
    assert_eq!(event["reason"], "token_exchanged");
    assert_eq!(
        (event["partner"].as_str(), event["key_id"].as_str()),
        (Some("acme"), Some("k1"))
    );
    // The session's start names the identity provider and its authentication methods.
    assert_eq!(event["idp"], ISSUER);
    assert_eq!(event["amr"], serde_json::json!(["mfa", "otp", "pwd"]));
    let raw = g.audit_raw_lines(0).await;
    let line = raw
        .iter()
        .find(|l| l["metadata"]["uid"] == id.as_str())
        .unwrap();
    assert_eq!(
        line["class_uid"], 3002,
        "an OCSF Authentication event: {line}"
    );
    assert_eq!(line["session"]["issuer"], ISSUER);
    assert_eq!(line["is_mfa"], true);
    let mfa = body["access_token"].as_str().unwrap().to_owned();
    assert_eq!(g.get(&mfa, "/exports/secret/plan.txt").await.status(), 200);

    // Password only, or a possession factor alone: no second factor.
    for amr in [&["pwd"][..], &["otp"], &[]] {
        let single = access_token(&g, &key.sign(&login("t-acme", amr)), "acme").await;
        assert_eq!(
            g.get(&single, "/exports/open/readme.txt").await.status(),
            200
        );
        let resp = g.get(&single, "/exports/secret/plan.txt").await;
        assert_eq!(resp.status(), 403, "{amr:?}");
        assert!(resp.text().await.unwrap().contains("mfa_required"));
    }

    // An acr the partner file lists as MFA counts on its own.
    let mut by_acr = login("t-acme", &["pwd"]);
    by_acr["acr"] = json!("urn:idp:acr:mfa");
    let token = access_token(&g, &key.sign(&by_acr), "acme").await;
    assert_eq!(
        g.get(&token, "/exports/secret/plan.txt").await.status(),
        200
    );

    // A client-assertion token never claims a second factor.
    let (status, body) = g
        .token_request(&[
            ("grant_type", "client_credentials"),
            ("client_id", "acme"),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", &g.assertion("acme")),
            ("external_id", &g.partner("acme").external_id),
        ])
        .await;
    assert_eq!(status, 200);
    let pop = body["access_token"].as_str().unwrap();
    assert_eq!(g.get(pop, "/exports/secret/plan.txt").await.status(), 403);

    // The tenant decides the partner: beta's login gets a beta session.
    let (status, body, id) = exchange(&g, &key.sign(&login("t-beta", &["mfa"])), "beta").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(g.audit_event(&id).await["partner"], "beta");

    // The access token never outlives the subject token.
    let mut short = login("t-acme", &["mfa"]);
    short["exp"] = json!(now() + 120);
    let (_, body, _) = exchange(&g, &key.sign(&short), "acme").await;
    assert!(body["expires_in"].as_u64().unwrap() <= 120, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_refusal_answers_alike_with_its_own_audit_reason() {
    let idp = Idp::start().await;
    let (key, impostor) = (IdpKey::new("k1"), IdpKey::new("k1"));
    idp.publish("/acme", &[&key]);
    idp.publish("/beta", &[&key]);
    let g = gateway(&idp, LOOSE_TOKEN_LIMITS).await;
    let ext = g.partner("acme").external_id.clone();
    let good = login("t-acme", &["mfa"]);
    let with = |name: &str, value: Value| {
        let mut c = good.clone();
        c[name] = value;
        key.sign(&c)
    };
    let cases: Vec<(String, String, &str)> = vec![
        (
            with("iss", json!("https://evil.test/")),
            ext.clone(),
            "subject_token_unknown_issuer",
        ),
        (
            with("aud", json!("someone-else")),
            ext.clone(),
            "subject_token_wrong_audience",
        ),
        (
            with("exp", json!(now() - 3600)),
            ext.clone(),
            "subject_token_expired",
        ),
        (
            with("tid", json!("t-unknown")),
            ext.clone(),
            "subject_token_unknown_tenant",
        ),
        // beta's tenant with acme's external id: the token is beta's, the id is not.
        (
            with("tid", json!("t-beta")),
            ext.clone(),
            "wrong_external_id",
        ),
        (
            key.sign(&good),
            "not-the-external-id".to_owned(),
            "wrong_external_id",
        ),
        (
            impostor.sign(&good),
            ext.clone(),
            "subject_token_bad_signature",
        ),
        (
            key.sign_as("k-unknown", &good),
            ext.clone(),
            "subject_token_unknown_kid",
        ),
    ];
    for (token, external_id, expected) in cases {
        let (status, body, id) = exchange_with(&g, &token, &external_id, &[]).await;
        assert_eq!(status, 400, "{expected}: {body}");
        assert_eq!(
            body,
            json!({"error": "invalid_grant", "error_description": REFUSED}),
            "{expected}"
        );
        assert_eq!(reason(&g, &id).await, expected);
    }
    // Naming a client that is not the token's partner is refused the same way.
    let (status, body, id) =
        exchange_with(&g, &key.sign(&good), &ext, &[("client_id", "beta")]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    assert_eq!(reason(&g, &id).await, "client_id_mismatch");
    // Once authenticated, scope and target are checked.
    let (status, body, _) = exchange_with(
        &g,
        &key.sign(&good),
        &ext,
        &[("resource", "https://elsewhere.test")],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_target"))
    );
    let (status, body, _) = exchange_with(&g, &key.sign(&good), &ext, &[("scope", "other")]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_scope"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_key_is_fetched_when_its_kid_first_appears() {
    let idp = Idp::start().await;
    let (k1, k2) = (IdpKey::new("k1"), IdpKey::new("k2"));
    idp.publish("/acme", &[&k1]);
    idp.publish("/beta", &[&k1]);
    let g = gateway(&idp, LOOSE_TOKEN_LIMITS).await;

    access_token(&g, &k1.sign(&login("t-acme", &["mfa"])), "acme").await;
    access_token(&g, &k1.sign(&login("t-acme", &["mfa"])), "acme").await;
    assert_eq!(idp.hits("/acme"), 1, "the JWKS is cached");

    idp.publish("/acme", &[&k1, &k2]);
    access_token(&g, &k2.sign(&login("t-acme", &["mfa"])), "acme").await;
    access_token(&g, &k1.sign(&login("t-acme", &["mfa"])), "acme").await;
    assert_eq!(idp.hits("/acme"), 2, "one refetch for the new kid");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_unknown_kids_refetches_once_per_cooldown() {
    let idp = Idp::start().await;
    let (k1, k2) = (IdpKey::new("k1"), IdpKey::new("k2"));
    idp.publish("/acme", &[&k1]);
    idp.publish("/beta", &[&k1]);
    let g = gateway(&idp, LOOSE_TOKEN_LIMITS).await;
    access_token(&g, &k1.sign(&login("t-acme", &["mfa"])), "acme").await;
    assert_eq!(idp.hits("/acme"), 1);

    for i in 0..20 {
        let forged = k1.sign_as(&format!("invented-{i}"), &login("t-acme", &["mfa"]));
        let (status, body, id) = exchange(&g, &forged, "acme").await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_grant"))
        );
        assert_eq!(reason(&g, &id).await, "subject_token_unknown_kid");
    }
    assert_eq!(idp.hits("/acme"), 2, "one refetch for the whole flood");

    // Within the cool-down (5 minutes by default) even a genuine new key waits.
    idp.publish("/acme", &[&k1, &k2]);
    let (status, _, _) = exchange(&g, &k2.sign(&login("t-acme", &["mfa"])), "acme").await;
    assert_eq!(status, 400);
    assert_eq!(idp.hits("/acme"), 2);
    // Known keys keep working, and another partner's cache is its own.
    access_token(&g, &k1.sign(&login("t-acme", &["mfa"])), "acme").await;
    access_token(&g, &k1.sign(&login("t-beta", &["mfa"])), "beta").await;
    assert_eq!((idp.hits("/acme"), idp.hits("/beta")), (2, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_exchanges_lock_the_partner_out_from_that_address() {
    let idp = Idp::start().await;
    let key = IdpKey::new("k1");
    idp.publish("/acme", &[&key]);
    idp.publish("/beta", &[&key]);
    let g = gateway(
        &idp,
        "[token_limits]\nper_ip = \"10000/s\"\nlockout_after = 3\n",
    )
    .await;
    for _ in 0..3 {
        let (status, _, _) = exchange_with(
            &g,
            &key.sign(&login("t-acme", &["mfa"])),
            "wrong-external-id",
            &[],
        )
        .await;
        assert_eq!(status, 400);
    }
    let (status, body, id) = exchange(&g, &key.sign(&login("t-acme", &["mfa"])), "acme").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (429, Some("temporarily_unavailable"))
    );
    assert_eq!(reason(&g, &id).await, "locked_out");
    // Another partner of the same issuer is not locked out.
    access_token(&g, &key.sign(&login("t-beta", &["mfa"])), "beta").await;
}

#[test]
fn check_refuses_two_partners_of_one_issuer_without_a_tenant_claim() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let jwks = r#"{"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "k", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#;
    let fed = |tenant: &str| -> &'static str {
        Box::leak(
            format!("{GRANTS}\n[federation]\nissuer = \"{ISSUER}\"\naudience = \"{AUDIENCE}\"\njwks = \"keys/idp.jwks\"\n{tenant}")
                .into_boxed_str(),
        )
    };
    let setup = Setup {
        partners: vec![
            (
                "acme",
                "active",
                fed("tenant_claim = \"tid\"\ntenant = \"t-acme\"\n"),
            ),
            ("beta", "active", fed("")),
        ],
        ..Setup::default()
    };
    let p = common::Prepared::write(&setup, listener.local_addr().unwrap());
    let partners = p.config_path.parent().unwrap().join("partners");
    std::fs::write(partners.join("keys/idp.jwks"), jwks).unwrap();
    let run = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_gatehouse"))
            .args(["check", "--config"])
            .arg(&p.config_path)
            .output()
            .unwrap()
    };
    let out = run();
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    let issuer_line = |id: &str| {
        let text = std::fs::read_to_string(partners.join(format!("{id}.toml"))).unwrap();
        1 + text
            .lines()
            .position(|l| l.starts_with("issuer ="))
            .unwrap()
    };
    for (id, other) in [("acme", "beta"), ("beta", "acme")] {
        let at = format!("{id}.toml:{}: federation.issuer", issuer_line(id));
        assert!(err.contains(&at), "{at} in {err}");
        assert!(err.contains(&format!("partner \"{other}\"")), "{err}");
    }

    // With a tenant claim on both, the same files pass.
    let beta = partners.join("beta.toml");
    let text = std::fs::read_to_string(&beta).unwrap();
    let fixed = text.replace(
        "jwks = \"keys/idp.jwks\"\n",
        "jwks = \"keys/idp.jwks\"\ntenant_claim = \"tid\"\ntenant = \"t-beta\"\n",
    );
    std::fs::write(&beta, fixed).unwrap();
    let out = run();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// An identity provider whose keys cannot be fetched is the gateway's trouble, not the
/// caller's: 503 `temporarily_unavailable`, audited as `jwks_unavailable`, and never counted
/// towards a lockout (with `lockout_after = 3`, the fourth attempt is still not locked out).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_jwks_answers_503_and_locks_nobody_out() {
    let idp = Idp::start().await;
    let key = IdpKey::new("k1");
    // Nothing published at /acme: every JWKS fetch fails.
    idp.publish("/beta", &[&key]);
    let g = gateway(
        &idp,
        "[token_limits]\nper_ip = \"10000/s\"\nlockout_after = 3\n",
    )
    .await;
    for _ in 0..4 {
        let (status, body, id) = exchange(&g, &key.sign(&login("t-acme", &["mfa"])), "acme").await;
        assert_eq!(
            (status, body["error"].as_str()),
            (503, Some("temporarily_unavailable")),
            "{body}"
        );
        assert_eq!(reason(&g, &id).await, "jwks_unavailable");
    }
}
