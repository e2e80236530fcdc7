//! Test support: the AWS emulator (moto in server mode, one per test, on a free loopback port),
//! the AWS-behaviour layer in front of it (`aws_layer`: faults and AWS's clock), scratch
//! projects that run the real `mlops` binary against either, SDK clients that check results
//! independently of mlops' own state (`inventory`), (`leftovers`) objects that look like what
//! Kubernetes leaves in a VPC; for the Kubernetes side, a real kube-apiserver
//! (`kube_apiserver`) and an in-process test API server (`apiserver`).

#![allow(dead_code)] // each test binary uses a different part

pub mod apiserver;
pub mod aws_layer;
pub mod inventory;
pub mod leftovers;

use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub mod kube_apiserver;

pub const EXAMPLE: &str = include_str!("../../stacks/example.toml");

/// The real add-on release manifests, in the bundle layout `--manifests-dir` reads.
pub const FIXTURE_ADDONS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/fixtures/addons");

/// A moto server on 127.0.0.1, stopped when dropped.
pub struct Emulator {
    child: Child,
    pub url: String,
    port: u16,
    /// moto's recorder writes every request it receives here, once `start_recording` is called.
    recording: PathBuf,
}

/// Where `scripts/setup-emulator.sh` installs moto.
fn moto_server() -> PathBuf {
    if let Some(path) = std::env::var_os("MLOPS_MOTO_SERVER") {
        return PathBuf::from(path);
    }
    let venv = std::env::var_os("MLOPS_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv"));
    venv.join("bin/moto_server")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// `<method> path` on the emulator, without a body; the status code, or `None` when nothing
/// answers.
fn http(method: &str, port: u16, path: &str) -> Option<u16> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n"
    )
    .ok()?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

impl Emulator {
    pub fn start() -> Emulator {
        let server = moto_server();
        assert!(
            server.exists(),
            "the AWS emulator is not installed at `{}`: run `scripts/setup-emulator.sh` (the README's test command does)",
            server.display()
        );
        let port = free_port();
        let log = std::env::temp_dir().join(format!("mlops-moto-{port}.log"));
        let recording = std::env::temp_dir().join(format!("mlops-moto-{port}.recording"));
        let _ = fs::remove_file(&recording);
        let child = Command::new(&server)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .env("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
            .env("MOTO_RECORDER_FILEPATH", &recording)
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("start moto_server");
        let emulator = Emulator {
            child,
            url: format!("http://127.0.0.1:{port}"),
            port,
            recording,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while http("GET", port, "/moto-api/data.json") != Some(200) {
            assert!(
                Instant::now() < deadline,
                "moto did not start; see {}",
                log.display()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        emulator
    }

    /// From now on, moto records every request it receives (its `/moto-api/recorder`).
    pub fn start_recording(&self) {
        assert_eq!(
            http("POST", self.port, "/moto-api/recorder/start-recording"),
            Some(200)
        );
    }

    /// The processor time moto has used so far, all its threads (`/proc/<pid>/stat`, in clock
    /// ticks of 10 ms): what the emulator itself costs a run, a cost AWS does not add.
    pub fn cpu_time(&self) -> Option<Duration> {
        let stat = fs::read_to_string(format!("/proc/{}/stat", self.child.id())).ok()?;
        // After the command name in parentheses, from the state (field 3): utime and stime are
        // fields 14 and 15.
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        let ticks = |i: usize| fields.get(i)?.parse::<u64>().ok();
        Some(Duration::from_millis((ticks(11)? + ticks(12)?) * 10))
    }

    /// The requests moto received since `start_recording`, in order, as `METHOD /path`: what
    /// AWS would have been asked, read from the emulator's own record.
    pub fn recorded_requests(&self) -> Vec<String> {
        let text = fs::read_to_string(&self.recording).unwrap_or_default();
        text.lines()
            .map(|line| {
                let entry: serde_json::Value = serde_json::from_str(line).unwrap();
                let url = entry["url"].as_str().unwrap_or_default();
                let path = url.splitn(4, '/').nth(3).unwrap_or_default();
                format!("{} /{path}", entry["method"].as_str().unwrap_or_default())
            })
            .collect()
    }

    /// SDK clients for checking what exists, independently of mlops.
    pub fn clients(&self) -> Aws {
        clients_for(&self.url, aws_config::retry::RetryConfig::standard())
    }
}

/// Polls `check` every 50 ms until it gives a value; panics after `within`, naming `what`.
/// For what real systems do after a while (an object deleted on AWS's clock): the test waits
/// for the state it checks instead of sleeping a guess, and a lower bound on the time taken is
/// asserted where the delay itself is what the test shows.
pub async fn eventually<T, Fut>(
    what: impl std::fmt::Display,
    within: Duration,
    mut check: impl FnMut() -> Fut,
) -> T
where
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// SDK clients with their own runtime, talking to `url` with the given retries. Like the
/// product's, they give a slow answer 20 s before calling it stalled (moto under load can take
/// more than the SDK's default 5 s).
pub fn clients_for(url: &str, retry: aws_config::retry::RetryConfig) -> Aws {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let creds = aws_sdk_ec2::config::Credentials::new("testing", "testing", None, None, "tests");
    let config = runtime.block_on(
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-west-2"))
            .endpoint_url(url)
            .credentials_provider(creds)
            .retry_config(retry)
            .stalled_stream_protection(mlops::providers::aws::stalled_stream_protection())
            .load(),
    );
    Aws {
        ec2: aws_sdk_ec2::Client::new(&config),
        eks: aws_sdk_eks::Client::new(&config),
        elb: aws_sdk_elasticloadbalancing::Client::new(&config),
        elbv2: aws_sdk_elasticloadbalancingv2::Client::new(&config),
        iam: aws_sdk_iam::Client::new(&config),
        s3: aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&config)
                .force_path_style(true)
                .build(),
        ),
        ecr: aws_sdk_ecr::Client::new(&config),
        sts: aws_sdk_sts::Client::new(&config),
        config,
        runtime,
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// SDK clients with a runtime to block on them.
pub struct Aws {
    pub ec2: aws_sdk_ec2::Client,
    pub eks: aws_sdk_eks::Client,
    pub elb: aws_sdk_elasticloadbalancing::Client,
    pub elbv2: aws_sdk_elasticloadbalancingv2::Client,
    pub iam: aws_sdk_iam::Client,
    pub s3: aws_sdk_s3::Client,
    pub ecr: aws_sdk_ecr::Client,
    pub sts: aws_sdk_sts::Client,
    /// What the clients were built from, for building mlops' own.
    pub config: aws_config::SdkConfig,
    pub runtime: tokio::runtime::Runtime,
}

impl Aws {
    pub fn run<F: std::future::Future>(&self, f: F) -> F::Output {
        self.runtime.block_on(f)
    }

    /// The node group of `cluster` for the spec's `[eks.node_groups.<key>]`, as EKS describes
    /// it: the one group named `<key>-` and 8 hex digits (mlops appends a digest of what forces
    /// a replacement). Panics unless there is exactly one.
    pub async fn node_group(
        &self,
        cluster: &str,
        key: &str,
    ) -> aws_sdk_eks::operation::describe_nodegroup::DescribeNodegroupOutput {
        let named = self.node_group_names(cluster, key).await;
        assert_eq!(
            named.len(),
            1,
            "node groups of `{cluster}` for `{key}`: {named:?}"
        );
        self.eks
            .describe_nodegroup()
            .cluster_name(cluster)
            .nodegroup_name(&named[0])
            .send()
            .await
            .unwrap()
    }

    /// The names of the node groups of `cluster` for the spec's `key`: `<key>-` and 8 hex
    /// digits.
    pub async fn node_group_names(&self, cluster: &str, key: &str) -> Vec<String> {
        let listed = self
            .eks
            .list_nodegroups()
            .cluster_name(cluster)
            .send()
            .await
            .unwrap();
        listed
            .nodegroups()
            .iter()
            .filter(|n| {
                n.strip_prefix(key)
                    .and_then(|rest| rest.strip_prefix('-'))
                    .is_some_and(|d| d.len() == 8 && d.chars().all(|c| c.is_ascii_hexdigit()))
            })
            .cloned()
            .collect()
    }

    /// The ARN IAM reports for the role `name`.
    pub fn role_arn(&self, name: &str) -> String {
        self.run(async {
            let role = self.iam.get_role().role_name(name).send().await.unwrap();
            role.role.unwrap().arn
        })
    }
}

/// A scratch project with one stack file, whose commands run against an emulator.
pub struct Project {
    pub dir: tempfile::TempDir,
    pub stack: String,
    endpoint: String,
}

/// The output of one `mlops` run.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn ok(self) -> Run {
        assert_eq!(
            self.code, 0,
            "mlops failed:\n{}\n{}",
            self.stdout, self.stderr
        );
        self
    }
}

impl Project {
    /// `text` is written as `stacks/<stack>.toml`.
    pub fn new(emulator: &Emulator, stack: &str, text: &str) -> Project {
        Project::at(&emulator.url, stack, text)
    }

    /// A project whose commands reach AWS at `endpoint` (the AWS-behaviour layer's URL).
    pub fn at(endpoint: &str, stack: &str, text: &str) -> Project {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("stacks")).unwrap();
        let project = Project {
            dir,
            stack: stack.to_string(),
            endpoint: endpoint.to_string(),
        };
        project.write_stack(text);
        project
    }

    pub fn write_stack(&self, text: &str) {
        fs::write(
            self.dir.path().join(format!("stacks/{}.toml", self.stack)),
            text,
        )
        .unwrap();
    }

    pub fn stack_text(&self) -> String {
        fs::read_to_string(self.dir.path().join(format!("stacks/{}.toml", self.stack))).unwrap()
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_mlops"));
        command
            .current_dir(self.dir.path())
            .args(args)
            .env("AWS_ENDPOINT_URL", &self.endpoint)
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("MLOPS_MANIFESTS_DIR", FIXTURE_ADDONS)
            .env_remove("KUBECONFIG")
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_SESSION_TOKEN")
            .stdin(Stdio::null());
        command
    }

    /// Runs `mlops <args>` with the stack appended after the subcommand words.
    pub fn mlops(&self, args: &[&str]) -> Run {
        let out = self.command(args).output().expect("run mlops");
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Runs `mlops <args>` against the Kubernetes cluster of `kubeconfig` (`--kubeconfig`).
    pub fn mlops_in_cluster(&self, kubeconfig: &str, args: &[&str]) -> Run {
        let mut all = args.to_vec();
        all.extend(["--kubeconfig", kubeconfig]);
        self.mlops(&all)
    }

    pub fn apply(&self) -> Run {
        self.mlops(&["apply", &self.stack, "--auto-approve"])
    }

    pub fn destroy(&self) -> Run {
        self.mlops(&["destroy", &self.stack, "--auto-approve"])
    }

    pub fn plan_exit_code(&self) -> Run {
        self.mlops(&["plan", &self.stack, "--detailed-exitcode"])
    }

    /// A local state of `[state] path = "state/<name>.json"`: relative to the stack file.
    pub fn state_path(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("stacks/state/{name}.json"))
    }
}

/// The example's `[workloads]` manifests (`stacks/k8s/`), copied into `stacks`, a project's
/// folder of stack files: the example names them relative to itself.
pub fn copy_example_manifests(stacks: &std::path::Path) {
    let from = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("stacks/k8s");
    std::fs::create_dir_all(stacks.join("k8s")).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, stacks.join("k8s").join(path.file_name().unwrap())).unwrap();
    }
}

/// A stack text without its `[workloads]` table (the example's is its last).
pub fn without_workloads(text: &str) -> String {
    match text.find("\n[workloads]") {
        Some(at) => format!("{}\n", &text[..at]),
        None => text.to_string(),
    }
}

/// The example stack renamed, with add-ons off (the emulator's cluster endpoint leads nowhere),
/// no EKS managed add-ons (moto has no EKS add-on API), its workloads left out, and globally
/// named things (bucket, IAM roles, cluster) made unique to the stack.
pub fn example_as(stack: &str) -> String {
    without_workloads(EXAMPLE)
        .replace(
            "\n[eks.node_groups.default]",
            "managed_addons = []\n\n[eks.node_groups.default]",
        )
        .replace("name = \"mlops\"", &format!("name = \"{stack}\""))
        .replace(
            "path = \"state/mlops.json\"",
            &format!("path = \"state/{stack}.json\""),
        )
        .replace("mlops-models-bucket", &format!("{stack}-models"))
        .replace(
            "name = \"mlops-cluster\"",
            &format!("name = \"{stack}-cluster\""),
        )
        .replace("\nenabled = true\n", "\nenabled = false\n")
}

/// The example with its add-ons on (the four of the newer fixture set, Knative and Istio for
/// serverless KServe) and the IRSA service account, for a test API server to receive.
pub fn example_with_addons(stack: &str) -> String {
    example_as(stack).replace("\nenabled = false\n", "\nenabled = true\n")
}

/// Serves HTTP/1 on `listener` with `handle` until `stopped` fires: the accept loop of the test
/// servers (the test API server, the AWS-behaviour layer). A connection that ends with an
/// error (a client hanging up, a handler dropping it on purpose) is its own business.
pub async fn serve_http<H, Fut, B, E>(
    listener: tokio::net::TcpListener,
    mut stopped: tokio::sync::oneshot::Receiver<()>,
    handle: H,
) where
    H: Fn(hyper::Request<hyper::body::Incoming>) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Result<hyper::Response<B>, E>> + Send + 'static,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(_) => continue,
            },
            _ = &mut stopped => return,
        };
        let handle = handle.clone();
        tokio::spawn(async move {
            let io = hyper_util::rt::TokioIo::new(stream);
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, hyper::service::service_fn(handle))
                .await;
        });
    }
}

/// [`serve_http`] on a thread of its own with a one-thread runtime, on a fresh 127.0.0.1 port,
/// until dropped: the small loopback servers of the kube-apiserver harness (the EKS
/// authenticator, the faulty proxy).
pub struct ThreadServer {
    pub port: u16,
    running: Option<(
        tokio::sync::oneshot::Sender<()>,
        std::thread::JoinHandle<()>,
    )>,
}

impl ThreadServer {
    pub fn start<H, Fut, B, E>(name: &str, handle: H) -> ThreadServer
    where
        H: Fn(hyper::Request<hyper::body::Incoming>) -> Fut + Clone + Send + 'static,
        Fut: std::future::Future<Output = Result<hyper::Response<B>, E>> + Send + 'static,
        B: hyper::body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap()
                    .block_on(async move {
                        let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                        serve_http(listener, stopped, handle).await
                    })
            })
            .unwrap_or_else(|e| panic!("start the thread of {name}: {e}"));
        ThreadServer {
            port,
            running: Some((stop, thread)),
        }
    }
}

impl Drop for ThreadServer {
    fn drop(&mut self) {
        if let Some((stop, thread)) = self.running.take() {
            let _ = stop.send(());
            let _ = thread.join();
        }
    }
}

/// Kubernetes objects written as JSON values, parsed the way `mlops` parses a manifest.
pub fn objects(values: &[serde_json::Value]) -> Vec<mlops::manifest::Object> {
    let text = values
        .iter()
        .map(serde_json::Value::to_string)
        .collect::<Vec<_>>()
        .join("\n---\n");
    mlops::manifest::parse_documents(&text, "test").unwrap()
}
