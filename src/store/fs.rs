//! Embedded object store: one bucket is one directory on a local filesystem.
//!
//! Takes validated internal keys and streamed bodies; gives atomic puts, ranged gets streamed
//! in 64 KiB chunks, and S3-style sorted listings. Fails with [`StoreError`]: `NotFound`,
//! `InvalidRange { size }`, `Body` when the supplied body fails or does not match its declared
//! length, and `Upstream` for I/O errors (detail for logs only).
//!
//! # Layout
//! ```text
//! <root>/objects/  object bodies, one file per key
//! <root>/meta/     one JSON file per object (size, ETag, time, content type, user metadata)
//! <root>/tmp/      in-flight uploads, on the same filesystem so renames are atomic
//! <root>/writer.lock  flock'd by every write, so two processes never interleave their renames
//! ```
//! A key is stored under the lowercase hex of its UTF-8 bytes, so `a` and `a/b` are two plain
//! files, no key can name anything outside `objects/` (names hold only `[0-9a-f]`), names do
//! not depend on case-sensitivity, and hex order is key byte order. The hex is cut into
//! components of 200 characters: every full component but the last is a directory, the last
//! one is a file with the suffix `.o` (a 1024-byte key is 10 directories and a file; most keys
//! are one file). Since directories are exactly 200 characters long and files end in `.o`, a
//! file never collides with a directory. `meta/` mirrors the same relative paths, so listing
//! walks `objects/` only and never sees metadata; metadata is read only for returned entries.
//!
//! # Atomicity
//! `put` (and `stage`, which stops before publishing) streams the body into `tmp/`, hashing it (ETag: quoted hex MD5, as S3 gives for
//! single-part uploads), then fsyncs it. Only once the whole body has arrived, under a per-key
//! lock: the metadata is written to `tmp/` and renamed into `meta/`, then the body is renamed
//! into `objects/`, so a visible object always has metadata. The metadata records the body
//! file's identity (inode); readers open the body once, fstat that handle and accept the
//! metadata only when it names that inode, retrying briefly while an overwrite is between its
//! two renames. A failed or dropped `put` (or a dropped staged upload) deletes its temp file
//! (drop guard) and changes nothing; `commit` of a staged upload publishes it with the same two
//! renames, adding the metadata it is given. `delete` removes the body first, then the metadata. The key locks are shared by
//! every store of the process; between processes (`gatehouse keys rewrap` beside the gateway)
//! every write also holds an exclusive `flock` on `<bucket>/writer.lock` around its renames, and
//! `replace_metadata` checks the ETag and rewrites `meta/` under both (see `replace`).
//! A crash between the two renames of an overwrite leaves that key failing with `Upstream`
//! until it is written or deleted again.
//!
//! # Listing
//! An ordered depth-first walk (directory entries sorted by name) that skips subtrees outside
//! `prefix` or before `start_after`, skips the keys of a common prefix once it is rolled up,
//! and stops after `max_keys + 1` items. A common prefix at or before `start_after` is not
//! returned and nor are its keys, so passing the last key or common prefix of a page as
//! `start_after` gives the next page without repeats.

use std::collections::BTreeMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::{self, ErrorKind, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures_util::StreamExt;
use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncReadExt;
use tokio_util::io::ReaderStream;

use super::{
    ByteRange, ByteStream, GetObject, ListEntry, ListPage, ListRequest, ObjectMeta, ObjectStore,
    PutOptions, PutResult, Staged, StoreError,
};

/// Hex characters per path component (100 key bytes); well under the 255-byte name limit.
const COMPONENT: usize = 200;
const OBJECT_SUFFIX: &str = ".o";
const READ_CHUNK: usize = 64 * 1024;
/// Chunks of an upload waiting for the writer.
const RECEIVE_QUEUE: usize = 16;
/// Buffer of the upload writer (one `write` per this many bytes).
const WRITE_BUFFER: usize = 256 * 1024;
/// Bodies (or ranges) up to this size are read in the same blocking call as their metadata:
/// a small GET costs one hand-off to the blocking pool instead of five.
const INLINE_READ: u64 = 64 * 1024;
const LOCK_STRIPES: usize = 64;
const READ_ATTEMPTS: u32 = 6;
/// Temp files older than this are left-overs of a crash and removed on `open`.
const STALE_TEMP: Duration = Duration::from_secs(24 * 3600);

/// One bucket directory of the embedded store.
pub struct FsStore {
    dirs: Arc<Dirs>,
}

struct Dirs {
    objects: PathBuf,
    meta: PathBuf,
    tmp: PathBuf,
}

/// Per-key write locks, shared by every `FsStore` of the process (a config reload opens a
/// second one on the same directory while the first still serves).
static LOCKS: [parking_lot::Mutex<()>; LOCK_STRIPES] =
    [const { parking_lot::Mutex::new(()) }; LOCK_STRIPES];

/// An upload waiting in `tmp/` (never listed); dropping it deletes the temp file.
struct FsStaged {
    temp: TempFile,
    etag: String,
    body_id: u64,
    opts: PutOptions,
}

/// What `meta/` holds for one object.
#[derive(Debug, Serialize, Deserialize)]
struct StoredMeta {
    size: u64,
    etag: String,
    last_modified: jiff::Timestamp,
    content_type: Option<String>,
    #[serde(default)]
    metadata: BTreeMap<String, String>,
    /// Identity of the body file this describes (inode on Unix).
    body_id: u64,
}

/// What [`FsStore::open_consistent`] found.
struct Opened {
    meta: StoredMeta,
    /// When asked for: the range served (`None`: all of it) and the body.
    body: Option<(Option<(u64, u64)>, OpenBody)>,
}

enum OpenBody {
    Read(Bytes),
    /// Open at the first byte served, with the number of bytes to serve.
    File(std::fs::File, u64),
}

impl StoredMeta {
    fn to_meta(&self) -> ObjectMeta {
        ObjectMeta {
            size: self.size,
            etag: Some(self.etag.clone()),
            last_modified: Some(self.last_modified),
            content_type: self.content_type.clone(),
            metadata: self.metadata.clone(),
        }
    }
}

impl FsStore {
    /// Opens (creating if missing) the bucket directory `root`.
    pub async fn open(root: &Path) -> Result<FsStore, StoreError> {
        let dirs = Dirs {
            objects: root.join("objects"),
            meta: root.join("meta"),
            tmp: root.join("tmp"),
        };
        for dir in [&dirs.objects, &dirs.meta, &dirs.tmp] {
            tokio::fs::create_dir_all(dir)
                .await
                .map_err(|e| io_failure("create bucket directory", e))?;
        }
        let tmp = dirs.tmp.clone();
        blocking(move || {
            sweep_stale_temps(&tmp);
            Ok(())
        })
        .await?;
        Ok(FsStore {
            dirs: Arc::new(dirs),
        })
    }

    /// Opens the body and its matching metadata, retrying while an overwrite is mid-way, in
    /// one blocking call; with `read`, also the body (or the range of it) the caller serves:
    /// read there when at most [`INLINE_READ`] bytes, else left open at its first byte.
    async fn open_consistent(
        &self,
        key: &str,
        read: Option<Option<ByteRange>>,
    ) -> Result<Opened, StoreError> {
        let rel = key_path(key);
        let (body_path, meta_path) = (self.dirs.objects.join(&rel), self.dirs.meta.join(&rel));
        blocking(move || {
            for attempt in 0..READ_ATTEMPTS {
                let mut file = match std::fs::File::open(&body_path) {
                    Ok(f) => f,
                    Err(e) if e.kind() == ErrorKind::NotFound => return Err(StoreError::NotFound),
                    Err(e) => return Err(io_failure("open object", e)),
                };
                let stat = file.metadata().map_err(|e| io_failure("stat object", e))?;
                let meta = match std::fs::read(&meta_path) {
                    Ok(raw) => Some(parse_meta(&raw)?),
                    Err(e) if e.kind() == ErrorKind::NotFound => None,
                    Err(e) => return Err(io_failure("read metadata", e)),
                };
                let Some(meta) =
                    meta.filter(|m| m.body_id == body_id(&stat) && m.size == stat.len())
                else {
                    if attempt + 1 < READ_ATTEMPTS {
                        std::thread::sleep(Duration::from_millis(1 << attempt));
                    }
                    continue;
                };
                let Some(range) = read else {
                    return Ok(Opened { meta, body: None });
                };
                let size = meta.size;
                let served = match range {
                    None => None,
                    Some(r) => Some(r.resolve(size).ok_or(StoreError::InvalidRange { size })?),
                };
                let (start, len) =
                    served.map_or((0, size), |(first, last)| (first, last - first + 1));
                if start > 0 {
                    std::io::Seek::seek(&mut file, SeekFrom::Start(start))
                        .map_err(|e| io_failure("seek object", e))?;
                }
                let body = if len <= INLINE_READ {
                    let mut buf = vec![0; len as usize];
                    std::io::Read::read_exact(&mut file, &mut buf).map_err(|e| match e.kind() {
                        ErrorKind::UnexpectedEof => short_file(),
                        _ => io_failure("read object", e),
                    })?;
                    OpenBody::Read(Bytes::from(buf))
                } else {
                    OpenBody::File(file, len)
                };
                return Ok(Opened {
                    meta,
                    body: Some((served, body)),
                });
            }
            Err(StoreError::Upstream(
                "object metadata does not match its body (interrupted overwrite?)".into(),
            ))
        })
        .await
    }

    /// Streams `body` into the temp file at `path`; returns size, ETag and the file identity.
    /// One blocking task hashes and writes while this task receives: the MD5 of the ETag and
    /// the writes stay off the async workers, and the chunks in between are bounded
    /// ([`RECEIVE_QUEUE`]), so memory stays constant.
    async fn receive(
        path: &Path,
        mut body: ByteStream,
        expected: Option<u64>,
    ) -> Result<(u64, String, u64), StoreError> {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(RECEIVE_QUEUE);
        // Set once the whole body was handed over; otherwise the file is not synced.
        let complete = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let done = Arc::clone(&complete);
        // Created before any byte is read, so the caller's temp-file guard always has a file
        // to remove, even when the upload is dropped at once.
        let path = path.to_owned();
        let file = blocking(move || {
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
                .map_err(|e| io_failure("create temp file", e))
        })
        .await?;
        let writer = tokio::task::spawn_blocking(move || {
            let mut out = std::io::BufWriter::with_capacity(WRITE_BUFFER, file);
            let mut md5 = Md5::new();
            while let Some(chunk) = rx.blocking_recv() {
                md5.update(&chunk);
                std::io::Write::write_all(&mut out, &chunk)
                    .map_err(|e| io_failure("write temp file", e))?;
            }
            if !done.load(std::sync::atomic::Ordering::Acquire) {
                return Err(StoreError::Body("upload ended early".into()));
            }
            let file = out
                .into_inner()
                .map_err(|e| io_failure("write temp file", e.into_error()))?;
            file.sync_all()
                .map_err(|e| io_failure("sync temp file", e))?;
            let stat = file
                .metadata()
                .map_err(|e| io_failure("stat temp file", e))?;
            Ok((format!("\"{}\"", hex(&md5.finalize())), body_id(&stat)))
        });
        let mut size = 0u64;
        let fed: Result<(), StoreError> = async {
            while let Some(chunk) = body.next().await {
                let chunk = chunk?;
                size += chunk.len() as u64;
                if let Some(n) = expected
                    && size > n
                {
                    return Err(StoreError::Body(format!(
                        "body longer than its content-length {n}"
                    )));
                }
                if tx.send(chunk).await.is_err() {
                    // The writer stopped: its error says why.
                    return Ok(());
                }
            }
            if let Some(n) = expected
                && size != n
            {
                return Err(StoreError::Body(format!(
                    "body ended after {size} of {n} bytes"
                )));
            }
            complete.store(true, std::sync::atomic::Ordering::Release);
            Ok(())
        }
        .await;
        drop(tx);
        let written = writer
            .await
            .map_err(|e| StoreError::Upstream(format!("store task failed: {e}")))?;
        fed?;
        let (etag, id) = written?;
        Ok((size, etag, id))
    }
}

#[async_trait::async_trait]
impl ObjectStore for FsStore {
    async fn head(&self, key: &str) -> Result<ObjectMeta, StoreError> {
        Ok(self.open_consistent(key, None).await?.meta.to_meta())
    }

    async fn get(&self, key: &str, range: Option<ByteRange>) -> Result<GetObject, StoreError> {
        let opened = self.open_consistent(key, Some(range)).await?;
        let Some((served, body)) = opened.body else {
            unreachable!("asked for the body");
        };
        let body: ByteStream = match body {
            OpenBody::Read(bytes) if bytes.is_empty() => Box::pin(futures_util::stream::empty()),
            OpenBody::Read(bytes) => Box::pin(futures_util::stream::once(async { Ok(bytes) })),
            OpenBody::File(file, len) => exact_stream(tokio::fs::File::from_std(file), len),
        };
        Ok(GetObject {
            meta: opened.meta.to_meta(),
            range: served,
            body,
        })
    }

    async fn put(
        &self,
        key: &str,
        body: ByteStream,
        opts: PutOptions,
    ) -> Result<PutResult, StoreError> {
        let staged = self.stage(key, body, opts).await?;
        self.commit(staged, BTreeMap::new()).await
    }

    async fn stage(
        &self,
        key: &str,
        body: ByteStream,
        opts: PutOptions,
    ) -> Result<Staged, StoreError> {
        let path = self.dirs.tmp.join(format!("{}.body", ulid::Ulid::new()));
        let temp = TempFile(Some(path.clone()));
        let (size, etag, body_id) = match Self::receive(&path, body, opts.content_length).await {
            Ok(r) => r,
            Err(e) => {
                temp.remove().await;
                return Err(e);
            }
        };
        Ok(Staged {
            key: key.to_owned(),
            size,
            inner: Box::new(FsStaged {
                temp,
                etag,
                body_id,
                opts,
            }),
        })
    }

    async fn commit(
        &self,
        staged: Staged,
        metadata: BTreeMap<String, String>,
    ) -> Result<PutResult, StoreError> {
        let key = staged.key;
        let Ok(st) = staged.inner.downcast::<FsStaged>() else {
            return Err(StoreError::Upstream(
                "staged upload of another store".into(),
            ));
        };
        let FsStaged {
            temp,
            etag,
            body_id,
            mut opts,
        } = *st;
        opts.metadata.extend(metadata);
        let meta = StoredMeta {
            size: staged.size,
            etag: etag.clone(),
            last_modified: jiff::Timestamp::now(),
            content_type: opts.content_type,
            metadata: opts.metadata,
            body_id,
        };
        let json = serde_json::to_vec(&meta)
            .map_err(|e| StoreError::Upstream(format!("encode metadata: {e}")))?;
        let (dirs, rel) = (self.dirs.clone(), key_path(&key));
        let stripe = stripe(&self.dirs.objects, &key);
        // The guard moves into the blocking task: once the body is complete, commit even if
        // the caller goes away.
        blocking(move || dirs.commit(&rel, stripe, temp, &json)).await?;
        Ok(PutResult { etag: Some(etag) })
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        let (dirs, rel) = (self.dirs.clone(), key_path(key));
        let stripe = stripe(&self.dirs.objects, key);
        blocking(move || dirs.remove(&rel, stripe)).await
    }

    async fn list(&self, req: &ListRequest) -> Result<ListPage, StoreError> {
        if req.max_keys == 0 {
            return Ok(ListPage::default());
        }
        let (dirs, req) = (self.dirs.clone(), req.clone());
        blocking(move || dirs.list(&req)).await
    }

    async fn replace_metadata(
        &self,
        key: &str,
        metadata: BTreeMap<String, String>,
        if_match_etag: &str,
    ) -> Result<super::MetadataReplaced, StoreError> {
        let (dirs, rel) = (self.dirs.clone(), key_path(key));
        let stripe = stripe(&self.dirs.objects, key);
        let etag = if_match_etag.to_owned();
        blocking(move || dirs.replace_metadata(&rel, stripe, metadata, &etag)).await
    }
}

impl Dirs {
    fn commit(
        &self,
        rel: &Path,
        stripe: usize,
        body: TempFile,
        meta_json: &[u8],
    ) -> Result<(), StoreError> {
        let meta_temp = TempFile(Some(self.tmp.join(format!("{}.meta", ulid::Ulid::new()))));
        if let Some(path) = &meta_temp.0 {
            write_synced(path, meta_json).map_err(|e| io_failure("write metadata", e))?;
        }
        let _lock = LOCKS[stripe].lock();
        let _writers = self.writer_lock()?;
        let meta_path = self.meta.join(rel);
        meta_temp
            .rename_to(&meta_path)
            .map_err(|e| io_failure("publish metadata", e))?;
        let body_path = self.objects.join(rel);
        if let Err(e) = body.rename_to(&body_path) {
            remove_if_exists(&meta_path).ok();
            return Err(io_failure("publish object", e));
        }
        if let Some(parent) = body_path.parent() {
            sync_dir(parent);
        }
        Ok(())
    }

    fn remove(&self, rel: &Path, stripe: usize) -> Result<(), StoreError> {
        let _lock = LOCKS[stripe].lock();
        let _writers = self.writer_lock()?;
        for root in [&self.objects, &self.meta] {
            remove_if_exists(&root.join(rel)).map_err(|e| io_failure("delete object", e))?;
            // Long keys live in directories; drop the ones that became empty.
            let mut dir = rel.parent();
            while let Some(d) = dir.filter(|d| !d.as_os_str().is_empty()) {
                if std::fs::remove_dir(root.join(d)).is_err() {
                    break;
                }
                dir = d.parent();
            }
        }
        Ok(())
    }

    fn list(&self, req: &ListRequest) -> Result<ListPage, StoreError> {
        let mut walk = Walk {
            req,
            prefix_hex: hex(req.prefix.as_bytes()),
            start_hex: req.start_after.as_deref().map(|s| hex(s.as_bytes())),
            skip_hex: None,
            limit: req.max_keys.saturating_add(1),
            items: Vec::new(),
        };
        walk.dir(&self.objects, Path::new(""), "")
            .map_err(|e| io_failure("list objects", e))?;
        let is_truncated = walk.items.len() > req.max_keys;
        walk.items.truncate(req.max_keys);
        let mut page = ListPage {
            is_truncated,
            ..ListPage::default()
        };
        for item in walk.items {
            match item {
                Item::Prefix(p) => page.common_prefixes.push(p),
                Item::Key(key, rel) => match std::fs::read(self.meta.join(rel)) {
                    Ok(raw) => {
                        let m = parse_meta(&raw)?;
                        let (size, etag, last_modified) =
                            (m.size, Some(m.etag), Some(m.last_modified));
                        page.objects.push(ListEntry {
                            key,
                            size,
                            etag,
                            last_modified,
                        });
                    }
                    Err(e) if e.kind() == ErrorKind::NotFound => {} // deleted meanwhile
                    Err(e) => return Err(io_failure("read metadata", e)),
                },
            }
        }
        Ok(page)
    }
}

enum Item {
    Key(String, PathBuf),
    Prefix(String),
}

/// An ordered walk of `objects/` that stops after `limit` items. All comparisons are on hex,
/// whose order is key byte order.
struct Walk<'a> {
    req: &'a ListRequest,
    prefix_hex: String,
    start_hex: Option<String>,
    /// The common prefix last rolled up: keys under it are skipped.
    skip_hex: Option<String>,
    limit: usize,
    items: Vec<Item>,
}

impl Walk<'_> {
    /// Walks one directory whose path spells `acc`; false once the page is full.
    fn dir(&mut self, dir: &Path, rel: &Path, acc: &str) -> io::Result<bool> {
        for (part, is_dir) in read_sorted(dir)? {
            let full = format!("{acc}{part}");
            // A directory holds only keys that are longer than `full` and start with it.
            let relevant = full.starts_with(&self.prefix_hex)
                || (is_dir && self.prefix_hex.starts_with(&full));
            if !relevant {
                if full > self.prefix_hex {
                    break;
                }
                continue;
            }
            if let Some(start) = &self.start_hex {
                let before = if is_dir {
                    full < *start && !start.starts_with(&full)
                } else {
                    full <= *start
                };
                if before {
                    continue;
                }
            }
            if self
                .skip_hex
                .as_ref()
                .is_some_and(|skip| full.starts_with(skip))
            {
                continue;
            }
            let name = if is_dir {
                part
            } else {
                format!("{part}{OBJECT_SUFFIX}")
            };
            let more = if is_dir {
                self.dir(&dir.join(&name), &rel.join(&name), &full)?
            } else {
                self.object(&full, rel.join(&name))
            };
            if !more {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn object(&mut self, key_hex: &str, rel: PathBuf) -> bool {
        let Some(key) = unhex(key_hex).and_then(|b| String::from_utf8(b).ok()) else {
            return true;
        };
        let plen = self.req.prefix.len();
        let group = self
            .req
            .delimiter
            .as_deref()
            .filter(|d| !d.is_empty())
            .and_then(|d| {
                key[plen..]
                    .find(d)
                    .map(|i| key[..plen + i + d.len()].to_owned())
            });
        match group {
            Some(common) => {
                self.skip_hex = Some(hex(common.as_bytes()));
                // A group at or before `start_after` was returned (or passed) on an earlier page.
                if self
                    .req
                    .start_after
                    .as_deref()
                    .is_some_and(|s| common.as_str() <= s)
                {
                    return true;
                }
                self.items.push(Item::Prefix(common));
            }
            None => self.items.push(Item::Key(key, rel)),
        }
        self.items.len() < self.limit
    }
}

/// Directory entries as (hex part, is_dir), in key order; foreign names are ignored.
fn read_sorted(dir: &Path) -> io::Result<Vec<(String, bool)>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()), // pruned meanwhile
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry?;
        let kind = entry.file_type()?;
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        let part = if kind.is_dir() {
            Some(name.as_str())
        } else {
            name.strip_suffix(OBJECT_SUFFIX)
        };
        let valid = part.is_some_and(|p| {
            let len_ok = if kind.is_dir() {
                p.len() == COMPONENT
            } else {
                p.len() <= COMPONENT
            };
            len_ok && p.len() % 2 == 0 && p.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        });
        if let (true, Some(p)) = (valid && (kind.is_dir() || kind.is_file()), part) {
            out.push((p.to_owned(), kind.is_dir()));
        }
    }
    // Equal parts: the file's key is a prefix of every key in the directory, so it comes first.
    out.sort();
    Ok(out)
}

/// The path of a key relative to `objects/` and `meta/`.
fn key_path(key: &str) -> PathBuf {
    let hex = hex(key.as_bytes());
    let dirs = hex.len().saturating_sub(1) / COMPONENT;
    let mut path = PathBuf::new();
    for i in 0..dirs {
        path.push(&hex[i * COMPONENT..(i + 1) * COMPONENT]);
    }
    path.push(format!("{}{OBJECT_SUFFIX}", &hex[dirs * COMPONENT..]));
    path
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    let digit = |c: u8| (c as char).to_digit(16);
    s.as_bytes()
        .chunks(2)
        .map(|p| Some((digit(p[0])? * 16 + digit(*p.get(1)?)?) as u8))
        .collect()
}

fn stripe(bucket: &Path, key: &str) -> usize {
    let mut h = DefaultHasher::new();
    (bucket, key).hash(&mut h);
    (h.finish() % LOCK_STRIPES as u64) as usize
}

#[cfg(unix)]
fn body_id(stat: &std::fs::Metadata) -> u64 {
    std::os::unix::fs::MetadataExt::ino(stat)
}

#[cfg(not(unix))]
fn body_id(stat: &std::fs::Metadata) -> u64 {
    let since = stat
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok());
    since.map_or(0, |d| d.as_nanos() as u64)
}

/// Streams exactly `len` bytes of `file` from its current position; a short file is an error.
fn exact_stream(file: tokio::fs::File, len: u64) -> ByteStream {
    let chunks = ReaderStream::with_capacity(file.take(len), READ_CHUNK);
    let stream = futures_util::stream::unfold(Some((chunks, 0u64)), move |state| async move {
        let (mut chunks, got) = state?;
        match chunks.next().await {
            Some(Ok(b)) => {
                let got = got + b.len() as u64;
                Some((Ok(b), Some((chunks, got))))
            }
            Some(Err(e)) => Some((Err(io_failure("read object", e)), None)),
            None if got < len => Some((Err(short_file()), None)),
            None => None,
        }
    });
    Box::pin(stream)
}

fn short_file() -> StoreError {
    StoreError::Upstream("object file shorter than recorded".into())
}

fn parse_meta(raw: &[u8]) -> Result<StoredMeta, StoreError> {
    serde_json::from_slice(raw).map_err(|e| StoreError::Upstream(format!("corrupt metadata: {e}")))
}

fn io_failure(what: &str, e: io::Error) -> StoreError {
    StoreError::Upstream(format!("{what}: {e}"))
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::Upstream(format!("store task failed: {e}")))?
}

fn write_synced(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::io::Write;
    let mut file = std::fs::File::create_new(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

fn remove_if_exists(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Best effort: a rename is durable once its directory is synced.
fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        d.sync_all().ok();
    }
}

fn sweep_stale_temps(tmp: &Path) {
    let Ok(entries) = std::fs::read_dir(tmp) else {
        return;
    };
    for entry in entries.flatten() {
        let modified = entry.metadata().and_then(|m| m.modified());
        let stale = modified.is_ok_and(|t| {
            SystemTime::now()
                .duration_since(t)
                .is_ok_and(|age| age > STALE_TEMP)
        });
        if stale {
            std::fs::remove_file(entry.path()).ok();
        }
    }
}

/// A temp file that is deleted unless it was renamed into place.
struct TempFile(Option<PathBuf>);

impl TempFile {
    /// Renames into `to`, creating parents; retries when a concurrent delete pruned them.
    fn rename_to(mut self, to: &Path) -> io::Result<()> {
        let Some(from) = self.0.take() else {
            return Err(io::Error::other("temp file already used"));
        };
        let mut result = Ok(());
        for _ in 0..3 {
            if let Some(parent) = to.parent() {
                std::fs::create_dir_all(parent)?;
            }
            result = std::fs::rename(&from, to);
            match &result {
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                _ => break,
            }
        }
        if result.is_err() {
            remove_if_exists(&from).ok();
        }
        result
    }

    async fn remove(mut self) {
        if let Some(path) = self.0.take() {
            tokio::fs::remove_file(&path).await.ok();
        }
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let Some(path) = self.0.take() else { return };
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => drop(rt.spawn_blocking(move || remove_if_exists(&path))),
            Err(_) => drop(remove_if_exists(&path)),
        }
    }
}

mod replace;

#[cfg(test)]
mod tests;
