//! Where the real API server's calls into the "cluster network" go: the server is started with
//! an egress selector (`cluster`: HTTP CONNECT over a Unix socket, as with a konnectivity
//! proxy), so that a webhook that names a Service is called at the pod address the stand-in
//! wrote in the Service's EndpointSlice (10.0.x.y), through this proxy. The proxy plays the
//! pods: it answers the CONNECT only when the workload behind that address is available
//! (else `connection refused`, as a pod that does not listen yet), then speaks TLS with a
//! certificate for the name the server asked for (`<service>.<namespace>.svc`), signed by the
//! stand-in's CA ([`Ca`]), and admits every admission review. So a webhook is called
//! successfully only when its Deployment is available AND its configuration's `caBundle`
//! holds that CA (injected by the stand-in's cainjector or the add-on's own webhook); before
//! that the server fails the call as a real one does.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio_rustls::TlsAcceptor;

use super::Key;

/// The stand-in's certificate authority: signs every certificate it issues (cert-manager's
/// part) and every serving certificate of the pods the proxy plays.
#[derive(Debug)]
pub struct Ca {
    dir: PathBuf,
    pub pem: String,
    issued: AtomicUsize,
}

/// A certificate and its key, both PEM.
pub struct Issued {
    pub cert: String,
    pub key: String,
}

impl Ca {
    pub fn new(dir: &Path) -> Ca {
        let (cert, key) = (dir.join("ca.crt"), dir.join("ca.key"));
        openssl(
            Command::new("openssl")
                .args(["req", "-x509", "-nodes", "-days", "2"])
                .args(["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"])
                .args(["-subj", "/CN=mlops-test-stand-in-ca", "-keyout"])
                .arg(&key)
                .arg("-out")
                .arg(&cert)
                .args(["-addext", "basicConstraints=critical,CA:TRUE"])
                .args(["-addext", "keyUsage=critical,keyCertSign,cRLSign"]),
        );
        Ca {
            pem: std::fs::read_to_string(&cert).unwrap(),
            dir: dir.to_path_buf(),
            issued: AtomicUsize::new(0),
        }
    }

    /// A serving certificate for `names` (DNS names; the first is also the common name).
    pub fn issue(&self, names: &[String]) -> Issued {
        let n = self.issued.fetch_add(1, Ordering::SeqCst);
        let (cert, key) = (
            self.dir.join(format!("issued-{n}.crt")),
            self.dir.join(format!("issued-{n}.key")),
        );
        let san: Vec<String> = names.iter().map(|n| format!("DNS:{n}")).collect();
        let common_name = names.first().map_or("stand-in", String::as_str);
        openssl(
            Command::new("openssl")
                .args(["req", "-x509", "-nodes", "-days", "2"])
                .arg("-CA")
                .arg(self.dir.join("ca.crt"))
                .arg("-CAkey")
                .arg(self.dir.join("ca.key"))
                .args(["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"])
                .args(["-subj", &format!("/CN={common_name}"), "-keyout"])
                .arg(&key)
                .arg("-out")
                .arg(&cert)
                .args(["-addext", &format!("subjectAltName={}", san.join(","))])
                .args(["-addext", "basicConstraints=critical,CA:FALSE"])
                .args(["-addext", "extendedKeyUsage=serverAuth"]),
        );
        Issued {
            cert: std::fs::read_to_string(&cert).unwrap(),
            key: std::fs::read_to_string(&key).unwrap(),
        }
    }
}

fn openssl(command: &mut Command) {
    let out = command
        .output()
        .expect("run openssl (Debian package `openssl`)");
    assert!(
        out.status.success(),
        "openssl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The pods the proxy plays: the address the stand-in gave each Service's endpoint, and
/// whether the workload behind it is available (the pod listens).
#[derive(Default)]
pub struct Routes {
    by_service: BTreeMap<Key, String>,
    listening: BTreeMap<String, bool>,
}

impl Routes {
    /// The stable address of `service`'s one endpoint: 10.0.x.y, one per Service.
    pub fn address(&mut self, service: &Key) -> String {
        let n = self.by_service.len();
        self.by_service
            .entry(service.clone())
            .or_insert_with(|| format!("10.0.{}.{}", n / 250, n % 250 + 1))
            .clone()
    }

    pub fn set_listening(&mut self, address: &str, listening: bool) {
        self.listening.insert(address.to_string(), listening);
    }

    fn listens(&self, address: &str) -> bool {
        self.listening.get(address).copied().unwrap_or(false)
    }
}

/// Mints (once per name) a certificate for the server name the client asks for.
#[derive(Debug)]
struct PerName {
    ca: Arc<Ca>,
    minted: Mutex<HashMap<String, Arc<CertifiedKey>>>,
}

impl ResolvesServerCert for PerName {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let name = hello.server_name()?.to_string();
        let mut minted = self.minted.lock().unwrap();
        if let Some(key) = minted.get(&name) {
            return Some(key.clone());
        }
        let issued = self.ca.issue(std::slice::from_ref(&name));
        let cert = CertificateDer::from_pem_slice(issued.cert.as_bytes()).ok()?;
        let key = PrivateKeyDer::from_pem_slice(issued.key.as_bytes()).ok()?;
        let signing = rustls::crypto::ring::sign::any_supported_type(&key).ok()?;
        let certified = Arc::new(CertifiedKey::new(vec![cert], signing));
        minted.insert(name, certified.clone());
        Some(certified)
    }
}

/// Serves the proxy on `socket` until `stop` is set; `reviews` counts admitted reviews.
pub async fn serve(
    socket: PathBuf,
    ca: Arc<Ca>,
    routes: Arc<Mutex<Routes>>,
    reviews: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
) {
    let _ = std::fs::remove_file(&socket);
    let listener = UnixListener::bind(&socket)
        .unwrap_or_else(|e| panic!("bind the egress socket {}: {e}", socket.display()));
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_cert_resolver(Arc::new(PerName {
        ca,
        minted: Mutex::default(),
    }));
    let acceptor = TlsAcceptor::from(Arc::new(config));
    while !stop.load(Ordering::Relaxed) {
        let accepted = tokio::time::timeout(Duration::from_millis(200), listener.accept()).await;
        let Ok(Ok((stream, _))) = accepted else {
            continue;
        };
        let (acceptor, routes, reviews) = (acceptor.clone(), routes.clone(), reviews.clone());
        tokio::spawn(async move {
            let _ = tunnel(stream, acceptor, &routes, reviews).await;
        });
    }
}

/// One `CONNECT <address>:<port>`: refused unless the pod at that address listens, else TLS
/// and the admission webhook behind it.
async fn tunnel(
    mut stream: UnixStream,
    acceptor: TlsAcceptor,
    routes: &Mutex<Routes>,
    reviews: Arc<AtomicUsize>,
) -> std::io::Result<()> {
    // The client sends nothing after the request head until it has the answer.
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        if stream.read(&mut byte).await? == 0 {
            return Ok(());
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    let target = head
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_string();
    let address = target.rsplit_once(':').map_or("", |(host, _)| host);
    if !routes.lock().unwrap().listens(address) {
        let refused =
            format!("HTTP/1.1 503 dial tcp {target}: connect: connection refused\r\n\r\n");
        return stream.write_all(refused.as_bytes()).await;
    }
    stream
        .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
        .await?;
    let tls = acceptor.accept(stream).await?;
    let service = hyper::service::service_fn(move |request| {
        let reviews = reviews.clone();
        async move { super::super::webhook::admit(request, &reviews).await }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
        .await;
    Ok(())
}
