//! An identity provider's public keys: the JWKS document (RFC 7517), fetched and cached.
//!
//! Takes a [`JwksSource`] (an `https://` URL, or a file) and gives the key for a `kid`
//! ([`JwksCache::key`]). The document is fetched on first use and again after `ttl`; a `kid`
//! it does not hold triggers one refetch (key rotation), and at most one such refetch per
//! `cooldown`, so a flood of tokens with invented `kid`s cannot hammer the IdP. Fetches are
//! single-flight (concurrent requests wait for the one fetch), bounded in time
//! ([`FETCH_TIMEOUT`]) and size ([`MAX_JWKS_BYTES`]), HTTPS only without redirects; a failed
//! fetch is not retried for [`FAILURE_BACKOFF`] (or the cool-down, if shorter). Fails closed:
//! keys past their `ttl` are not used when the refetch fails. Nothing here logs key material.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::Value;
use tokio::io::AsyncReadExt;
use tokio::time::Instant;

use crate::config::JwksSource;

/// Largest JWKS document accepted, from a URL or a file.
pub const MAX_JWKS_BYTES: usize = 64 * 1024;
/// Most keys taken from one document.
const MAX_KEYS: usize = 64;
/// Connecting, sending and reading the whole answer must fit in this.
pub(crate) const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// After a failed fetch, the next one waits this long (or the cool-down, if shorter).
pub(crate) const FAILURE_BACKOFF: Duration = Duration::from_secs(10);

/// One verification key of an identity provider.
pub(crate) struct Jwk {
    pub kid: Option<String>,
    /// The algorithms this key may verify: its type's, narrowed by the JWK's `alg`.
    pub algs: Vec<Algorithm>,
    pub key: DecodingKey,
}

/// The usable keys of one JWKS document.
pub(crate) struct KeySet {
    pub keys: Vec<Arc<Jwk>>,
}

impl KeySet {
    /// Parses a JWKS document. Keys for encryption, of unknown types, curves or sizes are
    /// skipped; a document without any usable key is an error.
    pub fn parse(bytes: &[u8]) -> Result<KeySet, String> {
        if bytes.len() > MAX_JWKS_BYTES {
            return Err(format!("JWKS is larger than {MAX_JWKS_BYTES} bytes"));
        }
        let doc: Value =
            serde_json::from_slice(bytes).map_err(|_| "JWKS is not a JSON document".to_owned())?;
        let Some(list) = doc.get("keys").and_then(Value::as_array) else {
            return Err("JWKS has no \"keys\" array".to_owned());
        };
        let keys: Vec<Arc<Jwk>> = list
            .iter()
            .filter_map(parse_jwk)
            .take(MAX_KEYS)
            .map(Arc::new)
            .collect();
        if keys.is_empty() {
            return Err(
                "JWKS holds no usable signing key (RSA >= 2048 bits, P-256, P-384 or Ed25519)"
                    .to_owned(),
            );
        }
        Ok(KeySet { keys })
    }

    /// The key named `kid`; without a `kid`, the only key of the set.
    pub fn find(&self, kid: Option<&str>) -> Option<Arc<Jwk>> {
        match kid {
            Some(kid) => self
                .keys
                .iter()
                .find(|k| k.kid.as_deref() == Some(kid))
                .cloned(),
            None if self.keys.len() == 1 => self.keys.first().cloned(),
            None => None,
        }
    }
}

/// Checks a JWKS document for `gatehouse check`: gives the number of usable keys.
pub fn check_jwks(bytes: &[u8]) -> Result<usize, String> {
    KeySet::parse(bytes).map(|s| s.keys.len())
}

fn parse_jwk(v: &Value) -> Option<Jwk> {
    let field = |name: &str| v.get(name).and_then(Value::as_str);
    if field("use").is_some_and(|u| u != "sig") {
        return None;
    }
    if let Some(ops) = v.get("key_ops").and_then(Value::as_array)
        && !ops.iter().any(|o| o == "verify")
    {
        return None;
    }
    let b64 = |name: &str| field(name).and_then(|s| URL_SAFE_NO_PAD.decode(s).ok());
    let (key, algs) = match field("kty")? {
        "RSA" => {
            let (n, e) = (b64("n")?, b64("e")?);
            let bits = n.iter().skip_while(|b| **b == 0).count() * 8;
            if !(2048..=8192).contains(&bits) || e.is_empty() || e.len() > 8 {
                return None;
            }
            use Algorithm::*;
            let algs = vec![RS256, RS384, RS512, PS256, PS384, PS512];
            (DecodingKey::from_rsa_raw_components(&n, &e), algs)
        }
        "EC" => {
            let (alg, len) = match field("crv")? {
                "P-256" => (Algorithm::ES256, 32),
                "P-384" => (Algorithm::ES384, 48),
                _ => return None,
            };
            let (x, y) = (field("x")?, field("y")?);
            if b64("x")?.len() != len || b64("y")?.len() != len {
                return None;
            }
            (DecodingKey::from_ec_components(x, y).ok()?, vec![alg])
        }
        "OKP" => {
            if field("crv")? != "Ed25519" || b64("x")?.len() != 32 {
                return None;
            }
            let key = DecodingKey::from_ed_components(field("x")?).ok()?;
            (key, vec![Algorithm::EdDSA])
        }
        _ => return None,
    };
    let algs = match field("alg") {
        None => algs,
        Some(named) => {
            let named: Algorithm = named.parse().ok()?;
            if !algs.contains(&named) {
                return None;
            }
            vec![named]
        }
    };
    Some(Jwk {
        kid: field("kid").map(str::to_owned),
        algs,
        key,
    })
}

/// Why no key could be found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyLookupError {
    /// The set (even after any refetch allowed now) has no key for this `kid`.
    UnknownKid,
    /// The document could not be fetched or parsed, and no fresh copy is at hand.
    Unavailable,
}

/// Why the cache wants a fetch.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Need {
    /// Nothing fetched yet, or the copy is older than `ttl`.
    Fresh,
    /// The copy is fresh but lacks the `kid`.
    Kid,
}

#[derive(Default)]
struct Cached {
    keys: Option<Arc<KeySet>>,
    fetched_at: Option<Instant>,
    /// Last fetch that a `kid` missing from a fresh copy asked for.
    last_kid_refetch: Option<Instant>,
    last_failure: Option<Instant>,
}

/// The cached JWKS of one source; shared by every partner naming the same source.
pub(crate) struct JwksCache {
    source: JwksSource,
    client: Option<reqwest::Client>,
    ttl: Duration,
    cooldown: Duration,
    cached: parking_lot::Mutex<Cached>,
    /// Held while fetching: one fetch at a time.
    fetching: tokio::sync::Mutex<()>,
    fetches: AtomicU64,
}

impl JwksCache {
    /// A cache for `source`; `ca_pem` replaces the platform roots for an `https://` source.
    pub fn new(
        source: JwksSource,
        ca_pem: Option<&[u8]>,
        ttl: Duration,
        cooldown: Duration,
    ) -> Result<JwksCache, String> {
        let client = match &source {
            JwksSource::File(_) => None,
            JwksSource::Url(_) => Some(https_client(ca_pem)?),
        };
        Ok(JwksCache {
            source,
            client,
            ttl,
            cooldown,
            cached: parking_lot::Mutex::new(Cached::default()),
            fetching: tokio::sync::Mutex::new(()),
            fetches: AtomicU64::new(0),
        })
    }

    /// How many fetches were attempted so far.
    #[cfg(test)]
    pub fn fetches(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    /// The key for `kid`, fetching the document when it is missing, stale, or lacks the
    /// `kid` and the cool-down allows a refetch.
    pub async fn key(&self, kid: Option<&str>) -> Result<Arc<Jwk>, KeyLookupError> {
        let need = match self.lookup(kid, Instant::now()) {
            Ok(key) => return Ok(key),
            Err(need) => need,
        };
        let _guard = self.fetching.lock().await;
        // Someone else may have fetched while this request waited.
        let now = Instant::now();
        let need = match self.lookup(kid, now) {
            Ok(key) => return Ok(key),
            Err(n) => n.max_with(need),
        };
        if !self.may_fetch(need, now) {
            return Err(match need {
                Need::Kid => KeyLookupError::UnknownKid,
                Need::Fresh => KeyLookupError::Unavailable,
            });
        }
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let fetched = self.fetch().await;
        let mut c = self.cached.lock();
        let set = match fetched {
            Ok(set) => Arc::new(set),
            Err(reason) => {
                c.last_failure = Some(Instant::now());
                tracing::warn!(jwks = %self.source_name(), reason = %reason, "JWKS fetch failed");
                return Err(KeyLookupError::Unavailable);
            }
        };
        c.keys = Some(Arc::clone(&set));
        c.fetched_at = Some(now);
        c.last_failure = None;
        let found = set.find(kid);
        // A refetch asked for by a kid, or a fetch that still lacks the kid, starts the
        // cool-down: the next unknown kid waits for it to pass.
        if need == Need::Kid || (found.is_none() && kid.is_some()) {
            c.last_kid_refetch = Some(now);
        }
        found.ok_or(KeyLookupError::UnknownKid)
    }

    /// The key from a fresh cached copy, or why a fetch is needed.
    fn lookup(&self, kid: Option<&str>, now: Instant) -> Result<Arc<Jwk>, Need> {
        let c = self.cached.lock();
        let fresh = c
            .fetched_at
            .is_some_and(|t| now.saturating_duration_since(t) < self.ttl);
        match (&c.keys, fresh) {
            (Some(set), true) => set.find(kid).ok_or(Need::Kid),
            _ => Err(Need::Fresh),
        }
    }

    fn may_fetch(&self, need: Need, now: Instant) -> bool {
        let c = self.cached.lock();
        let within = |t: Option<Instant>, d: Duration| {
            t.is_some_and(|t| now.saturating_duration_since(t) < d)
        };
        if within(c.last_failure, FAILURE_BACKOFF.min(self.cooldown)) {
            return false;
        }
        need == Need::Fresh || !within(c.last_kid_refetch, self.cooldown)
    }

    async fn fetch(&self) -> Result<KeySet, String> {
        let bytes = match (&self.source, &self.client) {
            (JwksSource::File(path), _) => read_file(path).await?,
            (JwksSource::Url(url), Some(client)) => fetch_url(client, url).await?,
            (JwksSource::Url(_), None) => return Err("no HTTPS client".to_owned()),
        };
        KeySet::parse(&bytes)
    }

    fn source_name(&self) -> String {
        match &self.source {
            JwksSource::File(p) => p.display().to_string(),
            JwksSource::Url(u) => u.clone(),
        }
    }
}

impl Need {
    /// A stale copy needs a plain fetch even if the first look only missed a `kid`.
    fn max_with(self, other: Need) -> Need {
        if self == Need::Fresh || other == Need::Fresh {
            Need::Fresh
        } else {
            Need::Kid
        }
    }
}

/// HTTPS only, no redirects, no proxy from the environment, bounded in time.
fn https_client(ca_pem: Option<&[u8]>) -> Result<reqwest::Client, String> {
    let mut builder = reqwest::Client::builder()
        .https_only(true)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(FETCH_TIMEOUT);
    if let Some(pem) = ca_pem {
        let certs = reqwest::Certificate::from_pem_bundle(pem)
            .map_err(|_| "ca_file is not a PEM certificate bundle".to_owned())?;
        if certs.is_empty() {
            return Err("ca_file holds no certificate".to_owned());
        }
        builder = builder.tls_certs_only(certs);
    }
    builder
        .build()
        .map_err(|e| format!("cannot set up the HTTPS client: {e}"))
}

async fn fetch_url(client: &reqwest::Client, url: &str) -> Result<Vec<u8>, String> {
    let mut resp = client
        .get(url)
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| format!("request failed: {}", e.without_url()))?;
    if resp.status() != reqwest::StatusCode::OK {
        return Err(format!("answered HTTP {}", resp.status().as_u16()));
    }
    if resp
        .content_length()
        .is_some_and(|n| n > MAX_JWKS_BYTES as u64)
    {
        return Err(format!("larger than {MAX_JWKS_BYTES} bytes"));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| format!("reading the answer failed: {}", e.without_url()))?
    {
        if body.len() + chunk.len() > MAX_JWKS_BYTES {
            return Err(format!("larger than {MAX_JWKS_BYTES} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

async fn read_file(path: &std::path::Path) -> Result<Vec<u8>, String> {
    let file = tokio::fs::File::open(path)
        .await
        .map_err(|e| format!("cannot open: {e}"))?;
    let mut body = Vec::new();
    file.take(MAX_JWKS_BYTES as u64 + 1)
        .read_to_end(&mut body)
        .await
        .map_err(|e| format!("cannot read: {e}"))?;
    if body.len() > MAX_JWKS_BYTES {
        return Err(format!("larger than {MAX_JWKS_BYTES} bytes"));
    }
    Ok(body)
}
