//! A plain-HTTP proxy on 127.0.0.1 in front of the real API server that answers the first
//! requests with the failures a busy or restarting control plane gives (429 Too Many Requests,
//! 500, 503, a connection closed before any answer), then passes every request on as the
//! admin: what a client meets while EKS scales its API servers or during a control-plane
//! upgrade. A test reads the real server directly to see what came through.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response};
use serde_json::json;

use super::{RealApiServer, ADMIN_TOKEN};
use crate::support::ThreadServer;

/// What the proxy does with one request instead of passing it on.
#[derive(Debug, Clone, Copy)]
pub enum Fault {
    /// Answers with this HTTP status and a `Status` body, as the API server words it.
    Status(u16),
    /// Closes the connection without an answer (the client sees the connection end: `EOF`).
    Close,
}

/// Faults still to give, and how many requests each saw.
#[derive(Default)]
struct Plan {
    faults: VecDeque<Fault>,
    given: usize,
    passed: usize,
}

pub struct FaultyProxy {
    /// A kubeconfig for `http://127.0.0.1:<port>` (the proxy adds the admin's token).
    pub kubeconfig: PathBuf,
    plan: Arc<Mutex<Plan>>,
    /// Stops serving when dropped.
    _proxy: ThreadServer,
    _dir: tempfile::TempDir,
}

impl FaultyProxy {
    /// A proxy to `server` that gives `faults`, one per request, before it passes requests on.
    pub fn start(server: &'static RealApiServer, faults: &[Fault]) -> FaultyProxy {
        let dir = tempfile::tempdir().unwrap();
        let plan = Arc::new(Mutex::new(Plan {
            faults: faults.iter().copied().collect(),
            ..Plan::default()
        }));
        let shared = plan.clone();
        let proxy = ThreadServer::start("faulty-proxy", move |request| {
            let plan = shared.clone();
            async move { answer(request, server, &plan).await }
        });
        let url = format!("http://127.0.0.1:{}", proxy.port);
        let kubeconfig = dir.path().join("kubeconfig.yaml");
        let config = json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "proxy", "cluster": {"server": url}}],
            "users": [{"name": "proxy", "user": {}}],
            "contexts": [{"name": "proxy", "context": {"cluster": "proxy", "user": "proxy"}}],
            "current-context": "proxy",
        });
        std::fs::write(&kubeconfig, serde_yaml::to_string(&config).unwrap()).unwrap();
        FaultyProxy {
            kubeconfig,
            plan,
            _proxy: proxy,
            _dir: dir,
        }
    }

    /// Gives `faults` to the next requests, after any still to give.
    pub fn fail_next(&self, faults: &[Fault]) {
        self.plan
            .lock()
            .unwrap()
            .faults
            .extend(faults.iter().copied());
    }

    /// How many faults were given, and how many requests passed on.
    pub fn counts(&self) -> (usize, usize) {
        let plan = self.plan.lock().unwrap();
        (plan.given, plan.passed)
    }
}

/// The next fault, or the real server's answer. An `Err` makes hyper close the connection.
async fn answer(
    request: Request<Incoming>,
    server: &'static RealApiServer,
    plan: &Mutex<Plan>,
) -> Result<Response<Full<Bytes>>, std::io::Error> {
    let fault = {
        let mut plan = plan.lock().unwrap();
        let fault = plan.faults.pop_front();
        match fault {
            Some(_) => plan.given += 1,
            None => plan.passed += 1,
        }
        fault
    };
    match fault {
        Some(Fault::Close) => Err(std::io::Error::other("connection closed by the proxy")),
        Some(Fault::Status(code)) => {
            let reason = match code {
                403 => "Forbidden",
                429 => "TooManyRequests",
                503 => "ServiceUnavailable",
                _ => "InternalError",
            };
            let status = json!({"kind": "Status", "apiVersion": "v1", "metadata": {},
                                "status": "Failure", "message": format!("injected {code}"),
                                "reason": reason, "code": code});
            Ok(Response::builder()
                .status(code)
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(status.to_string())))
                .unwrap())
        }
        None => {
            let method = request.method().clone();
            let path = request
                .uri()
                .path_and_query()
                .map(|p| p.to_string())
                .unwrap_or_default();
            let content_type = request
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("application/json")
                .to_string();
            let body = request
                .into_body()
                .collect()
                .await
                .map_err(std::io::Error::other)?
                .to_bytes();
            let (status, content_type, body) = tokio::task::spawn_blocking(move || {
                forward(server, &method, &path, &content_type, &body)
            })
            .await
            .map_err(std::io::Error::other)??;
            Ok(Response::builder()
                .status(status)
                .header("content-type", content_type)
                .body(Full::new(Bytes::from(body)))
                .unwrap())
        }
    }
}

/// The request sent on to the real server as the admin: its status, content type and body.
fn forward(
    server: &RealApiServer,
    method: &Method,
    path: &str,
    content_type: &str,
    body: &[u8],
) -> std::io::Result<(u16, String, Vec<u8>)> {
    let url = format!("{}{path}", server.url);
    let auth = format!("Bearer {ADMIN_TOKEN}");
    let http = &server.http;
    let sent = match *method {
        Method::GET => http.get(&url).header("Authorization", &auth).call(),
        Method::DELETE => http
            .delete(&url)
            .header("Authorization", &auth)
            .force_send_body()
            .content_type(content_type)
            .send(body),
        Method::PATCH => http
            .patch(&url)
            .header("Authorization", &auth)
            .content_type(content_type)
            .send(body),
        Method::POST => http
            .post(&url)
            .header("Authorization", &auth)
            .content_type(content_type)
            .send(body),
        Method::PUT => http
            .put(&url)
            .header("Authorization", &auth)
            .content_type(content_type)
            .send(body),
        _ => {
            return Err(std::io::Error::other(format!(
                "no {method} through the proxy"
            )))
        }
    };
    let mut response = sent.map_err(std::io::Error::other)?;
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .to_string();
    let body = response
        .body_mut()
        .read_to_vec()
        .map_err(std::io::Error::other)?;
    Ok((status, content_type, body))
}
