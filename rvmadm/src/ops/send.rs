//! `vmadm send`: write a VM, its datasets and their snapshots as one bundle
//! on stdout, for `vmadm receive` ([`super::receive`]) on this or another
//! host.
//!
//! The bundle ([`super::bundle`]) opens with the VM's JSON, as SmartOS's
//! does. Then come the VM's dataset and, with `delegate_dataset`, its
//! `data` child, in that order. Where SmartOS writes each dataset as one
//! `zfs send -R` stream (snapshots, children and properties in one compound
//! stream), rvmadm writes one plain stream per snapshot: a full stream of
//! the oldest snapshot, then an incremental (`-i`) from each snapshot to the
//! next, ending with the temporary `@sending` snapshot that holds the
//! current contents, as in SmartOS. Each stream is framed in sized pieces
//! named `<dataset>@<snapshot>`. A receiver can then check each stream's
//! first record and receive only plain streams of one snapshot, which carry
//! no properties and make no children. `@sending` is removed again, also
//! when the send fails.

use super::bundle;
use super::context::Ctx;
use super::error::{OpsError, OpsResult};
use crate::driver::StopOptions;
use crate::zfs::{SendForm, Zfs, ZfsError};
use std::io::Write;
use uuid::Uuid;

/// The snapshot a send takes (recursively) and removes again; its stream
/// is the last of each dataset, and the receiver drops it too.
pub const SENDING: &str = "sending";

/// The datasets a bundle of the VM on `dataset` carries, in bundle order:
/// the VM's own, then its delegated `data` when present. Anything else
/// below the VM's dataset is refused: it would not be received.
pub(crate) fn bundle_datasets(zfs: &Zfs, uuid: &Uuid, dataset: &str) -> OpsResult<Vec<String>> {
    let data = format!("{dataset}/data");
    let mut out = vec![dataset.to_string()];
    let mut other = Vec::new();
    for (name, _) in zfs.origins(dataset)? {
        if name == data {
            out.push(name);
        } else if name != dataset {
            other.push(name);
        }
    }
    if !other.is_empty() {
        return Err(OpsError::Failed(format!(
            "VM {uuid} has datasets below its own other than its delegated data ({}); send carries only the VM's dataset and <dataset>/data",
            other.join(", ")
        )));
    }
    Ok(out)
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
    let datasets = bundle_datasets(&zfs, uuid, &spec.zfs_filesystem)?;
    if ctx.is_running(uuid)? {
        ctx.driver.stop(&spec, StopOptions::default())?;
        ctx.driver.cleanup(&spec)?;
    }
    let mut json = serde_json::to_vec_pretty(&rec.vm)
        .map_err(|e| OpsError::Failed(format!("cannot encode VM {uuid}: {e}")))?;
    json.push(b'\n');
    bundle::write_chunk(out, "JSON", &json).map_err(write_failed)?;

    let sending = format!("{}@{SENDING}", spec.zfs_filesystem);
    // A leftover of an interrupted send is ours: SmartOS removes it too.
    zfs.destroy(&sending, true)?;
    zfs.snapshot_recursive(&sending)?;
    let sent = datasets
        .iter()
        .try_for_each(|ds| send_dataset(&zfs, ds, out));
    let removed = zfs.destroy(&sending, true);
    sent?;
    removed?;
    out.flush().map_err(write_failed)
}

fn write_failed(e: std::io::Error) -> OpsError {
    OpsError::Failed(format!("cannot write the stream: {e}"))
}

/// Writes every snapshot of `ds`, oldest first, as a chain of plain
/// streams: full, then incremental from the one before.
fn send_dataset(zfs: &Zfs, ds: &str, out: &mut dyn Write) -> OpsResult<()> {
    let snaps = zfs.snapshots_oldest_first(ds)?;
    if snaps.last().map(String::as_str) != Some(SENDING) {
        return Err(OpsError::Failed(format!(
            "{ds}@{SENDING} is not the newest snapshot of {ds}; cannot send it"
        )));
    }
    let mut prev: Option<String> = None;
    for snap in &snaps {
        let name = format!("{ds}@{snap}");
        let form = match &prev {
            None => SendForm::Full,
            Some(from) => SendForm::Incremental { from },
        };
        let mut child = zfs.send(&name, form)?;
        let copied = bundle::write_pieces(out, &name, &mut child);
        let exit = child.finish();
        copied.map_err(write_failed)?;
        exit.map_err(ZfsError::from)?;
        prev = Some(name);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::testing::{ok, Fixture, POOL};
    use serde_json::json;

    #[test]
    fn each_dataset_goes_as_a_chain_oldest_first_and_sending_is_removed() {
        let fx = Fixture::new();
        let uuid = fx.create_vm(json!({"delegate_dataset": true}));
        let ds = format!("{POOL}/{uuid}");
        fx.answer_tree(
            "filesystem,volume",
            &ds,
            &format!("{ds}\t{POOL}/img@final\n{ds}/data\t-\n"),
        );
        let snaps = |d: &str, names: &[&str]| {
            let out: String = names.iter().map(|n| format!("{d}@{n}\n")).collect();
            fx.runner.answer(
                &[
                    "zfs",
                    "list",
                    "-H",
                    "-r",
                    "-d",
                    "1",
                    "-t",
                    "snapshot",
                    "-s",
                    "createtxg",
                    "-o",
                    "name",
                    d,
                ],
                ok(&out),
            );
        };
        snaps(&ds, &["vmsnap-a", "vmsnap-b", SENDING]);
        snaps(&format!("{ds}/data"), &["d1", SENDING]);
        let mark = fx.mark();
        let mut out = Vec::new();
        send(&fx.ctx, &uuid, &mut out).unwrap();
        let sends: Vec<String> = fx
            .commands_since(&mark)
            .into_iter()
            .filter(|c| c.starts_with("zfs send") || c.contains("@sending"))
            .collect();
        assert_eq!(
            sends,
            [
                format!("zfs destroy -r {ds}@sending"),
                format!("zfs snapshot -r {ds}@sending"),
                format!("zfs send {ds}@vmsnap-a"),
                format!("zfs send -i {ds}@vmsnap-a {ds}@vmsnap-b"),
                format!("zfs send -i {ds}@vmsnap-b {ds}@sending"),
                format!("zfs send {ds}/data@d1"),
                format!("zfs send -i {ds}/data@d1 {ds}/data@sending"),
                format!("zfs destroy -r {ds}@sending"),
            ]
        );
        // The JSON chunk, then each (empty) stream's end chunk, in order.
        let names: Vec<String> = out
            .chunks(bundle::BLOCK)
            .filter_map(|h| h.try_into().ok())
            .filter_map(|h: [u8; bundle::BLOCK]| bundle::parse_header(&h).ok())
            .map(|c| c.name)
            .collect();
        assert_eq!(names[0], "JSON");
        assert_eq!(
            names.last().map(String::as_str),
            Some(&*format!("{ds}/data@sending"))
        );
    }

    #[test]
    fn other_datasets_below_the_vm_are_refused_before_a_byte() {
        let fx = Fixture::new();
        let uuid = fx.create_vm(json!({}));
        let ds = format!("{POOL}/{uuid}");
        fx.answer_tree(
            "filesystem,volume",
            &ds,
            &format!("{ds}\t-\n{ds}/extra\t-\n"),
        );
        let mut out = Vec::new();
        let err = send(&fx.ctx, &uuid, &mut out).unwrap_err().to_string();
        assert!(err.contains(&format!("{ds}/extra")), "{err}");
        assert!(out.is_empty());
    }
}
