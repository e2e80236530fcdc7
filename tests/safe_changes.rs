//! Changes without surprises, end to end against the AWS emulator (moto on 127.0.0.1): a bucket
//! renamed in the spec keeps its objects, the replacement gate refuses protected replacements
//! until `--allow-replace` names them (saved plans too), `--replace` replaces exactly one
//! resource, and `--refresh-only` writes drift into the state and nothing into AWS. Every
//! result is checked through the AWS SDK, never through mlops' own state.

mod support;

use support::{example_as, Aws, Emulator, Project};

/// Puts `body` at `key` of `bucket`, as a training job would.
fn put_model(aws: &Aws, bucket: &str, key: &str, body: &str) {
    aws.run(async {
        aws.s3
            .put_object()
            .bucket(bucket)
            .key(key)
            .body(body.as_bytes().to_vec().into())
            .send()
            .await
            .unwrap();
    });
}

/// The object at `key` of `bucket`, or `None` when the bucket or the object is gone.
fn model(aws: &Aws, bucket: &str, key: &str) -> Option<String> {
    aws.run(async {
        let out = aws
            .s3
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .ok()?;
        let bytes = out.body.collect().await.ok()?.into_bytes();
        Some(String::from_utf8_lossy(&bytes).into_owned())
    })
}

fn bucket_exists(aws: &Aws, bucket: &str) -> bool {
    aws.run(async { aws.s3.head_bucket().bucket(bucket).send().await.is_ok() })
}

fn addresses_in_state(project: &Project) -> Vec<String> {
    let out = project.mlops(&["state", "list", &project.stack]).ok();
    out.stdout.lines().map(str::to_string).collect()
}

/// The rename of the issue: `[buckets.models]` becomes `[buckets.models-v2]` with the same
/// bucket name and `force_destroy = true`. S3 names a bucket by its name alone, so the new
/// address is the same bucket: the plan moves it, and not one object is lost.
fn bucket_rename_keeps_the_bucket(stack: &str, moved: &str) {
    let moto = Emulator::start();
    let aws = moto.clients();
    let text = example_as(stack).replace("force_destroy = false", "force_destroy = true");
    let project = Project::new(&moto, stack, &text);
    project.apply().ok();
    let bucket = format!("{stack}-models");
    put_model(&aws, &bucket, "wine-model/model.joblib", "trained weights");

    project.write_stack(&format!(
        "{}{moved}",
        text.replace("[buckets.models]", "[buckets.models-v2]")
            .replace("s3_read = [\"models\"]", "s3_read = [\"models-v2\"]")
    ));
    let plan = project.mlops(&["plan", stack]).ok();
    // The same bucket; only its `mlops:address` tag follows the new address.
    assert!(
        plan.stdout.contains(
            "# s3_bucket.models-v2 will be updated in-place\n  # (moved from s3_bucket.models)\n"
        ),
        "{}",
        plan.stdout
    );
    assert!(
        plan.stdout
            .contains("Plan: 0 to add, 1 to change, 0 to destroy, 1 to move."),
        "{}",
        plan.stdout
    );
    let applied = project.apply().ok();
    assert!(
        applied.stderr.contains("0 added, 1 changed, 0 destroyed"),
        "{}",
        applied.stderr
    );
    let address_tag = aws.run(async {
        let out = aws
            .s3
            .get_bucket_tagging()
            .bucket(&bucket)
            .send()
            .await
            .unwrap();
        out.tag_set()
            .iter()
            .find(|t| t.key() == "mlops:address")
            .map(|t| t.value().to_string())
    });
    assert_eq!(address_tag.as_deref(), Some("s3_bucket.models-v2"));
    assert!(bucket_exists(&aws, &bucket));
    assert_eq!(
        model(&aws, &bucket, "wine-model/model.joblib").as_deref(),
        Some("trained weights")
    );
    let state = addresses_in_state(&project);
    assert!(state.contains(&"s3_bucket.models-v2".to_string()));
    assert!(!state.contains(&"s3_bucket.models".to_string()));
    assert_eq!(project.plan_exit_code().code, 0);
    project.destroy().ok();
    assert!(!bucket_exists(&aws, &bucket));
}

#[test]
fn a_bucket_renamed_with_a_moved_entry_keeps_its_objects() {
    bucket_rename_keeps_the_bucket(
        "mvd",
        "\n[[moved]]\nfrom = \"s3_bucket.models\"\nto = \"s3_bucket.models-v2\"\n",
    );
}

#[test]
fn a_bucket_renamed_without_a_moved_entry_keeps_its_objects() {
    bucket_rename_keeps_the_bucket("ren", "");
}

/// A new bucket name deletes the old bucket (S3 cannot rename one) with every object in it:
/// refused without `--allow-replace`, before any call, for a saved plan too; made with it.
#[test]
fn a_bucket_replacement_is_refused_until_allowed() {
    let moto = Emulator::start();
    let aws = moto.clients();
    let stack = "gate";
    let text = example_as(stack).replace("force_destroy = false", "force_destroy = true");
    let project = Project::new(&moto, stack, &text);
    project.apply().ok();
    let (old, new) = (format!("{stack}-models"), format!("{stack}-models-2"));
    put_model(&aws, &old, "m/model.joblib", "weights");

    project.write_stack(&text.replace(&old, &new));
    let plan = project.mlops(&["plan", stack]).ok();
    assert!(
        plan.stdout.contains(
            "# protected: this loses every object in the bucket (or, without `force_destroy`, the apply fails on a bucket that is not empty); apply refuses it without `--allow-replace s3_bucket.models`"
        ),
        "{}",
        plan.stdout
    );
    let refused = project.apply();
    assert_eq!(refused.code, 1);
    assert!(
        refused.stderr.contains(&format!(
            "`s3_bucket.models` would be replaced: `bucket` changes (\"{old}\" -> \"{new}\"); this loses every object in the bucket"
        )),
        "{}",
        refused.stderr
    );
    assert!(
        refused
            .stderr
            .contains("hint: if you mean it, name each one: `--allow-replace s3_bucket.models`"),
        "{}",
        refused.stderr
    );
    assert!(!refused.stderr.contains("destroying"), "{}", refused.stderr);
    assert_eq!(
        model(&aws, &old, "m/model.joblib").as_deref(),
        Some("weights")
    );
    assert!(!bucket_exists(&aws, &new));

    // A saved plan is its own approval, but not of a protected change.
    project.mlops(&["plan", stack, "--out", "plan.json"]).ok();
    let refused = project.mlops(&["apply", "plan.json"]);
    assert_eq!(refused.code, 1);
    assert!(
        refused
            .stderr
            .contains("`s3_bucket.models` would be replaced"),
        "{}",
        refused.stderr
    );
    assert!(bucket_exists(&aws, &old));
    // Another address allowed is not this one.
    let refused = project.mlops(&["apply", "plan.json", "--allow-replace", "s3_bucket.other"]);
    assert_eq!(refused.code, 1);
    assert!(bucket_exists(&aws, &old));

    let applied = project
        .mlops(&["apply", "plan.json", "--allow-replace", "s3_bucket.models"])
        .ok();
    // The IRSA role's inline policy follows the bucket's new name.
    assert!(
        applied.stderr.contains("1 added, 1 changed, 1 destroyed"),
        "{}",
        applied.stderr
    );
    assert!(!bucket_exists(&aws, &old));
    assert!(bucket_exists(&aws, &new));
    project.destroy().ok();
}

/// EKS cannot change a node group's instance types: the group is replaced, and its nodes and
/// their pods go. Refused without `--allow-replace`; `protect = false` on the group lets it go.
#[test]
fn a_node_group_replacement_is_refused_until_allowed() {
    let moto = Emulator::start();
    let aws = moto.clients();
    let stack = "ngg";
    let project = Project::new(&moto, stack, &example_as(stack));
    project.apply().ok();
    let group_arn = || {
        aws.run(async {
            let g = aws.node_group(&format!("{stack}-cluster"), "default").await;
            let g = g.nodegroup().unwrap();
            (
                g.nodegroup_arn().unwrap().to_string(),
                g.instance_types().to_vec(),
            )
        })
    };
    let (before, _) = group_arn();

    let changed = project
        .stack_text()
        .replace("[\"t3.medium\"]", "[\"m5.large\"]");
    project.write_stack(&changed);
    let refused = project.apply();
    assert_eq!(refused.code, 1);
    assert!(
        refused.stderr.contains(
            "`eks_node_group.default` would be replaced: `instance_types` changes ([\"t3.medium\"] -> [\"m5.large\"])"
        ) && refused.stderr.contains("this loses its nodes and every pod running on them"),
        "{}",
        refused.stderr
    );
    assert_eq!(group_arn(), (before.clone(), vec!["t3.medium".to_string()]));

    project.write_stack(&changed.replace("taints = []", "taints = []\nprotect = false"));
    project.apply().ok();
    let (after, types) = group_arn();
    assert_ne!(after, before, "a new node group");
    assert_eq!(types, vec!["m5.large".to_string()]);
    project.destroy().ok();
}

/// A new VPC range replaces the VPC and everything in it: the subnets, the cluster, its node
/// group and OIDC provider. Allowing only the VPC is not enough; naming every protected address
/// makes the replacement, which leaves one VPC with the new range. Without a NAT gateway here:
/// AWS disassociates a deleted NAT gateway's Elastic IP, moto keeps it associated, so a new
/// gateway with the same EIP fails in moto alone (the NAT gateway's gate is shown end to end
/// through the AWS layer, which frees the EIP as AWS does: `tests/aws_faults.rs`).
#[test]
fn a_vpc_replacement_is_refused_until_every_protected_address_is_allowed() {
    let moto = Emulator::start();
    let aws = moto.clients();
    let stack = "vpcg";
    let text = example_as(stack).replace("nat = \"single\"", "nat = \"none\"");
    let project = Project::new(&moto, stack, &text);
    project.apply().ok();
    let vpcs = || {
        aws.run(async {
            let out = aws
                .ec2
                .describe_vpcs()
                .filters(
                    aws_sdk_ec2::types::Filter::builder()
                        .name("tag:mlops:stack")
                        .values(stack)
                        .build(),
                )
                .send()
                .await
                .unwrap();
            out.vpcs()
                .iter()
                .map(|v| v.cidr_block().unwrap().to_string())
                .collect::<Vec<_>>()
        })
    };
    assert_eq!(vpcs(), vec!["10.0.0.0/16"]);

    project.write_stack(&project.stack_text().replace("10.0.", "10.1."));
    let refused = project.mlops(&["apply", stack, "--auto-approve", "--allow-replace", "vpc"]);
    assert_eq!(refused.code, 1);
    assert!(
        !refused.stderr.contains("`vpc` would be replaced"),
        "{}",
        refused.stderr
    );
    assert!(
        refused.stderr.contains("`eks_cluster` would be replaced"),
        "{}",
        refused.stderr
    );
    assert_eq!(vpcs(), vec!["10.0.0.0/16"], "nothing was changed");

    // Every address the refusal names.
    let mut args = vec!["apply", stack, "--auto-approve"];
    let named: Vec<String> = refused
        .stderr
        .lines()
        .filter_map(|l| {
            l.trim()
                .strip_prefix('`')?
                .split('`')
                .next()
                .map(str::to_string)
        })
        .collect();
    assert!(named.len() >= 2, "{}", refused.stderr);
    let mut allowed = vec!["vpc".to_string()];
    allowed.extend(named);
    for address in &allowed {
        args.extend(["--allow-replace", address.as_str()]);
    }
    project.mlops(&args).ok();
    assert_eq!(vpcs(), vec!["10.1.0.0/16"]);
    // Everything converged but the VPC endpoints that `nat = "none"` brings, which moto cannot
    // show as AWS does: its DescribeCluster has no cluster security group (the interface
    // endpoints' group), and it reports private DNS on for the S3 gateway endpoint. So the
    // re-plan may only update `vpc_endpoint.*`, and nothing else.
    let replan = project.mlops(&["plan", stack]).ok();
    let changed: Vec<&str> = replan
        .stdout
        .lines()
        .filter_map(|l| l.trim().strip_prefix("# "))
        .filter(|l| l.contains(" will be ") || l.contains(" must be "))
        .collect();
    assert!(
        changed.iter().all(|l| l.starts_with("vpc_endpoint.")),
        "{}",
        replan.stdout
    );
    project.destroy().ok();
}

/// `--replace ADDR` replaces that resource and nothing else: the repository is made anew (the
/// image pushed to the old one is gone), every other object keeps its id.
#[test]
fn replace_replaces_one_resource_and_nothing_else() {
    let moto = Emulator::start();
    let aws = moto.clients();
    let stack = "rpl";
    let text = example_as(stack).replace(
        "scan_on_push = true",
        "scan_on_push = true\nforce_delete = true",
    );
    let project = Project::new(&moto, stack, &text);
    project.apply().ok();
    let images = || {
        aws.run(async {
            aws.ecr
                .list_images()
                .repository_name("wine-model")
                .send()
                .await
                .unwrap()
                .image_ids()
                .len()
        })
    };
    aws.run(async {
        aws.ecr
            .put_image()
            .repository_name("wine-model")
            .image_tag("v1")
            .image_manifest(r#"{"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json", "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 1, "digest": "sha256:0000000000000000000000000000000000000000000000000000000000000001"}, "layers": []}"#)
            .send()
            .await
            .unwrap();
    });
    assert_eq!(images(), 1);
    let ids_before = project.mlops(&["state", "pull", stack]).ok().stdout;

    let refused = project.mlops(&[
        "apply",
        stack,
        "--auto-approve",
        "--replace",
        "ecr_repository.wine-model",
    ]);
    assert_eq!(refused.code, 1);
    assert!(
        refused.stderr.contains("`ecr_repository.wine-model` would be replaced: replacement asked for with `--replace`; this loses every image in the repository"),
        "{}",
        refused.stderr
    );
    assert_eq!(images(), 1);

    let applied = project
        .mlops(&[
            "apply",
            stack,
            "--auto-approve",
            "--replace",
            "ecr_repository.wine-model",
            "--allow-replace",
            "ecr_repository.wine-model",
        ])
        .ok();
    assert!(
        applied.stderr.contains("1 added, 0 changed, 1 destroyed"),
        "{}",
        applied.stderr
    );
    assert_eq!(images(), 0, "a new repository");
    // Every other object is the one it was: same ids in the state, and no change planned.
    let before: serde_json::Value = serde_json::from_str(&ids_before).unwrap();
    let after: serde_json::Value =
        serde_json::from_str(&project.mlops(&["state", "pull", stack]).ok().stdout).unwrap();
    for (address, resource) in before["resources"].as_object().unwrap() {
        assert_eq!(
            after["resources"][address]["id"], resource["id"],
            "{address}"
        );
    }
    assert_eq!(project.plan_exit_code().code, 0);
    project.destroy().ok();
}

/// `--refresh-only` accepts drift: a repository deleted and a bucket tag added outside mlops are
/// written into the state, and AWS is left as it is (no repository made, no tag removed).
#[test]
fn refresh_only_writes_what_aws_reports_and_changes_nothing_in_aws() {
    let moto = Emulator::start();
    let aws = moto.clients();
    let stack = "rfo";
    let project = Project::new(&moto, stack, &example_as(stack));
    project.apply().ok();
    let bucket = format!("{stack}-models");
    let bucket_tags = || {
        aws.run(async {
            let out = aws
                .s3
                .get_bucket_tagging()
                .bucket(&bucket)
                .send()
                .await
                .unwrap();
            out.tag_set()
                .iter()
                .map(|t| (t.key().to_string(), t.value().to_string()))
                .collect::<std::collections::BTreeMap<_, _>>()
        })
    };
    let repositories = || {
        aws.run(async {
            aws.ecr
                .describe_repositories()
                .send()
                .await
                .unwrap()
                .repositories()
                .len()
        })
    };
    aws.run(async {
        aws.ecr
            .delete_repository()
            .repository_name("wine-model")
            .force(true)
            .send()
            .await
            .unwrap();
    });
    let mut tags = bucket_tags();
    tags.insert("owner".into(), "data-team".into());
    aws.run(async {
        let set = tags
            .iter()
            .map(|(k, v)| {
                aws_sdk_s3::types::Tag::builder()
                    .key(k)
                    .value(v)
                    .build()
                    .unwrap()
            })
            .collect();
        let tagging = aws_sdk_s3::types::Tagging::builder()
            .set_tag_set(Some(set))
            .build()
            .unwrap();
        aws.s3
            .put_bucket_tagging()
            .bucket(&bucket)
            .tagging(tagging)
            .send()
            .await
            .unwrap();
    });

    let plan = project.mlops(&["plan", stack, "--refresh-only"]).ok();
    assert!(
        plan.stdout
            .contains("# ecr_repository.wine-model has been deleted outside mlops")
            && plan
                .stdout
                .contains("# s3_bucket.models has changed outside mlops")
            && plan
                .stdout
                .contains("Refresh-only plan: 1 changed and 1 deleted outside mlops"),
        "{}",
        plan.stdout
    );
    let applied = project
        .mlops(&["apply", stack, "--auto-approve", "--refresh-only"])
        .ok();
    assert!(!applied.stderr.contains("creating"), "{}", applied.stderr);
    assert_eq!(repositories(), 0, "no repository made");
    assert_eq!(bucket_tags(), tags, "no tag removed");
    let state = addresses_in_state(&project);
    assert!(!state.contains(&"ecr_repository.wine-model".to_string()));
    // Nothing left to accept; a normal plan now undoes the drift.
    let again = project.mlops(&["plan", stack, "--refresh-only", "--detailed-exitcode"]);
    assert_eq!(again.code, 0, "{}", again.stdout);
    let plan = project.mlops(&["plan", stack]).ok();
    assert!(
        plan.stdout
            .contains("# ecr_repository.wine-model will be created\n"),
        "{}",
        plan.stdout
    );
    assert!(plan
        .stdout
        .contains("# s3_bucket.models will be updated in-place"));
    project.destroy().ok();
}
