//! The `POST /v1/token` request and its errors (RFC 6749 §4.4 and §5.2, RFC 7523 §2.2).
//!
//! Takes the `application/x-www-form-urlencoded` body. Gives a [`TokenRequest`] with every
//! required field present exactly once, and the scope a partner may get. Fails with a
//! [`TokenError`] carrying an RFC 6749 error code and client-safe description, plus a stable
//! audit reason. Values from the body (assertion, external id) never appear in any error.

use std::collections::{BTreeSet, HashMap};
use std::fmt;

use serde_json::{Value, json};

/// `client_assertion_type` for a JWT client assertion (RFC 7523 §2.2).
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// `grant_type` of an RFC 8693 token exchange.
pub const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";

/// Longest `client_id` accepted; partner ids are short, and it ends up in audit records.
pub(crate) const MAX_CLIENT_ID: usize = 128;

/// What every refused client authentication looks like from outside, whatever the cause
/// (unknown partner, bad signature, wrong external id, ...), so partners cannot be enumerated.
pub(crate) const CLIENT_AUTH_FAILED: &str = "client authentication failed";

/// The one description of every refused token exchange.
pub const SUBJECT_TOKEN_REFUSED: &str = "the subject token or external id was not accepted";

/// A refused token request. `error` and `description` go to the client; `reason` and
/// `partner` go to the audit record only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenError {
    /// HTTP status: 400, 401, or 500/503 for gateway-side trouble.
    pub status: u16,
    /// RFC 6749 §5.2 error code.
    pub error: &'static str,
    /// Safe for the client; never says whether a partner exists.
    pub description: &'static str,
    /// Stable audit reason code, e.g. `bad_assertion_signature`.
    pub reason: &'static str,
    /// The `client_id` the request claimed, if it got that far (audit only).
    pub partner: Option<String>,
    /// The caller failed to prove who it is (counts towards the lockout of the claimed
    /// partner from this client IP).
    pub auth_failed: bool,
}

impl TokenError {
    fn new(status: u16, error: &'static str, reason: &'static str, desc: &'static str) -> Self {
        TokenError {
            status,
            error,
            description: desc,
            reason,
            partner: None,
            auth_failed: status == 401,
        }
    }

    pub(crate) fn invalid_request(reason: &'static str, description: &'static str) -> Self {
        Self::new(400, "invalid_request", reason, description)
    }

    /// Client authentication failed; the description is the same for every cause.
    pub(crate) fn invalid_client(reason: &'static str) -> Self {
        Self::new(401, "invalid_client", reason, CLIENT_AUTH_FAILED)
    }

    /// The assertion's signature was good but its claims were not: the caller holds the
    /// partner's key, so a precise description reveals nothing to an outsider.
    pub(crate) fn bad_assertion(reason: &'static str, description: &'static str) -> Self {
        Self::new(401, "invalid_client", reason, description)
    }

    pub(crate) fn invalid_grant(reason: &'static str, description: &'static str) -> Self {
        Self::new(400, "invalid_grant", reason, description)
    }

    /// A token exchange refused: the same answer for every cause (unknown issuer, bad
    /// signature, expired, wrong tenant, wrong external id, ...); only `reason` differs.
    pub(crate) fn exchange_refused(reason: &'static str) -> Self {
        let mut e = Self::new(400, "invalid_grant", reason, SUBJECT_TOKEN_REFUSED);
        e.auth_failed = true;
        e
    }

    pub(crate) fn invalid_target(reason: &'static str, description: &'static str) -> Self {
        Self::new(400, "invalid_target", reason, description)
    }

    pub(crate) fn invalid_scope(reason: &'static str, description: &'static str) -> Self {
        Self::new(400, "invalid_scope", reason, description)
    }

    pub(crate) fn unavailable(reason: &'static str) -> Self {
        let desc = "the token service is busy, retry later";
        Self::new(503, "temporarily_unavailable", reason, desc)
    }

    pub(crate) fn server_error(reason: &'static str) -> Self {
        Self::new(500, "server_error", reason, "internal error")
    }

    pub(crate) fn with_partner(mut self, partner: &str) -> Self {
        self.partner = Some(partner.to_string());
        self
    }

    /// The RFC 6749 §5.2 response body: `{"error", "error_description"}`.
    pub fn to_json(&self) -> Value {
        json!({"error": self.error, "error_description": self.description})
    }
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "token request refused: {} ({})", self.error, self.reason)
    }
}

impl std::error::Error for TokenError {}

/// A well-formed client-credentials request with a JWT client assertion.
pub(crate) struct TokenRequest {
    pub client_id: String,
    pub assertion: String,
    pub external_id: String,
    /// Space-separated share names; `None` when absent or empty (RFC 6749 §3.1).
    pub scope: Option<String>,
    /// Requested lifetime in seconds, positive.
    pub duration: Option<u64>,
}

/// A token request's form parameters, by name.
pub type Form = HashMap<String, String>;

/// The form's parameters. Parameters without a value count as absent (RFC 6749 §3.1); any
/// parameter given twice is refused (§3.2).
pub fn read_form(body: &[u8]) -> Result<Form, TokenError> {
    let mut fields: HashMap<String, String> = HashMap::new();
    for (name, value) in form_urlencoded::parse(body) {
        if name.contains('\u{FFFD}') || value.contains('\u{FFFD}') {
            let desc = "request body is not UTF-8 form data";
            return Err(TokenError::invalid_request("malformed_request", desc));
        }
        if fields
            .insert(name.into_owned(), value.into_owned())
            .is_some()
        {
            let desc = "a parameter was given more than once";
            return Err(TokenError::invalid_request("duplicate_parameter", desc));
        }
    }
    fields.retain(|_, v| !v.is_empty());
    Ok(fields)
}

/// Parses a client-credentials request. Unknown parameters are ignored.
pub(crate) fn parse_token_request(mut fields: Form) -> Result<TokenRequest, TokenError> {
    let mut take = |name: &str| fields.remove(name);
    let missing = |desc| TokenError::invalid_request("malformed_request", desc);

    match take("grant_type").as_deref() {
        None => return Err(missing("missing grant_type")),
        Some("client_credentials") => {}
        Some(TOKEN_EXCHANGE) => {
            let desc = "use the token exchange parameters for this grant_type";
            return Err(TokenError::invalid_request("malformed_request", desc));
        }
        Some(_) => {
            return Err(TokenError::new(
                400,
                "unsupported_grant_type",
                "unsupported_grant_type",
                "grant_type must be client_credentials or urn:ietf:params:oauth:grant-type:token-exchange",
            ));
        }
    }
    let client_id = take("client_id").ok_or_else(|| missing("missing client_id"))?;
    if client_id.len() > MAX_CLIENT_ID || client_id.chars().any(char::is_control) {
        return Err(missing("client_id is not a valid partner id"));
    }
    let with_id = |e: TokenError| e.with_partner(&client_id);
    if take("client_secret").is_some() {
        let desc = "use exactly one client authentication method";
        return Err(with_id(TokenError::invalid_request(
            "multiple_client_auth",
            desc,
        )));
    }
    match take("client_assertion_type").as_deref() {
        None => return Err(with_id(missing("missing client_assertion_type"))),
        Some(JWT_BEARER) => {}
        Some(_) => {
            let desc = "client_assertion_type must be the RFC 7523 jwt-bearer type";
            let e = TokenError::invalid_request("unsupported_assertion_type", desc);
            return Err(with_id(e));
        }
    }
    let assertion =
        take("client_assertion").ok_or_else(|| with_id(missing("missing client_assertion")))?;
    let external_id = take("external_id").ok_or_else(|| with_id(missing("missing external_id")))?;
    let scope = take("scope");
    let duration = match take("duration") {
        None => None,
        Some(d) => Some(parse_duration(&d).ok_or_else(|| {
            with_id(missing(
                "duration must be a positive whole number of seconds",
            ))
        })?),
    };
    Ok(TokenRequest {
        client_id,
        assertion,
        external_id,
        scope,
        duration,
    })
}

/// A positive integer of at most 10 ASCII digits (no sign, no spaces).
pub(crate) fn parse_duration(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 10 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse::<u64>().ok().filter(|d| *d > 0)
}

/// The shares a token will carry: the requested subset of the granted shares, or all of them.
pub(crate) fn resolve_scope(
    granted: &BTreeSet<String>,
    requested: Option<&str>,
) -> Result<Vec<String>, TokenError> {
    let scopes: BTreeSet<String> = match requested {
        None => granted.clone(),
        Some(req) => {
            let mut out = BTreeSet::new();
            for share in req.split(' ') {
                if share.is_empty() || !granted.contains(share) {
                    let desc = "scope must list shares this client has grants on";
                    return Err(TokenError::invalid_scope("invalid_scope", desc));
                }
                out.insert(share.to_string());
            }
            out
        }
    };
    if scopes.is_empty() {
        let desc = "this client has no grants on any share";
        return Err(TokenError::invalid_scope("no_grants", desc));
    }
    Ok(scopes.into_iter().collect())
}
