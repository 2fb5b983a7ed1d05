//! Blocking HTTP client for image sources (IMGAPI / DSAPI), built on `ureq`.
//!
//! JSON bodies are read with a hard size cap so a hostile or broken server
//! cannot make us buffer gigabytes; file downloads are handed back as a
//! streaming reader. Server errors become `ClientError`s that quote the
//! server's own `{code, message}` when it sent one, stripped of control
//! characters (the message ends up on a terminal).
//!
//! Redirects are never followed. A source's answers must come from the URL
//! asked: the DSAPI same-origin rule on `files[0].url`
//! ([`super::sources::check_same_origin`]) would mean nothing if the file URL
//! could answer 302 to another host (an internal service, a metadata
//! endpoint). SmartOS's imgadm does the same: its restify clients are made
//! without `followRedirects`, so a 3xx is never chased. A 3xx answer here is
//! a [`Code::ClientError`] (a [`Code::DownloadError`] for files) that names
//! where the server pointed, so the operator can configure that URL instead.

use super::error::{Code, ImgError, Result};
use serde_json::Value;
use std::io::Read;
use std::time::Duration;

/// Largest single manifest we accept (IMGAPI's own limits are far below).
pub const MAX_MANIFEST_BYTES: u64 = 1 << 20;
/// Largest image list we accept from one source, all pages together.
pub const MAX_LIST_BYTES: u64 = 64 << 20;
/// How long [`Client::new`] waits for a connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);
/// How long [`Client::new`] waits for each read or write on a connection.
pub const IO_TIMEOUT: Duration = Duration::from_secs(120);

/// A configured HTTP agent.
#[derive(Clone)]
pub struct Client {
    agent: ureq::Agent,
    /// `Authorization` header value sent with writes, if any.
    auth: Option<String>,
}

impl Default for Client {
    fn default() -> Self {
        Self::new()
    }
}

/// A file download in progress.
pub struct Download {
    /// The size the server announced, in bytes, if it did (only a hint: the
    /// manifest's size is what the download is checked against).
    pub content_length: Option<u64>,
    /// The response body, read as it arrives.
    pub body: Box<dyn Read + Send + Sync + 'static>,
}

/// Refuses a redirect (any 3xx answer: the agent follows none); passes any
/// other answer through.
fn refuse_redirect(url: &str, resp: ureq::Response) -> Result<ureq::Response> {
    let status = resp.status();
    if !(300..400).contains(&status) {
        return Ok(resp);
    }
    let target = match resp.header("Location") {
        Some(loc) => format!(" to \"{}\"", super::table::printable(loc)),
        None => String::new(),
    };
    Err(ImgError::new(
        Code::ClientError,
        format!(
            "{url}: HTTP {status} redirect{target} refused: image sources are not followed \
             through redirects (configure the source by the URL that answers)"
        ),
    ))
}

/// [`refuse_redirect`] for a file download: a [`Code::DownloadError`].
fn refuse_file_redirect(url: &str, resp: ureq::Response) -> Result<ureq::Response> {
    refuse_redirect(url, resp).map_err(|mut e| {
        e.code = Code::DownloadError;
        e
    })
}

fn describe(url: &str, err: ureq::Error) -> ImgError {
    match err {
        ureq::Error::Status(status, resp) => {
            let mut body = String::new();
            let _ = resp.into_reader().take(64 << 10).read_to_string(&mut body);
            let detail = serde_json::from_str::<Value>(&body)
                .ok()
                .and_then(|v| {
                    let code = v.get("code").and_then(Value::as_str).unwrap_or("");
                    let msg = v.get("message").and_then(Value::as_str)?;
                    Some(if code.is_empty() {
                        msg.to_string()
                    } else {
                        format!("{code}: {msg}")
                    })
                })
                .unwrap_or_else(|| body.trim().chars().take(200).collect());
            let detail = super::table::printable(&detail);
            ImgError::new(
                Code::ClientError,
                format!(
                    "{url}: HTTP {status}{}{detail}",
                    if detail.is_empty() { "" } else { ": " }
                ),
            )
        }
        ureq::Error::Transport(t) => {
            // ureq names the URL itself when it knows it: say it once.
            let text = t.to_string();
            let message = if text.starts_with(url) {
                text
            } else {
                format!("{url}: {text}")
            };
            ImgError::new(Code::ClientError, message)
        }
    }
}

impl Client {
    /// A client with connect ([`CONNECT_TIMEOUT`]) and read/write
    /// ([`IO_TIMEOUT`]) timeouts, so a stalled server ends a request with an
    /// error instead of hanging, and that follows no redirect (see the
    /// module docs).
    pub fn new() -> Self {
        Self::with_timeouts(CONNECT_TIMEOUT, IO_TIMEOUT)
    }

    /// [`Client::new`] with other timeouts: `connect` for a connection,
    /// `io` for each read or write on it. Tests against loopback servers
    /// use short ones, so a server that stops answering fails the test in
    /// seconds rather than minutes.
    pub fn with_timeouts(connect: Duration, io: Duration) -> Self {
        let agent = ureq::AgentBuilder::new()
            // 0: a 3xx comes back as an answer, refused by `refuse_redirect`.
            .redirects(0)
            .timeout_connect(connect)
            // A stalled server must not hang an import forever.
            .timeout_read(io)
            .timeout_write(io)
            .user_agent(concat!("imgadm/", env!("CARGO_PKG_VERSION"), " (rvmadm)"))
            .build();
        Client { agent, auth: None }
    }

    /// The same client, sending `Authorization: <value>` with every write.
    pub fn with_auth(mut self, value: Option<String>) -> Self {
        self.auth = value;
        self
    }

    fn authorized(&self, req: ureq::Request) -> ureq::Request {
        match &self.auth {
            Some(v) => req.set("Authorization", v),
            None => req,
        }
    }

    fn read_capped(url: &str, resp: ureq::Response, cap: u64) -> Result<Value> {
        Self::read_counted(url, resp, cap).map(|(v, _)| v)
    }

    /// Reads at most `cap` bytes of JSON; returns it and its length.
    fn read_counted(url: &str, resp: ureq::Response, cap: u64) -> Result<(Value, u64)> {
        let mut buf = Vec::new();
        resp.into_reader()
            .take(cap.saturating_add(1))
            .read_to_end(&mut buf)
            .map_err(|e| ImgError::new(Code::ClientError, format!("{url}: {e}")))?;
        if buf.len() as u64 > cap {
            return Err(ImgError::new(
                Code::InvalidManifest,
                format!("{url}: response larger than {cap} bytes, refused"),
            ));
        }
        let value = serde_json::from_slice(&buf).map_err(|e| {
            ImgError::new(Code::InvalidManifest, format!("{url}: invalid JSON: {e}"))
        })?;
        Ok((value, buf.len() as u64))
    }

    /// GET a JSON document; `Ok(None)` on 404.
    pub fn get_json(&self, url: &str, cap: u64) -> Result<Option<Value>> {
        Ok(self.get_json_counted(url, cap)?.map(|(v, _)| v))
    }

    /// GET a JSON document of at most `cap` bytes and say how many bytes it
    /// had (for budgets spanning several requests); `Ok(None)` on 404.
    pub fn get_json_counted(&self, url: &str, cap: u64) -> Result<Option<(Value, u64)>> {
        match self
            .agent
            .get(url)
            .set("Accept", "application/json")
            .set("Accept-Version", "~2")
            .call()
        {
            Ok(resp) => Self::read_counted(url, refuse_redirect(url, resp)?, cap).map(Some),
            Err(ureq::Error::Status(404, _)) => Ok(None),
            Err(e) => Err(describe(url, e)),
        }
    }

    /// GET a file as a stream.
    pub fn get_file(&self, url: &str) -> Result<Download> {
        let resp = self.agent.get(url).call().map_err(|e| {
            let mut err = describe(url, e);
            err.code = Code::DownloadError;
            err
        })?;
        let resp = refuse_file_redirect(url, resp)?;
        let content_length = resp
            .header("Content-Length")
            .and_then(|v| v.trim().parse::<u64>().ok());
        Ok(Download {
            content_length,
            body: resp.into_reader(),
        })
    }

    /// GET a file from byte `offset` on, only if the server's copy is still
    /// `etag` (`If-Range`). `Ok(Some(_))` when the server answered 206 from
    /// exactly `offset`; `Ok(None)` when it would send the whole file instead
    /// (no range support, or a different file).
    pub fn get_file_from(&self, url: &str, offset: u64, etag: &str) -> Result<Option<Download>> {
        let resp = self
            .agent
            .get(url)
            .set("Range", &format!("bytes={offset}-"))
            .set("If-Range", etag)
            .call()
            .map_err(|e| {
                let mut err = describe(url, e);
                err.code = Code::DownloadError;
                err
            })?;
        let resp = refuse_file_redirect(url, resp)?;
        let starts_here = resp
            .header("Content-Range")
            .and_then(|v| v.trim().strip_prefix("bytes "))
            .and_then(|v| v.split('-').next())
            .and_then(|v| v.parse::<u64>().ok())
            == Some(offset);
        if resp.status() != 206 || !starts_here {
            return Ok(None);
        }
        let content_length = resp
            .header("Content-Length")
            .and_then(|v| v.trim().parse::<u64>().ok());
        Ok(Some(Download {
            content_length,
            body: resp.into_reader(),
        }))
    }

    /// POST a JSON body (or none) and read the JSON answer.
    pub fn post_json(&self, url: &str, body: Option<&Value>) -> Result<Value> {
        let req = self
            .authorized(self.agent.post(url))
            .set("Accept", "application/json");
        let res = match body {
            Some(b) => req
                .set("Content-Type", "application/json")
                .send_bytes(b.to_string().as_bytes()),
            None => req.set("Content-Length", "0").send_bytes(&[]),
        };
        let resp = refuse_redirect(url, res.map_err(|e| describe(url, e))?)?;
        Self::read_capped(url, resp, MAX_MANIFEST_BYTES)
    }

    /// PUT a raw body of known length (not chunked: IMGAPI wants Content-Length).
    pub fn put_stream(&self, url: &str, len: u64, body: impl Read) -> Result<Value> {
        let resp = self
            .authorized(self.agent.put(url))
            .set("Accept", "application/json")
            .set("Content-Type", "application/octet-stream")
            .set("Content-Length", &len.to_string())
            .send(body)
            .map_err(|e| describe(url, e))?;
        let resp = refuse_redirect(url, resp)?;
        Self::read_capped(url, resp, MAX_MANIFEST_BYTES)
    }

    /// DELETE; a 404 counts as done.
    pub fn delete(&self, url: &str) -> Result<()> {
        match self
            .authorized(self.agent.delete(url))
            .set("Content-Length", "0")
            .call()
        {
            Ok(resp) => refuse_redirect(url, resp).map(drop),
            Err(ureq::Error::Status(404, _)) => Ok(()),
            Err(e) => Err(describe(url, e)),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    /// A loopback server answering every request with `answer(path)` (a
    /// whole HTTP response); returns its base URL and a request counter.
    fn serve(answer: impl Fn(&str) -> String + Send + 'static) -> (String, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let count = Arc::new(AtomicUsize::new(0));
        let seen = count.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { return };
                seen.fetch_add(1, Ordering::SeqCst);
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut line = String::new();
                let _ = reader.read_line(&mut line);
                let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
                // Drain the headers (no test request has a body that matters).
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                        break;
                    }
                }
                let _ = conn.write_all(answer(&path).as_bytes());
            }
        });
        (url, count)
    }

    /// The client of these tests: a loopback server that stops answering
    /// fails the test in seconds, not after the product's minutes.
    pub(crate) fn test_client() -> Client {
        Client::with_timeouts(Duration::from_secs(5), Duration::from_secs(15))
    }

    #[test]
    fn a_server_that_accepts_and_never_answers_ends_in_the_read_timeout() {
        // Accepts and holds each connection without a byte of answer (as a
        // non-HTTP service does when a freed test port is taken by it).
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/x", listener.local_addr().unwrap());
        let held = std::thread::spawn(move || listener.accept().map(|(c, _)| c));
        let client = Client::with_timeouts(Duration::from_secs(5), Duration::from_millis(200));
        let err = client.get_json(&url, 100).unwrap_err();
        assert_eq!(err.code, Code::ClientError);
        assert!(
            err.message.to_lowercase().contains("timed out"),
            "{}",
            err.message
        );
        drop(held.join().unwrap());
    }

    fn ok(body: &str) -> String {
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
    }

    #[test]
    fn redirects_to_another_origin_are_refused_and_never_followed() {
        // B is another origin (another port) that would serve anything.
        let (b, b_hits) = serve(|_| ok("{\"from\":\"b\"}"));
        let target = b.clone();
        let (a, a_hits) = serve(move |path| {
            format!(
                "HTTP/1.1 302 Found\r\nLocation: {target}{path}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            )
        });
        let client = test_client();
        let file = format!("{a}/images/u/file");
        let err = client.get_file(&file).err().expect("redirect followed");
        assert_eq!(err.code, Code::DownloadError);
        assert!(
            err.message.contains(&format!(
                "HTTP 302 redirect to \"{b}/images/u/file\" refused"
            )),
            "{}",
            err.message
        );
        let err = client
            .get_file_from(&file, 10, "etag")
            .err()
            .expect("followed");
        assert_eq!(err.code, Code::DownloadError);
        let err = client.get_json(&format!("{a}/images/u"), 100).unwrap_err();
        assert_eq!(err.code, Code::ClientError);
        assert!(err.message.contains("redirect"), "{}", err.message);
        assert!(client.post_json(&format!("{a}/images"), None).is_err());
        assert!(client.put_stream(&format!("{a}/f"), 2, &b"hi"[..]).is_err());
        assert!(client.delete(&format!("{a}/images/u")).is_err());
        assert_eq!(a_hits.load(Ordering::SeqCst), 6);
        assert_eq!(b_hits.load(Ordering::SeqCst), 0, "B was contacted");
    }

    #[test]
    fn a_redirect_on_the_same_origin_is_refused_too() {
        let (a, hits) = serve(|path| {
            if path == "/final" {
                ok("{}")
            } else {
                "HTTP/1.1 301 Moved\r\nLocation: /final\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    .to_string()
            }
        });
        let err = test_client().get_json(&format!("{a}/x"), 100).unwrap_err();
        assert!(
            err.message
                .contains("HTTP 301 redirect to \"/final\" refused"),
            "{}",
            err.message
        );
        assert_eq!(hits.load(Ordering::SeqCst), 1);
        // A 304 or a 3xx without Location is no answer either.
        let (c, _) = serve(|_| {
            "HTTP/1.1 300 Choices\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_string()
        });
        let err = test_client()
            .get_file(&format!("{c}/f"))
            .err()
            .expect("3xx");
        assert!(
            err.message.contains("HTTP 300 redirect refused"),
            "{}",
            err.message
        );
    }
}
