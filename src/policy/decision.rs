//! What policy answers: [`Decision`], the stable [`Denial`] reason codes, and which rule
//! decided ([`Rule`]).
//!
//! Takes nothing; gives plain values the data plane maps to S3 errors and the audit trail
//! records. A denial says whether its code may be shown to the partner
//! ([`Denial::is_session_level`]) or must look like a plain `AccessDenied` / missing key.

use std::fmt;

/// Why a request was refused by policy. `reason()` is the stable audit reason code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Denial {
    /// The partner has no grant at all on this share (it looks like a missing share).
    ShareNotGranted,
    /// The share was left out of the token's scope.
    ShareNotInScope,
    /// Grants exist on the share, but none allows this action on this key.
    NoGrant,
    /// A `[[deny]]` rule of the partner covers this action on this key.
    ExplicitlyDenied,
    /// The partner's status is `suspended`.
    PartnerSuspended,
    /// Before the partner's or the grant's `valid_from`.
    NotYetValid,
    /// At or after the partner's or the grant's `valid_until`.
    AccessExpired,
    /// The client IP is in none of the `allow_cidrs`.
    IpNotAllowed,
    /// Now is in none of the `windows`.
    OutsideTimeWindow,
    /// `require_mfa` and the session's `amr` shows no second factor.
    MfaRequired,
    /// The object's classification is above `max_classification`.
    ClassificationExceeded,
    /// The object is larger than `max_object_size`.
    ObjectTooLarge,
}

impl Denial {
    pub const ALL: [Denial; 12] = [
        Denial::ShareNotGranted,
        Denial::ShareNotInScope,
        Denial::NoGrant,
        Denial::ExplicitlyDenied,
        Denial::PartnerSuspended,
        Denial::NotYetValid,
        Denial::AccessExpired,
        Denial::IpNotAllowed,
        Denial::OutsideTimeWindow,
        Denial::MfaRequired,
        Denial::ClassificationExceeded,
        Denial::ObjectTooLarge,
    ];

    /// The stable reason code, as written in the audit trail and printed by `policy explain`.
    pub fn reason(self) -> &'static str {
        match self {
            Denial::ShareNotGranted => "share_not_granted",
            Denial::ShareNotInScope => "share_not_in_scope",
            Denial::NoGrant => "no_grant",
            Denial::ExplicitlyDenied => "explicitly_denied",
            Denial::PartnerSuspended => "partner_suspended",
            Denial::NotYetValid => "not_yet_valid",
            Denial::AccessExpired => "access_expired",
            Denial::IpNotAllowed => "ip_not_allowed",
            Denial::OutsideTimeWindow => "outside_time_window",
            Denial::MfaRequired => "mfa_required",
            Denial::ClassificationExceeded => "classification_exceeded",
            Denial::ObjectTooLarge => "object_too_large",
        }
    }

    /// Session-level codes are about who, where and when — never about an object — and may be
    /// shown to the partner. Every other code must reach the partner as a plain
    /// `AccessDenied` (or a missing key / share), the reason only in the audit trail.
    pub fn is_session_level(self) -> bool {
        matches!(
            self,
            Denial::PartnerSuspended
                | Denial::NotYetValid
                | Denial::AccessExpired
                | Denial::IpNotAllowed
                | Denial::OutsideTimeWindow
                | Denial::MfaRequired
        )
    }

    /// Position in the per-grant check order; when every candidate grant fails, the failure
    /// that got furthest is reported (object-level codes come last, so they win).
    pub(crate) fn stage(self) -> u8 {
        match self {
            Denial::NotYetValid | Denial::AccessExpired => 1,
            Denial::IpNotAllowed => 2,
            Denial::OutsideTimeWindow => 3,
            Denial::MfaRequired => 4,
            Denial::ClassificationExceeded => 5,
            Denial::ObjectTooLarge => 6,
            _ => 0,
        }
    }
}

impl fmt::Display for Denial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason())
    }
}

/// Which part of the configuration decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// The partner's own status, validity or conditions.
    Partner,
    /// The partner's grants as a whole (none on the share, none covering the key).
    Grants,
    /// The token's scope.
    Scope,
    /// `partner.grants[i]`.
    Grant(usize),
    /// `partner.deny[i]`.
    Deny(usize),
}

/// What an allowed request may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Allowed {
    /// Index into `partner.grants` of the first grant (in file order) that allows it.
    pub grant: usize,
    /// Largest object this request may read or write: the smaller of the partner's and the
    /// grant's `max_object_size`. Enforce it on streamed uploads of unknown length.
    pub max_object_size: Option<u64>,
    /// `false` when the request carried no object facts: classification and size are not
    /// checked yet, so evaluate again once the object's metadata is known.
    pub object_checked: bool,
}

/// The answer to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow(Allowed),
    Deny { denial: Denial, rule: Rule },
}

impl Decision {
    pub fn is_allow(&self) -> bool {
        matches!(self, Decision::Allow(_))
    }

    /// `Ok(allowed)` or `Err(denial)`, for `?` in the data plane.
    pub fn into_result(self) -> Result<Allowed, Denial> {
        match self {
            Decision::Allow(a) => Ok(a),
            Decision::Deny { denial, .. } => Err(denial),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_codes_are_stable_and_distinct() {
        let codes: Vec<&str> = Denial::ALL.iter().map(|d| d.reason()).collect();
        assert_eq!(
            codes,
            [
                "share_not_granted",
                "share_not_in_scope",
                "no_grant",
                "explicitly_denied",
                "partner_suspended",
                "not_yet_valid",
                "access_expired",
                "ip_not_allowed",
                "outside_time_window",
                "mfa_required",
                "classification_exceeded",
                "object_too_large",
            ]
        );
    }

    #[test]
    fn only_who_where_when_codes_are_session_level() {
        let session: Vec<&str> = Denial::ALL
            .iter()
            .filter(|d| d.is_session_level())
            .map(|d| d.reason())
            .collect();
        assert_eq!(
            session,
            [
                "partner_suspended",
                "not_yet_valid",
                "access_expired",
                "ip_not_allowed",
                "outside_time_window",
                "mfa_required",
            ]
        );
    }
}
