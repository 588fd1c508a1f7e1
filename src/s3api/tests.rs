use super::*;

fn get(path: &str, query: Option<&str>) -> Result<Operation, S3Error> {
    parse(&Method::GET, path, query, None)
}

#[test]
fn routes_by_method_and_path() {
    assert_eq!(get("/", None), Ok(Operation::ListShares));
    assert_eq!(
        get("/demo/a/b.txt", None),
        Ok(Operation::GetObject {
            share: "demo".into(),
            key: "a/b.txt".into(),
            range: None
        })
    );
    assert_eq!(
        parse(&Method::PUT, "/demo/k", None, None),
        Ok(Operation::PutObject {
            share: "demo".into(),
            key: "k".into()
        })
    );
    assert_eq!(
        parse(&Method::DELETE, "/demo/k", None, None),
        Ok(Operation::DeleteObject {
            share: "demo".into(),
            key: "k".into()
        })
    );
    assert_eq!(
        parse(&Method::HEAD, "/demo", None, None),
        Ok(Operation::HeadShare {
            share: "demo".into()
        })
    );
    assert_eq!(
        parse(&Method::POST, "/demo/k", None, None),
        Err(S3Error::MethodNotAllowed)
    );
    assert_eq!(
        parse(&Method::PUT, "/demo", None, None),
        Err(S3Error::MethodNotAllowed)
    );
    assert_eq!(get("/demo/k", Some("acl")), Err(S3Error::NotImplemented));
    assert!(get("/demo/k", Some("x-id=GetObject")).is_ok());
    assert_eq!(get("/De%6Do/k", None), Err(S3Error::NoSuchBucket));
    assert_eq!(get("/../k", None), Err(S3Error::NoSuchBucket));
}

#[test]
fn refuses_bad_keys_with_clear_errors() {
    assert_eq!(get("/demo/a/../b", None), Err(S3Error::InvalidObjectKey));
    assert_eq!(get("/demo/%2e%2e/b", None), Err(S3Error::InvalidObjectKey));
    assert_eq!(
        get(&format!("/demo/{}", "k".repeat(1025)), None),
        Err(S3Error::KeyTooLong)
    );
}

#[test]
fn list_parameters() {
    let op = get("/demo", Some("list-type=2&prefix=a%2F&delimiter=%2F&max-keys=5000&continuation-token=abc&encoding-type=url")).unwrap();
    let Operation::ListObjects { share, params } = op else {
        panic!("not a list")
    };
    assert_eq!(share, "demo");
    assert_eq!(params.prefix, "a/");
    assert_eq!(params.delimiter.as_deref(), Some("/"));
    assert_eq!(params.max_keys, MAX_KEYS);
    assert_eq!(params.continuation_token.as_deref(), Some("abc"));
    assert!(params.url_encoding);
    assert_eq!(get("/demo", None), Err(S3Error::NotImplemented));
    assert_eq!(
        get("/demo/", Some("list-type=2&max-keys=x")),
        Err(S3Error::InvalidArgument)
    );
    assert_eq!(
        get("/demo", Some("list-type=2&prefix=a&prefix=b")),
        Err(S3Error::InvalidArgument)
    );
    assert_eq!(
        get("/demo", Some("list-type=2&prefix=..%2F")),
        Err(S3Error::InvalidObjectKey)
    );
    assert_eq!(
        get("/demo", Some("list-type=2&start-after=x")),
        Err(S3Error::NotImplemented)
    );
}

#[test]
fn ranges() {
    let r = |s| parse_range(s);
    assert_eq!(
        r("bytes=0-9"),
        Ok(Some(ByteRange::From {
            first: 0,
            last: Some(9)
        }))
    );
    assert_eq!(
        r("bytes=5-"),
        Ok(Some(ByteRange::From {
            first: 5,
            last: None
        }))
    );
    assert_eq!(r("bytes=-5"), Ok(Some(ByteRange::Suffix(5))));
    assert_eq!(r("bytes=9-5"), Err(S3Error::InvalidRange));
    assert_eq!(r("bytes=0-1,3-4"), Ok(None));
    assert_eq!(r("items=0-1"), Ok(None));
    assert_eq!(r("bytes=a-b"), Ok(None));
    assert_eq!(r("bytes=-"), Ok(None));
}

#[test]
fn every_error_maps_to_one_status_and_code() {
    let all = [
        (S3Error::AccessDenied, 403, "AccessDenied"),
        (S3Error::InvalidToken, 401, "InvalidToken"),
        (S3Error::ExpiredToken, 401, "ExpiredToken"),
        (S3Error::NoSuchKey, 404, "NoSuchKey"),
        (S3Error::NoSuchBucket, 404, "NoSuchBucket"),
        (S3Error::InvalidRange, 416, "InvalidRange"),
        (S3Error::InvalidArgument, 400, "InvalidArgument"),
        (S3Error::InvalidObjectKey, 400, "InvalidArgument"),
        (S3Error::KeyTooLong, 400, "KeyTooLongError"),
        (S3Error::EntityTooLarge, 400, "EntityTooLarge"),
        (S3Error::IncompleteBody, 400, "IncompleteBody"),
        (S3Error::MissingContentLength, 411, "MissingContentLength"),
        (S3Error::MethodNotAllowed, 405, "MethodNotAllowed"),
        (S3Error::NotImplemented, 501, "NotImplemented"),
        (S3Error::InternalError, 500, "InternalError"),
        (S3Error::ServiceUnavailable, 503, "ServiceUnavailable"),
        (S3Error::SlowDown, 503, "SlowDown"),
    ];
    for (e, status, code) in all {
        assert_eq!((e.status().as_u16(), e.code()), (status, code), "{e:?}");
    }
    let xml = S3Error::NoSuchKey.to_xml("/demo/a<b", "req-1", None);
    assert!(xml.contains("<Code>NoSuchKey</Code>") && xml.contains("<RequestId>req-1</RequestId>"));
    assert!(xml.contains("/demo/a&lt;b"));
    let xml = S3Error::AccessDenied.to_xml("/", "r", Some("ip_not_allowed"));
    assert!(
        xml.contains("<Message>Access Denied (reason: ip_not_allowed)</Message>"),
        "{xml}"
    );
}

#[test]
fn list_xml_escapes_and_url_encodes() {
    let params = ListParams {
        prefix: "a&b/".into(),
        max_keys: 2,
        url_encoding: false,
        ..Default::default()
    };
    let res = ListResult {
        share: "demo",
        params: &params,
        objects: vec![ListedObject {
            key: "a&b/x y",
            size: 3,
            etag: Some("\"e\""),
            last_modified: None,
        }],
        common_prefixes: vec!["a&b/sub/"],
        next_token: Some("tok".into()),
    };
    let xml = res.to_xml();
    assert!(xml.contains("<Key>a&amp;b/x y</Key>"), "{xml}");
    assert!(
        xml.contains("<KeyCount>2</KeyCount><IsTruncated>true</IsTruncated>"),
        "{xml}"
    );
    assert!(xml.contains("<NextContinuationToken>tok</NextContinuationToken>"));
    let encoded = ListParams {
        url_encoding: true,
        ..params.clone()
    };
    let xml = ListResult {
        params: &encoded,
        ..res
    }
    .to_xml();
    assert!(xml.contains("<Key>a%26b/x%20y</Key>"), "{xml}");
}
