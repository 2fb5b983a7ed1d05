//! Create, delete and receive killed at each of their steps, on a real
//! pool and real record files: a debug build of vmadm aborts (SIGABRT: no
//! undo step, no destructor runs, the kernel drops the locks, as for
//! `kill -9`) where `RVMADM_CRASH_AT` names the step. The next create or
//! delete must finish or undo the dead one, and no reader may see a
//! half-made VM meanwhile.

use crate::harness::{assert_exit, bin, stderr, stdout, zfs, Env};
use serde_json::json;
use std::io::Write;
use std::process::{Command, Output, Stdio};

const IMAGE: &str = "a1b2c3d4-0000-4000-8000-00000000000a";

fn env_with_image() -> Option<Env> {
    // The hook is compiled into debug builds only.
    if !cfg!(debug_assertions) {
        eprintln!("SKIPPED: crash points exist in debug builds only");
        return None;
    }
    let env = Env::new()?;
    env.fake_image_dataset(IMAGE);
    Some(env)
}

fn payload(uuid: &str) -> String {
    json!({"brand": "jail", "image_uuid": IMAGE, "autoboot": false, "uuid": uuid}).to_string()
}

/// Runs vmadm with `RVMADM_CRASH_AT=step`; it must die of SIGABRT there.
fn vmadm_dying(env: &Env, args: &[&str], stdin: &[u8], step: &str) {
    let mut child = Command::new(bin("vmadm"))
        .args(args)
        .env("VMADM_CONFIG", &env.config)
        .env("RVMADM_CRASH_AT", step)
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let _ = child.stdin.take().unwrap().write_all(stdin);
    let out = child.wait_with_output().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        out.status.signal(),
        Some(6),
        "vmadm {args:?} did not die at {step}: {}",
        stderr(&out)
    );
}

fn create(env: &Env, uuid: &str) {
    assert_exit(&env.vmadm_in(&["create"], &payload(uuid)), 0);
}

fn listed(env: &Env) -> Vec<String> {
    let o: Output = env.vmadm(&["list", "-H", "-o", "uuid,state"]);
    assert_exit(&o, 0);
    stdout(&o).lines().map(str::to_string).collect()
}

fn uuid(n: u32) -> String {
    format!("c4a5c4a5-0000-4000-8000-{n:012}")
}

#[test]
fn a_create_killed_at_any_step_is_undone_or_finished_by_the_next() {
    let Some(env) = env_with_image() else { return };
    let ds = |u: &str| format!("{}/{u}", env.pool);
    let mut n = 0;
    for step in ["create:pending", "create:cloned", "create:checked"] {
        n += 1;
        let dead = uuid(n);
        vmadm_dying(&env, &["create"], payload(&dead).as_bytes(), step);
        // Nothing half-made is ever shown.
        assert!(listed(&env).is_empty(), "{step}: {:?}", listed(&env));
        assert_exit(&env.vmadm(&["get", &dead]), 1);
        assert_eq!(
            env.datasets().contains(&ds(&dead)),
            step != "create:pending",
            "{step}"
        );
        // The next create undoes it: dataset and prepared record gone.
        n += 1;
        let live = uuid(n);
        create(&env, &live);
        assert!(!env.datasets().contains(&ds(&dead)), "{step}");
        assert_eq!(listed(&env), [format!("{live}  stopped")], "{step}");
        let leftovers: Vec<_> = std::fs::read_dir(env.root().join("state/vms"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|f| f.contains(&dead))
            .collect();
        assert!(leftovers.is_empty(), "{step}: {leftovers:?}");
        // The same uuid can be created afresh.
        create(&env, &dead);
        for u in [&dead, &live] {
            assert_exit(&env.vmadm(&["delete", u]), 0);
        }
    }
    // Killed while its `zfs clone` still runs: the clone holds the global
    // lock it inherited, so the next create waits for it to land and then
    // undoes it, never racing a clone still on its way.
    let dead = uuid(50);
    vmadm_dying(
        &env,
        &["create"],
        payload(&dead).as_bytes(),
        "create:cloning",
    );
    let live = uuid(51);
    create(&env, &live);
    assert!(!env.datasets().contains(&ds(&dead)));
    assert_eq!(listed(&env), [format!("{live}  stopped")]);
    assert_exit(&env.vmadm(&["delete", &live]), 0);

    // Past its commit (the synced rename) the VM exists and is listed; the
    // next create leaves it alone.
    let done = uuid(100);
    vmadm_dying(
        &env,
        &["create"],
        payload(&done).as_bytes(),
        "create:published",
    );
    assert_eq!(listed(&env), [format!("{done}  stopped")]);
    let live = uuid(101);
    create(&env, &live);
    let mut all = listed(&env);
    all.sort();
    assert_eq!(
        all,
        [format!("{done}  stopped"), format!("{live}  stopped")]
    );
    assert!(env.datasets().contains(&ds(&done)));
    let o = env.vmadm(&["get", &done]);
    assert_exit(&o, 0);
    let vm: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(vm["zfs_filesystem"], json!(ds(&done)));
    for u in [&done, &live] {
        assert_exit(&env.vmadm(&["delete", u]), 0);
    }
    assert!(listed(&env).is_empty());
    assert_eq!(
        env.datasets().iter().filter(|d| d.contains("c4a5")).count(),
        0
    );
}

#[test]
fn a_delete_killed_around_its_destroy_is_finished_by_the_next() {
    let Some(env) = env_with_image() else { return };
    let ds = |u: &str| format!("{}/{u}", env.pool);
    for (i, step) in ["delete:intent", "delete:destroyed"].iter().enumerate() {
        let dead = uuid(200 + i as u32 * 10);
        let other = uuid(201 + i as u32 * 10);
        create(&env, &dead);
        create(&env, &other);
        vmadm_dying(&env, &["delete", &dead], b"", step);
        assert_eq!(
            env.datasets().contains(&ds(&dead)),
            *step == "delete:intent",
            "{step}"
        );
        // The next delete (of another VM) finishes the dead one first.
        assert_exit(&env.vmadm(&["delete", &other]), 0);
        assert!(listed(&env).is_empty(), "{step}: {:?}", listed(&env));
        assert!(!env.datasets().contains(&ds(&dead)), "{step}");
        // zfs agrees nothing of either is left.
        let names = zfs(&["list", "-H", "-r", "-o", "name", &env.pool]);
        assert!(!names.contains(&dead) && !names.contains(&other), "{names}");
    }
}

#[test]
fn what_a_receive_killed_mid_stream_or_after_its_rename_left_is_cleared_by_the_next_create() {
    let Some(env) = env_with_image() else { return };
    let ds = |u: &str| format!("{}/{u}", env.pool);
    let cont = |u: &str| format!("{}/{u}-receiving", env.pool);
    for (i, step) in ["receive:streaming", "receive:renamed"].iter().enumerate() {
        let dead = uuid(300 + i as u32 * 10);
        create(&env, &dead);
        std::fs::write(env.mountpoint(&ds(&dead)).join("root/note"), "moved\n").unwrap();
        let sent = env.vmadm(&["send", &dead]);
        assert_exit(&sent, 0);
        assert_exit(&env.vmadm(&["delete", &dead]), 0);
        vmadm_dying(&env, &["receive"], &sent.stdout, step);
        // Left: the container, with the dataset too once it was renamed,
        // and the record marked incomplete.
        let left = env.datasets();
        assert!(left.contains(&cont(&dead)), "{step}: {left:?}");
        assert_eq!(
            left.contains(&ds(&dead)),
            *step == "receive:renamed",
            "{step}: {left:?}"
        );
        assert!(
            zfs(&["get", "-H", "-o", "value", "rvmadm:receive", &cont(&dead)])
                .trim()
                .len()
                == 16,
            "{step}: the container carries the receive's token"
        );
        // The next create (another VM) removes all of it.
        let live = uuid(301 + i as u32 * 10);
        create(&env, &live);
        let left = env.datasets();
        assert!(!left.iter().any(|d| d.contains(&dead)), "{step}: {left:?}");
        assert_eq!(listed(&env), [format!("{live}  stopped")], "{step}");
        // The uuid is received afresh, whole.
        let o = env.run("vmadm", &["receive"], Some(&sent.stdout));
        assert_exit(&o, 0);
        assert_eq!(
            std::fs::read_to_string(env.mountpoint(&ds(&dead)).join("root/note")).unwrap(),
            "moved\n"
        );
        for u in [&dead, &live] {
            assert_exit(&env.vmadm(&["delete", u]), 0);
        }
        assert!(listed(&env).is_empty(), "{step}");
        let names = zfs(&["list", "-H", "-r", "-o", "name", &env.pool]);
        assert!(!names.contains("c4a5"), "{step}: {names}");
    }
}
