//! What security teams ask for, end to end against the AWS emulator (moto on 127.0.0.1): the
//! permissions boundary on every role the stack makes, the IRSA role's inline policy naming only
//! the stack's bucket, control-plane log types and the KMS key of the cluster's Secrets. Every
//! check goes through the AWS SDK, never through mlops' own state.

mod support;

use support::{example_as, Aws, Emulator, Project};

const BOUNDARY: &str = "arn:aws:iam::123456789012:policy/platform-boundary";

/// The stack's roles (tagged `mlops:stack = <stack>`), by name.
fn roles_of(aws: &Aws, stack: &str) -> Vec<String> {
    aws.run(async {
        let mut names = Vec::new();
        for role in aws.iam.list_roles().send().await.unwrap().roles() {
            let tags = aws
                .iam
                .list_role_tags()
                .role_name(role.role_name())
                .send()
                .await
                .unwrap();
            if tags
                .tags()
                .iter()
                .any(|t| t.key() == "mlops:stack" && t.value() == stack)
            {
                names.push(role.role_name().to_string());
            }
        }
        names.sort();
        names
    })
}

/// `%XX` escapes decoded, as IAM returns policy documents.
fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match (bytes[i], text.get(i + 1..i + 3)) {
            (b'%', Some(hex)) if u8::from_str_radix(hex, 16).is_ok() => {
                out.push(u8::from_str_radix(hex, 16).unwrap());
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap()
}

/// Models IAM's `PermissionsBoundary` on `CreateRole` (which an organisation's SCP can demand
/// of every role) and an inline role policy (`PutRolePolicy`): every role of the stack carries
/// the boundary from its creation, and the IRSA role's only policy names the stack's bucket
/// and its objects, nothing account-wide. Also EKS's `logging` and `encryptionConfig` of
/// `CreateCluster` and a KMS key with an alias and rotation. A second plan finds nothing to do;
/// a destroy removes the roles and schedules the key's deletion.
#[test]
fn every_role_has_the_boundary_and_the_irsa_policy_names_only_the_bucket() {
    let moto = Emulator::start();
    let aws = moto.clients();
    let stack = "sec";
    let text = example_as(stack).replace(
        "tags = { env = \"dev\" }",
        &format!("tags = {{ env = \"dev\" }}\npermissions_boundary = \"{BOUNDARY}\""),
    );
    let project = Project::new(&moto, stack, &text);
    project.apply().ok();

    let roles = roles_of(&aws, stack);
    assert_eq!(
        roles,
        ["sec-eks-cluster", "sec-eks-node", "sec-irsa-kserve-s3"]
    );
    let kms = aws_sdk_kms::Client::new(&aws.config);
    aws.run(async {
        for name in &roles {
            let role = aws.iam.get_role().role_name(name).send().await.unwrap();
            let boundary = role
                .role()
                .unwrap()
                .permissions_boundary()
                .and_then(|b| b.permissions_boundary_arn());
            assert_eq!(boundary, Some(BOUNDARY), "{name}");
        }

        let irsa = "sec-irsa-kserve-s3";
        let attached = aws
            .iam
            .list_attached_role_policies()
            .role_name(irsa)
            .send()
            .await
            .unwrap();
        assert!(attached.attached_policies().is_empty(), "no managed policy");
        let inline = aws
            .iam
            .list_role_policies()
            .role_name(irsa)
            .send()
            .await
            .unwrap();
        assert_eq!(inline.policy_names(), ["mlops-scoped"]);
        let policy = aws
            .iam
            .get_role_policy()
            .role_name(irsa)
            .policy_name("mlops-scoped")
            .send()
            .await
            .unwrap();
        let document: serde_json::Value =
            serde_json::from_str(&decode(policy.policy_document())).unwrap();
        let mut resources: Vec<&str> = document["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|s| s["Resource"].as_array().unwrap())
            .map(|r| r.as_str().unwrap())
            .collect();
        resources.sort_unstable();
        resources.dedup();
        assert_eq!(
            resources,
            ["arn:aws:s3:::sec-models", "arn:aws:s3:::sec-models/*"]
        );

        let cluster = aws
            .eks
            .describe_cluster()
            .name("sec-cluster")
            .send()
            .await
            .unwrap();
        let cluster = cluster.cluster().unwrap();
        let mut logged: Vec<&str> = cluster
            .logging()
            .unwrap()
            .cluster_logging()
            .iter()
            .filter(|s| s.enabled() == Some(true))
            .flat_map(|s| s.types().iter().map(|t| t.as_str()))
            .collect();
        logged.sort_unstable();
        assert_eq!(logged, ["api", "audit", "authenticator"]);
        let key = kms
            .describe_key()
            .key_id("alias/sec-eks-secrets")
            .send()
            .await
            .unwrap();
        let key = key.key_metadata().unwrap();
        let encrypted_with = cluster.encryption_config()[0]
            .provider()
            .and_then(|p| p.key_arn());
        assert_eq!(encrypted_with, key.arn());
        let rotation = kms
            .get_key_rotation_status()
            .key_id(key.key_id())
            .send()
            .await
            .unwrap();
        assert!(rotation.key_rotation_enabled());
        let cluster_policy = aws
            .iam
            .get_role_policy()
            .role_name("sec-eks-cluster")
            .policy_name("mlops-secrets-encryption")
            .send()
            .await
            .unwrap();
        assert!(decode(cluster_policy.policy_document()).contains(key.arn().unwrap()));
    });

    let replan = project.plan_exit_code();
    assert_eq!(
        replan.code, 0,
        "a second plan finds nothing:\n{}",
        replan.stdout
    );

    project.destroy().ok();
    assert!(roles_of(&aws, stack).is_empty());
    aws.run(async {
        let aliases = kms.list_aliases().send().await.unwrap();
        assert!(!aliases
            .aliases()
            .iter()
            .any(|a| a.alias_name() == Some("alias/sec-eks-secrets")));
        let keys = kms.list_keys().send().await.unwrap();
        for entry in keys.keys() {
            let key = kms
                .describe_key()
                .key_id(entry.key_id().unwrap())
                .send()
                .await
                .unwrap();
            assert_eq!(
                key.key_metadata().unwrap().key_state().map(|s| s.as_str()),
                Some("PendingDeletion"),
                "the key is kept for 30 days, not deleted at once"
            );
        }
    });
}
