//! `[audit]`: the trail's directory, checkpoint key, checkpoint cadence, rotation, retention
//! and the aggregation of unauthenticated refusals.
//!
//! Takes the raw table, the config file's directory and the data directory; gives an
//! [`AuditConfig`] with every default applied. Zero counts and durations are recorded as
//! errors (a zero would mean "checkpoint or rotate on every record" or "keep nothing") and
//! replaced by the default so checking goes on.

use std::path::Path;
use std::time::Duration;

use toml::Spanned;

use super::gateway::{path_or, show};
use super::report::FileReport;
use crate::config::model::AuditConfig;
use crate::config::raw::{AuditTable, HumanDuration};

pub fn audit(f: &mut FileReport, raw: AuditTable, base: &Path, data_dir: &Path) -> AuditConfig {
    let dir = path_or(f, "audit.dir", raw.dir, base, || data_dir.join("audit"));
    let d = AuditConfig::at(dir.clone());
    let max_file_size = raw.max_file_size.map(|s| {
        let span = s.span();
        Spanned::new(span, s.into_inner().0)
    });
    AuditConfig {
        signing_key_file: path_or(
            f,
            "audit.signing_key_file",
            raw.signing_key_file,
            base,
            || data_dir.join("keys/audit-signing.pem"),
        ),
        public_key_file: path_or(
            f,
            "audit.public_key_file",
            raw.public_key_file,
            base,
            || data_dir.join("keys/audit-signing.pub.pem"),
        ),
        checkpoint_every: above_zero(f, "audit.checkpoint_every", raw.checkpoint_every)
            .unwrap_or(d.checkpoint_every),
        checkpoint_interval: duration(f, "audit.checkpoint_interval", raw.checkpoint_interval)
            .unwrap_or(d.checkpoint_interval),
        max_file_size: above_zero(f, "audit.max_file_size", max_file_size)
            .unwrap_or(d.max_file_size),
        rotate_interval: duration(f, "audit.rotate_interval", raw.rotate_interval)
            .unwrap_or(d.rotate_interval),
        retention: duration(f, "audit.retention", raw.retention),
        unauthenticated_burst: raw
            .unauthenticated_burst
            .map_or(d.unauthenticated_burst, Spanned::into_inner),
        unauthenticated_interval: duration(
            f,
            "audit.unauthenticated_interval",
            raw.unauthenticated_interval,
        )
        .unwrap_or(d.unauthenticated_interval),
        dir,
    }
}

fn above_zero(f: &mut FileReport, key: &str, raw: Option<Spanned<u64>>) -> Option<u64> {
    let v = raw?;
    if *v.get_ref() == 0 {
        f.value(&v, format!("{key} is 0; must be greater than 0"));
        return None;
    }
    Some(v.into_inner())
}

fn duration(
    f: &mut FileReport,
    key: &str,
    raw: Option<Spanned<HumanDuration>>,
) -> Option<Duration> {
    let v = raw?;
    if v.get_ref().0.is_zero() {
        f.value(
            &v,
            format!("{key} is {:?}; must be greater than 0", show(v.get_ref().0)),
        );
        return None;
    }
    Some(v.into_inner().0)
}
