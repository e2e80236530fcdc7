//! `mlops validate`: one stack, or many (`--all`, `--stacks GLOB`) with the collisions between
//! them, checked without touching the cloud; with a local state, also the step from the
//! cluster's recorded Kubernetes version to `[eks] version`.

use super::Selection;
use crate::ops::{self, Stack};
use crate::spec::collisions;
use crate::{Error, Result};

/// With many stacks, the collisions between them are checked too.
#[derive(Debug, clap::Args)]
pub struct ValidateArgs {
    #[command(flatten)]
    pub which: Selection,
}

pub async fn run(args: &ValidateArgs) -> Result<u8> {
    let Some(pattern) = args.which.pattern() else {
        let stack = open(args.which.stack.as_deref().unwrap_or_default()).await?;
        crate::errln!("{}", valid_line(&stack));
        return Ok(0);
    };
    let mut specs = Vec::new();
    let mut invalid = 0;
    for file in ops::stack_files(pattern)? {
        match open(&file.display().to_string()).await {
            Ok(stack) => {
                crate::errln!("{}", valid_line(&stack));
                specs.push(stack.spec);
            }
            Err(err) => {
                invalid += 1;
                crate::err!("{}", err.report());
            }
        }
    }
    let found = collisions(&specs);
    for warning in &found.warnings {
        crate::errln!("warning: {warning}");
    }
    for error in &found.errors {
        crate::errln!("error: {error}");
    }
    if invalid + found.errors.len() > 0 {
        return Err(Error::Refused {
            message: format!(
                "{invalid} invalid stack(s), {} collision(s) between stacks",
                found.errors.len()
            ),
            hint: Some("stacks applied side by side in one account need their own names".into()),
        });
    }
    Ok(0)
}

/// The stack, valid, with an upgrade step its local state allows.
async fn open(arg: &str) -> Result<Stack> {
    let stack = Stack::open(arg, None)?;
    ops::check_local_version_step(&stack).await?;
    Ok(stack)
}

fn valid_line(stack: &Stack) -> String {
    format!(
        "`{}` is valid: stack `{}` in {}, {} resources",
        stack.spec.path.display(),
        stack.spec.stack.name,
        stack.spec.stack.region,
        stack.graph.resources.len()
    )
}
