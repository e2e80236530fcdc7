//! Commands over the state: `output`, `state list|show|pull|push`, `import`, and over the lock:
//! `lock status`, `force-unlock`.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::{Global, StackArg};
use crate::model::Address;
use crate::ops::StateEdit;
use crate::state::{self, whole_seconds, LockInfo};
use crate::ui::progress::Progress;
use crate::{Error, Result};

#[derive(Debug, clap::Args)]
pub struct OutputArgs {
    #[command(flatten)]
    pub stack: StackArg,
    /// Print only this output (`mlops output <STACK>` lists the names)
    #[arg(value_name = "NAME")]
    pub name: Option<String>,
    /// Print the outputs as one JSON object; with NAME, the value as JSON
    #[arg(long, conflicts_with = "raw")]
    pub json: bool,
    /// With NAME: a string as it is, without quotes, for `$(mlops output <STACK> NAME --raw)`;
    /// other values as compact JSON
    #[arg(long, requires = "name")]
    pub raw: bool,
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
    /// Give a resource of the state another address, its object untouched: for a resource
    /// renamed in the spec (a `[[moved]]` entry does the same in the plan)
    Mv {
        #[command(flatten)]
        stack: StackArg,
        /// The address in the state, e.g. `s3_bucket.models`
        #[arg(value_name = "FROM")]
        from: String,
        /// The new address, of the same kind, e.g. `s3_bucket.models-v2`
        #[arg(value_name = "TO")]
        to: String,
        /// Show the move without writing the state
        #[arg(long)]
        dry_run: bool,
    },
    /// Forget a resource: remove it from the state, leaving the object in AWS
    Rm {
        #[command(flatten)]
        stack: StackArg,
        /// The address in the state, e.g. `s3_bucket.models`
        #[arg(value_name = "ADDR")]
        address: String,
        /// Show what would be forgotten without writing the state
        #[arg(long)]
        dry_run: bool,
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

#[derive(Debug, clap::Subcommand)]
pub enum LockCommand {
    /// Show who holds the stack's lock: holder, age, last heartbeat and lease
    Status(StackArg),
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

pub async fn import(args: &ImportArgs, global: &Global) -> Result<u8> {
    let stack = global.open(&args.stack.stack)?;
    let cap = crate::providers::aws::RequestCap::new(1);
    let session = super::plan::session(&stack, global, 1, cap, Progress::Auto);
    let address = Address::new(args.address.as_str());
    crate::ops::import(&stack, &address, &args.id, &session).await?;
    crate::errln!(
        "imported `{}` as `{address}`; `mlops plan {}` shows how it differs from the spec",
        args.id,
        args.stack.stack
    );
    Ok(0)
}

pub async fn output(args: &OutputArgs, global: &Global) -> Result<u8> {
    let stack = global.open(&args.stack.stack)?;
    let outputs: BTreeMap<String, Value> = state::outputs(&stack.state().await?);
    if let Some(name) = &args.name {
        let value = one_output(&outputs, name, &stack.spec.stack.name, &args.stack.stack)?;
        if args.json {
            crate::outln!("{}", serde_json::to_string_pretty(value).expect("json"));
        } else if args.raw {
            crate::outln!("{}", pretty(value));
        } else {
            crate::outln!("{value}");
        }
        return Ok(0);
    }
    if args.json {
        crate::outln!("{}", serde_json::to_string_pretty(&outputs).expect("json"));
        return Ok(0);
    }
    if outputs.is_empty() {
        crate::errln!(
            "stack `{}` has no outputs yet; run `mlops apply {}` first",
            stack.spec.stack.name,
            args.stack.stack
        );
    }
    let width = outputs.keys().map(String::len).max().unwrap_or(0);
    for (key, value) in &outputs {
        crate::outln!("{key:width$} = {}", pretty(value));
    }
    Ok(0)
}

pub async fn state(command: &StateCommand, global: &Global) -> Result<u8> {
    match command {
        StateCommand::Pull(arg) => {
            let stack = global.open(&arg.stack)?;
            let Some(state) = stack.store.load().await? else {
                return Err(Error::refused(
                    format!("stack `{}` has no state yet", stack.spec.stack.name),
                    format!("`mlops apply {}` creates it", arg.stack),
                ));
            };
            crate::outln!("{}", serde_json::to_string_pretty(&state).expect("json"));
        }
        StateCommand::Push { stack, file, force } => {
            let opened = global.open(&stack.stack)?;
            let reporter = super::plan::reporter(global, Progress::Auto);
            let serial = crate::ops::push_state(&opened, reporter.as_ref(), file, *force).await?;
            crate::errln!(
                "pushed `{}` as the state of stack `{}` (serial {serial})",
                file.display(),
                opened.spec.stack.name
            );
        }
        StateCommand::Mv {
            stack,
            from,
            to,
            dry_run,
        } => {
            let edit = StateEdit::Move {
                from: Address::new(from.as_str()),
                to: Address::new(to.as_str()),
            };
            edit_state(global, &stack.stack, &edit, *dry_run).await?;
        }
        StateCommand::Rm {
            stack,
            address,
            dry_run,
        } => {
            let edit = StateEdit::Remove {
                address: Address::new(address.as_str()),
            };
            edit_state(global, &stack.stack, &edit, *dry_run).await?;
        }
        StateCommand::List(arg) => {
            let state = global.open(&arg.stack)?.state().await?;
            for address in state.resources.keys() {
                crate::outln!("{address}");
            }
        }
        StateCommand::Show { stack, address } => {
            let state = global.open(&stack.stack)?.state().await?;
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
            crate::outln!("{}", serde_json::to_string_pretty(&shown).expect("json"));
        }
    }
    Ok(0)
}

/// `state mv` and `state rm`: the edit as a plan line on stdout, what was written on stderr.
async fn edit_state(global: &Global, file: &str, edit: &StateEdit, dry_run: bool) -> Result<()> {
    let stack = global.open(file)?;
    let reporter = super::plan::reporter(global, Progress::Auto);
    let (before, serial) = crate::ops::edit_state(&stack, reporter.as_ref(), edit, dry_run).await?;
    crate::outln!("{}", edit.describe(&before));
    if dry_run {
        crate::errln!(
            "dry run: the state of stack `{}` was not changed",
            stack.spec.stack.name
        );
    } else {
        crate::errln!(
            "wrote the state of stack `{}` (serial {serial}); nothing was changed in AWS",
            stack.spec.stack.name
        );
    }
    Ok(())
}

pub async fn force_unlock(args: &ForceUnlockArgs, global: &Global) -> Result<u8> {
    let stack = global.open(&args.stack.stack)?;
    let holder = stack.store.force_unlock(&args.lock_id).await?;
    crate::errln!(
        "removed the lock on `{}` held by {}",
        stack.store.describe(),
        holder.describe()
    );
    Ok(0)
}

/// `mlops lock status <STACK>`: the holder of the lock, or `no lock`, on stdout.
pub async fn lock(command: &LockCommand, global: &Global) -> Result<u8> {
    let LockCommand::Status(arg) = command;
    let stack = global.open(&arg.stack)?;
    let status = stack.store.lock_status().await?;
    crate::out!("{}", lock_status(&stack.store.describe(), status.as_ref()));
    Ok(0)
}

/// The lines of `lock status`.
fn lock_status(location: &str, holder: Option<&LockInfo>) -> String {
    let Some(holder) = holder else {
        return format!("no lock on `{location}`\n");
    };
    let mut rows = vec![
        (
            "locked by",
            format!("{}@{} (pid {})", holder.user, holder.host, holder.pid),
        ),
        ("operation", holder.operation.clone()),
        ("lock id", holder.id.clone()),
        (
            "age",
            holder
                .age()
                .map_or("unknown".into(), |d| format!("{}", whole_seconds(d))),
        ),
    ];
    if let Some(since) = holder.since_heartbeat() {
        rows.push(("last heartbeat", format!("{} ago", whole_seconds(since))));
    }
    match (holder.lease.as_deref(), holder.lease_left()) {
        (Some(lease), Some(left)) if left.is_zero() => rows.push((
            "lease",
            format!("{lease}, expired: the next run takes the lock over"),
        )),
        (Some(lease), Some(left)) => rows.push((
            "lease",
            format!("{lease}, {} left unless renewed", whole_seconds(left)),
        )),
        _ => {}
    }
    if let Some(job) = &holder.ci_job {
        rows.push(("CI job", job.clone()));
    }
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    let mut text = format!("lock on `{location}`\n");
    for (key, value) in rows {
        text.push_str(&format!("  {key:width$}  {value}\n"));
    }
    text
}

/// The output `name`, or a refusal that lists the names there are.
fn one_output<'a>(
    outputs: &'a BTreeMap<String, Value>,
    name: &str,
    stack: &str,
    arg: &str,
) -> Result<&'a Value> {
    outputs.get(name).ok_or_else(|| {
        let hint = if outputs.is_empty() {
            format!("the stack has no outputs yet; `mlops apply {arg}` makes them")
        } else {
            let names: Vec<String> = outputs.keys().map(|k| format!("`{k}`")).collect();
            let names = format!("the outputs are {}", names.join(", "));
            match crate::ui::diagnostic::closest(name, outputs.keys().map(String::as_str)) {
                Some(near) => format!("did you mean `{near}`? {names}"),
                None => names,
            }
        };
        Error::refused(format!("stack `{stack}` has no output `{name}`"), hint)
    })
}

/// A string without quotes, anything else as compact JSON.
fn pretty(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;

    #[test]
    fn lock_status_shows_the_holder_its_heartbeat_and_lease() {
        assert_eq!(lock_status("s3://b/k", None), "no lock on `s3://b/k`\n");
        let mut holder =
            LockInfo::for_this_process("t", "t.toml", "apply").leased(Duration::from_secs(300));
        holder.user = "ci".into();
        holder.host = "runner-7".into();
        holder.pid = 42;
        holder.id = "abc".into();
        let text = lock_status("s3://b/k", Some(&holder));
        assert!(
            text.starts_with("lock on `s3://b/k`\n  locked by       ci@runner-7 (pid 42)\n"),
            "{text}"
        );
        assert!(text.contains("  operation       apply\n"), "{text}");
        assert!(text.contains("  last heartbeat  0s ago\n"), "{text}");
        assert!(
            text.contains("  lease           5m, 4m 59s left unless renewed\n")
                || text.contains("  lease           5m, 5m left unless renewed\n"),
            "{text}"
        );
        let then = SystemTime::now() - Duration::from_secs(400);
        holder.heartbeat = Some(humantime::format_rfc3339_millis(then).to_string());
        let text = lock_status("s3://b/k", Some(&holder));
        assert!(
            text.contains("  lease           5m, expired: the next run takes the lock over\n"),
            "{text}"
        );
    }
}
