//! `mlops backend create`: the S3 bucket of a remote state, made by mlops itself (the bootstrap
//! step Terraform users keep a separate configuration for). Versioned, so that every earlier
//! state stays recoverable; encrypted by default; all public access blocked; tagged. Made with
//! the same provider as the stack's own buckets. Idempotent: an existing bucket gets what it
//! lacks and keeps its other tags, since several stacks may share it.

use serde_json::{json, Value};

use super::Stack;
use crate::base::ProviderError;
use crate::base::Reporter;
use crate::model::{Address, Attrs, ResourceKind};
use crate::providers::aws::{provider_for, Clients, Settings};
use crate::providers::Ctx;
use crate::spec::{S3StateSpec, StateSpec};
use crate::state::StateError;
use crate::{Error, Result};

/// What `backend create` did.
#[derive(Debug, PartialEq, Eq)]
pub enum BackendCreated {
    Created,
    /// The bucket existed; these settings were changed (`versioning`, `encryption`...).
    Fixed(Vec<String>),
    /// The bucket existed with every setting right.
    Unchanged,
}

/// The settings `backend create` makes sure of; tags are only ever added.
const SETTINGS: [&str; 3] = ["versioning", "encryption", "block_public_access"];

/// The state bucket as it must be: the stack's tags and `mlops:purpose = state`.
fn desired(stack: &Stack, s3: &S3StateSpec) -> Attrs {
    let mut tags: serde_json::Map<String, Value> = stack
        .spec
        .stack
        .tags
        .iter()
        .map(|(k, v)| (k.clone(), json!(v)))
        .collect();
    tags.insert("mlops:purpose".into(), json!("state"));
    let attrs = json!({
        "bucket": s3.bucket,
        "versioning": true,
        "encryption": s3.encryption,
        "block_public_access": true,
        "force_destroy": false,
        "tags": tags,
    });
    attrs.as_object().cloned().unwrap_or_default()
}

/// Makes or repairs the state bucket of `stack`, reached through `endpoint_url` when given.
pub async fn create_backend(
    stack: &Stack,
    endpoint_url: Option<&str>,
    reporter: &dyn Reporter,
) -> Result<(S3StateSpec, BackendCreated)> {
    let StateSpec::S3(s3) = &stack.spec.state else {
        return Err(Error::refused(
            format!(
                "stack `{}` keeps its state in a local file, `{}`",
                stack.spec.stack.name,
                stack.store.describe()
            ),
            "`backend create` makes the bucket of `[state] backend = \"s3\"`; set `backend`, `bucket` (and optionally `key`) in the stack file first",
        ));
    };
    let clients = Clients::connect(&Settings {
        region: s3.region.clone(),
        endpoint_url: endpoint_url.map(str::to_string),
        cap: None,
    })
    .await;
    let address = Address::new("state_bucket");
    let kube = crate::providers::kube::KubeEnv::unused();
    let ctx = Ctx {
        aws: &clients,
        kube: &kube,
        stack: &stack.spec.stack.name,
        address: &address,
        reporter,
    };
    let failed = |error: ProviderError| {
        Error::State(StateError::Remote {
            action: "set up the state bucket",
            path: format!("s3://{}", s3.bucket).into(),
            error,
        })
    };
    let provider = provider_for(ResourceKind::S3Bucket);
    let mut wanted = desired(stack, s3);
    let Some(live) = provider
        .read(&ctx, &s3.bucket, &wanted)
        .await
        .map_err(failed)?
    else {
        provider.create(&ctx, &wanted).await.map_err(failed)?;
        return Ok((s3.clone(), BackendCreated::Created));
    };
    // Tags already on the bucket stay, with their values: other stacks may share it.
    let mut tags = live
        .get("tags")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let added_tags = wanted
        .get("tags")
        .and_then(Value::as_object)
        .is_some_and(|ours| {
            let before = tags.len();
            for (k, v) in ours {
                tags.entry(k.clone()).or_insert_with(|| v.clone());
            }
            tags.len() > before
        });
    wanted.insert("tags".into(), Value::Object(tags));
    let mut fixed: Vec<String> = SETTINGS
        .iter()
        .filter(|k| live.get(**k) != wanted.get(**k))
        .map(|k| k.to_string())
        .collect();
    if added_tags {
        fixed.push("tags".into());
    }
    if fixed.is_empty() {
        return Ok((s3.clone(), BackendCreated::Unchanged));
    }
    provider
        .update(&ctx, &s3.bucket, &live, &wanted)
        .await
        .map_err(failed)?;
    Ok((s3.clone(), BackendCreated::Fixed(fixed)))
}
