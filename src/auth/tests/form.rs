//! Token endpoint refusals of the form itself: grant type, missing, empty and duplicate
//! parameters, bad values. All are `invalid_request` (400) except the grant type.

use super::*;

#[test]
fn bad_or_missing_grant_type_is_refused() {
    let fx = Fixture::new();
    let auth = fx.authority();
    let res = auth.token(
        &form(&[("grant_type", "password"), ("client_id", "acme")]),
        now(),
    );
    assert_refused(res, 400, "unsupported_grant_type", "unsupported_grant_type");
    let res = auth.token(&form(&[("client_id", "acme")]), now());
    assert_refused(res, 400, "invalid_request", "malformed_request");
}

#[test]
fn each_missing_or_empty_field_is_refused() {
    let fx = Fixture::new();
    let auth = fx.authority();
    let assertion = sign(&fx.acme, Some("k1"), &claims("acme"));
    let ext = external_id("acme");
    let all = params("acme", &assertion, &ext);
    for skip in 0..all.len() {
        let without: Vec<_> = all
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != skip)
            .map(|(_, p)| *p)
            .collect();
        assert_refused(
            auth.token(&form(&without), now()),
            400,
            "invalid_request",
            "malformed_request",
        );
        let mut empty = all.clone();
        empty[skip].1 = "";
        assert_refused(
            auth.token(&form(&empty), now()),
            400,
            "invalid_request",
            "malformed_request",
        );
    }
    assert_refused(
        auth.token(b"", now()),
        400,
        "invalid_request",
        "malformed_request",
    );
}

#[test]
fn duplicate_fields_are_refused() {
    let fx = Fixture::new();
    let auth = fx.authority();
    let assertion = sign(&fx.acme, Some("k1"), &claims("acme"));
    let ext = external_id("acme");
    for (name, value) in [
        ("external_id", ext.as_str()),
        ("scope", "logs"),
        ("client_id", "acme"),
        ("grant_type", "client_credentials"),
    ] {
        let mut p = params("acme", &assertion, &ext);
        p.push((name, value));
        if name == "scope" {
            p.push(("scope", "reports"));
        }
        assert_refused(
            auth.token(&form(&p), now()),
            400,
            "invalid_request",
            "duplicate_parameter",
        );
    }
}

#[test]
fn other_malformed_requests_are_refused() {
    let fx = Fixture::new();
    let auth = fx.authority();
    let assertion = sign(&fx.acme, Some("k1"), &claims("acme"));
    let ext = external_id("acme");
    for d in ["0", "-5", "+5", "abc", "1.5", " 60", "99999999999"] {
        let mut p = params("acme", &assertion, &ext);
        p.push(("duration", d));
        assert_refused(
            auth.token(&form(&p), now()),
            400,
            "invalid_request",
            "malformed_request",
        );
    }
    let mut p = params("acme", &assertion, &ext);
    p.push(("client_secret", "hunter2"));
    assert_refused(
        auth.token(&form(&p), now()),
        400,
        "invalid_request",
        "multiple_client_auth",
    );
    let mut p = params("acme", &assertion, &ext);
    p[2].1 = "urn:ietf:params:oauth:client-assertion-type:saml2-bearer";
    assert_refused(
        auth.token(&form(&p), now()),
        400,
        "invalid_request",
        "unsupported_assertion_type",
    );
    let long = "a".repeat(200);
    let p = params(&long, &assertion, &ext);
    assert_refused(
        auth.token(&form(&p), now()),
        400,
        "invalid_request",
        "malformed_request",
    );
    let res = auth.token(b"grant_type=client_credentials&client_id=%FF%FE", now());
    assert_refused(res, 400, "invalid_request", "malformed_request");
}
