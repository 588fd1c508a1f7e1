//! DLP profiles on the data path, end to end through the real gateway, on the fs store and on
//! S3 (moto): masking on GET, HEAD agreeing with GET, ranges, `block` before the first byte,
//! inbound scanning and classification on PUT (stage, then commit), envelope shares, and the
//! findings in the audit trail (never the values).

#[macro_use]
mod common;

use std::collections::BTreeMap;

use common::{Backend, Gateway, Setup, s3_code};

const PARTNERS: &[(&str, &str, &str)] = &[
    (
        "acme",
        "active",
        r#"
[[grants]]
share = "exports"
actions = ["read", "list", "write"]
"#,
    ),
    (
        "strict",
        "active",
        r#"
[[grants]]
share = "exports"
actions = ["read"]
dlp_profile = "strict"
"#,
    ),
    (
        "low",
        "active",
        r#"
[[grants]]
share = "exports"
actions = ["read", "write"]
max_classification = "internal"
"#,
    ),
];

const CUSTOMERS: &str = "id,name,email,phone,card,ssn,city
1,Ada Park,ada.park@example.com,+1 415 555 0142,4111 1111 1111 1111,536-22-8845,San Francisco
2,Ben Ortiz,ben.ortiz@example.org,+1 212 555 0187,5555 5555 5555 4444,412-35-7719,New York
";

const PEM: &str = "notes\n-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo\n-----END RSA PRIVATE KEY-----\n";

const SECRETS: [&str; 6] = [
    "4111 1111 1111 1111",
    "536-22-8845",
    "ada.park@example.com",
    "412-35-7719",
    "5555 5555 5555 4444",
    "ben.ortiz@example.org",
];

async fn start(backend: Backend, encrypt: bool) -> Gateway {
    common::start_dlp(backend, PARTNERS, encrypt).await
}

async fn put(g: &Gateway, token: &str, key: &str, body: &str, ct: &str) -> reqwest::Response {
    g.client
        .put(g.url(&format!("/exports/{key}")))
        .bearer_auth(token)
        .header("content-type", ct)
        .body(body.to_owned())
        .send()
        .await
        .unwrap()
}

async fn head(g: &Gateway, token: &str, key: &str) -> reqwest::Response {
    g.client
        .head(g.url(&format!("/exports/{key}")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

fn request_id(r: &reqwest::Response) -> String {
    r.headers()["x-amz-request-id"].to_str().unwrap().to_owned()
}

fn header<'a>(r: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    r.headers().get(name).map(|v| v.to_str().unwrap())
}

fn assert_no_secrets(text: &str) {
    for s in SECRETS {
        assert!(!text.contains(s), "{s:?} leaked in {text}");
    }
}

async fn get_masks_in_the_stream_and_head_agrees(backend: Backend) {
    let g = start(backend, false).await;
    let acme = g.token("acme").await;
    let r = put(&g, &acme, "customers.csv", CUSTOMERS, "text/csv").await;
    assert_eq!(r.status(), 200);
    // Committed: nothing is left in the staging area (S3: the staging key was deleted).
    let staged = gatehouse::store::ListRequest {
        prefix: gatehouse::store::STAGING_PREFIX.into(),
        max_keys: 10,
        ..Default::default()
    };
    let store = &g.state.shares["exports"].store;
    assert!(store.list(&staged).await.unwrap().objects.is_empty());
    let r = g.get(&acme, "/exports/customers.csv").await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-gatehouse-dlp"), Some("transformed"));
    assert_eq!(
        header(&r, "etag"),
        None,
        "the stored ETag does not match the body"
    );
    // Mask keeps lengths, so the length is known and sent.
    let length = header(&r, "content-length").map(str::to_owned);
    assert_eq!(length, Some(CUSTOMERS.len().to_string()));
    let body = r.text().await.unwrap();
    assert_no_secrets(&body);
    assert!(
        body.starts_with("id,name,email,phone,card,ssn,city\n1,Ada Park,"),
        "{body}"
    );
    assert!(body.contains("**** **** **** 1111"), "{body}");
    assert!(body.contains("***-**-****"), "{body}");
    assert_eq!(body.len(), CUSTOMERS.len());

    let h = head(&g, &acme, "customers.csv").await;
    assert_eq!(h.status(), 200);
    assert_eq!(header(&h, "x-gatehouse-dlp"), Some("transformed"));
    assert_eq!(header(&h, "etag"), None);
    assert_eq!(header(&h, "content-length").map(str::to_owned), length);
}

async fn a_stricter_grant_profile_changes_lengths_so_the_body_is_chunked(backend: Backend) {
    let g = start(backend, false).await;
    let acme = g.token("acme").await;
    put(&g, &acme, "customers.csv", CUSTOMERS, "text/csv").await;
    let strict = g.token("strict").await;
    let r = g.get(&strict, "/exports/customers.csv").await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "content-length"), None);
    assert_eq!(header(&r, "etag"), None);
    assert_eq!(header(&r, "accept-ranges"), Some("none"));
    let id = request_id(&r);
    let body = r.text().await.unwrap();
    assert_no_secrets(&body);
    assert!(body.contains("[REDACTED:US_SSN]"), "{body}");
    assert!(body.contains("tok_"), "{body}");
    assert!(body.contains("**** **** **** 4444"), "{body}");
    let ev = g.audit_event(&id).await;
    assert_eq!(ev["dlp"]["profile"], "strict");
    // The upload's verdict was made under the share's profile: this read pre-scanned.
    assert_eq!(ev["dlp"]["source"], "prescan");

    let h = head(&g, &strict, "customers.csv").await;
    assert_eq!(h.status(), 200);
    assert_eq!(header(&h, "content-length"), None);
    assert_eq!(header(&h, "x-gatehouse-dlp"), Some("transformed"));

    // A range of a body whose length changes is refused, never served from the stored bytes.
    let r = g
        .client
        .get(g.url("/exports/customers.csv"))
        .bearer_auth(&strict)
        .header("range", "bytes=0-40")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 501);
    let id = request_id(&r);
    let text = r.text().await.unwrap();
    assert_eq!(s3_code(&text), "NotImplemented");
    assert!(text.contains("dlp_range_unsupported"), "{text}");
    assert_eq!(g.audit_event(&id).await["reason"], "dlp_range_unsupported");
}

async fn ranges_are_cut_from_the_masked_stream(backend: Backend) {
    let g = start(backend, false).await;
    let acme = g.token("acme").await;
    put(&g, &acme, "customers.csv", CUSTOMERS, "text/csv").await;
    let whole = g
        .get(&acme, "/exports/customers.csv")
        .await
        .text()
        .await
        .unwrap();
    for (range, first, last) in [
        ("bytes=40-99", 40, 99),
        ("bytes=-30", CUSTOMERS.len() - 30, CUSTOMERS.len() - 1),
        ("bytes=100-", 100, CUSTOMERS.len() - 1),
    ] {
        let r = g
            .client
            .get(g.url("/exports/customers.csv"))
            .bearer_auth(&acme)
            .header("range", range)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 206, "{range}");
        let expected = format!("bytes {first}-{last}/{}", CUSTOMERS.len());
        assert_eq!(header(&r, "content-range"), Some(expected.as_str()));
        assert_eq!(header(&r, "x-gatehouse-dlp"), Some("transformed"));
        let part = r.text().await.unwrap();
        assert_eq!(part, whole[first..=last], "{range}");
    }
    let r = g
        .client
        .get(g.url("/exports/customers.csv"))
        .bearer_auth(&acme)
        .header("range", "bytes=5000-")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 416);
}

async fn block_is_decided_before_the_first_byte_on_get_and_head(backend: Backend) {
    let g = start(backend, false).await;
    // Placed in the bucket without the gateway: no verdict, so the read pre-scans.
    g.store_put("keys/id_rsa.txt", PEM.as_bytes().to_vec(), BTreeMap::new())
        .await;
    let acme = g.token("acme").await;
    let r = g.get(&acme, "/exports/keys/id_rsa.txt").await;
    assert_eq!(r.status(), 403);
    assert_eq!(header(&r, "x-gatehouse-dlp"), None);
    let id = request_id(&r);
    let text = r.text().await.unwrap();
    assert_eq!(s3_code(&text), "AccessDenied");
    assert!(text.contains("dlp_blocked"), "{text}");
    assert!(!text.contains("MIIE"), "{text}");
    let ev = g.audit_event(&id).await;
    assert_eq!(ev["reason"], "dlp_blocked");
    assert_eq!(ev["decision"], "deny");
    assert_eq!(ev["bytes_out"].as_u64(), Some(text.len() as u64));
    assert_eq!(ev["dlp"]["outcome"], "blocked");
    assert_eq!(ev["dlp"]["source"], "prescan");
    assert_eq!(ev["dlp"]["findings"][0]["entity"], "PRIVATE_KEY");
    assert_eq!(ev["dlp"]["findings"][0]["action"], "block");

    let h = head(&g, &acme, "keys/id_rsa.txt").await;
    assert_eq!(h.status(), 403);
    // A range of a blocked object is refused the same way.
    let r = g
        .client
        .get(g.url("/exports/keys/id_rsa.txt"))
        .bearer_auth(&acme)
        .header("range", "bytes=0-5")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
}

async fn a_blocked_upload_leaves_nothing(backend: Backend) {
    let g = start(backend, false).await;
    let acme = g.token("acme").await;
    let r = put(&g, &acme, "upload/key.txt", PEM, "text/plain").await;
    assert_eq!(r.status(), 403);
    let id = request_id(&r);
    let text = r.text().await.unwrap();
    assert_eq!(s3_code(&text), "AccessDenied");
    assert!(text.contains("dlp_blocked"), "{text}");
    let ev = g.audit_event(&id).await;
    assert_eq!(ev["reason"], "dlp_blocked");
    assert_eq!(ev["dlp"]["outcome"], "blocked");
    assert_eq!(ev["dlp"]["source"], "upload");
    assert_eq!(g.get(&acme, "/exports/upload/key.txt").await.status(), 404);

    // Compressed content cannot be scanned; the profile's default is to refuse it, whatever
    // type the partner declares.
    let gzip = "\x1f\u{8b}\x08\x00\x00\x00\x00\x00\x00\x03text";
    let r = put(&g, &acme, "upload/data.txt", gzip, "text/plain").await;
    assert_eq!(r.status(), 403);
    let id = request_id(&r);
    assert!(r.text().await.unwrap().contains("dlp_unscannable"));
    assert_eq!(
        g.audit_event(&id).await["dlp"]["outcome"],
        "unscannable_blocked"
    );
    assert_eq!(g.get(&acme, "/exports/upload/data.txt").await.status(), 404);

    // Nothing visible, nothing staged: the listing is empty and (S3) no staging key is left.
    let r = g
        .client
        .get(g.url("/exports?list-type=2"))
        .bearer_auth(&acme)
        .send()
        .await
        .unwrap();
    let listing = r.text().await.unwrap();
    assert!(!listing.contains("<Key>"), "{listing}");
    let store = &g.state.shares["exports"].store;
    let staged = gatehouse::store::ListRequest {
        prefix: gatehouse::store::STAGING_PREFIX.into(),
        max_keys: 10,
        ..Default::default()
    };
    assert!(store.list(&staged).await.unwrap().objects.is_empty());
    let all = gatehouse::store::ListRequest {
        max_keys: 10,
        ..Default::default()
    };
    assert!(store.list(&all).await.unwrap().objects.is_empty());
}

async fn uploads_are_classified_from_their_findings_and_reads_check_the_ceiling(backend: Backend) {
    let g = start(backend, false).await;
    let acme = g.token("acme").await;
    let r = put(&g, &acme, "customers.csv", CUSTOMERS, "text/plain").await;
    assert_eq!(r.status(), 200);
    let id = request_id(&r);
    let ev = g.audit_event(&id).await;
    assert_eq!(ev["dlp"]["outcome"], "stored");
    assert_eq!(ev["dlp"]["classification"], "confidential");
    let (stored, meta) = g.store_get("customers.csv").await;
    assert_eq!(stored, CUSTOMERS.as_bytes(), "stored as uploaded");
    assert_eq!(meta.metadata["classification"], "confidential");
    assert!(meta.metadata["gatehouse-dlp"].starts_with("v2;"));

    let r = put(
        &g,
        &acme,
        "notes.txt",
        "nothing sensitive here\n",
        "text/plain",
    )
    .await;
    assert_eq!(r.status(), 200);
    let (_, meta) = g.store_get("notes.txt").await;
    assert_eq!(meta.metadata["classification"], "public");
    let r = put(
        &g,
        &acme,
        "contacts.txt",
        "mail ada.park@example.com\n",
        "text/plain",
    )
    .await;
    assert_eq!(r.status(), 200);
    let (_, meta) = g.store_get("contacts.txt").await;
    assert_eq!(meta.metadata["classification"], "internal");

    // `low` may read up to internal: the confidential object looks missing.
    let low = g.token("low").await;
    assert_eq!(g.get(&low, "/exports/customers.csv").await.status(), 404);
    assert_eq!(g.get(&low, "/exports/notes.txt").await.status(), 200);
    assert_eq!(g.get(&low, "/exports/contacts.txt").await.status(), 200);
    // Nor may it write content that classifies above its ceiling: nothing is stored.
    let r = put(&g, &low, "mine.csv", CUSTOMERS, "text/csv").await;
    assert_eq!(r.status(), 403);
    let id = request_id(&r);
    assert_eq!(g.audit_event(&id).await["dlp"]["outcome"], "above_ceiling");
    assert_eq!(g.get(&acme, "/exports/mine.csv").await.status(), 404);

    // Objects without a classification count as restricted on a DLP share.
    g.store_put("plain.txt", b"hello\n".to_vec(), BTreeMap::new())
        .await;
    assert_eq!(g.get(&low, "/exports/plain.txt").await.status(), 404);
    assert_eq!(g.get(&acme, "/exports/plain.txt").await.status(), 200);

    // Partners cannot write the gateway's metadata.
    for name in ["classification", "gatehouse-dlp"] {
        let r = g
            .client
            .put(g.url("/exports/forged.txt"))
            .bearer_auth(&acme)
            .header(format!("x-amz-meta-{name}"), "public")
            .body("x")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{name}");
    }
}

async fn envelope_shares_are_decrypted_then_scanned(backend: Backend) {
    let g = start(backend, true).await;
    let acme = g.token("acme").await;
    let r = put(&g, &acme, "customers.csv", CUSTOMERS, "text/csv").await;
    assert_eq!(r.status(), 200);
    let (stored, meta) = g.store_get("customers.csv").await;
    assert!(
        !String::from_utf8_lossy(&stored).contains("Ada Park"),
        "stored sealed"
    );
    assert_eq!(meta.metadata["classification"], "confidential");
    let r = g.get(&acme, "/exports/customers.csv").await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-gatehouse-dlp"), Some("transformed"));
    let body = r.text().await.unwrap();
    assert_no_secrets(&body);
    assert!(body.contains("1,Ada Park,"), "{body}");
    assert!(body.contains("**** **** **** 1111"), "{body}");
    let r = g
        .client
        .get(g.url("/exports/customers.csv"))
        .bearer_auth(&acme)
        .header("range", "bytes=10-30")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(r.text().await.unwrap(), body[10..=30]);
    let strict = g.token("strict").await;
    let body = g
        .get(&strict, "/exports/customers.csv")
        .await
        .text()
        .await
        .unwrap();
    assert!(body.contains("[REDACTED:US_SSN]"), "{body}");
    assert_no_secrets(&body);
}

async fn audit_events_carry_findings_never_values(backend: Backend) {
    let g = start(backend, false).await;
    let acme = g.token("acme").await;
    let r = put(&g, &acme, "customers.csv", CUSTOMERS, "text/csv").await;
    let put_id = request_id(&r);
    let r = g.get(&acme, "/exports/customers.csv").await;
    let get_id = request_id(&r);
    r.text().await.unwrap();
    for id in [put_id, get_id] {
        let ev = g.audit_event(&id).await;
        let dlp = &ev["dlp"];
        assert_eq!(dlp["profile"], "pii");
        let findings = dlp["findings"].as_array().unwrap();
        let count = |entity: &str| {
            findings
                .iter()
                .filter(|f| f["entity"] == entity)
                .map(|f| f["count"].as_u64().unwrap())
                .sum::<u64>()
        };
        assert_eq!(count("CREDIT_CARD"), 2, "{dlp}");
        assert_eq!(count("US_SSN"), 2, "{dlp}");
        assert_eq!(count("EMAIL_ADDRESS"), 2, "{dlp}");
        for f in findings {
            assert!(f["detector"].is_string() && f["action"] == "mask", "{f}");
        }
        assert_no_secrets(&ev.to_string());
    }
    let ev = g
        .audit_event(&request_id(&g.get(&acme, "/exports/customers.csv").await))
        .await;
    assert_eq!(ev["dlp"]["source"], "recorded");
    // The audit trail as a whole holds no value either.
    for line in g.audit_lines(0).await {
        assert_no_secrets(&line.to_string());
    }
}

both_backends!(
    get_masks_in_the_stream_and_head_agrees,
    a_stricter_grant_profile_changes_lengths_so_the_body_is_chunked,
    ranges_are_cut_from_the_masked_stream,
    block_is_decided_before_the_first_byte_on_get_and_head,
    a_blocked_upload_leaves_nothing,
    uploads_are_classified_from_their_findings_and_reads_check_the_ceiling,
    envelope_shares_are_decrypted_then_scanned,
    audit_events_carry_findings_never_values,
);

#[path = "dlp_gateway/rules.rs"]
mod rules;
