//! The errors of the test API server, answered as a real one does: a `Status` body with the
//! HTTP code, a reason and the message a real server writes for the same case.

use serde_json::{json, Value};

use super::resources::Resource;

#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    pub details: Value,
}

impl ApiError {
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: json!({}),
        }
    }

    fn about(mut self, resource: &Resource, name: &str) -> ApiError {
        self.details = json!({"name": name, "group": resource.group, "kind": resource.plural});
        self
    }

    /// A path no served resource answers (an unknown group/version/resource, or a custom
    /// resource whose CRD is not Established yet).
    pub fn unserved() -> ApiError {
        ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
    }

    pub fn not_found(resource: &Resource, name: &str) -> ApiError {
        let message = format!("{} \"{name}\" not found", resource.qualified());
        ApiError::new(404, "NotFound", message).about(resource, name)
    }

    pub fn namespace_not_found(namespace: &str) -> ApiError {
        let mut error = ApiError::new(
            404,
            "NotFound",
            format!("namespaces \"{namespace}\" not found"),
        );
        error.details = json!({"name": namespace, "kind": "namespaces"});
        error
    }

    pub fn namespace_terminating(resource: &Resource, name: &str, namespace: &str) -> ApiError {
        let message = format!(
            "{} \"{name}\" is forbidden: unable to create new content in namespace {namespace} because it is being terminated",
            resource.qualified()
        );
        ApiError::new(403, "Forbidden", message).about(resource, name)
    }

    pub fn already_exists(resource: &Resource, name: &str) -> ApiError {
        let message = format!("{} \"{name}\" already exists", resource.qualified());
        ApiError::new(409, "AlreadyExists", message).about(resource, name)
    }

    pub fn modified(resource: &Resource, name: &str) -> ApiError {
        let message = format!(
            "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
            resource.qualified()
        );
        ApiError::new(409, "Conflict", message).about(resource, name)
    }

    /// A field that fails validation: `<Kind>.<group> "<name>" is invalid: <field>: <detail>`.
    pub fn invalid(resource: &Resource, name: &str, field: &str, detail: &str) -> ApiError {
        let message = format!(
            "{} \"{name}\" is invalid: {field}: {detail}",
            resource.qualified_kind()
        );
        ApiError::new(422, "Invalid", message).about(resource, name)
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(400, "BadRequest", message)
    }

    pub fn method_not_allowed() -> ApiError {
        ApiError::new(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
        )
    }

    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(500, "InternalError", message)
    }

    pub fn body(&self) -> Value {
        json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "details": self.details,
            "code": self.code,
        })
    }
}

/// The `Status` a DELETE answers when the object is gone at once.
pub fn deleted(resource: &Resource, name: &str, uid: &Value) -> Value {
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": {"name": name, "group": resource.group, "kind": resource.plural, "uid": uid},
    })
}
