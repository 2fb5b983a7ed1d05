//! Durable storage of image records and blobs (files and icons) behind the
//! [`Storage`] trait, with the embedded local-disk backend [`LocalDisk`].
//!
//! Crash safety comes from the layout: every record and blob is first written
//! under `tmp/`, fsynced, then renamed into place and the directory fsynced, so
//! a crash at any moment leaves either the old or the new version. A record
//! names its blobs by key (`<uuid>-file-<sha1>`), so a blob that was renamed in
//! but never referenced (crash between the two steps) is just garbage, which
//! [`Storage::load`] sweeps at start-up together with stale `tmp/` files.
//! A record that cannot be read is never taken for garbage: it is moved to
//! `quarantine/` for the operator, and every blob it may name (any key it
//! mentions, and any key of its image's UUID) is kept.
//! Deleting an image unlinks its record first (atomic), then its blobs.
//! The trait is blocking on purpose: callers run it on tokio's blocking pool,
//! and an object-store backend can block on its own client just the same.

use rvmadm_manifest::Manifest;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;
use uuid::Uuid;

pub mod s3;

/// A stored blob's identity and digests, computed once at upload so that
/// downloads never re-hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredBlob {
    /// Storage key, `[a-z0-9-]+`.
    pub key: String,
    /// Length in bytes.
    pub size: u64,
    /// Hex SHA-1 (also the ETag).
    pub sha1: String,
    /// Base64 MD5 (the Content-MD5 header).
    pub md5: String,
    /// Unix seconds when the blob was stored (Last-Modified).
    pub mtime: i64,
    /// For icons: the MIME type given at upload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
}

/// Everything the server knows about one image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageRecord {
    /// The manifest as clients see it, minus the computed `state`.
    pub manifest: Manifest,
    /// Activation is one-way; `state` is derived from this and `disabled`.
    pub activated: bool,
    /// The uploaded image file (the compressed `zfs send` stream); `None`
    /// until an upload completes. `manifest.files` describes it to clients.
    #[serde(default)]
    pub file: Option<StoredBlob>,
    /// The uploaded icon, if any; `manifest.icon` tells clients it exists.
    #[serde(default)]
    pub icon: Option<StoredBlob>,
    /// `files[0]` of an imported manifest (imgadm publish sends it): the
    /// upload must then have exactly this size and SHA-1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect: Option<rvmadm_manifest::ImageFile>,
}

impl ImageRecord {
    /// A new image as CreateImage or an import makes it: not activated, no
    /// blobs yet; `expect` is the file an import announced, if any.
    pub fn unactivated(manifest: Manifest, expect: Option<rvmadm_manifest::ImageFile>) -> Self {
        ImageRecord {
            manifest,
            activated: false,
            file: None,
            icon: None,
            expect,
        }
    }

    /// Blob keys this record references.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.file
            .iter()
            .chain(self.icon.iter())
            .map(|b| b.key.as_str())
    }
}

/// A blob being written. Dropping it without [`Upload::commit`] discards it.
pub trait Upload: Send {
    /// Appends `buf` to the blob, all of it or an error.
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()>;
    /// Makes the bytes durable and visible, and returns the key records must
    /// name: `key` (replacing any blob with that key, which by construction
    /// holds the same bytes) for backends that can rename, or the name the
    /// blob was given when the upload started for those that cannot.
    fn commit(self: Box<Self>, key: &str) -> io::Result<String>;
}

/// A readable, seekable blob (Range requests seek).
pub trait BlobReader: Read + Seek + Send {}
impl<T: Read + Seek + Send> BlobReader for T {}

/// Where records and blobs live.
pub trait Storage: Send + Sync + 'static {
    /// All records; also removes leftovers of interrupted operations.
    fn load(&self) -> io::Result<Vec<ImageRecord>>;
    /// Atomically creates or replaces one record.
    fn put_record(&self, rec: &ImageRecord) -> io::Result<()>;
    /// Atomically removes one record (missing is fine).
    fn delete_record(&self, uuid: Uuid) -> io::Result<()>;
    /// Starts writing a new blob that stays invisible until committed;
    /// `key_prefix` (`<uuid>-file`, `<uuid>-icon`) starts its key.
    fn new_upload(&self, key_prefix: &str) -> io::Result<Box<dyn Upload>>;
    /// Opens a committed blob for reading; refuses keys that are not
    /// `[a-z0-9-]+`.
    fn open_blob(&self, key: &str) -> io::Result<Box<dyn BlobReader>>;
    /// Removes a blob (missing is fine).
    fn delete_blob(&self, key: &str) -> io::Result<()>;

    /// For stores other processes write too: how often the catalog re-reads
    /// [`Storage::record_versions`]. `None` (the default) means this process
    /// is the only writer and its index is always current.
    fn refresh_interval(&self) -> Option<Duration> {
        None
    }

    /// Every record's UUID with a tag that changes whenever the record does
    /// (the object's ETag). Only called when [`Storage::refresh_interval`] is
    /// set.
    fn record_versions(&self) -> io::Result<HashMap<Uuid, String>> {
        Err(io::Error::other("this store has no shared records"))
    }

    /// Reads one record fresh from the store (`None` if absent).
    fn get_record(&self, uuid: Uuid) -> io::Result<Option<ImageRecord>> {
        let _ = uuid;
        Ok(None)
    }

    /// Takes the write lock of one image across every process sharing the
    /// store, blocking until it is free (or failing with `WouldBlock`).
    /// Returns a token for [`Storage::unlock`]; a single-process store needs
    /// no lock (the catalog's writer mutex suffices) and returns `None`.
    fn lock(&self, uuid: Uuid) -> io::Result<Option<String>> {
        let _ = uuid;
        Ok(None)
    }

    /// Releases what [`Storage::lock`] took.
    fn unlock(&self, token: Option<String>) -> io::Result<()> {
        let _ = token;
        Ok(())
    }
}

/// Files under one directory: `records/`, `blobs/`, `tmp/`, `quarantine/`.
pub struct LocalDisk {
    root: PathBuf,
}

fn check_key(key: &str) -> io::Result<()> {
    // Keys are built by the server from UUIDs and hex digests; refusing
    // anything else here makes a path escape impossible even after a bug.
    let ok = !key.is_empty()
        && key.len() <= 128
        && key
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("bad blob key {key:?}"),
        ))
    }
}

/// Where unreadable records are moved.
const QUARANTINE: &str = "quarantine";

/// Blob keys a record that failed to parse may still reference: every
/// string value under a `key` field anywhere in it (when it is JSON at all),
/// and the prefix of keys made for its image (`<uuid>-`, from the name).
fn keys_of_unreadable(name: &str, bytes: &[u8]) -> (Vec<String>, Option<String>) {
    fn walk(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, v) in m {
                    match v {
                        serde_json::Value::String(s) if k == "key" => out.push(s.clone()),
                        other => walk(other, out),
                    }
                }
            }
            serde_json::Value::Array(a) => a.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let mut keys = Vec::new();
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(bytes) {
        walk(&v, &mut keys);
    }
    let prefix = name
        .get(..36)
        .and_then(|stem| Uuid::try_parse(stem).ok())
        .map(|u| format!("{u}-"));
    (keys, prefix)
}

fn fsync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

impl LocalDisk {
    /// Opens (creating if needed) a data directory.
    pub fn open(root: &Path) -> io::Result<LocalDisk> {
        for sub in ["records", "blobs", "tmp", QUARANTINE] {
            fs::create_dir_all(root.join(sub))?;
        }
        Ok(LocalDisk {
            root: root.to_path_buf(),
        })
    }

    fn tmp_path(&self) -> PathBuf {
        self.root
            .join("tmp")
            .join(Uuid::new_v4().simple().to_string())
    }

    fn record_path(&self, uuid: Uuid) -> PathBuf {
        self.root.join("records").join(format!("{uuid}.json"))
    }

    /// Moves an unreadable record to `quarantine/` (same name; a name
    /// already taken there gets a numeric suffix), so it is neither served
    /// nor lost, and says so in the log.
    fn quarantine(&self, path: &Path, why: &str) -> io::Result<()> {
        let dir = self.root.join(QUARANTINE);
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "record.json".into());
        let mut target = dir.join(&name);
        let mut n = 1;
        while target.exists() {
            target = dir.join(format!("{name}.{n}"));
            n += 1;
        }
        fs::rename(path, &target)?;
        fsync_dir(&dir)?;
        fsync_dir(&self.root.join("records"))?;
        tracing::error!(
            record = %path.display(),
            moved_to = %target.display(),
            error = why,
            "unreadable image record quarantined; its blobs are kept"
        );
        Ok(())
    }

    /// The on-disk path of a blob (for the benchmark's nginx comparison).
    pub fn blob_path(&self, key: &str) -> io::Result<PathBuf> {
        check_key(key)?;
        Ok(self.root.join("blobs").join(key))
    }
}

impl Storage for LocalDisk {
    fn load(&self) -> io::Result<Vec<ImageRecord>> {
        for e in fs::read_dir(self.root.join("tmp"))? {
            let e = e?;
            if let Err(err) = fs::remove_file(e.path()) {
                tracing::warn!(path = %e.path().display(), error = %err, "cannot remove stale temp file");
            }
        }
        let mut records = Vec::new();
        for e in fs::read_dir(self.root.join("records"))? {
            let path = e?.path();
            if path.extension().and_then(|x| x.to_str()) != Some("json") {
                continue;
            }
            let bytes = fs::read(&path)?;
            let why = match serde_json::from_slice::<ImageRecord>(&bytes) {
                Ok(r) if self.record_path(r.manifest.uuid) == path => {
                    records.push(r);
                    continue;
                }
                Ok(_) => "record name does not match its uuid".to_string(),
                Err(err) => err.to_string(),
            };
            self.quarantine(&path, &why)?;
        }
        // Blobs of quarantined records (this start's and earlier ones') stay.
        let mut kept_keys: HashSet<String> = HashSet::new();
        let mut kept_prefixes: Vec<String> = Vec::new();
        for e in fs::read_dir(self.root.join(QUARANTINE))? {
            let e = e?;
            let name = e.file_name().to_string_lossy().into_owned();
            let bytes = fs::read(e.path()).unwrap_or_default();
            let (keys, prefix) = keys_of_unreadable(&name, &bytes);
            kept_keys.extend(keys);
            kept_prefixes.extend(prefix);
        }
        let live: HashSet<&str> = records.iter().flat_map(|r| r.keys()).collect();
        for e in fs::read_dir(self.root.join("blobs"))? {
            let e = e?;
            let name = e.file_name();
            let name = name.to_string_lossy();
            let kept = live.contains(name.as_ref())
                || kept_keys.contains(name.as_ref())
                || kept_prefixes.iter().any(|p| name.starts_with(p.as_str()));
            if !kept {
                tracing::info!(blob = %name, "removing unreferenced blob");
                fs::remove_file(e.path())?;
            }
        }
        Ok(records)
    }

    fn put_record(&self, rec: &ImageRecord) -> io::Result<()> {
        let bytes = serde_json::to_vec_pretty(rec).map_err(io::Error::other)?;
        let tmp = self.tmp_path();
        let res = (|| {
            let mut f = File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            fs::rename(&tmp, self.record_path(rec.manifest.uuid))?;
            fsync_dir(&self.root.join("records"))
        })();
        if res.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        res
    }

    fn delete_record(&self, uuid: Uuid) -> io::Result<()> {
        match fs::remove_file(self.record_path(uuid)) {
            Ok(()) => fsync_dir(&self.root.join("records")),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn new_upload(&self, _key_prefix: &str) -> io::Result<Box<dyn Upload>> {
        let path = self.tmp_path();
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)?;
        Ok(Box::new(DiskUpload {
            file: Some(file),
            path,
            blobs: self.root.join("blobs"),
        }))
    }

    fn open_blob(&self, key: &str) -> io::Result<Box<dyn BlobReader>> {
        Ok(Box::new(File::open(self.blob_path(key)?)?))
    }

    fn delete_blob(&self, key: &str) -> io::Result<()> {
        match fs::remove_file(self.blob_path(key)?) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }
}

struct DiskUpload {
    file: Option<File>,
    path: PathBuf,
    blobs: PathBuf,
}

impl Upload for DiskUpload {
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match &mut self.file {
            Some(f) => f.write_all(buf),
            None => Err(io::Error::other("upload already finished")),
        }
    }

    fn commit(mut self: Box<Self>, key: &str) -> io::Result<String> {
        check_key(key)?;
        let file = self
            .file
            .take()
            .ok_or_else(|| io::Error::other("upload already finished"))?;
        file.sync_all()?;
        drop(file);
        fs::rename(&self.path, self.blobs.join(key))?;
        fsync_dir(&self.blobs)?;
        Ok(key.to_string())
    }
}

impl Drop for DiskUpload {
    fn drop(&mut self) {
        // Not committed (error, disconnect, checksum mismatch): leave nothing.
        if self.file.take().is_some() {
            let _ = fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record(uuid: Uuid) -> ImageRecord {
        let manifest: Manifest = serde_json::from_value(json!({
            "uuid": uuid.to_string(), "name": "n", "version": "1",
            "type": "zone-dataset", "os": "bsd"
        }))
        .expect("manifest");
        ImageRecord {
            manifest,
            activated: false,
            file: None,
            icon: None,
            expect: None,
        }
    }

    #[test]
    fn records_round_trip_and_garbage_is_swept() {
        let dir = tempfile::tempdir().expect("tmp");
        let disk = LocalDisk::open(dir.path()).expect("open");
        let id = Uuid::new_v4();
        let mut rec = record(id);
        let mut up = disk.new_upload("x").expect("upload");
        up.write_all(b"hello").expect("write");
        up.commit("abc-file-1").expect("commit");
        rec.file = Some(StoredBlob {
            key: "abc-file-1".into(),
            size: 5,
            sha1: "x".into(),
            md5: "y".into(),
            mtime: 0,
            content_type: None,
        });
        disk.put_record(&rec).expect("put");
        // An orphan blob and a half-written temp file, as a crash leaves them.
        let mut orphan = disk.new_upload("x").expect("upload");
        orphan.write_all(b"zz").expect("write");
        orphan.commit("orphan-file-2").expect("commit");
        fs::write(dir.path().join("tmp/partial"), b"x").expect("tmp");
        let loaded = disk.load().expect("load");
        assert_eq!(loaded, vec![rec]);
        assert!(!dir.path().join("blobs/orphan-file-2").exists());
        assert!(dir.path().join("blobs/abc-file-1").exists());
        assert_eq!(fs::read_dir(dir.path().join("tmp")).expect("ls").count(), 0);
        disk.delete_record(id).expect("del");
        assert!(disk.load().expect("load").is_empty());
    }

    #[test]
    fn an_unreadable_record_is_quarantined_and_its_blobs_survive_restarts() {
        let dir = tempfile::tempdir().expect("tmp");
        let disk = LocalDisk::open(dir.path()).expect("open");
        let id = Uuid::new_v4();
        let key = format!("{id}-file-abc");
        let mut up = disk.new_upload("x").expect("upload");
        up.write_all(b"image bytes").expect("write");
        up.commit(&key).expect("commit");
        // A record cut short by a disk fault: not valid JSON any more.
        let rec_path = dir.path().join(format!("records/{id}.json"));
        fs::write(&rec_path, br#"{"manifest": {"uuid": "#).expect("write");
        // A second one that is JSON but not a record, naming another blob.
        let other = Uuid::new_v4();
        let mut up = disk.new_upload("x").expect("upload");
        up.write_all(b"x").expect("write");
        up.commit("odd-key-1").expect("commit");
        fs::write(
            dir.path().join(format!("records/{other}.json")),
            br#"{"file": {"key": "odd-key-1"}}"#,
        )
        .expect("write");
        for _ in 0..2 {
            assert!(disk.load().expect("load").is_empty());
            assert!(dir.path().join("blobs").join(&key).exists());
            assert!(dir.path().join("blobs/odd-key-1").exists());
        }
        assert!(!rec_path.exists());
        let q = dir.path().join(format!("quarantine/{id}.json"));
        assert_eq!(fs::read(q).expect("kept"), br#"{"manifest": {"uuid": "#);
    }

    #[test]
    fn dropped_upload_leaves_nothing_and_keys_are_checked() {
        let dir = tempfile::tempdir().expect("tmp");
        let disk = LocalDisk::open(dir.path()).expect("open");
        {
            let mut up = disk.new_upload("x").expect("upload");
            up.write_all(b"partial").expect("write");
        }
        assert_eq!(fs::read_dir(dir.path().join("tmp")).expect("ls").count(), 0);
        let up = disk.new_upload("x").expect("upload");
        assert!(up.commit("../etc").is_err());
        assert!(disk.open_blob("../../x").is_err());
    }
}
