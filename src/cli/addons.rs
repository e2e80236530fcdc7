//! `mlops addons list` and `mlops addons fetch`: the catalogue, and offline bundles of it.

use std::path::PathBuf;

use crate::addons::{Addon, ManifestSource, Release, CATALOGUE};
use crate::ops::Stack;
use crate::{Error, Result};

#[derive(Debug, clap::Subcommand)]
pub enum AddonsCommand {
    /// List the add-on versions mlops can install, with their files
    List,
    /// Build an offline bundle: verified manifests in the layout `--manifests-dir` reads
    Fetch {
        /// The folder to write the bundle to
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Only the versions this stack uses (default: the whole catalogue)
        #[arg(long, value_name = "STACK")]
        stack: Option<String>,
    },
}

pub fn run(command: &AddonsCommand, manifests_dir: Option<PathBuf>) -> Result<u8> {
    match command {
        AddonsCommand::List => {
            crate::outln!("{:<20} {:<9} files", "add-on", "version");
            for release in CATALOGUE {
                let mut files: Vec<&str> = release.files.iter().map(|f| f.name).collect();
                if release.template.is_some() {
                    files.push("(a template compiled in)");
                }
                crate::outln!(
                    "{:<20} {:<9} {}",
                    release.addon.name(),
                    release.version,
                    files.join(", ")
                );
            }
            Ok(0)
        }
        AddonsCommand::Fetch { out, stack } => {
            let releases: Vec<&Release> = match stack {
                Some(stack) => {
                    let stack = Stack::open(stack, None)?;
                    Addon::ALL
                        .iter()
                        .filter_map(|a| stack.spec.addons.releases.get(a).copied())
                        .collect()
                }
                None => CATALOGUE.iter().collect(),
            };
            let source = ManifestSource::new(manifests_dir);
            let count = source.fetch_into(&releases, out).map_err(Error::Addon)?;
            crate::errln!(
                "wrote {count} verified manifest file(s) of {} release(s) to `{}`; use it with `--manifests-dir {}`",
                releases.len(),
                out.display(),
                out.display()
            );
            Ok(0)
        }
    }
}
