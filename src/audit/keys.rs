//! Checkpoint signing keys: Ed25519 through aws-lc-rs.
//!
//! Takes the configured private key file (PKCS#8 PEM, created 0600 on first run) and the
//! public key file (SPKI PEM, 0644, rewritten from the private key on every start so verifiers
//! always find the current one); gives a [`Signer`] for the writer and [`PublicKey`]s for
//! verification. A key id is the first 16 hex digits of SHA-256 over the raw public key.
//! Signatures cover a domain prefix and the checkpoint line without its `sig` field. Fails
//! with an I/O error naming the file when a key cannot be read, parsed or created.

use std::path::Path;

use aws_lc_rs::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use zeroize::Zeroizing;

/// Signed messages start with this, so a checkpoint signature means nothing elsewhere.
const DOMAIN: &[u8] = b"gatehouse-audit-checkpoint-v1\n";
/// DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410), followed by the 32 key bytes.
const SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

pub struct Signer {
    pair: Ed25519KeyPair,
    key_id: String,
}

impl Signer {
    /// Loads the private key, creating it (0600) when missing, and writes the public key file.
    /// Blocking.
    pub fn open_or_create(key_file: &Path, public_file: &Path) -> std::io::Result<Signer> {
        let pair = match std::fs::read_to_string(key_file) {
            Ok(text) => {
                let text = Zeroizing::new(text);
                let der = Zeroizing::new(pem_decode(&text, "PRIVATE KEY").ok_or_else(|| {
                    invalid(key_file, "not a PEM \"PRIVATE KEY\" (PKCS#8)".into())
                })?);
                Ed25519KeyPair::from_pkcs8(&der)
                    .map_err(|e| invalid(key_file, format!("not an Ed25519 key: {e}")))?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let pair = Ed25519KeyPair::generate()
                    .map_err(|_| invalid(key_file, "key generation failed".into()))?;
                let der = pair
                    .to_pkcs8()
                    .map_err(|_| invalid(key_file, "key encoding failed".into()))?;
                let pem = Zeroizing::new(pem_encode(der.as_ref(), "PRIVATE KEY"));
                crate::atomic_file::write(key_file, pem.as_bytes(), crate::atomic_file::PRIVATE)
                    .map_err(|e| with_path(key_file, e))?;
                tracing::info!(path = %key_file.display(), "audit signing key created");
                pair
            }
            Err(e) => return Err(with_path(key_file, e)),
        };
        let public = PublicKey::from_raw(pair.public_key().as_ref())
            .ok_or_else(|| invalid(key_file, "unexpected public key length".into()))?;
        let pem = public.to_pem();
        if std::fs::read_to_string(public_file).ok().as_deref() != Some(pem.as_str()) {
            crate::atomic_file::write(public_file, pem.as_bytes(), crate::atomic_file::PUBLIC)
                .map_err(|e| with_path(public_file, e))?;
        }
        Ok(Signer {
            pair,
            key_id: public.key_id,
        })
    }

    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// Base64 signature over `DOMAIN || unsigned`.
    pub fn sign(&self, unsigned: &[u8]) -> String {
        let mut msg = Vec::with_capacity(DOMAIN.len() + unsigned.len());
        msg.extend_from_slice(DOMAIN);
        msg.extend_from_slice(unsigned);
        B64.encode(self.pair.sign(&msg).as_ref())
    }
}

/// A verifier's copy of a checkpoint key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    raw: [u8; 32],
    pub key_id: String,
}

impl PublicKey {
    fn from_raw(raw: &[u8]) -> Option<PublicKey> {
        let raw: [u8; 32] = raw.try_into().ok()?;
        let digest = super::chain::line_hash(&raw);
        Some(PublicKey {
            raw,
            key_id: super::chain::hex(&digest)[..16].to_string(),
        })
    }

    /// Reads an SPKI PEM (`-----BEGIN PUBLIC KEY-----`) Ed25519 key.
    pub fn load(path: &Path) -> std::io::Result<PublicKey> {
        let text = std::fs::read_to_string(path).map_err(|e| with_path(path, e))?;
        pem_decode(&text, "PUBLIC KEY")
            .and_then(|der| {
                let raw = der.strip_prefix(SPKI_PREFIX.as_slice())?;
                PublicKey::from_raw(raw)
            })
            .ok_or_else(|| invalid(path, "not an Ed25519 PEM public key".into()))
    }

    pub fn to_pem(&self) -> String {
        let mut der = SPKI_PREFIX.to_vec();
        der.extend_from_slice(&self.raw);
        pem_encode(&der, "PUBLIC KEY")
    }

    /// Whether `sig` (base64) signs `unsigned` under this key.
    pub fn verify(&self, unsigned: &[u8], sig: &str) -> bool {
        let Ok(sig) = B64.decode(sig) else {
            return false;
        };
        let mut msg = Vec::with_capacity(DOMAIN.len() + unsigned.len());
        msg.extend_from_slice(DOMAIN);
        msg.extend_from_slice(unsigned);
        UnparsedPublicKey::new(&ED25519, &self.raw)
            .verify(&msg, &sig)
            .is_ok()
    }
}

fn pem_encode(der: &[u8], label: &str) -> String {
    let b64 = B64.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

fn pem_decode(text: &str, label: &str) -> Option<Vec<u8>> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = text.find(&begin)? + begin.len();
    let stop = start + text[start..].find(&end)?;
    let body: String = text[start..stop].split_whitespace().collect();
    B64.decode(body).ok()
}

fn invalid(path: &Path, what: String) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!("{}: {what}", path.display()),
    )
}

fn with_path(path: &Path, e: std::io::Error) -> std::io::Error {
    std::io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn creates_a_private_key_once_and_exports_its_public_key() {
        let dir = tempfile::tempdir().unwrap();
        let (key, public) = (dir.path().join("k.pem"), dir.path().join("k.pub.pem"));
        let a = Signer::open_or_create(&key, &public).unwrap();
        let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let b = Signer::open_or_create(&key, &public).unwrap();
        assert_eq!(a.key_id(), b.key_id(), "the second start reuses the key");
        let pk = PublicKey::load(&public).unwrap();
        assert_eq!(pk.key_id, a.key_id());
        let sig = a.sign(b"line");
        assert!(pk.verify(b"line", &sig));
        assert!(!pk.verify(b"lime", &sig));
        assert!(!pk.verify(b"line", "not base64!"));
    }

    #[test]
    fn a_broken_key_file_is_an_error_not_a_new_key() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("k.pem");
        std::fs::write(&key, "garbage").unwrap();
        let err = Signer::open_or_create(&key, &dir.path().join("p.pem"))
            .err()
            .unwrap();
        assert!(err.to_string().contains("k.pem"), "{err}");
        assert_eq!(std::fs::read_to_string(&key).unwrap(), "garbage");
    }
}
