//! The ingress settings of the stack (`[addons.knative] domain`, `[addons.ingress_gateway]`),
//! here rather than in `spec/` because the add-ons' rendering writes them into objects, and the
//! add-ons sit below the spec.

/// Where the models are reached: the domain of their URLs (Knative's `config-domain`, KServe's
/// `ingressDomain`) and the AWS load balancer of Istio's ingress gateway in front of them.
#[derive(Debug, Clone, PartialEq)]
pub struct IngressSpec {
    pub domain: String,
    pub load_balancer: LoadBalancerType,
    pub internal: bool,
}

impl Default for IngressSpec {
    /// `example.com` (Knative's and KServe's own example domain), reached with a `Host` header,
    /// which needs no DNS; a classic ELB facing the internet, which is what the Istio manifests
    /// make without an annotation (`docs/addons.md`, The ingress gateway).
    fn default() -> Self {
        IngressSpec {
            domain: DEFAULT_DOMAIN.into(),
            load_balancer: LoadBalancerType::Classic,
            internal: false,
        }
    }
}

/// The domain of the models' URLs when `[addons.knative] domain` is left out.
pub const DEFAULT_DOMAIN: &str = "example.com";

/// The kind of AWS load balancer the gateway's Service asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadBalancerType {
    /// A classic ELB: the in-tree controller's answer to a Service without a type annotation.
    Classic,
    /// A Network Load Balancer.
    Network,
}

impl LoadBalancerType {
    /// As the spec and the add-on's attributes spell it.
    pub fn name(self) -> &'static str {
        match self {
            LoadBalancerType::Classic => "clb",
            LoadBalancerType::Network => "nlb",
        }
    }
}
