//! Building responses: the headers every answer carries, JSON bodies, error
//! bodies, a manifest with its ETag, and the ETag comparison conditional
//! requests use.

use crate::body::Body;
use crate::catalog::Entry;
use crate::error::{ApiError, ApiResult};
use bytes::Bytes;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Response, StatusCode};
use serde_json::Value;

/// What every handler answers.
pub(super) type Resp = Response<Body>;

/// The IMGAPI error body, with a Basic challenge on 401.
pub(super) fn error_response(e: &ApiError) -> Resp {
    let mut r = Response::new(Body::from_bytes(e.body()));
    *r.status_mut() = e.status;
    set_common(r.headers_mut(), "application/json");
    if e.status == StatusCode::UNAUTHORIZED {
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"imgapid\""),
        );
    }
    r
}

/// Content-Type and Server.
pub(super) fn set_common(h: &mut HeaderMap, content_type: &'static str) {
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::SERVER,
        HeaderValue::from_static(concat!("imgapid/", env!("CARGO_PKG_VERSION"))),
    );
}

pub(super) fn json_response(status: StatusCode, body: impl Into<Bytes>) -> Resp {
    let mut r = Response::new(Body::from_bytes(body));
    *r.status_mut() = status;
    set_common(r.headers_mut(), "application/json");
    r
}

pub(super) fn json_value(v: &Value) -> ApiResult<Resp> {
    let b = serde_json::to_vec(v).map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(json_response(StatusCode::OK, b))
}

/// An image's manifest as served, with its quoted ETag.
pub(super) fn entry_response(e: &Entry) -> Resp {
    let mut r = json_response(StatusCode::OK, e.json.clone());
    if let Ok(v) = HeaderValue::from_str(&format!("\"{}\"", e.etag)) {
        r.headers_mut().insert(header::ETAG, v);
    }
    r
}

pub(super) fn not_modified() -> Resp {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = StatusCode::NOT_MODIFIED;
    r
}

pub(super) fn method_not_allowed(method: &Method) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "MethodNotAllowedError",
        format!("{method} is not allowed here"),
    )
}

/// Does an `If-None-Match` / `If-Range` value name `etag` (or `*`)?
pub(super) fn etag_matches(header_value: &str, etag: &str) -> bool {
    header_value.split(',').any(|t| {
        let t = t.trim();
        let t = t.strip_prefix("W/").unwrap_or(t);
        t == "*" || t.trim_matches('"') == etag
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etags() {
        assert!(etag_matches("\"abc\", W/\"def\"", "def"));
        assert!(etag_matches("*", "def"));
        assert!(!etag_matches("\"abc\"", "ab"));
    }
}
