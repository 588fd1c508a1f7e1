//! Evaluating a request against a partner's grants, conditions and deny rules.
//!
//! Takes a [`Session`] (config, partner, token scopes, client IP, `amr`, now) and a
//! [`Request`] (share, key, action, object facts if known); gives a [`Decision`]: the grant
//! that allows it, or a [`Denial`] and the [`Rule`] that decided. Pure: nothing is read
//! from the clock or the network, so the same inputs always give the same answer and
//! `policy explain` shows exactly what the gateway would do.
//!
//! Order: partner (status, validity, network, window, MFA) -> share granted -> share in
//! scope -> explicit deny -> grants covering the key with the action -> each such grant's
//! conditions, in file order; the first grant whose conditions hold allows. When none does,
//! the failure that got furthest in the check order is reported (ties: the first grant).

use std::net::IpAddr;

use jiff::Timestamp;

use super::conditions::{self, Object, SessionFacts};
use super::{Allowed, Decision, Denial, ListSource, Rule, list_plan};
use crate::config::{Action, Config, Grant, PartnerConfig, PartnerStatus};

/// Everything about the caller that policy looks at. Build it once per request.
#[derive(Debug, Clone, Copy)]
pub struct Session<'a> {
    pub config: &'a Config,
    pub partner: &'a PartnerConfig,
    /// Share names of the token's scope.
    pub scopes: &'a [String],
    /// The client IP as the gateway determined it; `None` matches no `allow_cidrs`.
    pub client_ip: Option<IpAddr>,
    /// The session's authentication methods (`amr`).
    pub amr: &'a [String],
    pub now: Timestamp,
}

/// One operation on one key.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub session: &'a Session<'a>,
    pub share: &'a str,
    /// The object key; for [`Action::List`] the requested prefix.
    pub key: &'a str,
    pub action: Action,
    /// `None` before the object's metadata is known: classification and size are then not
    /// checked ([`Allowed::object_checked`] is false).
    pub object: Option<Object>,
}

impl Session<'_> {
    fn facts(&self) -> SessionFacts<'_> {
        SessionFacts {
            client_ip: self.client_ip,
            amr: self.amr,
            now: self.now,
        }
    }

    /// The partner's own status, validity and session conditions.
    pub fn check_partner(&self) -> Result<(), Denial> {
        if self.partner.status != PartnerStatus::Active {
            return Err(Denial::PartnerSuspended);
        }
        let p = self.partner;
        conditions::check_session(&p.conditions, p.valid_until, &self.facts())
    }

    /// A grant's session conditions (the partner's are checked separately).
    pub fn check_grant(&self, grant: &Grant) -> Result<(), Denial> {
        conditions::check_session(&grant.conditions, None, &self.facts())
    }

    /// The partner's grants on `share`, with their indices; refused when there are none or
    /// the share is outside the token's scope.
    fn share_grants(&self, share: &str) -> Result<Vec<(usize, &Grant)>, (Denial, Rule)> {
        let grants: Vec<(usize, &Grant)> = self
            .partner
            .grants
            .iter()
            .enumerate()
            .filter(|(_, g)| g.share == share)
            .collect();
        if grants.is_empty() {
            return Err((Denial::ShareNotGranted, Rule::Grants));
        }
        if !self.scopes.iter().any(|s| s == share) {
            return Err((Denial::ShareNotInScope, Rule::Scope));
        }
        Ok(grants)
    }
}

/// Decides one request.
pub fn evaluate(req: &Request<'_>) -> Decision {
    match decide(req) {
        Ok(allowed) => Decision::Allow(allowed),
        Err((denial, rule)) => Decision::Deny { denial, rule },
    }
}

fn decide(req: &Request<'_>) -> Result<Allowed, (Denial, Rule)> {
    let s = req.session;
    let p = s.partner;
    s.check_partner().map_err(|d| (d, Rule::Partner))?;
    let grants = s.share_grants(req.share)?;
    if let Some(i) = p.deny.iter().position(|d| {
        d.share == req.share && d.actions.contains(req.action) && req.key.starts_with(&d.prefix)
    }) {
        return Err((Denial::ExplicitlyDenied, Rule::Deny(i)));
    }
    let candidates: Vec<(usize, &Grant)> = grants
        .into_iter()
        .filter(|(_, g)| g.actions.contains(req.action) && reaches(g, req))
        .collect();
    if candidates.is_empty() {
        return Err((Denial::NoGrant, Rule::Grants));
    }
    let share_default = s
        .config
        .shares
        .get(req.share)
        .map(|c| c.default_classification)
        .unwrap_or_default();
    let mut closest: Option<(Denial, usize)> = None;
    for (i, g) in candidates {
        let checked = s.check_grant(g).and_then(|()| match &req.object {
            Some(o) => {
                conditions::check_object(req.action, &p.conditions, &g.conditions, o, share_default)
            }
            None => Ok(()),
        });
        match checked {
            Ok(()) => {
                return Ok(Allowed {
                    grant: i,
                    max_object_size: conditions::max_object_size(&p.conditions, &g.conditions),
                    object_checked: req.object.is_some() || req.action == Action::List,
                });
            }
            Err(d) if closest.is_none_or(|(c, _)| d.stage() > c.stage()) => {
                closest = Some((d, i));
            }
            Err(_) => {}
        }
    }
    let (denial, i) = closest.unwrap_or((Denial::NoGrant, 0));
    Err((denial, Rule::Grant(i)))
}

/// Whether grant `g` reaches `req.key`: its prefix covers the key, or for a listing, the
/// requested prefix and the grant prefix overlap.
fn reaches(g: &Grant, req: &Request<'_>) -> bool {
    req.key.starts_with(&g.prefix) || (req.action == Action::List && g.prefix.starts_with(req.key))
}

/// What a listing of one share may show: the list grants whose conditions hold now, minus
/// the prefixes a deny rule closes to listing.
#[derive(Debug, Clone)]
pub struct ListScope<'a> {
    pub grants: Vec<&'a Grant>,
    /// Prefixes under which nothing may be listed.
    pub denied: Vec<&'a str>,
}

impl ListScope<'_> {
    /// The listing plan ([`list_plan`]) with every source under a denied prefix removed.
    pub fn plan(&self, requested: &str, delimiter: Option<&str>) -> Vec<ListSource> {
        let mut plan = list_plan(&self.grants, requested, delimiter);
        plan.retain_mut(|source| match source {
            ListSource::Upstream(p) => self.allows(p),
            ListSource::Folder { probes, .. } => {
                probes.retain(|p| self.allows(p));
                !probes.is_empty()
            }
        });
        plan
    }

    /// Whether a listed key or common prefix may be shown: filter every listing result
    /// through this (a denied prefix may lie inside a listed one).
    pub fn allows(&self, key: &str) -> bool {
        !self.denied.iter().any(|d| key.starts_with(d))
    }
}

/// The scope of a listing of `share`, or why the partner may not list it now.
pub fn list_scope<'a>(s: &Session<'a>, share: &str) -> Result<ListScope<'a>, Decision> {
    let deny = |denial, rule| Decision::Deny { denial, rule };
    s.check_partner().map_err(|d| deny(d, Rule::Partner))?;
    let grants = s.share_grants(share).map_err(|(d, r)| deny(d, r))?;
    let p: &'a PartnerConfig = s.partner;
    let denied: Vec<&'a str> = p
        .deny
        .iter()
        .filter(|d| d.share == share && d.actions.contains(Action::List))
        .map(|d| d.prefix.as_str())
        .collect();
    let scope = |grants| ListScope {
        grants,
        denied: denied.clone(),
    };
    let listers: Vec<(usize, &Grant)> = grants
        .into_iter()
        .filter(|(_, g)| g.actions.contains(Action::List))
        .collect();
    if listers.is_empty() {
        return Err(deny(Denial::NoGrant, Rule::Grants));
    }
    let mut closest: Option<(Denial, Rule)> = None;
    let mut open: Vec<&'a Grant> = Vec::new();
    for (i, _) in listers {
        let g: &'a Grant = &p.grants[i];
        let failure = match s.check_grant(g) {
            Err(d) => Some((d, Rule::Grant(i))),
            Ok(()) if !scope(Vec::new()).allows(&g.prefix) => {
                let rule = denied.iter().position(|d| g.prefix.starts_with(d));
                Some((Denial::ExplicitlyDenied, Rule::Deny(rule.unwrap_or(0))))
            }
            Ok(()) => None,
        };
        match failure {
            None => open.push(g),
            Some((d, r)) if closest.is_none_or(|(c, _)| d.stage() > c.stage()) => {
                closest = Some((d, r));
            }
            Some(_) => {}
        }
    }
    if open.is_empty() {
        let (d, r) = closest.unwrap_or((Denial::NoGrant, Rule::Grants));
        return Err(deny(d, r));
    }
    Ok(scope(open))
}

/// The shares `GET /` shows: in scope, with at least one grant whose conditions hold now.
/// Empty when the partner's own conditions fail.
pub fn shares_visible<'a>(s: &Session<'a>) -> Vec<&'a str> {
    if s.check_partner().is_err() {
        return Vec::new();
    }
    let p: &'a PartnerConfig = s.partner;
    let mut shares: Vec<&'a str> = p
        .grants
        .iter()
        .filter(|g| s.scopes.contains(&g.share) && s.check_grant(g).is_ok())
        .map(|g| g.share.as_str())
        .collect();
    shares.sort_unstable();
    shares.dedup();
    shares
}

/// The latest instant a token for `scopes` may live to: the earliest of the partner's
/// `valid_until` and the `valid_until` of every grant on a share in `scopes` that has not
/// ended yet (an ended grant justifies nothing, so it does not shorten the token either).
/// `None`: no end of validity applies. Cap the token's `exp` with it, so a token never
/// outlives the grant that justified it; if it is not after `now`, issue no token.
pub fn token_deadline(
    partner: &PartnerConfig,
    scopes: &[String],
    now: Timestamp,
) -> Option<Timestamp> {
    let grant_ends = partner
        .grants
        .iter()
        .filter(|g| scopes.contains(&g.share))
        .map(|g| g.conditions.valid_until);
    deadline(partner_end(partner), grant_ends, now)
}

/// When the partner's own access ends: the earlier of `valid_until` and its conditions'.
pub fn partner_end(partner: &PartnerConfig) -> Option<Timestamp> {
    conditions::earliest(partner.valid_until, partner.conditions.valid_until)
}

/// The earliest of `partner_end` and the ends of grants that have not ended yet.
pub fn deadline(
    partner_end: Option<Timestamp>,
    grant_ends: impl Iterator<Item = Option<Timestamp>>,
    now: Timestamp,
) -> Option<Timestamp> {
    grant_ends
        .flatten()
        .filter(|until| *until > now)
        .fold(partner_end, |acc, until| {
            conditions::earliest(acc, Some(until))
        })
}
