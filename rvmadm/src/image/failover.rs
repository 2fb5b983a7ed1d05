//! Failover between image sources during `imgadm import`.
//!
//! With several sources configured (say two imgapid replicas behind one
//! store), one that refuses connections or dies in the middle of a file must
//! not fail the import while another could serve it:
//!
//! - [`find`] asks the sources in order and passes over those that cannot
//!   be asked (refused connection, timeout, server error), failing only when
//!   no source has the image and at least one could not be asked;
//! - [`open`] wraps a file download in a [`ResumingBody`]: when the body
//!   breaks off (read error, or end of stream before the manifest's size) it
//!   asks the next source for the same image and, when that source serves
//!   the same file (same size and SHA-1), continues with a `Range` request
//!   from the byte reached (`If-Range: <sha1>`, so a server holding other
//!   bytes answers with the whole file and is passed over);
//! - when no source can continue, the import starts over from the next
//!   source with the same file ([`next_with_same_file`]), from byte 0.
//!
//! Whatever the path, the caller still checks the whole stream's size and
//! SHA-1 against the manifest, so a resumed file is verified exactly like
//! a file from one source.

use super::error::Result;
use super::http::{Client, Download};
use super::manifest::ImageFile;
use super::sources::{self, Remote};
use crate::config::Source;
use serde_json::Value;
use std::io::{self, Read};
use std::sync::{Arc, Mutex};
use uuid::Uuid;

/// Looks `uuid` up in `list`, in order, passing over sources that cannot be
/// asked. `Ok(None)` when every source answered and none has it; the first
/// source's error when none has it and some could not be asked.
pub fn find(client: &Client, list: &[Source], uuid: &Uuid) -> Result<Option<Remote>> {
    if list.is_empty() {
        return Err(sources::no_sources());
    }
    let mut first_err = None;
    for src in list {
        match sources::fetch(client, src, uuid) {
            Ok(Some(r)) => return Ok(Some(r)),
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(source = %src.url, error = %e, "source unavailable; trying the next");
                first_err.get_or_insert(e);
            }
        }
    }
    match first_err {
        Some(e) => Err(e),
        None => Ok(None),
    }
}

/// True when a manifest's `files[0]` is the file described by `file`.
fn same_file(manifest: &Value, file: &ImageFile) -> bool {
    let sha1 = manifest.pointer("/files/0/sha1").and_then(Value::as_str);
    let size = manifest.pointer("/files/0/size").and_then(Value::as_u64);
    sha1.is_some_and(|s| s.eq_ignore_ascii_case(&file.sha1)) && size == Some(file.size)
}

/// The first source in `list`, other than those in `tried` (URLs), that
/// has image `uuid` with exactly this file.
pub fn next_with_same_file(
    client: &Client,
    list: &[Source],
    uuid: &Uuid,
    file: &ImageFile,
    tried: &[String],
) -> Option<Remote> {
    list.iter()
        .filter(|s| !tried.contains(&s.url))
        .find_map(|src| match sources::fetch(client, src, uuid) {
            Ok(Some(r)) if same_file(&r.manifest, file) => Some(r),
            Ok(_) => None,
            Err(e) => {
                tracing::warn!(source = %src.url, error = %e, "source unavailable");
                None
            }
        })
}

/// One switch of source in the middle of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resumed {
    /// The source URL the rest of the file came from.
    pub source: String,
    /// The byte the download continued at.
    pub offset: u64,
}

/// The switches a download made, shared with the download thread.
pub type ResumeLog = Arc<Mutex<Vec<Resumed>>>;

/// A download body that continues from the next source when its source
/// fails mid-file.
pub struct ResumingBody {
    client: Client,
    uuid: Uuid,
    file: ImageFile,
    list: Vec<Source>,
    tried: Vec<String>,
    body: Box<dyn Read + Send + Sync>,
    pos: u64,
    log: ResumeLog,
}

/// Starts downloading `remote`'s file; the returned body resumes from the
/// other sources in `list` as described in the module docs. The log lists
/// each switch once the download is over.
pub fn open(
    client: &Client,
    remote: &Remote,
    uuid: Uuid,
    file: &ImageFile,
    list: &[Source],
) -> Result<(Download, ResumeLog)> {
    let dl = client.get_file(&remote.file_url)?;
    let log: ResumeLog = Arc::default();
    let body = ResumingBody {
        client: client.clone(),
        uuid,
        file: file.clone(),
        list: list.to_vec(),
        tried: vec![remote.source.url.clone()],
        body: dl.body,
        pos: 0,
        log: log.clone(),
    };
    Ok((
        Download {
            content_length: dl.content_length,
            body: Box::new(body),
        },
        log,
    ))
}

impl ResumingBody {
    /// Moves to the next source that continues the same file at `pos`.
    fn switch(&mut self) -> bool {
        while let Some(remote) = next_with_same_file(
            &self.client,
            &self.list,
            &self.uuid,
            &self.file,
            &self.tried,
        ) {
            self.tried.push(remote.source.url.clone());
            match self
                .client
                .get_file_from(&remote.file_url, self.pos, &self.file.sha1)
            {
                Ok(Some(dl)) if dl.content_length == Some(self.file.size - self.pos) => {
                    self.body = dl.body;
                    if let Ok(mut log) = self.log.lock() {
                        log.push(Resumed {
                            source: remote.source.url.clone(),
                            offset: self.pos,
                        });
                    }
                    return true;
                }
                Ok(_) => {
                    tracing::warn!(source = %remote.source.url, "source cannot continue the file by range")
                }
                Err(e) => tracing::warn!(source = %remote.source.url, error = %e, "source failed"),
            }
        }
        false
    }
}

impl Read for ResumingBody {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let err = match self.body.read(buf) {
                Ok(0) if self.pos < self.file.size && !buf.is_empty() => io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("connection closed after {} bytes", self.pos),
                ),
                Ok(n) => {
                    self.pos += n as u64;
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => e,
            };
            if !self.switch() {
                return Err(err);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha1::{Digest, Sha1};
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;

    const U: &str = "5c8a3c6e-4c5d-4b8e-9a41-2f0d6f1c0a11";

    /// A one-image IMGAPI source on loopback. `cut` ends each full-file
    /// response after that many bytes (a source dying mid-download);
    /// `ranges` says whether it honours `Range`. Counts file requests.
    fn source(data: Arc<Vec<u8>>, cut: Option<usize>, ranges: bool) -> (String, Arc<Mutex<u32>>) {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}", l.local_addr().expect("addr"));
        let hits = Arc::new(Mutex::new(0u32));
        let h = hits.clone();
        std::thread::spawn(move || {
            for conn in l.incoming() {
                let Ok(mut c) = conn else { return };
                let mut r = BufReader::new(c.try_clone().expect("clone"));
                let mut first = String::new();
                let _ = r.read_line(&mut first);
                let mut range: Option<u64> = None;
                loop {
                    let mut line = String::new();
                    if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("range: bytes=") {
                        range = v.trim().trim_end_matches('-').parse().ok();
                    }
                }
                let sha1 = hex::encode(Sha1::digest(data.as_slice()));
                if first.contains("/file") {
                    *h.lock().expect("hits") += 1;
                    let (status, from) = match range {
                        Some(f) if ranges => ("206 Partial Content", f as usize),
                        _ => ("200 OK", 0),
                    };
                    let body = &data[from..];
                    let mut head = format!(
                        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nETag: {sha1}\r\nConnection: close\r\n",
                        body.len()
                    );
                    if from > 0 {
                        head += &format!(
                            "Content-Range: bytes {from}-{}/{}\r\n",
                            data.len() - 1,
                            data.len()
                        );
                    }
                    head += "\r\n";
                    let _ = c.write_all(head.as_bytes());
                    let n = if from == 0 {
                        cut.unwrap_or(body.len())
                    } else {
                        body.len()
                    };
                    let _ = c.write_all(&body[..n]);
                } else {
                    let m = serde_json::json!({
                        "v": 2, "uuid": U, "name": "n", "version": "1", "type": "zone-dataset",
                        "os": "linux", "state": "active",
                        "files": [{"sha1": sha1, "size": data.len(), "compression": "none"}]
                    })
                    .to_string();
                    let _ = c.write_all(
                        format!(
                            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{m}",
                            m.len()
                        )
                        .as_bytes(),
                    );
                }
            }
        });
        (url, hits)
    }

    fn src(url: &str) -> Source {
        Source {
            url: url.to_string(),
            kind: "imgapi".into(),
        }
    }

    fn file_of(data: &[u8]) -> ImageFile {
        serde_json::from_value(serde_json::json!({
            "sha1": hex::encode(Sha1::digest(data)), "size": data.len(), "compression": "none"
        }))
        .expect("file")
    }

    #[test]
    fn a_source_dying_mid_file_is_continued_by_range_from_the_next() {
        let data = Arc::new((0..300_000u32).map(|i| (i % 251) as u8).collect::<Vec<_>>());
        let (dying, _) = source(data.clone(), Some(100_000), true);
        let (good, good_hits) = source(data.clone(), None, true);
        // A refusing source first: find passes over it. Port 0: no listener
        // can ever hold it, so the connection is refused every time. (A port
        // bound and let go, as this test once used, may be taken meanwhile by
        // any process on the host, an RPC server say, that accepts and never
        // answers HTTP: the client then waited out its read timeout.)
        let refused = "http://127.0.0.1:0".to_string();
        let list = vec![src(&refused), src(&dying), src(&good)];
        let client = crate::image::http::tests::test_client();
        let uuid = Uuid::try_parse(U).expect("uuid");
        let remote = find(&client, &list, &uuid).expect("find").expect("found");
        assert_eq!(remote.source.url, dying);
        let file = file_of(&data);
        let (dl, log) = open(&client, &remote, uuid, &file, &list).expect("open");
        assert_eq!(dl.content_length, Some(data.len() as u64));
        let mut got = Vec::new();
        let mut body = dl.body;
        body.read_to_end(&mut got).expect("whole file");
        assert_eq!(got, *data);
        assert_eq!(
            *log.lock().expect("log"),
            vec![Resumed {
                source: good.clone(),
                offset: 100_000
            }]
        );
        assert_eq!(*good_hits.lock().expect("hits"), 1, "one ranged request");
    }

    #[test]
    fn no_resume_without_range_support_and_none_without_a_same_file() {
        let data = Arc::new(vec![7u8; 50_000]);
        let (dying, _) = source(data.clone(), Some(10_000), true);
        let (no_ranges, hits) = source(data.clone(), None, false);
        let other = Arc::new(vec![8u8; 50_000]);
        let (different, different_hits) = source(other, None, true);
        let list = vec![src(&dying), src(&different), src(&no_ranges)];
        let client = crate::image::http::tests::test_client();
        let uuid = Uuid::try_parse(U).expect("uuid");
        let remote = find(&client, &list, &uuid).expect("find").expect("found");
        let file = file_of(&data);
        let (dl, log) = open(&client, &remote, uuid, &file, &list).expect("open");
        let mut body = dl.body;
        let mut got = Vec::new();
        let err = body.read_to_end(&mut got).expect_err("cannot continue");
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        assert_eq!(got.len(), 10_000);
        assert!(log.lock().expect("log").is_empty());
        // The server without ranges was asked once and passed over; the one
        // with another file was never asked for bytes.
        assert_eq!(*hits.lock().expect("hits"), 1);
        assert_eq!(*different_hits.lock().expect("hits"), 0);
        // Starting over: the range-less source has the same file.
        let next = next_with_same_file(&client, &list, &uuid, &file, std::slice::from_ref(&dying))
            .expect("a source for a fresh start");
        assert_eq!(next.source.url, no_ranges);
    }
}
