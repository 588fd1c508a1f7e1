//! What the token endpoint and bearer verification hand to the pipeline.
//!
//! [`Issued`]: a new access token and its session facts, with the RFC 6749 §5.1 response
//! body. [`Session`]: the verified facts of a bearer token. [`BearerError`]: why a bearer
//! token was refused, as a stable audit reason. None of them prints a token in `Debug`.

use std::fmt;

use serde_json::{Value, json};

/// A freshly issued access token.
#[derive(Clone)]
pub struct Issued {
    pub access_token: String,
    /// Seconds until `expires_at`.
    pub expires_in: u64,
    pub session_id: String,
    pub partner: String,
    /// Id of the partner key whose assertion was accepted, or of the identity provider's
    /// key that signed the subject token (`None` when that key has no `kid`).
    pub key_id: Option<String>,
    /// Share names the token is scoped to (sorted, non-empty).
    pub scopes: Vec<String>,
    pub expires_at: jiff::Timestamp,
    /// `urn:ietf:params:oauth:token-type:access_token` for a token exchange (RFC 8693 §2.2.1).
    pub issued_token_type: Option<&'static str>,
    /// The session's authentication methods.
    pub amr: Vec<String>,
    /// The identity provider whose token was exchanged (`None`: a client assertion).
    pub idp: Option<String>,
    /// The shares the client named in `scope` (`None`: it named none and got all).
    pub requested_scopes: Option<Vec<String>>,
}

impl Issued {
    /// The token response body: `{access_token, token_type: "Bearer", expires_in,
    /// session_id, scope}`, plus `issued_token_type` for a token exchange. Send it with
    /// `Cache-Control: no-store` (RFC 6749 §5.1).
    pub fn to_json(&self) -> Value {
        let mut body = json!({
            "access_token": self.access_token,
            "token_type": "Bearer",
            "expires_in": self.expires_in,
            "session_id": self.session_id,
            "scope": self.scopes.join(" "),
        });
        if let Some(t) = self.issued_token_type {
            body["issued_token_type"] = json!(t);
        }
        body
    }
}

impl fmt::Debug for Issued {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Issued")
            .field("access_token", &"<redacted>")
            .field("expires_in", &self.expires_in)
            .field("session_id", &self.session_id)
            .field("partner", &self.partner)
            .field("key_id", &self.key_id)
            .field("scopes", &self.scopes)
            .field("expires_at", &self.expires_at)
            .field("issued_token_type", &self.issued_token_type)
            .field("amr", &self.amr)
            .finish()
    }
}

/// The verified facts of a bearer access token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub partner: String,
    pub session_id: String,
    /// The token's `jti`.
    pub token_id: String,
    /// Share names the token is scoped to; grants still decide what is allowed.
    pub scopes: Vec<String>,
    pub issued_at: jiff::Timestamp,
    pub expires_at: jiff::Timestamp,
    /// Authentication methods of the session (`amr`); `["pop"]` for client assertions.
    pub amr: Vec<String>,
}

/// Why a bearer token was refused. `reason` is one of: `token_malformed`, `token_wrong_type`,
/// `token_unknown_kid`, `token_bad_alg`, `token_bad_signature`, `token_wrong_issuer`,
/// `token_wrong_audience`, `token_expired`, `token_not_yet_valid`, `token_bad_lifetime`,
/// `partner_unknown`, `partner_suspended`, `partner_expired`, `partner_key_removed`,
/// `partner_federation_removed`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BearerError {
    pub reason: &'static str,
    /// The partner of a token the gateway signed and that is still valid, refused for what
    /// the configuration now says of that partner (`partner_*` reasons), so the refusal is on
    /// record under whose it was; `None` when the token itself is not valid.
    pub partner: Option<String>,
}

impl BearerError {
    /// A refusal of the token itself: nothing in it can be trusted.
    pub fn new(reason: &'static str) -> BearerError {
        BearerError {
            reason,
            partner: None,
        }
    }
}

impl fmt::Display for BearerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bearer token refused: {}", self.reason)
    }
}

impl std::error::Error for BearerError {}
