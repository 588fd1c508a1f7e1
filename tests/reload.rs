//! Hot reload end to end: a valid change applied, an invalid one rejected whole with the old
//! configuration still serving, a partner suspended mid-session (and mid-transfer), a
//! certificate rotated without dropping connections, the file watcher, and the admin
//! listener's authentication and readiness.

mod common;

use std::time::Duration;

use common::{Gateway, Setup, s3_code};
use futures_util::StreamExt;
use reqwest::StatusCode;

const PARTNERS: &[(&str, &str, &str)] = &[
    (
        "acme",
        "active",
        "[[grants]]\nshare = \"exports\"\nprefix = \"\"\nactions = [\"read\", \"list\"]\n",
    ),
    (
        "slow",
        "active",
        "[rate_limits]\ndownload = \"512KiB/s\"\n[[grants]]\nshare = \"exports\"\nprefix = \"\"\nactions = [\"read\"]\n",
    ),
];

async fn start() -> Gateway {
    let g = Gateway::start(Setup {
        partners: PARTNERS.to_vec(),
        ..Setup::default()
    })
    .await;
    g.store_put("a.txt", b"alpha".to_vec(), Default::default())
        .await;
    g.store_put("pub/b.txt", b"beta".to_vec(), Default::default())
        .await;
    g
}

fn partner_file(g: &Gateway, id: &str) -> std::path::PathBuf {
    g.config_path
        .parent()
        .unwrap()
        .join(format!("partners/{id}.toml"))
}

/// Rewrites a partner file: `from` must occur in it.
fn edit_partner(g: &Gateway, id: &str, from: &str, to: &str) {
    let path = partner_file(g, id);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(from), "{from:?} not in {}", path.display());
    // Write-then-rename, as editors and config management do.
    let tmp = path.with_extension("toml.tmp");
    std::fs::write(&tmp, text.replacen(from, to, 1)).unwrap();
    std::fs::rename(&tmp, &path).unwrap();
}

fn admin_token(g: &Gateway) -> String {
    std::fs::read_to_string(&g.state.config.admin.token_file)
        .unwrap()
        .trim()
        .to_string()
}

async fn admin(g: &Gateway, method: &str, path: &str, token: Option<&str>) -> (u16, String) {
    let url = format!("http://{}{path}", g.admin_addr);
    let client = reqwest::Client::new();
    let mut req = match method {
        "POST" => client.post(url),
        _ => client.get(url),
    };
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

async fn reload(g: &Gateway) -> (u16, serde_json::Value) {
    let (status, body) = admin(g, "POST", "/reload", Some(&admin_token(g))).await;
    (status, serde_json::from_str(&body).unwrap())
}

async fn status_of(g: &Gateway, token: &str, path: &str) -> (StatusCode, String) {
    let resp = g.get(token, path).await;
    (resp.status(), resp.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_narrowed_grant_applies_to_live_sessions_on_their_next_request() {
    let g = start().await;
    let t = g.token("acme").await;
    assert_eq!(status_of(&g, &t, "/exports/a.txt").await.0, StatusCode::OK);

    edit_partner(&g, "acme", "prefix = \"\"", "prefix = \"pub/\"");
    let (status, body) = reload(&g).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["reloaded"], true);
    assert_eq!(body["restart_needed"], serde_json::json!([]));

    // The same token: the key outside the narrowed grant now looks missing, the rest serves.
    let (status, text) = status_of(&g, &t, "/exports/a.txt").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{text}");
    assert_eq!(s3_code(&text), "NoSuchKey");
    assert_eq!(
        status_of(&g, &t, "/exports/pub/b.txt").await,
        (StatusCode::OK, "beta".to_string())
    );
    assert_eq!(g.live.counts(), (1, 0));
    g.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_change_is_rejected_whole_and_the_old_config_keeps_serving() {
    let g = start().await;
    let t = g.token("acme").await;
    // Two changes in one reload: a valid narrowing and a typo in another file. Neither applies.
    edit_partner(&g, "acme", "prefix = \"\"", "prefix = \"pub/\"");
    edit_partner(
        &g,
        "slow",
        "[[grants]]",
        "[[grants]]\nallowed_cidrs = [\"0.0.0.0/0\"]",
    );
    let (status, body) = reload(&g).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["reloaded"], false);
    let errors: Vec<String> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap().to_string())
        .collect();
    let slow = partner_file(&g, "slow");
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with(&format!("{}:", slow.display())) && e.contains("allowed_cidrs")),
        "{errors:?}"
    );
    // `gatehouse check` reports the very same errors.
    let check = gatehouse::config::load(&g.config_path)
        .unwrap_err()
        .to_string();
    for e in &errors {
        assert!(check.contains(e.as_str()), "{e} not in {check}");
    }
    // The old configuration (prefix "") still serves, for the old token and for new ones.
    assert_eq!(status_of(&g, &t, "/exports/a.txt").await.0, StatusCode::OK);
    let t2 = g.token("acme").await;
    assert_eq!(status_of(&g, &t2, "/exports/a.txt").await.0, StatusCode::OK);
    assert_eq!(g.live.counts(), (0, 1));
    assert!(g.live.last_error().unwrap().contains("allowed_cidrs"));
    // The rejection and the attempt are on record.
    let lines = g.audit_lines(0).await;
    assert!(
        lines
            .iter()
            .any(|l| l["path"] == "/reload" && l["reason"] == "config_rejected"),
        "no audit record of the rejected reload"
    );
    g.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suspending_a_partner_refuses_its_next_request_and_cuts_its_transfer() {
    let g = start().await;
    let size = 8 * 1024 * 1024;
    g.store_put("big.bin", vec![7u8; size], Default::default())
        .await;
    let t = g.token("slow").await;
    let resp = g.get(&t, "/exports/big.bin").await;
    assert_eq!(resp.status(), StatusCode::OK);
    let mut stream = resp.bytes_stream();
    let mut got = 0usize;
    while got < 256 * 1024 {
        got += stream.next().await.unwrap().unwrap().len();
    }

    edit_partner(&g, "slow", "status = \"active\"", "status = \"suspended\"");
    assert_eq!(reload(&g).await.0, 200);

    let cut = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(c) => got += c.len(),
                Err(_) => return true,
            }
        }
        false
    })
    .await;
    assert_eq!(cut, Ok(true), "the paced download must be aborted");
    assert!(got < size / 2, "it stopped early: {got} of {size} bytes");

    // The live session's token is no longer accepted.
    let (status, text) = status_of(&g, &t, "/exports/a.txt").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{text}");
    assert_eq!(s3_code(&text), "InvalidToken");
    // Its refusals name the partner but no session, so they stay under the flood budget of
    // unauthenticated refusals: written one by one up to the burst (20), then counted.
    for _ in 0..30 {
        assert_eq!(
            status_of(&g, &t, "/exports/a.txt").await.0,
            StatusCode::UNAUTHORIZED
        );
    }
    g.state.audit.flush().await.unwrap();
    let lines = g.audit_lines(0).await;
    let written: Vec<_> = lines
        .iter()
        .filter(|l| l["kind"] == "request" && l["reason"] == "partner_suspended")
        .collect();
    assert!(
        written
            .iter()
            .all(|l| l["partner"] == "slow" && l.get("session_id").is_none()),
        "{written:?}"
    );
    let counted: u64 = lines
        .iter()
        .filter(|l| l["kind"] == "refusals_aggregated")
        .filter_map(|l| l["reasons"]["partner_suspended"].as_u64())
        .sum();
    assert_eq!(written.len() as u64 + counted, 31);
    assert!(written.len() < 31, "a budget, not one line each");
    // And no new token.
    let (status, _) = g
        .token_request(&[
            ("grant_type", "client_credentials"),
            ("client_id", "slow"),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", &g.assertion("slow")),
            ("external_id", &g.partner("slow").external_id),
        ])
        .await;
    assert_eq!(status, 401, "a suspended partner gets no token");

    // Resuming lets it back in.
    edit_partner(&g, "slow", "status = \"suspended\"", "status = \"active\"");
    assert_eq!(reload(&g).await.0, 200);
    let t = g.token("slow").await;
    assert_eq!(status_of(&g, &t, "/exports/a.txt").await.0, StatusCode::OK);
    g.stop().await;
}

fn leaf_of(tls: &tokio_rustls::client::TlsStream<tokio::net::TcpStream>) -> Vec<u8> {
    tls.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_certificate_serves_new_connections_without_dropping_old_ones() {
    let g = start().await;
    let t = g.token("acme").await;
    let before = leaf_of(&g.raw_connect().await);
    // A connection opened before the rotation, kept alive across it.
    let old_conn = common::client_for(&g.ca_pem, false);
    let first = old_conn
        .get(g.url("/exports/a.txt"))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    first.bytes().await.unwrap();

    // Rotate: a new server certificate from the same CA, written over the old files.
    let cfg = g.state.config.clone();
    std::fs::remove_file(&cfg.tls.cert_file).unwrap();
    std::fs::remove_file(&cfg.tls.key_file).unwrap();
    gatehouse::bootstrap::run(&cfg).await.unwrap();
    assert_eq!(reload(&g).await.0, 200);

    let after = leaf_of(&g.raw_connect().await);
    assert_ne!(
        before, after,
        "new connections must get the new certificate"
    );
    let again = old_conn
        .get(g.url("/exports/a.txt"))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::OK);
    assert_eq!(again.text().await.unwrap(), "alpha");
    g.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watcher_reloads_after_a_file_changes() {
    let g = start().await;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let watcher = tokio::spawn(gatehouse::reload::watch(
        g.live.clone(),
        Duration::from_millis(100),
        async {
            let _ = stopped.await;
        },
    ));
    // Let the watcher register before the change.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let t = g.token("acme").await;
    edit_partner(&g, "acme", "prefix = \"\"", "prefix = \"pub/\"");
    let mut applied = false;
    for _ in 0..100 {
        if g.live.counts().0 >= 1 {
            applied = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(applied, "the change was not picked up");
    assert_eq!(
        status_of(&g, &t, "/exports/a.txt").await.0,
        StatusCode::NOT_FOUND
    );
    // An editor's swap file does not trigger a reload.
    let before = g.live.counts();
    std::fs::write(
        g.config_path
            .parent()
            .unwrap()
            .join("partners/.acme.toml.swp"),
        b"junk",
    )
    .unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(g.live.counts(), before);
    let _ = stop.send(());
    watcher.await.unwrap();
    g.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_listener_wants_its_token_except_for_health() {
    let g = start().await;
    for (method, path) in [
        ("POST", "/reload"),
        ("POST", "/revoke"),
        ("GET", "/metrics"),
        ("GET", "/sessions"),
        ("GET", "/nonexistent"),
    ] {
        assert_eq!(admin(&g, method, path, None).await.0, 401, "{path}");
        assert_eq!(
            admin(&g, method, path, Some("wrong-token")).await.0,
            401,
            "{path}"
        );
    }
    assert_eq!(g.live.counts(), (0, 0), "a refused reload must not run");
    // A revocation with an unknown reason is refused and revokes nothing.
    let resp = reqwest::Client::new()
        .post(format!("http://{}/revoke", g.admin_addr))
        .bearer_auth(admin_token(&g))
        .json(&serde_json::json!({ "partner": "acme", "reason": "bored" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let t = g.token("acme").await;
    assert_eq!(status_of(&g, &t, "/exports/a.txt").await.0, StatusCode::OK);
    assert_eq!(admin(&g, "GET", "/healthz", None).await.0, 200);
    let (status, body) = admin(&g, "GET", "/readyz", None).await;
    assert_eq!((status, body.as_str()), (200, "{\"ready\":true}\n"));
    g.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_fails_while_the_audit_trail_cannot_be_written() {
    let g = Gateway::start(Setup {
        partners: PARTNERS.to_vec(),
        audit_on_full_device: true,
        ..Setup::default()
    })
    .await;
    // The first audit write fails and marks the trail unhealthy.
    let _ = g
        .token_request(&[("grant_type", "client_credentials")])
        .await;
    for _ in 0..100 {
        if !g.state.audit.healthy() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (status, body) = admin(&g, "GET", "/readyz", None).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("audit trail not writable"), "{body}");
    assert_eq!(admin(&g, "GET", "/healthz", None).await.0, 200);
    // And the metrics say so.
    let (status, metrics) = admin(&g, "GET", "/metrics", Some(&admin_token(&g))).await;
    assert_eq!(status, 200);
    assert!(metrics.contains("gatehouse_audit_healthy 0"), "{metrics}");
    let failures: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("gatehouse_audit_write_failures_total "))
        .expect("audit failure counter")
        .parse()
        .unwrap();
    assert!(failures >= 1, "{metrics}");
    g.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_are_listed_and_their_start_and_end_are_recorded() {
    let g = start().await;
    let t = g.token("acme").await;
    assert_eq!(status_of(&g, &t, "/exports/a.txt").await.0, StatusCode::OK);
    let (status, body) = admin(&g, "GET", "/sessions", Some(&admin_token(&g))).await;
    assert_eq!(status, 200);
    let listed: serde_json::Value = serde_json::from_str(&body).unwrap();
    let sessions = listed["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 1, "{body}");
    let sid = sessions[0]["session_id"].as_str().unwrap().to_string();
    assert_eq!(sessions[0]["partner"], "acme");
    assert_eq!(sessions[0]["requests"], 1);
    assert_eq!(sessions[0]["bytes_out"], 5);
    assert!(!body.contains(&t), "no token in the listing");

    // The start: the token event names the TLS version and cipher suite.
    let lines = g.audit_lines(0).await;
    let start = lines
        .iter()
        .find(|l| l["kind"] == "token" && l["session_id"] == sid.as_str())
        .unwrap();
    assert!(
        start["tls"]["version"]
            .as_str()
            .unwrap()
            .starts_with("TLSv1_"),
        "{start}"
    );
    assert!(start["tls"]["cipher"].as_str().unwrap().starts_with("TLS"));

    // The end: revoked, swept, recorded with its totals; no longer listed.
    assert_eq!(
        g.revoke(serde_json::json!({ "session": sid.clone() }))
            .await,
        200
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let sweeper = tokio::spawn(gatehouse::sessions::sweeper(
        g.live.clone(),
        Duration::from_millis(50),
        async {
            let _ = stopped.await;
        },
    ));
    let mut end = None;
    for _ in 0..100 {
        end = g
            .audit_lines(0)
            .await
            .into_iter()
            .find(|l| l["kind"] == "session" && l["session_id"] == sid.as_str());
        if end.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let end = end.expect("a session end record");
    assert_eq!(end["reason"], "session_revoked");
    assert_eq!(end["partner"], "acme");
    assert_eq!(end["bytes_out"], 5);
    let _ = stop.send(());
    sweeper.await.unwrap();
    let (_, body) = admin(&g, "GET", "/sessions", Some(&admin_token(&g))).await;
    assert_eq!(body, "{\"sessions\":[]}\n");
    g.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_audit_setting_is_reported_as_needing_a_restart() {
    let g = start().await;
    let mut text = std::fs::read_to_string(&g.config_path).unwrap();
    text.push_str("\n[audit]\ncheckpoint_every = 7\n");
    std::fs::write(&g.config_path, text).unwrap();
    let (status, body) = reload(&g).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["restart_needed"],
        serde_json::json!(["audit"]),
        "{body}"
    );
    g.stop().await;
}
