//! The legacy DSAPI (v1) resource, read-only: `GET /datasets` (newest first,
//! activated public images that have a file), `GET /datasets/:uuid` and the
//! file at `GET /datasets/:uuid/:name`. File URLs are absolute, as old
//! clients fetch them verbatim.

use super::dispatch::App;
use super::files::serve_blob;
use super::query::{dsapi_filter, query_map, Dataset};
use super::request::{anonymous_may_see, require_read, visible};
use super::respond::{json_value, Resp};
use crate::catalog::Entry;
use crate::error::{ApiError, ApiResult};
use hyper::body::Incoming;
use hyper::header;
use hyper::Request;
use serde_json::Value;
use std::sync::Arc;
use uuid::Uuid;

/// Base URL for absolute DSAPI file URLs: configured, else from Host.
fn base_url(app: &App, req: &Request<Incoming>) -> String {
    if let Some(u) = &app.cfg.public_url {
        return u.trim_end_matches('/').to_string();
    }
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.len() <= 255
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
        })
        .map(str::to_string)
        .unwrap_or_else(|| app.cfg.listen.to_string());
    format!("{}://{host}", app.scheme)
}

fn dsapi_manifest(base: &str, e: &Entry) -> Value {
    let m = e.manifest();
    m.to_dsapi(&format!(
        "{base}/datasets/{}/{}",
        m.uuid,
        m.dsapi_file_name()
    ))
}

/// `GET /datasets`.
pub(super) fn list(app: &App, req: &Request<Incoming>) -> ApiResult<Resp> {
    require_read(app, req)?;
    let filter = dsapi_filter(&query_map(req));
    let base = base_url(app, req);
    let list: Vec<Value> = app.catalog.with_sorted(|all| {
        all.iter()
            .rev() // DSAPI lists newest first
            .filter(|e| anonymous_may_see(e) && e.rec.file.is_some())
            .filter(|e| filter.matches(&Dataset(e.manifest())))
            .map(|e| dsapi_manifest(&base, e))
            .collect()
    })?;
    json_value(&Value::Array(list))
}

/// A dataset the caller may see, and that has a file to serve.
fn dataset_entry(app: &App, req: &Request<Incoming>, uuid: Uuid) -> ApiResult<Arc<Entry>> {
    let e = visible(app, req, uuid)?;
    if e.rec.file.is_none() {
        return Err(ApiError::not_found(format!("dataset {uuid} has no file")));
    }
    Ok(e)
}

/// `GET /datasets/:uuid`.
pub(super) fn get(app: &App, req: &Request<Incoming>, uuid: Uuid) -> ApiResult<Resp> {
    let e = dataset_entry(app, req, uuid)?;
    json_value(&dsapi_manifest(&base_url(app, req), &e))
}

/// `GET /datasets/:uuid/:name`; `id` is the UUID segment as the client sent
/// it, for the message when `name` is not this dataset's file.
pub(super) async fn file(
    app: &App,
    req: &Request<Incoming>,
    uuid: Uuid,
    id: &str,
    name: &str,
) -> ApiResult<Resp> {
    let e = dataset_entry(app, req, uuid)?;
    if name != e.manifest().dsapi_file_name() {
        return Err(ApiError::not_found(format!(
            "dataset {id} has no file {:?}",
            name.chars().take(64).collect::<String>()
        )));
    }
    match &e.rec.file {
        Some(blob) => serve_blob(app, req, blob, "application/octet-stream").await,
        None => Err(ApiError::not_found("no file")),
    }
}
