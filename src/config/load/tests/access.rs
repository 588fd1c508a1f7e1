//! Access keys: conditions, deny rules, rate and token limits — defaults, typed values and
//! the line each error points at.

use super::*;
use crate::config::{Classification, DaySet, Rate, RequestRate, TokenLimits};

/// `ACME` with `top` inserted before the first table and `grant` appended to its grant.
fn acme(top: &str, grant: &str) -> String {
    let (head, tables) = ACME.split_at(ACME.find("[[keys]]").unwrap());
    format!("{head}{top}\n{tables}{grant}\n")
}

#[test]
fn absent_keys_mean_no_condition_and_no_limit() {
    let c = Fixture::valid().config();
    let acme = &c.partners["acme"];
    assert_eq!(acme.conditions, Default::default());
    assert!(acme.deny.is_empty());
    assert!(acme.rate_limits.is_unlimited());
    assert_eq!(acme.grants[0].conditions, Default::default());
    assert_eq!(
        c.shares["demo"].default_classification,
        Classification::Restricted
    );
    assert_eq!(c.token_limits, TokenLimits::default());
    assert_eq!(c.token_limits.per_ip.burst, 20);
}

#[test]
fn conditions_load_at_partner_and_grant_level() {
    let f = Fixture::valid();
    let top = r#"valid_from = "2026-01-01T00:00:00Z"
valid_until = 2027-01-01T00:00:00Z
allow_cidrs = ["10.0.0.0/8", "2001:db8::/32", "192.0.2.7"]
windows = [{ days = "mon-fri", from = "08:00", to = "18:00", tz = "Europe/Berlin" }]
max_object_size = "1GiB"

[[deny]]
share = "demo"
prefix = "secret"
actions = ["read", "list"]

[[deny]]
share = "demo"
prefix = "private/"

[rate_limits]
requests = "100/s"
concurrent = 4
download = "10MiB/s"
"#;
    let grant = r#"prefix = "reports"
valid_until = "2026-06-30T00:00:00Z"
windows = [{ days = "fri-mon", from = "22:00", to = "06:00", tz = "America/New_York" }]
require_mfa = true
max_classification = "internal"
rate_limits = { requests = "10/m", burst = 2, upload = "1MB/s" }
"#;
    f.partner("acme", &acme(top, grant));
    let c = f.config();
    let p = &c.partners["acme"];
    assert_eq!(p.valid_until, Some("2027-01-01T00:00:00Z".parse().unwrap()));
    assert_eq!(
        p.conditions.valid_from,
        Some("2026-01-01T00:00:00Z".parse().unwrap())
    );
    assert_eq!(
        p.conditions.valid_until, None,
        "the partner's stays in valid_until"
    );
    let nets: Vec<String> = p
        .conditions
        .allow_cidrs
        .iter()
        .map(|n| n.to_string())
        .collect();
    assert_eq!(nets, ["10.0.0.0/8", "2001:db8::/32", "192.0.2.7/32"]);
    assert_eq!(
        p.conditions.windows[0].to_string(),
        "mon-fri 08:00-18:00 Europe/Berlin"
    );
    assert_eq!(p.conditions.max_object_size, Some(1 << 30));
    assert_eq!(
        (p.deny[0].prefix.as_str(), p.deny[1].prefix.as_str()),
        ("secret/", "private/")
    );
    let denied: Vec<Action> = p.deny[0].actions.iter().collect();
    assert_eq!(denied, [Action::Read, Action::List]);
    assert_eq!(p.deny[1].actions.iter().count(), 4, "no actions: all");
    let r = p.rate_limits.requests.unwrap();
    assert_eq!(
        (r.rate.count, r.burst),
        (100, 100),
        "burst defaults to the count"
    );
    assert_eq!(p.rate_limits.concurrent, Some(4));
    assert_eq!(p.rate_limits.download, Some(10 << 20));
    let g = &p.grants[0];
    assert_eq!(g.prefix, "reports/");
    assert!(g.conditions.require_mfa);
    assert_eq!(
        g.conditions.max_classification,
        Some(Classification::Internal)
    );
    let w = &g.conditions.windows[0];
    assert_eq!((w.from, w.to), (22 * 3600, 6 * 3600));
    assert_eq!(w.days.to_string(), "mon,fri-sun");
    assert_eq!(
        g.rate_limits.requests,
        Some(RequestRate {
            rate: Rate {
                count: 10,
                per: Duration::from_secs(60)
            },
            burst: 2
        })
    );
    assert_eq!(g.rate_limits.upload, Some(1_000_000));
    assert_ne!(w.days, DaySet::ALL);
}

#[test]
fn bad_typed_values_point_at_their_line() {
    let cases = [
        ("allow_cidrs = [\"10.1.2.3/8\"]", "\"10.0.0.0/8\""),
        (
            "allow_cidrs = [\"10.0.0.0/8\", \"nope\"]",
            "invalid CIDR \"nope\"",
        ),
        (
            "windows = [{ from = \"08:00\", to = \"18:00\", tz = \"Europe/Nowhere\" }]",
            "unknown time zone \"Europe/Nowhere\"",
        ),
        (
            "windows = [{ days = \"weekdays\", from = \"08:00\", to = \"18:00\", tz = \"UTC\" }]",
            "invalid days \"weekdays\"",
        ),
        (
            "windows = [{ from = \"8:00\", to = \"18:00\", tz = \"UTC\" }]",
            "invalid time \"8:00\"",
        ),
        (
            "windows = [{ from = \"08:00\", to = \"08:00\", tz = \"UTC\" }]",
            "from and to are equal",
        ),
        (
            "windows = [{ from = \"08:00\", to = \"18:00\", tz = \"UTC\", day = \"mon\" }]",
            "unknown field `day`",
        ),
        (
            "max_classification = \"secret\"",
            "unknown classification \"secret\"",
        ),
        ("max_object_size = \"1 TiB\"", "invalid byte size \"1 TiB\""),
    ];
    for (line, message) in cases {
        let f = Fixture::valid();
        let text = acme(&format!("\n\n{line}"), "");
        f.partner("acme", &text);
        let want = line_of(&text, line.split(" =").next().unwrap());
        assert_error(&f.errors(), "acme.toml", Some(want), &[message]);
    }
}

#[test]
fn cross_field_problems_point_at_the_value() {
    let f = Fixture::valid();
    let top = r#"valid_from = "2027-01-01T00:00:00Z"
valid_until = "2026-01-01T00:00:00Z"
max_object_size = 0

[[deny]]
share = "nowhere"
actions = []

[rate_limits]
burst = 5
concurrent = 0
"#;
    let grant = r#"valid_from = "2026-05-01T00:00:00Z"
valid_until = "2026-05-01T00:00:00Z"
"#;
    let text = acme(top, grant);
    f.partner("acme", &text);
    let errors = f.errors();
    let at = |needle: &str| Some(line_of(&text, needle));
    assert_error(
        &errors,
        "acme.toml",
        at("valid_from = \"2027"),
        &["is not before valid_until"],
    );
    assert_error(
        &errors,
        "acme.toml",
        at("max_object_size"),
        &["must be above 0"],
    );
    assert_error(
        &errors,
        "acme.toml",
        at("\"nowhere\""),
        &["unknown share \"nowhere\""],
    );
    assert_error(
        &errors,
        "acme.toml",
        at("actions = []"),
        &["empty actions list"],
    );
    assert_error(
        &errors,
        "acme.toml",
        at("burst = 5"),
        &["burst needs rate_limits.requests"],
    );
    assert_error(&errors, "acme.toml", at("concurrent = 0"), &["at least 1"]);
    assert_error(
        &errors,
        "acme.toml",
        at("valid_from = \"2026-05"),
        &["grant on share \"demo\"", "is not before"],
    );
}

#[test]
fn share_classification_and_token_limits_load_from_gatehouse_toml() {
    let f = Fixture::valid();
    let text = format!(
        "{GATEHOUSE}default_classification = \"internal\"\n\n[token_limits]\nper_ip = \"10/s\"\nlockout_after = 3\nlockout_window = \"5m\"\nlockout_for = \"1h\"\n"
    );
    f.write("config/gatehouse.toml", &text);
    let c = f.config();
    assert_eq!(
        c.shares["demo"].default_classification,
        Classification::Internal
    );
    let t = c.token_limits;
    assert_eq!((t.per_ip.rate.count, t.per_ip.burst), (10, 10));
    assert_eq!(t.lockout_after, 3);
    assert_eq!(t.lockout_window, Duration::from_secs(300));
    assert_eq!(t.lockout_for, Duration::from_secs(3600));

    let bad = format!("{GATEHOUSE}\n[token_limits]\nper_ip = \"10\"\nlockout_after = 0\n");
    f.write("config/gatehouse.toml", &bad);
    assert_error(
        &f.errors(),
        "gatehouse.toml",
        Some(line_of(&bad, "per_ip")),
        &["invalid rate \"10\""],
    );
    let zero = format!("{GATEHOUSE}\n[token_limits]\nlockout_after = 0\n");
    f.write("config/gatehouse.toml", &zero);
    assert_error(
        &f.errors(),
        "gatehouse.toml",
        Some(line_of(&zero, "lockout_after")),
        &["lockout_after must be at least 1"],
    );
}
