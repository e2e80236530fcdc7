//! `mlops token <STACK>` and `mlops kubeconfig <STACK>`: kubectl access to the stack's cluster
//! without the AWS CLI. Both read the state only: no lock, no AWS call but loading credentials.

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::Value;

use super::{Global, StackArg};
use crate::kube::kubeconfig::Kubeconfig;
use crate::kube::token::{self, ExecCredential};
use crate::ops::Stack;
use crate::state;
use crate::{Error, Result};

#[derive(Debug, clap::Args)]
pub struct TokenArgs {
    #[command(flatten)]
    pub stack: StackArg,
    /// Run as if started in DIR, where the stack's relative paths (its state) are resolved;
    /// `mlops kubeconfig` sets it, as kubectl runs the plugin from any folder
    #[arg(long, value_name = "DIR")]
    pub chdir: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct KubeconfigArgs {
    #[command(flatten)]
    pub stack: StackArg,
    /// Write the kubeconfig to FILE (replaced atomically) instead of stdout
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

pub async fn token(args: &TokenArgs, global: &Global) -> Result<u8> {
    if let Some(dir) = &args.chdir {
        std::env::set_current_dir(dir).map_err(|source| Error::Io {
            action: "enter the folder",
            path: dir.display().to_string(),
            source,
        })?;
    }
    let stack = global.open(&args.stack.stack)?;
    let outputs = applied_outputs(&stack, &args.stack.stack).await?;
    let cluster = required(&outputs, "cluster_name", &stack, &args.stack.stack)?;
    let region = &stack.spec.stack.region;
    let credentials = token::load_credentials(region).await?;
    let signed_at = SystemTime::now();
    let url = token::presigned_url(&credentials, region, &cluster, signed_at)?;
    crate::outln!(
        "{}",
        ExecCredential::new(token::token(&url), signed_at).to_json()
    );
    Ok(0)
}

pub async fn kubeconfig(args: &KubeconfigArgs, global: &Global) -> Result<u8> {
    let arg = &args.stack.stack;
    let stack = global.open(arg)?;
    let outputs = applied_outputs(&stack, arg).await?;
    let server = required(&outputs, "cluster_endpoint", &stack, arg)?;
    let certificate_authority_data =
        required(&outputs, "cluster_certificate_authority", &stack, arg)?;
    if STANDARD.decode(&certificate_authority_data).is_err() {
        return Err(Error::refused(
            format!(
                "the output `cluster_certificate_authority` of stack `{}` is not base64 data",
                stack.spec.stack.name
            ),
            format!("run `mlops apply {arg}` to read it from EKS again"),
        ));
    }
    let io = |action: &'static str, path: &Path| {
        let path = path.display().to_string();
        move |source| Error::Io {
            action,
            path,
            source,
        }
    };
    let command = std::env::current_exe().map_err(io("find the path of", Path::new("mlops")))?;
    let stack_file =
        std::path::absolute(&stack.spec.path).map_err(io("resolve", &stack.spec.path))?;
    let dir = std::env::current_dir().map_err(io("resolve", Path::new(".")))?;
    let config = Kubeconfig {
        name: stack.spec.stack.name.clone(),
        server,
        certificate_authority_data,
        command,
        args: vec![
            "token".into(),
            utf8(&stack_file)?,
            "--chdir".into(),
            utf8(&dir)?,
        ],
    };
    let yaml = config.to_yaml();
    match &args.out {
        None => crate::out!("{yaml}"),
        Some(out) => {
            write_atomically(out, yaml.as_bytes()).map_err(io("write the kubeconfig to", out))?;
            crate::errln!(
                "wrote the kubeconfig of stack `{}` to `{}`; try `KUBECONFIG={} kubectl get nodes`",
                stack.spec.stack.name,
                out.display(),
                out.display()
            );
        }
    }
    Ok(0)
}

/// The stack's outputs; refused for a stack never applied.
async fn applied_outputs(stack: &Stack, arg: &str) -> Result<BTreeMap<String, Value>> {
    match stack.store.load().await? {
        Some(state) => Ok(state::outputs(&state)),
        None => Err(Error::refused(
            format!(
                "stack `{}` was never applied: there is no state at `{}`",
                stack.spec.stack.name,
                stack.store.describe()
            ),
            format!("run `mlops apply {arg}` to create the cluster first"),
        )),
    }
}

/// A string output the cluster commands need; refused when the cluster is not created yet.
fn required(
    outputs: &BTreeMap<String, Value>,
    key: &str,
    stack: &Stack,
    arg: &str,
) -> Result<String> {
    let name = &stack.spec.stack.name;
    match outputs.get(key) {
        Some(Value::String(value)) if !value.is_empty() => Ok(value.clone()),
        Some(_) => Err(Error::refused(
            format!("the output `{key}` of stack `{name}` is not a non-empty string"),
            format!("run `mlops apply {arg}` to read it from EKS again"),
        )),
        None => Err(Error::refused(
            format!("stack `{name}` has no `{key}` output: its EKS cluster is not created yet"),
            format!("run `mlops apply {arg}` to create it"),
        )),
    }
}

/// A path for the kubeconfig, which is UTF-8 text.
fn utf8(path: &Path) -> Result<String> {
    path.to_str().map(str::to_string).ok_or_else(|| {
        Error::refused(
            format!("the path `{}` is not valid UTF-8", path.display()),
            "move the project or mlops to a folder whose name is valid UTF-8",
        )
    })
}

/// Writes `bytes` to a new file next to `path` (readable by its owner only), flushes it to
/// disk, then renames it over `path`: readers see the old file or the new one, never a part.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let Some(name) = path.file_name() else {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a file name",
        ));
    };
    let mut name = name.to_owned();
    name.push(format!(".{}.tmp", std::process::id()));
    let tmp = path.with_file_name(name);
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let written = options.open(&tmp).and_then(|mut file| {
        file.write_all(bytes)?;
        file.sync_all()
    });
    match written.and_then(|()| fs::rename(&tmp, path)) {
        Ok(()) => Ok(()),
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            Err(e)
        }
    }
}
