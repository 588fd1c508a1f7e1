//! `[audit.archive]` as written.

use serde::Deserialize;
use toml::Spanned;

use super::HumanDuration;

/// `[audit.archive]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArchiveTable {
    pub bucket: Spanned<String>,
    pub prefix: Option<Spanned<String>>,
    pub region: Option<Spanned<String>>,
    pub endpoint_url: Option<Spanned<String>>,
    pub force_path_style: Option<bool>,
    pub object_lock_mode: Option<Spanned<String>>,
    pub object_lock_days: Option<Spanned<u32>>,
    pub state_file: Option<Spanned<String>>,
    pub backoff: Option<Spanned<HumanDuration>>,
    pub max_backoff: Option<Spanned<HumanDuration>>,
    pub shutdown_wait: Option<Spanned<HumanDuration>>,
}
