//! `gatehouse report`, `gatehouse review` and `gatehouse audit export --format ocsf` on a
//! trail written by a real gateway: allowed and refused requests, issued and refused tokens,
//! a request without a token.

mod common;

use std::path::Path;
use std::process::Command;

use common::{Gateway, Setup};
use serde_json::Value;

fn gatehouse(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// acme: one grant it uses, one it never uses that ends in 10 days. globex: past its
/// `review_by`, with a grant nobody approved.
fn partners() -> Vec<(&'static str, &'static str, &'static str)> {
    let soon = jiff::Timestamp::now()
        .checked_add(jiff::SignedDuration::from_hours(240))
        .unwrap();
    let acme = format!(
        r#"
[[grants]]
share = "exports"
prefix = "acme/"
actions = ["read", "list"]
approved_by = "ciso@example.com"
{ARCHIVE_GRANT_START}
share = "exports"
prefix = "acme/archive/"
actions = ["read"]
approved_by = "ciso@example.com"
valid_until = "{soon}"
"#
    );
    let globex = r#"review_by = "2020-01-01"
[[grants]]
share = "other"
prefix = ""
actions = ["read", "list"]
"#;
    vec![
        ("acme", "active", Box::leak(acme.into_boxed_str())),
        ("globex", "active", globex),
    ]
}

const ARCHIVE_GRANT_START: &str = "[[grants]] # archive";

/// GET with a token (or none); gives the status, the body length and the request id.
async fn get(g: &Gateway, token: Option<&str>, path: &str) -> (u16, u64, String) {
    let mut req = g.client.get(g.url(path));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let id = resp.headers()["x-amz-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    let body = resp.bytes().await.unwrap();
    (status, body.len() as u64, id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_review_and_export_read_a_real_trail() {
    let g = Gateway::start(Setup {
        partners: partners(),
        ..Setup::default()
    })
    .await;
    g.store_put("acme/a.txt", b"alpha".to_vec(), Default::default())
        .await;
    let acme = g.token("acme").await;
    let mut acme_bytes_out = 0;
    let mut statuses = Vec::new();
    let mut read_id = String::new();
    for path in [
        "/exports/acme/a.txt",
        "/exports/acme/a.txt",
        "/exports/secret/x.txt",
        "/other/x.txt",
    ] {
        let (status, len, id) = get(&g, Some(&acme), path).await;
        statuses.push(status);
        acme_bytes_out += len;
        if read_id.is_empty() {
            read_id = id;
        }
    }
    assert_eq!(statuses, [200, 200, 404, 404]);
    let (status, _) = g
        .token_request(&[
            ("grant_type", "client_credentials"),
            ("client_id", "acme"),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", &g.assertion("acme")),
            ("external_id", "not-the-external-id"),
        ])
        .await;
    assert_eq!(status, 401);
    assert_eq!(get(&g, None, "/exports/acme/a.txt").await.0, 401);
    let globex = g.token("globex").await;
    assert_eq!(get(&g, Some(&globex), "/other?list-type=2").await.0, 200);
    assert_eq!(get(&g, Some(&globex), "/exports/acme/a.txt").await.0, 404);
    g.state.audit.flush().await.unwrap();
    let config = g.config_path.to_str().unwrap().to_string();

    report_json(&config, acme_bytes_out);
    report_html(&g, &config);
    review(&g, &config);
    export(&g, &read_id).await;
}

fn report_json(config: &str, acme_bytes_out: u64) {
    let (code, out, err) = gatehouse(&["report", "--config", config, "--format", "json"]);
    assert_eq!(code, 0, "{err}");
    let r: Value = serde_json::from_str(&out).unwrap();
    let acme = &r["partners"]["acme"];
    assert_eq!(acme["configured"], true);
    assert_eq!(acme["requests"], 4);
    assert_eq!(acme["allowed"], 2);
    assert_eq!(acme["denied"], 2);
    assert_eq!(acme["bytes_in"], 0);
    assert_eq!(acme["bytes_out"], acme_bytes_out);
    assert_eq!(acme["objects_touched"], 1);
    assert_eq!(
        acme["denials_by_reason"],
        serde_json::json!({"no_grant": 1, "share_not_granted": 1})
    );
    assert_eq!(acme["tokens_issued"], 1);
    assert_eq!(acme["tokens_refused"], 1);
    assert_eq!(
        acme["token_refusals_by_reason"],
        serde_json::json!({"wrong_external_id": 1})
    );
    assert_eq!(acme["sessions"], 1);
    assert_eq!(acme["source_ips"], serde_json::json!(["127.0.0.1"]));
    assert_eq!(acme["dlp_findings"], serde_json::json!({}));
    let at = |name: &str| {
        acme[name]
            .as_str()
            .unwrap()
            .parse::<jiff::Timestamp>()
            .unwrap()
    };
    assert!(at("first_access") < at("last_access"));
    let globex = &r["partners"]["globex"];
    assert_eq!(
        (&globex["requests"], &globex["allowed"], &globex["denied"]),
        (&2.into(), &1.into(), &1.into())
    );
    assert_eq!(globex["sessions"], 1);
    assert_eq!(r["unattributed"]["refusals"], 1);
    assert_eq!(
        r["unattributed"]["by_reason"],
        serde_json::json!({"token_missing": 1})
    );
    let today = jiff::Timestamp::now().strftime("%Y-%m-%d").to_string();
    assert_eq!(
        r["per_day"][&today],
        serde_json::json!({"allowed": 3, "denied": 4})
    );
    // A window that ends before the traffic holds none of it.
    let (_, out, _) = gatehouse(&[
        "report",
        "--config",
        config,
        "--format",
        "json",
        "--until",
        "2000-01-01",
    ]);
    let empty: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(empty["partners"]["acme"]["requests"], 0);
    assert_eq!(empty["records"], 0);
}

fn report_html(g: &Gateway, config: &str) {
    let file = g.dir.path().join("report.html");
    let (code, _, err) = gatehouse(&[
        "report",
        "--config",
        config,
        "--format",
        "html",
        "--out",
        file.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let html = std::fs::read_to_string(&file).unwrap();
    for external in ["http://", "https://", "src=", "href=", "@import", "url("] {
        assert!(!html.contains(external), "{external} in the report");
    }
    assert!(html.contains(">acme<") && html.contains(">globex<"));
    assert!(html.contains("<svg") && html.contains("share_not_granted"));
    assert!(html.starts_with("<!DOCTYPE html>") && html.trim_end().ends_with("</html>"));
}

fn review(g: &Gateway, config: &str) {
    let (code, out, err) = gatehouse(&["review", "--config", config, "--format", "json"]);
    assert_eq!(code, 1, "{out}{err}");
    let r: Value = serde_json::from_str(&out).unwrap();
    let findings: Vec<(String, String, String)> = r["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let s = |n: &str| f[n].as_str().unwrap_or("-").to_string();
            (s("check"), s("partner"), s("grant"))
        })
        .collect();
    let has = |check: &str, partner: &str, grant: &str| {
        findings.contains(&(check.into(), partner.into(), grant.into()))
    };
    assert!(
        has("grant-expiring", "acme", "exports/acme/archive/"),
        "{findings:?}"
    );
    assert!(
        has("grant-unused", "acme", "exports/acme/archive/"),
        "{findings:?}"
    );
    assert!(has("review-overdue", "globex", "-"), "{findings:?}");
    assert!(
        has("grant-not-approved", "globex", "other/"),
        "{findings:?}"
    );
    assert!(
        !has("grant-unused", "acme", "exports/acme/"),
        "a grant used by the trail is not unused: {findings:?}"
    );
    assert!(!has("partner-never-seen", "acme", "-") && !has("partner-unused", "globex", "-"));

    // The same trail with only what is in order: nothing needs attention.
    let partners = Path::new(config).parent().unwrap().join("partners");
    std::fs::remove_file(partners.join("globex.toml")).unwrap();
    let acme = std::fs::read_to_string(partners.join("acme.toml")).unwrap();
    let start = acme.find(ARCHIVE_GRANT_START).unwrap();
    let end = start + acme[start..].find("[[keys]]").unwrap();
    std::fs::write(
        partners.join("acme.toml"),
        format!("{}{}", &acme[..start], &acme[end..]),
    )
    .unwrap();
    let (code, out, err) = gatehouse(&["review", "--config", config]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("0 finding(s)"), "{out}");

    let missing = g.dir.path().join("missing.toml");
    let (code, _, _) = gatehouse(&["review", "--config", missing.to_str().unwrap()]);
    assert_eq!(code, 64);
}

async fn export(g: &Gateway, read_id: &str) {
    let native = g.audit_event(read_id).await;
    let dir = g.audit_dir();
    let (code, out, err) = gatehouse(&[
        "audit",
        "export",
        "--format",
        "ocsf",
        "--partner",
        "acme",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let events: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let e = events
        .iter()
        .find(|e| e["metadata"]["uid"] == read_id)
        .unwrap_or_else(|| panic!("no OCSF event for {read_id}: {out}"));
    assert_eq!(e["class_uid"], 6003);
    assert_eq!(e["category_uid"], 6);
    assert_eq!(e["activity_id"], 2);
    assert_eq!(e["type_uid"], 600302);
    assert_eq!(e["api"]["operation"], "GetObject");
    assert_eq!(e["api"]["request"]["uid"], read_id);
    assert_eq!(e["actor"]["user"]["uid"], "acme");
    assert_eq!(e["src_endpoint"]["ip"], "127.0.0.1");
    assert_eq!(e["http_request"]["http_method"], "GET");
    assert_eq!(e["http_request"]["url"]["path"], "/exports/acme/a.txt");
    assert_eq!(
        (&e["status_id"], &e["status"]),
        (&1.into(), &"Success".into())
    );
    assert_eq!(e["resources"][0]["uid"], "exports/acme/a.txt");
    assert_eq!(e["resources"][0]["group"]["name"], "exports");
    assert_eq!(e["metadata"]["product"]["name"], "gatehouse");
    assert!(e["metadata"]["version"].as_str().unwrap().starts_with("1."));
    let time: jiff::Timestamp = native["time"].as_str().unwrap().parse().unwrap();
    assert_eq!(e["time"], time.as_millisecond());
    assert_eq!(e["time_dt"], native["time"]);
    assert_eq!(e["status_detail"], "ok");
    assert_eq!(e["unmapped"]["decision"], "allow");
    assert_eq!(e["actor"]["session"]["uid"], native["session_id"]);
    assert_eq!(e["metadata"]["correlation_uid"], native["session_id"]);
    assert_eq!(e["unmapped"]["chain_seq"], native["chain"]["seq"]);
    assert!(
        e["unmapped"].get("chain").is_none() && e["unmapped"].get("sig").is_none(),
        "the export carries the chain position, not the chain"
    );
    assert!(
        events
            .iter()
            .all(|e| e["actor"]["user"]["uid"] == "acme" || e["user"]["uid"] == "acme"),
        "--partner filters"
    );
    let auth: Vec<&Value> = events.iter().filter(|e| e["class_uid"] == 3002).collect();
    assert_eq!(auth.len(), 2, "one issued token, one refused");
    assert!(
        auth.iter()
            .any(|e| e["status_id"] == 2 && e["status_detail"] == "wrong_external_id")
    );
}
