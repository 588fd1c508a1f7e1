//! Validated, typed configuration. Everything outside `config/` sees only these types;
//! the serde structs that mirror the TOML files live in `raw.rs`.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

mod access;
mod alerts;
mod audit;
mod dlp;
mod federation;

pub use access::{
    Classification, Conditions, DaySet, DenyRule, Rate, RateLimits, RequestRate, TimeWindow,
    TokenLimits,
};
pub use alerts::{
    AlertsConfig, BurstRule, DlpBlockRule, NewSourceIpRule, UnusualHoursRule, VolumeSpikeRule,
    WebhookConfig, WebhookSecret,
};
pub use audit::{ArchiveConfig, ObjectLock, ObjectLockMode};
pub use dlp::{DlpConfig, DlpProfile, Unscannable, default_classification};
pub use federation::{
    DEFAULT_FEDERATION_ALGORITHMS, FEDERATION_ALGORITHMS, Federation, JwksSource, TenantMatch,
};

/// Hard ceiling on any access token lifetime, whatever the configuration says.
pub const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(12 * 3600);

/// The whole gateway configuration: `gatehouse.toml` plus every partner file.
#[derive(Debug, Clone)]
pub struct Config {
    /// Path of `gatehouse.toml` as given.
    pub source: PathBuf,
    pub data_dir: PathBuf,
    /// Directory of DLP detector files (`*.toml`); `None`: the built-in pack.
    pub dlp_patterns_dir: Option<PathBuf>,
    /// Directory of partner files (`<id>.toml`).
    pub partners_dir: PathBuf,
    pub listener: ListenerConfig,
    pub tls: TlsConfig,
    pub token: TokenConfig,
    pub limits: Limits,
    /// Token endpoint limits: per client IP, and lockout after failed assertions.
    pub token_limits: TokenLimits,
    pub audit: AuditConfig,
    /// Key service for envelope-encrypted shares.
    pub keys: KeysConfig,
    pub admin: AdminConfig,
    pub dev: DevConfig,
    /// DLP profiles (`[dlp.profiles.*]`) and the token secret.
    pub dlp: DlpConfig,
    /// Alert rules on the event stream (`[alerts]`).
    pub alerts: AlertsConfig,
    pub stores: BTreeMap<String, StoreConfig>,
    pub shares: BTreeMap<String, ShareConfig>,
    pub partners: BTreeMap<String, PartnerConfig>,
}

#[derive(Debug, Clone)]
pub struct ListenerConfig {
    pub addr: SocketAddr,
    pub max_connections: usize,
    /// Time a client has to send the complete request head.
    pub header_read_timeout: Duration,
    /// Connections with no request in flight are closed after this long.
    pub idle_timeout: Duration,
    /// Time allowed for the TLS handshake.
    pub handshake_timeout: Duration,
    /// How long shutdown waits for in-flight requests.
    pub shutdown_grace: Duration,
    pub max_header_bytes: usize,
    /// Peers (load balancers) whose word on the client address is believed: their
    /// `X-Forwarded-For`, and their PROXY protocol v2 header when `proxy_protocol` is on.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Trusted peers send a PROXY protocol v2 header in front of every connection.
    pub proxy_protocol: bool,
}

#[derive(Debug, Clone)]
pub struct TlsConfig {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    /// Dev CA written by the bootstrap (only used when `dev.bootstrap` is on).
    pub dev_ca_cert_file: PathBuf,
    pub dev_ca_key_file: PathBuf,
    /// Host names and IPs the dev server certificate is made for.
    pub dev_names: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct TokenConfig {
    /// `iss` of access tokens and `aud` a client assertion must carry, e.g.
    /// `https://127.0.0.1:8443/v1/token`.
    pub token_url: String,
    /// `iss` claim of access tokens.
    pub issuer: String,
    /// `aud` claim of access tokens.
    pub audience: String,
    pub default_lifetime: Duration,
    /// Longest lifetime any partner may get (never above [`MAX_TOKEN_LIFETIME`]).
    pub max_lifetime: Duration,
    /// Longest `exp - now` a client assertion may carry.
    pub max_assertion_lifetime: Duration,
    /// Clock skew tolerated on `exp`/`nbf`/`iat`.
    pub leeway: Duration,
    /// Gateway signing keys (PKCS#8 PEM, Ed25519 or P-256). The first signs; all are published.
    pub signing_keys: Vec<SigningKeyConfig>,
}

#[derive(Debug, Clone)]
pub struct SigningKeyConfig {
    pub id: String,
    pub file: PathBuf,
}

#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest object body accepted on PUT.
    pub max_put_bytes: u64,
}

/// The admin listener (loopback only, bearer-token authenticated).
#[derive(Debug, Clone)]
pub struct AdminConfig {
    pub addr: SocketAddr,
    /// Bearer token for admin calls; created (0600) on first run when missing.
    pub token_file: PathBuf,
    /// Persisted revocations.
    pub revocations_file: PathBuf,
}

/// Where data keys come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyServiceConfig {
    /// Key-encryption keys in a local file (0600), created on first use.
    Local { file: PathBuf },
    /// AWS KMS; credentials from the standard AWS chain.
    Kms {
        region: Option<String>,
        endpoint_url: Option<String>,
        key_id: Option<String>,
    },
}

#[derive(Debug, Clone)]
pub struct KeysConfig {
    pub service: KeyServiceConfig,
    /// How long an unwrapped data key stays cached.
    pub cache_ttl: Duration,
    /// Most data keys cached at once.
    pub cache_capacity: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AuditConfig {
    /// Directory of the JSONL audit files.
    pub dir: PathBuf,
    /// Ed25519 private key (PKCS#8 PEM) that signs checkpoints; created 0600 when missing.
    pub signing_key_file: PathBuf,
    /// Where the matching public key (SPKI PEM) is written for verifiers.
    pub public_key_file: PathBuf,
    /// A signed checkpoint after this many records...
    pub checkpoint_every: u64,
    /// ...or this long after the previous one, whichever comes first (if records were written).
    pub checkpoint_interval: Duration,
    /// A file is sealed and a new one started when it reaches this size...
    pub max_file_size: u64,
    /// ...or this long after its first record (and always at the UTC day change).
    pub rotate_interval: Duration,
    /// Sealed files whose last write is older than this are deleted; `None`: kept forever.
    pub retention: Option<Duration>,
    /// Unauthenticated refusals recorded one by one per client IP and window; more are counted.
    pub unauthenticated_burst: u32,
    /// The window for `unauthenticated_burst`; counted refusals are summarised when it ends.
    pub unauthenticated_interval: Duration,
    /// `[audit.archive]`: sealed files and checkpoint anchors shipped to S3.
    pub archive: Option<ArchiveConfig>,
}

impl AuditConfig {
    /// The defaults, the keys in `keys/` beside `dir` (for tests and tools without a config file).
    pub fn at(dir: PathBuf) -> AuditConfig {
        let beside = dir.parent().map(PathBuf::from).unwrap_or_default();
        AuditConfig {
            signing_key_file: beside.join("keys/audit-signing.pem"),
            public_key_file: beside.join("keys/audit-signing.pub.pem"),
            dir,
            checkpoint_every: 1000,
            checkpoint_interval: Duration::from_secs(60),
            max_file_size: 64 << 20,
            rotate_interval: Duration::from_secs(24 * 3600),
            retention: None,
            unauthenticated_burst: 20,
            unauthenticated_interval: Duration::from_secs(60),
            archive: None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct DevConfig {
    /// Create missing dev material on `serve`: TLS CA and certificate, signing key,
    /// demo objects, demo partner key pair, external id and profile.
    pub bootstrap: bool,
    /// Where the bootstrap writes the demo partner's private key and profile.
    pub dir: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreConfig {
    /// Embedded store: each bucket is a directory under `root`.
    Fs { root: PathBuf },
    /// S3 or an S3-compatible server; credentials from the standard AWS chain.
    S3 {
        region: Option<String>,
        endpoint_url: Option<String>,
        force_path_style: bool,
    },
}

#[derive(Debug, Clone)]
pub struct ShareConfig {
    /// Public name: the first path segment partners use.
    pub name: String,
    pub store: String,
    /// Internal bucket name: never shown to partners.
    pub bucket: String,
    /// Internal key prefix, empty or ending in `/`: never shown to partners.
    pub prefix: String,
    pub description: String,
    /// Classification of objects that carry none of their own.
    pub default_classification: Classification,
    /// Objects are stored envelope-encrypted (`encrypt = "envelope"`).
    pub encrypt: bool,
    /// Key (KMS key id or alias) for new objects; `None`: the key service's default.
    pub key_id: Option<String>,
    /// Serve objects found unencrypted in an envelope share (migration only).
    pub accept_plaintext: bool,
    /// DLP profile applied to reads and writes (a key of `Config::dlp.profiles`).
    pub dlp_profile: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartnerStatus {
    Active,
    Suspended,
}

#[derive(Clone)]
pub struct PartnerConfig {
    pub id: String,
    pub display_name: String,
    pub owner: String,
    pub contract: String,
    pub justification: String,
    pub status: PartnerStatus,
    pub review_by: Option<jiff::civil::Date>,
    pub valid_until: Option<jiff::Timestamp>,
    /// Conditions every grant of this partner is bound by (see also `valid_until`).
    pub conditions: Conditions,
    /// Explicit denials; they win over any grant.
    pub deny: Vec<DenyRule>,
    /// Limits on all of this partner's requests together.
    pub rate_limits: RateLimits,
    /// Checked in constant time at the token endpoint; never printed.
    pub external_id: String,
    pub max_session: Duration,
    pub keys: Vec<PartnerKey>,
    /// The partner's own identity provider (RFC 8693 token exchange), if it has one.
    pub federation: Option<Federation>,
    pub grants: Vec<Grant>,
    /// The partner file this came from.
    pub file: PathBuf,
}

impl fmt::Debug for PartnerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PartnerConfig")
            .field("id", &self.id)
            .field("status", &self.status)
            .field("valid_until", &self.valid_until)
            .field("conditions", &self.conditions)
            .field("deny", &self.deny)
            .field("rate_limits", &self.rate_limits)
            .field("external_id", &"<redacted>")
            .field("keys", &self.keys)
            .field("federation", &self.federation)
            .field("grants", &self.grants)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone)]
pub struct PartnerKey {
    pub id: String,
    pub public_key_file: PathBuf,
    /// The PEM text of the public key, read and checked at load time.
    pub public_key_pem: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub share: String,
    /// Partner-visible key prefix, empty (whole share) or ending in `/`; matched on whole segments.
    pub prefix: String,
    pub actions: ActionSet,
    /// Conditions that narrow this grant within the partner's.
    pub conditions: Conditions,
    /// Limits on the requests this grant allows, on top of the partner's.
    pub rate_limits: RateLimits,
    /// Who approved this grant (the approval record `gatehouse lint` asks for).
    pub approved_by: Option<String>,
}

/// What a grant can allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// GET and HEAD of objects.
    Read,
    /// ListObjectsV2.
    List,
    /// PUT.
    Write,
    /// DELETE.
    Delete,
}

impl Action {
    pub const ALL: [Action; 4] = [Action::Read, Action::List, Action::Write, Action::Delete];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Read => "read",
            Action::List => "list",
            Action::Write => "write",
            Action::Delete => "delete",
        }
    }

    pub fn parse(s: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|a| a.as_str() == s)
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A small set of [`Action`]s.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct ActionSet(u8);

impl ActionSet {
    pub fn insert(&mut self, a: Action) {
        self.0 |= a.bit();
    }
    pub fn contains(self, a: Action) -> bool {
        self.0 & a.bit() != 0
    }
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
    pub fn iter(self) -> impl Iterator<Item = Action> {
        Action::ALL.into_iter().filter(move |a| self.contains(*a))
    }
}

impl FromIterator<Action> for ActionSet {
    fn from_iter<I: IntoIterator<Item = Action>>(iter: I) -> Self {
        let mut s = ActionSet::default();
        for a in iter {
            s.insert(a);
        }
        s
    }
}

impl fmt::Debug for ActionSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}
