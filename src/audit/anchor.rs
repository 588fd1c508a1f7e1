//! Anchors: off-host copies of the signed checkpoints, and the check of a trail against them.
//!
//! Takes a checkpoint line as written (file, line number, bytes); gives an [`Anchor`]: a small
//! JSON object with its sequence number, file, line, the SHA-256 of the whole line (the chain
//! head after it), the chain head it signs (`chain.prev`), time, reason, key id and signature.
//! The archive uploads one per checkpoint as it is written (`<prefix>anchors/<seq>.json`).
//! [`check`] compares a trail with a set of anchors: every anchored checkpoint must be in the
//! trail, at its sequence number, in the same file, with the same bytes. A trail rewritten
//! with a recomputed chain and re-signed checkpoints verifies locally, but its checkpoint
//! lines differ from the anchored ones (their `chain.prev` commits to the rewritten records),
//! so it fails here; so does a trail missing a segment an anchor vouches for. Loading anchors
//! fails with a message naming the object or file that cannot be read or parsed.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::chain;

/// Format version of an anchor object.
pub const VERSION: u32 = 1;

/// One anchored checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Anchor {
    pub version: u32,
    /// `chain.seq` of the checkpoint line.
    pub seq: u64,
    /// The segment file that holds it.
    pub file: String,
    /// Its 1-based line number in that file.
    pub line: u64,
    /// SHA-256 (hex) of the checkpoint line's bytes: the chain head after it.
    pub line_hash: String,
    /// `chain.prev` of the checkpoint: the chain head it signs.
    pub chain_head: String,
    /// The checkpoint's own `time`.
    pub time: String,
    pub reason: String,
    pub key_id: String,
    pub sig: String,
    /// When the archive uploaded it.
    pub anchored_at: jiff::Timestamp,
}

impl Anchor {
    /// The anchor of a checkpoint line; `None` for any other line.
    pub fn of_line(file: &str, line_no: u64, line: &[u8], now: jiff::Timestamp) -> Option<Anchor> {
        let v: serde_json::Value = serde_json::from_slice(line).ok()?;
        if super::ocsf::kind(&v) != "checkpoint" {
            return None;
        }
        let x = super::ocsf::extension(&v);
        let link = chain::link_of(&v)?;
        let text = |x: &serde_json::Value| x.as_str().unwrap_or_default().to_string();
        Some(Anchor {
            version: VERSION,
            seq: link.seq,
            file: file.to_string(),
            line: line_no,
            line_hash: chain::hex(&chain::line_hash(line)),
            chain_head: link.prev,
            time: text(&super::ocsf::native(&v)["time"]),
            reason: text(&x["checkpoint"]["reason"]),
            key_id: text(&x["checkpoint"]["key_id"]),
            sig: text(&x["sig"]),
            anchored_at: now,
        })
    }

    /// The object key (or file name under a local copy) of the anchor of `seq`.
    pub fn key(prefix: &str, seq: u64) -> String {
        format!("{prefix}anchors/{seq:020}.json")
    }
}

/// An anchor and where it was read from (an `s3://` URL or a file path).
#[derive(Debug, Clone)]
pub struct Located {
    pub source: String,
    pub anchor: Anchor,
}

/// The first anchor the trail disagrees with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disagreement {
    pub source: String,
    pub seq: u64,
    pub file: String,
    pub line: u64,
    pub what: String,
}

impl std::fmt::Display for Disagreement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "anchor {} (seq {}, {} line {}): {}",
            self.source, self.seq, self.file, self.line, self.what
        )
    }
}

#[derive(Debug, Default)]
pub struct AnchorReport {
    /// Anchors whose checkpoint was found in the trail, byte for byte.
    pub matched: usize,
    /// Anchors before the trail's first record, skipped because `older_ok` was set.
    pub skipped_older: usize,
    pub problem: Option<Disagreement>,
}

/// Checks `files` (in trail order) against `anchors`. With `older_ok`, anchors before the
/// first record given are skipped (files removed by retention, to be fetched from the
/// archive); otherwise they fail like any missing segment. Fails only on a read error.
pub fn check(
    files: &[PathBuf],
    anchors: &[Located],
    older_ok: bool,
) -> std::io::Result<AnchorReport> {
    let by_seq: BTreeMap<u64, &Located> = anchors.iter().map(|a| (a.anchor.seq, a)).collect();
    let mut problems: BTreeMap<u64, String> = BTreeMap::new();
    let mut report = AnchorReport::default();
    let (mut first, mut last) = (None::<(u64, String)>, None::<(u64, String)>);
    for path in files {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut reader = std::io::BufReader::new(std::fs::File::open(path)?);
        let mut buf = Vec::new();
        while reader.read_until(b'\n', &mut buf)? > 0 {
            let line = buf.strip_suffix(b"\n").unwrap_or(&buf);
            let seq = serde_json::from_slice::<serde_json::Value>(line)
                .ok()
                .and_then(|v| chain::link_of(&v))
                .map(|l| l.seq);
            if let Some(seq) = seq {
                first.get_or_insert((seq, name.clone()));
                last = Some((seq, name.clone()));
                if let Some(a) = by_seq.get(&seq) {
                    match disagreement(&a.anchor, &name, line) {
                        None => report.matched += 1,
                        Some(what) => {
                            problems.entry(seq).or_insert(what);
                        }
                    }
                }
            }
            buf.clear();
        }
    }
    let seen_first = first.as_ref().map(|(s, _)| *s);
    let seen_last = last.as_ref().map_or(0, |(s, _)| *s);
    let present = |seq: u64| seen_first.is_some_and(|f| seq >= f) && seq <= seen_last;
    for &seq in by_seq.keys() {
        if problems.contains_key(&seq) || present(seq) {
            continue;
        }
        let what = match (&first, seen_first) {
            (Some((f, fname)), Some(_)) if seq < *f => {
                if older_ok {
                    report.skipped_older += 1;
                    continue;
                }
                format!(
                    "it vouches for a checkpoint before the trail given, which starts at seq {f} in {fname}: the segment holding it is missing (removed by retention: fetch it from the archive, or use --anchor-skip-older)"
                )
            }
            _ => format!(
                "it vouches for a checkpoint the trail given does not have (it ends at seq {seen_last}{}): the segment holding it, or the end of the trail, is missing",
                last.as_ref()
                    .map(|(_, n)| format!(" in {n}"))
                    .unwrap_or_default()
            ),
        };
        problems.insert(seq, what);
    }
    // Anchors inside the trail's span whose seq no line carries are caught above only when
    // outside the span; a gap inside it is a sequence jump that plain verify reports.
    if let Some((&seq, what)) = problems.iter().next() {
        let a = by_seq[&seq];
        report.problem = Some(Disagreement {
            source: a.source.clone(),
            seq,
            file: a.anchor.file.clone(),
            line: a.anchor.line,
            what: what.clone(),
        });
    }
    Ok(report)
}

/// Why the trail's line `line` in file `name`, at the anchor's seq, disagrees with it.
fn disagreement(a: &Anchor, name: &str, line: &[u8]) -> Option<String> {
    let hash = chain::hex(&chain::line_hash(line));
    if hash == a.line_hash && name == a.file {
        return None;
    }
    if name != a.file {
        return Some(format!(
            "the trail has seq {} in {name}, the anchor in {}: the trail was rearranged or rewritten",
            a.seq, a.file
        ));
    }
    let v: Option<serde_json::Value> = serde_json::from_slice(line).ok();
    let head = v
        .as_ref()
        .and_then(chain::link_of)
        .map(|l| l.prev)
        .unwrap_or_default();
    Some(
        if v.as_ref()
            .is_some_and(|v| super::ocsf::kind(v) == "checkpoint")
            && head != a.chain_head
        {
            format!(
                "the anchored chain head {} differs from the trail's {head}: the records before this checkpoint were rewritten (and the chain recomputed and re-signed)",
                a.chain_head
            )
        } else if v
            .as_ref()
            .is_some_and(|v| super::ocsf::kind(v) == "checkpoint")
        {
            "the checkpoint line differs from the anchored one (same chain head): the checkpoint itself was rewritten".to_string()
        } else {
            "the anchored checkpoint is not at this place in the trail: records were rewritten"
                .to_string()
        },
    )
}

/// Anchors from a local directory: every `*.json` file in it and in its `anchors/`
/// subdirectory (a copy of the archive's `anchors/` prefix).
pub fn load_dir(dir: &Path) -> Result<Vec<Located>, String> {
    let mut out = Vec::new();
    for d in [dir.to_path_buf(), dir.join("anchors")] {
        let entries = match std::fs::read_dir(&d) {
            Ok(e) => e,
            Err(e) if d != dir && e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(format!("{}: {e}", d.display())),
        };
        for entry in entries {
            let path = entry.map_err(|e| format!("{}: {e}", d.display()))?.path();
            if path.extension().is_none_or(|x| x != "json") || !path.is_file() {
                continue;
            }
            let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            out.push(parse(&bytes, path.display().to_string())?);
        }
    }
    if out.is_empty() {
        return Err(format!("{}: no anchors (*.json) found", dir.display()));
    }
    Ok(out)
}

/// Anchors under `s3://bucket/prefix`: the objects of `<prefix>anchors/`.
pub async fn load_s3(
    url: &str,
    region: Option<&str>,
    endpoint_url: Option<&str>,
) -> Result<Vec<Located>, String> {
    let rest = url
        .strip_prefix("s3://")
        .ok_or_else(|| format!("{url}: not an s3:// URL"))?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    let prefix = match prefix.trim_end_matches('/') {
        "" => String::new(),
        p => format!("{p}/"),
    };
    let client = super::archive::client(region, endpoint_url, endpoint_url.is_some()).await;
    let list_prefix = format!("{prefix}anchors/");
    let mut keys = Vec::new();
    let mut pages = client
        .list_objects_v2()
        .bucket(bucket)
        .prefix(&list_prefix)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| format!("{url}: cannot list anchors: {}", sdk_error(&e)))?;
        keys.extend(
            page.contents()
                .iter()
                .filter_map(|o| o.key())
                .filter(|k| k.ends_with(".json"))
                .map(str::to_string),
        );
    }
    if keys.is_empty() {
        return Err(format!("s3://{bucket}/{list_prefix}: no anchors found"));
    }
    let mut out = Vec::with_capacity(keys.len());
    for key in keys {
        let source = format!("s3://{bucket}/{key}");
        let obj = client
            .get_object()
            .bucket(bucket)
            .key(&key)
            .send()
            .await
            .map_err(|e| format!("{source}: {}", sdk_error(&e)))?;
        let bytes = obj
            .body
            .collect()
            .await
            .map_err(|e| format!("{source}: {e}"))?
            .into_bytes();
        out.push(parse(&bytes, source)?);
    }
    Ok(out)
}

fn parse(bytes: &[u8], source: String) -> Result<Located, String> {
    let anchor: Anchor =
        serde_json::from_slice(bytes).map_err(|e| format!("{source}: not an anchor: {e}"))?;
    if anchor.version != VERSION {
        return Err(format!(
            "{source}: anchor version {} (this build reads {VERSION})",
            anchor.version
        ));
    }
    Ok(Located { source, anchor })
}

pub(super) fn sdk_error<E: std::error::Error>(e: &E) -> String {
    aws_sdk_s3::error::DisplayErrorContext(e).to_string()
}
