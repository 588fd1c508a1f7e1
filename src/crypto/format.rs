//! The envelope's byte layout (docs/envelope-format.md is the normative description).
//!
//! Takes sizes, segment indices and header bytes; gives the fixed header, the per-segment
//! nonces, and the arithmetic between plaintext and ciphertext sizes that HEAD, LIST and Range
//! reads use. Fails with [`EnvelopeError`] on a header that is not version 1 of this format or
//! on a size that no envelope ciphertext can have.

use std::fmt;

use aws_lc_rs::aead::{NONCE_LEN, Nonce};

use super::EnvelopeError;

/// First bytes of every envelope object: "GHEV" (GateHouse EnVelope).
pub const MAGIC: [u8; 4] = *b"GHEV";
/// The format version, in the header and in the `gatehouse-envelope` metadata field.
pub const FORMAT_VERSION: u8 = 1;
/// Suite 1: HKDF-SHA256 key schedule with key commitment, AES-256-GCM segments.
pub const SUITE_HKDF_SHA256_AES256GCM: u8 = 1;
/// Plaintext bytes in every segment but the last.
pub const SEGMENT_SIZE: usize = 64 * 1024;
/// AES-GCM tag bytes after every segment.
pub const TAG_LEN: usize = 16;
/// Ciphertext bytes of a full segment.
pub const SEGMENT_CIPHERTEXT_SIZE: usize = SEGMENT_SIZE + TAG_LEN;
pub const OBJECT_ID_LEN: usize = 16;
pub const COMMITMENT_LEN: usize = 32;
/// Header bytes covered by the key derivation: everything before the commitment.
pub const BOUND_HEADER_LEN: usize = 4 + 1 + 1 + 4 + OBJECT_ID_LEN;
pub const HEADER_LEN: usize = BOUND_HEADER_LEN + COMMITMENT_LEN;

const S: u64 = SEGMENT_SIZE as u64;
const CS: u64 = SEGMENT_CIPHERTEXT_SIZE as u64;
const H: u64 = HEADER_LEN as u64;
const T: u64 = TAG_LEN as u64;

/// The random per-object id: HKDF salt, header field and encryption-context entry.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ObjectId(pub [u8; OBJECT_ID_LEN]);

impl ObjectId {
    /// A fresh id from the system CSPRNG.
    pub fn random() -> Result<ObjectId, EnvelopeError> {
        let mut id = [0u8; OBJECT_ID_LEN];
        aws_lc_rs::rand::fill(&mut id).map_err(|_| EnvelopeError::Random)?;
        Ok(ObjectId(id))
    }

    /// Lower-case hex, 32 characters.
    pub fn to_hex(&self) -> String {
        hex(&self.0)
    }

    pub fn from_hex(s: &str) -> Option<ObjectId> {
        let bytes = unhex(s)?;
        Some(ObjectId(bytes.try_into().ok()?))
    }
}

impl fmt::Debug for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ObjectId({})", self.to_hex())
    }
}

impl fmt::Display for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// The variable part of a version 1 header; magic, version, suite and segment size are fixed.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Header {
    pub object_id: ObjectId,
    pub commitment: [u8; COMMITMENT_LEN],
}

impl Header {
    /// Magic, version, suite, segment size and object id: the bytes the key derivation binds.
    pub fn bound_prefix(object_id: &ObjectId) -> [u8; BOUND_HEADER_LEN] {
        let mut out = [0u8; BOUND_HEADER_LEN];
        out[..4].copy_from_slice(&MAGIC);
        out[4] = FORMAT_VERSION;
        out[5] = SUITE_HKDF_SHA256_AES256GCM;
        out[6..10].copy_from_slice(&(SEGMENT_SIZE as u32).to_be_bytes());
        out[10..].copy_from_slice(&object_id.0);
        out
    }

    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[..BOUND_HEADER_LEN].copy_from_slice(&Self::bound_prefix(&self.object_id));
        out[BOUND_HEADER_LEN..].copy_from_slice(&self.commitment);
        out
    }

    /// Parses the first [`HEADER_LEN`] bytes; rejects any other magic, version, suite or
    /// segment size.
    pub fn parse(bytes: &[u8]) -> Result<Header, EnvelopeError> {
        let bytes = bytes
            .get(..HEADER_LEN)
            .ok_or(EnvelopeError::Header("shorter than the header"))?;
        if bytes[..4] != MAGIC {
            return Err(EnvelopeError::Header("bad magic"));
        }
        if bytes[4] != FORMAT_VERSION {
            return Err(EnvelopeError::Header("unsupported version"));
        }
        if bytes[5] != SUITE_HKDF_SHA256_AES256GCM {
            return Err(EnvelopeError::Header("unsupported suite"));
        }
        if bytes[6..10] != (SEGMENT_SIZE as u32).to_be_bytes() {
            return Err(EnvelopeError::Header("unsupported segment size"));
        }
        let mut object_id = [0u8; OBJECT_ID_LEN];
        object_id.copy_from_slice(&bytes[10..BOUND_HEADER_LEN]);
        let mut commitment = [0u8; COMMITMENT_LEN];
        commitment.copy_from_slice(&bytes[BOUND_HEADER_LEN..]);
        Ok(Header {
            object_id: ObjectId(object_id),
            commitment,
        })
    }
}

/// Segments of an object with `plaintext` bytes: at least one (an empty object has one empty
/// segment); every segment but the last is full, the last holds 1..=64 KiB (0 only when empty).
pub fn segment_count(plaintext: u64) -> u64 {
    plaintext.div_ceil(S).max(1)
}

/// Ciphertext size of an object with `plaintext` bytes; `None` only past `u64`.
pub fn ciphertext_size(plaintext: u64) -> Option<u64> {
    segment_count(plaintext)
        .checked_mul(T)?
        .checked_add(plaintext)?
        .checked_add(H)
}

/// Plaintext size of an object with `ciphertext` bytes, or an error when no envelope
/// ciphertext has that size (a truncated or padded object).
pub fn plaintext_size(ciphertext: u64) -> Result<u64, EnvelopeError> {
    let bad = EnvelopeError::CiphertextSize(ciphertext);
    let body = ciphertext.checked_sub(H + T).ok_or(bad.clone())?;
    // body = (n - 1) * CS + (last segment plaintext); the last holds 1..=S bytes, or 0 if n == 1.
    if body == 0 {
        return Ok(0);
    }
    let full = (body - 1) / CS;
    let last = body - full * CS;
    if last == 0 || last > S {
        return Err(bad);
    }
    Ok(full * S + last)
}

/// Ciphertext offset of segment `index`.
pub fn segment_offset(index: u64) -> u64 {
    H + index * CS
}

/// The AES-GCM nonce of segment `index`: three zero bytes, the index as a big-endian u64,
/// then 0x01 for the object's last segment and 0x00 for every other.
pub fn segment_nonce(index: u64, last: bool) -> Nonce {
    let mut n = [0u8; NONCE_LEN];
    n[3..11].copy_from_slice(&index.to_be_bytes());
    n[11] = u8::from(last);
    Nonce::assume_unique_for_key(n)
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    s
}

/// Lower-case hex only, so every value has one spelling.
pub(crate) fn unhex(s: &str) -> Option<Vec<u8>> {
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    if !s.len().is_multiple_of(2) {
        return None;
    }
    s.as_bytes()
        .chunks_exact(2)
        .map(|p| Some(digit(p[0])? << 4 | digit(p[1])?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_round_trip_at_segment_edges() {
        for p in [
            0,
            1,
            S - 1,
            S,
            S + 1,
            2 * S - 1,
            2 * S,
            2 * S + 1,
            5 * S + 7,
            1 << 40,
        ] {
            let c = ciphertext_size(p).expect("fits");
            assert_eq!(plaintext_size(c), Ok(p), "plaintext {p}");
        }
        assert_eq!(ciphertext_size(0), Some(H + T));
        assert_eq!(ciphertext_size(S), Some(H + CS));
        assert_eq!(ciphertext_size(S + 1), Some(H + CS + 1 + T));
        assert_eq!(ciphertext_size(u64::MAX), None);
    }

    #[test]
    fn impossible_ciphertext_sizes_are_refused() {
        // Too short, a segment with less than one byte or more than 64 KiB, an empty last segment.
        for c in [0, H, H + T - 1, H + CS + 1, H + CS + T, H + 2 * CS + T] {
            assert_eq!(plaintext_size(c), Err(EnvelopeError::CiphertextSize(c)));
        }
        // Every size between two valid ones is either valid or refused, never misread.
        for c in H + T..H + 3 * CS + 40 {
            if let Ok(p) = plaintext_size(c) {
                assert_eq!(ciphertext_size(p), Some(c));
            }
        }
    }

    #[test]
    fn header_round_trips_and_rejects_other_formats() {
        let h = Header {
            object_id: ObjectId([7; 16]),
            commitment: [9; 32],
        };
        let bytes = h.to_bytes();
        assert_eq!(Header::parse(&bytes), Ok(h));
        for (at, reason) in [
            (0, "bad magic"),
            (4, "unsupported version"),
            (5, "unsupported suite"),
            (8, "unsupported segment size"),
        ] {
            let mut b = bytes;
            b[at] ^= 1;
            assert_eq!(Header::parse(&b), Err(EnvelopeError::Header(reason)));
        }
        assert!(Header::parse(&bytes[..HEADER_LEN - 1]).is_err());
    }

    #[test]
    fn nonce_layout() {
        let n = segment_nonce(0x0102_0304_0506_0708, true);
        assert_eq!(n.as_ref(), &[0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 1]);
        assert_eq!(segment_nonce(3, false).as_ref()[11], 0);
    }

    #[test]
    fn hex_is_lower_case_and_strict() {
        assert_eq!(hex(&[0x0a, 0xff]), "0aff");
        assert_eq!(unhex("0aff"), Some(vec![0x0a, 0xff]));
        assert_eq!(unhex("0AFF"), None);
        assert_eq!(unhex("0af"), None);
    }
}
