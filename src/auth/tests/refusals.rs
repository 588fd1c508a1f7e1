//! Token endpoint refusals: every way a request can fail, with its audit reason, and the
//! guarantee that outsiders cannot tell an unknown partner from a bad key or external id.

use serde_json::json;

use super::*;
use crate::auth::endpoint::CLIENT_AUTH_FAILED;

/// Sends a token request for `client` with these assertion claims, signed by `key`/`kid`.
fn request(
    fx: &Fixture,
    client: &str,
    key: &TestKey,
    kid: Option<&str>,
    c: &Value,
) -> Result<Issued, TokenError> {
    let assertion = sign(key, kid, c);
    let ext = external_id(client);
    fx.authority()
        .token(&form(&params(client, &assertion, &ext)), now())
}

fn generic_client_failure(res: Result<Issued, TokenError>, reason: &str) -> TokenError {
    let err = assert_refused(res, 401, "invalid_client", reason);
    assert_eq!(err.description, CLIENT_AUTH_FAILED);
    err
}

#[test]
fn unknown_partner_bad_signature_and_wrong_external_id_look_identical() {
    let fx = Fixture::new();
    let auth = fx.authority();
    let ghost = request(&fx, "ghost", &fx.acme, Some("k1"), &claims("ghost"));
    let ghost = generic_client_failure(ghost, "unknown_partner");
    assert_eq!(ghost.partner.as_deref(), Some("ghost"));

    let stranger = ed25519();
    let bad_sig = request(&fx, "acme", &stranger, Some("k1"), &claims("acme"));
    let bad_sig = generic_client_failure(bad_sig, "bad_assertion_signature");

    let assertion = sign(&fx.acme, Some("k1"), &claims("acme"));
    let wrong = "ext-acme-000000"; // same length as the real one
    assert_eq!(wrong.len(), external_id("acme").len());
    let wrong_ext = auth.token(&form(&params("acme", &assertion, wrong)), now());
    let wrong_ext = generic_client_failure(wrong_ext, "wrong_external_id");
    assert_eq!(wrong_ext.partner.as_deref(), Some("acme"));

    assert_eq!(ghost.to_json(), bad_sig.to_json());
    assert_eq!(ghost.to_json(), wrong_ext.to_json());
    assert_eq!(
        ghost.to_json(),
        json!({"error": "invalid_client", "error_description": CLIENT_AUTH_FAILED})
    );
}

#[test]
fn wrong_external_id_of_other_lengths_is_refused() {
    let fx = Fixture::new();
    let auth = fx.authority();
    let real = external_id("acme");
    for wrong in [
        "x",
        &real[..real.len() - 1],
        &format!("{real}0"),
        &external_id("beta"),
    ] {
        let assertion = sign(&fx.acme, Some("k1"), &claims("acme"));
        let res = auth.token(&form(&params("acme", &assertion, wrong)), now());
        generic_client_failure(res, "wrong_external_id");
    }
}

#[test]
fn assertion_signed_by_another_partners_key_is_refused() {
    let fx = Fixture::new();
    // beta's key, presented under acme's key id, claiming to be acme.
    let res = request(&fx, "acme", &fx.beta, Some("k1"), &claims("acme"));
    generic_client_failure(res, "bad_assertion_signature");
    // No kid: acme's keys are tried, none matches.
    let res = request(&fx, "acme", &fx.beta, None, &claims("acme"));
    generic_client_failure(res, "bad_assertion_signature");
    // beta's own key id is not one of acme's keys.
    let res = request(&fx, "acme", &fx.beta, Some("b1"), &claims("acme"));
    generic_client_failure(res, "unknown_key_id");
}

#[test]
fn assertion_with_wrong_algorithm_for_the_key_is_refused() {
    let fx = Fixture::new();
    // A P-256 key under acme's Ed25519 key id: ES256 is not acme's algorithm.
    let res = request(&fx, "acme", &fx.pcorp, Some("k1"), &claims("acme"));
    generic_client_failure(res, "assertion_bad_alg");
}

#[test]
fn assertion_with_alg_none_or_hmac_is_refused() {
    let fx = Fixture::new();
    let auth = fx.authority();
    let ext = external_id("acme");
    let none = raw_jwt(&json!({"alg": "none", "kid": "k1"}), &claims("acme"), b"");
    let res = auth.token(&form(&params("acme", &none, &ext)), now());
    generic_client_failure(res, "assertion_bad_alg");

    let secret = jsonwebtoken::EncodingKey::from_secret(fx.acme.public_pem.as_bytes());
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = Some("k1".to_string());
    let hs = jsonwebtoken::encode(&header, &claims("acme"), &secret).unwrap();
    let res = auth.token(&form(&params("acme", &hs, &ext)), now());
    generic_client_failure(res, "assertion_bad_alg");
}

#[test]
fn malformed_assertion_is_refused_generically() {
    let fx = Fixture::new();
    let auth = fx.authority();
    let ext = external_id("acme");
    let good = sign(&fx.acme, Some("k1"), &claims("acme"));
    let crit = raw_jwt(
        &json!({"alg": "EdDSA", "kid": "k1", "crit": ["exp"]}),
        &claims("acme"),
        b"x",
    );
    for bad in ["not-a-jwt", "a.b", "a.b.c.d", &format!("{good}x"), &crit] {
        let res = auth.token(&form(&params("acme", bad, &ext)), now());
        let err = res.expect_err("malformed assertion accepted");
        assert_eq!(
            (err.status, err.error, err.description),
            (401, "invalid_client", CLIENT_AUTH_FAILED)
        );
    }
}

#[test]
fn expired_assertion_is_refused() {
    let fx = Fixture::new();
    let mut c = claims("acme");
    c["iat"] = (now().as_second() - 120).into();
    c["exp"] = (now().as_second() - LEEWAY).into();
    let res = request(&fx, "acme", &fx.acme, Some("k1"), &c);
    assert_refused(res, 401, "invalid_client", "assertion_expired");
}

#[test]
fn assertion_with_too_long_lifetime_is_refused() {
    let fx = Fixture::new();
    let mut c = claims("acme");
    c.as_object_mut().unwrap().remove("iat");
    c["exp"] = (now().as_second() + MAX_ASSERTION + LEEWAY + 1).into();
    let res = request(&fx, "acme", &fx.acme, Some("k1"), &c);
    assert_refused(res, 401, "invalid_client", "assertion_lifetime_too_long");

    let mut c = claims("acme");
    c["iat"] = (now().as_second() - 250).into();
    c["exp"] = (now().as_second() + 60).into();
    let res = request(&fx, "acme", &fx.acme, Some("k1"), &c);
    assert_refused(res, 401, "invalid_client", "assertion_lifetime_too_long");
}

#[test]
fn assertion_not_yet_valid_is_refused() {
    let fx = Fixture::new();
    for claim in ["nbf", "iat"] {
        let mut c = claims("acme");
        c[claim] = (now().as_second() + LEEWAY + 1).into();
        let res = request(&fx, "acme", &fx.acme, Some("k1"), &c);
        assert_refused(res, 401, "invalid_client", "assertion_not_yet_valid");
    }
}

#[test]
fn assertion_with_wrong_audience_is_refused() {
    let fx = Fixture::new();
    for aud in [
        json!("https://gw.test:8443/v1/token/"),
        json!(["https://elsewhere/v1/token"]),
        json!(ISSUER),
    ] {
        let mut c = claims("acme");
        c["aud"] = aud;
        let res = request(&fx, "acme", &fx.acme, Some("k1"), &c);
        assert_refused(res, 401, "invalid_client", "assertion_wrong_audience");
    }
}

#[test]
fn assertion_iss_and_sub_must_be_the_client_id() {
    let fx = Fixture::new();
    let mut c = claims("acme");
    c["sub"] = "beta".into();
    let res = request(&fx, "acme", &fx.acme, Some("k1"), &c);
    assert_refused(res, 401, "invalid_client", "assertion_wrong_subject");
    let mut c = claims("acme");
    c["iss"] = "beta".into();
    let res = request(&fx, "acme", &fx.acme, Some("k1"), &c);
    assert_refused(res, 401, "invalid_client", "assertion_wrong_issuer");
}

#[test]
fn assertion_missing_required_claims_is_refused() {
    let fx = Fixture::new();
    for claim in ["iss", "sub", "aud", "exp", "jti"] {
        let mut c = claims("acme");
        c.as_object_mut().unwrap().remove(claim);
        let res = request(&fx, "acme", &fx.acme, Some("k1"), &c);
        assert_refused(res, 401, "invalid_client", "assertion_missing_claims");
    }
    let mut c = claims("acme");
    c["jti"] = "".into();
    let res = request(&fx, "acme", &fx.acme, Some("k1"), &c);
    assert_refused(res, 401, "invalid_client", "assertion_bad_jti");
}

#[test]
fn replayed_assertion_is_refused_even_after_reload() {
    let fx = Fixture::new();
    let auth = fx.authority();
    let c = claims("acme");
    let assertion = sign(&fx.acme, Some("k1"), &c);
    let ext = external_id("acme");
    let body = form(&params("acme", &assertion, &ext));
    assert!(auth.token(&body, now()).is_ok());
    assert_refused(
        auth.token(&body, at(1)),
        400,
        "invalid_grant",
        "assertion_replayed",
    );
    let reloaded = auth.reload(&fx.cfg).unwrap();
    assert_refused(
        reloaded.token(&body, at(2)),
        400,
        "invalid_grant",
        "assertion_replayed",
    );
    // A fresh Authority (not a reload) has an empty cache: reload must be used.
    assert!(fx.authority().token(&body, at(3)).is_ok());
    // The same jti from another partner is a different assertion.
    let mut other = claims("beta");
    other["jti"] = c["jti"].clone();
    assert!(request(&fx, "beta", &fx.beta, Some("b1"), &other).is_ok());
}

#[test]
fn replay_is_checked_before_the_external_id() {
    let fx = Fixture::new();
    let auth = fx.authority();
    let assertion = sign(&fx.acme, Some("k1"), &claims("acme"));
    let wrong = auth.token(&form(&params("acme", &assertion, "ext-wrong")), now());
    assert_refused(wrong, 401, "invalid_client", "wrong_external_id");
    let ext = external_id("acme");
    let again = auth.token(&form(&params("acme", &assertion, &ext)), now());
    assert_refused(again, 400, "invalid_grant", "assertion_replayed");
}

#[test]
fn suspended_partner_is_refused() {
    let mut fx = Fixture::new();
    fx.partner("acme").status = PartnerStatus::Suspended;
    let res = fx
        .authority()
        .token(&good_body("acme", &fx.acme, "k1"), now());
    let err = assert_refused(res, 401, "invalid_client", "partner_suspended");
    assert_eq!(err.description, CLIENT_AUTH_FAILED);
}

#[test]
fn expired_partner_is_refused() {
    let mut fx = Fixture::new();
    fx.partner("acme").valid_until = Some(now());
    let res = fx
        .authority()
        .token(&good_body("acme", &fx.acme, "k1"), now());
    assert_refused(res, 401, "invalid_client", "partner_expired");
}

#[test]
fn scope_outside_the_grants_is_refused() {
    let fx = Fixture::new();
    let auth = fx.authority();
    for scope in [
        "logs",
        "reports logs",
        "nosuchshare",
        "reports  ",
        " reports",
    ] {
        let assertion = sign(&fx.beta, Some("b1"), &claims("beta"));
        let ext = external_id("beta");
        let mut p = params("beta", &assertion, &ext);
        p.push(("scope", scope));
        assert_refused(
            auth.token(&form(&p), now()),
            400,
            "invalid_scope",
            "invalid_scope",
        );
    }
}

#[test]
fn partner_without_grants_is_refused() {
    let mut fx = Fixture::new();
    fx.partner("beta").grants.clear();
    let res = fx
        .authority()
        .token(&good_body("beta", &fx.beta, "b1"), now());
    assert_refused(res, 400, "invalid_scope", "no_grants");
}

#[test]
fn full_replay_cache_refuses_new_assertions() {
    let fx = Fixture::new();
    let mut auth = fx.authority();
    auth.replay = std::sync::Arc::new(crate::auth::assertion::ReplayCache::new(1, 1));
    assert!(
        auth.token(&good_body("acme", &fx.acme, "k1"), now())
            .is_ok()
    );
    let res = auth.token(&good_body("acme", &fx.acme, "k1"), now());
    let err = assert_refused(res, 503, "temporarily_unavailable", "replay_cache_full");
    assert_eq!(err.partner.as_deref(), Some("acme"));
    // Once the first assertion can no longer be used, its slot is free again.
    let mut c = claims("acme");
    c["iat"] = (now().as_second() + 91).into();
    c["exp"] = (now().as_second() + 151).into();
    let assertion = sign(&fx.acme, Some("k1"), &c);
    let ext = external_id("acme");
    assert!(
        auth.token(&form(&params("acme", &assertion, &ext)), at(91))
            .is_ok()
    );
}
