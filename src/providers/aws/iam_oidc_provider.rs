//! `iam_oidc_provider`: the IAM OIDC provider of the cluster. PLACEHOLDER, being written.

use async_trait::async_trait;

use crate::model::{Attrs, ResourceKind};
use crate::providers::{Ctx, ProviderError, ProviderResult, ResourceProvider};

pub struct IamOidcProvider;

#[async_trait]
impl ResourceProvider for IamOidcProvider {
    fn kind(&self) -> ResourceKind {
        ResourceKind::IamOidcProvider
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
