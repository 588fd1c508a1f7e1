//! The key service: where data keys come from and how they are unwrapped.
//!
//! Takes a key id (or the service's default) and an [`EncryptionContext`]; gives a fresh
//! 32-byte data key with its wrapped form, or unwraps a stored one under the same context.
//! Implemented by AWS KMS ([`super::kms::KmsKeyService`]) and a local key file
//! ([`super::local::LocalKeyService`]). Fails with [`KeyError`], which tells a refusal (the
//! wrapped key or its context does not authenticate: tampering, a moved object, swapped
//! metadata) from a key that cannot be used and from a service that did not answer, so the
//! gateway can fail closed with 503 and audit which it was.

use async_trait::async_trait;
use zeroize::Zeroizing;

use super::context::EncryptionContext;

/// A data key: plaintext for this request only, wrapped form for the object's metadata.
pub struct DataKey {
    pub plaintext: Zeroizing<[u8; 32]>,
    pub wrapped: Vec<u8>,
    /// The id of the key-encryption key, as the service names it (KMS: the key ARN).
    pub key_id: String,
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataKey")
            .field("key_id", &self.key_id)
            .field("wrapped_len", &self.wrapped.len())
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The wrapped key, its key id or its context did not authenticate. The object was
    /// tampered with, moved, or given another object's metadata. Do not retry.
    #[error("data key refused: {0}")]
    Refused(String),
    /// The service answered, but the key cannot be used: unknown, disabled, pending deletion,
    /// or not permitted to this gateway. An operator must act; fail closed.
    #[error("key not usable: {0}")]
    KeyUnusable(String),
    /// No usable answer: network, timeout, throttling, service error. Fail closed; retry later.
    #[error("key service unavailable: {0}")]
    Unavailable(String),
    /// The local key file could not be created, read or parsed.
    #[error("key file {path}: {reason}")]
    KeyFile { path: String, reason: String },
}

impl KeyError {
    /// True when the object itself is at fault (integrity), false when the service or its
    /// configuration is (answer 503).
    pub fn is_refusal(&self) -> bool {
        matches!(self, KeyError::Refused(_))
    }
}

/// Generates and unwraps data keys under an encryption context.
#[async_trait]
pub trait KeyService: Send + Sync + 'static {
    /// A fresh data key under `key_id`, or the service's default (newest) key when `None`.
    async fn generate_data_key(
        &self,
        key_id: Option<&str>,
        context: &EncryptionContext,
    ) -> Result<DataKey, KeyError>;

    /// The plaintext of `wrapped`, which must have been made under `key_id` and `context`.
    async fn decrypt_data_key(
        &self,
        wrapped: &[u8],
        key_id: &str,
        context: &EncryptionContext,
    ) -> Result<Zeroizing<[u8; 32]>, KeyError>;
}

/// Copies a service's plaintext into a fixed array, wiping the source.
pub(crate) fn data_key_from(
    plaintext: Zeroizing<Vec<u8>>,
) -> Result<Zeroizing<[u8; 32]>, KeyError> {
    let mut key = Zeroizing::new([0u8; 32]);
    if plaintext.len() != key.len() {
        return Err(KeyError::Refused(format!(
            "data key is {} bytes, expected 32",
            plaintext.len()
        )));
    }
    key.copy_from_slice(&plaintext);
    Ok(key)
}

/// What opening the local key service does when its key file does not exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocalKey {
    /// Create it (the first start of a gateway that encrypts).
    Create,
    /// Fail: something is already wrapped under the key the file should hold.
    MustExist,
}

/// A client of the configured key service (`[keys] service`).
pub async fn key_service(
    config: &crate::config::KeyServiceConfig,
    local: LocalKey,
) -> Result<std::sync::Arc<dyn KeyService>, KeyError> {
    use crate::config::KeyServiceConfig;
    Ok(match config {
        KeyServiceConfig::Local { file } => {
            let file = file.clone();
            let open = tokio::task::spawn_blocking(move || match local {
                LocalKey::Create => super::LocalKeyService::open_or_create(&file),
                LocalKey::MustExist => super::LocalKeyService::open(&file),
            });
            let service = open
                .await
                .map_err(|e| KeyError::Unavailable(e.to_string()))??;
            std::sync::Arc::new(service)
        }
        KeyServiceConfig::Kms {
            region,
            endpoint_url,
            key_id,
        } => std::sync::Arc::new(
            super::KmsKeyService::new(region.as_deref(), endpoint_url.as_deref(), key_id.clone())
                .await,
        ),
    })
}
