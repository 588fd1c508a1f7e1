//! `gatehouse lint`: automated compliance checks on a configuration that `check` accepts.
//!
//! Takes a validated [`Config`] and the time; gives [`Finding`]s with a stable rule id, a
//! severity, the partner file or setting concerned, and what to do. `check` answers "will
//! this load?"; `lint` answers "is this what a careful operator of a data-sharing gateway
//! should run?" (AWS SEC03-BP09: time-limited access, least privilege, approval, MFA for
//! federated writes, rate limits, protection of confidential data). The command exits
//! non-zero when any finding reaches `--fail-on` (default `medium`), so CI can gate on it.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::config::{Action, Classification, Config, PartnerConfig, PartnerStatus};

/// Ordered: `Info < Low < Medium < High`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub rule: &'static str,
    pub severity: Severity,
    /// The file the finding is about.
    pub file: PathBuf,
    /// Partner, share or setting concerned.
    pub subject: String,
    pub message: String,
}

/// Shortest external id `lint` accepts without a finding (`check` requires 16).
pub const MIN_EXTERNAL_ID: usize = 32;
/// Certificates expiring within this many days are reported.
pub const CERT_WARN_DAYS: i64 = 30;

/// Every finding for `cfg` at `now`, most severe first.
pub fn lint(cfg: &Config, now: jiff::Timestamp) -> Vec<Finding> {
    let mut out = Vec::new();
    gateway(cfg, now, &mut out);
    for p in cfg.partners.values() {
        partner(cfg, p, now, &mut out);
    }
    out.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then_with(|| a.file.cmp(&b.file))
            .then_with(|| a.rule.cmp(b.rule))
            .then_with(|| a.subject.cmp(&b.subject))
    });
    out
}

fn push(
    out: &mut Vec<Finding>,
    rule: &'static str,
    severity: Severity,
    file: &Path,
    subject: impl Into<String>,
    message: impl Into<String>,
) {
    out.push(Finding {
        rule,
        severity,
        file: file.to_path_buf(),
        subject: subject.into(),
        message: message.into(),
    });
}

fn gateway(cfg: &Config, now: jiff::Timestamp, out: &mut Vec<Finding>) {
    let src = &cfg.source;
    if cfg.dev.bootstrap {
        push(
            out,
            "dev-mode",
            Severity::High,
            src,
            "dev.bootstrap",
            "dev mode is on: a self-signed CA, generated keys and demo data; set [dev] bootstrap = false in production",
        );
    }
    if !cfg.admin.addr.ip().is_loopback() {
        push(
            out,
            "admin-off-loopback",
            Severity::High,
            src,
            "admin.addr",
            format!(
                "the admin listener {} is reachable off this host over plain HTTP",
                cfg.admin.addr
            ),
        );
    }
    match cert_not_after(&cfg.tls.cert_file) {
        Ok(not_after) => {
            let left = not_after.as_second() - now.as_second();
            if left <= 0 {
                push(
                    out,
                    "tls-certificate-expired",
                    Severity::High,
                    &cfg.tls.cert_file,
                    "tls.cert_file",
                    format!("the server certificate expired at {not_after}"),
                );
            } else if left < CERT_WARN_DAYS * 86_400 {
                push(
                    out,
                    "tls-certificate-expiring",
                    Severity::Medium,
                    &cfg.tls.cert_file,
                    "tls.cert_file",
                    format!(
                        "the server certificate expires at {not_after} (within {CERT_WARN_DAYS} days)"
                    ),
                );
            }
        }
        Err(e) => push(
            out,
            "tls-certificate-unreadable",
            Severity::Medium,
            &cfg.tls.cert_file,
            "tls.cert_file",
            format!("cannot read the server certificate's expiry: {e}"),
        ),
    }
    for (name, share) in &cfg.shares {
        let sensitive = share.default_classification >= Classification::Confidential;
        if sensitive && !share.encrypt {
            push(
                out,
                "confidential-share-unencrypted",
                Severity::High,
                src,
                format!("share {name}"),
                format!(
                    "objects default to {} but the share is not envelope-encrypted (encrypt = \"envelope\")",
                    share.default_classification
                ),
            );
        }
        if sensitive && share.dlp_profile.is_none() {
            push(
                out,
                "confidential-share-without-dlp",
                Severity::High,
                src,
                format!("share {name}"),
                format!(
                    "objects default to {} but the share has no DLP profile (dlp_profile)",
                    share.default_classification
                ),
            );
        }
    }
}

fn partner(cfg: &Config, p: &PartnerConfig, now: jiff::Timestamp, out: &mut Vec<Finding>) {
    let file = &p.file;
    let who = format!("partner {}", p.id);
    if p.status != PartnerStatus::Active {
        // A suspended partner gets no access; only its paperwork matters.
        return;
    }
    let partner_end = p.valid_until.or(p.conditions.valid_until);
    if partner_end.is_none() && p.grants.iter().any(|g| g.conditions.valid_until.is_none()) {
        push(
            out,
            "no-expiry",
            Severity::High,
            file,
            &who,
            "access never ends: set valid_until on the partner (or on every grant)",
        );
    }
    if let Some(end) = partner_end
        && end <= now
    {
        push(
            out,
            "expired-partner-still-configured",
            Severity::Low,
            file,
            &who,
            format!("access ended at {end}; suspend or remove the partner file"),
        );
    }
    if p.federation.is_none() && p.external_id.chars().count() < MIN_EXTERNAL_ID {
        push(
            out,
            "external-id-short",
            Severity::Medium,
            file,
            &who,
            format!(
                "the external id has {} characters; use at least {MIN_EXTERNAL_ID} random ones (gatehouse partner add makes 43)",
                p.external_id.chars().count()
            ),
        );
    }
    if p.rate_limits.requests.is_none() && p.grants.iter().all(|g| g.rate_limits.requests.is_none())
    {
        push(
            out,
            "no-rate-limit",
            Severity::Medium,
            file,
            &who,
            "no request rate limit ([rate_limits] requests) on the partner or its grants",
        );
    }
    if p.owner.trim().is_empty()
        || p.contract.trim().is_empty()
        || p.justification.trim().is_empty()
    {
        push(
            out,
            "missing-paperwork",
            Severity::Medium,
            file,
            &who,
            "owner, contract and justification must all be filled in",
        );
    }
    for (i, g) in p.grants.iter().enumerate() {
        let grant = format!(
            "partner {} grant #{} ({}/{})",
            p.id,
            i + 1,
            g.share,
            g.prefix
        );
        let writes = g.actions.contains(Action::Write) || g.actions.contains(Action::Delete);
        let mfa = g.conditions.require_mfa || p.conditions.require_mfa;
        if p.federation.is_some() && writes && !mfa {
            push(
                out,
                "federated-write-without-mfa",
                Severity::High,
                file,
                &grant,
                "a federated partner may write or delete without MFA: set require_mfa = true",
            );
        }
        match g.approved_by.as_deref() {
            None => push(
                out,
                "grant-not-approved",
                Severity::Medium,
                file,
                &grant,
                "no approval record: set approved_by to who approved this access",
            ),
            Some(by) if by.trim().eq_ignore_ascii_case(p.owner.trim()) => push(
                out,
                "grant-self-approved",
                Severity::High,
                file,
                &grant,
                "approved_by is the partner's owner: approval needs a second person",
            ),
            Some(_) => {}
        }
        if g.prefix.is_empty() {
            let severity = if writes {
                Severity::Medium
            } else {
                Severity::Low
            };
            push(
                out,
                "wide-prefix",
                severity,
                file,
                &grant,
                "the grant covers the whole share; narrow it to the prefix the partner needs",
            );
        }
        let share_sensitive = cfg
            .shares
            .get(&g.share)
            .is_some_and(|s| s.default_classification >= Classification::Confidential);
        let ceiling = g
            .conditions
            .max_classification
            .or(p.conditions.max_classification);
        if share_sensitive && ceiling.is_none() {
            push(
                out,
                "no-classification-ceiling",
                Severity::Low,
                file,
                &grant,
                "the share holds confidential data and the grant sets no max_classification",
            );
        }
    }
}

/// `notAfter` of the first certificate in a PEM file.
fn cert_not_after(path: &Path) -> Result<jiff::Timestamp, String> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let der = CertificateDer::pem_file_iter(path)
        .map_err(|e| e.to_string())?
        .next()
        .ok_or("no certificate")?
        .map_err(|e| e.to_string())?;
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).map_err(|e| e.to_string())?;
    jiff::Timestamp::from_second(cert.validity().not_after.timestamp()).map_err(|e| e.to_string())
}

/// `gatehouse lint`: prints the findings (table or JSON); exit 1 when one reaches `fail_on`,
/// 64 when the configuration does not load.
pub fn run(path: &Path, fail_on: Severity, json: bool) -> std::process::ExitCode {
    let cfg = match crate::config::load(path) {
        Ok(c) => c,
        Err(errors) => {
            eprintln!("{errors}");
            eprintln!("the configuration does not load; run gatehouse check");
            return std::process::ExitCode::from(crate::cli::EXIT_BAD_CONFIG);
        }
    };
    let findings = lint(&cfg, jiff::Timestamp::now());
    if json {
        for f in &findings {
            println!("{}", serde_json::to_string(f).unwrap_or_default());
        }
    } else {
        for f in &findings {
            println!(
                "{:<6} {:<32} {}: {}: {}",
                f.severity.to_string().to_uppercase(),
                f.rule,
                f.file.display(),
                f.subject,
                f.message
            );
        }
        let count = |s| findings.iter().filter(|f| f.severity == s).count();
        println!(
            "{} finding(s): {} high, {} medium, {} low, {} info",
            findings.len(),
            count(Severity::High),
            count(Severity::Medium),
            count(Severity::Low),
            count(Severity::Info)
        );
    }
    if findings.iter().any(|f| f.severity >= fail_on) {
        std::process::ExitCode::from(1)
    } else {
        std::process::ExitCode::SUCCESS
    }
}
