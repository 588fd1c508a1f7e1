//! The audit trail: one JSON line per token event and per data request, allowed or denied.
//!
//! Takes typed [`Event`]s from the pipeline and appends them to a daily JSONL file under the
//! audit directory, from a dedicated writer thread so request tasks never block on disk.
//! Fails closed: when a write or flush fails, [`Audit::healthy`] turns false and the pipeline
//! refuses requests until a later write succeeds. Events are written through this module only,
//! never through `tracing`, and never hold tokens, keys, external ids or object contents.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;

use serde::Serialize;

/// Allowed or denied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    Allow,
    Deny,
}

/// What kind of event a line records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// `POST /v1/token`, issued or refused.
    Token,
    /// A data-plane request (or a refused attempt at one).
    Request,
    /// An operator action through the admin listener (revocation).
    Admin,
}

/// One audit record. Optional fields are omitted when unknown.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    pub time: jiff::Timestamp,
    pub kind: Kind,
    pub request_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partner: Option<String>,
    pub client_ip: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    pub method: String,
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub share: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub range: Option<String>,
    pub status: u16,
    pub decision: Decision,
    /// Stable reason code (`ok` for allowed requests).
    pub reason: String,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// The response body ended early (client went away or upstream failed).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub aborted: bool,
    pub duration_ms: f64,
    /// Token events: the partner key that signed the assertion.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// Token events: lifetime granted, seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<String>>,
}

/// Handle to the audit writer. Cheap to clone.
#[derive(Clone)]
pub struct Audit {
    inner: Arc<Inner>,
}

struct Inner {
    tx: mpsc::Sender<Vec<u8>>,
    healthy: Arc<AtomicBool>,
    written: Arc<AtomicU64>,
}

impl Audit {
    /// Opens (creating) the audit directory and starts the writer thread. Fails when the
    /// directory cannot be created or today's file cannot be opened.
    pub fn open(dir: &Path) -> std::io::Result<Audit> {
        std::fs::create_dir_all(dir)?;
        let mut writer = Writer {
            dir: dir.to_path_buf(),
            day: String::new(),
            out: None,
        };
        writer.ensure_file(&jiff::Timestamp::now())?;
        let (tx, rx) = mpsc::channel::<Vec<u8>>();
        let healthy = Arc::new(AtomicBool::new(true));
        let written = Arc::new(AtomicU64::new(0));
        let (h, w) = (healthy.clone(), written.clone());
        std::thread::Builder::new()
            .name("gatehouse-audit".into())
            .spawn(move || writer.run(rx, &h, &w))?;
        Ok(Audit {
            inner: Arc::new(Inner {
                tx,
                healthy,
                written,
            }),
        })
    }

    /// False after a failed write, until a later write succeeds. Requests are refused meanwhile.
    pub fn healthy(&self) -> bool {
        self.inner.healthy.load(Ordering::Acquire)
    }

    /// Lines written so far (for tests and metrics).
    pub fn written(&self) -> u64 {
        self.inner.written.load(Ordering::Acquire)
    }

    /// Queues one event. Never blocks.
    pub fn record(&self, event: &Event) {
        match serde_json::to_vec(event) {
            Ok(mut line) => {
                line.push(b'\n');
                if self.inner.tx.send(line).is_err() {
                    self.inner.healthy.store(false, Ordering::Release);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "audit event could not be serialised");
                self.inner.healthy.store(false, Ordering::Release);
            }
        }
    }
}

/// Most lines kept in memory while the sink cannot write; beyond this the oldest are dropped
/// (and counted in the log). Requests are refused meanwhile, so only refusals accumulate.
const MAX_PENDING_LINES: usize = 100_000;

struct Writer {
    dir: PathBuf,
    day: String,
    out: Option<BufWriter<File>>,
}

impl Writer {
    fn ensure_file(&mut self, now: &jiff::Timestamp) -> std::io::Result<&mut BufWriter<File>> {
        let day = now.strftime("%Y-%m-%d").to_string();
        if self.out.is_none() || day != self.day {
            let path = self.dir.join(format!("audit-{day}.jsonl"));
            let mut file = OpenOptions::new()
                .create(true)
                .append(true)
                .read(true)
                .open(&path)?;
            // A write that failed half-way may have left a torn last line: end it first.
            if !ends_with_newline(&mut file)? {
                file.write_all(b"\n")?;
            }
            self.out = Some(BufWriter::new(file));
            self.day = day;
        }
        Ok(self.out.as_mut().expect("file opened above"))
    }

    fn run(mut self, rx: mpsc::Receiver<Vec<u8>>, healthy: &AtomicBool, written: &AtomicU64) {
        let mut pending: std::collections::VecDeque<Vec<u8>> = std::collections::VecDeque::new();
        let mut dropped = 0u64;
        loop {
            // While lines are pending, retry every second even without new events.
            let first = if pending.is_empty() {
                rx.recv().map_err(|_| ())
            } else {
                match rx.recv_timeout(std::time::Duration::from_secs(1)) {
                    Ok(line) => Ok(Some(line)),
                    Err(mpsc::RecvTimeoutError::Timeout) => Ok(None),
                    Err(mpsc::RecvTimeoutError::Disconnected) => Err(()),
                }
                .map(|l| l.unwrap_or_default())
            };
            let Ok(first) = first else { break };
            if !first.is_empty() {
                pending.push_back(first);
            }
            pending.extend(rx.try_iter().take(1023));
            while pending.len() > MAX_PENDING_LINES {
                pending.pop_front();
                dropped += 1;
            }
            let n = pending.len() as u64;
            match self.write(pending.make_contiguous()) {
                Ok(()) => {
                    pending.clear();
                    written.fetch_add(n, Ordering::AcqRel);
                    if !healthy.swap(true, Ordering::AcqRel) {
                        tracing::warn!(dropped, "audit writes succeed again; serving resumes");
                        dropped = 0;
                    }
                }
                Err(e) => {
                    self.out = None;
                    if healthy.swap(false, Ordering::AcqRel) {
                        tracing::error!(error = %e, dir = %self.dir.display(), "audit write failed; refusing requests until it works");
                    }
                }
            }
        }
        if let Some(mut out) = self.out.take() {
            let _ = out.flush();
        }
    }

    fn write(&mut self, batch: &[Vec<u8>]) -> std::io::Result<()> {
        let out = self.ensure_file(&jiff::Timestamp::now())?;
        for line in batch {
            out.write_all(line)?;
        }
        out.flush()?;
        out.get_ref().sync_data()
    }
}

fn ends_with_newline(file: &mut File) -> std::io::Result<bool> {
    use std::io::{Read, Seek, SeekFrom};
    let len = file.metadata()?.len();
    if len == 0 || !file.metadata()?.is_file() {
        return Ok(true);
    }
    file.seek(SeekFrom::Start(len - 1))?;
    let mut last = [0u8; 1];
    file.read_exact(&mut last)?;
    Ok(last[0] == b'\n')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(reason: &str) -> Event {
        Event {
            time: jiff::Timestamp::now(),
            kind: Kind::Request,
            request_id: "r1".into(),
            session_id: None,
            partner: Some("acme".into()),
            client_ip: "127.0.0.1".into(),
            user_agent: None,
            method: "GET".into(),
            path: "/s/k".into(),
            share: Some("s".into()),
            key: Some("k".into()),
            range: None,
            status: 200,
            decision: Decision::Allow,
            reason: reason.into(),
            bytes_in: 0,
            bytes_out: 5,
            aborted: false,
            duration_ms: 1.5,
            key_id: None,
            expires_in: None,
            scopes: None,
        }
    }

    #[test]
    fn writes_one_json_line_per_event() {
        let dir = tempfile::tempdir().unwrap();
        let audit = Audit::open(dir.path()).unwrap();
        audit.record(&event("ok"));
        audit.record(&event("no_grant"));
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while audit.written() < 2 && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let file = std::fs::read_dir(dir.path())
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        let text = std::fs::read_to_string(file).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[1]["reason"], "no_grant");
        assert_eq!(lines[0]["decision"], "allow");
        assert!(lines[0].get("session_id").is_none());
        assert!(audit.healthy());
    }

    #[test]
    fn open_fails_when_the_directory_cannot_exist() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("plain-file");
        std::fs::write(&file, b"x").unwrap();
        assert!(Audit::open(&file.join("audit")).is_err());
    }
}
