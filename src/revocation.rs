//! Revocation of sessions and partners, persisted across restarts.
//!
//! Takes revocations from the admin listener (one session id, or every session of a partner
//! issued up to an instant) and gives a fast check for each request and for transfers in
//! flight. The list is kept in memory and in a JSON file written atomically (temp file,
//! fsync, rename) *before* the revocation takes effect in memory, so a revocation that was
//! acknowledged survives a crash or restart. Session entries are dropped once no token of
//! that session can still be valid (12 h). Fails with the I/O error when the file cannot be
//! written; the revocation is then not acknowledged.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use parking_lot::RwLock;
use serde::{Deserialize, Serialize};

use crate::config::MAX_TOKEN_LIFETIME;

#[derive(Debug, Default, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct List {
    /// Session id -> unix second after which the entry may be forgotten.
    #[serde(default)]
    sessions: BTreeMap<String, i64>,
    /// Partner id -> unix second: tokens issued at or before it are void.
    #[serde(default)]
    partners: BTreeMap<String, i64>,
}

pub struct Revocations {
    path: PathBuf,
    list: RwLock<List>,
}

impl Revocations {
    /// Loads the list from `path` (an absent file is an empty list).
    pub fn open(path: &Path) -> std::io::Result<Revocations> {
        let list = match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{}: {e}", path.display()),
                )
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => List::default(),
            Err(e) => return Err(e),
        };
        Ok(Revocations {
            path: path.to_path_buf(),
            list: RwLock::new(list),
        })
    }

    /// Whether a session, or its partner's sessions issued at `issued_at` or earlier, are revoked.
    pub fn is_revoked(&self, partner: &str, session_id: &str, issued_at: jiff::Timestamp) -> bool {
        let list = self.list.read();
        list.sessions.contains_key(session_id)
            || list
                .partners
                .get(partner)
                .is_some_and(|before| issued_at.as_second() <= *before)
    }

    /// Revokes one session. Blocking (file write): call from a blocking context.
    pub fn revoke_session(&self, session_id: &str, now: jiff::Timestamp) -> std::io::Result<()> {
        let forget_after =
            now.as_second() + i64::try_from(MAX_TOKEN_LIFETIME.as_secs()).unwrap_or(i64::MAX) + 60;
        self.update(now, |l| {
            l.sessions.insert(session_id.to_string(), forget_after);
        })
    }

    /// Revokes every session of `partner` issued up to `now`. Blocking.
    pub fn revoke_partner(&self, partner: &str, now: jiff::Timestamp) -> std::io::Result<()> {
        self.update(now, |l| {
            l.partners.insert(partner.to_string(), now.as_second());
        })
    }

    fn update(&self, now: jiff::Timestamp, change: impl FnOnce(&mut List)) -> std::io::Result<()> {
        let mut guard = self.list.write();
        let mut next = guard.clone();
        change(&mut next);
        next.sessions.retain(|_, until| *until > now.as_second());
        crate::atomic_file::write(
            &self.path,
            &serde_json::to_vec_pretty(&next).map_err(std::io::Error::other)?,
            crate::atomic_file::PRIVATE,
        )?;
        *guard = next;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> jiff::Timestamp {
        jiff::Timestamp::from_second(s).unwrap()
    }

    #[test]
    fn sessions_and_partners_are_revoked_and_persisted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("revocations.json");
        let r = Revocations::open(&path).unwrap();
        assert!(!r.is_revoked("acme", "s1", at(1000)));
        r.revoke_session("s1", at(1000)).unwrap();
        assert!(r.is_revoked("acme", "s1", at(900)));
        assert!(!r.is_revoked("acme", "s2", at(900)));
        r.revoke_partner("acme", at(2000)).unwrap();
        assert!(
            r.is_revoked("acme", "s2", at(2000)),
            "issued in the revoking second"
        );
        assert!(!r.is_revoked("acme", "s3", at(2001)), "issued after");
        assert!(!r.is_revoked("globex", "s2", at(1500)));
        let again = Revocations::open(&path).unwrap();
        assert!(
            again.is_revoked("acme", "s1", at(900)) && again.is_revoked("acme", "s9", at(1999))
        );
    }

    #[test]
    fn old_session_entries_are_forgotten_and_bad_files_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.json");
        let r = Revocations::open(&path).unwrap();
        r.revoke_session("old", at(0)).unwrap();
        r.revoke_session("new", at(13 * 3600)).unwrap();
        assert!(!r.is_revoked("p", "old", at(0)) && r.is_revoked("p", "new", at(0)));
        std::fs::write(&path, b"{not json").unwrap();
        assert!(Revocations::open(&path).is_err());
    }
}
