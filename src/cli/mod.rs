//! The command line: clap definitions and, per subcommand, a small function that turns the
//! arguments into a call into `ops` and prints the result. Data goes to stdout, everything
//! else to stderr.

mod apply;
mod graph;
mod inspect;
mod plan;
mod validate;

use clap::{Parser, Subcommand};

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

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check a stack file without touching the cloud
    Validate(StackArg),
    /// Show what `apply` would change
    Plan(plan::PlanArgs),
    /// Make the changes of a plan
    Apply(apply::ApplyArgs),
    /// Delete everything the stack created
    Destroy(apply::DestroyArgs),
    /// Print the stack's outputs (ids, endpoints, ARNs)
    Output(inspect::OutputArgs),
    /// Inspect the state
    #[command(subcommand)]
    State(inspect::StateCommand),
    /// Print the resource graph as Graphviz DOT or Mermaid
    Graph(graph::GraphArgs),
    /// Remove a lock left behind by a run that is gone
    ForceUnlock(inspect::ForceUnlockArgs),
}

/// The `<STACK>` argument shared by most commands.
#[derive(Debug, clap::Args)]
pub struct StackArg {
    /// A stack file, or a bare name meaning `stacks/<name>.toml`
    #[arg(value_name = "STACK")]
    pub stack: String,
}

/// Parses the process arguments and runs the command; returns the exit code.
pub fn run() -> Result<u8> {
    let cli = Cli::parse();
    let no_color = cli.no_color;
    match cli.command {
        Command::Validate(args) => validate::run(&args),
        Command::Plan(args) => plan::run(&args, no_color),
        Command::Apply(args) => apply::run_apply(&args, no_color),
        Command::Destroy(args) => apply::run_destroy(&args, no_color),
        Command::Output(args) => inspect::output(&args),
        Command::State(command) => inspect::state(&command),
        Command::Graph(args) => graph::run(&args),
        Command::ForceUnlock(args) => inspect::force_unlock(&args),
    }
}
