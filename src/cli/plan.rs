//! `mlops plan <STACK>`: what `apply` would change, for people or (`--json`) for pipelines.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Instant;

use super::{Global, Selection};
use crate::kube::Cluster;
use crate::model::Address;
use crate::ops::{self, PlanRequest, Session, Stack};
use crate::plan::{json, render, Plan};
use crate::providers::aws::{RequestCap, Settings};
use crate::ui::progress::{self, Board, Progress};
use crate::ui::Style;
use crate::Result;

#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub which: Selection,
    /// Print the plan as JSON (docs/plan-json.md) instead of text; same as `--format json`
    #[arg(long)]
    pub json: bool,
    /// `text`, `json`, or `markdown` (for a pull-request comment)
    #[arg(long, value_enum, default_value = "text", conflicts_with = "json")]
    pub format: PlanFormat,
    /// Also save the plan to FILE, for `mlops apply FILE`
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Exit 0 when there is nothing to change, 2 when there is, 1 on error
    #[arg(long)]
    pub detailed_exitcode: bool,
    #[command(flatten)]
    pub refresh: RefreshArg,
    /// Plan only this resource and what it needs (repeatable)
    #[arg(long = "target", value_name = "ADDR")]
    pub targets: Vec<String>,
    #[command(flatten)]
    pub changes: super::apply::ChangeArgs,
    /// How many resources may be read at once during the refresh, and how many AWS requests
    /// may be in flight at once across all stacks
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub parallelism: u16,
}

/// Every stack of `pattern` planned at once: each plan on stdout (`--json`: one object per line),
/// then a summary table on stderr. Exit 1 if any stack failed (the others still finish), else
/// 2 with `--detailed-exitcode` if any has changes: the nightly drift check.
async fn run_many(pattern: &str, args: &PlanArgs, global: &Global) -> Result<u8> {
    args.changes.check_one_stack()?;
    if args.out.is_some()
        || !args.targets.is_empty()
        || !args.changes.replace.is_empty()
        || args.changes.refresh_only
    {
        return Err(crate::Error::refused(
            "`--out`, `--target`, `--replace` and `--refresh-only` apply to one stack",
            "plan that stack on its own: `mlops plan <STACK> --out FILE`",
        ));
    }
    let files = ops::stack_files(pattern)?;
    let results = plan_files(&files, args, global).await?;
    Ok(report(&results, args, global))
}

/// A stack of many: its file, its plan (or why it has none), and how long it took.
type Planned = (String, Result<(Stack, Plan)>, std::time::Duration);

/// Opens the stacks of `files` and plans them together (`ops::plan_many`), each on its own
/// line of progress, under one cap on AWS requests in flight.
async fn plan_files(files: &[PathBuf], args: &PlanArgs, global: &Global) -> Result<Vec<Planned>> {
    let names: Vec<String> = files.iter().map(|f| ops::label(f)).collect();
    let board = live_board(global, &names);
    let cap = RequestCap::new(usize::from(args.parallelism));
    let progress: Vec<Progress> = names
        .iter()
        .map(|name| Progress::of_stack(board.as_ref(), name))
        .collect();
    let started = Instant::now();
    let opened: Vec<Result<(Stack, Session)>> = files
        .iter()
        .zip(&progress)
        .map(|(file, progress)| {
            let stack = global.open(&file.display().to_string())?;
            let session = session(
                &stack,
                global,
                args.parallelism,
                cap.clone(),
                progress.clone(),
            );
            Ok((stack, session))
        })
        .collect();
    let open: Vec<(&Stack, &Session)> = opened
        .iter()
        .filter_map(|o| o.as_ref().ok().map(|(stack, session)| (stack, session)))
        .collect();
    let mut planned = ops::plan_many(&open, &plan_request(args))
        .await?
        .into_iter();
    drop(open);
    let results = opened.into_iter().zip(files).zip(&progress);
    Ok(results
        .map(|((opened, file), progress)| {
            let (result, elapsed) = match opened {
                Ok((stack, _)) => {
                    let (plan, elapsed) = planned.next().expect("a plan for each stack opened");
                    (plan.map(|plan| (stack, plan)), elapsed)
                }
                Err(err) => (Err(err), started.elapsed()),
            };
            match &result {
                Ok((_, plan)) => progress.finish(&to_change(plan), true),
                Err(_) => progress.finish("failed", false),
            }
            (file.display().to_string(), result, elapsed)
        })
        .collect())
}

/// Prints each plan, each failure and the summary table; the exit code of `plan --all`.
fn report(results: &[Planned], args: &PlanArgs, global: &Global) -> u8 {
    let mut rows = vec![["stack", "result", "add", "change", "destroy", "time"].map(String::from)];
    let (mut failed, mut changed) = (0, 0);
    for (file, result, elapsed) in results {
        let time = progress::duration(*elapsed);
        match result {
            Ok((stack, plan)) => {
                if args.format == PlanFormat::Text && !args.json {
                    crate::outln!("== stack `{}` ({file})\n", stack.spec.stack.name);
                }
                print_plan(plan, args.format, args.json, global);
                let s = plan.summary();
                changed += usize::from(!s.is_empty());
                let result = if s.is_empty() {
                    "no changes"
                } else {
                    "changes"
                };
                let counts = [s.add, s.change, s.destroy].map(|n| n.to_string());
                let [add, change, destroy] = counts;
                let name = stack.spec.stack.name.clone();
                rows.push([name, result.into(), add, change, destroy, time]);
            }
            Err(err) => {
                failed += 1;
                crate::err!("== {file}\n{}", err.report());
                let [add, change, destroy] = ["-", "-", "-"].map(String::from);
                rows.push([file.clone(), "failed".into(), add, change, destroy, time]);
            }
        }
    }
    crate::errln!("\n{}", crate::ui::table(&rows, &[2, 3, 4, 5]));
    if failed > 0 {
        1
    } else if args.detailed_exitcode && changed > 0 {
        2
    } else {
        0
    }
}

/// `no changes`, or `3 to add, 1 to change, 0 to destroy`.
fn to_change(plan: &Plan) -> String {
    let s = plan.summary();
    if s.is_empty() {
        "no changes".into()
    } else {
        format!(
            "{} to add, {} to change, {} to destroy",
            s.add, s.change, s.destroy
        )
    }
}

/// `--refresh[=BOOL]`, shared by plan, apply and destroy.
#[derive(Debug, clap::Args)]
pub struct RefreshArg {
    /// Read the live state of every resource before planning (`--refresh=false` to skip)
    #[arg(long = "refresh", default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1,
          require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub enabled: bool,
}

/// The AWS session of a command: region from the spec, endpoint from the flags, the cap on
/// AWS requests in flight (shared by every stack of the command), progress on stderr.
pub fn session(
    stack: &Stack,
    global: &Global,
    parallelism: u16,
    cap: RequestCap,
    progress: Progress,
) -> Session {
    let settings = Settings {
        region: stack.spec.stack.region.clone(),
        endpoint_url: global.endpoint_url.clone(),
        cap: Some(cap),
    };
    if let (Some(path), true) = (&global.kube.kubeconfig, stack.spec.addons.enabled) {
        // A kubeconfig that does not read is named by the first use of the cluster.
        let target = Cluster::kubeconfig_target(path).unwrap_or_else(|_| "the cluster".into());
        crate::errln!(
            "note: stack `{}`: add-ons and Kubernetes objects go to {target} of `--kubeconfig {}`, not to the stack's EKS cluster",
            stack.spec.stack.name,
            path.display()
        );
    }
    Session::new(
        settings,
        global.kube.clone(),
        reporter(global, progress),
        usize::from(parallelism),
    )
}

/// The reporter of `progress` on stderr.
pub fn reporter(global: &Global, progress: Progress) -> Box<dyn crate::base::Reporter> {
    let terminal = std::io::stderr().is_terminal();
    progress::reporter(Style::for_stderr(global.no_color), terminal, progress)
}

/// The live lines of many stacks, when stderr is a terminal; prefixed lines otherwise.
pub fn live_board(global: &Global, names: &[String]) -> Option<Board> {
    std::io::stderr()
        .is_terminal()
        .then(|| Board::new(Style::for_stderr(global.no_color), names))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PlanFormat {
    Text,
    Json,
    Markdown,
}

/// A plan as `format` asks; `--json` is `--format json`.
fn print_plan(plan: &Plan, format: PlanFormat, json_flag: bool, global: &Global) {
    match (format, json_flag) {
        (_, true) | (PlanFormat::Json, _) => crate::outln!("{}", json::to_json(plan)),
        (PlanFormat::Markdown, _) => crate::out!("{}", crate::plan::markdown::markdown(plan)),
        (PlanFormat::Text, _) => crate::out!(
            "{}",
            render::human(plan, Style::for_stdout(global.no_color))
        ),
    }
}

#[derive(Debug, clap::Args)]
pub struct ShowArgs {
    /// A plan saved by `mlops plan --out`
    #[arg(value_name = "PLANFILE")]
    pub plan: PathBuf,
    /// Print the plan as JSON (docs/plan-json.md) instead of text
    #[arg(long)]
    pub json: bool,
}

/// `mlops show PLANFILE`: a saved plan, rendered as `plan` would have printed it.
pub fn show(args: &ShowArgs, global: &Global) -> Result<u8> {
    let Some(saved) = ops::load_plan(&args.plan)? else {
        return Err(crate::Error::refused(
            format!(
                "`{}` is not a plan saved by `mlops plan --out`",
                args.plan.display()
            ),
            "save one with `mlops plan <STACK> --out FILE`",
        ));
    };
    crate::errln!(
        "plan of `{}` against state serial {}",
        saved.stack_file,
        saved.plan.state_serial
    );
    print_plan(&saved.plan, PlanFormat::Text, args.json, global);
    Ok(0)
}

pub fn targets(list: &[String]) -> Vec<Address> {
    list.iter().map(|t| Address::new(t.as_str())).collect()
}

/// What `plan` asks of each stack.
fn plan_request(args: &PlanArgs) -> PlanRequest {
    PlanRequest {
        refresh: args.refresh.enabled,
        targets: targets(&args.targets),
        destroy: false,
        // A plan to read may go without the manifests; a saved plan must be one to apply.
        manifests_optional: args.out.is_none(),
        replace: targets(&args.changes.replace),
        refresh_only: args.changes.refresh_only,
        allow_version_skip: args.changes.allow_version_skip,
    }
}

/// Opens, locks and plans one stack.
async fn plan_stack(
    file: &str,
    args: &PlanArgs,
    global: &Global,
    cap: RequestCap,
    progress: Progress,
) -> Result<(Stack, Plan)> {
    let stack = global.open(file)?;
    let request = plan_request(args);
    let session = session(&stack, global, args.parallelism, cap, progress);
    let (_lock, plan, _) = ops::plan(&stack, "plan", &request, &session).await?;
    Ok((stack, plan))
}

pub async fn run(args: &PlanArgs, global: &Global) -> Result<u8> {
    if let Some(pattern) = args.which.pattern() {
        return run_many(pattern, args, global).await;
    }
    let file = args.which.stack.as_deref().unwrap_or_default();
    let cap = RequestCap::new(usize::from(args.parallelism));
    let (stack, plan) = plan_stack(file, args, global, cap, Progress::Auto).await?;
    if let Some(out) = &args.out {
        ops::save_plan(&stack, &plan, out)?;
        crate::errln!(
            "saved the plan to `{}`; apply exactly this plan with `mlops apply {}`",
            out.display(),
            out.display()
        );
    }
    print_plan(&plan, args.format, args.json, global);
    Ok(if args.detailed_exitcode && plan.has_changes() {
        2
    } else {
        0
    })
}
