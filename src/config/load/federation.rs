//! The `[federation]` table of a partner file, and the check across partners that share an
//! identity provider.
//!
//! Takes the raw table and the partner file's directory; gives a [`Federation`] with every
//! default applied, reading a file JWKS and the `ca_file` now so that `gatehouse check`
//! reports a missing or unusable one. Every problem goes to the [`FileReport`] at its line.
//! Across files, two partners may name the same issuer only when both set the same
//! `tenant_claim` with different `tenant` values: otherwise one partner's users could get
//! tokens as the other.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use toml::Spanned;

use super::checks;
use super::gateway::show;
use super::partner::LoadedPartner;
use super::report::{FileReport, Report};
use crate::config::model::{
    DEFAULT_FEDERATION_ALGORITHMS, FEDERATION_ALGORITHMS, Federation, JwksSource, TenantMatch,
};
use crate::config::raw::{FederationTable, HumanDuration};

/// Registered claims that cannot tell tenants apart.
const NOT_TENANT_CLAIMS: [&str; 8] = ["iss", "aud", "exp", "nbf", "iat", "jti", "amr", "acr"];

/// Builds the federation of one partner: `None` without a `[federation]` table. The second
/// value is the line of the table's `issuer`, for the cross-file check.
pub fn build(
    f: &mut FileReport,
    raw: Option<FederationTable>,
    dir: &Path,
) -> (Option<Federation>, Option<usize>) {
    let Some(raw) = raw else {
        return (None, None);
    };
    let line = f.src.line_of(raw.issuer.span().start);
    if let Err(e) = checks::https_url("federation.issuer", raw.issuer.get_ref()) {
        f.value(&raw.issuer, e);
    }
    if raw.audience.get_ref().trim().is_empty() {
        f.value(&raw.audience, "federation.audience must not be empty");
    }
    let jwks = jwks(f, &raw.jwks, dir);
    let ca_file = raw.ca_file.as_ref().map(|c| {
        let path = dir.join(c.get_ref());
        if !matches!(jwks, JwksSource::Url(_)) {
            f.value(c, "federation.ca_file is only for an https:// jwks");
        } else if let Err(e) = check_ca_file(&path) {
            f.value(c, format!("federation.ca_file {:?}: {e}", c.get_ref()));
        }
        path
    });
    let tenant = tenant(f, raw.tenant_claim, raw.tenant);
    let algorithms = algorithms(f, raw.algorithms);
    let max_token_age = duration(f, "max_token_age", raw.max_token_age, 3600, (1, 86_400));
    let clock_skew = duration(f, "clock_skew", raw.clock_skew, 60, (0, 300));
    let jwks_cache_ttl = duration(f, "jwks_cache_ttl", raw.jwks_cache_ttl, 3600, (60, 86_400));
    let cooldown = duration(
        f,
        "jwks_refetch_cooldown",
        raw.jwks_refetch_cooldown,
        300,
        (1, 86_400),
    );
    let mut mfa_acr = Vec::new();
    for acr in raw.mfa_acr.unwrap_or_default() {
        if acr.get_ref().trim().is_empty() {
            f.value(&acr, "federation.mfa_acr values must not be empty");
        }
        mfa_acr.push(acr.into_inner());
    }
    let federation = Federation {
        issuer: raw.issuer.into_inner(),
        audience: raw.audience.into_inner(),
        jwks,
        ca_file,
        tenant,
        algorithms,
        max_token_age,
        clock_skew,
        mfa_acr,
        jwks_cache_ttl,
        jwks_refetch_cooldown: cooldown,
    };
    (Some(federation), Some(line))
}

/// `https://` URL or a file path; `http://` and other schemes are refused. A file is read
/// and must hold at least one usable key.
fn jwks(f: &mut FileReport, raw: &Spanned<String>, dir: &Path) -> JwksSource {
    let written = raw.get_ref();
    let lower = written.to_ascii_lowercase();
    if lower.starts_with("https://") {
        if let Err(e) = checks::https_url("federation.jwks", written) {
            f.value(raw, e);
        }
        return JwksSource::Url(written.clone());
    }
    if lower.contains("://") {
        f.value(
            raw,
            format!("federation.jwks {written:?}: only an https:// URL or a file path is accepted"),
        );
        return JwksSource::Url(written.clone());
    }
    let path = dir.join(written);
    match std::fs::read(&path) {
        Ok(bytes) => {
            if let Err(e) = crate::auth::check_jwks(&bytes) {
                f.value(raw, format!("federation.jwks {written:?}: {e}"));
            }
        }
        Err(e) => {
            let shown = checks::normalise_path(&path);
            f.value(
                raw,
                format!(
                    "cannot read federation.jwks {written:?} ({}): {e}",
                    shown.display()
                ),
            );
        }
    }
    JwksSource::File(path)
}

fn check_ca_file(path: &Path) -> Result<(), String> {
    let pem = std::fs::read(path).map_err(|e| format!("cannot read: {e}"))?;
    let mut count = 0;
    for cert in CertificateDer::pem_slice_iter(&pem) {
        cert.map_err(|_| "not a PEM certificate bundle".to_owned())?;
        count += 1;
    }
    if count == 0 {
        return Err("holds no PEM certificate".to_owned());
    }
    Ok(())
}

fn tenant(
    f: &mut FileReport,
    claim: Option<Spanned<String>>,
    value: Option<Spanned<String>>,
) -> Option<TenantMatch> {
    match (claim, value) {
        (None, None) => None,
        (Some(claim), Some(value)) => {
            let name = claim.get_ref().as_str();
            if name.is_empty() || NOT_TENANT_CLAIMS.contains(&name) {
                f.value(
                    &claim,
                    format!("federation.tenant_claim {name:?} cannot tell tenants apart; name the IdP's tenant claim (e.g. \"tid\")"),
                );
            }
            if value.get_ref().is_empty() {
                f.value(&value, "federation.tenant must not be empty");
            }
            Some(TenantMatch {
                claim: claim.into_inner(),
                value: value.into_inner(),
            })
        }
        (Some(claim), None) => {
            f.value(&claim, "federation.tenant_claim needs federation.tenant");
            None
        }
        (None, Some(value)) => {
            f.value(&value, "federation.tenant needs federation.tenant_claim");
            None
        }
    }
}

fn algorithms(f: &mut FileReport, raw: Option<Spanned<Vec<Spanned<String>>>>) -> Vec<String> {
    let Some(list) = raw else {
        return DEFAULT_FEDERATION_ALGORITHMS.map(str::to_owned).to_vec();
    };
    if list.get_ref().is_empty() {
        f.value(&list, "federation.algorithms must not be empty");
    }
    let mut out: Vec<String> = Vec::new();
    for alg in list.into_inner() {
        let name = alg.get_ref().as_str();
        if !FEDERATION_ALGORITHMS.contains(&name) {
            f.value(
                &alg,
                format!("federation.algorithms: {name:?} is not accepted (one of {FEDERATION_ALGORITHMS:?}; never none or HS*)"),
            );
        } else if out.iter().any(|a| a == name) {
            f.value(&alg, format!("federation.algorithms lists {name:?} twice"));
        }
        out.push(alg.into_inner());
    }
    out
}

/// A duration key with its default and inclusive bounds, in seconds.
fn duration(
    f: &mut FileReport,
    key: &str,
    raw: Option<Spanned<HumanDuration>>,
    default: u64,
    (min, max): (u64, u64),
) -> Duration {
    let Some(raw) = raw else {
        return Duration::from_secs(default);
    };
    let d = raw.get_ref().0;
    let (lo, hi) = (Duration::from_secs(min), Duration::from_secs(max));
    if d < lo || d > hi {
        f.value(
            &raw,
            format!(
                "federation.{key} is {:?}; must be from {} to {}",
                show(d),
                show(lo),
                show(hi)
            ),
        );
    }
    d
}

/// Partners sharing an issuer must all set the same `tenant_claim` with distinct `tenant`s.
pub fn cross_check(report: &mut Report, loaded: &[LoadedPartner]) {
    let mut by_issuer: BTreeMap<&str, Vec<&LoadedPartner>> = BTreeMap::new();
    for p in loaded {
        if let Some(fed) = &p.config.federation {
            by_issuer.entry(&fed.issuer).or_default().push(p);
        }
    }
    for (issuer, partners) in by_issuer {
        if partners.len() < 2 {
            continue;
        }
        for (i, p) in partners.iter().enumerate() {
            let mine = p.config.federation.as_ref().and_then(|f| f.tenant.as_ref());
            let clash = partners.iter().enumerate().find(|(j, other)| {
                let theirs = other
                    .config
                    .federation
                    .as_ref()
                    .and_then(|f| f.tenant.as_ref());
                *j != i
                    && match (mine, theirs) {
                        (Some(a), Some(b)) => a.claim != b.claim || a.value == b.value,
                        _ => true,
                    }
            });
            if let Some((_, other)) = clash {
                let msg = format!(
                    "federation.issuer {issuer:?} is also the issuer of partner {:?} ({}); partners may share an issuer only when each sets the same tenant_claim with a different tenant",
                    other.config.id,
                    other.config.file.display()
                );
                report.push(&p.config.file, p.federation_line, msg);
            }
        }
    }
}
