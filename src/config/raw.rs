//! Serde structs that mirror the TOML files, one struct per table.
//!
//! Takes TOML text, gives these structs with typed scalars ([`values`]) and the byte span of
//! every value that a later check may complain about. Unknown keys fail deserialisation
//! (`deny_unknown_fields` everywhere), so a mistyped key is an error with a line number, never
//! a silently ignored setting. Nothing here applies defaults or resolves paths: `load` does.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

mod access;
mod alerts;
mod audit;
mod dlp;
mod federation;
mod values;

pub use access::{Cidr, ClassificationName, DenyTable, RateLimitsTable, TokenLimitsTable, Window};
pub use alerts::{AlertsTable, BurstTable, NewSourceIpTable, UnusualHoursTable, VolumeSpikeTable};
pub use audit::ArchiveTable;
pub use dlp::{DlpTable, ProfileTable};
pub use federation::FederationTable;
pub use values::{ActionName, Addr, ByteSize, Date, HumanDuration, Status, StoreKind, Timestamp};

/// `gatehouse.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatehouseFile {
    pub data_dir: Option<Spanned<String>>,
    pub partners_dir: Option<Spanned<String>>,
    pub dlp_patterns_dir: Option<Spanned<String>>,
    #[serde(default)]
    pub listener: ListenerTable,
    #[serde(default)]
    pub tls: TlsTable,
    #[serde(default)]
    pub token: TokenTable,
    #[serde(default)]
    pub limits: LimitsTable,
    #[serde(default)]
    pub token_limits: TokenLimitsTable,
    #[serde(default)]
    pub audit: AuditTable,
    #[serde(default)]
    pub key_service: KeyServiceTable,
    #[serde(default)]
    pub admin: AdminTable,
    #[serde(default)]
    pub dev: DevTable,
    #[serde(default)]
    pub dlp: DlpTable,
    /// `[alerts]`; absent: alerts off.
    pub alerts: Option<AlertsTable>,
    #[serde(default)]
    pub stores: BTreeMap<Spanned<String>, StoreTable>,
    #[serde(default)]
    pub shares: BTreeMap<Spanned<String>, ShareTable>,
}

/// `[listener]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerTable {
    pub addr: Option<Spanned<Addr>>,
    pub max_connections: Option<Spanned<usize>>,
    pub header_read_timeout: Option<Spanned<HumanDuration>>,
    pub idle_timeout: Option<Spanned<HumanDuration>>,
    pub handshake_timeout: Option<Spanned<HumanDuration>>,
    pub shutdown_grace: Option<Spanned<HumanDuration>>,
    pub max_header_bytes: Option<Spanned<ByteSize>>,
    #[serde(default)]
    pub trusted_proxies: Vec<access::Cidr>,
    pub proxy_protocol: Option<Spanned<bool>>,
}

/// `[tls]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsTable {
    pub cert_file: Option<Spanned<String>>,
    pub key_file: Option<Spanned<String>>,
    pub dev_ca_cert_file: Option<Spanned<String>>,
    pub dev_ca_key_file: Option<Spanned<String>>,
    pub dev_names: Option<Spanned<Vec<Spanned<String>>>>,
}

/// `[token]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenTable {
    pub url: Option<Spanned<String>>,
    pub issuer: Option<Spanned<String>>,
    pub audience: Option<Spanned<String>>,
    pub default_lifetime: Option<Spanned<HumanDuration>>,
    pub max_lifetime: Option<Spanned<HumanDuration>>,
    pub max_assertion_lifetime: Option<Spanned<HumanDuration>>,
    pub leeway: Option<Spanned<HumanDuration>>,
    pub signing_keys: Option<Spanned<Vec<SigningKeyTable>>>,
}

/// One `[[token.signing_keys]]` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SigningKeyTable {
    pub id: Spanned<String>,
    pub file: Spanned<String>,
}

/// `[limits]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsTable {
    pub max_put_bytes: Option<Spanned<ByteSize>>,
}

/// `[admin]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminTable {
    pub addr: Option<Spanned<Addr>>,
    pub token_file: Option<Spanned<String>>,
    pub revocations_file: Option<Spanned<String>>,
}

/// `[key_service]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyServiceTable {
    #[serde(rename = "type")]
    pub kind: Option<Spanned<String>>,
    pub file: Option<Spanned<String>>,
    pub region: Option<String>,
    pub endpoint_url: Option<Spanned<String>>,
    pub key_id: Option<String>,
    pub cache_ttl: Option<Spanned<HumanDuration>>,
    pub cache_capacity: Option<Spanned<usize>>,
}

/// `[audit]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditTable {
    pub dir: Option<Spanned<String>>,
    pub signing_key_file: Option<Spanned<String>>,
    pub public_key_file: Option<Spanned<String>>,
    pub checkpoint_every: Option<Spanned<u64>>,
    pub checkpoint_interval: Option<Spanned<HumanDuration>>,
    pub max_file_size: Option<Spanned<ByteSize>>,
    pub rotate_interval: Option<Spanned<HumanDuration>>,
    pub retention: Option<Spanned<HumanDuration>>,
    pub unauthenticated_burst: Option<Spanned<u32>>,
    pub unauthenticated_interval: Option<Spanned<HumanDuration>>,
    pub archive: Option<ArchiveTable>,
}

/// `[dev]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DevTable {
    pub bootstrap: Option<bool>,
    pub dir: Option<Spanned<String>>,
}

/// `[stores.<name>]`. One flat struct rather than a tagged enum, so every value keeps its
/// span; which keys each `type` allows is checked in `load`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreTable {
    #[serde(rename = "type")]
    pub kind: Spanned<StoreKind>,
    /// `fs` only.
    pub root: Option<Spanned<String>>,
    /// `s3` only.
    pub region: Option<Spanned<String>>,
    /// `s3` only.
    pub endpoint_url: Option<Spanned<String>>,
    /// `s3` only.
    pub force_path_style: Option<Spanned<bool>>,
}

/// `[shares.<name>]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShareTable {
    pub store: Spanned<String>,
    pub bucket: Spanned<String>,
    pub prefix: Option<Spanned<String>>,
    #[serde(default)]
    pub description: String,
    pub default_classification: Option<ClassificationName>,
    pub encrypt: Option<Spanned<String>>,
    pub key_id: Option<String>,
    pub accept_plaintext: Option<bool>,
    pub dlp_profile: Option<Spanned<String>>,
}

/// `partners/<id>.toml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartnerFile {
    pub id: Spanned<String>,
    pub display_name: Spanned<String>,
    pub owner: Spanned<String>,
    pub contract: Spanned<String>,
    pub justification: Spanned<String>,
    pub status: Status,
    pub review_by: Option<Date>,
    pub valid_from: Option<Spanned<Timestamp>>,
    pub valid_until: Option<Spanned<Timestamp>>,
    pub external_id: Option<Spanned<String>>,
    pub external_id_file: Option<Spanned<String>>,
    pub max_session: Option<Spanned<HumanDuration>>,
    pub allow_cidrs: Option<Vec<Spanned<Cidr>>>,
    pub windows: Option<Vec<Spanned<Window>>>,
    pub require_mfa: Option<bool>,
    pub max_classification: Option<ClassificationName>,
    pub max_object_size: Option<Spanned<ByteSize>>,
    pub rate_limits: Option<RateLimitsTable>,
    pub keys: Option<Spanned<Vec<KeyTable>>>,
    pub federation: Option<FederationTable>,
    #[serde(default)]
    pub deny: Vec<DenyTable>,
    #[serde(default)]
    pub grants: Vec<GrantTable>,
}

impl PartnerFile {
    /// The condition keys, moved out.
    pub fn take_conditions(&mut self) -> ConditionKeys {
        ConditionKeys {
            allow_cidrs: self.allow_cidrs.take(),
            windows: self.windows.take(),
            valid_from: self.valid_from.take(),
            valid_until: None,
            require_mfa: self.require_mfa.take(),
            max_classification: self.max_classification.take(),
            max_object_size: self.max_object_size.take(),
            dlp_profile: None,
        }
    }
}

/// One `[[keys]]` entry of a partner file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyTable {
    pub id: Spanned<String>,
    pub public_key_file: Spanned<String>,
}

/// One `[[grants]]` entry of a partner file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantTable {
    pub share: Spanned<String>,
    pub prefix: Option<Spanned<String>>,
    pub actions: Spanned<Vec<Spanned<ActionName>>>,
    pub allow_cidrs: Option<Vec<Spanned<Cidr>>>,
    pub windows: Option<Vec<Spanned<Window>>>,
    pub valid_from: Option<Spanned<Timestamp>>,
    pub valid_until: Option<Spanned<Timestamp>>,
    pub require_mfa: Option<bool>,
    pub max_classification: Option<ClassificationName>,
    pub max_object_size: Option<Spanned<ByteSize>>,
    pub rate_limits: Option<RateLimitsTable>,
    pub dlp_profile: Option<Spanned<String>>,
    /// Who approved the grant (name or email); someone other than the partner's `owner`.
    pub approved_by: Option<Spanned<String>>,
}

impl GrantTable {
    /// The condition keys, moved out.
    pub fn take_conditions(&mut self) -> ConditionKeys {
        ConditionKeys {
            allow_cidrs: self.allow_cidrs.take(),
            windows: self.windows.take(),
            valid_from: self.valid_from.take(),
            valid_until: self.valid_until.take(),
            require_mfa: self.require_mfa.take(),
            max_classification: self.max_classification.take(),
            max_object_size: self.max_object_size.take(),
            dlp_profile: self.dlp_profile.take(),
        }
    }
}

/// The condition keys partner files and grants share (serde's `flatten` would lose
/// `deny_unknown_fields`, so both tables list them and hand them over in this form).
#[derive(Debug, Default)]
pub struct ConditionKeys {
    pub allow_cidrs: Option<Vec<Spanned<Cidr>>>,
    pub windows: Option<Vec<Spanned<Window>>>,
    pub valid_from: Option<Spanned<Timestamp>>,
    /// Grants only: the partner's `valid_until` stays in `PartnerFile`.
    pub valid_until: Option<Spanned<Timestamp>>,
    pub require_mfa: Option<bool>,
    pub max_classification: Option<ClassificationName>,
    pub max_object_size: Option<Spanned<ByteSize>>,
    /// Grants only.
    pub dlp_profile: Option<Spanned<String>>,
}
