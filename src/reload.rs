//! Hot reload: the configuration in force, swapped atomically.
//!
//! Takes the config path and the state built at start; gives [`Live`], which every
//! connection and request asks for the current [`State`]. A reload (SIGHUP, a change in a
//! watched directory, or `POST /reload` on the admin listener) loads and validates every file
//! again, builds a complete new state, and only then swaps it in: in-flight requests finish
//! under the state they started with, new requests see the new one. An invalid change is
//! rejected whole: the old configuration stays in force, the error (file, line, reason) is
//! logged and counted, and is the same one `gatehouse check` prints. Settings that only take
//! effect at start (listener and admin addresses, audit directory, revocations file) are
//! reported as needing a restart.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;

use crate::config::{self, Config};
use crate::state::State;

/// The state in force and how reloads went.
pub struct Live {
    current: ArcSwap<State>,
    config_path: PathBuf,
    /// One reload at a time.
    lock: tokio::sync::Mutex<()>,
    reloads_ok: AtomicU64,
    reloads_failed: AtomicU64,
    last_error: parking_lot::Mutex<Option<String>>,
    /// The last readiness probe: when, and the problems found.
    ready: tokio::sync::Mutex<Option<(std::time::Instant, Vec<String>)>>,
}

/// How long the watched files must be quiet before a change is reloaded.
pub const DEBOUNCE: Duration = Duration::from_millis(300);

/// How long a readiness probe result is reused.
const READY_TTL: Duration = Duration::from_secs(5);

/// What a successful reload changed.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Outcome {
    pub partners: usize,
    pub shares: usize,
    /// Settings that changed in the files but take effect only after a restart.
    pub restart_needed: Vec<String>,
}

/// Why a reload was rejected (the old configuration stays in force).
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("{0}")]
    Config(config::ConfigErrors),
    #[error("{0}")]
    Start(crate::state::StartError),
}

impl Live {
    pub fn new(state: State, config_path: &Path) -> Arc<Live> {
        state.publish_partners();
        Arc::new(Live {
            current: ArcSwap::from_pointee(state),
            config_path: config_path.to_path_buf(),
            lock: tokio::sync::Mutex::new(()),
            reloads_ok: AtomicU64::new(0),
            reloads_failed: AtomicU64::new(0),
            last_error: parking_lot::Mutex::new(None),
            ready: tokio::sync::Mutex::new(None),
        })
    }

    /// The state in force now. Hold it for the whole request.
    pub fn state(&self) -> Arc<State> {
        self.current.load_full()
    }

    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// Successful and rejected reloads since start.
    pub fn counts(&self) -> (u64, u64) {
        (
            self.reloads_ok.load(Ordering::Relaxed),
            self.reloads_failed.load(Ordering::Relaxed),
        )
    }

    /// The error of the last rejected reload, cleared by a successful one.
    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().clone()
    }

    /// Problems that keep this gateway from serving (empty: ready). Probes run at most every
    /// `READY_TTL` (5 s); calls in between get the last answer.
    pub async fn readiness(&self) -> Vec<String> {
        let mut last = self.ready.lock().await;
        if let Some((at, problems)) = last.as_ref()
            && at.elapsed() < READY_TTL
        {
            return problems.clone();
        }
        let problems = probe(&self.state()).await;
        *last = Some((std::time::Instant::now(), problems.clone()));
        problems
    }

    /// Loads, validates and builds the configuration again; swaps it in only when all of
    /// that succeeded.
    pub async fn reload(&self) -> Result<Outcome, ReloadError> {
        let _one = self.lock.lock().await;
        let path = self.config_path.clone();
        let loaded = tokio::task::spawn_blocking(move || config::load(&path))
            .await
            .unwrap_or_else(|e| {
                Err(config::ConfigErrors(vec![config::ConfigError {
                    file: self.config_path.clone(),
                    line: None,
                    message: format!("reload task failed: {e}"),
                }]))
            });
        let result = match loaded {
            Ok(cfg) => self.apply(cfg).await,
            Err(errors) => Err(ReloadError::Config(errors)),
        };
        match &result {
            Ok(outcome) => {
                self.reloads_ok.fetch_add(1, Ordering::Relaxed);
                *self.last_error.lock() = None;
                tracing::info!(
                    partners = outcome.partners,
                    shares = outcome.shares,
                    restart_needed = ?outcome.restart_needed,
                    "configuration reloaded"
                );
            }
            Err(e) => {
                self.reloads_failed.fetch_add(1, Ordering::Relaxed);
                *self.last_error.lock() = Some(e.to_string());
                tracing::error!(
                    errors = %e,
                    "configuration change rejected; the previous configuration stays in force"
                );
            }
        }
        result
    }

    async fn apply(&self, cfg: Config) -> Result<Outcome, ReloadError> {
        let old = self.state();
        let restart_needed = restart_needed(&old.config, &cfg);
        let new = old.rebuild(cfg).await.map_err(ReloadError::Start)?;
        let outcome = Outcome {
            partners: new.config.partners.len(),
            shares: new.config.shares.len(),
            restart_needed,
        };
        new.publish_partners();
        self.current.store(Arc::new(new));
        Ok(outcome)
    }
}

/// Probes the audit trail, every store and the key service of `state`.
async fn probe(state: &State) -> Vec<String> {
    const TIMEOUT: Duration = Duration::from_secs(3);
    let mut problems = Vec::new();
    if !state.audit.healthy() {
        problems.push("audit trail not writable".to_string());
    }
    for (name, share) in &state.shares {
        let req = crate::store::ListRequest {
            prefix: share.config.prefix.clone(),
            delimiter: None,
            start_after: None,
            max_keys: 1,
        };
        match tokio::time::timeout(TIMEOUT, share.store.list(&req)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => problems.push(format!("share {name}: store: {e}")),
            Err(_) => problems.push(format!("share {name}: store did not answer in time")),
        }
    }
    if let Some(keys) = &state.keys {
        // A data key for a context no object has: proves the service answers and the
        // gateway may use the key, without touching any object's key.
        let probe = async {
            let id = crate::crypto::ObjectId::random().map_err(|e| e.to_string())?;
            let context = crate::crypto::EncryptionContext::new(
                "gatehouse-readiness",
                "gatehouse-readiness",
                "gatehouse-readiness",
                id,
            );
            let service = keys.service();
            service
                .generate_data_key(None, &context)
                .await
                .map(drop)
                .map_err(|e| e.to_string())
        };
        match tokio::time::timeout(TIMEOUT, probe).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => problems.push(format!("key service: {e}")),
            Err(_) => problems.push("key service did not answer in time".to_string()),
        }
    }
    problems
}

/// Settings read only at start that differ between `old` and `new`.
fn restart_needed(old: &Config, new: &Config) -> Vec<String> {
    let mut out = Vec::new();
    let mut differs = |name: &str, changed: bool| {
        if changed {
            out.push(name.to_string());
        }
    };
    differs("listener.addr", old.listener.addr != new.listener.addr);
    differs("admin.addr", old.admin.addr != new.admin.addr);
    // The trail's writer (keys, rotation, checkpoints, flood window) and its archive are
    // built once at start and kept across reloads.
    differs("audit", old.audit != new.audit);
    differs(
        "admin.revocations_file",
        old.admin.revocations_file != new.admin.revocations_file,
    );
    differs(
        "listener.max_connections",
        old.listener.max_connections != new.listener.max_connections,
    );
    differs(
        "listener timeouts and header limits",
        old.listener.header_read_timeout != new.listener.header_read_timeout
            || old.listener.idle_timeout != new.listener.idle_timeout
            || old.listener.handshake_timeout != new.listener.handshake_timeout
            || old.listener.max_header_bytes != new.listener.max_header_bytes,
    );
    out
}

/// Reloads on SIGHUP and on changes under the watched directories until `shutdown`.
/// Changes are debounced (`quiet`): a burst of writes, an editor's temp file and rename, or
/// a `git checkout` of the config directory cause one reload once the files are quiet.
pub async fn watch(live: Arc<Live>, quiet: Duration, shutdown: impl Future<Output = ()>) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let _watcher = match file_watcher(&live.state().config, &live.config_path, tx.clone()) {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch the configuration files; reload on SIGHUP or POST /reload only");
            None
        }
    };
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    tokio::pin!(shutdown);
    loop {
        let hup_recv = async {
            match hup.as_mut() {
                Some(h) => h.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = &mut shutdown => return,
            _ = hup_recv => {
                tracing::info!("SIGHUP: reloading the configuration");
                let _ = live.reload().await;
            }
            Some(()) = rx.recv() => {
                // Debounce: wait until no change arrived for `quiet`.
                while let Ok(Some(())) = tokio::time::timeout(quiet, rx.recv()).await {}
                tracing::info!("configuration files changed: reloading");
                let _ = live.reload().await;
            }
        }
    }
}

/// Whether a changed path can affect the configuration (editors' swap and backup files and
/// anything that is not config, detector, key or certificate material are ignored).
fn relevant(path: &Path) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    if name.starts_with('.') || name.ends_with('~') || name.starts_with('#') {
        return false;
    }
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("toml" | "pem" | "crt" | "key" | "json")
    )
}

fn file_watcher(
    cfg: &Config,
    config_path: &Path,
    tx: tokio::sync::mpsc::UnboundedSender<()>,
) -> notify::Result<notify::RecommendedWatcher> {
    use notify::{EventKind, RecursiveMode, Watcher};
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        if let Ok(event) = res
            && !matches!(event.kind, EventKind::Access(_))
            && event.paths.iter().any(|p| relevant(p))
        {
            let _ = tx.send(());
        }
    })?;
    let mut dirs: Vec<PathBuf> = Vec::new();
    let parent = |p: &Path| p.parent().map(Path::to_path_buf);
    dirs.extend(parent(config_path));
    dirs.push(cfg.partners_dir.clone());
    dirs.extend(cfg.dlp_patterns_dir.clone());
    dirs.extend(parent(&cfg.tls.cert_file));
    dirs.extend(parent(&cfg.tls.key_file));
    dirs.sort();
    dirs.dedup();
    for dir in dirs {
        if dir.is_dir() {
            watcher.watch(&dir, RecursiveMode::NonRecursive)?;
        }
    }
    Ok(watcher)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_config_material_triggers_a_reload() {
        assert!(relevant(Path::new("/etc/gatehouse/partners/acme.toml")));
        assert!(relevant(Path::new("/etc/gatehouse/tls/server.pem")));
        assert!(!relevant(Path::new(
            "/etc/gatehouse/partners/.acme.toml.swp"
        )));
        assert!(!relevant(Path::new("/etc/gatehouse/partners/acme.toml~")));
        assert!(!relevant(Path::new("/etc/gatehouse/partners/#acme.toml#")));
        assert!(!relevant(Path::new(
            "/var/lib/gatehouse/audit/audit-2026-01-01.jsonl"
        )));
        assert!(!relevant(Path::new("/etc/gatehouse/partners/4913")));
    }
}
