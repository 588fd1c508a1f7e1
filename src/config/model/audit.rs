//! `[audit.archive]`: where sealed audit files and checkpoint anchors go off the host.

use std::path::PathBuf;
use std::time::Duration;

/// The S3 archive of the audit trail (docs/audit.md, "Archive and anchors").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveConfig {
    pub bucket: String,
    /// Key prefix, empty or ending in `/`. Files go to `<prefix><file name>`, anchors to
    /// `<prefix>anchors/<seq>.json`.
    pub prefix: String,
    pub region: Option<String>,
    pub endpoint_url: Option<String>,
    pub force_path_style: bool,
    /// Object Lock retention put on every object, when the bucket has Object Lock enabled.
    pub object_lock: Option<ObjectLock>,
    /// The durable record of what was shipped and anchored (written atomically).
    pub state_file: PathBuf,
    /// Wait before the second attempt after a failure, doubled each time...
    pub backoff: Duration,
    /// ...up to this.
    pub max_backoff: Duration,
    /// How long shutdown waits for the last checkpoint's anchor and the last files.
    pub shutdown_wait: Duration,
}

impl ArchiveConfig {
    /// The defaults for `bucket`, the state file beside the audit directory `dir` (for tests
    /// and tools without a config file).
    pub fn at(bucket: &str, dir: &std::path::Path) -> ArchiveConfig {
        let beside = dir.parent().map(PathBuf::from).unwrap_or_default();
        ArchiveConfig {
            bucket: bucket.to_string(),
            prefix: String::new(),
            region: None,
            endpoint_url: None,
            force_path_style: false,
            object_lock: None,
            state_file: beside.join("audit-archive.json"),
            backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(300),
            shutdown_wait: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectLock {
    pub mode: ObjectLockMode,
    /// Days each object is retained (cannot be deleted or overwritten) from its upload.
    pub days: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectLockMode {
    /// Users with `s3:BypassGovernanceRetention` can still delete.
    Governance,
    /// Nobody can delete before the date, the root account included.
    Compliance,
}
