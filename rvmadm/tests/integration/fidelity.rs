//! The rows of docs/fidelity.md: each user-visible line of `vmadm` and
//! `imgadm` as SmartOS prints it, checked byte for byte with its exit code
//! against the real binaries (row ids such as `V12` and `I3` are in the
//! assertion messages). Also `imgadm vacuum` and `imgadm update` against a
//! real pool and a loopback image server, and `vmadm events` pushed to a
//! listener: 100 VMs changing at once, and a jail's init killed from
//! outside.

use crate::harness::{assert_exit, bin, stderr, stdout, zfs, Env};
use crate::imgserver::ImgServer;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

const IMAGE: &str = "a1b2c3d4-0000-4000-8000-0000000000f1";
const NOVM: &str = "99999999-0000-4000-8000-00000000f1f1";

/// Asserts stderr (trimmed of its last newline), stdout and the exit code
/// of one row.
#[track_caller]
fn row(id: &str, o: &Output, code: i32, err: &str, out: &str) {
    assert_eq!(
        (o.status.code(), stderr(o).as_str(), stdout(o).as_str()),
        (Some(code), err, out),
        "row {id}"
    );
}

/// The first stderr line (SmartOS follows usage lines with its usage text,
/// which differs on purpose, see the doc) and the exit code.
#[track_caller]
fn first_line(id: &str, o: &Output, code: i32, line: &str) {
    let e = stderr(o);
    assert_eq!(
        (o.status.code(), e.lines().next().unwrap_or("")),
        (Some(code), line),
        "row {id}: {e}"
    );
}

fn env_with_image() -> Option<Env> {
    let env = Env::new()?;
    env.fake_image_dataset(IMAGE);
    Some(env)
}

fn create(env: &Env, extra: Value) -> String {
    let mut p = json!({"brand": "jail", "image_uuid": IMAGE, "autoboot": false});
    for (k, v) in extra.as_object().unwrap() {
        p[k] = v.clone();
    }
    let o = env.vmadm_in(&["create"], &p.to_string());
    let e = stderr(&o);
    let uuid = e
        .trim()
        .strip_prefix("Successfully created VM ")
        .unwrap_or_else(|| panic!("row V1: {e}"))
        .to_string();
    row(
        "V1",
        &o,
        0,
        &format!("Successfully created VM {uuid}\n"),
        "",
    );
    uuid
}

/// A terminal: the parent side (kept open) and the child side for stdin or
/// stdout of a binary.
struct Pty {
    _master: std::fs::File,
    slave: std::path::PathBuf,
}

fn pty() -> Pty {
    use std::os::fd::FromRawFd;
    // SAFETY: plain libc calls; each result is checked before use.
    unsafe {
        let fd = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY);
        assert!(fd >= 0, "posix_openpt");
        assert_eq!(libc::grantpt(fd), 0);
        assert_eq!(libc::unlockpt(fd), 0);
        let mut buf = [0 as libc::c_char; 128];
        assert_eq!(libc::ptsname_r(fd, buf.as_mut_ptr(), buf.len()), 0);
        let name = std::ffi::CStr::from_ptr(buf.as_ptr())
            .to_string_lossy()
            .into_owned();
        Pty {
            _master: std::fs::File::from_raw_fd(fd),
            slave: name.into(),
        }
    }
}

/// Runs vmadm with a terminal as stdin (`tty_in`) or stdout.
fn vmadm_tty(env: &Env, args: &[&str], tty_in: bool) -> Output {
    let t = pty();
    let open = || {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&t.slave)
            .unwrap()
    };
    let mut cmd = Command::new(bin("vmadm"));
    cmd.args(args).env("VMADM_CONFIG", &env.config);
    if tty_in {
        cmd.stdin(Stdio::from(open())).stdout(Stdio::piped());
    } else {
        cmd.stdin(Stdio::null()).stdout(Stdio::from(open()));
    }
    cmd.stderr(Stdio::piped()).output().unwrap()
}

#[test]
fn vmadm_verbs_say_what_smartos_says() {
    let Some(env) = env_with_image() else { return };
    let u = create(&env, json!({"alias": "fid"}));
    // V2-V5: payload input.
    first_line(
        "V2",
        &vmadm_tty(&env, &["create"], true),
        2,
        "Will not create from stdin when stdin is a tty.",
    );
    first_line(
        "V9",
        &vmadm_tty(&env, &["update", &u], true),
        2,
        "Will not update from stdin when stdin is a tty.",
    );
    first_line(
        "V37",
        &vmadm_tty(&env, &["reprovision", &u], true),
        2,
        "Will not take payload from stdin when stdin is a tty.",
    );
    let o = env.vmadm_in(&["create"], "{not json");
    assert_exit(&o, 1);
    assert!(
        stderr(&o).starts_with("Invalid JSON payload: "),
        "row V3: {}",
        stderr(&o)
    );
    let missing = env.root().join("nope.json");
    let m = missing.to_str().unwrap();
    row(
        "V4",
        &env.vmadm(&["create", "-f", m]),
        1,
        &format!("File: {m} does not exist.\n"),
        "",
    );
    // V5-V7: get.
    row(
        "V5",
        &env.vmadm(&["get", NOVM]),
        1,
        &format!("zoneadm: {NOVM}: No such zone configured\n"),
        "",
    );
    first_line(
        "V6",
        &env.vmadm(&["get", "not-a-uuid"]),
        2,
        "Invalid or missing UUID for get",
    );
    first_line(
        "V7",
        &env.vmadm(&["get"]),
        2,
        "Invalid or missing UUID for get",
    );
    // V8: update.
    row(
        "V8",
        &env.vmadm(&["update", &u, "alias=fid2"]),
        0,
        &format!("Successfully updated VM {u}\n"),
        "",
    );
    // V16, V18, V20, V34: verbs on a stopped VM.
    row(
        "V16",
        &env.vmadm(&["stop", &u]),
        0,
        &format!("VM {u} is already not 'running' (currently: stopped)\n"),
        "",
    );
    row(
        "V18",
        &env.vmadm(&["reboot", &u]),
        1,
        "Cannot reboot vm from state \"stopped\", must be \"running\".\n",
        "",
    );
    row(
        "V20",
        &env.vmadm(&["kill", &u]),
        1,
        &format!("Cannot find running init PID for VM {u}\n"),
        "",
    );
    first_line(
        "V21",
        &env.vmadm(&["kill", &u, NOVM]),
        2,
        "Too many arguments.",
    );
    row(
        "V34",
        &env.vmadm(&["info", &u]),
        1,
        &format!("Unable to get VM info for VM {u}: Unable to get info for vm from state \"stopped\", must be \"running\" or \"stopping\".\n"),
        "",
    );
    row(
        "V41",
        &env.vmadm(&["sysrq", &u, "nmi"]),
        1,
        "Unable to send request to vm from state \"stopped\", must be \"running\" or \"stopping\".\n",
        "",
    );
    first_line(
        "V41b",
        &env.vmadm(&["sysrq", &u, "reset"]),
        2,
        "Invalid sysrq type: reset",
    );
    // V22-V23: snapshots.
    row(
        "V22",
        &env.vmadm(&["create-snapshot", &u, "s1"]),
        0,
        &format!("Created snapshot s1 for VM {u}\n"),
        "",
    );
    row(
        "V22b",
        &env.vmadm(&["rollback-snapshot", &u, "s1"]),
        0,
        &format!("Rolled back snapshot s1 for VM {u}\n"),
        "",
    );
    row(
        "V22c",
        &env.vmadm(&["delete-snapshot", &u, "s1"]),
        0,
        &format!("Deleted snapshot s1 for VM {u}\n"),
        "",
    );
    first_line(
        "V23",
        &env.vmadm(&["create-snapshot", &u]),
        2,
        "Wrong number of parameters to \"create-snapshot\"",
    );
    // V24-V29: lookup and list.
    row(
        "V24",
        &env.vmadm(&["lookup", "-1", "alias=nothing"]),
        1,
        "Requested unique lookup but found 0 results.\n",
        "",
    );
    row(
        "V25",
        &env.vmadm(&["lookup", "-o", "uuid"]),
        1,
        "Cannot specify -o without -j\n",
        "",
    );
    row(
        "V26",
        &env.vmadm(&["lookup", "bogus=1"]),
        1,
        "Invalid lookup key: \"bogus\"\n",
        "",
    );
    row(
        "V27",
        &env.vmadm(&["list", "bogus=1"]),
        1,
        "Invalid filter key: \"bogus\"\n",
        "",
    );
    row(
        "V28",
        &env.vmadm(&["list", "-o", "bogus"]),
        1,
        "invalid order field: bogus\n",
        "",
    );
    row(
        "V29",
        &env.vmadm(&["list", "-s", "bogus"]),
        1,
        "invalid sort field: bogus\n",
        "",
    );
    // V30-V33: validate and unknown verbs.
    row(
        "V30",
        &env.vmadm_in(
            &["validate", "create"],
            &json!({"brand": "jail", "image_uuid": IMAGE}).to_string(),
        ),
        0,
        "VALID 'create' payload for jail brand VMs.\n",
        "",
    );
    first_line(
        "V31",
        &env.vmadm_in(&["validate"], "{}"),
        2,
        "Will not validate without a valid action.",
    );
    first_line(
        "V32",
        &env.vmadm_in(&["validate", "update"], "{}"),
        2,
        "Will not validate without a valid action and brand.",
    );
    first_line(
        "V33",
        &env.vmadm(&["frobnicate"]),
        2,
        "Invalid command: \"frobnicate\".",
    );
    // V35-V36: send and receive.
    row(
        "V35",
        &vmadm_tty(&env, &["send", &u], false),
        1,
        "Cannot send VM to a TTY.\n",
        "",
    );
    let sent = env.vmadm(&["send", &u]);
    assert_eq!(
        (sent.status.code(), stderr(&sent)),
        (Some(0), format!("Successfully sent VM {u}\n")),
        "row V36"
    );
    // V10-V12: delete, with and without -F, and of nothing.
    row(
        "V11",
        &env.vmadm(&["delete", "-F", &u]),
        0,
        &format!("Successfully deleted VM {u}\n"),
        "",
    );
    let back = env.run("vmadm", &["receive"], Some(&sent.stdout));
    row(
        "V36b",
        &back,
        0,
        &format!("Successfully received VM {u}\n"),
        "",
    );
    row(
        "V10",
        &env.vmadm(&["delete", &u]),
        0,
        &format!("Successfully deleted VM {u}\n"),
        "",
    );
    row(
        "V12",
        &env.vmadm(&["delete", "-F", NOVM]),
        1,
        &format!("Failed to delete VM {NOVM}: VM {NOVM} not found\n"),
        "",
    );
}

/// One `vmadm events` listener over the real binary: its lines arrive on a
/// channel; a watchdog kills it if the test stalls.
struct Listener {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<(Instant, String)>,
}

impl Listener {
    fn start(vmadm: &Path, config: &Path, args: &[&str]) -> Listener {
        let mut child = Command::new(vmadm)
            .arg("events")
            .args(args)
            .env("VMADM_CONFIG", config)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines() {
                let Ok(l) = l else { break };
                if tx.send((Instant::now(), l)).is_err() {
                    break;
                }
            }
        });
        Listener { child, lines: rx }
    }

    fn next(&self) -> (Instant, String) {
        self.lines
            .recv_timeout(Duration::from_secs(120))
            .expect("an event within the watchdog's time")
    }

    fn next_json(&self) -> Value {
        serde_json::from_str(&self.next().1).unwrap()
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn events_text_lines_are_vmadms() {
    let Some(env) = env_with_image() else { return };
    let l = Listener::start(&bin("vmadm"), &env.config, &["-r"]);
    let (_, ready) = l.next();
    // [HH:MM:SS.mmmZ] ready
    let ok = ready.len() == 21
        && ready.starts_with('[')
        && ready.ends_with("Z] ready")
        && ready.as_bytes()[3] == b':';
    assert!(ok, "row V38: {ready:?}");
    let u = create(&env, json!({"alias": "texty"}));
    let zn = &u[..8];
    let (_, created) = l.next();
    assert!(
        created.ends_with(&format!("] {zn} texty create")),
        "row V39: {created:?}"
    );
    assert_exit(&env.vmadm(&["update", &u, "alias=texty2"]), 0);
    let want = format!("] {zn} texty2 modify: alias changed :: \"texty\" -> \"texty2\"");
    loop {
        let (_, line) = l.next();
        if line.ends_with(&want) {
            break;
        }
        assert!(line.contains(" modify: "), "row V39b: {line:?}");
    }
    let f = Listener::start(&bin("vmadm"), &env.config, &["-r", "-f"]);
    let (_, ready) = f.next();
    assert!(
        ready.contains("Z] ready (uuid ") && ready.ends_with(')'),
        "row V38b: {ready:?}"
    );
    assert_exit(&env.vmadm(&["delete", &u]), 0);
    let (_, gone) = f.next();
    assert!(
        gone.ends_with(&format!("] {u} texty2 delete")),
        "row V39c: {gone:?}"
    );
}

/// A config for a records-only host: no pool is touched, the driver is
/// `none` (every VM stopped).
fn records_only_config(dir: &Path) -> std::path::PathBuf {
    let config = dir.join("vmadm.toml");
    std::fs::write(
        &config,
        format!(
            "pool = \"nopool\"\nstate_dir = \"{s}\"\nimage_dir = \"{s}/images\"\nrun_dir = \"{s}/run\"\ndriver = \"none\"\n",
            s = dir.join("state").display()
        ),
    )
    .unwrap();
    config
}

fn vm_record(uuid: &str, alias: &str) -> rvmadm::spec::VmRecord {
    let doc = json!({"record_version": 1, "vm": {
        "uuid": uuid, "brand": "jail", "alias": alias, "autoboot": false,
        "zonename": uuid, "image_uuid": IMAGE,
    }});
    rvmadm::store::decode(doc.to_string().as_bytes()).unwrap()
}

/// (listener, VM) → the events' (type, alias).
type PerVm = HashMap<(usize, String), Vec<(String, String)>>;

/// What each listener has printed, per VM, and a way to wait for a count.
#[derive(Default)]
struct Seen {
    by_vm: Mutex<PerVm>,
    changed: Condvar,
}

impl Seen {
    /// Waits until each of `listeners` has printed `n` events of `uuid`.
    fn wait_for(&self, listeners: usize, uuid: &str, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut g = self.by_vm.lock().unwrap();
        let behind = |g: &PerVm| {
            (0..listeners).any(|i| g.get(&(i, uuid.to_string())).map_or(0, Vec::len) < n)
        };
        while behind(&g) {
            assert!(Instant::now() < deadline, "a listener stalled on {uuid}");
            g = self
                .changed
                .wait_timeout(g, Duration::from_secs(1))
                .unwrap()
                .0;
        }
    }
}

/// 100 VMs created, updated and deleted at once through the store (the
/// record files vmadm writes), watched by three listeners at once; every
/// VM's step waits until all listeners printed the one before, so a
/// listener that missed one would stall.
#[test]
fn events_see_100_concurrent_creates_updates_deletes_in_order() {
    const LISTENERS: usize = 3;
    let dir = tempfile::tempdir().unwrap();
    let config = records_only_config(dir.path());
    let store = Arc::new(rvmadm::store::Store::new(&dir.path().join("state")));
    let seen = Arc::new(Seen::default());
    let readers: Vec<_> = (0..LISTENERS)
        .map(|n| {
            let l = Listener::start(&bin("vmadm"), &config, &["-j", "-r"]);
            assert_eq!(l.next_json()["type"], "ready");
            let seen = seen.clone();
            std::thread::spawn(move || {
                for _ in 0..300 {
                    let e = l.next_json();
                    let u = e["uuid"].as_str().unwrap().to_string();
                    let alias = e["vm"]["alias"].as_str().unwrap_or("-").to_string();
                    let kind = e["type"].as_str().unwrap().to_string();
                    seen.by_vm
                        .lock()
                        .unwrap()
                        .entry((n, u))
                        .or_default()
                        .push((kind, alias));
                    seen.changed.notify_all();
                }
            })
        })
        .collect();
    let workers: Vec<_> = (0..100)
        .map(|i| {
            let (store, seen) = (store.clone(), seen.clone());
            std::thread::spawn(move || {
                let u = uuid::Uuid::new_v4();
                let us = u.to_string();
                store.save(&u, &vm_record(&us, &format!("a{i}"))).unwrap();
                seen.wait_for(LISTENERS, &us, 1);
                store.save(&u, &vm_record(&us, &format!("b{i}"))).unwrap();
                seen.wait_for(LISTENERS, &us, 2);
                store.remove(&u).unwrap();
                seen.wait_for(LISTENERS, &us, 3);
                (us, i)
            })
        })
        .collect();
    let done: Vec<(String, usize)> = workers.into_iter().map(|w| w.join().unwrap()).collect();
    for r in readers {
        r.join().unwrap();
    }
    let by_vm = seen.by_vm.lock().unwrap();
    assert_eq!(by_vm.len(), 100 * LISTENERS);
    for (u, i) in done {
        for n in 0..LISTENERS {
            let got: Vec<(&str, &str)> = by_vm[&(n, u.clone())]
                .iter()
                .map(|(k, a)| (k.as_str(), a.as_str()))
                .collect();
            assert_eq!(
                got,
                [
                    ("create", format!("a{i}").as_str()),
                    ("modify", format!("b{i}").as_str()),
                    ("delete", "-"),
                ],
                "listener {n}, {u}"
            );
        }
    }
}

/// Change-to-listener latency of one `vmadm events` binary, sequential
/// record renames: median and p99 in microseconds, from the rename to the
/// line read from the listener's stdout. Run by hand:
/// `EVENTS_VMADM=/path/to/vmadm cargo test … events_latency -- --ignored
/// --nocapture` (default: this build's binary).
#[test]
#[ignore]
fn events_latency() {
    let vmadm = std::env::var_os("EVENTS_VMADM").map_or_else(|| bin("vmadm"), Into::into);
    let dir = tempfile::tempdir().unwrap();
    let config = records_only_config(dir.path());
    let vms = dir.path().join("state/vms");
    std::fs::create_dir_all(&vms).unwrap();
    let l = Listener::start(&vmadm, &config, &["-j", "-r"]);
    assert_eq!(l.next_json()["type"], "ready");
    let us = uuid::Uuid::new_v4().to_string();
    let (tmp, file) = (vms.join(".latency.tmp"), vms.join(format!("{us}.json")));
    let mut lat = Vec::new();
    for i in 0..200 {
        // The store's own write, minus its fsyncs: the change is the rename.
        let doc = json!({"record_version": 1, "vm": {
            "uuid": us, "brand": "jail", "alias": format!("x{i}"), "zonename": us,
        }});
        std::fs::write(&tmp, doc.to_string()).unwrap();
        let t0 = Instant::now();
        std::fs::rename(&tmp, &file).unwrap();
        let (t1, _) = l.next();
        lat.push(t1.duration_since(t0).as_micros());
        // Uneven gaps, so polling is not measured in phase with its timer.
        std::thread::sleep(Duration::from_millis(5 + (i * 37 % 101) as u64));
    }
    lat.sort_unstable();
    println!(
        "events latency {}: median {} us, p99 {} us, n={}",
        vmadm.display(),
        lat[lat.len() / 2],
        lat[lat.len() * 99 / 100],
        lat.len()
    );
}

#[test]
fn imgadm_lines_are_smartos_lines() {
    let Some(env) = Env::new() else { return };
    row(
        "I7",
        &env.imgadm(&["avail"]),
        1,
        "imgadm avail: error (NoSources): imgadm has no configured sources\n",
        "",
    );
    let srv = ImgServer::start();
    let url = srv.url.clone();
    row(
        "I1",
        &env.imgadm(&["sources", "-a", &url]),
        0,
        "",
        &format!("Added \"imgapi\" image source \"{url}\"\n"),
    );
    row(
        "I2",
        &env.imgadm(&["sources", "-a", &format!("{url}/")]),
        0,
        "",
        &format!("Already have \"imgapi\" image source \"{url}\", no change\n"),
    );
    row("I5", &env.imgadm(&["sources"]), 0, "", &format!("{url}\n"));
    let old = ImgServer::start();
    old.set_ping(json!({"ping": "pong"}));
    let o = env.imgadm(&["sources", "-a", &old.url]);
    assert_exit(&o, 1);
    assert!(
        stderr(&o).starts_with(&format!(
            "imgadm sources: error (SourcePing): unexpected ping error with \"imgapi\" image source \"{}\": ",
            old.url
        )),
        "row I6: {}",
        stderr(&o)
    );
    row(
        "I3",
        &env.imgadm(&["sources", "-d", &url]),
        0,
        "",
        &format!("Deleted \"imgapi\" image source \"{url}\"\n"),
    );
    row(
        "I4",
        &env.imgadm(&["sources", "-d", &url]),
        0,
        "",
        &format!("Do not have image source \"{url}\", no change\n"),
    );
    assert_exit(&env.imgadm(&["sources", "-a", &url]), 0);
    // I5c: -c pings each source into a url/type/ok/error table.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    assert_exit(&env.imgadm(&["sources", "-a", &dead, "-f"]), 0);
    let o = env.imgadm(&["sources", "-c"]);
    assert_exit(&o, 0);
    let text = stdout(&o);
    let lines: Vec<Vec<&str>> = text
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(lines[0], ["URL", "TYPE", "OK", "ERROR"], "row I5c: {text}");
    assert_eq!(
        lines[1],
        [url.as_str(), "imgapi", "true", "-"],
        "row I5c: {text}"
    );
    assert_eq!(
        &lines[2][..3],
        [dead.as_str(), "imgapi", "false"],
        "row I5c: {text}"
    );
    assert!(lines[2].len() > 3, "row I5c: the error is shown: {text}");
    row(
        "I5d",
        &env.imgadm(&["sources", "-c", "-d", &dead]),
        1,
        "imgadm sources: error (Usage): cannot specify more than one of \"-a\", \"-d\", \"-e\", and \"-c\"\n",
        "",
    );
    assert_exit(&env.imgadm(&["sources", "-d", &dead]), 0);
    row(
        "I8",
        &env.imgadm(&["show", NOVM]),
        1,
        &format!("imgadm show: error (ImageNotFound): image \"{NOVM}\" was not found\n"),
        "",
    );
    row(
        "I9",
        &env.imgadm(&["import", NOVM]),
        1,
        &format!("imgadm import: error (ActiveImageNotFound): an active image \"{NOVM}\" was not found in image sources\n"),
        "",
    );
    row(
        "I11",
        &env.imgadm(&["get", NOVM]),
        3,
        &format!(
            "imgadm get: error (ImageNotInstalled): image \"{NOVM}\" was not found on zpool \"{}\"\n",
            env.pool
        ),
        "",
    );
    row(
        "I13",
        &env.imgadm(&["get", "nope"]),
        1,
        "imgadm get: error (InvalidUUID): invalid uuid: \"nope\"\n",
        "",
    );
    row(
        "I14",
        &env.imgadm(&["frobnicate"]),
        1,
        "imgadm: error (UnknownCommand): unknown command: \"frobnicate\"\n",
        "",
    );
    row(
        "I15",
        &env.imgadm(&["import"]),
        1,
        "imgadm import: error (Usage): incorrect number of args (0): \"\"\n",
        "",
    );
    row(
        "I16d",
        &env.imgadm(&["update", NOVM]),
        1,
        &format!(
            "imgadm update: error (Usage): no installed image with the given UUID(s): {NOVM}\n"
        ),
        "",
    );
    row(
        "I17e",
        &env.imgadm(&["vacuum", "extra"]),
        1,
        "imgadm vacuum: error (Usage): unexpected arguments: extra\n",
        "",
    );
    // I12: delete, with a clone and without.
    env.fake_image_dataset(IMAGE);
    let clone = format!("{}/clone1", env.pool);
    // Never mounted: zfs-fuse calls a fresh mount busy for a moment.
    zfs(&[
        "clone",
        "-o",
        "canmount=off",
        &format!("{}/{IMAGE}@final", env.pool),
        &clone,
    ]);
    row(
        "I12b",
        &env.imgadm(&["delete", IMAGE]),
        1,
        &format!("imgadm delete: error (ImageHasDependentClones): image \"{IMAGE}\" has dependent clones: {clone}\n"),
        "",
    );
    zfs(&["destroy", &clone]);
    row(
        "I12",
        &env.imgadm(&["delete", IMAGE]),
        0,
        "",
        &format!("Deleted image {IMAGE}\n"),
    );
}

/// An image served and installed with a record, as `imgadm import` leaves
/// it (the dataset made directly, faster than a download).
fn served_image(env: &Env, srv: &ImgServer, uuid: &str, name: &str, origin: Option<&str>) {
    let mut m = json!({
        "v": 2, "uuid": uuid, "name": name, "version": "1.0", "type": "lx-dataset",
        "os": "linux", "state": "active", "disabled": false, "public": true,
        "published_at": "2026-01-01T00:00:00.000Z",
        "files": [{"sha1": "0000000000000000000000000000000000000000", "size": 1, "compression": "none"}]
    });
    if let Some(o) = origin {
        m["origin"] = json!(o);
    }
    srv.add(m.clone(), vec![0]);
    match origin {
        None => env.fake_image_dataset(uuid),
        Some(o) => {
            let ds = format!("{}/{uuid}", env.pool);
            zfs(&["clone", &format!("{}/{o}@final", env.pool), &ds]);
            zfs(&["snapshot", &format!("{ds}@final")]);
        }
    }
    let dir = env.root().join("images");
    std::fs::create_dir_all(&dir).unwrap();
    let rec = json!({"manifest": m, "zpool": env.pool, "source": srv.url});
    std::fs::write(
        dir.join(format!("{}-{uuid}.json", env.pool)),
        serde_json::to_vec_pretty(&rec).unwrap(),
    )
    .unwrap();
}

fn image_uuid(n: u8) -> String {
    format!("a1b2c3d4-0000-4000-8000-0000000000{n:02x}")
}

#[test]
fn vacuum_removes_only_what_nothing_uses() {
    let Some(env) = Env::new() else { return };
    let srv = ImgServer::start();
    assert_exit(&env.imgadm(&["sources", "-a", &srv.url]), 0);
    // base <- child <- VM: all kept. lone: removed. parent <- leaf: both
    // removed, the leaf first.
    let (base, child, lone, parent, leaf) = (
        image_uuid(1),
        image_uuid(2),
        image_uuid(3),
        image_uuid(4),
        image_uuid(5),
    );
    served_image(&env, &srv, &base, "base", None);
    served_image(&env, &srv, &child, "child", Some(&base));
    served_image(&env, &srv, &lone, "lone", None);
    served_image(&env, &srv, &parent, "parent", None);
    served_image(&env, &srv, &leaf, "leaf", Some(&parent));
    let vm = uuid::Uuid::new_v4().to_string();
    zfs(&[
        "clone",
        &format!("{}/{child}@final", env.pool),
        &format!("{}/{vm}", env.pool),
    ]);
    let vms = env.root().join("state/vms");
    std::fs::create_dir_all(&vms).unwrap();
    std::fs::write(
        vms.join(format!("{vm}.json")),
        json!({"record_version": 1, "vm": {"uuid": vm, "brand": "jail", "image_uuid": child, "zpool": env.pool}}).to_string(),
    )
    .unwrap();
    // I22: ancestry, child first, in chain order.
    row(
        "I22",
        &env.imgadm(&["ancestry", "-H", "-o", "uuid", &child]),
        0,
        "",
        &format!("{child}\n{base}\n"),
    );
    let o = env.imgadm(&["ancestry", "-j", &leaf]);
    let chain: Vec<Value> = serde_json::from_slice(&o.stdout).unwrap();
    let uuids: Vec<&str> = chain
        .iter()
        .map(|i| i["manifest"]["uuid"].as_str().unwrap())
        .collect();
    assert_eq!(uuids, [leaf.as_str(), parent.as_str()], "row I22b");
    row(
        "I22c",
        &env.imgadm(&["ancestry", NOVM]),
        3,
        &format!(
            "imgadm ancestry: error (ImageNotInstalled): image \"{NOVM}\" was not found on zpool \"{}\"\n",
            env.pool
        ),
        "",
    );
    let before = env.datasets();
    let plan = format!(
        "[dry-run] Deleted image {lone} (lone@1.0)\n[dry-run] Deleted image {leaf} (leaf@1.0)\n[dry-run] Deleted image {parent} (parent@1.0)\n"
    );
    row("I17b", &env.imgadm(&["vacuum", "-n", "-f"]), 0, "", &plan);
    assert_eq!(env.datasets(), before, "-n changed nothing");
    // Without -f it asks; no terminal here, so it refuses to guess.
    let o = env.imgadm(&["vacuum"]);
    assert_exit(&o, 1);
    assert!(
        stdout(&o).starts_with(&format!(
            "This will delete the following images:\n    {lone} (lone@1.0)\n"
        )),
        "row I17c: {}",
        stdout(&o)
    );
    assert!(
        stderr(&o).starts_with("imgadm vacuum: error (Usage): cannot ask for confirmation"),
        "{}",
        stderr(&o)
    );
    assert_eq!(env.datasets(), before);
    row(
        "I17",
        &env.imgadm(&["vacuum", "-f"]),
        0,
        "",
        &plan.replace("[dry-run] ", ""),
    );
    let after = env.datasets();
    for kept in [&base, &child, &vm] {
        assert!(after.contains(&format!("{}/{kept}", env.pool)), "{kept}");
    }
    for gone in [&lone, &leaf, &parent] {
        assert!(!after.iter().any(|d| d.contains(gone.as_str())), "{gone}");
        assert!(!env
            .root()
            .join(format!("images/{}-{gone}.json", env.pool))
            .exists());
    }
    row("I17d", &env.imgadm(&["vacuum", "-f"]), 0, "", "");
}

#[test]
fn update_refreshes_manifests_and_leaves_datasets_alone() {
    let Some(env) = Env::new() else { return };
    let srv = ImgServer::start();
    assert_exit(&env.imgadm(&["sources", "-a", &srv.url]), 0);
    let (a, b, c) = (image_uuid(0x11), image_uuid(0x12), image_uuid(0x13));
    served_image(&env, &srv, &a, "alpha", None);
    served_image(&env, &srv, &b, "beta", None);
    // c came from a server that is not (any more) a source.
    let elsewhere = ImgServer::start();
    served_image(&env, &elsewhere, &c, "gamma", None);
    let snap_guid = |u: &str| {
        zfs(&[
            "get",
            "-H",
            "-o",
            "value",
            "guid",
            &format!("{}/{u}@final", env.pool),
        ])
    };
    let guids: Vec<String> = [&a, &b, &c].iter().map(|u| snap_guid(u)).collect();
    // The source changes a's description and tags.
    let mut m = srv.manifest(&a).unwrap();
    m["description"] = json!("now described");
    m["tags"] = json!({"role": "web"});
    srv.add(m.clone(), vec![0]);
    let rec_path = |u: &str| env.root().join(format!("images/{}-{u}.json", env.pool));
    let rec_before = std::fs::read(rec_path(&a)).unwrap();
    row(
        "I16n",
        &env.imgadm(&["update", "-n", &a]),
        0,
        "",
        &format!(
            "Updated 2 manifest fields for image {a} from \"{}\": description, tags\n",
            srv.url
        ),
    );
    assert_eq!(std::fs::read(rec_path(&a)).unwrap(), rec_before, "-n wrote");
    row(
        "I16",
        &env.imgadm(&["update"]),
        0,
        "",
        &format!(
            "Updated 2 manifest fields for image {a} from \"{}\": description, tags\nwarning: Could not find image {c} in image sources (skipping)\n",
            srv.url
        ),
    );
    let rec: Value = serde_json::from_slice(&std::fs::read(rec_path(&a)).unwrap()).unwrap();
    assert_eq!(rec["manifest"], m);
    let now: Vec<String> = [&a, &b, &c].iter().map(|u| snap_guid(u)).collect();
    assert_eq!(now, guids, "datasets untouched");
    // A record without manifest details gets them.
    std::fs::write(
        rec_path(&b),
        json!({"manifest": {"uuid": b}, "zpool": env.pool}).to_string(),
    )
    .unwrap();
    row(
        "I16b",
        &env.imgadm(&["update", &b]),
        0,
        "",
        &format!("Added manifest info for image {b} from \"{}\"\n", srv.url),
    );
    // The only source is gone (nothing listens on its port any more): a
    // clear failure, the record kept.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    assert_exit(&env.imgadm(&["sources", "-a", &dead, "-f"]), 0);
    assert_exit(&env.imgadm(&["sources", "-d", &srv.url]), 0);
    let o = env.imgadm(&["update", &a]);
    assert_exit(&o, 1);
    let e = stderr(&o);
    assert!(
        e.starts_with("imgadm update: error (") && e.contains(&dead),
        "row I16c: {e}"
    );
    assert_eq!(
        serde_json::from_slice::<Value>(&std::fs::read(rec_path(&a)).unwrap()).unwrap()["manifest"],
        m
    );
}

/// A jail's init killed from outside (not by vmadm) shows as a `modify`
/// to `stopped`, after the `create` and the boot of that VM, in order.
#[test]
fn events_see_a_jail_init_killed_from_outside() {
    let Some(lab) = crate::linux::Lab::new() else {
        return;
    };
    let env = lab.env.as_ref().expect("zfs lab");
    let image = lab.image.rsplit('/').next().unwrap().to_string();
    let l = Listener::start(&bin("vmadm"), &env.config, &["-j", "-r"]);
    assert_eq!(l.next_json()["type"], "ready");
    let vm = lab.vmadm_create(json!({
        "brand": "jail", "image_uuid": image, "alias": "victim",
        "max_physical_memory": 64, "autoboot": true,
    }));
    let u = vm.uuid.to_string();
    let mut states = Vec::new();
    let pid = loop {
        let e = l.next_json();
        assert_eq!(e["uuid"], json!(u));
        states.push(e["vm"]["state"].as_str().unwrap_or("?").to_string());
        if e["vm"]["state"] == "running" {
            break e["vm"]["pid"].as_i64().expect("pid of a running jail");
        }
    };
    // A create is never seen half-made: its record appears once the VM
    // is committed (stopped, or already running if the listener read late).
    assert!(
        matches!(
            states.first().map(String::as_str),
            Some("stopped" | "running")
        ),
        "{states:?}"
    );
    // SAFETY: a plain kill(2) of the jail's init.
    let killed = Instant::now();
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGKILL) }, 0);
    let e = l.next_json();
    // For the performance note only (no threshold here).
    eprintln!(
        "init exit reached the listener after {:?}",
        killed.elapsed()
    );
    assert_eq!((&e["type"], &e["uuid"]), (&json!("modify"), &json!(u)));
    assert_eq!(e["vm"]["state"], "stopped", "{e}");
    let change = e["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["prettyPath"] == "state")
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        (&change["oldValue"], &change["newValue"]),
        (&json!("running"), &json!("stopped"))
    );
    // The lifecycle rows that need a jail that really runs.
    let v = |args: &[&str]| lab.vmadm(args, None);
    row(
        "V13",
        &v(&["start", &u]),
        0,
        &format!("Successfully started VM {u}\n"),
        "",
    );
    row(
        "V14",
        &v(&["start", &u]),
        0,
        &format!("Unable to start VM {u}: VM {u} is already 'running'\n"),
        "",
    );
    row(
        "V34b",
        &v(&["info", &u]),
        1,
        &format!("Unable to get VM info for VM {u}: no info types supported for brand jail\n"),
        "",
    );
    row(
        "V41r",
        &v(&["sysrq", &u, "nmi"]),
        1,
        "The sysrq command is only supported for VMs  with brand \"bhyve\" or \"kvm\".\n",
        "",
    );
    row(
        "V17",
        &v(&["reboot", &u]),
        0,
        &format!("Successfully completed reboot for VM {u}\n"),
        "",
    );
    row(
        "V15",
        &v(&["stop", &u]),
        0,
        &format!("Successfully completed stop for VM {u}\n"),
        "",
    );
    assert_exit(&v(&["start", &u]), 0);
    row(
        "V19",
        &v(&["kill", "-9", &u]),
        0,
        &format!("Sent signal \"9\" to init process for VM {u}\n"),
        "",
    );
    assert_exit(&v(&["delete", &u]), 0);
    // Every later event is this VM's, and the stream ends with its delete.
    let mut saw_running_again = false;
    loop {
        let e = l.next_json();
        assert_eq!(e["uuid"], json!(u), "{e}");
        if e["type"] == "delete" {
            break;
        }
        assert_eq!(e["type"], "modify", "{e}");
        saw_running_again |= e["vm"]["state"] == "running";
    }
    assert!(saw_running_again);
}

#[test]
fn install_from_local_files() {
    let Some(env) = Env::new() else { return };
    let tree = env.root().join("tree");
    for d in ["bin", "etc", "sbin", "tmp", "root"] {
        std::fs::create_dir_all(tree.join(d)).unwrap();
    }
    std::fs::write(tree.join("etc/motd"), "installed from a file\n").unwrap();
    let out_dir = env.root().join("out");
    let o = env.imgadm(&[
        "build",
        tree.to_str().unwrap(),
        "-o",
        out_dir.to_str().unwrap(),
        "name=local",
        "version=1.0",
        "os=linux",
        "type=lx-dataset",
    ]);
    assert_exit(&o, 0);
    let text = stdout(&o);
    let path = |key: &str| -> String {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .unwrap()
            .trim()
            .to_string()
    };
    let (m, f) = (path("manifest:"), path("file:"));
    let manifest: Value = serde_json::from_slice(&std::fs::read(&m).unwrap()).unwrap();
    let u = manifest["uuid"].as_str().unwrap().to_string();
    let before = env.datasets();
    // I24: a wrong file is refused and leaves nothing.
    let wrong = env.root().join("wrong.gz");
    let mut bytes = std::fs::read(&f).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&wrong, &bytes).unwrap();
    let o = env.imgadm(&["install", "-m", &m, "-f", wrong.to_str().unwrap()]);
    assert_exit(&o, 1);
    assert!(
        stderr(&o).starts_with("imgadm install: error ("),
        "row I24c: {}",
        stderr(&o)
    );
    assert_eq!(env.datasets(), before, "row I24c");
    row(
        "I24",
        &env.imgadm(&["install", "-m", &m, "-f", &f]),
        0,
        "",
        &format!("Installing image {u} (local@1.0)\n"),
    );
    let got = env.imgadm(&["get", &u]);
    assert_exit(&got, 0);
    let info: Value = serde_json::from_slice(&got.stdout).unwrap();
    assert_eq!(info["manifest"]["uuid"], json!(u));
    assert!(info.get("source").is_none(), "{info}");
    assert!(env.datasets().contains(&format!("{}/{u}@final", env.pool)));
    row(
        "I24b",
        &env.imgadm(&["install", "-m", &m, "-f", &f]),
        0,
        "",
        &format!("Image {u} (local 1.0) is already installed, skipping\n"),
    );
    let nope = env.root().join("nope.json");
    row(
        "I24d",
        &env.imgadm(&["install", "-m", nope.to_str().unwrap(), "-f", &f]),
        1,
        &format!(
            "imgadm install: error (Usage): manifest path does not exist: \"{}\"\n",
            nope.display()
        ),
        "",
    );
}
