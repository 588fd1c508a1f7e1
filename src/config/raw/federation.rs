//! The `[federation]` table of a partner file (RFC 8693 token exchange with the partner's
//! own identity provider). Checked and defaulted in `load::federation`.

use serde::Deserialize;
use toml::Spanned;

use super::HumanDuration;

/// `[federation]` in `partners/<id>.toml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FederationTable {
    pub issuer: Spanned<String>,
    pub audience: Spanned<String>,
    pub jwks: Spanned<String>,
    pub ca_file: Option<Spanned<String>>,
    pub tenant_claim: Option<Spanned<String>>,
    pub tenant: Option<Spanned<String>>,
    pub algorithms: Option<Spanned<Vec<Spanned<String>>>>,
    pub max_token_age: Option<Spanned<HumanDuration>>,
    pub clock_skew: Option<Spanned<HumanDuration>>,
    pub mfa_acr: Option<Vec<Spanned<String>>>,
    pub jwks_cache_ttl: Option<Spanned<HumanDuration>>,
    pub jwks_refetch_cooldown: Option<Spanned<HumanDuration>>,
}
