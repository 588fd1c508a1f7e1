//! End to end: token, then every data-plane operation over HTTPS, against the embedded `fs`
//! store and against S3 served by moto, with the refusals a partner must meet.

#[macro_use]
mod common;

use common::{Backend, Gateway, Setup};
use reqwest::StatusCode;

both_backends!(
    put_get_head_delete_round_trip,
    range_requests,
    listing_stays_inside_the_grant,
    listing_paginates,
    refusals_look_like_missing_things,
    uploads_over_the_limit_leave_nothing,
    aborted_upload_leaves_no_object,
);

async fn gw(backend: Backend) -> Gateway {
    Gateway::start(Setup {
        backend,
        max_put_bytes: 1024 * 1024,
        ..Setup::default()
    })
    .await
}

async fn put(
    g: &Gateway,
    token: &str,
    path: &str,
    body: impl Into<reqwest::Body>,
) -> reqwest::Response {
    g.client
        .put(g.url(path))
        .bearer_auth(token)
        .body(body)
        .send()
        .await
        .unwrap()
}

async fn put_get_head_delete_round_trip(backend: Backend) {
    let g = gw(backend).await;
    let t = g.token("acme").await;
    let body: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let resp = g
        .client
        .put(g.url("/exports/acme/inbox/data.bin"))
        .bearer_auth(&t)
        .header("content-type", "application/x-test")
        .header("x-amz-meta-origin", "unit")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers().contains_key("etag"));
    let rid = resp.headers()["x-amz-request-id"]
        .to_str()
        .unwrap()
        .to_string();

    let resp = g.get(&t, "/exports/acme/inbox/data.bin").await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "application/x-test");
    assert_eq!(resp.headers()["x-amz-meta-origin"], "unit");
    assert_eq!(resp.headers()["content-length"], "200000");
    assert_eq!(resp.bytes().await.unwrap().as_ref(), &body[..]);

    let resp = g
        .client
        .head(g.url("/exports/acme/inbox/data.bin"))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-length"], "200000");

    // The upload is stored under the share's internal prefix, which partners never see.
    let full = g.token("full").await;
    let listed = g
        .get(&full, "/exports?list-type=2")
        .await
        .text()
        .await
        .unwrap();
    assert!(
        listed.contains("<Key>acme/inbox/data.bin</Key>"),
        "{listed}"
    );
    assert!(!listed.contains("internal/"), "{listed}");

    let resp = g
        .client
        .delete(g.url("/exports/acme/inbox/data.bin"))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let resp = g.get(&t, "/exports/acme/inbox/data.bin").await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert_eq!(common::s3_code(&resp.text().await.unwrap()), "NoSuchKey");

    let ev = g.audit_event(&rid).await;
    assert_eq!(ev["partner"], "acme");
    assert_eq!(ev["decision"], "allow");
    assert_eq!(ev["bytes_in"], 200_000);
    assert_eq!(ev["share"], "exports");
    assert_eq!(ev["key"], "acme/inbox/data.bin");
    assert!(
        ev.get("aborted").is_none(),
        "a complete response is not marked aborted: {ev}"
    );
    g.stop().await;
}

async fn range_requests(backend: Backend) {
    let g = gw(backend).await;
    let t = g.token("full").await;
    let body: Vec<u8> = (0..1000u32).map(|i| (i % 256) as u8).collect();
    assert_eq!(
        put(&g, &t, "/exports/r.bin", body.clone()).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        put(&g, &t, "/exports/empty.bin", Vec::new()).await.status(),
        StatusCode::OK
    );
    type Case = (&'static str, u16, Option<(usize, usize)>);
    let cases: &[Case] = &[
        ("bytes=0-0", 206, Some((0, 0))),
        ("bytes=10-19", 206, Some((10, 19))),
        ("bytes=990-", 206, Some((990, 999))),
        ("bytes=-10", 206, Some((990, 999))),
        ("bytes=-5000", 206, Some((0, 999))),
        ("bytes=500-99999", 206, Some((500, 999))),
        ("bytes=999-999", 206, Some((999, 999))),
        ("bytes=1000-", 416, None),
        ("bytes=1000-2000", 416, None),
        ("bytes=0-1,5-6", 200, None),
        ("items=0-5", 200, None),
    ];
    for (range, status, span) in cases {
        let resp = g
            .client
            .get(g.url("/exports/r.bin"))
            .bearer_auth(&t)
            .header("range", *range)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), *status, "{range}");
        match (status, span) {
            (206, Some((a, b))) => {
                assert_eq!(
                    resp.headers()["content-range"],
                    format!("bytes {a}-{b}/1000").as_str(),
                    "{range}"
                );
                assert_eq!(
                    resp.bytes().await.unwrap().as_ref(),
                    &body[*a..=*b],
                    "{range}"
                );
            }
            (416, _) => {
                assert_eq!(resp.headers()["content-range"], "bytes */1000", "{range}");
                assert_eq!(common::s3_code(&resp.text().await.unwrap()), "InvalidRange");
            }
            _ => assert_eq!(resp.bytes().await.unwrap().len(), 1000, "{range}"),
        }
    }
    // Any range of an empty object is unsatisfiable; a reversed range is refused outright.
    let resp = g
        .client
        .get(g.url("/exports/empty.bin"))
        .bearer_auth(&t)
        .header("range", "bytes=0-")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    let resp = g
        .client
        .get(g.url("/exports/r.bin"))
        .bearer_auth(&t)
        .header("range", "bytes=9-5")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    // HEAD with a range reports the part it would serve.
    let resp = g
        .client
        .head(g.url("/exports/r.bin"))
        .bearer_auth(&t)
        .header("range", "bytes=-10")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(resp.headers()["content-length"], "10");
    g.stop().await;
}

async fn seed(g: &Gateway, keys: &[&str]) {
    let full = g.token("full").await;
    for k in keys {
        let resp = put(g, &full, &format!("/exports/{k}"), format!("body of {k}")).await;
        assert_eq!(resp.status(), StatusCode::OK, "{k}");
    }
}

fn tags(xml: &str, tag: &str) -> Vec<String> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    xml.split(&open)
        .skip(1)
        .map(|s| s[..s.find(&close).unwrap()].to_string())
        .collect()
}

async fn listing_stays_inside_the_grant(backend: Backend) {
    let g = gw(backend).await;
    seed(
        &g,
        &[
            "acme/a.csv",
            "acme/sub/b.csv",
            "acme/inbox/c.csv",
            "acme-evil/x",
            "secret/y",
            "top.txt",
            "ac",
        ],
    )
    .await;
    let t = g.token("acme").await;
    let list = |q: &'static str| {
        let (g, t) = (&g, &t);
        async move {
            g.get(t, &format!("/exports?list-type=2{q}"))
                .await
                .text()
                .await
                .unwrap()
        }
    };
    let all = list("").await;
    let mut keys = tags(&all, "Key");
    keys.sort();
    assert_eq!(
        keys,
        ["acme/a.csv", "acme/inbox/c.csv", "acme/sub/b.csv"],
        "{all}"
    );
    let root = list("&delimiter=%2F").await;
    assert_eq!(tags(&root, "Key"), Vec::<String>::new(), "{root}");
    let prefixes: Vec<String> = tags(&root, "CommonPrefixes")
        .iter()
        .map(|p| tags(p, "Prefix")[0].clone())
        .collect();
    assert_eq!(prefixes, ["acme/"], "{root}");
    let inside = list("&prefix=acme%2F&delimiter=%2F").await;
    assert_eq!(tags(&inside, "Key"), ["acme/a.csv"], "{inside}");
    let prefixes: Vec<String> = tags(&inside, "CommonPrefixes")
        .iter()
        .map(|p| tags(p, "Prefix")[0].clone())
        .collect();
    assert_eq!(prefixes, ["acme/inbox/", "acme/sub/"], "{inside}");
    // Prefixes outside the grant list nothing, even ones that are string-prefixes of it.
    for q in ["&prefix=secret", "&prefix=acme-", "&prefix=t"] {
        let out = list(q).await;
        assert!(
            tags(&out, "Key").is_empty() && !out.contains("CommonPrefixes"),
            "{q}: {out}"
        );
    }
    let narrowed = list("&prefix=ac").await;
    assert!(
        !narrowed.contains("<Key>ac</Key>") && !narrowed.contains("acme-evil"),
        "{narrowed}"
    );
    for body in [&all, &root, &inside, &narrowed] {
        assert!(
            !body.contains("internal/") && !body.contains("secret") && !body.contains("top.txt")
        );
    }
    // GET / shows the shares this partner may see.
    let shares = g.get(&t, "/").await.text().await.unwrap();
    assert_eq!(tags(&shares, "Name"), ["exports"], "{shares}");
    g.stop().await;
}

async fn listing_paginates(backend: Backend) {
    let g = gw(backend).await;
    let mut want: Vec<String> = (0..23).map(|i| format!("acme/p/{i:03}")).collect();
    want.extend((0..4).map(|i| format!("acme/d{i}/x")));
    let refs: Vec<&str> = want.iter().map(String::as_str).collect();
    seed(&g, &refs).await;
    want.sort();
    let t = g.token("acme").await;
    for (q, expect) in [
        ("", want.clone()),
        (
            "&prefix=acme%2Fp%2F",
            want.iter()
                .filter(|k| k.starts_with("acme/p/"))
                .cloned()
                .collect(),
        ),
    ] {
        let (mut got, mut token, mut pages) = (Vec::new(), None::<String>, 0);
        loop {
            let mut url = format!("/exports?list-type=2&max-keys=5{q}");
            if let Some(tok) = &token {
                url.push_str(&format!("&continuation-token={}", urlencode(tok)));
            }
            let xml = g.get(&t, &url).await.text().await.unwrap();
            let keys = tags(&xml, "Key");
            assert!(keys.len() <= 5, "{xml}");
            got.extend(keys);
            pages += 1;
            match tags(&xml, "NextContinuationToken").first() {
                Some(next) => token = Some(next.clone()),
                None => break,
            }
            assert!(pages < 20, "pagination does not end");
        }
        assert_eq!(got, expect, "{q}");
    }
    // Delimiter pages roll folders up once each.
    let xml = g
        .get(
            &t,
            "/exports?list-type=2&prefix=acme%2F&delimiter=%2F&max-keys=2",
        )
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(tags(&xml, "KeyCount"), ["2"], "{xml}");
    let bad = g
        .get(&t, "/exports?list-type=2&continuation-token=%21%21")
        .await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    g.stop().await;
}

fn urlencode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

async fn refusals_look_like_missing_things(backend: Backend) {
    let g = gw(backend).await;
    seed(&g, &["acme/a.csv", "secret/y"]).await;
    let gl = g.token("globex").await;
    let t = g.token("acme").await;
    // Another partner's share answers like a share that does not exist.
    let resp = g.get(&t, "/other/x").await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert_eq!(common::s3_code(&resp.text().await.unwrap()), "NoSuchBucket");
    let resp = g.get(&t, "/nonexistent/x").await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert_eq!(common::s3_code(&resp.text().await.unwrap()), "NoSuchBucket");
    let resp = g.get(&gl, "/exports?list-type=2").await;
    assert_eq!(common::s3_code(&resp.text().await.unwrap()), "NoSuchBucket");
    // A key outside the prefix answers exactly like a missing key.
    let outside = g.get(&t, "/exports/secret/y").await;
    let missing = g.get(&t, "/exports/acme/nothing-here").await;
    assert_eq!(outside.status(), missing.status());
    let rid = outside.headers()["x-amz-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    let (a, b) = (outside.text().await.unwrap(), missing.text().await.unwrap());
    assert_eq!(common::s3_code(&a), "NoSuchKey");
    assert_eq!(common::s3_code(&b), "NoSuchKey");
    assert!(
        !a.contains("internal") && !a.contains("bucket") && !a.contains("grant"),
        "{a}"
    );
    assert_eq!(g.audit_event(&rid).await["reason"], "no_grant");
    // Writes and deletes without a grant are refused and nothing changes.
    let resp = put(&g, &t, "/exports/acme/not-inbox.txt", "x").await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert_eq!(common::s3_code(&resp.text().await.unwrap()), "AccessDenied");
    let resp = g
        .client
        .delete(g.url("/exports/acme/a.csv"))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        g.get(&t, "/exports/acme/a.csv").await.status(),
        StatusCode::OK
    );
    // No token, or garbage, is refused before anything else.
    let resp = g
        .client
        .get(g.url("/exports/acme/a.csv"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(resp.headers()["x-amz-request-id"].len() > 10);
    assert_eq!(common::s3_code(&resp.text().await.unwrap()), "InvalidToken");
    let resp = g.get("not.a.jwt", "/exports/acme/a.csv").await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    g.stop().await;
}

async fn uploads_over_the_limit_leave_nothing(backend: Backend) {
    let g = gw(backend).await;
    let t = g.token("full").await;
    let big = vec![7u8; 1024 * 1024 + 1];
    let resp = put(&g, &t, "/exports/big.bin", big.clone()).await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        common::s3_code(&resp.text().await.unwrap()),
        "EntityTooLarge"
    );
    // Without a Content-Length (chunked), the limit is enforced while streaming.
    let chunks = futures_util::stream::iter(
        big.chunks(64 * 1024)
            .map(|c| Ok::<_, std::io::Error>(c.to_vec()))
            .collect::<Vec<_>>(),
    );
    let resp = put(
        &g,
        &t,
        "/exports/big.bin",
        reqwest::Body::wrap_stream(chunks),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        common::s3_code(&resp.text().await.unwrap()),
        "EntityTooLarge"
    );
    assert_eq!(
        g.get(&t, "/exports/big.bin").await.status(),
        StatusCode::NOT_FOUND
    );
    let exact = vec![7u8; 1024 * 1024];
    assert_eq!(
        put(&g, &t, "/exports/exact.bin", exact).await.status(),
        StatusCode::OK
    );
    g.stop().await;
}

async fn aborted_upload_leaves_no_object(backend: Backend) {
    let g = gw(backend).await;
    let t = g.token("full").await;
    let mut tls = g.raw_connect().await;
    use tokio::io::AsyncWriteExt;
    let head = format!(
        "PUT /exports/partial.bin HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer {t}\r\ncontent-length: 500000\r\n\r\n"
    );
    tls.write_all(head.as_bytes()).await.unwrap();
    tls.write_all(&vec![1u8; 100_000]).await.unwrap();
    tls.flush().await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    drop(tls);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(
        g.get(&t, "/exports/partial.bin").await.status(),
        StatusCode::NOT_FOUND
    );
    let listed = g
        .get(&t, "/exports?list-type=2")
        .await
        .text()
        .await
        .unwrap();
    assert!(!listed.contains("partial"), "{listed}");
    g.stop().await;
}

/// Every traversal and malformed-key form is refused with a clear S3 error before any stage
/// sees the key (raw requests: HTTP clients would normalise these paths).
#[tokio::test]
async fn traversal_forms_are_refused() {
    let g = gw(Backend::Fs).await;
    let t = g.token("full").await;
    let long = "k".repeat(1025);
    let cases = [
        "/exports/../x",
        "/exports/a/../b",
        "/exports/a/./b",
        "/exports/./a",
        "/exports/a//b",
        "/exports/%2e%2e/x",
        "/exports/%2E%2E%2Fsecret",
        "/exports/a%2f..%2fb",
        "/exports/a%5c..%5cb",
        "/exports/a\\b",
        "/exports/a%00b",
        "/exports/a%0d%0ab",
        "/exports/%ff%fe",
        "/exports/%c0%ae%c0%ae/x",
        "/exports/a%zz",
    ];
    for path in cases
        .iter()
        .map(|s| s.to_string())
        .chain([format!("/exports/{long}")])
    {
        let raw = g.raw(format!("GET {path} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {t}\r\nconnection: close\r\n\r\n").as_bytes()).await;
        let status_line = raw.lines().next().unwrap_or_default().to_string();
        assert!(status_line.contains(" 400 "), "{path}: {status_line}");
        let code = common::s3_code(&raw);
        assert!(
            code == "InvalidArgument" || code == "KeyTooLongError",
            "{path}: {raw}"
        );
        assert!(
            raw.to_ascii_lowercase().contains("x-amz-request-id"),
            "{path}"
        );
    }
    g.stop().await;
}

#[tokio::test]
async fn http2_is_offered_and_works() {
    let g = gw(Backend::Fs).await;
    let t = g.token("full").await;
    let h2 = common::client_for(&g.ca_pem, false);
    put(&g, &t, "/exports/h2.txt", "over h2").await;
    let resp = h2
        .get(g.url("/exports/h2.txt"))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    assert_eq!(resp.text().await.unwrap(), "over h2");
    g.stop().await;
}

#[tokio::test]
async fn every_request_is_audited_once() {
    let g = gw(Backend::Fs).await;
    let before = g.audit_lines(0).await.len();
    let t = g.token("acme").await;
    let mut ids = Vec::new();
    for path in ["/exports/acme/none", "/exports/secret", "/other/x", "/"] {
        let resp = g.get(&t, path).await;
        ids.push(
            resp.headers()["x-amz-request-id"]
                .to_str()
                .unwrap()
                .to_string(),
        );
        let _ = resp.bytes().await;
    }
    let resp = g.client.get(g.url("/exports/x")).send().await.unwrap();
    ids.push(
        resp.headers()["x-amz-request-id"]
            .to_str()
            .unwrap()
            .to_string(),
    );
    let _ = resp.bytes().await;
    let lines = g.audit_lines((before + 6) as u64).await;
    for id in &ids {
        assert_eq!(
            lines
                .iter()
                .filter(|l| l["request_id"] == id.as_str())
                .count(),
            1,
            "{id}"
        );
    }
    let token_events: Vec<_> = lines.iter().filter(|l| l["kind"] == "token").collect();
    assert_eq!(token_events.len(), 1);
    assert_eq!(token_events[0]["reason"], "token_issued");
    assert_eq!(token_events[0]["partner"], "acme");
    assert!(
        lines.iter().all(|l| l.get("aborted").is_none()),
        "nothing here was aborted"
    );
    let text = std::fs::read_dir(g.audit_dir())
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect::<String>();
    assert!(
        !text.contains(&t),
        "the audit trail must never hold a token"
    );
    assert!(
        !text.contains(&g.partner("acme").external_id),
        "nor an external id"
    );
    g.stop().await;
}

/// Fail closed: when the audit trail cannot be written, requests are refused with 503 and no
/// object byte goes out; when writing works again, serving resumes by itself.
#[tokio::test]
async fn audit_failure_refuses_requests_until_it_recovers() {
    let g = Gateway::start(Setup {
        audit_on_full_device: true,
        ..Setup::default()
    })
    .await;
    let share = &g.state.shares["exports"];
    let body: gatehouse::store::ByteStream = Box::pin(futures_util::stream::once(async {
        Ok(bytes::Bytes::from_static(b"TOP-SECRET-CONTENT"))
    }));
    let key = format!("{}secret.txt", share.config.prefix);
    share
        .store
        .put(&key, body, gatehouse::store::PutOptions::default())
        .await
        .unwrap();
    let t = g.token("full").await;
    // The token event could not be written; from now on the gateway refuses.
    let mut refused = None;
    for _ in 0..100 {
        let resp = g.get(&t, "/exports/secret.txt").await;
        if resp.status() == StatusCode::SERVICE_UNAVAILABLE {
            refused = Some(resp.text().await.unwrap());
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let body = refused.expect("requests must be refused while the audit trail cannot be written");
    assert_eq!(common::s3_code(&body), "ServiceUnavailable");
    assert!(
        !body.contains("audit") && !body.contains("/dev/full"),
        "no internal detail: {body}"
    );
    assert!(
        !body.contains("TOP-SECRET"),
        "no object byte while unrecorded"
    );
    assert!(!g.state.audit.healthy());
    // Put a writable file back: the next refused request's event is written, and serving resumes.
    let file = g.audit_dir().join(common::today_audit_file());
    std::fs::remove_file(&file).unwrap();
    std::fs::write(&file, b"").unwrap();
    let mut resumed = false;
    for _ in 0..100 {
        if g.get(&t, "/exports/none").await.status() == StatusCode::NOT_FOUND {
            resumed = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(
        resumed,
        "serving must resume once the audit trail is writable"
    );
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        text.contains("audit_unavailable"),
        "refusals are recorded once writing works: {text}"
    );
    g.stop().await;
}

/// Fail closed for uploads: no upload is stored unless its durable start record is on disk,
/// so while the audit trail cannot be written every PUT is refused with 503 (by the health
/// gate, or by the start record itself for one that got past it) and nothing is stored.
#[tokio::test]
async fn uploads_are_refused_while_the_audit_trail_cannot_be_written() {
    let g = Gateway::start(Setup {
        audit_on_full_device: true,
        ..Setup::default()
    })
    .await;
    let t = g.token("full").await;
    for i in 0..5 {
        let resp = put(&g, &t, &format!("/exports/up-{i}.txt"), "TOP-SECRET-UPLOAD").await;
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
        let body = resp.text().await.unwrap();
        assert_eq!(common::s3_code(&body), "ServiceUnavailable");
        assert!(!body.contains("audit"), "no internal detail: {body}");
    }
    assert_eq!(g.store_list("").await, Vec::<String>::new());
    g.stop().await;
}

/// An upload is on record, durably, before any byte of it is stored: a `request_start`
/// line (method PUT, status 0) precedes the request's final line in the trail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_are_recorded_before_they_are_stored() {
    let g = gw(Backend::Fs).await;
    let t = g.token("acme").await;
    let resp = put(&g, &t, "/exports/acme/inbox/up.txt", "uploaded").await;
    assert_eq!(resp.status(), StatusCode::OK);
    let id = resp.headers()["x-amz-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    let mut lines = Vec::new();
    for _ in 0..100 {
        lines = g.audit_lines(0).await;
        if lines
            .iter()
            .any(|l| l["request_id"] == id.as_str() && l["kind"] == "request")
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let of_request: Vec<_> = lines
        .iter()
        .filter(|l| l["request_id"] == id.as_str())
        .collect();
    assert_eq!(of_request.len(), 2, "{of_request:?}");
    assert_eq!(of_request[0]["kind"], "request_start");
    assert_eq!(of_request[0]["method"], "PUT");
    assert_eq!(of_request[0]["status"], 0);
    assert_eq!(of_request[0]["key"], "acme/inbox/up.txt");
    assert_eq!(of_request[1]["kind"], "request");
    assert_eq!(of_request[1]["status"], 200);
    g.stop().await;
}

/// On a share without a prefix, the staging area of uploads (`.gatehouse-staging/`, where S3
/// uploads wait before their commit) is out of reach even of a grant on the whole share: an
/// object there looks missing and can be neither overwritten nor deleted.
#[tokio::test]
async fn the_staging_area_is_out_of_reach_of_every_grant() {
    let g = Gateway::start(Setup {
        partners: vec![(
            "whole",
            "active",
            "[[grants]]\nshare = \"bucketwide\"\nprefix = \"\"\nactions = [\"read\", \"list\", \"write\", \"delete\"]\n",
        )],
        gateway_extra: "[shares.bucketwide]\nstore = \"main\"\nbucket = \"bucketwide\"\n",
        ..Setup::default()
    })
    .await;
    let staged = ".gatehouse-staging/upload-1";
    let body: gatehouse::store::ByteStream = Box::pin(futures_util::stream::once(async {
        Ok(bytes::Bytes::from_static(b"half an upload"))
    }));
    let store = &g.state.shares["bucketwide"].store;
    store.put(staged, body, Default::default()).await.unwrap();
    let t = g.token("whole").await;
    let path = format!("/bucketwide/{staged}");
    let resp = g.get(&t, &path).await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    let rid = common::request_id(&resp);
    assert_eq!(common::s3_code(&resp.text().await.unwrap()), "NoSuchKey");
    assert_eq!(g.audit_event(&rid).await["reason"], "reserved_key");
    let resp = put(&g, &t, &path, "overwritten").await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let resp = g
        .client
        .delete(g.url(&path))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let got = store.get(staged, None).await.unwrap();
    let chunks: Vec<bytes::Bytes> = futures_util::TryStreamExt::try_collect(got.body)
        .await
        .unwrap();
    assert_eq!(
        chunks.concat(),
        b"half an upload",
        "the staged object is untouched"
    );
    g.stop().await;
}
