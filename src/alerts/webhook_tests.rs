//! The webhook sender against a real HTTP receiver on loopback: delivery, retries with
//! exponential backoff (the waits are recorded, not slept), a failing and an unreachable
//! receiver, a refusal, a full queue, and the signature.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::sync::mpsc;

use super::*;
use crate::alerts::{Alert, Rule};

/// Records the waits it is asked for and returns at once.
#[derive(Default)]
struct RecordedPause(parking_lot::Mutex<Vec<Duration>>);

#[async_trait::async_trait]
impl Pause for RecordedPause {
    async fn pause(&self, d: Duration) {
        self.0.lock().push(d);
    }
}

struct FixedClock(jiff::Timestamp);

impl Clock for FixedClock {
    fn now(&self) -> jiff::Timestamp {
        self.0
    }
}

/// One request as the receiver saw it.
struct Received {
    signature: Option<String>,
    content_type: Option<String>,
    body: Bytes,
}

/// An HTTP/1.1 receiver on 127.0.0.1 answering with `statuses` in turn (then 200).
async fn receiver(statuses: Vec<u16>) -> (String, mpsc::UnboundedReceiver<Received>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::unbounded_channel();
    let statuses = Arc::new(parking_lot::Mutex::new(VecDeque::from(statuses)));
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let (tx, statuses) = (tx.clone(), statuses.clone());
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let (tx, statuses) = (tx.clone(), statuses.clone());
                    async move {
                        let header = |n: &str| {
                            req.headers()
                                .get(n)
                                .and_then(|v| v.to_str().ok())
                                .map(str::to_owned)
                        };
                        let (signature, content_type) =
                            (header(SIGNATURE_HEADER), header("content-type"));
                        let body = req.into_body().collect().await.unwrap().to_bytes();
                        let _ = tx.send(Received {
                            signature,
                            content_type,
                            body,
                        });
                        let status = statuses.lock().pop_front().unwrap_or(200);
                        Ok::<_, std::convert::Infallible>(
                            Response::builder()
                                .status(status)
                                .body(Full::new(Bytes::new()))
                                .unwrap(),
                        )
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

fn settings(url: &str) -> WebhookConfig {
    WebhookConfig {
        backoff: Duration::from_secs(1),
        max_backoff: Duration::from_secs(3),
        max_attempts: 5,
        ..WebhookConfig::to(url.to_owned())
    }
}

fn alert(n: u32) -> Alert {
    Alert::new(
        Rule::DenialBurst,
        Some("acme"),
        "acme",
        jiff::Timestamp::from_second(1_767_571_200).unwrap(),
        format!("alert {n}"),
        serde_json::json!({ "n": n }),
    )
}

/// A sender running on `outbox`; gives its recorded waits and the stop switch.
fn start(outbox: &Arc<Outbox>) -> (Arc<RecordedPause>, CancellationToken) {
    let pause = Arc::new(RecordedPause::default());
    let stop = CancellationToken::new();
    let clock = Arc::new(FixedClock(
        jiff::Timestamp::from_second(1_767_571_200).unwrap(),
    ));
    tokio::spawn(run(outbox.clone(), pause.clone(), clock, stop.clone()));
    (pause, stop)
}

/// The next request the receiver got (fails the test after 10 s without one).
async fn next(rx: &mut mpsc::UnboundedReceiver<Received>) -> Received {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("no webhook request arrived")
        .unwrap()
}

/// Waits until `counters` show `n` outcomes `result` (fails after 10 s).
async fn outcomes(counters: &AlertCounters, result: &'static str, n: u64) {
    let wait = async {
        while counters.webhooks_of(result) < n {
            tokio::task::yield_now().await;
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), wait)
        .await
        .unwrap_or_else(|_| panic!("{result} never reached {n}"));
}

fn n_of(r: &Received) -> u64 {
    serde_json::from_slice::<serde_json::Value>(&r.body).unwrap()["details"]["n"]
        .as_u64()
        .unwrap()
}

#[tokio::test]
async fn a_failing_receiver_is_retried_with_exponential_backoff_until_it_accepts() {
    let (url, mut rx) = receiver(vec![500, 503, 429, 502]).await;
    let counters = AlertCounters::detached();
    let outbox = Outbox::new(Some(settings(&url)), counters.clone());
    let (pause, stop) = start(&outbox);
    outbox.push(&alert(1));
    for _ in 0..5 {
        let got = next(&mut rx).await;
        assert_eq!(n_of(&got), 1);
        assert_eq!(got.content_type.as_deref(), Some("application/json"));
        assert_eq!(got.signature, None, "no secret, no signature");
    }
    outcomes(&counters, "delivered", 1).await;
    assert_eq!(
        *pause.0.lock(),
        [1, 2, 3, 3].map(Duration::from_secs),
        "doubled, capped at max_backoff"
    );
    let body: serde_json::Value = serde_json::to_value(alert(1)).unwrap();
    for k in [
        "rule", "severity", "partner", "subject", "time", "summary", "details",
    ] {
        assert!(body.get(k).is_some(), "{k}");
    }
    assert_eq!(counters.webhooks_of("failed"), 0);
    stop.cancel();
}

#[tokio::test]
async fn attempts_are_bounded_and_a_refusal_is_not_retried() {
    let (url, mut rx) = receiver(vec![500, 500, 500, 400]).await;
    let counters = AlertCounters::detached();
    let outbox = Outbox::new(
        Some(WebhookConfig {
            max_attempts: 3,
            ..settings(&url)
        }),
        counters.clone(),
    );
    let (pause, stop) = start(&outbox);
    for n in 1..=3 {
        outbox.push(&alert(n));
    }
    let order: Vec<u64> = {
        let mut v = Vec::new();
        for _ in 0..5 {
            v.push(n_of(&next(&mut rx).await));
        }
        v
    };
    // 1: three 500s, given up. 2: 400, refused at once. 3: delivered.
    assert_eq!(order, [1, 1, 1, 2, 3]);
    outcomes(&counters, "delivered", 1).await;
    assert_eq!(counters.webhooks_of("failed"), 2);
    assert_eq!(*pause.0.lock(), [1, 2].map(Duration::from_secs));
    stop.cancel();
}

#[tokio::test]
async fn an_unreachable_receiver_counts_as_failed_after_its_attempts() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let counters = AlertCounters::detached();
    let outbox = Outbox::new(
        Some(WebhookConfig {
            max_attempts: 2,
            ..settings(&format!("http://127.0.0.1:{port}/hook"))
        }),
        counters.clone(),
    );
    let (pause, stop) = start(&outbox);
    outbox.push(&alert(1));
    outcomes(&counters, "failed", 1).await;
    assert_eq!(*pause.0.lock(), [Duration::from_secs(1)]);
    assert!(outbox.is_empty());
    stop.cancel();
}

#[tokio::test]
async fn a_full_queue_drops_the_oldest_alerts() {
    let (url, mut rx) = receiver(vec![]).await;
    let counters = AlertCounters::detached();
    let outbox = Outbox::new(
        Some(WebhookConfig {
            queue: 2,
            ..settings(&url)
        }),
        counters.clone(),
    );
    // Nothing sends yet: five alerts into a queue of two.
    for n in 1..=5 {
        outbox.push(&alert(n));
    }
    assert_eq!(outbox.len(), 2);
    assert_eq!(counters.webhooks_of("dropped"), 3);
    let (_, stop) = start(&outbox);
    assert_eq!(n_of(&next(&mut rx).await), 4);
    assert_eq!(n_of(&next(&mut rx).await), 5);
    outcomes(&counters, "delivered", 2).await;
    stop.cancel();
}

#[tokio::test]
async fn without_a_receiver_nothing_is_queued() {
    let counters = AlertCounters::detached();
    let outbox = Outbox::new(None, counters.clone());
    outbox.push(&alert(1));
    assert!(outbox.is_empty());
    outbox.set(Some(settings("http://127.0.0.1:9/hook")));
    outbox.push(&alert(2));
    assert_eq!(outbox.len(), 1);
}

#[tokio::test]
async fn posts_are_signed_with_the_shared_secret() {
    let (url, mut rx) = receiver(vec![]).await;
    let secret = WebhookSecret(b"0123456789abcdef0123456789abcdef".to_vec());
    let outbox = Outbox::new(
        Some(WebhookConfig {
            secret: Some(secret.clone()),
            ..settings(&url)
        }),
        AlertCounters::detached(),
    );
    let (_, stop) = start(&outbox);
    outbox.push(&alert(7));
    let got = next(&mut rx).await;
    let header = got.signature.expect("signed");
    let (t, mac) = header
        .strip_prefix("t=")
        .and_then(|h| h.split_once(",sha256="))
        .expect("t=...,sha256=...");
    assert_eq!(t, "1767571200", "the injected clock's time");
    // The receiver's check: HMAC-SHA256 over "<t>." and the body as received.
    let key = hmac::Key::new(hmac::HMAC_SHA256, &secret.0);
    let tag: Vec<u8> = (0..mac.len() / 2)
        .map(|i| u8::from_str_radix(&mac[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    let message = [format!("{t}.").as_bytes(), &got.body].concat();
    assert!(hmac::verify(&key, &message, &tag).is_ok());
    let mut tampered = got.body.to_vec();
    tampered[0] ^= 1;
    let message = [format!("{t}.").as_bytes(), &tampered].concat();
    assert!(hmac::verify(&key, &message, &tag).is_err());
    stop.cancel();
}

#[test]
fn backoff_doubles_and_is_capped() {
    let s = WebhookConfig {
        backoff: Duration::from_secs(1),
        max_backoff: Duration::from_secs(300),
        ..WebhookConfig::to("https://x".into())
    };
    let waits: Vec<u64> = (1..=10).map(|a| backoff(&s, a).as_secs()).collect();
    assert_eq!(waits, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300]);
    assert_eq!(backoff(&s, u32::MAX), Duration::from_secs(300));
}
