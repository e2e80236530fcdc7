//! Admission webhooks as the API server calls them: every Mutating/ValidatingWebhookConfiguration
//! whose rules and selectors match a write is called; a webhook backed by a Service without
//! ready Endpoints fails the write with the real server's words (unless its failurePolicy is
//! Ignore); once the Service has ready Endpoints the webhook admits everything.

use serde_json::Value;

use super::controllers::service_ready;
use super::selector::LabelSelector;
use super::state::State;
use super::status::ApiError;
use super::writes::Target;

const CONFIGURATIONS: [&str; 2] = [
    "mutatingwebhookconfigurations",
    "validatingwebhookconfigurations",
];

/// Runs the webhooks that guard `operation` (`CREATE`, `UPDATE`, `DELETE`) of `object`.
pub fn admit(
    state: &State,
    target: Target,
    subresource: Option<&str>,
    operation: &str,
    object: &Value,
) -> Result<(), ApiError> {
    // As on a real server, webhooks are never called for webhook configurations.
    if target.resource.group == "admissionregistration.k8s.io" {
        return Ok(());
    }
    for plural in CONFIGURATIONS {
        let configurations = state
            .catalogue
            .builtin("admissionregistration.k8s.io", plural);
        for configuration in state.list(&configurations, None) {
            let webhooks = configuration["webhooks"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or(&[]);
            for webhook in webhooks {
                let guards = webhook["rules"].as_array().is_some_and(|rules| {
                    rules
                        .iter()
                        .any(|r| rule_matches(r, target, subresource, operation))
                });
                if guards && selected(state, target, webhook, object) {
                    call(state, webhook)?;
                }
            }
        }
    }
    Ok(())
}

fn any_is(list: &Value, wanted: &str) -> bool {
    list.as_array()
        .is_some_and(|items| items.iter().any(|i| i == "*" || i == wanted))
}

fn rule_matches(rule: &Value, target: Target, subresource: Option<&str>, operation: &str) -> bool {
    let resource = target.resource;
    let scope = match rule["scope"].as_str() {
        Some("Cluster") => !resource.namespaced,
        Some("Namespaced") => resource.namespaced,
        _ => true,
    };
    let resources = rule["resources"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let resource_matches = resources.iter().filter_map(Value::as_str).any(|pattern| {
        let (name, sub) = pattern.split_once('/').unwrap_or((pattern, ""));
        let name_ok = name == "*" || name == resource.plural;
        let sub_ok = match (sub, subresource) {
            ("*", _) => true,
            ("", None) => true,
            (wanted, Some(actual)) => wanted == actual,
            (_, None) => false,
        };
        name_ok && sub_ok
    });
    scope
        && resource_matches
        && any_is(&rule["apiGroups"], &resource.group)
        && any_is(&rule["apiVersions"], target.version)
        && any_is(&rule["operations"], operation)
}

/// The webhook's objectSelector and namespaceSelector (the latter against the namespace's
/// labels, or a Namespace's own; cluster-scoped objects pass it).
fn selected(state: &State, target: Target, webhook: &Value, object: &Value) -> bool {
    let matches = |selector: &Value, labels: Option<&serde_json::Map<String, Value>>| {
        selector.is_null() || LabelSelector::from_object(selector).is_ok_and(|s| s.matches(labels))
    };
    if !matches(
        &webhook["objectSelector"],
        object["metadata"]["labels"].as_object(),
    ) {
        return false;
    }
    let namespace_labels = if target.resource.is("", "namespaces") {
        Some(object["metadata"]["labels"].clone())
    } else if target.resource.namespaced {
        let namespaces = state.catalogue.builtin("", "namespaces");
        let namespace = state.get(&namespaces, "", target.namespace);
        Some(
            namespace
                .map(|n| n["metadata"]["labels"].clone())
                .unwrap_or(Value::Null),
        )
    } else {
        None
    };
    match namespace_labels {
        Some(labels) => matches(&webhook["namespaceSelector"], labels.as_object()),
        None => true,
    }
}

/// Calls a webhook: it answers (and admits) when its Service has ready Endpoints.
fn call(state: &State, webhook: &Value) -> Result<(), ApiError> {
    let service = &webhook["clientConfig"]["service"];
    let (Some(namespace), Some(name)) = (service["namespace"].as_str(), service["name"].as_str())
    else {
        return Ok(());
    };
    if service_ready(state, namespace, name) || webhook["failurePolicy"] == "Ignore" {
        return Ok(());
    }
    let port = service["port"].as_i64().unwrap_or(443);
    let path = match service["path"].as_str().unwrap_or("") {
        "" => "/",
        path => path,
    };
    let timeout = webhook["timeoutSeconds"].as_i64().unwrap_or(10);
    let webhook_name = webhook["name"].as_str().unwrap_or("");
    Err(ApiError::internal(format!(
        "Internal error occurred: failed calling webhook \"{webhook_name}\": failed to call webhook: Post \"https://{name}.{namespace}.svc:{port}{path}?timeout={timeout}s\": no endpoints available for service \"{name}\""
    )))
}
