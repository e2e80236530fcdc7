//! `mlops apply` and `mlops destroy`: plan, show, confirm (or `--auto-approve`), execute.

use std::io::{BufRead, IsTerminal, Write};

use super::StackArg;
use crate::model::Address;
use crate::ops::{self, PlanRequest, Stack};
use crate::plan::{render, Plan};
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
}

#[derive(Debug, clap::Args)]
pub struct DestroyArgs {
    #[command(flatten)]
    pub stack: StackArg,
    /// Skip the confirmation prompt (required when no terminal is attached)
    #[arg(long)]
    pub auto_approve: bool,
}

pub fn run_apply(args: &ApplyArgs, no_color: bool) -> Result<u8> {
    let stack = Stack::open(&args.stack)?;
    let _lock = stack.lock("apply")?;
    let request = PlanRequest {
        refresh: true,
        targets: args
            .targets
            .iter()
            .map(|t| Address::new(t.as_str()))
            .collect(),
        destroy: false,
    };
    let plan = ops::plan(&stack, &request)?;
    confirm_and_run(&plan, "apply", args.auto_approve, no_color)
}

pub fn run_destroy(args: &DestroyArgs, no_color: bool) -> Result<u8> {
    let stack = Stack::open(&args.stack.stack)?;
    let _lock = stack.lock("destroy")?;
    let request = PlanRequest {
        refresh: true,
        targets: Vec::new(),
        destroy: true,
    };
    let plan = ops::plan(&stack, &request)?;
    confirm_and_run(&plan, "destroy", args.auto_approve, no_color)
}

fn confirm_and_run(plan: &Plan, command: &str, auto_approve: bool, no_color: bool) -> Result<u8> {
    print!("{}", render::human(plan, Style::for_stdout(no_color)));
    if !plan.has_changes() {
        return Ok(0);
    }
    if !auto_approve {
        confirm(command)?;
    }
    Err(Error::refused(
        format!("`{command}` cannot run yet: mlops has no AWS layer in this build"),
        "use `mlops plan` to review changes",
    ))
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
