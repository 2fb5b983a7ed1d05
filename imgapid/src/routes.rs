//! Request routing and the IMGAPI / DSAPI handlers.
//!
//! Routing looks only at the URI *path* (old DSAPI clients send absolute-form
//! request targets) split on `/`. Every variable segment is either a strict
//! hyphenated UUID or compared for equality with a name we generated, so no
//! client-supplied text ever reaches a filesystem path: traversal attempts in
//! any segment simply match no route (404, as IMGAPI answers malformed UUIDs).

use crate::auth;
use crate::body::Body;
use crate::catalog::{blocking, parse_date_ns, Catalog, Entry};
use crate::config::Config;
use crate::error::{ApiError, ApiResult};
use crate::html;
use crate::metrics::Metrics;
use crate::store::{ImageRecord, StoredBlob};
use base64::Engine;
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use md5::Md5;
use rvmadm::image::manifest::{
    is_valid_sha1, now_published_at, Compression, ImageFile, ImageState, Manifest, NIL_OWNER,
};
use serde_json::{Map, Value};
use sha1::{Digest, Sha1};
use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Largest icon IMGAPI accepts.
const MAX_ICON: u64 = 128 * 1024;
/// Upload bytes hashed and written per blocking-pool hop.
const UPLOAD_BATCH: usize = 1024 * 1024;
/// Highest `limit` for ListImages (also the default).
const MAX_LIMIT: usize = 1000;

/// Everything a handler needs.
pub struct App {
    pub cfg: Config,
    pub catalog: Catalog,
    pub metrics: Arc<Metrics>,
    /// `http` or `https`, for URLs built from the Host header.
    pub scheme: &'static str,
}

type Resp = Response<Body>;

/// Entry point for one request: routes, then logs and counts the outcome.
pub async fn handle(app: Arc<App>, req: Request<Incoming>) -> Result<Resp, Infallible> {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let (route, result) = route(&app, req).await;
    let resp = match result {
        Ok(r) => r,
        Err(e) => {
            app.metrics.error(e.code);
            error_response(&e)
        }
    };
    let took = started.elapsed();
    let method_label = match method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        _ => "other",
    };
    app.metrics
        .request(route, method_label, resp.status().as_u16(), took);
    tracing::info!(
        %method,
        path = %path.chars().take(256).collect::<String>(),
        route,
        status = resp.status().as_u16(),
        micros = took.as_micros() as u64,
        "request"
    );
    Ok(resp)
}

fn error_response(e: &ApiError) -> Resp {
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

fn set_common(h: &mut HeaderMap, content_type: &'static str) {
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::SERVER,
        HeaderValue::from_static(concat!("imgapid/", env!("CARGO_PKG_VERSION"))),
    );
}

fn json_response(status: StatusCode, body: impl Into<Bytes>) -> Resp {
    let mut r = Response::new(Body::from_bytes(body));
    *r.status_mut() = status;
    set_common(r.headers_mut(), "application/json");
    r
}

fn json_value(v: &Value) -> ApiResult<Resp> {
    let b = serde_json::to_vec(v).map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(json_response(StatusCode::OK, b))
}

fn method_not_allowed(method: &Method) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "MethodNotAllowedError",
        format!("{method} is not allowed here"),
    )
}

/// Parses a strict, hyphenated UUID path segment; anything else is 404.
fn path_uuid(seg: &str) -> ApiResult<Uuid> {
    if seg.len() == 36 {
        if let Ok(u) = Uuid::try_parse(seg) {
            return Ok(u);
        }
    }
    Err(ApiError::not_found("no such image (not a UUID)"))
}

async fn route(app: &Arc<App>, req: Request<Incoming>) -> (&'static str, ApiResult<Resp>) {
    let path = req.uri().path().to_string();
    let segs: Vec<&str> = path.strip_prefix('/').unwrap_or(&path).split('/').collect();
    let m = req.method().clone();
    let get = m == Method::GET || m == Method::HEAD;
    match segs.as_slice() {
        [""] if get => ("index", index(app, &req)),
        ["ping"] if get => ("ping", ping(&req)),
        ["metrics"] if get => ("metrics", metrics(app)),
        ["images"] if get => ("list_images", list_images(app, &req)),
        ["images"] if m == Method::POST => ("create_image", create_image(app, req).await),
        ["images", id] => {
            let r = match path_uuid(id) {
                Err(e) => Err(e),
                Ok(u) if get => get_image(app, &req, u),
                Ok(u) if m == Method::POST => image_action(app, req, u).await,
                Ok(u) if m == Method::DELETE => delete_image(app, &req, u).await,
                Ok(_) => Err(method_not_allowed(&m)),
            };
            ("image", r)
        }
        ["images", id, "file"] => {
            let r = match path_uuid(id) {
                Err(e) => Err(e),
                Ok(u) if get => get_file(app, &req, u, false).await,
                Ok(u) if m == Method::PUT => put_file(app, req, u).await,
                Ok(_) => Err(method_not_allowed(&m)),
            };
            ("image_file", r)
        }
        ["images", id, "icon"] => {
            let r = match path_uuid(id) {
                Err(e) => Err(e),
                Ok(u) if get => get_file(app, &req, u, true).await,
                Ok(u) if m == Method::PUT => put_icon(app, req, u).await,
                Ok(_) => Err(method_not_allowed(&m)),
            };
            ("image_icon", r)
        }
        ["datasets"] if get => ("datasets", list_datasets(app, &req)),
        ["datasets", id] if get => ("dataset", get_dataset(app, &req, id)),
        ["datasets", id, name] if get => ("dataset_file", dataset_file(app, &req, id, name).await),
        _ => (
            "unknown",
            Err(ApiError::not_found(format!(
                "{m} {} does not exist",
                path.chars().take(128).collect::<String>()
            ))),
        ),
    }
}

// ---------------------------------------------------------------- helpers

/// Decodes `%XX` and `+` in a query component.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let hex = |c: u8| (c as char).to_digit(16);
                match (hex(b[i + 1]), hex(b[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push((h * 16 + l) as u8);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The query string as (key, value) pairs, decoded, in order.
fn query_pairs<B>(req: &Request<B>) -> Vec<(String, String)> {
    req.uri()
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn query_map<B>(req: &Request<B>) -> HashMap<String, String> {
    query_pairs(req).into_iter().collect()
}

fn may_write<B>(app: &App, req: &Request<B>) -> bool {
    auth::may_write(&app.cfg.auth, req.headers())
}

fn require_write<B>(app: &App, req: &Request<B>) -> ApiResult<()> {
    if may_write(app, req) {
        Ok(())
    } else {
        Err(ApiError::unauthorized())
    }
}

fn require_read<B>(app: &App, req: &Request<B>) -> ApiResult<()> {
    if auth::may_read(&app.cfg.auth, req.headers()) {
        Ok(())
    } else {
        Err(ApiError::unauthorized())
    }
}

/// Reads a JSON object body, refusing more than the configured limit.
async fn read_json_object(app: &App, req: Request<Incoming>) -> ApiResult<Map<String, Value>> {
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
    if buf.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(&buf) {
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

fn content_length(h: &HeaderMap) -> ApiResult<Option<u64>> {
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

/// Turns a JSON object into a validated manifest.
fn manifest_from(obj: Map<String, Value>) -> ApiResult<Manifest> {
    let m: Manifest = serde_json::from_value(Value::Object(obj))
        .map_err(|e| ApiError::validation(format!("invalid manifest: {e}")))?;
    m.validate()?;
    Ok(m)
}

/// The image an anonymous reader may see: activated ones only.
fn visible(app: &App, req: &Request<Incoming>, uuid: Uuid) -> ApiResult<Arc<Entry>> {
    require_read(app, req)?;
    match app.catalog.get(uuid)? {
        Some(e) if e.rec.activated || may_write(app, req) => Ok(e),
        _ => Err(ApiError::not_found(format!("image {uuid} not found"))),
    }
}

fn entry_response(e: &Entry) -> Resp {
    let mut r = json_response(StatusCode::OK, e.json.clone());
    if let Ok(v) = HeaderValue::from_str(&format!("\"{}\"", e.etag)) {
        r.headers_mut().insert(header::ETAG, v);
    }
    r
}

fn http_date(unix: i64) -> Option<HeaderValue> {
    let d = chrono::DateTime::from_timestamp(unix, 0)?;
    HeaderValue::from_str(&d.format("%a, %d %b %Y %H:%M:%S GMT").to_string()).ok()
}

fn parse_http_date(s: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc2822(s)
        .ok()
        .map(|d| d.timestamp())
}

// ---------------------------------------------------------------- read side

fn index(app: &App, req: &Request<Incoming>) -> ApiResult<Resp> {
    require_read(app, req)?;
    let active: Vec<Arc<Entry>> = app.catalog.with_sorted(|all| {
        all.iter()
            .filter(|e| e.state == ImageState::Active && e.manifest().public)
            .cloned()
            .collect()
    })?;
    let mut r = Response::new(Body::from_bytes(html::catalog_page(&active)));
    set_common(r.headers_mut(), "text/html; charset=utf-8");
    Ok(r)
}

fn ping(req: &Request<Incoming>) -> ApiResult<Resp> {
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

fn metrics(app: &App) -> ApiResult<Resp> {
    let mut counts: Vec<(&str, u64)> = app.catalog.state_counts()?.into_iter().collect();
    counts.sort();
    let mut r = Response::new(Body::from_bytes(app.metrics.render(&counts)));
    set_common(r.headers_mut(), "text/plain; version=0.0.4");
    Ok(r)
}

/// ListImages filters, parsed once per request.
struct Filter {
    states: Option<Vec<ImageState>>,
    name: Option<String>,
    version: Option<String>,
    os: Option<String>,
    types: Option<(bool, String)>,
    owner: Option<Uuid>,
    public: Option<bool>,
    tags: Vec<(String, String)>,
}

fn text_match(want: &str, have: &str) -> bool {
    match want.strip_prefix('~') {
        Some(sub) => have.contains(sub),
        None => want == have,
    }
}

fn tag_matches(tags: Option<&Map<String, Value>>, key: &str, want: &str) -> bool {
    match tags.and_then(|t| t.get(key)) {
        Some(Value::String(s)) => s == want,
        Some(Value::Bool(b)) => b.to_string() == want,
        Some(Value::Number(n)) => n.to_string() == want,
        _ => false,
    }
}

impl Filter {
    fn parse(pairs: &[(String, String)], privileged: bool) -> ApiResult<Filter> {
        let mut f = Filter {
            states: Some(vec![ImageState::Active]),
            name: None,
            version: None,
            os: None,
            types: None,
            owner: None,
            public: None,
            tags: Vec::new(),
        };
        for (k, v) in pairs {
            match k.as_str() {
                "state" => {
                    let s = match v.as_str() {
                        "all" => None,
                        "active" => Some(vec![ImageState::Active]),
                        "disabled" => Some(vec![ImageState::Disabled]),
                        "unactivated" => Some(vec![ImageState::Unactivated]),
                        "creating" => Some(vec![ImageState::Creating]),
                        "failed" => Some(vec![ImageState::Failed]),
                        _ => return Err(ApiError::invalid_param(format!("unknown state {v:?}"))),
                    };
                    // Anonymous readers only ever see active images.
                    if privileged {
                        f.states = s;
                    }
                }
                "name" => f.name = Some(v.clone()),
                "version" => f.version = Some(v.clone()),
                "os" => f.os = Some(v.clone()),
                "type" => {
                    f.types = Some(match v.strip_prefix('!') {
                        Some(t) => (true, t.to_string()),
                        None => (false, v.clone()),
                    })
                }
                "owner" => {
                    f.owner = Some(
                        Uuid::try_parse(v)
                            .map_err(|_| ApiError::invalid_param("owner must be a UUID"))?,
                    )
                }
                "public" => {
                    f.public = Some(match v.as_str() {
                        "true" => true,
                        "false" => false,
                        _ => return Err(ApiError::invalid_param("public must be true or false")),
                    })
                }
                _ => {
                    if let Some(tag) = k.strip_prefix("tag.") {
                        f.tags.push((tag.to_string(), v.clone()));
                    }
                }
            }
        }
        Ok(f)
    }

    fn matches(&self, e: &Entry) -> bool {
        let m = e.manifest();
        if let Some(s) = &self.states {
            if !s.contains(&e.state) {
                return false;
            }
        }
        if self
            .name
            .as_deref()
            .is_some_and(|w| !text_match(w, &m.name))
            || self
                .version
                .as_deref()
                .is_some_and(|w| !text_match(w, &m.version))
            || self.os.as_deref().is_some_and(|w| w != m.os.as_str())
            || self.owner.is_some_and(|o| o != m.owner)
            || self.public.is_some_and(|p| p != m.public)
        {
            return false;
        }
        if let Some((negate, t)) = &self.types {
            if (t == m.image_type.as_str()) == *negate {
                return false;
            }
        }
        self.tags
            .iter()
            .all(|(k, v)| tag_matches(m.tags.as_ref(), k, v))
    }
}

fn list_images(app: &App, req: &Request<Incoming>) -> ApiResult<Resp> {
    require_read(app, req)?;
    let pairs = query_pairs(req);
    let filter = Filter::parse(&pairs, may_write(app, req))?;
    let q: HashMap<&str, &str> = pairs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let limit = match q.get("limit") {
        None => MAX_LIMIT,
        Some(l) => match l.parse::<usize>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
            _ => {
                return Err(ApiError::invalid_param(format!(
                    "limit must be 1..={MAX_LIMIT}"
                )))
            }
        },
    };
    let desc = match q.get("sort").copied() {
        None | Some("published_at") | Some("published_at.asc") => false,
        Some("published_at.desc") => true,
        Some(s) => return Err(ApiError::invalid_param(format!("unknown sort {s:?}"))),
    };
    // The marker is inclusive: a UUID stands for its image's published_at.
    let marker: Option<i128> = match q.get("marker") {
        None => None,
        Some(mk) => Some(match Uuid::try_parse(mk) {
            Ok(u) => {
                app.catalog
                    .get(u)?
                    .ok_or_else(|| ApiError::invalid_param(format!("marker image {u} not found")))?
                    .published_ns
            }
            Err(_) => parse_date_ns(mk)
                .ok_or_else(|| ApiError::invalid_param("marker must be a UUID or an ISO date"))?,
        }),
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
        if desc {
            for e in all
                .iter()
                .rev()
                .filter(|e| in_range(e) && filter.matches(e))
                .take(limit)
            {
                push(e);
            }
        } else {
            // Sorted ascending: jump to the marker instead of scanning.
            let from = marker.map_or(0, |mk| all.partition_point(|e| e.published_ns < mk));
            for e in all[from..].iter().filter(|e| filter.matches(e)).take(limit) {
                push(e);
            }
        }
        out.push(b']');
        out
    };
    if pairs.is_empty() {
        // No query at all: the common first request, served from a cache.
        let body = app.catalog.default_list(build)?;
        return Ok(json_response(StatusCode::OK, body));
    }
    let body = app.catalog.with_sorted(build)?;
    Ok(json_response(StatusCode::OK, body))
}

fn get_image(app: &App, req: &Request<Incoming>, uuid: Uuid) -> ApiResult<Resp> {
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

fn not_modified() -> Resp {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = StatusCode::NOT_MODIFIED;
    r
}

fn etag_matches(header_value: &str, etag: &str) -> bool {
    header_value.split(',').any(|t| {
        let t = t.trim();
        let t = t.strip_prefix("W/").unwrap_or(t);
        t == "*" || t.trim_matches('"') == etag
    })
}

/// Parses a single `bytes=` range against `size`; `Ok(None)` means "send it
/// all" (no header, several ranges, or a syntax we ignore as RFC 9110 allows).
fn parse_range(v: &str, size: u64) -> Result<Option<(u64, u64)>, ()> {
    let Some(spec) = v.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return Ok(None);
    };
    let (start, end) = if a.is_empty() {
        let n: u64 = b.parse().map_err(|_| ())?;
        if n == 0 {
            return Err(());
        }
        (size.saturating_sub(n), size - 1)
    } else {
        let s: u64 = a.parse().map_err(|_| ())?;
        let e: u64 = if b.is_empty() {
            size.saturating_sub(1)
        } else {
            b.parse::<u64>()
                .map_err(|_| ())?
                .min(size.saturating_sub(1))
        };
        (s, e)
    };
    if size == 0 || start > end || start >= size {
        return Err(());
    }
    Ok(Some((start, end)))
}

/// Serves an image file (or its icon) with the headers imgadm and
/// sdc-clients check: exact Content-Length, Content-MD5 and the sha1 ETag.
async fn serve_blob(
    app: &App,
    req: &Request<Incoming>,
    blob: &StoredBlob,
    content_type: &str,
) -> ApiResult<Resp> {
    let etag_ok = |v: &HeaderValue| v.to_str().ok().is_some_and(|s| etag_matches(s, &blob.sha1));
    if let Some(inm) = req.headers().get(header::IF_NONE_MATCH) {
        if etag_ok(inm) {
            return Ok(not_modified());
        }
    } else if let Some(ims) = req
        .headers()
        .get(header::IF_MODIFIED_SINCE)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_http_date)
    {
        if blob.mtime <= ims {
            return Ok(not_modified());
        }
    }
    let mut range = match req
        .headers()
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
    {
        None => None,
        Some(v) => match parse_range(v, blob.size) {
            Ok(r) => r,
            Err(()) => {
                let mut r = Response::new(Body::empty());
                *r.status_mut() = StatusCode::RANGE_NOT_SATISFIABLE;
                if let Ok(v) = HeaderValue::from_str(&format!("bytes */{}", blob.size)) {
                    r.headers_mut().insert(header::CONTENT_RANGE, v);
                }
                return Ok(r);
            }
        },
    };
    // If-Range: resume only when the client's copy is of the same file.
    if let Some(ir) = req.headers().get(header::IF_RANGE) {
        if !etag_ok(ir) {
            range = None;
        }
    }
    let (start, len) = match range {
        Some((s, e)) => (s, e - s + 1),
        None => (0, blob.size),
    };
    let mut r = if req.method() == Method::HEAD {
        Response::new(Body::empty())
    } else {
        let storage = app.catalog.storage.clone();
        let key = blob.key.clone();
        let reader = blocking(move || storage.open_blob(&key)).await?;
        Response::new(Body::file(reader, start, len, app.metrics.clone()))
    };
    let h = r.headers_mut();
    set_common(h, "application/octet-stream");
    if let Ok(v) = HeaderValue::from_str(content_type) {
        h.insert(header::CONTENT_TYPE, v);
    }
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Ok(v) = HeaderValue::from_str(&blob.sha1) {
        // Unquoted, exactly as IMGAPI sends it.
        h.insert(header::ETAG, v);
    }
    if let Some(v) = http_date(blob.mtime) {
        h.insert(header::LAST_MODIFIED, v);
    }
    if let Some((s, e)) = range {
        *r.status_mut() = StatusCode::PARTIAL_CONTENT;
        if let Ok(v) = HeaderValue::from_str(&format!("bytes {s}-{e}/{}", blob.size)) {
            r.headers_mut().insert(header::CONTENT_RANGE, v);
        }
    } else if let Ok(v) = HeaderValue::from_str(&blob.md5) {
        // Content-MD5 describes the whole body, so only full responses carry it.
        r.headers_mut().insert("content-md5", v);
    }
    Ok(r)
}

async fn get_file(app: &App, req: &Request<Incoming>, uuid: Uuid, icon: bool) -> ApiResult<Resp> {
    let e = visible(app, req, uuid)?;
    let (blob, ct) = if icon {
        let b = e
            .rec
            .icon
            .as_ref()
            .ok_or_else(|| ApiError::not_found(format!("image {uuid} has no icon")))?;
        (
            b,
            b.content_type
                .as_deref()
                .unwrap_or("application/octet-stream"),
        )
    } else {
        let b = e
            .rec
            .file
            .as_ref()
            .ok_or_else(|| ApiError::not_found(format!("image {uuid} has no file")))?;
        (b, "application/octet-stream")
    };
    serve_blob(app, req, blob, ct).await
}

// ---------------------------------------------------------------- DSAPI

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

fn list_datasets(app: &App, req: &Request<Incoming>) -> ApiResult<Resp> {
    require_read(app, req)?;
    let q = query_map(req);
    let base = base_url(app, req);
    let list: Vec<Value> = app.catalog.with_sorted(|all| {
        all.iter()
            .rev() // DSAPI lists newest first
            .filter(|e| e.rec.activated && e.rec.file.is_some() && e.manifest().public)
            .filter(|e| {
                let m = e.manifest();
                q.get("name").is_none_or(|v| *v == m.name)
                    && q.get("version").is_none_or(|v| *v == m.version)
                    && q.get("os").is_none_or(|v| v == m.os.as_str())
                    && q.get("type").is_none_or(|v| {
                        dsapi_manifest("", e).get("type").and_then(Value::as_str)
                            == Some(v.as_str())
                    })
            })
            .map(|e| dsapi_manifest(&base, e))
            .collect()
    })?;
    json_value(&Value::Array(list))
}

fn dataset_entry(app: &App, req: &Request<Incoming>, id: &str) -> ApiResult<Arc<Entry>> {
    let uuid = path_uuid(id)?;
    let e = visible(app, req, uuid)?;
    if e.rec.file.is_none() {
        return Err(ApiError::not_found(format!("dataset {uuid} has no file")));
    }
    Ok(e)
}

fn get_dataset(app: &App, req: &Request<Incoming>, id: &str) -> ApiResult<Resp> {
    let e = dataset_entry(app, req, id)?;
    json_value(&dsapi_manifest(&base_url(app, req), &e))
}

async fn dataset_file(app: &App, req: &Request<Incoming>, id: &str, name: &str) -> ApiResult<Resp> {
    let e = dataset_entry(app, req, id)?;
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

// ---------------------------------------------------------------- write side

/// Fields a client may not set directly: the server computes them.
const COMPUTED: [&str; 3] = ["state", "files", "icon"];

async fn create_image(app: &App, req: Request<Incoming>) -> ApiResult<Resp> {
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
        .insert(ImageRecord {
            manifest,
            activated: false,
            file: None,
            icon: None,
            expect: None,
        })
        .await?;
    Ok(entry_response(&e))
}

async fn image_action(app: &App, req: Request<Incoming>, uuid: Uuid) -> ApiResult<Resp> {
    require_write(app, &req)?;
    let q = query_map(&req);
    let action = q.get("action").cloned().unwrap_or_default();
    match action.as_str() {
        "import" => {
            if q.contains_key("account") {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "OperatorOnly",
                    "import is for operators only; drop 'account'",
                ));
            }
            let mut obj = read_json_object(app, req).await?;
            match obj.get("uuid").and_then(Value::as_str) {
                Some(u) if Uuid::try_parse(u).ok() == Some(uuid) => {}
                _ => return Err(ApiError::invalid_param("manifest uuid must match the URL")),
            }
            for f in ["state", "icon"] {
                obj.remove(f);
            }
            obj.entry("v").or_insert(Value::from(2));
            // Without a user database every image belongs to the nil owner.
            obj.insert("owner".into(), Value::from(NIL_OWNER.to_string()));
            let mut manifest = manifest_from(obj)?;
            // Files arrive through AddImageFile; an announced one becomes
            // the size and SHA-1 that upload must match.
            let expect = manifest.files.pop();
            manifest.files.clear();
            let e = app
                .catalog
                .insert(ImageRecord {
                    manifest,
                    activated: false,
                    file: None,
                    icon: None,
                    expect,
                })
                .await?;
            Ok(entry_response(&e))
        }
        "activate" => {
            let origin_state = |o: Uuid| app.catalog.get(o).ok().flatten().map(|e| e.rec.activated);
            let (e, _) = app
                .catalog
                .update(uuid, |rec| {
                    if rec.activated {
                        return Err(ApiError::new(
                            StatusCode::UNPROCESSABLE_ENTITY,
                            "ImageAlreadyActivated",
                            format!("image {uuid} is already activated"),
                        ));
                    }
                    if rec.file.is_none() {
                        return Err(ApiError::new(
                            StatusCode::UNPROCESSABLE_ENTITY,
                            "NoActivationNoFile",
                            format!("image {uuid} has no file; upload it first"),
                        ));
                    }
                    if let Some(o) = rec.manifest.origin {
                        match origin_state(o) {
                            None => {
                                return Err(ApiError::new(
                                    StatusCode::UNPROCESSABLE_ENTITY,
                                    "OriginDoesNotExist",
                                    format!("origin {o} does not exist"),
                                ))
                            }
                            Some(false) => {
                                return Err(ApiError::new(
                                    StatusCode::UNPROCESSABLE_ENTITY,
                                    "OriginIsNotActive",
                                    format!("origin {o} is not activated"),
                                ))
                            }
                            Some(true) => {}
                        }
                    }
                    let mut new = rec.clone();
                    new.activated = true;
                    if new.manifest.published_at.is_none() {
                        new.manifest.published_at = Some(now_published_at());
                    }
                    Ok(new)
                })
                .await?;
            Ok(entry_response(&e))
        }
        "disable" | "enable" => {
            let disabled = action == "disable";
            let (e, _) = app
                .catalog
                .update(uuid, |rec| {
                    let mut new = rec.clone();
                    new.manifest.disabled = disabled;
                    Ok(new)
                })
                .await?;
            Ok(entry_response(&e))
        }
        "update" => {
            let changes = read_json_object(app, req).await?;
            const FIXED: [&str; 8] = [
                "v",
                "uuid",
                "owner",
                "state",
                "files",
                "published_at",
                "origin",
                "icon",
            ];
            if let Some(f) = FIXED.iter().find(|f| changes.contains_key(**f)) {
                return Err(ApiError::invalid_param(format!("{f:?} cannot be updated")));
            }
            let (e, _) = app
                .catalog
                .update(uuid, |rec| {
                    let mut obj = match serde_json::to_value(&rec.manifest) {
                        Ok(Value::Object(o)) => o,
                        _ => return Err(ApiError::internal("cannot serialize manifest")),
                    };
                    for (k, v) in changes {
                        if v.is_null() {
                            obj.remove(&k);
                        } else {
                            obj.insert(k, v);
                        }
                    }
                    let mut new = rec.clone();
                    new.manifest = manifest_from(obj)?;
                    Ok(new)
                })
                .await?;
            Ok(entry_response(&e))
        }
        "" => Err(ApiError::invalid_param("missing 'action'")),
        other => Err(ApiError::invalid_param(format!(
            "unknown action {:?}",
            other.chars().take(32).collect::<String>()
        ))),
    }
}

async fn delete_image(app: &App, req: &Request<Incoming>, uuid: Uuid) -> ApiResult<Resp> {
    require_write(app, req)?;
    app.catalog.delete(uuid).await?;
    let mut r = Response::new(Body::empty());
    *r.status_mut() = StatusCode::NO_CONTENT;
    Ok(r)
}

/// Streams a request body into a new blob while hashing it, enforcing the
/// declared length, the idle timeout and (if given) the expected SHA-1.
/// Returns the committed blob; on any failure nothing is left in storage.
async fn receive_blob(
    app: &App,
    body: Incoming,
    declared: u64,
    expect_sha1: Option<String>,
    key_prefix: String,
) -> ApiResult<StoredBlob> {
    let storage = app.catalog.storage.clone();
    let mut upload = Some(blocking(move || storage.new_upload()).await?);
    let mut sha = Some(Sha1::new());
    let mut md5 = Some(Md5::new());
    let mut buf: Vec<u8> = Vec::with_capacity(UPLOAD_BATCH);
    let mut got: u64 = 0;
    let idle = Duration::from_secs(app.cfg.upload_idle_timeout_secs.max(1));
    let mut body = body;
    // Moves the batch, the hashers and the file to the blocking pool and back.
    async fn flush(
        upload: &mut Option<Box<dyn crate::store::Upload>>,
        sha: &mut Option<Sha1>,
        md5: &mut Option<Md5>,
        buf: &mut Vec<u8>,
    ) -> ApiResult<()> {
        let (Some(mut u), Some(mut s), Some(mut m)) = (upload.take(), sha.take(), md5.take())
        else {
            return Err(ApiError::internal("upload state lost"));
        };
        let data = std::mem::replace(buf, Vec::with_capacity(UPLOAD_BATCH));
        let (u, s, m) = blocking(move || {
            s.update(&data);
            m.update(&data);
            u.write_all(&data)?;
            Ok((u, s, m))
        })
        .await?;
        *upload = Some(u);
        *sha = Some(s);
        *md5 = Some(m);
        Ok(())
    }
    loop {
        let frame = match tokio::time::timeout(idle, body.frame()).await {
            Err(_) => return Err(ApiError::upload("upload stalled; nothing was stored")),
            Ok(None) => break,
            Ok(Some(Err(e))) => {
                return Err(ApiError::upload(format!(
                    "upload interrupted ({e}); nothing was stored"
                )))
            }
            Ok(Some(Ok(f))) => f,
        };
        if let Ok(d) = frame.into_data() {
            got += d.len() as u64;
            app.metrics
                .bytes_received
                .fetch_add(d.len() as u64, std::sync::atomic::Ordering::Relaxed);
            if got > declared {
                return Err(ApiError::upload("body is longer than Content-Length"));
            }
            buf.extend_from_slice(&d);
            if buf.len() >= UPLOAD_BATCH {
                flush(&mut upload, &mut sha, &mut md5, &mut buf).await?;
            }
        }
    }
    flush(&mut upload, &mut sha, &mut md5, &mut buf).await?;
    if got != declared {
        return Err(ApiError::upload(format!(
            "received {got} bytes, Content-Length said {declared}; nothing was stored"
        )));
    }
    let (Some(upload), Some(sha), Some(md5)) = (upload, sha, md5) else {
        return Err(ApiError::internal("upload state lost"));
    };
    let sha1 = hex::encode(sha.finalize());
    if let Some(want) = expect_sha1 {
        if !want.eq_ignore_ascii_case(&sha1) {
            return Err(ApiError::upload(format!(
                "sha1 mismatch: got {sha1}, expected {want}; nothing was stored"
            )));
        }
    }
    let md5 = base64::engine::general_purpose::STANDARD.encode(md5.finalize());
    let key = format!("{key_prefix}-{sha1}");
    let k = key.clone();
    blocking(move || upload.commit(&k)).await?;
    Ok(StoredBlob {
        key,
        size: got,
        sha1,
        md5,
        mtime: chrono::Utc::now().timestamp(),
        content_type: None,
    })
}

/// Removes a freshly committed blob that did not make it into a record,
/// unless the current record uses the same key (identical re-upload).
async fn discard_blob(app: &App, uuid: Uuid, key: String) {
    let in_use = app
        .catalog
        .get(uuid)
        .ok()
        .flatten()
        .is_some_and(|e| e.rec.keys().any(|k| k == key));
    if !in_use {
        let storage = app.catalog.storage.clone();
        let _ = blocking(move || storage.delete_blob(&key)).await;
    }
}

/// Largest refused upload body we still read (and discard) before answering,
/// so that clients that do not wait for `100 Continue` see the error status
/// instead of a reset connection. Larger ones are cut off at once.
const DRAIN_LIMIT: u64 = 8 * 1024 * 1024;

async fn drain<B>(app: &App, req: &Request<B>, mut body: Incoming) {
    match content_length(req.headers()) {
        Ok(Some(n)) if n <= DRAIN_LIMIT => {}
        _ => return,
    }
    let idle = Duration::from_secs(app.cfg.upload_idle_timeout_secs.clamp(1, 10));
    let mut seen: u64 = 0;
    while let Ok(Some(Ok(frame))) = tokio::time::timeout(idle, body.frame()).await {
        if let Ok(d) = frame.into_data() {
            seen += d.len() as u64;
            if seen > DRAIN_LIMIT {
                return;
            }
        }
    }
}

async fn put_file(app: &App, req: Request<Incoming>, uuid: Uuid) -> ApiResult<Resp> {
    let (parts, body) = req.into_parts();
    let req = Request::from_parts(parts, ());
    let checked = (|| -> ApiResult<_> {
        require_write(app, &req)?;
        let q = query_map(&req);
        let compression = q
            .get("compression")
            .ok_or_else(|| {
                ApiError::invalid_param("'compression' is required (none, gzip, bzip2, xz, zstd)")
            })
            .and_then(|c| {
                Compression::parse(c).ok_or_else(|| {
                    ApiError::invalid_param(format!(
                        "unknown compression {:?}",
                        c.chars().take(16).collect::<String>()
                    ))
                })
            })?;
        let expect_sha1 = match q.get("sha1") {
            None => None,
            Some(s) if is_valid_sha1(s) => Some(s.to_ascii_lowercase()),
            Some(_) => return Err(ApiError::invalid_param("sha1 must be 40 hex digits")),
        };
        let dataset_guid = match q.get("dataset_guid") {
            None => None,
            Some(g)
                if !g.is_empty()
                    && g.len() <= 40
                    && g.bytes().all(|b| b.is_ascii_alphanumeric()) =>
            {
                Some(g.clone())
            }
            Some(_) => return Err(ApiError::invalid_param("bad dataset_guid")),
        };
        let entry = app
            .catalog
            .get(uuid)?
            .ok_or_else(|| ApiError::not_found(format!("image {uuid} not found")))?;
        if entry.rec.activated {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "ImageFilesImmutable",
                format!("image {uuid} is activated; its file cannot change"),
            ));
        }
        let declared = content_length(req.headers())?.ok_or_else(|| {
            ApiError::new(
                StatusCode::LENGTH_REQUIRED,
                "InvalidHeader",
                "Content-Length is required",
            )
        })?;
        if declared == 0 {
            return Err(ApiError::upload("the file is empty"));
        }
        let mut expect_sha1 = expect_sha1;
        if let Some(want) = &entry.rec.expect {
            if declared != want.size {
                return Err(ApiError::upload(format!(
                    "file is {declared} bytes but the manifest says {}; nothing was stored",
                    want.size
                )));
            }
            match &expect_sha1 {
                Some(s) if !s.eq_ignore_ascii_case(&want.sha1) => {
                    return Err(ApiError::upload(format!(
                        "sha1 {s} differs from the manifest's {}; nothing was stored",
                        want.sha1
                    )))
                }
                _ => expect_sha1 = Some(want.sha1.to_ascii_lowercase()),
            }
        }
        if declared > app.cfg.max_upload_bytes {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "RequestEntityTooLarge",
                format!("file is larger than {} bytes", app.cfg.max_upload_bytes),
            ));
        }
        let slot = app.catalog.begin_upload(uuid)?;
        Ok(((declared, compression, expect_sha1, dataset_guid), slot))
    })();
    let ((declared, compression, expect_sha1, dataset_guid), _slot) = match checked {
        Ok(x) => x,
        Err(e) => {
            // Too large: answer from the headers alone (no `100 Continue`).
            if e.status != StatusCode::PAYLOAD_TOO_LARGE {
                drain(app, &req, body).await;
            }
            return Err(e);
        }
    };
    let blob = receive_blob(app, body, declared, expect_sha1, format!("{uuid}-file")).await?;
    let key = blob.key.clone();
    let result = app
        .catalog
        .update(uuid, |rec| {
            if rec.activated {
                return Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "ImageFilesImmutable",
                    format!("image {uuid} was activated during the upload"),
                ));
            }
            let mut new = rec.clone();
            new.manifest.files = vec![ImageFile {
                sha1: blob.sha1.clone(),
                size: blob.size,
                compression,
                dataset_guid: dataset_guid.clone(),
                extra: Map::new(),
            }];
            new.file = Some(blob.clone());
            Ok(new)
        })
        .await;
    match result {
        Ok((e, old)) => {
            if let Some(old_file) = &old.rec.file {
                if old_file.key != key {
                    discard_blob(app, uuid, old_file.key.clone()).await;
                }
            }
            Ok(entry_response(&e))
        }
        Err(err) => {
            discard_blob(app, uuid, key).await;
            Err(err)
        }
    }
}

async fn put_icon(app: &App, req: Request<Incoming>, uuid: Uuid) -> ApiResult<Resp> {
    let (parts, body) = req.into_parts();
    let req = Request::from_parts(parts, ());
    let checked = (|| -> ApiResult<_> {
        require_write(app, &req)?;
        let ct = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|s| {
                s.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase()
            })
            .unwrap_or_default();
        if !matches!(ct.as_str(), "image/png" | "image/jpeg" | "image/gif") {
            return Err(ApiError::invalid_param(
                "icon Content-Type must be image/png, image/jpeg or image/gif",
            ));
        }
        if app.catalog.get(uuid)?.is_none() {
            return Err(ApiError::not_found(format!("image {uuid} not found")));
        }
        let declared = content_length(req.headers())?.ok_or_else(|| {
            ApiError::new(
                StatusCode::LENGTH_REQUIRED,
                "InvalidHeader",
                "Content-Length is required",
            )
        })?;
        if declared == 0 || declared > MAX_ICON {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "RequestEntityTooLarge",
                format!("icon must be 1..={MAX_ICON} bytes"),
            ));
        }
        let slot = app.catalog.begin_upload(uuid)?;
        Ok(((declared, ct), slot))
    })();
    let ((declared, ct), _slot) = match checked {
        Ok(x) => x,
        Err(e) => {
            // Too large: answer from the headers alone (no `100 Continue`).
            if e.status != StatusCode::PAYLOAD_TOO_LARGE {
                drain(app, &req, body).await;
            }
            return Err(e);
        }
    };
    let mut blob = receive_blob(app, body, declared, None, format!("{uuid}-icon")).await?;
    blob.content_type = Some(ct);
    let key = blob.key.clone();
    let result = app
        .catalog
        .update(uuid, |rec| {
            let mut new = rec.clone();
            new.icon = Some(blob.clone());
            new.manifest.icon = Some(true);
            Ok(new)
        })
        .await;
    match result {
        Ok((e, old)) => {
            if let Some(old_icon) = &old.rec.icon {
                if old_icon.key != key {
                    discard_blob(app, uuid, old_icon.key.clone()).await;
                }
            }
            Ok(entry_response(&e))
        }
        Err(err) => {
            discard_blob(app, uuid, key).await;
            Err(err)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), Ok(Some((0, 9))));
        assert_eq!(parse_range("bytes=90-", 100), Ok(Some((90, 99))));
        assert_eq!(parse_range("bytes=-10", 100), Ok(Some((90, 99))));
        assert_eq!(parse_range("bytes=50-500", 100), Ok(Some((50, 99))));
        assert_eq!(parse_range("bytes=100-", 100), Err(()));
        assert_eq!(parse_range("bytes=5-1", 100), Err(()));
        assert_eq!(parse_range("bytes=0-1,5-6", 100), Ok(None));
        assert_eq!(parse_range("items=0-1", 100), Ok(None));
    }

    #[test]
    fn decoding_and_etags() {
        assert_eq!(percent_decode("a%20b+c%2"), "a b c%2");
        assert_eq!(percent_decode("%2e%2E"), "..");
        assert!(etag_matches("\"abc\", W/\"def\"", "def"));
        assert!(!etag_matches("\"abc\"", "ab"));
        assert!(path_uuid("../../etc/passwd").is_err());
        assert!(path_uuid("01b2c898945f11e1a523af1afbe22822").is_err());
        assert!(path_uuid("01b2c898-945f-11e1-a523-af1afbe22822").is_ok());
    }
}
