//! Partner identity: the token endpoint, access tokens and the JWKS document.
//!
//! Takes the typed [`Config`]: gateway signing keys (PKCS#8 PEM files,
//! Ed25519 or P-256) and every partner's public keys (Ed25519, P-256, RSA >= 2048 bits).
//! Gives an [`Authority`] that
//! - answers `POST /v1/token` ([`Authority::token_request`]): OAuth 2.0 client credentials
//!   with an RFC 7523 JWT client assertion signed by the partner's key, single-use (`jti`
//!   replay cache) ([`Authority::token`]); or an RFC 8693 token exchange of a JWT from the
//!   partner's own identity provider ([`Authority::exchange`], see `federation`); both with
//!   the partner's `external_id` compared in constant time;
//! - verifies the bearer tokens it issued ([`Authority::verify_bearer`]);
//! - publishes its public keys ([`Authority::jwks`]).
//!
//! Fails with [`AuthError`] at load time (which key, which file, why), [`TokenError`] at the
//! token endpoint (RFC 6749 §5.2 error for the client, stable `reason` for the audit) and
//! [`BearerError`] (a stable `reason`) on data requests. Unknown partner, bad signature and
//! wrong external id look identical to the client. Nothing here logs, and no error carries a
//! token, assertion, key or external id.
//!
//! Time is always injected (`now`), never read from the clock, except for the randomness in
//! new ULIDs.

mod access;
mod assertion;
pub mod client;
mod endpoint;
mod exchange;
pub(crate) mod federation;
mod jws;
mod keys;
mod session;

#[cfg(test)]
mod tests;

use endpoint::TOKEN_EXCHANGE;
pub use endpoint::{Form, JWT_BEARER, TokenError, read_form};
pub use federation::jwks::check_jwks;
pub use keys::{KeyAlg, check_public_key_pem};
pub use session::{BearerError, Issued, Session};

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::{Config, PartnerStatus};
use access::{AccessClaims, AccessRules};
use assertion::{AssertionRules, ReplayCache, ReplayError};
use keys::{PublicKey, SigningKey};

/// Largest clock skew tolerated, whatever `token.leeway` says.
const MAX_LEEWAY: Duration = Duration::from_secs(60);
/// Remembered client assertions per partner (the total is [`ReplayCache::DEFAULT_MAX`]).
const REPLAY_MAX_PER_PARTNER: usize = 10_000;

/// A configuration problem with key material, found when building an [`Authority`].
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("token.signing_keys is empty: at least one gateway signing key is needed")]
    NoSigningKey,
    #[error("signing key {id:?}: cannot read {}: {source}", file.display())]
    ReadSigningKey {
        id: String,
        file: PathBuf,
        source: std::io::Error,
    },
    #[error("signing key {id:?} in {}: {reason}", file.display())]
    BadSigningKey {
        id: String,
        file: PathBuf,
        reason: String,
    },
    #[error("signing key id {id:?} is listed more than once")]
    DuplicateSigningKey { id: String },
    #[error("partner {partner:?}, key {key:?} ({}): {reason}", file.display())]
    BadPartnerKey {
        partner: String,
        key: String,
        file: PathBuf,
        reason: String,
    },
    #[error("partner {partner:?}: key id {key:?} is listed more than once")]
    DuplicatePartnerKey { partner: String, key: String },
    #[error("partner {partner:?}, [federation]: {reason}")]
    Federation { partner: String, reason: String },
}

/// The token authority built from one configuration. `Send + Sync`; keep it in an `Arc` and
/// replace it on reload with [`Authority::reload`], which keeps the replay cache.
pub struct Authority {
    token_url: String,
    issuer: String,
    audience: String,
    default_lifetime: Duration,
    max_lifetime: Duration,
    max_assertion_lifetime: i64,
    leeway: i64,
    /// The first signs; all verify and are published.
    signing: Vec<SigningKey>,
    partners: HashMap<String, Partner>,
    replay: Arc<ReplayCache>,
    /// Partners with their own identity provider.
    federation: federation::Registry,
    /// JWKS caches, kept across reloads.
    jwks_caches: Arc<federation::Caches>,
    /// Access tokens already verified against `signing` (new with every authority).
    verified: access::VerifiedTokens,
}

/// What the authority keeps of a partner's configuration.
struct Partner {
    status: PartnerStatus,
    valid_until: Option<jiff::Timestamp>,
    /// SHA-256 of the external id: compared in constant time, never kept in clear here.
    external_id_digest: [u8; 32],
    max_session: Duration,
    keys: Vec<PublicKey>,
    /// Shares the partner has at least one grant on.
    shares: BTreeSet<String>,
    /// `(share, valid_until)` of each grant: tokens never outlive the grants in their scope.
    grant_ends: Vec<(String, Option<jiff::Timestamp>)>,
}

impl Authority {
    /// Loads the gateway signing keys and parses every partner's public keys.
    pub fn from_config(cfg: &Config) -> Result<Authority, AuthError> {
        let replay = ReplayCache::new(ReplayCache::DEFAULT_MAX, REPLAY_MAX_PER_PARTNER);
        Self::build(cfg, Arc::new(replay), Arc::default())
    }

    /// Builds the authority for a new configuration, keeping this one's replay cache so an
    /// assertion used before the reload cannot be used again after it, and the JWKS caches
    /// (with their cool-downs) of identity providers whose settings did not change.
    pub fn reload(&self, cfg: &Config) -> Result<Authority, AuthError> {
        Self::build(cfg, Arc::clone(&self.replay), Arc::clone(&self.jwks_caches))
    }

    fn build(
        cfg: &Config,
        replay: Arc<ReplayCache>,
        jwks_caches: Arc<federation::Caches>,
    ) -> Result<Authority, AuthError> {
        let t = &cfg.token;
        if t.signing_keys.is_empty() {
            return Err(AuthError::NoSigningKey);
        }
        let mut signing: Vec<SigningKey> = Vec::new();
        for sk in &t.signing_keys {
            if signing.iter().any(|k| k.kid == sk.id) {
                return Err(AuthError::DuplicateSigningKey { id: sk.id.clone() });
            }
            let pem =
                std::fs::read_to_string(&sk.file).map_err(|source| AuthError::ReadSigningKey {
                    id: sk.id.clone(),
                    file: sk.file.clone(),
                    source,
                })?;
            let key =
                SigningKey::from_pem(&sk.id, &pem).map_err(|reason| AuthError::BadSigningKey {
                    id: sk.id.clone(),
                    file: sk.file.clone(),
                    reason,
                })?;
            signing.push(key);
        }
        let mut partners = HashMap::new();
        for (id, p) in &cfg.partners {
            let mut keys: Vec<PublicKey> = Vec::new();
            for k in &p.keys {
                if keys.iter().any(|have| have.id == k.id) {
                    let (partner, key) = (id.clone(), k.id.clone());
                    return Err(AuthError::DuplicatePartnerKey { partner, key });
                }
                let (alg, key) =
                    keys::parse_public_key_pem(&k.public_key_pem).map_err(|reason| {
                        AuthError::BadPartnerKey {
                            partner: id.clone(),
                            key: k.id.clone(),
                            file: k.public_key_file.clone(),
                            reason,
                        }
                    })?;
                keys.push(PublicKey {
                    id: k.id.clone(),
                    alg,
                    key,
                });
            }
            let partner = Partner {
                status: p.status,
                valid_until: crate::policy::partner_end(p),
                external_id_digest: Sha256::digest(p.external_id.as_bytes()).into(),
                max_session: p.max_session,
                keys,
                shares: p.grants.iter().map(|g| g.share.clone()).collect(),
                grant_ends: p
                    .grants
                    .iter()
                    .map(|g| (g.share.clone(), g.conditions.valid_until))
                    .collect(),
            };
            partners.insert(id.clone(), partner);
        }
        let feds = cfg
            .partners
            .iter()
            .filter_map(|(id, p)| p.federation.as_ref().map(|f| (id, f)));
        let federation = federation::Registry::build(feds, &jwks_caches)
            .map_err(|(partner, reason)| AuthError::Federation { partner, reason })?;
        Ok(Authority {
            token_url: t.token_url.clone(),
            issuer: t.issuer.clone(),
            audience: t.audience.clone(),
            default_lifetime: t.default_lifetime,
            max_lifetime: t.max_lifetime,
            max_assertion_lifetime: secs(t.max_assertion_lifetime),
            leeway: secs(t.leeway.min(MAX_LEEWAY)),
            signing,
            partners,
            replay,
            federation,
            jwks_caches,
            verified: access::VerifiedTokens::default(),
        })
    }

    /// The JWKS document (RFC 7517) with every gateway public signing key.
    pub fn jwks(&self) -> serde_json::Value {
        let keys: Vec<serde_json::Value> = self.signing.iter().map(|k| k.jwk.clone()).collect();
        serde_json::json!({ "keys": keys })
    }

    /// Handles a `POST /v1/token` body (`application/x-www-form-urlencoded`).
    ///
    /// Order: form, grant type, partner exists, assertion signature and claims, replay,
    /// external id, partner status and validity, scope, lifetime.
    pub fn token(&self, body: &[u8], now: jiff::Timestamp) -> Result<Issued, TokenError> {
        self.token_form(read_form(body)?, now)
    }

    /// [`Authority::token`] on the parsed form.
    fn token_form(&self, form: Form, now: jiff::Timestamp) -> Result<Issued, TokenError> {
        let req = endpoint::parse_token_request(form)?;
        let id = req.client_id.as_str();
        let tag = |e: TokenError| e.with_partner(id);
        let now_s = now.as_second();
        let Some(partner) = self.partners.get(id) else {
            return Err(tag(TokenError::invalid_client("unknown_partner")));
        };
        let rules = AssertionRules {
            token_url: &self.token_url,
            max_lifetime: self.max_assertion_lifetime,
            leeway: self.leeway,
        };
        let assertion =
            assertion::verify_assertion(&partner.keys, &req.assertion, id, &rules, now_s)
                .map_err(tag)?;
        let until = assertion.usable_until;
        self.replay
            .check_and_insert(id, &assertion.jti, until, now_s)
            .map_err(|e| {
                tag(match e {
                    ReplayError::Replayed => TokenError::invalid_grant(
                        "assertion_replayed",
                        "client assertion was already used",
                    ),
                    ReplayError::Full => TokenError::unavailable("replay_cache_full"),
                })
            })?;
        let given: [u8; 32] = Sha256::digest(req.external_id.as_bytes()).into();
        if !bool::from(given.ct_eq(&partner.external_id_digest)) {
            return Err(tag(TokenError::invalid_client("wrong_external_id")));
        }
        if partner.status != PartnerStatus::Active {
            return Err(tag(TokenError::invalid_client("partner_suspended")));
        }
        if partner.valid_until.is_some_and(|v| now >= v) {
            return Err(tag(TokenError::invalid_client("partner_expired")));
        }
        let grant = Grant {
            scope: req.scope.as_deref(),
            duration: req.duration,
            end: None,
            amr: vec!["pop".to_string()],
            by: AuthenticatedBy::Key(assertion.key_id),
        };
        self.issue(id, partner, grant, now).map_err(tag)
    }

    /// Handles the form of a `POST /v1/token` (parsed once by [`read_form`]) of either grant:
    /// client credentials with a client assertion ([`Authority::token`]) or token exchange
    /// ([`Authority::exchange`]).
    pub async fn token_request(
        &self,
        form: Form,
        now: jiff::Timestamp,
    ) -> Result<Issued, TokenError> {
        if is_exchange(&form) {
            self.exchange_form(form, now).await
        } else {
            self.token_form(form, now)
        }
    }

    /// The partner a token request claims to come from, before anything is verified: the
    /// `client_id`, or for a token exchange without one the partner of the subject token's
    /// issuer (and tenant). Only for keying the lockout of failed attempts.
    pub fn claimed_partner(&self, form: &Form) -> Option<String> {
        if let Some(id) = form.get("client_id") {
            return Some(id.clone());
        }
        if !is_exchange(form) {
            return None;
        }
        let token = form.get("subject_token")?;
        self.federation.resolve(token).ok().map(str::to_owned)
    }

    /// Scope, lifetime and the signed access token, once the caller is authenticated and
    /// the partner active.
    fn issue(
        &self,
        id: &str,
        partner: &Partner,
        grant: Grant<'_>,
        now: jiff::Timestamp,
    ) -> Result<Issued, TokenError> {
        let now_s = now.as_second();
        let scopes = endpoint::resolve_scope(&partner.shares, grant.scope)?;
        let requested_scopes = grant.scope.map(|s| {
            s.split_ascii_whitespace()
                .take(64)
                .map(|s| s.chars().take(128).collect())
                .collect()
        });
        let in_scope = partner
            .grant_ends
            .iter()
            .filter(|(share, _)| scopes.contains(share));
        let deadline =
            crate::policy::deadline(partner.valid_until, in_scope.map(|(_, end)| *end), now);
        let remaining = [deadline.map(|v| v.as_second()), grant.end]
            .into_iter()
            .flatten()
            .min()
            .map(|end| end - now_s);
        let caps = [partner.max_session, self.max_lifetime];
        let life = access::lifetime(grant.duration, self.default_lifetime, &caps, remaining);
        if life == 0 {
            let desc = "no token lifetime is available for this client";
            return Err(TokenError::invalid_grant("lifetime_zero", desc));
        }
        let exp = now_s.saturating_add(i64::try_from(life).unwrap_or(i64::MAX));
        let (pkid, idp, key_id, issued_token_type) = match grant.by {
            AuthenticatedBy::Key(kid) => (Some(kid.clone()), None, Some(kid), None),
            AuthenticatedBy::Idp { issuer, kid } => (
                None,
                Some(issuer),
                kid,
                Some(federation::request::TOKEN_TYPE_ACCESS_TOKEN),
            ),
        };
        let claims = AccessClaims {
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            sub: id.to_string(),
            client_id: id.to_string(),
            sid: format!("s_{}", ulid::Ulid::new()),
            jti: ulid::Ulid::new().to_string(),
            iat: now_s,
            nbf: now_s,
            exp,
            scope: scopes.join(" "),
            amr: grant.amr,
            pkid,
            idp,
        };
        let signer = &self.signing[0];
        let Some(access_token) = access::mint(signer, &claims) else {
            return Err(TokenError::server_error("token_signing_failed"));
        };
        let Ok(expires_at) = jiff::Timestamp::from_second(exp) else {
            return Err(TokenError::server_error("time_out_of_range"));
        };
        Ok(Issued {
            access_token,
            expires_in: life,
            session_id: claims.sid,
            partner: claims.sub,
            key_id,
            scopes,
            requested_scopes,
            expires_at,
            issued_token_type,
            amr: claims.amr,
            idp: claims.idp,
        })
    }

    /// Verifies a bearer access token on a data request, against the current configuration:
    /// the partner must still exist, be active and valid, and still hold the key it used.
    pub fn verify_bearer(&self, token: &str, now: jiff::Timestamp) -> Result<Session, BearerError> {
        let rules = AccessRules {
            issuer: &self.issuer,
            audience: &self.audience,
            leeway: self.leeway,
        };
        let c = self
            .verified
            .verify(&self.signing, token, &rules, now.as_second())?;
        let fail = |reason| {
            Err(BearerError {
                reason,
                partner: Some(c.sub.clone()),
            })
        };
        let Some(partner) = self.partners.get(&c.sub) else {
            return fail("partner_unknown");
        };
        if partner.status != PartnerStatus::Active {
            return fail("partner_suspended");
        }
        if partner.valid_until.is_some_and(|v| now >= v) {
            return fail("partner_expired");
        }
        match (&c.pkid, &c.idp) {
            (Some(pkid), None) => {
                if !partner.keys.iter().any(|k| k.id == *pkid) {
                    return fail("partner_key_removed");
                }
            }
            (None, Some(idp)) => {
                if self.federation.get(&c.sub).is_none_or(|f| f.issuer != *idp) {
                    return fail("partner_federation_removed");
                }
            }
            _ => return Err(BearerError::new("token_malformed")),
        }
        let (Ok(issued_at), Ok(expires_at)) = (
            jiff::Timestamp::from_second(c.iat),
            jiff::Timestamp::from_second(c.exp),
        ) else {
            return Err(BearerError::new("token_malformed"));
        };
        Ok(Session {
            scopes: c
                .scope
                .split(' ')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
            partner: c.sub.clone(),
            session_id: c.sid.clone(),
            token_id: c.jti.clone(),
            issued_at,
            expires_at,
            amr: c.amr.clone(),
        })
    }
}

fn is_exchange(form: &Form) -> bool {
    form.get("grant_type").map(String::as_str) == Some(TOKEN_EXCHANGE)
}

impl fmt::Debug for Authority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kids: Vec<&str> = self.signing.iter().map(|k| k.kid.as_str()).collect();
        let mut partners: Vec<&String> = self.partners.keys().collect();
        partners.sort();
        f.debug_struct("Authority")
            .field("issuer", &self.issuer)
            .field("signing_keys", &kids)
            .field("partners", &partners)
            .finish_non_exhaustive()
    }
}

/// What a new token is issued for, once the caller is authenticated.
struct Grant<'a> {
    scope: Option<&'a str>,
    duration: Option<u64>,
    /// The token may not outlive this (epoch seconds): the subject token's `exp`.
    end: Option<i64>,
    amr: Vec<String>,
    by: AuthenticatedBy,
}

/// How the caller proved who it is.
enum AuthenticatedBy {
    /// A client assertion signed with the partner key of this id.
    Key(String),
    /// A subject token from the partner's identity provider, signed with key `kid`.
    Idp { issuer: String, kid: Option<String> },
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}
