//! The stack file exactly as written: a serde mirror of the TOML with a span on every value that
//! validation may have to point at. Nothing here is checked beyond TOML types and known keys
//! (`deny_unknown_fields`, so a typo never silently does nothing); `validate` turns it into `Spec`.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::addons::Addon;
use toml::Spanned;

pub type S<T> = Spanned<T>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSpec {
    pub stack: RawStack,
    pub state: Option<RawState>,
    pub vpc: S<RawVpc>,
    pub eks: S<RawEks>,
    #[serde(default)]
    pub irsa: BTreeMap<String, S<RawIrsa>>,
    #[serde(default)]
    pub buckets: BTreeMap<String, S<RawBucket>>,
    #[serde(default)]
    pub repositories: BTreeMap<String, S<RawRepository>>,
    pub addons: Option<RawAddons>,
    pub workloads: Option<RawWorkloads>,
    /// `[[moved]]`: addresses renamed in the spec, whose objects keep their state.
    #[serde(default)]
    pub moved: Vec<S<RawMoved>>,
    /// `[timeouts]`: per resource kind, how long its delete retries "still in use".
    pub timeouts: Option<S<BTreeMap<String, S<String>>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMoved {
    pub from: S<String>,
    pub to: S<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWorkloads {
    pub paths: S<Vec<S<String>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStack {
    pub name: S<String>,
    pub region: S<String>,
    pub tags: Option<S<BTreeMap<String, S<String>>>>,
    /// An IAM policy ARN set as the permissions boundary of every role the stack makes.
    pub permissions_boundary: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawState {
    pub backend: Option<S<String>>,
    pub path: Option<S<String>>,
    pub bucket: Option<S<String>>,
    pub key: Option<S<String>>,
    pub region: Option<S<String>>,
    pub lock_lease: Option<S<String>>,
    pub encryption: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawVpc {
    pub cidr: S<String>,
    pub azs: S<Vec<S<String>>>,
    pub public_subnets: Option<S<Vec<S<String>>>>,
    pub private_subnets: S<Vec<S<String>>>,
    pub nat: Option<S<String>>,
    pub protect: Option<bool>,
    /// VPC endpoints the stack makes, by service.
    pub endpoints: Option<S<Vec<S<String>>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEks {
    pub name: S<String>,
    pub version: S<String>,
    pub public_endpoint: Option<bool>,
    pub private_endpoint: Option<bool>,
    pub public_access_cidrs: Option<S<Vec<S<String>>>>,
    /// IAM roles or users given cluster-admin access through EKS access entries.
    #[serde(default)]
    pub admin_arns: Vec<S<String>>,
    /// Control-plane log types sent to CloudWatch Logs.
    pub log_types: Option<S<Vec<S<String>>>>,
    /// Envelope encryption of Secrets with a KMS key the stack makes.
    pub encrypt_secrets: Option<S<bool>>,
    /// Envelope encryption of Secrets with this KMS key instead.
    pub kms_key_arn: Option<S<String>>,
    /// The EKS managed add-ons of the cluster; all that mlops knows by default.
    pub managed_addons: Option<S<Vec<S<String>>>>,
    /// Pinned versions of managed add-ons, by name.
    pub addon_versions: Option<BTreeMap<String, S<String>>>,
    pub node_groups: Option<S<BTreeMap<String, S<RawNodeGroup>>>>,
    pub protect: Option<bool>,
    /// The zones of the control plane's network interfaces; by default every zone of the VPC.
    pub zones: Option<S<Vec<S<String>>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNodeGroup {
    /// The node group's name in EKS; defaults to the table key.
    pub name: Option<S<String>>,
    pub instance_types: S<Vec<S<String>>>,
    pub capacity: Option<S<String>>,
    /// The EKS AMI type; chosen from the instance types when left out.
    pub ami_type: Option<S<String>>,
    /// The AMI release to run (`1.31.3-20250103`), pinned.
    pub release_version: Option<S<String>>,
    pub disk_size: Option<S<i64>>,
    pub min: S<i64>,
    pub max: S<i64>,
    pub desired: S<i64>,
    /// Keep the group at `desired` on every apply; by default it is only the size at creation,
    /// and an autoscaler moves it.
    pub manage_desired: Option<bool>,
    #[serde(default)]
    pub labels: BTreeMap<String, S<String>>,
    #[serde(default)]
    pub taints: Vec<S<RawTaint>>,
    pub protect: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTaint {
    pub key: S<String>,
    #[serde(default)]
    pub value: Option<S<String>>,
    pub effect: S<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIrsa {
    pub namespace: S<String>,
    pub service_account: S<String>,
    #[serde(default)]
    pub policy_arns: Vec<S<String>>,
    /// Keys of `[buckets]` the service account may read from.
    #[serde(default)]
    pub s3_read: Vec<S<String>>,
    /// Keys of `[buckets]` the service account may read from and write to.
    #[serde(default)]
    pub s3_write: Vec<S<String>>,
    /// Names of `[repositories]` the service account may pull images from.
    #[serde(default)]
    pub ecr_pull: Vec<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBucket {
    pub name: S<String>,
    pub versioning: Option<bool>,
    pub encryption: Option<S<String>>,
    pub force_destroy: Option<bool>,
    pub protect: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRepository {
    pub tag_mutability: Option<S<String>>,
    pub scan_on_push: Option<bool>,
    pub keep_last_images: Option<S<i64>>,
    pub force_delete: Option<bool>,
    pub protect: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAddons {
    pub enabled: Option<bool>,
    pub kserve_mode: Option<S<String>>,
    pub cert_manager: Option<S<String>>,
    pub istio: Option<S<String>>,
    pub knative_serving: Option<S<String>>,
    pub kserve: Option<S<String>>,
    /// `[addons.knative]`: the domain the models are served under.
    pub knative: Option<RawKnative>,
    /// `[addons.ingress_gateway]`: the load balancer of Istio's ingress gateway.
    pub ingress_gateway: Option<RawIngressGateway>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawKnative {
    pub domain: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIngressGateway {
    pub load_balancer: Option<S<String>>,
    pub scheme: Option<S<String>>,
}

impl RawAddons {
    /// The version each add-on key gives, in install order.
    pub fn versions(&self) -> [(Addon, Option<&S<String>>); 4] {
        [
            (Addon::CertManager, self.cert_manager.as_ref()),
            (Addon::Istio, self.istio.as_ref()),
            (Addon::KnativeServing, self.knative_serving.as_ref()),
            (Addon::Kserve, self.kserve.as_ref()),
        ]
    }
}
