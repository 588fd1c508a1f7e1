//! The analyst's subcommands: `gatehouse audit verify | search | tail`.
//!
//! Takes parsed flags; gives an exit code and output on stdout (reports, records) and stderr
//! (errors, warnings, a progress bar when stderr is a terminal and the input is large).
//! `verify` exits 0 only when the whole trail holds, 1 at the first broken place, 2 on a usage
//! or read error. `search` and `tail` exit 0, or 2 on an error.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

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
    /// Audit files or directories, in any order.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct SearchArgs {
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
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
    /// Audit files or directories.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
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
    };
    result.unwrap_or_else(|e| {
        eprintln!("error: {e}");
        ExitCode::from(EXIT_ERROR)
    })
}

fn verify_cmd(a: &VerifyArgs) -> Result<ExitCode, String> {
    let keys = trusted_keys(a)?;
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
    let now = jiff::Timestamp::now();
    let time = |t: &Option<String>| t.as_deref().map(|t| search::parse_time(t, now)).transpose();
    let filter = Filter {
        partner: a.partner.clone(),
        session: a.session.clone(),
        share: a.share.clone(),
        decision: a.decision.clone(),
        reason: a.reason.clone(),
        kind: a.kind.clone(),
        since: time(&a.since)?,
        until: time(&a.until)?,
    };
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
                search::print_record(out, a.format, line, &v)?;
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
fn progress(files: &[PathBuf]) -> indicatif::ProgressBar {
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
