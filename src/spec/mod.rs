//! The stack spec: what a team wants, read from `stacks/<team>.toml`.
//!
//! Loading is two-stage, as in ripgrep's flag parsing: `raw` mirrors the TOML with spans, then
//! `validate` checks every rule a careful platform engineer would check before touching a cloud
//! and produces the typed `Spec` that the rest of the program trusts. All problems are collected
//! and reported together, each with file, line and column.

mod collisions;
mod compose;
mod names;
mod raw;
mod validate;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ipnet::Ipv4Net;

pub use crate::addons::ingress::{IngressSpec, LoadBalancerType, DEFAULT_DOMAIN};
use crate::addons::{Addon, Release};
use crate::model::device_plugin::DevicePlugin;
use crate::ui::diagnostic::{Diagnostic, SourceFile};
use crate::workloads::{Output, Outputs, Workload};

pub use collisions::{collisions, Collisions};
pub use compose::{base_of, same_file};
pub use names::{policy_name, principal_name, SUPPORTED_EKS_VERSIONS};
pub use validate::{irsa_role_name, EBS_CSI_DRIVER};

/// A validated stack spec.
#[derive(Debug, Clone, PartialEq)]
pub struct Spec {
    /// Where the spec was read from.
    pub path: PathBuf,
    /// SHA-256 of the file's text, lower-case hex: a saved plan records it.
    pub digest: String,
    pub stack: StackSpec,
    pub state: StateSpec,
    pub vpc: VpcSpec,
    pub eks: EksSpec,
    pub irsa: BTreeMap<String, IrsaSpec>,
    pub buckets: BTreeMap<String, BucketSpec>,
    pub repositories: BTreeMap<String, RepositorySpec>,
    pub addons: AddonsSpec,
    /// The stack's own Kubernetes objects, read from `[workloads] paths`.
    pub workloads: Vec<Workload>,
    /// `[[moved]]`: addresses renamed in the spec, in the order written.
    pub moved: Vec<MovedSpec>,
    /// `[timeouts]`: per resource kind, how long its delete keeps retrying while AWS answers
    /// that the object is still in use; the kinds not named keep their own budget
    /// (`ResourceKind::in_use_budget`).
    pub timeouts: BTreeMap<crate::model::ResourceKind, std::time::Duration>,
}

/// One `[[moved]]` entry: the object at `from` in the state is the resource `to` of the spec.
#[derive(Debug, Clone, PartialEq)]
pub struct MovedSpec {
    pub from: crate::model::Address,
    pub to: crate::model::Address,
    /// `file:line:col` of the entry, for messages about it.
    pub location: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StackSpec {
    pub name: String,
    pub region: String,
    pub tags: BTreeMap<String, String>,
    /// The permissions boundary of every IAM role the stack makes (`None`: no boundary).
    pub permissions_boundary: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum StateSpec {
    /// A JSON file on the local disk: `path` is resolved against the folder of the stack file
    /// that wrote it (or, by default, that of the stack file), so any working folder finds it.
    /// `legacy` is where mlops looked before, relative to the working folder: a state found
    /// only there is moved to `path` by the next run that takes the lock (docs/state.md).
    Local { path: PathBuf, legacy: PathBuf },
    /// An object in an S3 bucket, locked by a leased lock object next to it.
    S3(S3StateSpec),
}

#[derive(Debug, Clone, PartialEq)]
pub struct S3StateSpec {
    pub bucket: String,
    pub key: String,
    pub region: String,
    /// How long a lock lasts without a heartbeat before the next run may take it over.
    pub lock_lease: std::time::Duration,
    /// The bucket's default encryption, set by `mlops backend create`: `AES256` or `aws:kms`.
    pub encryption: String,
}

impl StateSpec {
    /// What two stacks must not share, as messages name it: `the state file `state/a.json``,
    /// `the state object `s3://bucket/key``.
    pub fn describe(&self) -> String {
        match self {
            StateSpec::Local { path, .. } => format!("the state file `{}`", path.display()),
            StateSpec::S3(s3) => format!("the state object `s3://{}/{}`", s3.bucket, s3.key),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct VpcSpec {
    pub cidr: Ipv4Net,
    /// One entry per availability zone, in the order written.
    pub zones: Vec<ZoneSpec>,
    pub nat: NatMode,
    /// `false` lets an apply delete or replace the VPC and its NAT gateways without
    /// `--allow-replace`.
    pub protect: bool,
    /// The services the VPC reaches through endpoints of its own (`s3`, `ecr.api`, ...), sorted.
    pub endpoints: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ZoneSpec {
    pub name: String,
    pub public_subnet: Option<Ipv4Net>,
    pub private_subnet: Ipv4Net,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NatMode {
    None,
    Single,
    PerAz,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EksSpec {
    pub name: String,
    pub version: String,
    /// Where `[eks] version` is written (`stacks/team-a.toml:22:11`), for the plan-time check
    /// of an upgrade's step against the running cluster.
    pub version_at: String,
    pub public_endpoint: bool,
    pub private_endpoint: bool,
    pub public_access_cidrs: Vec<Ipv4Net>,
    /// Principals with cluster-admin access, by the name their access entry is addressed by
    /// (the last part of the ARN).
    pub admin_arns: BTreeMap<String, String>,
    /// Control-plane log types enabled, in EKS's spelling (`api`, `audit`, ...), sorted.
    pub log_types: Vec<String>,
    /// How the cluster's Secrets are envelope-encrypted (`None`: they are not).
    pub secrets_key: Option<SecretsKey>,
    /// The EKS managed add-ons, by name, each with its pinned version (`None`: EKS's default
    /// version for the cluster's Kubernetes version).
    pub managed_addons: BTreeMap<String, Option<String>>,
    pub node_groups: BTreeMap<String, NodeGroupSpec>,
    /// `false` lets an apply delete or replace the cluster and its OIDC provider without
    /// `--allow-replace`.
    pub protect: bool,
    /// The zones of the control plane's subnets (`[eks] zones`), in the order of `vpc.azs`.
    /// EKS keeps a cluster in the zones it was made with: adding one here replaces the cluster.
    /// `None`: every zone of the VPC at creation, then the zones the cluster runs in that the
    /// VPC still has (`model::zones`), so that a zone added to the VPC leaves it as it is.
    pub zones: Option<Vec<String>>,
}

/// The KMS key that encrypts the cluster's Secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretsKey {
    /// A key the stack makes (`kms_key.secrets`).
    Stack,
    /// A key made elsewhere, by its ARN.
    Arn(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct NodeGroupSpec {
    /// The node group's name in EKS.
    pub name: String,
    pub instance_types: Vec<String>,
    pub capacity: Capacity,
    /// The EKS AMI type (`AL2023_x86_64_STANDARD`, `BOTTLEROCKET_x86_64_NVIDIA`, ...).
    pub ami_type: String,
    /// The AMI release the nodes run, pinned (`None`: the latest for the Kubernetes version).
    pub release_version: Option<String>,
    pub disk_size: i64,
    pub min: i64,
    pub max: i64,
    pub desired: i64,
    /// `desired` holds on every apply; otherwise only at creation (an autoscaler moves it).
    pub manage_desired: bool,
    pub labels: BTreeMap<String, String>,
    pub taints: Vec<Taint>,
    /// `false` lets an apply replace the group without `--allow-replace`.
    pub protect: bool,
}

impl NodeGroupSpec {
    /// Where the group's device plugin comes from; `None` for AMIs without NVIDIA's driver.
    pub fn device_plugin(&self) -> Option<DevicePlugin> {
        DevicePlugin::of(&self.ami_type)
    }

    /// The group's name in EKS: `name`, `-`, and 8 hex digits of a SHA-256 of what forces its
    /// replacement and the spec knows (instance types, capacity, disk size, the zones of its
    /// subnets). A change of those gives the successor a new name, so that it is made, and
    /// ACTIVE, before the group it replaces is deleted; the same spec always gives the same
    /// name. A subnet replaced in the same zone keeps the name: the group then goes before
    /// its old subnet, as that subnet must, and its successor comes after the new one.
    pub fn eks_name(&self, vpc: &VpcSpec) -> String {
        let zones: Vec<&str> = vpc.zones.iter().map(|z| z.name.as_str()).collect();
        let forcing = serde_json::json!([
            self.instance_types,
            self.capacity.as_aws(),
            self.disk_size,
            zones,
        ]);
        let digest = <sha2::Sha256 as sha2::Digest>::digest(forcing.to_string().as_bytes());
        format!("{}-{}", self.name, &hex::encode(digest)[..8])
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capacity {
    OnDemand,
    Spot,
}

impl Capacity {
    /// The EKS API's spelling.
    pub fn as_aws(self) -> &'static str {
        match self {
            Capacity::OnDemand => "ON_DEMAND",
            Capacity::Spot => "SPOT",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Taint {
    pub key: String,
    pub value: Option<String>,
    /// The EKS API's spelling: `NO_SCHEDULE`, `NO_EXECUTE` or `PREFER_NO_SCHEDULE`.
    pub effect: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct IrsaSpec {
    pub namespace: String,
    pub service_account: String,
    pub policy_arns: Vec<String>,
    /// Keys of the stack's `[buckets]` readable through the role's inline policy.
    pub s3_read: Vec<String>,
    /// Keys of the stack's `[buckets]` readable and writable through it.
    pub s3_write: Vec<String>,
    /// Names of the stack's `[repositories]` whose images it may pull.
    pub ecr_pull: Vec<String>,
}

impl IrsaSpec {
    /// The parts after `k8s.` of the service account's address, which `mlops` makes.
    pub fn service_account_parts(&self) -> [&str; 3] {
        [&self.namespace, "ServiceAccount", &self.service_account]
    }

    /// Whether the role gets an inline policy scoped to the stack's own objects.
    pub fn has_scoped_policy(&self) -> bool {
        !(self.s3_read.is_empty() && self.s3_write.is_empty() && self.ecr_pull.is_empty())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct BucketSpec {
    pub name: String,
    pub versioning: bool,
    /// `AES256` or `aws:kms`.
    pub encryption: String,
    pub force_destroy: bool,
    /// `false` lets an apply replace the bucket without `--allow-replace`.
    pub protect: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RepositorySpec {
    pub tag_mutability: String,
    pub scan_on_push: bool,
    pub keep_last_images: Option<i64>,
    pub force_delete: bool,
    /// `false` lets an apply replace the repository without `--allow-replace`.
    pub protect: bool,
}

/// The cluster add-ons: which catalogue release of each (an add-on left out is not
/// installed), and how KServe serves models.
#[derive(Debug, Clone, PartialEq)]
pub struct AddonsSpec {
    /// `false` keeps mlops out of the cluster entirely.
    pub enabled: bool,
    pub releases: BTreeMap<Addon, &'static Release>,
    /// Where each add-on's version is written (`stacks/example.toml:67:16`), for the
    /// plan-time check of an upgrade's step against the installed version.
    pub versions_at: BTreeMap<Addon, String>,
    pub kserve_mode: KserveMode,
    pub ingress: IngressSpec,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KserveMode {
    /// Knative Serving behind Istio: scale to zero, revisions.
    Serverless,
    /// Plain Deployments: neither Knative nor Istio.
    Raw,
}

/// Everything wrong with a stack file, ready to print.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("cannot read the stack file `{}`: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Extends(String),
    #[error("`{}` is not a valid stack spec", file.path.display())]
    Invalid {
        file: SourceFile,
        diagnostics: Vec<Diagnostic>,
        /// Problems in the files the stack reads (its workload manifests), each with its file.
        elsewhere: Vec<(SourceFile, Diagnostic)>,
    },
}

impl SpecError {
    /// How many separate problems this error reports.
    pub fn count(&self) -> usize {
        match self {
            SpecError::Read { .. } | SpecError::Extends(_) => 1,
            SpecError::Invalid {
                diagnostics,
                elsewhere,
                ..
            } => diagnostics.len() + elsewhere.len(),
        }
    }

    /// The full report: every diagnostic with its source line, then a count when there are several.
    /// `None` where the one-line message says it all.
    pub fn report(&self) -> Option<String> {
        let SpecError::Invalid {
            file: source,
            diagnostics,
            elsewhere,
        } = self
        else {
            return None;
        };
        let mut out: String = diagnostics
            .iter()
            .map(|d| source.render(d))
            .chain(elsewhere.iter().map(|(file, d)| file.render(d)))
            .collect::<Vec<_>>()
            .join("\n");
        let count = self.count();
        if count > 1 {
            out.push_str(&format!(
                "\nerror: `{}` has {count} problems\n",
                source.path.display(),
            ));
        }
        Some(out)
    }

    pub fn hint(&self) -> Option<String> {
        match self {
            SpecError::Read { .. } => Some(
                "a stack is a path to a .toml file, or a bare name meaning `stacks/<name>.toml`"
                    .into(),
            ),
            SpecError::Extends(_) => Some(
                "`extends` names a file relative to the file that says it; chains may not loop"
                    .into(),
            ),
            SpecError::Invalid { .. } => None,
        }
    }
}

/// Resolves the `<STACK>` argument: a path to a `.toml` file, or a bare name for `stacks/<name>.toml`.
pub fn stack_path(arg: &str) -> PathBuf {
    let path = Path::new(arg);
    if arg.ends_with(".toml") || path.components().count() > 1 {
        path.to_path_buf()
    } else {
        Path::new("stacks").join(format!("{arg}.toml"))
    }
}

/// Reads and validates a stack file.
pub fn load(path: &Path) -> Result<Spec, SpecError> {
    let text = std::fs::read_to_string(path).map_err(|source| SpecError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse(path, text)
}

/// Validates stack text that claims to come from `path`, with the bases it `extends`.
pub fn parse(path: &Path, text: String) -> Result<Spec, SpecError> {
    let composed = compose::read_chain(path, text).map_err(|e| SpecError::Extends(e.message()))?;
    let control = control_characters(&composed.source.text);
    if !control.is_empty() {
        return Err(invalid(composed.source, control));
    }
    let raw: Result<raw::RawSpec, Diagnostic> = composed.merged().and_then(|merged| {
        serde::Deserialize::deserialize(toml::de::Deserializer::from(merged))
            .map_err(|e: toml::de::Error| toml_diagnostic(&e))
    });
    let source = composed.source;
    let mut raw = match raw {
        Ok(raw) => raw,
        Err(diagnostic) => return Err(invalid(source, vec![diagnostic])),
    };
    let raw_workloads = raw.workloads.take();
    let state_folder = state_folder(&source, &raw);
    let version_span = raw.eks.get_ref().version.span();
    let addon_spans: Vec<(Addon, usize)> = raw
        .addons
        .iter()
        .flat_map(|a| a.versions())
        .filter_map(|(addon, version)| Some((addon, version?.span().start)))
        .collect();
    let mut spec = match validate::validate(path, raw, &source) {
        Ok(spec) => spec,
        Err(diagnostics) => return Err(invalid(source, diagnostics)),
    };
    if let StateSpec::Local { path, legacy } = &mut spec.state {
        *legacy = path.clone();
        *path = state_folder.join(&*path);
    }
    spec.eks.version_at = source.location(version_span.start);
    spec.addons.versions_at = addon_spans
        .into_iter()
        .map(|(addon, at)| (addon, source.location(at)))
        .collect();
    let mut read = source.text.clone();
    if let Some(raw_workloads) = raw_workloads {
        let files = match workload_files(&source, &spec, &raw_workloads) {
            Ok(files) => files,
            Err(diagnostics) => return Err(invalid(source, diagnostics)),
        };
        let invalid_manifests = |elsewhere| SpecError::Invalid {
            file: source.clone(),
            diagnostics: Vec::new(),
            elsewhere,
        };
        let sources = crate::workloads::read(&files).map_err(invalid_manifests)?;
        read.push_str(&crate::workloads::digest_input(&sources));
        let reserved = spec
            .irsa
            .iter()
            .map(|(key, irsa)| {
                let parts = irsa.service_account_parts().map(str::to_string).to_vec();
                (parts, format!("the IRSA service account of `[irsa.{key}]`"))
            })
            .collect();
        spec.workloads = crate::workloads::load(&sources, &outputs(&spec), &reserved)
            .map_err(invalid_manifests)?;
    }
    // Of every file the stack reads: a saved plan is refused when any of them changed.
    spec.digest = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(read.as_bytes()));
    Ok(spec)
}

/// The folder a local state path is relative to: that of the file that wrote `[state] path`,
/// or that of the stack file for the default `state/<stack>.json`.
fn state_folder(source: &SourceFile, raw: &raw::RawSpec) -> PathBuf {
    let file = match raw.state.as_ref().and_then(|s| s.path.as_ref()) {
        Some(path) => source.file_at(path.span().start),
        None => &source.path,
    };
    file.parent().unwrap_or(Path::new("")).to_path_buf()
}

fn invalid(file: SourceFile, diagnostics: Vec<Diagnostic>) -> SpecError {
    SpecError::Invalid {
        file,
        diagnostics,
        elsewhere: Vec::new(),
    }
}

/// The names `${...}` may use in the stack's manifests: the outputs of `spec` (its workloads
/// aside).
pub fn outputs(spec: &Spec) -> Outputs {
    let mut outputs = BTreeMap::new();
    let mut literal = |name: String, value: &str| {
        outputs.insert(name, Output::Literal(value.to_string()));
    };
    literal("stack.name".into(), &spec.stack.name);
    literal("region".into(), &spec.stack.region);
    literal("eks.name".into(), &spec.eks.name);
    for (key, bucket) in &spec.buckets {
        literal(format!("buckets.{key}.name"), &bucket.name);
    }
    for (key, irsa) in &spec.irsa {
        literal(format!("irsa.{key}.service_account"), &irsa.service_account);
        literal(format!("irsa.{key}.namespace"), &irsa.namespace);
    }
    for key in spec.irsa.keys() {
        outputs.insert(format!("irsa.{key}.role_arn"), Output::RoleArn(key.clone()));
    }
    for key in spec.repositories.keys() {
        outputs.insert(
            format!("repositories.{key}.uri"),
            Output::RepositoryUri(key.clone()),
        );
    }
    outputs.insert("account_id".into(), Output::AccountId);
    outputs.into_iter().collect()
}

/// The files `[workloads] paths` names, each path relative to the stack file that wrote it.
fn workload_files(
    source: &SourceFile,
    spec: &Spec,
    raw: &raw::RawWorkloads,
) -> Result<Vec<PathBuf>, Vec<Diagnostic>> {
    let mut problems = Vec::new();
    if !spec.addons.enabled {
        problems.push(
            Diagnostic::new(
                "`[workloads]` go into the cluster, but `[addons] enabled` is false",
                Some(raw.paths.span()),
            )
            .with_hint("set `enabled = true` under `[addons]`; list no add-on to install none"),
        );
    }
    let mut files = Vec::new();
    for pattern in raw.paths.get_ref() {
        let base = source
            .file_at(pattern.span().start)
            .parent()
            .unwrap_or(Path::new(""))
            .to_path_buf();
        match crate::workloads::expand(&base, pattern.get_ref()) {
            Ok(found) => {
                for file in found {
                    if !files.contains(&file) {
                        files.push(file);
                    }
                }
            }
            Err(problem) => problems.push(
                Diagnostic::new(problem, Some(pattern.span()))
                    .with_hint("paths are relative to the stack file that names them"),
            ),
        }
    }
    if problems.is_empty() {
        Ok(files)
    } else {
        Err(problems)
    }
}

/// Every control character of the text but tab and line ends, each named: TOML refuses them, and
/// its parser would report the first one as something else (a NUL as "key with no value").
fn control_characters(text: &str) -> Vec<Diagnostic> {
    text.char_indices()
        .filter(|(_, c)| c.is_ascii_control() && !matches!(c, '\t' | '\n' | '\r'))
        .map(|(at, c)| {
            let name = match c {
                '\0' => "a NUL byte (U+0000)".to_string(),
                c => format!("the control character U+{:04X}", u32::from(c)),
            };
            Diagnostic::new(
                format!("the file has {name} here"),
                Some(at..at + c.len_utf8()),
            )
            .with_hint("stack files are text: remove it (editors show a NUL as `^@` or `<0x00>`)")
        })
        .collect()
}

/// Turns a TOML syntax or type error into a diagnostic with a hint where one helps.
fn toml_diagnostic(err: &toml::de::Error) -> Diagnostic {
    let message = err.message().trim().to_string();
    let hint = if message.starts_with("unknown field") {
        Some("check the spelling; docs/spec.md lists every key")
    } else if message.starts_with("missing field") {
        Some("docs/spec.md lists the required keys of each table")
    } else if message.starts_with("invalid type") {
        Some("docs/spec.md gives the type of every key")
    } else {
        None
    };
    let diagnostic = Diagnostic::new(message.replace('\n', " "), err.span());
    match hint {
        Some(hint) => diagnostic.with_hint(hint),
        None => diagnostic,
    }
}

#[cfg(test)]
mod tests;
