//! The AWS-behaviour layer: a proxy on 127.0.0.1 between `mlops` and moto that makes the
//! emulator behave like AWS. moto answers every create with the finished object, every delete
//! at once, and never loses an answer; AWS does none of this. Per test, the layer adds:
//! - latency per request;
//! - throttling and server errors, in each service's own wire format (`wire.rs`);
//! - answers lost after the request reached moto (forwarded, then the connection dropped);
//! - AWS's clock (`clock.rs`): clusters and node groups CREATING and DELETING for set times,
//!   NAT gateways pending and deleting, new IAM roles that EKS refuses for a while, NotFound
//!   right after a create, subnets and security groups busy after a cluster is gone, and
//!   injected CREATE_FAILED / DELETE_FAILED.
//!
//! Randomness is seeded, and drawn per (operation, n-th call of it): with the same seed the
//! n-th call of each operation meets the same fate whatever the order of concurrent requests.
//! How many calls a run makes still depends on timing (polls, a role EKS refuses while young),
//! so a seed replays a failed run's faults as far as the new run makes the same calls: it makes
//! the failure likely to come back, not certain.
//!
//! It runs on its own thread and tokio runtime: tests are sync and run `mlops` as a process.

mod clock;
mod wire;

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use tokio::sync::oneshot;

pub use clock::Clock;
use clock::World;
use wire::{Answer, Call};

use super::{serve_http, Emulator};

/// The faults of a test: each a fraction of all requests, drawn from `seed`.
#[derive(Clone, Debug, Default)]
pub struct Faults {
    pub seed: u64,
    /// Added to every request before it is answered.
    pub latency: Duration,
    /// Answered with the service's throttling error, without reaching moto.
    pub throttle: f64,
    /// Answered with the service's 5xx error, without reaching moto.
    pub server_error: f64,
    /// Forwarded to moto, which acts on it; then the connection is dropped without an answer.
    pub lost: f64,
    /// Operations (`CreateVpc`, `CreateBucket`...) whose first call's answer is lost, whatever
    /// the draw.
    pub lose_first: Vec<&'static str>,
}

/// What the layer did, for tests to check that the faults really happened.
#[derive(Debug, Default)]
pub struct Stats {
    requests: AtomicUsize,
    throttled: AtomicUsize,
    server_errors: AtomicUsize,
    lost: AtomicUsize,
    /// Answers AWS's clock gave instead of moto's (refusals, NotFound, in use).
    refused: AtomicUsize,
    /// When each request came in and when it was answered (or dropped), in arrival order: how
    /// many rounds of requests a command made one after another (`benches/`).
    spans: Mutex<Vec<(Instant, Instant)>>,
}

/// A snapshot of `Stats`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub requests: usize,
    pub throttled: usize,
    pub server_errors: usize,
    pub lost: usize,
    pub refused: usize,
}

struct Shared {
    moto: SocketAddr,
    faults: Faults,
    world: Mutex<World>,
    clock: Clock,
    /// How many times each operation was called, for the per-call random draw.
    calls: Mutex<HashMap<String, u64>>,
    /// Every request, in the order it arrived.
    log: Mutex<Vec<Logged>>,
    stats: Stats,
}

/// One request as the layer saw it.
struct Logged {
    operation: String,
    arrived: Instant,
    /// AWS did what it asked (the answer was a success, whether or not it reached the client);
    /// false while it is being answered, and for a refusal, a throttle or a server error.
    took_effect: bool,
}

/// The layer, stopped when dropped.
pub struct AwsLayer {
    pub url: String,
    shared: Arc<Shared>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl AwsLayer {
    /// Starts the layer in front of `emulator`.
    pub fn start(emulator: &Emulator, faults: Faults, clock: Clock) -> AwsLayer {
        let moto: SocketAddr = emulator
            .url
            .trim_start_matches("http://")
            .parse()
            .expect("the emulator listens on ip:port");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let shared = Arc::new(Shared {
            moto,
            faults,
            world: Mutex::new(World::default()),
            clock,
            calls: Mutex::new(HashMap::new()),
            log: Mutex::new(Vec::new()),
            stats: Stats::default(),
        });
        let (shutdown, stopped) = oneshot::channel();
        let serving = shared.clone();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                serve_http(listener, stopped, move |request| {
                    handle(serving.clone(), request)
                })
                .await;
            });
            runtime.shutdown_background();
        });
        AwsLayer {
            url,
            shared,
            shutdown: Some(shutdown),
            thread: Some(thread),
        }
    }

    /// The next cluster or node group made with the name `name` ends its create FAILED (a
    /// cluster) or CREATE_FAILED (a node group), with a health issue giving AWS's reason; one
    /// made after it, as a replacement, succeeds.
    pub fn fail_create(&self, name: &str) {
        self.shared.world.lock().unwrap().fail_create(name);
    }

    /// When the cluster `name` became (or becomes) ACTIVE on the layer's clock.
    pub fn cluster_active_at(&self, name: &str) -> Option<Instant> {
        self.shared
            .world
            .lock()
            .unwrap()
            .cluster_active_at(&self.shared.clock, name)
    }

    /// When each request for `operation` (`CreateNodegroup`...) arrived, in order, whatever
    /// its fate.
    pub fn calls_of(&self, operation: &str) -> Vec<Instant> {
        self.logged(operation, |_| true)
    }

    /// When each request for `operation` that took effect arrived, in order: a create that AWS
    /// refused (a role too young for EKS, a throttle) is left out, one whose answer was lost is
    /// in. So is a create sent again with its idempotency token, which AWS answers with the
    /// first answer and makes nothing for: with lost answers, count objects, not requests.
    pub fn effective_calls_of(&self, operation: &str) -> Vec<Instant> {
        self.logged(operation, |call| call.took_effect)
    }

    fn logged(&self, operation: &str, keep: impl Fn(&Logged) -> bool) -> Vec<Instant> {
        self.shared
            .log
            .lock()
            .unwrap()
            .iter()
            .filter(|call| call.operation == operation && keep(call))
            .map(|call| call.arrived)
            .collect()
    }

    /// How many requests for `operation` arrived within `window`: what one command asked.
    pub fn calls_between(&self, operation: &str, window: std::ops::Range<Instant>) -> usize {
        let calls = self.calls_of(operation);
        calls.iter().filter(|at| window.contains(*at)).count()
    }

    /// From now on, the delete of the cluster or node group `name` ends DELETE_FAILED (the
    /// object stays).
    pub fn fail_delete(&self, name: &str) {
        self.shared.world.lock().unwrap().fail_delete(name);
    }

    /// When each request since the start came in and was answered, in arrival order.
    pub fn spans(&self) -> Vec<(Instant, Instant)> {
        self.shared.stats.spans.lock().unwrap().clone()
    }

    pub fn counts(&self) -> Counts {
        let s = &self.shared.stats;
        Counts {
            requests: s.requests.load(Ordering::Relaxed),
            throttled: s.throttled.load(Ordering::Relaxed),
            server_errors: s.server_errors.load(Ordering::Relaxed),
            lost: s.lost.load(Ordering::Relaxed),
            refused: s.refused.load(Ordering::Relaxed),
        }
    }
}

impl Drop for AwsLayer {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The error that makes hyper close the connection without an answer.
#[derive(Debug)]
struct Dropped;

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("answer dropped by the AWS-behaviour layer")
    }
}

impl std::error::Error for Dropped {}

/// What befalls one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Throttled,
    ServerError,
    Lost,
    Answered,
}

impl Shared {
    /// The fate of the n-th call of `operation`, drawn from the seed.
    fn fate(&self, operation: &str) -> Fate {
        let n = {
            let mut calls = self.calls.lock().unwrap();
            let n = calls.entry(operation.to_string()).or_insert(0);
            *n += 1;
            *n
        };
        let mut hasher = DefaultHasher::new();
        (self.faults.seed, operation, n).hash(&mut hasher);
        let draw = fastrand::Rng::with_seed(hasher.finish()).f64();
        let f = &self.faults;
        if n == 1 && f.lose_first.contains(&operation) {
            Fate::Lost
        } else if draw < f.throttle {
            Fate::Throttled
        } else if draw < f.throttle + f.server_error {
            Fate::ServerError
        } else if draw < f.throttle + f.server_error + f.lost {
            Fate::Lost
        } else {
            Fate::Answered
        }
    }
}

async fn handle(
    shared: Arc<Shared>,
    request: hyper::Request<Incoming>,
) -> Result<hyper::Response<Full<Bytes>>, Dropped> {
    let arrived = Instant::now();
    let answer = handle_one(&shared, request).await;
    let span = (arrived, Instant::now());
    shared.stats.spans.lock().unwrap().push(span);
    answer
}

async fn handle_one(
    shared: &Arc<Shared>,
    request: hyper::Request<Incoming>,
) -> Result<hyper::Response<Full<Bytes>>, Dropped> {
    let (parts, body) = request.into_parts();
    let body = body.collect().await.map_err(|_| Dropped)?.to_bytes();
    let call = Call::of(&parts, body);
    shared.stats.requests.fetch_add(1, Ordering::Relaxed);
    let operation = call.operation();
    let logged = {
        let mut log = shared.log.lock().unwrap();
        log.push(Logged {
            operation: operation.clone(),
            arrived: Instant::now(),
            took_effect: false,
        });
        log.len() - 1
    };
    let fate = shared.fate(&operation);
    tokio::time::sleep(shared.faults.latency).await;
    let answer = match fate {
        Fate::Throttled => {
            shared.stats.throttled.fetch_add(1, Ordering::Relaxed);
            wire::throttled(call.service)
        }
        Fate::ServerError => {
            shared.stats.server_errors.fetch_add(1, Ordering::Relaxed);
            wire::server_error(call.service)
        }
        Fate::Lost | Fate::Answered => clock::answer(shared, &call).await?,
    };
    shared.log.lock().unwrap()[logged].took_effect = answer.status.is_success();
    if fate == Fate::Lost {
        shared.stats.lost.fetch_add(1, Ordering::Relaxed);
        return Err(Dropped);
    }
    Ok(answer.into_response())
}

/// Sends `call` to moto as it came, and returns moto's answer.
async fn forward(moto: SocketAddr, call: &Call) -> Result<Answer, Dropped> {
    let stream = tokio::net::TcpStream::connect(moto)
        .await
        .map_err(|_| Dropped)?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|_| Dropped)?;
    tokio::spawn(connection);
    let mut request = hyper::Request::builder()
        .method(call.method.clone())
        .uri(call.uri.clone());
    for (name, value) in &call.headers {
        if name != http::header::TRANSFER_ENCODING && name != http::header::CONTENT_LENGTH {
            request = request.header(name, value);
        }
    }
    let request = request
        .header(http::header::CONTENT_LENGTH, call.body.len())
        .body(Full::new(call.body.clone()))
        .map_err(|_| Dropped)?;
    let response = sender.send_request(request).await.map_err(|_| Dropped)?;
    let (parts, body) = response.into_parts();
    let body = body.collect().await.map_err(|_| Dropped)?.to_bytes();
    Ok(Answer {
        status: parts.status,
        headers: parts.headers,
        body,
    })
}
