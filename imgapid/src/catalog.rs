//! The in-memory catalog over [`Storage`]: image records indexed by UUID and
//! sorted by `published_at`, with each public manifest serialized once when it
//! changes so that listing 10,000 images is a filter plus a byte copy.
//!
//! Every change goes through one async writer lock: it reads the current
//! record, persists the new one on the blocking pool, then swaps the index
//! entry. Readers never wait for disk: they see the old entry until the new
//! one is durable, which is what makes activation atomic for clients.
//!
//! When the store is shared with other imgapid replicas (S3), three more
//! things hold: every change also takes the image's store-wide lock
//! ([`Storage::lock`]) and reads the record fresh from the store, so two
//! replicas never both create one UUID or both activate one image; a
//! background task ([`Catalog::refresh`]) re-reads the record listing every
//! `refresh_interval` and fetches what changed, which bounds how long another
//! replica's publish stays invisible here; and a request naming a UUID the
//! index lacks looks it up in the store first ([`Catalog::ensure`]).

use crate::error::{ApiError, ApiResult};
use crate::store::{ImageRecord, Storage};
use bytes::Bytes;
use hyper::StatusCode;
use rvmadm_manifest::{ImageState, Manifest};
use sha1::{Digest, Sha1};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use uuid::Uuid;

/// One image as served: the record plus its precomputed JSON and sort key.
pub struct Entry {
    pub rec: ImageRecord,
    pub state: ImageState,
    /// The public v2 manifest JSON.
    pub json: Bytes,
    /// Hex SHA-1 of `json` (the manifest ETag).
    pub etag: String,
    /// `published_at` as nanoseconds since the epoch (`i128::MIN` if unset).
    pub published_ns: i128,
}

impl Entry {
    fn new(rec: ImageRecord) -> ApiResult<Entry> {
        let state = Manifest::computed_state(rec.activated, rec.manifest.disabled);
        let mut m = rec.manifest.clone();
        m.state = Some(state);
        let json =
            Bytes::from(serde_json::to_vec(&m).map_err(|e| ApiError::internal(e.to_string()))?);
        let etag = hex::encode(Sha1::digest(&json));
        let published_ns = m
            .published_at
            .as_deref()
            .and_then(parse_date_ns)
            .unwrap_or(i128::MIN);
        Ok(Entry {
            rec,
            state,
            json,
            etag,
            published_ns,
        })
    }

    pub fn manifest(&self) -> &Manifest {
        &self.rec.manifest
    }

    fn sort_key(&self) -> (i128, Uuid) {
        (self.published_ns, self.rec.manifest.uuid)
    }
}

/// Parses an RFC 3339 date to nanoseconds since the epoch.
pub fn parse_date_ns(s: &str) -> Option<i128> {
    let d = chrono::DateTime::parse_from_rfc3339(s).ok()?;
    Some(i128::from(d.timestamp()) * 1_000_000_000 + i128::from(d.timestamp_subsec_nanos()))
}

#[derive(Default)]
struct Index {
    by_uuid: HashMap<Uuid, Arc<Entry>>,
    /// Ascending (published_at, uuid): the stable order ListImages pages by.
    sorted: Vec<Arc<Entry>>,
    /// The body of a plain `GET /images` (what imgadm avail and sdc-clients
    /// ask first), built on first use after each change: `[anonymous,
    /// privileged]`, as the two see different images.
    default_list: [Option<Bytes>; 2],
}

impl Index {
    fn rebuild(&mut self) {
        let mut v: Vec<Arc<Entry>> = self.by_uuid.values().cloned().collect();
        v.sort_by_key(|e| e.sort_key());
        self.sorted = v;
        self.default_list = [None, None];
    }
}

/// Shared state: storage, index, the writer lock and in-flight uploads.
pub struct Catalog {
    pub storage: Arc<dyn Storage>,
    index: RwLock<Index>,
    writer: tokio::sync::Mutex<()>,
    uploads: Mutex<HashSet<Uuid>>,
    /// Shared stores only: the store's version tag of each indexed record,
    /// as last listed (what [`Catalog::refresh`] compares against).
    versions: Mutex<HashMap<Uuid, String>>,
}

/// Held while an upload for one image runs; a second upload is refused.
pub struct UploadSlot<'a> {
    catalog: &'a Catalog,
    uuid: Uuid,
}

impl Drop for UploadSlot<'_> {
    fn drop(&mut self) {
        if let Ok(mut set) = self.catalog.uploads.lock() {
            set.remove(&self.uuid);
        }
    }
}

fn poisoned() -> ApiError {
    ApiError::internal("catalog lock poisoned")
}

/// A store lock that could not be had: another replica is writing the image.
fn busy(e: ApiError, io_kind_busy: bool) -> ApiError {
    if io_kind_busy {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "ImageBusy",
            "the image is being changed through another server; try again",
        )
    } else {
        e
    }
}

/// Runs blocking storage work off the async workers.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> ApiResult<T> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(ApiError::from),
        Err(e) => Err(ApiError::internal(format!("storage task failed: {e}"))),
    }
}

impl Catalog {
    /// Loads every record from storage (sweeping crash leftovers).
    pub fn load(storage: Arc<dyn Storage>) -> std::io::Result<Catalog> {
        let records = storage.load()?;
        let mut index = Index::default();
        for rec in records {
            let uuid = rec.manifest.uuid;
            match Entry::new(rec) {
                Ok(e) => {
                    index.by_uuid.insert(uuid, Arc::new(e));
                }
                Err(e) => tracing::warn!(%uuid, error = %e.message, "record skipped"),
            }
        }
        index.rebuild();
        let versions = if storage.refresh_interval().is_some() {
            storage.record_versions()?
        } else {
            HashMap::new()
        };
        Ok(Catalog {
            storage,
            index: RwLock::new(index),
            writer: tokio::sync::Mutex::new(()),
            uploads: Mutex::new(HashSet::new()),
            versions: Mutex::new(versions),
        })
    }

    fn shared(&self) -> bool {
        self.storage.refresh_interval().is_some()
    }

    /// Puts a record read from the store into the index (or removes the
    /// entry when the store has none).
    fn apply(&self, uuid: Uuid, rec: Option<ImageRecord>) -> ApiResult<()> {
        let entry = match rec {
            Some(r) => Some(Arc::new(Entry::new(r)?)),
            None => None,
        };
        let mut idx = self.index.write().map_err(|_| poisoned())?;
        let changed = match entry {
            Some(e) => {
                idx.by_uuid.insert(uuid, e);
                true
            }
            // A miss for an unknown UUID costs no re-sort.
            None => idx.by_uuid.remove(&uuid).is_some(),
        };
        if changed {
            idx.rebuild();
        }
        Ok(())
    }

    /// Shared stores: when the index lacks `uuid`, or holds it unactivated
    /// (a publish in progress, perhaps through another replica), asks the
    /// store, so each step of a publish is seen by every replica at once
    /// rather than after the next refresh. Failures only log: the request
    /// then sees what the index has.
    pub async fn ensure(&self, uuid: Uuid) {
        if !self.shared() || matches!(self.get(uuid), Ok(Some(e)) if e.rec.activated) {
            return;
        }
        let storage = self.storage.clone();
        match blocking(move || storage.get_record(uuid)).await {
            Ok(Some(rec)) => {
                if let Err(e) = self.apply(uuid, Some(rec)) {
                    tracing::warn!(%uuid, error = %e.message, "cannot index record");
                }
            }
            Ok(None) => {
                if let Err(e) = self.apply(uuid, None) {
                    tracing::warn!(%uuid, error = %e.message, "cannot update index");
                }
            }
            Err(e) => tracing::warn!(%uuid, error = %e.message, "record lookup failed"),
        }
    }

    /// Shared stores: re-reads the record listing and fetches every record
    /// whose version changed, dropping those that are gone. Runs under the
    /// writer lock so a listing never undoes one of our own writes.
    pub async fn refresh(&self) -> ApiResult<()> {
        if !self.shared() {
            return Ok(());
        }
        let _w = self.writer.lock().await;
        let storage = self.storage.clone();
        let listed = blocking(move || storage.record_versions()).await?;
        let (changed, gone) = {
            let known = self.versions.lock().map_err(|_| poisoned())?;
            let mut changed: Vec<Uuid> = listed
                .iter()
                .filter(|(u, v)| known.get(u) != Some(v))
                .map(|(u, _)| *u)
                .collect();
            let idx = self.index.read().map_err(|_| poisoned())?;
            let mut gone = Vec::new();
            for u in idx.by_uuid.keys().filter(|u| !listed.contains_key(u)) {
                if known.contains_key(u) {
                    // Listed before, not now: deleted.
                    gone.push(*u);
                } else {
                    // Never listed: found by `ensure` or written here after
                    // the listing was taken; ask for it directly.
                    changed.push(*u);
                }
            }
            (changed, gone)
        };
        if changed.is_empty() && gone.is_empty() {
            return Ok(());
        }
        let storage = self.storage.clone();
        let fetched = blocking(move || {
            changed
                .into_iter()
                .map(|u| Ok((u, storage.get_record(u)?)))
                .collect::<std::io::Result<Vec<_>>>()
        })
        .await?;
        let mut entries = Vec::with_capacity(fetched.len());
        for (u, rec) in fetched {
            match rec.map(Entry::new).transpose() {
                Ok(e) => entries.push((u, e.map(Arc::new))),
                Err(e) => tracing::warn!(uuid = %u, error = %e.message, "record skipped"),
            }
        }
        let mut idx = self.index.write().map_err(|_| poisoned())?;
        for u in &gone {
            idx.by_uuid.remove(u);
        }
        for (u, e) in entries {
            match e {
                Some(e) => idx.by_uuid.insert(u, e),
                None => idx.by_uuid.remove(&u),
            };
        }
        idx.rebuild();
        *self.versions.lock().map_err(|_| poisoned())? = listed;
        Ok(())
    }

    /// Takes the image's store-wide lock (no-op for a single-process store).
    async fn store_lock(&self, uuid: Uuid) -> ApiResult<Option<String>> {
        let storage = self.storage.clone();
        match tokio::task::spawn_blocking(move || storage.lock(uuid)).await {
            Ok(Ok(t)) => Ok(t),
            Ok(Err(e)) => {
                let would_block = e.kind() == std::io::ErrorKind::WouldBlock;
                Err(busy(ApiError::from(e), would_block))
            }
            Err(e) => Err(ApiError::internal(format!("storage task failed: {e}"))),
        }
    }

    async fn store_unlock(&self, token: Option<String>) {
        if token.is_none() {
            return;
        }
        let storage = self.storage.clone();
        if let Err(e) = blocking(move || storage.unlock(token)).await {
            // The claim expires after its lease; others wait until then.
            tracing::warn!(error = %e.message, "cannot release image lock");
        }
    }

    /// The image as it is now: read fresh from a shared store (and put into
    /// the index), or the index entry for a single-process one.
    async fn current(&self, uuid: Uuid) -> ApiResult<Option<Arc<Entry>>> {
        if !self.shared() {
            return self.get(uuid);
        }
        let storage = self.storage.clone();
        let rec = blocking(move || storage.get_record(uuid)).await?;
        self.apply(uuid, rec)?;
        self.get(uuid)
    }

    pub fn get(&self, uuid: Uuid) -> ApiResult<Option<Arc<Entry>>> {
        Ok(self
            .index
            .read()
            .map_err(|_| poisoned())?
            .by_uuid
            .get(&uuid)
            .cloned())
    }

    /// Runs `f` with the sorted entries without copying the vector.
    pub fn with_sorted<T>(&self, f: impl FnOnce(&[Arc<Entry>]) -> T) -> ApiResult<T> {
        let idx = self.index.read().map_err(|_| poisoned())?;
        Ok(f(&idx.sorted))
    }

    /// The cached body for an unfiltered list, or `build` run over the
    /// sorted entries and remembered until the next change.
    pub fn default_list(
        &self,
        privileged: bool,
        build: impl FnOnce(&[Arc<Entry>]) -> Vec<u8>,
    ) -> ApiResult<Bytes> {
        let slot = usize::from(privileged);
        if let Some(b) = &self.index.read().map_err(|_| poisoned())?.default_list[slot] {
            return Ok(b.clone());
        }
        let mut idx = self.index.write().map_err(|_| poisoned())?;
        if let Some(b) = &idx.default_list[slot] {
            return Ok(b.clone());
        }
        let body = Bytes::from(build(&idx.sorted));
        idx.default_list[slot] = Some(body.clone());
        Ok(body)
    }

    /// Counts of images per state (for /metrics).
    pub fn state_counts(&self) -> ApiResult<HashMap<&'static str, u64>> {
        let idx = self.index.read().map_err(|_| poisoned())?;
        let mut m = HashMap::new();
        for e in idx.by_uuid.values() {
            *m.entry(e.state.as_str()).or_insert(0) += 1;
        }
        Ok(m)
    }

    /// Claims the single upload slot of an image.
    pub fn begin_upload(&self, uuid: Uuid) -> ApiResult<UploadSlot<'_>> {
        let mut set = self.uploads.lock().map_err(|_| poisoned())?;
        if !set.insert(uuid) {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "UploadInProgress",
                format!("another upload for image {uuid} is running"),
            ));
        }
        Ok(UploadSlot {
            catalog: self,
            uuid,
        })
    }

    /// Creates a new record; fails if the uuid exists.
    pub async fn insert(&self, rec: ImageRecord) -> ApiResult<Arc<Entry>> {
        let _w = self.writer.lock().await;
        let uuid = rec.manifest.uuid;
        let token = self.store_lock(uuid).await?;
        let res = async {
            if self.current(uuid).await?.is_some() {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "ImageUuidAlreadyExists",
                    format!("image {uuid} already exists"),
                ));
            }
            self.persist(rec).await
        }
        .await;
        self.store_unlock(token).await;
        res
    }

    /// Read-modify-write of one record under the writer lock. `f` sees the
    /// current record and returns the new one (or an error, changing nothing).
    /// Returns the new entry and the record it replaced.
    pub async fn update(
        &self,
        uuid: Uuid,
        f: impl FnOnce(&ImageRecord) -> ApiResult<ImageRecord>,
    ) -> ApiResult<(Arc<Entry>, Arc<Entry>)> {
        let _w = self.writer.lock().await;
        let token = self.store_lock(uuid).await?;
        let res = async {
            let old = self
                .current(uuid)
                .await?
                .ok_or_else(|| ApiError::not_found(format!("image {uuid} not found")))?;
            let rec = f(&old.rec)?;
            let new = self.persist(rec).await?;
            Ok((new, old))
        }
        .await;
        self.store_unlock(token).await;
        res
    }

    async fn persist(&self, rec: ImageRecord) -> ApiResult<Arc<Entry>> {
        let entry = Arc::new(Entry::new(rec)?);
        let storage = self.storage.clone();
        let to_write = entry.rec.clone();
        blocking(move || storage.put_record(&to_write)).await?;
        let mut idx = self.index.write().map_err(|_| poisoned())?;
        idx.by_uuid.insert(entry.rec.manifest.uuid, entry.clone());
        idx.rebuild();
        Ok(entry)
    }

    /// Deletes an image and its blobs; refuses while another image names it
    /// as `origin` (clients could no longer import that one).
    pub async fn delete(&self, uuid: Uuid) -> ApiResult<()> {
        let _w = self.writer.lock().await;
        let token = self.store_lock(uuid).await?;
        let res = self.delete_locked(uuid).await;
        self.store_unlock(token).await;
        res
    }

    async fn delete_locked(&self, uuid: Uuid) -> ApiResult<()> {
        let old = self
            .current(uuid)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("image {uuid} not found")))?;
        let dependents: Vec<String> = self.with_sorted(|all| {
            all.iter()
                .filter(|e| e.rec.manifest.origin == Some(uuid))
                .map(|e| e.rec.manifest.uuid.to_string())
                .collect()
        })?;
        if !dependents.is_empty() {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "ImageHasDependentImages",
                format!("image {uuid} is the origin of {}", dependents.join(", ")),
            ));
        }
        let storage = self.storage.clone();
        let keys: Vec<String> = old.rec.keys().map(str::to_string).collect();
        blocking(move || {
            storage.delete_record(uuid)?;
            for k in keys {
                // The record is gone, so a failure here only leaves garbage
                // that the next start-up sweeps.
                if let Err(e) = storage.delete_blob(&k) {
                    tracing::warn!(blob = %k, error = %e, "cannot remove blob");
                }
            }
            Ok(())
        })
        .await?;
        let mut idx = self.index.write().map_err(|_| poisoned())?;
        idx.by_uuid.remove(&uuid);
        idx.rebuild();
        Ok(())
    }
}
