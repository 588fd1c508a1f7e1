//! The FF1 key of `tokenize_fpe` in the gateway: `[dlp] fpe_key_file` unwrapped by the
//! configured key service (`[key_service]`).
//!
//! Takes the configuration; gives the plaintext [`FpeKey`] that per-partner engines are
//! compiled with (the partner id is the tweak). The key is unwrapped when the gateway starts or
//! reloads. Fails closed: a missing or unreadable key file, or a key the service refuses (another
//! key service, a renamed file, a disabled or unknown key), fails the start or reload. A key
//! service that does not answer (network, throttling) does not stop the gateway: requests that
//! need the key fetch it again (one attempt at a time, at most one a second) and are refused
//! until it comes. The key is never logged.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::crypto::{KeyError, KeyService, LocalKey};
use crate::dlp::{FpeError, FpeKey, FpeKeyFile};

/// Shortest pause between two attempts to unwrap the key after the service did not answer.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// The wrapped key file and the service that unwraps it.
pub(super) struct FpeSource {
    file: FpeKeyFile,
    service: Arc<dyn KeyService>,
    key: OnceLock<FpeKey>,
    /// When the last failed attempt ended, and why it failed.
    failed: tokio::sync::Mutex<Option<(Instant, String)>>,
}

impl FpeSource {
    /// Reads the key file and unwraps it. Blocking; needs the Tokio runtime (call from a
    /// blocking task).
    pub(super) fn open(config: &Config) -> Result<FpeSource, String> {
        let path =
            config.dlp.fpe_key_file.as_ref().ok_or(
                "a DLP profile uses tokenize_fpe but [dlp] has no fpe_key_file".to_string(),
            )?;
        let file = FpeKeyFile::load(path).map_err(|e| e.to_string())?;
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| "the FPE key service needs the Tokio runtime".to_string())?;
        let service = runtime
            .block_on(crate::crypto::key_service(
                &config.keys.service,
                LocalKey::MustExist,
            ))
            .map_err(|e| format!("FPE key file {}: {e}", path.display()))?;
        let source = FpeSource {
            file,
            service,
            key: OnceLock::new(),
            failed: tokio::sync::Mutex::new(None),
        };
        match runtime.block_on(source.file.unwrap(&*source.service)) {
            Ok(key) => {
                let _ = source.key.set(key);
            }
            Err(FpeError::Key(KeyError::Unavailable(why))) => {
                tracing::error!(
                    file = %path.display(),
                    reason = %why,
                    "key service unavailable: the FPE key is not unwrapped; tokenize_fpe requests are refused until it is"
                );
                *source.failed.try_lock().expect("not shared yet") = Some((Instant::now(), why));
            }
            Err(e) => return Err(format!("FPE key file {}: {e}", path.display())),
        }
        Ok(source)
    }

    /// The key; unwraps it again if the service did not answer before.
    pub(super) async fn key(&self) -> Result<FpeKey, String> {
        if let Some(k) = self.key.get() {
            return Ok(k.clone());
        }
        let mut failed = self.failed.lock().await;
        if let Some(k) = self.key.get() {
            return Ok(k.clone());
        }
        if let Some((at, why)) = &*failed
            && at.elapsed() < RETRY_AFTER
        {
            return Err(why.clone());
        }
        match self.file.unwrap(&*self.service).await {
            Ok(k) => {
                let _ = self.key.set(k.clone());
                *failed = None;
                Ok(k)
            }
            Err(e) => {
                let why = e.to_string();
                *failed = Some((Instant::now(), why.clone()));
                Err(why)
            }
        }
    }
}
