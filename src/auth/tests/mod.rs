//! Tests for `auth`: a fixture with generated keys and a complete [`Config`], and helpers to
//! build (and forge) token requests, client assertions and access tokens.

mod bearer;
mod form;
mod keys;
mod refusals;
mod token;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use jiff::Timestamp;
use serde_json::{Value, json};

use super::keys::parse_private_key_pem;
use super::{Authority, Issued, JWT_BEARER, TokenError};
use crate::config::*;

pub(super) const TOKEN_URL: &str = "https://gw.test:8443/v1/token";
pub(super) const ISSUER: &str = "https://gw.test:8443";
pub(super) const AUDIENCE: &str = "gatehouse";
pub(super) const LEEWAY: i64 = 30;
pub(super) const MAX_ASSERTION: i64 = 300;

/// A fixed "now" so that tests never depend on the clock.
pub(super) fn now() -> Timestamp {
    Timestamp::from_second(1_800_000_000).unwrap()
}

pub(super) fn at(offset: i64) -> Timestamp {
    Timestamp::from_second(now().as_second() + offset).unwrap()
}

/// A key pair for tests (never used outside them).
#[derive(Clone)]
pub(super) struct TestKey {
    pub private_pem: String,
    pub public_pem: String,
}

pub(super) fn ed25519() -> TestKey {
    rcgen_key(&rcgen::PKCS_ED25519)
}

pub(super) fn p256() -> TestKey {
    rcgen_key(&rcgen::PKCS_ECDSA_P256_SHA256)
}

fn rcgen_key(alg: &'static rcgen::SignatureAlgorithm) -> TestKey {
    let kp = rcgen::KeyPair::generate_for(alg).unwrap();
    TestKey {
        private_pem: kp.serialize_pem(),
        public_pem: kp.public_key_pem(),
    }
}

/// The test-only RSA-2048 key pair from `testdata/`.
pub(super) fn rsa2048() -> TestKey {
    TestKey {
        private_pem: include_str!("../testdata/test-only-rsa2048.key.pem").to_string(),
        public_pem: include_str!("../testdata/test-only-rsa2048.pub.pem").to_string(),
    }
}

pub(super) fn external_id(partner: &str) -> String {
    format!("ext-{partner}-7f3a9c")
}

/// Partners: `acme` and `beta` (Ed25519), `pcorp` (P-256), `rcorp` (RSA-2048).
pub(super) struct Fixture {
    pub dir: tempfile::TempDir,
    pub cfg: Config,
    /// Gateway signing keys written to `dir`: `gw-1` (Ed25519), `gw-2` (P-256).
    pub gw1: TestKey,
    pub gw2: TestKey,
    pub acme: TestKey,
    pub beta: TestKey,
    pub pcorp: TestKey,
    pub rcorp: TestKey,
}

impl Fixture {
    pub fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let (gw1, gw2) = (ed25519(), p256());
        std::fs::write(dir.path().join("gw-1.pem"), &gw1.private_pem).unwrap();
        std::fs::write(dir.path().join("gw-2.pem"), &gw2.private_pem).unwrap();
        let (acme, beta, pcorp, rcorp) = (ed25519(), ed25519(), p256(), rsa2048());
        let mut partners = BTreeMap::new();
        for (id, key_id, key, shares) in [
            ("acme", "k1", &acme, &["reports", "logs"][..]),
            ("beta", "b1", &beta, &["reports"][..]),
            ("pcorp", "p1", &pcorp, &["logs"][..]),
            ("rcorp", "r1", &rcorp, &["reports"][..]),
        ] {
            partners.insert(id.to_string(), partner(id, key_id, key, shares));
        }
        let cfg = config(dir.path(), partners);
        Fixture {
            dir,
            cfg,
            gw1,
            gw2,
            acme,
            beta,
            pcorp,
            rcorp,
        }
    }

    pub fn authority(&self) -> Authority {
        Authority::from_config(&self.cfg).unwrap()
    }

    pub fn partner(&mut self, id: &str) -> &mut PartnerConfig {
        self.cfg.partners.get_mut(id).unwrap()
    }

    /// Lists these gateway signing keys, in order (ids `gw-1`, `gw-2`).
    pub fn signing_keys(&mut self, ids: &[&str]) {
        self.cfg.token.signing_keys = ids
            .iter()
            .map(|id| SigningKeyConfig {
                id: id.to_string(),
                file: self.dir.path().join(format!("{id}.pem")),
            })
            .collect();
    }
}

pub(super) fn partner(id: &str, key_id: &str, key: &TestKey, shares: &[&str]) -> PartnerConfig {
    PartnerConfig {
        id: id.to_string(),
        display_name: format!("{id} Ltd"),
        owner: "data-team@example.org".to_string(),
        contract: format!("C-{id}"),
        justification: "unit tests".to_string(),
        status: PartnerStatus::Active,
        review_by: None,
        valid_until: None,
        external_id: external_id(id),
        max_session: Duration::from_secs(3600),
        keys: vec![PartnerKey {
            id: key_id.to_string(),
            public_key_file: PathBuf::from(format!("keys/{id}.pub.pem")),
            public_key_pem: key.public_pem.clone(),
        }],
        federation: None,
        grants: shares
            .iter()
            .map(|s| Grant {
                share: s.to_string(),
                prefix: String::new(),
                actions: [Action::Read, Action::List].into_iter().collect(),
                conditions: Default::default(),
                rate_limits: Default::default(),
                approved_by: None,
            })
            .collect(),
        file: PathBuf::from(format!("partners/{id}.toml")),
        conditions: Default::default(),
        deny: Vec::new(),
        rate_limits: Default::default(),
    }
}

fn config(dir: &Path, partners: BTreeMap<String, PartnerConfig>) -> Config {
    let share = |name: &str| ShareConfig {
        name: name.to_string(),
        store: "local".to_string(),
        bucket: format!("internal-{name}"),
        prefix: String::new(),
        description: String::new(),
        default_classification: Default::default(),
        encrypt: false,
        key_id: None,
        accept_plaintext: false,
        dlp_profile: None,
    };
    Config {
        token_limits: Default::default(),
        dlp: Default::default(),
        alerts: Default::default(),
        admin: crate::config::AdminConfig {
            addr: "127.0.0.1:0".parse().unwrap(),
            token_file: dir.join("admin.token"),
            revocations_file: dir.join("revocations.json"),
        },
        keys: crate::config::KeysConfig {
            service: crate::config::KeyServiceConfig::Local {
                file: dir.join("keys/local-kek.json"),
            },
            cache_ttl: Duration::from_secs(300),
            cache_capacity: 100,
        },
        source: dir.join("gatehouse.toml"),
        data_dir: dir.join("data"),
        dlp_patterns_dir: None,
        partners_dir: std::path::PathBuf::new(),
        listener: ListenerConfig {
            addr: "127.0.0.1:0".parse().unwrap(),
            max_connections: 64,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            handshake_timeout: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(5),
            max_header_bytes: 16 * 1024,
            trusted_proxies: Vec::new(),
            proxy_protocol: false,
        },
        tls: TlsConfig {
            cert_file: dir.join("tls/cert.pem"),
            key_file: dir.join("tls/key.pem"),
            dev_ca_cert_file: dir.join("tls/ca.pem"),
            dev_ca_key_file: dir.join("tls/ca.key"),
            dev_names: vec!["localhost".to_string()],
        },
        token: TokenConfig {
            token_url: TOKEN_URL.to_string(),
            issuer: ISSUER.to_string(),
            audience: AUDIENCE.to_string(),
            default_lifetime: Duration::from_secs(900),
            max_lifetime: Duration::from_secs(8 * 3600),
            max_assertion_lifetime: Duration::from_secs(MAX_ASSERTION as u64),
            leeway: Duration::from_secs(LEEWAY as u64),
            signing_keys: vec![SigningKeyConfig {
                id: "gw-1".to_string(),
                file: dir.join("gw-1.pem"),
            }],
        },
        limits: Limits {
            max_put_bytes: 1 << 30,
        },
        audit: AuditConfig::at(dir.join("audit")),
        dev: DevConfig {
            bootstrap: false,
            dir: dir.join("dev"),
        },
        stores: BTreeMap::from([(
            "local".to_string(),
            StoreConfig::Fs {
                root: dir.join("data"),
            },
        )]),
        shares: ["reports", "logs"]
            .into_iter()
            .map(|s| (s.to_string(), share(s)))
            .collect(),
        partners,
    }
}

/// Standard assertion claims for `client` at [`now`], with a unique `jti`.
pub(super) fn claims(client: &str) -> Value {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let iat = now().as_second();
    json!({"iss": client, "sub": client, "aud": TOKEN_URL, "iat": iat, "exp": iat + 60,
           "jti": format!("jti-{n}")})
}

/// Signs `claims` with `key` (its natural algorithm), header `kid` if given.
pub(super) fn sign(key: &TestKey, kid: Option<&str>, claims: &Value) -> String {
    let private = parse_private_key_pem(&key.private_pem).unwrap();
    let mut header = jsonwebtoken::Header::new(private.alg.jwt());
    header.kid = kid.map(str::to_string);
    jsonwebtoken::encode(&header, claims, &private.key).unwrap()
}

/// An unsigned-looking JWT from raw header and claims JSON and a raw signature.
pub(super) fn raw_jwt(header: &Value, claims: &Value, sig: &[u8]) -> String {
    use base64::Engine;
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    format!(
        "{}.{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes()),
        b64(sig)
    )
}

/// A form body from pairs.
pub(super) fn form(pairs: &[(&str, &str)]) -> Vec<u8> {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    s.finish().into_bytes()
}

/// The parameters of a good token request (without scope or duration).
pub(super) fn params<'a>(
    client: &'a str,
    assertion: &'a str,
    ext: &'a str,
) -> Vec<(&'a str, &'a str)> {
    vec![
        ("grant_type", "client_credentials"),
        ("client_id", client),
        ("client_assertion_type", JWT_BEARER),
        ("client_assertion", assertion),
        ("external_id", ext),
    ]
}

/// A good request body for `client`, signed with `key` under `kid`.
pub(super) fn good_body(client: &str, key: &TestKey, kid: &str) -> Vec<u8> {
    let assertion = sign(key, Some(kid), &claims(client));
    let ext = external_id(client);
    form(&params(client, &assertion, &ext))
}

/// Issues a token for `acme` (all grants) at [`now`].
pub(super) fn issue_acme(fx: &Fixture, auth: &Authority) -> Issued {
    auth.token(&good_body("acme", &fx.acme, "k1"), now())
        .unwrap()
}

/// Asserts a refusal's status, error and reason, and that it leaks nothing from the request.
#[track_caller]
pub(super) fn assert_refused(
    res: Result<Issued, TokenError>,
    status: u16,
    error: &str,
    reason: &str,
) -> TokenError {
    let err = res.expect_err("request should have been refused");
    assert_eq!(
        (err.status, err.error, err.reason),
        (status, error, reason),
        "{err:?}"
    );
    let shown = format!("{err} {err:?} {}", err.to_json());
    assert!(!shown.contains("ext-"), "external id leaked: {shown}");
    assert!(!shown.contains("eyJ"), "a JWT leaked: {shown}");
    err
}
