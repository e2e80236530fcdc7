//! `mlops validate <STACK>`: the spec and its graph, checked without touching the cloud.

use super::StackArg;
use crate::ops::Stack;
use crate::Result;

pub fn run(args: &StackArg) -> Result<u8> {
    let stack = Stack::open(&args.stack)?;
    eprintln!(
        "`{}` is valid: stack `{}` in {}, {} resources",
        stack.spec.path.display(),
        stack.spec.stack.name,
        stack.spec.stack.region,
        stack.graph.resources.len()
    );
    Ok(0)
}
