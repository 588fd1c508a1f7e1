//! The runtime a configuration builds: TLS, token authority, opened shares, audit writer.
//!
//! Takes a validated [`Config`]; gives a [`State`] shared by every connection, or a
//! [`StartError`] naming what could not be built (a certificate, a signing key, a store).

use std::collections::HashMap;
use std::sync::Arc;

use crate::audit::Audit;
use crate::auth::Authority;
use crate::config::{Config, PartnerConfig, ShareConfig};
use crate::store::{self, ObjectStore};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("TLS: {0}")]
    Tls(#[from] crate::tls::TlsError),
    #[error("token authority: {0}")]
    Auth(#[from] crate::auth::AuthError),
    #[error("share {share}: store could not be opened: {source}")]
    Store {
        share: String,
        source: store::StoreError,
    },
    #[error("key service: {0}")]
    Keys(#[from] crate::crypto::KeyError),
    #[error("{what} {path}: {source}")]
    File {
        what: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error("audit directory {dir}: {source}")]
    Audit { dir: String, source: std::io::Error },
    #[error("DLP: {0}")]
    Dlp(String),
}

/// One share, ready to serve.
pub struct Share {
    pub config: ShareConfig,
    pub store: Arc<dyn ObjectStore>,
}

pub struct State {
    pub config: Arc<Config>,
    pub tls: Arc<rustls::ServerConfig>,
    pub auth: Authority,
    pub shares: HashMap<String, Share>,
    pub audit: Audit,
    pub limiters: crate::ratelimit::Limiters,
    pub trusted_proxies: crate::client_ip::TrustedProxies,
    /// Data keys for envelope shares; `None` when no share is encrypted.
    pub keys: Option<Arc<crate::crypto::DataKeyCache>>,
    pub revocations: Arc<crate::revocation::Revocations>,
    /// Which partners the configuration in force lets in; shared across reloads.
    pub gate: Arc<PartnerGate>,
    /// Metrics and live sessions; shared across reloads.
    pub observers: Arc<Observers>,
    /// SHA-256 of the admin bearer token.
    pub admin_token_digest: [u8; 32],
    /// DLP pack, token secret and engines; `None` when no profile is configured.
    pub dlp: Option<Arc<crate::data::DlpRuntime>>,
}

impl State {
    /// Builds everything from `config` (first start).
    pub async fn build(config: Config) -> Result<State, StartError> {
        State::assemble(config, None).await
    }

    /// Builds the runtime of a new configuration for a reload. What carries state across
    /// requests is kept from `self`: the audit writer, revocations, the partner gate, the
    /// assertion replay cache, rate-limit budgets and lockouts whose settings did not change,
    /// opened stores and the data-key cache whose settings did not change. Everything else
    /// (TLS certificate, partners, grants, shares) comes from the new files.
    pub async fn rebuild(&self, config: Config) -> Result<State, StartError> {
        State::assemble(config, Some(self)).await
    }

    async fn assemble(config: Config, prev: Option<&State>) -> Result<State, StartError> {
        let config = Arc::new(config);
        let tls = crate::tls::server_config(&config.tls.cert_file, &config.tls.key_file)?;
        let auth = match prev {
            Some(p) => p.auth.reload(&config)?,
            None => Authority::from_config(&config)?,
        };
        let mut shares = HashMap::new();
        for (name, share) in &config.shares {
            let store_cfg = &config.stores[&share.store];
            let reused = prev.and_then(|p| {
                p.shares.values().find_map(|old| {
                    let same = old.config.bucket == share.bucket
                        && p.config.stores.get(&old.config.store) == Some(store_cfg);
                    same.then(|| old.store.clone())
                })
            });
            let store = match reused {
                Some(s) => s,
                None => store::open(store_cfg, &share.bucket)
                    .await
                    .map_err(|source| StartError::Store {
                        share: name.clone(),
                        source,
                    })?,
            };
            shares.insert(
                name.clone(),
                Share {
                    config: share.clone(),
                    store,
                },
            );
        }
        let file_err = |what, path: &std::path::Path| {
            let path = path.display().to_string();
            move |source| StartError::File { what, path, source }
        };
        let (audit, revocations, gate, observers) = match prev {
            Some(p) => (
                p.audit.clone(),
                p.revocations.clone(),
                p.gate.clone(),
                p.observers.clone(),
            ),
            None => {
                // Opening the trail reads and may repair its last file and loads the signing
                // key: file I/O, off the async threads.
                let audit_cfg = config.audit.clone();
                let audit = tokio::task::spawn_blocking(move || Audit::open(&audit_cfg))
                    .await
                    .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())))
                    .map_err(|source| StartError::Audit {
                        dir: config.audit.dir.display().to_string(),
                        source,
                    })?;
                let revocations =
                    crate::revocation::Revocations::open(&config.admin.revocations_file)
                        .map(Arc::new)
                        .map_err(file_err("revocations file", &config.admin.revocations_file))?;
                (
                    audit,
                    revocations,
                    Arc::new(PartnerGate::default()),
                    Arc::new(Observers::default()),
                )
            }
        };
        let keys = match prev {
            Some(p) if same_key_service(&p.config, &config) => p.keys.clone(),
            _ => key_cache(&config).await?,
        };
        let admin_token_digest = crate::admin::token_digest(&config.admin.token_file)
            .map_err(file_err("admin token file", &config.admin.token_file))?;
        let limiters = match prev {
            Some(p) => p.limiters.reload(&config),
            None => crate::ratelimit::Limiters::new(&config),
        };
        let trusted_proxies = crate::client_ip::TrustedProxies {
            nets: config.listener.trusted_proxies.clone(),
            proxy_protocol: config.listener.proxy_protocol,
        };
        let dlp = dlp_runtime(Arc::clone(&config)).await?;
        // Last, once nothing can fail: a rejected reload leaves the rules in force alone.
        observers.metrics.set_known(
            config.partners.keys().cloned(),
            config.shares.keys().cloned(),
        );
        observers
            .alerts
            .configure(
                &config.alerts,
                config.partners.keys().cloned().collect(),
                &audit,
                observers.metrics.alert_counters(),
            )
            .await;
        Ok(State {
            dlp,
            config,
            tls,
            auth,
            shares,
            audit,
            limiters,
            trusted_proxies,
            keys,
            revocations,
            gate,
            observers,
            admin_token_digest,
        })
    }

    pub fn partner(&self, id: &str) -> Option<&PartnerConfig> {
        self.config.partners.get(id)
    }

    /// Tells transfers in flight which partners this configuration no longer lets in
    /// (suspended or removed). Called when this state becomes the current one.
    pub fn publish_partners(&self) {
        self.gate.set(
            self.config
                .partners
                .values()
                .filter(|p| p.status == crate::config::PartnerStatus::Active)
                .map(|p| p.id.clone())
                .collect(),
        );
    }
}

/// The DLP runtime of a configuration (loading the pack and compiling every profile).
async fn dlp_runtime(
    config: Arc<Config>,
) -> Result<Option<Arc<crate::data::DlpRuntime>>, StartError> {
    tokio::task::spawn_blocking(move || crate::data::DlpRuntime::build(&config))
        .await
        .map_err(|e| StartError::Dlp(e.to_string()))?
        .map(|r| r.map(Arc::new))
        .map_err(StartError::Dlp)
}

/// Whether two configurations use the same key service with the same cache settings
/// (and both need one), so the data-key cache and its warm keys can be kept.
fn same_key_service(a: &Config, b: &Config) -> bool {
    a.keys.service == b.keys.service
        && a.keys.cache_capacity == b.keys.cache_capacity
        && a.keys.cache_ttl == b.keys.cache_ttl
        && a.shares.values().any(|s| s.encrypt) == b.shares.values().any(|s| s.encrypt)
}

/// What watches finished events besides the audit trail: metrics, live sessions, alerts.
#[derive(Default)]
pub struct Observers {
    pub metrics: crate::metrics::Metrics,
    pub sessions: crate::sessions::Sessions,
    /// Alert rules; configured from `[alerts]` at start and on every reload.
    pub alerts: crate::alerts::Alerts,
}

impl Observers {
    pub fn observe(&self, ev: &crate::audit::Event) {
        self.metrics.observe(ev);
        self.sessions.observe(ev);
        self.alerts.observe(ev);
    }
}

/// The partners allowed in by the configuration in force, shared by every state across
/// reloads so a transfer started under an older configuration sees a suspension or removal.
#[derive(Default)]
pub struct PartnerGate {
    active: arc_swap::ArcSwapOption<std::collections::HashSet<String>>,
}

impl PartnerGate {
    pub fn set(&self, active: std::collections::HashSet<String>) {
        self.active.store(Some(Arc::new(active)));
    }

    /// False once the configuration in force suspends or no longer has `partner`
    /// (true before any configuration was published).
    pub fn is_active(&self, partner: &str) -> bool {
        self.active
            .load()
            .as_ref()
            .is_none_or(|set| set.contains(partner))
    }
}

/// The data-key cache over the configured key service, when any share is envelope-encrypted.
/// The local key file is created on first use.
pub async fn key_cache(
    config: &Config,
) -> Result<Option<Arc<crate::crypto::DataKeyCache>>, crate::crypto::KeyError> {
    use crate::crypto::{DataKeyCache, LocalKey};
    if !config.shares.values().any(|s| s.encrypt) {
        return Ok(None);
    }
    let service = crate::crypto::key_service(&config.keys.service, LocalKey::Create).await?;
    Ok(Some(Arc::new(DataKeyCache::new(
        service,
        config.keys.cache_capacity,
        config.keys.cache_ttl,
    ))))
}
