//! The per-object key schedule: from a data key to the key that seals the segments.
//!
//! Takes a 32-byte data key, an object id and where the object lives (bucket and internal
//! key); gives a [`ContentKey`] (AES-256-GCM) and the 32-byte key commitment, both from
//! HKDF-SHA256 with the object id as salt and the header fields, the bucket and the key's
//! SHA-256 in the info. Opening checks the stored commitment in constant time before any
//! segment is touched, and fails with [`EnvelopeError::Commitment`] when the data key, the
//! object id, the bucket or the key differ from what the object was sealed with.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, UnboundKey};
use aws_lc_rs::hkdf::{HKDF_SHA256, KeyType, Salt};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::EnvelopeError;
use super::format::{COMMITMENT_LEN, Header, ObjectId, TAG_LEN, segment_nonce};

/// HKDF info labels; each ends in a zero byte so no label is a prefix of another's input.
pub const LABEL_CONTENT_KEY: &[u8] = b"gatehouse envelope v1 content key\0";
pub const LABEL_COMMITMENT: &[u8] = b"gatehouse envelope v1 key commitment\0";

/// Where an object is stored; the key schedule binds both, so a copy elsewhere fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectLocation<'a> {
    pub bucket: &'a str,
    /// The internal key (share prefix applied), not the partner-visible name.
    pub key: &'a str,
}

struct Len32;

impl KeyType for Len32 {
    fn len(&self) -> usize {
        32
    }
}

/// HKDF-SHA256(salt = object id, ikm = data key, info = label ‖ header prefix ‖ u32 bucket
/// length ‖ bucket ‖ SHA-256(key)) for the content key and the commitment.
pub(crate) fn key_schedule(
    data_key: &[u8; 32],
    object_id: &ObjectId,
    at: ObjectLocation<'_>,
) -> Result<(Zeroizing<[u8; 32]>, [u8; COMMITMENT_LEN]), EnvelopeError> {
    let prk = Salt::new(HKDF_SHA256, &object_id.0).extract(data_key);
    let prefix = Header::bound_prefix(object_id);
    let bucket_len = (at.bucket.len() as u32).to_be_bytes();
    let key_hash: [u8; 32] = Sha256::digest(at.key.as_bytes()).into();
    let expand = |label: &[u8], out: &mut [u8; 32]| {
        let info: [&[u8]; 5] = [label, &prefix, &bucket_len, at.bucket.as_bytes(), &key_hash];
        prk.expand(&info, Len32)
            .and_then(|okm| okm.fill(out))
            .map_err(|_| EnvelopeError::Crypto("key derivation failed"))
    };
    let mut content = Zeroizing::new([0u8; 32]);
    expand(LABEL_CONTENT_KEY, &mut content)?;
    let mut commitment = [0u8; COMMITMENT_LEN];
    expand(LABEL_COMMITMENT, &mut commitment)?;
    Ok((content, commitment))
}

/// The AES-256-GCM key of one object, with the header it belongs to.
pub struct ContentKey {
    aead: LessSafeKey,
    header: Header,
}

impl std::fmt::Debug for ContentKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContentKey")
            .field("object_id", &self.header.object_id)
            .finish_non_exhaustive()
    }
}

impl ContentKey {
    /// The key and header for a new object.
    pub fn for_new_object(
        data_key: &[u8; 32],
        object_id: ObjectId,
        at: ObjectLocation<'_>,
    ) -> Result<ContentKey, EnvelopeError> {
        let (content, commitment) = key_schedule(data_key, &object_id, at)?;
        ContentKey::new(
            &content,
            Header {
                object_id,
                commitment,
            },
        )
    }

    /// The key of an existing object, after checking its commitment in constant time.
    pub fn for_header(
        data_key: &[u8; 32],
        header: &Header,
        at: ObjectLocation<'_>,
    ) -> Result<ContentKey, EnvelopeError> {
        let (content, commitment) = key_schedule(data_key, &header.object_id, at)?;
        aws_lc_rs::constant_time::verify_slices_are_equal(&commitment, &header.commitment)
            .map_err(|_| EnvelopeError::Commitment)?;
        ContentKey::new(&content, *header)
    }

    fn new(content: &[u8; 32], header: Header) -> Result<ContentKey, EnvelopeError> {
        let key = UnboundKey::new(&AES_256_GCM, content)
            .map_err(|_| EnvelopeError::Crypto("AES-256-GCM key setup failed"))?;
        Ok(ContentKey {
            aead: LessSafeKey::new(key),
            header,
        })
    }

    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Encrypts `in_out` in place and returns the tag.
    pub(crate) fn seal_segment(
        &self,
        index: u64,
        last: bool,
        in_out: &mut [u8],
    ) -> Result<[u8; TAG_LEN], EnvelopeError> {
        let tag = self
            .aead
            .seal_in_place_separate_tag(segment_nonce(index, last), Aad::empty(), in_out)
            .map_err(|_| EnvelopeError::Crypto("segment seal failed"))?;
        let mut out = [0u8; TAG_LEN];
        out.copy_from_slice(tag.as_ref());
        Ok(out)
    }

    /// Encrypts `plain` into `ct` (same length) and writes the tag into `tag`.
    pub(crate) fn seal_segment_into(
        &self,
        index: u64,
        last: bool,
        plain: &[u8],
        ct: &mut [u8],
        tag: &mut [u8],
    ) -> Result<(), EnvelopeError> {
        self.aead
            .seal_out_of_place_scatter(
                segment_nonce(index, last),
                Aad::empty(),
                plain,
                ct,
                &[],
                tag,
            )
            .map_err(|_| EnvelopeError::Crypto("segment seal failed"))
    }

    /// Authenticates `ct` and `tag` and decrypts into `plain` (same length as `ct`). On
    /// failure `plain` must not be used.
    pub(crate) fn open_segment_into(
        &self,
        index: u64,
        last: bool,
        ct: &[u8],
        tag: &[u8],
        plain: &mut [u8],
    ) -> Result<(), EnvelopeError> {
        self.aead
            .open_separate_gather(segment_nonce(index, last), Aad::empty(), ct, tag, plain)
            .map_err(|_| EnvelopeError::Segment { index })
    }

    /// Authenticates and decrypts `in_out` (ciphertext followed by tag) in place; returns the
    /// plaintext length. On failure the buffer must not be used.
    pub(crate) fn open_segment_in_place(
        &self,
        index: u64,
        last: bool,
        in_out: &mut [u8],
    ) -> Result<usize, EnvelopeError> {
        self.aead
            .open_in_place(segment_nonce(index, last), Aad::empty(), in_out)
            .map(|plain| plain.len())
            .map_err(|_| EnvelopeError::Segment { index })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AT: ObjectLocation<'static> = ObjectLocation {
        bucket: "b",
        key: "k",
    };

    #[test]
    fn commitment_binds_key_id_bucket_and_object_key() {
        let dk = [1u8; 32];
        let id = ObjectId([2; 16]);
        let sealed = ContentKey::for_new_object(&dk, id, AT).expect("derive");
        let header = *sealed.header();
        assert!(ContentKey::for_header(&dk, &header, AT).is_ok());
        let other = |dk: &[u8; 32], h: &Header, at| ContentKey::for_header(dk, h, at).err();
        let moved = ObjectLocation { key: "k2", ..AT };
        let rebucketed = ObjectLocation { bucket: "b2", ..AT };
        // "b" + "k" must not collide with "bk" + "": the bucket length is bound.
        let shifted = ObjectLocation {
            bucket: "bk",
            key: "",
        };
        for at in [moved, rebucketed, shifted] {
            assert_eq!(other(&dk, &header, at), Some(EnvelopeError::Commitment));
        }
        assert_eq!(
            other(&[9; 32], &header, AT),
            Some(EnvelopeError::Commitment)
        );
        let mut forged = header;
        forged.object_id.0[0] ^= 1;
        assert_eq!(other(&dk, &forged, AT), Some(EnvelopeError::Commitment));
    }

    #[test]
    fn content_key_and_commitment_differ() {
        let (k, c) = key_schedule(&[3; 32], &ObjectId([4; 16]), AT).expect("derive");
        assert_ne!(*k, c);
    }
}
