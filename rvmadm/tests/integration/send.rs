//! `vmadm send` / `vmadm receive` on real zfs-fuse pools: a VM with two
//! vmadm snapshots and a delegated dataset with a snapshot of its own
//! moves into a second pool and, through a Linux lab, is received back
//! after its original is deleted and boots. Hostile bundles, made by
//! re-framing the chunks of a real bundle (a chunk naming another dataset,
//! an incremental on top of the wrong snapshot, an oversized piece, a cut
//! stream, a compound `zfs send -R` stream, a stream of a foreign
//! dataset), are refused and leave no record, no dataset and no mount.

use crate::harness::{assert_exit, stderr, zfs, Env};
use crate::linux::Lab;
use serde_json::{json, Value};
use std::process::Command;

const IMAGE: &str = "a1b2c3d4-0000-4000-8000-00000000000b";
const PIECE: usize = 1 << 20;

/// A bundle's chunks: `(name, content)`.
type Chunks = Vec<(String, Vec<u8>)>;

/// One chunk header, in SmartOS's layout.
fn header(name: &str, size: usize) -> [u8; 512] {
    crate::hostile::bundle_header(name, size)
}

/// The chunks of a bundle: `(name, content)`, the pieces of one stream
/// joined and its end chunk dropped.
fn chunks(b: &[u8]) -> Chunks {
    let mut out: Chunks = Vec::new();
    let mut at = 0;
    let mut open = false;
    while at < b.len() {
        let h = &b[at..at + 512];
        let f: Vec<String> = h
            .split(|c| *c == 0)
            .take(6)
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect();
        assert_eq!(f[0], "MAGIC-VMBUNDLE");
        let (name, size, padded) = (
            f[3].clone(),
            f[4].parse::<usize>().unwrap(),
            f[5].parse::<usize>().unwrap(),
        );
        let body = &b[at + 512..at + 512 + size];
        at += 512 + padded;
        match out.last_mut() {
            Some((n, data)) if open && *n == name => {
                if size == 0 {
                    open = false;
                } else {
                    data.extend_from_slice(body);
                }
            }
            _ => {
                open = name != "JSON";
                out.push((name, body.to_vec()));
            }
        }
    }
    out
}

/// A bundle of `chunks`: the JSON whole, each stream in pieces and ended.
fn frame(chunks: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut b = Vec::new();
    for (name, data) in chunks {
        let pieces: Vec<&[u8]> = if name == "JSON" {
            vec![data]
        } else {
            data.chunks(PIECE).collect()
        };
        for p in pieces {
            b.extend_from_slice(&header(name, p.len()));
            b.extend_from_slice(p);
            b.resize(b.len().div_ceil(512) * 512, 0);
        }
        if name != "JSON" {
            b.extend_from_slice(&header(name, 0));
        }
    }
    b
}

fn names(chunks: &[(String, Vec<u8>)]) -> Vec<String> {
    chunks.iter().map(|(n, _)| n.clone()).collect()
}

fn get(env: &Env, uuid: &str) -> Value {
    let o = env.vmadm(&["get", uuid]);
    assert_exit(&o, 0);
    serde_json::from_slice(&o.stdout).unwrap()
}

fn snapshots_of(ds: &str) -> Vec<String> {
    zfs(&[
        "list",
        "-H",
        "-r",
        "-d",
        "1",
        "-t",
        "snapshot",
        "-s",
        "createtxg",
        "-o",
        "name",
        ds,
    ])
    .lines()
    .filter_map(|l| l.split_once('@').map(|(_, s)| s.to_string()))
    .collect()
}

/// Mount lines below `dir`.
fn mounts_below(dir: &std::path::Path) -> Vec<String> {
    let d = dir.display().to_string();
    std::fs::read_to_string("/proc/self/mounts")
        .unwrap()
        .lines()
        .filter(|l| l.split(' ').nth(1).is_some_and(|m| m.starts_with(&d)))
        .map(str::to_string)
        .collect()
}

/// `zp` (a zonepath) holds what [`vm_with_history`] wrote last, in the
/// root and in the delegated dataset.
fn assert_latest_contents(zp: &std::path::Path) {
    assert_eq!(
        std::fs::read_to_string(zp.join("root/etc/motd")).unwrap(),
        "three\n"
    );
    assert_eq!(
        std::fs::read_to_string(zp.join("data/note")).unwrap(),
        "n3\n"
    );
}

/// A VM with history (see [`vm_with_history`]) on `env`'s fake image, and
/// its `vmadm send` output: its uuid, its dataset and the send's run.
fn sent_vm_with_history(env: &Env) -> (String, String, std::process::Output) {
    env.fake_image_dataset(IMAGE);
    let run = |args: &[&str], stdin: &str| env.vmadm_in(args, stdin);
    let uuid = vm_with_history(env, IMAGE, &run);
    let ds = format!("{}/{uuid}", env.pool);
    let sent = env.vmadm(&["send", &uuid]);
    assert_exit(&sent, 0);
    (uuid, ds, sent)
}

/// A VM made on `env`'s pool with a delegated dataset: `root/etc/motd` and
/// `data/note` change between vmadm snapshots `s1` and `s2`, and the
/// delegated dataset has a snapshot `d1` of its own. Returns its uuid.
fn vm_with_history(
    env: &Env,
    image: &str,
    vmadm: &dyn Fn(&[&str], &str) -> std::process::Output,
) -> String {
    let o = vmadm(
        &["create"],
        &json!({"brand": "jail", "image_uuid": image, "alias": "mover", "quota": 1,
                "max_physical_memory": 64, "delegate_dataset": true, "autoboot": false,
                "hostname": "moved"})
        .to_string(),
    );
    assert_exit(&o, 0);
    let uuid = stderr(&o).trim().rsplit(' ').next().unwrap().to_string();
    let ds = format!("{}/{uuid}", env.pool);
    let zp = env.mountpoint(&ds);
    let write = |motd: &str, note: &str| {
        std::fs::write(zp.join("root/etc/motd"), motd).unwrap();
        std::fs::write(zp.join("data/note"), note).unwrap();
    };
    write("one\n", "n1\n");
    assert_exit(&vmadm(&["create-snapshot", &uuid, "s1"], ""), 0);
    write("two\n", "n2\n");
    zfs(&["snapshot", &format!("{ds}/data@d1")]);
    assert_exit(&vmadm(&["create-snapshot", &uuid, "s2"], ""), 0);
    write("three\n", "n3\n");
    uuid
}

/// The bundle's layout, then the VM in a second pool: record, data,
/// snapshots; then back into the lab after deleting the original, booted.
#[test]
fn send_receive_moves_snapshots_and_the_delegated_dataset() {
    let Some(lab) = Lab::new() else { return };
    let src = lab.env.as_ref().expect("zfs lab");
    let run = |args: &[&str], stdin: &str| lab.vmadm(args, Some(stdin));
    let uuid = vm_with_history(src, crate::linux::IMAGE, &run);
    let ds = format!("{}/{uuid}", src.pool);
    // Running: send stops it, as SmartOS does.
    assert_exit(&lab.vmadm(&["start", &uuid], None), 0);
    let sent = lab.vmadm(&["send", &uuid], None);
    assert_exit(&sent, 0);
    let bundle = sent.stdout;
    let parts = chunks(&bundle);
    assert_eq!(
        names(&parts),
        [
            "JSON".to_string(),
            format!("{ds}@vmsnap-s1"),
            format!("{ds}@vmsnap-s2"),
            format!("{ds}@sending"),
            format!("{ds}/data@d1"),
            format!("{ds}/data@sending"),
        ]
    );
    assert!(!src.datasets().iter().any(|d| d.ends_with("@sending")));
    assert_eq!(get(src, &uuid)["state"], json!("stopped"));

    // A second pool on the same host.
    let dst = Env::new().expect("second pool");
    let o = dst.run("vmadm", &["receive"], Some(&bundle));
    assert_exit(&o, 0);
    assert_eq!(
        stderr(&o).trim(),
        format!("Successfully received VM {uuid}")
    );
    let nds = format!("{}/{uuid}", dst.pool);
    let zp = dst.mountpoint(&dst.pool).join(&uuid);
    let vm = get(&dst, &uuid);
    assert_eq!(vm["zonepath"], json!(zp.display().to_string()));
    assert_eq!(vm["zfs_filesystem"], json!(nds));
    assert_eq!(vm["datasets"], json!([format!("{nds}/data")]));
    assert_eq!(vm["alias"], json!("mover"));
    let snaps: Vec<&str> = vm["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(snaps, ["s2", "s1"]);
    assert_eq!(snapshots_of(&nds), ["vmsnap-s1", "vmsnap-s2"]);
    assert_eq!(snapshots_of(&format!("{nds}/data")), ["d1"]);
    assert_latest_contents(&zp);
    assert_eq!(dst.mountpoint(&format!("{nds}/data")), zp.join("data"));
    assert_eq!(
        zfs(&["get", "-H", "-o", "value", "quota", &nds]).trim(),
        "1G"
    );
    assert!(!dst.datasets().iter().any(|d| d.contains("-receiving")));
    // The snapshots hold what they held on the sender.
    assert_exit(&dst.vmadm(&["rollback-snapshot", &uuid, "s1"]), 0);
    assert_eq!(
        std::fs::read_to_string(zp.join("root/etc/motd")).unwrap(),
        "one\n"
    );
    zfs(&["rollback", &format!("{nds}/data@d1")]);
    assert_eq!(
        std::fs::read_to_string(zp.join("data/note")).unwrap(),
        "n2\n"
    );
    assert_exit(&dst.vmadm(&["delete", &uuid]), 0);
    assert_eq!(dst.datasets(), vec![dst.pool.clone()]);
    drop(dst);

    // Back into the lab once the original is gone; it boots.
    assert_exit(&lab.vmadm(&["delete", &uuid], None), 0);
    let o = src.run("vmadm", &["receive"], Some(&bundle));
    assert_exit(&o, 0);
    assert_exit(&lab.vmadm(&["start", &uuid], None), 0);
    let o = lab.vmadm(&["exec", &uuid, "--", "cat", "/etc/motd"], None);
    assert_exit(&o, 0);
    assert_eq!(String::from_utf8_lossy(&o.stdout), "three\n");
    let o = lab.vmadm(&["exec", &uuid, "--", "hostname"], None);
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "moved");
    assert_exit(&lab.vmadm(&["delete", &uuid], None), 0);
    assert!(!src.datasets().iter().any(|d| d.contains(&uuid)));
}

/// A stream of `args` (`zfs send …`).
fn send(args: &[&str]) -> Vec<u8> {
    let out = Command::new("zfs").arg("send").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[test]
fn hostile_bundles_are_refused_and_leave_nothing() {
    let Some(env) = Env::new() else { return };
    let (uuid, ds, sent) = sent_vm_with_history(&env);
    let good = chunks(&sent.stdout);
    assert_eq!(good.len(), 6);
    // Compound streams of the same VM, as SmartOS's send -R writes them.
    zfs(&["snapshot", "-r", &format!("{ds}@sending")]);
    let compound = send(&["-R", &format!("{ds}@sending")]);
    zfs(&["destroy", "-r", &format!("{ds}@sending")]);
    // A plain stream of a foreign dataset.
    let foreign = send(&[&format!("{}/{IMAGE}@final", env.pool)]);
    assert_exit(&env.vmadm(&["delete", &uuid]), 0);
    let empty = (env.state_files(), env.datasets());
    let mounts = mounts_below(env.root());

    let other = format!("{}/{}/data@sending", env.pool, uuid::Uuid::new_v4());
    let with = |f: &dyn Fn(&mut Chunks)| {
        let mut c = good.clone();
        f(&mut c);
        frame(&c)
    };
    let mut cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "a chunk naming another VM's dataset",
            with(&|c| c[5].0 = other.clone()),
            "names no stream of this VM",
        ),
        (
            "a chunk naming a dataset below the VM's",
            with(&|c| c[5].0 = format!("{ds}/evil@sending")),
            "names no stream of this VM",
        ),
        (
            "an incremental on top of a snapshot that was not received",
            with(&|c| {
                c.remove(2);
            }),
            "on top of another snapshot",
        ),
        (
            "data's incremental after the VM's chain instead of its full stream",
            with(&|c| {
                c.remove(4);
            }),
            "incremental stream where a full stream is expected",
        ),
        (
            "a compound zfs send -R stream",
            with(&|c| {
                c.truncate(1);
                c.push((format!("{ds}@sending"), compound.clone()));
            }),
            "compound ZFS stream",
        ),
        (
            "a foreign dataset's stream under the VM's name",
            with(&|c| c[1].1 = foreign.clone()),
            "holds a stream of",
        ),
        (
            "no delegated data stream",
            with(&|c| c.truncate(4)),
            "no data stream",
        ),
    ];
    // SmartOS's own unframed layout of the compound stream.
    let mut smartos = frame(&good[..1]);
    smartos.extend_from_slice(&header(&ds, 0));
    smartos.extend_from_slice(&compound);
    cases.push((
        "a SmartOS send -R bundle",
        smartos,
        "SmartOS-style zfs send -R",
    ));
    // A piece claiming more than a piece may hold.
    let mut big = frame(&good[..1]);
    big.extend_from_slice(&header(&format!("{ds}@vmsnap-s1"), (16 << 20) + 1));
    big.extend_from_slice(&[0u8; 4096]);
    cases.push(("an oversized chunk", big, "more than the"));
    // Cut inside the data stream: the VM's dataset was already received.
    let whole = frame(&good);
    let cut_at = whole.len() - 600;
    cases.push((
        "a truncated stream",
        whole[..cut_at].to_vec(),
        "ends inside",
    ));
    cases.push((
        "a stream cut between its chunks",
        frame(&good)[..frame(&good[..4]).len() + 512 + 1024].to_vec(),
        "Invalid VM bundle",
    ));

    for (what, bytes, why) in &cases {
        let o = env.run("vmadm", &["receive"], Some(bytes));
        assert_exit(&o, 1);
        assert!(stderr(&o).contains(why), "{what}: {}", stderr(&o));
        assert_eq!(empty, (env.state_files(), env.datasets()), "{what}");
        assert_eq!(mounts, mounts_below(env.root()), "{what}");
    }
    // A VM dataset whose `data` is a symlink to a scratch directory
    // standing in for a host one: the delegated dataset must never be
    // mounted through it (zfs-fuse's rename alone would do it).
    let scratch = env.root().join("scratch/etc");
    std::fs::create_dir_all(&scratch).unwrap();
    std::fs::write(scratch.join("host-file"), "host\n").unwrap();
    let u2 = uuid::Uuid::new_v4().to_string();
    let ds2 = format!("{}/{u2}", env.pool);
    zfs(&["create", &ds2]);
    let zp2 = env.mountpoint(&ds2);
    std::fs::create_dir_all(zp2.join("root/etc")).unwrap();
    std::os::unix::fs::symlink(&scratch, zp2.join("data")).unwrap();
    zfs(&["create", "-o", "canmount=noauto", &format!("{ds2}/data")]);
    zfs(&["snapshot", "-r", &format!("{ds2}@sending")]);
    let mut json: Value = serde_json::from_slice(&good[0].1).unwrap();
    json["uuid"] = json!(u2);
    let linked = frame(&[
        ("JSON".to_string(), serde_json::to_vec(&json).unwrap()),
        (format!("{ds2}@sending"), send(&[&format!("{ds2}@sending")])),
        (
            format!("{ds2}/data@sending"),
            send(&[&format!("{ds2}/data@sending")]),
        ),
    ]);
    crate::hostile::destroy(&ds2);
    assert_eq!(empty, (env.state_files(), env.datasets()));
    let o = env.run("vmadm", &["receive"], Some(&linked));
    assert_exit(&o, 1);
    assert!(
        stderr(&o).contains("data is a symbolic link"),
        "{}",
        stderr(&o)
    );
    assert_eq!(empty, (env.state_files(), env.datasets()));
    assert_eq!(mounts, mounts_below(env.root()));
    let left: Vec<_> = std::fs::read_dir(&scratch)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, ["host-file"]);

    // The untouched chunks, re-framed, are received.
    let o = env.run("vmadm", &["receive"], Some(&frame(&good)));
    assert_exit(&o, 0);
    assert_eq!(snapshots_of(&ds), ["vmsnap-s1", "vmsnap-s2"]);
    assert_exit(&env.vmadm(&["delete", &uuid]), 0);
}

/// The zfs rename that gives a received VM its name reports failure after
/// it renamed (zfs-fuse has, under load; a debug build fakes it where
/// `RVMADM_FAIL_AT` says): the dataset carries this receive's token, so
/// the receive goes on and the VM is whole.
#[test]
fn a_rename_reported_failed_after_renaming_still_makes_the_vm() {
    if !cfg!(debug_assertions) {
        eprintln!("SKIPPED: the failure hook exists in debug builds only");
        return;
    }
    let Some(env) = Env::new() else { return };
    let (uuid, ds, sent) = sent_vm_with_history(&env);
    assert_exit(&env.vmadm(&["delete", &uuid]), 0);
    let o = vmadm_with(
        &env,
        &["receive"],
        &sent.stdout,
        ("RVMADM_FAIL_AT", "receive:rename"),
    );
    assert_exit(&o, 0);
    assert!(
        stderr(&o).contains("Successfully received VM"),
        "{}",
        stderr(&o)
    );
    let vm = get(&env, &uuid);
    assert_eq!(vm["state"], json!("stopped"));
    assert_eq!(vm["datasets"], json!([format!("{ds}/data")]));
    assert_eq!(snapshots_of(&ds), ["vmsnap-s1", "vmsnap-s2"]);
    let zp = env.mountpoint(&ds);
    assert_latest_contents(&zp);
    // The token that told the rename landed is the dataset's own.
    let token = zfs(&["get", "-H", "-o", "value,source", "rvmadm:receive", &ds]);
    let (value, source) = token.trim().split_once('\t').unwrap();
    assert!(value.len() == 16 && source == "local", "{token}");
    assert!(!env.datasets().iter().any(|d| d.contains("-receiving")));
    assert_exit(&env.vmadm(&["delete", &uuid]), 0);
    assert!(!env.datasets().iter().any(|d| d.contains(&uuid)));
}

/// A VM without a quota used to arrive without bound; max_receive_size
/// bounds it. A bundle beyond it is refused and leaves nothing.
#[test]
fn a_bundle_beyond_max_receive_size_is_refused_and_leaves_nothing() {
    let Some(env) = Env::with_config("driver = \"none\"\nmax_receive_size = 1\n") else {
        return;
    };
    env.fake_image_dataset(IMAGE);
    let o = env.vmadm_in(
        &["create"],
        &json!({"brand": "jail", "image_uuid": IMAGE, "quota": 0, "autoboot": false}).to_string(),
    );
    assert_exit(&o, 0);
    let uuid = stderr(&o).trim().rsplit(' ').next().unwrap().to_string();
    let ds = format!("{}/{uuid}", env.pool);
    // 10 MiB that no compression shrinks: more than the 8 MiB of stream
    // (8× max_receive_size) this host takes.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let noise: Vec<u8> = (0..10 << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    std::fs::write(env.mountpoint(&ds).join("root/noise"), &noise).unwrap();
    let sent = env.vmadm(&["send", &uuid]);
    assert_exit(&sent, 0);
    assert_exit(&env.vmadm(&["delete", &uuid]), 0);
    let empty = (env.state_files(), env.datasets());
    let mounts = mounts_below(env.root());
    let o = env.run("vmadm", &["receive"], Some(&sent.stdout));
    assert_exit(&o, 1);
    assert!(stderr(&o).contains("max_receive_size"), "{}", stderr(&o));
    assert_eq!(empty, (env.state_files(), env.datasets()));
    assert_eq!(mounts, mounts_below(env.root()));
}

/// Runs vmadm with one more environment variable.
fn vmadm_with(env: &Env, args: &[&str], stdin: &[u8], var: (&str, &str)) -> std::process::Output {
    use std::io::Write;
    let mut child = Command::new(crate::harness::bin("vmadm"))
        .args(args)
        .env("VMADM_CONFIG", &env.config)
        .env(var.0, var.1)
        .env_remove("RUST_LOG")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let _ = child.stdin.take().unwrap().write_all(stdin);
    child.wait_with_output().unwrap()
}
