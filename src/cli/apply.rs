//! `mlops apply` and `mlops destroy`: plan (or load a saved plan), show, confirm (or
//! `--auto-approve`), execute, summarise.

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;

use super::plan::{session, targets, RefreshArg};
use super::{until_interrupted, Global, StackArg};
use crate::ops::{self, Applied, PlanRequest, Stack};
use crate::plan::json::to_json;
use crate::plan::{render, Plan};
use crate::ui::progress::{duration, event, EVENTS_FORMAT_VERSION};
use crate::ui::Style;
use crate::{Error, Result};

#[derive(Debug, clap::Args)]
pub struct ApplyArgs {
    /// A stack file, a bare stack name, or a plan saved by `mlops plan --out`
    #[arg(value_name = "STACK|PLANFILE")]
    pub stack: String,
    /// Skip the confirmation prompt (required when no terminal is attached)
    #[arg(long)]
    pub auto_approve: bool,
    /// How many resources may be worked on at once
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub parallelism: u16,
    /// Apply only this resource and what it needs (repeatable)
    #[arg(long = "target", value_name = "ADDR")]
    pub targets: Vec<String>,
    #[command(flatten)]
    pub refresh: RefreshArg,
    /// Print the plan, one event per resource operation and the result as JSON lines on
    /// stdout (docs/ci.md)
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct DestroyArgs {
    #[command(flatten)]
    pub stack: StackArg,
    /// Skip the confirmation prompt (required when no terminal is attached)
    #[arg(long)]
    pub auto_approve: bool,
    /// How many resources may be worked on at once
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub parallelism: u16,
    #[command(flatten)]
    pub refresh: RefreshArg,
    /// Print the plan, one event per resource operation and the result as JSON lines on
    /// stdout (docs/ci.md)
    #[arg(long)]
    pub json: bool,
}

pub async fn run_apply(args: &ApplyArgs, global: &Global) -> Result<u8> {
    finish(args.json, "apply", apply_stack(args, global).await, global)
}

pub async fn run_destroy(args: &DestroyArgs, global: &Global) -> Result<u8> {
    finish(
        args.json,
        "destroy",
        destroy_stack(args, global).await,
        global,
    )
}

/// What a run did: `None` when there was nothing to change.
type Ran = Result<Option<(Applied, String)>>;

async fn apply_stack(args: &ApplyArgs, global: &Global) -> Ran {
    if let Some(saved) = ops::load_plan(Path::new(&args.stack))? {
        if !args.targets.is_empty() {
            return Err(Error::refused(
                "`--target` cannot narrow a saved plan",
                "make the plan with `--target` instead",
            ));
        }
        let stack = Stack::open(&saved.stack_file)?;
        let _lock = stack.lock("apply")?;
        let state = stack.state()?;
        saved.check_current(&stack, &state)?;
        let session = session(&stack, global, args.parallelism, args.json);
        // A saved plan was reviewed already: it is its own approval.
        return execute(&stack, &saved.plan, state, &session).await;
    }
    let stack = Stack::open(&args.stack)?;
    let _lock = stack.lock("apply")?;
    let request = PlanRequest {
        refresh: args.refresh.enabled,
        targets: targets(&args.targets),
        destroy: false,
    };
    let session = session(&stack, global, args.parallelism, args.json);
    let (plan, state) = until_interrupted(ops::plan(&stack, &request, &session)).await?;
    show_and_confirm(&plan, "apply", args.auto_approve, args.json, global)?;
    execute(&stack, &plan, state, &session).await
}

async fn destroy_stack(args: &DestroyArgs, global: &Global) -> Ran {
    let stack = Stack::open(&args.stack.stack)?;
    let _lock = stack.lock("destroy")?;
    let request = PlanRequest {
        refresh: args.refresh.enabled,
        targets: Vec::new(),
        destroy: true,
    };
    let session = session(&stack, global, args.parallelism, args.json);
    let (plan, state) = until_interrupted(ops::plan(&stack, &request, &session)).await?;
    show_and_confirm(&plan, "destroy", args.auto_approve, args.json, global)?;
    execute(&stack, &plan, state, &session).await
}

fn show_and_confirm(
    plan: &Plan,
    command: &str,
    auto_approve: bool,
    json: bool,
    global: &Global,
) -> Result<()> {
    if json {
        event(
            "plan",
            serde_json::json!({ "format_version": EVENTS_FORMAT_VERSION, "plan": to_json(plan) }),
        );
    } else {
        print!(
            "{}",
            render::human(plan, Style::for_stdout(global.no_color))
        );
    }
    if plan.has_changes() && !auto_approve {
        confirm(command)?;
    }
    Ok(())
}

async fn execute(
    stack: &Stack,
    plan: &Plan,
    state: crate::state::State,
    session: &ops::Session,
) -> Ran {
    if !plan.has_changes() {
        return Ok(None);
    }
    let applied = ops::apply(stack, plan, state, session).await?;
    let next = format!(
        "Outputs: `mlops output {}`; state: `{}`",
        stack.spec.path.display(),
        stack.store.describe()
    );
    Ok(Some((applied, next)))
}

/// The end of a run: the summary on stderr, and with `--json` the result line on stdout, for
/// a success as for a failure.
fn finish(json: bool, command: &str, ran: Ran, global: &Global) -> Result<u8> {
    if json {
        let result = match &ran {
            Ok(done) => serde_json::json!({
                "result": "ok",
                "changes": done.is_some(),
                "summary": done.as_ref().map(|(a, _)| serde_json::json!({
                    "add": a.summary.add, "change": a.summary.change, "destroy": a.summary.destroy,
                })),
                "duration_ms": done.as_ref().map_or(0, |(a, _)| a.elapsed.as_millis() as u64),
            }),
            Err(Error::Apply {
                errors,
                done,
                skipped,
            }) => serde_json::json!({
                "result": "error",
                "done": done,
                "skipped": skipped,
                "errors": errors.iter().map(|e| serde_json::json!({
                    "address": e.address,
                    "operation": e.op.verb(),
                    "code": e.error.code,
                    "message": e.error.message,
                })).collect::<Vec<_>>(),
            }),
            Err(Error::Interrupted { done, skipped }) => {
                serde_json::json!({ "result": "interrupted", "done": done, "skipped": skipped })
            }
            Err(err) => serde_json::json!({
                "result": "error",
                "errors": [{ "message": err.to_string(), "hint": err.hint() }],
            }),
        };
        let mut result = result;
        result["format_version"] = serde_json::json!(EVENTS_FORMAT_VERSION);
        event("result", result);
    }
    let Some((applied, next)) = ran? else {
        return Ok(0);
    };
    let s = applied.summary;
    let verb = if command == "destroy" {
        "Destroy"
    } else {
        "Apply"
    };
    eprintln!(
        "\n{}",
        Style::for_stderr(global.no_color).green(&format!(
            "{verb} complete: {} added, {} changed, {} destroyed in {}.",
            s.add,
            s.change,
            s.destroy,
            duration(applied.elapsed)
        ))
    );
    if command != "destroy" {
        eprintln!("{next}");
    }
    Ok(0)
}

/// Asks for `yes` on a terminal; refuses without one.
fn confirm(command: &str) -> Result<()> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Err(Error::refused(
            format!(
                "`{command}` needs confirmation, but no terminal is attached; nothing was changed"
            ),
            format!("review the plan, then run `mlops {command}` with `--auto-approve`"),
        ));
    }
    eprint!("\nDo you want to perform these actions? Only `yes` will be accepted: ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    stdin
        .lock()
        .read_line(&mut answer)
        .map_err(|source| Error::Io {
            action: "read the answer from",
            path: "standard input".into(),
            source,
        })?;
    if answer.trim() == "yes" {
        Ok(())
    } else {
        Err(Error::Refused {
            message: format!("`{command}` cancelled; nothing was changed"),
            hint: None,
        })
    }
}
