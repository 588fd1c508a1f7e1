//! `[alerts]`: defaults, the documented example, and every range check at its line.

use std::time::Duration;

use super::super::tests::{Fixture, GATEHOUSE, assert_error, line_of};

/// The first ```toml block after the heading `### `[alerts]`` in docs/config.md.
fn documented_example() -> String {
    let doc = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/config.md"),
    )
    .unwrap();
    let after = &doc[doc.find("### `[alerts]`").expect("alerts heading")..];
    let start = after.find("```toml\n").unwrap() + "```toml\n".len();
    let end = start + after[start..].find("```").unwrap();
    after[start..end].to_owned()
}

#[test]
fn absent_table_means_off_with_defaults() {
    let c = Fixture::valid().config();
    assert!(!c.alerts.enabled);
    assert!(c.alerts.webhook.is_none());
    assert!(c.alerts.state_file.ends_with("data/alerts-state.json"));
    assert_eq!(c.alerts.denial_burst.threshold, 20);
    assert_eq!(c.alerts.token_failures.window, Duration::from_secs(900));
}

#[test]
fn the_documented_example_loads() {
    let f = Fixture::valid();
    f.write(
        "config/gatehouse.toml",
        &format!("{GATEHOUSE}\n{}", documented_example()),
    );
    f.write(
        "config/secrets/alerts-webhook.secret",
        "0123456789abcdef0123456789abcdef\n",
    );
    let a = f.config().alerts;
    assert!(a.enabled);
    let hook = a.webhook.expect("webhook");
    assert_eq!(hook.url, "https://soc.example.com/hooks/gatehouse");
    assert_eq!(hook.secret.unwrap().0.len(), 32, "whitespace trimmed");
    assert_eq!(hook.queue, 1000);
    assert_eq!(hook.max_attempts, 8);
    assert_eq!(hook.max_backoff, Duration::from_secs(300));
    assert!(a.state_file.ends_with("data/alerts-state.json"));
    assert_eq!(a.denial_burst.threshold, 20);
    assert_eq!(a.denial_burst.window, Duration::from_secs(60));
    assert_eq!(a.token_failures.threshold, 5);
    assert_eq!(a.new_source_ip.ipv4_prefix, 24);
    assert_eq!(a.new_source_ip.learning, Duration::from_secs(7 * 86400));
    assert_eq!(a.unusual_hours.timezone.iana_name(), Some("Europe/Berlin"));
    assert_eq!(a.unusual_hours.min_percent, 0.5);
    assert_eq!(a.volume_spike.min_bytes, 1 << 30);
    assert_eq!(a.volume_spike.stddevs, 4.0);
    assert!(a.dlp_block.enabled);
    assert_eq!(a.dlp_block.cooldown, Duration::from_secs(600));
}

#[test]
fn bad_values_are_reported_at_their_lines() {
    let f = Fixture::valid();
    let text = format!(
        r#"{GATEHOUSE}
[alerts]
webhook_url = "http://soc.example.com/hook"
webhook_secret_file = "short.secret"
webhook_backoff = "10s"
webhook_max_backoff = "5s"
[alerts.denial_burst]
threshold = 0
[alerts.new_source_ip]
ipv4_prefix = 33
[alerts.unusual_hours]
min_percent = 0.0
[alerts.volume_spike]
ewma_alpha = 1.5
"#
    );
    let path = f.write("config/gatehouse.toml", &text);
    f.write("config/short.secret", "too short\n");
    let errors = f.errors();
    let at = |needle| Some(line_of(&text, needle));
    assert_error(
        &errors,
        "gatehouse.toml",
        at("webhook_url"),
        &["alerts.webhook_url", "https://"],
    );
    assert_error(
        &errors,
        "gatehouse.toml",
        at("webhook_secret_file"),
        &["holds 9 bytes", "at least 32"],
    );
    assert_error(
        &errors,
        "gatehouse.toml",
        at("webhook_max_backoff"),
        &["shorter than"],
    );
    assert_error(
        &errors,
        "gatehouse.toml",
        at("threshold = 0"),
        &["alerts.denial_burst.threshold is 0"],
    );
    assert_error(
        &errors,
        "gatehouse.toml",
        at("ipv4_prefix"),
        &["must be 1 to 32"],
    );
    assert_error(
        &errors,
        "gatehouse.toml",
        at("min_percent"),
        &["min_percent"],
    );
    assert_error(
        &errors,
        "gatehouse.toml",
        at("ewma_alpha"),
        &["ewma_alpha is 1.5"],
    );
    assert!(
        errors.iter().all(|e| !e.message.contains("too short")),
        "the secret is never printed"
    );
    assert_eq!(path.file_name().unwrap(), "gatehouse.toml");
}

#[test]
fn unknown_keys_and_orphan_webhook_settings_fail() {
    let f = Fixture::valid();
    let text = format!("{GATEHOUSE}\n[alerts.denial_burst]\nthreshhold = 3\n");
    f.write("config/gatehouse.toml", &text);
    assert_error(
        &f.errors(),
        "gatehouse.toml",
        Some(line_of(&text, "threshhold")),
        &["unknown field `threshhold`"],
    );
    let text = format!("{GATEHOUSE}\n[alerts]\nwebhook_queue = 10\n");
    f.write("config/gatehouse.toml", &text);
    assert_error(
        &f.errors(),
        "gatehouse.toml",
        Some(line_of(&text, "webhook_queue")),
        &["alerts.webhook_queue is set but alerts.webhook_url is not"],
    );
}
