//! The AWS providers: SDK clients built the standard way (default credential chain, region
//! from the spec, `AWS_ENDPOINT_URL*` or `--endpoint-url` for emulators), the one place where
//! SDK errors are classified, tag helpers shared by the kinds, and one file per resource kind
//! (plus `cluster_sweep`, what the cluster's delete removes of what Kubernetes made).

mod cap;
mod cluster_sweep;
mod ec2;
mod ecr_repository;
mod eip;
mod eks_access_entry;
mod eks_addon;
mod eks_cluster;
pub(crate) use eks_cluster::describe as describe_cluster;
mod eks_node_group;
mod eks_update;
pub(crate) use eks_node_group::{describe as describe_node_group, health_issues};
mod iam;
mod iam_oidc_provider;
mod iam_role;
mod iam_role_policy;
mod iam_role_policy_attachment;
mod internet_gateway;
mod kms_key;
#[cfg(test)]
mod mocks;
mod nat_gateway;
mod route;
mod route_table;
mod route_table_association;
mod s3_bucket;
mod subnet;
mod vpc;
mod vpc_endpoint;

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use serde_json::{json, Value};

use super::{ErrorClass, ProviderError, ResourceProvider};
use crate::model::{Attrs, ResourceKind};

pub use cap::RequestCap;

/// The SDK clients of one region.
#[derive(Clone, Debug)]
pub struct Clients {
    pub region: String,
    pub ec2: aws_sdk_ec2::Client,
    pub eks: aws_sdk_eks::Client,
    /// Classic load balancers, which Kubernetes' in-tree service controller makes.
    pub elb: aws_sdk_elasticloadbalancing::Client,
    /// Application and network load balancers, which the AWS Load Balancer Controller makes.
    pub elbv2: aws_sdk_elasticloadbalancingv2::Client,
    pub iam: aws_sdk_iam::Client,
    /// The key that encrypts the cluster's Secrets.
    pub kms: aws_sdk_kms::Client,
    pub s3: aws_sdk_s3::Client,
    pub ecr: aws_sdk_ecr::Client,
    pub sts: aws_sdk_sts::Client,
}

/// How to reach AWS: the region, an endpoint that replaces AWS's own (an emulator), and the cap
/// on requests in flight that the clients share (none: the SDK's client, uncapped).
#[derive(Debug, Clone)]
pub struct Settings {
    pub region: String,
    pub endpoint_url: Option<String>,
    pub cap: Option<RequestCap>,
}

impl Settings {
    /// Loads credentials and configuration the standard way. Throttling and transient errors
    /// are retried by the SDK with exponential backoff and jitter. Also tells whether S3 must
    /// put buckets in the URL path: emulators serve S3 on one host.
    async fn load(&self) -> (SdkConfig, bool) {
        let retry = RetryConfig::standard()
            .with_max_attempts(8)
            .with_initial_backoff(Duration::from_millis(200))
            .with_max_backoff(Duration::from_secs(20));
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(self.region.clone()))
            .retry_config(retry);
        if let Some(url) = &self.endpoint_url {
            loader = loader.endpoint_url(url);
        }
        if let Some(http) = self.cap.as_ref().and_then(RequestCap::default_client) {
            loader = loader.http_client(http);
        }
        let custom_endpoint = self.endpoint_url.is_some()
            || std::env::var_os("AWS_ENDPOINT_URL").is_some()
            || std::env::var_os("AWS_ENDPOINT_URL_S3").is_some();
        (loader.load().await, custom_endpoint)
    }

    /// An S3 client alone, configured as `Clients::connect` configures its own.
    pub async fn s3_client(&self) -> aws_sdk_s3::Client {
        let (config, path_style) = self.load().await;
        s3_client(&config, path_style)
    }
}

/// An S3 client; `path_style` puts buckets in the URL path.
fn s3_client(config: &SdkConfig, path_style: bool) -> aws_sdk_s3::Client {
    let s3_config = aws_sdk_s3::config::Builder::from(config)
        .force_path_style(path_style)
        .build();
    aws_sdk_s3::Client::from_conf(s3_config)
}

impl Clients {
    /// Every client, for the region and endpoint of `settings`.
    pub async fn connect(settings: &Settings) -> Clients {
        let (config, path_style) = settings.load().await;
        Self::from_config(&config, &settings.region, path_style)
    }

    /// Clients from a loaded configuration; `path_style` puts S3 buckets in the URL path.
    pub fn from_config(config: &SdkConfig, region: &str, path_style: bool) -> Clients {
        Clients {
            region: region.to_string(),
            ec2: aws_sdk_ec2::Client::new(config),
            eks: aws_sdk_eks::Client::new(config),
            elb: aws_sdk_elasticloadbalancing::Client::new(config),
            elbv2: aws_sdk_elasticloadbalancingv2::Client::new(config),
            iam: aws_sdk_iam::Client::new(config),
            kms: aws_sdk_kms::Client::new(config),
            s3: s3_client(config, path_style),
            ecr: aws_sdk_ecr::Client::new(config),
            sts: aws_sdk_sts::Client::new(config),
        }
    }

    /// The account the credentials belong to.
    pub async fn account_id(&self) -> Result<String, ProviderError> {
        let identity = self
            .sts
            .get_caller_identity()
            .send()
            .await
            .map_err(classify)?;
        identity
            .account
            .ok_or_else(|| ProviderError::fatal("STS returned no account id"))
    }
}

/// The provider of a resource kind.
pub fn provider_for(kind: ResourceKind) -> &'static dyn ResourceProvider {
    match kind {
        ResourceKind::Vpc => &vpc::Vpc,
        ResourceKind::InternetGateway => &internet_gateway::InternetGateway,
        ResourceKind::Subnet => &subnet::Subnet,
        ResourceKind::Eip => &eip::Eip,
        ResourceKind::NatGateway => &nat_gateway::NatGateway,
        ResourceKind::RouteTable => &route_table::RouteTable,
        ResourceKind::Route => &route::Route,
        ResourceKind::RouteTableAssociation => &route_table_association::RouteTableAssociation,
        ResourceKind::VpcEndpoint => &vpc_endpoint::VpcEndpoint,
        ResourceKind::IamRole => &iam_role::IamRole,
        ResourceKind::IamRolePolicyAttachment => {
            &iam_role_policy_attachment::IamRolePolicyAttachment
        }
        ResourceKind::IamRolePolicy => &iam_role_policy::IamRolePolicy,
        ResourceKind::KmsKey => &kms_key::KmsKey,
        ResourceKind::EksCluster => &eks_cluster::EksCluster,
        ResourceKind::EksNodeGroup => &eks_node_group::EksNodeGroup,
        ResourceKind::EksAccessEntry => &eks_access_entry::EksAccessEntry,
        ResourceKind::EksAddon => &eks_addon::EksAddon,
        ResourceKind::IamOidcProvider => &iam_oidc_provider::IamOidcProvider,
        ResourceKind::S3Bucket => &s3_bucket::S3Bucket,
        ResourceKind::EcrRepository => &ecr_repository::EcrRepository,
        ResourceKind::Addon | ResourceKind::KubeObject | ResourceKind::ClusterCleanup => {
            unreachable!("{kind} is not an AWS resource; see providers::provider_for")
        }
    }
}

/// Error codes that mean "this object does not exist".
const NOT_FOUND: &[&str] = &[
    "InvalidVpcID.NotFound",
    "InvalidSubnetID.NotFound",
    "InvalidInternetGatewayID.NotFound",
    "InvalidAllocationID.NotFound",
    "InvalidNatGatewayID.NotFound",
    "NatGatewayNotFound",
    "InvalidRouteTableID.NotFound",
    "InvalidRoute.NotFound",
    "InvalidAssociationID.NotFound",
    "NoSuchEntity",
    "ResourceNotFoundException",
    "NoSuchBucket",
    "NotFound",
    // KMS: no such key or alias.
    "NotFoundException",
    "RepositoryNotFoundException",
    "LoadBalancerNotFound",
    "TargetGroupNotFound",
    "InvalidNetworkInterfaceID.NotFound",
    "InvalidGroup.NotFound",
    "InvalidPermission.NotFound",
];

/// Error codes that mean "not yet": AWS has not caught up with an earlier change.
const PROPAGATING: &[&str] = &[
    "DependencyViolation",
    "DeleteConflict",
    "ResourceInUseException",
    // ELBv2: a target group still used by a load balancer being deleted.
    "ResourceInUse",
    "ConcurrentModificationException",
    "OperationAbortedException",
    "IncorrectState",
    "Throttling",
    "ThrottlingException",
    "RequestLimitExceeded",
    "TooManyRequestsException",
];

/// The one place where SDK errors become `ProviderError`s.
pub fn classify<E, R>(err: aws_sdk_ec2::error::SdkError<E, R>) -> ProviderError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: Debug + 'static,
{
    let code = err.code().map(str::to_string);
    let message = err
        .message()
        .map(str::to_string)
        .unwrap_or_else(|| error_chain(&err));
    let class = match code.as_deref() {
        Some(c) if NOT_FOUND.contains(&c) => ErrorClass::NotFound,
        Some(c) if PROPAGATING.contains(&c) => ErrorClass::Propagating,
        // IAM has not yet propagated a role or an OIDC provider that was just created.
        Some("InvalidParameterException" | "MalformedPolicyDocument" | "InvalidParameterValue")
            if message.contains("assume")
                || message.contains("Invalid principal")
                || message.contains("does not exist") =>
        {
            ErrorClass::Propagating
        }
        _ => ErrorClass::Fatal,
    };
    ProviderError {
        class,
        code,
        message,
    }
}

/// An error without an AWS message: its causes joined by `: `, without the debug dump the SDK
/// appends, and cut to a readable length.
fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    const LIMIT: usize = 300;
    let mut parts = vec![err.to_string()];
    let mut source = err.source();
    while let Some(cause) = source {
        parts.push(cause.to_string());
        source = cause.source();
    }
    let text = parts.join(": ");
    match text.char_indices().nth(LIMIT) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text,
    }
}

/// `Ok(None)` for an error that means the object is gone.
pub fn gone_as_none<T>(result: Result<T, ProviderError>) -> Result<Option<T>, ProviderError> {
    match result {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

/// `Ok(())` for an error that means the object is already gone.
pub fn gone_is_fine(result: Result<(), ProviderError>) -> Result<(), ProviderError> {
    gone_as_none(result).map(|_| ())
}

/// The `tags` attribute as a map.
pub fn tags_of(attrs: &Attrs) -> BTreeMap<String, String> {
    attrs
        .get("tags")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default()
}

/// Tags as the `tags` attribute value.
pub fn tags_value<'a>(tags: impl IntoIterator<Item = (&'a str, &'a str)>) -> Value {
    Value::Object(
        tags.into_iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect(),
    )
}

/// Whether a `tags` attribute value marks the object as created by `stack`.
pub fn tagged_by_stack(tags: Option<&Value>, stack: &str) -> bool {
    tags.and_then(|t| t.get("mlops:stack"))
        .and_then(Value::as_str)
        == Some(stack)
}

/// What to set and what to remove to go from `prior` tags to `desired` tags.
pub fn tag_changes(prior: &Attrs, desired: &Attrs) -> (BTreeMap<String, String>, Vec<String>) {
    let (before, after) = (tags_of(prior), tags_of(desired));
    let set = after
        .iter()
        .filter(|(k, v)| before.get(*k) != Some(v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let remove = before
        .keys()
        .filter(|k| !after.contains_key(*k))
        .cloned()
        .collect();
    (set, remove)
}

/// Brings an object's tags from `prior` to `desired` with the kind's own calls: `set` gets the
/// tags to add or change, `remove` the keys to drop; each runs only when it has work.
pub async fn sync_tags_with<S, SF, R, RF>(
    prior: &Attrs,
    desired: &Attrs,
    set: S,
    remove: R,
) -> Result<(), ProviderError>
where
    S: FnOnce(BTreeMap<String, String>) -> SF,
    SF: std::future::Future<Output = Result<(), ProviderError>>,
    R: FnOnce(Vec<String>) -> RF,
    RF: std::future::Future<Output = Result<(), ProviderError>>,
{
    let (to_set, to_remove) = tag_changes(prior, desired);
    if !to_set.is_empty() {
        set(to_set).await?;
    }
    if !to_remove.is_empty() {
        remove(to_remove).await?;
    }
    Ok(())
}

/// A string attribute that the graph builder always sets.
pub fn str_attr<'a>(attrs: &'a Attrs, name: &str) -> Result<&'a str, ProviderError> {
    attrs.get(name).and_then(Value::as_str).ok_or_else(|| {
        ProviderError::fatal(format!("attribute `{name}` is missing or not a string"))
    })
}

pub fn bool_attr(attrs: &Attrs, name: &str) -> bool {
    attrs.get(name).and_then(Value::as_bool).unwrap_or(false)
}

pub fn strings_attr(attrs: &Attrs, name: &str) -> Vec<String> {
    attrs
        .get(name)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// `live` in the order of `prior` when both hold the same items: the API does not keep the
/// order of such lists, and a mere reordering must not show as a change.
pub fn in_prior_order(live: Vec<Value>, prior: Option<&Value>) -> Value {
    match prior {
        Some(Value::Array(prior)) if same_items(&live, prior) => Value::Array(prior.clone()),
        _ => Value::Array(live),
    }
}

/// Whether two lists hold the same items, counting repeats, in any order.
fn same_items(a: &[Value], b: &[Value]) -> bool {
    let mut unmatched: Vec<&Value> = b.iter().collect();
    a.len() == b.len()
        && a.iter()
            .all(|x| match unmatched.iter().position(|y| *y == x) {
                Some(i) => {
                    unmatched.swap_remove(i);
                    true
                }
                None => false,
            })
}

/// Strings as a list of JSON values, for `in_prior_order`.
pub fn string_values(items: &[String]) -> Vec<Value> {
    items.iter().map(|s| json!(s)).collect()
}

/// Polls `check` until it returns `Some`, reporting `what` while waiting; fails after `limit`.
pub async fn wait_for<T, F, Fut>(
    ctx: &super::Ctx<'_>,
    what: &str,
    limit: Duration,
    mut check: F,
) -> Result<T, ProviderError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>, ProviderError>>,
{
    let started = tokio::time::Instant::now();
    let mut delay = Duration::from_millis(250);
    let mut reported = false;
    loop {
        if let Some(v) = check().await? {
            return Ok(v);
        }
        if !reported {
            ctx.waiting(what);
            reported = true;
        }
        if started.elapsed() > limit {
            return Err(ProviderError::fatal(format!(
                "timed out after {} {what}",
                humantime::format_duration(limit)
            )));
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(15));
    }
}
