//! Against KMS served by moto on loopback (`GATEHOUSE_TEST_S3_ENDPOINT`, as scripts/test.sh
//! sets it); skipped with a note when unset. The unreachable-service case always runs.

use std::time::Duration;

use aws_sdk_kms::config::{BehaviorVersion, Credentials};

use super::*;
use crate::crypto::format::ObjectId;

fn endpoint() -> Option<String> {
    let url = std::env::var("GATEHOUSE_TEST_S3_ENDPOINT").ok();
    if url.is_none() {
        eprintln!("skipping: GATEHOUSE_TEST_S3_ENDPOINT is not set (scripts/test.sh starts moto)");
    }
    url
}

fn client(endpoint: &str, timeout: Duration) -> Client {
    let config = aws_sdk_kms::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new("test", "test", None, None, "tests"))
        .timeout_config(TimeoutConfig::builder().operation_timeout(timeout).build())
        .build();
    Client::from_conf(config)
}

fn ctx(key: &str) -> EncryptionContext {
    EncryptionContext::new("demo", "bucket", key, ObjectId([3; 16]))
}

async fn service_with_new_key(endpoint: &str) -> KmsKeyService {
    let client = client(endpoint, Duration::from_secs(10));
    let key = client.create_key().send().await.expect("create key");
    let key_id = key.key_metadata().map(|m| m.key_id().to_owned());
    KmsKeyService::from_client(client, key_id)
}

#[tokio::test]
async fn generate_and_decrypt_under_the_encryption_context() {
    let Some(url) = endpoint() else { return };
    let kms = service_with_new_key(&url).await;
    let dk = kms
        .generate_data_key(None, &ctx("a"))
        .await
        .expect("generate");
    assert!(!dk.wrapped.is_empty());
    let plain = kms
        .decrypt_data_key(&dk.wrapped, &dk.key_id, &ctx("a"))
        .await
        .expect("decrypt");
    assert_eq!(*plain, *dk.plaintext);
    // Through the environment-configured constructor as the gateway builds it.
    let configured = KmsKeyService::new(Some("us-east-1"), Some(&url), None).await;
    let plain = configured
        .decrypt_data_key(&dk.wrapped, &dk.key_id, &ctx("a"))
        .await
        .expect("decrypt");
    assert_eq!(*plain, *dk.plaintext);
}

#[tokio::test]
async fn a_wrong_encryption_context_is_refused() {
    let Some(url) = endpoint() else { return };
    let kms = service_with_new_key(&url).await;
    let dk = kms
        .generate_data_key(None, &ctx("a"))
        .await
        .expect("generate");
    let moved = kms
        .decrypt_data_key(&dk.wrapped, &dk.key_id, &ctx("b"))
        .await;
    assert!(matches!(moved, Err(KeyError::Refused(_))), "{moved:?}");
    let other_object = EncryptionContext::new("demo", "bucket", "a", ObjectId([4; 16]));
    let swapped = kms
        .decrypt_data_key(&dk.wrapped, &dk.key_id, &other_object)
        .await;
    assert!(matches!(swapped, Err(KeyError::Refused(_))), "{swapped:?}");
    let mut bad = dk.wrapped.clone();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    let tampered = kms.decrypt_data_key(&bad, &dk.key_id, &ctx("a")).await;
    assert!(tampered.is_err(), "{tampered:?}");
}

#[tokio::test]
async fn an_unknown_or_missing_key_is_not_usable() {
    let Some(url) = endpoint() else { return };
    let kms = KmsKeyService::from_client(client(&url, Duration::from_secs(10)), None);
    let none = kms.generate_data_key(None, &ctx("a")).await;
    assert!(matches!(none, Err(KeyError::KeyUnusable(_))), "{none:?}");
    let unknown = kms
        .generate_data_key(Some("alias/gatehouse-does-not-exist"), &ctx("a"))
        .await;
    assert!(
        matches!(unknown, Err(KeyError::KeyUnusable(_))),
        "{unknown:?}"
    );
}

#[tokio::test]
async fn an_unreachable_service_is_unavailable() {
    // A port nothing listens on: connection refused, retried, then Unavailable.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    drop(listener);
    let url = format!("http://127.0.0.1:{port}");
    let kms = KmsKeyService::from_client(client(&url, Duration::from_secs(5)), Some("k".into()));
    let r = kms.generate_data_key(None, &ctx("a")).await;
    assert!(matches!(r, Err(KeyError::Unavailable(_))), "{r:?}");
    let r = kms.decrypt_data_key(&[1; 8], "k", &ctx("a")).await;
    assert!(matches!(r, Err(KeyError::Unavailable(_))), "{r:?}");
}

#[tokio::test]
async fn envelope_objects_round_trip_with_kms_behind_the_cache() {
    use std::sync::Arc;

    use bytes::Bytes;
    use futures_util::StreamExt;

    use crate::crypto::{
        CryptoError, DataKeyCache, ObjectLocation, OpenPlan, open_object, seal_object,
    };
    use crate::store::ByteStream;

    async fn drain(mut s: ByteStream) -> Vec<u8> {
        let mut out = Vec::new();
        while let Some(item) = s.next().await {
            out.extend_from_slice(&item.expect("chunk"));
        }
        out
    }
    let one =
        |b: Vec<u8>| -> ByteStream { Box::pin(futures_util::stream::iter([Ok(Bytes::from(b))])) };

    let Some(url) = endpoint() else { return };
    let kms = Arc::new(service_with_new_key(&url).await);
    let at = ObjectLocation {
        bucket: "bucket",
        key: "shares/demo/a.bin",
    };
    let plain: Vec<u8> = (0..200_000u32).map(|i| (i % 253) as u8).collect();
    let writer = DataKeyCache::new(kms.clone(), 16, Duration::from_secs(300));
    let sealed = seal_object(&writer, None, "demo", at, one(plain.clone()))
        .await
        .expect("seal");
    let ct = drain(sealed.body).await;

    // A reader with a cold cache: one KMS Decrypt, then cache hits.
    let reader = DataKeyCache::new(kms, 16, Duration::from_secs(300));
    for _ in 0..3 {
        let plan = OpenPlan::whole(ct.len() as u64).expect("plan");
        let body = open_object(&reader, at, &sealed.metadata, plan, one(ct.clone()))
            .await
            .expect("open");
        assert!(drain(body).await == plain);
    }
    let stats = reader.stats();
    assert_eq!((stats.misses, stats.hits), (1, 2));

    let moved = ObjectLocation {
        key: "shares/demo/b.bin",
        ..at
    };
    let plan = OpenPlan::whole(ct.len() as u64).expect("plan");
    let r = open_object(&reader, moved, &sealed.metadata, plan, one(ct.clone())).await;
    assert!(
        matches!(r, Err(CryptoError::Key(KeyError::Refused(_)))),
        "{:?}",
        r.err()
    );
}
