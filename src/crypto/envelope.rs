//! The two calls the data path makes: seal a PUT body, open a GET body.
//!
//! Takes the data-key cache, where the object lives, and the body stream (plus, to open, the
//! object's user metadata and an [`OpenPlan`] made from the store's answer); gives the
//! transformed stream (and, to seal, the `gatehouse-*` metadata to store with it). Fails
//! before any body byte with [`CryptoError::Key`] (the key service refused or is unreachable)
//! or [`CryptoError::Envelope`] (not an envelope object, malformed metadata, failed key
//! commitment); later failures arrive as an error item in the stream.

use std::collections::BTreeMap;

use super::CryptoError;
use super::cache::DataKeyCache;
use super::context::EncryptionContext;
use super::derive::{ContentKey, ObjectLocation};
use super::format::ObjectId;
use super::metadata::EnvelopeMetadata;
use super::open::Opener;
use super::range::OpenPlan;
use super::seal::Sealer;
use super::stream::{open_stream, seal_stream};
use crate::store::ByteStream;

/// A body ready for `ObjectStore::put`, with the metadata to store beside it.
pub struct SealedObject {
    pub body: ByteStream,
    /// The `gatehouse-*` fields; merge into the put's user metadata.
    pub metadata: BTreeMap<String, String>,
}

/// Seals `plaintext` for `at` with a fresh data key under `key_id` (or the service default).
/// `share` is recorded in the encryption context.
pub async fn seal_object(
    keys: &DataKeyCache,
    key_id: Option<&str>,
    share: &str,
    at: ObjectLocation<'_>,
    plaintext: ByteStream,
) -> Result<SealedObject, CryptoError> {
    let object_id = ObjectId::random()?;
    let context = EncryptionContext::new(share, at.bucket, at.key, object_id);
    let data_key = keys.generate(key_id, &context).await?;
    let content = ContentKey::for_new_object(&data_key.plaintext, object_id, at)?;
    let metadata = EnvelopeMetadata {
        key_id: data_key.key_id,
        wrapped_key: data_key.wrapped,
        object_id,
        commitment: content.header().commitment,
        share: share.to_owned(),
    }
    .to_map()?;
    Ok(SealedObject {
        body: seal_stream(Sealer::new(content), plaintext),
        metadata,
    })
}

/// Seals an upload for `ObjectStore::put`: gives the sealed body and `opts` with the envelope
/// metadata merged in and the content length turned into the ciphertext length.
pub async fn seal_for_put(
    keys: &DataKeyCache,
    key_id: Option<&str>,
    share: &str,
    at: ObjectLocation<'_>,
    plaintext: ByteStream,
    mut opts: crate::store::PutOptions,
) -> Result<(ByteStream, crate::store::PutOptions), CryptoError> {
    let sealed = seal_object(keys, key_id, share, at, plaintext).await?;
    opts.metadata.extend(sealed.metadata);
    opts.content_length = opts.content_length.and_then(super::format::ciphertext_size);
    Ok((sealed.body, opts))
}

/// Opens the ciphertext the store served for `at`, following `plan` ([`OpenPlan::whole`] for
/// a full GET, [`OpenPlan::range`] for a ranged one), after unwrapping the data key named in
/// `metadata` and checking the key commitment.
pub async fn open_object(
    keys: &DataKeyCache,
    at: ObjectLocation<'_>,
    metadata: &BTreeMap<String, String>,
    plan: OpenPlan,
    ciphertext: ByteStream,
) -> Result<ByteStream, CryptoError> {
    let meta = EnvelopeMetadata::from_map(metadata)?;
    let context = meta.context(at.bucket, at.key);
    let data_key = keys
        .decrypt(&meta.wrapped_key, &meta.key_id, &context)
        .await?;
    let content = ContentKey::for_header(&data_key, &meta.header(), at)?;
    Ok(open_stream(Opener::new(content, plan), ciphertext))
}
