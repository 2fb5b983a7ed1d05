//! `vmadm events [-f] [-j] [-r] [uuid]`: a stream of VM changes, as
//! SmartOS's vminfod prints them: `create`, `modify` (with a list of
//! changes) and `delete` events, one per line, text or JSON.
//!
//! Changes are found by comparing successive views of all VMs (records plus
//! runtime state from one driver query), taken every `interval`; a view of
//! 1000 VMs costs about as much as `vmadm list`. Runs until `stop` says so
//! or the reader goes away.

use super::context::Ctx;
use super::error::{OpsError, OpsResult};
use super::view::full_object;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;
use uuid::Uuid;

/// What `vmadm events` was asked for.
pub struct EventOptions {
    /// Full dates and zonenames in text mode.
    pub full: bool,
    /// One JSON object per line.
    pub json: bool,
    /// Print a `ready` event first.
    pub ready: bool,
    /// Only this VM.
    pub uuid: Option<Uuid>,
    /// Time between two views.
    pub interval: Duration,
}

type View = BTreeMap<String, Map<String, Value>>;

fn view(ctx: &Ctx, only: Option<&Uuid>) -> OpsResult<View> {
    let records = ctx.store.load_all()?;
    let uuids: Vec<Uuid> = records
        .iter()
        .map(|(u, _)| *u)
        .filter(|u| only.is_none_or(|o| o == u))
        .collect();
    let runtimes = if uuids.is_empty() {
        Default::default()
    } else {
        ctx.runtimes(&uuids)?
    };
    Ok(records
        .into_iter()
        .filter(|(u, _)| uuids.contains(u))
        .filter_map(|(u, r)| r.ok().map(|r| (u, r)))
        .map(|(u, r)| {
            let obj = full_object(r, runtimes.get(&u), ctx.config.server_uuid.as_deref());
            (u.to_string(), obj)
        })
        .collect())
}

/// One difference between two versions of a VM object.
#[derive(Debug, Clone, PartialEq)]
struct Change {
    /// Keys from the top of the object down; a NIC's index is `null`.
    path: Vec<Value>,
    /// The path joined with dots, a NIC index shown as `*`.
    pretty: String,
    /// `added`, `removed` or `changed`.
    action: &'static str,
    /// The value before; `None` when added.
    old: Option<Value>,
    /// The value after; `None` when removed.
    new: Option<Value>,
}

impl Change {
    fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("path".into(), Value::Array(self.path.clone()));
        m.insert("prettyPath".into(), self.pretty.clone().into());
        m.insert("action".into(), self.action.into());
        if let Some(o) = &self.old {
            m.insert("oldValue".into(), o.clone());
        }
        if let Some(n) = &self.new {
            m.insert("newValue".into(), n.clone());
        }
        Value::Object(m)
    }
}

fn push(out: &mut Vec<Change>, path: &[Value], old: Option<&Value>, new: Option<&Value>) {
    let pretty = path
        .iter()
        .map(|p| match p {
            Value::String(s) => s.clone(),
            _ => "*".into(),
        })
        .collect::<Vec<_>>()
        .join(".");
    let action = match (old, new) {
        (None, Some(_)) => "added",
        (Some(_), None) => "removed",
        _ => "changed",
    };
    out.push(Change {
        path: path.to_vec(),
        pretty,
        action,
        old: old.cloned(),
        new: new.cloned(),
    });
}

/// Differences between two objects: nested objects recursively, `nics`
/// matched by MAC (their index shows as `*`), other arrays as whole values.
fn diff(old: &Map<String, Value>, new: &Map<String, Value>) -> Vec<Change> {
    let mut out = Vec::new();
    diff_maps(&mut out, &mut Vec::new(), old, new);
    out
}

fn diff_maps(
    out: &mut Vec<Change>,
    path: &mut Vec<Value>,
    old: &Map<String, Value>,
    new: &Map<String, Value>,
) {
    for (k, ov) in old {
        path.push(Value::String(k.clone()));
        match new.get(k) {
            None => push(out, path, Some(ov), None),
            Some(nv) => diff_values(out, path, ov, nv),
        }
        path.pop();
    }
    for (k, nv) in new {
        if !old.contains_key(k) {
            path.push(Value::String(k.clone()));
            push(out, path, None, Some(nv));
            path.pop();
        }
    }
}

fn diff_values(out: &mut Vec<Change>, path: &mut Vec<Value>, ov: &Value, nv: &Value) {
    if ov == nv {
        return;
    }
    match (ov, nv) {
        (Value::Object(a), Value::Object(b)) => diff_maps(out, path, a, b),
        (Value::Array(a), Value::Array(b)) if path.len() == 1 && path[0] == "nics" => {
            let mac = |n: &Value| n.get("mac").and_then(Value::as_str).map(str::to_string);
            path.push(Value::Null);
            for o in a {
                match b.iter().find(|n| mac(n) == mac(o)) {
                    None => push(out, path, Some(o), None),
                    Some(n) => diff_values(out, path, o, n),
                }
            }
            for n in b {
                if !a.iter().any(|o| mac(o) == mac(n)) {
                    push(out, path, None, Some(n));
                }
            }
            path.pop();
        }
        _ => push(out, path, Some(ov), Some(nv)),
    }
}

fn now_iso() -> String {
    crate::store::iso_time(std::time::SystemTime::now())
}

fn short_alias(vm: &Map<String, Value>) -> String {
    match vm.get("alias").and_then(Value::as_str) {
        Some(a) if a.chars().count() > 30 => {
            format!("{}...", a.chars().take(27).collect::<String>())
        }
        Some(a) => a.to_string(),
        None => "-".into(),
    }
}

/// Formats one event as its text line(s).
fn text_lines(
    opts: &EventOptions,
    date: &str,
    kind: &str,
    uuid: &str,
    vm: &Map<String, Value>,
    changes: &[Change],
) -> String {
    let time = if opts.full {
        date.to_string()
    } else {
        date.split_once('T').map_or(date, |(_, t)| t).to_string()
    };
    let zonename = vm.get("zonename").and_then(Value::as_str).unwrap_or(uuid);
    let zn = if opts.full {
        zonename
    } else {
        zonename.split('-').next().unwrap_or(zonename)
    };
    let base = format!("[{time}] {zn} {} {kind}", short_alias(vm));
    if changes.is_empty() {
        return format!("{base}\n");
    }
    let js = |v: &Option<Value>| v.as_ref().map_or("undefined".into(), |v| v.to_string());
    changes
        .iter()
        .map(|c| {
            format!(
                "{base}: {} {} :: {} -> {}\n",
                c.pretty,
                c.action,
                js(&c.old),
                js(&c.new)
            )
        })
        .collect()
}

/// Runs the event stream until `stop()` is true or writing fails.
pub fn events(
    ctx: &Ctx,
    opts: &EventOptions,
    out: &mut dyn Write,
    stop: &dyn Fn() -> bool,
) -> OpsResult<()> {
    if let Some(u) = &opts.uuid {
        if !ctx.store.exists(u) {
            return Err(OpsError::Failed(format!("VM {u} not found")));
        }
    }
    let mut last = view(ctx, opts.uuid.as_ref())?;
    let emit = |out: &mut dyn Write, text: String| -> bool {
        out.write_all(text.as_bytes())
            .and_then(|_| out.flush())
            .is_ok()
    };
    if opts.ready {
        let date = now_iso();
        let id = Uuid::new_v4().to_string();
        let line = if opts.json {
            let vms: Map<String, Value> = last
                .iter()
                .map(|(k, v)| (k.clone(), Value::Object(v.clone())))
                .collect();
            format!(
                "{}\n",
                json!({"type": "ready", "date": date, "uuid": id, "vms": vms})
            )
        } else if opts.full {
            format!("[{date}] ready (uuid {id})\n")
        } else {
            format!(
                "[{}] ready\n",
                date.split_once('T').map_or(date.as_str(), |(_, t)| t)
            )
        };
        if !emit(out, line) {
            return Ok(());
        }
    }
    while !stop() {
        std::thread::sleep(opts.interval);
        let next = view(ctx, opts.uuid.as_ref())?;
        let date = now_iso();
        let mut lines = String::new();
        let mut event = |kind: &str, uuid: &str, vm: &Map<String, Value>, changes: Vec<Change>| {
            if opts.json {
                let mut e = Map::new();
                e.insert("type".into(), kind.into());
                e.insert("date".into(), date.clone().into());
                e.insert(
                    "zonename".into(),
                    vm.get("zonename").cloned().unwrap_or_else(|| uuid.into()),
                );
                e.insert("uuid".into(), uuid.into());
                if kind != "delete" {
                    e.insert("vm".into(), Value::Object(vm.clone()));
                }
                if kind == "modify" {
                    e.insert(
                        "changes".into(),
                        Value::Array(changes.iter().map(Change::to_json).collect()),
                    );
                }
                lines.push_str(&format!("{}\n", Value::Object(e)));
            } else {
                lines.push_str(&text_lines(opts, &date, kind, uuid, vm, &changes));
            }
        };
        for (uuid, vm) in &next {
            match last.get(uuid) {
                None => event("create", uuid, vm, Vec::new()),
                Some(old) => {
                    let changes = diff(old, vm);
                    if !changes.is_empty() {
                        event("modify", uuid, vm, changes);
                    }
                }
            }
        }
        for (uuid, vm) in &last {
            if !next.contains_key(uuid) {
                event("delete", uuid, vm, Vec::new());
            }
        }
        if !lines.is_empty() && !emit(out, lines) {
            return Ok(());
        }
        last = next;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn diffs_name_paths_like_vminfod() {
        let a = obj(
            json!({"alias": "a", "tags": {"x": 1}, "nics": [{"mac": "m1", "ip": "192.0.2.1"}], "resolvers": ["192.0.2.53"]}),
        );
        let b = obj(
            json!({"alias": "b", "tags": {"x": 1, "y": 2}, "nics": [{"mac": "m1", "ip": "192.0.2.2"}, {"mac": "m2"}], "resolvers": []}),
        );
        let d = diff(&a, &b);
        let pretty: Vec<(&str, &str)> = d.iter().map(|c| (c.pretty.as_str(), c.action)).collect();
        assert_eq!(
            pretty,
            vec![
                ("alias", "changed"),
                ("tags.y", "added"),
                ("nics.*.ip", "changed"),
                ("nics.*", "added"),
                ("resolvers", "changed"),
            ]
        );
        assert_eq!(d[2].path, vec![json!("nics"), Value::Null, json!("ip")]);
        assert!(diff(&a, &a).is_empty());
    }

    #[test]
    fn text_lines_follow_vmadm() {
        let opts = EventOptions {
            full: false,
            json: false,
            ready: false,
            uuid: None,
            interval: Duration::from_millis(1),
        };
        let vm = obj(
            json!({"zonename": "6b8b4567-327b-4c4e-8d8e-1b2c3d4e5f60", "alias": "a".repeat(40)}),
        );
        let line = text_lines(&opts, "2026-01-01T10:11:12.123Z", "create", "x", &vm, &[]);
        assert_eq!(
            line,
            format!("[10:11:12.123Z] 6b8b4567 {}... create\n", "a".repeat(27))
        );
        let c = diff(&obj(json!({"quota": 1})), &obj(json!({"quota": 2})));
        let line = text_lines(
            &opts,
            "2026-01-01T10:11:12.123Z",
            "modify",
            "x",
            &obj(json!({"zonename": "z"})),
            &c,
        );
        assert_eq!(
            line,
            "[10:11:12.123Z] z - modify: quota changed :: 1 -> 2\n"
        );
    }
}
