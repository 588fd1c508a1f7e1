//! Bearer token verification: every refusal, including algorithm confusion.

use rustls_pki_types::SubjectPublicKeyInfoDer;
use rustls_pki_types::pem::PemObject;
use serde_json::json;

use super::*;

/// Access token claims as the gateway would mint them for `acme` at [`now`].
fn access_claims() -> Value {
    let iat = now().as_second();
    json!({"iss": ISSUER, "aud": AUDIENCE, "sub": "acme", "client_id": "acme", "sid": "s_1",
           "jti": "t_1", "iat": iat, "nbf": iat, "exp": iat + 900, "scope": "reports",
           "amr": ["pop"], "pkid": "k1"})
}

/// Signs access token claims with a gateway key, as `kid`, `typ: at+jwt`.
fn forge(key: &TestKey, kid: &str, claims: &Value) -> String {
    let private = crate::auth::keys::parse_private_key_pem(&key.private_pem).unwrap();
    let mut header = jsonwebtoken::Header::new(private.alg.jwt());
    header.kid = Some(kid.to_string());
    header.typ = Some("at+jwt".to_string());
    jsonwebtoken::encode(&header, claims, &private.key).unwrap()
}

#[track_caller]
fn refused(auth: &Authority, token: &str, when: Timestamp, reason: &'static str) {
    assert_eq!(auth.verify_bearer(token, when).unwrap_err().reason, reason);
}

#[test]
fn forged_claims_verify_when_signed_by_the_gateway_key() {
    // Guards the other tests: their tokens fail only for the reason they change.
    let fx = Fixture::new();
    let session = fx
        .authority()
        .verify_bearer(&forge(&fx.gw1, "gw-1", &access_claims()), now());
    assert_eq!(session.unwrap().scopes, ["reports"]);
}

#[test]
fn expired_token_is_refused() {
    let fx = Fixture::new();
    let auth = fx.authority();
    let token = issue_acme(&fx, &auth).access_token;
    assert!(auth.verify_bearer(&token, at(900 + LEEWAY - 1)).is_ok());
    refused(&auth, &token, at(900 + LEEWAY), "token_expired");
}

#[test]
fn token_not_yet_valid_beyond_leeway_is_refused() {
    let fx = Fixture::new();
    let auth = fx.authority();
    let token = issue_acme(&fx, &auth).access_token;
    assert!(auth.verify_bearer(&token, at(-LEEWAY)).is_ok());
    refused(&auth, &token, at(-LEEWAY - 1), "token_not_yet_valid");
    let mut c = access_claims();
    c["nbf"] = (now().as_second() + 120).into();
    refused(
        &auth,
        &forge(&fx.gw1, "gw-1", &c),
        now(),
        "token_not_yet_valid",
    );
}

#[test]
fn leeway_is_capped_at_sixty_seconds() {
    let mut fx = Fixture::new();
    fx.cfg.token.leeway = std::time::Duration::from_secs(3600);
    let auth = fx.authority();
    let token = issue_acme(&fx, &auth).access_token;
    assert!(auth.verify_bearer(&token, at(900 + 59)).is_ok());
    refused(&auth, &token, at(900 + 60), "token_expired");
}

#[test]
fn wrong_audience_or_issuer_is_refused() {
    let fx = Fixture::new();
    let auth = fx.authority();
    let mut c = access_claims();
    c["aud"] = "someone-else".into();
    refused(
        &auth,
        &forge(&fx.gw1, "gw-1", &c),
        now(),
        "token_wrong_audience",
    );
    c["aud"] = json!([AUDIENCE]);
    refused(&auth, &forge(&fx.gw1, "gw-1", &c), now(), "token_malformed");
    let mut c = access_claims();
    c["iss"] = "https://evil.example".into();
    refused(
        &auth,
        &forge(&fx.gw1, "gw-1", &c),
        now(),
        "token_wrong_issuer",
    );
}

#[test]
fn alg_none_is_refused() {
    let fx = Fixture::new();
    let auth = fx.authority();
    for alg in ["none", "None", "NONE"] {
        let header = json!({"alg": alg, "kid": "gw-1", "typ": "at+jwt"});
        refused(
            &auth,
            &raw_jwt(&header, &access_claims(), b""),
            now(),
            "token_bad_alg",
        );
    }
}

#[test]
fn hs256_signed_with_the_gateway_public_key_is_refused() {
    let fx = Fixture::new();
    let auth = fx.authority();
    let pem = fx.gw1.public_pem.clone();
    let der = SubjectPublicKeyInfoDer::from_pem_slice(pem.as_bytes())
        .unwrap()
        .as_ref()
        .to_vec();
    let raw = der[der.len() - 32..].to_vec();
    let jwks_x = auth.jwks()["keys"][0]["x"].as_str().unwrap().to_string();
    for secret in [pem.as_bytes(), &der, &raw, jwks_x.as_bytes()] {
        for alg in [
            jsonwebtoken::Algorithm::HS256,
            jsonwebtoken::Algorithm::HS512,
        ] {
            let mut header = jsonwebtoken::Header::new(alg);
            header.kid = Some("gw-1".to_string());
            header.typ = Some("at+jwt".to_string());
            let key = jsonwebtoken::EncodingKey::from_secret(secret);
            let token = jsonwebtoken::encode(&header, &access_claims(), &key).unwrap();
            refused(&auth, &token, now(), "token_bad_alg");
        }
    }
}

#[test]
fn other_asymmetric_algorithm_for_the_kid_is_refused() {
    let mut fx = Fixture::new();
    fx.signing_keys(&["gw-1", "gw-2"]);
    let auth = fx.authority();
    // Signed with the P-256 key but naming the Ed25519 key id.
    refused(
        &auth,
        &forge(&fx.gw2, "gw-1", &access_claims()),
        now(),
        "token_bad_alg",
    );
    // Signed with a different Ed25519 key under gw-1.
    refused(
        &auth,
        &forge(&ed25519(), "gw-1", &access_claims()),
        now(),
        "token_bad_signature",
    );
}

#[test]
fn tampered_payload_is_refused() {
    let fx = Fixture::new();
    let auth = fx.authority();
    let token = issue_acme(&fx, &auth).access_token;
    let parts: Vec<&str> = token.split('.').collect();
    let mut c: Value = jsonwebtoken::dangerous::insecure_decode(&token)
        .unwrap()
        .claims;
    c["scope"] = "reports logs secrets".into();
    c["exp"] = (now().as_second() + 86_400).into();
    let forged_payload = raw_jwt(&json!({}), &c, b"")
        .split('.')
        .nth(1)
        .unwrap()
        .to_string();
    let tampered = format!("{}.{}.{}", parts[0], forged_payload, parts[2]);
    refused(&auth, &tampered, now(), "token_bad_signature");
    let mut sig: Vec<char> = parts[2].chars().collect();
    sig[5] = if sig[5] == 'A' { 'B' } else { 'A' };
    let flipped = format!(
        "{}.{}.{}",
        parts[0],
        parts[1],
        sig.into_iter().collect::<String>()
    );
    refused(&auth, &flipped, now(), "token_bad_signature");
}

#[test]
fn unknown_or_missing_kid_is_refused() {
    let fx = Fixture::new();
    let auth = fx.authority();
    refused(
        &auth,
        &forge(&fx.gw2, "gw-9", &access_claims()),
        now(),
        "token_unknown_kid",
    );
    let private = crate::auth::keys::parse_private_key_pem(&fx.gw1.private_pem).unwrap();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
    header.typ = Some("at+jwt".to_string());
    let no_kid = jsonwebtoken::encode(&header, &access_claims(), &private.key).unwrap();
    refused(&auth, &no_kid, now(), "token_unknown_kid");
}

#[test]
fn client_assertion_is_not_an_access_token() {
    let fx = Fixture::new();
    let auth = fx.authority();
    let assertion = sign(&fx.acme, Some("k1"), &claims("acme"));
    refused(&auth, &assertion, now(), "token_unknown_kid");
}

#[test]
fn wrong_typ_is_refused() {
    let fx = Fixture::new();
    let private = crate::auth::keys::parse_private_key_pem(&fx.gw1.private_pem).unwrap();
    for typ in [None, Some("JWT")] {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
        header.kid = Some("gw-1".to_string());
        header.typ = typ.map(str::to_string);
        let token = jsonwebtoken::encode(&header, &access_claims(), &private.key).unwrap();
        refused(&fx.authority(), &token, now(), "token_wrong_type");
    }
}

#[test]
fn missing_claims_or_garbage_are_refused() {
    let fx = Fixture::new();
    let auth = fx.authority();
    for claim in [
        "iss", "aud", "sub", "sid", "jti", "iat", "nbf", "exp", "scope", "pkid",
    ] {
        let mut c = access_claims();
        c.as_object_mut().unwrap().remove(claim);
        refused(&auth, &forge(&fx.gw1, "gw-1", &c), now(), "token_malformed");
    }
    for garbage in [
        "",
        "abc",
        "a.b.c",
        "a.b",
        "....",
        "eyJhbGciOiJFZERTQSJ9.e30.",
    ] {
        let err = auth.verify_bearer(garbage, now()).unwrap_err();
        assert!(
            ["token_malformed", "token_unknown_kid"].contains(&err.reason),
            "{garbage}: {err}"
        );
    }
}

#[test]
fn token_lifetime_beyond_twelve_hours_is_refused() {
    let fx = Fixture::new();
    let mut c = access_claims();
    c["exp"] = (now().as_second() + 13 * 3600).into();
    refused(
        &fx.authority(),
        &forge(&fx.gw1, "gw-1", &c),
        now(),
        "token_bad_lifetime",
    );
}

#[test]
fn partner_suspended_removed_or_expired_after_issue_is_refused() {
    let mut fx = Fixture::new();
    let auth = fx.authority();
    let token = issue_acme(&fx, &auth).access_token;
    fx.partner("acme").status = PartnerStatus::Suspended;
    refused(
        &auth.reload(&fx.cfg).unwrap(),
        &token,
        now(),
        "partner_suspended",
    );

    fx.partner("acme").status = PartnerStatus::Active;
    fx.partner("acme").valid_until = Some(at(100));
    let reloaded = auth.reload(&fx.cfg).unwrap();
    assert!(reloaded.verify_bearer(&token, at(99)).is_ok());
    refused(&reloaded, &token, at(100), "partner_expired");

    fx.partner("acme").valid_until = None;
    fx.partner("acme").keys[0].id = "k2".to_string();
    refused(
        &auth.reload(&fx.cfg).unwrap(),
        &token,
        now(),
        "partner_key_removed",
    );

    fx.cfg.partners.remove("acme");
    refused(
        &auth.reload(&fx.cfg).unwrap(),
        &token,
        now(),
        "partner_unknown",
    );
}

#[test]
fn es256_gateway_key_signs_and_verifies() {
    let mut fx = Fixture::new();
    fx.signing_keys(&["gw-2"]);
    let auth = fx.authority();
    let issued = issue_acme(&fx, &auth);
    let header = jsonwebtoken::decode_header(&issued.access_token).unwrap();
    assert_eq!(
        (header.alg, header.kid.as_deref()),
        (jsonwebtoken::Algorithm::ES256, Some("gw-2"))
    );
    assert_eq!(
        auth.verify_bearer(&issued.access_token, now())
            .unwrap()
            .partner,
        "acme"
    );
}

/// A verified token is remembered (its signature is not checked again on the next request),
/// but its times are checked on every use, a token that differs in one byte is verified
/// afresh, and a reload that drops the signing key forgets it.
#[test]
fn remembered_tokens_are_still_checked_on_every_use() {
    let mut fx = Fixture::new();
    fx.signing_keys(&["gw-1", "gw-2"]);
    let auth = fx.authority();
    let token = issue_acme(&fx, &auth).access_token;
    for _ in 0..3 {
        assert_eq!(auth.verify_bearer(&token, now()).unwrap().partner, "acme");
    }
    refused(&auth, &token, at(900 + LEEWAY), "token_expired");
    refused(&auth, &token, at(-LEEWAY - 1), "token_not_yet_valid");
    assert!(auth.verify_bearer(&token, now()).is_ok());
    // The signature's next-to-last character changed: another token, refused.
    let mut other = token.clone().into_bytes();
    let i = other.len() - 2;
    other[i] = if other[i] == b'A' { b'B' } else { b'A' };
    let other = String::from_utf8(other).unwrap();
    refused(&auth, &other, now(), "token_bad_signature");
    // The reloaded authority no longer has the key that signed it.
    fx.signing_keys(&["gw-2"]);
    let reloaded = auth.reload(&fx.cfg).unwrap();
    refused(&reloaded, &token, now(), "token_unknown_kid");
}
