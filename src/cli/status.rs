//! `mlops status <STACK>`: prints what `ops::status` read (where to send requests, whether the
//! models and node groups are ready) for people, or as one JSON document with `--json`.

use super::{Global, StackArg};
use crate::ops::{GatewayState, Status};
use crate::providers::aws::RequestCap;
use crate::ui::progress::Progress;
use crate::ui::{table, Style};
use crate::Result;

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub stack: StackArg,
    /// Print the status as one JSON object (`docs/workloads.md`)
    #[arg(long)]
    pub json: bool,
}

pub async fn run(args: &StatusArgs, global: &Global) -> Result<u8> {
    let stack = global.open(&args.stack.stack)?;
    let session = super::plan::session(&stack, global, 10, RequestCap::new(10), Progress::Auto);
    let status = crate::ops::status(&stack, &session).await?;
    if args.json {
        crate::outln!(
            "{}",
            serde_json::to_string_pretty(&status).expect("the status is plain data")
        );
        return Ok(0);
    }
    crate::out!("{}", render(&status, Style::for_stdout(global.no_color)));
    if let Some(example) = request_example(&status) {
        crate::errln!("{example}");
    }
    Ok(0)
}

/// The human form: a headline, then the gateway, the InferenceServices and the node groups.
fn render(status: &Status, style: Style) -> String {
    let verdict = if status.ready {
        style.green("ready")
    } else {
        style.red("not ready")
    };
    let mut out = format!(
        "stack `{}`, EKS cluster `{}`: {verdict}\n\n",
        status.stack, status.cluster
    );
    out.push_str(&style.bold("ingress gateway"));
    out.push('\n');
    let not_checked = "  not checked: `[addons] enabled = false` keeps mlops out of the cluster\n";
    match &status.ingress_gateway {
        None => out.push_str(not_checked),
        Some(gateway) => {
            let line = match (gateway.state, &gateway.hostname) {
                (GatewayState::Ready, Some(hostname)) => {
                    format!("{hostname}  (Service {})", gateway.service)
                }
                (GatewayState::NotInstalled, _) => format!(
                    "not installed: there is no Service {} (Istio is an add-on of `[addons]`)",
                    gateway.service
                ),
                _ => format!(
                    "pending: the load balancer of Service {} has no address yet (AWS takes 2-5 min)",
                    gateway.service
                ),
            };
            out.push_str(&format!("  {line}\n"));
        }
    }
    out.push('\n');
    out.push_str(&style.bold("inference services"));
    out.push('\n');
    match (&status.inference_services, status.kubernetes_checked) {
        (_, false) => out.push_str(not_checked),
        (None, true) => out.push_str(
            "  none: the cluster does not serve `serving.kserve.io/v1beta1` InferenceService (KServe is not installed)\n",
        ),
        (Some(services), true) if services.is_empty() => out.push_str("  none\n"),
        (Some(services), true) => {
            let mut rows = vec![vec![
                "NAMESPACE/NAME".to_string(),
                "READY".into(),
                "URL".into(),
            ]];
            let mut details = Vec::new();
            for service in services {
                rows.push(vec![
                    format!("{}/{}", service.namespace, service.name),
                    if service.ready { "yes" } else { "no" }.into(),
                    service.url.clone().unwrap_or_else(|| "-".into()),
                ]);
                if !service.ready {
                    let why = match (&service.reason, &service.message) {
                        (Some(reason), Some(message)) => format!("{reason}: {message}"),
                        (None, Some(text)) | (Some(text), None) => text.clone(),
                        (None, None) => "no `Ready` condition reported yet".into(),
                    };
                    details.push(format!(
                        "  {}/{}: {why}",
                        service.namespace, service.name
                    ));
                }
            }
            out.push_str(&indent(&table(&rows, &[])));
            for line in details {
                out.push_str(&line);
                out.push('\n');
            }
        }
    }
    out.push('\n');
    out.push_str(&style.bold("node groups"));
    out.push('\n');
    if status.node_groups.is_empty() {
        out.push_str("  none\n");
        return out;
    }
    let size = |n: Option<i32>| n.map_or_else(|| "-".to_string(), |n| n.to_string());
    let mut rows = vec![vec![
        "NAME".to_string(),
        "STATUS".into(),
        "MIN".into(),
        "DESIRED".into(),
        "MAX".into(),
    ]];
    for group in &status.node_groups {
        rows.push(vec![
            group.name.clone(),
            group.status.clone(),
            size(group.min_size),
            size(group.desired_size),
            size(group.max_size),
        ]);
    }
    out.push_str(&indent(&table(&rows, &[2, 3, 4])));
    for group in &status.node_groups {
        for issue in &group.issues {
            out.push_str(&format!("  {}: {issue}\n", group.name));
        }
    }
    out
}

fn indent(text: &str) -> String {
    text.lines().map(|line| format!("  {line}\n")).collect()
}

/// How to send a request to the first ready model: through the gateway, with its host.
fn request_example(status: &Status) -> Option<String> {
    let ingress = status.ingress_gateway.as_ref()?;
    let gateway = ingress.hostname.as_ref()?;
    let service = status
        .inference_services
        .iter()
        .flatten()
        .find(|s| s.ready && s.url.is_some())?;
    let host = service.url.as_deref()?.split_once("://")?.1;
    let from = if ingress.internal {
        " from inside the VPC (the load balancer is internal)"
    } else {
        ""
    };
    Some(format!(
        "hint: send requests through the gateway with the model's host{from}, e.g. `curl -H \"Host: {host}\" http://{gateway}/v1/models/{}:predict -d @input.json`",
        service.name
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::{Gateway, InferenceService, NodeGroup, STATUS_FORMAT_VERSION};

    fn status() -> Status {
        Status {
            format_version: STATUS_FORMAT_VERSION,
            stack: "team-a".into(),
            cluster: "team-a-cluster".into(),
            ready: false,
            kubernetes_checked: true,
            ingress_gateway: Some(Gateway {
                service: "istio-system/istio-ingressgateway".into(),
                state: GatewayState::Ready,
                hostname: Some("a1b2.elb.amazonaws.com".into()),
                internal: false,
            }),
            inference_services: Some(vec![
                InferenceService {
                    namespace: "serving".into(),
                    name: "wine".into(),
                    url: Some("http://wine.serving.example.com".into()),
                    ready: true,
                    reason: None,
                    message: None,
                },
                InferenceService {
                    namespace: "serving".into(),
                    name: "big".into(),
                    url: None,
                    ready: false,
                    reason: Some("RevisionMissing".into()),
                    message: Some("0/2 nodes are available".into()),
                },
            ]),
            node_groups: vec![NodeGroup {
                address: "eks_node_group.cpu".into(),
                name: "team-a-cpu".into(),
                status: "DEGRADED".into(),
                min_size: Some(1),
                desired_size: Some(2),
                max_size: Some(10),
                issues: vec!["AsgInstanceLaunchFailures: no capacity (asg-1)".into()],
            }],
        }
    }

    #[test]
    fn the_human_form_shows_where_to_send_requests_and_what_is_not_ready() {
        let text = render(&status(), Style::PLAIN);
        assert_eq!(
            text,
            "stack `team-a`, EKS cluster `team-a-cluster`: not ready

ingress gateway
  a1b2.elb.amazonaws.com  (Service istio-system/istio-ingressgateway)

inference services
  NAMESPACE/NAME  READY  URL
  serving/wine    yes    http://wine.serving.example.com
  serving/big     no     -
  serving/big: RevisionMissing: 0/2 nodes are available

node groups
  NAME        STATUS    MIN  DESIRED  MAX
  team-a-cpu  DEGRADED    1        2   10
  team-a-cpu: AsgInstanceLaunchFailures: no capacity (asg-1)
"
        );
        assert_eq!(
            request_example(&status()).unwrap(),
            "hint: send requests through the gateway with the model's host, e.g. `curl -H \"Host: wine.serving.example.com\" http://a1b2.elb.amazonaws.com/v1/models/wine:predict -d @input.json`"
        );
    }

    #[test]
    fn the_human_form_says_what_was_not_checked_or_is_missing() {
        let mut unchecked = status();
        unchecked.kubernetes_checked = false;
        unchecked.ingress_gateway = None;
        unchecked.inference_services = None;
        let text = render(&unchecked, Style::PLAIN);
        assert_eq!(
            text.matches("not checked: `[addons] enabled = false`")
                .count(),
            2,
            "{text}"
        );
        assert!(request_example(&unchecked).is_none());

        let mut bare = status();
        bare.ingress_gateway = Some(Gateway {
            service: "istio-system/istio-ingressgateway".into(),
            state: GatewayState::Pending,
            hostname: None,
            internal: false,
        });
        bare.inference_services = None;
        bare.node_groups.clear();
        let text = render(&bare, Style::PLAIN);
        assert!(text.contains("  pending: the load balancer of Service istio-system/istio-ingressgateway has no address yet"), "{text}");
        assert!(text.contains("  none: the cluster does not serve `serving.kserve.io/v1beta1` InferenceService (KServe is not installed)"), "{text}");
        assert!(text.ends_with("node groups\n  none\n"), "{text}");
    }
}
