//! The HTTP side of the test API server: bearer-token authentication, the routes of
//! discovery and of resources (`/api/v1/...`, `/apis/<group>/<version>/...`), bodies in
//! JSON or YAML, `Status` errors, the request log, and watch streams.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::{Bytes, Frame, Incoming};
use hyper::{Request, Response};
use serde_json::{json, Value};

use super::resources::{group_version, Resource};
use super::selector::{FieldSelector, LabelSelector};
use super::state::{name_of, namespace_of, State};
use super::status::ApiError;
use super::watch::{self, Filter};
use super::writes::{self, Target, Writer};
use super::{RequestRecord, Shared};

pub type Body = BoxBody<Bytes, Infallible>;

/// One request, read in full.
struct Call {
    method: String,
    path: String,
    raw_query: String,
    query: HashMap<String, String>,
    content_type: Option<String>,
    user_agent: String,
    body: Bytes,
}

impl Call {
    fn param(&self, name: &str) -> Option<&str> {
        self.query.get(name).map(String::as_str)
    }

    fn dry_run(&self) -> bool {
        self.param("dryRun") == Some("All")
            || (self.method == "DELETE"
                && serde_json::from_slice::<Value>(&self.body).is_ok_and(|b| {
                    b["dryRun"]
                        .as_array()
                        .is_some_and(|d| d.iter().any(|v| v == "All"))
                }))
    }
}

/// What a request was about, for the log.
#[derive(Default)]
struct Concerned {
    api_version: Option<String>,
    kind: Option<String>,
    namespace: Option<String>,
    name: Option<String>,
    subresource: Option<String>,
}

struct Reply {
    code: u16,
    /// Shared with the store when it is a stored object as it is.
    body: Arc<Value>,
    changed: bool,
}

impl Reply {
    fn ok(body: Value) -> Reply {
        Reply::object(Arc::new(body), 200, false)
    }

    fn object(body: Arc<Value>, code: u16, changed: bool) -> Reply {
        Reply {
            code,
            body,
            changed,
        }
    }

    fn error(error: &ApiError) -> Reply {
        Reply::object(Arc::new(error.body()), error.code, false)
    }
}

impl From<Result<Reply, ApiError>> for Reply {
    fn from(result: Result<Reply, ApiError>) -> Reply {
        result.unwrap_or_else(|e| Reply::error(&e))
    }
}

pub async fn handle(
    shared: Arc<Shared>,
    request: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let (parts, body) = request.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let header = |name: hyper::header::HeaderName| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(String::from)
    };
    let raw_query = parts.uri.query().unwrap_or("").to_string();
    let call = Call {
        method: parts.method.to_string(),
        path: parts.uri.path().to_string(),
        query: parse_query(&raw_query),
        raw_query,
        content_type: header(hyper::header::CONTENT_TYPE),
        user_agent: header(hyper::header::USER_AGENT).unwrap_or_default(),
        body,
    };
    let authorized = header(hyper::header::AUTHORIZATION).as_deref()
        == Some(format!("Bearer {}", shared.token).as_str());
    if !authorized {
        let error = ApiError::new(401, "Unauthorized", "Unauthorized");
        let reply = Reply::error(&error);
        shared.with(|state| log(state, &call, Concerned::default(), &reply));
        return Ok(json_response(&reply));
    }
    let watching = call.method == "GET" && matches!(call.param("watch"), Some("true" | "1"));
    if watching {
        return Ok(shared.with(|state| start_watch(state, &call)));
    }
    let reply = shared.with(|state| {
        let (reply, concerned) = route(state, &call, &shared.server_address);
        log(state, &call, concerned, &reply);
        reply
    });
    Ok(json_response(&reply))
}

fn json_response(reply: &Reply) -> Response<Body> {
    let bytes = serde_json::to_vec(&*reply.body).unwrap_or_default();
    response(reply.code, Full::new(Bytes::from(bytes)).boxed())
}

fn response(code: u16, body: Body) -> Response<Body> {
    Response::builder()
        .status(code)
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .body(body)
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new()).boxed()))
}

fn log(state: &mut State, call: &Call, concerned: Concerned, reply: &Reply) {
    let message = (reply.code >= 400)
        .then(|| reply.body["message"].as_str().map(String::from))
        .flatten();
    let record = RequestRecord {
        at: state.started.elapsed(),
        method: call.method.clone(),
        path: call.path.clone(),
        query: call.raw_query.clone(),
        content_type: call.content_type.clone(),
        status: reply.code,
        api_version: concerned.api_version,
        kind: concerned.kind,
        namespace: concerned.namespace,
        name: concerned.name,
        subresource: concerned.subresource,
        dry_run: call.dry_run(),
        changed: reply.changed,
        message,
    };
    state.log.push(record);
}

/// `a=b&c=d%3De` → {a: b, c: d=e}.
fn parse_query(query: &str) -> HashMap<String, String> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(key), percent_decode(value))
        })
        .collect()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let hex = |at: usize| bytes.get(at).and_then(|&b| char::from(b).to_digit(16));
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match (bytes[i], hex(i + 1), hex(i + 2)) {
            (b'%', Some(high), Some(low)) => {
                out.push((high * 16 + low) as u8);
                i += 3;
            }
            (b'+', _, _) => {
                out.push(b' ');
                i += 1;
            }
            (byte, _, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A resource path: `<plural>[/<name>[/<subresource>]]`, possibly under `namespaces/<ns>/`.
struct ObjectPath {
    group: String,
    version: String,
    plural: String,
    namespace: Option<String>,
    name: Option<String>,
    subresource: Option<String>,
}

impl ObjectPath {
    fn parse(group: &str, version: &str, rest: &[&str]) -> Option<ObjectPath> {
        let namespace_subresource = rest.len() == 3 && matches!(rest[2], "status" | "finalize");
        let (namespace, rest) =
            if rest[0] == "namespaces" && rest.len() >= 3 && !namespace_subresource {
                (Some(rest[1].to_string()), &rest[2..])
            } else {
                (None, rest)
            };
        if rest.len() > 3 {
            return None;
        }
        Some(ObjectPath {
            group: group.to_string(),
            version: version.to_string(),
            plural: rest[0].to_string(),
            namespace,
            name: rest.get(1).map(|s| s.to_string()),
            subresource: rest.get(2).map(|s| s.to_string()),
        })
    }
}

/// `(group, version, rest)` of a path under `/api/<version>/` or `/apis/<group>/<version>/`.
fn resource_path<'a>(segments: &'a [&'a str]) -> Option<(&'a str, &'a str, &'a [&'a str])> {
    match segments {
        ["api", version, rest @ ..] if !rest.is_empty() => Some(("", version, rest)),
        ["apis", group, version, rest @ ..] if !rest.is_empty() => Some((group, version, rest)),
        _ => None,
    }
}

/// The resource a path names, when it is served there (scope and subresource included).
fn served(state: &State, path: &ObjectPath) -> Option<Resource> {
    let resource = state
        .catalogue
        .find(&path.group, &path.version, &path.plural)?;
    let scope_fits = match (&path.namespace, &path.name) {
        (Some(_), _) => resource.namespaced,
        (None, Some(_)) => !resource.namespaced,
        (None, None) => true,
    };
    let subresource_fits = match path.subresource.as_deref() {
        None => true,
        Some(subresource) => subresource == "status" && resource.has_status,
    };
    (scope_fits && subresource_fits).then(|| resource.clone())
}

fn route(state: &mut State, call: &Call, server_address: &str) -> (Reply, Concerned) {
    let segments: Vec<&str> = call.path.split('/').filter(|s| !s.is_empty()).collect();
    let discovery = |body: Option<Value>| {
        let reply = match body {
            _ if call.method != "GET" => Reply::error(&ApiError::method_not_allowed()),
            Some(body) => Reply::ok(body),
            None => Reply::error(&ApiError::unserved()),
        };
        (reply, Concerned::default())
    };
    match segments.as_slice() {
        ["version"] => discovery(Some(json!({
            "major": "1",
            "minor": "30",
            "gitVersion": "v1.30.0-mlops-test",
            "gitCommit": "0000000000000000000000000000000000000000",
            "gitTreeState": "clean",
            "buildDate": "2024-04-17T00:00:00Z",
            "goVersion": "go1.22.2",
            "compiler": "gc",
            "platform": "linux/amd64",
        }))),
        ["healthz" | "readyz" | "livez"] => discovery(Some(json!("ok"))),
        ["api"] => discovery(Some(state.catalogue.core_versions(server_address))),
        ["api", version] => discovery(state.catalogue.resource_list("", version)),
        ["apis"] => discovery(Some(state.catalogue.group_list())),
        ["apis", group] => discovery(state.catalogue.group(group)),
        ["apis", group, version] => discovery(state.catalogue.resource_list(group, version)),
        _ => match resource_path(&segments) {
            Some((group, version, rest)) => {
                object_route(state, call, ObjectPath::parse(group, version, rest))
            }
            None => discovery(None),
        },
    }
}

fn object_route(state: &mut State, call: &Call, path: Option<ObjectPath>) -> (Reply, Concerned) {
    let Some(path) = path else {
        return (Reply::error(&ApiError::unserved()), Concerned::default());
    };
    let body = decode(&call.body);
    let body_name = body
        .as_ref()
        .ok()
        .map(|b| name_of(b).to_string())
        .filter(|n| !n.is_empty());
    let mut concerned = Concerned {
        api_version: Some(group_version(&path.group, &path.version)),
        kind: None,
        namespace: path.namespace.clone(),
        name: path.name.clone().or(body_name),
        subresource: path.subresource.clone(),
    };
    let Some(resource) = served(state, &path) else {
        concerned.kind = state
            .catalogue
            .defined(&path.group, &path.plural)
            .map(|r| r.kind.clone())
            .or_else(|| {
                body.as_ref()
                    .ok()
                    .and_then(|b| b["kind"].as_str().map(String::from))
            });
        return (Reply::error(&ApiError::unserved()), concerned);
    };
    concerned.kind = Some(resource.kind.clone());
    let reply = object_call(state, call, &path, &resource, body).into();
    (reply, concerned)
}

/// The body as JSON, or YAML (apply patches may be either).
fn decode(body: &[u8]) -> Result<Value, ApiError> {
    if body.is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_slice(body)
        .or_else(|_| serde_yaml::from_slice(body))
        .map_err(|e| {
            ApiError::bad_request(format!("couldn't get version/kind; json parse error: {e}"))
        })
}

/// The object as served at `version` (stored objects keep the version they were written at).
fn at_version(object: &Arc<Value>, resource: &Resource, version: &str) -> Arc<Value> {
    let api_version = resource.api_version(version);
    if object["apiVersion"] == api_version.as_str() {
        return object.clone();
    }
    let mut object = (**object).clone();
    object["apiVersion"] = json!(api_version);
    Arc::new(object)
}

fn list(resource: &Resource, version: &str, revision: u64, items: Vec<Arc<Value>>) -> Value {
    let items: Vec<Value> = items
        .iter()
        .map(|item| (*at_version(item, resource, version)).clone())
        .collect();
    json!({
        "apiVersion": resource.api_version(version),
        "kind": format!("{}List", resource.kind),
        "metadata": {"resourceVersion": revision.to_string()},
        "items": items,
    })
}

fn object_call(
    state: &mut State,
    call: &Call,
    path: &ObjectPath,
    resource: &Resource,
    body: Result<Value, ApiError>,
) -> Result<Reply, ApiError> {
    let target = Target {
        resource,
        version: &path.version,
        namespace: path.namespace.as_deref().unwrap_or(""),
    };
    let default_manager = call.user_agent.split('/').next().unwrap_or("").to_string();
    let manager = call
        .param("fieldManager")
        .map(String::from)
        .unwrap_or(default_manager);
    let writer = Writer {
        manager: &manager,
        subresource: path.subresource.as_deref(),
        dry_run: call.dry_run(),
    };
    let written = |w: writes::Written, code: u16| {
        Reply::object(
            at_version(&w.object, resource, &path.version),
            code,
            w.changed,
        )
    };
    match (call.method.as_str(), path.name.as_deref()) {
        ("GET", Some(name)) => {
            let object = state
                .get(resource, target.namespace, name)
                .ok_or_else(|| ApiError::not_found(resource, name))?;
            Ok(Reply::object(
                at_version(object, resource, &path.version),
                200,
                false,
            ))
        }
        ("GET", None) => {
            let filter = filter(call, path, resource)?;
            let mut items = state.list(resource, path.namespace.as_deref());
            items.retain(|o| filter.selects(o));
            Ok(Reply::ok(list(
                resource,
                &path.version,
                state.revision(),
                items,
            )))
        }
        ("POST", None) if path.namespace.is_some() || !resource.namespaced => {
            let created = writes::create(state, target, body?, writer)?;
            let code = if writer.dry_run { 200 } else { 201 };
            Ok(written(created, code))
        }
        ("PUT", Some(name)) => Ok(written(
            writes::replace(state, target, name, body?, writer)?,
            200,
        )),
        ("PATCH", Some(name)) => {
            patch(state, call, target, name, body?, writer).map(|w| written(w, 200))
        }
        ("DELETE", Some(name)) => {
            let answer = Arc::new(writes::delete(state, target, name, writer.dry_run)?);
            let body = if answer["kind"] == "Status" {
                answer
            } else {
                at_version(&answer, resource, &path.version)
            };
            Ok(Reply::object(body, 200, !writer.dry_run))
        }
        ("DELETE", None) => {
            let filter = filter(call, path, resource)?;
            let mut chosen = state.list(resource, path.namespace.as_deref());
            chosen.retain(|o| filter.selects(o));
            let mut deleted = Vec::new();
            for object in chosen {
                let target = Target {
                    namespace: namespace_of(&object),
                    ..target
                };
                let answer = writes::delete(state, target, name_of(&object), writer.dry_run)?;
                if answer["kind"] != "Status" {
                    deleted.push(Arc::new(answer));
                }
            }
            let body = list(resource, &path.version, state.revision(), deleted);
            Ok(Reply::object(Arc::new(body), 200, !writer.dry_run))
        }
        _ => Err(ApiError::method_not_allowed()),
    }
}

fn patch(
    state: &mut State,
    call: &Call,
    target: Target,
    name: &str,
    body: Value,
    writer: Writer,
) -> Result<writes::Written, ApiError> {
    let media_type = call
        .content_type
        .as_deref()
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim();
    match media_type {
        "application/apply-patch+yaml" => {
            if call.param("fieldManager").is_none_or(str::is_empty) {
                return Err(ApiError::new(
                    422,
                    "Invalid",
                    "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
                ));
            }
            let force = call.param("force") == Some("true");
            writes::apply(state, target, name, body, writer, force)
        }
        "application/merge-patch+json" => writes::merge_patch(state, target, name, &body, writer),
        "application/json-patch+json" => writes::json_patch(state, target, name, body, writer),
        _ => Err(ApiError::new(
            415,
            "UnsupportedMediaType",
            "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml",
        )),
    }
}

fn filter(call: &Call, path: &ObjectPath, resource: &Resource) -> Result<Filter, ApiError> {
    Ok(Filter {
        resource: resource.key(),
        namespace: path.namespace.clone(),
        labels: LabelSelector::parse(call.param("labelSelector").unwrap_or(""))
            .map_err(ApiError::bad_request)?,
        fields: FieldSelector::parse(call.param("fieldSelector").unwrap_or(""))
            .map_err(ApiError::bad_request)?,
        api_version: resource.api_version(&path.version),
    })
}

/// `GET ...?watch=true`: the events since `resourceVersion` (or the current objects), then
/// new ones, as a stream of JSON lines.
fn start_watch(state: &mut State, call: &Call) -> Response<Body> {
    let segments: Vec<&str> = call.path.split('/').filter(|s| !s.is_empty()).collect();
    let path = resource_path(&segments)
        .and_then(|(group, version, rest)| ObjectPath::parse(group, version, rest))
        .filter(|p| p.name.is_none() && p.subresource.is_none());
    let resource = path.as_ref().and_then(|p| served(state, p));
    let (Some(path), Some(resource)) = (path, resource) else {
        let reply = Reply::error(&ApiError::unserved());
        log(state, call, Concerned::default(), &reply);
        return json_response(&reply);
    };
    let concerned = Concerned {
        api_version: Some(group_version(&path.group, &path.version)),
        kind: Some(resource.kind.clone()),
        namespace: path.namespace.clone(),
        ..Concerned::default()
    };
    let filter = match filter(call, &path, &resource) {
        Ok(filter) => filter,
        Err(error) => {
            let reply = Reply::error(&error);
            log(state, call, concerned, &reply);
            return json_response(&reply);
        }
    };
    let first: Vec<Bytes> = match call
        .param("resourceVersion")
        .filter(|v| !v.is_empty() && *v != "0")
    {
        None => state
            .list(&resource, path.namespace.as_deref())
            .iter()
            .filter(|o| filter.selects(o))
            .map(|o| filter.line("ADDED", o))
            .collect(),
        Some(version) => match version.parse().ok().and_then(|v| state.events.since(v)) {
            Some(events) => events
                .iter()
                .filter(|e| e.resource == filter.resource && filter.selects(&e.object))
                .map(|e| filter.line(e.kind, &e.object))
                .collect(),
            None => {
                let reply = Reply::ok(Value::Null);
                log(state, call, concerned, &reply);
                return response(200, Full::new(watch::expired_line()).boxed());
            }
        },
    };
    let timeout = call
        .param("timeoutSeconds")
        .and_then(|t| t.parse().ok())
        .map_or(Duration::from_secs(1800), Duration::from_secs);
    let receiver = state.events.subscribe();
    log(state, call, concerned, &Reply::ok(Value::Null));
    let lines = watch::stream(first, receiver, filter, timeout)
        .map(|line| Ok::<_, Infallible>(Frame::data(line)));
    response(200, BodyExt::boxed(StreamBody::new(lines)))
}
