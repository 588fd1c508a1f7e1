//! End to end: the token exchange refusals a partner meets that no other test pins. Delegation
//! (`actor_token`, `actor_token_type`) and token types gatehouse does not take are refused
//! with `400 invalid_request` and their own audit reason, while the same request without the
//! offending parameter is served; and an access token got through federation stops working
//! once a reload removes the partner's `[federation]` or points it at another issuer, while
//! the partner's key-based tokens keep working.
//!
//! The identity provider's keys are a JWKS file (an absolute path in the partner file), so
//! nothing is fetched over the network.

mod common;

use std::collections::BTreeMap;

use common::idp::IdpKey;
use common::{Gateway, Setup, request_id, s3_code};
use serde_json::{Value, json};

const EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const JWT_TYPE: &str = "urn:ietf:params:oauth:token-type:jwt";
const ID_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:id_token";
const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
const ISSUER: &str = "https://login.idp.test/";
const OTHER_ISSUER: &str = "https://login.other-idp.test/";
const AUDIENCE: &str = "gatehouse-client";
const OBJECT: &str = "/exports/open/readme.txt";

/// A login of `alice@partner` at the IdP, signed with `key`.
fn login(key: &IdpKey) -> String {
    let now = jiff::Timestamp::now().as_second();
    let claims = json!({"iss": ISSUER, "aud": AUDIENCE, "sub": "alice@partner",
                        "iat": now, "exp": now + 600, "amr": ["pwd"]});
    key.sign(&claims)
}

/// A gateway whose one partner, `acme`, federates with the test IdP (`[federation]` is the
/// last table of its partner file before its keys) and may read `exports/open/`.
struct Fixture {
    g: Gateway,
    key: IdpKey,
    /// The partner file's `[federation]` table, as written.
    federation: String,
    _jwks_dir: tempfile::TempDir,
}

async fn fixture() -> Fixture {
    let key = IdpKey::new("k1");
    let jwks_dir = tempfile::tempdir().unwrap();
    let jwks = jwks_dir.path().join("idp.jwks");
    std::fs::write(&jwks, json!({ "keys": [key.jwk] }).to_string()).unwrap();
    let federation = format!(
        "[federation]\nissuer = \"{ISSUER}\"\naudience = \"{AUDIENCE}\"\njwks = \"{}\"\n",
        jwks.display()
    );
    let grants = format!(
        "[[grants]]\nshare = \"exports\"\nprefix = \"open/\"\nactions = [\"read\"]\n{federation}"
    );
    let g = Gateway::start(Setup {
        partners: vec![("acme", "active", Box::leak(grants.into_boxed_str()))],
        ..Setup::default()
    })
    .await;
    g.store_put("open/readme.txt", b"hi".to_vec(), BTreeMap::new())
        .await;
    Fixture {
        g,
        key,
        federation,
        _jwks_dir: jwks_dir,
    }
}

/// POSTs a token exchange of `subject_token` for `acme` with `extra` parameters; gives
/// status, JSON body and request id.
async fn exchange(
    f: &Fixture,
    subject_token: &str,
    extra: &[(&str, &str)],
) -> (u16, Value, String) {
    let g = &f.g;
    let mut form = vec![
        ("grant_type", EXCHANGE),
        ("subject_token", subject_token),
        ("subject_token_type", JWT_TYPE),
        ("external_id", g.partner("acme").external_id.as_str()),
    ];
    // A parameter given in `extra` replaces the default of the same name.
    form.retain(|(name, _)| extra.iter().all(|(n, _)| n != name));
    form.extend_from_slice(extra);
    g.token_request_id(&form).await
}

/// Exchanges with `extra` and expects an access token for `acme` that reads the object.
async fn expect_served(f: &Fixture, extra: &[(&str, &str)]) -> String {
    let (status, body, id) = exchange(f, &login(&f.key), extra).await;
    assert_eq!(status, 200, "{extra:?}: {body}");
    assert_eq!(body["issued_token_type"], ACCESS_TOKEN_TYPE, "{body}");
    let event = f.g.audit_event(&id).await;
    assert_eq!(
        (event["kind"].as_str(), event["reason"].as_str()),
        (Some("token"), Some("token_exchanged")),
        "{event}"
    );
    let token = body["access_token"].as_str().unwrap().to_owned();
    let resp = f.g.get(&token, OBJECT).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), "hi");
    token
}

/// Exchanges a valid login with `extra` and expects `400 invalid_request` whose description
/// names `names` and repeats none of the values sent, with no token, audited as a refused
/// `token` event with `reason`.
async fn expect_refused(f: &Fixture, extra: &[(&str, &str)], names: &str, reason: &str) {
    let (status, body, id) = exchange(f, &login(&f.key), extra).await;
    assert_eq!(status, 400, "{extra:?}: {body}");
    let fields: Vec<&String> = body.as_object().unwrap().keys().collect();
    assert_eq!(fields, ["error", "error_description"], "no token: {body}");
    assert_eq!(body["error"], "invalid_request", "{body}");
    let desc = body["error_description"].as_str().unwrap();
    assert!(desc.contains(names), "{names:?} not in {desc:?}");
    for (_, value) in extra {
        assert!(!desc.contains(value), "{desc:?} repeats {value:?}");
    }
    let event = f.g.audit_event(&id).await;
    assert_eq!(event["kind"], "token", "{event}");
    assert_eq!(event["decision"], "deny", "{event}");
    assert_eq!(event["reason"], reason, "{extra:?}: {event}");
    assert!(event.get("session_id").is_none(), "no session: {event}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delegation_with_an_actor_token_is_refused() {
    let f = fixture().await;
    expect_served(&f, &[]).await;
    let actor = login(&f.key);
    for extra in [
        &[
            ("actor_token", actor.as_str()),
            ("actor_token_type", JWT_TYPE),
        ][..],
        &[("actor_token", actor.as_str())],
        &[("actor_token_type", JWT_TYPE)],
    ] {
        expect_refused(&f, extra, "actor_token", "actor_token_unsupported").await;
    }
    f.g.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subject_token_type_other_than_jwt_or_id_token_is_refused() {
    let f = fixture().await;
    expect_served(&f, &[("subject_token_type", JWT_TYPE)]).await;
    expect_served(&f, &[("subject_token_type", ID_TOKEN_TYPE)]).await;
    for other in [
        ACCESS_TOKEN_TYPE,
        "urn:ietf:params:oauth:token-type:saml2",
        "urn:ietf:params:oauth:token-type:refresh_token",
    ] {
        let extra = [("subject_token_type", other)];
        expect_refused(&f, &extra, "subject_token_type", "unsupported_token_type").await;
    }
    f.g.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_requested_token_type_other_than_access_token_is_refused() {
    let f = fixture().await;
    expect_served(&f, &[("requested_token_type", ACCESS_TOKEN_TYPE)]).await;
    for other in [
        JWT_TYPE,
        ID_TOKEN_TYPE,
        "urn:ietf:params:oauth:token-type:refresh_token",
    ] {
        let extra = [("requested_token_type", other)];
        expect_refused(&f, &extra, "requested_token_type", "unsupported_token_type").await;
    }
    f.g.stop().await;
}

/// Rewrites acme's partner file with `from` replaced by `to` (write-then-rename) and reloads
/// through the admin listener, expecting the reload to apply.
async fn edit_and_reload(g: &Gateway, from: &str, to: &str) {
    let path = g.config_path.parent().unwrap().join("partners/acme.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(from), "{from:?} not in {text}");
    let tmp = path.with_extension("toml.tmp");
    std::fs::write(&tmp, text.replacen(from, to, 1)).unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    let admin_token = std::fs::read_to_string(&g.state.config.admin.token_file).unwrap();
    let resp = reqwest::Client::new()
        .post(format!("http://{}/reload", g.admin_addr))
        .bearer_auth(admin_token.trim())
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap();
    assert_eq!((status, &body["reloaded"]), (200, &json!(true)), "{body}");
    assert_eq!(body["restart_needed"], json!([]), "{body}");
}

/// A data request with a federated token whose `[federation]` is gone: `401 InvalidToken`
/// (as `docs/audit.md` lists for every `partner_*` bearer refusal), the request id in the
/// body, nothing internal, audited with `partner_federation_removed` under the token's
/// partner.
async fn expect_federation_removed(g: &Gateway, token: &str) {
    let resp = g.get(token, OBJECT).await;
    let status = resp.status().as_u16();
    let id = request_id(&resp);
    let text = resp.text().await.unwrap();
    assert_eq!(status, 401, "{text}");
    assert_eq!(s3_code(&text), "InvalidToken", "{text}");
    assert!(
        text.contains(&format!("<RequestId>{id}</RequestId>")),
        "{text}"
    );
    for internal in [
        "partner_federation_removed",
        "federation",
        ISSUER,
        OTHER_ISSUER,
        "acme",
    ] {
        assert!(!text.contains(internal), "{internal:?} in {text}");
    }
    let event = g.audit_event(&id).await;
    assert_eq!(event["kind"], "request", "{event}");
    assert_eq!(event["decision"], "deny", "{event}");
    assert_eq!(event["reason"], "partner_federation_removed", "{event}");
    // The token is authentic (the gateway signed it): the refusal is on record under its
    // partner, for the SOC to see whose it was; not under its session, so it still counts as
    // an unauthenticated refusal (flood budget, alert baselines).
    assert_eq!(event["partner"], "acme", "{event}");
    assert!(event.get("session_id").is_none(), "{event}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_federated_token_is_refused_once_its_issuer_is_changed_by_a_reload() {
    let f = fixture().await;
    let federated = expect_served(&f, &[]).await;
    edit_and_reload(
        &f.g,
        &format!("issuer = \"{ISSUER}\""),
        &format!("issuer = \"{OTHER_ISSUER}\""),
    )
    .await;
    expect_federation_removed(&f.g, &federated).await;
    // The partner itself is still in good standing: its key-based tokens read the object.
    let keyed = f.g.token("acme").await;
    assert_eq!(f.g.get(&keyed, OBJECT).await.status(), 200);
    f.g.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_federated_token_is_refused_once_its_federation_is_removed_by_a_reload() {
    let f = fixture().await;
    let federated = expect_served(&f, &[]).await;
    let keyed = f.g.token("acme").await;
    edit_and_reload(&f.g, &f.federation, "").await;
    expect_federation_removed(&f.g, &federated).await;
    // Only federated sessions end: the key-based one keeps reading.
    assert_eq!(f.g.get(&keyed, OBJECT).await.status(), 200);
    // And no new token can be had by exchange.
    let (status, body, _) = exchange(&f, &login(&f.key), &[]).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.get("access_token").is_none(), "{body}");
    f.g.stop().await;
}
