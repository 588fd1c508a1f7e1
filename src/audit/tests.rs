//! The audit handle end to end through its writer thread: lines, durable confirmation, fail
//! closed, flood aggregation, shutdown checkpoint.

use super::*;
use crate::audit::keys::PublicKey;

pub(crate) fn event(reason: &str) -> Event {
    Event {
        time: jiff::Timestamp::now(),
        request_id: "r1".into(),
        session_id: Some("s1".into()),
        partner: Some("acme".into()),
        client_ip: "127.0.0.1".into(),
        method: "GET".into(),
        path: "/s/k".into(),
        share: Some("s".into()),
        key: Some("k".into()),
        status: 200,
        decision: Decision::Allow,
        reason: reason.into(),
        bytes_out: 5,
        duration_ms: 1.5,
        ..Event::blank(Kind::Request)
    }
}

fn config(dir: &std::path::Path) -> AuditConfig {
    AuditConfig::at(dir.join("audit"))
}

fn lines(cfg: &AuditConfig) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    for name in chain::segments(&cfg.dir).unwrap() {
        let text = std::fs::read_to_string(cfg.dir.join(name)).unwrap();
        out.extend(text.lines().map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            assert!(super::ocsf::is_ocsf(&v), "not an OCSF event: {l}");
            super::ocsf::native(&v)
        }));
    }
    out
}

fn verified(cfg: &AuditConfig, live: bool) -> verify::Report {
    let files = verify::files_of(std::slice::from_ref(&cfg.dir)).unwrap();
    let opts = verify::Options {
        keys: vec![PublicKey::load(&cfg.public_key_file).unwrap()],
        live,
    };
    verify::verify(&files, &opts, &mut |_| {}).unwrap()
}

#[tokio::test]
async fn writes_chained_lines_and_closes_with_a_signed_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let audit = Audit::open(&cfg).unwrap();
    audit.record(&event("ok"));
    let mut denied = event("no_grant");
    denied.session_id = None;
    denied.partner = None;
    denied.decision = Decision::Deny;
    audit.record(&denied);
    audit.flush().await.unwrap();
    let before_close = lines(&cfg);
    assert_eq!(before_close[0]["kind"], "trail_opened");
    assert_eq!(before_close[0]["previous_end"], "new_trail");
    assert_eq!(before_close[1]["reason"], "ok");
    assert_eq!(before_close[2]["reason"], "no_grant");
    assert!(before_close[2].get("session_id").is_none());
    assert_eq!(before_close[2]["chain"]["seq"], 3);
    assert!(verified(&cfg, true).holds());
    assert!(!verified(&cfg, false).holds(), "no shutdown checkpoint yet");

    audit.close().await.unwrap();
    let all = lines(&cfg);
    let last = all.last().unwrap();
    assert_eq!(last["kind"], "checkpoint");
    assert_eq!(last["checkpoint"]["reason"], "shutdown");
    assert_eq!(last["checkpoint"]["key_id"], audit.key_id());
    let report = verified(&cfg, false);
    assert!(report.holds(), "{:?}", report.problem);
    assert!(report.closed);
    assert_eq!((report.records, report.checkpoints), (3, 1));
    // After close nothing is written any more: the gateway must refuse.
    audit.record(&event("ok"));
    assert!(audit.flush().await.is_err());
    assert!(!audit.healthy());
}

#[tokio::test]
async fn a_restart_continues_the_chain_and_says_how_the_last_run_ended() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let a = Audit::open(&cfg).unwrap();
    a.record(&event("ok"));
    a.close().await.unwrap();
    let b = Audit::open(&cfg).unwrap();
    b.record(&event("ok"));
    b.close().await.unwrap();
    let opened: Vec<_> = lines(&cfg)
        .into_iter()
        .filter(|l| l["kind"] == "trail_opened")
        .map(|l| l["previous_end"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(opened, ["new_trail", "shutdown"]);
    let report = verified(&cfg, false);
    assert!(report.holds(), "{:?}", report.problem);
    assert_eq!((report.records, report.checkpoints), (4, 2));
}

#[tokio::test]
async fn durable_records_are_on_disk_when_confirmed() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let audit = Audit::open(&cfg).unwrap();
    let draft = Event {
        reason: String::new(),
        ..event("")
    };
    audit.before_first_byte(&draft, 200).await.unwrap();
    let found = lines(&cfg);
    let start = found.last().unwrap();
    assert_eq!(start["kind"], "request_start");
    assert_eq!(
        (start["status"].as_u64(), start["reason"].as_str()),
        (Some(200), Some("ok"))
    );
    // No object bytes: nothing is recorded ahead, and nothing waits.
    let n = audit.written();
    for (method, status, key) in [
        ("HEAD", 200, Some("k")),
        ("GET", 404, Some("k")),
        ("GET", 200, None),
    ] {
        let d = Event {
            method: method.into(),
            key: key.map(str::to_owned),
            ..draft.clone()
        };
        audit.before_first_byte(&d, status).await.unwrap();
    }
    audit.flush().await.unwrap();
    assert_eq!(audit.written(), n);
}

#[tokio::test]
async fn durable_records_fail_on_a_full_device_and_recover() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    std::fs::create_dir_all(&cfg.dir).unwrap();
    let today = chain::segment_name(&jiff::Timestamp::now().strftime("%Y-%m-%d").to_string(), 0);
    let file = cfg.dir.join(&today);
    std::os::unix::fs::symlink("/dev/full", &file).unwrap();
    let audit = Audit::open(&cfg).unwrap();
    assert!(audit.healthy(), "healthy until a write fails");
    assert_eq!(
        audit.before_first_byte(&event(""), 200).await,
        Err(Unavailable)
    );
    assert!(!audit.healthy());
    audit.record(&event("audit_unavailable"));
    // Replace the device by an empty file in one step, as an operator freeing space would.
    let fresh = dir.path().join("fresh");
    std::fs::write(&fresh, b"").unwrap();
    std::fs::rename(&fresh, &file).unwrap();
    audit.flush().await.unwrap();
    assert!(audit.healthy());
    let found = lines(&cfg);
    assert!(
        found.iter().all(|l| l["kind"] != "request_start"),
        "the refused start is not kept"
    );
    assert!(found.iter().any(|l| l["reason"] == "audit_unavailable"));
    audit.close().await.unwrap();
    assert!(verified(&cfg, false).holds());
}

#[tokio::test]
async fn unauthenticated_floods_are_aggregated() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = AuditConfig {
        unauthenticated_burst: 3,
        ..config(dir.path())
    };
    let audit = Audit::open(&cfg).unwrap();
    let refusal = |ip: &str| Event {
        session_id: None,
        partner: None,
        client_ip: ip.into(),
        decision: Decision::Deny,
        status: 401,
        ..event("token_missing")
    };
    for _ in 0..500 {
        audit.record(&refusal("203.0.113.9"));
    }
    audit.record(&refusal("203.0.113.10"));
    // Authenticated refusals are never aggregated.
    for _ in 0..5 {
        audit.record(&Event {
            decision: Decision::Deny,
            ..event("no_grant")
        });
    }
    audit.flush().await.unwrap();
    let found = lines(&cfg);
    let single = |ip: &str| {
        found
            .iter()
            .filter(|l| {
                l["kind"] == "request" && l["client_ip"] == ip && l["reason"] == "token_missing"
            })
            .count()
    };
    assert_eq!(single("203.0.113.9"), 3);
    assert_eq!(single("203.0.113.10"), 1);
    let summaries: Vec<_> = found
        .iter()
        .filter(|l| l["kind"] == "refusals_aggregated")
        .collect();
    assert_eq!(summaries.len(), 1, "{summaries:?}");
    assert_eq!(summaries[0]["client_ip"], "203.0.113.9");
    assert_eq!(summaries[0]["count"], 497);
    assert_eq!(summaries[0]["reasons"]["token_missing"], 497);
    assert_eq!(
        found.iter().filter(|l| l["reason"] == "no_grant").count(),
        5
    );
    assert!(audit.healthy());
}
