//! `mlops` stands up an ML model-serving platform on AWS from one declarative stack file.
//!
//! The data flow, one module per step:
//!
//! - [`spec`]: `stacks/<team>.toml` -> validated [`spec::Spec`] (all errors at once, with spans).
//! - [`workloads`]: the stack's own Kubernetes manifests, read and checked with the spec.
//! - [`graph`]: spec -> desired resources with typed attributes and dependency edges.
//! - [`state`]: what exists: versioned JSON, atomic writes, a lock per command.
//! - [`plan`]: desired graph + state -> ordered actions (pure), rendered for people or as JSON.
//! - [`ops`]: the commands' orchestration (load, lock, plan, confirm, apply).
//! - [`cli`]: clap definitions and one small function per subcommand; [`ui`]: colour and messages.
//!
//! [`model`] holds the shared vocabulary: addresses, resource kinds, attribute values.

pub mod addons;
pub mod base;
pub mod cli;
pub mod error;
pub mod exec;
pub mod graph;
pub mod kube;
pub mod manifest;
pub mod model;
pub mod ops;
pub mod plan;
pub mod providers;
pub mod spec;
pub mod state;
pub mod ui;
pub mod workloads;

pub use error::{Error, Result};
