//! RFC 8693 token exchange at `POST /v1/token`: a JWT from the partner's own identity
//! provider, plus the partner's external id, for a gateway access token.
//!
//! Order: form; the partner the subject token names (issuer and tenant); `client_id`, when
//! given, must be that partner; the subject token's signature and claims; external id
//! (constant time); partner status and validity; `resource`/`audience`; scope; lifetime
//! (never past the subject token's `exp`). Every refusal of the subject token, the external
//! id or the partner answers the same `invalid_grant` (the audit reason differs); a malformed
//! request is `invalid_request`, and scope and target problems, checked only once the caller
//! is authenticated, are `invalid_scope` and `invalid_target`.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::endpoint::{Form, read_form};
use super::federation::{JWKS_UNAVAILABLE, mfa, request};
use super::{AuthenticatedBy, Authority, Grant, Issued, TokenError};
use crate::config::PartnerStatus;

impl Authority {
    /// Handles a token exchange form body at `now`.
    pub async fn exchange(&self, body: &[u8], now: jiff::Timestamp) -> Result<Issued, TokenError> {
        self.exchange_form(read_form(body)?, now).await
    }

    /// Handles the parsed form of a token exchange at `now`.
    pub(super) async fn exchange_form(
        &self,
        form: Form,
        now: jiff::Timestamp,
    ) -> Result<Issued, TokenError> {
        let req = request::parse(form)?;
        let refused = TokenError::exchange_refused;
        let id = self
            .federation
            .resolve(&req.subject_token)
            .map_err(refused)?
            .to_owned();
        let tag = |e: TokenError| e.with_partner(&id);
        if req.client_id.as_ref().is_some_and(|c| *c != id) {
            return Err(tag(refused("client_id_mismatch")));
        }
        let (Some(partner), Some(fed)) = (self.partners.get(&id), self.federation.get(&id)) else {
            return Err(tag(refused("subject_token_unknown_issuer")));
        };
        let login = fed
            .verify(&req.subject_token, now.as_second())
            .await
            .map_err(|reason| {
                tag(match reason {
                    // The identity provider's keys cannot be fetched: nothing the caller sent
                    // is wrong, so this neither counts towards a lockout nor says it is.
                    JWKS_UNAVAILABLE => TokenError::unavailable(reason),
                    _ => refused(reason),
                })
            })?;
        let given: [u8; 32] = Sha256::digest(req.external_id.as_bytes()).into();
        if !bool::from(given.ct_eq(&partner.external_id_digest)) {
            return Err(tag(refused("wrong_external_id")));
        }
        if partner.status != PartnerStatus::Active {
            return Err(tag(refused("partner_suspended")));
        }
        if partner.valid_until.is_some_and(|v| now >= v) {
            return Err(tag(refused("partner_expired")));
        }
        self.check_target(req.resource.as_deref(), req.audience.as_deref())
            .map_err(tag)?;
        let multi_factor = mfa::is_multi_factor(&login.amr, login.acr.as_deref(), &fed.mfa_acr);
        let grant = Grant {
            scope: req.scope.as_deref(),
            duration: req.duration,
            end: Some(login.exp),
            amr: mfa::session_amr(&login.amr, multi_factor),
            by: AuthenticatedBy::Idp {
                issuer: fed.issuer.clone(),
                kid: login.kid,
            },
        };
        self.issue(&id, partner, grant, now).map_err(tag)
    }

    /// `resource` must name this gateway (its issuer or token URL), `audience` its access
    /// token audience or issuer (RFC 8693 §2.1).
    fn check_target(
        &self,
        resource: Option<&str>,
        audience: Option<&str>,
    ) -> Result<(), TokenError> {
        let resource_ok = resource.is_none_or(|r| {
            r.trim_end_matches('/') == self.issuer.trim_end_matches('/') || r == self.token_url
        });
        let audience_ok = audience.is_none_or(|a| a == self.audience || a == self.issuer);
        if resource_ok && audience_ok {
            Ok(())
        } else {
            let desc = "resource and audience may only name this gateway";
            Err(TokenError::invalid_target("invalid_target", desc))
        }
    }
}
