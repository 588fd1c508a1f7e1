//! Authorization: deny by default.
//!
//! Takes a partner's configuration, the facts of its session (token scopes, client IP,
//! `amr`, now) and a share, key and action; gives a [`Decision`]: allowed by a grant, or
//! denied with a stable reason code. Grants are narrowed by conditions (source network,
//! time windows, validity, MFA, classification ceiling, object size), partner-level
//! conditions bound every grant, and explicit deny rules win over any grant
//! ([`evaluate`](evaluate())). For listings it narrows the requested prefix to what the
//! grants currently cover ([`list_scope`], [`list_plan`]), so an upstream listing can never
//! return a key or folder name outside them. `policy explain` ([`explain`]) runs the same
//! evaluation from the command line.
//!
//! Layout: [`decision`] (what policy answers), [`conditions`] (checks of one condition
//! set), [`window`] (time windows across DST), `evaluate` (the order), [`explain`] (CLI),
//! [`key`] (object key validation, before anything else).

pub mod conditions;
pub mod decision;
mod evaluate;
pub mod explain;
pub mod key;
pub mod window;

pub use conditions::{Object, SECOND_FACTORS};
pub use decision::{Allowed, Decision, Denial, Rule};
pub use evaluate::{
    ListScope, Request, Session, deadline, evaluate, list_scope, partner_end, shares_visible,
    token_deadline,
};

use crate::config::{Action, Grant, PartnerConfig};

/// The grants a partner holds on one share, already checked against the session's scope.
pub fn share_grants<'a>(
    partner: &'a PartnerConfig,
    scopes: &[String],
    share: &str,
) -> Result<Vec<&'a Grant>, Denial> {
    let grants: Vec<&Grant> = partner.grants.iter().filter(|g| g.share == share).collect();
    if grants.is_empty() {
        return Err(Denial::ShareNotGranted);
    }
    if !scopes.iter().any(|s| s == share) {
        return Err(Denial::ShareNotInScope);
    }
    Ok(grants)
}

/// Allows `action` on `key` in `share` when a grant covers it. Looks at grant actions and
/// prefixes only — no conditions, no deny rules: use [`evaluate`](evaluate()) for requests.
pub fn authorize(
    partner: &PartnerConfig,
    scopes: &[String],
    share: &str,
    key: &str,
    action: Action,
) -> Result<(), Denial> {
    let grants = share_grants(partner, scopes, share)?;
    if grants
        .iter()
        .any(|g| g.actions.contains(action) && covers(&g.prefix, key))
    {
        Ok(())
    } else {
        Err(Denial::NoGrant)
    }
}

/// The shares a partner may see in `GET /`: granted and in scope. Ignores conditions: use
/// [`shares_visible`] for requests.
pub fn visible_shares<'a>(partner: &'a PartnerConfig, scopes: &[String]) -> Vec<&'a str> {
    let mut shares: Vec<&str> = partner
        .grants
        .iter()
        .map(|g| g.share.as_str())
        .filter(|s| scopes.iter().any(|sc| sc == s))
        .collect();
    shares.sort_unstable();
    shares.dedup();
    shares
}

/// Grant prefixes are empty or end in `/`, so a plain `starts_with` matches whole segments.
fn covers(grant_prefix: &str, key: &str) -> bool {
    key.starts_with(grant_prefix)
}

/// One step of a listing, in key order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListSource {
    /// List the store under this partner-visible prefix.
    Upstream(String),
    /// The grant prefixes lie below the requested prefix and roll up into this common prefix;
    /// show it when any object exists under one of `probes`.
    Folder {
        common_prefix: String,
        probes: Vec<String>,
    },
}

/// Plans a listing of `requested` prefix (with an optional delimiter) under the partner's
/// list grants: disjoint sources in ascending key order, each inside some grant.
/// Empty when no grant covers any part of the requested prefix.
pub fn list_plan(grants: &[&Grant], requested: &str, delimiter: Option<&str>) -> Vec<ListSource> {
    let mut prefixes: Vec<&str> = grants
        .iter()
        .filter(|g| g.actions.contains(Action::List))
        .filter_map(|g| {
            if requested.starts_with(g.prefix.as_str()) {
                Some(requested)
            } else if g.prefix.starts_with(requested) {
                Some(g.prefix.as_str())
            } else {
                None
            }
        })
        .collect();
    prefixes.sort_unstable();
    prefixes.dedup();
    // Drop prefixes covered by a shorter one; what is left is disjoint and ordered.
    let mut disjoint: Vec<&str> = Vec::new();
    for p in prefixes {
        if !disjoint.iter().any(|d| p.starts_with(d)) {
            disjoint.push(p);
        }
    }
    let mut plan: Vec<ListSource> = Vec::new();
    for p in disjoint {
        let rolled = delimiter.filter(|d| !d.is_empty()).and_then(|d| {
            let rest = &p[requested.len()..];
            rest.find(d)
                .map(|i| p[..requested.len() + i + d.len()].to_string())
        });
        match (rolled, plan.last_mut()) {
            (
                Some(cp),
                Some(ListSource::Folder {
                    common_prefix,
                    probes,
                }),
            ) if *common_prefix == cp => probes.push(p.to_string()),
            (Some(cp), _) => plan.push(ListSource::Folder {
                common_prefix: cp,
                probes: vec![p.to_string()],
            }),
            (None, _) => plan.push(ListSource::Upstream(p.to_string())),
        }
    }
    plan
}

#[cfg(test)]
mod tests;
