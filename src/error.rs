//! The one error type at the edge of the program: each layer's typed error, plus usage errors,
//! each able to give a hint. `main` prints it and maps it to exit code 1.

use crate::addons::AddonError;
use crate::exec::ExecError;
use crate::graph::GraphError;
use crate::kube::KubeError;
use crate::plan::PlanError;
use crate::spec::SpecError;
use crate::state::StateError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Spec(#[from] SpecError),
    #[error(transparent)]
    Graph(#[from] GraphError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// A command that cannot run as asked; nothing was changed.
    #[error("{message}")]
    Refused {
        message: String,
        hint: Option<String>,
    },
    #[error(transparent)]
    Addon(AddonError),
    #[error(transparent)]
    Kube(#[from] KubeError),
    /// A refresh could not read a resource.
    #[error("refresh: {0}")]
    Refresh(#[from] ExecError),
    /// Operations of an apply or destroy failed; the state holds everything that finished.
    #[error("{} operation(s) failed", errors.len())]
    Apply {
        errors: Vec<ExecError>,
        done: usize,
        skipped: usize,
    },
    /// Ctrl-C: what was in flight finished and the state was saved.
    #[error("interrupted after {done} operation(s); {skipped} not started")]
    Interrupted { done: usize, skipped: usize },
    #[error("cannot {action} `{path}`: {source}")]
    Io {
        action: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    pub fn refused(message: impl Into<String>, hint: impl Into<String>) -> Self {
        Error::Refused {
            message: message.into(),
            hint: Some(hint.into()),
        }
    }

    pub fn hint(&self) -> Option<String> {
        match self {
            Error::Spec(e) => e.hint(),
            Error::State(e) => e.hint(),
            Error::Plan(e) => e.hint(),
            Error::Refused { hint, .. } => hint.clone(),
            Error::Refresh(e) => e.error.hint().map(str::to_string),
            Error::Addon(e) => e.hint(),
            Error::Kube(e) => e.hint(),
            Error::Interrupted { .. } => Some(
                "the state holds everything that finished; run the same command again to continue"
                    .into(),
            ),
            Error::Apply { .. } | Error::Graph(_) | Error::Io { .. } => None,
        }
    }

    /// 130 after Ctrl-C, 1 for everything else.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Interrupted { .. } => 130,
            _ => 1,
        }
    }

    /// The full text for stderr: `error: ...`, any detail, and `hint: ...`.
    pub fn report(&self) -> String {
        if let Error::Spec(spec) = self {
            if let Some(report) = spec.report() {
                return report;
            }
        }
        if let Error::Apply {
            errors,
            done,
            skipped,
        } = self
        {
            let mut out = String::new();
            for e in errors {
                out.push_str(&format!("error: {e}\n"));
                if let Some(hint) = e.error.hint() {
                    out.push_str(&format!("  hint: {hint}\n"));
                }
            }
            out.push_str(&format!(
                "the state is saved: {done} operation(s) finished, {skipped} not started; fix the error and run the command again to continue\n"
            ));
            return out;
        }
        let mut out = format!("error: {self}\n");
        if let Some(hint) = self.hint() {
            out.push_str(&format!("hint: {hint}\n"));
        }
        out
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
