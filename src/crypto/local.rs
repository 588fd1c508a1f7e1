//! The local key service: key-encryption keys in a file, for the embedded default.
//!
//! Takes the path of a key file; creates it on first run (mode 0600, written to a temporary
//! file and linked into place, so a crash or a second process never sees half a file) and
//! gives a [`KeyService`] that wraps data keys with AES-256-GCM under the newest key, with the
//! key id and the canonical encryption context as associated data. Older keys stay in the file
//! to unwrap older objects; [`LocalKeyService::rotate`] appends a new one. Loading fails with
//! [`KeyError::KeyFile`] naming the file when it is readable by group or others, or malformed.
//!
//! File format, one key a line, oldest first, `#` comments:
//! `<id> <base64 of 32 key bytes>`; ids are 1..=64 of `A-Z a-z 0-9 . _ -`.
//! Wrapped data key: `0x01 ‖ 12-byte random nonce ‖ 32-byte ciphertext ‖ 16-byte tag`.
//!
//! File operations block: call [`LocalKeyService::open_or_create`], `rotate` and `reload` at
//! start-up or inside `spawn_blocking`. Wrapping, unwrapping and [`LocalKeyService::rewrap`]
//! are in-memory; unwrapping under a key id the process does not have re-reads the file first
//! (in `spawn_blocking`, at most once a second), so a running gateway reads objects that
//! `gatehouse keys rewrap` moved to a key added after it started, and then uses that key.

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use parking_lot::RwLock;
use zeroize::Zeroizing;

use super::context::EncryptionContext;
use super::format::TAG_LEN;
use super::keys::{DataKey, KeyError, KeyService};

const WRAP_VERSION: u8 = 1;
const WRAPPED_LEN: usize = 1 + NONCE_LEN + 32 + TAG_LEN;
const WRAP_LABEL: &[u8] = b"gatehouse local wrap v1\0";
const FILE_COMMENT: &str = "# gatehouse key-encryption keys: \"<id> <base64 key>\", oldest first; \
new objects use the last. Keep this file secret and backed up: losing a key loses its objects.\n";

/// Key-encryption keys from a local file.
pub struct LocalKeyService {
    path: PathBuf,
    /// Oldest first; the last is used for new data keys.
    keys: RwLock<Vec<(String, LessSafeKey)>>,
    /// When the file was last re-read because an object named a key this process lacks.
    reloaded: parking_lot::Mutex<Option<std::time::Instant>>,
}

impl std::fmt::Debug for LocalKeyService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalKeyService")
            .field("path", &self.path)
            .field("key_ids", &self.key_ids())
            .finish()
    }
}

impl LocalKeyService {
    /// Loads the key file, creating it with one new key when it does not exist. Blocking.
    pub fn open_or_create(path: &Path) -> Result<LocalKeyService, KeyError> {
        match read_file(path) {
            Err(KeyFileRead::Missing) => {
                let text =
                    Zeroizing::new(format!("{FILE_COMMENT}{}\n", new_key_line(path)?.as_str()));
                let tmp = write_temp(path, &text)?;
                // A link fails if another process created the file meanwhile; then use theirs.
                let linked = std::fs::hard_link(&tmp, path);
                let _ = std::fs::remove_file(&tmp);
                match linked {
                    Ok(()) => sync_dir(path)?,
                    Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
                    Err(e) => return Err(file_error(path, format!("cannot create: {e}"))),
                }
                LocalKeyService::open(path)
            }
            Err(KeyFileRead::Failed(e)) => Err(e),
            Ok(text) => Ok(LocalKeyService {
                path: path.to_owned(),
                keys: RwLock::new(parse(path, &text)?),
                reloaded: parking_lot::Mutex::new(None),
            }),
        }
    }

    /// Loads an existing key file. Blocking.
    pub fn open(path: &Path) -> Result<LocalKeyService, KeyError> {
        let text = read_file(path).map_err(|e| e.into_error(path))?;
        Ok(LocalKeyService {
            path: path.to_owned(),
            keys: RwLock::new(parse(path, &text)?),
            reloaded: parking_lot::Mutex::new(None),
        })
    }

    /// Ids of the keys, oldest first.
    pub fn key_ids(&self) -> Vec<String> {
        self.keys.read().iter().map(|(id, _)| id.clone()).collect()
    }

    /// Appends a new key to the file (under an exclusive lock on `<file>.lock`, re-reading the
    /// file first so keys added by another process are kept) and uses it for new data keys.
    /// Returns its id. Blocking.
    pub fn rotate(&self) -> Result<String, KeyError> {
        let lock_path = self.path.with_extension("lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&lock_path)
            .map_err(|e| file_error(&lock_path, format!("cannot open lock: {e}")))?;
        lock.lock()
            .map_err(|e| file_error(&lock_path, format!("cannot lock: {e}")))?;
        let current = read_file(&self.path).map_err(|e| e.into_error(&self.path))?;
        parse(&self.path, &current)?;
        let line = new_key_line(&self.path)?;
        let id = line.split(' ').next().unwrap_or_default().to_owned();
        let mut text = Zeroizing::new(String::with_capacity(current.len() + line.len() + 1));
        text.push_str(&current);
        if !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(&line);
        text.push('\n');
        let keys = parse(&self.path, &text)?;
        let tmp = write_temp(&self.path, &text)?;
        std::fs::rename(&tmp, &self.path)
            .map_err(|e| file_error(&self.path, format!("cannot replace: {e}")))?;
        sync_dir(&self.path)?;
        *self.keys.write() = keys;
        Ok(id)
    }

    /// Re-reads the file, picking up keys another process added. Blocking.
    pub fn reload(&self) -> Result<(), KeyError> {
        let text = read_file(&self.path).map_err(|e| e.into_error(&self.path))?;
        *self.keys.write() = parse(&self.path, &text)?;
        Ok(())
    }

    /// `wrapped` (made under `key_id` and `context`) unwrapped and wrapped again under `to`
    /// (default: the newest key) with the same context, in memory; gives the new wrapped key
    /// and the id of the key it is under. Fails like unwrapping, or with `KeyUnusable` when
    /// `to` is not in the file.
    pub fn rewrap(
        &self,
        wrapped: &[u8],
        key_id: &str,
        context: &EncryptionContext,
        to: Option<&str>,
    ) -> Result<(Vec<u8>, String), KeyError> {
        let plaintext = self.unwrap(wrapped, key_id, context)?;
        let (wrapped, id) = self.wrap(&plaintext, to, context)?;
        Ok((wrapped, id))
    }

    fn knows(&self, key_id: &str) -> bool {
        self.keys.read().iter().any(|(id, _)| id == key_id)
    }

    /// Re-reads the file off the async threads when an object names a key this process does
    /// not have (added by `gatehouse keys rotate-local` since start, and used by `keys rewrap`);
    /// at most once a second, so objects naming unknown keys cannot make it read the file on
    /// every request. A file that fails to load leaves the keys as they were.
    async fn reload_for(&self, key_id: &str) -> Result<(), KeyError> {
        {
            let mut last = self.reloaded.lock();
            let now = std::time::Instant::now();
            if last.is_some_and(|t| now.duration_since(t) < RELOAD_INTERVAL) {
                return Ok(());
            }
            *last = Some(now);
        }
        let path = self.path.clone();
        let text =
            tokio::task::spawn_blocking(move || read_file(&path).map_err(|e| e.into_error(&path)))
                .await
                .map_err(|e| file_error(&self.path, format!("reload task failed: {e}")))??;
        let keys = parse(&self.path, &text)?;
        if keys.iter().any(|(id, _)| id == key_id) {
            tracing::info!(path = %self.path.display(), key_id, "key file re-read: new key-encryption key");
        }
        *self.keys.write() = keys;
        Ok(())
    }

    /// A fresh random data key wrapped under `key_id` (default: the newest key).
    fn wrap(
        &self,
        plaintext: &[u8; 32],
        key_id: Option<&str>,
        context: &EncryptionContext,
    ) -> Result<(Vec<u8>, String), KeyError> {
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce)
            .map_err(|_| KeyError::Unavailable("random number generator failed".into()))?;
        let keys = self.keys.read();
        let (id, kek) = match key_id {
            Some(want) => keys.iter().find(|(id, _)| id == want),
            None => keys.last(),
        }
        .ok_or_else(|| KeyError::KeyUnusable(format!("no local key {key_id:?}")))?;
        let mut wrapped = Vec::with_capacity(WRAPPED_LEN);
        wrapped.push(WRAP_VERSION);
        wrapped.extend_from_slice(&nonce);
        wrapped.extend_from_slice(&plaintext[..]);
        let tag = kek
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad(id, context)),
                &mut wrapped[1 + NONCE_LEN..],
            )
            .map_err(|_| KeyError::Unavailable("local wrap failed".into()))?;
        wrapped.extend_from_slice(tag.as_ref());
        Ok((wrapped, id.clone()))
    }

    fn unwrap(
        &self,
        wrapped: &[u8],
        key_id: &str,
        context: &EncryptionContext,
    ) -> Result<Zeroizing<[u8; 32]>, KeyError> {
        if wrapped.len() != WRAPPED_LEN || wrapped[0] != WRAP_VERSION {
            return Err(KeyError::Refused("malformed wrapped key".into()));
        }
        let keys = self.keys.read();
        let (_, kek) = keys
            .iter()
            .find(|(id, _)| id == key_id)
            .ok_or_else(|| KeyError::KeyUnusable(format!("no local key {key_id:?}")))?;
        let nonce = Nonce::try_assume_unique_for_key(&wrapped[1..1 + NONCE_LEN])
            .map_err(|_| KeyError::Refused("malformed wrapped key".into()))?;
        let mut sealed = Zeroizing::new(wrapped[1 + NONCE_LEN..].to_vec());
        let plain = kek
            .open_in_place(nonce, Aad::from(aad(key_id, context)), &mut sealed)
            .map_err(|_| KeyError::Refused("wrapped key does not authenticate".into()))?;
        let mut key = Zeroizing::new([0u8; 32]);
        key.copy_from_slice(plain);
        Ok(key)
    }
}

/// Most one reload of the key file per this interval (see `reload_for`).
const RELOAD_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

#[async_trait]
impl KeyService for LocalKeyService {
    async fn generate_data_key(
        &self,
        key_id: Option<&str>,
        context: &EncryptionContext,
    ) -> Result<DataKey, KeyError> {
        let mut plaintext = Zeroizing::new([0u8; 32]);
        aws_lc_rs::rand::fill(&mut plaintext[..])
            .map_err(|_| KeyError::Unavailable("random number generator failed".into()))?;
        let (wrapped, key_id) = self.wrap(&plaintext, key_id, context)?;
        Ok(DataKey {
            plaintext,
            wrapped,
            key_id,
        })
    }

    async fn decrypt_data_key(
        &self,
        wrapped: &[u8],
        key_id: &str,
        context: &EncryptionContext,
    ) -> Result<Zeroizing<[u8; 32]>, KeyError> {
        if !self.knows(key_id) {
            self.reload_for(key_id).await?;
        }
        self.unwrap(wrapped, key_id, context)
    }
}

/// Associated data of a wrap: label ‖ u32 key-id length ‖ key id ‖ canonical context.
fn aad(key_id: &str, context: &EncryptionContext) -> Vec<u8> {
    let canonical = context.canonical();
    let mut out = Vec::with_capacity(WRAP_LABEL.len() + 4 + key_id.len() + canonical.len());
    out.extend_from_slice(WRAP_LABEL);
    out.extend_from_slice(&(key_id.len() as u32).to_be_bytes());
    out.extend_from_slice(key_id.as_bytes());
    out.extend_from_slice(&canonical);
    out
}

fn file_error(path: &Path, reason: String) -> KeyError {
    KeyError::KeyFile {
        path: path.display().to_string(),
        reason,
    }
}

enum KeyFileRead {
    Missing,
    Failed(KeyError),
}

impl KeyFileRead {
    fn into_error(self, path: &Path) -> KeyError {
        match self {
            KeyFileRead::Missing => file_error(path, "does not exist".into()),
            KeyFileRead::Failed(e) => e,
        }
    }
}

/// Reads the file after checking, on the opened handle, that it is a regular file that only its
/// owner can access (a symlink to one is fine, as secret mounts use them).
fn read_file(path: &Path) -> Result<Zeroizing<String>, KeyFileRead> {
    let fail = |reason: String| KeyFileRead::Failed(file_error(path, reason));
    let mut file = match File::open(path) {
        Err(e) if e.kind() == ErrorKind::NotFound => return Err(KeyFileRead::Missing),
        Err(e) => return Err(fail(format!("cannot read: {e}"))),
        Ok(f) => f,
    };
    let meta = file
        .metadata()
        .map_err(|e| fail(format!("cannot read: {e}")))?;
    if !meta.is_file() {
        return Err(fail("is not a regular file".into()));
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(fail(format!(
            "permissions {mode:04o} let group or others read it; expected 0600"
        )));
    }
    let mut text = Zeroizing::new(String::new());
    file.read_to_string(&mut text)
        .map_err(|e| fail(format!("cannot read: {e}")))?;
    Ok(text)
}

/// Parses and validates every line; at least one key, ids unique.
fn parse(path: &Path, text: &str) -> Result<Vec<(String, LessSafeKey)>, KeyError> {
    let mut keys: Vec<(String, LessSafeKey)> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |what: &str| file_error(path, format!("line {}: {what}", n + 1));
        let (id, encoded) = line
            .split_once(' ')
            .ok_or_else(|| bad("expected <id> <key>"))?;
        if !valid_id(id) {
            return Err(bad("bad key id"));
        }
        if keys.iter().any(|(k, _)| k == id) {
            return Err(bad("duplicate key id"));
        }
        let raw = Zeroizing::new(
            STANDARD
                .decode(encoded.trim())
                .map_err(|_| bad("key is not base64"))?,
        );
        if raw.len() != 32 {
            return Err(bad("key is not 32 bytes"));
        }
        let key = UnboundKey::new(&AES_256_GCM, &raw).map_err(|_| bad("unusable key"))?;
        keys.push((id.to_owned(), LessSafeKey::new(key)));
    }
    if keys.is_empty() {
        return Err(file_error(path, "holds no keys".into()));
    }
    Ok(keys)
}

fn valid_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// `<id> <base64 key>` for a fresh random key.
fn new_key_line(path: &Path) -> Result<Zeroizing<String>, KeyError> {
    let mut raw = Zeroizing::new([0u8; 32]);
    aws_lc_rs::rand::fill(&mut raw[..])
        .map_err(|_| file_error(path, "random number generator failed".into()))?;
    let id = format!(
        "local-{}",
        ulid::Ulid::new().to_string().to_ascii_lowercase()
    );
    Ok(Zeroizing::new(format!(
        "{id} {}",
        STANDARD.encode(&raw[..])
    )))
}

/// Writes `text` to a new 0600 file beside `path` and syncs it; returns its path.
fn write_temp(path: &Path, text: &str) -> Result<PathBuf, KeyError> {
    let mut suffix = [0u8; 8];
    aws_lc_rs::rand::fill(&mut suffix)
        .map_err(|_| file_error(path, "random number generator failed".into()))?;
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = path.with_file_name(format!(".{name}.tmp-{}", super::format::hex(&suffix)));
    let write = |f: &mut File| f.write_all(text.as_bytes()).and_then(|()| f.sync_all());
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| file_error(path, format!("cannot create {}: {e}", tmp.display())))?;
    if let Err(e) = write(&mut file) {
        let _ = std::fs::remove_file(&tmp);
        return Err(file_error(path, format!("cannot write: {e}")));
    }
    Ok(tmp)
}

fn sync_dir(path: &Path) -> Result<(), KeyError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| file_error(path, format!("cannot sync directory: {e}")))
}

#[cfg(test)]
mod tests;
