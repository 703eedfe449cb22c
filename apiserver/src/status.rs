//! Errors as Kubernetes reports them: a `metav1.Status` body with the HTTP code, `reason`
//! and `details` clients match on (kubectl prints `Error from server (<reason>): <message>`).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use crate::resources::Resource;

/// One invalid field of an object (a `StatusCause`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    /// `FieldValueRequired`, `FieldValueInvalid`, ...
    pub reason: &'static str,
    /// Human-readable message.
    pub message: String,
    /// JSON path of the field, e.g. `metadata.name`.
    pub field: String,
}

/// A request failure with its Kubernetes status.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{reason} ({code}): {message}")]
pub struct ApiError {
    /// HTTP status code.
    pub code: u16,
    /// Kubernetes `reason` (`NotFound`, `AlreadyExists`, `Conflict`, `Invalid`, ...).
    pub reason: &'static str,
    /// Message shown to users.
    pub message: String,
    /// `details` (name, group, kind, causes), if any.
    pub details: Option<Value>,
}

fn details(res: &Resource, name: &str) -> Value {
    json!({"name": name, "group": res.group, "kind": res.plural})
}

impl ApiError {
    fn new(code: u16, reason: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }

    /// 404: the object does not exist.
    pub fn not_found(res: &Resource, name: &str) -> ApiError {
        ApiError {
            details: Some(details(res, name)),
            ..Self::new(
                404,
                "NotFound",
                format!("{} \"{name}\" not found", qualified(res)),
            )
        }
    }

    /// 404 for a path that names no resource.
    pub fn no_route(path: &str) -> ApiError {
        Self::new(
            404,
            "NotFound",
            format!("the server could not find the requested resource ({path})"),
        )
    }

    /// 409: create of an existing object.
    pub fn already_exists(res: &Resource, name: &str) -> ApiError {
        ApiError {
            details: Some(details(res, name)),
            ..Self::new(
                409,
                "AlreadyExists",
                format!("{} \"{name}\" already exists", qualified(res)),
            )
        }
    }

    /// 409: the object changed since the client read it.
    pub fn conflict(res: &Resource, name: &str) -> ApiError {
        ApiError {
            details: Some(details(res, name)),
            ..Self::new(
                409,
                "Conflict",
                format!(
                    "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
                    qualified(res)
                ),
            )
        }
    }

    /// 422: the object is invalid; `causes` name the fields.
    pub fn invalid(res: &Resource, name: &str, causes: Vec<Cause>) -> ApiError {
        let summary: Vec<String> = causes
            .iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect();
        let mut d = details(res, name);
        d["kind"] = json!(res.kind);
        d["causes"] = causes
            .iter()
            .map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field}))
            .collect();
        ApiError {
            details: Some(d),
            ..Self::new(
                422,
                "Invalid",
                format!("{} \"{name}\" is invalid: {}", res.kind, summary.join(", ")),
            )
        }
    }

    /// 422 without field causes (e.g. a JSON patch whose path does not exist).
    pub fn unprocessable(message: impl Into<String>) -> ApiError {
        Self::new(422, "Invalid", message)
    }

    /// 400: the request is malformed.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        Self::new(400, "BadRequest", message)
    }

    /// 403: e.g. creating in a terminating namespace.
    pub fn forbidden(message: impl Into<String>) -> ApiError {
        Self::new(403, "Forbidden", message)
    }

    /// 405: the verb is not supported on this path.
    pub fn method_not_allowed(message: impl Into<String>) -> ApiError {
        Self::new(405, "MethodNotAllowed", message)
    }

    /// 410: a resourceVersion or continue token older than the store's history.
    pub fn expired(message: impl Into<String>) -> ApiError {
        Self::new(410, "Expired", message)
    }

    /// 413: the body is larger than the server accepts.
    pub fn too_large(message: impl Into<String>) -> ApiError {
        Self::new(413, "RequestEntityTooLarge", message)
    }

    /// 415: a patch type this resource does not support.
    pub fn unsupported_media_type(message: impl Into<String>) -> ApiError {
        Self::new(415, "UnsupportedMediaType", message)
    }

    /// 500: a bug or an unexpected store answer.
    pub fn internal(message: impl Into<String>) -> ApiError {
        Self::new(500, "InternalError", message)
    }

    /// 503: no store member answered; clients retry.
    pub fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError {
            details: Some(json!({"retryAfterSeconds": 1})),
            ..Self::new(503, "ServiceUnavailable", message)
        }
    }

    /// The `metav1.Status` object.
    pub fn status(&self) -> Value {
        let mut s = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(d) = &self.details {
            s["details"] = d.clone();
        }
        s
    }
}

/// `pods` or `deployments.apps`, as Kubernetes names a resource in messages.
fn qualified(res: &Resource) -> String {
    if res.group.is_empty() {
        res.plural.to_string()
    } else {
        format!("{}.{}", res.plural, res.group)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (code, axum::Json(self.status())).into_response()
    }
}

/// The result type of request handlers.
pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::find;

    #[test]
    fn statuses_carry_kubernetes_reasons_and_messages() {
        let deploy = find("apps", "v1", "deployments").unwrap();
        let e = ApiError::not_found(deploy, "web");
        assert_eq!(e.code, 404);
        assert_eq!(e.message, "deployments.apps \"web\" not found");
        let s = e.status();
        assert_eq!(s["reason"], "NotFound");
        assert_eq!(s["details"]["name"], "web");
        assert_eq!(s["details"]["group"], "apps");

        let pods = find("", "v1", "pods").unwrap();
        let e = ApiError::invalid(
            pods,
            "Bad",
            vec![Cause {
                reason: "FieldValueInvalid",
                message: "Invalid value: \"Bad\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters".into(),
                field: "metadata.name".into(),
            }],
        );
        assert_eq!(e.code, 422);
        assert!(e
            .message
            .starts_with("Pod \"Bad\" is invalid: metadata.name: Invalid value"));
        assert_eq!(e.status()["details"]["causes"][0]["field"], "metadata.name");
        assert_eq!(ApiError::conflict(pods, "x").reason, "Conflict");
    }
}
