//! The `mlops` binary as users and pipelines see it: exit codes, streams, refusals, and that a
//! refused or failed command changes nothing on disk. No cloud is involved.

use std::fs;
use std::path::PathBuf;

use assert_cmd::Command;
use predicates::prelude::*;
use serde_json::Value;

mod support;

use support::{copy_example_manifests, EXAMPLE, FIXTURE_ADDONS};

/// A scratch project: `stacks/example.toml` with the example's manifests (`stacks/k8s/`) and an
/// empty `state/` in a temporary folder.
struct Project {
    dir: tempfile::TempDir,
}

impl Project {
    fn new() -> Self {
        Self::with_stack(EXAMPLE)
    }

    fn with_stack(text: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("stacks")).unwrap();
        fs::write(dir.path().join("stacks/example.toml"), text).unwrap();
        copy_example_manifests(&dir.path().join("stacks"));
        Project { dir }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn mlops(&self, args: &[&str]) -> assert_cmd::assert::Assert {
        Command::cargo_bin("mlops")
            .unwrap()
            .current_dir(self.dir.path())
            .env_remove("NO_COLOR")
            .env("MLOPS_MANIFESTS_DIR", FIXTURE_ADDONS)
            .env_remove("KUBECONFIG")
            .args(args)
            .write_stdin("")
            .assert()
    }

    /// The example's `[state] path`, relative to the stack file.
    fn state_file(&self) -> PathBuf {
        self.path("stacks/state/mlops.json")
    }

    fn write_state(&self, text: &str) {
        fs::create_dir_all(self.path("stacks/state")).unwrap();
        fs::write(self.state_file(), text).unwrap();
    }
}

fn no_panic() -> impl Predicate<str> {
    predicate::str::contains("panicked")
        .not()
        .and(predicate::str::contains("RUST_BACKTRACE").not())
}

/// A state of the example with `vpc` (`vpc-1`) and `s3_bucket.models`.
fn state_with_a_vpc_and_a_bucket() -> String {
    empty_state("mlops", 1).replace(
        "\"resources\": {}",
        r#""resources": {
            "vpc": {"kind": "vpc", "id": "vpc-1", "attrs": {}, "deps": []},
            "s3_bucket.models": {"kind": "s3_bucket", "id": "b", "attrs": {"bucket": "mlops-models-bucket"}, "deps": []}}"#,
    )
}

fn empty_state(stack: &str, version: u64) -> String {
    format!(
        r#"{{"format_version": {version}, "serial": 3, "lineage": "l-1", "stack": "{stack}", "resources": {{}}, "outputs": {{}}}}"#
    )
}

#[test]
fn validate_accepts_the_example_by_name_and_by_path() {
    let p = Project::new();
    p.mlops(&["validate", "example"])
        .success()
        .stderr(predicate::str::contains(
            "is valid: stack `mlops` in us-west-2, 52 resources",
        ));
    p.mlops(&["validate", "stacks/example.toml"]).success();
}

#[test]
fn validate_reports_every_mistake_with_line_and_column() {
    let text = EXAMPLE
        .replace("name = \"mlops\"", "name = \"Bad\"")
        .replace("desired = 2", "desired = 7")
        .replace("\"10.0.102.0/24\"]", "\"10.0.1.0/24\"]");
    let p = Project::with_stack(&text);
    p.mlops(&["validate", "example"])
        .code(1)
        .stderr(predicate::str::contains("--> stacks/example.toml:7:8"))
        .stderr(predicate::str::contains("stack name `Bad` is not valid"))
        .stderr(predicate::str::contains("overlaps subnet 10.0.1.0/24"))
        .stderr(predicate::str::contains("min 1 <= desired 7 <= max 3"))
        .stderr(predicate::str::contains("has 3 problems"))
        .stderr(no_panic());
}

#[test]
fn a_missing_stack_file_is_a_clear_error() {
    let p = Project::new();
    p.mlops(&["plan", "nosuch"])
        .code(1)
        .stderr(predicate::str::contains(
            "cannot read the stack file `stacks/nosuch.toml`",
        ))
        .stderr(predicate::str::contains("hint:"))
        .stderr(no_panic());
}

#[test]
fn plan_prints_the_full_create_plan_and_writes_no_state() {
    let p = Project::new();
    p.mlops(&["plan", "example"])
        .success()
        .stdout(predicate::str::contains("# vpc will be created"))
        .stdout(predicate::str::contains(
            "Plan: 52 to add, 0 to change, 0 to destroy.",
        ));
    assert!(!p.state_file().exists(), "plan must not write a state");
    assert!(
        !p.path("stacks/state/mlops.json.lock").exists(),
        "the lock is released"
    );
}

#[test]
fn detailed_exitcode_and_refresh_flag() {
    let p = Project::new();
    p.mlops(&["plan", "example", "--detailed-exitcode"]).code(2);
    p.mlops(&["plan", "example", "--refresh=false", "--detailed-exitcode"])
        .code(2);
    // A usage error is 1, never 2: pipelines read 2 as "changes present".
    p.mlops(&["plan", "example", "--refresh=maybe", "--detailed-exitcode"])
        .code(1)
        .stderr(no_panic());
}

#[test]
fn plan_json_is_machine_readable() {
    let p = Project::new();
    let out = p.mlops(&["plan", "example", "--json"]).success();
    let json: Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(json["format_version"], "1.1");
    assert_eq!(json["summary"]["add"], 52);
    assert_eq!(json["resource_changes"].as_array().unwrap().len(), 52);
    assert_eq!(json["resource_changes"][0]["action"], "create");
    // A part of a value known only after apply: null in `after`, its path in `after_unknown`.
    let account = json["resource_changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["address"] == "k8s.kserve-inference.ServiceAccount.kserve-sa")
        .unwrap();
    assert_eq!(
        account["after_unknown"],
        serde_json::json!([
            "cluster",
            "manifest/metadata/annotations/eks.amazonaws.com~1role-arn"
        ])
    );
    let manifest = &account["after"]["manifest"];
    assert_eq!(manifest["metadata"]["name"], "kserve-sa");
    assert!(manifest["metadata"]["annotations"]["eks.amazonaws.com/role-arn"].is_null());
}

#[test]
fn plan_out_saves_the_plan() {
    let p = Project::new();
    p.mlops(&["plan", "example", "--out", "plan.json"])
        .success();
    let saved: Value =
        serde_json::from_str(&fs::read_to_string(p.path("plan.json")).unwrap()).unwrap();
    assert_eq!(saved["plan"]["stack"], "mlops");
    assert_eq!(saved["plan"]["changes"].as_array().unwrap().len(), 52);
}

#[test]
fn an_unknown_target_names_the_closest_address() {
    let p = Project::new();
    p.mlops(&["plan", "example", "--target", "s3_bucket.model"])
        .code(1)
        .stderr(predicate::str::contains("did you mean `s3_bucket.models`?"));
}

#[test]
fn apply_and_destroy_without_a_terminal_refuse_and_change_nothing() {
    let p = Project::new();
    p.mlops(&["apply", "example"])
        .code(1)
        .stderr(predicate::str::contains(
            "needs confirmation, but no terminal is attached",
        ))
        .stderr(predicate::str::contains("--auto-approve"));
    assert!(!p.state_file().exists());
    let state = empty_state("mlops", 1).replace(
        "\"resources\": {}",
        r#""resources": {"s3_bucket.models": {"kind": "s3_bucket", "id": "b", "attrs": {"bucket": "b"}, "deps": []}}"#,
    );
    p.write_state(&state);
    p.mlops(&["destroy", "example", "--refresh=false"])
        .code(1)
        .stdout(predicate::str::contains(
            "Plan: 0 to add, 0 to change, 1 to destroy.",
        ))
        .stderr(predicate::str::contains("needs confirmation"));
    assert_eq!(fs::read_to_string(p.state_file()).unwrap(), state);
}

#[test]
fn a_corrupt_state_is_refused_and_left_alone() {
    let p = Project::new();
    let truncated = &empty_state("mlops", 1)[..40];
    p.write_state(truncated);
    p.mlops(&["plan", "example"])
        .code(1)
        .stderr(predicate::str::contains(
            "the state file `stacks/state/mlops.json` is not valid",
        ))
        .stderr(predicate::str::contains("line 1"))
        .stderr(no_panic());
    assert_eq!(fs::read_to_string(p.state_file()).unwrap(), truncated);
}

#[test]
fn a_state_of_a_newer_format_or_another_stack_is_refused() {
    let p = Project::new();
    p.write_state(&empty_state("mlops", 7));
    p.mlops(&["plan", "example"])
        .code(1)
        .stderr(predicate::str::contains(
            "has format version 7, newer than this mlops understands",
        ))
        .stderr(predicate::str::contains("hint: upgrade mlops"));
    p.write_state(&empty_state("team-b", 1));
    p.mlops(&["plan", "example"])
        .code(1)
        .stderr(predicate::str::contains(
            "belongs to stack `team-b`, not `mlops`",
        ));
}

#[test]
fn a_held_lock_blocks_with_the_holder_and_force_unlock_clears_it() {
    let p = Project::new();
    fs::create_dir_all(p.path("stacks/state")).unwrap();
    let lock = r#"{"id": "abc-123", "stack": "mlops", "operation": "apply", "user": "ci", "host": "runner-7", "pid": 4242, "created": 0}"#;
    fs::write(p.path("stacks/state/mlops.json.lock"), lock).unwrap();
    p.mlops(&["plan", "example"])
        .code(1)
        .stderr(predicate::str::contains(
            "is locked by ci@runner-7 (pid 4242, `apply`",
        ))
        .stderr(predicate::str::contains("mlops force-unlock mlops abc-123"));
    // A lock that names its stack file points the hint at that file.
    fs::write(
        p.path("stacks/state/mlops.json.lock"),
        lock.replace(
            "\"stack\": \"mlops\",",
            "\"stack\": \"mlops\", \"stack_file\": \"stacks/example.toml\",",
        ),
    )
    .unwrap();
    p.mlops(&["plan", "example"])
        .code(1)
        .stderr(predicate::str::contains(
            "mlops force-unlock stacks/example.toml abc-123",
        ));
    p.mlops(&["lock", "status", "example"])
        .success()
        .stdout(predicate::str::starts_with(
            "lock on `stacks/state/mlops.json`\n  locked by  ci@runner-7 (pid 4242)\n  operation  apply\n  lock id    abc-123\n",
        ))
        .stdout(predicate::str::contains("heartbeat").not());
    p.mlops(&["force-unlock", "example", "wrong"])
        .code(1)
        .stderr(predicate::str::contains("has another id than `wrong`"));
    assert!(p.path("stacks/state/mlops.json.lock").exists());
    p.mlops(&["force-unlock", "example", "abc-123"])
        .success()
        .stderr(predicate::str::contains("removed the lock"));
    p.mlops(&["lock", "status", "example"])
        .success()
        .stdout("no lock on `stacks/state/mlops.json`\n");
    p.mlops(&["plan", "example"]).success();
}

#[test]
fn backend_create_refuses_a_local_state() {
    let p = Project::new();
    p.mlops(&["backend", "create", "example"])
        .code(1)
        .stderr(predicate::str::contains(
            "stack `mlops` keeps its state in a local file, `stacks/state/mlops.json`",
        ))
        .stderr(predicate::str::contains("[state] backend = \"s3\""));
}

#[test]
fn graph_prints_dot_and_mermaid() {
    let p = Project::new();
    p.mlops(&["graph", "example"])
        .success()
        .stdout(predicate::str::starts_with("digraph mlops {"))
        .stdout(predicate::str::contains(
            "\"vpc\" -> \"subnet.public.us-west-2a\";",
        ));
    p.mlops(&["graph", "example", "--format", "mermaid"])
        .success()
        .stdout(predicate::str::starts_with("flowchart LR"));
}

#[test]
fn output_and_state_commands_read_the_state() {
    let p = Project::new();
    p.mlops(&["output", "example"])
        .success()
        .stderr(predicate::str::contains("has no outputs yet"));
    let state = state_with_a_vpc_and_a_bucket();
    p.write_state(&state);
    p.mlops(&["state", "list", "example"])
        .success()
        .stdout("s3_bucket.models\nvpc\n");
    p.mlops(&["state", "show", "example", "vpc"])
        .success()
        .stdout(predicate::str::contains("\"id\": \"vpc-1\""));
    p.mlops(&["state", "show", "example", "vpc.x"])
        .code(1)
        .stderr(predicate::str::contains("has no resource `vpc.x`"));
    let out = p.mlops(&["output", "example", "--json"]).success();
    let json: Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(json["vpc_id"], "vpc-1");
    assert_eq!(json["bucket_names"]["models"], "mlops-models-bucket");
}

/// A pipeline takes one value: `output STACK NAME` prints it as JSON, `--raw` a string as it is;
/// an unknown name is an error that lists the names there are.
#[test]
fn output_prints_one_value_raw_or_as_json() {
    let p = Project::new();
    let state = state_with_a_vpc_and_a_bucket();
    p.write_state(&state);
    p.mlops(&["output", "example", "vpc_id", "--raw"])
        .success()
        .stdout("vpc-1\n");
    p.mlops(&["output", "example", "vpc_id"])
        .success()
        .stdout("\"vpc-1\"\n");
    p.mlops(&["output", "example", "bucket_names", "--raw"])
        .success()
        .stdout("{\"models\":\"mlops-models-bucket\"}\n");
    let out = p
        .mlops(&["output", "example", "bucket_names", "--json"])
        .success();
    let json: Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(json["models"], "mlops-models-bucket");
    p.mlops(&["output", "example", "vpc_idd"])
        .code(1)
        .stdout("")
        .stderr(predicate::str::contains(
            "stack `mlops` has no output `vpc_idd`",
        ))
        .stderr(predicate::str::contains(
            "did you mean `vpc_id`? the outputs are `bucket_names`, `vpc_id`",
        ))
        .stderr(no_panic());
    p.mlops(&["output", "example", "--raw"]).code(1);
}

/// `mlops plan --json | head -c1`: the reader of stdout goes away before the plan is written.
/// The OS then fails every write with EPIPE (Rust ignores SIGPIPE); mlops must end quietly,
/// as ripgrep does, with the exit code of the plan and no panic.
#[test]
fn a_closed_stdout_pipe_ends_the_output_quietly() {
    let p = Project::new();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_mlops"))
        .current_dir(p.path(""))
        .env("MLOPS_MANIFESTS_DIR", FIXTURE_ADDONS)
        .env_remove("KUBECONFIG")
        .args(["plan", "example", "--json"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!stderr.contains("Broken pipe"), "{stderr}");
    // The shell's own pipe, as a user types it: `head` reads one byte and exits.
    let shell = std::process::Command::new("sh")
        .current_dir(p.path(""))
        .env("MLOPS_MANIFESTS_DIR", FIXTURE_ADDONS)
        .arg("-c")
        .arg(format!(
            "{} plan example --json | head -c1",
            env!("CARGO_BIN_EXE_mlops")
        ))
        .output()
        .unwrap();
    assert_eq!(shell.stdout, b"{");
    let stderr = String::from_utf8_lossy(&shell.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// Values AWS would refuse (EKS's 450 nodes per managed node group, a region of no partition,
/// a NUL byte): `apply --auto-approve` stops at the file and line with exit 1 before any AWS
/// call. The endpoint is a listener that records connections: it must see none, and no state
/// is written.
/// `--> stacks/example.toml:LINE:COLUMN` of the first `needle` in `text`, as diagnostics print it.
fn location_of(text: &str, needle: &str) -> String {
    let at = text.find(needle).expect("the needle is in the text");
    let line = text[..at].matches('\n').count() + 1;
    let column = at - text[..at].rfind('\n').map_or(0, |n| n + 1) + 1;
    format!("--> stacks/example.toml:{line}:{column}")
}

#[test]
fn values_beyond_aws_limits_are_refused_before_any_aws_call() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let too_big = EXAMPLE
        .replace("max = 3", "max = 4294967296")
        .replace("region = \"us-west-2\"", "region = \"us-wset-2\"")
        .replace("us-west-2a", "us-wset-2a")
        .replace("us-west-2b", "us-wset-2b");
    let p = Project::with_stack(&too_big);
    p.mlops(&["apply", "example", "--auto-approve", "--endpoint-url", &endpoint])
        .code(1)
        .stderr(predicate::str::contains(location_of(&too_big, "4294967296")))
        .stderr(predicate::str::contains(
            "node group `default`: `max` 4294967296 is more nodes than EKS allows in one managed node group",
        ))
        .stderr(predicate::str::contains(
            "`Nodes per managed node group` is 450",
        ))
        .stderr(predicate::str::contains(location_of(&too_big, "\"us-wset-2\"")))
        .stderr(predicate::str::contains(
            "region `us-wset-2` is not valid: no AWS partition has this region",
        ))
        .stderr(predicate::str::contains("did you mean `us-west-2`?"))
        .stderr(no_panic());

    let with_nul = EXAMPLE.replace("name = \"mlops-cluster\"", "name = \"mlops\0cluster\"");
    let q = Project::with_stack(&with_nul);
    q.mlops(&[
        "apply",
        "example",
        "--auto-approve",
        "--endpoint-url",
        &endpoint,
    ])
    .code(1)
    .stderr(predicate::str::contains(
        "the file has a NUL byte (U+0000) here",
    ))
    .stderr(predicate::str::contains(location_of(&with_nul, "\0")))
    .stderr(predicate::str::contains("key with no value").not())
    .stderr(no_panic());

    assert!(
        listener.accept().is_err(),
        "an AWS call reached the endpoint"
    );
    for project in [&p, &q] {
        assert!(!project.state_file().exists());
        assert!(!project.path("state").exists());
    }
}

/// The local state is found from the stack file, not from the working folder: the same file
/// planned from the project's folder and from `stacks/` gives the same plan, against the state
/// beside it (one resource already there, so neither plan is an all-create).
#[test]
fn plans_of_one_stack_file_from_two_working_folders_agree() {
    let p = Project::new();
    let state = empty_state("mlops", 1).replace(
        "\"resources\": {}",
        r#""resources": {"s3_bucket.models": {"kind": "s3_bucket", "id": "mlops-models-bucket", "attrs": {"bucket": "mlops-models-bucket", "versioning": true, "encryption": "AES256", "force_destroy": false, "tags": {}}, "deps": []}}"#,
    );
    p.write_state(&state);
    let plan_from = |dir: &str, stack: &str| {
        let out = Command::cargo_bin("mlops")
            .unwrap()
            .current_dir(p.path(dir))
            .env("MLOPS_MANIFESTS_DIR", FIXTURE_ADDONS)
            .env_remove("KUBECONFIG")
            .args(["plan", stack, "--refresh=false", "--json"])
            .write_stdin("")
            .assert()
            .success();
        serde_json::from_slice::<Value>(&out.get_output().stdout).unwrap()
    };
    let from_root = plan_from("", "stacks/example.toml");
    let from_stacks = plan_from("stacks", "example.toml");
    assert_eq!(from_root, from_stacks);
    assert_eq!(from_root["state"]["serial"], 3, "{from_root}");
    let text = from_root.to_string();
    assert!(text.contains("\"s3_bucket.models\""), "{text}");
    // Nothing was written where the old rule looked, in either folder.
    assert!(!p.path("state").exists());
    assert!(!p.path("stacks/stacks").exists());
}

/// A state where mlops looked before (relative to the working folder) is moved beside the
/// stack file by the first run that takes the lock, with a message; its content is unchanged.
#[test]
fn a_state_where_the_old_rule_put_it_is_moved_with_a_message() {
    let p = Project::new();
    let state = empty_state("mlops", 1);
    fs::create_dir_all(p.path("state")).unwrap();
    fs::write(p.path("state/mlops.json"), &state).unwrap();
    p.mlops(&["output", "example"])
        .success()
        .stderr(predicate::str::contains("has no outputs yet"));
    assert!(p.path("state/mlops.json").exists(), "reading moves nothing");
    p.mlops(&["plan", "example", "--refresh=false"])
        .success()
        .stderr(predicate::str::contains(
            "moved the state of stack `mlops` from `state/mlops.json` to `stacks/state/mlops.json`",
        ));
    assert!(!p.path("state/mlops.json").exists());
    assert_eq!(fs::read_to_string(p.state_file()).unwrap(), state);
    p.mlops(&["plan", "example", "--refresh=false"])
        .success()
        .stderr(predicate::str::contains("moved the state").not());
}

#[test]
fn no_color_is_respected() {
    let p = Project::new();
    p.mlops(&["plan", "example", "--no-color"])
        .success()
        .stdout(predicate::str::contains("\x1b[").not());
}

#[test]
fn addons_list_shows_the_catalogue() {
    let p = Project::new();
    p.mlops(&["addons", "list"])
        .success()
        .stdout(predicate::str::contains(
            "cert-manager         v1.19.4   cert-manager.yaml",
        ))
        .stdout(predicate::str::contains(
            "kserve               v0.15.0   kserve.yaml, kserve-cluster-resources.yaml",
        ))
        .stdout(predicate::str::contains(
            "nvidia-device-plugin v0.17.1   (a template compiled in)",
        ));
}

#[test]
fn addons_fetch_copies_a_verified_bundle_and_refuses_a_tampered_one() {
    let p = Project::new();
    p.mlops(&[
        "addons",
        "fetch",
        "--out",
        "bundle",
        "--stack",
        "example",
        "--manifests-dir",
        FIXTURE_ADDONS,
    ])
    .success()
    .stderr(predicate::str::contains(
        "wrote 7 verified manifest file(s) of 4 release(s)",
    ));
    let copied = fs::read(p.path("bundle/kserve/v0.16.0/kserve.yaml")).unwrap();
    assert_eq!(
        copied,
        fs::read(format!("{FIXTURE_ADDONS}/kserve/v0.16.0/kserve.yaml")).unwrap()
    );

    let tampered = p.path("bundle/istio/1.29.1/install.yaml");
    let mut bytes = fs::read(&tampered).unwrap();
    bytes.extend_from_slice(b"\n---\n");
    fs::write(&tampered, bytes).unwrap();
    p.mlops(&[
        "addons",
        "fetch",
        "--out",
        "again",
        "--stack",
        "example",
        "--manifests-dir",
        "bundle",
    ])
    .code(1)
    .stderr(predicate::str::contains(
        "the manifest `install.yaml` of istio 1.29.1",
    ))
    .stderr(predicate::str::contains("has the SHA-256 digest"))
    .stderr(no_panic());
    // A plan reads the add-ons' manifests for their inventories: it refuses the same way.
    p.mlops(&["plan", "example", "--manifests-dir", "bundle"])
        .code(1)
        .stderr(predicate::str::contains(
            "error: the manifest `install.yaml` of istio 1.29.1 from",
        ))
        .stderr(no_panic());
    assert!(!p.state_file().exists());
    p.mlops(&[
        "addons",
        "fetch",
        "--out",
        "x",
        "--manifests-dir",
        "nowhere",
    ])
    .code(1)
    .stderr(predicate::str::contains(
        "`nowhere` has no `cert-manager.yaml` for cert-manager v1.16.1",
    ))
    .stderr(predicate::str::contains("mlops addons fetch --out DIR"));
}

/// A static file server on loopback that serves `root`, stopped when dropped.
struct Mirror(std::process::Child, u16);

impl Mirror {
    fn serve(root: &std::path::Path) -> Mirror {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = std::process::Command::new("python3")
            .args([
                "-m",
                "http.server",
                "--bind",
                "127.0.0.1",
                &port.to_string(),
                "--directory",
            ])
            .arg(root)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "the mirror did not start"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Mirror(child, port)
    }
}

impl Drop for Mirror {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn manifests_are_downloaded_once_verified_and_then_served_from_the_cache() {
    let p = Project::new();
    // A mirror holding the catalogue's paths; one file is altered to show it is checked.
    let mirror_root = p.path("mirror");
    for (rev, release, files) in [
        (
            "009c88084074904c7743384ff50d3bd70012ef55/common/cert-manager/base/upstream",
            "cert-manager/v1.19.4",
            vec!["cert-manager.yaml"],
        ),
        (
            "009c88084074904c7743384ff50d3bd70012ef55/common/istio/istio-crds/base",
            "istio/1.29.1",
            vec!["crd.yaml"],
        ),
        (
            "009c88084074904c7743384ff50d3bd70012ef55/common/istio/istio-install/base",
            "istio/1.29.1",
            vec!["install.yaml"],
        ),
        (
            "009c88084074904c7743384ff50d3bd70012ef55/common/knative/knative-serving/base/upstream",
            "knative-serving/1.21.1",
            vec!["serving-core.yaml", "net-istio.yaml"],
        ),
        (
            "009c88084074904c7743384ff50d3bd70012ef55/applications/kserve/kserve",
            "kserve/v0.16.0",
            vec!["kserve.yaml", "kserve-cluster-resources.yaml"],
        ),
    ] {
        fs::create_dir_all(mirror_root.join(rev)).unwrap();
        for file in files {
            fs::copy(
                format!("{FIXTURE_ADDONS}/{release}/{file}"),
                mirror_root.join(rev).join(file),
            )
            .unwrap();
        }
    }
    let fetch = |mirror: &str| {
        Command::cargo_bin("mlops")
            .unwrap()
            .current_dir(p.dir.path())
            .env("XDG_CACHE_HOME", p.path("cache"))
            .env("MLOPS_ADDONS_MIRROR", mirror)
            .env_remove("MLOPS_MANIFESTS_DIR")
            .args(["addons", "fetch", "--out", "bundle", "--stack", "example"])
            .assert()
    };
    {
        let server = Mirror::serve(&mirror_root);
        let url = format!("http://127.0.0.1:{}", server.1);
        fetch(&url).success().stderr(predicate::str::contains(
            "wrote 7 verified manifest file(s)",
        ));
        assert!(p
            .path("cache/mlops/manifests/kserve/v0.16.0/kserve.yaml")
            .exists());

        let bad = mirror_root.join(
            "009c88084074904c7743384ff50d3bd70012ef55/applications/kserve/kserve/kserve.yaml",
        );
        fs::write(&bad, "kind: Namespace\n").unwrap();
        fs::remove_file(p.path("cache/mlops/manifests/kserve/v0.16.0/kserve.yaml")).unwrap();
        fetch(&url).code(1).stderr(predicate::str::contains(
            "the manifest `kserve.yaml` of kserve v0.16.0 from `http://127.0.0.1:",
        ));
        fs::copy(format!("{FIXTURE_ADDONS}/kserve/v0.16.0/kserve.yaml"), &bad).unwrap();
        fetch(&url).success();
    }
    // The mirror is gone: everything comes from the cache now.
    fetch("http://127.0.0.1:9").success();
    fs::remove_file(p.path("cache/mlops/manifests/istio/1.29.1/crd.yaml")).unwrap();
    fetch("http://127.0.0.1:9")
        .code(1)
        .stderr(predicate::str::contains(
            "cannot download `http://127.0.0.1:9/009c8808",
        ))
        .stderr(predicate::str::contains("--manifests-dir"));
}

#[test]
fn a_saved_plan_is_shown_and_refused_once_stale() {
    let p = Project::new();
    p.mlops(&["plan", "example", "--out", "plan.json"])
        .success();
    p.mlops(&["show", "plan.json"])
        .success()
        .stdout(predicate::str::contains(
            "Plan: 52 to add, 0 to change, 0 to destroy.",
        ));
    let out = p.mlops(&["show", "plan.json", "--json"]).success();
    let json: Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(json["summary"]["add"], 52);
    p.mlops(&["show", "stacks/example.toml"])
        .code(1)
        .stderr(predicate::str::contains(
            "is not a plan saved by `mlops plan --out`",
        ));

    // The stack file changed: refused before anything is read or written.
    let original = fs::read_to_string(p.path("stacks/example.toml")).unwrap();
    fs::write(
        p.path("stacks/example.toml"),
        original.replace("desired = 2", "desired = 3"),
    )
    .unwrap();
    p.mlops(&["apply", "plan.json"])
        .code(1)
        .stderr(predicate::str::contains(
            "`stacks/example.toml` changed since the plan was made",
        ));
    fs::write(p.path("stacks/example.toml"), &original).unwrap();

    // The state moved on.
    p.write_state(&empty_state("mlops", 1));
    p.mlops(&["apply", "plan.json"])
        .code(1)
        .stderr(predicate::str::contains(
            "the state changed since the plan was made (serial 0 then, 3 now)",
        ));
    fs::remove_file(p.state_file()).unwrap();

    // Another stack's plan.
    let text = fs::read_to_string(p.path("plan.json")).unwrap();
    fs::write(
        p.path("other.json"),
        text.replace("\"stack\": \"mlops\"", "\"stack\": \"other\""),
    )
    .unwrap();
    p.mlops(&["apply", "other.json"])
        .code(1)
        .stderr(predicate::str::contains(
            "the plan is for stack `other`, not `mlops`",
        ));
    assert!(!p.state_file().exists(), "no refusal wrote a state");
}

#[test]
fn validate_all_reports_every_stack_and_the_collisions_between_them() {
    let p = Project::new();
    let team = |name: &str, bucket: &str, cidr: &str| {
        EXAMPLE
            .replace("name = \"mlops\"", &format!("name = \"{name}\""))
            .replace(
                "path = \"state/mlops.json\"",
                &format!("path = \"state/{name}.json\""),
            )
            .replace(
                "name = \"mlops-cluster\"",
                &format!("name = \"{name}-cluster\""),
            )
            .replace(
                "[repositories.wine-model]",
                &format!("[repositories.{name}-wine]"),
            )
            .replace("mlops-models-bucket", bucket)
            .replace("10.0.", cidr)
    };
    fs::remove_file(p.path("stacks/example.toml")).unwrap();
    fs::write(
        p.path("stacks/team-a.toml"),
        team("team-a", "shared-models", "10.1."),
    )
    .unwrap();
    fs::write(
        p.path("stacks/team-b.toml"),
        team("team-b", "shared-models", "10.2."),
    )
    .unwrap();
    fs::write(
        p.path("stacks/team-c.toml"),
        team("team-c", "c-models", "10.2."),
    )
    .unwrap();
    p.mlops(&["validate", "--all"])
        .code(1)
        .stderr(predicate::str::contains("`stacks/team-a.toml` is valid"))
        .stderr(predicate::str::contains(
            "error: stacks `team-a` (stacks/team-a.toml) and `team-b` (stacks/team-b.toml) both use the S3 bucket name `shared-models`",
        ))
        .stderr(predicate::str::contains("warning: stacks `team-b` (stacks/team-b.toml) and `team-c` (stacks/team-c.toml) have overlapping VPC CIDRs"))
        .stderr(predicate::str::contains("0 invalid stack(s), 1 collision(s) between stacks"));
    p.mlops(&["validate", "--stacks", "stacks/team-[ac]*.toml"])
        .code(1)
        .stderr(predicate::str::contains("no stack file matches"));
    p.mlops(&["validate", "--stacks", "stacks/team-?.toml"])
        .code(1);
    fs::write(
        p.path("stacks/team-b.toml"),
        team("team-b", "b-models", "10.3.").replace("desired = 2", "desired = 9"),
    )
    .unwrap();
    p.mlops(&["validate", "--all"])
        .code(1)
        .stderr(predicate::str::contains("min 1 <= desired 9 <= max 3"))
        .stderr(predicate::str::contains(
            "1 invalid stack(s), 0 collision(s)",
        ));
    p.mlops(&["validate"])
        .code(1)
        .stderr(predicate::str::contains("--all"));
}

#[test]
fn plan_all_plans_every_stack_and_sums_them_up() {
    let p = Project::new();
    let second = EXAMPLE
        .replace("name = \"mlops\"", "name = \"team-b\"")
        .replace(
            "path = \"state/mlops.json\"",
            "path = \"state/team-b.json\"",
        );
    fs::write(p.path("stacks/team-b.toml"), &second).unwrap();
    let out = p
        .mlops(&["plan", "--all", "--detailed-exitcode"])
        .code(2)
        .stdout(predicate::str::contains(
            "== stack `mlops` (stacks/example.toml)",
        ))
        .stdout(predicate::str::contains(
            "== stack `team-b` (stacks/team-b.toml)",
        ))
        .stderr(predicate::str::contains(
            "stack   result   add  change  destroy  time",
        ))
        .stderr(predicate::str::is_match(r"mlops   changes   52       0        0  \d").unwrap());
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert_eq!(stdout.matches("Plan: 52 to add").count(), 2);

    let json = p
        .mlops(&["plan", "--stacks", "stacks/team-*.toml", "--json"])
        .success();
    let lines: Vec<Value> = String::from_utf8_lossy(&json.get_output().stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["stack"], "team-b");

    // A broken stack fails on its own; the others are still planned, and the exit code is 1.
    fs::write(
        p.path("stacks/team-b.toml"),
        second.replace("desired = 2", "desired = 9"),
    )
    .unwrap();
    p.mlops(&["plan", "--all", "--detailed-exitcode"])
        .code(1)
        .stdout(predicate::str::contains("== stack `mlops`"))
        .stderr(predicate::str::contains("== stacks/team-b.toml"))
        .stderr(predicate::str::contains("stacks/team-b.toml  failed"));
    p.mlops(&["plan", "--all", "--out", "x.json"])
        .code(1)
        .stderr(predicate::str::contains(
            "`--out`, `--target`, `--replace` and `--refresh-only` apply to one stack",
        ));
}

#[test]
fn the_shipped_team_stacks_extend_their_base_and_validate_together() {
    let repo = env!("CARGO_MANIFEST_DIR");
    Command::cargo_bin("mlops")
        .unwrap()
        .current_dir(repo)
        .args(["validate", "--all"])
        .assert()
        .success()
        .stderr(predicate::str::contains(
            "`stacks/team-a.toml` is valid: stack `team-a`",
        ))
        .stderr(predicate::str::contains(
            "`stacks/team-b.toml` is valid: stack `team-b`",
        ))
        .stderr(predicate::str::contains("base.toml").not());
    // The team's override and the base's defaults both reach the plan.
    Command::cargo_bin("mlops")
        .unwrap()
        .current_dir(repo)
        .env("MLOPS_MANIFESTS_DIR", FIXTURE_ADDONS)
        .args(["plan", "team-a", "--json", "--refresh=false"])
        .assert()
        .success()
        .stdout(predicate::str::contains("\"max_size\":5"))
        .stdout(predicate::str::contains("\"disk_size\":50"));
}

#[test]
fn plan_format_markdown_is_ready_for_a_pull_request_comment() {
    let p = Project::new();
    p.mlops(&["plan", "example", "--format", "markdown"])
        .success()
        .stdout(predicate::str::starts_with(
            "### `mlops plan`: stack `mlops`",
        ))
        .stdout(predicate::str::contains(
            "**Plan: 52 to add, 0 to change, 0 to destroy.**",
        ))
        .stdout(predicate::str::contains(
            "<details><summary>Full plan</summary>",
        ))
        .stdout(predicate::str::contains("```mermaid\nflowchart LR"));
    p.mlops(&["plan", "example", "--format", "markdown", "--json"])
        .code(1);
}

#[test]
fn state_pull_and_push_guard_the_history() {
    let p = Project::new();
    p.mlops(&["state", "pull", "example"])
        .code(1)
        .stderr(predicate::str::contains("stack `mlops` has no state yet"));
    p.write_state(&empty_state("mlops", 1));
    let pulled = p.mlops(&["state", "pull", "example"]).success();
    let backup = String::from_utf8_lossy(&pulled.get_output().stdout).into_owned();
    assert!(backup.contains("\"lineage\": \"l-1\""));
    fs::write(p.path("backup.json"), &backup).unwrap();

    // Another history is refused, then accepted with --force.
    fs::write(p.path("other.json"), backup.replace("l-1", "l-2")).unwrap();
    p.mlops(&["state", "push", "example", "other.json"])
        .code(1)
        .stderr(predicate::str::contains(
            "is another history of stack `mlops`",
        ));
    p.mlops(&["state", "push", "example", "other.json", "--force"])
        .success()
        .stderr(predicate::str::contains("(serial 4)"));
    // An older serial is refused; with --force the serial still moves forward.
    p.mlops(&["state", "push", "example", "backup.json"])
        .code(1)
        .stderr(predicate::str::contains("another history"));
    fs::write(p.path("old.json"), backup.replace("l-1", "l-2")).unwrap();
    p.mlops(&["state", "push", "example", "old.json"])
        .code(1)
        .stderr(predicate::str::contains(
            "is older than the current state (serial 3 < 4)",
        ));
    p.mlops(&["state", "push", "example", "old.json", "--force"])
        .success()
        .stderr(predicate::str::contains("(serial 5)"));
    // Another stack's state is never pushed.
    fs::write(p.path("foreign.json"), empty_state("team-b", 1)).unwrap();
    p.mlops(&["state", "push", "example", "foreign.json", "--force"])
        .code(1)
        .stderr(predicate::str::contains(
            "belongs to stack `team-b`, not `mlops`",
        ));
    assert!(!p.path("stacks/state/mlops.json.lock").exists());
}

/// A cluster that cannot be reached is a clear error at plan time, before anything changes.
#[test]
fn an_unreachable_cluster_is_named_at_plan_time() {
    let p = Project::new();
    let kubeconfig = p.path("kubeconfig");
    fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\ncurrent-context: c\nclusters:\n- name: c\n  cluster: {server: 'http://127.0.0.1:9'}\nusers:\n- name: u\n  user: {token: t}\ncontexts:\n- name: c\n  context: {cluster: c, user: u}\n",
    )
    .unwrap();
    p.mlops(&[
        "plan",
        "example",
        "--kubeconfig",
        kubeconfig.to_str().unwrap(),
    ])
    .code(1)
    .stderr(predicate::str::contains(
        "error: cannot reach the Kubernetes API server of `http://127.0.0.1:9/` (kubeconfig `",
    ))
    .stderr(predicate::str::contains("Connection refused"))
    .stderr(predicate::str::contains(
        "hint: check that the cluster's endpoint is reachable",
    ))
    .stderr(no_panic());
    assert!(!p.state_file().exists());
}

/// A workload that is also an add-on's object (Knative's `config-domain`, tuned by hand)
/// would have the add-on and the workload take each other's fields back on every apply, and
/// an upgrade's prune delete it: the plan refuses it, naming the workload's file and line and
/// the add-on, before anything is written.
#[test]
fn a_workload_that_is_an_addons_object_is_refused_naming_both() {
    let p = Project::new();
    let text = fs::read_to_string(p.path("stacks/example.toml")).unwrap();
    fs::write(
        p.path("stacks/example.toml"),
        text.replace(
            r#"paths = ["k8s/wine-model.yaml", "k8s/team-a.yaml"]"#,
            r#"paths = ["k8s/wine-model.yaml", "k8s/team-a.yaml", "k8s/domain.yaml"]"#,
        ),
    )
    .unwrap();
    fs::write(
        p.path("stacks/k8s/domain.yaml"),
        "# the cluster's domain, set by hand\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: config-domain\n  namespace: knative-serving\ndata:\n  example.com: \"\"\n",
    )
    .unwrap();
    p.mlops(&["plan", "stacks/example.toml", "--refresh=false"])
        .code(1)
        .stderr(predicate::str::contains(
            "error: `k8s.knative-serving.ConfigMap.config-domain` (stacks/k8s/domain.yaml:2) is ConfigMap knative-serving/config-domain, an object of `addon.knative_serving` too",
        ))
        .stderr(predicate::str::contains("hint: an add-on's objects are the add-on's"))
        .stderr(no_panic());
    assert!(!p.state_file().exists());
}

#[test]
fn plan_lists_the_workloads_after_the_addons_with_their_values_written_in() {
    let p = Project::new();
    let out = p
        .mlops(&[
            "plan",
            "stacks/example.toml",
            "--refresh=false",
            "--no-color",
        ])
        .success()
        .get_output()
        .stdout
        .clone();
    let out = String::from_utf8(out).unwrap();
    let at = |needle: &str| {
        out.find(needle)
            .unwrap_or_else(|| panic!("`{needle}` not in the plan:\n{out}"))
    };
    let inference = at("# k8s.kserve-inference.InferenceService.wine-model will be created");
    assert!(at("# addon.kserve will be created") < inference);
    assert!(at("# k8s.Namespace.kserve-inference will be created") < inference);
    assert!(at("# k8s.kserve-inference.ServiceAccount.kserve-sa will be created") < inference);
    assert!(at("# k8s.team-a.ResourceQuota.team-a-quota will be created") > 0);
    // Values from the spec are written in; the role ARN waits for the role.
    assert!(out.contains(r#""storageUri"      = "s3://mlops-models-bucket/wine-model""#));
    assert!(out.contains(r#""serviceAccountName" = "kserve-sa""#));
    assert!(out.contains(r#""eks.amazonaws.com/role-arn" = (known after apply)"#));
    assert!(!out.contains("${"), "every ${{...}} is resolved:\n{out}");
}

#[test]
fn bad_workloads_are_refused_naming_the_file_and_line_and_nothing_is_written() {
    let p = Project::new();
    let manifest = p.path("stacks/k8s/team-a.yaml");
    let good = fs::read_to_string(&manifest).unwrap();
    let line_of =
        |text: &str, needle: &str| text.lines().position(|l| l.contains(needle)).unwrap() + 1;

    let unknown = good.replace("${stack.name}", "${stack.nme}");
    fs::write(&manifest, &unknown).unwrap();
    p.mlops(&["plan", "example"])
        .code(1)
        .stderr(predicate::str::contains(format!(
            "stacks/k8s/team-a.yaml:{}:",
            line_of(&unknown, "${stack.nme}")
        )))
        .stderr(predicate::str::contains("did you mean `${stack.name}`?"))
        .stderr(no_panic());

    let elsewhere = good.replace("namespace: team-a\n", "namespace: team-x\n");
    fs::write(&manifest, &elsewhere).unwrap();
    p.mlops(&["plan", "example", "--refresh=false"])
        .code(1)
        .stderr(predicate::str::contains(format!(
            "stacks/k8s/team-a.yaml:{}: ResourceQuota team-x/team-a-quota is in the namespace `team-x`, which no manifest of the stack creates",
            line_of(&elsewhere, "kind: ResourceQuota") - 1
        )))
        .stderr(predicate::str::contains("hint: add the Namespace"))
        .stderr(no_panic());
    p.mlops(&["apply", "example", "--auto-approve"])
        .code(1)
        .stderr(predicate::str::contains("no manifest of the stack creates"));
    assert!(!p.state_file().exists(), "nothing is applied");
}

/// `mlops status` needs a cluster in the state: a stack never applied, or applied without its
/// cluster yet, is refused with what to run, and nothing is written.
#[test]
fn status_without_a_cluster_in_the_state_is_refused() {
    let p = Project::new();
    p.mlops(&["status", "example"])
        .code(1)
        .stdout(predicate::str::is_empty())
        .stderr(predicate::str::contains(
            "error: stack `mlops` was never applied: there is no state at `",
        ))
        .stderr(predicate::str::contains(
            "hint: run `mlops apply stacks/example.toml` to create it first",
        ))
        .stderr(no_panic());
    assert!(!p.state_file().exists());

    p.write_state(&empty_state("mlops", 1));
    p.mlops(&["status", "example", "--json"])
        .code(1)
        .stdout(predicate::str::is_empty())
        .stderr(predicate::str::contains(
            "error: stack `mlops` has no EKS cluster in its state yet",
        ))
        .stderr(predicate::str::contains("hint: run `mlops apply"))
        .stderr(no_panic());
    assert_eq!(
        fs::read_to_string(p.state_file()).unwrap(),
        empty_state("mlops", 1)
    );
}

/// The README's first step on a machine with no network and no manifest cache: the plan of the
/// example names every add-on by version, its objects not yet known, says how to get the
/// manifests, and exits 0. Nothing answers at the mirror's address (port 9 is closed), as
/// nothing answers offline. A saved plan must be one an apply can carry out, so `--out` still
/// refuses to go without the manifests.
#[test]
fn the_example_plans_offline_with_an_empty_cache() {
    let p = Project::new();
    let offline = |args: &[&str]| {
        Command::cargo_bin("mlops")
            .unwrap()
            .current_dir(p.dir.path())
            .env("XDG_CACHE_HOME", p.path("empty-cache"))
            .env("MLOPS_ADDONS_MIRROR", "http://127.0.0.1:9")
            .env_remove("MLOPS_MANIFESTS_DIR")
            .env_remove("KUBECONFIG")
            .args(args)
            .write_stdin("")
            .assert()
    };
    offline(&["plan", "example"])
        .success()
        .stdout(predicate::str::contains("+ addon.kserve {"))
        .stdout(predicate::str::contains("+ objects = (known after apply)"))
        .stdout(predicate::str::contains(r#"version = "v0.16.0""#))
        .stderr(predicate::str::contains(
            "warning: addon.cert_manager: cannot download `http://127.0.0.1:9/",
        ))
        .stderr(predicate::str::contains("mlops addons fetch --out DIR"))
        .stderr(no_panic());
    offline(&["plan", "example", "--out", "plan.json"])
        .code(1)
        .stderr(predicate::str::contains("cannot download"));
    assert!(!p.path("plan.json").exists());
    assert!(!p.state_file().exists());
}

/// `state mv` and `state rm` edit the state alone, as Terraform's do: a move renames the
/// address and every dependency on it; a removal forgets the object (it stays in AWS). Bad
/// addresses are refused with the closest one, and a refused or dry run writes nothing.
#[test]
fn state_mv_and_rm_rename_and_forget_addresses() {
    let p = Project::new();
    let state = empty_state("mlops", 1).replace(
        "\"resources\": {}",
        r#""resources": {
            "vpc": {"kind": "vpc", "id": "vpc-1", "attrs": {}, "deps": []},
            "iam_role.irsa.x": {"kind": "iam_role", "id": "r", "attrs": {}, "deps": ["s3_bucket.models"]},
            "s3_bucket.models": {"kind": "s3_bucket", "id": "b", "attrs": {"bucket": "mlops-models-bucket"}, "deps": []}}"#,
    );
    p.write_state(&state);
    let read =
        || -> Value { serde_json::from_str(&fs::read_to_string(p.state_file()).unwrap()).unwrap() };

    p.mlops(&[
        "state",
        "mv",
        "example",
        "s3_bucket.models",
        "s3_bucket.models-v2",
        "--dry-run",
    ])
    .success()
    .stdout("# s3_bucket.models has moved to s3_bucket.models-v2\n")
    .stderr(predicate::str::contains(
        "dry run: the state of stack `mlops` was not changed",
    ));
    assert_eq!(read()["serial"], 3);

    p.mlops(&[
        "state",
        "mv",
        "example",
        "s3_bucket.models",
        "s3_bucket.models-v2",
    ])
    .success()
    .stdout("# s3_bucket.models has moved to s3_bucket.models-v2\n")
    .stderr(predicate::str::contains(
        "(serial 4); nothing was changed in AWS",
    ));
    let moved = read();
    assert_eq!(moved["resources"]["s3_bucket.models-v2"]["id"], "b");
    assert!(moved["resources"].get("s3_bucket.models").is_none());
    assert_eq!(
        moved["resources"]["iam_role.irsa.x"]["deps"],
        serde_json::json!(["s3_bucket.models-v2"])
    );
    assert_eq!(
        moved["outputs"]["bucket_names"]["models-v2"],
        "mlops-models-bucket"
    );

    for (args, message) in [
        (
            vec!["s3_bucket.models", "s3_bucket.x"],
            "the state of stack `mlops` has no resource `s3_bucket.models`",
        ),
        (
            vec!["s3_bucket.models-v2", "vpc"],
            "`s3_bucket.models-v2` is a `s3_bucket`; it cannot move to `vpc`",
        ),
        (
            vec!["s3_bucket.models-v2", "iam_role.irsa.x"],
            "cannot move",
        ),
        (vec!["vpc", "vpc"], "the state already has a resource `vpc`"),
    ] {
        let mut all = vec!["state", "mv", "example"];
        all.extend(args);
        p.mlops(&all)
            .code(1)
            .stderr(predicate::str::contains(message).and(no_panic()));
    }
    p.mlops(&[
        "state",
        "mv",
        "example",
        "s3_bucket.models-v3",
        "s3_bucket.x",
    ])
    .code(1)
    .stderr(predicate::str::contains(
        "did you mean `s3_bucket.models-v2`?",
    ));
    assert_eq!(read()["serial"], 4);

    p.mlops(&["state", "rm", "example", "vpc"])
        .success()
        .stdout("# vpc will be forgotten: removed from the state, `vpc-1` stays in AWS\n");
    let forgotten = read();
    assert!(forgotten["resources"].get("vpc").is_none());
    assert_eq!(forgotten["serial"], 5);
    assert!(forgotten["outputs"].get("vpc_id").is_none());
    p.mlops(&["state", "rm", "example", "vpc"])
        .code(1)
        .stderr(predicate::str::contains("has no resource `vpc`"));
    assert!(!p.path("state/mlops.json.lock").exists());
}

/// `[[moved]]` entries are checked before anything runs: known kinds, the same kind at both
/// ends, each address once, and a `to` that the stack has; each error names its line.
#[test]
fn bad_moved_entries_are_refused_with_their_line() {
    let moved = |entries: &str| format!("{EXAMPLE}\n{entries}");
    let line = EXAMPLE.lines().count() + 2;
    for (entries, message, at) in [
        (
            "[[moved]]\nfrom = \"s3_bucket.old\"\nto = \"ecr_repository.old\"\n",
            "a `s3_bucket` cannot move to a `ecr_repository`",
            format!("example.toml:{}:6", line + 2),
        ),
        (
            "[[moved]]\nfrom = \"bucket.old\"\nto = \"s3_bucket.models\"\n",
            "`bucket.old` is not a resource address",
            format!("example.toml:{}:8", line + 1),
        ),
        (
            "[[moved]]\nfrom = \"s3_bucket.old\"\nto = \"s3_bucket.model\"\n",
            "`[[moved]]` to `s3_bucket.model`, which is not a resource of the stack",
            format!("example.toml:{line}:"),
        ),
        (
            "[[moved]]\nfrom = \"s3_bucket.a\"\nto = \"s3_bucket.models\"\n[[moved]]\nfrom = \"s3_bucket.b\"\nto = \"s3_bucket.models\"\n",
            "`s3_bucket.models` is named by more than one `[[moved]]` entry",
            format!("example.toml:{}:6", line + 5),
        ),
        (
            "[[moved]]\nfrom = \"s3_bucket.models\"\nto = \"s3_bucket.models\"\nby = 1\n",
            "unknown field `by`",
            format!("example.toml:{}:1", line + 3),
        ),
    ] {
        let p = Project::with_stack(&moved(entries));
        p.mlops(&["plan", "example"]).code(1).stdout("").stderr(
            predicate::str::contains(message)
                .and(predicate::str::contains(at.as_str()))
                .and(no_panic()),
        );
    }
}

/// The gate's flags: `--allow-replace` only on `apply`, `--replace` and `--refresh-only` not
/// together, `--replace` of an address the state does not hold refused before any call, and
/// the one-stack flags (`--allow-version-skip` among them) refused with `--all`.
#[test]
fn replace_and_refresh_only_flags_are_checked() {
    let p = Project::new();
    p.mlops(&["plan", "example", "--replace", "vpc", "--refresh-only"])
        .code(1)
        .stderr(predicate::str::contains("cannot be used with"));
    p.mlops(&["plan", "example", "--replace", "vpc"])
        .code(1)
        .stderr(predicate::str::contains(
            "`--replace vpc` names no resource that the stack has and the state holds",
        ));
    p.mlops(&["plan", "example", "--refresh-only", "--refresh=false"])
        .code(1)
        .stderr(predicate::str::contains(
            "`--refresh-only` plans what a refresh finds",
        ));
    p.mlops(&["plan", "example", "--refresh-only", "--target", "vpc"])
        .code(1)
        .stderr(predicate::str::contains("`--target` cannot narrow it"));
    p.mlops(&["apply", "--all", "--auto-approve", "--allow-replace", "vpc"])
        .code(1)
        .stderr(predicate::str::contains("apply to one stack"));
    p.mlops(&["plan", "--all", "--replace", "vpc"])
        .code(1)
        .stderr(predicate::str::contains("apply to one stack"));
    for command in [
        &["plan", "--all"][..],
        &["apply", "--all", "--auto-approve"],
    ] {
        p.mlops(&[command, &["--allow-version-skip"]].concat())
            .code(1)
            .stderr(predicate::str::contains(
                "`--allow-version-skip` applies to one stack",
            ));
    }
    assert!(!p.state_file().exists());
}

/// One object has one address: `import` of an object the state holds at another address is
/// refused before any AWS call, naming that address and `state mv`.
#[test]
fn import_refuses_an_object_the_state_holds_at_another_address() {
    let p = Project::new();
    let state = empty_state("mlops", 1).replace(
        "\"resources\": {}",
        r#""resources": {
            "s3_bucket.old": {"kind": "s3_bucket", "id": "mlops-models-bucket", "attrs": {"bucket": "mlops-models-bucket"}, "deps": []}}"#,
    );
    p.write_state(&state);
    p.mlops(&[
        "import",
        "example",
        "s3_bucket.models",
        "mlops-models-bucket",
    ])
    .code(1)
    .stderr(
        predicate::str::contains("`mlops-models-bucket` is already managed, as `s3_bucket.old`")
            .and(predicate::str::contains(
                "`mlops state mv stacks/example.toml s3_bucket.old s3_bucket.models`",
            ))
            .and(no_panic()),
    );
    assert_eq!(fs::read_to_string(p.state_file()).unwrap(), state);
}
