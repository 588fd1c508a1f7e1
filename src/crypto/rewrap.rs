//! Re-wrapping the data keys of an envelope share under another key-encryption key (KEK).
//!
//! Takes one bucket of a store, the share's internal prefix and a [`Rewrapper`] (the local key
//! file or KMS, with the target key); gives an [`Outcome`] per object and a [`Report`] of the
//! run. Bodies are never read or written: each object's wrapped data key is unwrapped under the
//! object's encryption context and wrapped again under the target KEK with the same context
//! (the context binds share, bucket, object-key hash and object id, not the KEK, so it does not
//! change), and only the `gatehouse-key-id` and `gatehouse-wrapped-key` metadata fields are
//! replaced, through [`ObjectStore::replace_metadata`] conditional on the ETag read with them:
//! an object overwritten meanwhile is never clobbered. The data key, and with it the key
//! commitment and every byte of the body, stay the same.
//!
//! Objects already under the target are skipped, so a second run resumes where a failed one
//! stopped; plaintext objects (a share with `accept_plaintext`) are reported and left alone.
//! A failing object ([`RewrapError`]) is recorded and the run goes on; a failing listing ends
//! the run with [`StoreError`].

use futures_util::StreamExt;

use super::EnvelopeError;
use super::keys::KeyError;
use super::kms::KmsKeyService;
use super::local::LocalKeyService;
use super::metadata::EnvelopeMetadata;
use crate::store::{ListRequest, MetadataReplaced, ObjectStore, STAGING_PREFIX, StoreError};

/// Objects worked on at once (each is a few store and key-service round trips).
const CONCURRENCY: usize = 16;
const PAGE: usize = 1000;

/// The key service and the KEK data keys move to.
pub enum Rewrapper {
    /// The local key file; `to` is one of its key ids.
    Local { keys: LocalKeyService, to: String },
    /// AWS KMS; `to` is the target key's ARN, as objects record it.
    Kms { keys: KmsKeyService, to: String },
}

impl Rewrapper {
    /// To the local key `to`, or the newest key of the file.
    pub fn local(keys: LocalKeyService, to: Option<&str>) -> Result<Rewrapper, KeyError> {
        let ids = keys.key_ids();
        let to = match to {
            Some(want) if ids.iter().any(|id| id == want) => want.to_owned(),
            Some(want) => {
                return Err(KeyError::KeyUnusable(format!(
                    "no local key {want:?} (the file holds {})",
                    ids.join(", ")
                )));
            }
            None => ids
                .last()
                .cloned()
                .ok_or_else(|| KeyError::KeyUnusable("the key file holds no key".into()))?,
        };
        Ok(Rewrapper::Local { keys, to })
    }

    /// To the KMS key `to` (key id, ARN or alias), resolved to its ARN.
    pub async fn kms(keys: KmsKeyService, to: &str) -> Result<Rewrapper, KeyError> {
        let to = keys.key_arn(to).await?;
        Ok(Rewrapper::Kms { keys, to })
    }

    /// The target key as objects record it (local key id, or KMS key ARN).
    pub fn target(&self) -> &str {
        match self {
            Rewrapper::Local { to, .. } | Rewrapper::Kms { to, .. } => to,
        }
    }

    async fn rewrap(
        &self,
        meta: &EnvelopeMetadata,
        bucket: &str,
        key: &str,
    ) -> Result<(Vec<u8>, String), KeyError> {
        let context = meta.context(bucket, key);
        match self {
            Rewrapper::Local { keys, to } => {
                keys.rewrap(&meta.wrapped_key, &meta.key_id, &context, Some(to))
            }
            Rewrapper::Kms { keys, to } => {
                keys.rewrap(&meta.wrapped_key, &meta.key_id, &context, to)
                    .await
            }
        }
    }
}

/// What happened to one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Its data key is now wrapped under the target; `from` was the KEK before.
    Rewrapped { from: String },
    /// Dry run: it would be re-wrapped from `from`.
    WouldRewrap { from: String },
    /// Already under the target: nothing to do.
    AlreadyUnderTarget,
    /// Stored in plaintext (the share accepts plaintext objects): not touched.
    Plaintext,
    /// Deleted after it was listed: nothing to do.
    Gone,
}

/// Why one object could not be re-wrapped. Nothing was changed on it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RewrapError {
    /// Its envelope metadata is malformed (not written by this gateway, or tampered with).
    #[error("{0}")]
    Metadata(EnvelopeError),
    /// The key service refused its data key (tampered or moved object) or could not be used.
    #[error("{0}")]
    Key(KeyError),
    /// Overwritten or deleted between reading its metadata and replacing it.
    #[error("the object changed during the rewrap; run again")]
    Changed,
    #[error("store: {0}")]
    Store(String),
}

/// The result of a run over a share.
#[derive(Debug, Default)]
pub struct Report {
    pub rewrapped: u64,
    pub would_rewrap: u64,
    pub already_under_target: u64,
    pub gone: u64,
    /// Internal keys of plaintext objects, untouched.
    pub plaintext: Vec<String>,
    /// Internal keys and why each failed.
    pub failures: Vec<(String, RewrapError)>,
}

impl Report {
    fn add(&mut self, key: &str, result: &Result<Outcome, RewrapError>) {
        match result {
            Ok(Outcome::Rewrapped { .. }) => self.rewrapped += 1,
            Ok(Outcome::WouldRewrap { .. }) => self.would_rewrap += 1,
            Ok(Outcome::AlreadyUnderTarget) => self.already_under_target += 1,
            Ok(Outcome::Gone) => self.gone += 1,
            Ok(Outcome::Plaintext) => self.plaintext.push(key.to_owned()),
            Err(e) => self.failures.push((key.to_owned(), e.clone())),
        }
    }
}

/// Re-wraps the data key of the object at internal key `key` of `bucket`; with `dry_run`,
/// only says what it would do (no key-service call, no write).
pub async fn rewrap_object(
    store: &dyn ObjectStore,
    bucket: &str,
    key: &str,
    rewrapper: &Rewrapper,
    dry_run: bool,
) -> Result<Outcome, RewrapError> {
    let object = match store.head(key).await {
        Ok(o) => o,
        Err(StoreError::NotFound) => return Ok(Outcome::Gone),
        Err(e) => return Err(RewrapError::Store(e.to_string())),
    };
    let meta = match EnvelopeMetadata::from_map(&object.metadata) {
        Ok(m) => m,
        Err(EnvelopeError::NotEncrypted) => return Ok(Outcome::Plaintext),
        Err(e) => return Err(RewrapError::Metadata(e)),
    };
    if meta.key_id == rewrapper.target() {
        return Ok(Outcome::AlreadyUnderTarget);
    }
    let from = meta.key_id.clone();
    if dry_run {
        return Ok(Outcome::WouldRewrap { from });
    }
    let etag = object
        .etag
        .as_deref()
        .ok_or_else(|| RewrapError::Store("the store gave no ETag".into()))?;
    let (wrapped_key, key_id) = rewrapper
        .rewrap(&meta, bucket, key)
        .await
        .map_err(RewrapError::Key)?;
    let fields = EnvelopeMetadata {
        wrapped_key,
        key_id,
        ..meta
    }
    .to_map()
    .map_err(RewrapError::Metadata)?;
    let mut metadata = object.metadata;
    metadata.extend(fields);
    match store.replace_metadata(key, metadata, etag).await {
        Ok(MetadataReplaced::Done(_)) => Ok(Outcome::Rewrapped { from }),
        Ok(MetadataReplaced::Changed) => Err(RewrapError::Changed),
        Err(e) => Err(RewrapError::Store(e.to_string())),
    }
}

/// Re-wraps every object under `prefix` of `bucket` (skipping the S3 staging area), calling
/// `on_object` as each finishes.
pub async fn rewrap_all(
    store: &dyn ObjectStore,
    bucket: &str,
    prefix: &str,
    rewrapper: &Rewrapper,
    dry_run: bool,
    mut on_object: impl FnMut(&str, &Result<Outcome, RewrapError>),
) -> Result<Report, StoreError> {
    let mut report = Report::default();
    let mut start_after = None;
    loop {
        let page = store
            .list(&ListRequest {
                prefix: prefix.to_owned(),
                delimiter: None,
                start_after: start_after.clone(),
                max_keys: PAGE,
            })
            .await?;
        let keys = page
            .objects
            .iter()
            .map(|o| o.key.as_str())
            .filter(|k| !k.starts_with(STAGING_PREFIX));
        let mut done = futures_util::stream::iter(keys)
            .map(|key| async move {
                let result = rewrap_object(store, bucket, key, rewrapper, dry_run).await;
                (key, result)
            })
            .buffer_unordered(CONCURRENCY);
        while let Some((key, result)) = done.next().await {
            report.add(key, &result);
            on_object(key, &result);
        }
        drop(done);
        match page.objects.last() {
            Some(last) if page.is_truncated => start_after = Some(last.key.clone()),
            _ => return Ok(report),
        }
    }
}

#[cfg(test)]
mod tests;
