//! RFC 7523 client assertions: the partner proves possession of its private key.
//!
//! Takes the compact JWT from `client_assertion`, the claimed `client_id`, that partner's
//! public keys and an injected `now`. Gives the verified assertion (key id, `jti`, and how long
//! it must be remembered). Fails with a [`TokenError`]: everything that can go wrong before
//! the signature is verified (bad shape, unknown `kid`, wrong `alg`, bad signature) answers
//! with the same generic `invalid_client` as an unknown partner; claim problems after a good
//! signature get a precise description. [`ReplayCache`] makes each `jti` single-use.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};

use parking_lot::Mutex;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::endpoint::TokenError;
use super::jws::{self, JwsError};
use super::keys::PublicKey;

/// Longest `jti` accepted.
const MAX_JTI: usize = 256;

/// The checks a client assertion must pass (all in seconds).
pub(crate) struct AssertionRules<'a> {
    /// The `aud` the assertion must name: the token endpoint URL.
    pub token_url: &'a str,
    /// Longest `exp - now` (and `exp - iat`).
    pub max_lifetime: i64,
    /// Clock skew tolerated on `exp`, `nbf`, `iat`.
    pub leeway: i64,
}

/// A client assertion that passed every check except the replay check.
#[derive(Debug)]
pub(crate) struct VerifiedAssertion {
    /// The id of the partner key that signed it.
    pub key_id: String,
    pub jti: String,
    /// Until when (epoch seconds) the assertion would still be accepted: `exp + leeway`.
    pub usable_until: i64,
}

#[derive(Deserialize)]
struct AssertionClaims {
    iss: String,
    sub: String,
    aud: Audience,
    exp: i64,
    nbf: Option<i64>,
    iat: Option<i64>,
    jti: String,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    fn contains(&self, aud: &str) -> bool {
        match self {
            Audience::One(a) => a == aud,
            Audience::Many(list) => list.iter().any(|a| a == aud),
        }
    }
}

/// Verifies the signature with one of `keys`, then the claims.
pub(crate) fn verify_assertion(
    keys: &[PublicKey],
    assertion: &str,
    client_id: &str,
    rules: &AssertionRules<'_>,
    now: i64,
) -> Result<VerifiedAssertion, TokenError> {
    let header = jws::peek_header(assertion)
        .map_err(|_| TokenError::invalid_client("assertion_malformed"))?;
    let by_kid: Vec<&PublicKey> = match &header.kid {
        Some(kid) => keys.iter().filter(|k| &k.id == kid).collect(),
        None => keys.iter().collect(),
    };
    if by_kid.is_empty() {
        return Err(TokenError::invalid_client("unknown_key_id"));
    }
    let candidates = by_kid.into_iter().filter(|k| k.alg.as_str() == header.alg);
    let mut verified = None;
    let mut tried = false;
    for key in candidates {
        tried = true;
        match jws::verify(assertion, &key.key, key.alg) {
            Ok(claims) => {
                verified = Some((key, claims));
                break;
            }
            Err(JwsError::BadSignature) => continue,
            Err(JwsError::BadAlg) => return Err(TokenError::invalid_client("assertion_bad_alg")),
            Err(JwsError::Malformed) => {
                return Err(TokenError::invalid_client("assertion_malformed"));
            }
        }
    }
    let Some((key, claims)) = verified else {
        let reason = if tried {
            "bad_assertion_signature"
        } else {
            "assertion_bad_alg"
        };
        return Err(TokenError::invalid_client(reason));
    };
    let claims: AssertionClaims = jws::claims(claims).ok_or_else(|| {
        let desc = "client assertion must carry iss, sub, aud, exp and jti";
        TokenError::bad_assertion("assertion_missing_claims", desc)
    })?;
    check_claims(&claims, client_id, rules, now)?;
    Ok(VerifiedAssertion {
        key_id: key.id.clone(),
        jti: claims.jti,
        usable_until: claims.exp.saturating_add(rules.leeway),
    })
}

fn check_claims(
    c: &AssertionClaims,
    client_id: &str,
    rules: &AssertionRules<'_>,
    now: i64,
) -> Result<(), TokenError> {
    let refuse = |reason, desc| Err(TokenError::bad_assertion(reason, desc));
    if c.iss != client_id {
        return refuse(
            "assertion_wrong_issuer",
            "client assertion iss must be the client_id",
        );
    }
    if c.sub != client_id {
        return refuse(
            "assertion_wrong_subject",
            "client assertion sub must be the client_id",
        );
    }
    if !c.aud.contains(rules.token_url) {
        return refuse(
            "assertion_wrong_audience",
            "client assertion aud must be the token URL",
        );
    }
    if c.jti.is_empty() || c.jti.len() > MAX_JTI {
        return refuse(
            "assertion_bad_jti",
            "client assertion jti must be 1 to 256 characters",
        );
    }
    if now >= c.exp.saturating_add(rules.leeway) {
        return refuse("assertion_expired", "client assertion has expired");
    }
    let too_long = "client assertion lifetime is too long";
    if c.exp.saturating_sub(now) > rules.max_lifetime.saturating_add(rules.leeway) {
        return refuse("assertion_lifetime_too_long", too_long);
    }
    let not_yet = "client assertion is not valid yet";
    if let Some(iat) = c.iat {
        if iat > now.saturating_add(rules.leeway) {
            return refuse("assertion_not_yet_valid", not_yet);
        }
        if c.exp.saturating_sub(iat) > rules.max_lifetime {
            return refuse("assertion_lifetime_too_long", too_long);
        }
    }
    if c.nbf
        .is_some_and(|nbf| nbf > now.saturating_add(rules.leeway))
    {
        return refuse("assertion_not_yet_valid", not_yet);
    }
    Ok(())
}

/// Remembers every accepted `(client_id, jti)` until its assertion could no longer be used.
///
/// Entries are SHA-256 digests, so memory per entry is fixed whatever the `jti`. Bounded in
/// total and per partner; when full it refuses new assertions (fail closed) instead of
/// forgetting ones that could still be replayed. Shared across config reloads.
pub(crate) struct ReplayCache {
    inner: Mutex<ReplayInner>,
    max_total: usize,
    max_per_partner: usize,
}

#[derive(Default)]
struct ReplayInner {
    seen: HashSet<[u8; 32]>,
    /// Min-heap by expiry: (usable_until, digest, partner).
    expiry: BinaryHeap<Reverse<(i64, [u8; 32], String)>>,
    per_partner: HashMap<String, usize>,
}

/// Why the replay cache refused an assertion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReplayError {
    Replayed,
    Full,
}

impl ReplayCache {
    /// Default bound on remembered assertions (about 100 bytes each).
    pub const DEFAULT_MAX: usize = 100_000;

    pub fn new(max_total: usize, max_per_partner: usize) -> ReplayCache {
        ReplayCache {
            inner: Mutex::default(),
            max_total,
            max_per_partner,
        }
    }

    /// Records `(client_id, jti)` until `until`; refuses one already seen.
    pub fn check_and_insert(
        &self,
        client_id: &str,
        jti: &str,
        until: i64,
        now: i64,
    ) -> Result<(), ReplayError> {
        let digest = replay_key(client_id, jti);
        let mut inner = self.inner.lock();
        inner.prune(now);
        if inner.seen.contains(&digest) {
            return Err(ReplayError::Replayed);
        }
        let count = inner.per_partner.get(client_id).copied().unwrap_or(0);
        if inner.seen.len() >= self.max_total || count >= self.max_per_partner {
            return Err(ReplayError::Full);
        }
        inner.seen.insert(digest);
        inner
            .expiry
            .push(Reverse((until, digest, client_id.to_string())));
        *inner.per_partner.entry(client_id.to_string()).or_default() += 1;
        Ok(())
    }

    /// Number of remembered assertions.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.inner.lock().seen.len()
    }
}

impl ReplayInner {
    /// Forgets assertions that can no longer be used at `now`.
    fn prune(&mut self, now: i64) {
        while let Some(Reverse((until, _, _))) = self.expiry.peek() {
            if *until > now {
                break;
            }
            let Some(Reverse((_, digest, partner))) = self.expiry.pop() else {
                break;
            };
            self.seen.remove(&digest);
            if let Some(n) = self.per_partner.get_mut(&partner) {
                *n -= 1;
                if *n == 0 {
                    self.per_partner.remove(&partner);
                }
            }
        }
    }
}

/// A fixed-size, unambiguous key for `(client_id, jti)`.
fn replay_key(client_id: &str, jti: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update((client_id.len() as u64).to_be_bytes());
    h.update(client_id.as_bytes());
    h.update(jti.as_bytes());
    h.finalize().into()
}
