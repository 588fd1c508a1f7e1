//! Key loading, JWKS, signing key rotation, the client profile and the replay cache.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::*;
use crate::auth::assertion::{ReplayCache, ReplayError};
use crate::auth::client::Profile;
use crate::auth::{AuthError, check_public_key_pem};

const RSA1024_PUB: &str = include_str!("../testdata/test-only-rsa1024.pub.pem");
const P384_PUB: &str = include_str!("../testdata/test-only-p384.pub.pem");

#[test]
fn public_key_types_map_to_one_algorithm_each() {
    assert_eq!(check_public_key_pem(&ed25519().public_pem), Ok("EdDSA"));
    assert_eq!(check_public_key_pem(&p256().public_pem), Ok("ES256"));
    assert_eq!(check_public_key_pem(&rsa2048().public_pem), Ok("RS256"));
}

#[test]
fn weak_unsupported_or_malformed_public_keys_are_rejected() {
    let key = ed25519();
    let cert = rcgen::CertificateParams::new(vec!["x".to_string()]).unwrap();
    let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let cert_pem = cert.self_signed(&kp).unwrap().pem();
    let truncated = key.public_pem.replacen("MC", "MA", 1);
    for bad in [
        RSA1024_PUB,
        P384_PUB,
        &key.private_pem,
        &cert_pem,
        "",
        "garbage",
        &truncated,
    ] {
        let err = check_public_key_pem(bad).expect_err("bad key accepted");
        assert!(!err.contains("BEGIN"), "{err}");
    }
    assert!(
        check_public_key_pem(RSA1024_PUB)
            .unwrap_err()
            .contains("2048")
    );
    assert!(
        check_public_key_pem(P384_PUB)
            .unwrap_err()
            .contains("P-256")
    );
}

#[test]
fn rsa1024_partner_key_is_rejected_at_load() {
    let mut fx = Fixture::new();
    fx.partner("rcorp").keys[0].public_key_pem = RSA1024_PUB.to_string();
    let err = Authority::from_config(&fx.cfg).unwrap_err();
    assert!(
        matches!(&err, AuthError::BadPartnerKey { partner, key, .. } if partner == "rcorp" && key == "r1")
    );
    let msg = err.to_string();
    assert!(
        msg.contains("rcorp") && msg.contains("keys/rcorp.pub.pem") && msg.contains("2048"),
        "{msg}"
    );
}

#[test]
fn duplicate_partner_key_ids_are_rejected() {
    let mut fx = Fixture::new();
    let dup = fx.partner("acme").keys[0].clone();
    fx.partner("acme").keys.push(dup);
    let err = Authority::from_config(&fx.cfg).unwrap_err();
    assert!(
        matches!(err, AuthError::DuplicatePartnerKey { .. }),
        "{err}"
    );
}

#[test]
fn bad_signing_key_configuration_is_rejected() {
    let mut fx = Fixture::new();
    fx.cfg.token.signing_keys.clear();
    assert!(matches!(
        Authority::from_config(&fx.cfg),
        Err(AuthError::NoSigningKey)
    ));

    fx.signing_keys(&["gw-1", "gw-1"]);
    assert!(matches!(
        Authority::from_config(&fx.cfg),
        Err(AuthError::DuplicateSigningKey { .. })
    ));

    fx.signing_keys(&["missing"]);
    let err = Authority::from_config(&fx.cfg).unwrap_err();
    assert!(
        matches!(err, AuthError::ReadSigningKey { .. }) && err.to_string().contains("missing.pem")
    );

    for (name, pem) in [
        ("rsa", rsa2048().private_pem),
        ("public", fx.gw1.public_pem.clone()),
    ] {
        std::fs::write(fx.dir.path().join(format!("{name}.pem")), pem).unwrap();
        fx.signing_keys(&[name]);
        let err = Authority::from_config(&fx.cfg).unwrap_err();
        assert!(matches!(err, AuthError::BadSigningKey { .. }), "{err}");
        assert!(!err.to_string().contains("BEGIN"));
    }
}

#[test]
fn jwks_lists_every_signing_key_without_private_parts() {
    let mut fx = Fixture::new();
    fx.signing_keys(&["gw-1", "gw-2"]);
    let jwks = fx.authority().jwks();
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2);
    let b64 = |v: &Value| URL_SAFE_NO_PAD.decode(v.as_str().unwrap()).unwrap();

    let ed = &keys[0];
    assert_eq!(
        (&ed["kid"], &ed["kty"], &ed["crv"]),
        (&json!("gw-1"), &json!("OKP"), &json!("Ed25519"))
    );
    assert_eq!((&ed["alg"], &ed["use"]), (&json!("EdDSA"), &json!("sig")));
    let gw1 = rcgen::KeyPair::from_pem(&fx.gw1.private_pem).unwrap();
    assert_eq!(b64(&ed["x"]), gw1.public_key_raw());

    let ec = &keys[1];
    assert_eq!(
        (&ec["kid"], &ec["kty"], &ec["crv"]),
        (&json!("gw-2"), &json!("EC"), &json!("P-256"))
    );
    assert_eq!((&ec["alg"], &ec["use"]), (&json!("ES256"), &json!("sig")));
    let gw2 = rcgen::KeyPair::from_pem(&fx.gw2.private_pem).unwrap();
    let point = [&[4u8][..], &b64(&ec["x"]), &b64(&ec["y"])].concat();
    assert_eq!(point, gw2.public_key_raw());

    for k in keys {
        assert!(k.get("d").is_none(), "private part published: {k}");
        // Every published key parses as a JWK.
        let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(k.clone()).unwrap();
        assert!(jsonwebtoken::DecodingKey::from_jwk(&jwk).is_ok());
    }
}

#[test]
fn rotation_keeps_tokens_of_listed_keys_valid() {
    let mut fx = Fixture::new();
    let old = fx.authority();
    let token = issue_acme(&fx, &old).access_token;

    fx.signing_keys(&["gw-2", "gw-1"]);
    let rotated = old.reload(&fx.cfg).unwrap();
    assert_eq!(
        rotated.verify_bearer(&token, now()).unwrap().partner,
        "acme"
    );
    let new = issue_acme(&fx, &rotated).access_token;
    let header = jsonwebtoken::decode_header(&new).unwrap();
    assert_eq!(header.kid.as_deref(), Some("gw-2"));
    assert!(rotated.verify_bearer(&new, now()).is_ok());

    fx.signing_keys(&["gw-2"]);
    let retired = rotated.reload(&fx.cfg).unwrap();
    assert_eq!(
        retired.verify_bearer(&token, now()).unwrap_err().reason,
        "token_unknown_kid"
    );
    assert!(retired.verify_bearer(&new, now()).is_ok());
}

#[test]
fn authority_debug_shows_no_secrets() {
    let fx = Fixture::new();
    let shown = format!("{:?}", fx.authority());
    assert!(shown.contains("gw-1") && shown.contains("acme"));
    assert!(!shown.contains("ext-") && !shown.contains("BEGIN"));
}

#[test]
fn profile_load_resolves_relative_paths_and_hides_the_external_id() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("acme.toml");
    std::fs::write(
        &path,
        "endpoint = \"https://gw.test:8443\"\npartner = \"acme\"\nexternal_id = \"ext-acme-7f3a9c\"\n\
         key_file = \"acme.key.pem\"\nca_file = \"/etc/ca.pem\"\nkey_id = \"k1\"\n",
    )
    .unwrap();
    let p = Profile::load(&path).unwrap();
    assert_eq!(p.key_file, dir.path().join("acme.key.pem"));
    assert_eq!(
        p.ca_file.as_deref(),
        Some(std::path::Path::new("/etc/ca.pem"))
    );
    assert_eq!(
        (p.key_id.as_deref(), p.token_url().as_str()),
        (Some("k1"), TOKEN_URL)
    );
    assert!(!format!("{p:?}").contains("ext-acme"));

    let json_path = dir.path().join("acme.json");
    std::fs::write(&json_path, serde_json::to_string(&p).unwrap()).unwrap();
    assert_eq!(Profile::load(&json_path).unwrap().partner, "acme");

    std::fs::write(
        &path,
        "partner = \"acme\"\nexternal_id = \"ext-acme-7f3a9c\" oops\n",
    )
    .unwrap();
    let err = format!("{:#}", Profile::load(&path).unwrap_err());
    assert!(err.contains("line 2") && !err.contains("ext-acme"), "{err}");
}

#[test]
fn replay_cache_forgets_only_unusable_assertions_and_fails_closed_when_full() {
    let cache = ReplayCache::new(3, 2);
    assert_eq!(cache.check_and_insert("acme", "j1", 100, 0), Ok(()));
    assert_eq!(
        cache.check_and_insert("acme", "j1", 100, 99),
        Err(ReplayError::Replayed)
    );
    assert_eq!(cache.check_and_insert("acme", "j2", 200, 0), Ok(()));
    // Per-partner bound reached; another partner still gets in.
    assert_eq!(
        cache.check_and_insert("acme", "j3", 200, 0),
        Err(ReplayError::Full)
    );
    assert_eq!(cache.check_and_insert("beta", "j1", 200, 0), Ok(()));
    assert_eq!(
        cache.check_and_insert("beta", "j2", 200, 0),
        Err(ReplayError::Full)
    );
    assert_eq!(cache.len(), 3);
    // At 100 the first entry can no longer be used and is pruned.
    assert_eq!(cache.check_and_insert("acme", "j3", 200, 100), Ok(()));
    assert_eq!(cache.len(), 3);
    assert_eq!(
        cache.check_and_insert("acme", "j2", 300, 150),
        Err(ReplayError::Replayed)
    );
    assert_eq!(cache.check_and_insert("acme", "j4", 300, 200), Ok(()));
    assert_eq!(cache.len(), 1);
}

#[tokio::test]
async fn token_client_refuses_plain_http_and_never_shows_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let key = ed25519();
    std::fs::write(dir.path().join("k.pem"), &key.private_pem).unwrap();
    let profile = Profile {
        endpoint: "http://127.0.0.1:9".to_string(),
        partner: "acme".to_string(),
        external_id: external_id("acme"),
        key_file: dir.path().join("k.pem"),
        ca_file: None,
        key_id: Some("k1".to_string()),
    };
    let err = format!(
        "{:#}",
        crate::auth::client::request_token(&profile, None, None)
            .await
            .unwrap_err()
    );
    assert!(err.contains("http://127.0.0.1:9/v1/token"), "{err}");
    assert!(!err.contains("ext-acme") && !err.contains("eyJ"), "{err}");
}
