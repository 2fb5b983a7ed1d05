//! `POST /images/:uuid?action=…`: the query is read into one [`Action`],
//! then each action runs as one read-modify-write of the image's record
//! (import, activate, disable/enable, update).

use super::dispatch::App;
use super::query::query_map;
use super::request::{manifest_from, read_json_object, require_write};
use super::respond::{entry_response, Resp};
use crate::error::{ApiError, ApiResult};
use crate::store::ImageRecord;
use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use rvmadm_manifest::{now_published_at, NIL_OWNER};
use serde_json::{Map, Value};
use std::collections::HashMap;
use uuid::Uuid;

/// Fields `update` may not touch: identity, computed state and files.
const FIXED: [&str; 8] = [
    "v",
    "uuid",
    "owner",
    "state",
    "files",
    "published_at",
    "origin",
    "icon",
];

/// What the `action` parameter asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Action {
    /// AdminImportImage: a manifest with its own UUID (imgadm publish).
    Import,
    Activate,
    /// `disable` (true) or `enable` (false).
    SetDisabled(bool),
    /// UpdateImage: merge the body into the manifest.
    Update,
}

impl Action {
    /// Reads the `action` parameter (and refuses `account` on import).
    pub(super) fn parse(q: &HashMap<String, String>) -> ApiResult<Action> {
        match q.get("action").map(String::as_str).unwrap_or_default() {
            "import" if q.contains_key("account") => Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "OperatorOnly",
                "import is for operators only; drop 'account'",
            )),
            "import" => Ok(Action::Import),
            "activate" => Ok(Action::Activate),
            "disable" => Ok(Action::SetDisabled(true)),
            "enable" => Ok(Action::SetDisabled(false)),
            "update" => Ok(Action::Update),
            "" => Err(ApiError::invalid_param("missing 'action'")),
            other => Err(ApiError::invalid_param(format!(
                "unknown action {:?}",
                other.chars().take(32).collect::<String>()
            ))),
        }
    }
}

/// Runs the action a `POST /images/:uuid` names.
pub(super) async fn run(app: &App, req: Request<Incoming>, uuid: Uuid) -> ApiResult<Resp> {
    require_write(app, &req)?;
    match Action::parse(&query_map(&req))? {
        Action::Import => import(app, req, uuid).await,
        Action::Activate => activate(app, uuid).await,
        Action::SetDisabled(disabled) => set_disabled(app, uuid, disabled).await,
        Action::Update => update(app, read_json_object(app, req).await?, uuid).await,
    }
}

async fn import(app: &App, req: Request<Incoming>, uuid: Uuid) -> ApiResult<Resp> {
    let mut obj = read_json_object(app, req).await?;
    match obj.get("uuid").and_then(Value::as_str) {
        Some(u) if Uuid::try_parse(u).ok() == Some(uuid) => {}
        _ => return Err(ApiError::invalid_param("manifest uuid must match the URL")),
    }
    for f in ["state", "icon"] {
        obj.remove(f);
    }
    obj.entry("v").or_insert(Value::from(2));
    // Without a user database every image belongs to the nil owner.
    obj.insert("owner".into(), Value::from(NIL_OWNER.to_string()));
    let mut manifest = manifest_from(obj)?;
    // Files arrive through AddImageFile; an announced one becomes
    // the size and SHA-1 that upload must match.
    let expect = manifest.files.pop();
    manifest.files.clear();
    let e = app
        .catalog
        .insert(ImageRecord::unactivated(manifest, expect))
        .await?;
    Ok(entry_response(&e))
}

async fn activate(app: &App, uuid: Uuid) -> ApiResult<Resp> {
    let origin_state = |o: Uuid| app.catalog.get(o).ok().flatten().map(|e| e.rec.activated);
    let (e, _) = app
        .catalog
        .update(uuid, |rec| {
            if rec.activated {
                return Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "ImageAlreadyActivated",
                    format!("image {uuid} is already activated"),
                ));
            }
            if rec.file.is_none() {
                return Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "NoActivationNoFile",
                    format!("image {uuid} has no file; upload it first"),
                ));
            }
            if let Some(o) = rec.manifest.origin {
                match origin_state(o) {
                    None => {
                        return Err(ApiError::new(
                            StatusCode::UNPROCESSABLE_ENTITY,
                            "OriginDoesNotExist",
                            format!("origin {o} does not exist"),
                        ))
                    }
                    Some(false) => {
                        return Err(ApiError::new(
                            StatusCode::UNPROCESSABLE_ENTITY,
                            "OriginIsNotActive",
                            format!("origin {o} is not activated"),
                        ))
                    }
                    Some(true) => {}
                }
            }
            let mut new = rec.clone();
            new.activated = true;
            if new.manifest.published_at.is_none() {
                new.manifest.published_at = Some(now_published_at());
            }
            Ok(new)
        })
        .await?;
    Ok(entry_response(&e))
}

async fn set_disabled(app: &App, uuid: Uuid, disabled: bool) -> ApiResult<Resp> {
    let (e, _) = app
        .catalog
        .update(uuid, |rec| {
            let mut new = rec.clone();
            new.manifest.disabled = disabled;
            Ok(new)
        })
        .await?;
    Ok(entry_response(&e))
}

/// Merges `changes` into the manifest (`null` removes a field) and
/// validates the result as a whole.
async fn update(app: &App, changes: Map<String, Value>, uuid: Uuid) -> ApiResult<Resp> {
    if let Some(f) = FIXED.iter().find(|f| changes.contains_key(**f)) {
        return Err(ApiError::invalid_param(format!("{f:?} cannot be updated")));
    }
    let (e, _) = app
        .catalog
        .update(uuid, |rec| {
            let mut obj = match serde_json::to_value(&rec.manifest) {
                Ok(Value::Object(o)) => o,
                _ => return Err(ApiError::internal("cannot serialize manifest")),
            };
            for (k, v) in changes {
                if v.is_null() {
                    obj.remove(&k);
                } else {
                    obj.insert(k, v);
                }
            }
            let mut new = rec.clone();
            new.manifest = manifest_from(obj)?;
            Ok(new)
        })
        .await?;
    Ok(entry_response(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(pairs: &[(&str, &str)]) -> Result<Action, (u16, String)> {
        let q = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Action::parse(&q).map_err(|e| (e.status.as_u16(), e.message))
    }

    #[test]
    fn actions_parse_like_imgapi() {
        assert_eq!(parse(&[("action", "import")]), Ok(Action::Import));
        assert_eq!(
            parse(&[("action", "import"), ("account", "x")]).map_err(|e| e.0),
            Err(403)
        );
        assert_eq!(
            parse(&[("action", "disable")]),
            Ok(Action::SetDisabled(true))
        );
        assert_eq!(
            parse(&[("action", "enable")]),
            Ok(Action::SetDisabled(false))
        );
        assert_eq!(parse(&[]), Err((422, "missing 'action'".to_string())));
        assert_eq!(
            parse(&[("action", &"x".repeat(40))]),
            Err((422, format!("unknown action {:?}", "x".repeat(32))))
        );
    }
}
