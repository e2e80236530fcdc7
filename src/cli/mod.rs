//! The command line: clap definitions and, per subcommand, a small function that turns the
//! arguments into a call into `ops` and prints the result. Data goes to stdout, everything
//! else to stderr.

mod addons;
mod apply;
mod backend;
mod cluster;
mod graph;
mod inspect;
mod plan;
mod status;
mod validate;

use clap::{Parser, Subcommand};

use crate::addons::ManifestSource;
use crate::kube::install::Waits;
use crate::providers::kube::KubeSettings;
use crate::Result;

#[derive(Debug, Parser)]
#[command(
    name = "mlops",
    version,
    about = "Stand up an ML model-serving platform on AWS from one stack file",
    long_about = None,
    propagate_version = true
)]
pub struct Cli {
    /// Never colour the output (also: the NO_COLOR environment variable)
    #[arg(long, global = true)]
    pub no_color: bool,

    /// Read add-on manifests from this bundle (`<add-on>/<version>/<file>`) instead of
    /// downloading them; `mlops addons fetch` makes one
    #[arg(long, global = true, value_name = "DIR", env = "MLOPS_MANIFESTS_DIR")]
    pub manifests_dir: Option<std::path::PathBuf>,

    /// Install add-ons and Kubernetes objects into the cluster of this kubeconfig file (its
    /// current context) instead of the stack's EKS cluster. Only this flag chooses another
    /// cluster: KUBECONFIG, which points kubectl at whatever cluster a shell last used, is
    /// never read
    #[arg(long, global = true, value_name = "FILE")]
    pub kubeconfig: Option<std::path::PathBuf>,

    /// How long to wait for each object in the cluster to become ready or go away
    #[arg(long, global = true, value_name = "DURATION", default_value = "10m", value_parser = humantime::parse_duration)]
    pub wait_timeout: std::time::Duration,

    /// Let an add-on upgrade delete the CRDs its new version no longer has, and with them every
    /// custom resource of their kinds
    #[arg(long, global = true)]
    pub allow_crd_removal: bool,

    /// Send every AWS call to this endpoint (an emulator); AWS_ENDPOINT_URL and
    /// AWS_ENDPOINT_URL_<SERVICE> are honoured too
    #[arg(long, global = true, value_name = "URL")]
    pub endpoint_url: Option<String>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check stack files without touching the cloud
    Validate(validate::ValidateArgs),
    /// Show what `apply` would change
    Plan(plan::PlanArgs),
    /// Show a plan saved by `mlops plan --out`
    Show(plan::ShowArgs),
    /// Make the changes of a plan
    Apply(apply::ApplyArgs),
    /// Delete everything the stack created
    Destroy(apply::DestroyArgs),
    /// Print the stack's outputs (ids, endpoints, ARNs)
    Output(inspect::OutputArgs),
    /// Where to send requests and whether it works: the ingress gateway, the InferenceServices,
    /// the node groups
    Status(status::StatusArgs),
    /// Inspect the state
    #[command(subcommand)]
    State(inspect::StateCommand),
    /// Print the resource graph as Graphviz DOT or Mermaid
    Graph(graph::GraphArgs),
    /// Remove a lock left behind by a run that is gone
    ForceUnlock(inspect::ForceUnlockArgs),
    /// Who holds a stack's lock
    #[command(subcommand)]
    Lock(inspect::LockCommand),
    /// The S3 bucket of a remote state
    #[command(subcommand)]
    Backend(backend::BackendCommand),
    /// The add-on catalogue and offline bundles
    #[command(subcommand)]
    Addons(addons::AddonsCommand),
    /// Bring an existing AWS object under management at an address of the stack
    Import(inspect::ImportArgs),
    /// Print a bearer token for the stack's EKS cluster, as kubectl's exec plugin expects
    Token(cluster::TokenArgs),
    /// Write a kubeconfig for the stack's EKS cluster that gets its tokens from `mlops token`
    Kubeconfig(cluster::KubeconfigArgs),
}

/// The `<STACK>` argument shared by most commands.
#[derive(Debug, clap::Args)]
pub struct StackArg {
    /// A stack file, or a bare name meaning `stacks/<name>.toml`
    #[arg(value_name = "STACK")]
    pub stack: String,
}

/// One stack, or many: `<STACK>`, `--all` (`stacks/*.toml`) or `--stacks GLOB`.
#[derive(Debug, clap::Args)]
#[group(required = true, multiple = false)]
pub struct Selection {
    /// A stack file, or a bare name meaning `stacks/<name>.toml`
    #[arg(value_name = "STACK")]
    pub stack: Option<String>,
    /// Every stack in `stacks/*.toml`
    #[arg(long)]
    pub all: bool,
    /// The stacks whose files match GLOB (e.g. `stacks/team-*.toml`)
    #[arg(long, value_name = "GLOB")]
    pub stacks: Option<String>,
}

impl Selection {
    /// The file pattern when many stacks are selected; `None` for one stack.
    pub fn pattern(&self) -> Option<&str> {
        match (&self.stack, &self.stacks) {
            (Some(_), _) => None,
            (None, Some(glob)) => Some(glob),
            (None, None) => Some(crate::ops::ALL_STACKS),
        }
    }
}

/// Options every command shares.
#[derive(Debug, Clone)]
pub struct Global {
    pub no_color: bool,
    pub endpoint_url: Option<String>,
    pub kube: KubeSettings,
}

impl Global {
    /// Opens `<STACK>`; a remote state is reached through `--endpoint-url` when given.
    pub fn open(&self, arg: &str) -> Result<crate::ops::Stack> {
        crate::ops::Stack::open(arg, self.endpoint_url.as_deref())
    }
}

/// Parses the process arguments and runs the command; returns the exit code.
pub fn run() -> Result<u8> {
    // Usage errors exit 1, not clap's 2: with `--detailed-exitcode`, 2 means "changes present".
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            let _ = err.print();
            return Ok(if err.use_stderr() { 1 } else { 0 });
        }
    };
    let global = Global {
        no_color: cli.no_color,
        endpoint_url: cli.endpoint_url,
        kube: KubeSettings {
            kubeconfig: cli.kubeconfig,
            manifests: ManifestSource::new(cli.manifests_dir.clone()),
            waits: Waits {
                timeout: cli.wait_timeout,
                ..Waits::default()
            },
            allow_crd_removal: cli.allow_crd_removal,
        },
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|source| crate::Error::Io {
            action: "start the async runtime for",
            path: "mlops".into(),
            source,
        })?;
    runtime.block_on(async move {
        match cli.command {
            Command::Validate(args) => validate::run(&args).await,
            Command::Plan(args) => until_interrupted(plan::run(&args, &global)).await,
            Command::Show(args) => plan::show(&args, &global),
            Command::Apply(args) => apply::run_apply(&args, &global).await,
            Command::Destroy(args) => apply::run_destroy(&args, &global).await,
            Command::Output(args) => inspect::output(&args, &global).await,
            Command::Status(args) => until_interrupted(status::run(&args, &global)).await,
            Command::State(command) => until_interrupted(inspect::state(&command, &global)).await,
            Command::Graph(args) => graph::run(&args),
            Command::ForceUnlock(args) => inspect::force_unlock(&args, &global).await,
            Command::Lock(command) => inspect::lock(&command, &global).await,
            Command::Backend(command) => until_interrupted(backend::run(&command, &global)).await,
            Command::Addons(command) => addons::run(&command, cli.manifests_dir),
            Command::Import(args) => until_interrupted(inspect::import(&args, &global)).await,
            Command::Token(args) => until_interrupted(cluster::token(&args, &global)).await,
            Command::Kubeconfig(args) => cluster::kubeconfig(&args, &global).await,
        }
    })
}

/// Runs `work` until it ends or Ctrl-C (or SIGTERM) arrives; then `work` is dropped (releasing any
/// lock it holds) and the command ends with exit code 130. For work that changes nothing.
pub async fn until_interrupted<T>(work: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    tokio::select! {
        result = work => result,
        _ = crate::exec::interrupt() => Err(crate::Error::Interrupted { done: 0, skipped: 0 }),
    }
}
