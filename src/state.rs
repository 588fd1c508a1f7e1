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
        Ok(State {
            config: Arc::new(config),
            tls,
            auth,
            shares,
            audit,
        })
    }

    pub fn partner(&self, id: &str) -> Option<&PartnerConfig> {
        self.config.partners.get(id)
    }
}
