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

/// The stderr of a vmadm run that must succeed.
fn ok_stderr(o: &Output) -> String {
    assert_exit(o, 0);
    stderr(o)
}

#[test]
fn a_dead_create_whose_dataset_cannot_be_destroyed_is_put_aside_and_blocks_nothing() {
    let Some(env) = env_with_image() else { return };
    let ds = |u: &str| format!("{}/{u}", env.pool);
    let dead = uuid(300);
    vmadm_dying(
        &env,
        &["create"],
        payload(&dead).as_bytes(),
        "create:checked",
    );
    // Something else now depends on the dead create's dataset: a clone of
    // a snapshot of it, so `zfs destroy -r` refuses.
    let keeper = format!("{}/rec-keeper", env.pool);
    zfs(&["snapshot", &format!("{}@held", ds(&dead))]);
    zfs(&["clone", &format!("{}@held", ds(&dead)), &keeper]);
    let live = uuid(301);
    let err = ok_stderr(&env.vmadm_in(&["create"], &payload(&live)));
    let all = env.datasets();
    let aside: Vec<&String> = all
        .iter()
        .filter(|d| d.starts_with(&format!("{}-quarantine-", ds(&dead))) && !d.contains('@'))
        .collect();
    assert_eq!(aside.len(), 1, "{all:?}");
    assert!(!all.contains(&ds(&dead)), "{all:?}");
    // The operator is told what is left and how to remove it.
    assert!(
        err.contains(&format!("zfs destroy -r {}", aside[0])),
        "{err}"
    );
    assert_eq!(listed(&env), [format!("{live}  stopped")]);
    // Creates and deletes go on, quietly; the uuid is free again.
    assert_eq!(
        ok_stderr(&env.vmadm_in(&["create"], &payload(&dead))).trim(),
        format!("Successfully created VM {dead}")
    );
    for u in [&dead, &live] {
        assert_eq!(
            ok_stderr(&env.vmadm(&["delete", u])).trim(),
            format!("Successfully deleted VM {u}")
        );
    }
    // The operator's part (zfs-fuse answers "busy" to a first destroy of
    // a mounted dataset, so it takes a few tries).
    let removed = (0..10).any(|_| {
        Command::new("zfs")
            .args(["destroy", "-R", aside[0]])
            .output()
            .is_ok_and(|o| o.status.success())
    });
    assert!(removed, "{:?}", env.datasets());
    assert_eq!(
        env.datasets().iter().filter(|d| d.contains("c4a5")).count(),
        0
    );
}

#[test]
fn a_killed_delete_ends_consistent_even_when_the_record_is_rewritten_before_the_repair() {
    let Some(env) = env_with_image() else { return };
    let ds = |u: &str| format!("{}/{u}", env.pool);
    // Killed after its destroy; then an update writes the record anew.
    let gone = uuid(400);
    let other = uuid(401);
    create(&env, &gone);
    create(&env, &other);
    vmadm_dying(&env, &["delete", &gone], b"", "delete:destroyed");
    assert_exit(&env.vmadm(&["update", &gone, "alias=after"]), 0);
    // The next delete finishes it: no record without a dataset.
    assert_exit(&env.vmadm(&["delete", &other]), 0);
    assert!(listed(&env).is_empty(), "{:?}", listed(&env));
    assert!(!env.datasets().iter().any(|d| d.contains(&gone)));

    // Killed before its destroy; updated since: the VM stays whole, and
    // the next create says so.
    let kept = uuid(402);
    create(&env, &kept);
    vmadm_dying(&env, &["delete", &kept], b"", "delete:intent");
    assert_exit(&env.vmadm(&["update", &kept, "alias=kept"]), 0);
    let live = uuid(403);
    let err = ok_stderr(&env.vmadm_in(&["create"], &payload(&live)));
    assert!(err.contains(&format!("vmadm delete {kept}")), "{err}");
    let mut all = listed(&env);
    all.sort();
    assert_eq!(
        all,
        [format!("{kept}  stopped"), format!("{live}  stopped")]
    );
    assert!(env.datasets().contains(&ds(&kept)));
    for u in [&kept, &live] {
        assert_exit(&env.vmadm(&["delete", u]), 0);
    }
    assert!(!env.datasets().iter().any(|d| d.contains("c4a5")));
}

#[test]
fn a_reprovision_killed_at_any_step_is_finished_or_rolled_back_and_delete_leaves_nothing() {
    let Some(env) = env_with_image() else { return };
    let ds = |u: &str| format!("{}/{u}", env.pool);
    let image2 = "a1b2c3d4-0000-4000-8000-00000000002b";
    let img2 = ds(image2);
    zfs(&["create", &img2]);
    std::fs::create_dir_all(env.mountpoint(&img2).join("root/etc")).unwrap();
    std::fs::write(env.mountpoint(&img2).join("root/etc/motd"), "image two\n").unwrap();
    zfs(&["snapshot", &format!("{img2}@final")]);
    let to_image2 = json!({"image_uuid": image2}).to_string();
    let make = |u: &str| {
        let p = json!({"brand": "jail", "image_uuid": IMAGE, "autoboot": false,
            "uuid": u, "delegate_dataset": true});
        assert_exit(&env.vmadm_in(&["create"], &p.to_string()), 0);
        std::fs::write(env.mountpoint(&ds(u)).join("root/etc/motd"), "tenant\n").unwrap();
        std::fs::write(
            env.mountpoint(&format!("{}/data", ds(u))).join("keep"),
            "kept\n",
        )
        .unwrap();
    };
    let motd = |u: &str| std::fs::read_to_string(env.mountpoint(&ds(u)).join("root/etc/motd"));
    let steps = [
        "reprovision:aside",
        "reprovision:cloned",
        "reprovision:data",
        "reprovision:saved",
        "reprovision:committed",
    ];
    for (i, step) in steps.iter().enumerate() {
        let n = 500 + 10 * i as u32;
        // Deleted right after: nothing of it is left, not even aside.
        let doomed = uuid(n);
        make(&doomed);
        vmadm_dying(&env, &["reprovision", &doomed], to_image2.as_bytes(), step);
        assert!(
            env.datasets()
                .contains(&format!("{}-reprovision-old", ds(&doomed))),
            "{step}"
        );
        assert_exit(&env.vmadm(&["delete", &doomed]), 0);
        let left: Vec<String> = env
            .datasets()
            .into_iter()
            .filter(|d| d.contains(&doomed))
            .collect();
        assert!(left.is_empty(), "{step}: {left:?}");

        // Repaired by the next create: rolled back before the record
        // names the new image, finished after.
        let vm = uuid(n + 1);
        make(&vm);
        vmadm_dying(&env, &["reprovision", &vm], to_image2.as_bytes(), step);
        let live = uuid(n + 2);
        create(&env, &live);
        let committed = step.ends_with("saved") || step.ends_with("committed");
        let o = env.vmadm(&["get", &vm]);
        assert_exit(&o, 0);
        let got: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(
            got["image_uuid"],
            json!(if committed { image2 } else { IMAGE }),
            "{step}"
        );
        assert_eq!(
            motd(&vm).unwrap(),
            if committed { "image two\n" } else { "tenant\n" },
            "{step}"
        );
        assert_eq!(
            std::fs::read_to_string(env.mountpoint(&format!("{}/data", ds(&vm))).join("keep"))
                .unwrap(),
            "kept\n",
            "{step}"
        );
        assert!(
            !env.datasets().iter().any(|d| d.contains("-reprovision-")),
            "{step}"
        );
        // The VM works as before: a reprovision now goes through.
        assert_exit(&env.vmadm_in(&["reprovision", &vm], &to_image2), 0);
        for u in [&vm, &live] {
            assert_exit(&env.vmadm(&["delete", u]), 0);
        }
    }
    assert!(!env.datasets().iter().any(|d| d.contains("c4a5")));
}

/// Writes the intent slot as a create of `uuid` (dataset `ds`, stamped
/// `token`) would have left it pending in boot `boot` (the entry's format:
/// `store::intent`).
fn write_pending_slot(env: &Env, uuid: &str, ds: &str, token: &str, boot: &str) {
    let body = format!(
        "rvmadm-intent-1 create-pending {uuid} {ds} {}/{IMAGE}@final {token} {boot}",
        env.pool
    );
    let sum = body.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let mut block = format!("{body} {sum:016x}\n").into_bytes();
    block.resize(512, 0);
    std::fs::write(env.root().join("state/intent"), block).unwrap();
}

#[test]
fn after_a_reboot_a_finished_create_whose_record_went_by_hand_keeps_its_dataset() {
    let Some(env) = env_with_image() else { return };
    let ds = |u: &str| format!("{}/{u}", env.pool);
    let this_boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap();
    let this_boot = this_boot.trim();
    // A power loss took the unsynced `create-committed` of a finished
    // create, leaving its pending entry (written in an earlier boot); its
    // record was then removed by hand.
    let done = uuid(600);
    create(&env, &done);
    let token = zfs(&["get", "-H", "-o", "value", "rvmadm:create", &ds(&done)]);
    write_pending_slot(
        &env,
        &done,
        &ds(&done),
        token.trim(),
        "0b6c3c1e-0000-4000-8000-000000000000",
    );
    std::fs::remove_file(env.root().join(format!("state/vms/{done}.json"))).unwrap();
    let live = uuid(601);
    let err = ok_stderr(&env.vmadm_in(&["create"], &payload(&live)));
    assert!(env.datasets().contains(&ds(&done)), "{err}");
    assert!(
        err.contains(&format!("zfs destroy -r {}", ds(&done))),
        "{err}"
    );
    // The same entry from this boot is a create that died before its
    // commit: undone (so the entry above was read, and the boot decided).
    write_pending_slot(&env, &done, &ds(&done), token.trim(), this_boot);
    let other = uuid(602);
    create(&env, &other);
    assert!(!env.datasets().contains(&ds(&done)));
    for u in [&live, &other] {
        assert_exit(&env.vmadm(&["delete", u]), 0);
    }
    assert!(!env.datasets().iter().any(|d| d.contains("c4a5")));
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
