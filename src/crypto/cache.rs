//! The data-key cache in front of a [`KeyService`].
//!
//! Takes unwrap requests (wrapped key, key id, encryption context); gives the plaintext data
//! key, calling the key service about once per object per TTL however many requests read it.
//! Entries are keyed by SHA-256 over the wrapped key, the key id and the canonical context, so
//! a wrapped key presented with another object's context (swapped metadata) misses the cache
//! and meets the key service's own context check. Bounded (oldest entry evicted first), each
//! entry lives at most the TTL from when it was fetched, and a plaintext key is zeroised when
//! its last holder drops it. Concurrent misses for one entry share one key-service call, and
//! its failure: every waiter gets the [`KeyError`], nothing failed is cached.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::future::{BoxFuture, FutureExt, Shared};
use parking_lot::Mutex;
use sha2::{Digest, Sha256};
use tokio::time::Instant;
use zeroize::Zeroizing;

use super::context::EncryptionContext;
use super::keys::{DataKey, KeyError, KeyService};

/// A plaintext data key shared by the requests that use it; zeroised when the last drops.
pub type PlainKey = Arc<Zeroizing<[u8; 32]>>;

type Lookup = Shared<BoxFuture<'static, Result<PlainKey, KeyError>>>;
type CacheKey = [u8; 32];

/// Counters for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Served from a cached key.
    pub hits: u64,
    /// Joined a key-service call already in flight for the same entry.
    pub joined: u64,
    /// Started a key-service call.
    pub misses: u64,
    /// Entries held now.
    pub entries: usize,
}

enum Slot {
    Pending(Lookup),
    Ready(PlainKey),
}

struct Entry {
    seq: u64,
    fetched: Instant,
    slot: Slot,
}

#[derive(Default)]
struct Entries {
    map: HashMap<CacheKey, Entry>,
    /// Insertion order, oldest first; an item whose seq no longer matches is stale.
    order: VecDeque<(CacheKey, u64)>,
    next_seq: u64,
}

impl Entries {
    fn evict_front(&mut self) {
        if let Some((key, seq)) = self.order.pop_front()
            && self.map.get(&key).is_some_and(|e| e.seq == seq)
        {
            self.map.remove(&key);
        }
    }

    fn purge_expired(&mut self, now: Instant, ttl: Duration) {
        while let Some((key, seq)) = self.order.front() {
            let live = self
                .map
                .get(key)
                .is_some_and(|e| e.seq == *seq && now.duration_since(e.fetched) < ttl);
            if live {
                break;
            }
            self.evict_front();
        }
    }

    fn insert(&mut self, key: CacheKey, slot: Slot, now: Instant, capacity: usize) {
        self.map.remove(&key);
        while self.map.len() >= capacity.max(1) {
            self.evict_front();
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.order.push_back((key, seq));
        self.map.insert(
            key,
            Entry {
                seq,
                fetched: now,
                slot,
            },
        );
    }
}

/// Caches unwrapped data keys; see the module docs.
pub struct DataKeyCache {
    service: Arc<dyn KeyService>,
    capacity: usize,
    ttl: Duration,
    entries: Mutex<Entries>,
    hits: AtomicU64,
    joined: AtomicU64,
    misses: AtomicU64,
}

impl DataKeyCache {
    pub fn new(service: Arc<dyn KeyService>, capacity: usize, ttl: Duration) -> DataKeyCache {
        DataKeyCache {
            service,
            capacity,
            ttl,
            entries: Mutex::new(Entries::default()),
            hits: AtomicU64::new(0),
            joined: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    pub fn service(&self) -> &Arc<dyn KeyService> {
        &self.service
    }

    pub fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            joined: self.joined.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            entries: self.entries.lock().map.len(),
        }
    }

    /// A fresh data key from the service (never cached before: one per object); its plaintext
    /// is cached so reads soon after the write need no key-service call.
    pub async fn generate(
        &self,
        key_id: Option<&str>,
        context: &EncryptionContext,
    ) -> Result<DataKey, KeyError> {
        let dk = self.service.generate_data_key(key_id, context).await?;
        crate::audit::trace::data_key(&dk.key_id, "service");
        let key = cache_key(&dk.wrapped, &dk.key_id, context);
        let plain = Arc::new(dk.plaintext.clone());
        let now = Instant::now();
        let mut entries = self.entries.lock();
        entries.purge_expired(now, self.ttl);
        entries.insert(key, Slot::Ready(plain), now, self.capacity);
        Ok(dk)
    }

    /// The plaintext of `wrapped` under `key_id` and `context`, from the cache or the service.
    pub async fn decrypt(
        &self,
        wrapped: &[u8],
        key_id: &str,
        context: &EncryptionContext,
    ) -> Result<PlainKey, KeyError> {
        let key = cache_key(wrapped, key_id, context);
        let lookup = {
            let now = Instant::now();
            let mut entries = self.entries.lock();
            entries.purge_expired(now, self.ttl);
            match entries.map.get(&key).map(|e| &e.slot) {
                Some(Slot::Ready(plain)) => {
                    self.hits.fetch_add(1, Ordering::Relaxed);
                    crate::audit::trace::data_key(key_id, "cache");
                    return Ok(plain.clone());
                }
                Some(Slot::Pending(lookup)) => {
                    self.joined.fetch_add(1, Ordering::Relaxed);
                    crate::audit::trace::data_key(key_id, "joined");
                    lookup.clone()
                }
                None => {
                    self.misses.fetch_add(1, Ordering::Relaxed);
                    crate::audit::trace::data_key(key_id, "service");
                    let lookup = self.lookup(wrapped, key_id, context);
                    entries.insert(key, Slot::Pending(lookup.clone()), now, self.capacity);
                    lookup
                }
            }
        };
        let result = lookup.clone().await;
        let mut entries = self.entries.lock();
        if let Some(entry) = entries.map.get_mut(&key)
            && matches!(&entry.slot, Slot::Pending(l) if l.ptr_eq(&lookup))
        {
            match &result {
                Ok(plain) => entry.slot = Slot::Ready(plain.clone()),
                Err(_) => {
                    entries.map.remove(&key);
                }
            }
        }
        result
    }

    fn lookup(&self, wrapped: &[u8], key_id: &str, context: &EncryptionContext) -> Lookup {
        let service = self.service.clone();
        let (wrapped, key_id, context) = (wrapped.to_vec(), key_id.to_owned(), context.clone());
        async move {
            service
                .decrypt_data_key(&wrapped, &key_id, &context)
                .await
                .map(Arc::new)
        }
        .boxed()
        .shared()
    }
}

/// SHA-256 of u32 length ‖ wrapped key ‖ u32 length ‖ key id ‖ canonical context.
fn cache_key(wrapped: &[u8], key_id: &str, context: &EncryptionContext) -> CacheKey {
    let mut h = Sha256::new();
    for part in [wrapped, key_id.as_bytes()] {
        h.update((part.len() as u32).to_be_bytes());
        h.update(part);
    }
    h.update(context.canonical());
    h.finalize().into()
}

#[cfg(test)]
mod tests;
