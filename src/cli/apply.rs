//! `mlops apply` and `mlops destroy`: plan (or load a saved plan), show, confirm (or
//! `--auto-approve`), execute, summarise. With `--all` or `--stacks GLOB`, every stack at once,
//! each with its own lock and progress lines, then a summary table.

use std::collections::BTreeSet;
use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;
use std::time::{Instant, SystemTime};

use super::plan::{live_board, session, targets, RefreshArg};
use super::{until_interrupted, Global, Selection};
use crate::model::Address;
use crate::ops::{self, Applied, PlanRequest};
use crate::plan::json::to_json;
use crate::plan::{gate, render, Plan};
use crate::providers::aws::RequestCap;
use crate::ui::progress::{duration, event, Progress, EVENTS_FORMAT_VERSION};
use crate::ui::Style;
use crate::{Error, Result};

/// What `apply` and `destroy` share.
#[derive(Debug, clap::Args)]
pub struct RunOptions {
    /// Skip the confirmation prompt (required when no terminal is attached, and with `--all`)
    #[arg(long)]
    pub auto_approve: bool,
    /// How many resources may be worked on at once per stack, and how many AWS requests may
    /// be in flight at once across all stacks
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub parallelism: u16,
    #[command(flatten)]
    pub refresh: RefreshArg,
    /// Print the plan, one event per resource operation and the result as JSON lines on
    /// stdout (docs/ci.md)
    #[arg(long)]
    pub json: bool,
}

/// `STACK` may also be a plan saved by `mlops plan --out`.
#[derive(Debug, clap::Args)]
pub struct ApplyArgs {
    #[command(flatten)]
    pub which: Selection,
    #[command(flatten)]
    pub run: RunOptions,
    /// Apply only this resource and what it needs (repeatable)
    #[arg(long = "target", value_name = "ADDR")]
    pub targets: Vec<String>,
    #[command(flatten)]
    pub changes: ChangeArgs,
    /// Let the apply delete or replace this protected resource (a cluster, node group, VPC,
    /// NAT gateway, bucket, repository or OIDC provider), which it otherwise refuses
    /// (repeatable)
    #[arg(long = "allow-replace", value_name = "ADDR")]
    pub allow_replace: Vec<String>,
}

/// What `plan` and `apply` may be asked to do besides the spec.
#[derive(Debug, clap::Args)]
pub struct ChangeArgs {
    /// Replace this resource even though nothing forces it (repeatable); a protected one still
    /// needs `--allow-replace` to be applied
    #[arg(long = "replace", value_name = "ADDR")]
    pub replace: Vec<String>,
    /// Only write into the state what AWS reports (changes and deletions made outside mlops),
    /// changing nothing in AWS
    #[arg(long, conflicts_with = "replace")]
    pub refresh_only: bool,
    /// Let an add-on go up more than one minor version in one step, which cert-manager,
    /// Istio and Knative do not support (docs/addons.md); refused without it
    #[arg(long)]
    pub allow_version_skip: bool,
}

impl ChangeArgs {
    /// Refuses `--allow-version-skip` with `--all` or `--stacks`: a skip is one stack's
    /// decision.
    pub fn check_one_stack(&self) -> Result<()> {
        if self.allow_version_skip {
            return Err(Error::refused(
                "`--allow-version-skip` applies to one stack",
                "run that stack on its own with it",
            ));
        }
        Ok(())
    }
}

/// What one apply asks beyond its run options: a destroy, and every stack of `--all`, ask none.
#[derive(Debug, Default)]
struct Asked {
    targets: Vec<String>,
    replace: Vec<String>,
    refresh_only: bool,
    allow_version_skip: bool,
    allowed: BTreeSet<Address>,
}

#[derive(Debug, clap::Args)]
pub struct DestroyArgs {
    #[command(flatten)]
    pub which: Selection,
    #[command(flatten)]
    pub run: RunOptions,
}

fn progress(run: &RunOptions) -> Progress {
    if run.json {
        Progress::Json
    } else {
        Progress::Auto
    }
}

pub async fn run_apply(args: &ApplyArgs, global: &Global) -> Result<u8> {
    let asked = Asked {
        targets: args.targets.clone(),
        replace: args.changes.replace.clone(),
        refresh_only: args.changes.refresh_only,
        allow_version_skip: args.changes.allow_version_skip,
        allowed: targets(&args.allow_replace).into_iter().collect(),
    };
    if let Some(pattern) = args.which.pattern() {
        args.changes.check_one_stack()?;
        if !asked.targets.is_empty()
            || !asked.replace.is_empty()
            || asked.refresh_only
            || !asked.allowed.is_empty()
        {
            return Err(Error::refused(
                "`--target`, `--replace`, `--refresh-only` and `--allow-replace` apply to one stack",
                "apply that stack on its own",
            ));
        }
        return run_many(pattern, "apply", &args.run, global).await;
    }
    let file = args.which.stack.as_deref().unwrap_or_default();
    let ran = match ops::load_plan(Path::new(file))? {
        Some(saved) => apply_saved(saved, args, &asked, global).await,
        None => {
            run_stack(
                file,
                "apply",
                &args.run,
                &asked,
                single_cap(&args.run),
                progress(&args.run),
                global,
            )
            .await
        }
    };
    finish(args.run.json, "apply", ran, global)
}

pub async fn run_destroy(args: &DestroyArgs, global: &Global) -> Result<u8> {
    if let Some(pattern) = args.which.pattern() {
        return run_many(pattern, "destroy", &args.run, global).await;
    }
    let file = args.which.stack.as_deref().unwrap_or_default();
    let ran = run_stack(
        file,
        "destroy",
        &args.run,
        &Asked::default(),
        single_cap(&args.run),
        progress(&args.run),
        global,
    )
    .await;
    finish(args.run.json, "destroy", ran, global)
}

/// What a run did: `None` when there was nothing to change.
type Ran = Result<Option<(Applied, String)>>;

/// The cap on AWS requests in flight of a command on one stack.
fn single_cap(run: &RunOptions) -> RequestCap {
    RequestCap::new(usize::from(run.parallelism))
}

async fn apply_saved(
    saved: ops::SavedPlan,
    args: &ApplyArgs,
    asked: &Asked,
    global: &Global,
) -> Ran {
    if !asked.targets.is_empty() || !asked.replace.is_empty() || asked.refresh_only {
        return Err(Error::refused(
            "`--target`, `--replace` and `--refresh-only` cannot change a saved plan",
            "make the plan with them instead",
        ));
    }
    let stack = global.open(&saved.stack_file)?;
    let session = session(
        &stack,
        global,
        args.run.parallelism,
        single_cap(&args.run),
        progress(&args.run),
    );
    let (_lock, state) = saved.lock_current(&stack, &session).await?;
    // A saved plan was reviewed already: it is its own approval. Not of a protected change.
    execute(&stack, &saved.plan, state, &session, &asked.allowed).await
}

/// Plans one stack (`command` is `apply` or `destroy`), shows the plan, confirms, executes.
/// `cap` bounds the AWS requests in flight, shared with the other stacks of the command.
async fn run_stack(
    file: &str,
    command: &str,
    run: &RunOptions,
    asked: &Asked,
    cap: RequestCap,
    progress: Progress,
    global: &Global,
) -> Ran {
    let stack = global.open(file)?;
    let request = PlanRequest {
        refresh: run.refresh.enabled,
        targets: targets(&asked.targets),
        destroy: command == "destroy",
        manifests_optional: false,
        replace: targets(&asked.replace),
        refresh_only: asked.refresh_only,
        allow_version_skip: asked.allow_version_skip,
    };
    let title = match &progress {
        Progress::Stack(_) | Progress::Live(_) => {
            Some(format!("== stack `{}` ({file})\n\n", stack.spec.stack.name))
        }
        _ => None,
    };
    let session = session(&stack, global, run.parallelism, cap, progress.clone());
    let (_lock, plan, state) =
        until_interrupted(ops::plan(&stack, command, &request, &session)).await?;
    progress.print(|| show_and_confirm(&plan, command, run, title, &asked.allowed, global))?;
    let s = plan.summary();
    let doing = if command == "destroy" {
        "destroying"
    } else {
        "applying"
    };
    progress.running(doing, s.add + s.change + s.destroy);
    execute(&stack, &plan, state, &session, &asked.allowed).await
}

/// Every stack of `pattern` at once, each with its lock and `[stack]`-prefixed progress lines;
/// then a table whose start and end times show the runs side by side. Exit 1 if any failed,
/// after the others finished.
async fn run_many(pattern: &str, command: &str, run: &RunOptions, global: &Global) -> Result<u8> {
    if !run.auto_approve || run.json {
        return Err(Error::refused(
            format!("`{command}` of many stacks runs with `--auto-approve` and without `--json`"),
            "review with `mlops plan --all` first, then add `--auto-approve`",
        ));
    }
    let files = ops::stack_files(pattern)?;
    let names: Vec<String> = files.iter().map(|f| ops::label(f)).collect();
    let board = live_board(global, &names);
    // One cap on AWS requests in flight for every stack together.
    let cap = single_cap(run);
    let runs = files.iter().zip(&names).map(|(file, name)| {
        let progress = Progress::of_stack(board.as_ref(), name);
        let cap = cap.clone();
        async move {
            let file = file.display().to_string();
            let (started, clock) = (SystemTime::now(), Instant::now());
            let asked = Asked::default();
            let ran = run_stack(&file, command, run, &asked, cap, progress.clone(), global).await;
            match &ran {
                Ok(Some((applied, _))) => progress.finish(&done(applied), true),
                Ok(None) => progress.finish("no changes", true),
                Err(_) => progress.finish("failed", false),
            }
            (name.clone(), ran, started, clock.elapsed())
        }
    });
    let results = futures::future::join_all(runs).await;
    let clock = |t: SystemTime| {
        let stamp = humantime::format_rfc3339_millis(t).to_string();
        stamp.get(11..23).unwrap_or(&stamp).to_string()
    };
    let mut failed = 0;
    let mut rows = vec![[
        "stack", "result", "add", "change", "destroy", "started", "finished",
    ]
    .map(String::from)];
    for (name, ran, started, elapsed) in &results {
        let counts = |a: &Applied| {
            [a.summary.add, a.summary.change, a.summary.destroy].map(|n| n.to_string())
        };
        let (result, [add, change, destroy]) = match ran {
            Ok(Some((applied, _))) => ("done", counts(applied)),
            Ok(None) => ("no changes", ["0", "0", "0"].map(String::from)),
            Err(err) => {
                failed += 1;
                crate::err!("[{name}] {}", err.report());
                ("failed", ["-", "-", "-"].map(String::from))
            }
        };
        rows.push([
            name.clone(),
            result.to_string(),
            add,
            change,
            destroy,
            clock(*started),
            clock(*started + *elapsed),
        ]);
    }
    crate::errln!("\n{}", crate::ui::table(&rows, &[2, 3, 4]));
    Ok(if failed > 0 { 1 } else { 0 })
}

fn show_and_confirm(
    plan: &Plan,
    command: &str,
    run: &RunOptions,
    title: Option<String>,
    allowed: &BTreeSet<Address>,
    global: &Global,
) -> Result<()> {
    if run.json {
        event(
            "plan",
            serde_json::json!({ "format_version": EVENTS_FORMAT_VERSION, "plan": to_json(plan) }),
        );
    } else {
        let text = render::human(plan, Style::for_stdout(global.no_color));
        crate::out!("{}{text}", title.unwrap_or_default());
    }
    // Refused before the question: a `yes` must not be asked for what will not run.
    gate::check(plan, allowed)?;
    if plan.has_changes() && !run.auto_approve {
        confirm(command)?;
    }
    Ok(())
}

async fn execute(
    stack: &ops::Stack,
    plan: &Plan,
    state: crate::state::State,
    session: &ops::Session,
    allowed: &BTreeSet<Address>,
) -> Ran {
    if !plan.has_changes() {
        return Ok(None);
    }
    let applied = ops::apply(stack, plan, state, session, allowed).await?;
    let next = format!(
        "Outputs: `mlops output {}`; state: `{}`",
        stack.spec.path.display(),
        stack.store.describe()
    );
    Ok(Some((applied, next)))
}

/// `3 added, 1 changed, 0 destroyed in 12s`
fn done(applied: &Applied) -> String {
    let s = applied.summary;
    format!(
        "{} added, {} changed, {} destroyed in {}",
        s.add,
        s.change,
        s.destroy,
        duration(applied.elapsed)
    )
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
    let verb = if command == "destroy" {
        "Destroy"
    } else {
        "Apply"
    };
    crate::errln!(
        "\n{}",
        Style::for_stderr(global.no_color).green(&format!("{verb} complete: {}.", done(&applied)))
    );
    if command != "destroy" {
        crate::errln!("{next}");
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
    crate::err!("\nDo you want to perform these actions? Only `yes` will be accepted: ");
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
