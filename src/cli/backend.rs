//! `mlops backend create <STACK>`: the S3 bucket a remote state needs, made once per bucket
//! (idempotent) before the first `plan` of a stack that keeps its state there.

use super::{Global, StackArg};
use crate::ops::{create_backend, BackendCreated};
use crate::ui::progress::Progress;
use crate::Result;

#[derive(Debug, clap::Subcommand)]
pub enum BackendCommand {
    /// Make the state bucket of `[state] backend = "s3"`: versioned, encrypted, all public
    /// access blocked, tagged; an existing bucket gets what it lacks
    Create(StackArg),
}

pub async fn run(command: &BackendCommand, global: &Global) -> Result<u8> {
    let BackendCommand::Create(arg) = command;
    let stack = global.open(&arg.stack)?;
    let reporter = super::plan::reporter(global, Progress::Auto);
    let (s3, created) =
        create_backend(&stack, global.endpoint_url.as_deref(), reporter.as_ref()).await?;
    let settings = format!(
        "versioning on, default encryption {}, all public access blocked",
        s3.encryption
    );
    match created {
        BackendCreated::Created => crate::errln!(
            "created the state bucket `{}` in {}: {settings}",
            s3.bucket,
            s3.region
        ),
        BackendCreated::Fixed(changed) => crate::errln!(
            "the state bucket `{}` exists; set {}: {settings}",
            s3.bucket,
            changed.join(", ")
        ),
        BackendCreated::Unchanged => crate::errln!(
            "the state bucket `{}` exists with {settings}; nothing to change",
            s3.bucket
        ),
    }
    crate::errln!(
        "the state of stack `{}` goes to `{}`",
        stack.spec.stack.name,
        stack.store.describe()
    );
    Ok(0)
}
