//! Planning: `diff` (pure) turns the desired graph and the state into a `Plan`; `render` and
//! `json` show it to people and to pipelines.

mod action;
mod diff;
pub mod gate;
pub mod json;
pub mod markdown;
mod moves;
mod refresh_only;
pub mod render;

pub use action::{Action, AttrChange, Change, Move, Plan, PlanValue, Summary};
pub use diff::{closest, diff, state_dag, PlanError, PlanOptions};
pub use refresh_only::{drift, written};

#[cfg(test)]
mod safety_tests;
#[cfg(test)]
mod tests;
