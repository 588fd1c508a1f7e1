//! `gatehouse dlp scan`: the gateway's DLP engine on a local file or stdin, for operators.
//!
//! Takes the scan flags; gives the transformed bytes on stdout, optionally one JSON line per
//! finding (`{"start","end","entity","detector","action"}`, byte offsets in the input, never the
//! value) and a one-line summary of counts on stderr. Reads 64 KiB at a time, so memory stays
//! constant whatever the input size. Exit codes: 0 done, 1 I/O error, 3 a `block` action fired,
//! 64 bad pattern files or profile (every problem printed as `file:line: reason`).

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use bytes::{Bytes, BytesMut};

use super::{Engine, Pack, Profile, ScanMode, Summary};

/// Bytes read per chunk.
pub const CHUNK: usize = 64 * 1024;
/// Exit code when a finding's action is `block`.
pub const EXIT_BLOCKED: u8 = 3;
/// Exit code for bad pattern files or profile (as `gatehouse check`).
pub const EXIT_BAD_PATTERNS: u8 = 64;

/// How the input is read. Only plain text for now; CSV and JSON rules come with the
/// format-aware scanner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    #[default]
    Text,
}

/// The flags of `gatehouse dlp scan`.
#[derive(Debug, Clone)]
pub struct ScanArgs {
    /// Directory of detector files; the built-in pack when `None`.
    pub patterns: Option<PathBuf>,
    pub format: Format,
    /// Where to write JSON-lines findings.
    pub findings: Option<PathBuf>,
    /// Input file, `-` for stdin.
    pub input: PathBuf,
}

/// Runs the command; prints errors to stderr and gives the exit code.
pub fn scan(args: &ScanArgs) -> ExitCode {
    let pack = match &args.patterns {
        None => Pack::builtin(),
        Some(dir) => match Pack::load_dir(dir) {
            Ok(p) => p,
            Err(errors) => {
                eprintln!("{errors}");
                eprintln!("{} error(s) in the detector files", errors.0.len());
                return ExitCode::from(EXIT_BAD_PATTERNS);
            }
        },
    };
    let engine = match Engine::compile(&pack, &Profile::default_masking()) {
        Ok(e) => Arc::new(e),
        Err(errors) => {
            eprintln!("{errors}");
            return ExitCode::from(EXIT_BAD_PATTERNS);
        }
    };
    match run(&engine, args) {
        Ok(summary) => {
            eprintln!("{}", describe(&summary));
            if summary.blocked {
                ExitCode::from(EXIT_BLOCKED)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain()
        .filter_map(|c| c.downcast_ref::<io::Error>())
        .any(|e| e.kind() == io::ErrorKind::BrokenPipe)
}

fn run(engine: &Arc<Engine>, args: &ScanArgs) -> anyhow::Result<Summary> {
    let mut input: Box<dyn Read> = if args.input == Path::new("-") {
        Box::new(io::stdin().lock())
    } else {
        let f = File::open(&args.input).with_context(|| format!("{}", args.input.display()))?;
        Box::new(f)
    };
    let mut findings = match &args.findings {
        None => None,
        Some(p) => {
            let f = File::create(p).with_context(|| format!("{}", p.display()))?;
            Some(BufWriter::new(f))
        }
    };
    let mut stdout = BufWriter::with_capacity(CHUNK, io::stdout().lock());
    let summary = scan_io(
        engine,
        &mut input,
        &mut stdout,
        findings.as_mut().map(|w| w as &mut dyn Write),
    )?;
    stdout.flush().context("stdout")?;
    if let Some(mut f) = findings {
        f.flush().context("findings file")?;
    }
    Ok(summary)
}

/// Scans `input` to `output` in [`CHUNK`]-sized reads, writing findings as JSON lines.
pub fn scan_io(
    engine: &Arc<Engine>,
    input: &mut dyn Read,
    output: &mut dyn Write,
    mut findings: Option<&mut dyn Write>,
) -> anyhow::Result<Summary> {
    let mut scanner = engine.scanner(ScanMode::Transform);
    scanner.keep_findings(findings.is_some());
    let mut out: Vec<Bytes> = Vec::new();
    loop {
        let mut chunk = BytesMut::zeroed(CHUNK);
        let n = match input.read(&mut chunk) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(anyhow::Error::new(e).context("reading the input")),
        };
        if n == 0 {
            scanner.finish(&mut out);
        } else {
            chunk.truncate(n);
            scanner.push(chunk.freeze(), &mut out);
        }
        for b in out.drain(..) {
            output.write_all(&b).context("writing the output")?;
        }
        if let Some(w) = findings.as_deref_mut() {
            for f in scanner.drain_findings() {
                let line = FindingLine {
                    start: f.start,
                    end: f.end,
                    entity: &f.entity,
                    detector: &f.detector,
                    action: f.action.name(),
                };
                serde_json::to_writer(&mut *w, &line).context("writing the findings")?;
                w.write_all(b"\n").context("writing the findings")?;
            }
        }
        if n == 0 {
            return Ok(scanner.summary());
        }
    }
}

/// One line of `--findings`, in this field order.
#[derive(serde::Serialize)]
struct FindingLine<'a> {
    start: u64,
    end: u64,
    entity: &'a str,
    detector: &'a str,
    action: &'a str,
}

/// `dlp scan: 1234 bytes, 3 findings (CREDIT_CARD 2 mask, EMAIL_ADDRESS 1 mask)`.
pub fn describe(s: &Summary) -> String {
    let mut per: Vec<(String, u64)> = Vec::new();
    for (entity, _, action, n) in &s.counts {
        let key = format!("{entity} {}", action.name());
        match per.iter_mut().find(|(k, _)| *k == key) {
            Some((_, total)) => *total += n,
            None => per.push((key, *n)),
        }
    }
    per.sort();
    let detail: Vec<String> = per.iter().map(|(k, n)| format!("{k} {n}")).collect();
    let blocked = if s.blocked { "; BLOCKED" } else { "" };
    format!(
        "dlp scan: {} bytes, {} findings ({}){blocked}",
        s.bytes_in,
        s.total(),
        detail.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that hands out at most `n` bytes per read, like a pipe.
    struct Trickle<'a>(&'a [u8], usize);

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.0.len().min(self.1).min(buf.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn scan_io_writes_masked_output_and_json_findings_without_values() {
        let engine =
            Arc::new(Engine::compile(&Pack::builtin(), &Profile::default_masking()).unwrap());
        let mut text = String::new();
        for i in 0..3000 {
            text.push_str(&format!(
                "row {i}, ann{i}@example.com, card 4111-1111-1111-1111\n"
            ));
        }
        let (mut out, mut found) = (Vec::new(), Vec::new());
        let summary = scan_io(
            &engine,
            &mut Trickle(text.as_bytes(), 7000),
            &mut out,
            Some(&mut found),
        )
        .unwrap();
        let out = String::from_utf8(out).unwrap();
        assert_eq!(out.len(), text.len(), "masking preserves length");
        assert!(
            out.starts_with("row 0, ****@*******.***, card ****-****-****-1111\n"),
            "{}",
            &out[..80]
        );
        assert!(!out.contains("@example.com"));
        let found = String::from_utf8(found).unwrap();
        assert_eq!(found.lines().count(), 6000);
        assert_eq!(summary.total(), 6000);
        assert!(!found.contains("4111-") && !found.contains("ann"));
        assert_eq!(
            found.lines().next().unwrap(),
            r#"{"start":7,"end":23,"entity":"EMAIL_ADDRESS","detector":"email","action":"mask"}"#
        );
        assert!(
            describe(&summary).contains("CREDIT_CARD mask 3000"),
            "{}",
            describe(&summary)
        );
    }

    #[test]
    fn scan_reports_bad_pattern_directories_with_exit_64() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("bad.toml"), "[[detector]]\nid = \"x\"\n").unwrap();
        let args = ScanArgs {
            patterns: Some(dir.path().to_path_buf()),
            format: Format::Text,
            findings: None,
            input: dir.path().join("missing"),
        };
        assert_eq!(scan(&args), ExitCode::from(EXIT_BAD_PATTERNS));
    }
}
