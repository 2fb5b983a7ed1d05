//! Test harness: starts the real `imgapid` binary on 127.0.0.1 with a random
//! port and a temporary data directory, and talks to it over loopback with a
//! real HTTP client (ureq) or, for misbehaving-client cases, a raw socket.
#![allow(dead_code)]

pub mod zfs;

use sha1::{Digest, Sha1};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const ADMIN: (&str, &str) = ("admin", "s3cret-pw");
pub const TOKEN: &str = "tok-0123456789";

pub struct Server {
    pub child: Child,
    pub addr: String,
    pub dir: tempfile::TempDir,
    pub config_extra: String,
}

impl Server {
    /// Starts a server; `extra` is TOML appended to the base config (top-level
    /// keys first, then tables).
    pub fn start(extra: &str) -> Server {
        let dir = tempfile::tempdir().expect("tempdir");
        Server::start_in(dir, extra)
    }

    pub fn start_in(dir: tempfile::TempDir, extra: &str) -> Server {
        let data = dir.path().join("data");
        let cfg = dir.path().join("imgapid.toml");
        let (top, tables) = match extra.find('[') {
            Some(i) => (&extra[..i], &extra[i..]),
            None => (extra, ""),
        };
        let auth_extra = if tables.contains("[auth]") {
            String::new()
        } else {
            format!(
                "[auth]\ntokens = [\"{TOKEN}\"]\nusers = [{{ user = \"{}\", password = \"{}\" }}]\n",
                ADMIN.0, ADMIN.1
            )
        };
        std::fs::write(
            &cfg,
            format!(
                "listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\n{top}\n{auth_extra}{tables}",
                data.display()
            ),
        )
        .expect("config");
        let mut child = Command::new(env!("CARGO_BIN_EXE_imgapid"))
            .arg("--config")
            .arg(&cfg)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn imgapid");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).expect("read");
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| {
                let mut err = String::new();
                if let Some(mut e) = child.stderr.take() {
                    let _ = e.read_to_string(&mut err);
                }
                panic!("imgapid did not start: {line:?} {err}")
            })
            .to_string();
        assert!(addr.starts_with("127.0.0.1:"), "loopback only: {addr}");
        // Drain stderr so the server never blocks on a full pipe.
        if let Some(mut e) = child.stderr.take() {
            std::thread::spawn(move || {
                let mut sink = Vec::new();
                let _ = e.read_to_end(&mut sink);
                if std::env::var_os("IMGAPID_TEST_LOG").is_some() {
                    eprintln!("{}", String::from_utf8_lossy(&sink));
                }
            });
        }
        Server {
            child,
            addr,
            dir,
            config_extra: extra.to_string(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Names of files in a data subdirectory (records, blobs, tmp).
    pub fn files_in(&self, sub: &str) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.data().join(sub))
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    /// Asserts the store holds exactly these many records and blobs and no
    /// temporary files.
    pub fn assert_stored(&self, records: usize, blobs: usize) {
        assert_eq!(
            self.files_in("records").len(),
            records,
            "records: {:?}",
            self.files_in("records")
        );
        assert_eq!(
            self.files_in("blobs").len(),
            blobs,
            "blobs: {:?}",
            self.files_in("blobs")
        );
        assert_eq!(
            self.files_in("tmp"),
            Vec::<String>::new(),
            "tmp must be empty"
        );
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(mut self) -> (std::process::ExitStatus, tempfile::TempDir) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let start = Instant::now();
        loop {
            if let Ok(Some(st)) = self.child.try_wait() {
                let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().expect("tmp"));
                return (st, dir);
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "imgapid did not stop"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP answer.
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn code(&self) -> String {
        self.json()["code"].as_str().unwrap_or("").to_string()
    }
}

pub enum Auth {
    None,
    Basic(&'static str, &'static str),
    Bearer(&'static str),
}

pub fn admin() -> Auth {
    Auth::Basic(ADMIN.0, ADMIN.1)
}

pub fn request(
    method: &str,
    url: &str,
    auth: Auth,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Reply {
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(30))
        .redirects(0)
        .build();
    let mut req = agent.request(method, url);
    match auth {
        Auth::None => {}
        Auth::Basic(u, p) => {
            use base64::Engine;
            let v = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
            req = req.set("Authorization", &format!("Basic {v}"));
        }
        Auth::Bearer(t) => req = req.set("Authorization", &format!("Bearer {t}")),
    }
    for (k, v) in headers {
        req = req.set(k, v);
    }
    let res = match body {
        Some(b) => req.send_bytes(b),
        None => req.call(),
    };
    let resp = match res {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{method} {url}: {e}"),
    };
    let status = resp.status();
    let headers = resp
        .headers_names()
        .into_iter()
        .filter_map(|n| resp.header(&n).map(|v| (n.clone(), v.to_string())))
        .collect();
    let mut body = Vec::new();
    resp.into_reader().read_to_end(&mut body).expect("body");
    Reply {
        status,
        headers,
        body,
    }
}

pub fn get(url: &str) -> Reply {
    request("GET", url, Auth::None, &[], None)
}

pub fn sha1_hex(b: &[u8]) -> String {
    hex::encode(Sha1::digest(b))
}

pub fn md5_b64(b: &[u8]) -> String {
    use base64::Engine;
    use md5::Digest as _;
    base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(b))
}

/// A deterministic pseudo-random file body.
pub fn payload(len: usize, seed: u8) -> Vec<u8> {
    let mut x: u32 = 0x9e37_79b9 ^ u32::from(seed);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8
        })
        .collect()
}

pub fn manifest(uuid: &str, name: &str, version: &str) -> serde_json::Value {
    serde_json::json!({
        "v": 2, "uuid": uuid, "name": name, "version": version,
        "type": "zone-dataset", "os": "bsd", "description": format!("{name} image"),
        "public": true, "disabled": false
    })
}

/// Imports, uploads and activates an image; returns its final manifest.
pub fn publish(s: &Server, m: &serde_json::Value, file: &[u8]) -> serde_json::Value {
    let uuid = m["uuid"].as_str().expect("uuid");
    let r = request(
        "POST",
        &s.url(&format!("/images/{uuid}?action=import")),
        admin(),
        &[("Content-Type", "application/json")],
        Some(m.to_string().as_bytes()),
    );
    assert_eq!(
        r.status,
        200,
        "import: {}",
        String::from_utf8_lossy(&r.body)
    );
    let r = request(
        "PUT",
        &s.url(&format!(
            "/images/{uuid}/file?compression=gzip&sha1={}",
            sha1_hex(file)
        )),
        admin(),
        &[("Content-Type", "application/octet-stream")],
        Some(file),
    );
    assert_eq!(
        r.status,
        200,
        "add file: {}",
        String::from_utf8_lossy(&r.body)
    );
    let r = request(
        "POST",
        &s.url(&format!("/images/{uuid}?action=activate")),
        admin(),
        &[],
        Some(b"{}"),
    );
    assert_eq!(
        r.status,
        200,
        "activate: {}",
        String::from_utf8_lossy(&r.body)
    );
    r.json()
}

pub fn new_uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Raw request over a socket (for cases a well-behaved client never sends).
pub fn raw(addr: &str, request: &[u8]) -> String {
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s.write_all(request).expect("write");
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// Polls until `f` holds (server-side cleanup after a disconnect is async).
pub fn eventually(what: &str, f: impl Fn() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

pub fn repo_root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}
