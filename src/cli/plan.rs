//! `mlops plan <STACK>`: what `apply` would change, for people or (`--json`) for pipelines.

use std::path::PathBuf;

use super::StackArg;
use crate::model::Address;
use crate::ops::{self, PlanRequest, Stack};
use crate::plan::{json, render};
use crate::ui::Style;
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
    /// Read the live state of every resource before planning (`--refresh=false` to skip)
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1,
          require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub refresh: bool,
    /// Plan only this resource and what it needs (repeatable)
    #[arg(long = "target", value_name = "ADDR")]
    pub targets: Vec<String>,
}

pub fn run(args: &PlanArgs, no_color: bool) -> Result<u8> {
    let stack = Stack::open(&args.stack.stack)?;
    let _lock = stack.lock("plan")?;
    let request = PlanRequest {
        refresh: args.refresh,
        targets: args
            .targets
            .iter()
            .map(|t| Address::new(t.as_str()))
            .collect(),
        destroy: false,
    };
    let plan = ops::plan(&stack, &request)?;
    if let Some(out) = &args.out {
        ops::save_plan(&stack, &plan, out)?;
        eprintln!(
            "saved the plan to `{}`; apply it with `mlops apply {}`",
            out.display(),
            out.display()
        );
    }
    if args.json {
        println!("{}", json::to_json(&plan));
    } else {
        print!("{}", render::human(&plan, Style::for_stdout(no_color)));
    }
    Ok(if args.detailed_exitcode && plan.has_changes() {
        2
    } else {
        0
    })
}
