//! Gateway access tokens (RFC 9068-style JWTs, `typ: at+jwt`).
//!
//! Takes the gateway signing keys, the claims of a new session, or a bearer token and an
//! injected `now`. Gives a signed token, or the verified claims. Fails with a
//! [`BearerError`] reason: `alg` must be exactly the algorithm of the key named by `kid`
//! (never `none` or HS*), then signature, `typ`, `iss`, `aud`, `exp`, `nbf`/`iat` and the
//! lifetime ceiling are checked. Whether the partner is still allowed is the caller's check.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::Header;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::BearerError;
use super::jws::{self, JwsError};
use super::keys::SigningKey;
use crate::config::MAX_TOKEN_LIFETIME;

/// The claims of a gatehouse access token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct AccessClaims {
    pub iss: String,
    pub aud: String,
    /// Partner id.
    pub sub: String,
    /// RFC 9068 §2.2: the client the token was issued to (the partner itself).
    pub client_id: String,
    /// Session id.
    pub sid: String,
    pub jti: String,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    /// Space-separated share names.
    pub scope: String,
    /// Authentication methods: `["pop"]` (proof of possession of a key) for a client
    /// assertion; for a token exchange, the gateway's verdict on the IdP's login
    /// (`federation::mfa`).
    pub amr: Vec<String>,
    /// Id of the partner key that signed the client assertion (client credentials only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pkid: Option<String>,
    /// Issuer of the subject token (token exchange only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idp: Option<String>,
}

/// What the access token checks compare against (seconds, strings from the config).
pub(crate) struct AccessRules<'a> {
    pub issuer: &'a str,
    pub audience: &'a str,
    pub leeway: i64,
}

/// Signs `claims` with `key`, header `{alg, kid, typ: "at+jwt"}`.
pub(crate) fn mint(key: &SigningKey, claims: &AccessClaims) -> Option<String> {
    let mut header = Header::new(key.alg.jwt());
    header.kid = Some(key.kid.clone());
    header.typ = Some("at+jwt".to_string());
    jsonwebtoken::encode(&header, claims, &key.encoding).ok()
}

/// What does not depend on the time: header, key, signature, `typ`, `iss`, `aud`. The same
/// token always gives the same answer (for the same keys and rules), so a success can be
/// remembered; [`check_times`] must still pass on every use.
pub(crate) fn verify_signed(
    keys: &[SigningKey],
    token: &str,
    rules: &AccessRules<'_>,
) -> Result<AccessClaims, BearerError> {
    let fail = |reason| Err(BearerError::new(reason));
    let Ok(header) = jws::peek_header(token) else {
        return fail("token_malformed");
    };
    let Some(kid) = header.kid.as_deref() else {
        return fail("token_unknown_kid");
    };
    let Some(key) = keys.iter().find(|k| k.kid == kid) else {
        return fail("token_unknown_kid");
    };
    if header.alg != key.alg.as_str() {
        return fail("token_bad_alg");
    }
    let typ_ok = header.typ.as_deref().is_some_and(|t| {
        t.eq_ignore_ascii_case("at+jwt") || t.eq_ignore_ascii_case("application/at+jwt")
    });
    if !typ_ok {
        return fail("token_wrong_type");
    }
    let claims = match jws::verify(token, &key.decoding, key.alg) {
        Ok(claims) => claims,
        Err(JwsError::BadAlg) => return fail("token_bad_alg"),
        Err(JwsError::BadSignature) => return fail("token_bad_signature"),
        Err(JwsError::Malformed) => return fail("token_malformed"),
    };
    let Some(c) = jws::claims::<AccessClaims>(claims) else {
        return fail("token_malformed");
    };
    if c.iss != rules.issuer {
        return fail("token_wrong_issuer");
    }
    if c.aud != rules.audience {
        return fail("token_wrong_audience");
    }
    Ok(c)
}

/// Expiry, not-before and the lifetime ceiling of verified claims at `now`.
pub(crate) fn check_times(
    c: &AccessClaims,
    rules: &AccessRules<'_>,
    now: i64,
) -> Result<(), BearerError> {
    let fail = |reason| Err(BearerError::new(reason));
    if now >= c.exp.saturating_add(rules.leeway) {
        return fail("token_expired");
    }
    let not_before = c.nbf.max(c.iat);
    if not_before > now.saturating_add(rules.leeway) {
        return fail("token_not_yet_valid");
    }
    let max = i64::try_from(MAX_TOKEN_LIFETIME.as_secs()).unwrap_or(i64::MAX);
    if c.exp.saturating_sub(c.iat) > max || c.exp < c.iat {
        return fail("token_bad_lifetime");
    }
    Ok(())
}

/// Most verified tokens remembered; beyond it the expired ones go, and if none has expired
/// the memory starts over.
const VERIFIED_MAX: usize = 4096;

/// Access tokens whose signature and static claims were verified, by SHA-256 of the whole
/// token: a partner's next request with the same token skips the signature check (an Ed25519
/// verification is most of the CPU a small GET costs the gateway). Only successes are kept,
/// and only for this set of keys and rules: a reload builds a new authority with an empty
/// memory. The time checks and everything about the partner run on every request.
#[derive(Default)]
pub(crate) struct VerifiedTokens(parking_lot::Mutex<HashMap<[u8; 32], Arc<AccessClaims>>>);

impl VerifiedTokens {
    /// The claims of `token`, verified now or before.
    pub(crate) fn verify(
        &self,
        keys: &[SigningKey],
        token: &str,
        rules: &AccessRules<'_>,
        now: i64,
    ) -> Result<Arc<AccessClaims>, BearerError> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let known = self.0.lock().get(&digest).cloned();
        let c = match known {
            Some(c) => c,
            None => {
                let c = Arc::new(verify_signed(keys, token, rules)?);
                // Only tokens usable now take a place.
                check_times(&c, rules, now)?;
                let mut map = self.0.lock();
                if map.len() >= VERIFIED_MAX {
                    map.retain(|_, c| c.exp.saturating_add(rules.leeway) > now);
                    // Mostly live tokens: start over rather than scan again on every insert.
                    if map.len() >= VERIFIED_MAX * 3 / 4 {
                        map.clear();
                    }
                }
                map.insert(digest, Arc::clone(&c));
                return Ok(c);
            }
        };
        check_times(&c, rules, now)?;
        Ok(c)
    }
}

/// Token lifetime in whole seconds: the requested (or default) one, capped by the partner's
/// `max_session`, the configured maximum, [`MAX_TOKEN_LIFETIME`] and the partner's
/// remaining validity. Zero means no token may be issued.
pub(crate) fn lifetime(
    requested: Option<u64>,
    default: Duration,
    caps: &[Duration],
    remaining_secs: Option<i64>,
) -> u64 {
    let mut secs = requested.unwrap_or(default.as_secs());
    for cap in caps.iter().chain([&MAX_TOKEN_LIFETIME]) {
        secs = secs.min(cap.as_secs());
    }
    if let Some(left) = remaining_secs {
        secs = secs.min(u64::try_from(left).unwrap_or(0));
    }
    secs
}
