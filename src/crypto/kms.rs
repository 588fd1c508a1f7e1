//! The AWS KMS key service.
//!
//! Takes a KMS client (region and endpoint configurable, so tests use moto on loopback) and a
//! default key id or alias; gives a [`KeyService`] that calls `GenerateDataKey` (AES_256) and
//! `Decrypt` with the object's encryption context, so KMS itself refuses a wrapped key
//! presented with another object's context. Fails with [`KeyError`]: `Refused` for
//! `InvalidCiphertextException` / `IncorrectKeyException`, `KeyUnusable` for a missing,
//! disabled or forbidden key, `Unavailable` for everything else (network, timeouts,
//! throttling, KMS errors), after the SDK's own retries within the configured timeouts.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_config::BehaviorVersion;
use aws_config::environment::EnvironmentVariableRegionProvider;
use aws_config::meta::region::RegionProviderChain;
use aws_config::profile::region::ProfileFileRegionProvider;
use aws_sdk_kms::Client;
use aws_sdk_kms::config::Region;
use aws_sdk_kms::config::timeout::TimeoutConfig;
use aws_sdk_kms::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::DataKeySpec;
use zeroize::Zeroizing;

use super::context::EncryptionContext;
use super::keys::{DataKey, KeyError, KeyService, data_key_from};

/// KMS calls that take longer than this fail as `Unavailable` (the request answers 503).
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(10);
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(3);

/// Data keys from AWS KMS (or anything speaking its API).
#[derive(Debug, Clone)]
pub struct KmsKeyService {
    client: Client,
    default_key_id: Option<String>,
}

impl KmsKeyService {
    /// A client for `region` (else the environment's, else us-east-1) and `endpoint_url` (else
    /// AWS's). `default_key_id` (key id, ARN or `alias/...`) is used when a share names none.
    pub async fn new(
        region: Option<&str>,
        endpoint_url: Option<&str>,
        default_key_id: Option<String>,
    ) -> KmsKeyService {
        let region = match region {
            Some(r) => RegionProviderChain::first_try(Region::new(r.to_owned())),
            None => RegionProviderChain::first_try(EnvironmentVariableRegionProvider::new())
                .or_else(ProfileFileRegionProvider::new())
                .or_else(Region::from_static("us-east-1")),
        };
        let mut loader = aws_config::defaults(BehaviorVersion::latest()).region(region);
        if let Some(url) = endpoint_url {
            loader = loader.endpoint_url(url);
        }
        let shared = loader.load().await;
        let timeouts = TimeoutConfig::builder()
            .operation_timeout(OPERATION_TIMEOUT)
            .operation_attempt_timeout(ATTEMPT_TIMEOUT)
            .build();
        let config = aws_sdk_kms::config::Builder::from(&shared)
            .timeout_config(timeouts)
            .build();
        KmsKeyService::from_client(Client::from_conf(config), default_key_id)
    }

    pub fn from_client(client: Client, default_key_id: Option<String>) -> KmsKeyService {
        KmsKeyService {
            client,
            default_key_id,
        }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// `ReEncrypt`: `wrapped` (made under `key_id` and `context`) re-wrapped under `to` with the
    /// same context, inside KMS (the data key never leaves it). Gives the new wrapped key and the
    /// ARN of the key it is under. Needs `kms:ReEncryptFrom` on the old key and
    /// `kms:ReEncryptTo` on the new one. Fails like [`KeyService::decrypt_data_key`].
    pub async fn rewrap(
        &self,
        wrapped: &[u8],
        key_id: &str,
        context: &EncryptionContext,
        to: &str,
    ) -> Result<(Vec<u8>, String), KeyError> {
        let mut out = self
            .client
            .re_encrypt()
            .ciphertext_blob(Blob::new(wrapped))
            .source_key_id(key_id)
            .set_source_encryption_context(Some(context_map(context)))
            .destination_key_id(to)
            .set_destination_encryption_context(Some(context_map(context)))
            .send()
            .await
            .map_err(classify)?;
        let wrapped = out
            .ciphertext_blob
            .take()
            .map(Blob::into_inner)
            .filter(|b| !b.is_empty())
            .ok_or_else(|| KeyError::Unavailable("KMS returned no ciphertext".into()))?;
        let key_id = out
            .key_id
            .take()
            .ok_or_else(|| KeyError::Unavailable("KMS returned no key id".into()))?;
        Ok((wrapped, key_id))
    }

    /// The ARN of `key_id` (a key id, key ARN, alias name or alias ARN), as objects record it.
    pub async fn key_arn(&self, key_id: &str) -> Result<String, KeyError> {
        let out = self
            .client
            .describe_key()
            .key_id(key_id)
            .send()
            .await
            .map_err(classify)?;
        out.key_metadata
            .and_then(|m| m.arn)
            .ok_or_else(|| KeyError::Unavailable("KMS returned no key ARN".into()))
    }
}

fn context_map(context: &EncryptionContext) -> HashMap<String, String> {
    context
        .pairs()
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
}

#[async_trait]
impl KeyService for KmsKeyService {
    async fn generate_data_key(
        &self,
        key_id: Option<&str>,
        context: &EncryptionContext,
    ) -> Result<DataKey, KeyError> {
        let key_id = key_id
            .or(self.default_key_id.as_deref())
            .ok_or_else(|| KeyError::KeyUnusable("no KMS key id configured".into()))?;
        let mut out = self
            .client
            .generate_data_key()
            .key_id(key_id)
            .key_spec(DataKeySpec::Aes256)
            .set_encryption_context(Some(context_map(context)))
            .send()
            .await
            .map_err(classify)?;
        let plaintext = out
            .plaintext
            .take()
            .map(|b| Zeroizing::new(b.into_inner()))
            .ok_or_else(|| KeyError::Unavailable("KMS returned no plaintext".into()))?;
        let wrapped = out
            .ciphertext_blob
            .take()
            .map(Blob::into_inner)
            .filter(|b| !b.is_empty())
            .ok_or_else(|| KeyError::Unavailable("KMS returned no ciphertext".into()))?;
        Ok(DataKey {
            plaintext: data_key_from(plaintext)?,
            wrapped,
            key_id: out.key_id.take().unwrap_or_else(|| key_id.to_owned()),
        })
    }

    async fn decrypt_data_key(
        &self,
        wrapped: &[u8],
        key_id: &str,
        context: &EncryptionContext,
    ) -> Result<Zeroizing<[u8; 32]>, KeyError> {
        let mut out = self
            .client
            .decrypt()
            .key_id(key_id)
            .ciphertext_blob(Blob::new(wrapped))
            .set_encryption_context(Some(context_map(context)))
            .send()
            .await
            .map_err(classify)?;
        let plaintext = out
            .plaintext
            .take()
            .map(|b| Zeroizing::new(b.into_inner()))
            .ok_or_else(|| KeyError::Unavailable("KMS returned no plaintext".into()))?;
        data_key_from(plaintext)
    }
}

/// Sorts a KMS failure into refusal, unusable key or unavailability, by error code.
fn classify<E, R>(err: SdkError<E, R>) -> KeyError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    let code = err
        .as_service_error()
        .and_then(|e| e.code())
        .map(str::to_owned);
    let detail = format!("{}", DisplayErrorContext(&err));
    match code.as_deref() {
        Some("InvalidCiphertextException" | "IncorrectKeyException") => KeyError::Refused(detail),
        Some(
            "NotFoundException"
            | "DisabledException"
            | "KMSInvalidStateException"
            | "InvalidKeyUsageException"
            | "AccessDeniedException"
            | "UnrecognizedClientException"
            | "InvalidArnException"
            | "ValidationException",
        ) => KeyError::KeyUnusable(detail),
        _ => KeyError::Unavailable(detail),
    }
}

#[cfg(test)]
mod tests;
