//! The one error type at the edge of the program: each layer's typed error, plus usage errors,
//! each able to give a hint. `main` prints it and maps it to exit code 1.

use crate::graph::GraphError;
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
            Error::Graph(_) | Error::Io { .. } => None,
        }
    }

    /// The full text for stderr: `error: ...`, any detail, and `hint: ...`.
    pub fn report(&self) -> String {
        if let Error::Spec(spec) = self {
            if let Some(report) = spec.report() {
                return report;
            }
        }
        let mut out = format!("error: {self}\n");
        if let Some(hint) = self.hint() {
            out.push_str(&format!("hint: {hint}\n"));
        }
        out
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
