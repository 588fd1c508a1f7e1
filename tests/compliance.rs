//! `gatehouse lint` on real configuration files through the binary: what it reports, and the
//! exit code CI gates on.

mod common;

use std::process::Command;

use common::{Prepared, Setup};

const LOOSE: &str =
    "[[grants]]\nshare = \"exports\"\nprefix = \"\"\nactions = [\"read\", \"write\"]\n";
const SELF_APPROVED: &str = "valid_until = \"2099-01-01T00:00:00Z\"\n[rate_limits]\nrequests = \"10/s\"\n[[grants]]\nshare = \"exports\"\nprefix = \"reports/\"\nactions = [\"read\"]\napproved_by = \"owner@example.com\"\n";
const TIDY: &str = "valid_until = \"2099-01-01T00:00:00Z\"\n[rate_limits]\nrequests = \"10/s\"\n[[grants]]\nshare = \"exports\"\nprefix = \"reports/\"\nactions = [\"read\", \"list\"]\nmax_classification = \"confidential\"\napproved_by = \"ciso@example.com\"\n";

/// A bootstrapped configuration with these partners; `dev` keeps dev mode on.
async fn prepared(dev: bool) -> Prepared {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let setup = Setup {
        partners: vec![
            ("loose", "active", LOOSE),
            ("selfok", "active", SELF_APPROVED),
            ("tidy", "active", TIDY),
        ],
        ..Setup::default()
    };
    let p = Prepared::write(&setup, listener.local_addr().unwrap());
    let gw = gatehouse::config::load_gateway(&p.config_path).unwrap();
    gatehouse::bootstrap::run(&gw).await.unwrap();
    if !dev {
        let text = std::fs::read_to_string(&p.config_path).unwrap();
        std::fs::write(
            &p.config_path,
            text.replace("bootstrap = true", "bootstrap = false"),
        )
        .unwrap();
    }
    p
}

fn lint(p: &Prepared, extra: &[&str]) -> (Option<i32>, Vec<serde_json::Value>) {
    let out = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .args([
            "lint",
            "--json",
            "--config",
            p.config_path.to_str().unwrap(),
        ])
        .args(extra)
        .output()
        .unwrap();
    let findings = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (out.status.code(), findings)
}

fn rules_for(findings: &[serde_json::Value], who: &str) -> Vec<String> {
    let mut rules: Vec<String> = findings
        .iter()
        .filter(|f| f["subject"].as_str().unwrap().contains(who))
        .map(|f| f["rule"].as_str().unwrap().to_string())
        .collect();
    rules.sort();
    rules.dedup();
    rules
}

#[tokio::test]
async fn lint_reports_what_a_careful_operator_would_fix() {
    let p = prepared(true).await;
    let (code, findings) = lint(&p, &[]);
    assert_eq!(code, Some(1), "{findings:?}");
    let rule = |r: &str| findings.iter().find(|f| f["rule"] == r).cloned();
    assert_eq!(rule("dev-mode").unwrap()["severity"], "high");
    assert_eq!(
        rules_for(&findings, "partner loose"),
        [
            "grant-not-approved",
            "no-classification-ceiling",
            "no-expiry",
            "no-rate-limit",
            "wide-prefix"
        ]
    );
    assert_eq!(
        rules_for(&findings, "partner selfok"),
        ["grant-self-approved", "no-classification-ceiling"]
    );
    let wide = findings
        .iter()
        .find(|f| f["rule"] == "wide-prefix")
        .unwrap();
    assert_eq!(wide["severity"], "medium", "a wide grant that writes");
    // The shares hold restricted data by default and are neither encrypted nor profiled.
    assert!(rule("confidential-share-unencrypted").is_some());
    assert!(rule("confidential-share-without-dlp").is_some());
    // Findings name the partner file.
    let self_approved = rule("grant-self-approved").unwrap();
    assert!(
        self_approved["file"]
            .as_str()
            .unwrap()
            .ends_with("partners/selfok.toml")
    );
}

#[tokio::test]
async fn a_tidy_partner_has_no_findings_and_the_exit_code_follows_fail_on() {
    let p = prepared(false).await;
    let (_, findings) = lint(&p, &["--fail-on", "high"]);
    assert_eq!(rules_for(&findings, "partner tidy"), Vec::<String>::new());
    assert!(findings.iter().all(|f| f["rule"] != "dev-mode"));
    // High findings exist (self-approval, unencrypted shares): exit 1 at --fail-on high.
    assert_eq!(lint(&p, &["--fail-on", "high"]).0, Some(1));

    // Fix everything: no finding at all, exit 0 even at --fail-on info.
    let dir = p.config_path.parent().unwrap();
    std::fs::remove_file(dir.join("partners/selfok.toml")).unwrap();
    std::fs::remove_file(dir.join("partners/loose.toml")).unwrap();
    let text = std::fs::read_to_string(&p.config_path).unwrap();
    std::fs::write(
        &p.config_path,
        text.replace(
            "prefix = \"internal/exp/\"",
            "prefix = \"internal/exp/\"\ndefault_classification = \"internal\"",
        )
        .replace(
            "prefix = \"other/\"",
            "prefix = \"other/\"\ndefault_classification = \"internal\"",
        ),
    )
    .unwrap();
    let (code, findings) = lint(&p, &["--fail-on", "info"]);
    assert_eq!((code, findings), (Some(0), vec![]));
}

#[test]
fn lint_refuses_a_configuration_that_does_not_load() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gatehouse.toml");
    std::fs::write(&path, "nonsense = 1\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .args(["lint", "--config", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
}
