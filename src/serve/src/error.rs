//! The one error type of the HTTP API: every 4xx/5xx body is
//! `{"error_code": "...", "message": "..."}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

/// An API error with its HTTP status.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// A stable, machine-readable code.
    pub code: &'static str,
    /// A human-readable explanation.
    pub message: String,
}

impl ApiError {
    /// A 404 for something that does not exist.
    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::NOT_FOUND,
            code,
            message: message.into(),
        }
    }

    /// A 400 for a request that cannot be understood.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            code,
            message: message.into(),
        }
    }

    /// A 503 for something that will be there soon.
    pub fn unavailable(code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code,
            message: message.into(),
        }
    }

    /// A 500 for a failure of the server itself.
    pub fn internal(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: "internal",
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error_code": self.code, "message": self.message });
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::PAYLOAD_TOO_LARGE {
            // The rest of the refused body is still on the connection, and the server
            // closes it after this response. Saying so keeps a client from sending its
            // next request on it (which then fails as an incomplete message).
            response.headers_mut().insert(
                axum::http::header::CONNECTION,
                axum::http::HeaderValue::from_static("close"),
            );
        }
        response
    }
}

/// Rewrites error responses that are not JSON yet — axum's own rejections of bad
/// JSON bodies, bad paths, wrong methods, oversized bodies — into the API's shape.
pub async fn json_errors(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let body = axum::body::to_bytes(response.into_body(), 64 << 10)
        .await
        .unwrap_or_default();
    let code = match status {
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::UNPROCESSABLE_ENTITY => "invalid_body",
        s if s.is_server_error() => "internal",
        _ => "bad_request",
    };
    let message = String::from_utf8_lossy(&body).trim().to_string();
    ApiError {
        status,
        code,
        message: if message.is_empty() {
            status.canonical_reason().unwrap_or("error").to_string()
        } else {
            message
        },
    }
    .into_response()
}

impl From<kappa_controller::LookupError> for ApiError {
    fn from(e: kappa_controller::LookupError) -> Self {
        use kappa_controller::LookupError::*;
        match e {
            UnknownPipeline(_) => ApiError::not_found("unknown_pipeline", e.to_string()),
            UnknownVersion(..) => ApiError::not_found("unknown_version", e.to_string()),
            NoActiveVersion(_) => ApiError::unavailable("no_active_version", e.to_string()),
        }
    }
}

impl From<kappa_controller::ControllerError> for ApiError {
    fn from(e: kappa_controller::ControllerError) -> Self {
        use kappa_controller::ControllerError::*;
        let (status, code) = match &e {
            Lookup(l) => return l.clone().into(),
            Compile(_) => (StatusCode::BAD_REQUEST, "compile_error"),
            MissingTopic { .. } => (StatusCode::BAD_REQUEST, "missing_topic"),
            InvalidState(_) => (StatusCode::CONFLICT, "invalid_state"),
            GateRefused(_) => (StatusCode::CONFLICT, "promotion_refused"),
            Timeout(_) => (StatusCode::GATEWAY_TIMEOUT, "timeout"),
            Log(_) | Catalog { .. } | Runtime(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        };
        ApiError {
            status,
            code,
            message: e.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_body_closes_the_connection_and_other_errors_do_not() {
        let too_large = ApiError {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            code: "payload_too_large",
            message: "too large".into(),
        }
        .into_response();
        assert_eq!(too_large.headers()[axum::http::header::CONNECTION], "close");
        let not_found = ApiError::not_found("unknown_pipeline", "no such pipeline").into_response();
        assert!(not_found
            .headers()
            .get(axum::http::header::CONNECTION)
            .is_none());
    }
}
