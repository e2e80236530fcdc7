//! Planning: `diff` (pure) turns the desired graph and the state into a `Plan`; `render` and
//! `json` show it to people and to pipelines.

mod action;
mod diff;
pub mod json;
pub mod markdown;
pub mod render;

pub use action::{Action, AttrChange, Change, Plan, PlanValue, Summary};
pub use diff::{closest, diff, state_dag, PlanError, PlanOptions};

#[cfg(test)]
mod tests;
