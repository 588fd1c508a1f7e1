//! Alert rules and their outputs: the `[alerts]` table of `gatehouse.toml`, validated.
//!
//! Read by `crate::alerts`: which rules run with which windows, thresholds, baselines and
//! cool-downs, where the rules' state is kept, and where alerts are posted. Built by
//! `config::load` with every default applied; nothing here reads files or the network
//! (the webhook secret is read by the loader and held here, never printed).

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// `[alerts]`. `enabled` is false when the table is absent.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertsConfig {
    pub enabled: bool,
    /// Where the rules' state (windows, baselines, seen networks, histograms) is kept.
    pub state_file: PathBuf,
    /// How often the state is written when it changed (also written at shutdown).
    pub save_interval: Duration,
    /// Most subjects (partners, client IPs) each rule keeps state for; beyond it the one
    /// seen least recently is forgotten.
    pub max_subjects: usize,
    /// Where alerts are posted; `None`: audit trail and metrics only.
    pub webhook: Option<WebhookConfig>,
    pub denial_burst: BurstRule,
    pub token_failures: BurstRule,
    pub new_source_ip: NewSourceIpRule,
    pub unusual_hours: UnusualHoursRule,
    pub volume_spike: VolumeSpikeRule,
    pub dlp_block: DlpBlockRule,
}

/// The receiver of alert POSTs.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookConfig {
    /// `https://`, or `http://` to a loopback host.
    pub url: String,
    /// Key of the `x-gatehouse-signature` HMAC; `None`: requests are not signed.
    pub secret: Option<WebhookSecret>,
    /// Per attempt, connect to last byte.
    pub timeout: Duration,
    /// Most alerts waiting to be posted; when full the oldest is dropped (and counted).
    pub queue: usize,
    /// Attempts per alert, the first included.
    pub max_attempts: u32,
    /// Pause before the second attempt; doubled before each further one...
    pub backoff: Duration,
    /// ...up to this.
    pub max_backoff: Duration,
}

/// The shared secret of webhook signatures. Its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret(pub Vec<u8>);

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WebhookSecret({} bytes)", self.0.len())
    }
}

/// A count of matching events in a sliding window (`denial_burst`, `token_failures`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BurstRule {
    pub enabled: bool,
    /// Alert when at least this many matching events fall in `window`.
    pub threshold: u32,
    pub window: Duration,
    pub cooldown: Duration,
}

/// A partner's client network not seen before (`new_source_ip`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSourceIpRule {
    pub enabled: bool,
    /// Networks are compared at this prefix length: 32 / 128 compare single addresses.
    pub ipv4_prefix: u8,
    pub ipv6_prefix: u8,
    /// No alert until the partner has been seen for this long.
    pub learning: Duration,
    /// A network not seen for this long counts as new again.
    pub forget_after: Duration,
    /// Most networks kept per partner (least recently seen forgotten first).
    pub max_networks: usize,
    pub cooldown: Duration,
}

/// Access in an hour of the week in which the partner is rarely active (`unusual_hours`).
#[derive(Debug, Clone, PartialEq)]
pub struct UnusualHoursRule {
    pub enabled: bool,
    /// Zone of the hour-of-week histogram.
    pub timezone: jiff::tz::TimeZone,
    /// Alert when the hour holds less than this share (percent) of the partner's traffic.
    pub min_percent: f64,
    /// The histogram's memory: each completed week weighs `(weeks - 1) / weeks` of the one after.
    pub weeks: u32,
    /// No alert before the histogram holds this many requests...
    pub learning_events: u64,
    /// ...and the partner has been seen for this long.
    pub learning: Duration,
    pub cooldown: Duration,
}

/// Bytes per hour above the partner's trailing baseline (`volume_spike`).
#[derive(Debug, Clone, PartialEq)]
pub struct VolumeSpikeRule {
    pub enabled: bool,
    /// Alert when the hour's bytes exceed mean + `stddevs` × standard deviation...
    pub stddevs: f64,
    /// ...and `min_bytes`.
    pub min_bytes: u64,
    /// Weight of the newest completed hour in the exponentially weighted mean and variance.
    pub ewma_alpha: f64,
    /// Completed hours of baseline needed before the rule alerts.
    pub learning_hours: u32,
    pub cooldown: Duration,
}

/// A DLP verdict of `blocked` (`dlp_block`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DlpBlockRule {
    pub enabled: bool,
    pub cooldown: Duration,
}

const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(86400);

impl Default for AlertsConfig {
    /// Off (no `[alerts]` table), state file `alerts-state.json`.
    fn default() -> Self {
        AlertsConfig::off(PathBuf::from("alerts-state.json"))
    }
}

impl AlertsConfig {
    /// Every default, switched off, with the state file at `state_file`.
    pub fn off(state_file: PathBuf) -> AlertsConfig {
        AlertsConfig {
            enabled: false,
            state_file,
            save_interval: MINUTE,
            max_subjects: 10_000,
            webhook: None,
            denial_burst: BurstRule {
                enabled: true,
                threshold: 20,
                window: MINUTE,
                cooldown: 15 * MINUTE,
            },
            token_failures: BurstRule {
                enabled: true,
                threshold: 5,
                window: 15 * MINUTE,
                cooldown: HOUR,
            },
            new_source_ip: NewSourceIpRule {
                enabled: true,
                ipv4_prefix: 24,
                ipv6_prefix: 64,
                learning: 7 * DAY,
                forget_after: 30 * DAY,
                max_networks: 1000,
                cooldown: HOUR,
            },
            unusual_hours: UnusualHoursRule {
                enabled: true,
                timezone: jiff::tz::TimeZone::UTC,
                min_percent: 0.5,
                weeks: 4,
                learning_events: 500,
                learning: 14 * DAY,
                cooldown: 6 * HOUR,
            },
            volume_spike: VolumeSpikeRule {
                enabled: true,
                stddevs: 4.0,
                min_bytes: 1 << 30,
                ewma_alpha: 0.05,
                learning_hours: 72,
                cooldown: HOUR,
            },
            dlp_block: DlpBlockRule {
                enabled: true,
                cooldown: 10 * MINUTE,
            },
        }
    }
}

impl WebhookConfig {
    /// The defaults for a receiver at `url`.
    pub fn to(url: String) -> WebhookConfig {
        WebhookConfig {
            url,
            secret: None,
            timeout: Duration::from_secs(5),
            queue: 1000,
            max_attempts: 8,
            backoff: Duration::from_secs(1),
            max_backoff: 5 * MINUTE,
        }
    }
}
