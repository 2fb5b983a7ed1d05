//! Uploads of an image's file and icon (`PUT /images/:uuid/file|icon`):
//! every check that needs only the headers runs before a byte is read; the
//! body is hashed while it streams into a new blob, which becomes the
//! record's only if the length and SHA-1 agree. A failed upload leaves
//! nothing behind, and at most one upload per image runs at a time.

use super::dispatch::App;
use super::query::query_map;
use super::request::{content_length, require_write, required_length};
use super::respond::{entry_response, Resp};
use crate::catalog::blocking;
use crate::catalog::Entry;
use crate::error::{ApiError, ApiResult};
use crate::store::{ImageRecord, StoredBlob};
use base64::Engine;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header;
use hyper::{Request, StatusCode};
use md5::Md5;
use rvmadm_manifest::{is_valid_sha1, Compression, ImageFile};
use serde_json::Map;
use sha1::{Digest, Sha1};
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// Largest icon IMGAPI accepts.
const MAX_ICON: u64 = 128 * 1024;
/// Upload bytes hashed and written per blocking-pool hop.
const UPLOAD_BATCH: usize = 1024 * 1024;

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
    let prefix = key_prefix.clone();
    let mut upload = Some(blocking(move || storage.new_upload(&prefix)).await?);
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
    let key = blocking(move || upload.commit(&key)).await?;
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

/// `PUT /images/:uuid/file` (AddImageFile).
pub(super) async fn put_file(app: &App, req: Request<Incoming>, uuid: Uuid) -> ApiResult<Resp> {
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
        let declared = required_length(req.headers())?;
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
    settle_blob(app, uuid, key, result, |rec| rec.file.as_ref()).await
}

/// `PUT /images/:uuid/icon` (AddImageIcon).
pub(super) async fn put_icon(app: &App, req: Request<Incoming>, uuid: Uuid) -> ApiResult<Resp> {
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
        let declared = required_length(req.headers())?;
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
    settle_blob(app, uuid, key, result, |rec| rec.icon.as_ref()).await
}

/// Ends a blob upload after the catalog update: on success the blob it
/// replaced (found by `slot`) is discarded unless it is the same one; on
/// failure the new blob is, so no upload leaves an orphan file behind.
async fn settle_blob(
    app: &App,
    uuid: Uuid,
    key: String,
    result: ApiResult<(Arc<Entry>, Arc<Entry>)>,
    slot: impl Fn(&ImageRecord) -> Option<&StoredBlob>,
) -> ApiResult<Resp> {
    match result {
        Ok((e, old)) => {
            if let Some(replaced) = slot(&old.rec) {
                if replaced.key != key {
                    discard_blob(app, uuid, replaced.key.clone()).await;
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
