//! `mlops graph <STACK>`: the desired resource graph as a picture.

use clap::ValueEnum;

use super::StackArg;
use crate::graph::render;
use crate::ops::Stack;
use crate::Result;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum GraphFormat {
    Dot,
    Mermaid,
}

#[derive(Debug, clap::Args)]
pub struct GraphArgs {
    #[command(flatten)]
    pub stack: StackArg,
    /// `dot` for Graphviz, `mermaid` for Markdown and pull-request comments
    #[arg(long, value_enum, default_value = "dot")]
    pub format: GraphFormat,
}

pub fn run(args: &GraphArgs) -> Result<u8> {
    let stack = Stack::open(&args.stack.stack, None)?;
    let text = match args.format {
        GraphFormat::Dot => render::dot(&stack.graph.dag),
        GraphFormat::Mermaid => render::mermaid(&stack.graph.dag),
    };
    crate::out!("{text}");
    Ok(0)
}
