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
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::stalled_stream_protection::StalledStreamProtectionConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_smithy_runtime_api::http::Response as HttpResponse;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use serde_json::{json, Value};

use super::ResourceProvider;
use crate::base::{paced, RetryPolicy, FIRST_PAUSE, NEW_OBJECT_BUDGET, STILL_WAITING_EVERY};
use crate::base::{ErrorClass, ProviderError};
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
            .retry_config(retry)
            .stalled_stream_protection(stalled_stream_protection());
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

/// The SDK's stalled-stream protection (a request or an answer whose bytes stop flowing for
/// its grace period fails): for answers only, after 20 s instead of 5. A request's body is a
/// few hundred bytes sent in one write, and an overloaded endpoint (measured: moto behind
/// `plan --all` over fifty stacks, `docs/performance.md`) can take more than 5 s to answer a
/// request it is still reading, which the SDK's default fails as "throughput of 0 B/s". The
/// tests' own SDK clients use it too.
pub fn stalled_stream_protection() -> StalledStreamProtectionConfig {
    StalledStreamProtectionConfig::enabled()
        .upload_enabled(false)
        .grace_period(Duration::from_secs(20))
        .build()
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
    // An Elastic IP still held by a NAT gateway being deleted.
    "InvalidIPAddress.InUse",
];

/// Error codes that mean "too many requests": each service's throttling.
const THROTTLED: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "RequestLimitExceeded",
    "TooManyRequestsException",
    // S3's throttling.
    "SlowDown",
];

/// The one place where SDK errors become `ProviderError`s.
pub fn classify<E>(err: aws_sdk_ec2::error::SdkError<E, HttpResponse>) -> ProviderError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let code = err.code().map(str::to_string);
    let message = err
        .message()
        .map(str::to_string)
        .unwrap_or_else(|| error_chain(&err));
    let class =
        match code.as_deref() {
            Some(c) if NOT_FOUND.contains(&c) => ErrorClass::NotFound,
            Some(c) if PROPAGATING.contains(&c) => ErrorClass::Propagating,
            Some(c) if THROTTLED.contains(&c) => ErrorClass::Throttled,
            Some(
                "InvalidParameterException" | "MalformedPolicyDocument" | "InvalidParameterValue",
            ) if IAM_NOT_YET.iter().any(|m| message.contains(m)) => ErrorClass::Propagating,
            _ if outcome_unknown(&err, &message) => ErrorClass::Transient,
            _ => ErrorClass::Fatal,
        };
    ProviderError {
        class,
        code,
        message,
    }
}

/// What EKS and IAM say about a role or an OIDC provider that IAM has not propagated yet (the
/// messages terraform-provider-aws retries in `internal/service/eks` and `iam`): the role
/// "could not be assumed", "doesn't have the Amazon EKS Managed Policies associated with it"
/// (its policy attachments not visible to EKS yet), or its trust relationships not seen yet.
const IAM_NOT_YET: &[&str] = &[
    "assume",
    "Invalid principal",
    "does not exist",
    "Amazon EKS Managed Policies",
    "were not found in the trust relationships",
];

/// Whether the call may have taken effect without its caller hearing: no answer (the
/// connection died, a time-out) or a server error, after the SDK's own retries. A refused
/// connection or missing credentials are not: nothing was sent.
fn outcome_unknown<E>(err: &aws_sdk_ec2::error::SdkError<E, HttpResponse>, message: &str) -> bool {
    use aws_sdk_ec2::error::SdkError;
    match err {
        SdkError::ResponseError(_) | SdkError::TimeoutError(_) => true,
        SdkError::ServiceError(service) => service.raw().status().is_server_error(),
        SdkError::DispatchFailure(_) => {
            let message = message.to_ascii_lowercase();
            [
                "connection closed",
                "connection reset",
                "broken pipe",
                "incomplete",
            ]
            .iter()
            .any(|m| message.contains(m))
        }
        _ => false,
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

/// The attributes of `objects`, in their order, from what one request `found` (by id); `None`
/// for an object it did not find. An id may come twice: two stacks whose states name the same
/// object, read together.
pub fn in_order(objects: &[super::Read<'_>], found: BTreeMap<String, Attrs>) -> Vec<Option<Attrs>> {
    objects.iter().map(|o| found.get(o.id).cloned()).collect()
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

/// EKS's health issues of a cluster or a node group (why it failed) as one phrase for a
/// message.
pub fn health_phrase(issues: &[String]) -> String {
    if issues.is_empty() {
        "EKS reports no health issue".to_string()
    } else {
        issues.join("; ")
    }
}

/// Polls `check` until it returns `Some`, reporting `what` while waiting; fails after `limit`.
/// A describe that fails with a "not yet" error or without an answer (throttling or a 5xx
/// after the SDK's own retries) is only a missed poll: the wait goes on; so is NotFound during
/// the first `NEW_OBJECT_BUDGET` (AWS may not know an object it has just created).
pub async fn wait_for<T, F, Fut>(
    ctx: &super::Ctx<'_>,
    what: &str,
    limit: Duration,
    check: F,
) -> Result<T, ProviderError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>, ProviderError>>,
{
    poll(ctx, what, limit, STILL_WAITING_EVERY, check).await
}

/// The pause before the next poll of a wait that has lasted `elapsed`, for an object that AWS
/// typically makes in `typical`: 5% of the time waited so far (so a wait ends within 5% of how
/// long AWS took), at most max(2 s, 5% of `typical`) (so a wait ends within that of AWS
/// finishing, and a long wait polls no more often than every 5% of AWS's usual time).
fn pause_after(elapsed: Duration, typical: Duration) -> Duration {
    paced(
        elapsed,
        FIRST_PAUSE,
        (typical / 20).max(Duration::from_secs(2)),
    )
}

/// `wait_for`, saying every `every` that the wait goes on.
async fn poll<T, F, Fut>(
    ctx: &super::Ctx<'_>,
    what: &str,
    limit: Duration,
    every: Duration,
    mut check: F,
) -> Result<T, ProviderError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>, ProviderError>>,
{
    let started = tokio::time::Instant::now();
    let typical = ctx
        .address
        .kind_name()
        .parse::<ResourceKind>()
        .map_or(Duration::ZERO, ResourceKind::typical_wait);
    let mut delay = FIRST_PAUSE;
    let mut reported = false;
    let mut next_line = started + every;
    loop {
        match check().await {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => {}
            Err(e)
                if matches!(
                    e.class,
                    ErrorClass::Propagating | ErrorClass::Throttled | ErrorClass::Transient
                ) || (e.is_not_found() && started.elapsed() < NEW_OBJECT_BUDGET) =>
            {
                ctx.reporter.retrying(ctx.address, &e.to_string(), delay);
            }
            Err(e) => return Err(e),
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
        let now = tokio::time::Instant::now();
        if now >= next_line {
            ctx.reporter.still_waiting(ctx.address);
            next_line = now + every;
        }
        tokio::time::sleep(delay.min(next_line.saturating_duration_since(now))).await;
        delay = pause_after(started.elapsed(), typical);
    }
}

/// A call on the object `id` that this create has just made: retried on its own (not-yet
/// errors, and NotFound while AWS has not caught up with the new object). An error that
/// remains is final: the executor must not repeat the create's first call, which succeeded.
pub async fn on_new<T, F, Fut>(ctx: &super::Ctx<'_>, id: &str, call: F) -> Result<T, ProviderError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, ProviderError>>,
{
    RetryPolicy::default()
        .run_on_new(ctx.reporter, ctx.address, call)
        .await
        .map_err(|e| ProviderError {
            class: ErrorClass::Fatal,
            code: e.code,
            message: format!(
                "`{id}` was created, then: {}; the next apply adopts it by its tags",
                e.message
            ),
        })
}

/// The two parts of an id made of two names joined by `sep` (`<cluster>:<node group>`,
/// `<role name>/<policy name>`); `what` and `shape` name it in the error.
pub fn split_compound_id<'a>(
    id: &'a str,
    sep: char,
    what: &str,
    shape: &str,
) -> Result<(&'a str, &'a str), ProviderError> {
    id.split_once(sep).ok_or_else(|| {
        ProviderError::fatal(format!("malformed {what} id `{id}`: expected `{shape}`"))
    })
}

/// A create that AWS does not make idempotent (no client token, no unique name: `CreateVpc`,
/// `CreateInternetGateway`, `AllocateAddress`). `create` must send its call without the SDK's
/// retries (`no_sdk_retries`): a retry after a lost answer would make a second object. Here,
/// after an answer that never came, the object is first looked up by its tags (`find`, which
/// the create set atomically), and only if it is not there is the call sent again.
pub async fn create_once<C, CF, L, LF>(
    ctx: &super::Ctx<'_>,
    create: C,
    find: L,
) -> Result<String, ProviderError>
where
    C: Fn() -> CF,
    CF: std::future::Future<Output = Result<String, ProviderError>>,
    L: Fn() -> LF,
    LF: std::future::Future<Output = Result<Option<String>, ProviderError>>,
{
    let unanswered = std::sync::atomic::AtomicBool::new(false);
    let result = RetryPolicy::default()
        .run(ctx.reporter, ctx.address, || async {
            if unanswered.load(std::sync::atomic::Ordering::Relaxed) {
                if let Some(id) = find().await? {
                    return Ok(id);
                }
            }
            let result = create().await;
            let lost = matches!(&result, Err(e) if e.class == ErrorClass::Transient);
            unanswered.store(lost, std::sync::atomic::Ordering::Relaxed);
            result
        })
        .await;
    result.map_err(|e| match e.class {
        // Never repeated by the executor: it would not look first.
        ErrorClass::Transient => ProviderError {
            class: ErrorClass::Fatal,
            ..e
        },
        _ => e,
    })
}

/// The configuration override that turns the SDK's retries off for one EC2 call.
pub fn no_sdk_retries() -> aws_sdk_ec2::config::Builder {
    aws_sdk_ec2::config::Builder::default().retry_config(RetryConfig::disabled())
}

/// The result of a create whose repeat after a lost answer meets the object it made: AWS
/// answers one of `conflicts` (`InvalidSubnet.Conflict`, `EntityAlreadyExists`,
/// `BucketAlreadyOwnedByYou`...). The object is adopted when `find` says it is this
/// resource's own (its tags or name), and only then; otherwise the conflict stands. As the
/// object was made a moment ago, a look-up that does not see it yet is repeated for up to
/// `CONFLICT_LOOKUP_BUDGET`.
pub async fn adopt_on_conflict<L, LF>(
    ctx: &super::Ctx<'_>,
    result: Result<String, ProviderError>,
    conflicts: &[&str],
    find: L,
) -> Result<String, ProviderError>
where
    L: Fn() -> LF,
    LF: std::future::Future<Output = Result<Option<String>, ProviderError>>,
{
    let conflict = match result {
        Err(e) if e.code.as_deref().is_some_and(|c| conflicts.contains(&c)) => e,
        other => return other,
    };
    let lookup = RetryPolicy {
        budget: CONFLICT_LOOKUP_BUDGET,
        ..RetryPolicy::default()
    };
    let found = lookup
        .run_on_new(ctx.reporter, ctx.address, || async {
            find().await?.ok_or_else(|| ProviderError {
                class: ErrorClass::NotFound,
                ..conflict.clone()
            })
        })
        .await;
    match found {
        Err(e) if e.is_not_found() => Err(conflict),
        other => other,
    }
}

/// How long a create that met a conflict looks for its own object before the conflict stands.
const CONFLICT_LOOKUP_BUDGET: Duration = Duration::from_secs(30);

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::base::{Op, Reporter};
    use crate::model::Address;
    use crate::providers::Ctx;

    /// Counts the lines a wait would print.
    #[derive(Default)]
    struct Lines {
        still: AtomicUsize,
        retried: AtomicUsize,
    }

    impl Reporter for Lines {
        fn started(&self, _: &Address, _: Op) {}
        fn waiting(&self, _: &Address, _: &str) {}
        fn still_waiting(&self, _: &Address) {
            self.still.fetch_add(1, Ordering::SeqCst);
        }
        fn retrying(&self, _: &Address, _: &str, _: Duration) {
            self.retried.fetch_add(1, Ordering::SeqCst);
        }
        fn adopted(&self, _: &Address, _: &str) {}
        fn finished(&self, _: &Address, _: Op, _: Duration) {}
        fn failed(&self, _: &Address, _: Op, _: &str) {}
        fn interrupted(&self, _: usize) {}
        fn warning(&self, _: &str) {}
    }

    /// AWS's answers as `classify` reads them: IAM propagation as EKS words it is "not yet";
    /// a 5xx, a time-out or a connection that died under the answer may have taken effect
    /// (`Transient`); a refused connection did nothing and is fatal at once.
    #[test]
    fn errors_are_classified_by_what_they_mean_for_a_retry() {
        use aws_sdk_eks::operation::create_cluster::CreateClusterError;
        use aws_smithy_runtime_api::client::result::{ConnectorError, SdkError};
        use aws_smithy_types::body::SdkBody;
        use aws_smithy_types::error::ErrorMetadata;

        let raw = |status: u16| HttpResponse::new(status.try_into().unwrap(), SdkBody::empty());
        let answered = |status, code: &str, message: &str| {
            let meta = ErrorMetadata::builder().code(code).message(message).build();
            classify(SdkError::service_error(
                CreateClusterError::generic(meta),
                raw(status),
            ))
            .class
        };
        let role = "The provided role doesn't have the Amazon EKS Managed Policies associated with it. Please ensure the following policy is attached: arn:aws:iam::aws:policy/AmazonEKSClusterPolicy";
        assert_eq!(
            answered(400, "InvalidParameterException", role),
            ErrorClass::Propagating
        );
        let trust = "Following required service principals [ec2.amazonaws.com] were not found in the trust relationships of nodeRole arn:aws:iam::1:role/n";
        assert_eq!(
            answered(400, "InvalidParameterException", trust),
            ErrorClass::Propagating
        );
        assert_eq!(
            answered(400, "InvalidParameterException", "bad version"),
            ErrorClass::Fatal
        );
        assert_eq!(
            answered(500, "ServerException", "oops"),
            ErrorClass::Transient
        );
        assert_eq!(answered(400, "SlowDown", "reduce"), ErrorClass::Throttled);
        assert_eq!(
            answered(400, "DependencyViolation", "in use"),
            ErrorClass::Propagating
        );

        let unanswered: SdkError<CreateClusterError, HttpResponse> =
            SdkError::response_error(std::io::Error::other("connection closed"), raw(200));
        assert_eq!(classify(unanswered).class, ErrorClass::Transient);
        let timed_out: SdkError<CreateClusterError, HttpResponse> =
            SdkError::timeout_error("operation timed out");
        assert_eq!(classify(timed_out).class, ErrorClass::Transient);
        let dropped: SdkError<CreateClusterError, HttpResponse> = SdkError::dispatch_failure(
            ConnectorError::io("connection closed before message completed".into()),
        );
        assert_eq!(classify(dropped).class, ErrorClass::Transient);
        let refused: SdkError<CreateClusterError, HttpResponse> = SdkError::dispatch_failure(
            ConnectorError::io("tcp connect error: Connection refused (os error 111)".into()),
        );
        assert_eq!(classify(refused).class, ErrorClass::Fatal);
    }

    /// AWS finishes whenever it finishes: for each kind and each moment AWS may finish (from a
    /// second to four times its typical duration), the first poll after it comes within
    /// max(2 s, 5% of the kind's typical duration), and within 5% of the time waited (or the
    /// first pause) for the waits shorter than twenty times the bound. Polls are the moments
    /// the poller's pauses lead to, a describe's round trip aside.
    #[test]
    fn a_wait_ends_within_five_percent_of_aws_finishing() {
        for kind in ResourceKind::ALL {
            let typical = kind.typical_wait();
            let bound = (typical / 20).max(Duration::from_secs(2));
            let mut polls = vec![Duration::ZERO];
            while *polls.last().unwrap() < typical.max(Duration::from_secs(60)) * 5 {
                let at = *polls.last().unwrap();
                polls.push(at + pause_after(at, typical));
            }
            let mut finished = Duration::from_secs(1);
            while finished < typical.max(Duration::from_secs(60)) * 4 {
                let seen = polls.iter().find(|p| **p >= finished).unwrap();
                let late = *seen - finished;
                assert!(late <= bound, "{kind}: {late:?} late at {finished:?}");
                assert!(
                    late <= (finished / 20).max(FIRST_PAUSE) || finished > bound * 20,
                    "{kind}: {late:?} late at {finished:?}"
                );
                finished += Duration::from_millis(370);
            }
        }
        assert_eq!(
            pause_after(
                Duration::from_secs(3600),
                ResourceKind::EksCluster.typical_wait()
            ),
            Duration::from_secs(30)
        );
    }

    /// A wait says every so often that it goes on (a line every 30 s without a terminal), and a
    /// describe throttled after the SDK's own retries is a missed poll, not the end of the wait.
    #[tokio::test]
    async fn a_wait_reports_that_it_goes_on_and_survives_a_throttled_describe() {
        let config = aws_config::SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-west-2"))
            .build();
        let clients = Clients::from_config(&config, "us-west-2", false);
        let kube = crate::providers::kube::KubeEnv::unused();
        let address = Address::new("eks_cluster");
        let lines = Lines::default();
        let ctx = Ctx {
            aws: &clients,
            kube: &kube,
            stack: "mlops",
            address: &address,
            reporter: &lines,
        };
        let started = tokio::time::Instant::now();
        let polls = AtomicUsize::new(0);
        let every = Duration::from_millis(100);
        let result = poll(
            &ctx,
            "for ACTIVE",
            Duration::from_secs(10),
            every,
            || async {
                if polls.fetch_add(1, Ordering::SeqCst) == 0 {
                    return Err(ProviderError {
                        class: ErrorClass::Throttled,
                        code: Some("ThrottlingException".into()),
                        message: "Rate exceeded".into(),
                    });
                }
                Ok((started.elapsed() >= Duration::from_millis(450)).then_some("ACTIVE"))
            },
        )
        .await;
        assert_eq!(result.unwrap(), "ACTIVE");
        assert_eq!(lines.retried.load(Ordering::SeqCst), 1);
        let still = lines.still.load(Ordering::SeqCst);
        assert!(
            (3..=5).contains(&still),
            "{still} lines in 450 ms, one per 100 ms"
        );
    }
}
