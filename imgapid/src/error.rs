//! IMGAPI-shaped errors: every failure a client sees is a JSON body
//! `{"code": ..., "message": ...}` with the status IMGAPI uses for that code,
//! because clients branch on `statusCode` and `body.code` (imgadm treats a 404
//! from GetImage as "try the next source" and anything else as fatal).

use hyper::StatusCode;
use rvmadm_manifest::{FieldError, ValidationError};
use serde::Serialize;

/// An error answer: status, IMGAPI code and a human message.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Per-field details for `ValidationFailed`.
    pub errors: Vec<FieldError>,
}

#[derive(Serialize)]
struct Body<'a> {
    code: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "<[FieldError]>::is_empty")]
    errors: &'a [FieldError],
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            errors: Vec::new(),
        }
    }

    pub fn not_found(what: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "ResourceNotFound", what)
    }

    pub fn invalid_param(message: impl Into<String>) -> ApiError {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "InvalidParameter",
            message,
        )
    }

    pub fn validation(message: impl Into<String>) -> ApiError {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "ValidationFailed",
            message,
        )
    }

    pub fn unauthorized() -> ApiError {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "UnauthorizedError",
            "this request needs valid credentials (bearer token or HTTP Basic)",
        )
    }

    pub fn upload(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "Upload", message)
    }

    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", message)
    }

    /// The JSON body bytes.
    pub fn body(&self) -> Vec<u8> {
        let b = Body {
            code: self.code,
            message: &self.message,
            errors: &self.errors,
        };
        serde_json::to_vec(&b).unwrap_or_else(|_| b"{\"code\":\"InternalError\"}".to_vec())
    }
}

impl From<ValidationError> for ApiError {
    fn from(e: ValidationError) -> ApiError {
        let mut err = ApiError::validation(e.to_string());
        err.errors = e.errors;
        err
    }
}

impl From<std::io::Error> for ApiError {
    fn from(e: std::io::Error) -> ApiError {
        // Storage details stay in the log; the client only needs to retry later.
        tracing::error!(error = %e, "storage error");
        ApiError::internal("storage error")
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
