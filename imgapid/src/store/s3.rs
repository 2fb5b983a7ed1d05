//! The S3 backend: records, files and icons as objects in one bucket of any
//! S3-compatible store (Garage, Ceph RGW, MinIO, AWS), shared by any number
//! of imgapid replicas.
//!
//! Requests are signed with rusty-s3 (sans-IO: it only builds presigned URLs)
//! and sent with ureq's blocking agent, which suits the blocking [`Storage`]
//! trait. Layout in the bucket:
//!
//! - `records/<uuid>.json`: one image record, replaced whole on every change;
//! - `blobs/<prefix>-<random>`: files and icons. The object name is fixed when
//!   an upload starts (a multipart upload needs it before the SHA-1 is
//!   known), so the key a commit returns is the random one;
//! - `locks/<uuid>/<millis>-<random>`: claims of the per-image write lock;
//! - `quarantine/<uuid>.json[.<n>]`: records that could not be read, moved
//!   aside at start-up as the local-disk backend moves them (see below).
//!
//! Uploads stream: bytes collect in one part buffer ([`PART_SIZE`]) that is
//! sent as a multipart part whenever it fills; a blob smaller than one part
//! is a single PUT at commit. Until the upload completes the object does not
//! exist, so an interrupted upload leaves nothing any replica can list, only
//! an incomplete multipart upload that is aborted on drop (and that an
//! operator's lifecycle rule or `garage` cleanup removes after a crash).
//! Downloads stream with `Range` from the reader's position and reopen at
//! that position when a connection breaks mid-body.
//!
//! One writer per image, across replicas: the store offers no conditional
//! writes (Garage 2.x ignores `If-None-Match`/`If-Match` on PUT), so
//! [`S3Store::lock`] uses claims on a quorum store. A replica writes its claim
//! object, then lists the image's claims; it holds the lock only if it sees
//! no other live claim, otherwise it deletes its claim and retries after a
//! random pause. With quorum writes and quorum listings (Garage's
//! `consistency_mode = "consistent"`, the default) two claimants cannot both
//! see only themselves: the later of the two listings starts after both
//! claims are stored. Claims older than [`LOCK_LEASE`] belong to a crashed
//! replica and are removed by the next claimant.
//!
//! Listings are hints after a delete: Garage answers a listing from a
//! quorum of nodes, each of which filters out what it knows to be deleted
//! before the answers are merged (`handle_read_range` in its
//! `src/table/table.rs`), so a node that has not yet applied a delete (a
//! write needs only a quorum) can keep a deleted key in listings for a while,
//! where a read of the key (a quorum read, merged before any filtering)
//! already answers 404. Observed with two records deleted under load: listed
//! through two of three nodes, 404 through all three. So whatever a listing
//! names is read before it counts: `load` skips listed records that read as
//! absent, and the lock counts a listed rival claim only if a HEAD finds it.
//! A new object, in contrast, is in every quorum listing once its write
//! returned. Not handled: the refresh (`record_versions`) trusts the listing,
//! so a replica may keep serving an image another replica deleted until the
//! lagging node has the delete.
//!
//! A record that does not parse (or whose name is not its uuid) is never
//! skipped silently nor taken for garbage: [`Storage::load`] copies it to
//! `quarantine/` under the image's write lock, after reading it again to be
//! sure no replica replaced it meanwhile, then deletes it from `records/`.
//! Blobs named by any quarantined record (any `key` it mentions, and any
//! key of its image's uuid) are kept by every later sweep.

use super::{check_key, BlobReader, ImageRecord, Storage, Upload};
use rusty_s3::actions::{CreateMultipartUpload, ListObjectsV2};
use rusty_s3::{Bucket, Credentials, S3Action, UrlStyle};
use std::collections::{HashMap, HashSet};
use std::io::{self, Read, Seek, SeekFrom};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use uuid::Uuid;

/// Bytes per multipart part: S3's 5 MiB minimum with headroom; one such
/// buffer per running upload is all the memory an upload holds.
pub const PART_SIZE: usize = 8 * 1024 * 1024;
/// How long presigned request URLs stay valid (only for the request itself).
const SIGN_TTL: Duration = Duration::from_secs(15 * 60);
/// Claims older than this are a crashed replica's and are ignored.
pub const LOCK_LEASE: Duration = Duration::from_secs(30);
/// Attempts to take an image's write lock before giving up.
const LOCK_TRIES: u32 = 40;
/// Times a download reopens its stream after a broken connection.
const READ_RETRIES: u32 = 4;
/// Unreferenced blobs younger than this may belong to a publish running on
/// another replica, so start-up sweeps only older ones (the default of
/// [`S3Settings::blob_grace`]).
pub const BLOB_GRACE: Duration = Duration::from_secs(24 * 3600);
/// Largest record read; a record this long may have been cut short by the
/// read, so it is left where it is rather than quarantined.
const RECORD_READ_CAP: u64 = 16 * 1024 * 1024;
/// Where unreadable records are moved.
const QUARANTINE_PREFIX: &str = "quarantine/";

/// Where and how to reach the bucket.
#[derive(Debug, Clone)]
pub struct S3Settings {
    /// `http(s)://host:port` of the S3 API.
    pub endpoint: String,
    /// Bucket name (must exist).
    pub bucket: String,
    /// Region the store signs for (`garage` for Garage's default).
    pub region: String,
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: String,
    /// How often replicas re-read the record listing.
    pub refresh: Duration,
    /// How old an unreferenced blob must be before a start-up sweep
    /// removes it ([`BLOB_GRACE`]; tests use zero).
    pub blob_grace: Duration,
}

struct Inner {
    bucket: Bucket,
    creds: Credentials,
    agent: ureq::Agent,
    blob_grace: Duration,
}

/// One record object as start-up read it.
enum Loaded {
    /// A record that parsed under its own name.
    Good(Box<ImageRecord>),
    /// One that did not: its key, bytes and why.
    Bad(String, Vec<u8>, String),
}

/// Records and blobs in one S3 bucket; cheap to clone.
#[derive(Clone)]
pub struct S3Store {
    inner: Arc<Inner>,
    refresh: Duration,
}

fn s3_error(what: &str, key: &str, e: ureq::Error) -> io::Error {
    match e {
        ureq::Error::Status(404, _) => {
            io::Error::new(io::ErrorKind::NotFound, format!("{what} {key}: not found"))
        }
        ureq::Error::Status(code, resp) => {
            let mut body = String::new();
            let _ = resp.into_reader().take(512).read_to_string(&mut body);
            io::Error::other(format!(
                "{what} {key}: store answered {code}: {}",
                body.trim()
            ))
        }
        ureq::Error::Transport(t) => io::Error::new(
            io::ErrorKind::ConnectionAborted,
            format!("{what} {key}: {t}"),
        ),
    }
}

fn unix_millis() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

fn random_hex() -> String {
    Uuid::new_v4().simple().to_string()
}

/// Undoes the `encoding-type=url` percent-encoding rusty-s3 asks listings
/// for. Keys this backend writes are plain ASCII; a malformed escape is
/// kept as is (and then matches none of our keys).
fn url_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (
            b[i],
            b.get(i + 1).and_then(|c| hex(*c)),
            b.get(i + 2).and_then(|c| hex(*c)),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn record_key(uuid: Uuid) -> String {
    format!("records/{uuid}.json")
}

impl S3Store {
    /// Connects lazily: nothing is sent until the first call.
    pub fn new(s: &S3Settings) -> io::Result<S3Store> {
        let url = s
            .endpoint
            .parse()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("endpoint: {e}")))?;
        let bucket = Bucket::new(url, UrlStyle::Path, s.bucket.clone(), s.region.clone())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("bucket: {e}")))?;
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(5))
            .timeout_read(Duration::from_secs(60))
            .timeout_write(Duration::from_secs(60))
            .build();
        Ok(S3Store {
            inner: Arc::new(Inner {
                bucket,
                creds: Credentials::new(s.access_key_id.clone(), s.secret_access_key.clone()),
                agent,
                blob_grace: s.blob_grace,
            }),
            refresh: s.refresh,
        })
    }

    fn get_bytes(&self, key: &str) -> io::Result<Option<Vec<u8>>> {
        let i = &self.inner;
        let url = i.bucket.get_object(Some(&i.creds), key).sign(SIGN_TTL);
        match i.agent.request_url("GET", &url).call() {
            Ok(r) => {
                let mut buf = Vec::new();
                r.into_reader()
                    .take(RECORD_READ_CAP)
                    .read_to_end(&mut buf)?;
                Ok(Some(buf))
            }
            Err(ureq::Error::Status(404, _)) => Ok(None),
            Err(e) => Err(s3_error("GET", key, e)),
        }
    }

    fn put_bytes(&self, key: &str, body: &[u8]) -> io::Result<()> {
        let i = &self.inner;
        let url = i.bucket.put_object(Some(&i.creds), key).sign(SIGN_TTL);
        i.agent
            .request_url("PUT", &url)
            .send_bytes(body)
            .map(|_| ())
            .map_err(|e| s3_error("PUT", key, e))
    }

    fn delete(&self, key: &str) -> io::Result<()> {
        let i = &self.inner;
        let url = i.bucket.delete_object(Some(&i.creds), key).sign(SIGN_TTL);
        match i.agent.request_url("DELETE", &url).call() {
            Ok(_) | Err(ureq::Error::Status(404, _)) => Ok(()),
            Err(e) => Err(s3_error("DELETE", key, e)),
        }
    }

    /// Every object under `prefix`: (key, ETag, Last-Modified).
    fn list(&self, prefix: &str) -> io::Result<Vec<(String, String, String)>> {
        let i = &self.inner;
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut action: ListObjectsV2<'_> = i.bucket.list_objects_v2(Some(&i.creds));
            action.with_prefix(prefix);
            if let Some(t) = &token {
                action.with_continuation_token(t.clone());
            }
            let url = action.sign(SIGN_TTL);
            let resp = i
                .agent
                .request_url("GET", &url)
                .call()
                .map_err(|e| s3_error("LIST", prefix, e))?;
            let parsed = ListObjectsV2::parse_response_from_reader(resp.into_reader())
                .map_err(|e| io::Error::other(format!("LIST {prefix}: bad XML: {e}")))?;
            out.extend(
                parsed
                    .contents
                    .into_iter()
                    .map(|c| (url_decode(&c.key), c.etag, c.last_modified)),
            );
            match parsed.next_continuation_token {
                Some(t) if !t.is_empty() => token = Some(t),
                _ => return Ok(out),
            }
        }
    }

    /// Keys of every object under `prefix` (`records/`, `blobs/`, `locks/`)
    /// as the store lists them: for operators' checks and the replica
    /// tests. A listing may still name objects deleted a moment ago (see
    /// the module docs); [`S3Store::existing_keys`] leaves those out.
    pub fn list_keys(&self, prefix: &str) -> io::Result<Vec<String>> {
        Ok(self.list(prefix)?.into_iter().map(|(k, _, _)| k).collect())
    }

    /// [`S3Store::list_keys`] without the keys a read says are deleted (one
    /// HEAD per listed key): what is really stored under `prefix` now.
    pub fn existing_keys(&self, prefix: &str) -> io::Result<Vec<String>> {
        let mut out = Vec::new();
        for key in self.list_keys(prefix)? {
            if self.exists(&key)? {
                out.push(key);
            }
        }
        Ok(out)
    }

    /// True when a read of `key` finds an object (HEAD; 404 is false).
    /// Reads are quorum reads that see every completed delete, unlike
    /// listings.
    fn exists(&self, key: &str) -> io::Result<bool> {
        let i = &self.inner;
        let url = i.bucket.head_object(Some(&i.creds), key).sign(SIGN_TTL);
        match i.agent.request_url("HEAD", &url).call() {
            Ok(_) => Ok(true),
            Err(ureq::Error::Status(404, _)) => Ok(false),
            Err(e) => Err(s3_error("HEAD", key, e)),
        }
    }

    /// The record stored under `key`, or why it is not one.
    fn parse_record(key: &str, bytes: &[u8]) -> Result<ImageRecord, String> {
        match serde_json::from_slice::<ImageRecord>(bytes) {
            Ok(r) if record_key(r.manifest.uuid) == key => Ok(r),
            Ok(_) => Err("record name does not match its uuid".to_string()),
            Err(err) => Err(err.to_string()),
        }
    }

    /// Moves the unreadable record `key` (read as `bytes`) to
    /// `quarantine/`, holding its image's write lock when its name is a
    /// uuid (every name imgapid writes is), so that a replica replacing it
    /// meanwhile is never undone. `taken` holds the quarantine's keys and
    /// gains the new one.
    fn quarantine(
        &self,
        key: &str,
        bytes: &[u8],
        why: &str,
        taken: &mut HashSet<String>,
    ) -> io::Result<()> {
        let name = key.strip_prefix("records/").unwrap_or(key);
        let uuid = name
            .strip_suffix(".json")
            .and_then(|u| Uuid::try_parse(u).ok());
        let token = match uuid {
            Some(u) => self.lock(u)?,
            None => None,
        };
        let moved = self.quarantine_locked(key, name, bytes, why, taken);
        let unlocked = self.unlock(token);
        moved.and(unlocked)
    }

    fn quarantine_locked(
        &self,
        key: &str,
        name: &str,
        bytes: &[u8],
        why: &str,
        taken: &mut HashSet<String>,
    ) -> io::Result<()> {
        if bytes.len() as u64 >= RECORD_READ_CAP {
            tracing::error!(record = %key, error = why, "unreadable image record too large to quarantine; left in place");
            return Ok(());
        }
        // Read again under the lock: another replica may have written a good
        // record since, or quarantined this one already.
        if self.get_bytes(key)?.as_deref() != Some(bytes) {
            return Ok(());
        }
        let mut target = format!("{QUARANTINE_PREFIX}{name}");
        let mut n = 1;
        while taken.contains(&target) {
            target = format!("{QUARANTINE_PREFIX}{name}.{n}");
            n += 1;
        }
        self.put_bytes(&target, bytes)?;
        taken.insert(target.clone());
        self.delete(key)?;
        tracing::error!(
            record = %key,
            moved_to = %target,
            error = why,
            "unreadable image record quarantined; its blobs are kept"
        );
        Ok(())
    }

    /// Blob keys and key prefixes every quarantined record may name.
    fn quarantined_keys(&self) -> io::Result<(HashSet<String>, Vec<String>)> {
        let mut keys = HashSet::new();
        let mut prefixes = Vec::new();
        for (key, _, _) in self.list(QUARANTINE_PREFIX)? {
            let name = key.strip_prefix(QUARANTINE_PREFIX).unwrap_or(&key);
            let bytes = self.get_bytes(&key)?.unwrap_or_default();
            let (k, p) = super::keys_of_unreadable(name, &bytes);
            keys.extend(k);
            prefixes.extend(p);
        }
        Ok((keys, prefixes))
    }

    /// Removes blobs no record names, if they are older than the blob grace
    /// (younger ones may be a publish in flight on another replica). Blobs
    /// quarantined records may name stay.
    fn sweep_blobs(&self, records: &[ImageRecord]) -> io::Result<()> {
        let live: HashSet<&str> = records.iter().flat_map(|r| r.keys()).collect();
        let (kept_keys, kept_prefixes) = self.quarantined_keys()?;
        let cutoff = chrono::Utc::now().timestamp() - self.inner.blob_grace.as_secs() as i64;
        for (key, _, modified) in self.list("blobs/")? {
            let name = key.trim_start_matches("blobs/");
            let old = chrono::DateTime::parse_from_rfc3339(&modified)
                .map(|d| d.timestamp() <= cutoff)
                .unwrap_or(false);
            let kept = live.contains(name)
                || kept_keys.contains(name)
                || kept_prefixes.iter().any(|p| name.starts_with(p.as_str()));
            if old && !kept {
                tracing::info!(blob = %name, "removing unreferenced blob");
                self.delete(&key)?;
            }
        }
        Ok(())
    }
}

impl Storage for S3Store {
    fn load(&self) -> io::Result<Vec<ImageRecord>> {
        let keys: Vec<String> = self
            .list("records/")?
            .into_iter()
            .map(|(k, _, _)| k)
            .filter(|k| k.ends_with(".json"))
            .collect();
        // A few parallel GETs: start-up reads every record once.
        let chunks: Vec<&[String]> = keys.chunks(keys.len().div_ceil(8).max(1)).collect();
        let results: Vec<io::Result<Vec<Loaded>>> = std::thread::scope(|s| {
            let handles: Vec<_> = chunks
                .iter()
                .map(|chunk| {
                    s.spawn(move || {
                        let mut v = Vec::new();
                        for k in chunk.iter() {
                            if let Some(bytes) = self.get_bytes(k)? {
                                v.push(match Self::parse_record(k, &bytes) {
                                    Ok(r) => Loaded::Good(Box::new(r)),
                                    Err(why) => Loaded::Bad(k.clone(), bytes, why),
                                });
                            }
                        }
                        Ok(v)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(io::Error::other("record loader panicked")))
                })
                .collect()
        });
        let mut records = Vec::new();
        let mut bad = Vec::new();
        for r in results {
            for loaded in r? {
                match loaded {
                    Loaded::Good(rec) => records.push(*rec),
                    Loaded::Bad(key, bytes, why) => bad.push((key, bytes, why)),
                }
            }
        }
        if !bad.is_empty() {
            let mut taken: HashSet<String> =
                self.list_keys(QUARANTINE_PREFIX)?.into_iter().collect();
            for (key, bytes, why) in bad {
                self.quarantine(&key, &bytes, &why, &mut taken)?;
            }
        }
        if let Err(e) = self.sweep_blobs(&records) {
            tracing::warn!(error = %e, "blob sweep failed");
        }
        Ok(records)
    }

    fn put_record(&self, rec: &ImageRecord) -> io::Result<()> {
        let bytes = serde_json::to_vec_pretty(rec).map_err(io::Error::other)?;
        self.put_bytes(&record_key(rec.manifest.uuid), &bytes)
    }

    fn delete_record(&self, uuid: Uuid) -> io::Result<()> {
        self.delete(&record_key(uuid))
    }

    fn new_upload(&self, key_prefix: &str) -> io::Result<Box<dyn Upload>> {
        let name = format!("{key_prefix}-{}", random_hex());
        check_key(&name)?;
        Ok(Box::new(S3Upload {
            store: self.clone(),
            object: format!("blobs/{name}"),
            name,
            buf: Vec::new(),
            upload_id: None,
            etags: Vec::new(),
            done: false,
        }))
    }

    fn open_blob(&self, key: &str) -> io::Result<Box<dyn BlobReader>> {
        check_key(key)?;
        let object = format!("blobs/{key}");
        let i = &self.inner;
        let url = i.bucket.head_object(Some(&i.creds), &object).sign(SIGN_TTL);
        let head = i
            .agent
            .request_url("HEAD", &url)
            .call()
            .map_err(|e| s3_error("HEAD", &object, e))?;
        let size = head
            .header("content-length")
            .and_then(|v| v.parse::<u64>().ok())
            .ok_or_else(|| io::Error::other(format!("HEAD {object}: no Content-Length")))?;
        Ok(Box::new(S3Reader {
            store: self.clone(),
            object,
            size,
            pos: 0,
            body: None,
        }))
    }

    fn delete_blob(&self, key: &str) -> io::Result<()> {
        check_key(key)?;
        self.delete(&format!("blobs/{key}"))
    }

    fn refresh_interval(&self) -> Option<Duration> {
        Some(self.refresh)
    }

    fn record_versions(&self) -> io::Result<HashMap<Uuid, String>> {
        Ok(self
            .list("records/")?
            .into_iter()
            .filter_map(|(k, etag, _)| {
                let u = k.strip_prefix("records/")?.strip_suffix(".json")?;
                Some((Uuid::try_parse(u).ok()?, etag))
            })
            .collect())
    }

    fn get_record(&self, uuid: Uuid) -> io::Result<Option<ImageRecord>> {
        let key = record_key(uuid);
        Ok(self
            .get_bytes(&key)?
            .and_then(|b| match Self::parse_record(&key, &b) {
                Ok(r) => Some(r),
                Err(why) => {
                    // Quarantined by the next start; not served meanwhile.
                    tracing::warn!(%key, error = %why, "unreadable record ignored");
                    None
                }
            }))
    }

    fn lock(&self, uuid: Uuid) -> io::Result<Option<String>> {
        let prefix = format!("locks/{uuid}/");
        for attempt in 0..LOCK_TRIES {
            let claim = format!("{prefix}{:016}-{}", unix_millis(), random_hex());
            self.put_bytes(&claim, b"")?;
            let now = unix_millis();
            let mut rivals = 0;
            for (key, _, _) in self.list(&prefix)? {
                if key == claim {
                    continue;
                }
                let born = key
                    .strip_prefix(&prefix)
                    .and_then(|n| n.split('-').next())
                    .and_then(|t| t.parse::<u128>().ok())
                    .unwrap_or(0);
                if now.saturating_sub(born) > LOCK_LEASE.as_millis() {
                    tracing::warn!(%key, "removing an expired lock claim");
                    self.delete(&key)?;
                } else if self.exists(&key)? {
                    rivals += 1;
                }
                // Else a claim released a moment ago that a listing still
                // shows (see the module docs): nobody holds it. A claim
                // being written is always listed and read back, so two
                // claimants still see each other.
            }
            if rivals == 0 {
                return Ok(Some(claim));
            }
            self.delete(&claim)?;
            // Random pause, growing with the attempts, so two claimants that
            // saw each other do not collide again in lockstep.
            let cap = 20u128 << attempt.min(4);
            let pause = 5 + (Uuid::new_v4().as_u128() % cap) as u64;
            std::thread::sleep(Duration::from_millis(pause));
        }
        Err(io::Error::new(
            io::ErrorKind::WouldBlock,
            format!("image {uuid} is being changed through another replica; try again"),
        ))
    }

    fn unlock(&self, token: Option<String>) -> io::Result<()> {
        match token {
            Some(claim) => self.delete(&claim),
            None => Ok(()),
        }
    }
}

/// A blob on its way into the bucket.
struct S3Upload {
    store: S3Store,
    /// Key as records name it.
    name: String,
    /// `blobs/<name>`.
    object: String,
    buf: Vec<u8>,
    upload_id: Option<String>,
    etags: Vec<String>,
    done: bool,
}

impl S3Upload {
    fn send_part(&mut self, data: &[u8]) -> io::Result<()> {
        let i = &self.store.inner;
        let id = match &self.upload_id {
            Some(id) => id.clone(),
            None => {
                let url = CreateMultipartUpload::new(&i.bucket, Some(&i.creds), &self.object)
                    .sign(SIGN_TTL);
                let resp = i
                    .agent
                    .request_url("POST", &url)
                    .call()
                    .map_err(|e| s3_error("CreateMultipartUpload", &self.object, e))?;
                let parsed = CreateMultipartUpload::parse_response_from_reader(resp.into_reader())
                    .map_err(|e| io::Error::other(format!("CreateMultipartUpload: {e}")))?;
                let id = parsed.upload_id().to_string();
                self.upload_id = Some(id.clone());
                id
            }
        };
        let number =
            u16::try_from(self.etags.len() + 1).map_err(|_| io::Error::other("too many parts"))?;
        let url = i
            .bucket
            .upload_part(Some(&i.creds), &self.object, number, &id)
            .sign(SIGN_TTL);
        let resp = i
            .agent
            .request_url("PUT", &url)
            .send_bytes(data)
            .map_err(|e| s3_error("UploadPart", &self.object, e))?;
        let etag = resp
            .header("etag")
            .ok_or_else(|| io::Error::other("UploadPart: no ETag"))?
            .to_string();
        self.etags.push(etag);
        Ok(())
    }

    fn abort(store: &S3Store, object: &str, id: &str) {
        let i = &store.inner;
        let url = i
            .bucket
            .abort_multipart_upload(Some(&i.creds), object, id)
            .sign(SIGN_TTL);
        if let Err(e) = i.agent.request_url("DELETE", &url).call() {
            tracing::warn!(%object, error = %e, "cannot abort multipart upload");
        }
    }
}

impl Upload for S3Upload {
    fn write_all(&mut self, mut buf: &[u8]) -> io::Result<()> {
        if self.done {
            return Err(io::Error::other("upload already finished"));
        }
        while !buf.is_empty() {
            let room = PART_SIZE - self.buf.len();
            let n = room.min(buf.len());
            self.buf.extend_from_slice(&buf[..n]);
            buf = &buf[n..];
            if self.buf.len() == PART_SIZE {
                let part = std::mem::take(&mut self.buf);
                self.send_part(&part)?;
                self.buf = part;
                self.buf.clear();
            }
        }
        Ok(())
    }

    fn commit(mut self: Box<Self>, _key: &str) -> io::Result<String> {
        if self.done {
            return Err(io::Error::other("upload already finished"));
        }
        match self.upload_id.clone() {
            None => {
                let data = std::mem::take(&mut self.buf);
                self.store.put_bytes(&self.object, &data)?;
            }
            Some(id) => {
                if !self.buf.is_empty() {
                    let last = std::mem::take(&mut self.buf);
                    self.send_part(&last)?;
                }
                let i = &self.store.inner;
                let action = i.bucket.complete_multipart_upload(
                    Some(&i.creds),
                    &self.object,
                    &id,
                    self.etags.iter().map(String::as_str),
                );
                let url = action.sign(SIGN_TTL);
                let body = action.body();
                i.agent
                    .request_url("POST", &url)
                    .send_string(&body)
                    .map_err(|e| s3_error("CompleteMultipartUpload", &self.object, e))?;
            }
        }
        self.done = true;
        Ok(self.name.clone())
    }
}

impl Drop for S3Upload {
    fn drop(&mut self) {
        // Not committed: the object never came to exist; drop the parts.
        if !self.done {
            if let Some(id) = self.upload_id.take() {
                let store = self.store.clone();
                let object = self.object.clone();
                // Off the caller's thread: drops happen on async workers too.
                std::thread::spawn(move || S3Upload::abort(&store, &object, &id));
            }
        }
    }
}

/// A blob read with ranged GETs from the current position.
struct S3Reader {
    store: S3Store,
    object: String,
    size: u64,
    pos: u64,
    body: Option<Box<dyn Read + Send>>,
}

impl S3Reader {
    fn open(&mut self) -> io::Result<()> {
        let i = &self.store.inner;
        let url = i
            .bucket
            .get_object(Some(&i.creds), &self.object)
            .sign(SIGN_TTL);
        let resp = i
            .agent
            .request_url("GET", &url)
            .set("range", &format!("bytes={}-", self.pos))
            .call()
            .map_err(|e| s3_error("GET", &self.object, e))?;
        if self.pos > 0 && resp.status() != 206 {
            return Err(io::Error::other(format!(
                "GET {}: store ignored the range",
                self.object
            )));
        }
        self.body = Some(resp.into_reader());
        Ok(())
    }
}

impl Read for S3Reader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.size || buf.is_empty() {
            return Ok(0);
        }
        let mut tries = 0;
        loop {
            let res = match self.body.as_mut() {
                Some(b) => b.read(buf),
                None => self.open().and_then(|()| match self.body.as_mut() {
                    Some(b) => b.read(buf),
                    None => Err(io::Error::other("no body")),
                }),
            };
            match res {
                Ok(0) => {
                    // Early end of a body that should go on: the connection
                    // broke; resume below.
                    self.body = None;
                    if tries >= READ_RETRIES {
                        return Ok(0);
                    }
                }
                Ok(n) => {
                    self.pos += n as u64;
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound || tries >= READ_RETRIES => {
                    return Err(e)
                }
                Err(e) => {
                    tracing::warn!(object = %self.object, pos = self.pos, error = %e, "blob read failed; resuming");
                    self.body = None;
                }
            }
            tries += 1;
            std::thread::sleep(Duration::from_millis(100 * u64::from(tries)));
        }
    }
}

impl Seek for S3Reader {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::End(d) => self.size.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        }
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek out of range"))?;
        if target != self.pos {
            self.body = None;
            self.pos = target;
        }
        Ok(self.pos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listed_keys_are_decoded() {
        assert_eq!(
            url_decode("locks%2Fab%2F0001-x"),
            "locks/ab/0001-x".to_string()
        );
        assert_eq!(url_decode("a%2"), "a%2");
        assert_eq!(url_decode("plain-key"), "plain-key");
    }

    #[test]
    fn bad_endpoints_are_refused_before_any_request() {
        let mut s = S3Settings {
            endpoint: "ftp://x".into(),
            bucket: "b".into(),
            region: "garage".into(),
            access_key_id: "k".into(),
            secret_access_key: "s".into(),
            refresh: Duration::from_secs(1),
            blob_grace: BLOB_GRACE,
        };
        assert!(S3Store::new(&s).is_err());
        s.endpoint = "http://127.0.0.1:1".into();
        let st = S3Store::new(&s).expect("valid settings");
        assert!(st.new_upload("../x").is_err());
        assert!(st.open_blob("../../etc").is_err());
    }
}
