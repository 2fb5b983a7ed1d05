//! Reading requests: credentials, UUID path segments, Content-Length, JSON
//! bodies turned into validated manifests, and which images a caller may see.

use super::dispatch::App;
use crate::auth;
use crate::catalog::Entry;
use crate::error::{ApiError, ApiResult};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap};
use hyper::{Request, StatusCode};
use rvmadm_manifest::Manifest;
use serde_json::{Map, Value};
use std::sync::Arc;
use uuid::Uuid;

/// Parses a strict, hyphenated UUID path segment; anything else is 404.
pub(super) fn path_uuid(seg: &str) -> ApiResult<Uuid> {
    if seg.len() == 36 {
        if let Ok(u) = Uuid::try_parse(seg) {
            return Ok(u);
        }
    }
    Err(ApiError::not_found("no such image (not a UUID)"))
}

pub(super) fn may_write<B>(app: &App, req: &Request<B>) -> bool {
    auth::may_write(&app.cfg.auth, req.headers())
}

pub(super) fn require_write<B>(app: &App, req: &Request<B>) -> ApiResult<()> {
    if may_write(app, req) {
        Ok(())
    } else {
        Err(ApiError::unauthorized())
    }
}

pub(super) fn require_read<B>(app: &App, req: &Request<B>) -> ApiResult<()> {
    if auth::may_read(&app.cfg.auth, req.headers()) {
        Ok(())
    } else {
        Err(ApiError::unauthorized())
    }
}

/// An image the caller may see: anonymous readers only see active (activated,
/// not disabled) public images, the same set the HTML page and `/datasets`
/// list; any other image is "not found" to them, so its existence does not
/// leak. Writers see everything.
pub(super) fn visible(app: &App, req: &Request<Incoming>, uuid: Uuid) -> ApiResult<Arc<Entry>> {
    require_read(app, req)?;
    match app.catalog.get(uuid)? {
        Some(e) if anonymous_may_see(&e) || may_write(app, req) => Ok(e),
        _ => Err(ApiError::not_found(format!("image {uuid} not found"))),
    }
}

/// What an anonymous reader may see of an image.
pub(super) fn anonymous_may_see(e: &Entry) -> bool {
    e.state == rvmadm_manifest::ImageState::Active && e.manifest().public
}

pub(super) fn content_length(h: &HeaderMap) -> ApiResult<Option<u64>> {
    match h.get(header::CONTENT_LENGTH) {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
            .map(Some)
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "InvalidHeader",
                    "bad Content-Length",
                )
            }),
    }
}

/// The request's Content-Length, which uploads must send (chunked bodies
/// are refused with 411, so a size limit holds before any byte is read).
pub(super) fn required_length(h: &HeaderMap) -> ApiResult<u64> {
    content_length(h)?.ok_or_else(|| {
        ApiError::new(
            StatusCode::LENGTH_REQUIRED,
            "InvalidHeader",
            "Content-Length is required",
        )
    })
}

/// Reads a JSON object body, refusing more than the configured limit.
pub(super) async fn read_json_object(
    app: &App,
    req: Request<Incoming>,
) -> ApiResult<Map<String, Value>> {
    let limit = app.cfg.max_json_bytes;
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestEntityTooLarge",
            format!("request body is larger than {limit} bytes"),
        )
    };
    if let Some(cl) = content_length(req.headers())? {
        if cl > limit as u64 {
            return Err(too_large());
        }
    }
    let mut body = req.into_body();
    let mut buf = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            ApiError::new(StatusCode::BAD_REQUEST, "BadRequestError", e.to_string())
        })?;
        if let Ok(d) = frame.into_data() {
            if buf.len() + d.len() > limit {
                return Err(too_large());
            }
            buf.extend_from_slice(&d);
        }
    }
    json_object_from(&buf)
}

/// A request body as a JSON object: blank is an empty object, anything but
/// an object is refused.
pub(super) fn json_object_from(buf: &[u8]) -> ApiResult<Map<String, Value>> {
    if buf.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(buf) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "BadRequestError",
            "body must be a JSON object",
        )),
        Err(e) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "BadRequestError",
            format!("invalid JSON: {e}"),
        )),
    }
}

/// Turns a JSON object into a validated manifest.
pub(super) fn manifest_from(obj: Map<String, Value>) -> ApiResult<Manifest> {
    let m: Manifest = serde_json::from_value(Value::Object(obj))
        .map_err(|e| ApiError::validation(format!("invalid manifest: {e}")))?;
    m.validate()?;
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_strict_uuids_route() {
        assert!(path_uuid("../../etc/passwd").is_err());
        assert!(path_uuid("01b2c898945f11e1a523af1afbe22822").is_err());
        assert!(path_uuid("01b2c898-945f-11e1-a523-af1afbe22822").is_ok());
    }
}
