//! `vmadm events [-f] [-j] [-r] [uuid]`: a stream of VM changes, as
//! SmartOS's vminfod prints them: `create`, `modify` (with a list of
//! changes) and `delete` events, one per line, text or JSON.
//!
//! On Linux the changes are pushed: the listener arms its watches (inotify
//! on the record and lock directories, a pidfd per running init; see the
//! `watch` module), only then takes the baseline view it compares against, and
//! after each wake-up re-reads just the VMs named, so nothing that happens
//! after the ready marker is missed and each change costs one record read.
//! A full comparison still runs after [`BACKSTOP`] without notifications
//! and after lost ones. Elsewhere (FreeBSD, or when the watches cannot be armed)
//! successive views of all VMs are compared every `interval`. A state that
//! is replaced before the listener reads it is reported as its successor,
//! as vminfod does. Runs until `stop` says so or the reader goes away.

#[cfg(target_os = "linux")]
mod watch;

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
    /// Time between two views where changes are not pushed.
    pub interval: Duration,
    /// Where changes are pushed, a full comparison still runs this long
    /// after the last wake-up: a safety net for what no notification
    /// covers. [`BACKSTOP`] is the usual value.
    pub backstop: Duration,
}

/// The usual [`EventOptions::backstop`].
pub const BACKSTOP: Duration = Duration::from_secs(10);

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

/// One event as its output line(s): a JSON object or vmadm's text.
fn event_lines(
    opts: &EventOptions,
    date: &str,
    kind: &str,
    uuid: &str,
    vm: &Map<String, Value>,
    changes: &[Change],
) -> String {
    if !opts.json {
        return text_lines(opts, date, kind, uuid, vm, changes);
    }
    let mut e = Map::new();
    e.insert("type".into(), kind.into());
    e.insert("date".into(), date.into());
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
    format!("{}\n", Value::Object(e))
}

/// The event (if any) for one VM going from `old` to `new`.
fn compare(
    opts: &EventOptions,
    date: &str,
    uuid: &str,
    old: Option<&Map<String, Value>>,
    new: Option<&Map<String, Value>>,
) -> String {
    match (old, new) {
        (None, Some(vm)) => event_lines(opts, date, "create", uuid, vm, &[]),
        (Some(vm), None) => event_lines(opts, date, "delete", uuid, vm, &[]),
        (Some(o), Some(n)) => {
            let changes = diff(o, n);
            if changes.is_empty() {
                String::new()
            } else {
                event_lines(opts, date, "modify", uuid, n, &changes)
            }
        }
        (None, None) => String::new(),
    }
}

/// The events between two whole views: creates and modifies in uuid
/// order, then deletes.
fn compare_views(opts: &EventOptions, date: &str, last: &View, next: &View) -> String {
    let mut lines = String::new();
    for (uuid, vm) in next {
        lines.push_str(&compare(opts, date, uuid, last.get(uuid), Some(vm)));
    }
    for (uuid, vm) in last {
        if !next.contains_key(uuid) {
            lines.push_str(&compare(opts, date, uuid, Some(vm), None));
        }
    }
    lines
}

/// The ready line: the event id, and with `-j` the baseline every later
/// event is relative to.
fn ready_line(opts: &EventOptions, baseline: &View) -> String {
    let date = now_iso();
    let id = Uuid::new_v4().to_string();
    if opts.json {
        let vms: Map<String, Value> = baseline
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
    }
}

/// Writes and flushes; false when the reader has gone.
fn emit(out: &mut dyn Write, text: &str) -> bool {
    text.is_empty()
        || out
            .write_all(text.as_bytes())
            .and_then(|_| out.flush())
            .is_ok()
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
    #[cfg(target_os = "linux")]
    {
        let (vms, locks) = ctx.store.dirs();
        match watch::Watch::new(vms, locks) {
            Ok(w) => return pushed(ctx, opts, out, stop, w),
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch the state directory; polling instead")
            }
        }
    }
    polled(ctx, opts, out, stop)
}

/// Compares whole views every `opts.interval`.
fn polled(
    ctx: &Ctx,
    opts: &EventOptions,
    out: &mut dyn Write,
    stop: &dyn Fn() -> bool,
) -> OpsResult<()> {
    let mut last = view(ctx, opts.uuid.as_ref())?;
    if opts.ready && !emit(out, &ready_line(opts, &last)) {
        return Ok(());
    }
    while !stop() {
        std::thread::sleep(opts.interval);
        let next = view(ctx, opts.uuid.as_ref())?;
        if !emit(out, &compare_views(opts, &now_iso(), &last, &next)) {
            return Ok(());
        }
        last = next;
    }
    Ok(())
}

/// One VM's object now; `None` when it has no readable record (as
/// [`view`] leaves such VMs out).
#[cfg(target_os = "linux")]
fn one(ctx: &Ctx, uuid: &Uuid) -> OpsResult<Option<Map<String, Value>>> {
    let Ok(Some(rec)) = ctx.store.load(uuid) else {
        return Ok(None);
    };
    let rt = ctx.runtime(uuid)?;
    Ok(Some(full_object(
        rec,
        rt.as_ref(),
        ctx.config.server_uuid.as_deref(),
    )))
}

/// The init pid of a VM object that is running.
#[cfg(target_os = "linux")]
fn running_pid(vm: &Map<String, Value>) -> Option<u32> {
    if vm.get("state").and_then(Value::as_str) != Some("running") {
        return None;
    }
    vm.get("pid")
        .and_then(Value::as_u64)
        .and_then(|p| u32::try_from(p).ok())
}

/// Keeps the pidfd of `uuid` on the init `vm` shows. True when the VM must
/// be read again: its init is already gone, or the pid now names another
/// process (the driver's check of the init's start time decides).
#[cfg(target_os = "linux")]
fn arm(
    ctx: &Ctx,
    w: &mut watch::Watch,
    uuid: &Uuid,
    vm: Option<&Map<String, Value>>,
) -> OpsResult<bool> {
    let Some(pid) = vm.and_then(running_pid) else {
        w.untrack(uuid);
        return Ok(false);
    };
    if w.tracked(uuid) == Some(pid) {
        return Ok(false);
    }
    let io = |e: std::io::Error| OpsError::Failed(format!("cannot watch VM {uuid}'s init: {e}"));
    if !w.track(*uuid, pid).map_err(io)? {
        return Ok(true);
    }
    // The pidfd pins this pid now; make sure it is still this VM's init.
    let still = ctx
        .runtime(uuid)?
        .is_some_and(|r| r.running && r.pid == Some(pid));
    if !still {
        w.untrack(uuid);
    }
    Ok(!still)
}

/// VMs to read again at once because their init went while being armed,
/// with how often in a row each was: a driver that keeps reporting a dead
/// init as running is left to the backstop instead of spinning.
#[cfg(target_os = "linux")]
#[derive(Default)]
struct Again {
    queue: std::collections::VecDeque<Uuid>,
    tries: std::collections::HashMap<Uuid, u32>,
}

#[cfg(target_os = "linux")]
impl Again {
    const MAX_TRIES: u32 = 3;

    fn push(&mut self, u: Uuid) {
        let n = self.tries.entry(u).or_default();
        *n += 1;
        if *n <= Self::MAX_TRIES && !self.queue.contains(&u) {
            self.queue.push_back(u);
        }
    }
}

/// The pushed stream: watches armed first, then the baseline, then one
/// re-read per VM a notification names.
#[cfg(target_os = "linux")]
fn pushed(
    ctx: &Ctx,
    opts: &EventOptions,
    out: &mut dyn Write,
    stop: &dyn Fn() -> bool,
    mut w: watch::Watch,
) -> OpsResult<()> {
    let only = opts.uuid.as_ref();
    let mut last = view(ctx, only)?;
    let mut again = Again::default();
    let arm_all = |w: &mut watch::Watch, last: &View, again: &mut Again| -> OpsResult<()> {
        for (uuid, vm) in last {
            if let Ok(u) = Uuid::parse_str(uuid) {
                if arm(ctx, w, &u, Some(vm))? {
                    again.push(u);
                }
            }
        }
        Ok(())
    };
    arm_all(&mut w, &last, &mut again)?;
    if opts.ready && !emit(out, &ready_line(opts, &last)) {
        return Ok(());
    }
    while !stop() {
        let wakes = if again.queue.is_empty() {
            again.tries.clear();
            w.wait(opts.backstop)
                .map_err(|e| OpsError::Failed(format!("cannot wait for VM changes: {e}")))?
        } else {
            Vec::new()
        };
        let mut lines = String::new();
        if (wakes.is_empty() && again.queue.is_empty()) || wakes.contains(&watch::Wake::All) {
            let next = view(ctx, only)?;
            lines.push_str(&compare_views(opts, &now_iso(), &last, &next));
            last = next;
            again.queue.clear();
            arm_all(&mut w, &last, &mut again)?;
        } else {
            let named = wakes.iter().filter_map(|wk| match wk {
                watch::Wake::Vm(u) => Some(*u),
                watch::Wake::All => None,
            });
            let todo: Vec<Uuid> = again.queue.drain(..).chain(named).collect();
            for uuid in todo {
                if only.is_some_and(|o| *o != uuid) {
                    continue;
                }
                let key = uuid.to_string();
                let now = one(ctx, &uuid)?;
                lines.push_str(&compare(
                    opts,
                    &now_iso(),
                    &key,
                    last.get(&key),
                    now.as_ref(),
                ));
                if arm(ctx, &mut w, &uuid, now.as_ref())? {
                    again.push(uuid);
                }
                match now {
                    Some(vm) => last.insert(key, vm),
                    None => last.remove(&key),
                };
            }
        }
        if !emit(out, &lines) {
            return Ok(());
        }
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
            backstop: BACKSTOP,
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

    /// Collects what `events` writes, one line per message.
    struct Lines(std::sync::mpsc::Sender<String>);

    impl Write for Lines {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            for l in String::from_utf8_lossy(buf).lines() {
                let _ = self.0.send(l.to_string());
            }
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn pushed_events_follow_every_vm_in_order() {
        use crate::ops::testing::Fixture;
        use std::sync::atomic::{AtomicBool, Ordering};
        let fx = Fixture::new();
        let booted = fx.create_vm(json!({"autoboot": true}));
        let opts = EventOptions {
            full: false,
            json: true,
            ready: true,
            uuid: None,
            interval: Duration::from_secs(3600),
            // Pushed or nothing: no comparison on a timer during the test.
            backstop: Duration::from_secs(3600),
        };
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        let done = AtomicBool::new(false);
        let next = || -> Value {
            let line = rx
                .recv_timeout(Duration::from_secs(60))
                .expect("no event within 60 s");
            serde_json::from_str(&line).unwrap()
        };
        // Stops the listener when this scope is left, by a failed assertion
        // too: without it, a panic here would leave `scope` waiting forever
        // for a listener nobody tells to stop.
        struct StopListener<'a> {
            done: &'a AtomicBool,
            fx: &'a Fixture,
            wake: Uuid,
        }
        impl Drop for StopListener<'_> {
            fn drop(&mut self) {
                self.done.store(true, Ordering::SeqCst);
                // Wake the listener so it sees `done`.
                drop(self.fx.ctx.store.lock_vm(&self.wake));
            }
        }
        std::thread::scope(|s| {
            s.spawn(|| {
                let mut out = Lines(tx);
                events(&fx.ctx, &opts, &mut out, &|| done.load(Ordering::SeqCst)).unwrap();
            });
            let stop = StopListener {
                done: &done,
                fx: &fx,
                wake: booted,
            };
            let ready = next();
            assert_eq!(ready["type"], "ready");
            assert_eq!(ready["vms"][booted.to_string()]["state"], "running");
            // Changed in the driver only: nothing to see until a verb that
            // held the VM's lock is done with it.
            fx.driver.set_running(booted, false);
            drop(fx.ctx.store.lock_vm(&booted).unwrap());
            let e = next();
            assert_eq!(
                (&e["type"], &e["uuid"]),
                (&json!("modify"), &json!(booted.to_string()))
            );
            assert_eq!(e["vm"]["state"], "stopped");

            let made: Vec<Uuid> = std::thread::scope(|w| {
                let handles: Vec<_> = (0..4)
                    .map(|t| {
                        let fx = &fx;
                        w.spawn(move || {
                            (0..10)
                                .map(|i| {
                                    let uuid = fx.create_vm(json!({"alias": format!("v{t}-{i}")}));
                                    let mut p = Map::new();
                                    p.insert("alias".into(), json!(format!("u{t}-{i}")));
                                    crate::ops::update::update(&fx.ctx, &uuid, &p).unwrap();
                                    crate::ops::delete::delete(&fx.ctx, &uuid).unwrap();
                                    uuid
                                })
                                .collect::<Vec<_>>()
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .flat_map(|h| h.join().unwrap())
                    .collect()
            });
            // A VM made and removed again between two reads of the listener
            // is never seen, so it has no events at all (its net effect is
            // nothing). A sentinel made after all writers are done is the
            // barrier: notifications are handled in the order they came, so
            // once its create arrives every earlier one has been handled.
            let sentinel = fx.create_vm(json!({"alias": "sentinel"}));
            let mut seen: BTreeMap<String, Vec<String>> = BTreeMap::new();
            loop {
                let e = next();
                let u = e["uuid"].as_str().unwrap().to_string();
                if u == sentinel.to_string() && e["type"] == "create" {
                    break;
                }
                let alias = e["vm"]["alias"].as_str().unwrap_or("-").to_string();
                seen.entry(u)
                    .or_default()
                    .push(format!("{} {alias}", e["type"].as_str().unwrap()));
            }
            drop(stop);
            let mut whole = 0;
            for uuid in &made {
                let Some(got) = seen.get(&uuid.to_string()) else {
                    continue;
                };
                whole += 1;
                assert_eq!(got.first().map(|s| &s[..6]), Some("create"), "{got:?}");
                assert_eq!(got.last().map(String::as_str), Some("delete -"), "{got:?}");
                // The update shows up between them, unless the delete came
                // first (the listener then reads the record gone).
                let renamed = got.iter().position(|g| g.starts_with("modify u"));
                if let Some(i) = renamed {
                    assert!(i > 0 && i < got.len() - 1, "{got:?}");
                }
            }
            // Each VM lived for several fsyncs; a listener that saw none of
            // the forty would not be following them.
            assert!(whole > 0, "no VM of the writers was seen: {seen:?}");
        });
    }
}
