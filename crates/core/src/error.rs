//! API errors. Every error the API returns is an [`ApiError`], which renders as a Kubernetes
//! `Status` object with the HTTP code, `reason` and `message` that the real API server uses, so
//! kubectl prints `Error from server (<reason>): <message>`.

use crate::field::FieldError;
use crate::resources::ResourceInfo;
use serde_json::{Value, json};

/// One cause of an error, as in `Status.details.causes`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusCause {
    /// Machine-readable cause, e.g. `FieldValueInvalid`.
    pub reason: String,
    /// Human-readable description.
    pub message: String,
    /// The field path, e.g. `spec.replicas`, when the cause is a field.
    pub field: Option<String>,
}

/// An API error: an HTTP status code with a Kubernetes `Status` body.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{reason} ({code}): {message}")]
pub struct ApiError {
    /// HTTP status code.
    pub code: u16,
    /// `Status.reason`, e.g. `NotFound`. Empty for reasons Kubernetes leaves out.
    pub reason: String,
    /// `Status.message`, printed by kubectl.
    pub message: String,
    /// `Status.details.name`.
    pub name: Option<String>,
    /// `Status.details.group`.
    pub group: Option<String>,
    /// `Status.details.kind` (Kubernetes puts the resource plural or kind here).
    pub kind: Option<String>,
    /// `Status.details.causes`.
    pub causes: Vec<StatusCause>,
    /// `Status.details.retryAfterSeconds`.
    pub retry_after_seconds: Option<u32>,
}

impl ApiError {
    /// A bare error with code, reason and message.
    pub fn new(code: u16, reason: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            reason: reason.to_string(),
            message: message.into(),
            name: None,
            group: None,
            kind: None,
            causes: Vec::new(),
            retry_after_seconds: None,
        }
    }

    fn with_details(mut self, info: &ResourceInfo, name: &str) -> ApiError {
        self.name = Some(name.to_string());
        self.group = Some(info.group.to_string());
        self.kind = Some(info.plural.to_string());
        self
    }

    /// 404: `deployments.apps "web" not found`.
    pub fn not_found(info: &ResourceInfo, name: &str) -> ApiError {
        ApiError::new(
            404,
            "NotFound",
            format!("{} \"{name}\" not found", info.group_resource()),
        )
        .with_details(info, name)
    }

    /// 404 for a path that names nothing the server serves.
    pub fn path_not_found() -> ApiError {
        ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
    }

    /// 409: `deployments.apps "web" already exists`.
    pub fn already_exists(info: &ResourceInfo, name: &str) -> ApiError {
        ApiError::new(
            409,
            "AlreadyExists",
            format!("{} \"{name}\" already exists", info.group_resource()),
        )
        .with_details(info, name)
    }

    /// 409 on a stale `resourceVersion` (optimistic concurrency).
    pub fn conflict(info: &ResourceInfo, name: &str) -> ApiError {
        ApiError::conflict_because(
            info,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    /// 409 `Conflict` with a specific explanation (e.g. a failed UID precondition).
    pub fn conflict_because(info: &ResourceInfo, name: &str, why: &str) -> ApiError {
        ApiError::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": {why}",
                info.group_resource()
            ),
        )
        .with_details(info, name)
    }

    /// 422 with field causes: `Deployment.apps "web" is invalid: spec.replicas: ...`.
    pub fn invalid(info: &ResourceInfo, name: &str, errors: &[FieldError]) -> ApiError {
        let summary = match errors {
            [one] => one.to_string(),
            many => format!(
                "[{}]",
                many.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        let mut err = ApiError::new(
            422,
            "Invalid",
            format!("{} \"{name}\" is invalid: {summary}", info.group_kind()),
        );
        err.name = Some(name.to_string());
        err.group = Some(info.group.to_string());
        err.kind = Some(info.kind.to_string());
        err.causes = errors
            .iter()
            .map(|e| StatusCause {
                reason: e.kind.reason().to_string(),
                message: e.cause_message(),
                field: Some(e.field.clone()),
            })
            .collect();
        err
    }

    /// 400 `BadRequest`.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(400, "BadRequest", message)
    }

    /// 401 `Unauthorized`.
    pub fn unauthorized() -> ApiError {
        ApiError::new(401, "Unauthorized", "Unauthorized")
    }

    /// 405 `MethodNotAllowed`.
    pub fn method_not_allowed(message: impl Into<String>) -> ApiError {
        ApiError::new(405, "MethodNotAllowed", message)
    }

    /// 406 `NotAcceptable`.
    pub fn not_acceptable(message: impl Into<String>) -> ApiError {
        ApiError::new(406, "NotAcceptable", message)
    }

    /// 410 `Expired`: a watch or continue token asked for history that was compacted away.
    pub fn expired(message: impl Into<String>) -> ApiError {
        ApiError::new(410, "Expired", message)
    }

    /// 413 `RequestEntityTooLarge`.
    pub fn too_large(message: impl Into<String>) -> ApiError {
        ApiError::new(413, "RequestEntityTooLarge", message)
    }

    /// 415 `UnsupportedMediaType`.
    pub fn unsupported_media_type(message: impl Into<String>) -> ApiError {
        ApiError::new(415, "UnsupportedMediaType", message)
    }

    /// 500 `InternalError`.
    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(
            500,
            "InternalError",
            format!("Internal error occurred: {}", message.into()),
        )
    }

    /// 503 `ServiceUnavailable`.
    pub fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError::new(503, "ServiceUnavailable", message)
    }

    /// The `Status` object (JSON) for this error.
    pub fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "code": self.code,
        });
        if !self.reason.is_empty() {
            status["reason"] = json!(self.reason);
        }
        let mut details = serde_json::Map::new();
        if let Some(name) = &self.name {
            details.insert("name".into(), json!(name));
        }
        if let Some(group) = self.group.as_ref().filter(|g| !g.is_empty()) {
            details.insert("group".into(), json!(group));
        }
        if let Some(kind) = &self.kind {
            details.insert("kind".into(), json!(kind));
        }
        if !self.causes.is_empty() {
            let causes: Vec<Value> = self
                .causes
                .iter()
                .map(|c| {
                    let mut cause = json!({"reason": c.reason, "message": c.message});
                    if let Some(f) = &c.field {
                        cause["field"] = json!(f);
                    }
                    cause
                })
                .collect();
            details.insert("causes".into(), Value::Array(causes));
        }
        if let Some(secs) = self.retry_after_seconds {
            details.insert("retryAfterSeconds".into(), json!(secs));
        }
        if !details.is_empty() {
            status["details"] = Value::Object(details);
        }
        status
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::field::FieldError;
    use crate::resources::lookup;

    #[test]
    fn not_found_matches_apiserver_wording() {
        let d = lookup("apps", "v1", "deployments").unwrap();
        let s = ApiError::not_found(d, "nope").to_status();
        assert_eq!(s["message"], "deployments.apps \"nope\" not found");
        assert_eq!(s["reason"], "NotFound");
        assert_eq!(s["code"], 404);
        assert_eq!(s["details"]["kind"], "deployments");
        assert_eq!(s["details"]["group"], "apps");
    }

    #[test]
    fn invalid_lists_causes_with_field_paths() {
        let d = lookup("apps", "v1", "deployments").unwrap();
        let errs = vec![
            FieldError::required("spec.selector", ""),
            FieldError::invalid("spec.replicas", "-1", "must be greater than or equal to 0"),
        ];
        let e = ApiError::invalid(d, "web", &errs);
        assert_eq!(e.code, 422);
        assert_eq!(
            e.message,
            "Deployment.apps \"web\" is invalid: [spec.selector: Required value, spec.replicas: Invalid value: -1: must be greater than or equal to 0]"
        );
        let s = e.to_status();
        assert_eq!(s["details"]["causes"][1]["field"], "spec.replicas");
        assert_eq!(s["details"]["causes"][0]["reason"], "FieldValueRequired");
    }
}
