//! The RFC 8693 token exchange request at `POST /v1/token`.
//!
//! Takes the form body; gives an [`ExchangeRequest`] with the subject token, its type, the
//! partner's external id and the optional `client_id`, `scope`, `resource`, `audience` and
//! `duration`. Fails with `invalid_request` for a malformed request (a missing parameter, a
//! token type gatehouse does not take, delegation with an `actor_token`, a second client
//! authentication method). Values from the body never appear in an error.

use super::super::endpoint::{self, MAX_CLIENT_ID, TOKEN_EXCHANGE, TokenError};

/// `subject_token_type` of a plain JWT (RFC 8693 §3).
pub const TOKEN_TYPE_JWT: &str = "urn:ietf:params:oauth:token-type:jwt";
/// `subject_token_type` of an OpenID Connect ID token.
pub const TOKEN_TYPE_ID_TOKEN: &str = "urn:ietf:params:oauth:token-type:id_token";
/// What the exchange issues (`issued_token_type`).
pub const TOKEN_TYPE_ACCESS_TOKEN: &str = "urn:ietf:params:oauth:token-type:access_token";

/// Longest subject token accepted.
const MAX_SUBJECT_TOKEN: usize = 16 * 1024;

/// A well-formed token exchange request.
pub(crate) struct ExchangeRequest {
    pub subject_token: String,
    pub external_id: String,
    /// When given, it must name the partner the subject token stands for.
    pub client_id: Option<String>,
    pub scope: Option<String>,
    pub resource: Option<String>,
    pub audience: Option<String>,
    pub duration: Option<u64>,
}

/// Parses the form; unknown parameters are ignored, as in the client-credentials grant.
pub(crate) fn parse(mut fields: endpoint::Form) -> Result<ExchangeRequest, TokenError> {
    let mut take = |name: &str| fields.remove(name);
    let bad = |desc| TokenError::invalid_request("malformed_request", desc);
    if take("grant_type").as_deref() != Some(TOKEN_EXCHANGE) {
        return Err(bad("grant_type must be the token exchange grant"));
    }
    if take("actor_token").is_some() || take("actor_token_type").is_some() {
        let desc = "delegation (actor_token) is not supported";
        return Err(TokenError::invalid_request("actor_token_unsupported", desc));
    }
    if take("client_assertion").is_some() || take("client_secret").is_some() {
        let desc =
            "the subject token authenticates a token exchange; send no client assertion or secret";
        return Err(TokenError::invalid_request("multiple_client_auth", desc));
    }
    let subject_token = take("subject_token").ok_or_else(|| bad("missing subject_token"))?;
    if subject_token.len() > MAX_SUBJECT_TOKEN {
        return Err(bad("subject_token is too long"));
    }
    match take("subject_token_type").as_deref() {
        Some(TOKEN_TYPE_JWT | TOKEN_TYPE_ID_TOKEN) => {}
        Some(_) => {
            let desc = "subject_token_type must be the jwt or id_token token type";
            return Err(TokenError::invalid_request("unsupported_token_type", desc));
        }
        None => return Err(bad("missing subject_token_type")),
    }
    if take("requested_token_type").is_some_and(|t| t != TOKEN_TYPE_ACCESS_TOKEN) {
        let desc = "requested_token_type must be the access_token token type";
        return Err(TokenError::invalid_request("unsupported_token_type", desc));
    }
    let external_id = take("external_id").ok_or_else(|| bad("missing external_id"))?;
    let client_id = take("client_id");
    if client_id
        .as_ref()
        .is_some_and(|c| c.len() > MAX_CLIENT_ID || c.chars().any(char::is_control))
    {
        return Err(bad("client_id is not a valid partner id"));
    }
    let duration = match take("duration") {
        None => None,
        Some(d) => Some(
            endpoint::parse_duration(&d)
                .ok_or_else(|| bad("duration must be a positive whole number of seconds"))?,
        ),
    };
    Ok(ExchangeRequest {
        subject_token,
        external_id,
        client_id,
        scope: take("scope"),
        resource: take("resource"),
        audience: take("audience"),
        duration,
    })
}
