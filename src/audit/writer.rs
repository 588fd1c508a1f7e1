//! The writer thread: chains, signs, rotates, fsyncs and confirms.
//!
//! Takes serialised records from a channel; appends each as the next link of the hash chain
//! to the active segment file, adds a signed checkpoint every `checkpoint_every` records,
//! `checkpoint_interval` after the last one, before rotating and at shutdown. One `write` and
//! one `fdatasync` per batch (group commit): every record that arrived while the previous batch
//! was syncing shares the next sync, and waiting requests are confirmed only after it. On a
//! failed write the batch is kept and retried every second (the flag goes unhealthy), and the
//! file is cut back to its last good length before the retry, so no torn or doubled line stays.
//! On start it continues the newest file's chain, first cutting off a torn last line left by a
//! crash (a line that was never confirmed), and says so in a `trail_opened` record.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::oneshot;

use super::chain::{self, Head};
use super::flood::Flood;
use super::keys::Signer;
use crate::config::AuditConfig;

/// Most records kept in memory while the sink cannot write; beyond this the oldest are dropped
/// (and counted in the log). Requests are refused meanwhile, so only refusals accumulate.
const MAX_PENDING: usize = 100_000;
/// Most records taken into one batch.
const MAX_BATCH: usize = 4096;
/// How far back from the end a start looks for the last line.
const TAIL_WINDOW: u64 = 1 << 20;

pub enum Msg {
    Record(Vec<u8>, Option<oneshot::Sender<bool>>),
    /// Write everything queued, including aggregated refusals of the current window.
    Flush(oneshot::Sender<bool>),
    /// Flush, write the shutdown checkpoint and stop.
    Close(oneshot::Sender<bool>),
}

/// State shared between the handle and the thread.
pub struct Shared {
    pub healthy: AtomicBool,
    pub written: AtomicU64,
    /// Failed write attempts (each refuses requests until a write succeeds).
    pub failures: AtomicU64,
    pub flood: parking_lot::Mutex<Flood>,
    /// Woken after a write that signed a checkpoint (the archive anchors it).
    pub wake: tokio::sync::Notify,
    /// The active file and its synced length: the archive reads no further.
    pub durable: parking_lot::Mutex<Option<(String, u64)>>,
}

struct Entry {
    body: Vec<u8>,
    confirm: Option<oneshot::Sender<bool>>,
    /// A recorded event (counted in `written`), not an aggregated summary.
    event: bool,
}

/// Identity and last good length of the active file, to cut back a half-written batch.
#[derive(Clone, Copy)]
struct Known {
    dev: u64,
    ino: u64,
    len: u64,
}

#[derive(Serialize)]
struct CheckpointBody<'a> {
    time: jiff::Timestamp,
    kind: &'static str,
    checkpoint: CheckpointFields<'a>,
}

#[derive(Serialize)]
struct CheckpointFields<'a> {
    reason: &'static str,
    /// Records since the previous checkpoint.
    records: u64,
    key_id: &'a str,
    alg: &'static str,
}

#[derive(Serialize)]
struct Opened<'a> {
    time: jiff::Timestamp,
    kind: &'static str,
    /// `new_trail`, `shutdown` (the previous run ended cleanly), `unclosed` (it did not:
    /// crash, kill, or a tail cut off), or `unchained` (the newest file has no chain).
    previous_end: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    discarded_bytes: Option<u64>,
    key_id: &'a str,
    version: &'static str,
}

pub struct Writer {
    cfg: AuditConfig,
    signer: Signer,
    head: Head,
    active: String,
    active_day: String,
    active_since: jiff::Timestamp,
    out: Option<(File, bool)>,
    known: Option<Known>,
    since_checkpoint: u64,
    last_checkpoint: Instant,
    /// Writes that signed a checkpoint so far (the archive is woken when it grows).
    signed_writes: u64,
    /// The `trail_opened` record, written with the first batch.
    note: Option<Vec<u8>>,
}

impl Writer {
    /// Loads the key, continues the newest file's chain and opens the active file. Blocking.
    pub fn start(cfg: &AuditConfig, now: jiff::Timestamp) -> std::io::Result<Writer> {
        std::fs::create_dir_all(&cfg.dir)?;
        let signer = Signer::open_or_create(&cfg.signing_key_file, &cfg.public_key_file)?;
        let names = chain::segments(&cfg.dir)?;
        let found = recover_head(&cfg.dir, &names)?;
        let today = day_of(now);
        let newest = names.last().cloned();
        let reuse = newest.filter(|n| {
            found.previous_end != "unchained"
                && chain::segment_key(n).is_some_and(|(d, _)| d == today)
                && std::fs::metadata(cfg.dir.join(n))
                    .map(|m| !m.is_file() || m.len() < cfg.max_file_size)
                    .unwrap_or(true)
        });
        let active = reuse.unwrap_or_else(|| next_name(&names, &today));
        let active_since = first_time(&cfg.dir.join(&active)).unwrap_or(now);
        let note = super::ocsf::encode(&serde_json::to_vec(&Opened {
            time: now,
            kind: "trail_opened",
            previous_end: found.previous_end,
            discarded_bytes: found.discarded,
            key_id: signer.key_id(),
            version: env!("CARGO_PKG_VERSION"),
        })?);
        let mut w = Writer {
            cfg: cfg.clone(),
            signer,
            head: found.head,
            active,
            active_day: today,
            active_since,
            out: None,
            known: None,
            since_checkpoint: 0,
            last_checkpoint: Instant::now(),
            signed_writes: 0,
            note: Some(note),
        };
        w.ensure_open()?;
        w.sweep(now);
        Ok(w)
    }

    pub fn key_id(&self) -> &str {
        self.signer.key_id()
    }

    pub fn run(mut self, rx: mpsc::Receiver<Msg>, shared: &Shared) {
        let mut pending: VecDeque<Entry> = VecDeque::new();
        let mut dropped = 0u64;
        loop {
            let now = Instant::now();
            let deadline = self.next_deadline(!pending.is_empty(), shared, now);
            let first = match deadline {
                None => rx.recv().map_err(|_| mpsc::RecvTimeoutError::Disconnected),
                Some(d) => rx.recv_timeout(d.saturating_duration_since(now)),
            };
            let mut msgs = Vec::new();
            let mut close = false;
            match first {
                Ok(m) => msgs.push(m),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => close = true,
            }
            msgs.extend(rx.try_iter().take(MAX_BATCH));
            let (mut waiters, mut flush) = (Vec::new(), false);
            for m in msgs {
                match m {
                    Msg::Record(body, confirm) => pending.push_back(Entry {
                        body,
                        confirm,
                        event: true,
                    }),
                    Msg::Flush(tx) => {
                        flush = true;
                        waiters.push(tx);
                    }
                    Msg::Close(tx) => {
                        close = true;
                        waiters.push(tx);
                    }
                }
            }
            let summaries = shared.flood.lock().take(Instant::now(), flush || close);
            for s in summaries {
                if let Ok(native) = serde_json::to_vec(&s) {
                    pending.push_back(Entry {
                        body: super::ocsf::encode(&native),
                        confirm: None,
                        event: false,
                    });
                }
            }
            while pending.len() > MAX_PENDING {
                if let Some(e) = pending.pop_front()
                    && let Some(tx) = e.confirm
                {
                    let _ = tx.send(false);
                }
                dropped += 1;
            }
            let bodies: Vec<&[u8]> = pending.iter().map(|e| e.body.as_slice()).collect();
            let signed_before = self.signed_writes;
            // Flags first, then confirmations: a woken request sees the state it was told.
            match self.commit(&bodies, jiff::Timestamp::now(), Instant::now(), close) {
                Ok(_) => {
                    if let Some(k) = self.known {
                        *shared.durable.lock() = Some((self.active.clone(), k.len));
                    }
                    if self.signed_writes != signed_before {
                        shared.wake.notify_one();
                    }
                    let events = pending.iter().filter(|e| e.event).count() as u64;
                    shared.written.fetch_add(events, Ordering::AcqRel);
                    if !shared.healthy.swap(true, Ordering::AcqRel) {
                        tracing::warn!(dropped, "audit writes succeed again; serving resumes");
                        dropped = 0;
                    }
                    for e in pending.drain(..) {
                        if let Some(tx) = e.confirm {
                            let _ = tx.send(true);
                        }
                    }
                    for tx in waiters {
                        let _ = tx.send(true);
                    }
                }
                Err(e) => {
                    shared.failures.fetch_add(1, Ordering::Relaxed);
                    if shared.healthy.swap(false, Ordering::AcqRel) {
                        tracing::error!(error = %e, dir = %self.cfg.dir.display(), "audit write failed; refusing requests until it works");
                    }
                    // Requests waiting for a durable record are refused: their records go.
                    pending.retain_mut(|e| match e.confirm.take() {
                        Some(tx) => {
                            let _ = tx.send(false);
                            false
                        }
                        None => true,
                    });
                    for tx in waiters {
                        let _ = tx.send(false);
                    }
                }
            }
            if close {
                break;
            }
        }
    }

    /// When the loop must wake up without a message: retry, checkpoint or window end.
    fn next_deadline(&self, pending: bool, shared: &Shared, now: Instant) -> Option<Instant> {
        let retry = pending.then(|| now + Duration::from_secs(1));
        let checkpoint = (self.since_checkpoint > 0)
            .then(|| self.last_checkpoint + self.cfg.checkpoint_interval);
        let window = shared.flood.lock().due();
        [retry, checkpoint, window].into_iter().flatten().min()
    }

    /// Writes `bodies` (OCSF records, [`super::ocsf::encode`]) and whatever checkpoints fall
    /// due as one batch with one sync.
    /// Gives the number of lines written. On error nothing of the batch counts as written.
    pub fn commit(
        &mut self,
        bodies: &[&[u8]],
        now: jiff::Timestamp,
        instant: Instant,
        shutdown: bool,
    ) -> std::io::Result<u64> {
        let interval_due = self.since_checkpoint > 0
            && instant.duration_since(self.last_checkpoint) >= self.cfg.checkpoint_interval;
        if bodies.is_empty() && !interval_due && !shutdown {
            return Ok(0);
        }
        // Checkpoints alone stay in the file they sign; only records start a new one.
        if !bodies.is_empty() {
            self.rotate_if_due(now, instant)?;
        }
        self.ensure_open()?;
        let mut head = self.head.clone();
        let mut since = self.since_checkpoint;
        let mut buf = Vec::new();
        let mut lines = 0u64;
        let mut signed = false;
        let note = if bodies.is_empty() {
            None
        } else {
            self.note.as_deref()
        };
        for body in note.into_iter().chain(bodies.iter().copied()) {
            buf.extend_from_slice(&head.append(body, &self.active));
            buf.push(b'\n');
            lines += 1;
            since += 1;
            if since >= self.cfg.checkpoint_every {
                self.push_checkpoint(&mut buf, &mut head, "count", since, now)?;
                (since, signed, lines) = (0, true, lines + 1);
            }
        }
        let timed = since > 0
            && instant.duration_since(self.last_checkpoint) >= self.cfg.checkpoint_interval;
        if shutdown || timed {
            let reason = if shutdown { "shutdown" } else { "interval" };
            self.push_checkpoint(&mut buf, &mut head, reason, since, now)?;
            (since, signed, lines) = (0, true, lines + 1);
        }
        self.write(&buf)?;
        self.head = head;
        self.since_checkpoint = since;
        if signed {
            self.last_checkpoint = instant;
            self.signed_writes += 1;
        }
        if !bodies.is_empty() {
            self.note = None;
        }
        Ok(lines)
    }

    fn push_checkpoint(
        &self,
        buf: &mut Vec<u8>,
        head: &mut Head,
        reason: &'static str,
        records: u64,
        now: jiff::Timestamp,
    ) -> std::io::Result<()> {
        let body = serde_json::to_vec(&CheckpointBody {
            time: now,
            kind: "checkpoint",
            checkpoint: CheckpointFields {
                reason,
                records,
                key_id: self.signer.key_id(),
                alg: "Ed25519",
            },
        })?;
        // The signature covers the whole line with its chain link; it goes in as the last
        // member of `unmapped`, after `chain`.
        let unsigned = head.link(&super::ocsf::encode(&body), &self.active);
        let sig = self.signer.sign(&unsigned);
        let mut line = unsigned[..unsigned.len() - 2].to_vec();
        line.extend_from_slice(b",\"sig\":\"");
        line.extend_from_slice(sig.as_bytes());
        line.extend_from_slice(b"\"}}");
        head.advance(&line, &self.active);
        buf.extend_from_slice(&line);
        buf.push(b'\n');
        Ok(())
    }

    /// Seals the active file (rotation checkpoint, sync) and starts the next one when the
    /// UTC day changed, the file is full, or `rotate_interval` has passed.
    fn rotate_if_due(&mut self, now: jiff::Timestamp, instant: Instant) -> std::io::Result<()> {
        let day = day_of(now);
        let size = self.known.map_or(0, |k| k.len);
        let age = Duration::try_from(now.duration_since(self.active_since)).unwrap_or_default();
        let due = day != self.active_day
            || size >= self.cfg.max_file_size
            || age >= self.cfg.rotate_interval;
        if !due {
            return Ok(());
        }
        let has_records = self.head.file.as_deref() == Some(self.active.as_str());
        if has_records {
            self.ensure_open()?;
            let mut head = self.head.clone();
            let mut buf = Vec::new();
            self.push_checkpoint(&mut buf, &mut head, "rotation", self.since_checkpoint, now)?;
            self.write(&buf)?;
            self.head = head;
            self.since_checkpoint = 0;
            self.last_checkpoint = instant;
            self.signed_writes += 1;
        } else if day == self.active_day {
            // Nothing in the file yet: nothing to seal.
            return Ok(());
        }
        let names = chain::segments(&self.cfg.dir)?;
        self.active = next_name(&names, &day);
        self.active_day = day;
        self.active_since = now;
        self.out = None;
        self.known = None;
        self.ensure_open()?;
        self.sweep(now);
        Ok(())
    }

    fn ensure_open(&mut self) -> std::io::Result<()> {
        if self.out.is_some() {
            return Ok(());
        }
        let path = self.cfg.dir.join(&self.active);
        let existed = path.exists();
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .open(&path)?;
        let meta = file.metadata()?;
        let regular = meta.is_file();
        if regular {
            let now = Known {
                dev: meta.dev(),
                ino: meta.ino(),
                len: meta.len(),
            };
            match self.known {
                // Our own file with a half-written batch at the end: cut it off.
                Some(k) if (k.dev, k.ino) == (now.dev, now.ino) && now.len > k.len => {
                    file.set_len(k.len)?;
                }
                _ => self.known = Some(now),
            }
            if !existed {
                File::open(&self.cfg.dir)?.sync_all()?;
            }
        }
        self.out = Some((file, regular));
        Ok(())
    }

    fn write(&mut self, buf: &[u8]) -> std::io::Result<()> {
        let result = self.ensure_open().and_then(|()| {
            let (file, _) = self.out.as_mut().expect("opened above");
            file.write_all(buf)?;
            file.sync_data()
        });
        match result {
            Ok(()) => {
                if let Some(k) = &mut self.known {
                    k.len += buf.len() as u64;
                }
                Ok(())
            }
            Err(e) => {
                self.out = None;
                Err(e)
            }
        }
    }

    /// Deletes sealed files whose last write is older than the retention. Never the active one.
    fn sweep(&self, now: jiff::Timestamp) {
        let Some(retention) = self.cfg.retention else {
            return;
        };
        let Ok(names) = chain::segments(&self.cfg.dir) else {
            return;
        };
        // With an archive, only files it has shipped may go; if its record cannot be read,
        // none (fail closed: the trail is never lost before it is off the host).
        let shipped = match &self.cfg.archive {
            None => None,
            Some(a) => match super::archive::Manifest::shipped_names(&a.state_file) {
                Ok(s) => Some(s),
                Err(e) => {
                    tracing::error!(error = %e, "audit archive manifest unreadable; retention deletes nothing");
                    return;
                }
            },
        };
        let cutoff = std::time::SystemTime::try_from(now)
            .ok()
            .and_then(|t| t.checked_sub(retention))
            .unwrap_or(std::time::UNIX_EPOCH);
        for name in names.iter().filter(|n| **n != self.active) {
            let path = self.cfg.dir.join(name);
            let old = std::fs::symlink_metadata(&path)
                .and_then(|m| m.modified().map(|t| m.is_file() && t < cutoff))
                .unwrap_or(false);
            let unshipped = shipped.as_ref().is_some_and(|s| !s.contains(name));
            if old && unshipped {
                tracing::warn!(file = %name, "audit file past retention kept: not archived yet");
            } else if old {
                match std::fs::remove_file(&path) {
                    Ok(()) => tracing::info!(file = %name, "audit file past retention deleted"),
                    Err(e) => {
                        tracing::warn!(file = %name, error = %e, "audit file past retention could not be deleted")
                    }
                }
            }
        }
    }
}

struct Found {
    head: Head,
    previous_end: &'static str,
    discarded: Option<u64>,
}

/// The chain head from the newest non-empty regular file, cutting off its torn last line.
fn recover_head(dir: &Path, names: &[String]) -> std::io::Result<Found> {
    let mut newest = true;
    for name in names.iter().rev() {
        let path = dir.join(name);
        if !std::fs::metadata(&path).is_ok_and(|m| m.is_file() && m.len() > 0) {
            continue;
        }
        let mut file = OpenOptions::new().read(true).write(true).open(&path)?;
        let (last, torn) = last_line(&mut file)?;
        let discarded = (newest && torn > 0).then_some(torn);
        if let Some(n) = discarded {
            let len = file.metadata()?.len();
            file.set_len(len - n)?;
            file.sync_all()?;
            tracing::warn!(file = %name, bytes = n, "audit file ended in a torn line; cut off");
        }
        newest = false;
        let Some(line) = last else { continue };
        let value: Option<serde_json::Value> = serde_json::from_slice(&line).ok();
        let link = value.as_ref().and_then(chain::link_of);
        let hash = chain::line_hash(&line);
        let (seq, end) = match (&value, link) {
            (Some(v), Some(link)) => {
                let x = super::ocsf::extension(v);
                let clean = x["kind"] == "checkpoint" && x["checkpoint"]["reason"] == "shutdown";
                (link.seq, if clean { "shutdown" } else { "unclosed" })
            }
            _ => (0, "unchained"),
        };
        return Ok(Found {
            head: Head {
                seq,
                hash,
                file: Some(name.clone()),
            },
            previous_end: end,
            discarded,
        });
    }
    Ok(Found {
        head: Head::genesis(),
        previous_end: "new_trail",
        discarded: None,
    })
}

/// The last complete line of `file` (without newline) and the length of a torn tail after it.
fn last_line(file: &mut File) -> std::io::Result<(Option<Vec<u8>>, u64)> {
    let len = file.metadata()?.len();
    let from = len.saturating_sub(TAIL_WINDOW);
    file.seek(SeekFrom::Start(from))?;
    let mut buf = Vec::new();
    file.read_to_end(&mut buf)?;
    let Some(end) = buf.iter().rposition(|b| *b == b'\n') else {
        return Ok((None, if from == 0 { buf.len() as u64 } else { 0 }));
    };
    let torn = (buf.len() - end - 1) as u64;
    let start = buf[..end]
        .iter()
        .rposition(|b| *b == b'\n')
        .map_or(0, |i| i + 1);
    if start == 0 && from > 0 {
        return Ok((None, torn));
    }
    Ok((Some(buf[start..end].to_vec()), torn))
}

/// The time of the first record of a file, for `rotate_interval` after a restart.
fn first_time(path: &Path) -> Option<jiff::Timestamp> {
    use std::io::BufRead;
    let file = File::open(path)
        .ok()
        .filter(|f| f.metadata().is_ok_and(|m| m.is_file()))?;
    let mut line = Vec::new();
    std::io::BufReader::new(file)
        .take(TAIL_WINDOW)
        .read_until(b'\n', &mut line)
        .ok()?;
    let v: serde_json::Value = serde_json::from_slice(&line).ok()?;
    super::ocsf::native(&v)["time"].as_str()?.parse().ok()
}

fn day_of(t: jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%d").to_string()
}

/// The next unused segment name of `day`.
fn next_name(names: &[String], day: &str) -> String {
    let n = names
        .iter()
        .filter_map(|n| chain::segment_key(n))
        .filter(|(d, _)| d == day)
        .map(|(_, n)| n + 1)
        .max()
        .unwrap_or(0);
    chain::segment_name(day, n)
}

#[cfg(test)]
#[path = "writer_tests.rs"]
mod tests;
