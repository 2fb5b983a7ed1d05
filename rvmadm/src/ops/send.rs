//! `vmadm send` / `vmadm receive`: move a VM between hosts as one stream.
//!
//! The stream follows SmartOS's VM bundle layout: chunks, each behind a
//! 512-byte header of NUL-terminated ASCII fields (`MAGIC-VMBUNDLE`, format
//! version `1`, a checksum field, the chunk name, its size, its size padded
//! to 512). The first chunk, `JSON`, is the VM object; the last one names
//! the dataset, has size 0 and is followed by `zfs send -R` of it to the end
//! of the stream. A receive that fails at any point leaves no record and no
//! dataset behind.

use super::context::Ctx;
use super::create::sweep_incomplete;
use super::error::{OpsError, OpsResult};
use crate::driver::StopOptions;
use crate::spec::{self, Action, Field, VmRecord};
use crate::zfs::{SendForm, ZfsError};
use serde_json::{Map, Value};
use std::io::{Read, Write};
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
    if padded < size || !padded.is_multiple_of(BLOCK) {
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
    let zfs = ctx.zfs();
    zfs.destroy(&snap, true)?;
    zfs.snapshot_recursive(&snap)?;
    out.write_all(&header(&spec.zfs_filesystem, 0))
        .map_err(io)?;
    let sent = (|| -> OpsResult<()> {
        let mut child = zfs.send(&snap, SendForm::Replicate)?;
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

    let _global = ctx.store.lock_global()?;
    sweep_incomplete(ctx);
    let zfs = ctx.zfs();
    if ctx.store.exists(&uuid) || zfs.exists(&dataset)? {
        return Err(OpsError::Failed(format!(
            "VM with UUID {uuid} already exists"
        )));
    }
    let mut obj = VmRecord::from_map(checked.payload.clone());
    for (k, v) in &vm {
        if matches!(k.as_str(), "create_timestamp" | "snapshots" | "zonename") {
            obj.set(k, v.clone());
        }
    }
    obj.set(Field::Uuid.name(), uuid.to_string().into());
    obj.set(Field::Zpool.name(), pool.clone().into());
    obj.set(Field::ZfsFilesystem.name(), dataset.clone().into());
    obj.set(Field::Zonepath.name(), format!("/{dataset}").into());
    obj.set(Field::Incomplete.name(), Value::Bool(true));
    ctx.store.save(&uuid, &obj)?;

    let undo = |e: OpsError| {
        let _ = zfs.destroy(&dataset, true);
        let _ = ctx.store.remove(&uuid);
        e
    };
    let received = (|| -> OpsResult<()> {
        let mut child = zfs.receive(&dataset)?;
        let copied = std::io::copy(input, &mut child);
        child
            .finish()
            .map_err(|e| OpsError::Failed(format!("Invalid VM bundle: {e}")))?;
        copied.map_err(|e| OpsError::Failed(format!("cannot read the stream: {e}")))?;
        Ok(())
    })();
    received.map_err(undo)?;
    let finish = (|| -> OpsResult<()> {
        let _ = zfs.destroy(&format!("{dataset}@{SENDING}"), true);
        let mp = zfs.mountpoint(&dataset)?;
        obj.set(Field::Zonepath.name(), mp.display().to_string().into());
        obj.remove(Field::Incomplete.name());
        obj.set(Field::Autoboot.name(), Value::Bool(false));
        ctx.store.save(&uuid, &obj)?;
        Ok(())
    })();
    finish.map_err(undo)?;
    Ok(uuid)
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
    }
}
