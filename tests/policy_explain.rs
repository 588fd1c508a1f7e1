//! `gatehouse policy explain` run as a process on a temporary configuration: first line,
//! exit codes 0 / 1 / 2, and time zones without a system zoneinfo directory.

use std::path::Path;
use std::process::{Command, Output};

const GATEHOUSE: &str = r#"data_dir = "../data"

[stores.local]
type = "fs"
root = "../data/objects"

[shares.exports]
store = "local"
bucket = "exports"
"#;

const ACME: &str = r#"id = "acme"
display_name = "Acme"
owner = "owner@example.com"
contract = "C-1"
justification = "tests"
status = "active"
external_id = "0123456789abcdef"
allow_cidrs = ["192.0.2.0/24", "2001:db8::/32"]

[[keys]]
id = "k1"
public_key_file = "acme.pub.pem"

[[grants]]
share = "exports"
prefix = "reports"
actions = ["read", "list"]
windows = [{ days = "mon-fri", from = "08:00", to = "18:00", tz = "Europe/Berlin" }]
"#;

fn setup() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let write = |rel: &str, text: &str| {
        let path = dir.path().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    };
    write("config/gatehouse.toml", GATEHOUSE);
    write("config/partners/acme.toml", ACME);
    write(
        "config/partners/acme.pub.pem",
        &rcgen::KeyPair::generate().unwrap().public_key_pem(),
    );
    dir
}

fn explain(dir: &Path, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .arg("policy")
        .arg("explain")
        .arg("--config")
        .arg(dir.join("config/gatehouse.toml"))
        .args(extra)
        // No system time zone database: the bundled copy must be used.
        .env("TZDIR", dir.join("no-zoneinfo"))
        .output()
        .unwrap()
}

fn first_line(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}

const READ: [&str; 6] = [
    "--partner",
    "acme",
    "--action",
    "read",
    "--path",
    "exports/reports/q1.csv",
];

#[test]
fn allow_exits_0() {
    let dir = setup();
    let o = explain(
        dir.path(),
        &[
            &READ[..],
            &["--ip", "2001:db8::7", "--at", "2026-03-30T08:30:00+02:00"],
        ]
        .concat(),
    );
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert_eq!(first_line(&o), "ALLOW");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("allowed by grant #1"), "{out}");
}

#[test]
fn deny_exits_1_with_the_reason_code_first() {
    let dir = setup();
    let weekend = [
        &READ[..],
        &["--ip", "192.0.2.7", "--at", "2026-03-28T12:00:00Z"],
    ]
    .concat();
    let o = explain(dir.path(), &weekend);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert_eq!(first_line(&o), "DENY outside_time_window");
    let o = explain(dir.path(), &[&READ[..], &["--ip", "198.51.100.1"]].concat());
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert_eq!(first_line(&o), "DENY ip_not_allowed");
}

#[test]
fn usage_and_config_errors_exit_2() {
    let dir = setup();
    let bad_action = explain(
        dir.path(),
        &[
            "--partner",
            "acme",
            "--action",
            "copy",
            "--path",
            "exports/x",
        ],
    );
    assert_eq!(bad_action.status.code(), Some(2), "{bad_action:?}");
    let unknown = explain(
        dir.path(),
        &[
            "--partner",
            "nobody",
            "--action",
            "read",
            "--path",
            "exports/x",
        ],
    );
    assert_eq!(unknown.status.code(), Some(2), "{unknown:?}");
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("unknown partner"));
    std::fs::write(
        dir.path().join("config/partners/acme.toml"),
        ACME.replace("192.0.2.0/24", "192.0.2.1/24"),
    )
    .unwrap();
    let broken = explain(dir.path(), &READ);
    assert_eq!(broken.status.code(), Some(2), "{broken:?}");
    let err = String::from_utf8_lossy(&broken.stderr);
    assert!(
        err.contains("acme.toml:8:") && err.contains("\"192.0.2.0/24\""),
        "{err}"
    );
}
