//! The envelope fields kept in object user metadata (`x-amz-meta-gatehouse-*`).
//!
//! Takes the store's user-metadata map; gives [`EnvelopeMetadata`]: format version, key id,
//! wrapped data key, object id, key commitment and the share the object was written through.
//! With these a reader can ask the key service for the data key and check the commitment
//! before reading any body byte, and a Range read needs no separate header fetch. Fails with
//! [`EnvelopeError::NotEncrypted`] when the object carries no envelope at all (a plaintext
//! object), [`EnvelopeError::Metadata`] when a field is missing or malformed, and
//! [`EnvelopeError::MetadataTooLarge`] when the fields would not leave room in S3's 2 KB.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::EnvelopeError;
use super::context::EncryptionContext;
use super::format::{COMMITMENT_LEN, FORMAT_VERSION, Header, ObjectId, hex, unhex};

pub const META_VERSION: &str = "gatehouse-envelope";
pub const META_KEY_ID: &str = "gatehouse-key-id";
pub const META_WRAPPED_KEY: &str = "gatehouse-wrapped-key";
pub const META_OBJECT_ID: &str = "gatehouse-object-id";
pub const META_COMMITMENT: &str = "gatehouse-commitment";
pub const META_SHARE: &str = "gatehouse-share";
/// Names starting with this are the gateway's own: partners may neither set nor see them.
pub const RESERVED_PREFIX: &str = "gatehouse-";
/// Most bytes (names plus values, as S3 counts them) the envelope fields may take of the 2048
/// S3 allows; partner metadata gets the rest.
pub const METADATA_BUDGET: usize = 1024;

const MAX_WRAPPED_KEY: usize = 512;
const MAX_KEY_ID: usize = 256;

/// True for metadata names the gateway reserves (compare lower-case, as S3 stores them).
pub fn is_reserved(name: &str) -> bool {
    name.get(..RESERVED_PREFIX.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(RESERVED_PREFIX))
}

/// The envelope fields of one object.
#[derive(Clone, PartialEq, Eq)]
pub struct EnvelopeMetadata {
    /// The key service's id for the key-encryption key (KMS key ARN, or a local key id).
    pub key_id: String,
    /// The data key as wrapped by the key service.
    pub wrapped_key: Vec<u8>,
    pub object_id: ObjectId,
    pub commitment: [u8; COMMITMENT_LEN],
    /// The share name at write time; part of the encryption context, kept here so renaming a
    /// share keeps its objects readable.
    pub share: String,
}

impl std::fmt::Debug for EnvelopeMetadata {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnvelopeMetadata")
            .field("key_id", &self.key_id)
            .field("wrapped_key_len", &self.wrapped_key.len())
            .field("object_id", &self.object_id)
            .field("share", &self.share)
            .finish_non_exhaustive()
    }
}

impl EnvelopeMetadata {
    /// The encryption context for this object at `bucket` / `internal_key`, with the share
    /// recorded at write time.
    pub fn context(&self, bucket: &str, internal_key: &str) -> EncryptionContext {
        EncryptionContext::new(&self.share, bucket, internal_key, self.object_id)
    }

    /// The header the object body must start with.
    pub fn header(&self) -> Header {
        Header {
            object_id: self.object_id,
            commitment: self.commitment,
        }
    }

    /// The fields as user metadata, or an error when they exceed [`METADATA_BUDGET`].
    pub fn to_map(&self) -> Result<BTreeMap<String, String>, EnvelopeError> {
        check_text(&self.key_id, MAX_KEY_ID, "key id malformed")?;
        check_text(&self.share, MAX_KEY_ID, "share malformed")?;
        let map = BTreeMap::from([
            (META_VERSION.to_owned(), FORMAT_VERSION.to_string()),
            (META_KEY_ID.to_owned(), self.key_id.clone()),
            (
                META_WRAPPED_KEY.to_owned(),
                STANDARD.encode(&self.wrapped_key),
            ),
            (META_OBJECT_ID.to_owned(), self.object_id.to_hex()),
            (META_COMMITMENT.to_owned(), hex(&self.commitment)),
            (META_SHARE.to_owned(), self.share.clone()),
        ]);
        let size = metadata_size(&map);
        if size > METADATA_BUDGET {
            return Err(EnvelopeError::MetadataTooLarge {
                size,
                limit: METADATA_BUDGET,
            });
        }
        Ok(map)
    }

    /// Reads the fields from an object's user metadata (names lower-case, as stores give them).
    pub fn from_map(map: &BTreeMap<String, String>) -> Result<EnvelopeMetadata, EnvelopeError> {
        let Some(version) = map.get(META_VERSION) else {
            return Err(EnvelopeError::NotEncrypted);
        };
        if version != &FORMAT_VERSION.to_string() {
            return Err(EnvelopeError::Metadata("unsupported envelope version"));
        }
        let field = |name, what| map.get(name).ok_or(EnvelopeError::Metadata(what));
        let key_id = field(META_KEY_ID, "key id missing")?;
        check_text(key_id, MAX_KEY_ID, "key id malformed")?;
        let share = field(META_SHARE, "share missing")?;
        check_text(share, MAX_KEY_ID, "share malformed")?;
        let wrapped_key = STANDARD
            .decode(field(META_WRAPPED_KEY, "wrapped key missing")?)
            .ok()
            .filter(|k| !k.is_empty() && k.len() <= MAX_WRAPPED_KEY)
            .ok_or(EnvelopeError::Metadata("wrapped key malformed"))?;
        let object_id = ObjectId::from_hex(field(META_OBJECT_ID, "object id missing")?)
            .ok_or(EnvelopeError::Metadata("object id malformed"))?;
        let commitment = unhex(field(META_COMMITMENT, "commitment missing")?)
            .and_then(|c| <[u8; COMMITMENT_LEN]>::try_from(c).ok())
            .ok_or(EnvelopeError::Metadata("commitment malformed"))?;
        Ok(EnvelopeMetadata {
            key_id: key_id.clone(),
            wrapped_key,
            object_id,
            commitment,
            share: share.clone(),
        })
    }
}

/// Bytes of user metadata as S3 counts them: names plus values.
pub fn metadata_size(map: &BTreeMap<String, String>) -> usize {
    map.iter().map(|(k, v)| k.len() + v.len()).sum()
}

/// Visible ASCII only: the values travel as HTTP header values.
fn check_text(s: &str, max: usize, reason: &'static str) -> Result<(), EnvelopeError> {
    let ok = !s.is_empty() && s.len() <= max && s.bytes().all(|b| b.is_ascii_graphic());
    ok.then_some(()).ok_or(EnvelopeError::Metadata(reason))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> EnvelopeMetadata {
        EnvelopeMetadata {
            key_id: "arn:aws:kms:us-east-1:123456789012:key/0b5e4c7a-1f3d-4a8e-9c2b-6d7e8f9a0b1c"
                .into(),
            // A KMS ciphertext blob for a 32-byte data key is 184 bytes.
            wrapped_key: vec![0xab; 184],
            object_id: ObjectId([5; 16]),
            commitment: [6; 32],
            share: "demo".into(),
        }
    }

    #[test]
    fn round_trips_within_the_budget() {
        let m = sample();
        let map = m.to_map().expect("fits");
        assert!(map.keys().all(|k| is_reserved(k)));
        assert!(metadata_size(&map) <= METADATA_BUDGET);
        assert_eq!(EnvelopeMetadata::from_map(&map), Ok(m));
    }

    #[test]
    fn plaintext_objects_and_broken_fields_are_told_apart() {
        assert_eq!(
            EnvelopeMetadata::from_map(&BTreeMap::new()),
            Err(EnvelopeError::NotEncrypted)
        );
        let map = sample().to_map().expect("fits");
        for (name, value, reason) in [
            (META_VERSION, "2", "unsupported envelope version"),
            (META_WRAPPED_KEY, "***", "wrapped key malformed"),
            (META_OBJECT_ID, "00", "object id malformed"),
            (META_COMMITMENT, &"A".repeat(64), "commitment malformed"),
            (META_KEY_ID, "", "key id malformed"),
            (META_SHARE, "a b", "share malformed"),
        ] {
            let mut m = map.clone();
            m.insert(name.into(), value.into());
            assert_eq!(
                EnvelopeMetadata::from_map(&m),
                Err(EnvelopeError::Metadata(reason))
            );
        }
        let mut m = map;
        m.remove(META_COMMITMENT);
        assert_eq!(
            EnvelopeMetadata::from_map(&m),
            Err(EnvelopeError::Metadata("commitment missing"))
        );
    }

    #[test]
    fn oversized_fields_are_refused() {
        let mut m = sample();
        m.wrapped_key = vec![1; 700];
        assert!(matches!(
            m.to_map(),
            Err(EnvelopeError::MetadataTooLarge { .. })
        ));
        assert!(is_reserved("Gatehouse-Key-Id"));
        assert!(!is_reserved("gatehouse"));
    }
}
