//! AWS's clock, shortened: what moto answers at once, AWS answers later. The layer keeps the
//! objects made through it, and from their age rewrites moto's answers (a cluster CREATING,
//! without endpoint, CA or OIDC issuer; a NAT gateway `pending`), refuses what AWS refuses
//! meanwhile (a node group on a cluster not yet ACTIVE, a role EKS cannot use yet, a subnet
//! still in use), and holds deletes back: a `DeleteCluster` is answered DELETING, and reaches
//! moto only when the clock says the delete is over.
//!
//! Where moto's filters disagree with what the layer reports: moto filters on its own state, so
//! `DescribeNatGateways` with a `state` filter matches (or drops) a gateway by moto's `available`
//! / `deleted`, while the layer reports `pending` / `deleting` for the same gateway; and
//! `ListClusters` / `ListNodegroups` list a cluster or node group that the layer reports
//! DELETING until its delete reaches moto, as AWS lists them too.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{Method, StatusCode};
use serde_json::{json, Value};

use super::wire::{error, xml_text, Answer, Call, Service};
use super::{forward, Dropped, Shared};

/// How long things take on AWS; zero leaves moto's behaviour (at once) in place.
#[derive(Clone, Debug, Default)]
pub struct Clock {
    pub cluster_create: Duration,
    pub cluster_delete: Duration,
    pub node_group_create: Duration,
    pub node_group_delete: Duration,
    pub nat_create: Duration,
    pub nat_delete: Duration,
    /// How long after `CreateRole` EKS refuses the role ("doesn't have the Amazon EKS Managed
    /// Policies associated with it", "service principals ... were not found").
    pub role_propagation: Duration,
    /// How long EC2, IAM and EKS answer NotFound for an object they have just created, to any
    /// call that names it (a filter on it finds nothing, as on AWS, without an error).
    pub not_found_after_create: Duration,
    /// How long a cluster's subnets and security groups stay in use (DependencyViolation) after
    /// its delete finished: the network interfaces EKS left linger.
    pub in_use_after_cluster: Duration,
}

impl Clock {
    /// AWS's typical durations scaled down about 300 times (a cluster create of 12 min takes
    /// 2.4 s), for tests of a whole stack that must finish in a minute or two.
    pub fn shortened() -> Clock {
        Clock {
            cluster_create: Duration::from_millis(2400),
            cluster_delete: Duration::from_millis(1600),
            node_group_create: Duration::from_millis(1200),
            node_group_delete: Duration::from_millis(1000),
            nat_create: Duration::from_millis(600),
            nat_delete: Duration::from_millis(600),
            role_propagation: Duration::from_millis(1500),
            not_found_after_create: Duration::from_millis(400),
            in_use_after_cluster: Duration::from_millis(1500),
        }
    }
}

/// Where an object is in its life, by the clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Creating,
    Ready,
    CreateFailed,
    Deleting,
    DeleteFailed,
    /// The delete is over and has reached moto: moto's answers hold.
    Gone,
}

/// An object made through the layer.
struct Life {
    created: Instant,
    deleting: Option<Instant>,
    /// The delete has taken effect in moto (the object, or a NAT gateway's hold on its
    /// address, is gone there). Until then the object reads Deleting even when the clock's delay
    /// is over, so that nothing the layer reports is ahead of what moto will answer.
    removed: bool,
    /// Its create ends failed (`fail_create` named it before it was made).
    fails: bool,
}

impl Life {
    fn new(fails: bool) -> Life {
        Life {
            created: Instant::now(),
            deleting: None,
            removed: false,
            fails,
        }
    }

    fn phase(&self, create: Duration, delete: Duration, delete_fails: bool) -> Phase {
        match self.deleting {
            Some(at) if at.elapsed() < delete => Phase::Deleting,
            Some(_) if delete_fails => Phase::DeleteFailed,
            Some(_) if !self.removed => Phase::Deleting,
            Some(_) => Phase::Gone,
            None if self.created.elapsed() < create => Phase::Creating,
            None if self.fails => Phase::CreateFailed,
            None => Phase::Ready,
        }
    }
}

/// A NAT gateway: its life, and what it holds while it lives.
struct Nat {
    life: Life,
    subnet: String,
    allocation: String,
}

/// Everything the clock knows.
#[derive(Default)]
pub struct World {
    clusters: HashMap<String, Life>,
    /// By (cluster, node group).
    node_groups: HashMap<(String, String), Life>,
    nats: HashMap<String, Nat>,
    /// Role ARN → when `CreateRole` answered.
    roles: HashMap<String, Instant>,
    /// EC2 ids, IAM role names and (cluster, principal) access entries → when created.
    fresh: HashMap<String, Instant>,
    /// Subnet and security group ids → in use until then.
    busy: HashMap<String, Instant>,
    /// Names whose next create fails (each once: the object made after it succeeds).
    fail_create: HashSet<String>,
    fail_delete: HashSet<String>,
    /// Idempotency token → the first answer.
    tokens: HashMap<String, Answer>,
}

impl World {
    pub fn fail_create(&mut self, name: &str) {
        self.fail_create.insert(name.to_string());
    }

    pub fn fail_delete(&mut self, name: &str) {
        self.fail_delete.insert(name.to_string());
    }

    /// The life of an object `name` created now: failed if `fail_create` named it, once.
    fn born(&mut self, name: &str) -> Life {
        Life::new(self.fail_create.remove(name))
    }

    fn delete_fails(&self, name: &str) -> bool {
        self.fail_delete.contains(name)
    }

    fn cluster_phase(&self, clock: &Clock, name: &str) -> Option<Phase> {
        self.clusters.get(name).map(|life| {
            life.phase(
                clock.cluster_create,
                clock.cluster_delete,
                self.delete_fails(name),
            )
        })
    }

    /// When the latest cluster `name` became (or becomes) ACTIVE by the clock; `None` for one
    /// never made through the layer or whose create fails.
    pub fn cluster_active_at(&self, clock: &Clock, name: &str) -> Option<Instant> {
        let life = self.clusters.get(name)?;
        (!life.fails).then(|| life.created + clock.cluster_create)
    }

    /// The life of the cluster, or with `node_group` of its node group, made through the layer.
    fn eks_life_mut(&mut self, cluster: &str, node_group: Option<&str>) -> Option<&mut Life> {
        match node_group {
            Some(group) => self
                .node_groups
                .get_mut(&(cluster.to_string(), group.to_string())),
            None => self.clusters.get_mut(cluster),
        }
    }

    fn node_group_phase(&self, clock: &Clock, key: &(String, String)) -> Option<Phase> {
        self.node_groups.get(key).map(|life| {
            life.phase(
                clock.node_group_create,
                clock.node_group_delete,
                self.delete_fails(&key.1),
            )
        })
    }

    fn nat_phase(&self, clock: &Clock, id: &str) -> Option<Phase> {
        self.nats
            .get(id)
            .map(|nat| nat.life.phase(clock.nat_create, clock.nat_delete, false))
    }

    fn is_fresh(&self, key: &str, window: Duration) -> bool {
        self.fresh.get(key).is_some_and(|at| at.elapsed() < window)
    }

    /// Whether the subnet or security group `id` is still in use.
    fn in_use(&self, clock: &Clock, id: &str) -> bool {
        self.busy
            .get(id)
            .is_some_and(|until| Instant::now() < *until)
            || self.nats.iter().any(|(nat_id, nat)| {
                nat.subnet == id && self.nat_phase(clock, nat_id) != Some(Phase::Gone)
            })
    }
}

/// The answer to a request that was not throttled or failed: the clock's own, or moto's as
/// the clock rewrites it.
pub async fn answer(shared: &Arc<Shared>, call: &Call) -> Result<Answer, Dropped> {
    if let Some(refusal) = refusal(shared, call) {
        shared.stats.refused.fetch_add(1, Ordering::Relaxed);
        return Ok(refusal);
    }
    let operation = call.operation();
    if call.service == Service::Eks
        && matches!(operation.as_str(), "DeleteCluster" | "DeleteNodegroup")
    {
        return held_delete(shared, call).await;
    }
    // AWS answers a repeated idempotency token with the first answer; moto ignores tokens.
    let token = idempotency_token(call);
    if let Some(first) = token
        .as_ref()
        .and_then(|t| shared.world.lock().unwrap().tokens.get(t).cloned())
    {
        return Ok(first);
    }
    let answer = forward(shared.moto, call).await?;
    if !answer.ok() {
        return Ok(answer);
    }
    if let Some(tagging) = create_bucket_tags(call) {
        forward(shared.moto, &tagging).await?;
    }
    if call.service == Service::Ec2 && operation == "DeleteNatGateway" {
        disassociate_when_deleted(shared, call);
    }
    let mut world = shared.world.lock().unwrap();
    let answer = observe(&mut world, &shared.clock, call, &operation, answer);
    if let Some(token) = token {
        world.tokens.insert(token, answer.clone());
    }
    Ok(answer)
}

/// AWS tags a bucket with the tags of its `CreateBucket` (`CreateBucketConfiguration.Tags`);
/// moto ignores them: the `PutBucketTagging` that gives them to moto.
fn create_bucket_tags(call: &Call) -> Option<Call> {
    if !call.is_create_bucket() {
        return None;
    }
    let body = String::from_utf8_lossy(&call.body);
    let tags = xml_text(&body, "Tags")?;
    let mut tagging = call.clone();
    tagging.uri = format!("{}?tagging", call.uri.path()).parse().ok()?;
    tagging.body = format!("<Tagging><TagSet>{tags}</TagSet></Tagging>").into();
    Some(tagging)
}

/// AWS disassociates a NAT gateway's Elastic IP once the gateway is deleted, so that the
/// address can be released or given to a new gateway; moto's `DeleteNatGateway` keeps the
/// association, and a new gateway with that address is refused (`Resource.AlreadyAssociated`).
/// The layer disassociates it in moto when the clock says the delete is over; only then does
/// the gateway read `deleted`.
fn disassociate_when_deleted(shared: &Arc<Shared>, call: &Call) {
    let Some(id) = call.param("NatGatewayId").map(str::to_string) else {
        return;
    };
    let Some(allocation) = shared
        .world
        .lock()
        .unwrap()
        .nats
        .get(&id)
        .map(|nat| nat.allocation.clone())
    else {
        // Not made through the layer: moto's answers as they are.
        return;
    };
    let (shared, call) = (shared.clone(), call.clone());
    tokio::spawn(async move {
        tokio::time::sleep(shared.clock.nat_delete).await;
        if !allocation.is_empty() {
            give_back(&shared, &call, &allocation).await;
        }
        if let Some(nat) = shared.world.lock().unwrap().nats.get_mut(&id) {
            nat.life.removed = true;
        }
    });
}

/// Disassociates the address `allocation` in moto. Panics (failing the test, whose layer
/// would otherwise hold the address for good) if moto does not.
async fn give_back(shared: &Shared, like: &Call, allocation: &str) {
    let describe = ec2_call(
        like,
        &[
            ("Action", "DescribeAddresses"),
            ("AllocationId.1", allocation),
        ],
    );
    let found = to_moto(shared, &describe).await;
    let text = found.text();
    let Some(association) = xml_text(&text, "associationId") else {
        return;
    };
    let disassociate = ec2_call(
        like,
        &[
            ("Action", "DisassociateAddress"),
            ("AssociationId", association),
        ],
    );
    let answer = to_moto(shared, &disassociate).await;
    assert!(answer.ok(), "moto kept {allocation}: {}", answer.text());
}

/// The layer's own call to moto (not a client's): sent again if the connection fails, as a
/// moto busy with a burst of requests may drop one; panics if moto never answers.
async fn to_moto(shared: &Shared, call: &Call) -> Answer {
    for _ in 0..5 {
        if let Ok(answer) = forward(shared.moto, call).await {
            return answer;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("moto does not answer the layer's {}", call.operation());
}

/// Another EC2 call with `params`, sent as `like` was (its signature is not checked by moto).
fn ec2_call(like: &Call, params: &[(&str, &str)]) -> Call {
    let version = like.param("Version").unwrap_or("2016-11-15");
    let body: Vec<String> = params
        .iter()
        .chain([&("Version", version)])
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let mut call = like.clone();
    call.body = body.join("&").into();
    call
}

/// The client token of a create: EC2's `ClientToken`, EKS's `clientRequestToken`.
fn idempotency_token(call: &Call) -> Option<String> {
    match call.service {
        Service::Ec2 => call.param("ClientToken").map(str::to_string),
        Service::Eks if call.method == Method::POST => call.json()["clientRequestToken"]
            .as_str()
            .map(str::to_string),
        _ => None,
    }
}

/// What AWS refuses at this point of its clock, which moto would accept.
fn refusal(shared: &Shared, call: &Call) -> Option<Answer> {
    let clock = &shared.clock;
    let world = shared.world.lock().unwrap();
    let operation = call.operation();
    let bad =
        |status, code: &str, message: String| Some(error(call.service, status, code, &message));
    match (call.service, operation.as_str()) {
        (Service::Eks, "CreateCluster") => {
            let role = call.json()["roleArn"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            if young(world.roles.get(&role), clock.role_propagation) {
                return bad(StatusCode::BAD_REQUEST, "InvalidParameterException", "The provided role doesn't have the Amazon EKS Managed Policies associated with it. Please ensure the following policy is attached: arn:aws:iam::aws:policy/AmazonEKSClusterPolicy".into());
            }
        }
        (Service::Eks, "DeleteCluster") => {
            let cluster = &call.segments[1];
            let attached = world.node_groups.keys().any(|key| {
                key.0 == *cluster && world.node_group_phase(clock, key) != Some(Phase::Gone)
            });
            if attached {
                return bad(
                    StatusCode::CONFLICT,
                    "ResourceInUseException",
                    "Cluster has nodegroups attached".into(),
                );
            }
        }
        (Service::Eks, "CreateNodegroup") => {
            let cluster = &call.segments[1];
            if world.cluster_phase(clock, cluster) == Some(Phase::Creating) {
                return bad(
                    StatusCode::BAD_REQUEST,
                    "InvalidRequestException",
                    format!("Cluster '{cluster}' is not in ACTIVE status"),
                );
            }
            let role = call.json()["nodeRole"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            if young(world.roles.get(&role), clock.role_propagation) {
                return bad(StatusCode::BAD_REQUEST, "InvalidParameterException", format!("Following required service principals [ec2.amazonaws.com] were not found in the trust relationships of nodeRole {role}"));
            }
        }
        (Service::Eks, "AssociateAccessPolicy") => {
            let key = format!("{}/{}", call.segments[1], call.segments[3]);
            if world.is_fresh(&key, clock.not_found_after_create) {
                return bad(
                    StatusCode::NOT_FOUND,
                    "ResourceNotFoundException",
                    format!(
                        "The specified access entry resource is not found: {}",
                        call.segments[3]
                    ),
                );
            }
        }
        (Service::Iam, op) if op != "CreateRole" => {
            let role = call.param("RoleName").unwrap_or_default();
            if world.is_fresh(role, clock.not_found_after_create) {
                return bad(
                    StatusCode::NOT_FOUND,
                    "NoSuchEntity",
                    format!("The role with name {role} cannot be found."),
                );
            }
        }
        (Service::Ec2, op @ ("DeleteSubnet" | "DeleteSecurityGroup")) => {
            let (id, message) = if op == "DeleteSubnet" {
                let id = call.param("SubnetId").unwrap_or_default();
                (
                    id,
                    format!("The subnet '{id}' has dependencies and cannot be deleted."),
                )
            } else {
                let id = call.param("GroupId").unwrap_or_default();
                (id, format!("resource {id} has a dependent object"))
            };
            if world.in_use(clock, id) {
                return bad(StatusCode::BAD_REQUEST, "DependencyViolation", message);
            }
        }
        (Service::Ec2, "ReleaseAddress") => {
            let id = call.param("AllocationId").unwrap_or_default();
            let held = world.nats.iter().any(|(nat_id, nat)| {
                nat.allocation == id && world.nat_phase(clock, nat_id) != Some(Phase::Gone)
            });
            if held {
                return bad(
                    StatusCode::BAD_REQUEST,
                    "InvalidIPAddress.InUse",
                    format!("Address {id} is in use."),
                );
            }
        }
        _ => {}
    }
    if call.service == Service::Ec2 && names_the_object(&operation) {
        let fresh = call
            .params
            .iter()
            .filter(|(k, _)| !k.starts_with("Filter") && k != "Action")
            .find(|(_, v)| world.is_fresh(v, clock.not_found_after_create));
        if let Some((_, id)) = fresh {
            let (code, what) = ec2_not_found(id);
            return bad(
                StatusCode::BAD_REQUEST,
                code,
                format!("The {what} ID '{id}' does not exist"),
            );
        }
    }
    None
}

fn young(at: Option<&Instant>, window: Duration) -> bool {
    at.is_some_and(|at| at.elapsed() < window)
}

/// EC2 calls that act on an object named by id, and answer NotFound while EC2 has not caught up.
fn names_the_object(operation: &str) -> bool {
    ["Describe", "Modify", "Attach", "Associate"]
        .iter()
        .any(|p| operation.starts_with(p))
        || matches!(operation, "CreateTags" | "CreateRoute" | "DeleteTags")
}

/// The NotFound code EC2 gives for an id, and the words of its message.
fn ec2_not_found(id: &str) -> (&'static str, &'static str) {
    match id.split('-').next().unwrap_or_default() {
        "vpc" => ("InvalidVpcID.NotFound", "vpc"),
        "subnet" => ("InvalidSubnetID.NotFound", "subnet"),
        "rtb" => ("InvalidRouteTableID.NotFound", "route table"),
        "igw" => ("InvalidInternetGatewayID.NotFound", "internet gateway"),
        "eipalloc" => ("InvalidAllocationID.NotFound", "allocation"),
        "nat" => ("NatGatewayNotFound", "NAT gateway"),
        _ => ("InvalidID.NotFound", "resource"),
    }
}

/// The tag of the id in an EC2 create's answer.
fn created_id_tag(operation: &str) -> Option<&'static str> {
    Some(match operation {
        "CreateVpc" => "vpcId",
        "CreateSubnet" => "subnetId",
        "CreateRouteTable" => "routeTableId",
        "CreateInternetGateway" => "internetGatewayId",
        "AllocateAddress" => "allocationId",
        "CreateNatGateway" => "natGatewayId",
        _ => return None,
    })
}

/// Records what a successful answer created, and rewrites it as AWS's clock has it.
fn observe(
    world: &mut World,
    clock: &Clock,
    call: &Call,
    operation: &str,
    answer: Answer,
) -> Answer {
    match (call.service, operation) {
        (Service::Eks, "CreateCluster") => {
            let mut body = answer.json();
            let name = body["cluster"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let life = world.born(&name);
            world.clusters.insert(name.clone(), life);
            own_issuer(&mut body["cluster"]);
            if let Some(phase) = world.cluster_phase(clock, &name) {
                cluster_as(phase, &mut body["cluster"]);
            }
            answer.with_json(&body)
        }
        (Service::Eks, "DescribeCluster") if answer.ok() => {
            let mut body = answer.json();
            own_issuer(&mut body["cluster"]);
            if let Some(phase) = world.cluster_phase(clock, &call.segments[1]) {
                cluster_as(phase, &mut body["cluster"]);
            }
            answer.with_json(&body)
        }
        (Service::Eks, "CreateNodegroup") => {
            let mut body = answer.json();
            let name = body["nodegroup"]["nodegroupName"]
                .as_str()
                .unwrap_or_default();
            let key = (call.segments[1].clone(), name.to_string());
            let life = world.born(name);
            world.node_groups.insert(key.clone(), life);
            if let Some(phase) = world.node_group_phase(clock, &key) {
                node_group_as(phase, &mut body["nodegroup"]);
            }
            answer.with_json(&body)
        }
        (Service::Eks, "DescribeNodegroup") => {
            let key = (call.segments[1].clone(), call.segments[3].clone());
            match world.node_group_phase(clock, &key) {
                Some(phase) => {
                    let mut body = answer.json();
                    node_group_as(phase, &mut body["nodegroup"]);
                    answer.with_json(&body)
                }
                None => answer,
            }
        }
        (Service::Eks, "CreateAccessEntry") => {
            let principal = call.json()["principalArn"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            world
                .fresh
                .insert(format!("{}/{principal}", call.segments[1]), Instant::now());
            answer
        }
        (Service::Iam, "CreateRole") => {
            let text = answer.text();
            if let (Some(arn), Some(name)) = (xml_text(&text, "Arn"), xml_text(&text, "RoleName")) {
                world.roles.insert(arn.to_string(), Instant::now());
                world.fresh.insert(name.to_string(), Instant::now());
            }
            answer
        }
        (Service::Ec2, "DescribeNatGateways") => {
            let mut text = answer.text();
            for id in world.nats.keys() {
                if let Some(state) = world.nat_phase(clock, id).and_then(nat_state) {
                    text = with_nat_state(&text, id, state);
                }
            }
            answer.with_text(text)
        }
        (Service::Ec2, "DeleteNatGateway") => {
            if let Some(nat) = call
                .param("NatGatewayId")
                .and_then(|id| world.nats.get_mut(id))
            {
                nat.life.deleting.get_or_insert_with(Instant::now);
            }
            answer
        }
        (Service::Ec2, op) => {
            let text = answer.text();
            let Some(id) = created_id_tag(op).and_then(|tag| xml_text(&text, tag)) else {
                return answer;
            };
            world.fresh.insert(id.to_string(), Instant::now());
            if op != "CreateNatGateway" {
                return answer;
            }
            world.nats.insert(
                id.to_string(),
                Nat {
                    life: Life::new(false),
                    subnet: call.param("SubnetId").unwrap_or_default().to_string(),
                    allocation: call.param("AllocationId").unwrap_or_default().to_string(),
                },
            );
            match world.nat_phase(clock, id).and_then(nat_state) {
                Some(state) => {
                    let rewritten = with_nat_state(&text, id, state);
                    answer.with_text(rewritten)
                }
                None => answer,
            }
        }
        _ => answer,
    }
}

/// A cluster or node group delete, held back: answered DELETING at once (from moto's describe),
/// sent to moto when the clock says the delete is over, never if it is to fail.
async fn held_delete(shared: &Arc<Shared>, call: &Call) -> Result<Answer, Dropped> {
    let cluster = call.segments[1].clone();
    let node_group = call.segments.get(3).cloned();
    let known = shared
        .world
        .lock()
        .unwrap()
        .eks_life_mut(&cluster, node_group.as_deref())
        .is_some();
    if !known {
        // Not made through the layer: moto's answer as it is.
        return forward(shared.moto, call).await;
    }
    let mut describe = call.clone();
    describe.method = Method::GET;
    describe.body = Default::default();
    let current = forward(shared.moto, &describe).await?;
    if !current.ok() {
        return Ok(current);
    }
    let mut body = current.json();
    let (delay, send) = {
        let mut world = shared.world.lock().unwrap();
        let clock = &shared.clock;
        let (key, delay) = match &node_group {
            Some(group) => (group.clone(), clock.node_group_delete),
            None => (cluster.clone(), clock.cluster_delete),
        };
        let fails = world.delete_fails(&key);
        let life = world
            .eks_life_mut(&cluster, node_group.as_deref())
            .expect("known above");
        let already = life.phase(Duration::ZERO, delay, fails) == Phase::Deleting;
        if !already {
            life.deleting = Some(Instant::now());
        }
        (delay, (!already && !fails).then_some(life.created))
    };
    if let Some(born) = send {
        let (shared, call) = (shared.clone(), call.clone());
        let cluster_body = body["cluster"].clone();
        let (cluster, node_group) = (cluster.clone(), node_group.clone());
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            if node_group.is_none() {
                // Busy before moto forgets the cluster: no one sees it gone with its subnets free.
                leave_in_use(&shared, &cluster_body);
            }
            let answer = to_moto(&shared, &call).await;
            assert!(
                answer.ok() || answer.status == StatusCode::NOT_FOUND,
                "moto refused the held {}: {}",
                call.operation(),
                answer.text()
            );
            let mut world = shared.world.lock().unwrap();
            let life = world.eks_life_mut(&cluster, node_group.as_deref());
            // Not a namesake made since.
            if let Some(life) = life.filter(|life| life.created == born) {
                life.removed = true;
            }
        });
    }
    match &node_group {
        Some(_) => node_group_as(Phase::Deleting, &mut body["nodegroup"]),
        None => cluster_as(Phase::Deleting, &mut body["cluster"]),
    }
    Ok(current.with_json(&body))
}

/// After a cluster's delete: its subnets and security groups stay in use for a while.
fn leave_in_use(shared: &Shared, cluster: &Value) {
    let until = Instant::now() + shared.clock.in_use_after_cluster;
    let vpc = &cluster["resourcesVpcConfig"];
    let ids = ["subnetIds", "securityGroupIds"]
        .iter()
        .flat_map(|key| vpc[*key].as_array().cloned().unwrap_or_default())
        .chain([vpc["clusterSecurityGroupId"].clone()])
        .filter_map(|v| v.as_str().map(str::to_string));
    let mut world = shared.world.lock().unwrap();
    for id in ids {
        world.busy.insert(id, until);
    }
}

/// Gives `cluster` an OIDC issuer of its own, as AWS does (moto gives every cluster of a
/// region the same one, so that a second stack's OIDC provider would collide with the first's):
/// moto's issuer with the id made from the cluster's name, 32 hex digits like AWS's.
fn own_issuer(cluster: &mut Value) {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let name = cluster["name"].as_str().unwrap_or_default().to_string();
    let Some(issuer) = cluster.pointer_mut("/identity/oidc/issuer") else {
        return;
    };
    let Some((base, _)) = issuer.as_str().and_then(|i| i.rsplit_once("/id/")) else {
        return;
    };
    let half = |salt: &str| {
        let mut hasher = DefaultHasher::new();
        (salt, &name).hash(&mut hasher);
        hasher.finish()
    };
    *issuer = json!(format!("{base}/id/{:016X}{:016X}", half("a"), half("b")));
}

/// A cluster as DescribeCluster shows it in `phase`.
fn cluster_as(phase: Phase, cluster: &mut Value) {
    let status = match phase {
        Phase::Creating => "CREATING",
        Phase::CreateFailed | Phase::DeleteFailed => "FAILED",
        Phase::Deleting => "DELETING",
        Phase::Ready | Phase::Gone => return,
    };
    cluster["status"] = json!(status);
    if matches!(phase, Phase::Creating | Phase::CreateFailed) {
        // Not there until the control plane is up.
        if let Some(c) = cluster.as_object_mut() {
            c.remove("endpoint");
            c.remove("identity");
            c.insert("certificateAuthority".into(), json!({}));
        }
    }
    if matches!(phase, Phase::CreateFailed | Phase::DeleteFailed) {
        cluster["health"] = json!({"issues": [{
            "code": "InsufficientFreeAddresses",
            "message": "The subnets of the cluster do not have enough free IP addresses",
            "resourceIds": [],
        }]});
    }
}

/// A node group as DescribeNodegroup shows it in `phase`.
fn node_group_as(phase: Phase, group: &mut Value) {
    let (status, issue) = match phase {
        Phase::Creating => ("CREATING", None),
        Phase::CreateFailed => ("CREATE_FAILED", Some(("AsgInstanceLaunchFailures", "Could not launch On-Demand Instances. InsufficientInstanceCapacity - We currently do not have sufficient capacity in the Availability Zone you requested. Launching EC2 instance failed."))),
        Phase::Deleting => ("DELETING", None),
        Phase::DeleteFailed => ("DELETE_FAILED", Some(("Ec2SecurityGroupDeletionFailure", "DependencyViolation - resource has a dependent object"))),
        Phase::Ready | Phase::Gone => return,
    };
    group["status"] = json!(status);
    if let Some((code, message)) = issue {
        group["health"] =
            json!({"issues": [{"code": code, "message": message, "resourceIds": []}]});
    }
}

/// The state DescribeNatGateways reports in `phase`, where it differs from moto's.
fn nat_state(phase: Phase) -> Option<&'static str> {
    match phase {
        Phase::Creating => Some("pending"),
        Phase::Deleting => Some("deleting"),
        _ => None,
    }
}

/// `text` with the `<state>` of the NAT gateway `id` set to `state`.
fn with_nat_state(text: &str, id: &str, state: &str) -> String {
    let marker = format!("<natGatewayId>{id}</natGatewayId>");
    let Some(at) = text.find(&marker) else {
        return text.to_string();
    };
    let after = at + marker.len();
    let (Some(open), Some(close)) = (
        text[after..].find("<state>"),
        text[after..].find("</state>"),
    ) else {
        return text.to_string();
    };
    let (open, close) = (after + open + "<state>".len(), after + close);
    format!("{}{state}{}", &text[..open], &text[close..])
}
