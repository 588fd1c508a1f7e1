//! Key material: partner public keys, gateway signing keys, the JWKS document.
//!
//! Takes PEM text. Public keys must be SubjectPublicKeyInfo (`PUBLIC KEY`) for Ed25519
//! (EdDSA), P-256 (ES256) or RSA of 2048 to 8192 bits (RS256); private keys PKCS#8
//! (`PRIVATE KEY`) for the same types, or PKCS#1 (`RSA PRIVATE KEY`) for RSA. Gives each key
//! with the one JWS algorithm its type implies, so a token's `alg` can be pinned to its key.
//! Fails with a short reason that never contains key material.

use aws_lc_rs::rsa::PublicEncryptingKey;
use aws_lc_rs::signature::{
    self, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair, ParsedPublicKey,
    RsaKeyPair,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{PrivateKeyDer, SubjectPublicKeyInfoDer};
use serde_json::{Value, json};

/// The signature algorithms gatehouse accepts; each key type implies exactly one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAlg {
    /// Ed25519.
    EdDSA,
    /// ECDSA on P-256 with SHA-256.
    ES256,
    /// RSASSA-PKCS1-v1_5 with SHA-256, 2048 bits or more.
    RS256,
}

impl KeyAlg {
    /// The JWS `alg` header value.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyAlg::EdDSA => "EdDSA",
            KeyAlg::ES256 => "ES256",
            KeyAlg::RS256 => "RS256",
        }
    }

    pub(crate) fn jwt(self) -> Algorithm {
        match self {
            KeyAlg::EdDSA => Algorithm::EdDSA,
            KeyAlg::ES256 => Algorithm::ES256,
            KeyAlg::RS256 => Algorithm::RS256,
        }
    }
}

/// A partner's public key, ready to verify client assertions.
#[derive(Clone)]
pub(crate) struct PublicKey {
    pub id: String,
    pub alg: KeyAlg,
    pub key: DecodingKey,
}

/// Parses a partner public key PEM and returns the JWS algorithm it implies
/// (`"EdDSA"`, `"ES256"` or `"RS256"`), for `gatehouse check` to report bad partner keys.
pub fn check_public_key_pem(pem: &str) -> Result<&'static str, String> {
    parse_public_key_pem(pem).map(|(alg, _)| alg.as_str())
}

/// Parses an SPKI `PUBLIC KEY` PEM into a verifying key pinned to one algorithm.
pub(crate) fn parse_public_key_pem(pem: &str) -> Result<(KeyAlg, DecodingKey), String> {
    let spki = SubjectPublicKeyInfoDer::from_pem_slice(pem.as_bytes())
        .map_err(|_| "not a PEM \"PUBLIC KEY\" (SubjectPublicKeyInfo) block".to_string())?;
    let der = spki.as_ref();
    let alg = classify_spki(der)?;
    match alg {
        KeyAlg::EdDSA => ParsedPublicKey::new(&signature::ED25519, der)
            .map_err(|_| "invalid Ed25519 public key".to_string())?,
        KeyAlg::ES256 => ParsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, der)
            .map_err(|_| "invalid P-256 public key".to_string())?,
        KeyAlg::RS256 => {
            let rsa = PublicEncryptingKey::from_der(der).map_err(|e| {
                format!("RSA public key refused ({e}); RSA keys must have 2048 to 8192 bits")
            })?;
            if rsa.key_size_bits() < 2048 {
                return Err("RSA public key has fewer than 2048 bits".to_string());
            }
            ParsedPublicKey::new(&signature::RSA_PKCS1_2048_8192_SHA256, der)
                .map_err(|_| "invalid RSA public key".to_string())?
        }
    };
    // aws-lc accepts SubjectPublicKeyInfo DER for all three verifiers.
    let key = match alg {
        KeyAlg::EdDSA => DecodingKey::from_ed_der(der),
        KeyAlg::ES256 => DecodingKey::from_ec_der(der),
        KeyAlg::RS256 => DecodingKey::from_rsa_der(der),
    };
    Ok((alg, key))
}

const OID_ED25519: &[u8] = &[0x06, 0x03, 0x2b, 0x65, 0x70];
const OID_EC_PUBLIC_KEY: &[u8] = &[0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const OID_P256: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const OID_RSA: &[u8] = &[
    0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01,
];

/// Reads the AlgorithmIdentifier of an SPKI: `SEQUENCE { SEQUENCE { OID, params? }, BIT STRING }`.
fn classify_spki(der: &[u8]) -> Result<KeyAlg, String> {
    let bad = || "malformed SubjectPublicKeyInfo".to_string();
    let (outer, _) = der_element(der, 0x30).ok_or_else(bad)?;
    let (alg_id, _) = der_element(outer, 0x30).ok_or_else(bad)?;
    if alg_id == OID_ED25519 {
        Ok(KeyAlg::EdDSA)
    } else if alg_id.starts_with(OID_RSA) {
        Ok(KeyAlg::RS256)
    } else if let Some(curve) = alg_id.strip_prefix(OID_EC_PUBLIC_KEY) {
        if curve == OID_P256 {
            Ok(KeyAlg::ES256)
        } else {
            Err("unsupported elliptic curve (only P-256 is accepted)".to_string())
        }
    } else {
        Err("unsupported key type (use Ed25519, P-256 or RSA >= 2048 bits)".to_string())
    }
}

/// Splits one DER element with the expected tag off `input`: (contents, rest).
fn der_element(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (&t, rest) = input.split_first()?;
    if t != tag {
        return None;
    }
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 3 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, &rest[n..])
    };
    (rest.len() >= len).then(|| rest.split_at(len))
}

/// A private key that signs JWTs: a gateway signing key, or a partner key in the client.
pub(crate) struct PrivateKey {
    pub alg: KeyAlg,
    pub key: EncodingKey,
    /// Ed25519: the 32-byte public key; P-256: the 65-byte uncompressed point; RSA: empty.
    pub public: Vec<u8>,
}

/// Parses a PKCS#8 (any accepted type) or PKCS#1 (RSA) private key PEM.
pub(crate) fn parse_private_key_pem(pem: &str) -> Result<PrivateKey, String> {
    let parsed = PrivateKeyDer::from_pem_slice(pem.as_bytes())
        .map_err(|_| "not a PEM \"PRIVATE KEY\" (PKCS#8) block".to_string())?;
    let der = parsed.secret_der();
    match &parsed {
        PrivateKeyDer::Pkcs8(_) => {
            if let Ok(kp) = Ed25519KeyPair::from_pkcs8(der) {
                return Ok(PrivateKey {
                    alg: KeyAlg::EdDSA,
                    key: EncodingKey::from_ed_der(der),
                    public: kp.public_key().as_ref().to_vec(),
                });
            }
            if let Ok(kp) = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der) {
                return Ok(PrivateKey {
                    alg: KeyAlg::ES256,
                    key: EncodingKey::from_ec_der(der),
                    public: kp.public_key().as_ref().to_vec(),
                });
            }
            if RsaKeyPair::from_pkcs8(der).is_ok() {
                let key = EncodingKey::from_rsa_pem(pem.as_bytes())
                    .map_err(|_| "invalid RSA private key".to_string())?;
                return Ok(PrivateKey {
                    alg: KeyAlg::RS256,
                    key,
                    public: Vec::new(),
                });
            }
            Err("unsupported private key (use Ed25519, P-256 or RSA >= 2048 bits)".to_string())
        }
        PrivateKeyDer::Pkcs1(_) => {
            RsaKeyPair::from_der(der).map_err(|_| "invalid RSA private key".to_string())?;
            Ok(PrivateKey {
                alg: KeyAlg::RS256,
                key: EncodingKey::from_rsa_der(der),
                public: Vec::new(),
            })
        }
        _ => Err("unsupported private key encoding (use PKCS#8)".to_string()),
    }
}

/// A gateway key that signs access tokens (the first configured) or only verifies them.
pub(crate) struct SigningKey {
    pub kid: String,
    pub alg: KeyAlg,
    pub encoding: EncodingKey,
    pub decoding: DecodingKey,
    /// The public JWK (RFC 7517) for the JWKS document.
    pub jwk: Value,
}

impl SigningKey {
    /// Parses a gateway signing key: PKCS#8 PEM, Ed25519 or P-256 only.
    pub fn from_pem(kid: &str, pem: &str) -> Result<SigningKey, String> {
        let private = parse_private_key_pem(pem)?;
        let b64 = |b: &[u8]| URL_SAFE_NO_PAD.encode(b);
        let (decoding, jwk) = match private.alg {
            KeyAlg::EdDSA => (
                DecodingKey::from_ed_der(&private.public),
                json!({"kty": "OKP", "crv": "Ed25519", "x": b64(&private.public)}),
            ),
            KeyAlg::ES256 => {
                let point = &private.public;
                if point.len() != 65 || point[0] != 0x04 {
                    return Err("unexpected P-256 public key encoding".to_string());
                }
                let (x, y) = point[1..].split_at(32);
                (
                    DecodingKey::from_ec_der(point),
                    json!({"kty": "EC", "crv": "P-256", "x": b64(x), "y": b64(y)}),
                )
            }
            KeyAlg::RS256 => {
                return Err("gateway signing keys must be Ed25519 or P-256, not RSA".to_string());
            }
        };
        let mut jwk = jwk;
        jwk["kid"] = json!(kid);
        jwk["alg"] = json!(private.alg.as_str());
        jwk["use"] = json!("sig");
        Ok(SigningKey {
            kid: kid.to_string(),
            alg: private.alg,
            encoding: private.key,
            decoding,
            jwk,
        })
    }
}
