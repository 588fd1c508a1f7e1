//! Placeholder until the real implementation lands.
use super::*;

pub struct S3Store;

impl S3Store {
    #[allow(clippy::new_ret_no_self, unused_variables)]
    pub async fn new(region: Option<&str>, endpoint_url: Option<&str>, force_path_style: bool, bucket: &str) -> Result<Self, StoreError> {
        Err(StoreError::Upstream("not built yet".into()))
    }
}

#[async_trait::async_trait]
impl ObjectStore for S3Store {
    async fn head(&self, _key: &str) -> Result<ObjectMeta, StoreError> { Err(StoreError::NotFound) }
    async fn get(&self, _key: &str, _range: Option<ByteRange>) -> Result<GetObject, StoreError> { Err(StoreError::NotFound) }
    async fn put(&self, _key: &str, _body: ByteStream, _opts: PutOptions) -> Result<PutResult, StoreError> { Err(StoreError::NotFound) }
    async fn delete(&self, _key: &str) -> Result<(), StoreError> { Err(StoreError::NotFound) }
    async fn list(&self, _req: &ListRequest) -> Result<ListPage, StoreError> { Err(StoreError::NotFound) }
}
