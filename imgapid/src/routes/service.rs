//! The endpoints about the service rather than one image: `GET /ping`
//! (IMGAPI's health check), `GET /metrics` (Prometheus text) and `GET /`
//! (the HTML catalog of active public images).

use super::dispatch::App;
use super::query::query_map;
use super::request::{anonymous_may_see, require_read};
use super::respond::{json_value, set_common, Resp};
use crate::body::Body;
use crate::catalog::Entry;
use crate::error::{ApiError, ApiResult};
use crate::html;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use std::sync::Arc;

/// `GET /`.
pub(super) fn index(app: &App, req: &Request<Incoming>) -> ApiResult<Resp> {
    require_read(app, req)?;
    let active: Vec<Arc<Entry>> = app.catalog.with_sorted(|all| {
        all.iter()
            .filter(|e| anonymous_may_see(e))
            .cloned()
            .collect()
    })?;
    let mut r = Response::new(Body::from_bytes(html::catalog_page(&active)));
    set_common(r.headers_mut(), "text/html; charset=utf-8");
    Ok(r)
}

/// `GET /ping`.
pub(super) fn ping(req: &Request<Incoming>) -> ApiResult<Resp> {
    if let Some(code) = query_map(req).get("error") {
        // IMGAPI's `?error=` lets clients test their error handling.
        return Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            format!(
                "sample error requested: {}",
                code.chars().take(64).collect::<String>()
            ),
        ));
    }
    json_value(&serde_json::json!({
        "ping": "pong",
        "version": env!("CARGO_PKG_VERSION"),
        "imgapi": true,
        "dsapi": true,
    }))
}

/// `GET /metrics`: readable by whoever may read images (`public_reads`).
pub(super) fn metrics(app: &App, req: &Request<Incoming>) -> ApiResult<Resp> {
    require_read(app, req)?;
    let mut counts: Vec<(&str, u64)> = app.catalog.state_counts()?.into_iter().collect();
    counts.sort();
    let mut r = Response::new(Body::from_bytes(app.metrics.render(&counts)));
    set_common(r.headers_mut(), "text/plain; version=0.0.4");
    Ok(r)
}
