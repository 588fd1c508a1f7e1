//! Access keys into the typed model: conditions, deny rules, rate limits, token limits.
//!
//! Takes the raw keys (already typed by deserialisation) and gives [`Conditions`],
//! [`DenyRule`]s, [`RateLimits`] and [`TokenLimits`], every absent key at its documented
//! default. Cross-field problems (`valid_from` not before `valid_until`, a `burst` without
//! `requests`, a deny rule on an unknown share, a zero limit) are recorded in the
//! [`FileReport`] at the offending value's line.

use std::collections::BTreeMap;
use std::time::Duration;

use toml::Spanned;

use super::checks;
use super::report::FileReport;
use crate::config::model::{
    Action, ActionSet, Conditions, DenyRule, RateLimits, RequestRate, ShareConfig, TokenLimits,
};
use crate::config::raw::{
    ConditionKeys, DenyTable, HumanDuration, RateLimitsTable, Timestamp, TokenLimitsTable,
};

/// Builds conditions; `what` names the owner in messages ("partner", "grant on share ...").
/// `until` is the partner's `valid_until` for partner conditions (it stays in
/// `PartnerConfig::valid_until`), or `None` to use `raw.valid_until` (grants).
pub fn conditions(
    f: &mut FileReport,
    what: &str,
    raw: ConditionKeys,
    until: Option<&Spanned<Timestamp>>,
) -> Conditions {
    let until_spanned = until.or(raw.valid_until.as_ref());
    if let (Some(from), Some(until)) = (&raw.valid_from, until_spanned)
        && from.get_ref().0 >= until.get_ref().0
    {
        f.value(
            from,
            format!(
                "{what}: valid_from {} is not before valid_until {}",
                from.get_ref().0,
                until.get_ref().0
            ),
        );
    }
    let max_object_size = raw.max_object_size.map(|s| {
        if s.get_ref().0 == 0 {
            f.value(&s, format!("{what}: max_object_size must be above 0"));
        }
        s.into_inner().0
    });
    Conditions {
        allow_cidrs: raw
            .allow_cidrs
            .unwrap_or_default()
            .into_iter()
            .map(|c| c.into_inner().0)
            .collect(),
        windows: raw
            .windows
            .unwrap_or_default()
            .into_iter()
            .map(|w| w.into_inner().0)
            .collect(),
        valid_from: raw.valid_from.map(|t| t.into_inner().0),
        valid_until: raw.valid_until.map(|t| t.into_inner().0),
        require_mfa: raw.require_mfa.unwrap_or(false),
        max_classification: raw.max_classification.map(|c| c.0),
        max_object_size,
        dlp_profile: raw.dlp_profile.map(Spanned::into_inner),
    }
}

/// Builds `[[deny]]` rules; `shares` is `None` when gatehouse.toml could not be read.
pub fn deny_rules(
    f: &mut FileReport,
    raw: Vec<DenyTable>,
    shares: Option<&BTreeMap<String, ShareConfig>>,
) -> Vec<DenyRule> {
    let mut rules = Vec::new();
    for d in raw {
        let share = d.share.get_ref().clone();
        if let Some(shares) = shares
            && !shares.contains_key(&share)
        {
            f.value(&d.share, format!("deny rule names unknown share {share:?}"));
        }
        let prefix = match &d.prefix {
            None => String::new(),
            Some(p) => checks::prefix(p.get_ref()).unwrap_or_else(|e| {
                f.value(p, format!("deny rule on share {share:?}: {e}"));
                String::new()
            }),
        };
        let actions = match d.actions {
            None => Action::ALL.into_iter().collect(),
            Some(list) => {
                if list.get_ref().is_empty() {
                    f.value(
                        &list,
                        format!(
                            "deny rule on share {share:?} has an empty actions list; leave actions out to deny every action"
                        ),
                    );
                }
                list.into_inner()
                    .into_iter()
                    .map(|a| a.into_inner().0)
                    .collect::<ActionSet>()
            }
        };
        rules.push(DenyRule {
            share,
            prefix,
            actions,
        });
    }
    rules
}

/// Builds a `rate_limits` table; absent keys limit nothing.
pub fn rate_limits(f: &mut FileReport, what: &str, raw: Option<RateLimitsTable>) -> RateLimits {
    let Some(t) = raw else {
        return RateLimits::default();
    };
    let burst = t.burst.map(|b| {
        if *b.get_ref() == 0 {
            f.value(&b, format!("{what}: rate_limits.burst must be at least 1"));
        }
        if t.requests.is_none() {
            f.value(
                &b,
                format!("{what}: rate_limits.burst needs rate_limits.requests"),
            );
        }
        (*b.get_ref()).max(1)
    });
    let requests = t.requests.map(|r| {
        let rate = r.into_inner().0;
        RequestRate {
            rate,
            burst: burst.unwrap_or(rate.count),
        }
    });
    let concurrent = t.concurrent.map(|c| {
        if *c.get_ref() == 0 {
            f.value(
                &c,
                format!("{what}: rate_limits.concurrent must be at least 1"),
            );
        }
        (*c.get_ref()).max(1)
    });
    RateLimits {
        requests,
        concurrent,
        download: t.download.map(|b| b.into_inner().0),
        upload: t.upload.map(|b| b.into_inner().0),
    }
}

/// Builds `[token_limits]` of gatehouse.toml over [`TokenLimits::default`].
pub fn token_limits(f: &mut FileReport, t: TokenLimitsTable) -> TokenLimits {
    let d = TokenLimits::default();
    // Without per_ip the default burst goes with the default rate; with it, the rate's count.
    let default_burst = t
        .per_ip
        .as_ref()
        .map_or(d.per_ip.burst, |r| r.get_ref().0.count);
    let per_ip_rate = t.per_ip.map_or(d.per_ip.rate, |r| r.into_inner().0);
    let per_ip_burst =
        at_least_one(f, "token_limits.per_ip_burst", t.per_ip_burst).unwrap_or(default_burst);
    TokenLimits {
        per_ip: RequestRate {
            rate: per_ip_rate,
            burst: per_ip_burst,
        },
        lockout_after: at_least_one(f, "token_limits.lockout_after", t.lockout_after)
            .unwrap_or(d.lockout_after),
        lockout_window: positive(f, "token_limits.lockout_window", t.lockout_window)
            .unwrap_or(d.lockout_window),
        lockout_for: positive(f, "token_limits.lockout_for", t.lockout_for)
            .unwrap_or(d.lockout_for),
    }
}

fn at_least_one(f: &mut FileReport, key: &str, v: Option<Spanned<u32>>) -> Option<u32> {
    let v = v?;
    if *v.get_ref() == 0 {
        f.value(&v, format!("{key} must be at least 1"));
        return None;
    }
    Some(v.into_inner())
}

fn positive(f: &mut FileReport, key: &str, v: Option<Spanned<HumanDuration>>) -> Option<Duration> {
    let v = v?;
    if v.get_ref().0.is_zero() {
        f.value(&v, format!("{key} must be above 0"));
        return None;
    }
    Some(v.into_inner().0)
}
