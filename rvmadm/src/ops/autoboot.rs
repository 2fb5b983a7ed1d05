//! `vmadm autoboot`: at host boot, start every VM with autoboot=true that is
//! not running, oldest first; one failure never stops the others.

use super::context::Ctx;
use super::error::OpsResult;
use uuid::Uuid;

/// Outcome per VM, in start order.
pub fn autoboot(ctx: &Ctx) -> OpsResult<Vec<(Uuid, Result<(), String>)>> {
    let mut candidates: Vec<(String, Uuid)> = Vec::new();
    for (uuid, rec) in ctx.store.load_all()? {
        let Ok(rec) = rec else { continue };
        if rec.vm.autoboot == Some(true) {
            let created = rec.vm.create_timestamp.unwrap_or_default();
            candidates.push((created, uuid));
        }
    }
    candidates.sort();
    let uuids: Vec<Uuid> = candidates.iter().map(|(_, u)| *u).collect();
    let running = ctx.runtimes(&uuids)?;
    let mut out = Vec::new();
    for uuid in uuids {
        if running.get(&uuid).is_some_and(|r| r.running) {
            continue;
        }
        let r = super::start::start(ctx, &uuid)
            .map(|_| ())
            .map_err(|e| e.to_string());
        out.push((uuid, r));
    }
    Ok(out)
}
