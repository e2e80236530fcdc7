//! `mlops plan <STACK>`: what `apply` would change, for people or (`--json`) for pipelines.

use std::io::IsTerminal;
use std::path::PathBuf;

use super::{Global, StackArg};
use crate::model::Address;
use crate::ops::{self, PlanRequest, Session, Stack};
use crate::plan::{json, render};
use crate::providers::aws::Settings;
use crate::ui::{progress, Style};
use crate::Result;

#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub stack: StackArg,
    /// Print the plan as JSON (docs/plan-json.md) instead of text
    #[arg(long)]
    pub json: bool,
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
    /// How many resources may be read at once during the refresh
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub parallelism: u16,
}

/// `--refresh[=BOOL]`, shared by plan, apply and destroy.
#[derive(Debug, clap::Args)]
pub struct RefreshArg {
    /// Read the live state of every resource before planning (`--refresh=false` to skip)
    #[arg(long = "refresh", default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1,
          require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub enabled: bool,
}

/// The AWS session of a command: region from the spec, endpoint from the flags, progress on
/// stderr.
pub fn session(stack: &Stack, global: &Global, parallelism: u16) -> Session {
    let settings = Settings {
        region: stack.spec.stack.region.clone(),
        endpoint_url: global.endpoint_url.clone(),
    };
    let terminal = std::io::stderr().is_terminal();
    let reporter = progress::reporter(Style::for_stderr(global.no_color), terminal);
    Session::new(settings, reporter, usize::from(parallelism))
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
    eprintln!(
        "plan of `{}` against state serial {}",
        saved.stack_file, saved.plan.state_serial
    );
    if args.json {
        println!("{}", json::to_json(&saved.plan));
    } else {
        print!(
            "{}",
            render::human(&saved.plan, Style::for_stdout(global.no_color))
        );
    }
    Ok(0)
}

pub fn targets(list: &[String]) -> Vec<Address> {
    list.iter().map(|t| Address::new(t.as_str())).collect()
}

pub async fn run(args: &PlanArgs, global: &Global) -> Result<u8> {
    let stack = Stack::open(&args.stack.stack)?;
    let _lock = stack.lock("plan")?;
    let request = PlanRequest {
        refresh: args.refresh.enabled,
        targets: targets(&args.targets),
        destroy: false,
    };
    let session = session(&stack, global, args.parallelism);
    let (plan, _) = ops::plan(&stack, &request, &session).await?;
    if let Some(out) = &args.out {
        ops::save_plan(&stack, &plan, out)?;
        eprintln!(
            "saved the plan to `{}`; apply exactly this plan with `mlops apply {}`",
            out.display(),
            out.display()
        );
    }
    if args.json {
        println!("{}", json::to_json(&plan));
    } else {
        print!(
            "{}",
            render::human(&plan, Style::for_stdout(global.no_color))
        );
    }
    Ok(if args.detailed_exitcode && plan.has_changes() {
        2
    } else {
        0
    })
}
