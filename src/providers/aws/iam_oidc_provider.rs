//! `iam_oidc_provider`: the IAM identity provider for the cluster's OIDC issuer, which IRSA
//! roles trust. Its id is the provider's ARN.

use async_trait::async_trait;
use aws_sdk_iam::operation::get_open_id_connect_provider::GetOpenIdConnectProviderOutput;
use serde_json::json;

use super::iam::{managed_by, tags_attr, to_iam_tags};
use super::{adopt_on_conflict, in_prior_order, string_values};
use super::{
    classify, gone_as_none, gone_is_fine, str_attr, strings_attr, sync_tags_with, tags_of,
};
use crate::base::ProviderError;
use crate::model::{Attrs, ResourceKind};
use crate::providers::{Ctx, ProviderResult, ResourceProvider};

pub struct IamOidcProvider;

/// The thumbprint of the root CA of EKS's OIDC issuers. IAM no longer checks it for them, but
/// the API still wants one.
const EKS_THUMBPRINT: &str = "9e99a48a9960b14926bb7f3b02e22da2b0ab7280";

/// The issuer without its scheme: how IAM names the provider in its ARN and `Url`.
fn host_path(url: &str) -> &str {
    url.strip_prefix("https://").unwrap_or(url)
}

/// Whether the provider `arn` is the one of the issuer at `host_path`.
fn is_provider_of(arn: &str, host_path: &str) -> bool {
    arn.split_once(":oidc-provider/")
        .is_some_and(|(_, path)| path == host_path)
}

async fn get_provider(
    ctx: &Ctx<'_>,
    arn: &str,
) -> ProviderResult<Option<GetOpenIdConnectProviderOutput>> {
    gone_as_none(
        ctx.aws
            .iam
            .get_open_id_connect_provider()
            .open_id_connect_provider_arn(arn)
            .send()
            .await
            .map_err(classify),
    )
}

#[async_trait]
impl ResourceProvider for IamOidcProvider {
    fn kind(&self) -> ResourceKind {
        ResourceKind::IamOidcProvider
    }

    async fn read(&self, ctx: &Ctx<'_>, id: &str, prior: &Attrs) -> ProviderResult<Option<Attrs>> {
        let Some(provider) = get_provider(ctx, id).await? else {
            return Ok(None);
        };
        let url = provider.url().ok_or_else(|| {
            ProviderError::fatal(format!(
                "GetOpenIDConnectProvider returned no URL for `{id}`"
            ))
        })?;
        let attrs = json!({
            // IAM reports the URL without its scheme; the spec has the issuer's `https://` form.
            "url": format!("https://{}", host_path(url)),
            "client_ids": in_prior_order(
                string_values(provider.client_id_list()),
                prior.get("client_ids"),
            ),
            "tags": tags_attr(provider.tags()),
            "arn": id,
        });
        Ok(attrs.as_object().cloned())
    }

    async fn find(&self, ctx: &Ctx<'_>, desired: &Attrs) -> ProviderResult<Option<String>> {
        let url = str_attr(desired, "url")?;
        let out = ctx
            .aws
            .iam
            .list_open_id_connect_providers()
            .send()
            .await
            .map_err(classify)?;
        let Some(arn) = out
            .open_id_connect_provider_list()
            .iter()
            .filter_map(|p| p.arn())
            .find(|arn| is_provider_of(arn, host_path(url)))
        else {
            return Ok(None);
        };
        let Some(provider) = get_provider(ctx, arn).await? else {
            return Ok(None);
        };
        if !managed_by(provider.tags(), ctx.stack) {
            return Err(ProviderError::fatal(format!(
                "an IAM OIDC provider for `{url}` already exists and is not managed by stack `{stack}`; \
                 an account has one provider per issuer, so either delete it \
                 (`aws iam delete-open-id-connect-provider --open-id-connect-provider-arn {arn}`) \
                 or tag it `mlops:stack={stack}` to let this stack adopt it",
                stack = ctx.stack
            )));
        }
        Ok(Some(arn.to_string()))
    }

    async fn create(&self, ctx: &Ctx<'_>, desired: &Attrs) -> ProviderResult<String> {
        let created = ctx
            .aws
            .iam
            .create_open_id_connect_provider()
            .url(str_attr(desired, "url")?)
            .set_client_id_list(Some(strings_attr(desired, "client_ids")))
            .thumbprint_list(EKS_THUMBPRINT)
            .set_tags(Some(to_iam_tags(tags_of(desired))?))
            .send()
            .await
            .map_err(classify)
            .and_then(|out| {
                out.open_id_connect_provider_arn()
                    .map(str::to_string)
                    .ok_or_else(|| {
                        ProviderError::fatal("CreateOpenIDConnectProvider returned no ARN")
                    })
            });
        // A repeat after a lost answer meets the provider it made: adopted when tagged as
        // this stack's (`find`), and only then.
        adopt_on_conflict(ctx, created, &["EntityAlreadyExists"], || {
            self.find(ctx, desired)
        })
        .await
    }

    async fn update(
        &self,
        ctx: &Ctx<'_>,
        id: &str,
        prior: &Attrs,
        desired: &Attrs,
    ) -> ProviderResult<()> {
        let iam = &ctx.aws.iam;
        let (before, after) = (
            strings_attr(prior, "client_ids"),
            strings_attr(desired, "client_ids"),
        );
        for client_id in after.iter().filter(|c| !before.contains(c)) {
            iam.add_client_id_to_open_id_connect_provider()
                .open_id_connect_provider_arn(id)
                .client_id(client_id)
                .send()
                .await
                .map_err(classify)?;
        }
        for client_id in before.iter().filter(|c| !after.contains(c)) {
            iam.remove_client_id_from_open_id_connect_provider()
                .open_id_connect_provider_arn(id)
                .client_id(client_id)
                .send()
                .await
                .map_err(classify)?;
        }
        sync_tags_with(
            prior,
            desired,
            async |set| {
                iam.tag_open_id_connect_provider()
                    .open_id_connect_provider_arn(id)
                    .set_tags(Some(to_iam_tags(set)?))
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(classify)
            },
            async |remove| {
                iam.untag_open_id_connect_provider()
                    .open_id_connect_provider_arn(id)
                    .set_tag_keys(Some(remove))
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(classify)
            },
        )
        .await
    }

    async fn delete(&self, ctx: &Ctx<'_>, id: &str, _prior: &Attrs) -> ProviderResult<()> {
        gone_is_fine(
            ctx.aws
                .iam
                .delete_open_id_connect_provider()
                .open_id_connect_provider_arn(id)
                .send()
                .await
                .map(|_| ())
                .map_err(classify),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn providers_match_their_issuer_exactly() {
        let arn = "arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-west-2.amazonaws.com/id/ABC";
        let issuer = "https://oidc.eks.us-west-2.amazonaws.com/id/ABC";
        assert!(is_provider_of(arn, host_path(issuer)));
        assert!(!is_provider_of(
            arn,
            host_path("https://oidc.eks.us-west-2.amazonaws.com/id/AB")
        ));
        assert!(!is_provider_of(
            arn,
            host_path("https://eks.us-west-2.amazonaws.com/id/ABC")
        ));
    }

    #[test]
    fn the_scheme_is_optional_in_a_url() {
        assert_eq!(host_path("https://oidc.example/id/1"), "oidc.example/id/1");
        assert_eq!(host_path("oidc.example/id/1"), "oidc.example/id/1");
    }
}
