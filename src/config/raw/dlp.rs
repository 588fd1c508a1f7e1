//! `[dlp]` and `[dlp.profiles.NAME]` of `gatehouse.toml`.
//!
//! Takes the TOML tables; gives them with the span of every value a later check may point
//! at. Actions are kept as TOML values (a name, or an inline table for `mask`) so the loader
//! can say exactly what is wrong with one, at its line. Unknown keys fail deserialisation.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

use super::access::ClassificationName;

/// `[dlp]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DlpTable {
    pub token_secret_file: Option<Spanned<String>>,
    /// A wrapped FF1 key file made by `gatehouse dlp fpe-key`, for `tokenize_fpe`.
    pub fpe_key_file: Option<Spanned<String>>,
    #[serde(default)]
    pub profiles: BTreeMap<Spanned<String>, Spanned<ProfileTable>>,
}

/// `[dlp.profiles.NAME]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileTable {
    pub detectors: Option<Spanned<Vec<Spanned<String>>>>,
    pub default_action: Option<Spanned<toml::Value>>,
    #[serde(default)]
    pub actions: BTreeMap<Spanned<String>, Spanned<toml::Value>>,
    #[serde(default)]
    pub columns: BTreeMap<Spanned<String>, Spanned<toml::Value>>,
    #[serde(default)]
    pub fields: BTreeMap<Spanned<String>, Spanned<toml::Value>>,
    pub on_unscannable: Option<Spanned<String>>,
    #[serde(default)]
    pub classify: BTreeMap<Spanned<String>, Spanned<ClassificationName>>,
    pub min_classification: Option<ClassificationName>,
    pub csv: Option<CsvTable>,
}

/// `csv = { has_header = false }` in a profile: the CSV/TSV dialect.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CsvTable {
    pub has_header: Option<bool>,
}
