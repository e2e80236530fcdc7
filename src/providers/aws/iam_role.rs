//! `iam_role`: an IAM role trusted either by an AWS service (the cluster and node roles) or by
//! one Kubernetes service account through the cluster's OIDC provider (IRSA). The trust policy
//! is built from the attributes and read back onto them. A `permissions_boundary` (a managed
//! policy ARN, which many organisations' SCPs require on every role) is set at creation, so the
//! role never exists without it.

use async_trait::async_trait;
use aws_sdk_iam::types::Role;
use serde_json::{json, Value};

use super::iam::{attached_policy_arns, managed_by, tags_attr, to_iam_tags};
use super::{
    adopt_on_conflict, classify, gone_as_none, gone_is_fine, str_attr, sync_tags_with, tags_of,
};
use crate::base::ProviderError;
use crate::model::{Attrs, ResourceKind};
use crate::providers::{Ctx, ProviderResult, ResourceProvider};

pub struct IamRole;

/// The attributes the trust policy is built from.
const TRUST_ATTRS: [&str; 5] = [
    "trust_service",
    "oidc_provider_arn",
    "oidc_issuer",
    "oidc_subject",
    "oidc_audience",
];

/// What `trust_service` reads back as when the trust policy is not one mlops writes, so that
/// the difference shows in a plan and an apply puts mlops's policy back.
const UNRECOGNISED: &str = "<unrecognised trust policy>";

/// The trust policy the attributes stand for: a service's, or the IRSA one of a service account.
fn trust_policy(attrs: &Attrs) -> ProviderResult<Value> {
    if let Some(service) = attrs.get("trust_service").and_then(Value::as_str) {
        return Ok(json!({
            "Version": "2012-10-17",
            "Statement": [{
                "Effect": "Allow",
                "Principal": { "Service": service },
                "Action": "sts:AssumeRole",
            }],
        }));
    }
    let issuer = str_attr(attrs, "oidc_issuer")?;
    let host = issuer.strip_prefix("https://").unwrap_or(issuer);
    Ok(json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": { "Federated": str_attr(attrs, "oidc_provider_arn")? },
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {
                "StringEquals": {
                    (format!("{host}:sub")): str_attr(attrs, "oidc_subject")?,
                    (format!("{host}:aud")): str_attr(attrs, "oidc_audience")?,
                },
            },
        }],
    }))
}

/// The trust attributes of a live trust policy (`None` when it could not be decoded): those
/// that build exactly this policy, or a marker that differs from any spec.
fn trust_attrs(policy: Option<&Value>) -> Attrs {
    policy
        .and_then(recognise)
        .unwrap_or_else(|| trust_values(Some(UNRECOGNISED), None, None, None, None))
}

fn trust_values(
    service: Option<&str>,
    provider_arn: Option<&str>,
    issuer: Option<String>,
    subject: Option<&str>,
    audience: Option<&str>,
) -> Attrs {
    let values = [
        json!(service),
        json!(provider_arn),
        json!(issuer),
        json!(subject),
        json!(audience),
    ];
    TRUST_ATTRS
        .iter()
        .map(|a| a.to_string())
        .zip(values)
        .collect()
}

fn recognise(policy: &Value) -> Option<Attrs> {
    let [statement] = policy.get("Statement")?.as_array()?.as_slice() else {
        return None;
    };
    let attrs = match statement.pointer("/Principal/Service") {
        Some(service) => trust_values(Some(service.as_str()?), None, None, None, None),
        None => {
            let provider_arn = statement.pointer("/Principal/Federated")?.as_str()?;
            let conditions = statement.pointer("/Condition/StringEquals")?.as_object()?;
            let (key, subject) = conditions.iter().find(|(k, _)| k.ends_with(":sub"))?;
            let host = key.strip_suffix(":sub")?;
            let audience = conditions.get(&format!("{host}:aud"))?.as_str()?;
            trust_values(
                None,
                Some(provider_arn),
                Some(format!("https://{host}")),
                Some(subject.as_str()?),
                Some(audience),
            )
        }
    };
    // Anything beyond what these attributes build (another statement, action or condition)
    // is not ours.
    (trust_policy(&attrs).ok()? == *policy).then_some(attrs)
}

/// Decodes a percent-encoded string, as IAM returns policy documents (the SDK does not decode
/// them). A `%` not followed by two hex digits is kept as it is; `None` when the bytes are
/// not UTF-8.
pub(super) fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            if let Some(byte) = bytes.get(i + 1..i + 3).and_then(hex_byte) {
                out.push(byte);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).ok()
}

fn hex_byte(pair: &[u8]) -> Option<u8> {
    let digit = |b: u8| char::from(b).to_digit(16);
    u8::try_from(digit(pair[0])? * 16 + digit(pair[1])?).ok()
}

/// The permissions boundary the attributes name, if any.
fn boundary(attrs: &Attrs) -> Option<&str> {
    attrs.get("permissions_boundary").and_then(Value::as_str)
}

async fn get_role(ctx: &Ctx<'_>, name: &str) -> ProviderResult<Option<Role>> {
    let out = gone_as_none(
        ctx.aws
            .iam
            .get_role()
            .role_name(name)
            .send()
            .await
            .map_err(classify),
    )?;
    out.map(|o| {
        o.role
            .ok_or_else(|| ProviderError::fatal(format!("GetRole returned no role for `{name}`")))
    })
    .transpose()
}

#[async_trait]
impl ResourceProvider for IamRole {
    fn kind(&self) -> ResourceKind {
        ResourceKind::IamRole
    }

    async fn read(&self, ctx: &Ctx<'_>, id: &str, _prior: &Attrs) -> ProviderResult<Option<Attrs>> {
        let Some(role) = get_role(ctx, id).await? else {
            return Ok(None);
        };
        let policy: Option<Value> = role
            .assume_role_policy_document()
            .and_then(percent_decode)
            .and_then(|doc| serde_json::from_str(&doc).ok());
        let mut attrs = trust_attrs(policy.as_ref());
        attrs.insert("name".into(), json!(role.role_name()));
        attrs.insert("path".into(), json!(role.path()));
        attrs.insert(
            "permissions_boundary".into(),
            json!(role
                .permissions_boundary()
                .and_then(|b| b.permissions_boundary_arn())),
        );
        attrs.insert("tags".into(), tags_attr(role.tags()));
        attrs.insert("arn".into(), json!(role.arn()));
        Ok(Some(attrs))
    }

    async fn find(&self, ctx: &Ctx<'_>, desired: &Attrs) -> ProviderResult<Option<String>> {
        let name = str_attr(desired, "name")?;
        match get_role(ctx, name).await? {
            None => Ok(None),
            Some(role) if managed_by(role.tags(), ctx.stack) => Ok(Some(name.to_string())),
            Some(_) => Err(ProviderError::fatal(format!(
                "an IAM role named `{name}` already exists and is not managed by stack `{}`",
                ctx.stack
            ))),
        }
    }

    async fn create(&self, ctx: &Ctx<'_>, desired: &Attrs) -> ProviderResult<String> {
        let name = str_attr(desired, "name")?;
        let created = ctx
            .aws
            .iam
            .create_role()
            .role_name(name)
            .path(str_attr(desired, "path")?)
            .assume_role_policy_document(trust_policy(desired)?.to_string())
            .set_permissions_boundary(boundary(desired).map(str::to_string))
            .set_tags(Some(to_iam_tags(tags_of(desired))?))
            .send()
            .await
            .map(|_| name.to_string())
            .map_err(classify);
        // A repeat after a lost answer meets the role it made: adopted when tagged as this
        // stack's (`find`), and only then.
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
        if TRUST_ATTRS.iter().any(|a| prior.get(*a) != desired.get(*a)) {
            iam.update_assume_role_policy()
                .role_name(id)
                .policy_document(trust_policy(desired)?.to_string())
                .send()
                .await
                .map_err(classify)?;
        }
        if boundary(prior) != boundary(desired) {
            match boundary(desired) {
                Some(arn) => iam
                    .put_role_permissions_boundary()
                    .role_name(id)
                    .permissions_boundary(arn)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(classify)?,
                None => iam
                    .delete_role_permissions_boundary()
                    .role_name(id)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(classify)?,
            }
        }
        sync_tags_with(
            prior,
            desired,
            async |set| {
                iam.tag_role()
                    .role_name(id)
                    .set_tags(Some(to_iam_tags(set)?))
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(classify)
            },
            async |remove| {
                iam.untag_role()
                    .role_name(id)
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
        let iam = &ctx.aws.iam;
        // IAM refuses to delete a role that still has policies: detach the managed ones
        // attached outside mlops and delete the inline ones first.
        let Some(attached) = gone_as_none(attached_policy_arns(iam, id).await)? else {
            return Ok(());
        };
        for arn in attached {
            gone_is_fine(
                iam.detach_role_policy()
                    .role_name(id)
                    .policy_arn(arn)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(classify),
            )?;
        }
        let Some(inline) = gone_as_none(
            iam.list_role_policies()
                .role_name(id)
                .into_paginator()
                .items()
                .send()
                .try_collect()
                .await
                .map_err(classify),
        )?
        else {
            return Ok(());
        };
        for policy in inline {
            gone_is_fine(
                iam.delete_role_policy()
                    .role_name(id)
                    .policy_name(policy)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(classify),
            )?;
        }
        gone_is_fine(
            iam.delete_role()
                .role_name(id)
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

    fn attrs(value: Value) -> Attrs {
        value.as_object().cloned().expect("an object")
    }

    fn service_role() -> Attrs {
        attrs(json!({
            "trust_service": "eks.amazonaws.com",
            "oidc_provider_arn": null,
            "oidc_issuer": null,
            "oidc_subject": null,
            "oidc_audience": null,
        }))
    }

    fn irsa_role() -> Attrs {
        attrs(json!({
            "trust_service": null,
            "oidc_provider_arn": "arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-west-2.amazonaws.com/id/ABC",
            "oidc_issuer": "https://oidc.eks.us-west-2.amazonaws.com/id/ABC",
            "oidc_subject": "system:serviceaccount:kserve:kserve-sa",
            "oidc_audience": "sts.amazonaws.com",
        }))
    }

    #[test]
    fn service_trust_policy_has_the_documented_shape() {
        let policy = trust_policy(&service_role()).unwrap();
        assert_eq!(
            policy,
            json!({
                "Version": "2012-10-17",
                "Statement": [{
                    "Effect": "Allow",
                    "Principal": { "Service": "eks.amazonaws.com" },
                    "Action": "sts:AssumeRole",
                }],
            })
        );
    }

    #[test]
    fn irsa_trust_policy_conditions_on_the_issuer_host() {
        let policy = trust_policy(&irsa_role()).unwrap();
        let conditions = &policy["Statement"][0]["Condition"]["StringEquals"];
        assert_eq!(
            conditions["oidc.eks.us-west-2.amazonaws.com/id/ABC:sub"],
            "system:serviceaccount:kserve:kserve-sa"
        );
        assert_eq!(
            conditions["oidc.eks.us-west-2.amazonaws.com/id/ABC:aud"],
            "sts.amazonaws.com"
        );
        assert_eq!(
            policy["Statement"][0]["Action"],
            "sts:AssumeRoleWithWebIdentity"
        );
    }

    #[test]
    fn trust_policies_read_back_onto_their_attributes() {
        for role in [service_role(), irsa_role()] {
            let policy = trust_policy(&role).unwrap();
            assert_eq!(trust_attrs(Some(&policy)), role);
        }
    }

    #[test]
    fn foreign_trust_policies_show_as_a_difference() {
        let mut extra_statement = trust_policy(&service_role()).unwrap();
        let statement = extra_statement["Statement"][0].clone();
        extra_statement["Statement"]
            .as_array_mut()
            .unwrap()
            .push(statement);
        let mut extra_condition = trust_policy(&irsa_role()).unwrap();
        extra_condition["Statement"][0]["Condition"]["StringLike"] = json!({ "a": "b" });
        let mut other_action = trust_policy(&service_role()).unwrap();
        other_action["Statement"][0]["Action"] = json!("sts:TagSession");
        for policy in [extra_statement, extra_condition, other_action, json!({})] {
            let read = trust_attrs(Some(&policy));
            assert_eq!(read["trust_service"], UNRECOGNISED);
            assert_ne!(read, service_role());
        }
        assert_eq!(trust_attrs(None)["trust_service"], UNRECOGNISED);
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(
            percent_decode("%7B%22Version%22%3A%20%222012-10-17%22%7D").as_deref(),
            Some(r#"{"Version": "2012-10-17"}"#)
        );
        assert_eq!(percent_decode("a+b%2fc").as_deref(), Some("a+b/c"));
        // Not an escape: kept as it is.
        assert_eq!(percent_decode("100%").as_deref(), Some("100%"));
        assert_eq!(percent_decode("%zz%4").as_deref(), Some("%zz%4"));
        assert_eq!(percent_decode("%+1").as_deref(), Some("%+1"));
        // Multi-byte UTF-8.
        assert_eq!(percent_decode("caf%C3%A9").as_deref(), Some("café"));
        assert_eq!(percent_decode("%FF"), None);
    }

    #[test]
    fn an_encoded_live_document_reads_back() {
        let encoded = "%7B%22Version%22%3A%20%222012-10-17%22%2C%20%22Statement%22%3A%20%5B%7B%22Effect%22%3A%20%22Allow%22%2C%20%22Principal%22%3A%20%7B%22Service%22%3A%20%22eks.amazonaws.com%22%7D%2C%20%22Action%22%3A%20%22sts%3AAssumeRole%22%7D%5D%7D";
        let policy: Value = serde_json::from_str(&percent_decode(encoded).unwrap()).unwrap();
        assert_eq!(trust_attrs(Some(&policy)), service_role());
    }
}
