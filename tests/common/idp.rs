//! A signing key of a test identity provider (P-256, ES256) and its JWK, for token exchange.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

pub struct IdpKey {
    pub kid: String,
    encoding: EncodingKey,
    /// The public key as a JWK, for a JWKS document.
    pub jwk: Value,
}

impl IdpKey {
    pub fn new(kid: &str) -> IdpKey {
        let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let raw = kp.public_key_raw();
        let b64 = |b: &[u8]| URL_SAFE_NO_PAD.encode(b);
        IdpKey {
            kid: kid.to_owned(),
            encoding: EncodingKey::from_ec_pem(kp.serialize_pem().as_bytes()).unwrap(),
            jwk: json!({"kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": kid,
                        "x": b64(&raw[1..33]), "y": b64(&raw[33..65])}),
        }
    }

    /// Signs `claims` with this key, naming `kid` in the header.
    pub fn sign_as(&self, kid: &str, claims: &Value) -> String {
        let mut h = Header::new(Algorithm::ES256);
        h.kid = Some(kid.to_owned());
        jsonwebtoken::encode(&h, claims, &self.encoding).unwrap()
    }

    pub fn sign(&self, claims: &Value) -> String {
        self.sign_as(&self.kid, claims)
    }
}
