//! The resources of what security teams ask for, beside the ones `build` makes: the KMS key that
//! envelope-encrypts the cluster's Secrets (with the cluster role's permission to use it), and
//! the inline policy of an IRSA role that names the stack's own buckets and repositories instead
//! of granting a whole account through a managed policy.

use serde_json::{json, Value};

use super::build::Builder;
use crate::model::{reference, Address, ResourceKind};
use crate::spec::{IrsaSpec, SecretsKey};

/// The name of the inline policy an IRSA role gets for its `s3_read`, `s3_write` and `ecr_pull`.
pub const SCOPED_POLICY: &str = "mlops-scoped";

/// The name of the inline policy that lets the cluster role use the Secrets key.
pub const SECRETS_POLICY: &str = "mlops-secrets-encryption";

/// What S3 grants: listing a bucket, reading its objects, writing them.
const S3_LIST: [&str; 2] = ["s3:ListBucket", "s3:GetBucketLocation"];
const S3_READ: [&str; 2] = ["s3:GetObject", "s3:GetObjectVersion"];
const S3_WRITE: [&str; 3] = ["s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"];
/// Pulling an image of a repository; the token call cannot be scoped to a repository.
const ECR_PULL: [&str; 3] = [
    "ecr:BatchGetImage",
    "ecr:GetDownloadUrlForLayer",
    "ecr:BatchCheckLayerAvailability",
];
const ECR_TOKEN: &str = "ecr:GetAuthorizationToken";

/// What the cluster role needs of the Secrets key, as EKS documents it.
const KMS_FOR_EKS: [&str; 4] = [
    "kms:Encrypt",
    "kms:Decrypt",
    "kms:ListGrants",
    "kms:DescribeKey",
];

/// The KMS key of the cluster's Secrets, as the cluster's `encryption_key_arn` attribute:
/// `null` without encryption, the ARN given, or a reference to the key the stack makes
/// (`kms_key.secrets`). The cluster role's permission to use the key joins `attachments`, which
/// the cluster waits for.
pub(super) fn secrets_key(
    b: &mut Builder,
    cluster_role: &Address,
    attachments: &mut Vec<Address>,
) -> Value {
    let key = match &b.spec.eks.secrets_key {
        None => return Value::Null,
        Some(SecretsKey::Arn(arn)) => json!(arn),
        Some(SecretsKey::Stack) => {
            let alias = format!("alias/{}-eks-secrets", b.spec.stack.name);
            let key = b.add(
                ResourceKind::KmsKey,
                &["secrets"],
                json!({
                    "alias": alias,
                    "description": format!("Envelope encryption of the Secrets of EKS cluster {}", b.spec.eks.name),
                    "enable_key_rotation": true,
                    "tags": {},
                }),
                &[],
            );
            reference(&key, "arn")
        }
    };
    let document = policy_document(vec![statement(&KMS_FOR_EKS, json!([key.clone()]))]);
    let role_name = super::cluster_role_name(&b.spec.stack.name);
    attachments.push(inline_policy(
        b,
        &["cluster", "secrets-encryption"],
        (&role_name, cluster_role),
        SECRETS_POLICY,
        document,
    ));
    key
}

/// The inline policy of `[irsa.<key>]` naming the stack's buckets and repositories it may use,
/// when it lists any.
pub(super) fn irsa_scoped_policy(
    b: &mut Builder,
    key: &str,
    irsa: &IrsaSpec,
    role_name: &str,
    role: &Address,
) {
    if !irsa.has_scoped_policy() {
        return;
    }
    let bucket_name = |k: &String| b.spec.buckets[k].name.clone();
    let readable: Vec<String> = irsa
        .s3_read
        .iter()
        .chain(&irsa.s3_write)
        .map(bucket_name)
        .collect();
    let writable: Vec<String> = irsa.s3_write.iter().map(bucket_name).collect();
    let partition = b.partition;
    let arns = |buckets: &[String], objects: bool| -> Value {
        buckets
            .iter()
            .map(|bucket| json!(partition.bucket_arn(bucket, objects)))
            .collect()
    };
    let mut statements = Vec::new();
    if !readable.is_empty() {
        statements.push(statement(&S3_LIST, arns(&readable, false)));
        statements.push(statement(&S3_READ, arns(&readable, true)));
    }
    if !writable.is_empty() {
        statements.push(statement(&S3_WRITE, arns(&writable, true)));
    }
    if !irsa.ecr_pull.is_empty() {
        let repositories: Vec<Value> = irsa
            .ecr_pull
            .iter()
            .map(|name| {
                let repository = Address::of(ResourceKind::EcrRepository.name(), &[name]);
                reference(&repository, "arn")
            })
            .collect();
        statements.push(statement(&ECR_PULL, Value::Array(repositories)));
        statements.push(statement(&[ECR_TOKEN], json!(["*"])));
    }
    inline_policy(
        b,
        &["irsa", key, "scoped"],
        (role_name, role),
        SCOPED_POLICY,
        policy_document(statements),
    );
}

fn statement(actions: &[&str], resources: Value) -> Value {
    json!({ "Effect": "Allow", "Action": actions, "Resource": resources })
}

fn policy_document(statements: Vec<Value>) -> Value {
    json!({ "Version": "2012-10-17", "Statement": statements })
}

/// An inline policy (`iam_role_policy.<parts>`) of a role, given by its name and address.
fn inline_policy(
    b: &mut Builder,
    parts: &[&str],
    (role_name, role): (&str, &Address),
    name: &str,
    document: Value,
) -> Address {
    b.add(
        ResourceKind::IamRolePolicy,
        parts,
        json!({ "role_name": role_name, "policy_name": name, "policy": document }),
        &[role],
    )
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use serde_json::{json, Value};

    use super::{ECR_TOKEN, SCOPED_POLICY};
    use crate::graph::desired_resources;
    use crate::model::{Resource, ResourceKind};

    const EXAMPLE: &str = include_str!("../../stacks/example.toml");

    fn resources(text: &str) -> Vec<Resource> {
        let spec = crate::spec::parse(Path::new("stacks/example.toml"), text.into()).unwrap();
        desired_resources(&spec)
    }

    fn find<'a>(resources: &'a [Resource], address: &str) -> &'a Resource {
        resources
            .iter()
            .find(|r| r.address.as_str() == address)
            .unwrap_or_else(|| panic!("no `{address}`"))
    }

    #[test]
    fn the_example_irsa_policy_names_only_its_bucket() {
        let all = resources(EXAMPLE);
        let policy = find(&all, "iam_role_policy.irsa.kserve-s3.scoped");
        assert_eq!(policy.attrs["role_name"], "mlops-irsa-kserve-s3");
        assert_eq!(policy.attrs["policy_name"], SCOPED_POLICY);
        let statements = policy.attrs["policy"]["Statement"].as_array().unwrap();
        let resources: Vec<&Value> = statements
            .iter()
            .flat_map(|s| s["Resource"].as_array().unwrap())
            .collect();
        assert_eq!(
            resources,
            [
                &json!("arn:aws:s3:::mlops-models-bucket"),
                &json!("arn:aws:s3:::mlops-models-bucket/*")
            ]
        );
        assert!(statements
            .iter()
            .flat_map(|s| s["Action"].as_array().unwrap())
            .all(|a| a.as_str().unwrap().starts_with("s3:Get")
                || a.as_str().unwrap().starts_with("s3:List")));
        assert!(
            !all.iter()
                .any(|r| r.kind == ResourceKind::IamRolePolicyAttachment
                    && r.address
                        .as_str()
                        .starts_with("iam_role_policy_attachment.irsa.")),
            "no managed policy on the example's IRSA role"
        );
        assert!(policy
            .deps
            .iter()
            .any(|d| d.as_str() == "iam_role.irsa.kserve-s3"));
    }

    #[test]
    fn write_and_pull_grants_name_the_repository_by_reference() {
        let text = EXAMPLE.replace(
            "s3_read = [\"models\"]",
            "s3_write = [\"models\"]\necr_pull = [\"wine-model\"]",
        );
        let all = resources(&text);
        let policy = find(&all, "iam_role_policy.irsa.kserve-s3.scoped");
        let statements = policy.attrs["policy"]["Statement"].as_array().unwrap();
        let of = |action: &str| {
            statements
                .iter()
                .find(|s| s["Action"].as_array().unwrap().contains(&json!(action)))
                .map(|s| s["Resource"].clone())
                .unwrap_or_else(|| panic!("no statement with `{action}`"))
        };
        assert_eq!(
            of("s3:PutObject"),
            json!(["arn:aws:s3:::mlops-models-bucket/*"])
        );
        assert_eq!(
            of("s3:GetObject"),
            json!(["arn:aws:s3:::mlops-models-bucket/*"])
        );
        assert_eq!(
            of("ecr:BatchGetImage"),
            json!([{ "$ref": "ecr_repository.wine-model", "attr": "arn" }])
        );
        assert_eq!(of(ECR_TOKEN), json!(["*"]));
        assert!(policy
            .deps
            .iter()
            .any(|d| d.as_str() == "ecr_repository.wine-model"));
    }

    #[test]
    fn the_stacks_secrets_key_is_made_and_the_cluster_role_may_use_it() {
        let all = resources(EXAMPLE);
        let key = find(&all, "kms_key.secrets");
        assert_eq!(key.attrs["alias"], "alias/mlops-eks-secrets");
        assert_eq!(key.attrs["enable_key_rotation"], true);
        let key_ref = json!({ "$ref": "kms_key.secrets", "attr": "arn" });
        let cluster = find(&all, "eks_cluster");
        assert_eq!(cluster.attrs["encryption_key_arn"], key_ref);
        assert_eq!(
            cluster.attrs["enabled_log_types"],
            json!(["api", "audit", "authenticator"])
        );
        let policy = find(&all, "iam_role_policy.cluster.secrets-encryption");
        assert_eq!(policy.attrs["role_name"], "mlops-eks-cluster");
        assert_eq!(
            policy.attrs["policy"]["Statement"][0]["Resource"],
            json!([key_ref])
        );
        assert!(
            cluster.deps.contains(&policy.address),
            "the cluster waits for its role's permission to use the key"
        );
    }

    #[test]
    fn a_given_key_makes_no_key_of_the_stack() {
        let arn = "arn:aws:kms:us-west-2:123456789012:key/k";
        let all = resources(&EXAMPLE.replace(
            "encrypt_secrets = true",
            &format!("kms_key_arn = \"{arn}\""),
        ));
        assert!(!all.iter().any(|r| r.kind == ResourceKind::KmsKey));
        assert_eq!(find(&all, "eks_cluster").attrs["encryption_key_arn"], arn);
        let none = resources(&EXAMPLE.replace("encrypt_secrets = true", ""));
        assert!(!none.iter().any(|r| r.kind == ResourceKind::KmsKey
            || r.kind == ResourceKind::IamRolePolicy
                && r.address.as_str().starts_with("iam_role_policy.cluster")));
        assert_eq!(
            find(&none, "eks_cluster").attrs["encryption_key_arn"],
            Value::Null
        );
    }

    #[test]
    fn every_role_carries_the_boundary() {
        let boundary = "arn:aws:iam::123456789012:policy/platform-boundary";
        let text = EXAMPLE.replace(
            "tags = { env = \"dev\" }",
            &format!("tags = {{ env = \"dev\" }}\npermissions_boundary = \"{boundary}\""),
        );
        let all = resources(&text);
        let roles: Vec<&Resource> = all
            .iter()
            .filter(|r| r.kind == ResourceKind::IamRole)
            .collect();
        assert_eq!(
            roles.len(),
            4,
            "cluster, node, IRSA and the EBS CSI driver's"
        );
        for role in roles {
            assert_eq!(
                role.attrs["permissions_boundary"], boundary,
                "{}",
                role.address
            );
        }
    }

    #[test]
    fn arns_and_principals_follow_the_regions_partition() {
        let text = EXAMPLE
            .replace("us-west-2", "cn-north-1")
            .replace("encrypt_secrets = true", "");
        let all = resources(&text);
        assert_eq!(
            find(&all, "iam_role.node").attrs["trust_service"],
            "ec2.amazonaws.com.cn"
        );
        assert_eq!(
            find(&all, "iam_role.cluster").attrs["trust_service"],
            "eks.amazonaws.com.cn"
        );
        assert_eq!(
            find(
                &all,
                "iam_role_policy_attachment.cluster.AmazonEKSClusterPolicy"
            )
            .attrs["policy_arn"],
            "arn:aws-cn:iam::aws:policy/AmazonEKSClusterPolicy"
        );
        let policy = find(&all, "iam_role_policy.irsa.kserve-s3.scoped");
        assert_eq!(
            policy.attrs["policy"]["Statement"][0]["Resource"],
            json!(["arn:aws-cn:s3:::mlops-models-bucket"])
        );
        let text = resources(&EXAMPLE.replace("us-west-2", "us-gov-west-1"));
        assert!(text
            .iter()
            .flat_map(|r| serde_json::to_string(&r.attrs))
            .all(|attrs| !attrs.contains("arn:aws:")));
    }
}
