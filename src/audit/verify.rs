//! `gatehouse audit verify`: checks the hash chain and the checkpoint signatures across
//! rotated files and finds the first broken place.
//!
//! Takes segment files (oldest first; directories are expanded) and the trusted public keys;
//! gives a [`Report`]: counts, warnings, and the first [`Problem`] with file, line and what is
//! wrong. The rules, in the order they are checked for every line:
//! - a line must be complete (end in a newline), be a JSON object and carry `chain`;
//! - `chain.seq` must be one more than the previous line's: a jump means deleted records, a step
//!   back means reordered, duplicated or inserted ones;
//! - `chain.prev` must be the SHA-256 of the previous line's bytes, across files too (then the
//!   first record also names the previous file in `chain.prev_file`): a mismatch means the
//!   previous line was altered, or a file is missing or truncated;
//! - a checkpoint's signature must verify under a given key (it covers the whole checkpoint line
//!   but its `sig`, so the chain head it was made at).
//!
//! At the end of the trail: only a `shutdown` checkpoint as the very last line proves that
//! nothing was cut off. Otherwise the records after the last checkpoint are unsigned (a
//! truncation there cannot be seen), and the report fails, unless `live` is set (a running
//! gateway's trail), in which case this is a warning. A trail that starts after the genesis
//! (older files removed by retention, or not given) is checked from its first line on.

use std::io::BufRead;
use std::path::{Path, PathBuf};

use super::chain::{self, GENESIS};
use super::keys::PublicKey;
use super::ocsf;

pub struct Options {
    pub keys: Vec<PublicKey>,
    /// The trail may still be written to: an unsigned tail is a warning, not a failure.
    pub live: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: PathBuf,
    /// 1-based line number.
    pub line: u64,
    pub what: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.file.display(), self.line, self.what)
    }
}

#[derive(Debug, Default)]
pub struct Report {
    pub files: usize,
    /// Records (lines that are not checkpoints).
    pub records: u64,
    pub checkpoints: u64,
    pub first_seq: Option<u64>,
    pub last_seq: u64,
    /// Records after the last checkpoint.
    pub unsigned_tail: u64,
    /// The last line is a `shutdown` checkpoint.
    pub closed: bool,
    pub warnings: Vec<String>,
    pub problem: Option<Problem>,
}

impl Report {
    pub fn holds(&self) -> bool {
        self.problem.is_none()
    }
}

/// The files named by `paths`: files as given, directories expanded to their segment files,
/// all in trail order (segment names by day and number; other names after, as given).
pub fn files_of(paths: &[PathBuf]) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for p in paths {
        if p.is_dir() {
            files.extend(chain::segments(p)?.into_iter().map(|n| p.join(n)));
        } else {
            files.push(p.clone());
        }
    }
    files.sort_by_cached_key(|p| {
        let name = file_name(p);
        match chain::segment_key(&name) {
            Some((day, n)) => (0, day, n, name),
            None => (1, String::new(), 0, name),
        }
    });
    files.dedup();
    Ok(files)
}

/// The previous line: where it is, its hash and sequence number.
struct Prev {
    file: PathBuf,
    name: String,
    line: u64,
    seq: u64,
    hash: [u8; 32],
}

/// Verifies `files` in order. `progress` is told how many bytes were read. Fails only when a
/// file cannot be read; everything found in the files is in the report.
pub fn verify(
    files: &[PathBuf],
    opts: &Options,
    progress: &mut dyn FnMut(u64),
) -> std::io::Result<Report> {
    let mut r = Report {
        files: files.len(),
        ..Report::default()
    };
    let mut prev: Option<Prev> = None;
    let mut last_checkpoint: Option<(PathBuf, u64, String)> = None;
    for path in files {
        let name = file_name(path);
        let mut reader = std::io::BufReader::new(std::fs::File::open(path)?);
        let (mut lineno, mut buf) = (0u64, Vec::new());
        loop {
            buf.clear();
            if reader.read_until(b'\n', &mut buf)? == 0 {
                break;
            }
            lineno += 1;
            progress(buf.len() as u64);
            let at = |what: String| Problem {
                file: path.clone(),
                line: lineno,
                what,
            };
            let Some(line) = buf.strip_suffix(b"\n") else {
                r.problem = Some(at("incomplete last line: the file was cut in the middle of a record (truncated), or is being written".into()));
                return Ok(r);
            };
            let checked = check_line(line, lineno == 1, &name, prev.as_ref(), opts);
            let (link, value) = match checked {
                Ok(ok) => ok,
                Err(Located::Here(what)) => {
                    r.problem = Some(at(what));
                    return Ok(r);
                }
                Err(Located::Previous(what)) => {
                    let p = prev.as_ref().expect("only with a previous line");
                    r.problem = Some(Problem {
                        file: p.file.clone(),
                        line: p.line,
                        what,
                    });
                    return Ok(r);
                }
            };
            if prev.is_none() {
                r.first_seq = Some(link.seq);
                if link.seq != 1 || chain::parse_hex(&link.prev) != Some(GENESIS) {
                    r.warnings.push(format!(
                        "the trail given starts at seq {} ({}:{}), continuing from {}: records before it are not checked",
                        link.seq,
                        path.display(),
                        lineno,
                        link.prev_file.as_deref().unwrap_or("an earlier file"),
                    ));
                }
            }
            if ocsf::kind(&value) == "checkpoint" {
                r.checkpoints += 1;
                r.unsigned_tail = 0;
                let reason = ocsf::extension(&value)["checkpoint"]["reason"]
                    .as_str()
                    .unwrap_or("")
                    .to_string();
                last_checkpoint = Some((path.clone(), lineno, reason));
            } else {
                r.records += 1;
                r.unsigned_tail += 1;
                note_restart(&value, path, lineno, &mut r.warnings);
            }
            r.last_seq = link.seq;
            prev = Some(Prev {
                file: path.clone(),
                name: name.clone(),
                line: lineno,
                seq: link.seq,
                hash: chain::line_hash(line),
            });
        }
    }
    let Some(last) = prev else {
        r.problem = Some(Problem {
            file: files.first().cloned().unwrap_or_default(),
            line: 0,
            what: "no audit records found".into(),
        });
        return Ok(r);
    };
    let closed = r.unsigned_tail == 0
        && last_checkpoint
            .as_ref()
            .is_some_and(|(_, _, reason)| reason == "shutdown");
    r.closed = closed;
    if !closed {
        let what = match &last_checkpoint {
            Some((file, line, _)) if r.unsigned_tail > 0 => format!(
                "{} record(s) after the last signed checkpoint ({}:{line}) are unsigned: they could be removed without trace",
                r.unsigned_tail,
                file.display()
            ),
            Some((_, _, reason)) => format!(
                "the trail ends at a periodic ({reason}) checkpoint, not a shutdown checkpoint: records written after it could have been removed"
            ),
            None => format!(
                "no signed checkpoint at all: none of the {} record(s) is signed",
                r.records
            ),
        };
        if opts.live {
            r.warnings.push(format!("not closed: {what}"));
        } else {
            r.problem = Some(Problem {
                file: last.file,
                line: last.line,
                what: format!(
                    "trail not closed by a shutdown checkpoint (truncated tail, unclean stop, or still being written; use --live for a running gateway): {what}"
                ),
            });
        }
    }
    Ok(r)
}

enum Located {
    Here(String),
    Previous(String),
}

/// Checks one line against the previous one; gives its chain fields and parsed value.
fn check_line(
    line: &[u8],
    first_in_file: bool,
    name: &str,
    prev: Option<&Prev>,
    opts: &Options,
) -> Result<(chain::Link, serde_json::Value), Located> {
    let value: serde_json::Value = serde_json::from_slice(line)
        .map_err(|_| Located::Here("not a JSON record: the line was altered or inserted".into()))?;
    let link = chain::link_of(&value).ok_or_else(|| {
        Located::Here("no chain fields: the line was inserted (or predates the chain)".into())
    })?;
    if let Some(p) = prev {
        if first_in_file && link.prev_file.as_deref() != Some(p.name.as_str()) {
            return Err(Located::Here(format!(
                "this file's first record continues {:?}, but the file before it is {:?}: a file is missing or out of order",
                link.prev_file.as_deref().unwrap_or("nothing"),
                p.name
            )));
        }
        let expected = p.seq + 1;
        if link.seq > expected {
            return Err(Located::Here(format!(
                "sequence jumps from {} to {}: {} record(s) deleted (or moved) before this line",
                p.seq,
                link.seq,
                link.seq - expected
            )));
        }
        if link.seq < expected {
            return Err(Located::Here(format!(
                "sequence goes back from {} to {}: records reordered, duplicated or inserted",
                p.seq, link.seq
            )));
        }
        if chain::parse_hex(&link.prev) != Some(p.hash) {
            let what = if first_in_file {
                format!(
                    "record altered, or {name} does not continue it: its hash does not match the link in the first line of {name} (also when the file was truncated)"
                )
            } else {
                "record altered: its hash does not match the link in the next line".to_string()
            };
            return Err(Located::Previous(what));
        }
    }
    if ocsf::kind(&value) == "checkpoint" {
        check_signature(line, &value, opts).map_err(Located::Here)?;
    }
    Ok((link, value))
}

fn check_signature(line: &[u8], value: &serde_json::Value, opts: &Options) -> Result<(), String> {
    const SIG: &[u8] = b",\"sig\":\"";
    let key_id = ocsf::extension(value)["checkpoint"]["key_id"]
        .as_str()
        .unwrap_or("");
    let key = opts
        .keys
        .iter()
        .find(|k| k.key_id == key_id)
        .ok_or_else(|| {
            format!("checkpoint signed by unknown key {key_id:?} (give its public key with --key)")
        })?;
    // The signature is the last member of `unmapped` (`..."sig":"S"}}`), or of the line in a
    // trail written before it was OCSF (`..."sig":"S"}`); the signed bytes are the line
    // without it.
    let closing: &[u8] = if ocsf::is_ocsf(value) {
        b"\"}}"
    } else {
        b"\"}"
    };
    let start = line
        .windows(SIG.len())
        .rposition(|w| w == SIG)
        .filter(|_| line.ends_with(closing))
        .ok_or("checkpoint without a signature")?;
    let sig =
        std::str::from_utf8(&line[start + SIG.len()..line.len() - closing.len()]).unwrap_or("");
    let mut unsigned = line[..start].to_vec();
    unsigned.extend_from_slice(&closing[1..]);
    if key.verify(&unsigned, sig) {
        Ok(())
    } else {
        Err("checkpoint signature does not verify: the checkpoint, or the chain before it, was rewritten".into())
    }
}

/// Warns about a writer restart after an unclean stop, or a torn line it cut off.
fn note_restart(value: &serde_json::Value, path: &Path, line: u64, warnings: &mut Vec<String>) {
    if ocsf::kind(value) != "trail_opened" {
        return;
    }
    let value = ocsf::extension(value);
    let at = format!("{}:{line}", path.display());
    match value["previous_end"].as_str() {
        Some("unclosed") => warnings.push(format!(
            "{at}: the writer restarted after an unclean stop (crash, kill, or a cut tail): records before it after the last checkpoint were never signed"
        )),
        Some("unchained") => warnings.push(format!(
            "{at}: the writer started a new chain after a file without chain fields"
        )),
        _ => {}
    }
    if let Some(n) = value["discarded_bytes"].as_u64() {
        warnings.push(format!(
            "{at}: the writer cut off a torn last line of {n} bytes left by a crash (never confirmed)"
        ));
    }
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}
