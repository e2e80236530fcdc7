//! An in-process Kubernetes API server for the tests, modelling a current (1.30) server in
//! what matters to an installer: discovery that lists a CRD's kinds only once it is
//! Established, server-side apply with field managers, GET/LIST/DELETE with label selectors
//! and namespaces that must exist, Deployments that become available after a delay,
//! admission webhooks that refuse with the real error text until their Service has ready
//! Endpoints, LoadBalancer Services, InferenceServices and Knative Services that become
//! Ready with a URL, and watches. It runs the real manifests of the add-ons
//! (`../shared/fixtures/addons/`) because it plays their controllers' parts (webhooks that
//! answer, CA injection, InferenceServices that become Ready), which the real kube-apiserver's
//! stand-in does not yet.
//!
//! It runs on its own thread and tokio runtime (tests are often sync and run `mlops` as a
//! subprocess against it), serves plain HTTP on a free 127.0.0.1 port, and writes a
//! kubeconfig with a static bearer token; requests without the token get 401. Tests check
//! results through its request log and object store, independently of what `mlops` reports.

mod admission;
mod controllers;
mod fields;
mod http;
mod resources;
mod selector;
mod state;
mod status;
mod watch;
mod writes;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::oneshot;

use self::controllers::Timer;
use self::state::State;

/// How long the modelled cluster takes to do things.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// From a CRD's creation to its `Established` condition (and its kinds in discovery).
    pub crd_established_after: Duration,
    /// From a Deployment, DaemonSet or StatefulSet write that changed its spec to its
    /// available status; likewise from an InferenceService or Knative Service write to its
    /// `Ready` condition.
    pub workload_ready_after: Duration,
    /// From a LoadBalancer Service's creation to its `status.loadBalancer.ingress` hostname.
    pub load_balancer_after: Duration,
    /// From a LoadBalancer Service's deletion to its disappearance (the cloud load balancer
    /// being released behind the finalizer).
    pub load_balancer_released_after: Duration,
}

impl Default for Options {
    fn default() -> Options {
        let delay = Duration::from_millis(300);
        Options {
            crd_established_after: delay,
            workload_ready_after: delay,
            load_balancer_after: delay,
            load_balancer_released_after: delay,
        }
    }
}

/// One request the server answered.
#[derive(Clone, Debug)]
pub struct RequestRecord {
    /// Since the server started.
    pub at: Duration,
    pub method: String,
    pub path: String,
    /// The raw query string (`fieldManager=mlops&force=true`).
    pub query: String,
    pub content_type: Option<String>,
    pub status: u16,
    /// What the request was about, when it was about an object or a kind of object.
    pub api_version: Option<String>,
    pub kind: Option<String>,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub subresource: Option<String>,
    pub dry_run: bool,
    /// Whether the store changed (false for a no-op apply, an error, a dry run, a read).
    pub changed: bool,
    /// The `Status` message of an error answer.
    pub message: Option<String>,
}

impl RequestRecord {
    /// A mutating request (POST, PUT, PATCH, DELETE) that was not a dry run.
    pub fn is_write(&self) -> bool {
        matches!(self.method.as_str(), "POST" | "PUT" | "PATCH" | "DELETE") && !self.dry_run
    }

    /// Answered "the server could not find the requested resource": a kind not served
    /// (yet), such as a custom resource before its CRD is Established.
    pub fn is_unserved(&self) -> bool {
        self.status == 404
            && self.message.as_deref() == Some(status::ApiError::unserved().message.as_str())
    }
}

impl std::fmt::Display for RequestRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.method, self.path)?;
        if !self.query.is_empty() {
            write!(f, "?{}", self.query)?;
        }
        write!(f, " -> {}", self.status)?;
        if let Some(message) = &self.message {
            write!(f, " ({message})")?;
        }
        Ok(())
    }
}

/// A position in the request log.
#[derive(Clone, Copy, Debug)]
pub struct Mark(usize);

/// What the HTTP handlers and timers share.
struct Shared {
    state: Mutex<State>,
    token: String,
    /// `127.0.0.1:<port>`.
    server_address: String,
    runtime: tokio::runtime::Handle,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock is a bug of this server; the state is still the
        // best account of what happened, so keep serving it.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs `f` on the state, then starts the timers its controllers asked for.
    fn with<T>(self: &Arc<Self>, f: impl FnOnce(&mut State) -> T) -> T {
        let (result, timers) = {
            let mut state = self.lock();
            let result = f(&mut state);
            (result, std::mem::take(&mut state.timers))
        };
        for (after, timer) in timers {
            self.start_timer(after, timer);
        }
        result
    }

    fn start_timer(self: &Arc<Self>, after: Duration, timer: Timer) {
        let shared = self.clone();
        self.runtime.spawn(async move {
            tokio::time::sleep(after).await;
            shared.with(|state| controllers::fire(state, timer));
        });
    }
}

/// The server; stopped, and its kubeconfig removed, when dropped.
pub struct TestApiServer {
    shared: Arc<Shared>,
    url: String,
    kubeconfig: PathBuf,
    _dir: tempfile::TempDir,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

/// Options for [`TestApiServer`], then `start()`.
#[derive(Default)]
pub struct Builder {
    options: Options,
}

impl Builder {
    pub fn crd_established_after(mut self, delay: Duration) -> Builder {
        self.options.crd_established_after = delay;
        self
    }

    pub fn workload_ready_after(mut self, delay: Duration) -> Builder {
        self.options.workload_ready_after = delay;
        self
    }

    pub fn load_balancer_after(mut self, delay: Duration) -> Builder {
        self.options.load_balancer_after = delay;
        self
    }

    pub fn load_balancer_released_after(mut self, delay: Duration) -> Builder {
        self.options.load_balancer_released_after = delay;
        self
    }

    /// Every delay at once.
    pub fn delays(self, delay: Duration) -> Builder {
        self.crd_established_after(delay)
            .workload_ready_after(delay)
            .load_balancer_after(delay)
            .load_balancer_released_after(delay)
    }

    pub fn start(self) -> TestApiServer {
        TestApiServer::start_with(self.options)
    }
}

/// The namespaces every cluster starts with.
const INITIAL_NAMESPACES: [&str; 4] = ["default", "kube-system", "kube-public", "kube-node-lease"];

impl TestApiServer {
    /// A server with the default delays (300 ms each).
    pub fn start() -> TestApiServer {
        Builder::default().start()
    }

    pub fn builder() -> Builder {
        Builder::default()
    }

    fn start_with(options: Options) -> TestApiServer {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        listener
            .set_nonblocking(true)
            .expect("a non-blocking listener");
        let address = listener.local_addr().expect("the listener's address");
        let token = uuid::Uuid::new_v4().simple().to_string();
        let (shutdown, stopped) = oneshot::channel();
        let (handle_sender, handle_receiver) = std::sync::mpsc::channel();
        let (shared_sender, shared_receiver) = std::sync::mpsc::channel::<Arc<Shared>>();
        let thread = std::thread::Builder::new()
            .name(format!("test-apiserver-{}", address.port()))
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a tokio runtime for the test API server");
                let _ = handle_sender.send(runtime.handle().clone());
                let Ok(shared) = shared_receiver.recv() else {
                    return;
                };
                runtime.block_on(async move {
                    let listener =
                        tokio::net::TcpListener::from_std(listener).expect("a tokio listener");
                    super::serve_http(listener, stopped, move |request| {
                        http::handle(shared.clone(), request)
                    })
                    .await;
                });
            })
            .expect("start the test API server thread");
        let runtime = handle_receiver
            .recv()
            .expect("the test API server's runtime");
        let mut state = State::new(options);
        for name in INITIAL_NAMESPACES {
            let namespaces = state.catalogue.builtin("", "namespaces");
            let target = writes::Target {
                resource: &namespaces,
                version: "v1",
                namespace: "",
            };
            let writer = writes::Writer {
                manager: "kube-apiserver",
                subresource: None,
                dry_run: false,
            };
            let namespace =
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
            writes::create(&mut state, target, namespace, writer).expect("an initial namespace");
        }
        let shared = Arc::new(Shared {
            state: Mutex::new(state),
            token: token.clone(),
            server_address: address.to_string(),
            runtime,
        });
        shared_sender
            .send(shared.clone())
            .expect("hand the state to the server thread");
        let dir = tempfile::tempdir().expect("a folder for the kubeconfig");
        let url = format!("http://{address}");
        let kubeconfig = dir.path().join("kubeconfig");
        std::fs::write(&kubeconfig, kubeconfig_text(&url, &token)).expect("write the kubeconfig");
        TestApiServer {
            shared,
            url,
            kubeconfig,
            _dir: dir,
            shutdown: Some(shutdown),
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn token(&self) -> &str {
        &self.shared.token
    }

    /// A kubeconfig file for this server (context `test`, namespace `default`).
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// A client built from the kubeconfig file, as `mlops` would build one. rustls is built
    /// with both the ring and the aws-lc-rs providers (other crates turn them on), so it
    /// cannot pick a process default itself: install ring's first.
    pub async fn client(&self) -> kube::Client {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let kubeconfig =
            kube::config::Kubeconfig::read_from(&self.kubeconfig).expect("read the kubeconfig");
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
            .await
            .expect("a client configuration from the kubeconfig");
        kube::Client::try_from(config).expect("a client")
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.shared.lock().log.clone()
    }

    /// The current end of the request log.
    pub fn mark(&self) -> Mark {
        Mark(self.shared.lock().log.len())
    }

    /// The requests since `mark`.
    pub fn requests_since(&self, mark: Mark) -> Vec<RequestRecord> {
        self.shared.lock().log[mark.0..].to_vec()
    }

    /// The mutating requests (not dry runs) so far.
    pub fn writes(&self) -> Vec<RequestRecord> {
        self.writes_since(Mark(0))
    }

    /// The mutating requests (not dry runs) since `mark`.
    pub fn writes_since(&self, mark: Mark) -> Vec<RequestRecord> {
        self.requests_since(mark)
            .into_iter()
            .filter(RequestRecord::is_write)
            .collect()
    }

    /// A stored object, at `api_version` (any served version of its kind); `None` when it
    /// does not exist or the kind is not served.
    pub fn object(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<Value> {
        let state = self.shared.lock();
        let resource = state.catalogue.find_kind(api_version, kind)?.clone();
        let mut object = (**state.get(&resource, namespace.unwrap_or(""), name)?).clone();
        object["apiVersion"] = json!(api_version);
        Some(object)
    }

    /// Every stored object, at the version it was last written.
    pub fn objects(&self) -> Vec<Value> {
        self.shared.lock().all().map(|o| (**o).clone()).collect()
    }

    /// Makes a Deployment never become available (condition Available False), from now on
    /// and after every later change, until [`TestApiServer::clear_never_available`].
    pub fn set_never_available(&self, namespace: &str, name: &str) {
        self.set_availability(namespace, name, true);
    }

    pub fn clear_never_available(&self, namespace: &str, name: &str) {
        self.set_availability(namespace, name, false);
    }

    fn set_availability(&self, namespace: &str, name: &str, never: bool) {
        self.shared.with(|state| {
            let key = (namespace.to_string(), name.to_string());
            if never {
                state.never_available.insert(key);
            } else {
                state.never_available.remove(&key);
            }
            controllers::availability_changed(state, namespace, name);
        });
    }

    /// Makes an InferenceService or Knative Service never become Ready (condition Ready
    /// False, reason `RevisionMissing`, a message naming its revision), from now on and after
    /// every later change, until [`TestApiServer::clear_never_ready`].
    pub fn set_never_ready(&self, namespace: &str, name: &str) {
        self.set_readiness(namespace, name, true);
    }

    pub fn clear_never_ready(&self, namespace: &str, name: &str) {
        self.set_readiness(namespace, name, false);
    }

    fn set_readiness(&self, namespace: &str, name: &str, never: bool) {
        self.shared.with(|state| {
            let key = (namespace.to_string(), name.to_string());
            if never {
                state.never_ready.insert(key);
            } else {
                state.never_ready.remove(&key);
            }
            controllers::readiness_changed(state, namespace, name);
        });
    }
}

impl Drop for TestApiServer {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn kubeconfig_text(url: &str, token: &str) -> String {
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: test
  cluster:
    server: {url}
users:
- name: test
  user:
    token: {token}
contexts:
- name: test
  context:
    cluster: test
    user: test
    namespace: default
current-context: test
"
    )
}
