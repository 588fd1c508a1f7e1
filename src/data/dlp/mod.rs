//! DLP on the data path: profiles of shares and grants applied to GET, HEAD and PUT.
//!
//! Takes an allowed [`Access`] on a share or grant that names a DLP profile; gives the
//! transformed download ([`read`]) or the scanned, classified, staged-then-committed upload
//! ([`write`]), and the findings for the request's audit event ([`DlpRecord`]: entity,
//! detector, action and count, never a value). A `block` is decided before the first byte:
//! from the verdict recorded with the object at upload ([`verdict`]) when it names the same
//! detector pack and profile, else from a detect pass over the same object version. Fails
//! closed: a missing engine, key or verdict never lets content through unscanned.
//!
//! Layout: [`verdict`] (what a scan found, as object metadata), [`inbound`] (detect passes:
//! the upload tap and the pre-scan), [`read`], [`write`], `fpe_key` (the FF1 key unwrapped by
//! the key service). Format and unscannable content are
//! decided by the engine's object scanners (`Engine::scanner_for`) from the first bytes,
//! whatever type the partner declares.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use serde::Serialize;
use zeroize::Zeroizing;

use super::Access;
use crate::config::{Config, DlpProfile};
use crate::dlp::format::FormatHint;
use crate::dlp::{Engine, FpeKey, Pack, ScanMode, Scanner, TokenKey};
use crate::pipeline::Refusal;
use crate::s3api::S3Error;
use crate::state::State;

mod fpe_key;
mod inbound;
pub(super) mod read;
mod verdict;
pub(super) mod write;

/// Response header on every GET and HEAD of a DLP share: `transformed` (the body went through
/// the profile) or `unscanned` (unscannable content let through by `on_unscannable = "pass"`).
pub const DLP_HEADER: &str = "x-gatehouse-dlp";

/// Metadata bytes kept free for the gateway's classification and verdict on DLP shares.
pub const METADATA_RESERVE: usize = 512;

/// Shortest accepted token secret, in bytes.
const MIN_SECRET_LEN: usize = 32;

/// What the DLP stage did for one request: goes into the audit event as `dlp`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DlpRecord {
    /// The profile in force (the grant's override or the share's).
    pub profile: String,
    /// `transformed`, `blocked`, `unscannable_blocked`, `unscannable_passed` (GET, HEAD);
    /// `stored`, `blocked`, `unscannable_blocked`, `above_ceiling` (PUT).
    pub outcome: &'static str,
    /// Where the findings come from: `recorded` (the object's verdict), `prescan` (a detect
    /// pass before serving) or `upload` (the scan of this PUT).
    pub source: &'static str,
    /// PUT: the classification the object was stored with (or would have been).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub classification: Option<&'static str>,
    /// Findings of the whole object, by detector.
    pub findings: Vec<FindingCount>,
}

/// How many findings one detector made, and what the profile does with them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FindingCount {
    pub entity: String,
    pub detector: String,
    pub action: &'static str,
    pub count: u64,
}

/// The detector pack, the token secret, the FF1 key and the compiled engines of one
/// configuration.
pub struct DlpRuntime {
    pack: Pack,
    secret: Option<Zeroizing<Vec<u8>>>,
    fpe: Option<fpe_key::FpeSource>,
    /// Per `(profile, partner)`; partner `""` for profiles without keyed actions.
    engines: parking_lot::Mutex<HashMap<(String, String), Arc<Engine>>>,
    /// Each profile's fingerprint (what its recorded verdicts are pinned to), by name.
    fingerprints: HashMap<String, String>,
}

impl std::fmt::Debug for DlpRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DlpRuntime")
            .field("pack", &self.pack.version())
            .finish_non_exhaustive()
    }
}

/// Why a profile's engine is not available for a request.
#[derive(Debug)]
enum EngineError {
    /// The configuration cannot run (never after a successful start): 500.
    Broken(String),
    /// The key service cannot unwrap the FF1 key right now: 503, retry later.
    KeyUnavailable(String),
}

impl DlpRuntime {
    /// Uses the pack the configuration was checked against (else loads the configured
    /// directory or the built-in one), reads the token secret when a profile tokenizes or
    /// hashes, unwraps the FF1 key when a profile uses `tokenize_fpe`, and compiles every
    /// profile once. `None` when the configuration has no profiles. Blocking: call from a
    /// blocking task of the Tokio runtime (the key service is reached through it).
    ///
    /// Fails when the FF1 key file is missing or its key service refuses it; a key service that
    /// does not answer is not fatal: requests needing the key are refused until it does.
    pub fn build(config: &Config) -> Result<Option<DlpRuntime>, String> {
        if config.dlp.profiles.is_empty() {
            return Ok(None);
        }
        let pack = match (config.dlp.checked_pack.get(), &config.dlp_patterns_dir) {
            (Some(pack), _) => pack,
            (None, Some(dir)) => Pack::load_dir(dir).map_err(|e| e.to_string())?,
            (None, None) => Pack::builtin(),
        };
        let secret = if config.dlp.profiles.values().any(DlpProfile::needs_key) {
            Some(read_secret(&config.dlp.token_secret_file)?)
        } else {
            None
        };
        let fpe = if config.dlp.profiles.values().any(DlpProfile::needs_fpe) {
            Some(fpe_key::FpeSource::open(config)?)
        } else {
            None
        };
        let runtime = DlpRuntime {
            pack,
            secret,
            fpe,
            engines: parking_lot::Mutex::default(),
            fingerprints: config
                .dlp
                .profiles
                .iter()
                .map(|(name, p)| (name.clone(), p.fingerprint()))
                .collect(),
        };
        for p in config.dlp.profiles.values().filter(|p| !p.needs_fpe()) {
            runtime.compile(p, "", None)?;
        }
        Ok(Some(runtime))
    }

    /// Version of the detector pack in force.
    pub fn pack_version(&self) -> &str {
        self.pack.version()
    }

    fn compile(
        &self,
        profile: &DlpProfile,
        partner: &str,
        fpe: Option<FpeKey>,
    ) -> Result<Arc<Engine>, String> {
        let slot = (
            profile.name.clone(),
            if profile.per_partner() { partner } else { "" }.to_owned(),
        );
        if let Some(e) = self.engines.lock().get(&slot) {
            return Ok(e.clone());
        }
        let key = match (&self.secret, profile.needs_key()) {
            (Some(secret), true) => Some(TokenKey::derive(secret, partner)),
            (None, true) => return Err("no token secret".into()),
            (_, false) => None,
        };
        let fpe = match (fpe, profile.needs_fpe()) {
            (Some(k), true) => Some((k, partner)),
            (None, true) => return Err("no FPE key".into()),
            (_, false) => None,
        };
        let engine = Engine::compile(&self.pack, &profile.to_engine(key, fpe))
            .map(Arc::new)
            .map_err(|e| format!("DLP profile {:?}: {e}", profile.name))?;
        self.engines.lock().insert(slot, engine.clone());
        Ok(engine)
    }

    /// The engine of `profile` for `partner`, as requests get it (`gatehouse dlp scan
    /// --profile`).
    pub async fn engine_for(
        self: &Arc<Self>,
        profile: &DlpProfile,
        partner: &str,
    ) -> Result<Arc<Engine>, String> {
        self.engine(profile, partner).await.map_err(|e| match e {
            EngineError::Broken(e) | EngineError::KeyUnavailable(e) => e,
        })
    }

    /// The engine of `profile` for `partner` (its own token key, its id as FF1 tweak),
    /// compiled on first use.
    async fn engine(
        self: &Arc<Self>,
        profile: &DlpProfile,
        partner: &str,
    ) -> Result<Arc<Engine>, EngineError> {
        if !profile.per_partner() {
            return self.compile(profile, "", None).map_err(EngineError::Broken);
        }
        let slot = (profile.name.clone(), partner.to_owned());
        if let Some(e) = self.engines.lock().get(&slot) {
            return Ok(e.clone());
        }
        let fpe = match (&self.fpe, profile.needs_fpe()) {
            (Some(source), true) => Some(source.key().await.map_err(EngineError::KeyUnavailable)?),
            (None, true) => return Err(EngineError::Broken("no FPE key configured".into())),
            (_, false) => None,
        };
        let (this, profile, partner) = (self.clone(), profile.clone(), partner.to_owned());
        tokio::task::spawn_blocking(move || this.compile(&profile, &partner, fpe))
            .await
            .map_err(|e| EngineError::Broken(e.to_string()))?
            .map_err(EngineError::Broken)
    }
}

/// The data owner's token secret: the file's bytes, surrounding whitespace removed.
fn read_secret(path: &Path) -> Result<Zeroizing<Vec<u8>>, String> {
    let raw = Zeroizing::new(
        std::fs::read(path)
            .map_err(|e| format!("DLP token secret file {}: {e}", path.display()))?,
    );
    let secret = Zeroizing::new(raw.trim_ascii().to_vec());
    if secret.len() < MIN_SECRET_LEN {
        return Err(format!(
            "DLP token secret file {}: shorter than {MIN_SECRET_LEN} bytes",
            path.display()
        ));
    }
    Ok(secret)
}

/// The profile in force for one access, with its engine.
pub(super) struct Active<'a> {
    pub profile: &'a DlpProfile,
    pub engine: Arc<Engine>,
    pub pack_version: String,
    /// [`DlpProfile::fingerprint`], worked out once per configuration.
    pub fingerprint: &'a str,
}

impl Active<'_> {
    /// A scanner for the body of `key` declared as `content_type`.
    fn scanner(&self, mode: ScanMode, key: &str, content_type: Option<&str>) -> Scanner {
        let hint = FormatHint {
            content_type,
            name: Some(key),
            forced: None,
        };
        self.engine.scanner_for(mode, &hint)
    }
}

/// The DLP profile of this access (the grant's override, else the share's), or `None`.
pub(super) async fn active<'a>(
    state: &'a State,
    access: &Access<'_>,
) -> Result<Option<Active<'a>>, Refusal> {
    let share = super::share_of(state, &access.share)?;
    let grant = access.session.partner.grants.get(access.grant);
    let name = grant
        .and_then(|g| g.conditions.dlp_profile.as_deref())
        .or(share.config.dlp_profile.as_deref());
    let Some(name) = name else {
        return Ok(None);
    };
    let broken = |what: &str| {
        tracing::error!(profile = %name, problem = %what, "DLP profile cannot run; refusing");
        Refusal::new(S3Error::InternalError, "dlp_unavailable")
    };
    let profile = state
        .config
        .dlp
        .profiles
        .get(name)
        .ok_or_else(|| broken("not configured"))?;
    let runtime = state.dlp.as_ref().ok_or_else(|| broken("no DLP runtime"))?;
    let engine = match runtime.engine(profile, &access.session.partner.id).await {
        Ok(e) => e,
        Err(EngineError::Broken(e)) => return Err(broken(&e)),
        Err(EngineError::KeyUnavailable(e)) => {
            tracing::warn!(profile = %name, reason = %e, "DLP FPE key unavailable; refusing");
            return Err(Refusal::new(
                S3Error::ServiceUnavailable,
                "dlp_key_unavailable",
            ));
        }
    };
    let fingerprint = runtime
        .fingerprints
        .get(name)
        .ok_or_else(|| broken("no fingerprint"))?;
    Ok(Some(Active {
        profile,
        engine,
        pack_version: runtime.pack_version().to_owned(),
        fingerprint,
    }))
}
