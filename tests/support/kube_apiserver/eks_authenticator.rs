//! What EKS's authenticator (aws-iam-authenticator) does with a bearer token, served on
//! 127.0.0.1 as the API server's token webhook (`--authentication-token-webhook-config-file`),
//! so that the real kube-apiserver accepts and refuses `mlops`' tokens as EKS would: it decodes
//! the `k8s-aws-v1.` token, checks that the URL is a presigned STS `GetCallerIdentity` of a
//! regional AWS host that signs `x-k8s-aws-id`, and refuses it once its `X-Amz-Date` is older
//! than EKS's 15 minutes, whatever `X-Amz-Expires` says. It does not replay the URL against
//! STS (nothing here can check a signature): every well-formed, young token is the admin.
//!
//! Time is scaled so that a test can outlive a token: [`EKS_TIME_SCALE`] divides EKS's 15
//! minutes (15 s) and, in the tests, `mlops`' 14-minute refresh (`kube::token::TOKEN_LIFETIME`)
//! alike; this constant is the only place the scale is set. The one scaled minute between the
//! two (1 s), with whole seconds, leaves a token 1 to 2 s for its review: enough on a loaded
//! machine (at 90, 0.67 to 1.67 s was judged too close). Ages are counted in whole seconds,
//! as `X-Amz-Date` has them. The API server's cache of its answers is kept at 1 s
//! ([`EksAuthenticator::flags`]), so that a cached "yes" cannot outlive the token by more.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use serde_json::{json, Value};

use crate::support::ThreadServer;

/// How much faster than EKS the tests' clock runs.
pub const EKS_TIME_SCALE: u32 = 60;
/// How long EKS accepts a token after signing it.
const EKS_TOKEN_LIFETIME: Duration = Duration::from_secs(15 * 60);

/// `duration` of EKS time, as the tests run it.
pub fn scaled(duration: Duration) -> Duration {
    duration / EKS_TIME_SCALE
}

/// One token the API server asked about.
#[derive(Debug, Clone)]
pub struct Review {
    /// The access key that signed it (`X-Amz-Credential`'s first part): tells tests apart.
    pub access_key: String,
    /// Its signature: tells tokens apart.
    pub signature: String,
    /// Its `X-Amz-Date`, in seconds since the epoch.
    pub signed: u64,
    /// When it was asked about, in seconds since the epoch.
    pub at: u64,
    /// `None` when accepted, else why not.
    pub refused: Option<String>,
}

pub struct EksAuthenticator {
    config: PathBuf,
    reviews: Arc<Mutex<Vec<Review>>>,
    /// Stops serving when dropped.
    _server: ThreadServer,
    _dir: tempfile::TempDir,
}

impl EksAuthenticator {
    /// Listens on a free port, and writes the kubeconfig the API server calls it with.
    pub fn start() -> EksAuthenticator {
        let dir = tempfile::tempdir().unwrap();
        let reviews: Arc<Mutex<Vec<Review>>> = Arc::default();
        let log = reviews.clone();
        let server = ThreadServer::start("eks-authenticator", move |request| {
            let log = log.clone();
            async move { token_review(request, &log).await }
        });
        let config = dir.path().join("eks-authenticator.kubeconfig.yaml");
        let kubeconfig = json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "eks-authenticator",
                          "cluster": {"server": format!("http://127.0.0.1:{}/authenticate", server.port)}}],
            "users": [{"name": "kube-apiserver", "user": {}}],
            "contexts": [{"name": "webhook",
                          "context": {"cluster": "eks-authenticator", "user": "kube-apiserver"}}],
            "current-context": "webhook",
        });
        std::fs::write(&config, serde_yaml::to_string(&kubeconfig).unwrap()).unwrap();
        EksAuthenticator {
            config,
            reviews,
            _server: server,
            _dir: dir,
        }
    }

    /// The API server's flags that make it ask this authenticator about tokens it does not
    /// know, in `authentication.k8s.io/v1`, caching each answer 1 s.
    pub fn flags(&self) -> Vec<String> {
        vec![
            format!(
                "--authentication-token-webhook-config-file={}",
                self.config.display()
            ),
            "--authentication-token-webhook-version=v1".into(),
            "--authentication-token-webhook-cache-ttl=1s".into(),
        ]
    }

    /// The reviews of tokens signed with `access_key`, in order.
    pub fn reviews(&self, access_key: &str) -> Vec<Review> {
        let reviews = self.reviews.lock().unwrap();
        reviews
            .iter()
            .filter(|r| r.access_key == access_key)
            .cloned()
            .collect()
    }
}

/// Answers a `TokenReview`.
async fn token_review(
    request: Request<Incoming>,
    reviews: &Mutex<Vec<Review>>,
) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let body = request.into_body().collect().await?.to_bytes();
    let review: Value = serde_json::from_slice(&body).unwrap_or_default();
    let token = review["spec"]["token"].as_str().unwrap_or_default();
    let at = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let status = match check(token, at) {
        Ok(record) => {
            let status = match &record.refused {
                None => json!({"authenticated": true, "user": {
                    "username": "kubernetes-admin",
                    "uid": format!("aws-iam-authenticator:{}", record.access_key),
                    "groups": ["system:masters"],
                }}),
                Some(why) => json!({"authenticated": false, "error": why}),
            };
            reviews.lock().unwrap().push(record);
            status
        }
        Err(why) => json!({"authenticated": false, "error": why}),
    };
    let answer = json!({
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenReview",
        "status": status,
    });
    Ok(Response::builder()
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(answer.to_string())))
        .unwrap())
}

/// What the authenticator makes of `token` at `at` (seconds since the epoch): `Err` for a
/// token that is not an EKS token at all (not recorded).
fn check(token: &str, at: u64) -> Result<Review, String> {
    let encoded = token
        .strip_prefix("k8s-aws-v1.")
        .ok_or("not a k8s-aws-v1 token")?;
    let url = String::from_utf8(URL_SAFE_NO_PAD.decode(encoded).map_err(|e| e.to_string())?)
        .map_err(|e| e.to_string())?;
    let (base, query) = url.split_once('?').ok_or("no query")?;
    let host = base
        .strip_prefix("https://")
        .and_then(|h| h.strip_suffix('/'))
        .ok_or("not https")?;
    if !(host.starts_with("sts.") && host.ends_with(".amazonaws.com")) {
        return Err(format!("unexpected hostname {host:?} in pre-signed URL"));
    }
    let params: BTreeMap<&str, &str> = query.split('&').filter_map(|p| p.split_once('=')).collect();
    if params.get("Action") != Some(&"GetCallerIdentity") {
        return Err("not a GetCallerIdentity URL".into());
    }
    if !params
        .get("X-Amz-SignedHeaders")
        .is_some_and(|h| h.split("%3B").any(|h| h == "x-k8s-aws-id"))
    {
        return Err("client did not sign the x-k8s-aws-id header".into());
    }
    let date = params.get("X-Amz-Date").ok_or("no X-Amz-Date")?;
    let signed = amz_date(date).ok_or("X-Amz-Date is not a date")?;
    let access_key = params
        .get("X-Amz-Credential")
        .and_then(|c| c.split("%2F").next())
        .ok_or("no X-Amz-Credential")?;
    let lifetime = scaled(EKS_TOKEN_LIFETIME).as_secs();
    let refused = (at.saturating_sub(signed) > lifetime).then(|| {
        format!(
            "X-Amz-Date parameter is expired ({lifetime} s expiration, EKS's 15 minutes scaled)"
        )
    });
    Ok(Review {
        access_key: access_key.to_string(),
        signature: params.get("X-Amz-Signature").unwrap_or(&"").to_string(),
        signed,
        at,
        refused,
    })
}

/// `20240102T030405Z` in seconds since the epoch.
fn amz_date(date: &str) -> Option<u64> {
    let (d, t) = date.strip_suffix('Z')?.split_once('T')?;
    let rfc3339 = format!(
        "{}-{}-{}T{}:{}:{}Z",
        d.get(0..4)?,
        d.get(4..6)?,
        d.get(6..8)?,
        t.get(0..2)?,
        t.get(2..4)?,
        t.get(4..6)?
    );
    let time = humantime::parse_rfc3339(&rfc3339).ok()?;
    Some(time.duration_since(UNIX_EPOCH).ok()?.as_secs())
}
