//! Checking one set of [`Conditions`] against the facts of a request.
//!
//! Takes conditions and the session facts (client IP, `amr`, now) or the object facts
//! (classification, size); gives `Ok(())` or the first [`Denial`] in the fixed order
//! validity -> source network -> time window -> MFA (session level), then classification ->
//! size (object level). Pure functions.

use std::net::IpAddr;

use jiff::Timestamp;

use super::Denial;
use super::window;
use crate::config::{Action, Classification, Conditions};

/// `amr` values (RFC 8176) that show a second factor. One is enough. Not on the list, so never
/// enough alone: `pop` (what gatehouse's own client-assertion tokens carry: possession of
/// the partner key, the first factor), `pwd`, `pin`, `kba`, biometrics without a stated
/// second factor (`fpt`, `face`, `iris`, `retina`, `vbm`), `user`, `wia`, `geo`, `rba`, `mca`.
pub const SECOND_FACTORS: [&str; 7] = ["mfa", "otp", "hwk", "swk", "sc", "sms", "tel"];

/// Who is asking, from where, and when.
#[derive(Debug, Clone, Copy)]
pub struct SessionFacts<'a> {
    /// `None` (unknown) matches no `allow_cidrs`.
    pub client_ip: Option<IpAddr>,
    pub amr: &'a [String],
    pub now: Timestamp,
}

/// What is known about the object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Object {
    /// The object's own classification; `None`: the share's `default_classification`.
    pub classification: Option<Classification>,
    /// Whole object size in bytes (also for a Range read); `None`: not known (a streamed
    /// upload), enforce [`Allowed::max_object_size`](super::Allowed) while streaming.
    pub size: Option<u64>,
}

/// Whether `amr` contains one of the [`SECOND_FACTORS`].
pub fn has_second_factor(amr: &[String]) -> bool {
    amr.iter().any(|m| SECOND_FACTORS.contains(&m.as_str()))
}

/// The session-level checks. `until` is an extra end of validity (the partner's
/// `valid_until`), applied with the conditions' own.
pub fn check_session(
    c: &Conditions,
    until: Option<Timestamp>,
    s: &SessionFacts<'_>,
) -> Result<(), Denial> {
    if c.valid_from.is_some_and(|from| s.now < from) {
        return Err(Denial::NotYetValid);
    }
    if earliest(c.valid_until, until).is_some_and(|end| s.now >= end) {
        return Err(Denial::AccessExpired);
    }
    if !c.allow_cidrs.is_empty()
        && !s
            .client_ip
            .is_some_and(|ip| c.allow_cidrs.iter().any(|n| n.contains(&canonical(ip))))
    {
        return Err(Denial::IpNotAllowed);
    }
    if !c.windows.is_empty() && !c.windows.iter().any(|w| window::contains(w, s.now)) {
        return Err(Denial::OutsideTimeWindow);
    }
    if c.require_mfa && !has_second_factor(s.amr) {
        return Err(Denial::MfaRequired);
    }
    Ok(())
}

/// The object-level checks of partner and grant together. Classification applies to read,
/// write and delete; size to read and write; neither to list.
pub fn check_object(
    action: Action,
    partner: &Conditions,
    grant: &Conditions,
    object: &Object,
    share_default: Classification,
) -> Result<(), Denial> {
    if action == Action::List {
        return Ok(());
    }
    let class = object.classification.unwrap_or(share_default);
    let ceiling = min_some(partner.max_classification, grant.max_classification);
    if ceiling.is_some_and(|max| class > max) {
        return Err(Denial::ClassificationExceeded);
    }
    if action != Action::Delete {
        let limit = max_object_size(partner, grant);
        if let (Some(size), Some(limit)) = (object.size, limit)
            && size > limit
        {
            return Err(Denial::ObjectTooLarge);
        }
    }
    Ok(())
}

/// The smaller of the partner's and the grant's `max_object_size`.
pub fn max_object_size(partner: &Conditions, grant: &Conditions) -> Option<u64> {
    min_some(partner.max_object_size, grant.max_object_size)
}

/// The earlier of two optional instants (`None` is "never").
pub fn earliest(a: Option<Timestamp>, b: Option<Timestamp>) -> Option<Timestamp> {
    min_some(a, b)
}

fn min_some<T: Ord>(a: Option<T>, b: Option<T>) -> Option<T> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// An IPv4-mapped IPv6 address (`::ffff:192.0.2.7`, as dual-stack sockets report IPv4
/// peers) is compared as the IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}
