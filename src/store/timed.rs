//! [`Timed`]: an [`ObjectStore`] that reports how long each call waited on the store, for the
//! request's audit event (`upstream_ms`, through [`crate::audit::trace`]).
//!
//! `get` counts until the response headers (the body streams afterwards). `put` and `stage`
//! are not counted: they last as long as the partner takes to send the body, which is no
//! measure of the store.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use super::{
    ByteRange, ByteStream, GetObject, ListPage, ListRequest, MetadataReplaced, ObjectMeta,
    ObjectStore, PutOptions, PutResult, Staged, StoreError,
};
use crate::audit::trace;

pub struct Timed(pub Arc<dyn ObjectStore>);

async fn timed<T>(call: impl Future<Output = T>) -> T {
    let start = Instant::now();
    let out = call.await;
    trace::upstream(start.elapsed());
    out
}

#[async_trait::async_trait]
impl ObjectStore for Timed {
    async fn head(&self, key: &str) -> Result<ObjectMeta, StoreError> {
        timed(self.0.head(key)).await
    }

    async fn get(&self, key: &str, range: Option<ByteRange>) -> Result<GetObject, StoreError> {
        timed(self.0.get(key, range)).await
    }

    async fn put(
        &self,
        key: &str,
        body: ByteStream,
        opts: PutOptions,
    ) -> Result<PutResult, StoreError> {
        self.0.put(key, body, opts).await
    }

    async fn stage(
        &self,
        key: &str,
        body: ByteStream,
        opts: PutOptions,
    ) -> Result<Staged, StoreError> {
        self.0.stage(key, body, opts).await
    }

    async fn commit(
        &self,
        staged: Staged,
        metadata: BTreeMap<String, String>,
    ) -> Result<PutResult, StoreError> {
        timed(self.0.commit(staged, metadata)).await
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        timed(self.0.delete(key)).await
    }

    async fn list(&self, req: &ListRequest) -> Result<ListPage, StoreError> {
        timed(self.0.list(req)).await
    }

    async fn replace_metadata(
        &self,
        key: &str,
        metadata: BTreeMap<String, String>,
        if_match_etag: &str,
    ) -> Result<MetadataReplaced, StoreError> {
        timed(self.0.replace_metadata(key, metadata, if_match_etag)).await
    }
}
