//! `vmadm send` / `vmadm receive`: move a VM between hosts as one stream.
//!
//! The stream follows SmartOS's VM bundle layout: chunks, each behind a
//! 512-byte header of NUL-terminated ASCII fields (`MAGIC-VMBUNDLE`, format
//! version `1`, a checksum field, the chunk name, its size, its size padded
//! to 512). The first chunk, `JSON`, is the VM object; the last one names
//! the dataset, has size 0 and is followed by a plain full `zfs send` of it
//! to the end of the stream. A receive that fails at any point leaves no
//! record and no dataset behind.
//!
//! A bundle is not trusted with the host. Chunk sizes are checked before
//! anything is allocated. The ZFS stream must be a plain full stream of one
//! snapshot ([`crate::zfs::stream_header`]; SmartOS sends `-R`, whose
//! compound header carries properties such as `mountpoint` and child
//! datasets, so such a bundle is refused) and is received unmounted; the
//! dataset must come out with no child and no property of its own. Its
//! quota is set from the VM's JSON, and its zonepath is the pool's
//! mountpoint joined with the uuid, checked against where ZFS would mount
//! it — never read back from the stream. Only the VM's own dataset travels:
//! its snapshots do not, and a VM with a delegated dataset is not sent.

use super::context::Ctx;
use super::create::sweep_incomplete;
use super::error::{OpsError, OpsResult};
use crate::driver::StopOptions;
use crate::spec::{self, Action, Field, VmRecord};
use crate::zfs::stream_header::{self, Expect};
use crate::zfs::{SendForm, Zfs, ZfsError};
use serde_json::{Map, Value};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use uuid::Uuid;

const MAGIC: &str = "MAGIC-VMBUNDLE";
const BLOCK: usize = 512;
/// Largest JSON chunk accepted on receive.
const MAX_JSON: usize = 1 << 20;
/// The snapshot a send makes and removes again.
const SENDING: &str = "sending";

/// One chunk header.
fn header(name: &str, size: usize) -> [u8; BLOCK] {
    let padded = size.div_ceil(BLOCK) * BLOCK;
    let mut h = [0u8; BLOCK];
    let mut at = 0;
    for field in [
        MAGIC,
        "1",
        "CHECKSUM",
        name,
        &size.to_string(),
        &padded.to_string(),
    ] {
        let b = field.as_bytes();
        let end = (at + b.len()).min(BLOCK - 1);
        h[at..end].copy_from_slice(&b[..end - at]);
        at = end + 1;
    }
    h
}

/// Parses a header into (name, size, padded size).
fn parse_header(h: &[u8; BLOCK]) -> OpsResult<(String, usize, usize)> {
    let fields: Vec<&str> = h
        .split(|b| *b == 0)
        .filter(|f| !f.is_empty())
        .take(6)
        .map(|f| std::str::from_utf8(f).unwrap_or(""))
        .collect();
    let bad = || OpsError::Failed("Invalid VM bundle: bad chunk header".into());
    if fields.len() != 6 || fields[0] != MAGIC || fields[1] != "1" {
        return Err(bad());
    }
    let size: usize = fields[4].parse().map_err(|_| bad())?;
    let padded: usize = fields[5].parse().map_err(|_| bad())?;
    // The padded size follows from the size; a header claiming more is
    // refused here, before a buffer of its size is ever allocated.
    if size.checked_next_multiple_of(BLOCK) != Some(padded) {
        return Err(bad());
    }
    Ok((fields[3].to_string(), size, padded))
}

/// Writes the bundle of a VM to `out`. A running VM is stopped first and
/// stays stopped, as with SmartOS.
pub fn send(ctx: &Ctx, uuid: &Uuid, out: &mut dyn Write) -> OpsResult<()> {
    let _lock = ctx.store.lock_vm(uuid)?;
    let rec = ctx.record(uuid)?;
    if rec.vm.has_incomplete_marker() {
        return Err(OpsError::Failed(format!("VM {uuid} is incomplete")));
    }
    let spec = ctx.spec(&rec)?;
    let zfs = ctx.zfs();
    // A receive accepts one dataset: say so now rather than drop the rest.
    let below: Vec<String> = zfs
        .origins(&spec.zfs_filesystem)?
        .into_iter()
        .map(|(n, _)| n)
        .filter(|n| *n != spec.zfs_filesystem)
        .collect();
    if !below.is_empty() {
        return Err(OpsError::Failed(format!(
            "VM {uuid} has datasets below its own ({}); send carries only the VM's dataset",
            below.join(", ")
        )));
    }
    if ctx.is_running(uuid)? {
        ctx.driver.stop(&spec, StopOptions::default())?;
        ctx.driver.cleanup(&spec)?;
    }
    let mut json = serde_json::to_vec_pretty(&rec.vm)
        .map_err(|e| OpsError::Failed(format!("cannot encode VM {uuid}: {e}")))?;
    json.push(b'\n');
    let io = |e: std::io::Error| OpsError::Failed(format!("cannot write the stream: {e}"));
    out.write_all(&header("JSON", json.len())).map_err(io)?;
    let pad = json.len().div_ceil(BLOCK) * BLOCK - json.len();
    out.write_all(&json).map_err(io)?;
    out.write_all(&vec![0u8; pad]).map_err(io)?;

    let snap = format!("{}@{SENDING}", spec.zfs_filesystem);
    zfs.destroy(&snap, true)?;
    zfs.snapshot(&snap)?;
    out.write_all(&header(&spec.zfs_filesystem, 0))
        .map_err(io)?;
    let sent = (|| -> OpsResult<()> {
        let mut child = zfs.send(&snap, SendForm::Full)?;
        let copied = std::io::copy(&mut child, out);
        let exit = child.finish();
        copied.map_err(io)?;
        exit.map_err(ZfsError::from)?;
        Ok(())
    })();
    let _ = zfs.destroy(&snap, true);
    sent?;
    out.flush().map_err(io)
}

fn read_exact(input: &mut dyn Read, buf: &mut [u8]) -> OpsResult<()> {
    input
        .read_exact(buf)
        .map_err(|e| OpsError::Failed(format!("Invalid VM bundle: stream ended early ({e})")))
}

/// Creates a VM from a bundle on `input`; returns its uuid. The VM ends
/// stopped, as in SmartOS.
pub fn receive(ctx: &Ctx, input: &mut dyn Read) -> OpsResult<Uuid> {
    let mut h = [0u8; BLOCK];
    read_exact(input, &mut h)?;
    let (name, size, padded) = parse_header(&h)?;
    if name != "JSON" || size > MAX_JSON {
        return Err(OpsError::Failed(
            "Invalid VM bundle: the first chunk must be the VM's JSON (at most 1 MiB)".into(),
        ));
    }
    let mut json = vec![0u8; padded];
    read_exact(input, &mut json)?;
    json.truncate(size);
    let vm: Map<String, Value> = match serde_json::from_slice(&json) {
        Ok(Value::Object(m)) => m,
        _ => {
            return Err(OpsError::Failed(
                "Invalid VM bundle: the JSON chunk is not a VM object".into(),
            ))
        }
    };
    let uuid = vm
        .get("uuid")
        .and_then(Value::as_str)
        .and_then(|u| Uuid::parse_str(u).ok())
        .ok_or_else(|| OpsError::Failed("Invalid VM bundle: no valid uuid".into()))?;
    // The object must pass the same checks as a create payload; fields
    // that only a host writes (paths, timestamps) are set again here.
    let mut payload = vm.clone();
    for k in [
        "zonepath",
        "zfs_filesystem",
        "create_timestamp",
        "last_modified",
        "v",
        "snapshots",
        "datasets",
        "zonename",
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
    let pool = ctx.config.pool.clone();
    let dataset = format!("{pool}/{uuid}");

    read_exact(input, &mut h)?;
    let (ds_name, ds_size, _) = parse_header(&h)?;
    if ds_size != 0 || !crate::zfs::valid_name(&ds_name) {
        return Err(OpsError::Failed(
            "Invalid VM bundle: bad dataset chunk".into(),
        ));
    }

    // The stream's first record, judged before ZFS sees a byte of it.
    let head = stream_header::read_begin(input)
        .map_err(|e| OpsError::Failed(format!("cannot read the stream: {e}")))?;
    stream_header::check(&head, Expect::Full)
        .map_err(|e| OpsError::Failed(format!("Invalid VM bundle: {e}")))?;

    let _global = ctx.store.lock_global()?;
    sweep_incomplete(ctx);
    let zfs = ctx.zfs();
    if ctx.store.exists(&uuid) || zfs.exists(&dataset)? {
        return Err(OpsError::Failed(format!(
            "VM with UUID {uuid} already exists"
        )));
    }
    let zonepath = zonepath_on(&zfs, &pool, &uuid)?;
    let mut obj = VmRecord::from_map(checked.payload.clone());
    for (k, v) in &vm {
        // Snapshots do not travel with the plain stream.
        if matches!(k.as_str(), "create_timestamp" | "zonename") {
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

    let undo = |e: OpsError| {
        let _ = zfs.destroy(&dataset, true);
        let _ = ctx.store.remove(&uuid);
        e
    };
    let received = (|| -> OpsResult<()> {
        let mut child = zfs.receive(&dataset)?;
        let copied = child
            .write_all(&head)
            .and_then(|()| std::io::copy(input, &mut child).map(|_| ()));
        child
            .finish()
            .map_err(|e| OpsError::Failed(format!("Invalid VM bundle: {e}")))?;
        copied.map_err(|e| OpsError::Failed(format!("cannot read the stream: {e}")))?;
        Ok(())
    })();
    received.map_err(undo)?;
    let finish = (|| -> OpsResult<()> {
        verify_received(&zfs, &dataset)?;
        let _ = zfs.destroy(&format!("{dataset}@{SENDING}"), true);
        let quota = crate::driver::dataset::quota_value(obj.quota.unwrap_or(0));
        zfs.set(&dataset, "quota", &quota)?;
        // Where ZFS mounts it must be where the record says it is.
        let mp = zfs.mountpoint(&dataset)?;
        if mp != zonepath {
            return Err(OpsError::Failed(format!(
                "Invalid VM bundle: refused, {dataset} would mount on {}, not {}",
                mp.display(),
                zonepath.display()
            )));
        }
        if zfs.get(&dataset, "mounted")? != "yes" {
            zfs.mount(&dataset)?;
        }
        obj.remove(Field::Incomplete.name());
        obj.set(Field::Autoboot.name(), Value::Bool(false));
        ctx.store.save(&uuid, &obj)?;
        Ok(())
    })();
    finish.map_err(undo)?;
    Ok(uuid)
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

/// Refuses what a plain stream cannot have made: datasets below the
/// received one, or properties set on it (local or received).
fn verify_received(zfs: &Zfs, dataset: &str) -> OpsResult<()> {
    let below: Vec<String> = zfs
        .origins(dataset)?
        .into_iter()
        .map(|(n, _)| n)
        .filter(|n| n != dataset)
        .collect();
    if !below.is_empty() {
        return Err(OpsError::Failed(format!(
            "Invalid VM bundle: refused, its stream made child datasets ({})",
            below.join(", ")
        )));
    }
    let own = zfs.own_properties(dataset)?;
    if !own.is_empty() {
        let list: Vec<String> = own
            .iter()
            .map(|(p, _, src)| format!("{p} ({src})"))
            .collect();
        return Err(OpsError::Failed(format!(
            "Invalid VM bundle: refused, its stream set properties: {}",
            list.join(", ")
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_round_trip() {
        let h = header("JSON", 1000);
        assert_eq!(&h[..14], MAGIC.as_bytes());
        assert_eq!(parse_header(&h).unwrap(), ("JSON".into(), 1000, 1024));
        let h = header("zones/6b8b4567-327b-4c4e-8d8e-1b2c3d4e5f60", 0);
        assert_eq!(parse_header(&h).unwrap().2, 0);
    }

    #[test]
    fn bad_headers_are_refused() {
        let mut h = header("JSON", 10);
        h[0] = b'X';
        assert!(parse_header(&h).is_err());
        assert!(parse_header(&[0u8; BLOCK]).is_err());
        let mut h = [0u8; BLOCK];
        let text = b"MAGIC-VMBUNDLE\x001\x00CHECKSUM\x00JSON\x00100\x0050\x00";
        h[..text.len()].copy_from_slice(text);
        assert!(parse_header(&h).is_err(), "padded smaller than size");
        // A padded size far beyond the size would be allocated: refused.
        for fields in [
            &b"JSON\x00100\x001024\x00"[..],
            b"JSON\x0010\x0018446744073709551104\x00",
            b"JSON\x0018446744073709551615\x0018446744073709551615\x00",
        ] {
            let mut h = [0u8; BLOCK];
            let head = b"MAGIC-VMBUNDLE\x001\x00CHECKSUM\x00";
            h[..head.len()].copy_from_slice(head);
            h[head.len()..head.len() + fields.len()].copy_from_slice(fields);
            assert!(
                parse_header(&h).is_err(),
                "{:?}",
                String::from_utf8_lossy(fields)
            );
        }
    }
}
