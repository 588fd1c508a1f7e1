//! `gatehouse dlp scan`, `dlp detokenize` and `dlp fpe-key`: the DLP engine for operators and
//! data owners.
//!
//! `scan` takes the scan flags; gives the transformed bytes on stdout, optionally one JSON line
//! per finding (`{"start","end","entity","detector","action"}`, byte offsets in the input, never
//! the value) and a one-line summary of counts on stderr. Reads 64 KiB at a time, so memory
//! stays constant whatever the input size. The format is `--format`, else the file's
//! extension, else sniffed; compressed or binary input is blocked (exit 3). Exit codes: 0 done,
//! 1 I/O error, 3 a `block` action fired or the input is unscannable, 64 bad pattern files or
//! profile (every problem printed as `file:line: reason`).
//!
//! `fpe-key` creates a wrapped FF1 key file with a key service (local key file or AWS KMS);
//! `detokenize` unwraps it and reverses `tokenize_fpe` tokens made for one partner (arguments,
//! or one token a line on stdin). Both exit 1 on key or I/O errors, 2 on a token that cannot be
//! reversed (fewer than 6 digits).

use std::fs::File;
use std::io::{self, BufRead, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use bytes::{Bytes, BytesMut};

use super::format::FormatHint;
use super::fpe::{FpeKeyFile, detokenize as reverse};
use super::{Engine, Pack, Profile, ScanMode, Summary};
use crate::crypto::{KeyService, KmsKeyService, LocalKeyService};

/// Bytes read per chunk.
pub const CHUNK: usize = 64 * 1024;
/// Exit code when a finding's action is `block`.
pub const EXIT_BLOCKED: u8 = 3;
/// Exit code for bad pattern files or profile (as `gatehouse check`).
pub const EXIT_BAD_PATTERNS: u8 = 64;

/// How the input is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    /// The file's extension, else sniffed from the first bytes.
    #[default]
    Auto,
    Text,
    Csv,
    Tsv,
    Json,
    Ndjson,
}

impl Format {
    /// The engine format it forces (`None`: decide from the name and the bytes).
    pub fn forced(self) -> Option<super::Format> {
        Some(match self {
            Format::Auto => return None,
            Format::Text => super::Format::Text,
            Format::Csv => super::Format::Csv,
            Format::Tsv => super::Format::Tsv,
            Format::Json => super::Format::Json,
            Format::Ndjson => super::Format::Ndjson,
        })
    }
}

/// The flags of `gatehouse dlp scan`.
#[derive(Debug, Clone, clap::Args)]
pub struct ScanArgs {
    /// A gatehouse.toml: its detector pack (`dlp_patterns_dir`) and profiles.
    #[arg(long, conflicts_with = "patterns")]
    pub config: Option<PathBuf>,
    /// A profile of `--config` (`[dlp.profiles.NAME]`); without it the built-in `default`
    /// profile (every detector, mask).
    #[arg(long, requires = "config")]
    pub profile: Option<String>,
    /// The partner the output is for: its `tokenize`/`hash` key and its `tokenize_fpe` tweak
    /// (needed when the profile uses them).
    #[arg(long, requires = "profile")]
    pub partner: Option<String>,
    /// Directory of detector files (`*.toml`); the built-in pack when absent.
    #[arg(long)]
    pub patterns: Option<PathBuf>,
    /// How to read the input.
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
    /// Write one JSON line per finding (offsets, entity, detector, action) to this file.
    #[arg(long)]
    pub findings: Option<PathBuf>,
    /// Input file, or `-` for stdin.
    pub input: PathBuf,
}

/// Runs the command; prints errors to stderr and gives the exit code.
pub async fn scan(args: &ScanArgs) -> ExitCode {
    let engine = match engine(args).await {
        Ok(e) => e,
        Err(code) => return code,
    };
    let (engine, args2) = (engine.clone(), args.clone());
    let done = tokio::task::spawn_blocking(move || run(&engine, &args2)).await;
    match done.unwrap_or_else(|e| Err(anyhow::anyhow!("scan task: {e}"))) {
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

/// The engine `args` ask for; on error, the message is printed and the exit code given.
async fn engine(args: &ScanArgs) -> Result<Arc<Engine>, ExitCode> {
    let bad = |msg: String| {
        eprintln!("{msg}");
        ExitCode::from(EXIT_BAD_PATTERNS)
    };
    let Some(path) = &args.config else {
        let pack = match &args.patterns {
            None => Pack::builtin(),
            Some(dir) => Pack::load_dir(dir).map_err(|errors| {
                bad(format!(
                    "{errors}\n{} error(s) in the detector files",
                    errors.0.len()
                ))
            })?,
        };
        return compile(&pack, &Profile::default_masking()).map_err(bad);
    };
    let config = crate::config::load(path).map_err(|errors| bad(errors.to_string()))?;
    let Some(name) = &args.profile else {
        let pack = match (config.dlp.checked_pack.get(), &config.dlp_patterns_dir) {
            (Some(pack), _) => pack,
            (None, Some(dir)) => Pack::load_dir(dir).map_err(|e| bad(e.to_string()))?,
            (None, None) => Pack::builtin(),
        };
        return compile(&pack, &Profile::default_masking()).map_err(bad);
    };
    let Some(profile) = config.dlp.profiles.get(name).cloned() else {
        let known: Vec<&String> = config.dlp.profiles.keys().collect();
        return Err(bad(format!(
            "{}: no DLP profile {name:?} (profiles: {known:?})",
            path.display()
        )));
    };
    let partner = match (&args.partner, profile.per_partner()) {
        (Some(p), _) => p.clone(),
        (None, false) => String::new(),
        (None, true) => {
            return Err(bad(format!(
                "DLP profile {name:?} tokenizes or hashes per partner: give --partner"
            )));
        }
    };
    let built = tokio::task::spawn_blocking(move || crate::data::DlpRuntime::build(&config))
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r);
    let runtime = match built {
        Ok(Some(r)) => Arc::new(r),
        Ok(None) => unreachable!("the configuration has the profile"),
        Err(e) => {
            eprintln!("error: {e}");
            return Err(ExitCode::FAILURE);
        }
    };
    runtime.engine_for(&profile, &partner).await.map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::FAILURE
    })
}

fn compile(pack: &Pack, profile: &Profile) -> Result<Arc<Engine>, String> {
    Engine::compile(pack, profile)
        .map(Arc::new)
        .map_err(|e| e.to_string())
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
    let name = args.input.to_string_lossy();
    let hint = FormatHint {
        content_type: None,
        name: (args.input != Path::new("-")).then_some(&*name),
        forced: args.format.forced(),
    };
    let summary = scan_io(
        engine,
        &hint,
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
    hint: &FormatHint<'_>,
    input: &mut dyn Read,
    output: &mut dyn Write,
    mut findings: Option<&mut dyn Write>,
) -> anyhow::Result<Summary> {
    let mut scanner = engine.scanner_for(ScanMode::Transform, hint);
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
    let mut notes = String::new();
    if let Some(f) = s.format {
        notes.push_str(&format!(" as {}", f.name()));
    }
    if let Some(u) = s.unscannable {
        notes.push_str(&format!("; unscannable: {}", u.reason()));
    }
    if s.syntax_errors > 0 {
        notes.push_str(&format!("; {} syntax errors", s.syntax_errors));
    }
    if s.fpe_fallbacks > 0 {
        notes.push_str(&format!("; {} too short for FPE, masked", s.fpe_fallbacks));
    }
    format!(
        "dlp scan: {} bytes{notes}, {} findings ({}){blocked}",
        s.bytes_in,
        s.total(),
        detail.join(", ")
    )
}

/// Where the key-encryption key of an FPE key file lives.
#[derive(Debug, Clone, clap::Args)]
pub struct KeyServiceArgs {
    /// Local key-encryption-key file (as `data/keys/local-kek.json`).
    #[arg(
        long,
        conflicts_with = "kms_key_id",
        required_unless_present = "kms_key_id"
    )]
    pub local_kek: Option<PathBuf>,
    /// AWS KMS key id, ARN or alias that wraps the FPE key.
    #[arg(long)]
    pub kms_key_id: Option<String>,
    #[arg(long, requires = "kms_key_id")]
    pub kms_region: Option<String>,
    /// KMS endpoint URL (tests, VPC endpoints).
    #[arg(long, requires = "kms_key_id")]
    pub kms_endpoint: Option<String>,
}

impl KeyServiceArgs {
    async fn open(&self) -> anyhow::Result<(Box<dyn KeyService>, Option<String>)> {
        match (&self.local_kek, &self.kms_key_id) {
            (Some(path), _) => Ok((Box::new(LocalKeyService::open(path)?), None)),
            (None, Some(id)) => {
                let kms = KmsKeyService::new(
                    self.kms_region.as_deref(),
                    self.kms_endpoint.as_deref(),
                    Some(id.clone()),
                )
                .await;
                Ok((Box::new(kms), Some(id.clone())))
            }
            (None, None) => anyhow::bail!("give --local-kek or --kms-key-id"),
        }
    }
}

/// `gatehouse dlp fpe-key`: create a wrapped FF1 key file.
#[derive(Debug, Clone, clap::Args)]
pub struct FpeKeyArgs {
    #[command(flatten)]
    pub service: KeyServiceArgs,
    /// The key's name (bound to the wrapped key; shows which key made which tokens).
    #[arg(long)]
    pub name: String,
    /// Where to write the key file (refused if it exists).
    #[arg(long)]
    pub out: PathBuf,
}

/// `gatehouse dlp detokenize`: reverse `tokenize_fpe` tokens for the data owner.
#[derive(Debug, Clone, clap::Args)]
pub struct DetokenizeArgs {
    #[command(flatten)]
    pub service: KeyServiceArgs,
    /// The wrapped FPE key file the gateway used.
    #[arg(long)]
    pub key: PathBuf,
    /// The partner the tokens were made for (the FF1 tweak).
    #[arg(long)]
    pub partner: String,
    /// Tokens to reverse; one a line on stdin when none are given.
    pub tokens: Vec<String>,
}

/// Runs `fpe-key`; gives the exit code.
pub async fn fpe_key(args: &FpeKeyArgs) -> ExitCode {
    let result = async {
        anyhow::ensure!(!args.out.exists(), "{} exists", args.out.display());
        let (service, kek) = args.service.open().await?;
        let (file, _key) = FpeKeyFile::create(&*service, kek.as_deref(), &args.name).await?;
        file.save(&args.out)?;
        eprintln!(
            "wrote {} (FPE key `{}`, wrapped by `{}`)",
            args.out.display(),
            file.name,
            file.key_id
        );
        Ok(())
    }
    .await;
    exit(result)
}

/// Runs `detokenize`: one original per token, in order, on stdout; gives the exit code.
pub async fn detokenize(args: &DetokenizeArgs) -> ExitCode {
    let mut out = BufWriter::new(io::stdout().lock());
    let result = detokenize_io(args, &mut io::stdin().lock(), &mut out).await;
    match result.and_then(|n| out.flush().map(|()| n).map_err(Into::into)) {
        Ok(0) => ExitCode::SUCCESS,
        Ok(_) => ExitCode::from(2),
        Err(e) => exit(Err(e)),
    }
}

/// Reverses the tokens of `args` (or of `input`, one a line, when it has none) to `output`, one
/// line each (empty for a token that cannot be reversed); gives how many could not.
pub async fn detokenize_io(
    args: &DetokenizeArgs,
    input: &mut dyn BufRead,
    output: &mut dyn Write,
) -> anyhow::Result<usize> {
    let file = FpeKeyFile::load(&args.key)?;
    let (service, _) = args.service.open().await?;
    let key = file.unwrap(&*service).await?;
    let mut failed = 0;
    let mut one = |token: &str| -> anyhow::Result<()> {
        match reverse(&key, &args.partner, token.as_bytes()) {
            Ok(v) => output.write_all(&v)?,
            Err(e) => {
                eprintln!("error: {e}");
                failed += 1;
            }
        }
        output.write_all(b"\n")?;
        Ok(())
    };
    if args.tokens.is_empty() {
        for line in input.lines() {
            one(line?.trim_end_matches('\r'))?;
        }
    } else {
        for t in &args.tokens {
            one(t)?;
        }
    }
    Ok(failed)
}

fn exit(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
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
            &FormatHint::default(),
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

    #[tokio::test]
    async fn scan_reports_bad_pattern_directories_with_exit_64() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("bad.toml"), "[[detector]]\nid = \"x\"\n").unwrap();
        let args = ScanArgs {
            config: None,
            profile: None,
            partner: None,
            patterns: Some(dir.path().to_path_buf()),
            format: Format::Auto,
            findings: None,
            input: dir.path().join("missing"),
        };
        assert_eq!(scan(&args).await, ExitCode::from(EXIT_BAD_PATTERNS));
    }

    #[tokio::test]
    async fn detokenize_reverses_what_the_engine_tokenized_for_that_partner() {
        let dir = tempfile::tempdir().unwrap();
        let kek = dir.path().join("kek");
        let service = KeyServiceArgs {
            local_kek: Some(kek.clone()),
            kms_key_id: None,
            kms_region: None,
            kms_endpoint: None,
        };
        let key_file = dir.path().join("fpe.json");
        // The key service file must exist before `fpe-key` (the gateway creates it).
        LocalKeyService::open_or_create(&kek).unwrap();
        let made = fpe_key(&FpeKeyArgs {
            service: service.clone(),
            name: "cards".into(),
            out: key_file.clone(),
        })
        .await;
        assert_eq!(made, ExitCode::SUCCESS);
        // The gateway side: unwrap, compile a profile, tokenize a CSV.
        let local = LocalKeyService::open(&kek).unwrap();
        let key = FpeKeyFile::load(&key_file)
            .unwrap()
            .unwrap(&local)
            .await
            .unwrap();
        let mut profile = Profile::default_masking().with_fpe(key, "partner-a");
        profile
            .actions
            .insert("CREDIT_CARD".into(), super::super::Action::TokenizeFpe);
        let engine = Arc::new(Engine::compile(&Pack::builtin(), &profile).unwrap());
        let text = "name,card\nann,4111 1111 1111 1111\nbob,5500-0000-0000-0004\n";
        let mut out = Vec::new();
        let hint = FormatHint {
            forced: Some(super::super::Format::Csv),
            ..FormatHint::default()
        };
        scan_io(&engine, &hint, &mut text.as_bytes(), &mut out, None).unwrap();
        let out = String::from_utf8(out).unwrap();
        let tokens: Vec<String> = out
            .lines()
            .skip(1)
            .map(|l| l.split(',').nth(1).unwrap().to_string())
            .collect();
        assert!(
            !out.contains("4111 1111 1111 1111") && !out.contains("5500-"),
            "{out}"
        );
        // The data owner: tokens on stdin, originals out.
        let mut args = DetokenizeArgs {
            service,
            key: key_file.clone(),
            partner: "partner-a".into(),
            tokens: Vec::new(),
        };
        let stdin = format!("{}\n{}\n", tokens[0], tokens[1]);
        let mut plain = Vec::new();
        let failed = detokenize_io(&args, &mut stdin.as_bytes(), &mut plain)
            .await
            .unwrap();
        assert_eq!(failed, 0);
        assert_eq!(
            String::from_utf8(plain).unwrap(),
            "4111 1111 1111 1111\n5500-0000-0000-0004\n"
        );
        // Another partner's tweak does not give the originals; short tokens are refused.
        args.partner = "partner-b".into();
        args.tokens = vec![tokens[0].clone(), "12-34".into()];
        let mut plain = Vec::new();
        let failed = detokenize_io(&args, &mut &b""[..], &mut plain)
            .await
            .unwrap();
        assert_eq!(failed, 1);
        let plain = String::from_utf8(plain).unwrap();
        assert!(!plain.contains("4111 1111 1111 1111"));
        assert!(plain.ends_with("\n\n"));
        // Creating over an existing key file is refused.
        let again = fpe_key(&FpeKeyArgs {
            service: args.service.clone(),
            name: "cards".into(),
            out: key_file,
        })
        .await;
        assert_eq!(again, ExitCode::FAILURE);
    }
}
