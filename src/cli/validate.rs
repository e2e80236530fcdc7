//! `mlops validate`: one stack, or many (`--all`, `--stacks GLOB`) with the collisions between
//! them, checked without touching the cloud.

use crate::ops::{self, Stack};
use crate::spec::collisions;
use crate::{Error, Result};

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("which").required(true).args(["stack", "all", "stacks"])))]
pub struct ValidateArgs {
    /// A stack file, or a bare name meaning `stacks/<name>.toml`
    #[arg(value_name = "STACK")]
    pub stack: Option<String>,
    /// Every stack in `stacks/*.toml`, and the collisions between them
    #[arg(long)]
    pub all: bool,
    /// The stacks whose files match GLOB (e.g. `stacks/team-*.toml`), and their collisions
    #[arg(long, value_name = "GLOB")]
    pub stacks: Option<String>,
}

pub fn run(args: &ValidateArgs) -> Result<u8> {
    let pattern = match (&args.stack, &args.stacks) {
        (Some(stack), _) => {
            let stack = Stack::open(stack)?;
            eprintln!("{}", valid_line(&stack));
            return Ok(0);
        }
        (None, Some(pattern)) => pattern.as_str(),
        (None, None) => ops::ALL_STACKS,
    };
    let mut specs = Vec::new();
    let mut invalid = 0;
    for file in ops::stack_files(pattern)? {
        match Stack::open(&file.display().to_string()) {
            Ok(stack) => {
                eprintln!("{}", valid_line(&stack));
                specs.push(stack.spec);
            }
            Err(err) => {
                invalid += 1;
                eprint!("{}", err.report());
            }
        }
    }
    let found = collisions(&specs);
    for warning in &found.warnings {
        eprintln!("warning: {warning}");
    }
    for error in &found.errors {
        eprintln!("error: {error}");
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

fn valid_line(stack: &Stack) -> String {
    format!(
        "`{}` is valid: stack `{}` in {}, {} resources",
        stack.spec.path.display(),
        stack.spec.stack.name,
        stack.spec.stack.region,
        stack.graph.resources.len()
    )
}
