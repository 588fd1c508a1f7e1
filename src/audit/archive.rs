//! The off-host archive: sealed segment files and checkpoint anchors shipped to S3.
//!
//! Takes the audit directory and `[audit.archive]`; runs as its own tokio task, woken by the
//! writer whenever it has signed a checkpoint (and at rotation), so no request ever waits for
//! it. Each pass reads the trail forward from where the last one stopped, up to what the
//! writer has synced, and uploads one [`Anchor`] per new checkpoint
//! (`<prefix>anchors/<seq>.json`), then every sealed file (every segment but the newest) whose
//! checkpoints are all anchored (`<prefix><file name>`), each with Content-MD5 and a SHA-256
//! checksum, and with Object Lock retention when configured. What is done is recorded in a
//! [`Manifest`] written atomically after each upload, so a restart resumes where it stopped:
//! on start everything sealed and not shipped is shipped, every checkpoint not anchored is
//! anchored. A failed pass is retried after `backoff`, doubled up to `max_backoff`; failures
//! are logged (ERROR once per outage) and never reach the request path. Retention
//! ([`Manifest::shipped_names`]) deletes only files the manifest lists as shipped.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::{ByteStream, DateTime};
use aws_sdk_s3::types::ObjectLockMode as SdkLockMode;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};
use sha2::Digest;
use tokio::sync::watch;

use super::anchor::{Anchor, sdk_error};
use super::chain;
use super::writer::Shared;
use crate::config::{ArchiveConfig, ObjectLockMode};

const MANIFEST_VERSION: u32 = 1;

/// The durable record of what the archive holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub version: u32,
    /// Sequence number of the newest checkpoint anchored.
    pub anchored_seq: u64,
    /// Shipped files by name.
    pub shipped: BTreeMap<String, Shipped>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shipped {
    pub key: String,
    pub size: u64,
    pub sha256: String,
    pub at: jiff::Timestamp,
}

impl Manifest {
    /// Reads the manifest; a missing file is an empty one. A file that does not parse is an
    /// error (never silently "nothing shipped", which would let retention wait forever, nor
    /// "everything shipped").
    pub fn load(path: &Path) -> std::io::Result<Manifest> {
        match std::fs::read(path) {
            Ok(bytes) => {
                let m: Manifest = serde_json::from_slice(&bytes).map_err(|e| {
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("{}: {e}", path.display()),
                    )
                })?;
                if m.version != MANIFEST_VERSION {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("{}: manifest version {}", path.display(), m.version),
                    ));
                }
                Ok(m)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Manifest {
                version: MANIFEST_VERSION,
                ..Manifest::default()
            }),
            Err(e) => Err(e),
        }
    }

    fn save(&self, path: &Path) -> std::io::Result<()> {
        let bytes = serde_json::to_vec_pretty(self)?;
        crate::atomic_file::write(path, &bytes, crate::atomic_file::PUBLIC)
    }

    /// The files retention may delete: those shipped.
    pub fn shipped_names(path: &Path) -> std::io::Result<BTreeSet<String>> {
        Ok(Manifest::load(path)?.shipped.into_keys().collect())
    }
}

/// What the archive has done so far (for tests, metrics and the operator log).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    pub anchored_seq: u64,
    pub shipped: usize,
    /// Failed passes since the start.
    pub failures: u64,
    /// Passes that completed with everything due uploaded.
    pub clean_passes: u64,
}

/// The running archive task, owned by [`super::Audit`].
pub(super) struct Handle {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    progress: watch::Receiver<Progress>,
    shutdown_wait: Duration,
}

impl Handle {
    pub fn progress(&self) -> watch::Receiver<Progress> {
        self.progress.clone()
    }

    /// Asks for a last pass (the shutdown checkpoint's anchor, files sealed meanwhile) and
    /// waits for it, at most `shutdown_wait`. What is left is shipped at the next start.
    pub async fn finish(self) {
        let _ = self.stop.send(true);
        let mut task = self.task;
        if tokio::time::timeout(self.shutdown_wait, &mut task)
            .await
            .is_err()
        {
            task.abort();
            tracing::warn!(
                "audit archive did not finish in time; the rest is shipped at the next start"
            );
        }
    }
}

/// Starts the archive task on the current tokio runtime. Fails when there is none or the
/// manifest cannot be read.
pub(super) fn start(
    cfg: &ArchiveConfig,
    dir: &Path,
    shared: Arc<Shared>,
) -> std::io::Result<Handle> {
    let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
        std::io::Error::other("the audit archive needs a tokio runtime (audit.archive is set)")
    })?;
    let manifest = Manifest::load(&cfg.state_file)?;
    let (stop, stopped) = watch::channel(false);
    let (progress_tx, progress) = watch::channel(Progress {
        anchored_seq: manifest.anchored_seq,
        shipped: manifest.shipped.len(),
        ..Progress::default()
    });
    let archiver = Archiver {
        cfg: cfg.clone(),
        dir: dir.to_path_buf(),
        manifest,
        cursor: None,
        shared,
        progress: progress_tx,
    };
    let task = runtime.spawn(archiver.run(stopped));
    Ok(Handle {
        stop,
        task,
        progress,
        shutdown_wait: cfg.shutdown_wait,
    })
}

/// An S3 client for the archive: no SDK retries (the archive has its own backoff), bounded
/// connect and attempt times.
pub async fn client(region: Option<&str>, endpoint_url: Option<&str>, path_style: bool) -> Client {
    use aws_config::{retry::RetryConfig, timeout::TimeoutConfig};
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .retry_config(RetryConfig::standard().with_max_attempts(1))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(5))
                .operation_attempt_timeout(Duration::from_secs(300))
                .build(),
        );
    if let Some(r) = region {
        loader = loader.region(aws_config::Region::new(r.to_string()));
    }
    if let Some(url) = endpoint_url {
        loader = loader.endpoint_url(url);
    }
    let shared = loader.load().await;
    let conf = aws_sdk_s3::config::Builder::from(&shared)
        .force_path_style(path_style)
        .build();
    Client::from_conf(conf)
}

/// Where the next pass starts reading: a segment file, a byte offset and the line number
/// before it.
#[derive(Debug, Clone)]
struct Cursor {
    file: String,
    offset: u64,
    line: u64,
}

struct Archiver {
    cfg: ArchiveConfig,
    dir: PathBuf,
    manifest: Manifest,
    cursor: Option<Cursor>,
    shared: Arc<Shared>,
    progress: watch::Sender<Progress>,
}

impl Archiver {
    async fn run(mut self, mut stopped: watch::Receiver<bool>) {
        let client = client(
            self.cfg.region.as_deref(),
            self.cfg.endpoint_url.as_deref(),
            self.cfg.force_path_style,
        )
        .await;
        let mut backoff = self.cfg.backoff;
        let mut failing = false;
        loop {
            let last = *stopped.borrow();
            let wait = match self.pass(&client).await {
                Ok(()) => {
                    if failing {
                        tracing::warn!(bucket = %self.cfg.bucket, "audit archive uploads work again");
                    }
                    failing = false;
                    backoff = self.cfg.backoff;
                    self.progress.send_modify(|p| p.clean_passes += 1);
                    None
                }
                Err(e) => {
                    if !failing {
                        tracing::error!(bucket = %self.cfg.bucket, error = %e, "audit archive upload failed; retrying with backoff");
                    } else {
                        tracing::debug!(error = %e, "audit archive upload failed again");
                    }
                    failing = true;
                    self.progress.send_modify(|p| p.failures += 1);
                    let w = backoff;
                    backoff = (backoff * 2).min(self.cfg.max_backoff);
                    Some(w)
                }
            };
            if last {
                return;
            }
            let wake = self.shared.wake.notified();
            tokio::select! {
                _ = wake, if wait.is_none() => {}
                _ = tokio::time::sleep(wait.unwrap_or_default()), if wait.is_some() => {}
                _ = stopped.wait_for(|s| *s) => {}
            }
        }
    }

    /// Anchors new checkpoints, then ships sealed files whose checkpoints are anchored.
    async fn pass(&mut self, client: &Client) -> Result<(), String> {
        let names = chain::segments(&self.dir).map_err(|e| e.to_string())?;
        let Some(newest) = names.last().cloned() else {
            return Ok(());
        };
        self.anchor_new(client, &names).await?;
        // Only files before the cursor's have every checkpoint anchored.
        let reached = self
            .cursor
            .as_ref()
            .and_then(|c| names.iter().position(|n| *n == c.file))
            .unwrap_or(0);
        for name in &names[..reached] {
            if *name == newest {
                break;
            }
            if !self.manifest.shipped.contains_key(name) {
                self.ship(client, name).await?;
            }
        }
        Ok(())
    }

    /// Reads complete, synced lines from the cursor on and anchors each checkpoint past
    /// `anchored_seq`. Moves to the next file when one is sealed (not the newest).
    async fn anchor_new(&mut self, client: &Client, names: &[String]) -> Result<(), String> {
        let mut cursor = match self.cursor.clone() {
            Some(c) if names.contains(&c.file) => c,
            // At start (or when the file went): the oldest file not shipped, else the newest.
            _ => Cursor {
                file: names
                    .iter()
                    .find(|n| !self.manifest.shipped.contains_key(*n))
                    .unwrap_or(&names[names.len() - 1])
                    .clone(),
                offset: 0,
                line: 0,
            },
        };
        loop {
            let path = self.dir.join(&cursor.file);
            // Sealed files are complete. In the newest, read only what the writer has synced
            // in this run (before its first write: all of it, the torn tail already cut).
            let limit = if names.last() == Some(&cursor.file) {
                match self.shared.durable.lock().clone() {
                    Some((f, len)) if f == cursor.file => Some(len),
                    Some(_) => Some(0),
                    None => None,
                }
            } else {
                None
            };
            let (cp, from) = (cursor.clone(), path.clone());
            let lines = tokio::task::spawn_blocking(move || read_lines(&from, cp.offset, limit))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| format!("{}: {e}", path.display()))?;
            for line in lines {
                cursor.line += 1;
                let anchor =
                    Anchor::of_line(&cursor.file, cursor.line, &line, jiff::Timestamp::now());
                if let Some(a) = anchor.filter(|a| a.seq > self.manifest.anchored_seq) {
                    let saved = self.upload_anchor(client, &a).await;
                    if let Err(e) = saved {
                        // Resume at this line: keep the cursor before it.
                        cursor.line -= 1;
                        self.cursor = Some(cursor);
                        return Err(e);
                    }
                }
                cursor.offset += line.len() as u64 + 1;
            }
            self.cursor = Some(cursor.clone());
            let pos = names.iter().position(|n| *n == cursor.file);
            match pos.and_then(|i| names.get(i + 1)) {
                Some(next) => {
                    cursor = Cursor {
                        file: next.clone(),
                        offset: 0,
                        line: 0,
                    }
                }
                None => return Ok(()),
            }
        }
    }

    async fn upload_anchor(&mut self, client: &Client, a: &Anchor) -> Result<(), String> {
        let body = serde_json::to_vec(a).map_err(|e| e.to_string())?;
        let key = Anchor::key(&self.cfg.prefix, a.seq);
        self.put(client, &key, body, "application/json").await?;
        self.manifest.anchored_seq = a.seq;
        self.save()?;
        let seq = a.seq;
        self.progress.send_modify(|p| p.anchored_seq = seq);
        tracing::debug!(seq, key = %key, "audit checkpoint anchored");
        Ok(())
    }

    async fn ship(&mut self, client: &Client, name: &str) -> Result<(), String> {
        let path = self.dir.join(name);
        let body = tokio::fs::read(&path)
            .await
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let key = format!("{}{name}", self.cfg.prefix);
        let sha256 = chain::hex(&chain::line_hash(&body));
        let size = body.len() as u64;
        self.put(client, &key, body, "application/x-ndjson").await?;
        self.manifest.shipped.insert(
            name.to_string(),
            Shipped {
                key: key.clone(),
                size,
                sha256,
                at: jiff::Timestamp::now(),
            },
        );
        self.save()?;
        let n = self.manifest.shipped.len();
        self.progress.send_modify(|p| p.shipped = n);
        tracing::info!(file = %name, key = %key, bytes = size, "audit file archived");
        Ok(())
    }

    /// One PutObject with Content-MD5, a SHA-256 checksum and Object Lock when configured.
    async fn put(
        &self,
        client: &Client,
        key: &str,
        body: Vec<u8>,
        content_type: &str,
    ) -> Result<(), String> {
        let md5 = B64.encode(<md5::Md5 as md5::Digest>::digest(&body));
        let sha = B64.encode(sha2::Sha256::digest(&body));
        let mut req = client
            .put_object()
            .bucket(&self.cfg.bucket)
            .key(key)
            .content_type(content_type)
            .content_md5(md5)
            .checksum_sha256(sha)
            .body(ByteStream::from(body));
        if let Some(lock) = self.cfg.object_lock {
            let until = jiff::Timestamp::now().as_second() + i64::from(lock.days) * 86_400;
            req = req
                .object_lock_mode(match lock.mode {
                    ObjectLockMode::Governance => SdkLockMode::Governance,
                    ObjectLockMode::Compliance => SdkLockMode::Compliance,
                })
                .object_lock_retain_until_date(DateTime::from_secs(until));
        }
        req.send()
            .await
            .map_err(|e| format!("s3://{}/{key}: {}", self.cfg.bucket, sdk_error(&e)))?;
        Ok(())
    }

    fn save(&self) -> Result<(), String> {
        self.manifest
            .save(&self.cfg.state_file)
            .map_err(|e| format!("{}: {e}", self.cfg.state_file.display()))
    }
}

/// The complete lines (without newline) of `path` from `offset`, up to `limit` bytes of the
/// file when given (what the writer has synced).
fn read_lines(path: &Path, offset: u64, limit: Option<u64>) -> std::io::Result<Vec<Vec<u8>>> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = std::fs::File::open(path)?;
    let len = file.metadata()?.len();
    let end = limit.map_or(len, |l| l.min(len));
    if end <= offset {
        return Ok(Vec::new());
    }
    file.seek(SeekFrom::Start(offset))?;
    let mut buf = Vec::new();
    file.take(end - offset).read_to_end(&mut buf)?;
    let complete = buf.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    Ok(buf[..complete]
        .split_inclusive(|b| *b == b'\n')
        .map(|l| l[..l.len() - 1].to_vec())
        .collect())
}
