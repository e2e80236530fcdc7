//! A real kube-apiserver 1.35.4 backed by a real etcd 3.6, both on free 127.0.0.1 ports with
//! throw-away state: the reference for the tests of the Kubernetes layer (what a real API server
//! accepts, refuses and records), so that the in-process test server cannot drift from it
//! unnoticed.
//!
//! The server has no controller manager and no kubelet: [`StandIn`] plays their part where
//! `mlops` waits on them. [`webhook::AdmissionWebhook`] is a webhook a test can bring up late,
//! and the server's audit log ([`RealApiServer::writes_since`]) is the independent record of
//! every write a client made.
//!
//! The binary is built by `scripts/setup-kube-apiserver.sh` (docs/testing.md), whose
//! `scripts/try-kube-apiserver.sh` documents the same flags. Starting one takes seconds, so a
//! test binary normally shares one ([`RealApiServer::shared`]), each test in its own
//! namespace. Both processes are also stopped, and the temporary folder removed, when the test
//! process ends without dropping the server (a shared one, a panic abort, a kill): a small
//! shell "reaper" waits for the end of its standard input, a pipe from this process.

pub mod audit;
pub mod eks_authenticator;
pub mod faulty_proxy;
pub mod stand_in;
pub mod webhook;

use std::fs;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::json;

use super::free_port;
use stand_in::StandIn;

/// The user of the kubeconfig handed to tests (and to `mlops --kubeconfig`), in group
/// `system:masters`.
const ADMIN_USER: &str = "mlops-test-admin";
const ADMIN_TOKEN: &str = "mlops-test-admin-token";
/// The stand-in's own user, so that its status writes are not counted as the client's.
const STAND_IN_USER: &str = "mlops-test-stand-in";
const STAND_IN_TOKEN: &str = "mlops-test-stand-in-token";

const SETUP_SCRIPT: &str = "scripts/setup-kube-apiserver.sh";
/// Generous: on the loaded 2-core machine `/readyz` answers `ok` 6 to 9 s after the start.
const READY_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a stopped process gets between TERM and KILL.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// Metadata level (no bodies), one event per request (`ResponseComplete`), no reads except the
/// audit barriers (see `audit.rs`): the log stays small although the stand-in polls.
const AUDIT_POLICY: &str = r#"apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
- level: Metadata
  nonResourceURLs: ["/mlops-audit-barrier/*"]
- level: None
  verbs: ["get", "list", "watch"]
- level: Metadata
"#;

/// The API server's calls into the cluster network (webhooks and aggregated APIs reached
/// through a Service) go to the stand-in's HTTP CONNECT proxy on a Unix socket in the
/// server's folder; calls to a webhook's `url` go straight to it (the `controlplane` network).
const EGRESS_SELECTOR: &str = r#"apiVersion: apiserver.k8s.io/v1beta1
kind: EgressSelectorConfiguration
egressSelections:
- name: cluster
  connection:
    proxyProtocol: HTTPConnect
    transport:
      uds:
        udsName: {socket}
"#;
const EGRESS_SOCKET: &str = "egress.sock";

/// Run by `sh -c` with the API server's pid, etcd's pid and the temporary folder: when its
/// standard input ends (this process is gone), stop both (TERM, KILL after 10 s) and remove
/// the folder. Ignores Ctrl-C, which ends the test process and so starts the cleanup.
const REAPER: &str = r#"trap '' INT
read -r _
kill -TERM "$1" "$2" 2>/dev/null
i=0
while [ "$i" -lt 100 ] && { kill -0 "$1" 2>/dev/null || kill -0 "$2" 2>/dev/null; }; do
    sleep 0.1
    i=$((i + 1))
done
kill -KILL "$1" "$2" 2>/dev/null
rm -rf "$3"
"#;

/// etcd and a kube-apiserver on loopback; both stopped (TERM, then KILL) when dropped.
pub struct RealApiServer {
    /// `https://127.0.0.1:<port>`
    pub url: String,
    /// A kubeconfig for the admin user (https, the serving certificate as its CA, a token).
    pub kubeconfig: PathBuf,
    /// The kubeconfig of the stand-in's user.
    stand_in_kubeconfig: PathBuf,
    /// The audit log (JSON lines).
    audit_log: PathBuf,
    /// Plain HTTPS calls that need no kube client: `/readyz`, audit barriers.
    http: ureq::Agent,
    barriers: AtomicU64,
    stand_in: OnceLock<StandIn>,
    apiserver: Child,
    etcd: Child,
    /// Killed first on drop (else it would stop the processes and remove the folder too).
    reaper: Child,
    /// Held open until drop: its end tells the reaper this process is gone.
    _reaper_stdin: ChildStdin,
    dir: tempfile::TempDir,
}

/// The kube-apiserver binary: `MLOPS_KUBE_APISERVER`, else where the setup script caches it.
fn apiserver_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("MLOPS_KUBE_APISERVER") {
        return PathBuf::from(path);
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    home.join(".cache/mlops/kube-apiserver-1.35.4/kube-apiserver")
}

/// etcd: `MLOPS_ETCD`, else the one the setup script builds beside the API server.
fn etcd_binary(apiserver: &Path) -> PathBuf {
    match std::env::var_os("MLOPS_ETCD") {
        Some(path) => PathBuf::from(path),
        None => apiserver.with_file_name("etcd"),
    }
}

/// Writes a self-signed certificate for 127.0.0.1 and its key as `<name>.crt` / `<name>.key`
/// in `dir`. `CA:FALSE` with `serverAuth`: rustls takes it as the client's only trust anchor
/// and as the server's own certificate; a `CA:TRUE` one (what a plain `openssl req -x509`
/// makes) it refuses as the server's (`CaUsedAsEndEntity`).
fn self_signed_cert(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let cert = dir.join(format!("{name}.crt"));
    let key = dir.join(format!("{name}.key"));
    let out = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .args(["-subj", "/CN=127.0.0.1", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .args(["-addext", "subjectAltName=IP:127.0.0.1"])
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .args([
            "-addext",
            "keyUsage=critical,digitalSignature,keyEncipherment",
        ])
        .args(["-addext", "extendedKeyUsage=serverAuth"])
        .output()
        .expect("run openssl (Debian package `openssl`)");
    assert!(
        out.status.success(),
        "openssl req failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (cert, key)
}

/// A kubeconfig with one cluster, one user (a bearer token) and one context.
fn write_kubeconfig(path: &Path, url: &str, ca_pem: &str, user: &str, token: &str) {
    let config = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "mlops-test", "cluster": {
            "server": url,
            "certificate-authority-data": STANDARD.encode(ca_pem),
        }}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": user, "context": {"cluster": "mlops-test", "user": user}}],
        "current-context": user,
    });
    fs::write(path, serde_yaml::to_string(&config).unwrap()).unwrap();
}

/// A kube client from a kubeconfig, as `mlops --kubeconfig` builds one. rustls is built with
/// both the ring and the aws-lc-rs providers (other crates turn them on), so it cannot pick a
/// process default itself: install ring's first, as any kube client user in this build must.
async fn client_from(kubeconfig: &Path) -> kube::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let file = Kubeconfig::read_from(kubeconfig).expect("read the test kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(file, &KubeConfigOptions::default())
        .await
        .expect("a kube config from the test kubeconfig");
    kube::Client::try_from(config).expect("a kube client")
}

/// The last `n` lines of a log file, for failure messages.
fn tail(path: &Path, n: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Starts `command` with its output in `log`.
fn spawn_logged(command: &mut Command, log: &Path) -> std::io::Result<Child> {
    let log_file = fs::File::create(log)?;
    command
        .stdin(Stdio::null())
        .stdout(log_file.try_clone()?)
        .stderr(log_file)
        .spawn()
}

/// SIGTERM, up to [`STOP_GRACE`] for the process to exit, then SIGKILL.
fn stop(child: &mut Child) {
    if matches!(child.try_wait(), Ok(Some(_))) {
        return;
    }
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + STOP_GRACE;
    while Instant::now() < deadline {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// What `eventually_get` waits for: the path, and the object as it was last read.
struct LastRead<'a> {
    path: &'a str,
    last: &'a std::sync::Mutex<Option<serde_json::Value>>,
}

impl std::fmt::Display for LastRead<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let last = self.last.lock().unwrap().clone();
        let last = last.unwrap_or(serde_json::Value::Null);
        write!(f, "{}: not as expected; last read: {last:#}", self.path)
    }
}

impl RealApiServer {
    /// Starts etcd and the API server and waits until `/readyz` answers `ok`. Panics (with the
    /// last lines of both logs) if that takes longer than 2 minutes, and names the setup script
    /// when a binary is missing.
    pub fn start() -> RealApiServer {
        RealApiServer::start_with(&[])
    }

    /// [`Self::start`] with more flags for the API server, e.g. `--runtime-config` to leave out
    /// an API group version as an older cluster would.
    pub fn start_with(extra_flags: &[&str]) -> RealApiServer {
        let binary = apiserver_binary();
        let etcd_path = etcd_binary(&binary);
        for (what, path, variable) in [
            ("kube-apiserver", &binary, "MLOPS_KUBE_APISERVER"),
            ("etcd", &etcd_path, "MLOPS_ETCD"),
        ] {
            assert!(
                path.is_file(),
                "no {what} at `{}`: run `{SETUP_SCRIPT}` (it builds and caches it; the \
                 README's test command does), or point {variable} at one",
                path.display()
            );
        }
        let dir = tempfile::Builder::new()
            .prefix("mlops-kube-apiserver.")
            .tempdir()
            .unwrap();
        let d = dir.path();
        // One RSA key serves TLS and signs service-account tokens: a test needs no more.
        let (cert, key) = self_signed_cert(d, "serving");
        let ca_pem = fs::read_to_string(&cert).unwrap();
        fs::write(
            d.join("tokens.csv"),
            format!(
                "{ADMIN_TOKEN},{ADMIN_USER},{ADMIN_USER},system:masters\n\
                 {STAND_IN_TOKEN},{STAND_IN_USER},{STAND_IN_USER},system:masters\n"
            ),
        )
        .unwrap();
        fs::write(d.join("audit-policy.yaml"), AUDIT_POLICY).unwrap();
        fs::write(
            d.join("egress.yaml"),
            EGRESS_SELECTOR.replace("{socket}", &d.join(EGRESS_SOCKET).to_string_lossy()),
        )
        .unwrap();

        let mut ports = Vec::new();
        while ports.len() < 3 {
            let port = free_port();
            if !ports.contains(&port) {
                ports.push(port);
            }
        }
        let [etcd_client, etcd_peer, port] = [ports[0], ports[1], ports[2]];
        let client_url = format!("http://127.0.0.1:{etcd_client}");
        let peer_url = format!("http://127.0.0.1:{etcd_peer}");
        let mut etcd = spawn_logged(
            Command::new(&etcd_path)
                .args(["--name", "mlops-test", "--data-dir"])
                .arg(d.join("etcd"))
                .args(["--listen-client-urls", &client_url])
                .args(["--advertise-client-urls", &client_url])
                .args(["--listen-peer-urls", &peer_url])
                .args(["--initial-advertise-peer-urls", &peer_url])
                .args(["--initial-cluster", &format!("mlops-test={peer_url}")]),
            &d.join("etcd.log"),
        )
        .unwrap_or_else(|e| panic!("start {}: {e}", etcd_path.display()));
        // kube-apiserver checks etcd with a TCP dial once a second: start it once etcd listens.
        let etcd_deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", etcd_client)).is_err() {
            let exited = etcd.try_wait().ok().flatten();
            if exited.is_some() || Instant::now() > etcd_deadline {
                let _ = etcd.kill();
                panic!(
                    "etcd did not listen on 127.0.0.1:{etcd_client} ({}); last lines of its log:\n{}",
                    exited.map_or("timeout".to_string(), |s| s.to_string()),
                    tail(&d.join("etcd.log"), 20)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let audit_log = d.join("audit.log");
        let apiserver = spawn_logged(
            Command::new(&binary)
                .args(["--etcd-servers", &client_url])
                .args([
                    "--bind-address",
                    "127.0.0.1",
                    "--advertise-address",
                    "127.0.0.1",
                ])
                .args(["--secure-port", &port.to_string()])
                // Else it logs `Endpoints "kubernetes" is invalid ... loopback` every few seconds.
                .args(["--endpoint-reconciler-type", "none"])
                .arg("--tls-cert-file")
                .arg(&cert)
                .arg("--tls-private-key-file")
                .arg(&key)
                .arg("--cert-dir")
                .arg(d.join("certs"))
                .arg("--token-auth-file")
                .arg(d.join("tokens.csv"))
                .args(["--authorization-mode", "RBAC"])
                .args(["--service-account-issuer", "https://kubernetes.default.svc"])
                .arg("--service-account-key-file")
                .arg(&key)
                .arg("--service-account-signing-key-file")
                .arg(&key)
                .args(["--service-cluster-ip-range", "10.96.0.0/16"])
                .arg("--audit-policy-file")
                .arg(d.join("audit-policy.yaml"))
                .arg("--audit-log-path")
                .arg(&audit_log)
                // The default already; said here because `writes_since` relies on it.
                .args(["--audit-log-mode", "blocking"])
                // Webhooks and aggregated APIs are called at their Service's endpoints, as on a
                // cluster, not at a cluster IP nothing routes here. The server refuses loopback
                // addresses in Endpoints and EndpointSlices, so a webhook served on 127.0.0.1
                // is reached by its `url` (webhook.rs).
                .arg("--enable-aggregator-routing=true")
                // ... through the stand-in's proxy, which plays the pods at those endpoints
                // (stand_in/egress.rs).
                .arg("--egress-selector-config-file")
                .arg(d.join("egress.yaml"))
                .args(extra_flags),
            &d.join("apiserver.log"),
        )
        .unwrap_or_else(|e| {
            let _ = etcd.kill();
            panic!("start {}: {e}", binary.display())
        });
        let mut reaper = Command::new("sh")
            .args(["-c", REAPER, "sh"])
            .arg(apiserver.id().to_string())
            .arg(etcd.id().to_string())
            .arg(d)
            .stdin(Stdio::piped())
            .spawn()
            .expect("start the reaper shell");
        let reaper_stdin = reaper.stdin.take().unwrap();

        let url = format!("https://127.0.0.1:{port}");
        let root = ureq::tls::Certificate::from_pem(ca_pem.as_bytes())
            .expect("the serving certificate")
            .to_owned();
        let http: ureq::Agent = ureq::Agent::config_builder()
            .tls_config(
                ureq::tls::TlsConfig::builder()
                    .root_certs(ureq::tls::RootCerts::Specific(Arc::new(vec![root])))
                    .build(),
            )
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(10)))
            .build()
            .into();
        let kubeconfig = d.join("kubeconfig.yaml");
        write_kubeconfig(&kubeconfig, &url, &ca_pem, ADMIN_USER, ADMIN_TOKEN);
        let stand_in_kubeconfig = d.join("stand-in.kubeconfig.yaml");
        write_kubeconfig(
            &stand_in_kubeconfig,
            &url,
            &ca_pem,
            STAND_IN_USER,
            STAND_IN_TOKEN,
        );
        let mut server = RealApiServer {
            url,
            kubeconfig,
            stand_in_kubeconfig,
            audit_log,
            http,
            barriers: AtomicU64::new(0),
            stand_in: OnceLock::new(),
            apiserver,
            etcd,
            reaper,
            _reaper_stdin: reaper_stdin,
            dir,
        };
        server.wait_ready();
        server
    }

    /// One server for the whole test binary, started by the first test that asks. Tests share
    /// it, each in namespaces of its own. Stopped by the reaper when the process ends.
    pub fn shared() -> &'static RealApiServer {
        static SHARED: OnceLock<RealApiServer> = OnceLock::new();
        SHARED.get_or_init(RealApiServer::start)
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = self.apiserver.try_wait().ok().flatten() {
                panic!(
                    "kube-apiserver exited ({status}) before it was ready; {}",
                    self.logs()
                );
            }
            if self.get("/readyz").as_deref() == Some("ok") {
                return;
            }
            if Instant::now() > deadline {
                let verbose = self.get("/readyz?verbose").unwrap_or_default();
                panic!(
                    "kube-apiserver on {} not ready after {READY_TIMEOUT:?}; /readyz?verbose:\n{verbose}\n{}",
                    self.url,
                    self.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `GET path` as the admin: the body when the status is 200.
    fn get(&self, path: &str) -> Option<String> {
        let mut response = self
            .http
            .get(format!("{}{path}", self.url))
            .header("Authorization", format!("Bearer {ADMIN_TOKEN}"))
            .call()
            .ok()?;
        if response.status() != 200 {
            return None;
        }
        response.body_mut().read_to_string().ok()
    }

    /// `GET path` as the admin with a plain HTTPS client, as JSON (`None` unless 200): reads
    /// that do not go through kube-rs, to check what a kube client did.
    pub fn get_json(&self, path: &str) -> Option<serde_json::Value> {
        let body = self.get(path)?;
        Some(serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}")))
    }

    /// `GET path` as `get_json` does, polled until `check` finds what it wants in the object;
    /// panics after 30 s, showing the object as it was last read.
    pub async fn eventually_get(
        &self,
        path: &str,
        check: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let last = std::sync::Mutex::new(None);
        let what = LastRead { path, last: &last };
        super::eventually(&what, Duration::from_secs(30), || {
            let object = self.get_json(path);
            *last.lock().unwrap() = object.clone();
            let wanted = object.filter(|o| check(o));
            async move { wanted }
        })
        .await
    }

    /// The server's certificate, base64-encoded PEM: the `certificate-authority-data` of its
    /// kubeconfig, and the CA EKS gives (`certificateAuthority.data`).
    pub fn ca_base64(&self) -> String {
        STANDARD.encode(fs::read(self.dir().join("serving.crt")).unwrap())
    }

    /// The process ids of the API server and of etcd.
    pub fn pids(&self) -> [u32; 2] {
        [self.apiserver.id(), self.etcd.id()]
    }

    /// The temporary folder: certificates, kubeconfigs, logs, etcd's data.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The last lines of the API server's and etcd's logs, for failure messages.
    pub fn logs(&self) -> String {
        let d = self.dir.path();
        format!(
            "last lines of the kube-apiserver log:\n{}\nlast lines of the etcd log:\n{}",
            tail(&d.join("apiserver.log"), 30),
            tail(&d.join("etcd.log"), 10)
        )
    }

    /// A client for the admin user, built from [`Self::kubeconfig`]. A kube client belongs to
    /// the tokio runtime it was made in: make one per test.
    pub async fn client(&self) -> kube::Client {
        client_from(&self.kubeconfig).await
    }

    /// The stand-in for the controller manager and the kubelet, started on first use and
    /// running until the server stops (one per server: tests hold Deployments by namespace).
    pub fn stand_in(&self) -> &StandIn {
        self.stand_in.get_or_init(|| {
            StandIn::start(
                self.stand_in_kubeconfig.clone(),
                self.dir().join("stand-in"),
                self.dir().join(EGRESS_SOCKET),
            )
        })
    }
}

impl Drop for RealApiServer {
    fn drop(&mut self) {
        drop(self.stand_in.take());
        let _ = self.reaper.kill();
        let _ = self.reaper.wait();
        stop(&mut self.apiserver);
        stop(&mut self.etcd);
    }
}
