//! The bearer token of a connection to an EKS cluster, minted again while a run goes on. EKS's
//! authenticator refuses a token 15 minutes after it was signed (its `X-Amz-Date`), whatever
//! the URL's `X-Amz-Expires` says, and a run can wait longer than that (a model that takes
//! 20 minutes to become Ready). So the token is not written into the client once: a layer of
//! the kube client ([`Bearer`]) puts the current one on every request, and mints a new one
//! (new credentials from the SDK's chain, a new signature) once the current one is
//! [`token::TOKEN_LIFETIME`] old, as kubectl does with `aws eks get-token`'s expiry. A request
//! refused with 401 all the same (a clock off by a minute) has its token renewed once by the
//! caller ([`TokenMinter::renew`], `Cluster`).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use futures::future::BoxFuture;
use http::header::AUTHORIZATION;
use http::{HeaderValue, Request};
use tokio::sync::Mutex;
use tower::filter::AsyncPredicate;
use tower::BoxError;

use super::token;

/// Why no token could be made: the message says what to do. Never worth a retry.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct MintError(String);

/// Mints the tokens of one cluster and keeps the current one.
pub struct TokenMinter {
    credentials: SharedCredentialsProvider,
    region: String,
    cluster: String,
    /// A token this old is not sent again: [`token::TOKEN_LIFETIME`], shorter in tests.
    refresh_after: Duration,
    current: Mutex<Option<(HeaderValue, SystemTime)>>,
}

impl TokenMinter {
    pub fn new(
        credentials: SharedCredentialsProvider,
        region: &str,
        cluster: &str,
        refresh_after: Duration,
    ) -> Arc<TokenMinter> {
        Arc::new(TokenMinter {
            credentials,
            region: region.into(),
            cluster: cluster.into(),
            refresh_after,
            current: Mutex::new(None),
        })
    }

    /// The `Authorization` header to send now: the current token while it is younger than
    /// `refresh_after`, else a new one.
    async fn header(&self) -> Result<HeaderValue, MintError> {
        let mut current = self.current.lock().await;
        if let Some((header, signed_at)) = current.as_ref() {
            let age = signed_at.elapsed().unwrap_or(Duration::MAX);
            if age < self.refresh_after {
                return Ok(header.clone());
            }
        }
        let minted = self.mint().await?;
        *current = Some(minted.clone());
        Ok(minted.0)
    }

    /// Forgets the current token if it was signed before `sent` (the time a refused request
    /// went out), so that the next request carries a new one; a token minted since, by a
    /// request that ran alongside, is kept.
    pub async fn renew(&self, sent: SystemTime) {
        let mut current = self.current.lock().await;
        if current.as_ref().is_some_and(|(_, signed)| *signed <= sent) {
            *current = None;
        }
    }

    async fn mint(&self) -> Result<(HeaderValue, SystemTime), MintError> {
        let credentials = self.credentials.provide_credentials().await.map_err(|e| {
            MintError(format!(
                "cannot load AWS credentials for a new token of the cluster `{}`: {}",
                self.cluster,
                token::error_chain(&e)
            ))
        })?;
        let signed_at = SystemTime::now();
        let url = token::presigned_url(&credentials, &self.region, &self.cluster, signed_at)
            .map_err(|e| MintError(e.to_string()))?;
        let mut header = HeaderValue::from_str(&format!("Bearer {}", token::token(&url)))
            .map_err(|e| MintError(format!("the token is no header value: {e}")))?;
        header.set_sensitive(true);
        Ok((header, signed_at))
    }
}

/// The kube client's layer (`tower::filter::AsyncFilterLayer`) that puts the current token on
/// each request.
#[derive(Clone)]
pub struct Bearer(pub Arc<TokenMinter>);

impl<B: Send + 'static> AsyncPredicate<Request<B>> for Bearer {
    type Future = BoxFuture<'static, Result<Request<B>, BoxError>>;
    type Request = Request<B>;

    fn check(&mut self, mut request: Request<B>) -> Self::Future {
        let minter = self.0.clone();
        Box::pin(async move {
            let header = minter.header().await?;
            request.headers_mut().insert(AUTHORIZATION, header);
            Ok(request)
        })
    }
}

#[cfg(test)]
mod tests {
    use aws_credential_types::Credentials;

    use super::*;

    fn minter(refresh_after: Duration) -> Arc<TokenMinter> {
        let credentials = Credentials::new("AKIDEXAMPLE", "secret", None, None, "test");
        TokenMinter::new(
            SharedCredentialsProvider::new(credentials),
            "us-west-2",
            "demo",
            refresh_after,
        )
    }

    async fn token_of(minter: &TokenMinter) -> String {
        minter.header().await.unwrap().to_str().unwrap().to_string()
    }

    #[tokio::test]
    async fn a_token_is_kept_until_it_is_refresh_after_old_then_minted_again() {
        let minter = minter(Duration::from_millis(1500));
        let first = token_of(&minter).await;
        assert!(first.starts_with("Bearer k8s-aws-v1."), "{first}");
        assert_eq!(token_of(&minter).await, first);
        // X-Amz-Date has whole seconds: wait past the next one so the signature differs.
        tokio::time::sleep(Duration::from_millis(2100)).await;
        assert_ne!(token_of(&minter).await, first);
    }

    #[tokio::test]
    async fn renew_drops_only_a_token_signed_before_the_refused_request() {
        let minter = minter(Duration::from_secs(600));
        let before = SystemTime::now() - Duration::from_secs(1);
        let first = token_of(&minter).await;
        minter.renew(before).await;
        assert_eq!(token_of(&minter).await, first, "a newer token was dropped");
        tokio::time::sleep(Duration::from_millis(1100)).await;
        minter.renew(SystemTime::now()).await;
        assert_ne!(token_of(&minter).await, first);
    }
}
