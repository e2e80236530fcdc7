//! The stack's outputs: the values people and pipelines need after an apply (ids, endpoints,
//! ARNs, names), derived from the state's resources so they can never disagree with them.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use crate::model::{Address, ResourceKind};
use crate::state::State;

pub fn outputs(state: &State) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    let attr = |address: &str, name: &str| state.attr(&Address::new(address), name);
    let mut put = |key: &str, value: Option<Value>| {
        if let Some(value) = value.filter(|v| !v.is_null()) {
            out.insert(key.to_string(), value);
        }
    };
    put("vpc_id", attr("vpc", "id"));
    put("cluster_name", attr("eks_cluster", "name"));
    put("cluster_endpoint", attr("eks_cluster", "endpoint"));
    put(
        "cluster_certificate_authority",
        attr("eks_cluster", "certificate_authority"),
    );
    put("oidc_issuer", attr("eks_cluster", "oidc_issuer"));
    put("oidc_provider_arn", attr("iam_oidc_provider", "arn"));

    // Keyed groups: per zone, per IRSA entry, per bucket, per repository.
    let group = |kind: ResourceKind, prefix: &str, field: &str| -> Option<Value> {
        let map: Map<String, Value> = state
            .resources
            .iter()
            .filter(|(a, r)| r.kind == kind && a.as_str().starts_with(prefix))
            .filter_map(|(a, _)| Some((a.last().to_string(), state.attr(a, field)?)))
            .collect();
        (!map.is_empty()).then(|| json!(map))
    };
    put(
        "public_subnet_ids",
        group(ResourceKind::Subnet, "subnet.public.", "id"),
    );
    put(
        "private_subnet_ids",
        group(ResourceKind::Subnet, "subnet.private.", "id"),
    );
    put(
        "irsa_role_arns",
        group(ResourceKind::IamRole, "iam_role.irsa.", "arn"),
    );
    put(
        "bucket_names",
        group(ResourceKind::S3Bucket, "s3_bucket.", "bucket"),
    );
    put(
        "repository_urls",
        group(
            ResourceKind::EcrRepository,
            "ecr_repository.",
            "repository_url",
        ),
    );
    out
}
