//! Federation: partners whose users log in at the partner's own OpenID Connect provider.
//!
//! Takes each partner's [`Federation`] settings and a subject token (a JWT from that IdP).
//! Gives the partner the token stands for ([`Registry::resolve`], from the unverified `iss`
//! and tenant claim, used only to pick the keys and the lockout key) and the verified facts
//! of the login ([`FederatedPartner::verify`]): signature with a key from the IdP's JWKS
//! ([`jwks`]), `alg` from the partner's list and the key's type, exact `iss`, `aud`
//! containing the configured audience, `exp`/`nbf`/`iat` with the configured clock skew and
//! token age, and the tenant claim. Fails with a stable reason code (`subject_token_*`,
//! `jwks_unavailable`); the token endpoint answers every `subject_token_*` one the same way,
//! and `jwks_unavailable` (nothing the caller sent is wrong) as a 503.
//! Nothing here logs a token.

pub(crate) mod jwks;
pub(crate) mod mfa;
pub(crate) mod request;

#[cfg(test)]
mod tests;

/// The reason when the identity provider's JWKS cannot be fetched.
pub(crate) const JWKS_UNAVAILABLE: &str = "jwks_unavailable";

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use serde_json::{Map, Value};

use super::jws::{self, JwsError};
use crate::config::{Federation, JwksSource, TenantMatch};
use jwks::{JwksCache, KeyLookupError};

/// What a federated partner's subject tokens are checked against.
pub(crate) struct FederatedPartner {
    pub issuer: String,
    audience: String,
    tenant: Option<TenantMatch>,
    algorithms: Vec<Algorithm>,
    max_age: i64,
    skew: i64,
    pub mfa_acr: Vec<String>,
    jwks: Arc<JwksCache>,
}

/// The verified facts of a subject token.
#[derive(Debug)]
pub(crate) struct Login {
    /// `kid` of the IdP key that signed it.
    pub kid: Option<String>,
    pub exp: i64,
    pub amr: Vec<String>,
    pub acr: Option<String>,
}

/// Identity of a JWKS cache: same source, same trust, same timing means one shared cache.
#[derive(Clone, PartialEq, Eq, Hash)]
struct CacheKey {
    source: JwksSource,
    ca_file: Option<PathBuf>,
    ca_pem: Option<Vec<u8>>,
    ttl: Duration,
    cooldown: Duration,
}

/// The JWKS caches, kept across configuration reloads (by [`CacheKey`]).
#[derive(Default)]
pub(crate) struct Caches(parking_lot::Mutex<HashMap<CacheKey, Arc<JwksCache>>>);

impl Caches {
    /// The cache for `fed`'s JWKS, reusing one with the same key. `ca_file` is read here.
    fn get(&self, fed: &Federation) -> Result<Arc<JwksCache>, String> {
        let ca_pem =
            match &fed.ca_file {
                None => None,
                Some(path) => Some(std::fs::read(path).map_err(|e| {
                    format!("cannot read federation.ca_file {}: {e}", path.display())
                })?),
            };
        let key = CacheKey {
            source: fed.jwks.clone(),
            ca_file: fed.ca_file.clone(),
            ca_pem,
            ttl: fed.jwks_cache_ttl,
            cooldown: fed.jwks_refetch_cooldown,
        };
        let mut map = self.0.lock();
        if let Some(cache) = map.get(&key) {
            return Ok(Arc::clone(cache));
        }
        let cache = JwksCache::new(
            key.source.clone(),
            key.ca_pem.as_deref(),
            key.ttl,
            key.cooldown,
        )?;
        let cache = Arc::new(cache);
        map.insert(key, Arc::clone(&cache));
        Ok(cache)
    }

    /// Drops caches no partner of the current configuration uses.
    fn retain(&self, used: &[Arc<JwksCache>]) {
        self.0
            .lock()
            .retain(|_, c| used.iter().any(|u| Arc::ptr_eq(u, c)));
    }
}

/// Every federated partner, indexed by issuer.
#[derive(Default)]
pub(crate) struct Registry {
    partners: HashMap<String, FederatedPartner>,
    /// issuer -> partner ids.
    by_issuer: HashMap<String, Vec<String>>,
}

impl Registry {
    /// Builds the registry from each partner's settings, sharing `caches`.
    pub fn build<'a>(
        feds: impl Iterator<Item = (&'a String, &'a Federation)>,
        caches: &Caches,
    ) -> Result<Registry, (String, String)> {
        let mut reg = Registry::default();
        let mut used = Vec::new();
        for (id, fed) in feds {
            let cache = caches.get(fed).map_err(|e| (id.clone(), e))?;
            used.push(Arc::clone(&cache));
            let algorithms = fed
                .algorithms
                .iter()
                .map(|a| a.parse::<Algorithm>())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| (id.clone(), "unknown algorithm".to_owned()))?;
            let secs = |d: Duration| i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
            let partner = FederatedPartner {
                issuer: fed.issuer.clone(),
                audience: fed.audience.clone(),
                tenant: fed.tenant.clone(),
                algorithms,
                max_age: secs(fed.max_token_age),
                skew: secs(fed.clock_skew),
                mfa_acr: fed.mfa_acr.clone(),
                jwks: cache,
            };
            reg.by_issuer
                .entry(fed.issuer.clone())
                .or_default()
                .push(id.clone());
            reg.partners.insert(id.clone(), partner);
        }
        caches.retain(&used);
        Ok(reg)
    }

    pub fn get(&self, id: &str) -> Option<&FederatedPartner> {
        self.partners.get(id)
    }

    /// The partner an (unverified) subject token claims to be from: by `iss`, and among
    /// partners sharing that issuer by their tenant claim. A token that more than one
    /// partner would accept is refused (`gatehouse check` prevents such configurations).
    pub fn resolve(&self, subject_token: &str) -> Result<&str, &'static str> {
        let claims = unverified_claims(subject_token).ok_or("subject_token_malformed")?;
        let iss = claims.get("iss").and_then(Value::as_str).unwrap_or("");
        let Some(ids) = self.by_issuer.get(iss) else {
            return Err("subject_token_unknown_issuer");
        };
        let mut matching = ids.iter().filter(|id| {
            self.partners[id.as_str()]
                .tenant
                .as_ref()
                .is_none_or(|t| tenant_matches(&claims, t))
        });
        match (matching.next(), matching.next()) {
            (Some(id), None) => Ok(id),
            (None, _) => Err("subject_token_unknown_tenant"),
            (Some(_), Some(_)) => Err("subject_token_ambiguous_issuer"),
        }
    }
}

impl FederatedPartner {
    /// Verifies a subject token for this partner at `now` (epoch seconds).
    pub async fn verify(&self, token: &str, now: i64) -> Result<Login, &'static str> {
        let header = jws::peek_header(token).map_err(|_| "subject_token_malformed")?;
        let alg: Algorithm = header.alg.parse().map_err(|_| "subject_token_bad_alg")?;
        if !self.algorithms.contains(&alg) {
            return Err("subject_token_bad_alg");
        }
        let key = self
            .jwks
            .key(header.kid.as_deref())
            .await
            .map_err(|e| match e {
                KeyLookupError::UnknownKid => "subject_token_unknown_kid",
                KeyLookupError::Unavailable => JWKS_UNAVAILABLE,
            })?;
        if !key.algs.contains(&alg) {
            return Err("subject_token_bad_alg");
        }
        let claims = jws::verify_alg(token, &key.key, alg).map_err(|e| match e {
            JwsError::BadSignature => "subject_token_bad_signature",
            JwsError::BadAlg => "subject_token_bad_alg",
            JwsError::Malformed => "subject_token_malformed",
        })?;
        let login = self.check_claims(&claims, now)?;
        Ok(Login {
            kid: key.kid.clone(),
            ..login
        })
    }

    fn check_claims(&self, c: &Map<String, Value>, now: i64) -> Result<Login, &'static str> {
        let str_claim = |name: &str| c.get(name).and_then(Value::as_str);
        let int_claim = |name: &str| c.get(name).and_then(Value::as_i64);
        if str_claim("iss") != Some(self.issuer.as_str()) {
            return Err("subject_token_unknown_issuer");
        }
        let aud_ok = match c.get("aud") {
            Some(Value::String(a)) => *a == self.audience,
            Some(Value::Array(list)) => list.iter().any(|a| *a == *self.audience),
            _ => false,
        };
        if !aud_ok {
            return Err("subject_token_wrong_audience");
        }
        if let Some(t) = &self.tenant
            && !tenant_matches(c, t)
        {
            return Err("subject_token_unknown_tenant");
        }
        let (Some(exp), Some(iat)) = (int_claim("exp"), int_claim("iat")) else {
            return Err("subject_token_missing_claims");
        };
        if now >= exp.saturating_add(self.skew) {
            return Err("subject_token_expired");
        }
        let nbf = int_claim("nbf").unwrap_or(iat).max(iat);
        if nbf > now.saturating_add(self.skew) {
            return Err("subject_token_not_yet_valid");
        }
        if now.saturating_sub(iat) > self.max_age.saturating_add(self.skew) {
            return Err("subject_token_too_old");
        }
        let amr = match c.get("amr") {
            None => Vec::new(),
            Some(Value::Array(list)) => list
                .iter()
                .map(|v| v.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
                .ok_or("subject_token_malformed")?,
            Some(_) => return Err("subject_token_malformed"),
        };
        Ok(Login {
            kid: None,
            exp,
            amr,
            acr: str_claim("acr").map(str::to_owned),
        })
    }
}

fn tenant_matches(claims: &Map<String, Value>, t: &TenantMatch) -> bool {
    claims.get(&t.claim).and_then(Value::as_str) == Some(t.value.as_str())
}

/// The payload of a compact JWS, not verified: only to choose keys.
fn unverified_claims(token: &str) -> Option<Map<String, Value>> {
    let mut parts = token.split('.');
    let (Some(_), Some(payload), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    let bytes = URL_SAFE_NO_PAD.decode(payload).ok()?;
    match serde_json::from_slice(&bytes).ok()? {
        Value::Object(map) => Some(map),
        _ => None,
    }
}
