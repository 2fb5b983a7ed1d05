//! `imgadm show <uuid>`: the manifest of an image from the first source
//! that has it.

use crate::image::error::{parse_uuid, ImgError, Result};
use crate::image::http::Client;
use crate::image::sources;
use crate::ops::Ctx;
use serde_json::Value;

/// The manifest as the source serves it (v1 upgraded to v2).
pub fn show(ctx: &Ctx, uuid_arg: &str) -> Result<Value> {
    let uuid = parse_uuid(uuid_arg)?;
    let client = Client::new();
    let remote = sources::find(&client, &ctx.config.sources, &uuid)?
        .ok_or_else(|| ImgError::image_not_found(uuid))?;
    Ok(remote.manifest)
}
