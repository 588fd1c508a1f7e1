//! A partner's own identity provider: the `[federation]` table of a partner file, validated.
//!
//! Read by the token endpoint's RFC 8693 token exchange (`crate::auth`): which issuer's
//! tokens stand for this partner, for which audience, where the issuer's keys are, and how
//! old a token may be. Built by `config::load`; nothing here reads files or the network.

use std::path::PathBuf;
use std::time::Duration;

/// JWS algorithms a federation may allow. `none` and the HMAC family never: the gateway
/// holds no secret shared with an identity provider.
pub const FEDERATION_ALGORITHMS: [&str; 9] = [
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA",
];

/// Allowed algorithms when `algorithms` is not set.
pub const DEFAULT_FEDERATION_ALGORITHMS: [&str; 3] = ["RS256", "ES256", "EdDSA"];

/// A partner's identity provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Federation {
    /// Exact `iss` of the subject tokens (an `https://` URL).
    pub issuer: String,
    /// What the subject token's `aud` must contain (the client id gatehouse has at the IdP).
    pub audience: String,
    /// Where the issuer's public keys (a JWKS document) are.
    pub jwks: JwksSource,
    /// Trust only these CA certificates (PEM file) when fetching an `https://` JWKS; `None`:
    /// the platform's roots.
    pub ca_file: Option<PathBuf>,
    /// The claim and value that pick this partner out of a multi-tenant issuer.
    pub tenant: Option<TenantMatch>,
    /// Accepted `alg` values, each one of [`FEDERATION_ALGORITHMS`].
    pub algorithms: Vec<String>,
    /// Oldest subject token accepted, by its `iat`.
    pub max_token_age: Duration,
    /// Clock skew tolerated on `exp`, `nbf` and `iat`.
    pub clock_skew: Duration,
    /// `acr` values that by themselves mean the user passed multi-factor authentication.
    pub mfa_acr: Vec<String>,
    /// How long a fetched JWKS is used before it is fetched again.
    pub jwks_cache_ttl: Duration,
    /// Least time between two fetches caused by an unknown `kid`.
    pub jwks_refetch_cooldown: Duration,
}

/// Where a JWKS document comes from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum JwksSource {
    /// An absolute path (relative ones are resolved against the partner file's directory).
    File(PathBuf),
    /// An `https://` URL.
    Url(String),
}

/// `tenant_claim = tenant`: the subject token's claim `claim` must be the string `value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantMatch {
    pub claim: String,
    pub value: String,
}
