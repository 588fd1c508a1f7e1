//! Placeholder: replaced by the config implementation.
use std::path::{Path, PathBuf};

use super::Config;

#[derive(Debug, Clone)]
pub struct ConfigError {
    pub file: PathBuf,
    pub line: Option<usize>,
    pub message: String,
}

#[derive(Debug, Clone)]
pub struct ConfigErrors(pub Vec<ConfigError>);

pub fn load(_path: &Path) -> Result<Config, ConfigErrors> {
    Err(ConfigErrors(vec![]))
}
