//! Everything `mlops` does inside the stack's Kubernetes cluster, without kubectl, helm or the
//! AWS CLI: the bearer token `aws eks get-token` would print ([`token`]), minted again for every
//! request of a long run ([`auth`]), and a kubeconfig whose user runs `mlops token`
//! ([`kubeconfig`]); a connection with discovery and server-side apply ([`cluster`]); objects and their references (`crate::manifest`); the staged install and uninstall
//! of a set of objects ([`install`]). `docs/cluster-access.md` and `docs/addons.md` document
//! them for users.

pub mod auth;
pub mod cluster;
mod error;
pub mod install;
pub mod kubeconfig;
pub mod token;

pub use cluster::Cluster;
pub use error::KubeError;
