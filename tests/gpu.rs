//! GPU and Graviton node groups as `mlops plan` shows them, offline (`--refresh=false`, nothing
//! reached): the AMI each group's instance types need and the GPU taint.

mod support;

use std::process::Command;

use support::FIXTURE_ADDONS;

/// The block of `address` in a rendered plan, up to the blank line after it.
fn block<'a>(plan: &'a str, address: &str) -> &'a str {
    let start = plan
        .find(&format!("# {address} will be created"))
        .unwrap_or_else(|| panic!("`{address}` is not in the plan:\n{plan}"));
    let len = plan[start..].find("\n\n").unwrap();
    &plan[start..start + len]
}

/// `mlops plan <stack> --refresh=false` in `dir`, which must succeed; its stdout.
fn plan(dir: &std::path::Path, stack: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_mlops"))
        .current_dir(dir)
        .env("MLOPS_MANIFESTS_DIR", FIXTURE_ADDONS)
        .env("NO_COLOR", "1")
        .args(["plan", stack, "--refresh=false"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Models what EKS does with a managed node group's `amiType`: a `g5.xlarge` group on the
/// standard AMI has no NVIDIA driver and never advertises `nvidia.com/gpu`. Team A's GPU group
/// plans Bottlerocket's NVIDIA variant (driver and device plugin included) with the usual
/// `nvidia.com/gpu=true:NoSchedule` taint; its general group the standard AL2023 AMI.
#[test]
fn team_as_gpu_group_plans_an_nvidia_ami_and_its_taint() {
    let out = plan(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")),
        "stacks/team-a.toml",
    );
    insta::assert_snapshot!(block(&out, "eks_node_group.gpu"));
    assert!(block(&out, "eks_node_group.default")
        .contains("ami_type       = \"AL2023_x86_64_STANDARD\""));
}

/// Graviton instance types (`m7g`, `c7g`) cannot boot an x86 AMI: the group plans AL2023's
/// ARM64 AMI, and no taint.
#[test]
fn a_graviton_group_plans_an_arm64_ami() {
    let dir = tempfile::tempdir().unwrap();
    let stacks = dir.path().join("stacks");
    std::fs::create_dir_all(&stacks).unwrap();
    support::copy_example_manifests(&stacks);
    let text = format!(
        "{}\n[eks.node_groups.arm]\ninstance_types = [\"m7g.large\", \"c7g.large\"]\nmin = 1\nmax = 2\ndesired = 1\n",
        support::EXAMPLE
    );
    std::fs::write(stacks.join("example.toml"), text).unwrap();
    let out = plan(dir.path(), "example");
    let arm = block(&out, "eks_node_group.arm");
    assert!(
        arm.contains("ami_type       = \"AL2023_ARM_64_STANDARD\""),
        "{arm}"
    );
    assert!(arm.contains("taints         = []"), "{arm}");
}
