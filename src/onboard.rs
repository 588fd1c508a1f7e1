//! Onboarding and offboarding: `gatehouse partner add|suspend|resume|remove` and
//! `gatehouse keygen`.
//!
//! Takes the gateway's config path and the operator's flags; gives partner files that
//! `gatehouse check` accepts, or nothing at all: every change is validated with the whole
//! configuration before it is left in place, and undone when it does not validate. The
//! running gateway is told through its admin listener (reload, revocation); when it is not
//! running, suspend and remove still write the persistent revocation to the revocations file,
//! so the partner stays out even if a later, unrelated config error blocks a reload.
//! The gateway never makes or holds a partner's private key in production: `partner add`
//! needs the partner's public key (made with `gatehouse keygen` on the partner's side) and
//! an approver, except in dev mode.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, bail};

use crate::cli::{AdminClient, EXIT_BAD_CONFIG, Method};
use crate::config::{self, Config};

/// Flags of `gatehouse partner add`.
#[derive(Debug, Clone, clap::Args)]
pub struct AddArgs {
    #[arg(long, default_value = "config/gatehouse.toml")]
    pub config: PathBuf,
    /// Partner id (lowercase letters, digits, '-').
    pub id: String,
    #[arg(long)]
    pub share: String,
    /// Key prefix inside the share (empty: the whole share; else ending in '/').
    #[arg(long, default_value = "")]
    pub prefix: String,
    /// Comma-separated: read, list, write, delete.
    #[arg(long, value_delimiter = ',', default_value = "read,list")]
    pub actions: Vec<String>,
    /// End of access: YYYY-MM-DD (until the end of that day, UTC) or an RFC 3339 time.
    #[arg(long)]
    pub until: String,
    /// The partner's public key (PEM). Required unless dev mode.
    #[arg(long)]
    pub public_key: Option<PathBuf>,
    /// Who approved this access (not the owner). Required unless dev mode.
    #[arg(long)]
    pub approved_by: Option<String>,
    /// Who at your side owns the relationship.
    #[arg(long)]
    pub owner: String,
    /// Contract or agreement reference.
    #[arg(long)]
    pub contract: String,
    /// Why the partner needs this access.
    #[arg(long)]
    pub justification: String,
    #[arg(long)]
    pub display_name: Option<String>,
    /// Longest session a token may give.
    #[arg(long, default_value = "1h")]
    pub max_session: String,
}

/// Partner ids: lowercase letters, digits and `-`, 2..=64, starting with a letter.
pub fn valid_id(id: &str) -> bool {
    (2..=64).contains(&id.len())
        && id.starts_with(|c: char| c.is_ascii_lowercase())
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// `--until`: a date means access until the end of that day (UTC).
pub fn parse_until(s: &str) -> anyhow::Result<jiff::Timestamp> {
    if let Ok(ts) = s.parse::<jiff::Timestamp>() {
        return Ok(ts);
    }
    let date: jiff::civil::Date = s
        .parse()
        .with_context(|| format!("--until {s:?}: expected YYYY-MM-DD or an RFC 3339 time"))?;
    let next = date.tomorrow().context("--until: date out of range")?;
    Ok(next.to_zoned_datetime(jiff::tz::TimeZone::UTC)?.timestamp())
}

/// `bytes` random bytes, base64url without padding (external ids).
pub(crate) fn random_secret(bytes: usize) -> anyhow::Result<String> {
    let mut raw = vec![0u8; bytes];
    aws_lc_rs::rand::fill(&mut raw).map_err(|_| anyhow::anyhow!("random generator failed"))?;
    Ok(base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        raw,
    ))
}

/// What a new partner file says: one key, one grant.
pub(crate) struct PartnerEntry<'a> {
    pub id: &'a str,
    pub display_name: &'a str,
    pub owner: &'a str,
    pub contract: &'a str,
    pub justification: &'a str,
    pub until: jiff::Timestamp,
    pub external_id: &'a str,
    pub max_session: &'a str,
    pub key_id: &'a str,
    pub share: &'a str,
    pub prefix: &'a str,
    pub actions: &'a [&'a str],
    pub approved_by: Option<&'a str>,
}

impl PartnerEntry<'_> {
    /// The partner file's text under a `# header` comment (TOML written by `toml_edit`, so
    /// every value is quoted correctly whatever the operator typed).
    pub(crate) fn to_toml(&self, header: &str) -> String {
        use toml_edit::{Array, ArrayOfTables, DocumentMut, Item, Table, value};
        let mut doc = DocumentMut::new();
        doc["id"] = value(self.id);
        doc["display_name"] = value(self.display_name);
        doc["owner"] = value(self.owner);
        doc["contract"] = value(self.contract);
        doc["justification"] = value(self.justification);
        doc["status"] = value("active");
        doc["valid_until"] = value(self.until.to_string());
        doc["external_id"] = value(self.external_id);
        doc["max_session"] = value(self.max_session);
        let mut keys = ArrayOfTables::new();
        let mut key = Table::new();
        key["id"] = value(self.key_id);
        key["public_key_file"] = value(format!("keys/{}.pem", self.key_id));
        keys.push(key);
        doc["keys"] = Item::ArrayOfTables(keys);
        let mut grants = ArrayOfTables::new();
        let mut grant = Table::new();
        grant["share"] = value(self.share);
        grant["prefix"] = value(self.prefix);
        grant["actions"] = value(self.actions.iter().copied().collect::<Array>());
        if let Some(by) = self.approved_by {
            grant["approved_by"] = value(by);
        }
        grants.push(grant);
        doc["grants"] = Item::ArrayOfTables(grants);
        format!("# {header}\n{doc}")
    }
}

/// What `partner add` wrote, to undo it.
struct Written(Vec<PathBuf>);

impl Written {
    fn undo(&self) {
        for p in &self.0 {
            let _ = std::fs::remove_file(p);
        }
    }
}

fn write_new(written: &mut Written, path: &Path, bytes: &[u8], mode: u32) -> anyhow::Result<()> {
    if path.exists() {
        bail!("{} already exists", path.display());
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    crate::atomic_file::write(path, bytes, mode)
        .with_context(|| format!("writing {}", path.display()))?;
    written.0.push(path.to_path_buf());
    Ok(())
}

/// `gatehouse partner add`: prints the profile to hand to the partner.
pub async fn add(args: &AddArgs) -> ExitCode {
    let cfg = match config::load(&args.config) {
        Ok(c) => c,
        Err(errors) => {
            eprintln!("{errors}");
            eprintln!("the configuration must be valid before a partner is added");
            return ExitCode::from(EXIT_BAD_CONFIG);
        }
    };
    let mut written = Written(Vec::new());
    match add_files(args, &cfg, &mut written) {
        Ok(profile) => {
            // The new partner must validate together with everything else.
            if let Err(errors) = config::load(&args.config) {
                written.undo();
                eprintln!("{errors}");
                eprintln!("partner {} not added; nothing was changed", args.id);
                return ExitCode::from(EXIT_BAD_CONFIG);
            }
            println!(
                "{}",
                serde_json::to_string_pretty(&profile).unwrap_or_default()
            );
            for p in &written.0 {
                eprintln!("wrote {}", p.display());
            }
            tell_running_gateway(&args.config).await;
            ExitCode::SUCCESS
        }
        Err(e) => {
            written.undo();
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn add_files(
    args: &AddArgs,
    cfg: &Config,
    written: &mut Written,
) -> anyhow::Result<serde_json::Value> {
    if !valid_id(&args.id) {
        bail!(
            "partner id {:?}: use 2-64 lowercase letters, digits and '-', starting with a letter",
            args.id
        );
    }
    if cfg.partners.contains_key(&args.id) {
        bail!("partner {:?} already exists", args.id);
    }
    let dev = cfg.dev.bootstrap;
    if !dev && args.public_key.is_none() {
        bail!(
            "--public-key is required: the partner makes its key pair (`gatehouse keygen`) and \
             sends only the public key; the gateway never holds a partner's private key"
        );
    }
    match &args.approved_by {
        None if !dev => bail!("--approved-by is required (who approved this access)"),
        Some(by) if by.trim().eq_ignore_ascii_case(args.owner.trim()) => {
            bail!("--approved-by must be someone other than the partner's owner")
        }
        _ => {}
    }
    let until = parse_until(&args.until)?;
    if until <= jiff::Timestamp::now() {
        bail!("--until {} is in the past", args.until);
    }
    let key_id = format!("{}-1", args.id);
    let partners_dir = &cfg.partners_dir;
    let (public_pem, private_file) = match &args.public_key {
        Some(path) => (
            std::fs::read_to_string(path)
                .with_context(|| format!("--public-key {}", path.display()))?,
            None,
        ),
        None => {
            // Dev mode only: stand in for the partner's side.
            let (private_pem, public_pem) = keygen_pair("ed25519")?;
            let file = cfg.data_dir.join(format!("dev/{}.key.pem", args.id));
            write_new(
                written,
                &file,
                private_pem.as_bytes(),
                crate::atomic_file::PRIVATE,
            )?;
            (public_pem, Some(file))
        }
    };
    if !public_pem.contains("-----BEGIN PUBLIC KEY-----") {
        bail!("the public key must be a PEM `PUBLIC KEY` (SubjectPublicKeyInfo)");
    }
    let external_id = random_secret(32)?;
    write_new(
        written,
        &partners_dir.join(format!("keys/{key_id}.pem")),
        public_pem.as_bytes(),
        crate::atomic_file::PUBLIC,
    )?;
    let actions: Vec<&str> = args.actions.iter().map(String::as_str).collect();
    let entry = PartnerEntry {
        id: &args.id,
        display_name: args.display_name.as_deref().unwrap_or(&args.id),
        owner: &args.owner,
        contract: &args.contract,
        justification: &args.justification,
        until,
        external_id: &external_id,
        max_session: &args.max_session,
        key_id: &key_id,
        share: &args.share,
        prefix: &args.prefix,
        actions: &actions,
        approved_by: args.approved_by.as_deref(),
    };
    let header = format!(
        "Written by `gatehouse partner add` on {}.",
        jiff::Timestamp::now().strftime("%Y-%m-%d")
    );
    let text = entry.to_toml(&header);
    write_new(
        written,
        &partners_dir.join(format!("{}.toml", args.id)),
        text.as_bytes(),
        crate::atomic_file::PUBLIC,
    )?;
    let endpoint = cfg
        .token
        .token_url
        .strip_suffix("/v1/token")
        .unwrap_or(&cfg.token.token_url)
        .to_string();
    let mut profile = serde_json::json!({
        "endpoint": endpoint,
        "partner": args.id,
        "external_id": external_id,
        "key_id": key_id,
        "key_file": "<the partner's private key file>",
    });
    if let Some(file) = private_file {
        profile["key_file"] = serde_json::json!(std::path::absolute(&file).unwrap_or(file));
        if cfg.tls.dev_ca_cert_file.exists() {
            profile["ca_file"] = serde_json::json!(
                std::path::absolute(&cfg.tls.dev_ca_cert_file)
                    .unwrap_or(cfg.tls.dev_ca_cert_file.clone())
            );
        }
    }
    Ok(profile)
}

/// Asks a running gateway to reload; says so when none answers (the file watcher or the next
/// start picks the change up).
async fn tell_running_gateway(config: &Path) {
    let Ok(admin) = AdminClient::from_config(config).await else {
        return;
    };
    match admin.call_raw(Method::Post, "/reload", None).await {
        Ok((200, _)) => eprintln!("the running gateway reloaded its configuration"),
        Ok((status, body)) => eprintln!(
            "warning: the running gateway did not reload ({status}): {}",
            body.trim()
        ),
        Err(_) => eprintln!("no running gateway answered; the change applies at its next start"),
    }
}

/// What `suspend`, `resume` and `remove` do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Suspend,
    Resume,
    Remove,
}

/// `gatehouse partner suspend|resume|remove ID`.
pub async fn change(config: &Path, id: &str, change: Change) -> ExitCode {
    match change_files(config, id, change).await {
        Ok(msg) => {
            println!("{msg}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn change_files(config: &Path, id: &str, change: Change) -> anyhow::Result<String> {
    let cfg = config::load_gateway(config).map_err(|e| anyhow::anyhow!("{e}"))?;
    if !valid_id(id) {
        bail!("partner id {id:?} is not valid");
    }
    let file = cfg.partners_dir.join(format!("{id}.toml"));
    let text = std::fs::read_to_string(&file)
        .with_context(|| format!("partner {id}: {}", file.display()))?;
    // First the revocation, so the partner is out even if what follows fails.
    if change != Change::Resume {
        revoke_partner(config, &cfg, id, change).await?;
    }
    match change {
        Change::Suspend | Change::Resume => {
            let status = if change == Change::Suspend {
                "suspended"
            } else {
                "active"
            };
            let mut doc: toml_edit::DocumentMut = text
                .parse()
                .with_context(|| format!("{}: not valid TOML", file.display()))?;
            doc["status"] = toml_edit::value(status);
            crate::atomic_file::write(
                &file,
                doc.to_string().as_bytes(),
                crate::atomic_file::PUBLIC,
            )
            .with_context(|| format!("writing {}", file.display()))?;
        }
        Change::Remove => {
            let stamp = jiff::Timestamp::now()
                .strftime("%Y%m%dT%H%M%SZ")
                .to_string();
            let archive = cfg
                .partners_dir
                .join(format!("archive/{id}.{stamp}.toml.removed"));
            std::fs::create_dir_all(archive.parent().unwrap_or(Path::new(".")))?;
            std::fs::rename(&file, &archive).with_context(|| {
                format!("archiving {} to {}", file.display(), archive.display())
            })?;
            eprintln!("archived {} as {}", file.display(), archive.display());
        }
    }
    tell_running_gateway(config).await;
    Ok(match change {
        Change::Suspend => format!("partner {id} suspended; its sessions are revoked"),
        Change::Resume => format!("partner {id} active again (it needs new tokens)"),
        Change::Remove => format!("partner {id} removed; its sessions are revoked"),
    })
}

/// Revokes every session of `id`: through the running gateway (audited there), or, when
/// none answers, straight into the revocations file it reads at start.
async fn revoke_partner(
    config: &Path,
    cfg: &Config,
    id: &str,
    change: Change,
) -> anyhow::Result<()> {
    let reason = match change {
        Change::Remove => "removed",
        _ => "suspended",
    };
    if let Ok(admin) = AdminClient::from_config(config).await {
        let body = serde_json::json!({ "partner": id, "reason": reason });
        match admin.call_raw(Method::Post, "/revoke", Some(body)).await {
            Ok((200, _)) => return Ok(()),
            Ok((status, body)) => bail!(
                "the running gateway refused the revocation: {status} {}",
                body.trim()
            ),
            Err(_) => {} // not running: write the file ourselves
        }
    }
    let path = cfg.admin.revocations_file.clone();
    let id = id.to_string();
    tokio::task::spawn_blocking(move || {
        let r = crate::revocation::Revocations::open(&path)?;
        r.revoke_partner(&id, jiff::Timestamp::now())
    })
    .await?
    .context("writing the revocations file")?;
    eprintln!("no running gateway answered; the revocation is in the revocations file");
    Ok(())
}

/// A fresh key pair: (PKCS#8 private PEM, SubjectPublicKeyInfo PEM).
pub fn keygen_pair(alg: &str) -> anyhow::Result<(String, String)> {
    let alg = match alg {
        "ed25519" | "eddsa" => &rcgen::PKCS_ED25519,
        "es256" | "p256" => &rcgen::PKCS_ECDSA_P256_SHA256,
        other => bail!("--alg {other:?}: use ed25519 or es256"),
    };
    let kp = rcgen::KeyPair::generate_for(alg)?;
    Ok((kp.serialize_pem(), kp.public_key_pem()))
}

/// `gatehouse keygen`: on the partner's side, writes `<out>.key.pem` (0600, never sent) and
/// `<out>.pub.pem` (sent to the gateway operator).
pub fn keygen(out: &Path, alg: &str) -> ExitCode {
    let result = (|| -> anyhow::Result<(PathBuf, PathBuf)> {
        let (private, public) = keygen_pair(alg)?;
        let name = out
            .file_name()
            .and_then(|n| n.to_str())
            .context("--out must name a file prefix")?;
        let key = out.with_file_name(format!("{name}.key.pem"));
        let pub_file = out.with_file_name(format!("{name}.pub.pem"));
        let mut written = Written(Vec::new());
        let r = write_new(
            &mut written,
            &key,
            private.as_bytes(),
            crate::atomic_file::PRIVATE,
        )
        .and_then(|()| {
            write_new(
                &mut written,
                &pub_file,
                public.as_bytes(),
                crate::atomic_file::PUBLIC,
            )
        });
        if let Err(e) = r {
            written.undo();
            return Err(e);
        }
        Ok((key, pub_file))
    })();
    match result {
        Ok((key, public)) => {
            println!("private key: {} (keep it; never send it)", key.display());
            println!(
                "public key:  {} (send it to the gateway operator)",
                public.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_restricted() {
        assert!(valid_id("acme-2"));
        for bad in ["", "a", "Acme", "1acme", "acme_x", "../x", "acme.toml"] {
            assert!(!valid_id(bad), "{bad}");
        }
    }

    #[test]
    fn a_date_means_the_end_of_that_day() {
        assert_eq!(
            parse_until("2027-03-31").unwrap().to_string(),
            "2027-04-01T00:00:00Z"
        );
        assert_eq!(
            parse_until("2027-03-31T12:00:00Z").unwrap().to_string(),
            "2027-03-31T12:00:00Z"
        );
        assert!(parse_until("next year").is_err());
    }
}
