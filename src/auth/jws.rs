//! Compact JWS plumbing shared by client assertions and access tokens.
//!
//! Takes a compact JWT and a key pinned to one algorithm. Gives the protected header (read
//! before any key is chosen) and, once the signature checks out, the claims as a JSON object.
//! Fails with [`JwsError`]: malformed, algorithm not the key's, or bad signature. Time-based
//! claims are not looked at here: callers check them against an injected `now`, because
//! jsonwebtoken's own checks read the system clock.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::keys::KeyAlg;

/// Why a JWS was refused before its claims were looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JwsError {
    /// Not three base64url parts, header not a JSON object, `crit` present, ...
    Malformed,
    /// `alg` is not the one the key's type implies (including `none` and HS*).
    BadAlg,
    BadSignature,
}

/// The protected header fields gatehouse uses.
#[derive(Debug)]
pub(crate) struct JoseHeader {
    pub alg: String,
    pub kid: Option<String>,
    pub typ: Option<String>,
}

#[derive(Deserialize)]
struct RawHeader {
    alg: String,
    kid: Option<String>,
    typ: Option<String>,
    /// Extensions we would have to understand (RFC 7515 §4.1.11): we understand none.
    crit: Option<Value>,
}

/// Reads the protected header without verifying anything.
pub(crate) fn peek_header(token: &str) -> Result<JoseHeader, JwsError> {
    let mut parts = token.split('.');
    let (Some(header), Some(_payload), Some(_sig), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwsError::Malformed);
    };
    let bytes = URL_SAFE_NO_PAD
        .decode(header)
        .map_err(|_| JwsError::Malformed)?;
    let raw: RawHeader = serde_json::from_slice(&bytes).map_err(|_| JwsError::Malformed)?;
    if raw.crit.is_some() {
        return Err(JwsError::Malformed);
    }
    Ok(JoseHeader {
        alg: raw.alg,
        kid: raw.kid,
        typ: raw.typ,
    })
}

/// Verifies the signature with `key` under exactly `alg` and returns the claims object.
pub(crate) fn verify(
    token: &str,
    key: &DecodingKey,
    alg: KeyAlg,
) -> Result<Map<String, Value>, JwsError> {
    let header = peek_header(token)?;
    if header.alg != alg.as_str() {
        return Err(JwsError::BadAlg);
    }
    verify_alg(token, key, alg.jwt())
}

/// Verifies the signature with `key` under exactly `alg` (any asymmetric algorithm
/// jsonwebtoken knows; the caller has pinned it) and returns the claims object.
pub(crate) fn verify_alg(
    token: &str,
    key: &DecodingKey,
    alg: Algorithm,
) -> Result<Map<String, Value>, JwsError> {
    let header = peek_header(token)?;
    if header.alg.parse::<Algorithm>().ok() != Some(alg) {
        return Err(JwsError::BadAlg);
    }
    let mut validation = Validation::new(alg);
    // Presence and time checks are the caller's, against an injected clock.
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.leeway = 0;
    match jsonwebtoken::decode::<Map<String, Value>>(token, key, &validation) {
        Ok(data) => Ok(data.claims),
        Err(e) => Err(match e.kind() {
            ErrorKind::InvalidSignature => JwsError::BadSignature,
            ErrorKind::InvalidAlgorithm | ErrorKind::MissingAlgorithm => JwsError::BadAlg,
            // A signature that is not even well-formed for the key (wrong length, bad DER).
            ErrorKind::InvalidEcdsaKey
            | ErrorKind::InvalidEddsaKey
            | ErrorKind::InvalidRsaKey(_)
            | ErrorKind::InvalidKeyFormat
            | ErrorKind::Provider(_) => JwsError::BadSignature,
            _ => JwsError::Malformed,
        }),
    }
}

/// Turns a verified claims object into a typed claims struct.
pub(crate) fn claims<T: DeserializeOwned>(claims: Map<String, Value>) -> Option<T> {
    serde_json::from_value(Value::Object(claims)).ok()
}
