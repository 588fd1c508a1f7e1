//! `gatehouse policy explain`: evaluate a hypothetical request against a configuration.
//!
//! Takes the command's arguments ([`ExplainArgs`]); loads the configuration with the normal
//! loader and runs the same [`evaluate`] the gateway runs. Gives text whose first line is
//! `ALLOW` or `DENY <reason_code>`, then which grant or rule decided and why, then how every
//! grant on the share fared. Exit code 0 allow, 1 deny, 2 usage or configuration error.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use jiff::Timestamp;

use super::conditions::{self, Object};
use super::{Decision, Denial, Request, Rule, SECOND_FACTORS, Session, evaluate, key};
use crate::config::{self, Action, Classification, Conditions, Config, Grant, PartnerConfig};

/// Exit code for a usage or configuration error.
pub const EXIT_USAGE: u8 = 2;

/// Arguments of `gatehouse policy explain`.
#[derive(Debug, Clone, clap::Args)]
pub struct ExplainArgs {
    /// Path of gatehouse.toml.
    #[arg(long, default_value = "config/gatehouse.toml")]
    pub config: PathBuf,
    /// Partner id.
    #[arg(long)]
    pub partner: String,
    /// read, list, write or delete.
    #[arg(long, value_parser = parse_action)]
    pub action: Action,
    /// SHARE/KEY (for list: SHARE/PREFIX, the prefix may be empty).
    #[arg(long)]
    pub path: String,
    /// Client IP address; without it, allow_cidrs never match.
    #[arg(long)]
    pub ip: Option<IpAddr>,
    /// Instant to evaluate at (RFC 3339, e.g. 2027-03-01T09:00:00+01:00); default now.
    #[arg(long, value_parser = parse_at)]
    pub at: Option<Timestamp>,
    /// The session has a second factor (amr ["mfa"]); default amr ["pop"].
    #[arg(long)]
    pub mfa: bool,
    /// The object's classification; default the share's default_classification.
    #[arg(long, value_parser = parse_classification)]
    pub classification: Option<Classification>,
    /// The object's size in bytes; without it, max_object_size is not checked.
    #[arg(long)]
    pub size: Option<u64>,
}

fn parse_action(s: &str) -> Result<Action, String> {
    Action::parse(s).ok_or_else(|| format!("unknown action {s:?} (read, list, write, delete)"))
}

fn parse_at(s: &str) -> Result<Timestamp, String> {
    s.parse()
        .map_err(|e| format!("invalid RFC 3339 instant {s:?}: {e}"))
}

fn parse_classification(s: &str) -> Result<Classification, String> {
    Classification::parse(s).ok_or_else(|| {
        format!("unknown classification {s:?} (public, internal, confidential, restricted)")
    })
}

/// Runs the command: prints the explanation (or the error) and gives the exit code.
pub fn run(args: &ExplainArgs) -> ExitCode {
    let cfg = match config::load(&args.config) {
        Ok(cfg) => cfg,
        Err(errors) => {
            eprintln!("{errors}");
            eprintln!("{} configuration error(s)", errors.0.len());
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let now = Timestamp::from_second(Timestamp::now().as_second()).unwrap_or(Timestamp::now());
    match explain(&cfg, args, now) {
        Ok((decision, text)) => {
            print!("{text}");
            ExitCode::from(if decision.is_allow() { 0 } else { 1 })
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}

/// Evaluates `args` against `cfg` (`now` when `--at` is not given); gives the decision and
/// the text to print, or a usage error.
pub fn explain(
    cfg: &Config,
    args: &ExplainArgs,
    now: Timestamp,
) -> Result<(Decision, String), String> {
    let partner = cfg.partners.get(&args.partner).ok_or_else(|| {
        let known: Vec<&String> = cfg.partners.keys().collect();
        format!("unknown partner {:?} (partners: {known:?})", args.partner)
    })?;
    let (share, key) = args.path.split_once('/').unwrap_or((&args.path, ""));
    if share.is_empty() {
        return Err(format!("--path {:?}: write SHARE/KEY", args.path));
    }
    let checked = if args.action == Action::List {
        key::validate_prefix(key)
    } else {
        key::validate_key(key)
    };
    checked.map_err(|e| format!("--path {:?}: {e}", args.path))?;
    let scopes: Vec<String> = partner.grants.iter().map(|g| g.share.clone()).collect();
    let amr = vec![if args.mfa { "mfa" } else { "pop" }.to_owned()];
    let session = Session {
        config: cfg,
        partner,
        scopes: &scopes,
        client_ip: args.ip,
        amr: &amr,
        now: args.at.unwrap_or(now),
    };
    let object = Object {
        classification: args.classification,
        size: args.size,
    };
    let req = Request {
        session: &session,
        share,
        key,
        action: args.action,
        object: Some(object),
    };
    let decision = evaluate(&req);
    Ok((decision, render(&req, decision)))
}

fn render(req: &Request<'_>, decision: Decision) -> String {
    let s = req.session;
    let p = s.partner;
    let mut out = String::new();
    let share_default = s
        .config
        .shares
        .get(req.share)
        .map(|c| c.default_classification)
        .unwrap_or_default();
    let class = match req.object.and_then(|o| o.classification) {
        Some(c) => c.to_string(),
        None => format!("{share_default} (share default)"),
    };
    let size = req
        .object
        .and_then(|o| o.size)
        .map_or("not given (max_object_size not checked)".to_owned(), |n| {
            format!("{n} bytes")
        });
    let ip = s
        .client_ip
        .map_or("not given".to_owned(), |ip| ip.to_string());
    match decision {
        Decision::Allow(a) => {
            let _ = writeln!(out, "ALLOW");
            let _ = writeln!(
                out,
                "allowed by {}",
                grant_name(a.grant, &p.grants[a.grant])
            );
            if let Some(max) = a.max_object_size {
                let _ = writeln!(out, "max_object_size in force: {max} bytes");
            }
        }
        Decision::Deny { denial, rule } => {
            let _ = writeln!(out, "DENY {}", denial.reason());
            let _ = writeln!(
                out,
                "decided by {}: {}",
                rule_name(p, rule),
                why(req, denial, rule)
            );
            let shown = if denial.is_session_level() {
                format!("the reason code {:?} (session level)", denial.reason())
            } else {
                "a plain AccessDenied or a missing key (object level)".to_owned()
            };
            let _ = writeln!(out, "the partner sees: {shown}");
        }
    }
    let _ = writeln!(
        out,
        "request: partner {:?}, {} {}/{}, at {}, client IP {ip}, amr {:?}, classification {class}, size {size}",
        p.id, req.action, req.share, req.key, s.now, s.amr
    );
    let on_share: Vec<(usize, &Grant)> = p
        .grants
        .iter()
        .enumerate()
        .filter(|(_, g)| g.share == req.share)
        .collect();
    if !on_share.is_empty() {
        let _ = writeln!(out, "grants on share {:?}:", req.share);
    }
    for (i, g) in on_share {
        let _ = writeln!(
            out,
            "  {}: {}",
            grant_name(i, g),
            grant_outcome(req, g, share_default)
        );
    }
    out
}

/// How one grant fares on its own (partner-level checks aside).
fn grant_outcome(req: &Request<'_>, g: &Grant, share_default: Classification) -> String {
    if !g.actions.contains(req.action) {
        return format!("does not allow {}", req.action);
    }
    let reaches = req.key.starts_with(&g.prefix)
        || (req.action == Action::List && g.prefix.starts_with(req.key));
    if !reaches {
        return format!("prefix does not cover {:?}", req.key);
    }
    let p = req.session.partner;
    let checked = req.session.check_grant(g).and_then(|()| match &req.object {
        Some(o) => {
            conditions::check_object(req.action, &p.conditions, &g.conditions, o, share_default)
        }
        None => Ok(()),
    });
    match checked {
        Ok(()) => "conditions hold".to_owned(),
        Err(d) => format!("{} ({})", d.reason(), detail(req, d, &g.conditions)),
    }
}

fn grant_name(i: usize, g: &Grant) -> String {
    let actions: Vec<&str> = g.actions.iter().map(Action::as_str).collect();
    format!(
        "grant #{} (share {:?}, prefix {:?}, actions [{}])",
        i + 1,
        g.share,
        g.prefix,
        actions.join(", ")
    )
}

fn rule_name(p: &PartnerConfig, rule: Rule) -> String {
    match rule {
        Rule::Partner => format!("partner {:?} ({})", p.id, p.file.display()),
        Rule::Grants => format!("the grants of partner {:?}", p.id),
        Rule::Scope => "the token scope".to_owned(),
        Rule::Grant(i) => grant_name(i, &p.grants[i]),
        Rule::Deny(i) => {
            let d = &p.deny[i];
            let actions: Vec<&str> = d.actions.iter().map(Action::as_str).collect();
            format!(
                "deny rule #{} (share {:?}, prefix {:?}, actions [{}])",
                i + 1,
                d.share,
                d.prefix,
                actions.join(", ")
            )
        }
    }
}

fn why(req: &Request<'_>, denial: Denial, rule: Rule) -> String {
    let p = req.session.partner;
    match (denial, rule) {
        (Denial::ShareNotGranted, _) => {
            let mut shares: Vec<&str> = p.grants.iter().map(|g| g.share.as_str()).collect();
            shares.dedup();
            format!("no grant on share {:?} (grants on: {shares:?})", req.share)
        }
        (Denial::NoGrant, _) => format!(
            "no grant on share {:?} allows {} on {:?}",
            req.share, req.action, req.key
        ),
        (Denial::ExplicitlyDenied, _) => "deny rules win over every grant".to_owned(),
        (Denial::PartnerSuspended, _) => "the partner's status is \"suspended\"".to_owned(),
        (d, Rule::Grant(i)) => detail(req, d, &p.grants[i].conditions),
        (d, _) => detail(req, d, &p.conditions),
    }
}

/// Why condition set `c` (or, for validity, the partner's `valid_until` too) gave `d`.
fn detail(req: &Request<'_>, d: Denial, c: &Conditions) -> String {
    let s = req.session;
    let p = s.partner;
    match d {
        Denial::NotYetValid => format!("valid_from {} is after {}", show(c.valid_from), s.now),
        Denial::AccessExpired => {
            let until = conditions::earliest(c.valid_until, p.valid_until);
            format!("valid_until {} is not after {}", show(until), s.now)
        }
        Denial::IpNotAllowed => {
            let nets: Vec<String> = c.allow_cidrs.iter().map(ToString::to_string).collect();
            match s.client_ip {
                Some(ip) => format!("client IP {ip} is in none of allow_cidrs {nets:?}"),
                None => format!("no client IP given (--ip); allow_cidrs is {nets:?}"),
            }
        }
        Denial::OutsideTimeWindow => {
            let windows: Vec<String> = c
                .windows
                .iter()
                .map(|w| format!("{w} (local time {})", w.tz.to_datetime(s.now)))
                .collect();
            format!(
                "{} is in none of the windows: {}",
                s.now,
                windows.join("; ")
            )
        }
        Denial::MfaRequired => format!(
            "require_mfa is set and amr {:?} has none of {SECOND_FACTORS:?} (pass --mfa)",
            s.amr
        ),
        Denial::ClassificationExceeded => {
            let ceilings = [p.conditions.max_classification, c.max_classification];
            let max = ceilings.into_iter().flatten().min();
            let share_default = s
                .config
                .shares
                .get(req.share)
                .map(|c| c.default_classification);
            let class = req.object.and_then(|o| o.classification).or(share_default);
            format!(
                "classification {} is above max_classification {}",
                show(class),
                show(max)
            )
        }
        Denial::ObjectTooLarge => {
            let max = [p.conditions.max_object_size, c.max_object_size]
                .into_iter()
                .flatten()
                .min();
            format!(
                "the object is larger than max_object_size {} bytes",
                show(max)
            )
        }
        other => other.reason().to_owned(),
    }
}

fn show<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or("(none)".to_owned(), |v| v.to_string())
}
