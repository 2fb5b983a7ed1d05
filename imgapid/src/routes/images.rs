//! The image resource: ListImages (`GET /images`), CreateImage (`POST
//! /images`), GetImage and DeleteImage (`/images/:uuid`). Actions on one
//! image live in `actions`, its file and icon in `files` and `uploads`.

use super::dispatch::App;
use super::query::{list_filter, paging, query_pairs, Listed, Marker};
use super::request::{
    manifest_from, may_write, read_json_object, require_read, require_write, visible,
};
use super::respond::{entry_response, etag_matches, json_response, not_modified, Resp};
use crate::body::Body;
use crate::catalog::Entry;
use crate::error::{ApiError, ApiResult};
use crate::store::ImageRecord;
use hyper::body::Incoming;
use hyper::header;
use hyper::{Request, Response, StatusCode};
use rvmadm_manifest::NIL_OWNER;
use serde_json::Value;
use std::sync::Arc;
use uuid::Uuid;

/// Fields a client may not set directly: the server computes them.
const COMPUTED: [&str; 3] = ["state", "files", "icon"];

/// `GET /images`: filtered, paged by `published_at`, as one JSON array
/// built from each entry's precomputed manifest bytes.
pub(super) fn list(app: &App, req: &Request<Incoming>) -> ApiResult<Resp> {
    require_read(app, req)?;
    let pairs = query_pairs(req);
    let privileged = may_write(app, req);
    let filter = list_filter(&pairs, privileged)?;
    let paging = paging(&pairs)?;
    let (limit, desc) = (paging.limit, paging.desc);
    // The marker is inclusive: a UUID stands for its image's published_at.
    let marker: Option<i128> = match paging.marker {
        None => None,
        Some(Marker::Date(ns)) => Some(ns),
        Some(Marker::Image(u)) => Some(
            app.catalog
                .get(u)?
                .ok_or_else(|| ApiError::invalid_param(format!("marker image {u} not found")))?
                .published_ns,
        ),
    };
    let build = |all: &[Arc<Entry>]| -> Vec<u8> {
        let mut out = Vec::with_capacity(limit.min(all.len()) * 512 + 2);
        out.push(b'[');
        let mut n = 0;
        let mut push = |e: &Arc<Entry>| {
            if n > 0 {
                out.push(b',');
            }
            out.extend_from_slice(&e.json);
            n += 1;
        };
        let in_range = |e: &Entry| match marker {
            None => true,
            Some(mk) if desc => e.published_ns <= mk,
            Some(mk) => e.published_ns >= mk,
        };
        let matches = |e: &Entry| filter.matches(&Listed(e));
        if desc {
            for e in all
                .iter()
                .rev()
                .filter(|e| in_range(e) && matches(e))
                .take(limit)
            {
                push(e);
            }
        } else {
            // Sorted ascending: jump to the marker instead of scanning.
            let from = marker.map_or(0, |mk| all.partition_point(|e| e.published_ns < mk));
            for e in all[from..].iter().filter(|e| matches(e)).take(limit) {
                push(e);
            }
        }
        out.push(b']');
        out
    };
    if pairs.is_empty() {
        // No query at all: the common first request, served from a cache.
        let body = app.catalog.default_list(privileged, build)?;
        return Ok(json_response(StatusCode::OK, body));
    }
    let body = app.catalog.with_sorted(build)?;
    Ok(json_response(StatusCode::OK, body))
}

/// `GET /images/:uuid`, answering `If-None-Match` with 304.
pub(super) fn get(app: &App, req: &Request<Incoming>, uuid: Uuid) -> ApiResult<Resp> {
    let e = visible(app, req, uuid)?;
    if let Some(inm) = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
    {
        if etag_matches(inm, &e.etag) {
            return Ok(not_modified());
        }
    }
    Ok(entry_response(&e))
}

/// `POST /images`: a new, unactivated image with a server-chosen UUID.
pub(super) async fn create(app: &App, req: Request<Incoming>) -> ApiResult<Resp> {
    require_write(app, &req)?;
    let mut obj = read_json_object(app, req).await?;
    for f in ["uuid", "state", "published_at"] {
        if obj.contains_key(f) {
            return Err(ApiError::invalid_param(format!(
                "CreateImage does not take {f:?}"
            )));
        }
    }
    for f in COMPUTED {
        obj.remove(f);
    }
    obj.insert("uuid".into(), Value::from(Uuid::new_v4().to_string()));
    obj.entry("v").or_insert(Value::from(2));
    obj.entry("owner")
        .or_insert(Value::from(NIL_OWNER.to_string()));
    let manifest = manifest_from(obj)?;
    let e = app
        .catalog
        .insert(ImageRecord::unactivated(manifest, None))
        .await?;
    Ok(entry_response(&e))
}

/// `DELETE /images/:uuid`: the record and its blobs.
pub(super) async fn delete(app: &App, req: &Request<Incoming>, uuid: Uuid) -> ApiResult<Resp> {
    require_write(app, req)?;
    app.catalog.delete(uuid).await?;
    let mut r = Response::new(Body::empty());
    *r.status_mut() = StatusCode::NO_CONTENT;
    Ok(r)
}
