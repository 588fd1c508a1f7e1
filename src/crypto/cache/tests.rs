use std::sync::atomic::{AtomicBool, AtomicUsize};

use async_trait::async_trait;

use super::*;
use crate::crypto::format::ObjectId;

/// Unwraps by copying the first 32 wrapped bytes; counts calls, can be slow or failing.
#[derive(Default)]
struct CountingKeys {
    decrypts: AtomicUsize,
    generates: AtomicUsize,
    failing: AtomicBool,
    delay_ms: u64,
}

#[async_trait]
impl KeyService for CountingKeys {
    async fn generate_data_key(
        &self,
        _key_id: Option<&str>,
        _context: &EncryptionContext,
    ) -> Result<DataKey, KeyError> {
        let n = self.generates.fetch_add(1, Ordering::SeqCst) as u8;
        Ok(DataKey {
            plaintext: Zeroizing::new([n; 32]),
            wrapped: vec![n; 40],
            key_id: "k".into(),
        })
    }

    async fn decrypt_data_key(
        &self,
        wrapped: &[u8],
        _key_id: &str,
        _context: &EncryptionContext,
    ) -> Result<Zeroizing<[u8; 32]>, KeyError> {
        self.decrypts.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(self.delay_ms)).await;
        if self.failing.load(Ordering::SeqCst) {
            return Err(KeyError::Unavailable("down".into()));
        }
        let mut key = Zeroizing::new([0u8; 32]);
        key.copy_from_slice(&wrapped[..32]);
        Ok(key)
    }
}

const TTL: Duration = Duration::from_secs(60);

fn ctx(key: &str) -> EncryptionContext {
    EncryptionContext::new("demo", "bucket", key, ObjectId([1; 16]))
}

fn cache(keys: &Arc<CountingKeys>, capacity: usize) -> Arc<DataKeyCache> {
    Arc::new(DataKeyCache::new(keys.clone(), capacity, TTL))
}

fn calls(keys: &CountingKeys) -> usize {
    keys.decrypts.load(Ordering::SeqCst)
}

#[tokio::test(start_paused = true)]
async fn hits_misses_and_the_ttl() {
    let keys = Arc::new(CountingKeys::default());
    let c = cache(&keys, 8);
    let wrapped = [5u8; 40];
    for _ in 0..3 {
        let k = c.decrypt(&wrapped, "k", &ctx("a")).await.expect("key");
        assert_eq!(**k, [5u8; 32]);
    }
    assert_eq!(calls(&keys), 1);
    tokio::time::advance(TTL - Duration::from_millis(1)).await;
    c.decrypt(&wrapped, "k", &ctx("a")).await.expect("key");
    assert_eq!(calls(&keys), 1, "still fresh");
    tokio::time::advance(Duration::from_millis(2)).await;
    c.decrypt(&wrapped, "k", &ctx("a")).await.expect("key");
    assert_eq!(calls(&keys), 2, "expired after the TTL");
    let s = c.stats();
    assert_eq!((s.hits, s.misses, s.joined, s.entries), (3, 2, 0, 1));
}

#[tokio::test(start_paused = true)]
async fn another_context_or_key_id_is_another_entry() {
    let keys = Arc::new(CountingKeys::default());
    let c = cache(&keys, 8);
    let wrapped = [5u8; 40];
    c.decrypt(&wrapped, "k", &ctx("a")).await.expect("key");
    c.decrypt(&wrapped, "k", &ctx("b")).await.expect("key");
    c.decrypt(&wrapped, "k2", &ctx("a")).await.expect("key");
    assert_eq!(
        calls(&keys),
        3,
        "swapped metadata never rides on a cached key"
    );
}

#[tokio::test(start_paused = true)]
async fn bounded_with_the_oldest_evicted_and_zeroised() {
    let keys = Arc::new(CountingKeys::default());
    let c = cache(&keys, 2);
    let first = c.decrypt(&[1u8; 40], "k", &ctx("a")).await.expect("key");
    let watch = Arc::downgrade(&first);
    drop(first);
    c.decrypt(&[2u8; 40], "k", &ctx("a")).await.expect("key");
    assert!(watch.upgrade().is_some(), "cached");
    c.decrypt(&[3u8; 40], "k", &ctx("a")).await.expect("key");
    assert_eq!(c.stats().entries, 2);
    // Evicted and no request holds it: dropped, and `Zeroizing` wiped it on drop.
    assert!(watch.upgrade().is_none());
    c.decrypt(&[1u8; 40], "k", &ctx("a")).await.expect("key");
    assert_eq!(calls(&keys), 4);
}

#[tokio::test(start_paused = true)]
async fn expired_keys_are_dropped_on_the_next_access() {
    let keys = Arc::new(CountingKeys::default());
    let c = cache(&keys, 8);
    let key = c.decrypt(&[1u8; 40], "k", &ctx("a")).await.expect("key");
    let watch = Arc::downgrade(&key);
    drop(key);
    tokio::time::advance(TTL).await;
    c.decrypt(&[2u8; 40], "k", &ctx("a")).await.expect("key");
    assert!(watch.upgrade().is_none());
    assert_eq!(c.stats().entries, 1);
}

#[tokio::test(start_paused = true)]
async fn concurrent_misses_make_one_call() {
    let keys = Arc::new(CountingKeys {
        delay_ms: 50,
        ..CountingKeys::default()
    });
    let c = cache(&keys, 8);
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let c = c.clone();
            tokio::spawn(async move { c.decrypt(&[9u8; 40], "k", &ctx("a")).await })
        })
        .collect();
    for t in tasks {
        assert_eq!(**t.await.expect("join").expect("key"), [9u8; 32]);
    }
    assert_eq!(calls(&keys), 1);
    let s = c.stats();
    assert_eq!((s.misses, s.joined), (1, 15));
}

#[tokio::test(start_paused = true)]
async fn a_failure_reaches_every_waiter_and_is_not_cached() {
    let keys = Arc::new(CountingKeys {
        delay_ms: 50,
        failing: AtomicBool::new(true),
        ..CountingKeys::default()
    });
    let c = cache(&keys, 8);
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let c = c.clone();
            tokio::spawn(async move { c.decrypt(&[9u8; 40], "k", &ctx("a")).await })
        })
        .collect();
    for t in tasks {
        let r = t.await.expect("join");
        assert_eq!(r.err(), Some(KeyError::Unavailable("down".into())));
    }
    assert_eq!(calls(&keys), 1);
    assert_eq!(c.stats().entries, 0);
    keys.failing.store(false, Ordering::SeqCst);
    c.decrypt(&[9u8; 40], "k", &ctx("a"))
        .await
        .expect("recovered");
    assert_eq!(calls(&keys), 2);
}

#[tokio::test(start_paused = true)]
async fn a_generated_key_is_cached_for_the_reads_that_follow() {
    let keys = Arc::new(CountingKeys::default());
    let c = cache(&keys, 8);
    let dk = c.generate(None, &ctx("a")).await.expect("generate");
    let plain = c
        .decrypt(&dk.wrapped, &dk.key_id, &ctx("a"))
        .await
        .expect("key");
    assert_eq!(**plain, *dk.plaintext);
    assert_eq!(calls(&keys), 0);
    assert_eq!(c.stats().hits, 1);
}
