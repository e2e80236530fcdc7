//! A validating admission webhook over HTTPS on 127.0.0.1 that admits every request, and that
//! a test brings up only after the webhook configuration calling it exists. The real API
//! server then first refuses the requests it guards (`failed calling webhook ... connection
//! refused`), as a cluster does while cert-manager or KServe is still starting, and admits them
//! once [`AdmissionWebhook::serve`] was called.

use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{json, Value};
use tokio::sync::oneshot;
use tokio_rustls::TlsAcceptor;

/// A webhook server: its certificate and port, listening once `serve` was called, stopped
/// when dropped.
pub struct AdmissionWebhook {
    port: u16,
    cert: PathBuf,
    key: PathBuf,
    reviews: Arc<AtomicUsize>,
    running: Option<(oneshot::Sender<()>, JoinHandle<()>)>,
    _dir: tempfile::TempDir,
}

impl AdmissionWebhook {
    /// A certificate for 127.0.0.1 and a free port; nothing listens there yet.
    pub fn new() -> AdmissionWebhook {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = super::self_signed_cert(dir.path(), "webhook");
        AdmissionWebhook {
            port: super::free_port(),
            cert,
            key,
            reviews: Arc::default(),
            running: None,
            _dir: dir,
        }
    }

    /// `https://127.0.0.1:<port>/validate`
    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}/validate", self.port)
    }

    /// The `clientConfig` of a webhook that calls this server: its `url` and, as `caBundle`,
    /// its self-signed certificate.
    pub fn client_config(&self) -> Value {
        let pem = std::fs::read(&self.cert).unwrap();
        json!({"url": self.url(), "caBundle": STANDARD.encode(pem)})
    }

    /// How many admission reviews it has answered.
    pub fn reviews(&self) -> usize {
        self.reviews.load(Ordering::SeqCst)
    }

    /// Starts answering on a thread of its own; returns once the port listens.
    pub fn serve(&mut self) {
        assert!(self.running.is_none(), "the webhook is already serving");
        let listener = TcpListener::bind(("127.0.0.1", self.port))
            .unwrap_or_else(|e| panic!("bind the webhook to 127.0.0.1:{}: {e}", self.port));
        listener.set_nonblocking(true).unwrap();
        let certs = vec![CertificateDer::from_pem_file(&self.cert).unwrap()];
        let key = PrivateKeyDer::from_pem_file(&self.key).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("a TLS configuration from the webhook's certificate");
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let reviews = self.reviews.clone();
        let (stop, stopped) = oneshot::channel();
        let thread = std::thread::Builder::new()
            .name("admission-webhook".into())
            .spawn(move || {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap()
                    .block_on(accept_until(listener, acceptor, reviews, stopped))
            })
            .expect("start the webhook thread");
        self.running = Some((stop, thread));
    }
}

impl Drop for AdmissionWebhook {
    fn drop(&mut self) {
        if let Some((stop, thread)) = self.running.take() {
            let _ = stop.send(());
            let _ = thread.join();
        }
    }
}

async fn accept_until(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    reviews: Arc<AtomicUsize>,
    mut stopped: oneshot::Receiver<()>,
) {
    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
    loop {
        let tcp = tokio::select! {
            _ = &mut stopped => return,
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => tcp,
                Err(_) => continue,
            },
        };
        let (acceptor, reviews) = (acceptor.clone(), reviews.clone());
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(tcp).await else {
                return;
            };
            let service = hyper::service::service_fn(move |request| {
                let reviews = reviews.clone();
                async move { admit(request, &reviews).await }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tls), service)
                .await;
        });
    }
}

/// Answers an `AdmissionReview` (`admission.k8s.io/v1`, or `v1beta1` for a webhook that
/// accepts only that) with `allowed: true` for its `uid`, in the request's version.
pub(super) async fn admit(
    request: Request<Incoming>,
    reviews: &AtomicUsize,
) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let body = request.into_body().collect().await?.to_bytes();
    let review: Value = serde_json::from_slice(&body).unwrap_or_default();
    let answer = json!({
        "apiVersion": review["apiVersion"].as_str().unwrap_or("admission.k8s.io/v1"),
        "kind": "AdmissionReview",
        "response": {"uid": review["request"]["uid"], "allowed": true},
    });
    reviews.fetch_add(1, Ordering::SeqCst);
    Ok(Response::builder()
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(answer.to_string())))
        .unwrap())
}
