//! `[alerts]` and its rule tables `[alerts.<rule>]` of `gatehouse.toml`.
//!
//! Takes the TOML tables; gives them with typed scalars (durations, byte sizes, a time zone)
//! and the span of every value a later check may point at. Unknown keys fail
//! deserialisation; ranges and the webhook URL are checked by `load::alerts`.

use serde::Deserialize;
use toml::Spanned;

use super::access::Zone;
use super::values::{ByteSize, HumanDuration};

/// `[alerts]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertsTable {
    pub enabled: Option<bool>,
    pub state_file: Option<Spanned<String>>,
    pub save_interval: Option<Spanned<HumanDuration>>,
    pub max_subjects: Option<Spanned<usize>>,
    pub webhook_url: Option<Spanned<String>>,
    pub webhook_secret_file: Option<Spanned<String>>,
    pub webhook_timeout: Option<Spanned<HumanDuration>>,
    pub webhook_queue: Option<Spanned<usize>>,
    pub webhook_max_attempts: Option<Spanned<u32>>,
    pub webhook_backoff: Option<Spanned<HumanDuration>>,
    pub webhook_max_backoff: Option<Spanned<HumanDuration>>,
    #[serde(default)]
    pub denial_burst: BurstTable,
    #[serde(default)]
    pub token_failures: BurstTable,
    #[serde(default)]
    pub new_source_ip: NewSourceIpTable,
    #[serde(default)]
    pub unusual_hours: UnusualHoursTable,
    #[serde(default)]
    pub volume_spike: VolumeSpikeTable,
    #[serde(default)]
    pub dlp_block: DlpBlockTable,
}

/// `[alerts.denial_burst]`, `[alerts.token_failures]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BurstTable {
    pub enabled: Option<bool>,
    pub threshold: Option<Spanned<u32>>,
    pub window: Option<Spanned<HumanDuration>>,
    pub cooldown: Option<Spanned<HumanDuration>>,
}

/// `[alerts.new_source_ip]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewSourceIpTable {
    pub enabled: Option<bool>,
    pub ipv4_prefix: Option<Spanned<u8>>,
    pub ipv6_prefix: Option<Spanned<u8>>,
    pub learning: Option<Spanned<HumanDuration>>,
    pub forget_after: Option<Spanned<HumanDuration>>,
    pub max_networks: Option<Spanned<usize>>,
    pub cooldown: Option<Spanned<HumanDuration>>,
}

/// `[alerts.unusual_hours]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnusualHoursTable {
    pub enabled: Option<bool>,
    pub timezone: Option<Spanned<Zone>>,
    pub min_percent: Option<Spanned<f64>>,
    pub weeks: Option<Spanned<u32>>,
    pub learning_events: Option<Spanned<u64>>,
    pub learning: Option<Spanned<HumanDuration>>,
    pub cooldown: Option<Spanned<HumanDuration>>,
}

/// `[alerts.volume_spike]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VolumeSpikeTable {
    pub enabled: Option<bool>,
    pub stddevs: Option<Spanned<f64>>,
    pub min_bytes: Option<Spanned<ByteSize>>,
    pub ewma_alpha: Option<Spanned<f64>>,
    pub learning_hours: Option<Spanned<u32>>,
    pub cooldown: Option<Spanned<HumanDuration>>,
}

/// `[alerts.dlp_block]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DlpBlockTable {
    pub enabled: Option<bool>,
    pub cooldown: Option<Spanned<HumanDuration>>,
}
