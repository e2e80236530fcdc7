//! Read-only commands over the state: `output`, `state list`, `state show`, and the one write
//! that only touches the lock, `force-unlock`.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::StackArg;
use crate::model::Address;
use crate::ops::Stack;
use crate::state;
use crate::{Error, Result};

#[derive(Debug, clap::Args)]
pub struct OutputArgs {
    #[command(flatten)]
    pub stack: StackArg,
    /// Print the outputs as one JSON object
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Subcommand)]
pub enum StateCommand {
    /// List the addresses of every resource in the state
    List(StackArg),
    /// Show one resource of the state: its id and last-known attributes
    Show {
        #[command(flatten)]
        stack: StackArg,
        /// A resource address, e.g. `subnet.public.us-west-2a`
        #[arg(value_name = "ADDR")]
        address: String,
    },
    /// Print the whole state file, for inspection or a backup
    Pull(StackArg),
    /// Replace the state with FILE (disaster recovery): refused for another history (lineage)
    /// or an older serial unless `--force`
    Push {
        #[command(flatten)]
        stack: StackArg,
        /// A state file, as `state pull` prints it
        #[arg(value_name = "FILE")]
        file: std::path::PathBuf,
        /// Push even a state of another lineage or an older serial
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, clap::Args)]
pub struct ForceUnlockArgs {
    #[command(flatten)]
    pub stack: StackArg,
    /// The lock id, as printed by the run that is refused
    #[arg(value_name = "LOCK_ID")]
    pub lock_id: String,
}

#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    #[command(flatten)]
    pub stack: StackArg,
    /// The address to manage the object at, e.g. `s3_bucket.models`
    #[arg(value_name = "ADDR")]
    pub address: String,
    /// The object's AWS id: a VPC id, a bucket or role name, an ARN for an OIDC provider...
    #[arg(value_name = "ID")]
    pub id: String,
}

pub async fn import(args: &ImportArgs, global: &super::Global) -> Result<u8> {
    let stack = Stack::open(&args.stack.stack)?;
    let _lock = stack.lock("import")?;
    let session = super::plan::session(&stack, global, 1, crate::ui::progress::Progress::Auto);
    let address = Address::new(args.address.as_str());
    crate::ops::import(&stack, &address, &args.id, &session).await?;
    eprintln!(
        "imported `{}` as `{address}`; `mlops plan {}` shows how it differs from the spec",
        args.id, args.stack.stack
    );
    Ok(0)
}

pub fn output(args: &OutputArgs) -> Result<u8> {
    let stack = Stack::open(&args.stack.stack)?;
    let outputs: BTreeMap<String, Value> = state::outputs(&stack.state()?);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&outputs).expect("json"));
        return Ok(0);
    }
    if outputs.is_empty() {
        eprintln!(
            "stack `{}` has no outputs yet; run `mlops apply {}` first",
            stack.spec.stack.name, args.stack.stack
        );
    }
    let width = outputs.keys().map(String::len).max().unwrap_or(0);
    for (key, value) in &outputs {
        println!("{key:width$} = {}", pretty(value));
    }
    Ok(0)
}

pub fn state(command: &StateCommand) -> Result<u8> {
    match command {
        StateCommand::Pull(arg) => {
            let stack = Stack::open(&arg.stack)?;
            let Some(state) = stack.store.load()? else {
                return Err(Error::refused(
                    format!("stack `{}` has no state yet", stack.spec.stack.name),
                    format!("`mlops apply {}` creates it", arg.stack),
                ));
            };
            println!("{}", serde_json::to_string_pretty(&state).expect("json"));
        }
        StateCommand::Push { stack, file, force } => {
            let opened = Stack::open(&stack.stack)?;
            let serial = crate::ops::push_state(&opened, file, *force)?;
            eprintln!(
                "pushed `{}` as the state of stack `{}` (serial {serial})",
                file.display(),
                opened.spec.stack.name
            );
        }
        StateCommand::List(arg) => {
            let state = Stack::open(&arg.stack)?.state()?;
            for address in state.resources.keys() {
                println!("{address}");
            }
        }
        StateCommand::Show { stack, address } => {
            let state = Stack::open(&stack.stack)?.state()?;
            let address = Address::new(address.as_str());
            let Some(resource) = state.resources.get(&address) else {
                return Err(Error::refused(
                    format!(
                        "the state of stack `{}` has no resource `{address}`",
                        state.stack
                    ),
                    "`mlops state list` lists the addresses in the state",
                ));
            };
            let shown = json!({
                "address": address,
                "kind": resource.kind,
                "id": resource.id,
                "attributes": resource.attrs,
                "depends_on": resource.deps,
            });
            println!("{}", serde_json::to_string_pretty(&shown).expect("json"));
        }
    }
    Ok(0)
}

pub fn force_unlock(args: &ForceUnlockArgs) -> Result<u8> {
    let stack = Stack::open(&args.stack.stack)?;
    let holder = stack.store.force_unlock(&args.lock_id)?;
    eprintln!(
        "removed the lock on `{}` held by {}",
        stack.store.describe(),
        holder.describe()
    );
    Ok(0)
}

/// A string without quotes, anything else as compact JSON.
fn pretty(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
