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

use super::checks;
use super::gateway::{path_or, show};
use super::report::FileReport;
use crate::config::model::{ArchiveConfig, AuditConfig, ObjectLock, ObjectLockMode};
use crate::config::raw::{ArchiveTable, AuditTable, HumanDuration};

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
        archive: raw.archive.map(|a| archive(f, a, base, data_dir, &dir)),
        dir,
    }
}

/// `[audit.archive]`: every problem reported, defaults applied so checking goes on.
fn archive(
    f: &mut FileReport,
    raw: ArchiveTable,
    base: &Path,
    data_dir: &Path,
    dir: &Path,
) -> ArchiveConfig {
    let d = ArchiveConfig::at(raw.bucket.get_ref(), dir);
    if let Err(e) = checks::bucket(raw.bucket.get_ref()) {
        f.value(&raw.bucket, format!("audit.archive.bucket: {e}"));
    }
    let prefix = match raw.prefix {
        Some(p) => checks::prefix(p.get_ref()).unwrap_or_else(|e| {
            f.value(&p, format!("audit.archive.prefix: {e}"));
            String::new()
        }),
        None => String::new(),
    };
    if let Some(r) = &raw.region
        && r.get_ref().trim().is_empty()
    {
        f.value(r, "audit.archive.region must not be empty");
    }
    if let Some(url) = &raw.endpoint_url
        && let Err(e) = checks::endpoint_url(url.get_ref())
    {
        f.value(url, format!("audit.archive.{e}"));
    }
    let object_lock = match (raw.object_lock_mode, raw.object_lock_days) {
        (None, None) => None,
        (Some(mode), Some(days)) => {
            let m = match mode.get_ref().as_str() {
                "governance" => Some(ObjectLockMode::Governance),
                "compliance" => Some(ObjectLockMode::Compliance),
                other => {
                    f.value(
                        &mode,
                        format!("audit.archive.object_lock_mode {other:?}: must be \"governance\" or \"compliance\""),
                    );
                    None
                }
            };
            if *days.get_ref() == 0 {
                f.value(
                    &days,
                    "audit.archive.object_lock_days is 0; must be greater than 0",
                );
            }
            m.filter(|_| *days.get_ref() > 0).map(|mode| ObjectLock {
                mode,
                days: days.into_inner(),
            })
        }
        (Some(v), None) => {
            f.value(&v, "audit.archive.object_lock_mode needs object_lock_days");
            None
        }
        (None, Some(v)) => {
            f.value(&v, "audit.archive.object_lock_days needs object_lock_mode");
            None
        }
    };
    let backoff = duration(f, "audit.archive.backoff", raw.backoff).unwrap_or(d.backoff);
    let max_backoff = match raw.max_backoff {
        Some(v) if v.get_ref().0 < backoff => {
            f.value(
                &v,
                format!(
                    "audit.archive.max_backoff is {:?}; must be at least backoff ({:?})",
                    show(v.get_ref().0),
                    show(backoff)
                ),
            );
            d.max_backoff.max(backoff)
        }
        v => duration(f, "audit.archive.max_backoff", v).unwrap_or(d.max_backoff.max(backoff)),
    };
    ArchiveConfig {
        bucket: raw.bucket.into_inner(),
        prefix,
        region: raw.region.map(Spanned::into_inner),
        endpoint_url: raw.endpoint_url.map(Spanned::into_inner),
        force_path_style: raw.force_path_style.unwrap_or(false),
        object_lock,
        state_file: path_or(f, "audit.archive.state_file", raw.state_file, base, || {
            data_dir.join("audit-archive.json")
        }),
        backoff,
        max_backoff,
        shutdown_wait: duration(f, "audit.archive.shutdown_wait", raw.shutdown_wait)
            .unwrap_or(d.shutdown_wait),
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

#[cfg(test)]
mod tests {
    use crate::config::load::tests::{Fixture, GATEHOUSE};
    use crate::config::{ObjectLock, ObjectLockMode};

    #[test]
    fn archive_table_loads_with_defaults_and_reports_every_mistake() {
        let f = Fixture::valid();
        let text = format!(
            "{GATEHOUSE}\n[audit.archive]\nbucket = \"audit-bucket\"\nprefix = \"gw\"\nobject_lock_mode = \"compliance\"\nobject_lock_days = 30\n"
        );
        f.write("config/gatehouse.toml", &text);
        let a = f.config().audit.archive.expect("archive configured");
        assert_eq!(
            (a.bucket.as_str(), a.prefix.as_str()),
            ("audit-bucket", "gw/")
        );
        assert_eq!(
            a.object_lock,
            Some(ObjectLock {
                mode: ObjectLockMode::Compliance,
                days: 30
            })
        );
        assert!(a.state_file.ends_with("audit-archive.json"));

        let text = format!(
            "{GATEHOUSE}\n[audit.archive]\nbucket = \"Bad_Bucket\"\nendpoint_url = \"http://example.com\"\nobject_lock_mode = \"forever\"\nobject_lock_days = 0\nbackoff = \"10s\"\nmax_backoff = \"1s\"\n"
        );
        f.write("config/gatehouse.toml", &text);
        let errors: Vec<String> = f.errors().iter().map(ToString::to_string).collect();
        for needle in [
            "audit.archive.bucket",
            "audit.archive.endpoint_url",
            "object_lock_mode \"forever\"",
            "object_lock_days is 0",
            "max_backoff",
        ] {
            assert!(
                errors.iter().any(|e| e.contains(needle)),
                "{needle}: {errors:?}"
            );
        }
        let text =
            format!("{GATEHOUSE}\n[audit.archive]\nbucket = \"b-1\"\nobject_lock_days = 3\n");
        f.write("config/gatehouse.toml", &text);
        let errors: Vec<String> = f.errors().iter().map(ToString::to_string).collect();
        assert!(
            errors
                .iter()
                .any(|e| e.contains("object_lock_days needs object_lock_mode")),
            "{errors:?}"
        );
    }
}
