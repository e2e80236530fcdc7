//! The EKS bearer token, made exactly as `aws eks get-token` makes it: a SigV4 presigned STS
//! `GetCallerIdentity` URL that also signs the header `x-k8s-aws-id: <cluster name>`, encoded
//! as `k8s-aws-v1.` + base64url without padding. The cluster's authenticator replays the URL
//! against STS and learns who signed it; the signed header stops a token minted for one cluster
//! from being replayed against another.
//!
//! The URL always names the real regional STS host, never an `AWS_ENDPOINT_URL*` or
//! `--endpoint-url` override: the authenticator inside the cluster is the one that calls STS,
//! and it only accepts AWS's own hosts.

use std::time::{Duration, SystemTime};

use aws_config::{BehaviorVersion, Region};
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    sign, SignableBody, SignableRequest, SignatureLocation, SigningSettings,
};
use aws_sigv4::sign::v4;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Serialize;

use super::KubeError;

type Result<T> = std::result::Result<T, KubeError>;

/// What every token starts with.
pub const TOKEN_PREFIX: &str = "k8s-aws-v1.";
/// The header that binds a token to one cluster.
pub const CLUSTER_ID_HEADER: &str = "x-k8s-aws-id";
/// How long the presigned URL is valid, as `aws eks get-token` signs it.
pub const URL_EXPIRES: Duration = Duration::from_secs(60);
/// When kubectl should ask for a new token: 14 minutes after signing, as `aws eks get-token`
/// says (the authenticator accepts a token for 15 minutes whatever `X-Amz-Expires` says).
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(14 * 60);

const QUERY: &str = "Action=GetCallerIdentity&Version=2011-06-15";
const SIGNATURE_PARAM: &str = "X-Amz-Signature";

/// The regional STS endpoint of `region`, always AWS's own host.
pub fn sts_endpoint(region: &str) -> String {
    let host = crate::model::Partition::of(region).regional_host("sts", region);
    format!("https://{host}/")
}

/// The presigned `GetCallerIdentity` URL for `cluster`, signed at `time`. A pure function of
/// its arguments, byte for byte the URL botocore's presigner makes: the operation's
/// parameters, then the signing parameters in botocore's order, the signature last.
pub fn presigned_url(
    credentials: &Credentials,
    region: &str,
    cluster: &str,
    time: SystemTime,
) -> Result<String> {
    let unsigned = format!("{}?{QUERY}", sts_endpoint(region));
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(URL_EXPIRES);
    let identity = credentials.clone().into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("sts")
        .time(time)
        .settings(settings)
        .build()
        .map_err(|e| signing_failed(cluster, &e))?
        .into();
    let request = SignableRequest::new(
        "GET",
        unsigned.as_str(),
        std::iter::once((CLUSTER_ID_HEADER, cluster)),
        SignableBody::Bytes(&[]),
    )
    .map_err(|e| signing_failed(cluster, &e))?;
    let (instructions, signature) = sign(request, &params)
        .map_err(|e| signing_failed(cluster, &e))?
        .into_parts();
    let mut url = unsigned;
    for (name, value) in instructions.params() {
        if *name != SIGNATURE_PARAM {
            url.push_str(&format!("&{name}={}", percent_encode(value)));
        }
    }
    url.push_str(&format!("&{SIGNATURE_PARAM}={signature}"));
    Ok(url)
}

/// The bearer token for a presigned URL.
pub fn token(url: &str) -> String {
    format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(url))
}

/// RFC 3986 percent-encoding of everything but the unreserved characters, as botocore's
/// `percent_encode` does (upper-case hex digits).
fn percent_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn signing_failed(cluster: &str, err: &dyn std::fmt::Display) -> KubeError {
    KubeError::Credentials {
        message: format!("cannot sign a token for the cluster `{cluster}`: {err}"),
        hint: "check the `cluster_name` output (`mlops output`) and the AWS credentials",
    }
}

/// The `ExecCredential` kubectl reads from an exec credential plugin.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecCredential {
    kind: &'static str,
    api_version: &'static str,
    spec: EmptySpec,
    status: ExecStatus,
}

#[derive(Debug, Serialize)]
struct EmptySpec {}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ExecStatus {
    expiration_timestamp: String,
    token: String,
}

/// The API version of `ExecCredential` that mlops speaks, in kubeconfigs too.
pub const EXEC_API_VERSION: &str = "client.authentication.k8s.io/v1beta1";

impl ExecCredential {
    /// The credential for a token signed at `signed_at`.
    pub fn new(token: String, signed_at: SystemTime) -> Self {
        let expires = humantime::format_rfc3339_seconds(signed_at + TOKEN_LIFETIME);
        ExecCredential {
            kind: "ExecCredential",
            api_version: EXEC_API_VERSION,
            spec: EmptySpec {},
            status: ExecStatus {
                expiration_timestamp: expires.to_string(),
                token,
            },
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("an ExecCredential is plain strings")
    }
}

const CREDENTIALS_HINT: &str = "configure AWS credentials the standard way: `aws configure`, \
     `aws sso login`, AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY";

/// The default credentials chain of the SDK (environment, profile, SSO, web identity,
/// container, instance metadata), as every other command loads it.
pub async fn credentials_provider(region: &str) -> Result<SharedCredentialsProvider> {
    let config = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(region.to_string()))
        .load()
        .await;
    config
        .credentials_provider()
        .ok_or_else(|| KubeError::Credentials {
            message: "no AWS credentials provider is configured".into(),
            hint: CREDENTIALS_HINT,
        })
}

/// Credentials from [`credentials_provider`].
pub async fn load_credentials(region: &str) -> Result<Credentials> {
    let provider = credentials_provider(region).await?;
    provider
        .provide_credentials()
        .await
        .map_err(|e| KubeError::Credentials {
            message: format!("cannot load AWS credentials: {}", error_chain(&e)),
            hint: CREDENTIALS_HINT,
        })
}

/// An error and its causes joined by `: `, without the debug dump the SDK appends.
pub(crate) fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![err.to_string()];
    let mut source = err.source();
    while let Some(cause) = source {
        // Layers often repeat their cause in their own text: say each thing once.
        let text = cause.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = cause.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn creds(token: Option<&str>) -> Credentials {
        Credentials::new(
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            token.map(str::to_string),
            None,
            "test",
        )
    }

    #[test]
    fn the_url_names_the_regional_sts_host_and_signs_the_cluster_header() {
        // 2024-01-02T03:04:05Z
        let url = presigned_url(&creds(None), "eu-west-1", "demo", at(1_704_164_645)).unwrap();
        assert!(url.starts_with(
            "https://sts.eu-west-1.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%2F20240102%2Feu-west-1%2Fsts%2Faws4_request&X-Amz-Date=20240102T030405Z&X-Amz-Expires=60&X-Amz-SignedHeaders=host%3Bx-k8s-aws-id&X-Amz-Signature="
        ), "{url}");
        let signature = url.rsplit_once("X-Amz-Signature=").unwrap().1;
        assert_eq!(signature.len(), 64);
        assert!(signature.bytes().all(|b| b.is_ascii_hexdigit()));
    }

    #[test]
    fn the_session_token_goes_before_the_signature() {
        let url = presigned_url(&creds(Some("tok/en+=")), "us-west-2", "demo", at(0)).unwrap();
        assert!(
            url.contains("&X-Amz-SignedHeaders=host%3Bx-k8s-aws-id&X-Amz-Security-Token=tok%2Fen%2B%3D&X-Amz-Signature="),
            "{url}"
        );
    }

    #[test]
    fn the_signature_depends_on_cluster_time_and_secret() {
        let base = presigned_url(&creds(None), "us-west-2", "a", at(0)).unwrap();
        assert_ne!(
            base,
            presigned_url(&creds(None), "us-west-2", "b", at(0)).unwrap()
        );
        assert_ne!(
            base,
            presigned_url(&creds(None), "us-west-2", "a", at(1)).unwrap()
        );
    }

    #[test]
    fn china_regions_use_their_own_domain() {
        assert_eq!(
            sts_endpoint("cn-north-1"),
            "https://sts.cn-north-1.amazonaws.com.cn/"
        );
        assert_eq!(
            sts_endpoint("us-gov-west-1"),
            "https://sts.us-gov-west-1.amazonaws.com/"
        );
    }

    #[test]
    fn the_token_is_unpadded_base64url_of_the_url() {
        // 10 bytes: standard base64 would end in `==`.
        let token = token("https://x");
        assert_eq!(token, "k8s-aws-v1.aHR0cHM6Ly94");
        let decoded = URL_SAFE_NO_PAD
            .decode(token.strip_prefix(TOKEN_PREFIX).unwrap())
            .unwrap();
        assert_eq!(decoded, b"https://x");
    }

    #[test]
    fn a_cluster_name_that_is_no_header_value_is_refused() {
        let err = presigned_url(&creds(None), "us-west-2", "a\nb", at(0)).unwrap_err();
        assert!(err
            .to_string()
            .starts_with("cannot sign a token for the cluster"));
    }

    #[test]
    fn the_exec_credential_expires_fourteen_minutes_after_signing() {
        let json = ExecCredential::new("k8s-aws-v1.abc".into(), at(1_704_164_645)).to_json();
        assert_eq!(
            json,
            r#"{"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1beta1","spec":{},"status":{"expirationTimestamp":"2024-01-02T03:18:05Z","token":"k8s-aws-v1.abc"}}"#
        );
    }

    #[test]
    fn percent_encoding_keeps_only_unreserved_characters() {
        assert_eq!(
            percent_encode("aZ09-_.~/+= ;é"),
            "aZ09-_.~%2F%2B%3D%20%3B%C3%A9"
        );
    }
}
