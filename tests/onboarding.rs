//! Onboarding and offboarding through the `gatehouse` binary against a running gateway:
//! `keygen` on the partner's side, `partner add` (output accepted by `check`, usable at once),
//! `suspend`, `resume`, `remove`, and the refusals that keep production honest.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{Gateway, Setup};
use reqwest::StatusCode;

fn gatehouse(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .args(args)
        .env("GATEHOUSE_LOG", "warn")
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

async fn start() -> Gateway {
    let g = Gateway::start(Setup {
        partners: vec![(
            "acme",
            "active",
            "[[grants]]\nshare = \"exports\"\nprefix = \"\"\nactions = [\"read\"]\n",
        )],
        ..Setup::default()
    })
    .await;
    g.store_put("reports/q1.csv", b"q1".to_vec(), Default::default())
        .await;
    g.store_put("secret.txt", b"no".to_vec(), Default::default())
        .await;
    g
}

fn cfg(g: &Gateway) -> &str {
    g.config_path.to_str().unwrap()
}

/// `gatehouse keygen` into `dir`: gives (private key, public key) paths.
fn keygen(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let prefix = dir.join(name);
    let out = gatehouse(&["keygen", "--out", prefix.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let key = dir.join(format!("{name}.key.pem"));
    let public = dir.join(format!("{name}.pub.pem"));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    (key, public)
}

fn add(g: &Gateway, id: &str, public: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "partner",
        "add",
        "--config",
        cfg(g),
        id,
        "--share",
        "exports",
        "--prefix",
        "reports/",
        "--actions",
        "read,list",
        "--until",
        "2099-12-31",
        "--public-key",
        public.to_str().unwrap(),
        "--owner",
        "owner@example.com",
        "--contract",
        "C-42",
        "--justification",
        "quarterly reports",
    ];
    args.extend_from_slice(extra);
    gatehouse(&args)
}

/// `partner add` of `id` on `share` (whole share) until `until`, approved by someone else.
fn add_plain(g: &Gateway, id: &str, share: &str, until: &str, public: &Path) -> Output {
    gatehouse(&[
        "partner",
        "add",
        "--config",
        cfg(g),
        id,
        "--share",
        share,
        "--until",
        until,
        "--public-key",
        public.to_str().unwrap(),
        "--owner",
        "o@example.com",
        "--contract",
        "C",
        "--justification",
        "j",
        "--approved-by",
        "ciso@example.com",
    ])
}

/// A token for the partner described by `profile` (as printed by `partner add`), signed with
/// its private key, through `gatehouse token`.
fn token_with(g: &Gateway, dir: &Path, profile: &serde_json::Value, key: &Path) -> Option<String> {
    let mut p = profile.clone();
    p["key_file"] = serde_json::json!(key);
    p["ca_file"] = serde_json::json!(g.state.config.tls.dev_ca_cert_file);
    let file = dir.join("profile.json");
    std::fs::write(&file, p.to_string()).unwrap();
    let out = gatehouse(&["token", "--profile", file.to_str().unwrap()]);
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partner_is_added_used_suspended_resumed_and_removed() {
    let g = start().await;
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = keygen(dir.path(), "newco");

    let out = add(&g, "newco", &public, &["--approved-by", "ciso@example.com"]);
    assert!(out.status.success(), "{}", text(&out));
    let profile: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(profile["partner"], "newco");
    assert_eq!(profile["key_id"], "newco-1");
    assert_eq!(profile["endpoint"], g.base);
    let external_id = profile["external_id"].as_str().unwrap();
    assert!(external_id.len() >= 40, "a strong external id");
    // The file it wrote passes `gatehouse check`, approval recorded, private key not kept.
    let check = gatehouse(&["check", "--config", cfg(&g)]);
    assert!(check.status.success(), "{}", text(&check));
    let file = g.config_path.parent().unwrap().join("partners/newco.toml");
    let written = std::fs::read_to_string(&file).unwrap();
    assert!(written.contains("approved_by = \"ciso@example.com\""));
    assert!(!written.contains("PRIVATE"));
    assert_eq!(g.live.counts().0, 1, "the running gateway reloaded");

    // Usable at once, within its grant only.
    let t = token_with(&g, dir.path(), &profile, &key).expect("token for the new partner");
    assert_eq!(
        g.get(&t, "/exports/reports/q1.csv").await.status(),
        StatusCode::OK
    );
    assert_eq!(
        g.get(&t, "/exports/secret.txt").await.status(),
        StatusCode::NOT_FOUND
    );

    // Suspend: live session refused, no new token; persisted revocation.
    let out = gatehouse(&["partner", "suspend", "--config", cfg(&g), "newco"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        g.get(&t, "/exports/reports/q1.csv").await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert!(token_with(&g, dir.path(), &profile, &key).is_none());
    let revocations = std::fs::read_to_string(&g.state.config.admin.revocations_file).unwrap();
    assert!(revocations.contains("newco"));

    // Resume: new tokens work again.
    let out = gatehouse(&["partner", "resume", "--config", cfg(&g), "newco"]);
    assert!(out.status.success(), "{}", text(&out));
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let t2 = token_with(&g, dir.path(), &profile, &key).expect("token after resume");
    assert_eq!(
        g.get(&t2, "/exports/reports/q1.csv").await.status(),
        StatusCode::OK
    );

    // Remove: archived (kept for audit), sessions revoked, audited.
    let out = gatehouse(&["partner", "remove", "--config", cfg(&g), "newco"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(!file.exists());
    let archived: Vec<_> = std::fs::read_dir(file.parent().unwrap().join("archive"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(
        archived.iter().any(|n| n.starts_with("newco.")),
        "{archived:?}"
    );
    assert_eq!(
        g.get(&t2, "/exports/reports/q1.csv").await.status(),
        StatusCode::UNAUTHORIZED
    );
    let lines = g.audit_lines(0).await;
    for reason in ["partner_suspended", "partner_removed"] {
        assert!(
            lines
                .iter()
                .any(|l| l["reason"] == reason && l["partner"] == "newco"),
            "no {reason} record"
        );
    }
    assert!(gatehouse(&["check", "--config", cfg(&g)]).status.success());
    g.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_partner_is_not_added_and_leaves_nothing_behind() {
    let g = start().await;
    let dir = tempfile::tempdir().unwrap();
    let (_, public) = keygen(dir.path(), "bad");
    let partners = g.config_path.parent().unwrap().join("partners");
    let before: Vec<_> = walk(&partners);

    // Unknown share: refused by the whole-config validation, with file and line.
    let out = add_plain(&g, "bad", "nope", "2099-01-01", &public);
    assert_eq!(out.status.code(), Some(64), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("bad.toml:"),
        "{}",
        text(&out)
    );
    assert_eq!(walk(&partners), before, "nothing may be left behind");

    // An id that exists, a past date, a bad id: refused before anything is written.
    for (id, until) in [
        ("acme", "2099-01-01"),
        ("late", "2001-01-01"),
        ("../x", "2099-01-01"),
    ] {
        let out = add_plain(&g, id, "exports", until, &public);
        assert_eq!(out.status.code(), Some(2), "{id}: {}", text(&out));
    }
    assert_eq!(walk(&partners), before);
    g.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn production_needs_the_partners_public_key_and_an_approver() {
    let g = start().await;
    let dir = tempfile::tempdir().unwrap();
    let (_, public) = keygen(dir.path(), "prod");
    // The same configuration with dev mode off.
    let prod = g.config_path.with_file_name("prod.toml");
    let text_cfg = std::fs::read_to_string(&g.config_path).unwrap();
    std::fs::write(
        &prod,
        text_cfg.replace("bootstrap = true", "bootstrap = false"),
    )
    .unwrap();
    let base = [
        "partner",
        "add",
        "--config",
        prod.to_str().unwrap(),
        "prodco",
        "--share",
        "exports",
        "--until",
        "2099-01-01",
        "--owner",
        "owner@example.com",
        "--contract",
        "C",
        "--justification",
        "j",
    ];
    let run = |extra: &[&str]| {
        let mut a = base.to_vec();
        a.extend_from_slice(extra);
        gatehouse(&a)
    };
    let out = run(&["--approved-by", "ciso@example.com"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--public-key is required"));
    let out = run(&["--public-key", public.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--approved-by is required"));
    let out = run(&[
        "--public-key",
        public.to_str().unwrap(),
        "--approved-by",
        "Owner@example.com",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("someone other than"));
    let out = run(&[
        "--public-key",
        public.to_str().unwrap(),
        "--approved-by",
        "ciso@example.com",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    g.stop().await;
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_revocation_test_passes_on_a_running_gateway_and_cleans_up() {
    let g = Gateway::start(Setup {
        partners: vec![(
            "acme",
            "active",
            "[[grants]]\nshare = \"exports\"\nprefix = \"\"\nactions = [\"read\"]\n",
        )],
        ..Setup::default()
    })
    .await;
    let partners = g.config_path.parent().unwrap().join("partners");
    let before = walk(&partners);
    let out = gatehouse(&[
        "partner",
        "test-revocation",
        "--config",
        cfg(&g),
        "--share",
        "exports",
        "--json",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["other_session_still_works"], true);
    assert_eq!(report["cleaned_up"], true);
    assert!(report["revoked_to_refused_ms"].as_u64().unwrap() < 5000);
    let canary = report["partner"].as_str().unwrap().to_string();
    assert!(canary.starts_with("canary-"));
    // Nothing left: no partner file, no key file, no object; the canary is gone from the
    // configuration in force.
    assert_eq!(walk(&partners), before);
    assert!(g.live.state().partner(&canary).is_none());
    let objects = g.store_list("").await;
    assert!(
        objects.iter().all(|k| !k.contains("gatehouse-canary")),
        "{objects:?}"
    );
    // The revocation it made is on record.
    let lines = g.audit_lines(0).await;
    assert!(
        lines
            .iter()
            .any(|l| l["reason"] == "session_revoked" && l["path"] == "/revoke"),
        "no revocation record"
    );

    // An unknown share: refused before anything is written.
    let out = gatehouse(&[
        "partner",
        "test-revocation",
        "--config",
        cfg(&g),
        "--share",
        "nope",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(walk(&partners), before);
    g.stop().await;
}
