//! `imgadm import`: fetch a manifest, follow its origin chain, and stream each
//! file into ZFS.
//!
//! The pipeline for one image, with bounded memory whatever the image size:
//!
//! ```text
//! HTTP body ─(thread: count + SHA-1, 256 KiB chunks)─▶ bounded channel
//!    ─▶ decompressor ─▶ first record checked ─▶ stdin of
//!       `zfs receive -u <pool>/<uuid>-partial/stream`
//! ```
//!
//! The download thread and the decompressor run in parallel (like a shell
//! pipeline), the channel holds at most a few MiB.
//!
//! The image server is not trusted with the host. Before any byte reaches
//! ZFS, the stream's first record must show a plain full (or, for an image
//! with an origin, incremental) stream of one snapshot
//! ([`crate::zfs::stream_header`]): a compound stream would bring its own
//! properties and children, a `mountpoint` over a host directory among them.
//! The stream is received into `<pool>/<uuid>-partial`, an unmounted
//! container with a quota (from the manifest's `image_size`, capped by
//! `max_image_size`), unmounted itself; the decompressed stream may be at
//! most 8× that quota. After the receive, the dataset must have no child,
//! no property of its own, the manifest's origin and exactly one snapshot.
//!
//! Only after the stream ended *and* size and SHA-1 matched the manifest and
//! those checks passed is it renamed to `<pool>/<uuid>` and mounted, and only
//! then is the manifest record written. Any failure — HTTP error, short read,
//! wrong size or SHA-1, corrupt compression, a refused stream, `zfs receive`
//! error, Ctrl-C — destroys the partial datasets, so nothing is left behind.
//!
//! This module prints nothing. Each image is installed under its own lock
//! from the store ([`Store::lock_image`]), so two imports of one image never
//! race while imports of different images, and `vmadm create`/`delete`, go
//! on meanwhile: a half-received image is `<uuid>-partial`, which nothing
//! clones. What happens is told through [`ImportReport`] (messages, and a
//! byte counter the caller may draw as a progress bar).

use super::compress;
use super::error::{Code, ImgError, Result};
use super::failover::{self, ResumeLog};
use super::http::{Client, Download};
use super::interrupt;
use super::manifest::{ImageFile, ImageState, Manifest};
use super::records::{self, label_of, Record};
use super::sources::Remote;
use crate::config::{Config, Source};
use crate::exec::StreamChild;
use crate::store::Store;
use crate::zfs::stream_header::{self, Expect};
use crate::zfs::Zfs;
use serde_json::Value;
use std::collections::BTreeSet;
use std::io::{self, Read, Write};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender};
use std::sync::Arc;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Size of one chunk handed from the download thread to the decompressor.
const CHUNK: usize = 256 << 10;
/// Chunks in flight between the two threads (bounds memory to ~2 MiB).
const CHANNEL_DEPTH: usize = 8;
/// Longest origin chain we follow (imgadm's MaxOriginDepth spirit).
const MAX_ORIGIN_DEPTH: usize = 64;
/// The dataset the stream is received as, inside the `-partial` container.
const STREAM_CHILD: &str = "stream";
/// How much larger than the quota a decompressed stream may be (streams
/// carry blocks uncompressed; a compressing pool stores them smaller).
const STREAM_QUOTA_FACTOR: u64 = 8;

/// The quota, in bytes, of the container an image is received into: the
/// manifest's `image_size` (MiB) capped by `max_image_size` (the cap alone
/// without one), plus a quarter and 32 MiB for metadata.
pub fn receive_quota(cfg: &Config, manifest: &Manifest) -> u64 {
    let cap = cfg.max_image_size;
    let mib = manifest
        .extra
        .get("image_size")
        .and_then(Value::as_u64)
        .map_or(cap, |s| s.min(cap));
    mib.saturating_add(mib / 4)
        .saturating_add(32)
        .saturating_mul(1 << 20)
}

/// A step of an import worth telling the user about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImportNote {
    /// `<pool>/<uuid>` is already an installed image: nothing to do.
    AlreadyInstalled {
        /// The image asked for.
        uuid: Uuid,
        /// Its installed manifest's `name`.
        name: String,
        /// Its installed manifest's `version`.
        version: String,
    },
    /// One image of the chain (the one asked for, or a missing origin)
    /// starts downloading; `label` is `<name>@<version>`.
    Importing {
        /// The image being downloaded.
        uuid: Uuid,
        /// `<name>@<version>` from its manifest.
        label: String,
        /// The URL of the source it comes from.
        source: String,
    },
    /// A download broke off and continued from another source that serves
    /// the same file, by range from `offset`.
    Resumed {
        /// The image being downloaded.
        uuid: Uuid,
        /// The URL of the source the rest of the file came from.
        source: String,
        /// The byte the download continued at.
        offset: u64,
    },
    /// `imgadm install`: a local file starts going into ZFS.
    Installing {
        /// The image being installed.
        uuid: Uuid,
        /// `<name>@<version>` from its manifest.
        label: String,
    },
    /// One image of the chain is installed.
    Imported {
        /// The image now installed as `<pool>/<uuid>`.
        uuid: Uuid,
        /// `<name>@<version>` from its manifest.
        label: String,
    },
    /// A clean-up after a failure did not work (the import still fails
    /// with its own error).
    Warning(String),
}

/// Counts the bytes of one download as they arrive; shared with the
/// download thread, so it must be `Send + Sync`.
pub trait DownloadProgress: Send + Sync {
    /// `bytes` more bytes of the file arrived (a count since the last
    /// call, not a total).
    fn inc(&self, bytes: u64);
    /// The download ended (well or not): remove any display.
    fn finish(&self);
}

/// How an import reports while it runs. A failing note (the output is
/// gone) ends the import with that error, as a failed write always has.
pub trait ImportReport {
    /// Tells one step; an error aborts the import (and cleans up as any
    /// other failure does).
    fn note(&mut self, note: ImportNote) -> Result<()>;
    /// A download of `size` bytes of image `uuid` starts.
    fn download(&mut self, uuid: &Uuid, size: u64) -> Arc<dyn DownloadProgress>;
}

/// A remote image whose manifest passed validation.
#[derive(Debug, Clone)]
pub struct Checked {
    /// Where the manifest came from, and its file's URL.
    pub remote: Remote,
    /// The manifest, typed and validated, with the uuid asked for.
    pub manifest: Manifest,
    /// Its one file entry: size, SHA-1 and compression to check the
    /// download against.
    pub file: ImageFile,
}

/// Validates a manifest from a source before any byte of it reaches ZFS,
/// disk or a command line.
pub fn check_remote(remote: Remote, want: &Uuid) -> Result<Checked> {
    let bad = |msg: String| {
        ImgError::new(
            Code::InvalidManifest,
            format!("manifest of image {want} from {}: {msg}", remote.source.url),
        )
    };
    let manifest: Manifest =
        serde_json::from_value(remote.manifest.clone()).map_err(|e| bad(e.to_string()))?;
    manifest.validate().map_err(|e| bad(e.to_string()))?;
    if manifest.uuid != *want {
        return Err(bad(format!("it describes image {} instead", manifest.uuid)));
    }
    if manifest.origin == Some(manifest.uuid) {
        return Err(bad("it is its own origin".into()));
    }
    let file = match manifest.files.as_slice() {
        [f] => f.clone(),
        _ => return Err(bad("it must list exactly one file".into())),
    };
    Ok(Checked {
        remote,
        manifest,
        file,
    })
}

fn label(m: &Manifest) -> String {
    format!("{}@{}", m.name, m.version)
}

/// Installs image `uuid` on `pool` and any missing origins, from
/// `sources_list` (the configured sources or `-S` ones). `vms` tells VM
/// datasets apart from images and provides the per-image locks.
pub fn import(
    cfg: &Config,
    vms: &Store,
    zfs: &Zfs,
    uuid: Uuid,
    pool: &str,
    sources_list: &[Source],
    report: &mut dyn ImportReport,
) -> Result<()> {
    if let Some(done) = already_installed(cfg, vms, zfs, pool, &uuid)? {
        return report.note(done);
    }
    let client = Client::new();
    // imgadm's wording for both: no source has it as an active image.
    let remote = failover::find(&client, sources_list, &uuid)?
        .ok_or_else(|| ImgError::active_image_not_found(uuid))?;
    let top = check_remote(remote, &uuid)?;
    if top.manifest.state.is_some_and(|s| s != ImageState::Active) || top.manifest.disabled {
        return Err(ImgError::active_image_not_found(uuid));
    }
    // Origins first: walk up until an installed ancestor (or the root).
    let mut chain = vec![top];
    let mut seen = BTreeSet::from([uuid]);
    let mut next = chain[0].manifest.origin;
    while let Some(origin) = next {
        if zfs.exists(&format!("{pool}/{origin}"))? {
            break;
        }
        if !seen.insert(origin) || chain.len() >= MAX_ORIGIN_DEPTH {
            return Err(ImgError::new(
                Code::InvalidManifest,
                format!("origin chain of {uuid} loops or is deeper than {MAX_ORIGIN_DEPTH}"),
            ));
        }
        let remote = failover::find(&client, sources_list, &origin)?.ok_or_else(|| {
            ImgError::origin_not_found_in_source(origin, &chain[0].remote.source.url)
        })?;
        let checked = check_remote(remote, &origin)?;
        next = checked.manifest.origin;
        chain.push(checked);
    }
    for img in chain.iter().rev() {
        let from = FileFrom::Source(&client, sources_list);
        install_one(cfg, vms, zfs, from, img, pool, report)?;
    }
    Ok(())
}

/// `imgadm install -m <manifest> -f <file>`: installs one image from local
/// files, checked as a download is (size, SHA-1, one snapshot). Its origin,
/// if any, must be installed already. The record names no source.
pub fn install_file(
    cfg: &Config,
    vms: &Store,
    zfs: &Zfs,
    manifest: Value,
    file: &std::path::Path,
    pool: &str,
    report: &mut dyn ImportReport,
) -> Result<()> {
    let uuid = manifest
        .get("uuid")
        .and_then(Value::as_str)
        .ok_or_else(|| ImgError::new(Code::InvalidManifest, "manifest is invalid: no uuid"))
        .and_then(crate::image::error::parse_uuid)?;
    let shown = file.display().to_string();
    let remote = Remote {
        manifest,
        source: Source {
            url: shown.clone(),
            kind: "imgapi".into(),
        },
        file_url: shown,
    };
    let img = check_remote(remote, &uuid)?;
    install_one(cfg, vms, zfs, FileFrom::File(file), &img, pool, report)
}

/// Where an image's file comes from.
#[derive(Clone, Copy)]
enum FileFrom<'a> {
    /// Its source, over HTTP (`Checked::remote.file_url`); the list is
    /// where [`failover`] looks when that source fails.
    Source(&'a Client, &'a [Source]),
    /// A local file (`imgadm install`).
    File(&'a std::path::Path),
}

impl FileFrom<'_> {
    /// The file as a stream, and the log of source switches a download
    /// makes on the way (empty for a local file).
    fn open(self, img: &Checked) -> Result<(Download, ResumeLog)> {
        match self {
            FileFrom::Source(client, list) => {
                failover::open(client, &img.remote, img.manifest.uuid, &img.file, list)
            }
            FileFrom::File(path) => {
                let f = std::fs::File::open(path)
                    .map_err(|e| ImgError::fs(&format!("cannot read {}", path.display()), e))?;
                let len = f
                    .metadata()
                    .map_err(|e| ImgError::fs(&format!("cannot read {}", path.display()), e))?
                    .len();
                Ok((
                    Download {
                        content_length: Some(len),
                        body: Box::new(f),
                    },
                    ResumeLog::default(),
                ))
            }
        }
    }
}

/// The skip note when `<pool>/<uuid>` already exists (as an image).
fn already_installed(
    cfg: &Config,
    vms: &Store,
    zfs: &Zfs,
    pool: &str,
    uuid: &Uuid,
) -> Result<Option<ImportNote>> {
    if !zfs.exists(&format!("{pool}/{uuid}"))? {
        return Ok(None);
    }
    match records::find_installed(cfg, vms, zfs, pool, uuid)? {
        Some(inst) => {
            let m = inst.manifest();
            let s = |k: &str| m.get(k).and_then(Value::as_str).unwrap_or("").to_string();
            Ok(Some(ImportNote::AlreadyInstalled {
                uuid: *uuid,
                name: s("name"),
                version: s("version"),
            }))
        }
        None => Err(ImgError::new(
            Code::FileSystem,
            format!("dataset {pool}/{uuid} exists but is not an image (a VM?); not touching it"),
        )),
    }
}

fn install_one(
    cfg: &Config,
    vms: &Store,
    zfs: &Zfs,
    from: FileFrom<'_>,
    img: &Checked,
    pool: &str,
    report: &mut dyn ImportReport,
) -> Result<()> {
    let uuid = img.manifest.uuid;
    let _lock = vms.lock_image(&uuid)?;
    if let Some(done) = already_installed(cfg, vms, zfs, pool, &uuid)? {
        return report.note(done);
    }
    if let Some(origin) = img.manifest.origin {
        if !zfs.exists(&format!("{pool}/{origin}@final"))? {
            return Err(ImgError::new(
                Code::OriginNotInstalled,
                format!("origin image {origin} of {uuid} is not installed on zpool \"{pool}\""),
            ));
        }
    }
    let partial = format!("{pool}/{uuid}-partial");
    let received = format!("{partial}/{STREAM_CHILD}");
    let target = format!("{pool}/{uuid}");
    // A previous crash may have left a partial dataset: it is ours to remove.
    zfs.destroy(&partial, true)?;
    // A download that no source could continue starts over from the next
    // source with the same file (see `failover`).
    let mut current = img.clone();
    let mut tried = vec![img.remote.source.url.clone()];
    loop {
        report.note(match from {
            FileFrom::Source(..) => ImportNote::Importing {
                uuid,
                label: label(&current.manifest),
                source: current.remote.source.url.clone(),
            },
            FileFrom::File(_) => ImportNote::Installing {
                uuid,
                label: label(&current.manifest),
            },
        })?;
        let mut switches = ResumeLog::default();
        let quota = receive_quota(cfg, &current.manifest);
        let result = from
            .open(&current)
            .and_then(|(dl, log)| {
                switches = log;
                stream_into(zfs, dl, &current, &partial, quota, report)
            })
            .and_then(|()| verify_received(zfs, &current, pool, &partial, &received))
            .and_then(|snaps| finalize(zfs, &received, &snaps, &target));
        let resumed = switches.lock().map(|l| l.clone()).unwrap_or_default();
        for r in resumed {
            report.note(ImportNote::Resumed {
                uuid,
                source: r.source,
                offset: r.offset,
            })?;
        }
        let Err(e) = result else { break };
        cleanup(zfs, &partial, report);
        let next = match from {
            FileFrom::Source(client, list) if e.code == Code::DownloadError => {
                failover::next_with_same_file(client, list, &uuid, &current.file, &tried)
                    .and_then(|r| check_remote(r, &uuid).ok())
            }
            _ => None,
        };
        let Some(next) = next else { return Err(e) };
        report.note(ImportNote::Warning(format!(
            "{e}; starting over from \"{}\"",
            next.remote.source.url
        )))?;
        tried.push(next.remote.source.url.clone());
        current = next;
    }
    let img = &current;
    let source = match from {
        FileFrom::Source(..) => Some(img.remote.source.url.clone()),
        FileFrom::File(_) => None,
    };
    // Empty now; a leftover is removed by the next import of this image.
    if let Err(e) = zfs.destroy(&partial, false) {
        report.note(ImportNote::Warning(format!(
            "could not remove {partial}: {e}"
        )))?;
    }
    let imported = source.is_some();
    let record = Record {
        manifest: img.remote.manifest.clone(),
        zpool: pool.to_string(),
        source,
    };
    if let Err(e) = records::save_record(cfg, &uuid, &record) {
        cleanup(zfs, &target, report);
        return Err(e);
    }
    if !imported {
        // imgadm install says nothing more once the file is in.
        return Ok(());
    }
    report.note(ImportNote::Imported {
        uuid,
        label: label_of(&img.remote.manifest),
    })
}

fn cleanup(zfs: &Zfs, dataset: &str, report: &mut dyn ImportReport) {
    if let Err(e) = zfs.destroy(dataset, true) {
        tracing::warn!(dataset, error = %e, "could not remove dataset after a failed import");
        // The import's own error follows; a lost warning must not replace it.
        let _ = report.note(ImportNote::Warning(format!(
            "could not remove {dataset}: {e}"
        )));
    }
}

/// Refuses what a plain stream of one snapshot cannot have made: a child
/// dataset, a property set on the dataset (a received `mountpoint`,
/// `setuid`…), or an origin other than the manifest's. Returns the names
/// (after `@`) of the received dataset's snapshots.
fn verify_received(
    zfs: &Zfs,
    img: &Checked,
    pool: &str,
    partial: &str,
    received: &str,
) -> Result<Vec<String>> {
    let refuse = |why: String| {
        ImgError::new(
            Code::StreamRefused,
            format!("image {} refused: {why}", img.manifest.uuid),
        )
    };
    let tree = zfs.tree(partial)?;
    let mut snapshots = Vec::new();
    let mut extra = Vec::new();
    for (name, _) in &tree {
        match name.split_once('@') {
            Some((fs, snap)) if fs == received => snapshots.push(snap.to_string()),
            None if name == partial || name == received => {}
            _ => extra.push(name.as_str()),
        }
    }
    if !extra.is_empty() {
        return Err(refuse(format!(
            "its stream made other datasets ({})",
            extra.join(", ")
        )));
    }
    let Some((_, origin)) = tree.iter().find(|(n, _)| n == received) else {
        return Err(refuse(format!("the receive made no {received}")));
    };
    let own = zfs.own_properties(received)?;
    if !own.is_empty() {
        let list: Vec<String> = own
            .iter()
            .map(|(p, v, src)| format!("{p}={} ({src})", super::table::printable(v)))
            .collect();
        return Err(refuse(format!(
            "its stream set properties: {}",
            list.join(", ")
        )));
    }
    let want = img.manifest.origin.map(|o| format!("{pool}/{o}@final"));
    if *origin != want {
        return Err(refuse(format!(
            "it was received on top of {}, its manifest says {}",
            origin.as_deref().unwrap_or("nothing"),
            want.as_deref().unwrap_or("no origin")
        )));
    }
    Ok(snapshots)
}

/// Requires exactly one snapshot, names it `@final`, renames into place,
/// and mounts it (it was received unmounted).
fn finalize(zfs: &Zfs, received: &str, snaps: &[String], target: &str) -> Result<()> {
    match snaps {
        [only] => {
            if only != "final" {
                zfs.rename(&format!("{received}@{only}"), &format!("{received}@final"))?;
            }
        }
        _ => {
            return Err(ImgError::new(
                Code::UnexpectedNumberOfSnapshots,
                format!(
                    "received dataset {received} has {} snapshots ({}), expected exactly one",
                    snaps.len(),
                    snaps.join(", ")
                ),
            ))
        }
    }
    zfs.rename_unbusy(received, target)?;
    if let Err(e) = zfs.mount(target) {
        // The error must leave nothing: the renamed dataset goes too.
        let _ = zfs.destroy(target, true);
        return Err(e.into());
    }
    Ok(())
}

/// How the download thread ended.
enum DlEnd {
    Done {
        bytes: u64,
        sha1: String,
    },
    Failed(String),
    /// The consumer went away (decompression or zfs failed, or Ctrl-C).
    Aborted,
}

fn download_loop(
    mut body: Box<dyn Read + Send + Sync>,
    size: u64,
    tx: SyncSender<Vec<u8>>,
    bar: Arc<dyn DownloadProgress>,
) -> DlEnd {
    use sha1::{Digest, Sha1};
    let mut hasher = Sha1::new();
    let mut bytes: u64 = 0;
    let mut buf = vec![0u8; CHUNK];
    loop {
        if interrupt::interrupted() {
            return DlEnd::Aborted;
        }
        let n = match body.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return DlEnd::Failed(format!("read error after {bytes} bytes: {e}")),
        };
        bytes += n as u64;
        if bytes > size {
            return DlEnd::Failed(format!(
                "image file size error: server sent more than the {size} bytes in the manifest"
            ));
        }
        hasher.update(&buf[..n]);
        bar.inc(n as u64);
        if tx.send(buf[..n].to_vec()).is_err() {
            return DlEnd::Aborted;
        }
    }
    DlEnd::Done {
        bytes,
        sha1: hex::encode(hasher.finalize()),
    }
}

/// Reads the chunks of the download thread; notices Ctrl-C while waiting.
struct ChannelReader {
    rx: Receiver<Vec<u8>>,
    cur: Vec<u8>,
    pos: usize,
}

impl Read for ChannelReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos >= self.cur.len() {
            match self.rx.recv_timeout(Duration::from_millis(200)) {
                Ok(chunk) => {
                    self.cur = chunk;
                    self.pos = 0;
                }
                Err(RecvTimeoutError::Timeout) => {
                    if interrupt::interrupted() {
                        return Err(io::Error::other("interrupted"));
                    }
                }
                Err(RecvTimeoutError::Disconnected) => return Ok(0),
            }
        }
        let n = out.len().min(self.cur.len() - self.pos);
        out[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

enum PumpErr {
    Read(io::Error),
    Write(io::Error),
    Interrupted,
    /// The stream is refused (header, size bound); nothing more is read.
    Refused(String),
    /// Setting up the receive failed.
    Zfs(crate::zfs::ZfsError),
}

/// Copies decoder output into the zfs pipe, polling for Ctrl-C; refuses a
/// stream longer than `limit` bytes.
fn pump(src: &mut dyn Read, dst: &mut dyn Write, limit: u64) -> std::result::Result<(), PumpErr> {
    let mut buf = vec![0u8; CHUNK];
    let mut total: u64 = 0;
    loop {
        if interrupt::interrupted() {
            return Err(PumpErr::Interrupted);
        }
        let n = match src.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if interrupt::interrupted() => return Err(PumpErr::Read(e)),
            Err(e) => return Err(PumpErr::Read(e)),
        };
        total += n as u64;
        if total > limit {
            return Err(PumpErr::Refused(format!(
                "its decompressed stream is larger than {limit} bytes ({STREAM_QUOTA_FACTOR}× its quota; see max_image_size)"
            )));
        }
        let mut off = 0;
        while off < n {
            match dst.write(&buf[off..n]) {
                Ok(0) => return Err(PumpErr::Write(io::ErrorKind::WriteZero.into())),
                Ok(k) => off += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                    if interrupt::interrupted() {
                        return Err(PumpErr::Interrupted);
                    }
                }
                Err(e) => return Err(PumpErr::Write(e)),
            }
        }
    }
}

/// Checks the stream's first record, then creates the quota'd container
/// `partial` and starts `zfs receive` of `partial/stream` with the record
/// and the rest of the decoded stream.
fn receive_checked<'r>(
    zfs: &Zfs<'r>,
    dec: &mut dyn Read,
    expect: Expect,
    partial: &str,
    quota: u64,
    child: &mut Option<StreamChild<'r>>,
) -> std::result::Result<(), PumpErr> {
    let head = stream_header::read_begin(dec).map_err(PumpErr::Read)?;
    stream_header::check(&head, expect).map_err(|e| PumpErr::Refused(e.to_string()))?;
    zfs.create(
        partial,
        &[
            ("quota", &quota.to_string()),
            ("canmount", "off"),
            ("mountpoint", "none"),
        ],
    )
    .map_err(PumpErr::Zfs)?;
    let started = zfs
        .receive(&format!("{partial}/{STREAM_CHILD}"))
        .map_err(PumpErr::Zfs)?;
    let pipe = child.insert(started);
    pipe.write_all(&head).map_err(PumpErr::Write)?;
    let limit = quota.saturating_mul(STREAM_QUOTA_FACTOR);
    pump(dec, pipe, limit.saturating_sub(head.len() as u64))
}

/// True when zfs's complaint is about space: the quota stopped the stream.
pub(crate) fn out_of_space(stderr: &str) -> bool {
    let s = stderr.to_ascii_lowercase();
    s.contains("quota") || s.contains("out of space") || s.contains("no space")
}

/// Reads (downloads or a local file), verifies and receives one file into
/// `partial`/stream.
fn stream_into(
    zfs: &Zfs,
    dl: Download,
    img: &Checked,
    partial: &str,
    quota: u64,
    report: &mut dyn ImportReport,
) -> Result<()> {
    let size = img.file.size;
    let url = &img.remote.file_url;
    let uuid = img.manifest.uuid;
    match dl.content_length {
        None => {
            return Err(ImgError::download(format!(
                "{url}: unexpected missing or invalid Content-Length"
            )))
        }
        Some(n) if n != size => {
            return Err(ImgError::download(format!(
                "image file size error: {url} has Content-Length {n}, the manifest says {size}"
            )))
        }
        Some(_) => {}
    }
    let expect = if img.manifest.origin.is_some() {
        Expect::Incremental
    } else {
        Expect::Full
    };
    let bar = report.download(&uuid, size);
    let (tx, rx) = sync_channel::<Vec<u8>>(CHANNEL_DEPTH);
    let dl_bar = bar.clone();
    let body = dl.body;
    let downloader = std::thread::spawn(move || download_loop(body, size, tx, dl_bar));

    // The receive runs in its own process group: a terminal Ctrl-C reaches
    // only us, and we end the receive by closing its stdin. Killing a zfs
    // client in the middle of an ioctl is what wedges zfs-fuse, so it is
    // never done here. It starts only once the first record passed.
    let mut child: Option<StreamChild> = None;
    let pump_result = {
        let mut reader = ChannelReader {
            rx,
            cur: Vec::new(),
            pos: 0,
        };
        let r = match compress::decoder(img.file.compression, &mut reader) {
            Ok(mut dec) => receive_checked(zfs, &mut dec, expect, partial, quota, &mut child),
            Err(e) => Err(PumpErr::Read(e)),
        };
        // The decompressor may stop before the end of the file (trailing
        // bytes): read the rest so the size and SHA-1 cover the whole file.
        if r.is_ok() {
            let _ = io::copy(&mut reader, &mut io::sink());
        }
        if let Some(c) = child.as_mut() {
            c.close_stdin();
        }
        r
    };
    bar.finish();

    if interrupt::interrupted() || matches!(pump_result, Err(PumpErr::Interrupted)) {
        // stdin is closed: the truncated stream makes zfs receive fail.
        if let Some(c) = child {
            let _ = c.wait();
        }
        return Err(ImgError::new(
            Code::Interrupted,
            format!("import of {uuid} interrupted"),
        ));
    }
    // On a pump failure the download thread may be blocked on the network;
    // give it a moment to report a download error (the likely root cause).
    let dl_end = if pump_result.is_ok() {
        downloader
            .join()
            .unwrap_or(DlEnd::Failed("download thread panicked".into()))
    } else {
        let deadline = Instant::now() + Duration::from_secs(2);
        while !downloader.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        if downloader.is_finished() {
            downloader.join().unwrap_or(DlEnd::Aborted)
        } else {
            DlEnd::Aborted
        }
    };
    let exit = match child {
        Some(c) => {
            let argv = c.argv().clone();
            Some((c.wait()?, argv))
        }
        None => None,
    };

    match dl_end {
        DlEnd::Failed(msg) => {
            return Err(ImgError::download(format!(
                "download of {url} failed: {msg}"
            )))
        }
        DlEnd::Done { bytes, sha1 } => {
            if bytes != size {
                return Err(ImgError::download(format!(
                    "image file size error: got {bytes} bytes from {url}, the manifest says {size} (short read?)"
                )));
            }
            if !sha1.eq_ignore_ascii_case(&img.file.sha1) {
                return Err(ImgError::download(format!(
                    "image file checksum (sha1) error: {url} has sha1 {sha1}, the manifest says {}",
                    img.file.sha1
                )));
            }
        }
        DlEnd::Aborted => {}
    }
    let refused =
        |why: String| ImgError::new(Code::StreamRefused, format!("image {uuid} refused: {why}"));
    let quota_hit = || {
        refused(format!(
            "its stream does not fit the quota of {quota} bytes (image_size or max_image_size)"
        ))
    };
    let zfs_said = exit
        .as_ref()
        .map(|(o, _)| o.stderr_str())
        .unwrap_or_default();
    match pump_result {
        Err(PumpErr::Read(e)) if e.to_string().contains("memory limit") => Err(refused(format!(
            "its xz stream needs more than {} MiB of memory to decode (a dictionary larger than xz -9's)",
            compress::XZ_MEMLIMIT >> 20
        ))),
        Err(PumpErr::Read(e)) => Err(ImgError::new(
            Code::UncompressionError,
            format!(
                "cannot decompress the {} file of image {uuid}: {e}",
                img.file.compression
            ),
        )),
        Err(PumpErr::Write(_)) if out_of_space(&zfs_said) => Err(quota_hit()),
        Err(PumpErr::Write(e)) => {
            let argv = exit.map(|(_, a)| a.to_string()).unwrap_or_default();
            Err(ImgError::fs(
                &format!("`{argv}` stopped reading"),
                format!("{e}; zfs said: {zfs_said}"),
            ))
        }
        Err(PumpErr::Interrupted) => Err(ImgError::new(Code::Interrupted, "interrupted")),
        Err(PumpErr::Refused(why)) => Err(refused(why)),
        Err(PumpErr::Zfs(e)) => Err(e.into()),
        Ok(()) => match exit {
            Some((out, _)) if !out.success() && out_of_space(&out.stderr_str()) => {
                Err(quota_hit())
            }
            Some((out, argv)) => {
                out.check(&argv)?;
                Ok(())
            }
            None => Err(ImgError::new(Code::InternalError, "the receive never started")),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pump_refuses_a_stream_longer_than_its_limit() {
        let data = vec![0u8; 3 * CHUNK + 10];
        let mut out = Vec::new();
        assert!(pump(&mut &data[..], &mut out, data.len() as u64).is_ok());
        assert_eq!(out, data);
        let mut out = Vec::new();
        let r = pump(&mut &data[..], &mut out, 2 * CHUNK as u64);
        assert!(matches!(r, Err(PumpErr::Refused(ref m)) if m.contains("larger than")));
        assert!(out.len() <= 2 * CHUNK, "wrote past the limit");
    }

    #[test]
    fn the_quota_follows_image_size_within_the_cap() {
        let m = |extra: serde_json::Value| -> Manifest {
            let mut v = serde_json::json!({
                "v": 2, "uuid": Uuid::new_v4(), "owner": Uuid::nil(), "name": "n",
                "version": "1", "type": "zvol", "os": "other", "files": [],
            });
            for (k, x) in extra.as_object().unwrap() {
                v[k] = x.clone();
            }
            serde_json::from_value(v).unwrap()
        };
        let cfg = Config {
            max_image_size: 1000,
            ..Config::default()
        };
        let mib = |n: u64| n << 20;
        assert_eq!(
            receive_quota(&cfg, &m(serde_json::json!({}))),
            mib(1000 + 250 + 32)
        );
        assert_eq!(
            receive_quota(&cfg, &m(serde_json::json!({"image_size": 100}))),
            mib(100 + 25 + 32)
        );
        assert_eq!(
            receive_quota(&cfg, &m(serde_json::json!({"image_size": 1u64 << 40}))),
            mib(1000 + 250 + 32)
        );
        // Not a number: the cap.
        assert_eq!(
            receive_quota(&cfg, &m(serde_json::json!({"image_size": "9"}))),
            mib(1282)
        );
    }
}
