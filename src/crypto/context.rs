//! What an object's data key is bound to: the encryption context.
//!
//! Takes a share name, a bucket, an internal object key and an object id; gives the
//! [`EncryptionContext`] sent to KMS (as string pairs) and used by the local key service and
//! the data-key cache (as one canonical byte string). The object key itself never appears,
//! only its SHA-256, because KMS contexts are written to CloudTrail. Cannot fail.

use sha2::{Digest, Sha256};

use super::format::{FORMAT_VERSION, ObjectId, hex};

/// Context names, in the byte order the canonical form sorts them.
pub const CONTEXT_BUCKET: &str = "gatehouse:bucket";
pub const CONTEXT_KEY_SHA256: &str = "gatehouse:key-sha256";
pub const CONTEXT_OBJECT_ID: &str = "gatehouse:object-id";
pub const CONTEXT_SHARE: &str = "gatehouse:share";
pub const CONTEXT_VERSION: &str = "gatehouse:version";

/// The encryption context of one object's data key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EncryptionContext {
    version: u8,
    share: String,
    bucket: String,
    key_sha256: [u8; 32],
    object_id: ObjectId,
}

impl EncryptionContext {
    /// `internal_key` is the key in the store (share prefix applied), not the partner's name.
    pub fn new(
        share: &str,
        bucket: &str,
        internal_key: &str,
        object_id: ObjectId,
    ) -> EncryptionContext {
        EncryptionContext {
            version: FORMAT_VERSION,
            share: share.to_owned(),
            bucket: bucket.to_owned(),
            key_sha256: Sha256::digest(internal_key.as_bytes()).into(),
            object_id,
        }
    }

    pub fn share(&self) -> &str {
        &self.share
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    pub fn object_id(&self) -> ObjectId {
        self.object_id
    }

    /// SHA-256 of the internal object key.
    pub fn key_sha256(&self) -> &[u8; 32] {
        &self.key_sha256
    }

    /// The pairs sorted by name (byte order), as KMS receives them.
    pub fn pairs(&self) -> [(&'static str, String); 5] {
        [
            (CONTEXT_BUCKET, self.bucket.clone()),
            (CONTEXT_KEY_SHA256, hex(&self.key_sha256)),
            (CONTEXT_OBJECT_ID, self.object_id.to_hex()),
            (CONTEXT_SHARE, self.share.clone()),
            (CONTEXT_VERSION, self.version.to_string()),
        ]
    }

    /// The canonical serialisation: for each pair in name order, the name and the value each
    /// as a big-endian u32 length followed by the UTF-8 bytes. Injective, so two contexts
    /// share a canonical form only when they are equal.
    pub fn canonical(&self) -> Vec<u8> {
        let pairs = self.pairs();
        let len: usize = pairs.iter().map(|(n, v)| 8 + n.len() + v.len()).sum();
        let mut out = Vec::with_capacity(len);
        for (name, value) in &pairs {
            for part in [name.as_bytes(), value.as_bytes()] {
                out.extend_from_slice(&(part.len() as u32).to_be_bytes());
                out.extend_from_slice(part);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_are_sorted_and_hash_the_key() {
        let ctx = EncryptionContext::new("demo", "bucket-1", "data/a.csv", ObjectId([1; 16]));
        let pairs = ctx.pairs();
        assert!(pairs.windows(2).all(|w| w[0].0 < w[1].0));
        assert_eq!(
            pairs[1].1,
            hex(&Sha256::digest(b"data/a.csv")),
            "the key appears only hashed"
        );
        assert!(!pairs.iter().any(|(_, v)| v.contains("a.csv")));
        assert_eq!(pairs[4].1, "1");
    }

    #[test]
    fn canonical_form_separates_every_field() {
        let id = ObjectId([2; 16]);
        let base = EncryptionContext::new("s", "b", "k", id).canonical();
        // Moving a character between fields changes the canonical bytes.
        assert_ne!(base, EncryptionContext::new("sb", "", "k", id).canonical());
        assert_ne!(base, EncryptionContext::new("s", "b", "k2", id).canonical());
        assert_ne!(
            base,
            EncryptionContext::new("s", "b", "k", ObjectId([3; 16])).canonical()
        );
        assert!(base.starts_with(&[0, 0, 0, 16]));
        assert_eq!(&base[4..20], CONTEXT_BUCKET.as_bytes());
    }
}
