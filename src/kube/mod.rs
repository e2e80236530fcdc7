//! Access to the stack's EKS cluster without the AWS CLI: the bearer token `aws eks get-token`
//! would print ([`token`]), and a kubeconfig whose user runs `mlops token` ([`kubeconfig`]).
//! `docs/cluster-access.md` documents both for users.

pub mod kubeconfig;
pub mod token;
