//! The partner side: a profile file, client assertions, and the token request.
//!
//! Takes a profile (endpoint, partner id, external id, private key file, optional CA file and
//! key id). Gives a signed RFC 7523 client assertion ([`sign_assertion`]) and the token
//! endpoint's JSON answer ([`request_token`]). Fails with an `anyhow` error that names files
//! and the server's RFC 6749 error code and description, never the key, assertion, token or
//! external id.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Header;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::JWT_BEARER;
use super::keys::parse_private_key_pem;

/// Lifetime of the client assertions this client signs.
const ASSERTION_LIFETIME: i64 = 60;

/// A partner's connection profile (TOML; a `.json` file is read as JSON).
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Gateway base URL, e.g. `https://127.0.0.1:8443`.
    pub endpoint: String,
    /// Partner id (`client_id`).
    pub partner: String,
    /// Shared with the gateway operator; never printed.
    pub external_id: String,
    /// The partner's private key (PKCS#8 PEM). Relative to the profile's directory.
    pub key_file: PathBuf,
    /// Trust only this CA for the gateway's certificate. Relative to the profile's directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// `kid` of the key, as the gateway's partner file names it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
}

impl fmt::Debug for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Profile")
            .field("endpoint", &self.endpoint)
            .field("partner", &self.partner)
            .field("external_id", &"<redacted>")
            .field("key_file", &self.key_file)
            .field("ca_file", &self.ca_file)
            .field("key_id", &self.key_id)
            .finish()
    }
}

impl Profile {
    /// Reads a profile; relative `key_file`/`ca_file` resolve against the file's directory.
    pub fn load(path: &Path) -> anyhow::Result<Profile> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read profile {}", path.display()))?;
        let is_json = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("json"));
        let mut profile: Profile = if is_json {
            serde_json::from_str(&text).map_err(|e| {
                // serde_json messages name the position, never the value.
                anyhow::anyhow!("invalid profile {}: {e}", path.display())
            })?
        } else {
            toml::from_str(&text).map_err(|e| {
                // Only the message and line: toml's full report quotes the source line,
                // which could hold the external id.
                let line = e.span().map(|s| text[..s.start].lines().count().max(1));
                let at = line.map(|l| format!(" line {l}")).unwrap_or_default();
                anyhow::anyhow!("invalid profile {}{at}: {}", path.display(), e.message())
            })?
        };
        let base = path.parent().unwrap_or(Path::new("."));
        profile.key_file = base.join(&profile.key_file);
        profile.ca_file = profile.ca_file.map(|ca| base.join(ca));
        Ok(profile)
    }

    /// The token endpoint URL: `{endpoint}/v1/token`. The gateway's `token.token_url` must be
    /// exactly this string, since it is the assertion's `aud`.
    pub fn token_url(&self) -> String {
        format!("{}/v1/token", self.endpoint.trim_end_matches('/'))
    }
}

/// Signs a client assertion: `iss = sub = partner`, `aud = token_url`, `iat = now`,
/// `exp = now + 60 s`, a random `jti`, header `kid` = the profile's key id when set, and the
/// algorithm the key type implies (Ed25519: EdDSA, P-256: ES256, RSA: RS256).
pub fn sign_assertion(
    profile: &Profile,
    key_pem: &str,
    token_url: &str,
    now: jiff::Timestamp,
) -> anyhow::Result<String> {
    let key = parse_private_key_pem(key_pem)
        .map_err(|reason| anyhow::anyhow!("partner private key: {reason}"))?;
    let mut jti = [0u8; 16];
    aws_lc_rs::rand::fill(&mut jti).map_err(|_| anyhow::anyhow!("no randomness available"))?;
    let iat = now.as_second();
    let claims = json!({
        "iss": profile.partner,
        "sub": profile.partner,
        "aud": token_url,
        "iat": iat,
        "exp": iat + ASSERTION_LIFETIME,
        "jti": URL_SAFE_NO_PAD.encode(jti),
    });
    let mut header = Header::new(key.alg.jwt());
    header.kid = profile.key_id.clone();
    jsonwebtoken::encode(&header, &claims, &key.key)
        .map_err(|e| anyhow::anyhow!("cannot sign the client assertion: {e}"))
}

/// Asks the gateway for an access token. Trusts only `ca_file` when the profile names one,
/// otherwise the platform's roots; HTTPS only, no redirects. Gives the JSON token response,
/// or an error with the server's `error` and `error_description`.
pub async fn request_token(
    profile: &Profile,
    scope: Option<&str>,
    duration: Option<u64>,
) -> anyhow::Result<Value> {
    let key_pem = std::fs::read_to_string(&profile.key_file)
        .with_context(|| format!("cannot read key file {}", profile.key_file.display()))?;
    request_token_with_key(profile, &key_pem, scope, duration).await
}

/// [`request_token`] with the private key given as PEM text instead of the profile's file.
pub async fn request_token_with_key(
    profile: &Profile,
    key_pem: &str,
    scope: Option<&str>,
    duration: Option<u64>,
) -> anyhow::Result<Value> {
    let key_pem = key_pem.to_string();
    let token_url = profile.token_url();
    let assertion = sign_assertion(profile, &key_pem, &token_url, jiff::Timestamp::now())?;

    let mut builder = reqwest::Client::builder()
        .https_only(true)
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(30));
    if let Some(ca_file) = &profile.ca_file {
        let pem = std::fs::read(ca_file)
            .with_context(|| format!("cannot read CA file {}", ca_file.display()))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .with_context(|| format!("no usable certificate in {}", ca_file.display()))?;
        if certs.is_empty() {
            bail!("no certificate in CA file {}", ca_file.display());
        }
        builder = builder.tls_certs_only(certs);
    }
    let client = builder.build().context("cannot set up the HTTPS client")?;

    let duration = duration.map(|d| d.to_string());
    let mut form: Vec<(&str, &str)> = vec![
        ("grant_type", "client_credentials"),
        ("client_id", &profile.partner),
        ("client_assertion_type", JWT_BEARER),
        ("client_assertion", &assertion),
        ("external_id", &profile.external_id),
    ];
    if let Some(scope) = scope {
        form.push(("scope", scope));
    }
    if let Some(d) = &duration {
        form.push(("duration", d));
    }
    let response = client
        .post(&token_url)
        .form(&form)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("token request to {token_url} failed: {}", e.without_url()))?;
    let status = response.status();
    let body: Option<Value> = response.json().await.ok();
    if status.is_success() {
        return body.context("the token endpoint answered with something that is not JSON");
    }
    let field = |name: &str| {
        body.as_ref()
            .and_then(|b| b.get(name))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    match (field("error"), field("error_description")) {
        (Some(error), Some(desc)) => {
            bail!("token request refused (HTTP {status}): {error}: {desc}")
        }
        (Some(error), None) => bail!("token request refused (HTTP {status}): {error}"),
        _ => bail!("token request refused (HTTP {status})"),
    }
}
