//! Format-preserving tokens: FF1 (NIST SP 800-38G) over AES-256, and the wrapped key file.
//!
//! Takes the data owner's 256-bit [`FpeKey`] and a partner id (the FF1 tweak); gives tokens
//! that keep a value's shape: its ASCII digits are encrypted as one radix-10 numeral string and
//! written back in place, so `4111-1111-1111-1111` becomes another 16 digits with the same
//! dashes. Two partners get unrelated tokens for the same value; only the key holder reverses
//! them ([`detokenize`], `gatehouse dlp detokenize`). NIST requires a domain of at least 10^6:
//! a value with fewer than [`MIN_DIGITS`] digits is not encrypted (the engine masks it and
//! counts a fallback; [`detokenize`] refuses it). Tokens are deterministic per key and partner
//! (equal values give equal tokens, so joins work) and reveal nothing but the shape.
//!
//! The key never sits in a file in the clear: [`FpeKeyFile`] holds it wrapped by a
//! [`KeyService`] (the local key-encryption-key file or AWS KMS), bound to the key's name
//! through the encryption context, and the gateway unwraps it at start-up. Fails with
//! [`FpeError`]: unusable key file, key service refusal, or a value too short to reverse.

use std::fmt;
use std::path::Path;

use aes::Aes256;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::BytesMut;
use fpe::ff1::{FF1, FlexibleNumeralString};
use zeroize::Zeroizing;

use crate::crypto::{EncryptionContext, KeyError, KeyService, ObjectId};

/// Fewer digits than this are below FF1's minimum domain (10^6) and are not encrypted.
pub const MIN_DIGITS: usize = 6;
/// The `format` of a wrapped key file.
pub const KEY_FILE_FORMAT: &str = "gatehouse-dlp-fpe-key";
/// The share name in a wrapped FPE key's encryption context.
const CONTEXT_SHARE: &str = "gatehouse:dlp-fpe";

/// A 256-bit FF1 key. Never printed; wiped on drop.
#[derive(Clone)]
pub struct FpeKey(Zeroizing<[u8; 32]>);

impl FpeKey {
    pub fn new(bytes: [u8; 32]) -> FpeKey {
        FpeKey(Zeroizing::new(bytes))
    }
}

impl PartialEq for FpeKey {
    fn eq(&self, other: &FpeKey) -> bool {
        subtle::ConstantTimeEq::ct_eq(&self.0[..], &other.0[..]).into()
    }
}

impl fmt::Debug for FpeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FpeKey(..)")
    }
}

/// Why a key file or a token could not be used.
#[derive(Debug, thiserror::Error)]
pub enum FpeError {
    #[error("FPE key file {path}: {reason}")]
    KeyFile { path: String, reason: String },
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("value has {digits} digits; FF1 needs at least {MIN_DIGITS}")]
    TooShort { digits: usize },
}

/// FF1 with one key and tweak, ready to run.
pub(crate) struct Ff1 {
    cipher: FF1<Aes256>,
    tweak: Vec<u8>,
}

impl fmt::Debug for Ff1 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Ff1(..)")
    }
}

impl Ff1 {
    pub(crate) fn new(key: &FpeKey, partner: &str) -> Ff1 {
        Ff1 {
            cipher: FF1::new(&key.0[..], 10).expect("radix 10 is valid"),
            tweak: partner.as_bytes().to_vec(),
        }
    }

    /// Writes `value` with its digits encrypted; false (nothing written) when it has fewer
    /// than [`MIN_DIGITS`].
    pub(crate) fn encrypt_digits(&self, value: &[u8], out: &mut BytesMut) -> bool {
        self.run(value, out, true)
    }

    pub(crate) fn decrypt_digits(&self, value: &[u8], out: &mut BytesMut) -> bool {
        self.run(value, out, false)
    }

    fn run(&self, value: &[u8], out: &mut BytesMut, encrypt: bool) -> bool {
        let digits: Vec<u16> = value
            .iter()
            .filter(|b| b.is_ascii_digit())
            .map(|b| u16::from(b - b'0'))
            .collect();
        if digits.len() < MIN_DIGITS {
            return false;
        }
        let ns = FlexibleNumeralString::from(digits);
        let done = if encrypt {
            self.cipher.encrypt(&self.tweak, &ns)
        } else {
            self.cipher.decrypt(&self.tweak, &ns)
        };
        let Ok(done) = done else {
            return false;
        };
        let mut new = Vec::<u16>::from(done).into_iter();
        out.extend(value.iter().map(|&b| {
            if b.is_ascii_digit() {
                b'0' + new.next().expect("same number of digits") as u8
            } else {
                b
            }
        }));
        true
    }
}

/// The value behind a `tokenize_fpe` token made for `partner` with `key`.
pub fn detokenize(key: &FpeKey, partner: &str, token: &[u8]) -> Result<Vec<u8>, FpeError> {
    let mut out = BytesMut::new();
    if Ff1::new(key, partner).decrypt_digits(token, &mut out) {
        Ok(out.to_vec())
    } else {
        Err(FpeError::TooShort {
            digits: token.iter().filter(|b| b.is_ascii_digit()).count(),
        })
    }
}

/// The token `tokenize_fpe` gives `value` for `partner` (what the engine writes).
pub fn tokenize(key: &FpeKey, partner: &str, value: &[u8]) -> Result<Vec<u8>, FpeError> {
    let mut out = BytesMut::new();
    if Ff1::new(key, partner).encrypt_digits(value, &mut out) {
        Ok(out.to_vec())
    } else {
        Err(FpeError::TooShort {
            digits: value.iter().filter(|b| b.is_ascii_digit()).count(),
        })
    }
}

/// An FPE key wrapped by a key service, as stored in a JSON file:
/// `{"format", "name", "key_id", "object_id", "wrapped"}` (`wrapped` in base64). The wrapped
/// key is bound (encryption context) to the share `gatehouse:dlp-fpe`, the key's `name` and a
/// random id, so it cannot be swapped with an object's data key or another FPE key.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FpeKeyFile {
    pub format: String,
    /// The key's name (e.g. `cards-2026`): shows which key made which tokens.
    pub name: String,
    /// The key-encryption key that wraps it, as the service names it.
    pub key_id: String,
    pub object_id: String,
    pub wrapped: String,
}

impl FpeKeyFile {
    /// A fresh key from `service` under `kek_id` (or its default key): the file and the key.
    pub async fn create(
        service: &dyn KeyService,
        kek_id: Option<&str>,
        name: &str,
    ) -> Result<(FpeKeyFile, FpeKey), FpeError> {
        let id = ObjectId::random().map_err(|e| FpeError::KeyFile {
            path: name.to_string(),
            reason: e.to_string(),
        })?;
        let context = EncryptionContext::new(CONTEXT_SHARE, "", name, id);
        let dk = service.generate_data_key(kek_id, &context).await?;
        let file = FpeKeyFile {
            format: KEY_FILE_FORMAT.into(),
            name: name.into(),
            key_id: dk.key_id.clone(),
            object_id: id.to_hex(),
            wrapped: STANDARD.encode(&dk.wrapped),
        };
        Ok((file, FpeKey(dk.plaintext)))
    }

    /// The plaintext key, unwrapped by `service`.
    pub async fn unwrap(&self, service: &dyn KeyService) -> Result<FpeKey, FpeError> {
        let bad = |reason: &str| FpeError::KeyFile {
            path: self.name.clone(),
            reason: reason.into(),
        };
        let id = ObjectId::from_hex(&self.object_id).ok_or_else(|| bad("bad object_id"))?;
        let wrapped = STANDARD
            .decode(&self.wrapped)
            .map_err(|_| bad("`wrapped` is not base64"))?;
        let context = EncryptionContext::new(CONTEXT_SHARE, "", &self.name, id);
        let plain = service
            .decrypt_data_key(&wrapped, &self.key_id, &context)
            .await?;
        Ok(FpeKey(plain))
    }

    /// Reads and checks a key file. Blocking.
    pub fn load(path: &Path) -> Result<FpeKeyFile, FpeError> {
        let bad = |reason: String| FpeError::KeyFile {
            path: path.display().to_string(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
        let file: FpeKeyFile = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
        if file.format != KEY_FILE_FORMAT {
            return Err(bad(format!("`format` is not `{KEY_FILE_FORMAT}`")));
        }
        Ok(file)
    }

    /// Writes the file (whole or not at all). Blocking.
    pub fn save(&self, path: &Path) -> Result<(), FpeError> {
        let mut text = serde_json::to_string_pretty(self).expect("plain strings serialize");
        text.push('\n');
        crate::atomic_file::write(path, text.as_bytes(), 0o600).map_err(|e| FpeError::KeyFile {
            path: path.display().to_string(),
            reason: e.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::LocalKeyService;

    fn key(b: u8) -> FpeKey {
        FpeKey::new([b; 32])
    }

    #[test]
    fn ff1_matches_the_nist_sample_for_radix_10() {
        // NIST SP 800-38G FF1 samples 7 and 8 (AES-256, radix 10; no tweak, tweak 9876543210).
        let k: [u8; 32] = [
            0x2b, 0x7e, 0x15, 0x16, 0x28, 0xae, 0xd2, 0xa6, 0xab, 0xf7, 0x15, 0x88, 0x09, 0xcf,
            0x4f, 0x3c, 0xef, 0x43, 0x59, 0xd8, 0xd5, 0x80, 0xaa, 0x4f, 0x7f, 0x03, 0x6d, 0x6f,
            0x04, 0xfc, 0x6a, 0x94,
        ];
        for (tweak, ct) in [("", b"6657667009"), ("9876543210", b"1001623463")] {
            let ff1 = Ff1::new(&FpeKey::new(k), tweak);
            let mut out = BytesMut::new();
            assert!(ff1.encrypt_digits(b"0123456789", &mut out));
            assert_eq!(&out[..], ct);
            let mut back = BytesMut::new();
            assert!(ff1.decrypt_digits(ct, &mut back));
            assert_eq!(&back[..], b"0123456789");
        }
    }

    #[test]
    fn tokens_keep_the_shape_reverse_and_differ_per_partner() {
        let k = key(1);
        let card = b"4111-1111-1111-1111";
        let t = tokenize(&k, "partner-a", card).unwrap();
        assert_eq!(t.len(), card.len());
        assert_ne!(&t[..], &card[..]);
        for (i, (&a, &b)) in card.iter().zip(&t).enumerate() {
            assert_eq!(a.is_ascii_digit(), b.is_ascii_digit(), "byte {i}");
            if !a.is_ascii_digit() {
                assert_eq!(a, b);
            }
        }
        assert_eq!(tokenize(&k, "partner-a", card).unwrap(), t, "deterministic");
        assert_ne!(tokenize(&k, "partner-b", card).unwrap(), t, "tweak");
        assert_ne!(tokenize(&key(2), "partner-a", card).unwrap(), t, "key");
        assert_eq!(detokenize(&k, "partner-a", &t).unwrap(), card);
        assert_ne!(detokenize(&k, "partner-b", &t).unwrap(), card);
        // Below the NIST minimum domain: refused, never encrypted with a tiny domain.
        assert!(matches!(
            tokenize(&k, "partner-a", b"12-345"),
            Err(FpeError::TooShort { digits: 5 })
        ));
        assert!(tokenize(&k, "partner-a", b"123456").is_ok());
        assert!(!format!("{k:?}").contains('1'));
    }

    #[tokio::test]
    async fn key_files_hold_the_key_wrapped_and_unwrap_only_with_their_service() {
        let dir = tempfile::tempdir().unwrap();
        let kek = LocalKeyService::open_or_create(&dir.path().join("kek")).unwrap();
        let (file, k) = FpeKeyFile::create(&kek, None, "cards-2026").await.unwrap();
        let path = dir.path().join("fpe.json");
        file.save(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            !text.contains(&STANDARD.encode(&k.0[..])),
            "never in the clear"
        );
        let loaded = FpeKeyFile::load(&path).unwrap();
        assert_eq!(loaded.unwrap(&kek).await.unwrap(), k);
        // Renamed (another context): refused.
        let renamed = FpeKeyFile {
            name: "other".into(),
            ..loaded.clone()
        };
        assert!(matches!(
            renamed.unwrap(&kek).await,
            Err(FpeError::Key(KeyError::Refused(_)))
        ));
        // Another key service: refused.
        let other = LocalKeyService::open_or_create(&dir.path().join("kek2")).unwrap();
        assert!(loaded.unwrap(&other).await.is_err());
        std::fs::write(&path, "{\"format\": \"x\"}").unwrap();
        assert!(matches!(
            FpeKeyFile::load(&path),
            Err(FpeError::KeyFile { .. })
        ));
    }
}
