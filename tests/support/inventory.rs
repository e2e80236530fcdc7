//! What a stack left in the emulator, found through the AWS SDK alone (never through mlops'
//! own state): every object tagged `mlops:stack = <stack>`, counted by kind.

use std::collections::BTreeMap;

use aws_sdk_ec2::types::Filter;

use super::Aws;

pub fn stack_filter(stack: &str) -> Filter {
    Filter::builder()
        .name("tag:mlops:stack")
        .values(stack)
        .build()
}

pub type Tags = BTreeMap<String, String>;

pub fn owned(tags: &Tags, stack: &str) -> bool {
    tags.get("mlops:stack").map(String::as_str) == Some(stack)
}

pub async fn role_tags(aws: &Aws, name: &str) -> Tags {
    let out = aws
        .iam
        .list_role_tags()
        .role_name(name)
        .send()
        .await
        .unwrap();
    out.tags()
        .iter()
        .map(|t| (t.key().to_string(), t.value().to_string()))
        .collect()
}

pub async fn oidc_provider_tags(aws: &Aws, arn: &str) -> Tags {
    let out = aws
        .iam
        .get_open_id_connect_provider()
        .open_id_connect_provider_arn(arn)
        .send()
        .await
        .unwrap();
    out.tags()
        .iter()
        .map(|t| (t.key().to_string(), t.value().to_string()))
        .collect()
}

/// Empty for a bucket without tags (S3 answers `NoSuchTagSet`).
pub async fn bucket_tags(aws: &Aws, name: &str) -> Tags {
    match aws.s3.get_bucket_tagging().bucket(name).send().await {
        Ok(out) => out
            .tag_set()
            .iter()
            .map(|t| (t.key().to_string(), t.value().to_string()))
            .collect(),
        Err(_) => Tags::new(),
    }
}

pub async fn repository_tags(aws: &Aws, arn: &str) -> Tags {
    let out = aws
        .ecr
        .list_tags_for_resource()
        .resource_arn(arn)
        .send()
        .await
        .unwrap();
    out.tags()
        .iter()
        .map(|t| (t.key().to_string(), t.value().to_string()))
        .collect()
}

/// Every object tagged `mlops:stack = <stack>`, by kind, found through the SDK.
pub fn inventory(aws: &Aws, stack: &str) -> BTreeMap<&'static str, usize> {
    aws.run(async {
        let mut count = BTreeMap::new();
        let ec2 = &aws.ec2;
        let f = || Some(vec![stack_filter(stack)]);
        count.insert(
            "vpc",
            ec2.describe_vpcs()
                .set_filters(f())
                .send()
                .await
                .unwrap()
                .vpcs()
                .len(),
        );
        count.insert(
            "subnet",
            ec2.describe_subnets()
                .set_filters(f())
                .send()
                .await
                .unwrap()
                .subnets()
                .len(),
        );
        count.insert(
            "internet_gateway",
            ec2.describe_internet_gateways()
                .set_filters(f())
                .send()
                .await
                .unwrap()
                .internet_gateways()
                .len(),
        );
        count.insert(
            "nat_gateway",
            ec2.describe_nat_gateways()
                .set_filter(f())
                .send()
                .await
                .unwrap()
                .nat_gateways()
                .iter()
                .filter(|n| n.state().is_some_and(|s| s.as_str() != "deleted"))
                // The emulator ignores tag filters on NAT gateways: check the tags here.
                .filter(|n| {
                    n.tags()
                        .iter()
                        .any(|t| t.key() == Some("mlops:stack") && t.value() == Some(stack))
                })
                .count(),
        );
        count.insert(
            "eip",
            ec2.describe_addresses()
                .set_filters(f())
                .send()
                .await
                .unwrap()
                .addresses()
                .len(),
        );
        count.insert(
            "route_table",
            ec2.describe_route_tables()
                .set_filters(f())
                .send()
                .await
                .unwrap()
                .route_tables()
                .len(),
        );

        let mut clusters = 0;
        for name in aws.eks.list_clusters().send().await.unwrap().clusters() {
            let c = aws.eks.describe_cluster().name(name).send().await.unwrap();
            if c.cluster()
                .and_then(|c| c.tags())
                .and_then(|t| t.get("mlops:stack"))
                .map(String::as_str)
                == Some(stack)
            {
                clusters += 1;
            }
        }
        count.insert("eks_cluster", clusters);

        let mut roles = 0;
        for role in aws.iam.list_roles().send().await.unwrap().roles() {
            roles += usize::from(owned(&role_tags(aws, role.role_name()).await, stack));
        }
        count.insert("iam_role", roles);

        let mut providers = 0;
        let list = aws
            .iam
            .list_open_id_connect_providers()
            .send()
            .await
            .unwrap();
        for p in list.open_id_connect_provider_list() {
            providers += usize::from(owned(
                &oidc_provider_tags(aws, p.arn().unwrap()).await,
                stack,
            ));
        }
        count.insert("iam_oidc_provider", providers);

        let mut buckets = 0;
        for b in aws.s3.list_buckets().send().await.unwrap().buckets() {
            buckets += usize::from(owned(&bucket_tags(aws, b.name().unwrap()).await, stack));
        }
        count.insert("s3_bucket", buckets);

        let mut repos = 0;
        let list = aws.ecr.describe_repositories().send().await.unwrap();
        for r in list.repositories() {
            repos += usize::from(owned(
                &repository_tags(aws, r.repository_arn().unwrap()).await,
                stack,
            ));
        }
        count.insert("ecr_repository", repos);
        count
    })
}

pub fn expected(pairs: &[(&'static str, usize)]) -> BTreeMap<&'static str, usize> {
    pairs.iter().copied().collect()
}

/// What the reference stack builds: one VPC, 4 subnets, 1 NAT and its EIP, 3 route tables...
pub fn reference_inventory() -> BTreeMap<&'static str, usize> {
    expected(&[
        ("vpc", 1),
        ("subnet", 4),
        ("internet_gateway", 1),
        ("nat_gateway", 1),
        ("eip", 1),
        ("route_table", 3),
        ("eks_cluster", 1),
        ("iam_role", 3),
        ("iam_oidc_provider", 1),
        ("s3_bucket", 1),
        ("ecr_repository", 1),
    ])
}

pub fn nothing_left() -> BTreeMap<&'static str, usize> {
    reference_inventory().into_keys().map(|k| (k, 0)).collect()
}

/// The stack's NAT gateways that are `available`, as (id, subnet id).
pub async fn available_nat_gateways(aws: &Aws, stack: &str) -> Vec<(String, String)> {
    let out = aws
        .ec2
        .describe_nat_gateways()
        .filter(stack_filter(stack))
        .send()
        .await
        .unwrap();
    out.nat_gateways()
        .iter()
        .filter(|n| n.state().is_some_and(|s| s.as_str() == "available"))
        .map(|n| {
            (
                n.nat_gateway_id().unwrap().to_string(),
                n.subnet_id().unwrap().to_string(),
            )
        })
        .collect()
}

/// Where the default route (`0.0.0.0/0`) of each of the stack's private route tables goes: the
/// NAT gateway's id, or `None` for a default route through something else.
pub async fn private_default_routes(aws: &Aws, stack: &str) -> Vec<Option<String>> {
    let tables = aws
        .ec2
        .describe_route_tables()
        .filters(stack_filter(stack))
        .send()
        .await
        .unwrap();
    tables
        .route_tables()
        .iter()
        .filter(|t| {
            t.tags().iter().any(|tag| {
                tag.key() == Some("mlops:address")
                    && tag
                        .value()
                        .is_some_and(|v| v.starts_with("route_table.private."))
            })
        })
        .flat_map(|t| t.routes())
        .filter(|r| r.destination_cidr_block() == Some("0.0.0.0/0"))
        .map(|r| r.nat_gateway_id().map(str::to_string))
        .collect()
}
