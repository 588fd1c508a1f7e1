//! Envelope encryption at rest (docs/envelope-format.md is the format, with test vectors).
//!
//! Takes object bodies on their way to and from the store, a [`KeyService`] (AWS KMS or a
//! local key file) and where each object lives; gives sealed bodies plus the `gatehouse-*`
//! metadata to store beside them, and opened bodies that release each 64 KiB segment only
//! after it authenticates. A Range read maps to whole segments and is one store read.
//! Fails with [`KeyError`] when the key service refuses a data key or cannot be reached
//! (fail closed: 503), and with [`EnvelopeError`] when an object is not an envelope, is
//! malformed, or does not authenticate; mid-stream failures end the body with an error item.
//!
//! # Layout
//! - [`format`](mod@format): header, sizes, nonces; [`context`]: encryption context;
//!   [`metadata`]: the `gatehouse-*` metadata fields; [`derive`](mod@derive): HKDF key schedule and
//!   key commitment
//! - [`keys`]: the [`KeyService`] trait; [`local`] and [`kms`] implement it; [`cache`]: the
//!   data-key cache in front of one
//! - [`seal`] / [`open`]: chunk-in, chunk-out segment transforms over [`buffer`]s that are
//!   reused once the body writer drops them; [`range`]: Range mapping;
//!   [`stream`]: both over store streams; [`envelope`]: the two calls the data path makes
//! - [`rewrap`]: moves a share's data keys to another key-encryption key, bodies untouched
//!   (`gatehouse keys rewrap`)

pub mod buffer;
pub mod cache;
pub mod context;
pub mod derive;
pub mod envelope;
pub mod format;
pub mod keys;
pub mod kms;
pub mod local;
pub mod metadata;
pub mod open;
pub mod range;
pub mod rewrap;
pub mod seal;
pub mod stream;

#[cfg(test)]
mod tests;

pub use cache::{CacheStats, DataKeyCache, PlainKey};
pub use context::EncryptionContext;
pub use derive::{ContentKey, ObjectLocation};
pub use envelope::{SealedObject, open_object, seal_for_put, seal_object};
pub use format::{ObjectId, ciphertext_size, plaintext_size};
pub use keys::{DataKey, KeyError, KeyService, LocalKey, key_service};
pub use kms::KmsKeyService;
pub use local::LocalKeyService;
pub use metadata::EnvelopeMetadata;
pub use open::Opener;
pub use range::{OpenPlan, ciphertext_range, ciphertext_request};
pub use seal::Sealer;
pub use stream::{open_stream, seal_stream};

/// Why an object could not be sealed or opened (the key service aside).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    /// The object has no envelope metadata: stored in plaintext.
    #[error("object is not envelope-encrypted")]
    NotEncrypted,
    #[error("envelope metadata invalid: {0}")]
    Metadata(&'static str),
    #[error("envelope metadata takes {size} bytes, more than {limit}")]
    MetadataTooLarge { size: usize, limit: usize },
    #[error("envelope header invalid: {0}")]
    Header(&'static str),
    /// Wrong data key, or the object was moved to another bucket or key.
    #[error("key commitment does not match")]
    Commitment,
    #[error("segment {index} does not authenticate")]
    Segment { index: u64 },
    #[error("ciphertext ends early")]
    Truncated,
    #[error("data after the last segment")]
    TrailingData,
    #[error("{0} bytes is not a valid envelope ciphertext size")]
    CiphertextSize(u64),
    #[error("range not satisfiable for {plaintext_size} plaintext bytes")]
    RangeNotSatisfiable { plaintext_size: u64 },
    #[error("the served ciphertext range does not cover the segments needed")]
    RangeNotServed,
    #[error("random number generator failed")]
    Random,
    #[error("crypto failure: {0}")]
    Crypto(&'static str),
    #[error("misuse: {0}")]
    Misuse(&'static str),
}

impl EnvelopeError {
    /// True when the stored object (body or metadata) is at fault: tampered, truncated,
    /// moved, or not written by this gateway.
    pub fn is_integrity_failure(&self) -> bool {
        matches!(
            self,
            EnvelopeError::Metadata(_)
                | EnvelopeError::Header(_)
                | EnvelopeError::Commitment
                | EnvelopeError::Segment { .. }
                | EnvelopeError::Truncated
                | EnvelopeError::TrailingData
                | EnvelopeError::CiphertextSize(_)
        )
    }
}

/// Either side of a failed seal or open before the body streams.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    Envelope(#[from] EnvelopeError),
}
