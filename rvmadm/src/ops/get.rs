//! `vmadm get <uuid>`: the full VM object, runtime fields from the OS.

use super::context::Ctx;
use super::error::OpsResult;
use super::view::full_object;
use serde_json::{Map, Value};
use uuid::Uuid;

pub fn get(ctx: &Ctx, uuid: &Uuid) -> OpsResult<Map<String, Value>> {
    let rec = ctx.record(uuid)?;
    let rt = ctx.runtime(uuid)?;
    Ok(full_object(
        rec,
        rt.as_ref(),
        ctx.config.server_uuid.as_deref(),
    ))
}
