//! GPU and Graviton node groups as `mlops plan` shows them, offline (`--refresh=false`, nothing
//! reached): the AMI each group's instance types need, the GPU taint, and where each GPU group's
//! device plugin comes from (its Bottlerocket AMI, or NVIDIA's as the stack's add-on).

mod support;

use std::process::Command;

use serde_json::Value;
use support::FIXTURE_ADDONS;

/// The block of `address` in a rendered plan, up to the blank line after it.
fn block<'a>(plan: &'a str, address: &str) -> &'a str {
    let start = plan
        .find(&format!("# {address} will be created"))
        .unwrap_or_else(|| panic!("`{address}` is not in the plan:\n{plan}"));
    let len = plan[start..].find("\n\n").unwrap();
    &plan[start..start + len]
}

/// `mlops plan <stack> --refresh=false` in `dir` with the fixture bundle, which must succeed;
/// its stdout.
fn plan(dir: &std::path::Path, stack: &str) -> String {
    let mut command = Command::new(env!("CARGO_BIN_EXE_mlops"));
    command.env("MLOPS_MANIFESTS_DIR", FIXTURE_ADDONS);
    run_plan(command, dir, &[stack])
}

/// `command` run as `mlops plan <args> --refresh=false` in `dir`, which must succeed; its stdout.
fn run_plan(mut command: Command, dir: &std::path::Path, args: &[&str]) -> String {
    let out = command
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .arg("plan")
        .args(args)
        .arg("--refresh=false")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The `resource_changes` entry of `address` in a JSON plan, or `None`.
fn json_change<'a>(plan: &'a Value, address: &str) -> Option<&'a Value> {
    plan["resource_changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["address"] == address)
}

/// Models what EKS does with a managed node group's `amiType`: a `g5.xlarge` group on the
/// standard AMI has no NVIDIA driver and never advertises `nvidia.com/gpu`. Team A's GPU group
/// plans Bottlerocket's NVIDIA variant, whose AMI runs NVIDIA's device plugin itself (the plan
/// says `device_plugin = "ami"`, in text and JSON, and installs no second one), with the usual
/// `nvidia.com/gpu=true:NoSchedule` taint; its general group the standard AL2023 AMI and no
/// device plugin.
#[test]
fn team_as_gpu_group_plans_an_nvidia_ami_its_device_plugin_and_its_taint() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = plan(root, "stacks/team-a.toml");
    insta::assert_snapshot!(block(&out, "eks_node_group.gpu"));
    let default = block(&out, "eks_node_group.default");
    assert!(default.contains("ami_type       = \"AL2023_x86_64_STANDARD\""));
    assert!(!default.contains("device_plugin"), "{default}");
    assert!(!out.contains("addon.nvidia_device_plugin"), "{out}");

    let mut command = Command::new(env!("CARGO_BIN_EXE_mlops"));
    command.env("MLOPS_MANIFESTS_DIR", FIXTURE_ADDONS);
    let json: Value =
        serde_json::from_str(&run_plan(command, root, &["stacks/team-a.toml", "--json"])).unwrap();
    let gpu = &json_change(&json, "eks_node_group.gpu").unwrap()["after"];
    assert_eq!(gpu["ami_type"], "BOTTLEROCKET_x86_64_NVIDIA");
    assert_eq!(gpu["device_plugin"], "ami");
    let default = &json_change(&json, "eks_node_group.default").unwrap()["after"];
    assert!(default.get("device_plugin").is_none(), "{default}");
    assert!(json_change(&json, "addon.nvidia_device_plugin").is_none());
}

/// Models AL2023's NVIDIA AMI, which EKS ships with the driver but without a device plugin:
/// team A's GPU group written with `ami_type = "AL2023_x86_64_NVIDIA"` plans NVIDIA's device
/// plugin as the add-on `addon.nvidia_device_plugin` (the group's `device_plugin` names it),
/// after the node groups and before the other add-ons, its DaemonSet placed on that group only
/// by the `eks.amazonaws.com/nodegroup` label EKS gives its nodes, and tolerating the group's
/// GPU taint. Planned with an empty cache and no way to download (a mirror on a closed port):
/// the plugin's objects are known all the same, as it is rendered from the catalogue's template.
#[test]
fn an_al2023_nvidia_group_plans_nvidias_device_plugin_as_an_addon() {
    let dir = tempfile::tempdir().unwrap();
    let stacks = dir.path().join("stacks");
    std::fs::create_dir_all(&stacks).unwrap();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    for file in ["base.toml", "team-a.toml"] {
        let text = std::fs::read_to_string(root.join("stacks").join(file)).unwrap();
        let text = text.replacen(
            "capacity = \"spot\"",
            "capacity = \"spot\"\nami_type = \"AL2023_x86_64_NVIDIA\"",
            1,
        );
        std::fs::write(stacks.join(file), text).unwrap();
    }
    let offline = || {
        let mut command = Command::new(env!("CARGO_BIN_EXE_mlops"));
        command
            .env_remove("MLOPS_MANIFESTS_DIR")
            .env("XDG_CACHE_HOME", dir.path().join("empty-cache"))
            .env("MLOPS_ADDONS_MIRROR", "http://127.0.0.1:9");
        command
    };
    let out = run_plan(offline(), dir.path(), &["team-a"]);
    let gpu = block(&out, "eks_node_group.gpu");
    assert!(
        gpu.contains("ami_type       = \"AL2023_x86_64_NVIDIA\""),
        "{gpu}"
    );
    assert!(
        gpu.contains("device_plugin  = \"addon.nvidia_device_plugin\""),
        "{gpu}"
    );
    insta::assert_snapshot!(block(&out, "addon.nvidia_device_plugin"));
    assert!(block(&out, "addon.cert_manager").contains("objects = (known after apply)"));

    let json: Value =
        serde_json::from_str(&run_plan(offline(), dir.path(), &["team-a", "--json"])).unwrap();
    let plugin = json_change(&json, "addon.nvidia_device_plugin").unwrap();
    let group_name = &json_change(&json, "eks_node_group.gpu").unwrap()["after"]["name"];
    assert_eq!(
        plugin["after"]["node_groups"],
        serde_json::json!([group_name])
    );
    let objects = plugin["after"]["objects"].as_object().unwrap();
    assert_eq!(
        objects.keys().collect::<Vec<_>>(),
        ["apps/v1 DaemonSet kube-system/nvidia-device-plugin-daemonset"]
    );
    let depends_on = |address: &str| json_change(&json, address).unwrap()["depends_on"].clone();
    assert!(depends_on("addon.nvidia_device_plugin")
        .as_array()
        .unwrap()
        .contains(&"eks_node_group.gpu".into()));
    assert!(depends_on("addon.cert_manager")
        .as_array()
        .unwrap()
        .contains(&"addon.nvidia_device_plugin".into()));
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
