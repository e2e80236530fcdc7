//! The step of a cluster upgrade through the real binary, offline (`--refresh=false`, no AWS
//! call): a skip of minor versions or a downgrade against the cluster the state records is
//! refused by `validate` and at plan time, exit 1, naming the file and line of `[eks] version`;
//! nothing changes.

mod support;

use std::process::Command;

/// A project whose state records a cluster on `running`, its stack asking for `wanted`.
fn project(running: &str, wanted: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let stacks = dir.path().join("stacks");
    std::fs::create_dir_all(&stacks).unwrap();
    std::fs::create_dir_all(stacks.join("state")).unwrap();
    let text = support::without_workloads(support::EXAMPLE)
        .replace("version = \"1.33\"", &format!("version = \"{wanted}\""));
    std::fs::write(stacks.join("example.toml"), text).unwrap();
    let state = serde_json::json!({
        "format_version": 1,
        "serial": 3,
        "lineage": "6f1c1f7e-7d7f-4a57-9a55-2f3a0c1e9b10",
        "stack": "mlops",
        "resources": {
            "eks_cluster": {
                "kind": "eks_cluster",
                "id": "mlops-cluster",
                "attrs": { "name": "mlops-cluster", "version": running },
                "deps": [],
            },
        },
    });
    std::fs::write(
        stacks.join("state/mlops.json"),
        serde_json::to_string_pretty(&state).unwrap() + "\n",
    )
    .unwrap();
    dir
}

fn plan(dir: &tempfile::TempDir) -> (i32, String) {
    mlops(dir, &["plan", "example", "--refresh=false"])
}

fn validate(dir: &tempfile::TempDir) -> (i32, String) {
    mlops(dir, &["validate", "example"])
}

/// `mlops <args>` in `dir`, AWS unreachable: its exit code and stderr.
fn mlops(dir: &tempfile::TempDir, args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_mlops"))
        .current_dir(dir.path())
        .env("NO_COLOR", "1")
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Models EKS's `UpdateClusterVersion`, which takes one minor version at a time: 1.33 to 1.35
/// is refused by `validate` and before anything is planned, at the line `version` is written on.
#[test]
fn a_skip_of_minor_versions_is_refused_at_the_version_line() {
    let dir = project("1.33", "1.35");
    let state_before = std::fs::read(dir.path().join("stacks/state/mlops.json")).unwrap();
    let line = 1 + support::EXAMPLE
        .lines()
        .position(|l| l.starts_with("version = "))
        .unwrap();
    for (code, stderr) in [validate(&dir), plan(&dir)] {
        assert_eq!(code, 1, "{stderr}");
        assert!(
            stderr.contains(&format!(
                "`[eks] version = \"1.35\"` (stacks/example.toml:{line}:11) skips minor versions"
            )),
            "{stderr}"
        );
        assert!(stderr.contains("`version = \"1.34\"`"), "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    assert_eq!(
        std::fs::read(dir.path().join("stacks/state/mlops.json")).unwrap(),
        state_before
    );
}

/// EKS never downgrades a control plane: 1.34 to 1.33 is refused the same way, by `validate`
/// and `plan`; one minor step up validates and plans the upgrade.
#[test]
fn a_downgrade_is_refused_and_one_step_up_is_planned() {
    let down = project("1.34", "1.33");
    for (code, stderr) in [validate(&down), plan(&down)] {
        assert_eq!(code, 1, "{stderr}");
        assert!(
            stderr.contains("is older than the cluster's 1.34"),
            "{stderr}"
        );
    }
    let up = project("1.33", "1.34");
    for (code, stderr) in [validate(&up), plan(&up)] {
        assert_eq!(code, 0, "{stderr}");
    }
}
