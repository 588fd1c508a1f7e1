//! Revocation through the admin listener: one session, or every session of a partner;
//! effective on the next request, cutting transfers in flight, and persisted across restarts.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Gateway, LOOSE_TOKEN_LIMITS, Prepared, Setup};
use futures_util::StreamExt;
use reqwest::StatusCode;

const PARTNERS: &[(&str, &str, &str)] = &[
    (
        "full",
        "active",
        "[[grants]]\nshare = \"exports\"\nprefix = \"\"\nactions = [\"read\", \"write\"]\n",
    ),
    (
        "slow",
        "active",
        "[rate_limits]\ndownload = \"512KiB/s\"\n[[grants]]\nshare = \"exports\"\nprefix = \"\"\nactions = [\"read\"]\n",
    ),
];

async fn start() -> Gateway {
    Gateway::start(Setup {
        partners: PARTNERS.to_vec(),
        ..Setup::default()
    })
    .await
}

fn session_of(token: &str) -> String {
    use base64::Engine as _;
    let payload = token.split('.').nth(1).unwrap();
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    claims["sid"].as_str().unwrap().to_string()
}

async fn get(g: &Gateway, token: &str) -> (StatusCode, String) {
    let resp = g
        .client
        .get(g.url("/exports/a.txt"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    (resp.status(), resp.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_a_session_refuses_its_next_request() {
    let g = start().await;
    g.store_put("a.txt", b"hello".to_vec(), Default::default())
        .await;
    let (a, b) = (g.token("full").await, g.token("full").await);
    assert_eq!(get(&g, &a).await.0, StatusCode::OK);
    assert_eq!(
        g.revoke(serde_json::json!({ "session": session_of(&a) }))
            .await,
        200
    );
    let (status, body) = get(&g, &a).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body.contains("revoked"), "{body}");
    assert_eq!(get(&g, &b).await.0, StatusCode::OK, "other sessions go on");
    // The admin API wants its token and a well-formed body.
    let admin = reqwest::Client::new();
    let url = format!("http://{}/revoke", g.admin_addr);
    let resp = admin
        .post(&url)
        .json(&serde_json::json!({ "session": "x" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let resp = admin
        .post(&url)
        .bearer_auth("wrong")
        .json(&serde_json::json!({ "session": "x" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        g.revoke(serde_json::json!({ "session": "a", "partner": "b" }))
            .await,
        400
    );
    let health = admin
        .get(format!("http://{}/healthz", g.admin_addr))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    // The revocation itself is in the audit trail.
    let lines = g.audit_lines(0).await;
    assert!(
        lines
            .iter()
            .any(|l| l["kind"] == "admin" && l["reason"] == "session_revoked")
    );
    g.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_a_partner_voids_every_token_issued_until_then() {
    let g = start().await;
    g.store_put("a.txt", b"hello".to_vec(), Default::default())
        .await;
    let (a, b) = (g.token("full").await, g.token("full").await);
    assert_eq!(
        g.revoke(serde_json::json!({ "partner": "full" })).await,
        200
    );
    assert_eq!(get(&g, &a).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(get(&g, &b).await.0, StatusCode::UNAUTHORIZED);
    // Tokens issued afterwards work (revocation is not suspension).
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let c = g.token("full").await;
    assert_eq!(get(&g, &c).await.0, StatusCode::OK);
    g.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_cuts_a_transfer_in_flight() {
    let g = start().await;
    let size = 8 * 1024 * 1024;
    g.store_put("big.bin", vec![5u8; size], Default::default())
        .await;
    let t = g.token("slow").await;
    let resp = g
        .client
        .get(g.url("/exports/big.bin"))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let mut stream = resp.bytes_stream();
    let mut got = 0usize;
    while got < 512 * 1024 {
        got += stream.next().await.unwrap().unwrap().len();
    }
    assert_eq!(
        g.revoke(serde_json::json!({ "session": session_of(&t) }))
            .await,
        200
    );
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
    assert_eq!(
        cut,
        Ok(true),
        "the paced download must be aborted soon after the revocation"
    );
    assert!(got < size / 2, "it stopped early: {got} of {size} bytes");
    g.stop().await;
}

/// `gatehouse revoke` against a running `gatehouse serve`, then a restart: still revoked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_survives_a_restart() {
    let free = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
    };
    let admin = free();
    let extra: &'static str =
        Box::leak(format!("{LOOSE_TOKEN_LIMITS}[admin]\naddr = \"{admin}\"\n").into_boxed_str());
    let prepared = Prepared::write(
        &Setup {
            partners: PARTNERS.to_vec(),
            gateway_extra: extra,
            ..Setup::default()
        },
        free(),
    );
    let serve = || {
        let child = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
            .args(["serve", "--config"])
            .arg(&prepared.config_path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        for _ in 0..400 {
            if std::net::TcpStream::connect(prepared.addr).is_ok()
                && std::net::TcpStream::connect(admin).is_ok()
            {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        child
    };
    let stop = |mut child: std::process::Child| {
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(child.wait().unwrap().success());
    };
    let mut child = serve();
    let ca = std::fs::read_to_string(prepared.dir.path().join("config/data/tls/ca.pem")).unwrap();
    let client = common::client_for(&ca, false);
    let token = {
        let p = &prepared.partners["full"];
        let profile = gatehouse::auth::client::Profile {
            endpoint: prepared.base.clone(),
            partner: "full".into(),
            external_id: p.external_id.clone(),
            key_file: "unused".into(),
            ca_file: None,
            key_id: Some(p.key_id.clone()),
        };
        let assertion = gatehouse::auth::client::sign_assertion(
            &profile,
            &p.key_pem,
            &profile.token_url(),
            jiff::Timestamp::now(),
        )
        .unwrap();
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", "full"),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", assertion.as_str()),
            ("external_id", p.external_id.as_str()),
        ];
        let body: serde_json::Value = client
            .post(format!("{}/v1/token", prepared.base))
            .form(&form)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        body["access_token"].as_str().unwrap().to_string()
    };
    let url = format!("{}/exports/none", prepared.base);
    assert_eq!(
        client
            .get(&url)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::NOT_FOUND
    );
    let out = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .args(["revoke", "--session", &session_of(&token), "--config"])
        .arg(&prepared.config_path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        client
            .get(&url)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::UNAUTHORIZED
    );
    stop(child);
    child = serve();
    let client = common::client_for(&ca, false);
    assert_eq!(
        client
            .get(&url)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::UNAUTHORIZED,
        "still revoked after a restart"
    );
    stop(child);
}
