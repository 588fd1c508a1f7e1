//! `policy explain` as a function: first line, the deciding rule, usage errors.

use std::path::PathBuf;

use super::load;
use crate::config::{Action, Classification};
use crate::policy::explain::{ExplainArgs, explain};

fn args(action: Action, path: &str) -> ExplainArgs {
    ExplainArgs {
        config: PathBuf::new(),
        partner: "acme".to_owned(),
        action,
        path: path.to_owned(),
        ip: Some("192.0.2.7".parse().unwrap()),
        at: Some("2026-03-02T09:00:00Z".parse().unwrap()),
        mfa: false,
        classification: None,
        size: None,
    }
}

const BODY: &str = r#"
[[grants]]
share = "exports"
prefix = "reports"
actions = ["read", "list"]
require_mfa = true
max_classification = "confidential"
windows = [{ days = "mon-fri", from = "08:00", to = "18:00", tz = "Europe/Berlin" }]

[[deny]]
share = "exports"
prefix = "reports/hr"
"#;

fn run(a: &ExplainArgs) -> (bool, String) {
    let (_d, cfg) = load(BODY);
    let now = "2030-01-01T00:00:00Z".parse().unwrap();
    let (decision, text) = explain(&cfg, a, now).unwrap();
    (decision.is_allow(), text)
}

#[test]
fn allow_names_the_grant() {
    let a = ExplainArgs {
        mfa: true,
        classification: Some(Classification::Internal),
        ..args(Action::Read, "exports/reports/q1.csv")
    };
    let (allowed, text) = run(&a);
    assert!(allowed, "{text}");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "ALLOW");
    assert!(
        lines[1].starts_with("allowed by grant #1 (share \"exports\", prefix \"reports/\""),
        "{text}"
    );
    assert!(text.contains("conditions hold"), "{text}");
}

#[test]
fn deny_gives_the_code_first_then_why() {
    let (allowed, text) = run(&args(Action::Read, "exports/reports/q1.csv"));
    assert!(!allowed);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "DENY mfa_required");
    assert!(
        lines[1].contains("grant #1") && lines[1].contains("--mfa"),
        "{text}"
    );
    assert!(lines[2].contains("session level"), "{text}");

    let restricted = ExplainArgs {
        mfa: true,
        ..args(Action::Read, "exports/reports/q1.csv")
    };
    let (_, text) = run(&restricted);
    assert!(text.starts_with("DENY classification_exceeded\n"), "{text}");
    assert!(text.contains("restricted (share default)"), "{text}");
    assert!(text.contains("plain AccessDenied"), "{text}");

    let saturday = ExplainArgs {
        mfa: true,
        at: Some("2026-03-07T09:00:00Z".parse().unwrap()),
        ..args(Action::Read, "exports/reports/q1.csv")
    };
    let (_, text) = run(&saturday);
    assert!(text.starts_with("DENY outside_time_window\n"), "{text}");
    assert!(
        text.contains("mon-fri 08:00-18:00 Europe/Berlin (local time 2026-03-07T10:00:00)"),
        "{text}"
    );

    let (_, text) = run(&args(Action::Read, "exports/reports/hr/pay.csv"));
    assert!(
        text.starts_with("DENY explicitly_denied\ndecided by deny rule #1"),
        "{text}"
    );
    let (_, text) = run(&args(Action::Write, "exports/reports/x"));
    assert!(text.starts_with("DENY no_grant\n"), "{text}");
    assert!(text.contains("does not allow write"), "{text}");
    let (_, text) = run(&args(Action::Read, "public/x"));
    assert!(text.starts_with("DENY share_not_granted\n"), "{text}");
}

#[test]
fn list_takes_an_empty_prefix() {
    let a = ExplainArgs {
        mfa: true,
        ..args(Action::List, "exports/")
    };
    let (allowed, text) = run(&a);
    assert!(allowed, "{text}");
}

#[test]
fn usage_errors() {
    let (_d, cfg) = load(BODY);
    let now = "2030-01-01T00:00:00Z".parse().unwrap();
    let unknown = ExplainArgs {
        partner: "nobody".to_owned(),
        ..args(Action::Read, "exports/x")
    };
    assert!(
        explain(&cfg, &unknown, now)
            .unwrap_err()
            .contains("unknown partner \"nobody\"")
    );
    for path in ["/x", "exports/a/../b", "exports"] {
        let e = explain(&cfg, &args(Action::Read, path), now).unwrap_err();
        assert!(e.contains("--path"), "{path}: {e}");
    }
}
