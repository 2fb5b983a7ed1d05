//! Image sources: lookups across the configured list (the `sources` verb
//! that edits the list is `ops::images::sources`).
//!
//! Sources live in `vmadm.toml` (`[[sources]] url, type`) and are queried in
//! order: for one image the first source that knows it wins; a 404 means "try
//! the next one", any other failure stops the lookup. DSAPI sources (URLs
//! ending in `/datasets`) serve v1 manifests, upgraded here to v2 the way
//! imgmanifest does it. A DSAPI manifest names its file's URL itself; it is
//! only followed when it points at the source's own scheme, host and port,
//! so a source cannot send imgadm to fetch from another host (an internal
//! service, a metadata endpoint) on its behalf; the HTTP client follows no
//! redirect, so a 302 from that URL cannot do it either.

use super::error::{Code, ImgError, Result};
use super::http::{Client, MAX_LIST_BYTES, MAX_MANIFEST_BYTES};
use crate::config::Source;
use serde_json::Value;
use uuid::Uuid;

/// An image found in a source.
#[derive(Debug, Clone)]
pub struct Remote {
    /// The manifest as the source sent it (DSAPI ones converted to IMGAPI
    /// form), not yet validated.
    pub manifest: Value,
    /// The source that answered.
    pub source: Source,
    /// Where its file is downloaded from.
    pub file_url: String,
}

/// The base URL requests are built on (no trailing slash, no `/datasets`).
pub fn base_url(src: &Source) -> String {
    let url = src.url.trim_end_matches('/');
    if src.kind == "dsapi" {
        url.strip_suffix("/datasets").unwrap_or(url).to_string()
    } else {
        url.to_string()
    }
}

/// Refuses anything but a plain http(s) URL as a source.
pub fn check_url(url: &str) -> Result<()> {
    let ok = (url.starts_with("http://") || url.starts_with("https://"))
        && url.len() <= 2048
        && !url.chars().any(|c| c.is_control() || c.is_whitespace());
    if ok {
        Ok(())
    } else {
        Err(ImgError::new(
            Code::InvalidArgument,
            format!("invalid source URL \"{url}\": must be an http(s) URL"),
        ))
    }
}

/// Refuses a file URL that does not point at the source's own origin
/// (scheme, host and port, default ports filled in) or that carries
/// credentials.
pub fn check_same_origin(source_url: &str, file_url: &str) -> Result<()> {
    let refuse = |why: &str| {
        ImgError::new(
            Code::InvalidManifest,
            format!(
                "file URL \"{}\" of source {source_url} refused: {why}",
                super::table::printable(file_url)
            ),
        )
    };
    let file = url::Url::parse(file_url).map_err(|e| refuse(&e.to_string()))?;
    let source = url::Url::parse(source_url).map_err(|e| refuse(&e.to_string()))?;
    if !file.username().is_empty() || file.password().is_some() {
        return Err(refuse("it carries credentials"));
    }
    let origin = |u: &url::Url| {
        (
            u.scheme().to_string(),
            u.host_str().map(str::to_ascii_lowercase),
            u.port_or_known_default(),
        )
    };
    if origin(&file) != origin(&source) {
        return Err(refuse("it points at another host than the source"));
    }
    Ok(())
}

/// Checks that a source answers `/ping` the way its type promises.
pub fn ping(client: &Client, src: &Source) -> Result<()> {
    let url = format!("{}/ping", base_url(src));
    let body = client
        .get_json(&url, MAX_MANIFEST_BYTES)
        .map_err(|e| ImgError::source_ping(&src.kind, &src.url, e.message))?
        .ok_or_else(|| ImgError::source_ping(&src.kind, &src.url, format!("{url}: HTTP 404")))?;
    if src.kind == "imgapi" && !body.get("imgapi").is_some_and(truthy) {
        return Err(ImgError::source_ping(
            &src.kind,
            &src.url,
            "its /ping lacks \"imgapi\" (an old datasets server is added with -t dsapi)",
        ));
    }
    Ok(())
}

fn truthy(v: &Value) -> bool {
    match v {
        Value::Bool(b) => *b,
        Value::Null => false,
        Value::String(s) => !s.is_empty(),
        Value::Number(n) => n.as_f64() != Some(0.0),
        _ => true,
    }
}

/// Upgrades a DSAPI v1 manifest to v2 (imgmanifest's `upgradeTo2`).
pub fn upgrade_v1(v1: &Value) -> Result<Value> {
    let obj = v1
        .as_object()
        .ok_or_else(|| ImgError::new(Code::InvalidManifest, "manifest is not a JSON object"))?;
    if obj.get("v").is_some() {
        return Ok(v1.clone());
    }
    let creator = obj
        .get("creator_uuid")
        .or_else(|| obj.get("vendor_uuid"))
        .cloned()
        .ok_or_else(|| ImgError::new(Code::InvalidManifest, "v1 manifest has no creator_uuid"))?;
    let mut m = obj.clone();
    for k in [
        "creator_uuid",
        "vendor_uuid",
        "creator_name",
        "cloud_name",
        "platform_type",
        "created_at",
        "updated_at",
    ] {
        m.remove(k);
    }
    m.insert("v".into(), Value::from(2));
    m.insert("owner".into(), creator);
    if let Some(r) = obj
        .get("restricted_to_uuid")
        .or_else(|| obj.get("owner_uuid"))
        .cloned()
    {
        m.remove("restricted_to_uuid");
        m.remove("owner_uuid");
        m.insert("public".into(), Value::Bool(false));
        m.insert("acl".into(), Value::Array(vec![r]));
    } else {
        m.insert("public".into(), Value::Bool(true));
    }
    let disabled = obj
        .get("disabled")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    m.insert("disabled".into(), Value::Bool(disabled));
    m.insert(
        "state".into(),
        Value::from(if disabled { "disabled" } else { "active" }),
    );
    if !m.contains_key("published_at") {
        if let Some(c) = obj.get("created_at") {
            m.insert("published_at".into(), c.clone());
        }
    }
    if let Some(Value::String(p)) = m.get("published_at").cloned() {
        // "2011-05-10T09:25Z" → "2011-05-10T09:25:00Z"
        if p.len() == 17 && p.ends_with('Z') {
            m.insert(
                "published_at".into(),
                Value::from(format!("{}:00Z", &p[..16])),
            );
        }
    }
    if m.get("type").and_then(Value::as_str) == Some("vmimage") {
        m.insert("type".into(), Value::from("zvol"));
    }
    if let Some(Value::Array(files)) = m.get_mut("files") {
        for f in files.iter_mut() {
            if let Value::Object(f) = f {
                let name = f
                    .get("path")
                    .or_else(|| f.get("url"))
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                let compression = if name.ends_with(".gz") {
                    "gzip"
                } else if name.ends_with(".bz2") {
                    "bzip2"
                } else {
                    "none"
                };
                f.entry("compression")
                    .or_insert_with(|| Value::from(compression));
                f.remove("path");
                f.remove("url");
            }
        }
    }
    Ok(Value::Object(m))
}

/// Looks `uuid` up in one source; `Ok(None)` when the source does not have it.
pub fn fetch(client: &Client, src: &Source, uuid: &Uuid) -> Result<Option<Remote>> {
    let base = base_url(src);
    if src.kind == "dsapi" {
        let url = format!("{base}/datasets/{uuid}");
        let Some(v1) = client.get_json(&url, MAX_MANIFEST_BYTES)? else {
            return Ok(None);
        };
        let file_url = v1
            .pointer("/files/0/url")
            .and_then(Value::as_str)
            .map(str::to_string)
            .or_else(|| {
                v1.pointer("/files/0/path")
                    .and_then(Value::as_str)
                    .map(|p| format!("{base}/datasets/{uuid}/{p}"))
            })
            .ok_or_else(|| {
                ImgError::new(Code::InvalidManifest, format!("{url}: no files[0].url"))
            })?;
        check_url(&file_url)?;
        check_same_origin(&src.url, &file_url)?;
        return Ok(Some(Remote {
            manifest: upgrade_v1(&v1)?,
            source: src.clone(),
            file_url,
        }));
    }
    let url = format!("{base}/images/{uuid}");
    let Some(manifest) = client.get_json(&url, MAX_MANIFEST_BYTES)? else {
        return Ok(None);
    };
    Ok(Some(Remote {
        manifest,
        source: src.clone(),
        file_url: format!("{base}/images/{uuid}/file"),
    }))
}

/// Finds `uuid` in the configured sources, in order.
pub fn find(client: &Client, sources: &[Source], uuid: &Uuid) -> Result<Option<Remote>> {
    if sources.is_empty() {
        return Err(no_sources());
    }
    for src in sources {
        if let Some(r) = fetch(client, src, uuid)? {
            return Ok(Some(r));
        }
    }
    Ok(None)
}

/// The [`Code::NoSources`] error, in imgadm's words.
pub fn no_sources() -> ImgError {
    ImgError::new(Code::NoSources, "imgadm has no configured sources")
}

/// Every image a source lists (IMGAPI: active ones, paged by `marker`).
/// All pages together may hold at most `MAX_LIST_BYTES` of JSON: a source
/// that pages on and on is cut off with an error, not buffered.
pub fn list(client: &Client, src: &Source) -> Result<Vec<Value>> {
    list_within(client, src, MAX_LIST_BYTES)
}

fn list_within(client: &Client, src: &Source, total: u64) -> Result<Vec<Value>> {
    let base = base_url(src);
    if src.kind == "dsapi" {
        let url = format!("{base}/datasets");
        let body = client
            .get_json(&url, MAX_LIST_BYTES)?
            .unwrap_or(Value::Array(vec![]));
        let items = body.as_array().cloned().unwrap_or_default();
        return Ok(items.iter().filter_map(|m| upgrade_v1(m).ok()).collect());
    }
    let mut all: Vec<Value> = Vec::new();
    let mut marker: Option<String> = None;
    let mut budget = total;
    // Bounded: at most 100 pages of 1000 images, and the byte budget.
    for _ in 0..100 {
        let url = match &marker {
            None => format!("{base}/images"),
            Some(m) => format!("{base}/images?marker={m}&limit=1000"),
        };
        let (body, used) = client
            .get_json_counted(&url, budget)
            .map_err(|mut e| {
                if e.code == Code::InvalidManifest && e.message.contains("larger than") {
                    e.message = format!(
                        "{url}: the image list of {} is larger than {total} bytes in all, refused",
                        src.url
                    );
                }
                e
            })?
            .unwrap_or((Value::Array(vec![]), 0));
        budget = budget.saturating_sub(used);
        let mut page = body.as_array().cloned().ok_or_else(|| {
            ImgError::new(Code::ClientError, format!("{url}: expected a JSON array"))
        })?;
        let full = page.len() >= 1000;
        if let (Some(m), Some(first)) = (&marker, page.first()) {
            if first.get("uuid").and_then(Value::as_str) == Some(m.as_str()) {
                page.remove(0);
            }
        }
        let next = page
            .last()
            .and_then(|v| v.get("uuid"))
            .and_then(Value::as_str)
            .filter(|u| Uuid::parse_str(u).is_ok())
            .map(str::to_string);
        all.extend(page);
        if !full || next.is_none() || next == marker {
            break;
        }
        marker = next;
    }
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn dsapi_base_url_drops_datasets() {
        let s = Source {
            url: "http://h:1/datasets/".into(),
            kind: "dsapi".into(),
        };
        assert_eq!(base_url(&s), "http://h:1");
        let s = Source {
            url: "http://h:1/".into(),
            kind: "imgapi".into(),
        };
        assert_eq!(base_url(&s), "http://h:1");
    }

    #[test]
    fn v1_upgrade() {
        let v1 = json!({
            "uuid": "febaa412-6417-11e0-bc56-535d219f2590", "name": "smartos", "version": "1.3.12",
            "type": "zone-dataset", "os": "smartos", "creator_uuid": "352971aa-31ba-496c-9ade-a379feaecd52",
            "restricted_to_uuid": "2b683a82-a066-11e3-97ab-2faa44701c5a",
            "published_at": "2011-05-10T09:25Z",
            "files": [{"path": "smartos-1.3.12.zfs.bz2", "sha1": "a", "size": 1, "url": "http://x/y.zfs.bz2"}]
        });
        let v2 = upgrade_v1(&v1).unwrap();
        assert_eq!(v2["v"], 2);
        assert_eq!(v2["owner"], "352971aa-31ba-496c-9ade-a379feaecd52");
        assert_eq!(v2["public"], false);
        assert_eq!(v2["state"], "active");
        assert_eq!(v2["published_at"], "2011-05-10T09:25:00Z");
        assert_eq!(v2["files"][0]["compression"], "bzip2");
        assert!(v2["files"][0].get("url").is_none());
        assert!(upgrade_v1(&json!({"uuid": "x"})).is_err());
    }

    /// A loopback server answering every request with a page of `per_page`
    /// images (fresh uuids, so paging never ends by itself).
    fn endless_pages(per_page: usize) -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            use std::io::{BufRead, Write};
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { return };
                let mut line = String::new();
                let mut r = std::io::BufReader::new(conn.try_clone().unwrap());
                while r.read_line(&mut line).is_ok_and(|n| n > 2) {
                    line.clear();
                }
                let page: Vec<Value> = (0..per_page)
                    .map(|_| json!({"uuid": Uuid::new_v4().to_string(), "name": "x"}))
                    .collect();
                let body = serde_json::to_vec(&page).unwrap();
                let _ = write!(
                    conn,
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = conn.write_all(&body);
            }
        });
        url
    }

    #[test]
    fn all_pages_of_a_list_share_one_byte_budget() {
        let src = Source {
            url: endless_pages(1000),
            kind: "imgapi".into(),
        };
        let client = crate::image::http::tests::test_client();
        // One page is ~60 KB: three fit in 200 KB, the fourth does not.
        let err = list_within(&client, &src, 200_000).unwrap_err();
        assert_eq!(err.code, Code::InvalidManifest);
        assert!(
            err.message.contains("larger than 200000 bytes in all"),
            "{}",
            err.message
        );
        // A short page ends the listing within the budget.
        let src = Source {
            url: endless_pages(10),
            kind: "imgapi".into(),
        };
        assert_eq!(list_within(&client, &src, 200_000).unwrap().len(), 10);
    }

    #[test]
    fn file_urls_must_stay_on_the_source_host() {
        let src = "http://ds.example.com:8080/datasets";
        for ok in [
            "http://ds.example.com:8080/datasets/u/file.zfs.bz2",
            "http://DS.example.com:8080/other/path",
        ] {
            assert!(check_same_origin(src, ok).is_ok(), "{ok}");
        }
        assert!(check_same_origin("https://h/datasets", "https://h:443/f").is_ok());
        for bad in [
            "http://169.254.169.254/latest/meta-data",
            "http://ds.example.com:8081/f",
            "https://ds.example.com:8080/f",
            "http://ds.example.com.evil.net:8080/f",
            "http://ds.example.com:8080@evil.net/f",
            "http://user:pw@ds.example.com:8080/f",
            "http://[::1]:8080/f",
            "not a url",
        ] {
            let e = check_same_origin(src, bad).unwrap_err();
            assert_eq!(e.code, Code::InvalidManifest, "{bad}");
        }
    }

    #[test]
    fn source_urls_are_checked() {
        assert!(check_url("http://127.0.0.1:8080").is_ok());
        assert!(check_url("file:///etc").is_err());
        assert!(check_url("http://a b").is_err());
    }
}
