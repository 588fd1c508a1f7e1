//! Token endpoint happy paths: the three partner key types, the client's assertions,
//! scopes and lifetime capping.

use std::time::Duration;

use serde_json::Value;

use super::*;
use crate::auth::client::{Profile, sign_assertion};

fn profile(partner: &str, key_id: Option<&str>) -> Profile {
    Profile {
        endpoint: "https://gw.test:8443/".to_string(),
        partner: partner.to_string(),
        external_id: external_id(partner),
        key_file: PathBuf::from("unused.pem"),
        ca_file: None,
        key_id: key_id.map(str::to_string),
    }
}

/// Gets a token with the partner-side client's assertion and checks token and session.
fn happy_path(fx: &Fixture, client: &str, key: &TestKey, kid: &str, alg: &str) {
    let auth = fx.authority();
    let p = profile(client, Some(kid));
    assert_eq!(p.token_url(), TOKEN_URL);
    let assertion = sign_assertion(&p, &key.private_pem, &p.token_url(), now()).unwrap();
    let header = jsonwebtoken::decode_header(&assertion).unwrap();
    assert_eq!(format!("{:?}", header.alg), alg);
    let ext = external_id(client);
    let issued = auth
        .token(&form(&params(client, &assertion, &ext)), now())
        .unwrap();
    assert_eq!(issued.partner, client);
    assert_eq!(issued.key_id.as_deref(), Some(kid));
    assert_eq!(issued.expires_in, 900);
    assert_eq!(issued.expires_at, at(900));
    assert!(issued.session_id.starts_with("s_"));
    assert!(!format!("{issued:?}").contains(&issued.access_token));

    let body = issued.to_json();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["access_token"], issued.access_token.as_str());
    assert_eq!(body["expires_in"], 900);
    assert_eq!(body["session_id"], issued.session_id.as_str());
    assert_eq!(body["scope"], issued.scopes.join(" ").as_str());

    let session = auth.verify_bearer(&issued.access_token, at(10)).unwrap();
    assert_eq!(session.partner, client);
    assert_eq!(session.session_id, issued.session_id);
    assert_eq!(session.scopes, issued.scopes);
    assert_eq!((session.issued_at, session.expires_at), (now(), at(900)));

    let header = jsonwebtoken::decode_header(&issued.access_token).unwrap();
    assert_eq!(header.kid.as_deref(), Some("gw-1"));
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    let claims: Value = jsonwebtoken::dangerous::insecure_decode(&issued.access_token)
        .unwrap()
        .claims;
    assert_eq!(claims["iss"], ISSUER);
    assert_eq!(claims["aud"], AUDIENCE);
    assert_eq!(claims["sub"], client);
    assert_eq!(claims["sid"], issued.session_id.as_str());
    assert_eq!(claims["jti"], session.token_id.as_str());
    assert_eq!(claims["amr"], serde_json::json!(["pop"]));
    assert_eq!(claims["pkid"], kid);
    assert_eq!(claims["nbf"], claims["iat"]);
}

#[test]
fn happy_path_ed25519_partner() {
    let fx = Fixture::new();
    happy_path(&fx, "acme", &fx.acme, "k1", "EdDSA");
}

#[test]
fn happy_path_p256_partner() {
    let fx = Fixture::new();
    happy_path(&fx, "pcorp", &fx.pcorp, "p1", "ES256");
}

#[test]
fn happy_path_rsa2048_partner() {
    let fx = Fixture::new();
    happy_path(&fx, "rcorp", &fx.rcorp, "r1", "RS256");
}

#[test]
fn assertion_without_kid_tries_each_partner_key() {
    let mut fx = Fixture::new();
    let second = ed25519();
    let mut extra = fx.partner("acme").keys[0].clone();
    extra.id = "k2".to_string();
    extra.public_key_pem = second.public_pem.clone();
    fx.partner("acme").keys.push(extra);
    let auth = fx.authority();
    let assertion = sign(&second, None, &claims("acme"));
    let ext = external_id("acme");
    let issued = auth
        .token(&form(&params("acme", &assertion, &ext)), now())
        .unwrap();
    assert_eq!(issued.key_id.as_deref(), Some("k2"));
}

#[test]
fn assertion_audience_may_be_an_array_containing_the_token_url() {
    let fx = Fixture::new();
    let mut c = claims("acme");
    c["aud"] = serde_json::json!(["https://other.example", TOKEN_URL]);
    let assertion = sign(&fx.acme, Some("k1"), &c);
    let ext = external_id("acme");
    assert!(
        fx.authority()
            .token(&form(&params("acme", &assertion, &ext)), now())
            .is_ok()
    );
}

#[test]
fn assertion_within_leeway_is_accepted() {
    let fx = Fixture::new();
    let auth = fx.authority();
    let mut c = claims("acme");
    c["exp"] = (now().as_second() - LEEWAY + 1).into();
    c["iat"] = (now().as_second() - 100).into();
    c["nbf"] = (now().as_second() + LEEWAY).into();
    let assertion = sign(&fx.acme, Some("k1"), &c);
    let ext = external_id("acme");
    assert!(
        auth.token(&form(&params("acme", &assertion, &ext)), now())
            .is_ok()
    );
}

fn issue_with(fx: &Fixture, extra: &[(&str, &str)]) -> Result<Issued, TokenError> {
    let assertion = sign(&fx.acme, Some("k1"), &claims("acme"));
    let ext = external_id("acme");
    let mut p = params("acme", &assertion, &ext);
    p.extend_from_slice(extra);
    fx.authority().token(&form(&p), now())
}

#[test]
fn scope_absent_or_empty_gives_all_granted_shares() {
    let fx = Fixture::new();
    assert_eq!(issue_with(&fx, &[]).unwrap().scopes, ["logs", "reports"]);
    assert_eq!(
        issue_with(&fx, &[("scope", "")]).unwrap().scopes,
        ["logs", "reports"]
    );
}

#[test]
fn scope_subset_is_honoured() {
    let fx = Fixture::new();
    let issued = issue_with(&fx, &[("scope", "reports")]).unwrap();
    assert_eq!(issued.scopes, ["reports"]);
    assert_eq!(issued.to_json()["scope"], "reports");
    let session = fx
        .authority()
        .verify_bearer(&issued.access_token, now())
        .unwrap();
    assert_eq!(session.scopes, ["reports"]);
    let both = issue_with(&fx, &[("scope", "reports logs reports")]).unwrap();
    assert_eq!(both.scopes, ["logs", "reports"]);
}

#[test]
fn requested_duration_is_honoured_when_short() {
    let fx = Fixture::new();
    let issued = issue_with(&fx, &[("duration", "120")]).unwrap();
    assert_eq!((issued.expires_in, issued.expires_at), (120, at(120)));
}

#[test]
fn lifetime_capped_by_max_session() {
    let mut fx = Fixture::new();
    fx.partner("acme").max_session = Duration::from_secs(1800);
    assert_eq!(
        issue_with(&fx, &[("duration", "100000")])
            .unwrap()
            .expires_in,
        1800
    );
}

#[test]
fn lifetime_capped_by_configured_max_lifetime() {
    let mut fx = Fixture::new();
    fx.partner("acme").max_session = Duration::from_secs(24 * 3600);
    assert_eq!(
        issue_with(&fx, &[("duration", "100000")])
            .unwrap()
            .expires_in,
        8 * 3600
    );
}

#[test]
fn lifetime_capped_at_twelve_hours_whatever_the_config() {
    let mut fx = Fixture::new();
    fx.cfg.token.max_lifetime = Duration::from_secs(48 * 3600);
    fx.cfg.token.default_lifetime = Duration::from_secs(48 * 3600);
    fx.partner("acme").max_session = Duration::from_secs(48 * 3600);
    assert_eq!(issue_with(&fx, &[]).unwrap().expires_in, 12 * 3600);
    assert_eq!(
        issue_with(&fx, &[("duration", "9999999999")])
            .unwrap()
            .expires_in,
        12 * 3600
    );
}

#[test]
fn lifetime_capped_by_partner_valid_until() {
    let mut fx = Fixture::new();
    fx.partner("acme").valid_until = Some(at(600));
    let issued = issue_with(&fx, &[("duration", "3000")]).unwrap();
    assert_eq!((issued.expires_in, issued.expires_at), (600, at(600)));
}

#[test]
fn zero_lifetime_is_refused() {
    let mut fx = Fixture::new();
    fx.partner("acme").max_session = Duration::ZERO;
    assert_refused(issue_with(&fx, &[]), 400, "invalid_grant", "lifetime_zero");
}

#[test]
fn each_session_and_token_id_is_new() {
    let fx = Fixture::new();
    let auth = fx.authority();
    let (a, b) = (issue_acme(&fx, &auth), issue_acme(&fx, &auth));
    assert_ne!(a.session_id, b.session_id);
    let (sa, sb) = (
        auth.verify_bearer(&a.access_token, now()),
        auth.verify_bearer(&b.access_token, now()),
    );
    assert_ne!(sa.unwrap().token_id, sb.unwrap().token_id);
}
