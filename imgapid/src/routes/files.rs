//! Downloads of an image's file and icon (`GET /images/:uuid/file|icon`,
//! and the DSAPI file URL): exact Content-Length, Content-MD5, the SHA-1 as
//! ETag, conditional requests and single byte ranges.

use super::dispatch::App;
use super::request::visible;
use super::respond::{etag_matches, not_modified, set_common, Resp};
use crate::body::Body;
use crate::catalog::blocking;
use crate::error::{ApiError, ApiResult};
use crate::store::StoredBlob;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use uuid::Uuid;

/// Which blob of an image a download asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Which {
    File,
    Icon,
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
pub(super) async fn serve_blob(
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

/// `GET /images/:uuid/file` and `…/icon`.
pub(super) async fn get(
    app: &App,
    req: &Request<Incoming>,
    uuid: Uuid,
    which: Which,
) -> ApiResult<Resp> {
    let e = visible(app, req, uuid)?;
    let (blob, ct) = match which {
        Which::Icon => {
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
        }
        Which::File => {
            let b = e
                .rec
                .file
                .as_ref()
                .ok_or_else(|| ApiError::not_found(format!("image {uuid} has no file")))?;
            (b, "application/octet-stream")
        }
    };
    serve_blob(app, req, blob, ct).await
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
    fn http_dates_round_trip() {
        let h = http_date(1_700_000_000).unwrap();
        assert_eq!(h, "Tue, 14 Nov 2023 22:13:20 GMT");
        assert_eq!(parse_http_date(h.to_str().unwrap()), Some(1_700_000_000));
    }
}
