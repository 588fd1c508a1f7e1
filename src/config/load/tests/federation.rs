//! `[federation]` in partner files: defaults, every refused value with its line, and
//! partners sharing an issuer.

use super::*;
use crate::config::{JwksSource, TenantMatch};

const JWKS: &str = r#"{"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "k", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#;

fn with_federation(f: &Fixture, id: &str, table: &str) -> String {
    let partner = ACME
        .replace("\"acme\"", &format!("{id:?}"))
        .replace("acme.pub.pem", &format!("{id}.pub.pem"));
    let text = format!("{partner}\n[federation]\n{table}");
    f.partner(id, &text);
    text
}

#[test]
fn a_minimal_federation_gets_its_defaults() {
    let f = Fixture::valid();
    f.write("config/partners/idp.jwks", JWKS);
    with_federation(
        &f,
        "acme",
        "issuer = \"https://idp.example/\"\naudience = \"gh\"\njwks = \"idp.jwks\"\n",
    );
    let c = f.config();
    let fed = c.partners["acme"].federation.clone().unwrap();
    assert_eq!(
        fed.jwks,
        JwksSource::File(f.path("config/partners/idp.jwks"))
    );
    assert_eq!(fed.algorithms, ["RS256", "ES256", "EdDSA"]);
    assert_eq!(fed.max_token_age, Duration::from_secs(3600));
    assert_eq!(fed.clock_skew, Duration::from_secs(60));
    assert_eq!(fed.jwks_cache_ttl, Duration::from_secs(3600));
    assert_eq!(fed.jwks_refetch_cooldown, Duration::from_secs(300));
    assert_eq!((fed.tenant, fed.ca_file), (None, None));
}

#[test]
fn every_bad_value_is_reported_at_its_line() {
    let f = Fixture::valid();
    let table = "issuer = \"http://idp.example/\"
audience = \"\"
jwks = \"http://idp.example/jwks\"
ca_file = \"missing-ca.pem\"
tenant_claim = \"aud\"
tenant = \"\"
algorithms = [\"HS256\", \"none\", \"ES256\", \"ES256\"]
max_token_age = \"2d\"
clock_skew = \"10m\"
mfa_acr = [\"\"]
jwks_cache_ttl = \"5s\"
jwks_refetch_cooldown = \"0s\"
";
    let text = with_federation(&f, "acme", table);
    let errors = f.errors();
    let at = |needle| Some(line_of(&text, needle));
    let expect: [(&str, &[&str]); 13] = [
        ("issuer =", &["federation.issuer", "https://"]),
        ("audience =", &["audience must not be empty"]),
        ("jwks =", &["only an https:// URL or a file path"]),
        ("ca_file =", &["ca_file"]),
        ("tenant_claim =", &["\"aud\" cannot tell tenants apart"]),
        ("tenant = \"\"", &["tenant must not be empty"]),
        ("algorithms =", &["\"HS256\" is not accepted"]),
        ("algorithms =", &["\"none\" is not accepted"]),
        ("algorithms =", &["lists \"ES256\" twice"]),
        ("max_token_age =", &["max_token_age", "must be from"]),
        ("clock_skew =", &["clock_skew", "5m"]),
        ("jwks_cache_ttl =", &["jwks_cache_ttl"]),
        ("jwks_refetch_cooldown =", &["jwks_refetch_cooldown"]),
    ];
    for (needle, parts) in expect {
        assert_error(&errors, "acme.toml", at(needle), parts);
    }
    assert_error(&errors, "acme.toml", at("mfa_acr ="), &["mfa_acr"]);
}

#[test]
fn jwks_files_and_ca_files_are_checked_at_load() {
    let f = Fixture::valid();
    f.write("config/partners/empty.jwks", r#"{"keys": []}"#);
    f.write("config/partners/ca.pem", "not a certificate");
    let text = with_federation(
        &f,
        "acme",
        "issuer = \"https://idp.example/\"\naudience = \"gh\"\njwks = \"empty.jwks\"\nca_file = \"ca.pem\"\n",
    );
    let errors = f.errors();
    assert_error(
        &errors,
        "acme.toml",
        Some(line_of(&text, "jwks =")),
        &["no usable signing key"],
    );
    assert_error(
        &errors,
        "acme.toml",
        Some(line_of(&text, "ca_file =")),
        &["only for an https:// jwks"],
    );

    let text = with_federation(
        &f,
        "acme",
        "issuer = \"https://idp.example/\"\naudience = \"gh\"\njwks = \"https://idp.example/jwks\"\nca_file = \"ca.pem\"\n",
    );
    let errors = f.errors();
    assert_error(
        &errors,
        "acme.toml",
        Some(line_of(&text, "ca_file =")),
        &["no PEM certificate"],
    );
    assert_eq!(errors.len(), 1, "{errors:?}");
}

#[test]
fn tenant_claim_and_tenant_come_together() {
    let f = Fixture::valid();
    let base = "issuer = \"https://idp.example/\"\naudience = \"gh\"\njwks = \"https://idp.example/jwks\"\n";
    let text = with_federation(&f, "acme", &format!("{base}tenant_claim = \"tid\"\n"));
    assert_error(
        &f.errors(),
        "acme.toml",
        Some(line_of(&text, "tenant_claim")),
        &["needs federation.tenant"],
    );
    let text = with_federation(&f, "acme", &format!("{base}tenant = \"t\"\n"));
    assert_error(
        &f.errors(),
        "acme.toml",
        Some(line_of(&text, "tenant =")),
        &["needs federation.tenant_claim"],
    );
    with_federation(
        &f,
        "acme",
        &format!("{base}tenant_claim = \"tid\"\ntenant = \"t\"\n"),
    );
    let tenant = f.config().partners["acme"]
        .federation
        .clone()
        .unwrap()
        .tenant;
    let expected = TenantMatch {
        claim: "tid".into(),
        value: "t".into(),
    };
    assert_eq!(tenant, Some(expected));
}

#[test]
fn a_shared_issuer_needs_the_same_tenant_claim_with_different_tenants() {
    let base = "issuer = \"https://idp.example/\"\naudience = \"gh\"\njwks = \"https://idp.example/jwks\"\n";
    let tenant = |claim: &str, value: &str| {
        format!("{base}tenant_claim = \"{claim}\"\ntenant = \"{value}\"\n")
    };
    let refused = [
        (base.to_owned(), base.to_owned()),
        (tenant("tid", "a"), base.to_owned()),
        (tenant("tid", "a"), tenant("tid", "a")),
        (tenant("tid", "a"), tenant("org", "b")),
    ];
    for (acme, beta) in refused {
        let f = Fixture::valid();
        let a = with_federation(&f, "acme", &acme);
        let b = with_federation(&f, "beta", &beta);
        let errors = f.errors();
        assert_error(
            &errors,
            "acme.toml",
            Some(line_of(&a, "issuer =")),
            &["also the issuer of partner \"beta\""],
        );
        assert_error(
            &errors,
            "beta.toml",
            Some(line_of(&b, "issuer =")),
            &["also the issuer of partner \"acme\""],
        );
    }
    let f = Fixture::valid();
    with_federation(&f, "acme", &tenant("tid", "a"));
    with_federation(&f, "beta", &tenant("tid", "b"));
    let c = f.config();
    assert!(c.partners["beta"].federation.is_some());
}
