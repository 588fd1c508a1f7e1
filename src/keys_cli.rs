//! The operator's key commands: `gatehouse keys rewrap | rotate-local`.
//!
//! Takes parsed flags and the gateway configuration (partner files are not read); gives an
//! exit code, results on stdout and errors on stderr. `rewrap` moves every data key of an
//! envelope share to another key-encryption key without touching bodies
//! ([`crate::crypto::rewrap`]): a progress bar on a terminal, one line per object otherwise,
//! the failures listed at the end. `rotate-local` appends a new key to the local key file.
//! Exit 0 when everything worked, 1 when an object or the run failed (a rerun resumes), 64
//! for a configuration or usage error. Keys are never printed, only their ids.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;

use crate::cli::EXIT_BAD_CONFIG;
use crate::config::{self, Config, KeyServiceConfig};
use crate::crypto::rewrap::{self, Outcome, Report, RewrapError, Rewrapper};
use crate::crypto::{KmsKeyService, LocalKeyService};

#[derive(Debug, Clone, clap::Subcommand)]
pub enum Command {
    /// Re-wrap the data key of every object of an envelope share under another
    /// key-encryption key, without rewriting bodies. Objects already under it are skipped, so
    /// a rerun resumes; plaintext objects are reported and left alone.
    Rewrap(RewrapArgs),
    /// Local key service: append a new key-encryption key to the key file (0600, atomic);
    /// new objects use it, older keys stay to read older objects until `keys rewrap`.
    RotateLocal {
        #[arg(long, default_value = "config/gatehouse.toml")]
        config: PathBuf,
    },
}

#[derive(Debug, Clone, clap::Args)]
pub struct RewrapArgs {
    #[arg(long, default_value = "config/gatehouse.toml")]
    pub config: PathBuf,
    /// The envelope share whose objects to re-wrap.
    #[arg(long)]
    pub share: String,
    /// The target key: a local key id (default: the newest in the key file), or a KMS key id,
    /// ARN or alias (default: the share's `key_id`, else `key_service.key_id`).
    #[arg(long)]
    pub to: Option<String>,
    /// Only say what would be re-wrapped; change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// A failure before any object was looked at: the configuration, or the command line.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Usage(String);

pub async fn run(command: Command) -> ExitCode {
    let result = match &command {
        Command::Rewrap(args) => rewrap(args).await,
        Command::RotateLocal { config } => rotate_local(config).await,
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) if e.is::<Usage>() => {
            eprintln!("error: {e:#}");
            ExitCode::from(EXIT_BAD_CONFIG)
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn load(path: &Path) -> anyhow::Result<Config> {
    config::load_gateway(path).map_err(|errors| Usage(errors.to_string()).into())
}

/// `gatehouse keys rewrap`; `Ok(false)` when some object failed.
pub async fn rewrap(args: &RewrapArgs) -> anyhow::Result<bool> {
    let cfg = load(&args.config)?;
    let share = cfg.shares.get(&args.share).ok_or_else(|| {
        Usage(format!(
            "no share {:?} in {}",
            args.share,
            args.config.display()
        ))
    })?;
    if !share.encrypt {
        return Err(Usage(format!("share {:?} is not envelope-encrypted", args.share)).into());
    }
    let rewrapper = rewrapper(&cfg, share.key_id.as_deref(), args.to.as_deref()).await?;
    let store = crate::store::open(&cfg.stores[&share.store], &share.bucket)
        .await
        .with_context(|| format!("share {}: cannot open its store", args.share))?;
    let progress = Progress::new(args.dry_run);
    let report = rewrap::rewrap_all(
        store.as_ref(),
        &share.bucket,
        &share.prefix,
        &rewrapper,
        args.dry_run,
        |key, result| progress.object(key, result),
    )
    .await;
    progress.bar.finish_and_clear();
    let report = report.with_context(|| format!("share {}: listing failed", args.share))?;
    print_report(&args.share, rewrapper.target(), args.dry_run, &report);
    Ok(report.failures.is_empty())
}

async fn rewrapper(
    cfg: &Config,
    share_key: Option<&str>,
    to: Option<&str>,
) -> anyhow::Result<Rewrapper> {
    match &cfg.keys.service {
        KeyServiceConfig::Local { file } => {
            let file = file.clone();
            let keys = tokio::task::spawn_blocking(move || LocalKeyService::open(&file))
                .await
                .context("key file task failed")??;
            Rewrapper::local(keys, to).map_err(|e| Usage(e.to_string()).into())
        }
        KeyServiceConfig::Kms {
            region,
            endpoint_url,
            key_id,
        } => {
            let target = to.or(share_key).or(key_id.as_deref()).ok_or_else(|| {
                Usage("no target key: give --to, or set the share's or key_service's key_id".into())
            })?;
            let kms =
                KmsKeyService::new(region.as_deref(), endpoint_url.as_deref(), key_id.clone())
                    .await;
            Rewrapper::kms(kms, target)
                .await
                .with_context(|| format!("target key {target}"))
        }
    }
}

/// A bar on a terminal; plain lines on stdout otherwise.
struct Progress {
    bar: indicatif::ProgressBar,
    lines: bool,
    dry_run: bool,
}

impl Progress {
    fn new(dry_run: bool) -> Progress {
        if !std::io::stderr().is_terminal() {
            return Progress {
                bar: indicatif::ProgressBar::hidden(),
                lines: true,
                dry_run,
            };
        }
        let bar = indicatif::ProgressBar::new_spinner();
        if let Ok(style) =
            indicatif::ProgressStyle::with_template("{spinner} {pos} objects {per_sec} {msg}")
        {
            bar.set_style(style);
        }
        bar.enable_steady_tick(std::time::Duration::from_millis(200));
        Progress {
            bar,
            lines: false,
            dry_run,
        }
    }

    fn object(&self, key: &str, result: &Result<Outcome, RewrapError>) {
        self.bar.inc(1);
        let line = match result {
            Ok(Outcome::Rewrapped { from }) => format!("rewrapped {key} (was under {from})"),
            Ok(Outcome::WouldRewrap { from }) => format!("would rewrap {key} (under {from})"),
            Ok(Outcome::AlreadyUnderTarget) => format!("skipped {key} (already under the target)"),
            Ok(Outcome::Gone) => format!("skipped {key} (deleted meanwhile)"),
            Ok(Outcome::Plaintext) => format!("plaintext {key} (not encrypted; not touched)"),
            Err(e) => format!("failed {key}: {e}"),
        };
        if self.lines {
            println!("{line}");
        } else if matches!(result, Ok(Outcome::Plaintext) | Err(_))
            || (self.dry_run && result.is_ok())
        {
            self.bar.println(line);
        }
    }
}

fn print_report(share: &str, target: &str, dry_run: bool, r: &Report) {
    let done = if dry_run {
        format!("{} would be re-wrapped", r.would_rewrap)
    } else {
        format!("{} re-wrapped", r.rewrapped)
    };
    println!(
        "share {share} -> {target}: {done}, {} already under it, {} plaintext (not touched), {} deleted meanwhile, {} failed",
        r.already_under_target,
        r.plaintext.len(),
        r.gone,
        r.failures.len()
    );
    for key in &r.plaintext {
        println!("plaintext: {key}");
    }
    for (key, e) in &r.failures {
        println!("failed: {key}: {e}");
    }
    if !r.failures.is_empty() {
        eprintln!(
            "error: {} object(s) were not re-wrapped (listed above); nothing was changed on them. Run the same command again to retry them.",
            r.failures.len()
        );
    }
}

/// `gatehouse keys rotate-local`.
pub async fn rotate_local(path: &Path) -> anyhow::Result<bool> {
    let cfg = load(path)?;
    let KeyServiceConfig::Local { file } = &cfg.keys.service else {
        return Err(Usage(
            "key_service is KMS: rotate in KMS (automatic rotation, or a new key and `gatehouse keys rewrap --to`)".into(),
        )
        .into());
    };
    let file = file.clone();
    let (id, ids) = tokio::task::spawn_blocking(move || {
        let keys = LocalKeyService::open(&file)?;
        let id = keys.rotate()?;
        Ok::<_, crate::crypto::KeyError>((id, keys.key_ids()))
    })
    .await
    .context("key file task failed")??;
    println!("added key {id} to the local key file ({} keys)", ids.len());
    println!(
        "new objects use it once the gateway has re-read the file (on restart, or when it first reads an object under the new key); `gatehouse keys rewrap --share NAME` moves existing objects to it"
    );
    Ok(true)
}
