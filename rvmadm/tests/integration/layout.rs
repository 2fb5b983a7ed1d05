//! The SmartOS zone layout end to end: an image made the way SmartOS images
//! are made (a dataset whose tree is under `root/`, `zfs send`, gzip, a
//! hand-written manifest) goes through a real `imgapid` and `imgadm import`
//! and boots on Linux; images whose `root` or `data` is a symlink, a file or
//! missing are refused at create and at start, with nothing mounted or
//! written outside the pool.
//!
//! Symlinks in these images point at a scratch directory standing in for a
//! host directory, never at a real host path, so a regression could only
//! ever write into the scratch directory, which the tests check stays as it
//! was.

use crate::harness::{assert_exit, bin, stderr, stdout, zfs};
use crate::linux::{busybox_tree, Lab, INIT};
use rvmadm::driver::Driver;
use serde_json::{json, Value};
use sha1::{Digest, Sha1};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

/// The `imgapid` binary of this workspace. The rvmadm tests do not get it
/// from cargo (it is another package's binary), so cargo is asked to build
/// it once per run: a no-op when it is fresh, and never a stale one.
fn imgapid_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let dir = bin("vmadm").parent().expect("bin dir").to_path_buf();
        let mut build = Command::new(env!("CARGO"));
        build.args(["build", "--quiet", "-p", "imgapid", "--bin", "imgapid"]);
        if dir.file_name().is_some_and(|n| n == "release") {
            build.arg("--release");
        }
        assert!(
            build.status().expect("cargo build").success(),
            "building imgapid failed"
        );
        dir.join("imgapid")
    })
    .clone()
}

const ADMIN: (&str, &str) = ("layout-admin", "layout-pw");

/// A real imgapid on 127.0.0.1 (a free port), with one admin user.
pub(crate) struct Imgapid {
    child: Child,
    addr: String,
    _dir: tempfile::TempDir,
}

impl Imgapid {
    pub(crate) fn start() -> Imgapid {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = dir.path().join("imgapid.toml");
        std::fs::write(
            &cfg,
            format!(
                "listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\n[auth]\nusers = [{{ user = \"{}\", password = \"{}\" }}]\n",
                dir.path().join("data").display(),
                ADMIN.0,
                ADMIN.1
            ),
        )
        .expect("config");
        let mut child = Command::new(imgapid_bin())
            .arg("--config")
            .arg(&cfg)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn imgapid");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("read");
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("imgapid did not start: {line:?}"))
            .to_string();
        assert!(addr.starts_with("127.0.0.1:"), "loopback only: {addr}");
        if let Some(mut e) = child.stderr.take() {
            std::thread::spawn(move || {
                let mut sink = Vec::new();
                let _ = e.read_to_end(&mut sink);
            });
        }
        Imgapid {
            child,
            addr,
            _dir: dir,
        }
    }

    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub(crate) fn admin_url(&self) -> String {
        format!("http://{}:{}@{}", ADMIN.0, ADMIN.1, self.addr)
    }
}

impl Drop for Imgapid {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut child = Command::new("gzip")
        .arg("-c")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("gzip");
    let mut stdin = child.stdin.take().expect("stdin");
    let data = data.to_vec();
    let t = std::thread::spawn(move || stdin.write_all(&data).expect("to gzip"));
    let out = child.wait_with_output().expect("gzip output");
    t.join().expect("writer");
    assert!(out.status.success());
    out.stdout
}

/// An lx-dataset image made as SmartOS's tooling makes one, not by
/// `imgadm build`: a dataset with the busybox tree under `root/`, its
/// `@final` sent with a plain `zfs send`, gzipped, and an IMGAPI v2
/// manifest written by hand. The source dataset keeps another name, so
/// `<pool>/<uuid>` only comes from the import. Returns (manifest, file).
fn smartos_style_image(pool: &str, uuid: &str) -> (Value, Vec<u8>) {
    let src = format!("{pool}/smartos-src-{}", &uuid[..8]);
    zfs(&["create", &src]);
    let mp = PathBuf::from(zfs(&["get", "-H", "-o", "value", "mountpoint", &src]).trim());
    busybox_tree(&mp.join("root"), INIT);
    zfs(&["snapshot", &format!("{src}@final")]);
    let sent = Command::new("zfs")
        .args(["send", &format!("{src}@final")])
        .output()
        .expect("zfs send");
    assert!(
        sent.status.success(),
        "{}",
        String::from_utf8_lossy(&sent.stderr)
    );
    let file = gzip(&sent.stdout);
    let manifest = json!({
        "v": 2,
        "uuid": uuid,
        "owner": "00000000-0000-0000-0000-000000000000",
        "name": "smartos-busybox",
        "version": "1.0.0",
        "state": "active",
        "disabled": false,
        "public": true,
        "published_at": "2026-11-30T00:00:00.000Z",
        "type": "lx-dataset",
        "os": "linux",
        "description": "busybox laid out as a SmartOS image (tree under root/)",
        "files": [{
            "sha1": hex::encode(Sha1::digest(&file)),
            "size": file.len(),
            "compression": "gzip"
        }]
    });
    (manifest, file)
}

#[test]
fn a_smartos_layout_image_from_imgapid_boots_on_linux() {
    let Some(lab) = Lab::new() else { return };
    let env = lab.env.as_ref().expect("zfs lab");
    let uuid = uuid::Uuid::new_v4().to_string();
    let (manifest, file) = smartos_style_image(&env.pool, &uuid);
    let work = env.root().join("smartos-image");
    std::fs::create_dir_all(&work).expect("work dir");
    let mpath = work.join("image.json");
    let fpath = work.join("image.zfs.gz");
    std::fs::write(&mpath, manifest.to_string()).expect("manifest");
    std::fs::write(&fpath, &file).expect("file");

    let server = Imgapid::start();
    assert_exit(
        &env.imgadm(&[
            "publish",
            "-m",
            mpath.to_str().expect("utf-8"),
            "-f",
            fpath.to_str().expect("utf-8"),
            &server.admin_url(),
        ]),
        0,
    );
    assert_exit(&env.imgadm(&["sources", "-a", &server.url()]), 0);
    let o = env.imgadm(&["import", &uuid]);
    assert_exit(&o, 0);
    assert!(
        stdout(&o).contains(&format!("Imported image {uuid}")),
        "{}",
        stdout(&o)
    );
    let installed = env.mountpoint(&format!("{}/{uuid}", env.pool));
    assert!(installed.join("root/sbin/init").is_file());
    assert!(!installed.join("sbin").exists(), "tree at the top");

    let vm = lab.vmadm_create(json!({
        "brand": "jail",
        "image_uuid": uuid,
        "alias": "smartos-layout",
        "hostname": "smartos-lx",
        "max_physical_memory": 64,
    }));
    let u = vm.uuid.to_string();
    assert_eq!(lab.vm_state(&vm), "running");
    let o = lab.vmadm(&["exec", &u, "--", "hostname"], None);
    assert_exit(&o, 0);
    assert_eq!(stdout(&o).trim(), "smartos-lx");
    // The jail's / is <zonepath>/root: the image's root/ tree, and nothing
    // of the zonepath's top (the init sees its own /sbin/init).
    let o = lab.vmadm(
        &[
            "exec",
            &u,
            "--",
            "/bin/sh",
            "-c",
            "ls / && test ! -e /root/sbin",
        ],
        None,
    );
    assert_exit(&o, 0);
    assert!(stdout(&o).lines().any(|l| l == "sbin"), "{}", stdout(&o));
    assert_exit(&lab.vmadm(&["delete", &u], None), 0);
    assert!(!env.datasets().iter().any(|d| d.contains(&u)));
}

/// What a hostile image ships at the top of its dataset.
#[derive(Clone, Copy, Debug)]
enum Hostile {
    /// `root -> <scratch>` (standing in for `root -> /`).
    RootLink,
    /// A good `root/`, and `data -> <scratch>` (standing in for `/etc`).
    DataLink,
    /// `root` is a regular file.
    RootFile,
    /// No `root` at all: a tree at the top without a /root home.
    NoRoot,
    /// The tree at the top with its /root home directory, as earlier
    /// rvmadm built images: `root` is a real directory, but not a zone root.
    OldTree,
}

const KINDS: [Hostile; 5] = [
    Hostile::RootLink,
    Hostile::DataLink,
    Hostile::RootFile,
    Hostile::NoRoot,
    Hostile::OldTree,
];

/// Lays out `mp` (a dataset's mountpoint) as `kind` ships it.
fn plant(kind: Hostile, mp: &Path, scratch: &Path) {
    match kind {
        Hostile::RootLink => std::os::unix::fs::symlink(scratch, mp.join("root")).expect("link"),
        Hostile::DataLink => {
            busybox_tree(&mp.join("root"), INIT);
            std::os::unix::fs::symlink(scratch, mp.join("data")).expect("link");
        }
        Hostile::RootFile => std::fs::write(mp.join("root"), "not a directory\n").expect("file"),
        Hostile::NoRoot => {
            busybox_tree(mp, INIT);
            std::fs::remove_dir(mp.join("root")).expect("no root home");
        }
        Hostile::OldTree => busybox_tree(mp, INIT),
    }
}

/// The scratch directory's entries and mtime: a write or a mount through a
/// followed link changes one or the other.
fn snapshot_of(dir: &Path) -> (Vec<String>, std::time::SystemTime) {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("scratch")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mtime = std::fs::metadata(dir)
        .and_then(|m| m.modified())
        .expect("mtime");
    (names, mtime)
}

/// Nothing is mounted on or below `dir`.
#[track_caller]
fn assert_not_mounted(dir: &Path) {
    let info = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    let d = dir.to_string_lossy();
    assert!(
        !info
            .lines()
            .any(|l| l.split(' ').nth(4).is_some_and(|m| m.starts_with(&*d))),
        "something is mounted on {d}"
    );
}

#[test]
fn linux_refuses_hostile_layouts_at_create_and_at_start() {
    let Some(lab) = Lab::new() else { return };
    let env = lab.env.as_ref().expect("zfs lab");
    let scratch = env.root().join("scratch-host-dir");
    std::fs::create_dir_all(&scratch).expect("scratch");
    std::fs::write(scratch.join("passwd"), "stand-in for a host file\n").expect("scratch file");
    let before = snapshot_of(&scratch);

    for (i, kind) in KINDS.into_iter().enumerate() {
        // At create: an installed image shipping the bad layout.
        let image = format!("a1b2c3d4-0000-4000-8000-0000000001{i:02}");
        let ds = format!("{}/{image}", env.pool);
        zfs(&["create", &ds]);
        plant(kind, &env.mountpoint(&ds), &scratch);
        zfs(&["snapshot", &format!("{ds}@final")]);
        let datasets = env.datasets();
        let payload = json!({
            "brand": "jail", "image_uuid": image, "hostname": "hostile",
            "max_physical_memory": 64, "delegate_dataset": true, "autoboot": true,
        });
        let o = lab.vmadm(&["create"], Some(&payload.to_string()));
        assert_exit(&o, 1);
        let err = stderr(&o);
        let expected = match kind {
            Hostile::RootLink => "root is a symbolic link",
            Hostile::DataLink => "data is a symbolic link",
            Hostile::RootFile => "root is not a directory",
            Hostile::NoRoot => "no root/ directory",
            Hostile::OldTree => "file system tree at its top",
        };
        assert!(err.contains(expected), "{kind:?}: {err}");
        if matches!(kind, Hostile::NoRoot | Hostile::OldTree) {
            // The message says how to get the layout right.
            assert!(err.contains("imgadm build"), "{err}");
        }
        assert_eq!(env.datasets(), datasets, "{kind:?}: the clone is undone");
        let list = lab.vmadm(&["list", "-H", "-o", "uuid"], None);
        assert_eq!(stdout(&list), "", "{kind:?}: no record left");
        assert_eq!(snapshot_of(&scratch), before, "{kind:?}");
        assert_not_mounted(&scratch);
    }

    // At start: a VM whose dataset was changed after create (as by hand, or
    // by a VM made under an earlier version) is refused before the runtime
    // or the network is touched.
    for kind in KINDS {
        let vm = lab.jail(json!({"hostname": "tampered"}));
        let zp = vm.zonepath.clone();
        std::fs::rename(zp.join("root"), zp.join("moved-away")).expect("move root");
        plant(kind, &zp, &scratch);
        let err = lab.driver.start(&vm).expect_err("start must refuse");
        let msg = err.to_string();
        assert!(
            [
                "symbolic link",
                "not a directory",
                "no root/",
                "tree at its top"
            ]
            .iter()
            .any(|m| msg.contains(m)),
            "{kind:?}: {msg}"
        );
        assert!(!lab.running(&vm));
        assert!(
            lab.leftovers(&vm).is_empty(),
            "{kind:?}: {:?}",
            lab.leftovers(&vm)
        );
        assert_eq!(snapshot_of(&scratch), before, "{kind:?}");
        assert_not_mounted(&scratch);
    }
}

/// The conversion steps docs/imgadm.md gives for a VM made by rvmadm before
/// 0.3 (tree at the top of its dataset).
const CONVERT_VM: &str = r#"cd "$1"
mkdir root.new && chmod 755 root.new
find . -mindepth 1 -maxdepth 1 ! -name root.new ! -name data -exec mv -t root.new -- {} +
mv root.new root
"#;

/// The conversions docs/imgadm.md gives for images and VMs made by rvmadm
/// before 0.3 (tree at the top, `/root` home included), run as written: an
/// old VM is refused, converted in place and boots; an old image is refused
/// at create, rebuilt with `imgadm build` from its mounted tree, published
/// to imgapid, imported, and its VM boots.
#[test]
fn linux_old_layout_images_and_vms_convert_as_documented() {
    let Some(lab) = Lab::new() else { return };
    let env = lab.env.as_ref().expect("zfs lab");

    // An old VM: the lab's clone with its tree moved to the top.
    let vm = lab.jail(json!({"hostname": "converted"}));
    let zp = vm.zonepath.clone();
    std::fs::rename(zp.join("root"), zp.join("tree")).expect("move root");
    for e in std::fs::read_dir(zp.join("tree")).expect("tree") {
        let e = e.expect("entry");
        std::fs::rename(e.path(), zp.join(e.file_name())).expect("to the top");
    }
    std::fs::remove_dir(zp.join("tree")).expect("rmdir");
    assert!(zp.join("root").is_dir() && zp.join("sbin/init").is_file());
    let err = lab.driver.start(&vm).expect_err("old layout").to_string();
    assert!(
        err.contains("tree at its top") && err.contains("docs/imgadm.md"),
        "{err}"
    );
    assert!(lab.leftovers(&vm).is_empty(), "{:?}", lab.leftovers(&vm));
    let st = Command::new("sh")
        .args(["-euc", CONVERT_VM, "convert"])
        .arg(&zp)
        .status()
        .expect("sh");
    assert!(st.success());
    lab.start(&vm);
    assert_eq!(lab.sh_ok(&vm, "hostname").trim(), "converted");
    assert!(lab
        .sh_ok(&vm, "ls -d /root /sbin/init")
        .contains("/sbin/init"));
    lab.stop(&vm);

    // An old image: refused at create, then rebuilt from its tree.
    let old = "a1b2c3d4-0000-4000-8000-000000000300";
    let old_ds = format!("{}/{old}", env.pool);
    zfs(&["create", &old_ds]);
    let old_mp = env.mountpoint(&old_ds);
    busybox_tree(&old_mp, INIT);
    zfs(&["snapshot", &format!("{old_ds}@final")]);
    let payload = json!({
        "brand": "jail", "image_uuid": old, "hostname": "rebuilt",
        "max_physical_memory": 64,
    });
    let o = lab.vmadm(&["create"], Some(&payload.to_string()));
    assert_exit(&o, 1);
    assert!(stderr(&o).contains("imgadm build"), "{}", stderr(&o));

    let out = env.root().join("converted-out");
    let o = env.imgadm(&[
        "build",
        old_mp.to_str().expect("utf-8"),
        "name=converted",
        "version=1.0",
        "os=linux",
        "-o",
        out.to_str().expect("utf-8"),
    ]);
    assert_exit(&o, 0);
    let text = stdout(&o);
    let line = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .expect("build output")
            .trim()
            .to_string()
    };
    let (mpath, fpath) = (line("manifest:"), line("file:"));
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(&mpath).expect("manifest")).expect("json");
    let new = manifest["uuid"].as_str().expect("uuid").to_string();
    let server = Imgapid::start();
    assert_exit(
        &env.imgadm(&["publish", "-m", &mpath, "-f", &fpath, &server.admin_url()]),
        0,
    );
    assert_exit(&env.imgadm(&["import", "-S", &server.url(), &new]), 0);
    let vm = lab.vmadm_create(json!({
        "brand": "jail", "image_uuid": new, "hostname": "rebuilt",
        "max_physical_memory": 64,
    }));
    let u = vm.uuid.to_string();
    let o = lab.vmadm(&["exec", &u, "--", "hostname"], None);
    assert_exit(&o, 0);
    assert_eq!(stdout(&o).trim(), "rebuilt");
    assert_exit(&lab.vmadm(&["delete", &u], None), 0);
}

/// The quickstart's image: scripts/build-busybox-image.sh (real busybox
/// init and inittab) through imgapid, booted; its tree is under root/.
#[test]
fn linux_the_busybox_script_image_boots() {
    if !Path::new("/bin/busybox").exists() {
        eprintln!("SKIPPED: busybox-static not installed");
        return;
    }
    let Some(lab) = Lab::new() else { return };
    let env = lab.env.as_ref().expect("zfs lab");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/build-busybox-image.sh");
    let o = Command::new("sh")
        .arg(&script)
        .arg(env.root().join("bb"))
        .env("IMGADM", bin("imgadm"))
        .env("VMADM_CONFIG", &env.config)
        .output()
        .expect("script");
    assert_exit(&o, 0);
    let text = stdout(&o);
    let line = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .expect("build output")
            .trim()
            .to_string()
    };
    let (mpath, fpath) = (line("manifest: "), line("file: "));
    let m: Value = serde_json::from_slice(&std::fs::read(&mpath).expect("manifest")).expect("json");
    let uuid = m["uuid"].as_str().expect("uuid").to_string();
    let server = Imgapid::start();
    assert_exit(
        &env.imgadm(&["publish", "-m", &mpath, "-f", &fpath, &server.admin_url()]),
        0,
    );
    assert_exit(&env.imgadm(&["import", "-S", &server.url(), &uuid]), 0);
    let installed = env.mountpoint(&format!("{}/{uuid}", env.pool));
    assert!(std::fs::symlink_metadata(installed.join("root/sbin/init")).is_ok());
    assert!(!installed.join("etc").exists(), "tree at the top");
    let vm = lab.vmadm_create(json!({
        "brand": "jail", "image_uuid": uuid, "hostname": "bb-quick",
        "max_physical_memory": 64,
    }));
    let u = vm.uuid.to_string();
    let o = lab.vmadm(&["exec", &u, "--", "hostname"], None);
    assert_exit(&o, 0);
    assert_eq!(stdout(&o).trim(), "bb-quick");
    assert_exit(&lab.vmadm(&["delete", &u], None), 0);
}

/// Everything a failed reprovision must leave as it was: the pool's
/// datasets and snapshots, the VM dataset's guid and origin (the same
/// dataset, not a fresh clone of the same image), the files in its root
/// and in its delegated dataset, `vmadm get` and the record files.
#[derive(Clone, Debug, PartialEq)]
struct VmPicture {
    datasets: Vec<String>,
    guid: String,
    origin: String,
    motd: String,
    kept: String,
    get: String,
    records: Vec<(PathBuf, Vec<u8>)>,
}

fn picture(env: &crate::harness::Env, u: &str) -> VmPicture {
    let ds = format!("{}/{u}", env.pool);
    let prop = |p: &str| {
        zfs(&["get", "-H", "-o", "value", p, &ds])
            .trim()
            .to_string()
    };
    let mp = env.mountpoint(&ds);
    let o = env.vmadm(&["get", u]);
    assert_exit(&o, 0);
    VmPicture {
        datasets: env.datasets(),
        guid: prop("guid"),
        origin: prop("origin"),
        motd: std::fs::read_to_string(mp.join("root/etc/motd")).expect("motd"),
        kept: std::fs::read_to_string(mp.join("data/keep")).expect("data file"),
        get: stdout(&o),
        records: env
            .state_files()
            .into_iter()
            .map(|p| {
                let bytes = std::fs::read(&p).expect("record");
                (p, bytes)
            })
            .collect(),
    }
}

/// Reprovision onto images the layout check refuses (`root` or `data` a
/// symlink, `root` a file, no `root`): each attempt fails and leaves the VM
/// exactly as it was (its own dataset with its snapshot and files, the
/// delegated dataset in place, the record), with nothing written or mounted
/// through the links and no dataset left over. A reprovision onto a good
/// image then works.
#[test]
fn a_refused_reprovision_leaves_the_vm_as_it_was() {
    let Some(env) = crate::harness::Env::new() else {
        return;
    };
    let good = "a1b2c3d4-0000-4000-8000-000000000400";
    env.fake_image_dataset(good);
    let scratch = env.root().join("scratch-host-dir");
    std::fs::create_dir_all(&scratch).expect("scratch");
    std::fs::write(scratch.join("passwd"), "stand-in for a host file\n").expect("scratch file");
    let before_scratch = snapshot_of(&scratch);

    let payload = json!({"brand": "jail", "image_uuid": good, "autoboot": false,
                         "alias": "keepme", "quota": 2, "delegate_dataset": true});
    let o = env.vmadm_in(&["create"], &payload.to_string());
    assert_exit(&o, 0);
    let u = stderr(&o)
        .trim()
        .strip_prefix("Successfully created VM ")
        .expect("created")
        .to_string();
    let ds = format!("{}/{u}", env.pool);
    let mp = env.mountpoint(&ds);
    std::fs::write(mp.join("root/etc/motd"), "changed by the tenant\n").expect("motd");
    std::fs::write(mp.join("data/keep"), "kept\n").expect("data file");
    assert_exit(&env.vmadm(&["create-snapshot", &u, "before"]), 0);
    let before = picture(&env, &u);
    assert!(before.get.contains("\"before\""), "{}", before.get);
    assert!(before
        .datasets
        .iter()
        .any(|d| d.starts_with(&format!("{ds}@"))));

    let kinds = [
        (Hostile::RootLink, "root is a symbolic link"),
        (Hostile::DataLink, "data is a symbolic link"),
        (Hostile::RootFile, "root is not a directory"),
        (Hostile::NoRoot, "has no root/ directory"),
    ];
    for (i, (kind, why)) in kinds.into_iter().enumerate() {
        let bad = format!("a1b2c3d4-0000-4000-8000-00000000041{i}");
        let bad_ds = format!("{}/{bad}", env.pool);
        zfs(&["create", &bad_ds]);
        plant(kind, &env.mountpoint(&bad_ds), &scratch);
        zfs(&["snapshot", &format!("{bad_ds}@final")]);
        let mut want = before.clone();
        want.datasets = env.datasets();

        let o = env.vmadm_in(
            &["reprovision", &u],
            &json!({"image_uuid": bad}).to_string(),
        );
        assert_exit(&o, 1);
        let err = stderr(&o);
        assert!(
            err.contains(&format!("Failed to reprovision VM {u}")) && err.contains(why),
            "{kind:?}: {err}"
        );
        assert!(!err.contains("putting the VM back failed"), "{err}");
        assert_eq!(picture(&env, &u), want, "{kind:?}");
        assert_eq!(snapshot_of(&scratch), before_scratch, "{kind:?}");
        assert_not_mounted(&scratch);
    }

    // An earlier version parked the delegated dataset beside the VM on such
    // a failure: a reprovision onto a good image brings it back.
    let data = format!("{ds}/data");
    let parked = format!("{}/{u}-reprovision-data", env.pool);
    // (zfs-fuse calls a dataset busy for a rename a while after use.)
    zfs(&["unmount", &data]);
    let renamed = (0..50).any(|_| {
        let ok = std::process::Command::new("zfs")
            .args(["rename", &data, &parked])
            .output()
            .expect("zfs rename")
            .status
            .success();
        if !ok {
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        ok
    });
    assert!(renamed, "zfs rename {data} {parked} stayed busy");
    zfs(&["mount", &parked]);
    // A refused image leaves it parked, mounted, with its contents.
    let parked_mp = env.mountpoint(&parked);
    let datasets = env.datasets();
    let guid = zfs(&["get", "-H", "-o", "value", "guid", &ds]);
    let o = env.vmadm_in(
        &["reprovision", &u],
        &json!({"image_uuid": "a1b2c3d4-0000-4000-8000-000000000410"}).to_string(),
    );
    assert_exit(&o, 1);
    assert_eq!(env.datasets(), datasets);
    assert_eq!(zfs(&["get", "-H", "-o", "value", "guid", &ds]), guid);
    assert_eq!(
        std::fs::read_to_string(parked_mp.join("keep")).expect("still parked"),
        "kept\n"
    );
    let o = env.vmadm_in(
        &["reprovision", &u],
        &json!({"image_uuid": good}).to_string(),
    );
    assert_exit(&o, 0);
    let left: Vec<String> = env
        .datasets()
        .into_iter()
        .filter(|d| d.contains(&format!("{u}-")))
        .collect();
    assert!(left.is_empty(), "left over: {left:?}");
    let mp = env.mountpoint(&ds);
    assert_eq!(
        std::fs::read_to_string(mp.join("data/keep")).expect("data back"),
        "kept\n"
    );
    assert_eq!(
        std::fs::read_to_string(mp.join("root/etc/motd")).expect("fresh motd"),
        "test image\n"
    );
    let snaps = format!("{ds}@");
    assert!(!env.datasets().iter().any(|d| d.starts_with(&snaps)));
    assert_exit(&env.vmadm(&["delete", &u]), 0);
}
