//! A tiny IMGAPI-ish HTTP server on 127.0.0.1 for the imgadm tests.
//!
//! Serves `/ping`, `/images`, `/images/:uuid`, `/images/:uuid/file`, accepts
//! the publish protocol (`POST ?action=import|activate`, `PUT …/file`,
//! `DELETE`), and can misbehave per image file: fail with a status, cut the
//! body short, lie about the size, or trickle slowly. One thread per
//! connection, `Connection: close`, std only.

#![allow(dead_code)]

use serde_json::{json, Value};
use sha1::{Digest, Sha1};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How the file of one image is served.
#[derive(Clone, Debug, PartialEq)]
pub enum FileMode {
    Normal,
    /// Answer with this status and a JSON error.
    Status(u16),
    /// Promise the full Content-Length, send only this many bytes, close.
    Short(usize),
    /// Send this Content-Length header instead of the real one (body is real).
    LieLength(u64),
    /// Send chunks of 4 KiB with this pause between them.
    Slow(Duration),
    /// Answer `302 Found` with this `Location`.
    Redirect(String),
}

#[derive(Clone, Debug)]
struct Image {
    manifest: Value,
    file: Option<Vec<u8>>,
    mode: FileMode,
}

#[derive(Default)]
struct State {
    images: BTreeMap<String, Image>,
    /// Raw manifest text overrides (for hostile manifests).
    raw: BTreeMap<String, Vec<u8>>,
    ping: Option<Value>,
}

pub struct ImgServer {
    pub url: String,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    /// Connections accepted so far (one request each: `Connection: close`).
    hits: Arc<AtomicUsize>,
}

impl ImgServer {
    pub fn start() -> ImgServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let state = Arc::new(Mutex::new(State::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let hits = Arc::new(AtomicUsize::new(0));
        let (st, sp, seen) = (state.clone(), stop.clone(), hits.clone());
        listener.set_nonblocking(true).expect("nonblocking");
        std::thread::spawn(move || {
            while !sp.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        seen.fetch_add(1, Ordering::SeqCst);
                        let st = st.clone();
                        std::thread::spawn(move || {
                            let _ = conn.set_nonblocking(false);
                            let _ = handle(conn, &st);
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        ImgServer {
            url,
            state,
            stop,
            hits,
        }
    }

    /// How many requests this server has been sent.
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    /// Serves an image (manifest + file bytes).
    pub fn add(&self, manifest: Value, file: Vec<u8>) {
        let uuid = manifest["uuid"].as_str().expect("uuid").to_string();
        self.state.lock().unwrap().images.insert(
            uuid,
            Image {
                manifest,
                file: Some(file),
                mode: FileMode::Normal,
            },
        );
    }

    /// Serves these exact bytes as the manifest of `uuid` (with a normal file).
    pub fn add_raw(&self, uuid: &str, manifest: Vec<u8>, file: Vec<u8>) {
        let mut st = self.state.lock().unwrap();
        st.raw.insert(uuid.to_string(), manifest);
        st.images.insert(
            uuid.to_string(),
            Image {
                manifest: json!({"uuid": uuid}),
                file: Some(file),
                mode: FileMode::Normal,
            },
        );
    }

    pub fn set_mode(&self, uuid: &str, mode: FileMode) {
        self.state
            .lock()
            .unwrap()
            .images
            .get_mut(uuid)
            .expect("image")
            .mode = mode;
    }

    pub fn set_ping(&self, v: Value) {
        self.state.lock().unwrap().ping = Some(v);
    }

    pub fn manifest(&self, uuid: &str) -> Option<Value> {
        self.state
            .lock()
            .unwrap()
            .images
            .get(uuid)
            .map(|i| i.manifest.clone())
    }
}

impl Drop for ImgServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn respond(conn: &mut TcpStream, status: u16, ctype: &str, body: &[u8]) -> std::io::Result<()> {
    write!(
        conn,
        "HTTP/1.1 {status} X\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    conn.write_all(body)?;
    conn.flush()
}

fn json_resp(conn: &mut TcpStream, status: u16, v: &Value) -> std::io::Result<()> {
    respond(conn, status, "application/json", v.to_string().as_bytes())
}

fn not_found(conn: &mut TcpStream) -> std::io::Result<()> {
    json_resp(
        conn,
        404,
        &json!({"code": "ResourceNotFound", "message": "not found"}),
    )
}

fn handle(mut conn: TcpStream, state: &Mutex<State>) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let target = parts.next().unwrap_or("").to_string();
    let mut len = 0usize;
    let mut range: Option<usize> = None;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h == "\r\n" || h == "\n" {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                len = v.trim().parse().unwrap_or(0);
            }
            if k.eq_ignore_ascii_case("range") {
                range = v
                    .trim()
                    .strip_prefix("bytes=")
                    .and_then(|r| r.strip_suffix('-'))
                    .and_then(|r| r.parse().ok());
            }
        }
    }
    let mut body = vec![0u8; len];
    reader.read_exact(&mut body)?;
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let q: BTreeMap<&str, &str> = query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .collect();
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (method.as_str(), segs.as_slice()) {
        ("GET", ["ping"]) => {
            let p = state.lock().unwrap().ping.clone();
            json_resp(
                &mut conn,
                200,
                &p.unwrap_or(json!({"ping": "pong", "imgapi": true, "version": "0.0.0"})),
            )
        }
        ("GET", ["images"]) => {
            let st = state.lock().unwrap();
            let list: Vec<Value> = st
                .images
                .values()
                .filter(|i| {
                    i.manifest
                        .get("state")
                        .and_then(Value::as_str)
                        .unwrap_or("active")
                        == "active"
                })
                .map(|i| i.manifest.clone())
                .collect();
            drop(st);
            json_resp(&mut conn, 200, &Value::Array(list))
        }
        ("GET", ["images", uuid]) => {
            let st = state.lock().unwrap();
            if let Some(raw) = st.raw.get(*uuid).cloned() {
                drop(st);
                return respond(&mut conn, 200, "application/json", &raw);
            }
            let m = st.images.get(*uuid).map(|i| i.manifest.clone());
            drop(st);
            match m {
                Some(m) => json_resp(&mut conn, 200, &m),
                None => not_found(&mut conn),
            }
        }
        ("GET", ["images", uuid, "file"]) => {
            let img = state.lock().unwrap().images.get(*uuid).cloned();
            let Some(Image {
                file: Some(file),
                mode,
                ..
            }) = img
            else {
                return not_found(&mut conn);
            };
            serve_file(&mut conn, &file, &mode, range)
        }
        ("POST", ["images", uuid]) => {
            let mut st = state.lock().unwrap();
            match q.get("action").copied() {
                Some("import") => {
                    let mut m: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    if m.get("uuid").and_then(Value::as_str) != Some(*uuid) {
                        drop(st);
                        return json_resp(
                            &mut conn,
                            422,
                            &json!({"code": "InvalidParameter", "message": "uuid mismatch"}),
                        );
                    }
                    if st.images.contains_key(*uuid) {
                        drop(st);
                        return json_resp(
                            &mut conn,
                            409,
                            &json!({"code": "ImageUuidAlreadyExists", "message": "exists"}),
                        );
                    }
                    m["state"] = json!("unactivated");
                    m["files"] = json!([]);
                    st.images.insert(
                        uuid.to_string(),
                        Image {
                            manifest: m.clone(),
                            file: None,
                            mode: FileMode::Normal,
                        },
                    );
                    drop(st);
                    json_resp(&mut conn, 200, &m)
                }
                Some("activate") => {
                    let Some(img) = st.images.get_mut(*uuid) else {
                        drop(st);
                        return not_found(&mut conn);
                    };
                    if img.file.is_none() {
                        drop(st);
                        return json_resp(
                            &mut conn,
                            422,
                            &json!({"code": "NoActivationNoFile", "message": "no file"}),
                        );
                    }
                    img.manifest["state"] = json!("active");
                    let m = img.manifest.clone();
                    drop(st);
                    json_resp(&mut conn, 200, &m)
                }
                _ => {
                    drop(st);
                    json_resp(
                        &mut conn,
                        422,
                        &json!({"code": "InvalidParameter", "message": "action"}),
                    )
                }
            }
        }
        ("PUT", ["images", uuid, "file"]) => {
            let mut st = state.lock().unwrap();
            let Some(img) = st.images.get_mut(*uuid) else {
                drop(st);
                return not_found(&mut conn);
            };
            let sha1 = hex::encode(Sha1::digest(&body));
            if q.get("sha1").is_some_and(|s| *s != sha1) {
                drop(st);
                return json_resp(
                    &mut conn,
                    400,
                    &json!({"code": "Upload", "message": "sha1 mismatch"}),
                );
            }
            img.manifest["files"] = json!([{"sha1": sha1, "size": body.len(), "compression": q.get("compression").copied().unwrap_or("none")}]);
            img.file = Some(body);
            let m = img.manifest.clone();
            drop(st);
            json_resp(&mut conn, 200, &m)
        }
        ("DELETE", ["images", uuid]) => {
            state.lock().unwrap().images.remove(*uuid);
            respond(&mut conn, 204, "application/json", b"")
        }
        _ => not_found(&mut conn),
    }
}

/// Serves a file as `mode` says; a normal one honours `Range: bytes=N-`.
fn serve_file(
    conn: &mut TcpStream,
    file: &[u8],
    mode: &FileMode,
    range: Option<usize>,
) -> std::io::Result<()> {
    let head = |conn: &mut TcpStream, len: u64| {
        write!(
            conn,
            "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n"
        )
    };
    match mode {
        FileMode::Normal => match range {
            Some(from) if from < file.len() => {
                write!(
                    conn,
                    "HTTP/1.1 206 Partial Content\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\nContent-Range: bytes {from}-{}/{}\r\nConnection: close\r\n\r\n",
                    file.len() - from,
                    file.len() - 1,
                    file.len()
                )?;
                conn.write_all(&file[from..])
            }
            _ => {
                head(conn, file.len() as u64)?;
                conn.write_all(file)
            }
        },
        FileMode::Status(s) => json_resp(
            conn,
            *s,
            &json!({"code": "InternalError", "message": "boom"}),
        ),
        FileMode::Short(n) => {
            head(conn, file.len() as u64)?;
            conn.write_all(&file[..(*n).min(file.len())])?;
            conn.flush()?;
            conn.shutdown(std::net::Shutdown::Both)
        }
        FileMode::LieLength(len) => {
            head(conn, *len)?;
            let n = (*len as usize).min(file.len());
            conn.write_all(&file[..n])?;
            conn.flush()?;
            conn.shutdown(std::net::Shutdown::Both)
        }
        FileMode::Redirect(to) => write!(
            conn,
            "HTTP/1.1 302 Found\r\nLocation: {to}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        ),
        FileMode::Slow(pause) => {
            head(conn, file.len() as u64)?;
            for chunk in file.chunks(4096) {
                conn.write_all(chunk)?;
                conn.flush()?;
                std::thread::sleep(*pause);
            }
            Ok(())
        }
    }
}
