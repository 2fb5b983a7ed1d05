//! Runtime state of every VM in one `jls` call.
//!
//! `jls --libxo=json jid name host.hostuuid` lists every live jail with just
//! those parameters (libxo keys them by parameter name; values may come as
//! strings or numbers). A VM is running when its outer jail (named by its
//! UUID, with `host.hostuuid` equal to that UUID — what the start plan sets)
//! and its tenant `<uuid>.tenant` both exist; the tenant's jid is reported.
//! Jails whose name is not one of the asked UUIDs are ignored, so jails made
//! by other managers are never even looked at twice. An outer jail without
//! its tenant (a crashed start) counts as not running; cleanup removes it.

use super::layout::TENANT;
use crate::driver::RuntimeState;
use crate::exec::Argv;
use serde_json::Value;
use std::collections::HashMap;
use uuid::Uuid;

/// The one `jls` command whose JSON output [`parse`] reads.
pub fn query_argv() -> Argv {
    Argv::new(["jls", "--libxo=json", "jid", "name", "host.hostuuid"])
}

#[derive(Debug, thiserror::Error)]
#[error("cannot parse `jls` output: {0}")]
pub struct ParseError(String);

fn as_i64(v: Option<&Value>) -> Option<i64> {
    match v? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Parses `jls --libxo=json` output into the states of `uuids`.
pub fn parse(text: &str, uuids: &[Uuid]) -> Result<HashMap<Uuid, RuntimeState>, ParseError> {
    let doc: Value = serde_json::from_str(text).map_err(|e| ParseError(e.to_string()))?;
    let jails = doc
        .get("jail-information")
        .and_then(|j| j.get("jail"))
        .and_then(Value::as_array)
        .ok_or_else(|| ParseError("no jail-information.jail list".into()))?;
    let wanted: HashMap<String, Uuid> = uuids.iter().map(|u| (u.to_string(), *u)).collect();
    let mut outers: HashMap<Uuid, i64> = HashMap::new();
    let mut tenants: HashMap<Uuid, i64> = HashMap::new();
    for j in jails {
        let Some(name) = j.get("name").and_then(Value::as_str) else {
            continue;
        };
        let Some(jid) = as_i64(j.get("jid")) else {
            continue;
        };
        if let Some(uuid) = wanted.get(name) {
            let hostuuid = j.get("host.hostuuid").and_then(Value::as_str);
            if hostuuid.map(str::to_ascii_lowercase).as_deref() == Some(name) {
                outers.insert(*uuid, jid);
            }
        } else if let Some((parent, child)) = name.split_once('.') {
            if child == TENANT {
                if let Some(uuid) = wanted.get(parent) {
                    tenants.insert(*uuid, jid);
                }
            }
        }
    }
    let mut out = HashMap::new();
    for (uuid, jid) in tenants {
        if outers.contains_key(&uuid) {
            out.insert(
                uuid,
                RuntimeState {
                    running: true,
                    pid: None,
                    boot_timestamp: None,
                    zoneid: Some(jid),
                },
            );
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "6b8b4567-327b-4c4e-8d8e-1b2c3d4e5f60";
    const B: &str = "11111111-2222-4333-8444-555555555555";
    const C: &str = "22222222-2222-4333-8444-555555555555";

    #[test]
    fn recognises_only_vmadm_jails() {
        let text = format!(
            r#"{{"__version": "2", "jail-information": {{"jail": [
              {{"jid": "3", "name": "{A}", "host.hostuuid": "{A}"}},
              {{"jid": 4, "name": "{A}.tenant", "host.hostuuid": "{A}"}},
              {{"jid": "5", "name": "{B}", "host.hostuuid": "{B}"}},
              {{"jid": "6", "name": "{C}", "host.hostuuid": "other"}},
              {{"jid": "7", "name": "{C}.tenant", "host.hostuuid": "{C}"}},
              {{"jid": "8", "name": "ioc-web", "host.hostuuid": "x"}},
              {{"jid": "9", "name": "ioc-web.tenant", "host.hostuuid": "x"}}
            ]}}}}"#
        );
        let uuids: Vec<Uuid> = [A, B, C]
            .iter()
            .map(|u| Uuid::parse_str(u).unwrap())
            .collect();
        let states = parse(&text, &uuids).unwrap();
        assert_eq!(states.len(), 1);
        let a = &states[&uuids[0]];
        assert!(a.running);
        assert_eq!(a.zoneid, Some(4));
    }

    #[test]
    fn empty_and_broken_output() {
        let empty = r#"{"__version": "2", "jail-information": {"jail": []}}"#;
        assert!(parse(empty, &[]).unwrap().is_empty());
        assert!(parse("JID  IP Address", &[]).is_err());
        assert!(parse("{}", &[]).is_err());
    }
}
