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
    /// SHA-256 of the admin bearer token.
    pub admin_token_digest: [u8; 32],
}

impl State {
    pub async fn build(config: Config) -> Result<State, StartError> {
        let tls = crate::tls::server_config(&config.tls.cert_file, &config.tls.key_file)?;
        let auth = Authority::from_config(&config)?;
        let mut shares = HashMap::new();
        for (name, share) in &config.shares {
            let store_cfg = &config.stores[&share.store];
            let store = store::open(store_cfg, &share.bucket)
                .await
                .map_err(|source| StartError::Store {
                    share: name.clone(),
                    source,
                })?;
            shares.insert(
                name.clone(),
                Share {
                    config: share.clone(),
                    store,
                },
            );
        }
        let audit = Audit::open(&config.audit.dir).map_err(|source| StartError::Audit {
            dir: config.audit.dir.display().to_string(),
            source,
        })?;
        let keys = key_cache(&config).await?;
        let file_err = |what, path: &std::path::Path| {
            let path = path.display().to_string();
            move |source| StartError::File { what, path, source }
        };
        let revocations = crate::revocation::Revocations::open(&config.admin.revocations_file)
            .map(Arc::new)
            .map_err(file_err("revocations file", &config.admin.revocations_file))?;
        let admin_token_digest = crate::admin::token_digest(&config.admin.token_file)
            .map_err(file_err("admin token file", &config.admin.token_file))?;
        let limiters = crate::ratelimit::Limiters::new(&config);
        let trusted_proxies = crate::client_ip::TrustedProxies {
            nets: config.listener.trusted_proxies.clone(),
            proxy_protocol: config.listener.proxy_protocol,
        };
        Ok(State {
            config: Arc::new(config),
            tls,
            auth,
            shares,
            audit,
            limiters,
            trusted_proxies,
            keys,
            revocations,
            admin_token_digest,
        })
    }

    pub fn partner(&self, id: &str) -> Option<&PartnerConfig> {
        self.config.partners.get(id)
    }
}

/// The data-key cache over the configured key service, when any share is envelope-encrypted.
/// The local key file is created on first use.
pub async fn key_cache(
    config: &Config,
) -> Result<Option<Arc<crate::crypto::DataKeyCache>>, crate::crypto::KeyError> {
    use crate::config::KeyServiceConfig;
    use crate::crypto::{DataKeyCache, KeyService, KmsKeyService, LocalKeyService};
    if !config.shares.values().any(|s| s.encrypt) {
        return Ok(None);
    }
    let service: Arc<dyn KeyService> = match &config.keys.service {
        KeyServiceConfig::Local { file } => {
            let file = file.clone();
            let local = tokio::task::spawn_blocking(move || LocalKeyService::open_or_create(&file))
                .await
                .map_err(|e| crate::crypto::KeyError::Unavailable(e.to_string()))??;
            Arc::new(local)
        }
        KeyServiceConfig::Kms {
            region,
            endpoint_url,
            key_id,
        } => Arc::new(
            KmsKeyService::new(region.as_deref(), endpoint_url.as_deref(), key_id.clone()).await,
        ),
    };
    Ok(Some(Arc::new(DataKeyCache::new(
        service,
        config.keys.cache_capacity,
        config.keys.cache_ttl,
    ))))
}
