//! `gatehouse review`: the periodic access review of partners and grants.
//!
//! Takes the validated configuration, the audit trail (read through
//! [`crate::audit::search`]) and the time; gives [`Finding`]s: access that ends soon or has
//! ended but is still configured, access nobody used for `--unused-days` (remove what is no
//! longer needed), partners past their `review_by` date, missing paperwork (owner, contract,
//! justification) and grants without an approval record. `lint` judges the configuration
//! alone; `review` adds the calendar and the trail. Exit 0 when nothing needs attention, 1
//! when something does (for CI), 2 when the trail cannot be read, 64 when the configuration
//! does not load.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::process::ExitCode;

use serde::Serialize;
use serde_json::Value;

use crate::audit::search::{self, Filter, Format};
use crate::config::{Action, Config, Grant, PartnerConfig, PartnerStatus};

const DAY: i64 = 86_400;

#[derive(Debug, clap::Args)]
pub struct ReviewArgs {
    #[arg(long, default_value = "config/gatehouse.toml")]
    pub config: PathBuf,
    /// A grant or partner with no allowed request for this many days is listed as unused.
    #[arg(long, default_value_t = 90)]
    pub unused_days: u32,
    /// Access (and review dates) ending within this many days is listed.
    #[arg(long, default_value_t = 30)]
    pub expiring_days: u32,
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
    /// Audit files or directories; default: the configuration's audit directory.
    pub paths: Vec<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Stable id of the check, e.g. `grant-unused`.
    pub check: &'static str,
    pub partner: String,
    /// `share/prefix` of the grant concerned, when the finding is about one grant.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grant: Option<String>,
    /// The partner file to change.
    pub file: PathBuf,
    pub message: String,
}

/// What the trail says about use: the last allowed data request per grant and per partner,
/// and every partner named at all.
#[derive(Debug, Default)]
pub struct Usage {
    /// (partner, index of the grant in its file) -> last allowed request it covers.
    pub grants: HashMap<(String, usize), jiff::Timestamp>,
    pub partners: HashMap<String, jiff::Timestamp>,
    pub seen: HashSet<String>,
    pub records: u64,
    pub first: Option<jiff::Timestamp>,
    pub last: Option<jiff::Timestamp>,
}

impl Usage {
    /// Counts one record against the configured grants.
    pub fn add(&mut self, cfg: &Config, v: &Value) {
        let Some(time) = v["time"].as_str().and_then(|t| t.parse().ok()) else {
            return;
        };
        self.records += 1;
        self.first = Some(self.first.map_or(time, |f: jiff::Timestamp| f.min(time)));
        self.last = Some(self.last.map_or(time, |l: jiff::Timestamp| l.max(time)));
        let Some(p) = v["partner"].as_str().and_then(|id| cfg.partners.get(id)) else {
            return;
        };
        if v["kind"] == "token" && v["reason"] == "unknown_partner" {
            return;
        }
        self.seen.insert(p.id.clone());
        if v["kind"] != "request" || v["decision"] != "allow" {
            return;
        }
        let later = |slot: &mut jiff::Timestamp| *slot = (*slot).max(time);
        later(self.partners.entry(p.id.clone()).or_insert(time));
        for (i, g) in p.grants.iter().enumerate() {
            if covers(g, v) {
                later(self.grants.entry((p.id.clone(), i)).or_insert(time));
            }
        }
    }
}

/// Whether an allowed request record falls under grant `g`: same share, an action the grant
/// allows, and the key under its prefix (a listing, whose prefix the trail does not keep,
/// counts for every listing grant on the share).
pub fn covers(g: &Grant, v: &Value) -> bool {
    if v["share"].as_str() != Some(g.share.as_str()) {
        return false;
    }
    let key = v["key"].as_str();
    let action = match (v["method"].as_str().unwrap_or(""), key) {
        ("GET" | "HEAD", Some(_)) => Action::Read,
        ("GET", None) => Action::List,
        ("PUT", Some(_)) => Action::Write,
        ("DELETE", Some(_)) => Action::Delete,
        _ => return false,
    };
    g.actions.contains(action) && key.is_none_or(|k| k.starts_with(&g.prefix))
}

/// Reads `files` into a [`Usage`] of `cfg`'s partners.
pub fn usage(
    cfg: &Config,
    files: &[PathBuf],
    progress: &mut dyn FnMut(u64),
) -> std::io::Result<Usage> {
    let mut u = Usage::default();
    search::for_each(files, &Filter::default(), progress, &mut |_, v| {
        u.add(cfg, v);
        Ok(())
    })?;
    Ok(u)
}

/// Every finding for `cfg` at `now`, by partner file.
pub fn review(
    cfg: &Config,
    usage: &Usage,
    now: jiff::Timestamp,
    unused_days: u32,
    expiring_days: u32,
) -> Vec<Finding> {
    let mut out = Vec::new();
    for p in cfg.partners.values() {
        partner(p, usage, now, unused_days, expiring_days, &mut out);
    }
    out
}

fn partner(
    p: &PartnerConfig,
    usage: &Usage,
    now: jiff::Timestamp,
    unused_days: u32,
    expiring_days: u32,
    out: &mut Vec<Finding>,
) {
    let mut push = |check, grant: Option<&Grant>, message: String| {
        out.push(Finding {
            check,
            partner: p.id.clone(),
            grant: grant.map(|g| format!("{}/{}", g.share, g.prefix)),
            file: p.file.clone(),
            message,
        });
    };
    for field in missing_paperwork(&p.owner, &p.contract, &p.justification) {
        push("paperwork-missing", None, format!("{field} is empty"));
    }
    let today = jiff::tz::TimeZone::UTC.to_datetime(now).date();
    if let Some(by) = p.review_by {
        let left = (by - today).get_days();
        if left < 0 {
            push(
                "review-overdue",
                None,
                format!("review_by {by} has passed; review the access and set a new date"),
            );
        } else if i64::from(left) <= i64::from(expiring_days) {
            push(
                "review-due",
                None,
                format!("review_by {by} is in {left} day(s)"),
            );
        }
    }
    for g in &p.grants {
        if g.approved_by.as_deref().is_none_or(|a| a.trim().is_empty()) {
            push(
                "grant-not-approved",
                Some(g),
                "no approval record: set approved_by".into(),
            );
        }
    }
    if p.status != PartnerStatus::Active {
        // Suspended: no access to expire or to use; the paperwork above still matters.
        return;
    }
    let horizon = now.as_second() + i64::from(expiring_days) * DAY;
    let partner_end = match (p.valid_until, p.conditions.valid_until) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    if let Some(end) = partner_end {
        if end <= now {
            push(
                "partner-expired",
                None,
                format!("access ended at {end}; suspend or remove the partner"),
            );
            return;
        }
        if end.as_second() <= horizon {
            push(
                "partner-expiring",
                None,
                format!("access ends at {end} ({})", days_left(end, now)),
            );
        }
    }
    for g in &p.grants {
        match g.conditions.valid_until {
            Some(end) if end <= now => push(
                "grant-expired",
                Some(g),
                format!("the grant ended at {end}; remove it"),
            ),
            Some(end) if end.as_second() <= horizon && partner_end.is_none_or(|p| end < p) => push(
                "grant-expiring",
                Some(g),
                format!("the grant ends at {end} ({})", days_left(end, now)),
            ),
            _ => {}
        }
    }
    let cutoff = now.as_second() - i64::from(unused_days) * DAY;
    let used_since = |t: Option<&jiff::Timestamp>| t.is_some_and(|t| t.as_second() >= cutoff);
    if !usage.seen.contains(&p.id) {
        push(
            "partner-never-seen",
            None,
            "no record of this partner in the trail given: remove access that is not needed".into(),
        );
    } else if !used_since(usage.partners.get(&p.id)) {
        push(
            "partner-unused",
            None,
            format!(
                "no allowed request for {unused_days} days (last: {})",
                last(usage.partners.get(&p.id))
            ),
        );
    }
    for (i, g) in p.grants.iter().enumerate() {
        if g.conditions.valid_until.is_some_and(|end| end <= now) {
            continue;
        }
        let t = usage.grants.get(&(p.id.clone(), i));
        if !used_since(t) {
            push(
                "grant-unused",
                Some(g),
                format!(
                    "no allowed request under this grant for {unused_days} days (last: {})",
                    last(t)
                ),
            );
        }
    }
}

/// The names of owner, contract and justification that are blank.
pub fn missing_paperwork(owner: &str, contract: &str, justification: &str) -> Vec<&'static str> {
    [
        ("owner", owner),
        ("contract", contract),
        ("justification", justification),
    ]
    .into_iter()
    .filter(|(_, v)| v.trim().is_empty())
    .map(|(name, _)| name)
    .collect()
}

fn days_left(end: jiff::Timestamp, now: jiff::Timestamp) -> String {
    let days = (end.as_second() - now.as_second()) / DAY;
    match days {
        0 => "within a day".into(),
        1 => "in 1 day".into(),
        n => format!("in {n} days"),
    }
}

fn last(t: Option<&jiff::Timestamp>) -> String {
    t.map_or("never in the trail given".into(), |t| t.to_string())
}

/// `gatehouse review`.
pub fn run(a: &ReviewArgs) -> ExitCode {
    let cfg = match crate::config::load(&a.config) {
        Ok(c) => c,
        Err(errors) => {
            eprintln!("{errors}");
            eprintln!("the configuration does not load; run gatehouse check");
            return ExitCode::from(crate::cli::EXIT_BAD_CONFIG);
        }
    };
    let now = jiff::Timestamp::now();
    let paths = if a.paths.is_empty() {
        vec![cfg.audit.dir.clone()]
    } else {
        a.paths.clone()
    };
    let used = crate::audit::verify::files_of(&paths).and_then(|files| {
        let bar = crate::audit::cli::progress(&files);
        let u = usage(&cfg, &files, &mut |n| bar.inc(n));
        bar.finish_and_clear();
        u
    });
    let used = match used {
        Ok(u) => u,
        Err(e) => {
            eprintln!("error: cannot read the trail: {e}");
            return ExitCode::from(2);
        }
    };
    let findings = review(&cfg, &used, now, a.unused_days, a.expiring_days);
    let short_trail = used
        .first
        .is_none_or(|f| f.as_second() > now.as_second() - i64::from(a.unused_days) * DAY);
    print(a, &findings, &used, short_trail);
    if findings.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn print(a: &ReviewArgs, findings: &[Finding], used: &Usage, short_trail: bool) {
    match a.format {
        Format::Json => {
            let doc = serde_json::json!({
                "unused_days": a.unused_days,
                "expiring_days": a.expiring_days,
                "trail": {"records": used.records, "first": used.first, "last": used.last,
                          "shorter_than_unused_days": short_trail},
                "findings": findings,
            });
            println!("{doc:#}");
        }
        Format::Table => {
            println!("{:<20} {:<16} {:<28} DETAIL", "CHECK", "PARTNER", "GRANT");
            for f in findings {
                println!(
                    "{:<20} {:<16} {:<28} {}",
                    f.check,
                    f.partner,
                    f.grant.as_deref().unwrap_or("-"),
                    f.message
                );
            }
            println!("{} finding(s)", findings.len());
            if short_trail {
                println!(
                    "note: the trail given starts {}, less than {} days ago: \"unused\" means unused since then",
                    used.first
                        .map_or("nowhere (no records)".into(), |t| t.to_string()),
                    a.unused_days
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ActionSet;

    fn grant(share: &str, prefix: &str, actions: &[Action]) -> Grant {
        let mut set = ActionSet::default();
        for a in actions {
            set.insert(*a);
        }
        Grant {
            share: share.into(),
            prefix: prefix.into(),
            actions: set,
            conditions: Default::default(),
            rate_limits: Default::default(),
            approved_by: Some("ciso".into()),
        }
    }

    fn rec(json: &str) -> Value {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn a_request_covers_a_grant_by_share_action_and_prefix() {
        let read = grant("exports", "acme/", &[Action::Read]);
        let list = grant("exports", "acme/", &[Action::List]);
        let get =
            rec(r#"{"method":"GET","share":"exports","key":"acme/a.csv","decision":"allow"}"#);
        assert!(covers(&read, &get) && !covers(&list, &get));
        let other = rec(r#"{"method":"GET","share":"exports","key":"acmex/a.csv"}"#);
        assert!(!covers(&read, &other), "prefixes match whole segments");
        let ls = rec(r#"{"method":"GET","share":"exports"}"#);
        assert!(covers(&list, &ls) && !covers(&read, &ls));
        let put = rec(r#"{"method":"PUT","share":"exports","key":"acme/a.csv"}"#);
        assert!(!covers(&read, &put));
        let elsewhere = rec(r#"{"method":"GET","share":"other","key":"acme/a.csv"}"#);
        assert!(!covers(&read, &elsewhere));
    }

    #[test]
    fn blank_paperwork_is_named() {
        assert_eq!(
            missing_paperwork("ops@example.com", " ", ""),
            ["contract", "justification"]
        );
        assert!(missing_paperwork("o", "c", "j").is_empty());
    }
}
