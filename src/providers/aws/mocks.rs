//! For tests of the calls the emulator cannot answer (moto has no EKS access policies, no
//! `AssociateEncryptionConfig`): EKS clients whose responses come from `aws-smithy-mocks` rules,
//! matched in order, and a provider context around them.

use aws_sdk_eks::operation::describe_update::DescribeUpdateOutput;
use aws_sdk_eks::types::{Update, UpdateStatus};
use aws_smithy_mocks::{mock_client, Rule, RuleMode};

use crate::base::{Op, Reporter};
use crate::model::Address;
use crate::providers::aws::Clients;
use crate::providers::Ctx;

/// A reporter that drops every event.
pub struct Silent;

impl Reporter for Silent {
    fn started(&self, _: &Address, _: Op) {}
    fn waiting(&self, _: &Address, _: &str) {}
    fn retrying(&self, _: &Address, _: &str, _: std::time::Duration) {}
    fn adopted(&self, _: &Address, _: &str) {}
    fn finished(&self, _: &Address, _: Op, _: std::time::Duration) {}
    fn failed(&self, _: &Address, _: Op, _: &str) {}
    fn interrupted(&self, _: usize) {}
    fn warning(&self, _: &str) {}
}

/// Clients whose EKS client answers with `rules`, each in turn; any other call fails.
pub fn eks_clients(rules: &[&Rule]) -> Clients {
    let config = aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-west-2"))
        .build();
    let mut clients = Clients::from_config(&config, "us-west-2", false);
    clients.eks = mock_client!(aws_sdk_eks, RuleMode::Sequential, rules.iter().copied());
    clients
}

/// Runs `f` with a context of stack `mlops` for the resource at `address`.
pub async fn with_ctx<T>(
    clients: &Clients,
    address: &str,
    f: impl AsyncFnOnce(&Ctx<'_>) -> T,
) -> T {
    let address = Address::new(address);
    let kube = crate::providers::kube::KubeEnv::unused();
    let ctx = Ctx {
        aws: clients,
        kube: &kube,
        stack: "mlops",
        address: &address,
        reporter: &Silent,
    };
    f(&ctx).await
}

/// `DescribeUpdate`'s answer for an update `id` that has succeeded.
pub fn update_succeeded(id: &str) -> DescribeUpdateOutput {
    DescribeUpdateOutput::builder()
        .update(
            Update::builder()
                .id(id)
                .status(UpdateStatus::Successful)
                .build(),
        )
        .build()
}
