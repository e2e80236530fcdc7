//! Cluster access: the EKS token must be byte for byte the presigned URL that `aws eks
//! get-token` makes (botocore, from the emulator's virtualenv, is the reference), and
//! `mlops token` / `mlops kubeconfig` must work from a hand-written state without touching the
//! network: credentials come from the environment and no STS call is ever made.

mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use assert_cmd::Command;
use aws_credential_types::Credentials;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use mlops::kube::token::{presigned_url, token, TOKEN_PREFIX};
use predicates::prelude::*;
use serde_json::Value;

/// What awscli's `eks get-token` does (awscli/customizations/eks/get_token.py), with fixed
/// credentials, the regional STS endpoint, and botocore's clock
/// (`botocore.auth.get_current_datetime`) frozen at the given UNIX time.
const BOTOCORE_PRESIGN: &str = r#"
import datetime, sys
from unittest import mock
import botocore.session

region, cluster, key, secret, token, unix = sys.argv[1:7]
session = botocore.session.get_session()
session.set_config_variable('sts_regional_endpoints', 'regional')
sts = session.create_client(
    'sts', region_name=region, aws_access_key_id=key, aws_secret_access_key=secret,
    aws_session_token=token or None)

def retrieve_k8s_aws_id(params, context, **kwargs):
    if 'x-k8s-aws-id' in params:
        context['x-k8s-aws-id'] = params.pop('x-k8s-aws-id')

def inject_k8s_aws_id_header(request, **kwargs):
    if 'x-k8s-aws-id' in request.context:
        request.headers['x-k8s-aws-id'] = request.context['x-k8s-aws-id']

sts.meta.events.register('provide-client-params.sts.GetCallerIdentity', retrieve_k8s_aws_id)
sts.meta.events.register('before-sign.sts.GetCallerIdentity', inject_k8s_aws_id_header)
now = datetime.datetime.fromtimestamp(int(unix), datetime.timezone.utc).replace(tzinfo=None)
with mock.patch('botocore.auth.get_current_datetime', return_value=now):
    print(sts.generate_presigned_url(
        'get_caller_identity', Params={'x-k8s-aws-id': cluster}, ExpiresIn=60, HttpMethod='GET'))
"#;

/// Where `scripts/setup-emulator.sh` installs botocore.
fn python() -> PathBuf {
    let venv = std::env::var_os("MLOPS_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv"));
    let python = venv.join("bin/python");
    assert!(
        python.exists(),
        "botocore is not installed at `{}`: run `scripts/setup-emulator.sh`",
        venv.display()
    );
    python
}

struct Case {
    region: &'static str,
    cluster: &'static str,
    key: &'static str,
    secret: &'static str,
    token: Option<&'static str>,
    unix: u64,
}

/// The URL botocore presigns for `case`, in a hermetic environment (no profile, no endpoint
/// override, no network).
fn botocore_url(case: &Case) -> String {
    let out = std::process::Command::new(python())
        .env_clear()
        .env("AWS_CONFIG_FILE", "/nonexistent")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
        .args(["-c", BOTOCORE_PRESIGN])
        .args([case.region, case.cluster, case.key, case.secret])
        .arg(case.token.unwrap_or_default())
        .arg(case.unix.to_string())
        .output()
        .expect("run botocore");
    assert!(
        out.status.success(),
        "botocore failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .trim_end()
        .to_string()
}

fn credentials(case: &Case) -> Credentials {
    Credentials::new(
        case.key,
        case.secret,
        case.token.map(str::to_string),
        None,
        "test",
    )
}

#[test]
fn the_presigned_url_is_byte_for_byte_the_one_botocore_makes() {
    let session_token = "IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLXdlc3QtMiJHMEUCIQD+abc/def==";
    let cases = [
        Case {
            region: "us-west-2",
            cluster: "mlops-cluster",
            key: "AKIAIOSFODNN7EXAMPLE",
            secret: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            token: None,
            unix: 1_704_164_645,
        },
        Case {
            region: "us-west-2",
            cluster: "mlops-cluster",
            key: "ASIAIOSFODNN7EXAMPLE",
            secret: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            token: Some(session_token),
            unix: 1_704_164_645,
        },
        Case {
            region: "eu-central-1",
            cluster: "team_b-Prod-2",
            key: "AKIDEXAMPLE",
            secret: "je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY+",
            token: None,
            unix: 1_767_225_599,
        },
        Case {
            region: "eu-central-1",
            cluster: "team_b-Prod-2",
            key: "ASIADEXAMPLE",
            secret: "je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY+",
            token: Some(session_token),
            unix: 1_767_225_599,
        },
        Case {
            region: "cn-north-1",
            cluster: "c",
            key: "AKIDEXAMPLE",
            secret: "secret",
            token: Some("t"),
            unix: 0,
        },
    ];
    for case in &cases {
        let time = SystemTime::UNIX_EPOCH + Duration::from_secs(case.unix);
        let ours = presigned_url(&credentials(case), case.region, case.cluster, time).unwrap();
        let expected = botocore_url(case);
        assert_eq!(
            ours,
            expected,
            "{} / {} / session token: {}",
            case.region,
            case.cluster,
            case.token.is_some()
        );
        let encoded = token(&ours);
        let decoded = URL_SAFE_NO_PAD
            .decode(encoded.strip_prefix(TOKEN_PREFIX).unwrap())
            .unwrap();
        assert_eq!(String::from_utf8(decoded).unwrap(), expected);
        assert!(!encoded.contains('='));
    }
}

// --- the commands ----------------------------------------------------------------------------

const ENDPOINT: &str = "https://ABCDEF0123456789.gr7.us-west-2.eks.amazonaws.com";
const CA: &str = "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUM=";
const KEY: &str = "AKIDEXAMPLE";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
const SESSION_TOKEN: &str = "FwoGZXIvYXdzEXAMPLE/+token==";

/// A scratch project with `stacks/example.toml`.
struct Project {
    dir: tempfile::TempDir,
}

impl Project {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("stacks")).unwrap();
        // Its workloads' manifests are not in this folder, and no test here reaches a cluster.
        fs::write(
            dir.path().join("stacks/example.toml"),
            support::without_workloads(support::EXAMPLE),
        )
        .unwrap();
        Project { dir }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// A state whose `eks_cluster` has these attributes.
    fn write_state(&self, cluster_attrs: &str) {
        let state = format!(
            r#"{{"format_version": 1, "serial": 7, "lineage": "l-1", "stack": "mlops", "outputs": {{}},
                "resources": {{"eks_cluster": {{"kind": "eks_cluster", "id": "mlops-cluster", "attrs": {cluster_attrs}, "deps": []}}}}}}"#
        );
        fs::create_dir_all(self.path("stacks/state")).unwrap();
        fs::write(self.path("stacks/state/mlops.json"), state).unwrap();
    }

    fn write_applied_state(&self) {
        self.write_state(&format!(
            r#"{{"name": "mlops-cluster", "endpoint": "{ENDPOINT}", "certificate_authority": "{CA}"}}"#
        ));
    }

    /// `mlops` in `cwd` with credentials from the environment only (when `creds`): no
    /// profile, no instance metadata, nothing that could reach the network.
    fn command(&self, cwd: &Path, creds: bool) -> Command {
        let mut cmd = Command::cargo_bin("mlops").unwrap();
        cmd.current_dir(cwd)
            .env_clear()
            .env("AWS_CONFIG_FILE", self.path("no-aws-config"))
            .env(
                "AWS_SHARED_CREDENTIALS_FILE",
                self.path("no-aws-credentials"),
            )
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .write_stdin("");
        if creds {
            cmd.env("AWS_ACCESS_KEY_ID", KEY)
                .env("AWS_SECRET_ACCESS_KEY", SECRET)
                .env("AWS_SESSION_TOKEN", SESSION_TOKEN);
        }
        cmd
    }

    fn mlops_in(&self, cwd: &Path, args: &[&str], creds: bool) -> assert_cmd::assert::Assert {
        self.command(cwd, creds).args(args).assert()
    }

    fn mlops(&self, args: &[&str]) -> assert_cmd::assert::Assert {
        self.mlops_in(self.dir.path(), args, true)
    }
}

fn stdout_json(assert: &assert_cmd::assert::Assert) -> Value {
    serde_json::from_slice(&assert.get_output().stdout).unwrap()
}

/// Checks an ExecCredential printed by `mlops token`: its token is the URL our signer makes for
/// the environment's credentials at the URL's own signing time, and it expires 14 minutes later.
fn check_exec_credential(json: &Value, region: &str, cluster: &str) {
    assert_eq!(json["kind"], "ExecCredential");
    assert_eq!(json["apiVersion"], "client.authentication.k8s.io/v1beta1");
    assert_eq!(json["spec"], serde_json::json!({}));
    let token = json["status"]["token"].as_str().unwrap();
    let url = URL_SAFE_NO_PAD
        .decode(token.strip_prefix(TOKEN_PREFIX).unwrap())
        .unwrap();
    let url = String::from_utf8(url).unwrap();
    assert!(
        url.starts_with(&format!(
            "https://sts.{region}.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15&"
        )),
        "{url}"
    );
    // X-Amz-Date=20240102T030405Z
    let date = url.split("X-Amz-Date=").nth(1).unwrap();
    let rfc3339 = format!(
        "{}-{}-{}T{}:{}:{}Z",
        &date[0..4],
        &date[4..6],
        &date[6..8],
        &date[9..11],
        &date[11..13],
        &date[13..15]
    );
    let signed_at = humantime::parse_rfc3339(&rfc3339).unwrap();
    let creds = Credentials::new(KEY, SECRET, Some(SESSION_TOKEN.into()), None, "test");
    assert_eq!(
        url,
        presigned_url(&creds, region, cluster, signed_at).unwrap()
    );
    let expires =
        humantime::parse_rfc3339(json["status"]["expirationTimestamp"].as_str().unwrap()).unwrap();
    assert_eq!(
        expires.duration_since(signed_at).unwrap(),
        Duration::from_secs(14 * 60)
    );
}

#[test]
fn token_prints_an_exec_credential_for_the_cluster_in_the_state() {
    let p = Project::new();
    p.write_applied_state();
    let out = p.mlops(&["token", "example"]).success().stderr("");
    check_exec_credential(&stdout_json(&out), "us-west-2", "mlops-cluster");
}

#[test]
fn token_ignores_endpoint_overrides() {
    let p = Project::new();
    p.write_applied_state();
    let out = p
        .command(p.dir.path(), true)
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .env("AWS_ENDPOINT_URL_STS", "http://127.0.0.1:9")
        .args(["--endpoint-url", "http://127.0.0.1:9", "token", "example"])
        .assert()
        .success();
    check_exec_credential(&stdout_json(&out), "us-west-2", "mlops-cluster");
}

#[test]
fn token_and_kubeconfig_refuse_a_stack_never_applied() {
    let p = Project::new();
    for args in [&["token", "example"][..], &["kubeconfig", "example"][..]] {
        p.mlops(args)
            .code(1)
            .stdout("")
            .stderr(predicate::str::contains(
                "error: stack `mlops` was never applied: there is no state at `stacks/state/mlops.json`",
            ))
            .stderr(predicate::str::contains(
                "hint: run `mlops apply example` to create the cluster first",
            ));
    }
    assert!(!p.path("state").exists());
}

#[test]
fn token_says_when_credentials_cannot_be_loaded() {
    let p = Project::new();
    p.write_applied_state();
    p.mlops_in(p.dir.path(), &["token", "example"], false)
        .code(1)
        .stdout("")
        .stderr(predicate::str::contains(
            "error: cannot load AWS credentials",
        ))
        .stderr(predicate::str::contains("hint: configure AWS credentials"));
}

#[test]
fn kubeconfig_refuses_a_cluster_without_an_endpoint() {
    let p = Project::new();
    p.write_state(r#"{"name": "mlops-cluster"}"#);
    p.mlops(&["kubeconfig", "example"])
        .code(1)
        .stdout("")
        .stderr(predicate::str::contains(
            "error: stack `mlops` has no `cluster_endpoint` output: its EKS cluster is not created yet",
        ))
        .stderr(predicate::str::contains("hint: run `mlops apply example`"));
}

/// The value of `key: "..."` in the kubeconfig, and the list under `args:`.
fn yaml_value(yaml: &str, key: &str) -> String {
    let line = yaml
        .lines()
        .find_map(|l| l.trim_start().strip_prefix(&format!("{key}: ")))
        .unwrap_or_else(|| panic!("no `{key}` in\n{yaml}"));
    serde_json::from_str(line).unwrap_or_else(|_| line.to_string())
}

fn yaml_args(yaml: &str) -> Vec<String> {
    yaml.lines()
        .skip_while(|l| l.trim() != "args:")
        .skip(1)
        .map_while(|l| l.trim_start().strip_prefix("- "))
        .map(|a| serde_json::from_str(a).unwrap())
        .collect()
}

#[test]
fn kubeconfig_runs_mlops_token_from_any_folder() {
    let p = Project::new();
    p.write_applied_state();
    let stdout = p.mlops(&["kubeconfig", "example"]).success();
    let yaml = String::from_utf8(stdout.get_output().stdout.clone()).unwrap();
    assert_eq!(yaml_value(&yaml, "server"), ENDPOINT);
    assert_eq!(yaml_value(&yaml, "certificate-authority-data"), CA);
    assert_eq!(yaml_value(&yaml, "current-context"), "mlops");
    assert_eq!(yaml_value(&yaml, "interactiveMode"), "Never");
    assert_eq!(
        yaml_value(&yaml, "apiVersion"),
        "v1",
        "the first apiVersion is the file's"
    );
    assert!(yaml.contains("apiVersion: client.authentication.k8s.io/v1beta1"));
    let command = PathBuf::from(yaml_value(&yaml, "command"));
    assert!(command.is_absolute());
    assert_eq!(
        fs::canonicalize(&command).unwrap(),
        fs::canonicalize(assert_cmd::cargo::cargo_bin("mlops")).unwrap()
    );
    let args = yaml_args(&yaml);
    assert_eq!(args.len(), 4, "{args:?}");
    assert_eq!(args[0], "token");
    assert_eq!(
        fs::canonicalize(&args[1]).unwrap(),
        fs::canonicalize(p.path("stacks/example.toml")).unwrap()
    );
    assert_eq!(args[2], "--chdir");
    assert_eq!(
        fs::canonicalize(&args[3]).unwrap(),
        fs::canonicalize(p.dir.path()).unwrap()
    );

    // --out writes the same text, with nothing on stdout.
    fs::create_dir_all(p.path("kube")).unwrap();
    p.mlops(&["kubeconfig", "example", "--out", "kube/config"])
        .success()
        .stdout("")
        .stderr(predicate::str::contains(
            "wrote the kubeconfig of stack `mlops` to `kube/config`",
        ));
    assert_eq!(fs::read_to_string(p.path("kube/config")).unwrap(), yaml);
    assert_eq!(
        fs::read_dir(p.path("kube")).unwrap().count(),
        1,
        "no temporary file is left"
    );

    // What kubectl does: run the plugin from elsewhere.
    let elsewhere = tempfile::tempdir().unwrap();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = p.mlops_in(elsewhere.path(), &args, true).success();
    check_exec_credential(&stdout_json(&out), "us-west-2", "mlops-cluster");
}
