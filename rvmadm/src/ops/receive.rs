//! `vmadm receive`: create a VM from a bundle written by `vmadm send`
//! ([`super::send`], format in [`super::bundle`]).
//!
//! A bundle is not trusted with the host. Before any allocation or zfs
//! call, every chunk header is checked (sizes, names: the JSON first, then
//! streams named `<pool>/<uuid>@<snap>` and, when the VM has
//! `delegate_dataset`, `<pool>/<uuid>/data@<snap>`, for the uuid of the
//! JSON, each dataset's chain ending in `@sending`). Each stream's first
//! record must be a plain stream of one snapshot
//! ([`crate::zfs::stream_header`]): the first of a dataset full, the rest
//! incremental on top of exactly the snapshot received just before (its
//! from-guid is that stream's guid). A compound stream, such as the
//! `zfs send -R` stream SmartOS writes, is refused.
//!
//! The streams are received unmounted (`-u`) into
//! `<pool>/<uuid>-receiving/vm[/data]`, inside a container with
//! `canmount=off`, `mountpoint=none` and a quota from the VM's `quota`
//! capped by `max_receive_size` (vmadm.toml), so a stream can neither
//! mount anything nor fill the pool, whatever quota the bundle claims.
//! After the last one the tree must hold only those datasets and
//! snapshots, without origins or properties of their own. Only then is
//! `vm` renamed to `<pool>/<uuid>` (with `canmount=noauto`, since
//! zfs-fuse's rename would mount it and `data` through whatever the stream
//! put at `<zonepath>/data`), its mountpoint compared with the zonepath —
//! the pool's mountpoint joined with the uuid, never read from the bundle —
//! the layout checked before `data` is mounted, and the quota set.
//!
//! A receive that fails at any point leaves no record and no dataset. A
//! rename that reports failure is not taken at its word (zfs-fuse has
//! renamed and then failed): `vm` carries the receive's token by then, so
//! a `<pool>/<uuid>` carrying it is this receive's, renamed. A crash leaves
//! an incomplete record and the container, which carries the token too and
//! is named in the intent slot: the next create, delete or receive removes
//! both (`ops::create::recover`).

use super::bundle::{self, Chunk, Pieces};
use super::context::Ctx;
use super::create::{crash_point, intent_token, seal_zonepath, sweep_incomplete, vm_clone_props};
use super::error::{OpsError, OpsResult};
use super::send::SENDING;
use crate::spec::fs_policy::FsRequest;
use crate::spec::{self, Action, Field, VmRecord};
use crate::store::Receiving;
use crate::zfs::stream_header::{self, Expect};
use crate::zfs::{valid_name, Zfs, ZfsError};
use serde_json::{Map, Value};
use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};
use uuid::Uuid;

/// Largest JSON chunk accepted.
const MAX_JSON: usize = 1 << 20;
/// The stream bytes a bundle may bring, as a multiple of its bound
/// ([`receive_bound`]): ZFS streams of compressible or sparse data are
/// larger than what they take on disk, but not without bound.
const STREAM_QUOTA_FACTOR: u64 = 8;
/// The user property a receive's container, and `vm` before its rename,
/// carry the receive's token in: proof, after a crash or a rename that
/// reported failure, that the dataset is that receive's.
pub(crate) const RECEIVE_TOKEN: &str = "rvmadm:receive";

fn invalid(why: impl std::fmt::Display) -> OpsError {
    OpsError::Failed(format!("Invalid VM bundle: {why}"))
}

/// Which of the VM's two datasets a stream is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Which {
    Vm,
    Data,
}

/// A stream chunk's name, checked: `<pool>/<uuid>[/data]@<snap>` with the
/// bundle's uuid, a pool name of one component and a snapshot name ZFS and
/// [`valid_name`] both take.
#[derive(Debug, Clone, PartialEq, Eq)]
struct StreamName {
    pool: String,
    which: Which,
    snap: String,
}

fn parse_stream_name(name: &str, uuid: &Uuid) -> OpsResult<StreamName> {
    let refuse = || {
        invalid(format!(
            "chunk {name:?} names no stream of this VM (expected <pool>/{uuid}@<snapshot> or <pool>/{uuid}/data@<snapshot>)"
        ))
    };
    if !valid_name(name) {
        return Err(refuse());
    }
    let (ds, snap) = name.split_once('@').ok_or_else(refuse)?;
    let parts: Vec<&str> = ds.split('/').collect();
    let which = match parts.as_slice() {
        [_, u] if *u == uuid.to_string() => Which::Vm,
        [_, u, "data"] if *u == uuid.to_string() => Which::Data,
        _ => return Err(refuse()),
    };
    if snap.len() > 128 || snap.starts_with('-') {
        return Err(refuse());
    }
    Ok(StreamName {
        pool: parts[0].to_string(),
        which,
        snap: snap.to_string(),
    })
}

/// The VM object of the JSON chunk, checked as a create payload.
struct Payload {
    uuid: Uuid,
    /// As sent.
    vm: Map<String, Value>,
    /// What passed the create checks.
    checked: Map<String, Value>,
}

fn read_json(input: &mut dyn Read) -> OpsResult<Payload> {
    let first = bundle::next_header(input)?.ok_or_else(|| invalid("the stream is empty"))?;
    if first.name != "JSON" || first.size > MAX_JSON {
        return Err(invalid(
            "the first chunk must be the VM's JSON (at most 1 MiB)",
        ));
    }
    let json = bundle::read_content(input, &first)?;
    let vm: Map<String, Value> = match serde_json::from_slice(&json) {
        Ok(Value::Object(m)) => m,
        _ => return Err(invalid("the JSON chunk is not a VM object")),
    };
    let uuid = vm
        .get("uuid")
        .and_then(Value::as_str)
        .and_then(|u| Uuid::parse_str(u).ok())
        .ok_or_else(|| invalid("no valid uuid"))?;
    // The object must pass the same checks as a create payload; fields
    // that only a host writes (paths, timestamps, what the datasets hold)
    // are set again here.
    let mut payload = vm.clone();
    for k in [
        "zonepath",
        "zfs_filesystem",
        "create_timestamp",
        "last_modified",
        "v",
        "snapshots",
        "datasets",
        "state",
        "zone_state",
        "server_uuid",
    ] {
        payload.remove(k);
    }
    let checked = spec::check(&payload, Action::Create);
    if checked.errors.blocks() {
        return Err(OpsError::Invalid(checked.errors));
    }
    Ok(Payload {
        uuid,
        vm,
        checked: checked.payload,
    })
}

/// What the streams received so far say, to judge the next one.
#[derive(Default)]
struct Chain {
    /// The source pool every stream name must share.
    pool: Option<String>,
    /// The dataset being received, with the snapshots it got (oldest
    /// first) and the guid of the last one.
    current: Option<(Which, Vec<String>, u64)>,
    /// Snapshots of the VM's dataset, once its chain is complete.
    vm_snaps: Option<Vec<String>>,
    /// Snapshots of `data`, once its chain is complete.
    data_snaps: Option<Vec<String>>,
    /// Stream bytes still allowed.
    budget: u64,
}

impl Chain {
    /// At the end of the bundle: every chain that must come came whole.
    fn complete(&self, delegate: bool) -> OpsResult<()> {
        if self.current.is_some() || self.vm_snaps.is_none() {
            return Err(invalid(format!(
                "it ends before the VM's dataset ended with @{SENDING}"
            )));
        }
        if delegate && self.data_snaps.is_none() {
            return Err(invalid(
                "the VM has delegate_dataset, but no data stream ending with @sending came",
            ));
        }
        Ok(())
    }

    /// Judges the next stream's name against what came before; returns
    /// what kind of stream it must be (full or incremental on top of the
    /// given guid).
    fn next(&mut self, name: &StreamName, delegate: bool) -> OpsResult<Option<u64>> {
        if *self.pool.get_or_insert_with(|| name.pool.clone()) != name.pool {
            return Err(invalid(format!(
                "its streams name two pools ({} and {})",
                self.pool.as_deref().unwrap_or(""),
                name.pool
            )));
        }
        if name.which == Which::Data && !delegate {
            return Err(invalid(
                "it carries a delegated dataset, but the VM has no delegate_dataset",
            ));
        }
        match &self.current {
            Some((which, snaps, guid)) if *which == name.which => {
                if snaps.contains(&name.snap) {
                    return Err(invalid(format!("snapshot {} comes twice", name.snap)));
                }
                Ok(Some(*guid))
            }
            Some(_) => Err(invalid(format!(
                "stream {} comes before the chain of its dataset ended in @{SENDING}",
                name.snap
            ))),
            None => {
                let done = match name.which {
                    Which::Vm => self.vm_snaps.is_some() || self.data_snaps.is_some(),
                    Which::Data => self.vm_snaps.is_none() || self.data_snaps.is_some(),
                };
                if done {
                    return Err(invalid(
                        "its streams are out of order (the VM's dataset first, then data, each once)",
                    ));
                }
                Ok(None)
            }
        }
    }

    /// Records a received stream; a dataset's chain ends with `@sending`.
    fn received(&mut self, name: &StreamName, to_guid: u64) {
        let mut snaps = match self.current.take() {
            Some((_, snaps, _)) => snaps,
            None => Vec::new(),
        };
        snaps.push(name.snap.clone());
        if name.snap == SENDING {
            match name.which {
                Which::Vm => self.vm_snaps = Some(snaps),
                Which::Data => self.data_snaps = Some(snaps),
            }
        } else {
            self.current = Some((name.which, snaps, to_guid));
        }
    }
}

/// Creates a VM from a bundle on `input`; returns its uuid. The VM ends
/// stopped, as in SmartOS.
pub fn receive(ctx: &Ctx, input: &mut dyn Read) -> OpsResult<Uuid> {
    let p = read_json(input)?;
    let uuid = p.uuid;
    let mut obj = VmRecord::from_map(p.checked.clone());
    let delegate = obj.delegate_dataset == Some(true);
    let bound = receive_bound(obj.quota.unwrap_or(0), ctx.config.max_receive_size);

    // The first stream's header, judged before anything is made.
    let first =
        bundle::next_header(input)?.ok_or_else(|| invalid("it holds no dataset after the JSON"))?;
    if first.size == 0 && !first.name.contains('@') {
        return Err(unframed(input, &first));
    }
    let first_name = parse_stream_name(&first.name, &uuid)?;
    bundle::check_piece(&first)?;

    let pool = ctx.config.pool.clone();
    // What create refuses against this host, refused here too: the bundle
    // is not trusted to name host directories outside the allowlist.
    let fs_objs = p.checked.get("filesystems").and_then(Value::as_array);
    ctx.check_filesystems(
        &pool,
        &FsRequest::from_objects(fs_objs.into_iter().flatten().filter_map(Value::as_object)),
    )?;
    let dataset = format!("{pool}/{uuid}");
    let container = format!("{pool}/{uuid}-receiving");
    let received = format!("{container}/vm");
    let token = intent_token();
    let global = ctx.store.lock_global()?;
    // From here to its end this receive, and every zfs process it starts,
    // holds the global lock: the slot names its container for whoever
    // takes the lock next, should it die.
    sweep_incomplete(
        ctx,
        &global,
        &Receiving {
            container: container.clone(),
            token: token.clone(),
        },
    )?;
    let zfs = ctx.zfs();
    if ctx.store.exists(&uuid) || zfs.exists(&dataset)? {
        return Err(OpsError::Failed(format!(
            "VM with UUID {uuid} already exists"
        )));
    }
    // Nor to take another VM's MAC or IP (under the global lock, as in
    // create, so no create or NIC update slips in before the save).
    ctx.check_addresses_free(&uuid, &obj)?;
    let zonepath = zonepath_on(&zfs, &pool, &uuid)?;
    // Left by a receive of this uuid that died before containers carried
    // a token (the sweep above removed any that carries one); ours by its
    // name, with no record of this uuid and the global lock held.
    zfs.destroy(&container, true)?;
    for (k, v) in &p.vm {
        // (zonename stayed in the payload and was checked with it.)
        if k == "create_timestamp" {
            obj.set(k, v.clone());
        }
    }
    obj.set(Field::Uuid.name(), uuid.to_string().into());
    obj.set(Field::Zpool.name(), pool.clone().into());
    obj.set(Field::ZfsFilesystem.name(), dataset.clone().into());
    obj.set(
        Field::Zonepath.name(),
        zonepath.display().to_string().into(),
    );
    obj.set(Field::Incomplete.name(), Value::Bool(true));
    ctx.store.save(&uuid, &obj)?;

    let mut renamed = Renamed::No;
    let rx = Receiver {
        zfs: &zfs,
        hold: global.as_fd(),
        bound,
    };
    let result = (|| -> OpsResult<Chain> {
        zfs.create(
            &container,
            &[
                ("quota", &container_quota(bound)),
                ("canmount", "off"),
                ("mountpoint", "none"),
                (RECEIVE_TOKEN, &token),
            ],
        )?;
        let mut chain = Chain {
            budget: stream_budget(bound),
            ..Chain::default()
        };
        let mut next = Some((first, first_name));
        while let Some((chunk, name)) = next.take() {
            let from = chain.next(&name, delegate)?;
            let target = match name.which {
                Which::Vm => format!("{received}@{}", name.snap),
                Which::Data => format!("{received}/data@{}", name.snap),
            };
            let (to_guid, bytes) = receive_stream(&rx, input, &chunk, &target, from, chain.budget)?;
            chain.budget = chain.budget.saturating_sub(bytes);
            chain.received(&name, to_guid);
            next = match bundle::next_header(input)? {
                None => None,
                Some(c) => {
                    let n = parse_stream_name(&c.name, &uuid)?;
                    Some((c, n))
                }
            };
        }
        chain.complete(delegate)?;
        verify_received(&zfs, &container, &received, &chain)?;
        zfs.destroy(&format!("{received}@{SENDING}"), true)?;
        let datasets: Vec<String> = if delegate {
            vec![received.clone(), format!("{received}/data")]
        } else {
            vec![received.clone()]
        };
        // zfs-fuse mounts a renamed dataset and its children where they
        // now inherit; noauto keeps both unmounted until checked.
        for ds in &datasets {
            zfs.set(ds, "canmount", "noauto")?;
        }
        // Its own token goes with it through the rename (the container's
        // stays behind): what tells a rename that failed from one that
        // failed after renaming.
        zfs.set(&received, RECEIVE_TOKEN, &token)?;
        // The rename's process holds the global lock too: a receive killed
        // now keeps the next holder's sweep waiting until the dataset has
        // its final name, so the sweep never misses it.
        renamed = Renamed::Maybe;
        if let Err(e) = rename_to_name(&zfs, &received, &dataset, global.as_fd()) {
            match carries_token(&zfs, &dataset, &token) {
                Ok(true) => {
                    tracing::warn!(%dataset, error = %e, "zfs rename reported a failure after renaming; going on");
                }
                Ok(false) => {
                    renamed = Renamed::No;
                    return Err(e.into());
                }
                Err(check) => {
                    return Err(OpsError::Failed(format!(
                        "{e}; whether {dataset} was made anyway cannot be told: {check}"
                    )))
                }
            }
        }
        renamed = Renamed::Yes;
        crash_point("receive:renamed");
        for ds in [dataset.clone(), format!("{dataset}/data")]
            .iter()
            .take(datasets.len())
        {
            if zfs.get(ds, "mounted")? == "yes" {
                return Err(OpsError::Failed(format!(
                    "{ds} was mounted by its rename, before its layout was checked"
                )));
            }
        }
        Ok(chain)
    })();
    let undo = |e: OpsError, renamed: Renamed| {
        // `<pool>/<uuid>` is this receive's once renamed; after a rename
        // of unknown outcome, only when it carries this receive's token.
        let ours = match renamed {
            Renamed::No => Ok(false),
            Renamed::Yes => Ok(true),
            Renamed::Maybe => carries_token(&zfs, &dataset, &token),
        };
        let cleared = match ours {
            Ok(true) => zfs.destroy(&dataset, true).is_ok(),
            Ok(false) => true,
            Err(_) => false,
        };
        let _ = zfs.destroy(&container, true);
        if cleared {
            let _ = ctx.store.remove(&uuid);
        } else {
            // Without its record nothing would know the dataset; the
            // incomplete record makes the next create or delete sweep it.
            tracing::warn!(%dataset, "could not remove the received dataset; its incomplete record stays for the next sweep");
        }
        e
    };
    let chain = result.map_err(|e| undo(e, renamed))?;
    let finish = (|| -> OpsResult<()> {
        place(ctx, &zfs, &pool, &dataset, &zonepath, delegate)?;
        for (prop, value) in vm_clone_props(obj.quota) {
            zfs.set(&dataset, prop, &value)?;
        }
        // Empty now; a leftover is removed by the next holder of the
        // global lock (the slot names it).
        if let Err(e) = zfs.destroy(&container, false) {
            tracing::warn!(%container, error = %e, "could not remove the receive container");
        }
        // The record lists the vmadm snapshots that arrived.
        let arrived = chain.vm_snaps.unwrap_or_default();
        let listed: Vec<Value> =
            p.vm.get("snapshots")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter(|s| {
                    s.get("name")
                        .and_then(Value::as_str)
                        .is_some_and(|n| arrived.iter().any(|a| *a == format!("vmsnap-{n}")))
                })
                .cloned()
                .collect();
        obj.set(Field::Snapshots.name(), Value::Array(listed));
        if delegate {
            obj.set(
                Field::Datasets.name(),
                Value::Array(vec![format!("{dataset}/data").into()]),
            );
        }
        obj.remove(Field::Incomplete.name());
        obj.set(Field::Autoboot.name(), Value::Bool(false));
        ctx.store.save(&uuid, &obj)?;
        Ok(())
    })();
    finish.map_err(|e| undo(e, Renamed::Yes))?;
    Ok(uuid)
}

/// Whether the rename to the VM's name happened, for the undo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Renamed {
    No,
    /// Tried, outcome unknown: `<pool>/<uuid>` is ours if it carries the
    /// token.
    Maybe,
    Yes,
}

/// How the streams are received: by whom, holding which lock, within
/// which bound.
struct Receiver<'a> {
    zfs: &'a Zfs<'a>,
    /// The global lock, held by each `zfs receive` too (see
    /// [`Zfs::receive_holding`]).
    hold: BorrowedFd<'a>,
    /// Bytes the VM may take on disk ([`receive_bound`]).
    bound: u64,
}

/// The rename of `vm` to the VM's name, by a process holding the global
/// lock. In a debug build of the binaries `RVMADM_FAIL_AT=receive:rename`
/// makes a rename that landed report failure, as zfs-fuse's has, for the
/// integration tests; a release build has no hook.
fn rename_to_name(
    zfs: &Zfs,
    received: &str,
    dataset: &str,
    hold: BorrowedFd<'_>,
) -> Result<(), ZfsError> {
    zfs.rename_holding(received, dataset, hold)?;
    #[cfg(all(debug_assertions, not(test)))]
    if std::env::var_os("RVMADM_FAIL_AT").is_some_and(|v| v == "receive:rename") {
        return Err(crate::exec::ExecError::Failed {
            argv: crate::exec::Argv::new(["zfs", "rename", received, dataset]),
            status: 1,
            stderr: "failure reported after renaming (RVMADM_FAIL_AT)".into(),
        }
        .into());
    }
    Ok(())
}

/// Whether `dataset` carries `token` in [`RECEIVE_TOKEN`]; a missing
/// dataset does not.
fn carries_token(zfs: &Zfs, dataset: &str, token: &str) -> Result<bool, ZfsError> {
    match zfs.get(dataset, RECEIVE_TOKEN) {
        Ok(t) => Ok(t == token),
        Err(ZfsError::NotFound(_)) => Ok(false),
        Err(e) => Err(e),
    }
}

/// The bytes a received VM may take on disk: its quota when it has one
/// below `max_mib` (vmadm.toml's `max_receive_size`), else `max_mib`. The
/// quota comes from the bundle, so it never lifts the bound alone.
fn receive_bound(quota_gib: u64, max_mib: u64) -> u64 {
    let max = max_mib.saturating_mul(1 << 20);
    match quota_gib {
        0 => max,
        q => q.saturating_mul(1 << 30).min(max),
    }
}

/// The stream bytes a bundle may bring, for a VM bound to `bound` bytes.
fn stream_budget(bound: u64) -> u64 {
    bound.saturating_mul(STREAM_QUOTA_FACTOR)
}

/// The container's quota: the bound with room for what a stream costs
/// beyond the data (a quarter and 32 MiB, as for image imports).
fn container_quota(bound: u64) -> String {
    // A quota beyond what ZFS can count is no bound: zfs refuses it.
    bound
        .saturating_add(bound / 4)
        .saturating_add(32 << 20)
        .to_string()
}

/// The refusal of a bundle that brings more than its bound.
fn too_big(bound: u64) -> OpsError {
    invalid(format!(
        "refused, it brings more than this host takes for it: {} MiB on disk and {}× that of stream (the VM's quota, or max_receive_size in vmadm.toml when that is smaller or the VM has none)",
        bound >> 20,
        STREAM_QUOTA_FACTOR
    ))
}

/// A dataset chunk of size 0 without `@`: SmartOS's layout, a whole
/// `zfs send -R` stream up to a point only ZFS finds. Refused, saying why.
fn unframed(input: &mut dyn Read, chunk: &Chunk) -> OpsError {
    let head = match stream_header::read_begin(input) {
        Ok(h) => h,
        Err(e) => return OpsError::Failed(format!("cannot read the stream: {e}")),
    };
    match stream_header::check(&head, Expect::Full) {
        Err(e @ stream_header::StreamHeaderError::Compound) => invalid(format!(
            "{e}. Chunk {} is a SmartOS-style zfs send -R stream, which rvmadm does not receive; send the VM with rvmadm's vmadm send",
            chunk.name
        )),
        Err(e) => invalid(e),
        Ok(_) => invalid(format!(
            "chunk {} has no length (an unframed stream); rvmadm receives streams framed in sized chunks named <dataset>@<snapshot>",
            chunk.name
        )),
    }
}

/// Receives one framed stream into `target` (`dataset@snap`): its first
/// record must be a plain stream of the chunk's snapshot, full when `from`
/// is `None`, else incremental on top of the snapshot whose guid is
/// `from`. Returns the guid it made and its length.
fn receive_stream(
    rx: &Receiver,
    input: &mut dyn Read,
    first: &Chunk,
    target: &str,
    from: Option<u64>,
    budget: u64,
) -> OpsResult<(u64, u64)> {
    let (mut pieces, head, begin) = open_stream(input, first, from, budget)?;
    let mut child = rx.zfs.receive_holding(target, rx.hold)?;
    let mut buf = vec![0u8; 1 << 16];
    let mut wrote = child.write_all(&head);
    crash_point("receive:streaming");
    let mut read_err = None;
    while wrote.is_ok() {
        let n = match pieces.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                read_err = Some(e);
                break;
            }
        };
        wrote = child.write_all(&buf[..n]);
    }
    // Never killed (that wedges zfs-fuse): its stdin closes, and a cut
    // stream makes it fail by itself.
    let out = child.wait().map_err(ZfsError::from)?;
    if pieces.total() > budget {
        return Err(too_big(rx.bound));
    }
    if let Some(e) = read_err {
        return Err(invalid(e));
    }
    if !out.success() && crate::image::import::out_of_space(&out.stderr_str()) {
        return Err(too_big(rx.bound));
    }
    if !out.success() {
        return Err(invalid(format!(
            "zfs receive of {} failed: {}",
            first.name,
            out.stderr_str().trim()
        )));
    }
    if let Err(e) = wrote {
        return Err(invalid(format!(
            "zfs receive of {} stopped before the end of its chunks ({e})",
            first.name
        )));
    }
    if !pieces.ended() {
        return Err(invalid(format!("stream {} did not end", first.name)));
    }
    // The head was read through `pieces`: its total counts it already.
    Ok((begin.to_guid, pieces.total()))
}

/// Starts reading one framed stream: its pieces, and its first record
/// checked against the chunk's name and `from` (see [`receive_stream`]).
fn open_stream<'a>(
    input: &'a mut dyn Read,
    first: &Chunk,
    from: Option<u64>,
    budget: u64,
) -> OpsResult<(Pieces<'a>, Vec<u8>, stream_header::Begin)> {
    let mut pieces = Pieces::new(input, first, budget)?;
    let head = stream_header::read_begin(&mut pieces).map_err(invalid)?;
    let expect = match from {
        None => Expect::Full,
        Some(_) => Expect::Incremental,
    };
    let begin = stream_header::check(&head, expect)
        .map_err(|e| invalid(format!("stream {}: {e}", first.name)))?;
    if begin.to_name != first.name {
        return Err(invalid(format!(
            "chunk {} holds a stream of {}",
            first.name, begin.to_name
        )));
    }
    if from.is_some() && begin.from_guid != from {
        return Err(invalid(format!(
            "stream {} is incremental on top of another snapshot than the one received before it",
            first.name
        )));
    }
    Ok((pieces, head, begin))
}

/// Runs every check of [`receive`] that needs no ZFS and no host over a
/// whole bundle: the JSON, each chunk's name and size, each stream's first
/// record and its place in its dataset's chain, the pieces' framing and
/// the end of each chain. Stream contents are read and dropped. For the
/// fuzz targets in `fuzz/` (a bundle that passes here still meets
/// `zfs receive`).
#[doc(hidden)]
pub fn check_bundle(input: &mut dyn Read) -> OpsResult<Uuid> {
    let p = read_json(input)?;
    let obj = VmRecord::from_map(p.checked);
    let delegate = obj.delegate_dataset == Some(true);
    let bound = receive_bound(
        obj.quota.unwrap_or(0),
        crate::config::Config::default().max_receive_size,
    );
    let mut chain = Chain {
        budget: stream_budget(bound),
        ..Chain::default()
    };
    let mut any = false;
    while let Some(chunk) = bundle::next_header(input)? {
        if !any && chunk.size == 0 && !chunk.name.contains('@') {
            return Err(unframed(input, &chunk));
        }
        any = true;
        let name = parse_stream_name(&chunk.name, &p.uuid)?;
        let from = chain.next(&name, delegate)?;
        let (mut pieces, _, begin) = open_stream(input, &chunk, from, chain.budget)?;
        std::io::copy(&mut pieces, &mut std::io::sink()).map_err(invalid)?;
        if !pieces.ended() {
            return Err(invalid(format!("stream {} did not end", chunk.name)));
        }
        chain.budget = chain.budget.saturating_sub(pieces.total());
        chain.received(&name, begin.to_guid);
    }
    if !any {
        return Err(invalid("it holds no dataset after the JSON"));
    }
    chain.complete(delegate)?;
    Ok(p.uuid)
}

/// Refuses what plain streams cannot have made: any dataset or snapshot in
/// the container besides those received, an origin, or a property set on
/// `vm` or `data`.
fn verify_received(zfs: &Zfs, container: &str, received: &str, chain: &Chain) -> OpsResult<()> {
    let data = format!("{received}/data");
    let mut want: Vec<String> = vec![container.to_string(), received.to_string()];
    for s in chain.vm_snaps.iter().flatten() {
        want.push(format!("{received}@{s}"));
    }
    if let Some(snaps) = &chain.data_snaps {
        want.push(data.clone());
        for s in snaps {
            want.push(format!("{data}@{s}"));
        }
    }
    let tree = zfs.tree(container)?;
    let extra: Vec<&str> = tree
        .iter()
        .filter(|(n, origin)| origin.is_some() || !want.contains(n))
        .map(|(n, _)| n.as_str())
        .collect();
    if !extra.is_empty() || tree.len() != want.len() {
        return Err(invalid(format!(
            "refused, its streams made other datasets, snapshots or clones ({})",
            extra.join(", ")
        )));
    }
    let mut own = Vec::new();
    for ds in [received.to_string(), data] {
        if chain.data_snaps.is_none() && ds != received {
            continue;
        }
        for (p, _, src) in zfs.own_properties(&ds)? {
            own.push(format!("{ds}: {p} ({src})"));
        }
    }
    if !own.is_empty() {
        return Err(invalid(format!(
            "refused, its streams set properties: {}",
            own.join(", ")
        )));
    }
    Ok(())
}

/// Mounts the renamed dataset where the record says, and `data` only after
/// the layout check found `<zonepath>/data` a real directory.
fn place(
    ctx: &Ctx,
    zfs: &Zfs,
    pool: &str,
    dataset: &str,
    zonepath: &Path,
    delegate: bool,
) -> OpsResult<()> {
    let mp = zfs.mountpoint(dataset)?;
    if mp != zonepath {
        return Err(invalid(format!(
            "refused, {dataset} would mount on {}, not {}",
            mp.display(),
            zonepath.display()
        )));
    }
    zfs.mount(dataset)?;
    seal_zonepath(ctx, pool, dataset, zonepath)?;
    if delegate {
        let data = format!("{dataset}/data");
        ctx.driver.check_layout(zonepath)?;
        let dmp = zfs.mountpoint(&data)?;
        if dmp != zonepath.join("data") {
            return Err(invalid(format!(
                "refused, {data} would mount on {}",
                dmp.display()
            )));
        }
        zfs.mount(&data)?;
        zfs.set(&data, "canmount", "on")?;
    }
    zfs.set(dataset, "canmount", "on")?;
    Ok(())
}

/// The zonepath of VM `uuid` on `pool`: the pool's own mountpoint joined
/// with the uuid. A pool without a usable mountpoint is refused.
fn zonepath_on(zfs: &Zfs, pool: &str, uuid: &Uuid) -> OpsResult<PathBuf> {
    let mp = zfs.mountpoint(pool)?;
    let usable = mp.is_absolute()
        && mp
            .components()
            .all(|c| !matches!(c, std::path::Component::ParentDir));
    if !usable {
        return Err(OpsError::Failed(format!(
            "pool {pool} has no usable mountpoint ({}); cannot place a VM on it",
            mp.display()
        )));
    }
    Ok(Path::new(&mp).join(uuid.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const U: &str = "6b8b4567-327b-4c4e-8d8e-1b2c3d4e5f60";

    #[test]
    fn stream_names_must_be_this_vms() {
        let uuid = Uuid::parse_str(U).unwrap();
        let n = parse_stream_name(&format!("zones/{U}@vmsnap-a"), &uuid).unwrap();
        assert_eq!(
            (n.pool.as_str(), n.which, n.snap.as_str()),
            ("zones", Which::Vm, "vmsnap-a")
        );
        let n = parse_stream_name(&format!("zones/{U}/data@sending"), &uuid).unwrap();
        assert_eq!(n.which, Which::Data);
        for bad in [
            format!("zones/{U}"),
            format!("zones/{U}/other@s"),
            "zones/6b8b4567-327b-4c4e-8d8e-1b2c3d4e5f61@s".to_string(),
            format!("a/zones/{U}@s"),
            format!("zones/{U}@s@t"),
            format!("zones/{U}@-R"),
            format!("zones/{U}@../x"),
            format!("zones/{U}@"),
            "JSON".to_string(),
        ] {
            assert!(parse_stream_name(&bad, &uuid).is_err(), "{bad}");
        }
    }

    fn name(which: Which, snap: &str) -> StreamName {
        StreamName {
            pool: "zones".into(),
            which,
            snap: snap.into(),
        }
    }

    #[test]
    fn the_chain_wants_vm_then_data_each_ending_in_sending() {
        let mut c = Chain::default();
        assert_eq!(c.next(&name(Which::Vm, "a"), true).unwrap(), None);
        c.received(&name(Which::Vm, "a"), 11);
        assert_eq!(c.next(&name(Which::Vm, "b"), true).unwrap(), Some(11));
        assert!(c.next(&name(Which::Vm, "a"), true).is_err(), "twice");
        assert!(
            c.next(&name(Which::Data, "x"), true).is_err(),
            "vm not done"
        );
        c.received(&name(Which::Vm, "b"), 12);
        c.received(&name(Which::Vm, SENDING), 13);
        assert_eq!(c.vm_snaps.as_deref().map(<[String]>::len), Some(3));
        assert!(c.next(&name(Which::Vm, "c"), true).is_err(), "vm again");
        assert!(
            c.next(&name(Which::Data, "x"), false).is_err(),
            "no delegate"
        );
        let mut other = name(Which::Data, "x");
        other.pool = "tank".into();
        assert!(c.next(&other, true).is_err(), "two pools");
        assert_eq!(c.next(&name(Which::Data, "x"), true).unwrap(), None);
        c.received(&name(Which::Data, SENDING), 21);
        assert!(c.next(&name(Which::Data, "y"), true).is_err(), "data again");
    }

    use crate::ops::create::{CRASH_AT, NEXT_TOKEN};
    use crate::ops::testing::{ok, Fixture, IMAGE, POOL};
    use crate::store::Intent;
    use serde_json::json;

    const FULL: &[u8] = include_bytes!("../zfs/testdata/plain.begin");
    const INC: &[u8] = include_bytes!("../zfs/testdata/inc.begin");

    /// A real first record renamed to `name`, with some stream after it.
    fn stream(begin: &[u8], name: &str) -> Vec<u8> {
        let mut b = begin.to_vec();
        b[56..stream_header::BEGIN_LEN].fill(0);
        b[56..56 + name.len()].copy_from_slice(name.as_bytes());
        b.extend_from_slice(&[0x5a; 1000]);
        b
    }

    fn bundle_of(json: Value, streams: &[(String, Vec<u8>)]) -> Vec<u8> {
        let mut out = Vec::new();
        bundle::write_chunk(&mut out, "JSON", &serde_json::to_vec(&json).unwrap()).unwrap();
        for (name, data) in streams {
            bundle::write_pieces(&mut out, name, &mut &data[..]).unwrap();
        }
        out
    }

    fn fixture_for(uuid: &Uuid) -> Fixture {
        let fx = Fixture::new();
        fx.answer_mountpoint(uuid);
        let pool_mp = format!("{}\n", fx.mnt.display());
        fx.runner.answer(
            &["zfs", "get", "-H", "-o", "value", "mountpoint", POOL],
            ok(&pool_mp),
        );
        fx
    }

    /// The token the next receive in this thread stamps.
    const TOKEN: &str = "00000000feedf00d";

    /// Has `zfs list` of the container answer what a one-stream receive
    /// made; returns the container's name.
    fn answer_received_tree(fx: &Fixture, uuid: &Uuid) -> String {
        let cont = format!("{POOL}/{uuid}-receiving");
        fx.answer_tree(
            "all",
            &cont,
            &format!("{cont}\t-\n{cont}/vm\t-\n{cont}/vm@sending\t-\n"),
        );
        cont
    }

    /// A bundle of one full stream, `extra` added to its JSON.
    fn one_stream(uuid: &Uuid, extra: Value) -> Vec<u8> {
        let name = format!("{POOL}/{uuid}@sending");
        let mut vm = json!({"uuid": uuid.to_string(), "brand": "jail", "image_uuid": IMAGE});
        for (k, v) in extra.as_object().unwrap() {
            vm[k] = v.clone();
        }
        bundle_of(vm, &[(name.clone(), stream(FULL, &name))])
    }

    fn position(cmds: &[String], start: &str) -> usize {
        cmds.iter()
            .position(|c| c.starts_with(start))
            .unwrap_or_else(|| panic!("no `{start}` in {cmds:#?}"))
    }

    #[test]
    fn streams_land_in_the_quota_container_before_anything_is_mounted() {
        let uuid = Uuid::new_v4();
        let fx = fixture_for(&uuid);
        let cont = answer_received_tree(&fx, &uuid);
        let name = format!("{POOL}/{uuid}@sending");
        let json =
            json!({"uuid": uuid.to_string(), "brand": "jail", "image_uuid": IMAGE, "quota": 2});
        let b = bundle_of(json, &[(name.clone(), stream(FULL, &name))]);
        NEXT_TOKEN.with(|t| t.set(Some(TOKEN)));
        assert_eq!(receive(&fx.ctx, &mut &b[..]).unwrap(), uuid);
        let cmds: Vec<String> = fx.runner.calls().iter().map(|a| a.to_string()).collect();
        let made = position(
            &cmds,
            &format!(
                "zfs create -o quota={} -o canmount=off -o mountpoint=none -o rvmadm:receive={TOKEN} {cont}",
                container_quota(2 << 30)
            ),
        );
        // Not the one probe of the flags (`zfs receive -u -x mountpoint`).
        let target = format!(" {cont}/vm@sending");
        let recv = cmds
            .iter()
            .position(|c| c.starts_with("zfs receive -u -x") && c.ends_with(&target))
            .unwrap_or_else(|| panic!("{cmds:#?}"));
        let noauto = position(&cmds, &format!("zfs set canmount=noauto {cont}/vm"));
        let tokened = position(&cmds, &format!("zfs set rvmadm:receive={TOKEN} {cont}/vm"));
        let rename = position(&cmds, &format!("zfs rename {cont}/vm {POOL}/{uuid}"));
        let mount = position(&cmds, &format!("zfs mount {POOL}/{uuid}"));
        let quota = position(&cmds, &format!("zfs set quota=2G {POOL}/{uuid}"));
        assert!(
            made < recv
                && recv < noauto
                && noauto < tokened
                && tokened < rename
                && rename < mount
                && mount < quota
        );
        // The slot names the container for whoever comes next.
        assert_eq!(
            fx.ctx.store.intent_slot().unwrap().read(),
            Some(Intent::Receive(Some(Receiving {
                container: cont.clone(),
                token: TOKEN.into()
            })))
        );
        // The receive got the stream, first record included, and no more.
        let fed = fx.runner.records()[recv].stdin.clone();
        assert_eq!(fed, stream(FULL, &name));
        let rec = fx.record(&uuid);
        assert!(!rec.is_incomplete());
        assert_eq!(rec.zfs_filesystem, Some(format!("{POOL}/{uuid}")));
    }

    #[test]
    fn a_wrong_incremental_origin_undoes_everything() {
        let uuid = Uuid::new_v4();
        let fx = fixture_for(&uuid);
        let a = format!("{POOL}/{uuid}@vmsnap-a");
        let s = format!("{POOL}/{uuid}@sending");
        let mut inc = stream(INC, &s);
        // Its from-guid no longer is the guid of the stream before it.
        inc[48] ^= 1;
        let json = json!({"uuid": uuid.to_string(), "brand": "jail", "image_uuid": IMAGE});
        let b = bundle_of(json, &[(a.clone(), stream(FULL, &a)), (s, inc)]);
        let err = receive(&fx.ctx, &mut &b[..]).unwrap_err().to_string();
        assert!(err.contains("on top of another snapshot"), "{err}");
        let cmds: Vec<String> = fx.runner.calls().iter().map(|a| a.to_string()).collect();
        // One receive (the full stream); the container is destroyed after it.
        let into = |c: &&String| c.starts_with("zfs receive") && c.contains("-receiving/vm@");
        assert_eq!(cmds.iter().filter(into).count(), 1, "{cmds:#?}");
        let recv = cmds.iter().position(|c| into(&c)).unwrap();
        assert!(cmds[recv..].contains(&format!("zfs destroy -r {POOL}/{uuid}-receiving")));
        assert!(fx.ctx.store.load(&uuid).unwrap().is_none());
    }

    #[test]
    fn check_bundle_takes_a_sent_bundle_and_refuses_a_broken_chain() {
        let uuid = Uuid::new_v4();
        let json =
            json!({"uuid": uuid.to_string(), "brand": "jail", "image_uuid": IMAGE, "quota": 2});
        let name = format!("zones/{uuid}@sending");
        let good = bundle_of(json.clone(), &[(name.clone(), stream(FULL, &name))]);
        assert_eq!(check_bundle(&mut &good[..]).unwrap(), uuid);
        // The chain must end in @sending.
        let other = format!("zones/{uuid}@vmsnap-a");
        let open = bundle_of(json.clone(), &[(other.clone(), stream(FULL, &other))]);
        let e = check_bundle(&mut &open[..]).unwrap_err().to_string();
        assert!(e.contains("ends before"), "{e}");
        // A stream cut off before its size-0 end chunk.
        let cut = &good[..good.len() - bundle::BLOCK];
        assert!(check_bundle(&mut &cut[..]).is_err());
        // No stream at all.
        let none = bundle_of(json, &[]);
        let e = check_bundle(&mut &none[..]).unwrap_err().to_string();
        assert!(e.contains("no dataset"), "{e}");
    }

    #[test]
    fn host_directories_and_taken_addresses_are_refused_before_anything_is_made() {
        // The bundle is untrusted: what create refuses against this host
        // (the filesystems allowlist, another VM's MAC or IP) must be
        // refused here too, before the container exists.
        let nic = |mac: &str, ip: &str| json!({"nic_tag": "admin", "mac": mac, "ips": [ip]});
        let fx = Fixture::new();
        let first = fx.create_vm(json!({"nics": [nic("02:00:00:00:00:01", "192.0.2.10/24")]}));
        for extra in [
            json!({"filesystems": [{"source": "/etc", "target": "/host", "type": "lofs"}]}),
            json!({"nics": [nic("02:00:00:00:00:02", "192.0.2.10/24")]}),
            json!({"nics": [nic("02:00:00:00:00:01", "192.0.2.11/24")]}),
        ] {
            let uuid = Uuid::new_v4();
            let mut vm = json!({"uuid": uuid.to_string(), "brand": "jail", "image_uuid": IMAGE});
            for (k, v) in extra.as_object().unwrap() {
                vm[k] = v.clone();
            }
            let name = format!("{POOL}/{uuid}@sending");
            let b = bundle_of(vm, &[(name.clone(), stream(FULL, &name))]);
            let mark = fx.mark();
            let err = receive(&fx.ctx, &mut &b[..]).unwrap_err().to_string();
            assert!(
                err.contains("no host directory may be mounted")
                    || (err.starts_with("Conflict detected with another vm")
                        && err.contains(&first.to_string())),
                "{extra}: {err}"
            );
            assert!(!fx.ctx.store.exists(&uuid), "{extra}");
            let cmds = fx.commands_since(&mark);
            assert!(
                cmds.iter()
                    .all(|c| !c.starts_with("zfs create") && !c.starts_with("zfs receive")),
                "{extra}: {cmds:#?}"
            );
        }
    }

    #[test]
    fn zonename_from_the_bundle_is_checked_as_in_create() {
        let uuid = Uuid::new_v4();
        let fx = fixture_for(&uuid);
        let name = format!("{POOL}/{uuid}@sending");
        let vm = json!({"uuid": uuid.to_string(), "brand": "jail", "image_uuid": IMAGE,
            "zonename": format!("\u{1b}[2J{}", "z".repeat(200))});
        let b = bundle_of(vm, &[(name.clone(), stream(FULL, &name))]);
        let mark = fx.mark();
        let err = receive(&fx.ctx, &mut &b[..]).unwrap_err();
        assert!(matches!(err, OpsError::Invalid(_)), "{err:?}");
        assert!(!fx.ctx.store.exists(&uuid));
        assert!(fx.commands_since(&mark).is_empty());
    }

    #[test]
    fn a_stream_is_charged_its_own_length_against_the_budget() {
        // The first record is read through the pieces, so it is in their
        // total already: charging it again made a stream that fit its
        // budget exactly overdraw it (a wrap in a release build, which
        // lifts the bound for every later stream).
        let uuid = Uuid::new_v4();
        let fx = fixture_for(&uuid);
        let name = format!("{POOL}/{uuid}@sending");
        let data = stream(FULL, &name);
        let mut framed = Vec::new();
        bundle::write_pieces(&mut framed, &name, &mut &data[..]).unwrap();
        let mut input = &framed[..];
        let first = bundle::next_header(&mut input).unwrap().unwrap();
        let zfs = fx.ctx.zfs();
        let budget = data.len() as u64;
        let target = format!("{POOL}/{uuid}-receiving/vm@sending");
        let lock = fx.ctx.store.lock_global().unwrap();
        let rx = Receiver {
            zfs: &zfs,
            hold: lock.as_fd(),
            bound: budget,
        };
        let (_, bytes) = receive_stream(&rx, &mut input, &first, &target, None, budget).unwrap();
        assert_eq!(bytes, data.len() as u64);
        assert!(bytes <= budget);
    }

    #[test]
    fn the_bound_is_the_quota_capped_by_max_receive_size() {
        // No quota: the configured maximum (it was no bound at all).
        assert_eq!(receive_bound(0, 100), 100 << 20);
        // A quota below it, the quota; above it, the maximum.
        assert_eq!(receive_bound(2, 4096), 2 << 30);
        assert_eq!(receive_bound(1 << 40, 4096), 4 << 30);
        assert_eq!(receive_bound(u64::MAX, u64::MAX), u64::MAX);
        assert_eq!(stream_budget(4 << 30), 32 << 30);
        assert_eq!(stream_budget(u64::MAX), u64::MAX);
    }

    #[test]
    fn container_quota_has_room_for_the_stream() {
        assert_eq!(
            container_quota(4 << 30),
            ((5u64 << 30) + (32 << 20)).to_string()
        );
        assert_eq!(container_quota(u64::MAX), u64::MAX.to_string());
    }

    /// `zfs get rvmadm:receive <dataset>` answers `value`.
    fn answer_token(fx: &Fixture, dataset: &str, value: &str) {
        fx.runner.answer(
            &["zfs", "get", "-H", "-o", "value", RECEIVE_TOKEN, dataset],
            ok(&format!("{value}\n")),
        );
    }

    fn renamed_to_its_name(cmds: &[String], uuid: &Uuid) -> bool {
        cmds.iter()
            .any(|c| c.starts_with("zfs rename") && c.ends_with(&format!(" {POOL}/{uuid}")))
    }

    #[test]
    fn a_rename_that_reports_failure_after_renaming_is_carried_on() {
        // zfs-fuse under load: the rename lands, then zfs says it failed.
        // The dataset carries this receive's token: it is ours, renamed.
        let uuid = Uuid::new_v4();
        let fx = fixture_for(&uuid);
        answer_received_tree(&fx, &uuid);
        fx.runner.fail(
            &["zfs", "rename"],
            "internal error: Connection reset by peer",
        );
        let ds = format!("{POOL}/{uuid}");
        answer_token(&fx, &ds, TOKEN);
        NEXT_TOKEN.with(|t| t.set(Some(TOKEN)));
        let b = one_stream(&uuid, json!({"quota": 2}));
        assert_eq!(receive(&fx.ctx, &mut &b[..]).unwrap(), uuid);
        let cmds: Vec<String> = fx.runner.calls().iter().map(|a| a.to_string()).collect();
        assert!(renamed_to_its_name(&cmds, &uuid), "{cmds:#?}");
        assert!(!cmds.contains(&format!("zfs destroy -r {ds}")), "{cmds:#?}");
        position(&cmds, &format!("zfs mount {ds}"));
        let rec = fx.record(&uuid);
        assert!(!rec.is_incomplete());
        assert_eq!(rec.zfs_filesystem, Some(ds));
    }

    #[test]
    fn a_rename_that_failed_is_undone_without_touching_a_stranger() {
        // The rename really failed: `<pool>/<uuid>` is missing, or (made by
        // someone else meanwhile) carries no token of this receive. Either
        // way the receive fails, leaves no record and destroys only its
        // container.
        for found in [None, Some("-"), Some("1111111111111111")] {
            let uuid = Uuid::new_v4();
            let fx = fixture_for(&uuid);
            let cont = answer_received_tree(&fx, &uuid);
            fx.runner
                .fail(&["zfs", "rename"], "cannot rename: dataset is busy");
            let ds = format!("{POOL}/{uuid}");
            match found {
                Some(v) => answer_token(&fx, &ds, v),
                None => fx.runner.fail(
                    &["zfs", "get", "-H", "-o", "value", RECEIVE_TOKEN, &ds],
                    &format!("cannot open '{ds}': dataset does not exist"),
                ),
            }
            NEXT_TOKEN.with(|t| t.set(Some(TOKEN)));
            let b = one_stream(&uuid, json!({}));
            let err = receive(&fx.ctx, &mut &b[..]).unwrap_err().to_string();
            assert!(err.contains("busy"), "{found:?}: {err}");
            let cmds: Vec<String> = fx.runner.calls().iter().map(|a| a.to_string()).collect();
            let rename = position(&cmds, "zfs rename");
            assert!(
                cmds[rename..].contains(&format!("zfs destroy -r {cont}")),
                "{cmds:#?}"
            );
            assert!(!cmds.contains(&format!("zfs destroy -r {ds}")), "{cmds:#?}");
            assert!(!fx.ctx.store.exists(&uuid), "{found:?}");
        }
    }

    #[test]
    fn a_rename_of_unknown_outcome_leaves_the_record_for_the_sweep() {
        // Neither the rename nor the question after it answers: whether
        // `<pool>/<uuid>` exists cannot be told, so the incomplete record
        // stays, and the next create sweeps it with its dataset.
        let uuid = Uuid::new_v4();
        let fx = fixture_for(&uuid);
        answer_received_tree(&fx, &uuid);
        fx.runner
            .fail(&["zfs", "rename"], "internal error: Connection reset");
        let ds = format!("{POOL}/{uuid}");
        fx.runner.fail(
            &["zfs", "get", "-H", "-o", "value", RECEIVE_TOKEN, &ds],
            "internal error: Connection reset",
        );
        let b = one_stream(&uuid, json!({}));
        let err = receive(&fx.ctx, &mut &b[..]).unwrap_err().to_string();
        assert!(err.contains("cannot be told"), "{err}");
        assert!(fx
            .ctx
            .store
            .load(&uuid)
            .unwrap()
            .unwrap()
            .vm
            .is_incomplete());
        let mark = fx.mark();
        fx.create_vm(json!({}));
        assert!(fx
            .commands_since(&mark)
            .contains(&format!("zfs destroy -r {ds}")));
        assert!(!fx.ctx.store.exists(&uuid));
    }

    #[test]
    fn a_bundle_without_quota_is_bound_by_max_receive_size() {
        // Quota 0 used to mean no bound while the streams arrive: the
        // untrusted bundle chose its own. Now max_receive_size bounds it,
        // on disk (the container's quota) and in stream bytes (8× that).
        let uuid = Uuid::new_v4();
        let mut fx = fixture_for(&uuid);
        fx.ctx.config.max_receive_size = 1;
        let cont = answer_received_tree(&fx, &uuid);
        let name = format!("{POOL}/{uuid}@sending");
        let mut big = stream(FULL, &name);
        big.resize(9 << 20, 0x5a);
        let json =
            json!({"uuid": uuid.to_string(), "brand": "jail", "image_uuid": IMAGE, "quota": 0});
        let b = bundle_of(json, &[(name, big)]);
        let err = receive(&fx.ctx, &mut &b[..]).unwrap_err().to_string();
        assert!(err.contains("max_receive_size"), "{err}");
        let cmds: Vec<String> = fx.runner.calls().iter().map(|a| a.to_string()).collect();
        let made = position(
            &cmds,
            &format!("zfs create -o quota={} ", container_quota(1 << 20)),
        );
        assert!(
            cmds[made..].contains(&format!("zfs destroy -r {cont}")),
            "{cmds:#?}"
        );
        // zfs receive got no more than the budget: 8 MiB and the pieces'
        // read-ahead is not the whole 9 MiB stream.
        let recv = cmds
            .iter()
            .position(|c| c.starts_with("zfs receive -u -x") && c.ends_with("@sending"))
            .unwrap();
        assert!(fx.runner.records()[recv].stdin.len() <= 8 << 20);
        assert!(!renamed_to_its_name(&cmds, &uuid));
        assert!(!fx.ctx.store.exists(&uuid));
    }

    #[test]
    fn a_quota_above_max_receive_size_is_capped_and_a_full_container_refused() {
        // The quota is the bundle's word too: it never lifts the bound.
        let uuid = Uuid::new_v4();
        let mut fx = fixture_for(&uuid);
        fx.ctx.config.max_receive_size = 2048;
        answer_received_tree(&fx, &uuid);
        // The container's quota stops the stream (what zfs says then).
        fx.runner.fail(
            &["zfs", "receive", "-u", "-x", "mountpoint", "-x"],
            "cannot receive new filesystem stream: out of space",
        );
        let b = one_stream(&uuid, json!({"quota": 1000}));
        let err = receive(&fx.ctx, &mut &b[..]).unwrap_err().to_string();
        assert!(
            err.contains("2048 MiB on disk") && err.contains("max_receive_size"),
            "{err}"
        );
        let cmds: Vec<String> = fx.runner.calls().iter().map(|a| a.to_string()).collect();
        position(
            &cmds,
            &format!("zfs create -o quota={} ", container_quota(2 << 30)),
        );
        assert!(!fx.ctx.store.exists(&uuid));
    }

    /// Runs a receive of a fresh uuid that dies at `step` as if killed.
    fn receive_dying_at(fx: &Fixture, step: &'static str) -> Uuid {
        let uuid = Uuid::new_v4();
        fx.answer_mountpoint(&uuid);
        answer_received_tree(fx, &uuid);
        let b = one_stream(&uuid, json!({}));
        NEXT_TOKEN.with(|t| t.set(Some(TOKEN)));
        CRASH_AT.with(|c| c.set(Some(step)));
        let died = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            receive(&fx.ctx, &mut &b[..])
        }));
        CRASH_AT.with(|c| c.set(None));
        assert!(died.is_err(), "receive did not die at {step}");
        uuid
    }

    #[test]
    fn what_a_dead_receive_left_is_removed_by_the_next_create() {
        for step in ["receive:streaming", "receive:renamed"] {
            let fx = fixture_for(&Uuid::new_v4());
            let dead = receive_dying_at(&fx, step);
            let cont = format!("{POOL}/{dead}-receiving");
            assert!(fx
                .ctx
                .store
                .load(&dead)
                .unwrap()
                .unwrap()
                .vm
                .is_incomplete());
            // The container still carries the dead receive's token.
            answer_token(&fx, &cont, TOKEN);
            let mark = fx.mark();
            fx.create_vm(json!({}));
            let cmds = fx.commands_since(&mark);
            let asked = position(&cmds, &format!("zfs get -H -o value rvmadm:receive {cont}"));
            let gone = position(&cmds, &format!("zfs destroy -r {cont}"));
            assert!(asked < gone, "{step}");
            assert!(
                cmds.contains(&format!("zfs destroy -r {POOL}/{dead}")),
                "{step}: {cmds:#?}"
            );
            assert!(!fx.ctx.store.exists(&dead), "{step}");
            // Once: the create after that runs its clone only.
            let mark = fx.mark();
            fx.create_vm(json!({}));
            assert_eq!(fx.commands_since(&mark).len(), 1, "{step}");
        }
    }

    #[test]
    fn a_dead_receives_container_that_cannot_be_destroyed_is_put_aside() {
        let fx = fixture_for(&Uuid::new_v4());
        let dead = receive_dying_at(&fx, "receive:streaming");
        let cont = format!("{POOL}/{dead}-receiving");
        answer_token(&fx, &cont, TOKEN);
        fx.runner.fail(
            &["zfs", "destroy", "-r", &cont],
            "cannot destroy: filesystem has dependent clones",
        );
        let mark = fx.mark();
        fx.create_vm(json!({}));
        let cmds = fx.commands_since(&mark);
        let aside = format!("{cont}-quarantine-{TOKEN}");
        assert!(
            cmds.contains(&format!("zfs rename {cont} {aside}")),
            "{cmds:#?}"
        );
        // The record is swept and the next create runs its clone only.
        assert!(!fx.ctx.store.exists(&dead));
        let mark = fx.mark();
        fx.create_vm(json!({}));
        assert_eq!(fx.commands_since(&mark).len(), 1);
    }

    #[test]
    fn a_container_without_the_dead_receives_token_is_left_alone() {
        // Named like the container, but not carrying the token (someone
        // else's, or made since): never destroyed by the recovery.
        for found in ["-", "1111111111111111"] {
            let fx = fixture_for(&Uuid::new_v4());
            let dead = receive_dying_at(&fx, "receive:streaming");
            let cont = format!("{POOL}/{dead}-receiving");
            answer_token(&fx, &cont, found);
            let mark = fx.mark();
            fx.create_vm(json!({}));
            let cmds = fx.commands_since(&mark);
            assert!(
                !cmds.contains(&format!("zfs destroy -r {cont}")),
                "{cmds:#?}"
            );
            // The record is still swept.
            assert!(!fx.ctx.store.exists(&dead));
        }
    }

    #[test]
    fn each_zfs_receive_holds_the_global_lock() {
        // Its process holds the lock's descriptor, so a receive killed
        // mid-stream keeps the next holder out until zfs is done.
        let uuid = Uuid::new_v4();
        let fx = fixture_for(&uuid);
        answer_received_tree(&fx, &uuid);
        let b = one_stream(&uuid, json!({}));
        receive(&fx.ctx, &mut &b[..]).unwrap();
        let held = fx.runner.held();
        let streamed: Vec<String> = fx
            .runner
            .records()
            .iter()
            .filter(|c| c.argv.to_string().starts_with("zfs receive") && !c.stdin.is_empty())
            .map(|c| c.argv.to_string())
            .collect();
        assert_eq!(streamed.len(), 1);
        assert!(held.contains(&streamed[0]), "{held:?}");
    }
}
