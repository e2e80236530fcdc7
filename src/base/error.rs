//! Provider errors and their classification, in one place: what the executor may retry, what
//! means "gone", and what must stop the run. AWS error codes are read through
//! `ProvideErrorMetadata`, never by matching Rust types.

use std::fmt;

/// What an error means for the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// The object does not exist.
    NotFound,
    /// The cloud has not caught up with an earlier change yet (IAM eventual consistency, a
    /// dependency still being deleted), or throttled the call: worth retrying with backoff.
    Propagating,
    /// No answer, or a server error, after the SDK's own retries: the call may or may not have
    /// taken effect. Safe to retry only where a repeat cannot make a second object.
    Transient,
    /// Anything else: retrying cannot help.
    Fatal,
}

#[derive(Debug, Clone)]
pub struct ProviderError {
    pub class: ErrorClass,
    /// The cloud's error code, e.g. `AccessDenied`, when it gave one.
    pub code: Option<String>,
    pub message: String,
}

impl ProviderError {
    pub fn fatal(message: impl Into<String>) -> Self {
        ProviderError {
            class: ErrorClass::Fatal,
            code: None,
            message: message.into(),
        }
    }

    pub fn is_not_found(&self) -> bool {
        self.class == ErrorClass::NotFound
    }

    /// A hint for codes where one helps the user, and for the failures that carry no code
    /// (no credentials, no connection).
    pub fn hint(&self) -> Option<&'static str> {
        let Some(code) = self.code.as_deref() else {
            return if self.message.contains("loading credentials")
                || self.message.contains("no credentials")
            {
                Some("no usable AWS credentials: set AWS_PROFILE (or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY), or run `aws sso login`")
            } else if self.message.contains("dispatch failure") {
                Some("AWS could not be reached: check the network, and `--endpoint-url` or AWS_ENDPOINT_URL if set")
            } else {
                None
            };
        };
        code_hint(code)
    }
}

/// The hint for an error code of AWS or of the cluster layer.
pub fn code_hint(code: &str) -> Option<&'static str> {
    match code {
            "AccessDenied" | "AccessDeniedException" | "UnauthorizedOperation" => Some(
                "the credentials in use lack this permission; `aws sts get-caller-identity` shows who they are",
            ),
            "BucketNotEmpty" => Some(
                "the bucket still holds objects: empty it, or set `force_destroy = true` to let mlops delete every object version",
            ),
            "RepositoryNotEmptyException" => Some(
                "the repository still holds images: delete them, or set `force_delete = true` in the repository's table",
            ),
            "BucketAlreadyExists" => Some(
                "S3 bucket names are global and this one belongs to another account: choose another `name`",
            ),
            "AddressLimitExceeded" | "NatGatewayLimitExceeded" | "VpcLimitExceeded" | "LimitExceededException" | "ResourceLimitExceededException" => Some(
                "an account quota is reached: free some capacity or ask AWS for a higher quota",
            ),
            "InvalidParameterValue" | "InvalidParameterException" | "InvalidRequestException" | "ValidationError" | "ValidationException" => {
                Some("AWS refused a value of the spec: check the named resource's settings in the stack file")
            }
            "KubeUnreachable" => Some(
                "check that the cluster's endpoint is reachable from here (public endpoint, `public_access_cidrs`), or pass `--kubeconfig`",
            ),
            "KubeUnauthorized" => Some(
                "the cluster did not accept the credentials: check that these AWS credentials are a cluster admin (`[eks] admin_arns`), or that the kubeconfig is current",
            ),
            "KubeNotServed" => Some(
                "this add-on version needs a newer Kubernetes: upgrade `[eks] version` first, or pick another add-on version (`mlops addons list`)",
            ),
            "KubeTimeout" => Some(
                "look at the object with kubectl (`mlops kubeconfig` gives access), or allow more time with `--wait-timeout`",
            ),
            "KubeCrdRemoval" => Some(
                "back up those custom resources, then run again with `--allow-crd-removal`",
            ),
            "AddonManifest" => Some(
                "without network access, pass a bundle with `--manifests-dir`; a digest mismatch means the file is not the release mlops knows",
            ),
            "ExpiredToken" | "ExpiredTokenException" | "InvalidClientTokenId" | "UnrecognizedClientException" => {
                Some("the AWS credentials are invalid or expired: refresh them and run again")
            }
            _ => None,
        }
}

impl fmt::Display for ProviderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.code {
            Some(code) => write!(f, "{code}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for ProviderError {}

#[cfg(test)]
mod tests {
    use super::*;

    fn uncoded(message: &str) -> ProviderError {
        ProviderError::fatal(message)
    }

    #[test]
    fn failures_without_a_code_still_get_a_hint() {
        let creds = uncoded("dispatch failure: other: an error occurred while loading credentials: failed to load IMDS session token");
        assert!(creds.hint().unwrap().contains("AWS_PROFILE"));
        let offline = uncoded("dispatch failure: io error: error trying to connect: tcp connect error: Connection refused");
        assert!(offline.hint().unwrap().contains("could not be reached"));
        assert_eq!(uncoded("something else").hint(), None);
        let denied = ProviderError {
            class: ErrorClass::Fatal,
            code: Some("AccessDenied".into()),
            message: "no".into(),
        };
        assert!(denied.hint().unwrap().contains("lack this permission"));
    }
}
