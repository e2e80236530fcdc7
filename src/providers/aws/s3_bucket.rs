//! `s3_bucket`: an S3 bucket. PLACEHOLDER, being written.

use async_trait::async_trait;

use crate::model::{Attrs, ResourceKind};
use crate::providers::{Ctx, ProviderError, ProviderResult, ResourceProvider};

pub struct S3Bucket;

#[async_trait]
impl ResourceProvider for S3Bucket {
    fn kind(&self) -> ResourceKind {
        ResourceKind::S3Bucket
    }

    async fn read(
        &self,
        _ctx: &Ctx<'_>,
        _id: &str,
        _prior: &Attrs,
    ) -> ProviderResult<Option<Attrs>> {
        Err(ProviderError::fatal("placeholder"))
    }

    async fn find(&self, _ctx: &Ctx<'_>, _desired: &Attrs) -> ProviderResult<Option<String>> {
        Err(ProviderError::fatal("placeholder"))
    }

    async fn create(&self, _ctx: &Ctx<'_>, _desired: &Attrs) -> ProviderResult<String> {
        Err(ProviderError::fatal("placeholder"))
    }

    async fn update(
        &self,
        _ctx: &Ctx<'_>,
        _id: &str,
        _prior: &Attrs,
        _desired: &Attrs,
    ) -> ProviderResult<()> {
        Err(ProviderError::fatal("placeholder"))
    }

    async fn delete(&self, _ctx: &Ctx<'_>, _id: &str, _prior: &Attrs) -> ProviderResult<()> {
        Err(ProviderError::fatal("placeholder"))
    }
}
