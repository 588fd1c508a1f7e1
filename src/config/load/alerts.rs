//! `[alerts]`: the rules' windows, thresholds, baselines and cool-downs, the state file and
//! the webhook.
//!
//! Takes the raw table (absent: alerts off), the config file's directory and the data
//! directory; gives an [`AlertsConfig`] with every default applied. Out-of-range values are
//! recorded as errors at their line and replaced by the default so checking goes on. Reads
//! `webhook_secret_file` (at least 32 bytes once surrounding whitespace is removed); the
//! secret is never printed, only the path and the length.

use std::path::Path;
use std::time::Duration;

use toml::Spanned;

use super::checks;
use super::gateway::timeout as duration;
use super::gateway::{path_or, show};
use super::report::FileReport;
use crate::config::model::{AlertsConfig, WebhookConfig, WebhookSecret};
use crate::config::raw::{
    AlertsTable, BurstTable, HumanDuration, NewSourceIpTable, UnusualHoursTable, VolumeSpikeTable,
};

/// Shortest webhook secret accepted, in bytes.
const MIN_SECRET: usize = 32;

pub fn alerts(
    f: &mut FileReport,
    raw: Option<AlertsTable>,
    base: &Path,
    data_dir: &Path,
) -> AlertsConfig {
    let Some(raw) = raw else {
        return AlertsConfig::off(data_dir.join("alerts-state.json"));
    };
    let webhook = webhook(f, &raw, base);
    let state_file = path_or(f, "alerts.state_file", raw.state_file, base, || {
        data_dir.join("alerts-state.json")
    });
    let d = AlertsConfig::off(state_file.clone());
    AlertsConfig {
        enabled: raw.enabled.unwrap_or(true),
        state_file,
        save_interval: duration(
            f,
            "alerts.save_interval",
            raw.save_interval,
            d.save_interval,
        ),
        max_subjects: count(f, "alerts.max_subjects", raw.max_subjects, d.max_subjects),
        webhook,
        denial_burst: burst(f, "alerts.denial_burst", raw.denial_burst, &d.denial_burst),
        token_failures: burst(
            f,
            "alerts.token_failures",
            raw.token_failures,
            &d.token_failures,
        ),
        new_source_ip: new_source_ip(f, raw.new_source_ip, &d),
        unusual_hours: unusual_hours(f, raw.unusual_hours, &d),
        volume_spike: volume_spike(f, raw.volume_spike, &d),
        dlp_block: crate::config::model::DlpBlockRule {
            enabled: raw.dlp_block.enabled.unwrap_or(true),
            cooldown: or_default(raw.dlp_block.cooldown, d.dlp_block.cooldown),
        },
    }
}

fn webhook(f: &mut FileReport, raw: &AlertsTable, base: &Path) -> Option<WebhookConfig> {
    let Some(url) = &raw.webhook_url else {
        for (span, key) in [
            (
                raw.webhook_secret_file.as_ref().map(Spanned::span),
                "webhook_secret_file",
            ),
            (
                raw.webhook_timeout.as_ref().map(Spanned::span),
                "webhook_timeout",
            ),
            (
                raw.webhook_queue.as_ref().map(Spanned::span),
                "webhook_queue",
            ),
            (
                raw.webhook_max_attempts.as_ref().map(Spanned::span),
                "webhook_max_attempts",
            ),
            (
                raw.webhook_backoff.as_ref().map(Spanned::span),
                "webhook_backoff",
            ),
            (
                raw.webhook_max_backoff.as_ref().map(Spanned::span),
                "webhook_max_backoff",
            ),
        ] {
            if span.is_some() {
                f.at(
                    span,
                    format!("alerts.{key} is set but alerts.webhook_url is not"),
                );
            }
        }
        return None;
    };
    if let Err(e) = checks::endpoint_url(url.get_ref()) {
        f.value(
            url,
            format!("alerts.webhook_url: {}", e.replacen("endpoint_url ", "", 1)),
        );
    }
    let d = WebhookConfig::to(url.get_ref().clone());
    let backoff = duration(
        f,
        "alerts.webhook_backoff",
        raw.webhook_backoff.clone(),
        d.backoff,
    );
    let max_backoff = duration(
        f,
        "alerts.webhook_max_backoff",
        raw.webhook_max_backoff.clone(),
        d.max_backoff,
    );
    if max_backoff < backoff
        && let Some(v) = &raw.webhook_max_backoff
    {
        f.value(
            v,
            format!(
                "alerts.webhook_max_backoff {:?} is shorter than alerts.webhook_backoff {:?}",
                show(max_backoff),
                show(backoff)
            ),
        );
    }
    Some(WebhookConfig {
        secret: raw
            .webhook_secret_file
            .as_ref()
            .and_then(|file| secret(f, file, base)),
        timeout: duration(
            f,
            "alerts.webhook_timeout",
            raw.webhook_timeout.clone(),
            d.timeout,
        ),
        queue: count(
            f,
            "alerts.webhook_queue",
            raw.webhook_queue.clone(),
            d.queue,
        ),
        max_attempts: count(
            f,
            "alerts.webhook_max_attempts",
            raw.webhook_max_attempts.clone(),
            d.max_attempts,
        ),
        backoff,
        max_backoff: max_backoff.max(backoff),
        url: d.url,
    })
}

/// Reads the webhook secret: the file's bytes without surrounding whitespace.
fn secret(f: &mut FileReport, file: &Spanned<String>, base: &Path) -> Option<WebhookSecret> {
    if file.get_ref().trim().is_empty() {
        f.value(file, "alerts.webhook_secret_file must not be empty");
        return None;
    }
    let path = base.join(file.get_ref());
    match std::fs::read(&path) {
        Ok(bytes) => {
            let text = bytes.trim_ascii();
            if text.len() < MIN_SECRET {
                f.value(
                    file,
                    format!(
                        "alerts.webhook_secret_file {} holds {} bytes; at least {MIN_SECRET} needed",
                        path.display(),
                        text.len()
                    ),
                );
                return None;
            }
            Some(WebhookSecret(text.to_vec()))
        }
        Err(e) => {
            f.value(
                file,
                format!("alerts.webhook_secret_file {}: {e}", path.display()),
            );
            None
        }
    }
}

fn burst(
    f: &mut FileReport,
    key: &str,
    raw: BurstTable,
    d: &crate::config::model::BurstRule,
) -> crate::config::model::BurstRule {
    crate::config::model::BurstRule {
        enabled: raw.enabled.unwrap_or(true),
        threshold: count(f, &format!("{key}.threshold"), raw.threshold, d.threshold),
        window: duration(f, &format!("{key}.window"), raw.window, d.window),
        cooldown: or_default(raw.cooldown, d.cooldown),
    }
}

fn new_source_ip(
    f: &mut FileReport,
    raw: NewSourceIpTable,
    d: &AlertsConfig,
) -> crate::config::model::NewSourceIpRule {
    let d = &d.new_source_ip;
    let k = "alerts.new_source_ip";
    crate::config::model::NewSourceIpRule {
        enabled: raw.enabled.unwrap_or(true),
        ipv4_prefix: prefix(
            f,
            &format!("{k}.ipv4_prefix"),
            raw.ipv4_prefix,
            32,
            d.ipv4_prefix,
        ),
        ipv6_prefix: prefix(
            f,
            &format!("{k}.ipv6_prefix"),
            raw.ipv6_prefix,
            128,
            d.ipv6_prefix,
        ),
        learning: or_default(raw.learning, d.learning),
        forget_after: duration(
            f,
            &format!("{k}.forget_after"),
            raw.forget_after,
            d.forget_after,
        ),
        max_networks: count(
            f,
            &format!("{k}.max_networks"),
            raw.max_networks,
            d.max_networks,
        ),
        cooldown: or_default(raw.cooldown, d.cooldown),
    }
}

fn unusual_hours(
    f: &mut FileReport,
    raw: UnusualHoursTable,
    d: &AlertsConfig,
) -> crate::config::model::UnusualHoursRule {
    let d = &d.unusual_hours;
    let k = "alerts.unusual_hours";
    let min_percent = match raw.min_percent {
        Some(v) if !(*v.get_ref() > 0.0 && *v.get_ref() < 100.0) => {
            f.value(
                &v,
                format!(
                    "{k}.min_percent is {}; must be above 0 and below 100",
                    v.get_ref()
                ),
            );
            d.min_percent
        }
        Some(v) => v.into_inner(),
        None => d.min_percent,
    };
    let weeks = match raw.weeks {
        Some(v) if *v.get_ref() < 2 => {
            f.value(
                &v,
                format!("{k}.weeks is {}; must be 2 or more", v.get_ref()),
            );
            d.weeks
        }
        Some(v) => v.into_inner(),
        None => d.weeks,
    };
    crate::config::model::UnusualHoursRule {
        enabled: raw.enabled.unwrap_or(true),
        timezone: raw
            .timezone
            .map_or_else(|| d.timezone.clone(), |z| z.into_inner().0),
        min_percent,
        weeks,
        learning_events: raw
            .learning_events
            .map_or(d.learning_events, Spanned::into_inner),
        learning: or_default(raw.learning, d.learning),
        cooldown: or_default(raw.cooldown, d.cooldown),
    }
}

fn volume_spike(
    f: &mut FileReport,
    raw: VolumeSpikeTable,
    d: &AlertsConfig,
) -> crate::config::model::VolumeSpikeRule {
    let d = &d.volume_spike;
    let k = "alerts.volume_spike";
    let stddevs = match raw.stddevs {
        Some(v) if !(v.get_ref().is_finite() && *v.get_ref() >= 0.0) => {
            f.value(
                &v,
                format!("{k}.stddevs is {}; must be 0 or more", v.get_ref()),
            );
            d.stddevs
        }
        Some(v) => v.into_inner(),
        None => d.stddevs,
    };
    let ewma_alpha = match raw.ewma_alpha {
        Some(v) if !(*v.get_ref() > 0.0 && *v.get_ref() <= 1.0) => {
            f.value(
                &v,
                format!(
                    "{k}.ewma_alpha is {}; must be above 0 and at most 1",
                    v.get_ref()
                ),
            );
            d.ewma_alpha
        }
        Some(v) => v.into_inner(),
        None => d.ewma_alpha,
    };
    let min_bytes = raw.min_bytes.map(|s| {
        let span = s.span();
        Spanned::new(span, s.into_inner().0)
    });
    crate::config::model::VolumeSpikeRule {
        enabled: raw.enabled.unwrap_or(true),
        stddevs,
        min_bytes: count(f, &format!("{k}.min_bytes"), min_bytes, d.min_bytes),
        ewma_alpha,
        learning_hours: raw
            .learning_hours
            .map_or(d.learning_hours, Spanned::into_inner),
        cooldown: or_default(raw.cooldown, d.cooldown),
    }
}

/// A count that must be above zero.
fn count<T>(f: &mut FileReport, key: &str, raw: Option<Spanned<T>>, default: T) -> T
where
    T: Copy + Default + PartialEq + std::fmt::Display,
{
    match raw {
        Some(v) if *v.get_ref() == T::default() => {
            f.value(&v, format!("{key} is 0; must be greater than 0"));
            default
        }
        Some(v) => v.into_inner(),
        None => default,
    }
}

/// A prefix length between 1 and `max`.
fn prefix(f: &mut FileReport, key: &str, raw: Option<Spanned<u8>>, max: u8, default: u8) -> u8 {
    match raw {
        Some(v) if *v.get_ref() == 0 || *v.get_ref() > max => {
            f.value(&v, format!("{key} is {}; must be 1 to {max}", v.get_ref()));
            default
        }
        Some(v) => v.into_inner(),
        None => default,
    }
}

/// A cool-down or learning period: zero is allowed (no wait).
fn or_default(raw: Option<Spanned<HumanDuration>>, default: Duration) -> Duration {
    raw.map_or(default, |v| v.into_inner().0)
}

#[cfg(test)]
#[path = "alerts_tests.rs"]
mod tests;
