//! Alerts through the running gateway: a burst of denied requests becomes an audit record,
//! a webhook POST and `gatehouse_alerts_total` on the admin `/metrics`; a reload that turns a
//! rule on applies it; the rules' state is written to the data directory.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{Gateway, LOOSE_TOKEN_LIMITS, Setup};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::sync::mpsc;

/// A loopback HTTP receiver that answers 200 and hands over each JSON body it gets.
async fn receiver() -> (String, mpsc::UnboundedReceiver<serde_json::Value>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/alerts", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let tx = tx.clone();
                    async move {
                        let body = req.into_body().collect().await.unwrap().to_bytes();
                        let _ = tx.send(serde_json::from_slice(&body).unwrap());
                        Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::new())))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), service)
                    .await;
            });
        }
    });
    (url, rx)
}

/// The next webhook body (fails after 10 s without one).
async fn posted(rx: &mut mpsc::UnboundedReceiver<serde_json::Value>) -> serde_json::Value {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("no webhook POST arrived")
        .unwrap()
}

/// Audit records of kind `alert` with `reason`, once at least `n` are written (fails after 10 s).
async fn alert_records(gw: &Gateway, reason: &str, n: usize) -> Vec<serde_json::Value> {
    for _ in 0..1000 {
        let found: Vec<_> = gw
            .audit_lines(0)
            .await
            .into_iter()
            .filter(|l| l["kind"] == "alert" && l["reason"] == reason)
            .collect();
        if found.len() >= n {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no {reason} alert in the audit trail");
}

async fn metrics(gw: &Gateway) -> String {
    let token = std::fs::read_to_string(&gw.state.config.admin.token_file).unwrap();
    let resp = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(format!("http://{}/metrics", gw.admin_addr))
        .bearer_auth(token.trim())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.text().await.unwrap()
}

/// A token request for `acme` with an assertion that is not a JWT (refused).
async fn failed_token(gw: &Gateway) -> u16 {
    gw.token_request(&[
        ("grant_type", "client_credentials"),
        ("client_id", "acme"),
        (
            "client_assertion_type",
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        ),
        ("client_assertion", "not-a-jwt"),
    ])
    .await
    .0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_denials_is_audited_posted_and_counted() {
    let (url, mut rx) = receiver().await;
    let rules = "[alerts.denial_burst]\nthreshold = 5\nwindow = \"1m\"\ncooldown = \"1h\"\n\
                 [alerts.token_failures]\nenabled = false\nthreshold = 2\n";
    let extra = format!("{LOOSE_TOKEN_LIMITS}\n[alerts]\nwebhook_url = \"{url}\"\n{rules}");
    let gw = Gateway::start(Setup {
        gateway_extra: Box::leak(extra.clone().into_boxed_str()),
        ..Setup::default()
    })
    .await;

    // acme may read only under acme/: seven refusals, one alert (cool-down).
    let token = gw.token("acme").await;
    for i in 0..7 {
        let resp = gw.get(&token, &format!("/exports/other/{i}.csv")).await;
        assert!(resp.status().is_client_error(), "{}", resp.status());
    }
    let body = posted(&mut rx).await;
    assert_eq!(body["rule"], "denial_burst");
    assert_eq!(body["severity"], "warning");
    assert_eq!(body["partner"], "acme");
    assert_eq!(body["subject"], "acme");
    assert_eq!(body["details"]["count"], 5);
    assert!(
        body["summary"]
            .as_str()
            .unwrap()
            .contains("5 refused requests from partner acme"),
        "{body}"
    );

    let records = alert_records(&gw, "denial_burst", 1).await;
    assert_eq!(records.len(), 1, "{records:?}");
    let rec = &records[0];
    assert_eq!(rec["partner"], "acme");
    assert_eq!(rec["method"], "ALERT");
    assert_eq!(rec["decision"], "deny");
    assert_eq!(rec["bytes_out"], 0);
    // The alert names the request that completed the burst, which is in the trail too.
    let trigger = gw.audit_event(rec["request_id"].as_str().unwrap()).await;
    assert_eq!(trigger["kind"], "request");
    assert_eq!(trigger["reason"], "no_grant");
    assert!(trigger["key"].as_str().unwrap().starts_with("other/"));

    let text = metrics(&gw).await;
    assert!(
        text.contains("gatehouse_alerts_total{rule=\"denial_burst\"} 1"),
        "{text}"
    );

    // token_failures is off: failed token requests raise nothing...
    for _ in 0..3 {
        assert!(failed_token(&gw).await >= 400);
    }
    // ...until a reload turns it on; the new rule applies from the next event.
    let text = std::fs::read_to_string(&gw.config_path).unwrap();
    assert!(text.contains(rules));
    let on = rules.replace("enabled = false\n", "");
    std::fs::write(&gw.config_path, text.replace(rules, &on)).unwrap();
    gw.live.reload().await.unwrap();
    for _ in 0..2 {
        assert!(failed_token(&gw).await >= 400);
    }
    let body = posted(&mut rx).await;
    assert_eq!(body["rule"], "token_failures");
    assert_eq!(body["partner"], "acme");
    assert_eq!(alert_records(&gw, "token_failures", 1).await.len(), 1);
    assert!(
        metrics(&gw)
            .await
            .contains("gatehouse_alerts_total{rule=\"token_failures\"} 1")
    );

    // What the rules learnt is written to the data directory.
    gw.state.observers.alerts.save().await;
    let file = gw.state.config.data_dir.join("alerts-state.json");
    let saved: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(saved["denial_burst"]["acme"].as_array().unwrap().len(), 5);
    assert!(saved["cooldowns"]["denial_burst/acme"].is_string());
    assert!(saved["new_source_ip"]["acme"]["seen"]["127.0.0.0/24"].is_string());
    gw.stop().await;
}
