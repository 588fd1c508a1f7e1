//! Unit tests for federation: JWKS parsing, the cache's refetch rules (on tokio's paused
//! clock, so no test waits), and the checks on a subject token's claims.

use std::path::Path;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{EncodingKey, Header};
use serde_json::{Value, json};

use super::jwks::{FAILURE_BACKOFF, JwksCache, KeyLookupError, KeySet, MAX_JWKS_BYTES};
use super::*;
use crate::config::{Federation, JwksSource, TenantMatch};

const ISS: &str = "https://idp.test/tenant-a";
const AUD: &str = "gatehouse-at-idp";
const NOW: i64 = 1_800_000_000;
const TTL: Duration = Duration::from_secs(3600);
const COOLDOWN: Duration = Duration::from_secs(300);

/// A P-256 key of the test IdP.
struct IdpKey {
    kid: String,
    encoding: EncodingKey,
    jwk: Value,
}

fn idp_key(kid: &str) -> IdpKey {
    let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let raw = kp.public_key_raw();
    let b64 = |b: &[u8]| URL_SAFE_NO_PAD.encode(b);
    IdpKey {
        kid: kid.to_owned(),
        encoding: EncodingKey::from_ec_pem(kp.serialize_pem().as_bytes()).unwrap(),
        jwk: json!({"kty": "EC", "crv": "P-256", "kid": kid, "use": "sig",
                    "x": b64(&raw[1..33]), "y": b64(&raw[33..65])}),
    }
}

fn jwks_doc(keys: &[&IdpKey]) -> Vec<u8> {
    let keys: Vec<&Value> = keys.iter().map(|k| &k.jwk).collect();
    serde_json::to_vec(&json!({ "keys": keys })).unwrap()
}

fn sign(key: &IdpKey, claims: &Value) -> String {
    let mut h = Header::new(jsonwebtoken::Algorithm::ES256);
    h.kid = Some(key.kid.clone());
    jsonwebtoken::encode(&h, claims, &key.encoding).unwrap()
}

fn claims() -> Value {
    json!({"iss": ISS, "aud": [AUD, "other"], "sub": "user-1", "iat": NOW - 10, "exp": NOW + 600,
           "amr": ["pwd", "otp"], "tid": "tenant-a"})
}

fn federation(jwks: &Path, tenant: Option<&str>) -> Federation {
    Federation {
        issuer: ISS.to_owned(),
        audience: AUD.to_owned(),
        jwks: JwksSource::File(jwks.to_path_buf()),
        ca_file: None,
        tenant: tenant.map(|t| TenantMatch {
            claim: "tid".to_owned(),
            value: t.to_owned(),
        }),
        algorithms: vec!["ES256".to_owned(), "RS256".to_owned()],
        max_token_age: Duration::from_secs(3600),
        clock_skew: Duration::from_secs(60),
        mfa_acr: Vec::new(),
        jwks_cache_ttl: TTL,
        jwks_refetch_cooldown: COOLDOWN,
    }
}

fn file_cache(path: &Path) -> JwksCache {
    JwksCache::new(JwksSource::File(path.to_path_buf()), None, TTL, COOLDOWN).unwrap()
}

#[test]
fn a_jwks_keeps_only_usable_signing_keys() {
    let ec = idp_key("ec1");
    let b64 = |b: &[u8]| URL_SAFE_NO_PAD.encode(b);
    let doc = json!({"keys": [
        ec.jwk,
        {"kty": "EC", "crv": "P-256", "kid": "enc", "use": "enc", "x": ec.jwk["x"], "y": ec.jwk["y"]},
        {"kty": "EC", "crv": "P-521", "kid": "p521", "x": ec.jwk["x"], "y": ec.jwk["y"]},
        {"kty": "RSA", "kid": "rsa1024", "n": b64(&[0xc5; 128]), "e": "AQAB"},
        {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
        {"kty": "EC", "crv": "P-256", "kid": "wrong-alg", "alg": "RS256", "x": ec.jwk["x"], "y": ec.jwk["y"]},
        {"kty": "OKP", "crv": "X25519", "kid": "x25519", "x": b64(&[1; 32])},
    ]});
    let set = KeySet::parse(&serde_json::to_vec(&doc).unwrap()).unwrap();
    let kids: Vec<Option<&str>> = set.keys.iter().map(|k| k.kid.as_deref()).collect();
    assert_eq!(kids, [Some("ec1")]);
    assert!(
        set.find(None).is_some(),
        "one key: a token without kid may use it"
    );
    assert!(set.find(Some("enc")).is_none());

    let rsa = json!({"keys": [{"kty": "RSA", "kid": "r", "alg": "PS256", "n": b64(&[0xc5; 256]), "e": "AQAB"}]});
    let set = KeySet::parse(&serde_json::to_vec(&rsa).unwrap()).unwrap();
    assert_eq!(set.keys[0].algs, [jsonwebtoken::Algorithm::PS256]);

    for bad in [
        &b"not json"[..],
        br#"{"keys": 1}"#,
        br#"{"keys": []}"#,
        br#"{"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}"#,
    ] {
        assert!(KeySet::parse(bad).is_err());
    }
    let mut huge = br#"{"keys": [], "pad": ""#.to_vec();
    huge.resize(MAX_JWKS_BYTES + 1, b'a');
    assert!(KeySet::parse(&huge).err().unwrap().contains("larger"));
}

#[tokio::test(start_paused = true)]
async fn unknown_kids_refetch_at_most_once_per_cooldown() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jwks.json");
    let (k1, k2) = (idp_key("k1"), idp_key("k2"));
    std::fs::write(&path, jwks_doc(&[&k1])).unwrap();
    let cache = file_cache(&path);

    assert!(cache.key(Some("k1")).await.is_ok());
    assert!(cache.key(Some("k1")).await.is_ok());
    assert_eq!(cache.fetches(), 1, "a fresh copy is used from the cache");

    // The first unknown kid refetches; a flood of others within the cool-down does not.
    for kid in ["x1", "x2", "x3", "x4"] {
        assert_eq!(
            cache.key(Some(kid)).await.err(),
            Some(KeyLookupError::UnknownKid)
        );
    }
    assert_eq!(cache.fetches(), 2);

    // k2 appears at the IdP: found after the cool-down, by one refetch.
    std::fs::write(&path, jwks_doc(&[&k1, &k2])).unwrap();
    assert!(cache.key(Some("k2")).await.is_err());
    assert_eq!(cache.fetches(), 2);
    tokio::time::advance(COOLDOWN).await;
    assert!(cache.key(Some("k2")).await.is_ok());
    assert_eq!(cache.fetches(), 3);

    // Past the TTL the copy is fetched again even for a known kid.
    tokio::time::advance(TTL).await;
    assert!(cache.key(Some("k1")).await.is_ok());
    assert_eq!(cache.fetches(), 4);
}

#[tokio::test(start_paused = true)]
async fn rotation_right_after_the_first_fetch_is_picked_up() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jwks.json");
    let (k1, k2) = (idp_key("k1"), idp_key("k2"));
    std::fs::write(&path, jwks_doc(&[&k1])).unwrap();
    let cache = file_cache(&path);
    assert!(cache.key(Some("k1")).await.is_ok());
    std::fs::write(&path, jwks_doc(&[&k2])).unwrap();
    assert!(cache.key(Some("k2")).await.is_ok());
    assert_eq!(cache.fetches(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_failed_fetch_fails_closed_and_backs_off() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jwks.json");
    let k1 = idp_key("k1");
    std::fs::write(&path, jwks_doc(&[&k1])).unwrap();
    let cache = file_cache(&path);
    assert!(cache.key(Some("k1")).await.is_ok());

    std::fs::write(&path, b"{ not a jwks").unwrap();
    tokio::time::advance(TTL).await;
    let unavailable = Some(KeyLookupError::Unavailable);
    assert_eq!(
        cache.key(Some("k1")).await.err(),
        unavailable,
        "stale keys are not used"
    );
    assert_eq!(cache.key(Some("k1")).await.err(), unavailable);
    assert_eq!(cache.fetches(), 2, "no retry within the back-off");
    std::fs::write(&path, jwks_doc(&[&k1])).unwrap();
    tokio::time::advance(FAILURE_BACKOFF).await;
    assert!(cache.key(Some("k1")).await.is_ok());
    assert_eq!(cache.fetches(), 3);
}

#[test]
fn an_http_client_is_built_only_with_a_usable_ca_file() {
    let url = JwksSource::Url("https://idp.test/jwks".to_owned());
    let new = |pem: &[u8]| JwksCache::new(url.clone(), Some(pem), TTL, COOLDOWN).map(|_| ());
    assert!(new(b"no certificate here").is_err());
    let ca = rcgen::CertificateParams::new(vec!["ca.test".to_owned()])
        .unwrap()
        .self_signed(&rcgen::KeyPair::generate().unwrap())
        .unwrap();
    assert!(new(ca.pem().as_bytes()).is_ok());
}

/// A registry with one partner `acme` whose JWKS file holds `keys`.
fn registry(dir: &Path, keys: &[&IdpKey], tenant: Option<&str>) -> Registry {
    let path = dir.join("jwks.json");
    std::fs::write(&path, jwks_doc(keys)).unwrap();
    let fed = federation(&path, tenant);
    let id = "acme".to_owned();
    Registry::build([(&id, &fed)].into_iter(), &Caches::default()).unwrap()
}

async fn verify(reg: &Registry, token: &str) -> Result<Login, &'static str> {
    let id = reg.resolve(token)?;
    reg.get(id).unwrap().verify(token, NOW).await
}

#[tokio::test]
async fn a_subject_token_is_checked_claim_by_claim() {
    let dir = tempfile::tempdir().unwrap();
    let (key, stranger) = (idp_key("k1"), idp_key("k1"));
    let reg = registry(dir.path(), &[&key], Some("tenant-a"));

    let login = verify(&reg, &sign(&key, &claims())).await.unwrap();
    assert_eq!((login.kid.as_deref(), login.exp), (Some("k1"), NOW + 600));
    assert_eq!(login.amr, ["pwd", "otp"]);

    let with = |name: &str, value: Value| {
        let mut c = claims();
        if value.is_null() {
            c.as_object_mut().unwrap().remove(name);
        } else {
            c[name] = value;
        }
        sign(&key, &c)
    };
    let cases = [
        (
            with("iss", json!("https://idp.test/other")),
            "subject_token_unknown_issuer",
        ),
        (
            with("aud", json!("someone-else")),
            "subject_token_wrong_audience",
        ),
        (with("aud", Value::Null), "subject_token_wrong_audience"),
        (
            with("tid", json!("tenant-b")),
            "subject_token_unknown_tenant",
        ),
        (with("tid", Value::Null), "subject_token_unknown_tenant"),
        (with("exp", json!(NOW - 60)), "subject_token_expired"),
        (with("iat", Value::Null), "subject_token_missing_claims"),
        (with("iat", json!(NOW - 3661 - 60)), "subject_token_too_old"),
        (with("iat", json!(NOW + 61)), "subject_token_not_yet_valid"),
        (with("nbf", json!(NOW + 61)), "subject_token_not_yet_valid"),
        (with("amr", json!("mfa")), "subject_token_malformed"),
        (sign(&stranger, &claims()), "subject_token_bad_signature"),
        ("a.b".to_owned(), "subject_token_malformed"),
    ];
    for (token, reason) in cases {
        assert_eq!(verify(&reg, &token).await.err(), Some(reason));
    }
    // Inside the clock skew: still good.
    assert!(verify(&reg, &with("exp", json!(NOW - 59))).await.is_ok());
    assert!(verify(&reg, &with("nbf", json!(NOW + 59))).await.is_ok());
}

#[tokio::test]
async fn the_algorithm_must_be_allowed_and_the_keys() {
    let dir = tempfile::tempdir().unwrap();
    let key = idp_key("k1");
    let reg = registry(dir.path(), &[&key], Some("tenant-a"));
    let forged = |alg: &str| {
        let header = URL_SAFE_NO_PAD.encode(json!({"alg": alg, "kid": "k1"}).to_string());
        let body = URL_SAFE_NO_PAD.encode(claims().to_string());
        format!("{header}.{body}.c2ln")
    };
    for alg in ["none", "HS256", "ES384", "RS256"] {
        let got = verify(&reg, &forged(alg)).await.err();
        assert_eq!(got, Some("subject_token_bad_alg"), "{alg}");
    }
    let mut h = Header::new(jsonwebtoken::Algorithm::ES256);
    h.kid = Some("k9".to_owned());
    let unknown = jsonwebtoken::encode(&h, &claims(), &key.encoding).unwrap();
    assert_eq!(
        verify(&reg, &unknown).await.err(),
        Some("subject_token_unknown_kid")
    );
}

#[tokio::test]
async fn partners_sharing_an_issuer_are_told_apart_by_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let key = idp_key("k1");
    let path = dir.path().join("jwks.json");
    std::fs::write(&path, jwks_doc(&[&key])).unwrap();
    let (a, b) = (
        federation(&path, Some("tenant-a")),
        federation(&path, Some("tenant-b")),
    );
    let (ida, idb) = ("acme".to_owned(), "beta".to_owned());
    let reg = Registry::build([(&ida, &a), (&idb, &b)].into_iter(), &Caches::default()).unwrap();
    assert!(Arc::ptr_eq(
        &reg.get("acme").unwrap().jwks,
        &reg.get("beta").unwrap().jwks
    ));
    let mut c = claims();
    assert_eq!(reg.resolve(&sign(&key, &c)), Ok("acme"));
    c["tid"] = json!("tenant-b");
    assert_eq!(reg.resolve(&sign(&key, &c)), Ok("beta"));
    c["tid"] = json!("tenant-c");
    assert_eq!(
        reg.resolve(&sign(&key, &c)),
        Err("subject_token_unknown_tenant")
    );

    // Built without the config check, a tenant-less partner beside them is never guessed.
    let open = federation(&path, None);
    let idc = "open".to_owned();
    let feds = [(&ida, &a), (&idb, &b), (&idc, &open)];
    let reg = Registry::build(feds.into_iter(), &Caches::default()).unwrap();
    c["tid"] = json!("tenant-a");
    assert_eq!(
        reg.resolve(&sign(&key, &c)),
        Err("subject_token_ambiguous_issuer")
    );
}
