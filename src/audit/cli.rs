//! The analyst's subcommands: `gatehouse audit verify | search | tail | export`.
//!
//! Takes parsed flags; gives an exit code and output on stdout (reports, records) and stderr
//! (errors, warnings, a progress bar when stderr is a terminal and the input is large).
//! `verify` exits 0 only when the whole trail holds, 1 at the first broken place, 2 on a usage
//! or read error. `search`, `tail` and `export` exit 0, or 2 on an error.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::anchor;
use super::keys::PublicKey;
use super::search::{self, Filter, Format};
use super::verify;

/// Exit code for a usage or read error.
const EXIT_ERROR: u8 = 2;
/// Inputs smaller than this get no progress bar.
const PROGRESS_FROM_BYTES: u64 = 8 << 20;

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Check the hash chain and the signed checkpoints across rotated files and report the
    /// first broken place. Exit 0 only when everything holds.
    Verify(VerifyArgs),
    /// Print the records that match every filter given.
    Search(SearchArgs),
    /// Print the last records of a trail file (the newest one of a directory); -f follows it.
    Tail(TailArgs),
    /// Write the records that match (OCSF 1.3 events) without the chain machinery, for a
    /// SIEM or AWS Security Lake.
    Export(ExportArgs),
}

#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// A trusted checkpoint public key (PEM); repeat for rotated keys. Without it, the
    /// `audit.public_key_file` of --config.
    #[arg(long = "key")]
    pub keys: Vec<PathBuf>,
    #[arg(long, default_value = "config/gatehouse.toml")]
    pub config: PathBuf,
    /// The trail is still being written: records after the last checkpoint are a warning,
    /// not a failure.
    #[arg(long)]
    pub live: bool,
    /// Also check the trail against off-host anchors of its checkpoints: `s3://BUCKET/PREFIX`
    /// (the archive's prefix; anchors under `PREFIX/anchors/`) or a local directory holding a
    /// copy of them. Repeat to use several.
    #[arg(long = "anchor", value_name = "s3://BUCKET/PREFIX|DIR")]
    pub anchors: Vec<String>,
    /// S3 endpoint for `s3://` anchors (an S3-compatible server; path-style requests).
    /// Without it and --region, an anchor in the `[audit.archive]` bucket of --config uses
    /// that table's endpoint and region.
    #[arg(long, env = "GATEHOUSE_ANCHOR_ENDPOINT_URL")]
    pub endpoint_url: Option<String>,
    /// Region of the anchor bucket (default: --config's archive table, else the AWS chain).
    #[arg(long)]
    pub region: Option<String>,
    /// Anchors older than the first record given are skipped instead of failing (older files
    /// removed by retention and not fetched from the archive).
    #[arg(long)]
    pub anchor_skip_older: bool,
    /// Audit files or directories, in any order.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct SearchArgs {
    #[command(flatten)]
    pub filter: FilterArgs,
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
    /// Audit files or directories.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ExportFormat {
    /// OCSF 1.3 JSON lines.
    #[default]
    Ocsf,
}

#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub filter: FilterArgs,
    #[arg(long, value_enum, default_value_t)]
    pub format: ExportFormat,
    /// Audit files or directories.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
}

/// The record filters `search` and `export` share.
#[derive(Debug, clap::Args)]
pub struct FilterArgs {
    #[arg(long)]
    pub partner: Option<String>,
    #[arg(long)]
    pub session: Option<String>,
    #[arg(long)]
    pub share: Option<String>,
    #[arg(long, value_parser = ["allow", "deny"])]
    pub decision: Option<String>,
    /// A reason code (also matches aggregated refusals that counted it).
    #[arg(long)]
    pub reason: Option<String>,
    /// A record kind: request, request_start, token, admin, refusals_aggregated, checkpoint,
    /// trail_opened. Without it, all but checkpoint and trail_opened.
    #[arg(long)]
    pub kind: Option<String>,
    /// From this time on: RFC 3339, a date (UTC), or a span back from now (24h, 7d).
    #[arg(long)]
    pub since: Option<String>,
    /// Before this time (same forms as --since).
    #[arg(long)]
    pub until: Option<String>,
}

impl FilterArgs {
    /// The filter these flags ask for, with spans counted back from `now`.
    pub fn filter(&self, now: jiff::Timestamp) -> Result<Filter, String> {
        let time =
            |t: &Option<String>| t.as_deref().map(|t| search::parse_time(t, now)).transpose();
        Ok(Filter {
            partner: self.partner.clone(),
            session: self.session.clone(),
            share: self.share.clone(),
            decision: self.decision.clone(),
            reason: self.reason.clone(),
            kind: self.kind.clone(),
            since: time(&self.since)?,
            until: time(&self.until)?,
        })
    }
}

#[derive(Debug, clap::Args)]
pub struct TailArgs {
    /// Keep printing records as they are written (and follow rotation in a directory).
    #[arg(short, long)]
    pub follow: bool,
    /// How many of the last records to print first.
    #[arg(short = 'n', long, default_value_t = 10)]
    pub lines: usize,
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
    /// An audit file, or the audit directory (its newest file).
    pub path: PathBuf,
}

pub fn run(command: &Command) -> ExitCode {
    let result = match command {
        Command::Verify(a) => verify_cmd(a),
        Command::Search(a) => search_cmd(a),
        Command::Tail(a) => tail_cmd(a),
        Command::Export(a) => export_cmd(a),
    };
    result.unwrap_or_else(|e| {
        eprintln!("error: {e}");
        ExitCode::from(EXIT_ERROR)
    })
}

fn verify_cmd(a: &VerifyArgs) -> Result<ExitCode, String> {
    let keys = trusted_keys(a)?;
    let anchors = load_anchors(a)?;
    let files = verify::files_of(&a.paths).map_err(|e| e.to_string())?;
    let bar = progress(&files);
    let opts = verify::Options { keys, live: a.live };
    let report = verify::verify(&files, &opts, &mut |n| bar.inc(n))
        .map_err(|e| format!("cannot read the trail: {e}"))?;
    bar.finish_and_clear();
    for w in &report.warnings {
        eprintln!("warning: {w}");
    }
    let span = match report.first_seq {
        Some(first) => format!("seq {first}..{}", report.last_seq),
        None => "no records".into(),
    };
    if report.holds() && !anchors.is_empty() {
        let checked = anchor::check(&files, &anchors, a.anchor_skip_older)
            .map_err(|e| format!("cannot read the trail: {e}"))?;
        if let Some(d) = &checked.problem {
            println!("FAILED against {d}");
            println!(
                "the trail verifies on its own ({} record(s), {} checkpoint(s)), but disagrees with its off-host anchors: it was rewritten or cut after they were taken",
                report.records, report.checkpoints
            );
            return Ok(ExitCode::FAILURE);
        }
        if checked.skipped_older > 0 {
            eprintln!(
                "warning: {} anchor(s) before the trail given were skipped (--anchor-skip-older)",
                checked.skipped_older
            );
        }
        println!(
            "anchors: {} of {} checkpoint anchor(s) match the trail",
            checked.matched,
            anchors.len()
        );
    }
    match &report.problem {
        None => {
            println!(
                "OK: {} file(s), {} record(s), {} checkpoint(s), {span}; {}",
                report.files,
                report.records,
                report.checkpoints,
                if report.closed {
                    "closed by a shutdown checkpoint".to_string()
                } else {
                    format!(
                        "{} unsigned record(s) at the end (live)",
                        report.unsigned_tail
                    )
                }
            );
            Ok(ExitCode::SUCCESS)
        }
        Some(p) => {
            println!("FAILED at {p}");
            println!(
                "checked before it: {} record(s), {} checkpoint(s)",
                report.records, report.checkpoints
            );
            Ok(ExitCode::FAILURE)
        }
    }
}

/// Every anchor named by `--anchor`, read before the trail is checked.
fn load_anchors(a: &VerifyArgs) -> Result<Vec<anchor::Located>, String> {
    // Without --endpoint-url and --region, an anchor in the archive bucket of --config is
    // read where the gateway writes it.
    let archive = (a.endpoint_url.is_none()
        && a.region.is_none()
        && a.anchors.iter().any(|s| s.starts_with("s3://")))
    .then(|| crate::config::load_gateway(&a.config).ok())
    .flatten()
    .and_then(|c| c.audit.archive);
    let mut out = Vec::new();
    for source in &a.anchors {
        if let Some(rest) = source.strip_prefix("s3://") {
            let bucket = rest.split('/').next().unwrap_or("");
            let (region, endpoint_url) = match &archive {
                Some(arch) if arch.bucket == bucket => {
                    (arch.region.as_deref(), arch.endpoint_url.as_deref())
                }
                _ => (a.region.as_deref(), a.endpoint_url.as_deref()),
            };
            // The CLI runs inside the binary's runtime but synchronously: fetch on a thread
            // with its own runtime.
            let fetched = std::thread::scope(|scope| {
                scope
                    .spawn(|| {
                        let rt = tokio::runtime::Builder::new_current_thread()
                            .enable_all()
                            .build()
                            .map_err(|e| e.to_string())?;
                        rt.block_on(anchor::load_s3(source, region, endpoint_url))
                    })
                    .join()
                    .unwrap_or_else(|_| Err("anchor fetch panicked".into()))
            });
            out.extend(fetched?);
        } else {
            out.extend(anchor::load_dir(Path::new(source))?);
        }
    }
    Ok(out)
}

fn trusted_keys(a: &VerifyArgs) -> Result<Vec<PublicKey>, String> {
    let files = if a.keys.is_empty() {
        let cfg = crate::config::load_gateway(&a.config)
            .map_err(|e| format!("no --key given, and the configuration cannot be loaded:\n{e}"))?;
        vec![cfg.audit.public_key_file]
    } else {
        a.keys.clone()
    };
    files
        .iter()
        .map(|f| PublicKey::load(f).map_err(|e| e.to_string()))
        .collect()
}

fn search_cmd(a: &SearchArgs) -> Result<ExitCode, String> {
    let filter = a.filter.filter(jiff::Timestamp::now())?;
    let files = verify::files_of(&a.paths).map_err(|e| e.to_string())?;
    let bar = progress(&files);
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let n = search::search(&files, &filter, a.format, &mut out, &mut |n| bar.inc(n));
    bar.finish_and_clear();
    let n = n.and_then(|n| out.flush().map(|()| n));
    match n {
        Ok(n) => {
            eprintln!("{n} record(s)");
            Ok(ExitCode::SUCCESS)
        }
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(ExitCode::SUCCESS),
        Err(e) => Err(e.to_string()),
    }
}

fn export_cmd(a: &ExportArgs) -> Result<ExitCode, String> {
    let ExportFormat::Ocsf = a.format;
    let filter = a.filter.filter(jiff::Timestamp::now())?;
    let files = verify::files_of(&a.paths).map_err(|e| e.to_string())?;
    let bar = progress(&files);
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let (mut written, mut skipped) = (0u64, 0u64);
    let result = search::for_each(&files, &filter, &mut |n| bar.inc(n), &mut |line, v| {
        // `request_start` only marks a request's durable start; its request record follows.
        if v["kind"] == "request_start" && filter.kind.is_none() {
            skipped += 1;
            return Ok(());
        }
        let Ok(parsed) = serde_json::from_slice::<serde_json::Value>(line) else {
            skipped += 1;
            return Ok(());
        };
        written += 1;
        serde_json::to_writer(&mut out, &super::ocsf::export(&parsed))?;
        out.write_all(b"\n")
    })
    .and_then(|()| out.flush());
    bar.finish_and_clear();
    match result {
        Ok(()) => {
            eprintln!("{written} OCSF event(s); {skipped} request_start record(s) left out");
            Ok(ExitCode::SUCCESS)
        }
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(ExitCode::SUCCESS),
        Err(e) => Err(e.to_string()),
    }
}

fn tail_cmd(a: &TailArgs) -> Result<ExitCode, String> {
    let err = |e: std::io::Error| e.to_string();
    let Some(mut file) = search::tail_file(&a.path).map_err(err)? else {
        return Err(format!("no audit files in {}", a.path.display()));
    };
    let (lines, mut offset) = search::last_lines(&file, a.lines).map_err(err)?;
    let mut out = std::io::stdout();
    let print = |out: &mut std::io::Stdout, lines: &[Vec<u8>]| -> std::io::Result<()> {
        for line in lines {
            if let Ok(v) = serde_json::from_slice::<serde_json::Value>(line) {
                search::print_record(out, a.format, line, &super::ocsf::native(&v))?;
            }
        }
        out.flush()
    };
    if a.format == Format::Table {
        println!("{}", search::header());
    }
    print(&mut out, &lines).map_err(err)?;
    if !a.follow {
        return Ok(ExitCode::SUCCESS);
    }
    loop {
        std::thread::sleep(std::time::Duration::from_millis(500));
        let (lines, next) = search::lines_from(&file, offset).map_err(err)?;
        offset = next;
        if let Err(e) = print(&mut out, &lines) {
            return if e.kind() == std::io::ErrorKind::BrokenPipe {
                Ok(ExitCode::SUCCESS)
            } else {
                Err(e.to_string())
            };
        }
        // In a directory, move on once a newer file exists and this one has nothing new.
        if lines.is_empty()
            && a.path.is_dir()
            && let Ok(Some(newest)) = search::tail_file(&a.path)
            && newest != file
        {
            let (rest, _) = search::lines_from(&file, offset).map_err(err)?;
            print(&mut out, &rest).map_err(err)?;
            (file, offset) = (newest, 0);
        }
    }
}

/// A progress bar over the total size of `files`, on stderr; hidden when stderr is not a
/// terminal or the input is small.
pub fn progress(files: &[PathBuf]) -> indicatif::ProgressBar {
    let total: u64 = files
        .iter()
        .filter_map(|f| std::fs::metadata(Path::new(f)).ok())
        .map(|m| m.len())
        .sum();
    if total < PROGRESS_FROM_BYTES {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(total);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
    ) {
        bar.set_style(style);
    }
    bar
}
