//! One cap on AWS requests in flight for a whole command. Every SDK client of the command sends
//! through the same limiter, so `apply --all` over fifty stacks never has more than
//! `--parallelism` calls open at once, whatever each stack's executor runs. The cap sits in the
//! HTTP client, under the SDK's retries: a request sleeping before a retry, and an operation
//! waiting for a cluster to become ACTIVE between two polls, hold no slot.

use std::sync::Arc;

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::{
    RuntimeComponents, RuntimeComponentsBuilder,
};
use aws_smithy_runtime_api::client::runtime_plugin::RuntimePlugin;
use aws_smithy_types::config_bag::ConfigBag;
use tokio::sync::Semaphore;

/// At most `limit` requests in flight across every client built with it.
#[derive(Clone, Debug)]
pub struct RequestCap {
    slots: Arc<Semaphore>,
}

impl RequestCap {
    pub fn new(limit: usize) -> Self {
        RequestCap {
            slots: Arc::new(Semaphore::new(limit.max(1))),
        }
    }

    /// The SDK's own default HTTPS client (the one a client gets when none is set), sending
    /// through this cap; `None` in a build without that client.
    pub fn default_client(&self) -> Option<SharedHttpClient> {
        let plugin = aws_smithy_runtime::client::defaults::default_http_client_plugin_v2(
            aws_config::BehaviorVersion::latest(),
        )?;
        let inner = plugin
            .runtime_components(&RuntimeComponentsBuilder::new("mlops"))
            .http_client()?;
        Some(self.wrap(inner))
    }

    /// `inner`, sending through this cap.
    pub fn wrap(&self, inner: SharedHttpClient) -> SharedHttpClient {
        SharedHttpClient::new(Capped {
            inner,
            slots: self.slots.clone(),
        })
    }
}

#[derive(Debug)]
struct Capped<T> {
    inner: T,
    slots: Arc<Semaphore>,
}

impl HttpClient for Capped<SharedHttpClient> {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(Capped {
            inner: self.inner.http_connector(settings, components),
            slots: self.slots.clone(),
        })
    }

    fn validate_base_client_config(
        &self,
        components: &RuntimeComponentsBuilder,
        cfg: &ConfigBag,
    ) -> Result<(), aws_smithy_runtime_api::box_error::BoxError> {
        self.inner.validate_base_client_config(components, cfg)
    }

    fn validate_final_config(
        &self,
        components: &RuntimeComponents,
        cfg: &ConfigBag,
    ) -> Result<(), aws_smithy_runtime_api::box_error::BoxError> {
        self.inner.validate_final_config(components, cfg)
    }

    fn connector_metadata(
        &self,
    ) -> Option<aws_smithy_runtime_api::client::connector_metadata::ConnectorMetadata> {
        self.inner.connector_metadata()
    }
}

impl HttpConnector for Capped<SharedHttpConnector> {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let (inner, slots) = (self.inner.clone(), self.slots.clone());
        HttpConnectorFuture::new(async move {
            // The semaphore is never closed; an error here cannot happen, but is not a panic.
            let _slot = slots
                .acquire_owned()
                .await
                .map_err(|e| ConnectorError::other(e.into(), None))?;
            inner.call(request).await
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
    use aws_smithy_runtime_api::http::StatusCode;
    use aws_smithy_types::body::SdkBody;

    use super::*;

    /// A server that answers every request after a pause and counts how many it holds at once.
    #[derive(Debug, Default)]
    struct SlowServer {
        now: AtomicUsize,
        most: AtomicUsize,
        served: AtomicUsize,
    }

    #[derive(Debug, Clone)]
    struct SlowClient(Arc<SlowServer>);

    impl HttpConnector for SlowClient {
        fn call(&self, _: HttpRequest) -> HttpConnectorFuture {
            let server = self.0.clone();
            HttpConnectorFuture::new(async move {
                let now = server.now.fetch_add(1, Ordering::SeqCst) + 1;
                server.most.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(20)).await;
                server.now.fetch_sub(1, Ordering::SeqCst);
                server.served.fetch_add(1, Ordering::SeqCst);
                let body =
                    SdkBody::from("<ListAllMyBucketsResult><Buckets/></ListAllMyBucketsResult>");
                Ok(HttpResponse::new(StatusCode::try_from(200).unwrap(), body))
            })
        }
    }

    impl HttpClient for SlowClient {
        fn http_connector(
            &self,
            _: &HttpConnectorSettings,
            _: &RuntimeComponents,
        ) -> SharedHttpConnector {
            SharedHttpConnector::new(self.clone())
        }
    }

    fn s3(http: SharedHttpClient) -> aws_sdk_s3::Client {
        let config = aws_sdk_s3::Config::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-west-2"))
            .credentials_provider(aws_sdk_s3::config::Credentials::new(
                "testing", "testing", None, None, "tests",
            ))
            .http_client(http)
            .build();
        aws_sdk_s3::Client::from_conf(config)
    }

    /// Two "stacks", each with its own client and twelve calls at once, share one cap of 3:
    /// the server never holds more than 3 requests, and every call is served.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn clients_that_share_a_cap_never_exceed_it_together() {
        let server = Arc::new(SlowServer::default());
        let cap = RequestCap::new(3);
        let stacks = [
            s3(cap.wrap(SharedHttpClient::new(SlowClient(server.clone())))),
            s3(cap.wrap(SharedHttpClient::new(SlowClient(server.clone())))),
        ];
        let calls = stacks
            .iter()
            .flat_map(|client| (0..12).map(move |_| client.list_buckets().send()));
        for result in futures::future::join_all(calls).await {
            result.unwrap();
        }
        assert_eq!(server.served.load(Ordering::SeqCst), 24);
        assert_eq!(server.most.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn the_default_client_exists_in_this_build() {
        assert!(RequestCap::new(1).default_client().is_some());
    }
}
