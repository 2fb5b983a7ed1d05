//! imgadm against a real zfs-fuse pool and a loopback image server: build,
//! serve, import (every failure leaves nothing behind), list/get/delete,
//! create from a VM (full and incremental), publish, sources.

use crate::harness::{assert_exit, bin, stderr, stdout, zfs, Env};
use crate::imgserver::{FileMode, ImgServer};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// A built image: manifest and file bytes.
#[derive(Clone)]
struct Fixture {
    manifest: Value,
    file: Vec<u8>,
}

fn uuid_of(m: &Value) -> String {
    m["uuid"].as_str().expect("uuid").to_string()
}

/// A small root tree with a symlink, a script and a nested dir.
fn tiny_tree(dir: &Path) {
    for d in ["bin", "etc", "sbin", "root", "tmp", "var/log"] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    std::fs::write(dir.join("etc/motd"), "hello from a tiny image\n").unwrap();
    std::fs::write(dir.join("bin/hello"), "#!/bin/sh\necho hi\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        dir.join("bin/hello"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    std::os::unix::fs::symlink("/bin/hello", dir.join("sbin/init")).unwrap();
    // Some incompressible bulk so streams span many chunks.
    let bulk: Vec<u8> = (0..600_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    std::fs::write(dir.join("var/log/bulk"), bulk).unwrap();
}

/// Runs `imgadm build` and returns what it produced.
fn build(env: &Env, src: &Path, out: &Path, compression: &str, fields: &[&str]) -> Fixture {
    let mut args = vec![
        "build",
        src.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "-c",
        compression,
    ];
    args.extend_from_slice(fields);
    let o = env.imgadm(&args);
    assert_exit(&o, 0);
    let text = stdout(&o);
    let path = |key: &str| -> PathBuf {
        PathBuf::from(
            text.lines()
                .find_map(|l| l.strip_prefix(key))
                .expect("path line")
                .trim(),
        )
    };
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(path("manifest:")).unwrap()).unwrap();
    let file = std::fs::read(path("file:")).unwrap();
    assert_eq!(
        manifest["files"][0]["size"].as_u64().unwrap(),
        file.len() as u64
    );
    Fixture { manifest, file }
}

/// One gzip fixture shared by the tests (built once in its own pool).
fn fixture() -> Option<Fixture> {
    static F: OnceLock<Option<Fixture>> = OnceLock::new();
    F.get_or_init(|| {
        let env = Env::new()?;
        let tree = env.root().join("tree");
        tiny_tree(&tree);
        Some(build(
            &env,
            &tree,
            &env.root().join("out"),
            "gzip",
            &["name=tiny", "version=1.0", "os=linux", "type=lx-dataset"],
        ))
    })
    .clone()
}

/// An environment whose only source is a fresh loopback server.
fn env_with_server() -> Option<(Env, ImgServer)> {
    let env = Env::new()?;
    let srv = ImgServer::start();
    let o = env.imgadm(&["sources", "-a", &srv.url]);
    assert_exit(&o, 0);
    assert_eq!(
        stdout(&o),
        format!("Added \"imgapi\" image source \"{}\"\n", srv.url)
    );
    Some((env, srv))
}

/// The zone root of an installed image or VM dataset: `<mountpoint>/root`,
/// after checking it is the dataset's only top-level entry (the SmartOS
/// layout: the tree never lands at the top).
#[track_caller]
fn zone_root_of(env: &Env, dataset: &str) -> PathBuf {
    let mp = env.mountpoint(dataset);
    let mut top: Vec<String> = std::fs::read_dir(&mp)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    top.sort();
    assert_eq!(top, ["root"], "top of {dataset}");
    assert!(std::fs::symlink_metadata(mp.join("root"))
        .unwrap()
        .file_type()
        .is_dir());
    mp.join("root")
}

fn image_records(env: &Env) -> Vec<PathBuf> {
    std::fs::read_dir(env.root().join("images"))
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

/// Nothing but the pool itself in ZFS, and no image record.
#[track_caller]
fn assert_clean(env: &Env) {
    assert_eq!(
        env.datasets(),
        vec![env.pool.clone()],
        "datasets left behind"
    );
    assert!(
        image_records(env).is_empty(),
        "records left: {:?}",
        image_records(env)
    );
}

fn with_file(f: &Fixture, manifest_patch: impl FnOnce(&mut Value)) -> Fixture {
    let mut m = f.manifest.clone();
    m["uuid"] = json!(uuid::Uuid::new_v4().to_string());
    manifest_patch(&mut m);
    Fixture {
        manifest: m,
        file: f.file.clone(),
    }
}

#[test]
fn import_list_get_delete_round_trip() {
    let Some(fx) = fixture() else { return };
    let Some((env, srv)) = env_with_server() else {
        return;
    };
    srv.add(fx.manifest.clone(), fx.file.clone());
    let uuid = uuid_of(&fx.manifest);

    let o = env.imgadm(&["avail", "-H", "-o", "uuid,name"]);
    assert_exit(&o, 0);
    assert_eq!(stdout(&o), format!("{uuid}  tiny\n"));

    let o = env.imgadm(&["import", &uuid]);
    assert_exit(&o, 0);
    assert!(
        stdout(&o).contains(&format!("Imported image {uuid} (tiny@1.0)")),
        "{}",
        stdout(&o)
    );
    assert!(
        stderr(&o).is_empty(),
        "no progress bar without a tty: {}",
        stderr(&o)
    );
    let ds = format!("{}/{uuid}", env.pool);
    let all = env.datasets();
    assert!(
        all.contains(&ds) && all.contains(&format!("{ds}@final")),
        "{all:?}"
    );
    assert_eq!(
        all.iter()
            .filter(|d| d.starts_with(&format!("{ds}@")))
            .count(),
        1
    );
    let mp = zone_root_of(&env, &ds);
    assert_eq!(
        std::fs::read_to_string(mp.join("etc/motd")).unwrap(),
        "hello from a tiny image\n"
    );
    assert_eq!(
        std::fs::read_link(mp.join("sbin/init")).unwrap(),
        PathBuf::from("/bin/hello")
    );
    let rec = env.root().join(format!("images/{}-{uuid}.json", env.pool));
    let rec: Value = serde_json::from_slice(&std::fs::read(rec).unwrap()).unwrap();
    assert_eq!(rec["zpool"], env.pool.as_str());
    assert_eq!(rec["source"], srv.url.as_str());
    assert_eq!(rec["manifest"]["uuid"], uuid.as_str());

    let o = env.imgadm(&["list"]);
    assert_exit(&o, 0);
    let text = stdout(&o);
    assert!(text.starts_with("UUID  "), "{text}");
    assert!(
        text.contains(&uuid) && text.contains("lx-dataset"),
        "{text}"
    );
    let o = env.imgadm(&["list", "-H", "-o", "uuid,clones,source", "name=tiny"]);
    assert_eq!(stdout(&o), format!("{uuid}  0       {}\n", srv.url));
    let o = env.imgadm(&["list", "name=other"]);
    assert_exit(&o, 0);
    assert_eq!(stdout(&o), "", "zero rows print nothing");
    let o = env.imgadm(&["list", "-j"]);
    let arr: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(arr[0]["manifest"]["name"], "tiny");

    let o = env.imgadm(&["get", &uuid]);
    assert_exit(&o, 0);
    let info: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(info["zpool"], env.pool.as_str());
    assert_eq!(info["source"], srv.url.as_str());
    assert_eq!(info["clones"], 0);

    let o = env.imgadm(&["import", &uuid]);
    assert_exit(&o, 0);
    assert!(
        stdout(&o).contains("is already installed, skipping"),
        "{}",
        stdout(&o)
    );

    let o = env.imgadm(&["delete", &uuid]);
    assert_exit(&o, 0);
    assert_eq!(stdout(&o), format!("Deleted image {uuid}\n"));
    assert_clean(&env);
    let o = env.imgadm(&["delete", &uuid]);
    assert_exit(&o, 3);
    assert!(
        stderr(&o).contains("error (ImageNotInstalled)"),
        "{}",
        stderr(&o)
    );
    let o = env.imgadm(&["get", &uuid]);
    assert_exit(&o, 3);
}

#[test]
fn delete_refuses_clones_and_globs() {
    let Some(fx) = fixture() else { return };
    let Some((env, srv)) = env_with_server() else {
        return;
    };
    srv.add(fx.manifest.clone(), fx.file.clone());
    let uuid = uuid_of(&fx.manifest);
    assert_exit(&env.imgadm(&["import", "-q", &uuid]), 0);
    let vm = uuid::Uuid::new_v4().to_string();
    zfs(&[
        "clone",
        &format!("{}/{uuid}@final", env.pool),
        &format!("{}/{vm}", env.pool),
    ]);

    let o = env.imgadm(&["delete", &uuid]);
    assert_exit(&o, 1);
    assert!(
        stderr(&o).contains("ImageHasDependentClones"),
        "{}",
        stderr(&o)
    );
    assert!(stderr(&o).contains(&vm), "{}", stderr(&o));
    let o = env.imgadm(&["get", &uuid]);
    assert_eq!(
        serde_json::from_str::<Value>(&stdout(&o)).unwrap()["clones"],
        1
    );
    // The VM clone is not an image.
    let o = env.imgadm(&["list", "-H", "-o", "uuid"]);
    assert_eq!(stdout(&o), format!("{uuid}\n"));

    for glob in ["*", "", &uuid[..8]] {
        let o = env.imgadm(&["delete", glob]);
        assert_exit(&o, 1);
        assert!(stderr(&o).contains("InvalidUUID"), "{}", stderr(&o));
    }
    assert!(env.datasets().contains(&format!("{}/{uuid}", env.pool)));
}

/// Serves a broken variant, imports it, expects `code` and a clean pool.
#[track_caller]
fn expect_failure(env: &Env, srv: &ImgServer, fx: Fixture, mode: FileMode, code: &str) -> String {
    let uuid = uuid_of(&fx.manifest);
    srv.add(fx.manifest, fx.file);
    srv.set_mode(&uuid, mode);
    let o = env.imgadm(&["import", &uuid]);
    assert_exit(&o, 1);
    let err = stderr(&o);
    assert!(
        err.contains(&format!("error ({code})")),
        "want {code}: {err}"
    );
    assert!(!stdout(&o).contains("Imported"), "{}", stdout(&o));
    assert_clean(env);
    err
}

#[test]
fn import_fails_over_between_sources() {
    let Some(fx) = fixture() else { return };
    let Some((env, a)) = env_with_server() else {
        return;
    };
    let b = ImgServer::start();
    // A source that refuses connections goes first: it is passed over.
    let refused = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        format!("http://{}", l.local_addr().expect("addr"))
    };
    let o = env.imgadm(&["sources", "-d", &a.url]);
    assert_exit(&o, 0);
    for url in [&refused, &a.url, &b.url] {
        assert_exit(&env.imgadm(&["sources", "-a", url, "-f"]), 0);
    }
    // A dies half-way through the file; B continues it by range.
    let one = with_file(&fx, |_| {});
    let uuid = uuid_of(&one.manifest);
    let half = one.file.len() / 2;
    a.add(one.manifest.clone(), one.file.clone());
    a.set_mode(&uuid, FileMode::Short(half));
    b.add(one.manifest.clone(), one.file.clone());
    let o = env.imgadm(&["import", &uuid]);
    assert_exit(&o, 0);
    let out = stdout(&o);
    assert!(
        out.contains(&format!("from \"{}\"", a.url)),
        "starts on A: {out}"
    );
    assert!(
        out.contains(&format!("Resumed {uuid} from \"{}\" at byte {half}", b.url)),
        "{out}"
    );
    assert!(out.contains(&format!("Imported image {uuid}")), "{out}");
    assert!(env.datasets().contains(&format!("{}/{uuid}", env.pool)));
    // A fails the file outright: the import starts over from B.
    let two = with_file(&fx, |_| {});
    let uuid2 = uuid_of(&two.manifest);
    a.add(two.manifest.clone(), two.file.clone());
    a.set_mode(&uuid2, FileMode::Status(500));
    b.add(two.manifest.clone(), two.file.clone());
    let o = env.imgadm(&["import", &uuid2]);
    assert_exit(&o, 0);
    let out = stdout(&o);
    assert!(
        out.contains(&format!("Importing {uuid2}")) && out.contains(&format!("from \"{}\"", b.url)),
        "{out}"
    );
    assert!(stderr(&o).contains("starting over"), "{}", stderr(&o));
    assert!(out.contains(&format!("Imported image {uuid2}")), "{out}");
    // No source has the file intact: the import fails and leaves nothing.
    let three = with_file(&fx, |_| {});
    let uuid3 = uuid_of(&three.manifest);
    a.add(three.manifest.clone(), three.file.clone());
    a.set_mode(&uuid3, FileMode::Short(half));
    b.add(three.manifest.clone(), three.file.clone());
    b.set_mode(&uuid3, FileMode::Short(half));
    let o = env.imgadm(&["import", &uuid3]);
    assert_exit(&o, 1);
    assert!(
        stderr(&o).contains("error (DownloadError)"),
        "{}",
        stderr(&o)
    );
    assert!(!env.datasets().iter().any(|d| d.contains(&uuid3)));
}

#[test]
fn every_download_failure_leaves_nothing() {
    let Some(fx) = fixture() else { return };
    let Some((env, srv)) = env_with_server() else {
        return;
    };
    let half = fx.file.len() / 2;

    let e = expect_failure(
        &env,
        &srv,
        with_file(&fx, |_| {}),
        FileMode::Status(500),
        "DownloadError",
    );
    assert!(e.contains("500"), "{e}");
    expect_failure(
        &env,
        &srv,
        with_file(&fx, |_| {}),
        FileMode::Short(half),
        "DownloadError",
    );
    // Manifest size differs from what the server sends.
    let e = expect_failure(
        &env,
        &srv,
        with_file(&fx, |m| m["files"][0]["size"] = json!(fx.file.len() + 7)),
        FileMode::Normal,
        "DownloadError",
    );
    assert!(e.contains("size"), "{e}");
    // Content-Length matches the manifest but the body is cut.
    let big = fx.file.len() as u64;
    expect_failure(
        &env,
        &srv,
        with_file(&fx, |_| {}),
        FileMode::LieLength(big - 1),
        "DownloadError",
    );
    let e = expect_failure(
        &env,
        &srv,
        with_file(&fx, |m| m["files"][0]["sha1"] = json!("0".repeat(40))),
        FileMode::Normal,
        "DownloadError",
    );
    assert!(e.contains("sha1"), "{e}");

    // Correct size and sha1 of a corrupt gzip: decompression error.
    let mut corrupt = with_file(&fx, |_| {});
    // Break the gzip header: corrupt deflate data further in may instead
    // reach zfs receive first, which then fails (also a clean failure).
    for b in corrupt.file.iter_mut().take(2) {
        *b ^= 0x5a;
    }
    restamp(&mut corrupt);
    expect_failure(&env, &srv, corrupt, FileMode::Normal, "UncompressionError");

    // Valid gzip of something that is not a zfs stream: refused on its
    // first record, before zfs receive ever runs.
    let mut notzfs = with_file(&fx, |_| {});
    notzfs.file = gzip(&vec![7u8; 300_000]);
    restamp(&mut notzfs);
    let e = expect_failure(&env, &srv, notzfs, FileMode::Normal, "StreamRefused");
    assert!(e.contains("not a ZFS send stream"), "{e}");

    // Unknown image.
    let o = env.imgadm(&["import", &uuid::Uuid::new_v4().to_string()]);
    assert_exit(&o, 1);
    assert!(stderr(&o).contains("ImageNotFound"), "{}", stderr(&o));
    assert_clean(&env);
}

/// A source whose file answers 302 to another origin (another port on
/// loopback, holding the very same file) is refused: imgadm follows no
/// redirect, so the same-origin rule for file URLs cannot be walked around.
#[test]
fn redirected_downloads_are_refused_and_leave_nothing() {
    let Some(fx) = fixture() else { return };
    let Some((env, srv)) = env_with_server() else {
        return;
    };
    let other = ImgServer::start();
    let one = with_file(&fx, |_| {});
    let uuid = uuid_of(&one.manifest);
    other.add(one.manifest.clone(), one.file.clone());
    let elsewhere = format!("{}/images/{uuid}/file", other.url);
    let e = expect_failure(
        &env,
        &srv,
        one,
        FileMode::Redirect(elsewhere.clone()),
        "DownloadError",
    );
    assert!(
        e.contains(&format!("HTTP 302 redirect to \"{elsewhere}\" refused")),
        "{e}"
    );
    assert_eq!(other.hits(), 0, "the redirect target was contacted");
}

fn restamp(f: &mut Fixture) {
    use sha1::{Digest, Sha1};
    f.manifest["files"][0]["sha1"] = json!(hex::encode(Sha1::digest(&f.file)));
    f.manifest["files"][0]["size"] = json!(f.file.len());
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut child = Command::new("gzip")
        .arg("-c")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let data = data.to_vec();
    let t = std::thread::spawn(move || {
        use std::io::Write;
        stdin.write_all(&data).unwrap();
    });
    let out = child.wait_with_output().unwrap();
    t.join().unwrap();
    out.stdout
}

#[test]
fn ctrl_c_during_import_leaves_nothing() {
    let Some(fx) = fixture() else { return };
    let Some((env, srv)) = env_with_server() else {
        return;
    };
    let f = with_file(&fx, |_| {});
    let uuid = uuid_of(&f.manifest);
    srv.add(f.manifest, f.file);
    srv.set_mode(&uuid, FileMode::Slow(Duration::from_millis(500)));
    let child = Command::new(bin("imgadm"))
        .args(["import", &uuid])
        .env("VMADM_CONFIG", &env.config)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let partial = format!("{}/{uuid}-partial", env.pool);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !env.datasets().contains(&partial) {
        assert!(Instant::now() < deadline, "partial dataset never appeared");
        std::thread::sleep(Duration::from_millis(100));
    }
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let o = child.wait_with_output().unwrap();
    assert_exit(&o, 1);
    assert!(stderr(&o).contains("Interrupted"), "{}", stderr(&o));
    assert_clean(&env);
}

#[test]
fn hostile_manifests_are_refused() {
    let Some(fx) = fixture() else { return };
    let Some((env, srv)) = env_with_server() else {
        return;
    };
    #[allow(clippy::type_complexity)]
    let cases: Vec<(&str, Box<dyn Fn(&mut Value)>)> = vec![
        (
            "shell in name",
            Box::new(|m| m["name"] = json!("x$(touch /tmp/pwned)")),
        ),
        (
            "newline in version",
            Box::new(|m| m["version"] = json!("1\n2")),
        ),
        (
            "slash-dot-dot in version",
            Box::new(|m| m["version"] = json!("../../../etc;")),
        ),
        (
            "negative size",
            Box::new(|m| m["files"][0]["size"] = json!(-1)),
        ),
        (
            "unknown compression",
            Box::new(|m| m["files"][0]["compression"] = json!("lz4")),
        ),
        (
            "bad sha1",
            Box::new(|m| m["files"][0]["sha1"] = json!("../x")),
        ),
        (
            "two files",
            Box::new(|m| {
                let f = m["files"][0].clone();
                m["files"] = json!([f.clone(), f]);
            }),
        ),
        ("no files", Box::new(|m| m["files"] = json!([]))),
        (
            "huge",
            Box::new(|m| m["description"] = json!("x".repeat(3 << 20))),
        ),
    ];
    for (what, patch) in cases {
        let f = with_file(&fx, |m| patch(m));
        let uuid = uuid_of(&f.manifest);
        srv.add(f.manifest, f.file);
        let o = env.imgadm(&["import", &uuid]);
        assert_exit(&o, 1);
        assert!(
            stderr(&o).contains("InvalidManifest"),
            "{what}: {}",
            stderr(&o)
        );
        assert_clean(&env);
    }
    // A manifest whose uuid is not a UUID (served under a valid one).
    let good = uuid::Uuid::new_v4().to_string();
    let mut m = fx.manifest.clone();
    m["uuid"] = json!("not-a-uuid/../../x");
    srv.add_raw(&good, serde_json::to_vec(&m).unwrap(), fx.file.clone());
    let o = env.imgadm(&["import", &good]);
    assert_exit(&o, 1);
    assert!(stderr(&o).contains("InvalidManifest"), "{}", stderr(&o));
    // A manifest for another uuid than asked.
    let other = uuid::Uuid::new_v4().to_string();
    srv.add_raw(
        &other,
        serde_json::to_vec(&fx.manifest).unwrap(),
        fx.file.clone(),
    );
    let o = env.imgadm(&["import", &other]);
    assert_exit(&o, 1);
    assert!(stderr(&o).contains("instead"), "{}", stderr(&o));
    assert_clean(&env);
    assert!(!Path::new("/tmp/pwned").exists());

    // Path characters allowed by IMGAPI in a name never reach a path.
    let f = with_file(&fx, |m| m["name"] = json!("../../tmp/evil name"));
    let uuid = uuid_of(&f.manifest);
    srv.add(f.manifest, f.file);
    assert_exit(&env.imgadm(&["import", &uuid]), 0);
    assert_eq!(
        image_records(&env),
        vec![env.root().join(format!("images/{}-{uuid}.json", env.pool))]
    );
}

#[test]
fn every_compression_imports() {
    let Some((env, srv)) = env_with_server() else {
        return;
    };
    let tree = env.root().join("tree");
    tiny_tree(&tree);
    for c in ["none", "gzip", "bzip2", "xz", "zstd"] {
        let version = format!("1.0-{c}");
        let f = build(
            &env,
            &tree,
            &env.root().join("out"),
            c,
            &["name=multi", &format!("version={version}"), "os=bsd"],
        );
        assert_eq!(f.manifest["files"][0]["compression"], c);
        assert_eq!(f.manifest["type"], "zone-dataset");
        let uuid = uuid_of(&f.manifest);
        srv.add(f.manifest, f.file);
        let o = env.imgadm(&["import", &uuid]);
        assert_exit(&o, 0);
        let mp = zone_root_of(&env, &format!("{}/{uuid}", env.pool));
        assert!(mp.join("var/log/bulk").exists(), "{c}");
    }
    let o = env.imgadm(&["list", "-H", "-o", "version", "-s", "-version"]);
    assert_eq!(stdout(&o).lines().next(), Some("1.0-zstd"));
    let o = env.imgadm(&["list", "-H", "-o", "version", "version=~bz"]);
    assert_eq!(stdout(&o), "1.0-bzip2\n");
}

#[test]
fn build_from_tarballs() {
    let Some((env, srv)) = env_with_server() else {
        return;
    };
    let tree = env.root().join("tree");
    tiny_tree(&tree);
    for (name, flag) in [("root.tar", ""), ("root.tar.gz", "z"), ("root.txz", "J")] {
        let tarball = env.root().join(name);
        let st = Command::new("tar")
            .arg(format!("-c{flag}f"))
            .arg(&tarball)
            .arg("-C")
            .arg(&tree)
            .arg(".")
            .status()
            .unwrap();
        assert!(st.success());
        let f = build(
            &env,
            &tarball,
            &env.root().join("out"),
            "gzip",
            &[
                "name=fromtar",
                &format!("version={name}"),
                "os=linux",
                "description=from a tarball",
            ],
        );
        let uuid = uuid_of(&f.manifest);
        srv.add(f.manifest, f.file);
        assert_exit(&env.imgadm(&["import", &uuid]), 0);
        let mp = zone_root_of(&env, &format!("{}/{uuid}", env.pool));
        assert_eq!(
            std::fs::read_to_string(mp.join("etc/motd")).unwrap(),
            "hello from a tiny image\n"
        );
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(mp.join("bin/hello"))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o755
        );
    }
    // Build leaves no temporary dataset; bad input leaves nothing either.
    let o = env.imgadm(&["build", "/nonexistent", "name=x", "version=1", "os=linux"]);
    assert_exit(&o, 1);
    let junk = env.root().join("junk.tar.gz");
    std::fs::write(&junk, b"\x1f\x8bnot really gzip").unwrap();
    let o = env.imgadm(&[
        "build",
        junk.to_str().unwrap(),
        "-o",
        env.root().join("out2").to_str().unwrap(),
        "name=x",
        "version=1",
        "os=linux",
    ]);
    assert_exit(&o, 1);
    let o = env.imgadm(&[
        "build",
        tree.to_str().unwrap(),
        "name=x;y",
        "version=1",
        "os=linux",
    ]);
    assert_exit(&o, 1);
    assert!(stderr(&o).contains("InvalidManifest"), "{}", stderr(&o));
    let o = env.imgadm(&["build", tree.to_str().unwrap(), "version=1", "os=linux"]);
    // A usage error: exit status 1, as SmartOS's imgadm.
    assert_exit(&o, 1);
    assert!(stderr(&o).contains("(Usage)"), "{}", stderr(&o));
    assert!(
        env.datasets()
            .iter()
            .all(|d| !d.ends_with("-build") && !d.contains("-build@")),
        "{:?}",
        env.datasets()
    );
    assert!(!env
        .root()
        .join("out2")
        .read_dir()
        .map(|mut d| d.next().is_some())
        .unwrap_or(false));
}

/// A source already in the SmartOS layout (`root/` holding the guest's
/// tree, nothing of it at the top), as a tree or a tarball, is taken as it
/// is: the image's `root/` is the source's `root/`, never `root/root`. A
/// source that could be read either way is refused until `--layout` says
/// which reading is meant.
#[test]
fn build_takes_a_smartos_layout_source_as_is() {
    let Some((env, srv)) = env_with_server() else {
        return;
    };
    let zone = env.root().join("zone");
    tiny_tree(&zone.join("root"));
    let tarball = env.root().join("zone.tar.gz");
    let st = Command::new("tar")
        .arg("-czf")
        .arg(&tarball)
        .arg("-C")
        .arg(&zone)
        .arg(".")
        .status()
        .unwrap();
    assert!(st.success());
    let out = env.root().join("out");
    for (source, version) in [(&zone, "tree"), (&tarball, "tarball")] {
        let f = build(
            &env,
            source,
            &out,
            "gzip",
            &["name=zonelayout", &format!("version={version}"), "os=linux"],
        );
        let uuid = uuid_of(&f.manifest);
        srv.add(f.manifest, f.file);
        assert_exit(&env.imgadm(&["import", &uuid]), 0);
        let root = zone_root_of(&env, &format!("{}/{uuid}", env.pool));
        assert_eq!(
            std::fs::read_to_string(root.join("etc/motd")).unwrap(),
            "hello from a tiny image\n",
            "{version}"
        );
        assert!(!root.join("root/etc").exists(), "{version}: nested");
    }

    // A tree at the top and one in root/: refused, nothing left behind.
    let both = env.root().join("both");
    tiny_tree(&both);
    for d in ["root/etc", "root/usr"] {
        std::fs::create_dir_all(both.join(d)).unwrap();
    }
    let refused_out = env.root().join("refused");
    let args = |extra: &[&'static str]| {
        let mut a = vec![
            "build".to_string(),
            both.to_str().unwrap().to_string(),
            "-o".to_string(),
            refused_out.to_str().unwrap().to_string(),
            "name=both".to_string(),
            "version=1".to_string(),
            "os=linux".to_string(),
        ];
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let a = args(&[]);
    let o = env.imgadm(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert_exit(&o, 1);
    let err = stderr(&o);
    assert!(
        err.contains("error (InvalidArgument)")
            && err.contains("cannot tell how")
            && err.contains("--layout zone")
            && err.contains("--layout tree"),
        "{err}"
    );
    assert!(
        env.datasets().iter().all(|d| !d.contains("-build")),
        "{:?}",
        env.datasets()
    );
    assert!(std::fs::read_dir(&refused_out)
        .map(|mut d| d.next().is_none())
        .unwrap_or(true));
    // Saying it is a plain tree puts all of it under root/: its root/ is
    // the guest's /root home.
    let f = build(
        &env,
        &both,
        &out,
        "gzip",
        &["--layout", "tree", "name=both", "version=tree", "os=linux"],
    );
    let uuid = uuid_of(&f.manifest);
    srv.add(f.manifest, f.file);
    assert_exit(&env.imgadm(&["import", &uuid]), 0);
    let root = zone_root_of(&env, &format!("{}/{uuid}", env.pool));
    assert!(root.join("etc/motd").is_file());
    assert!(root.join("root/etc").is_dir() && root.join("root/usr").is_dir());
    // A root/ with no recognisable tree is taken as the zone root when
    // told so.
    let bare = env.root().join("bare");
    std::fs::create_dir_all(bare.join("root/app")).unwrap();
    std::fs::write(bare.join("root/app/run"), "#!/bin/sh\n").unwrap();
    let f = build(
        &env,
        &bare,
        &out,
        "gzip",
        &["--layout", "zone", "name=bare", "version=1", "os=linux"],
    );
    let uuid = uuid_of(&f.manifest);
    srv.add(f.manifest, f.file);
    assert_exit(&env.imgadm(&["import", &uuid]), 0);
    let root = zone_root_of(&env, &format!("{}/{uuid}", env.pool));
    assert!(root.join("app/run").is_file());
}

/// A fake stopped VM cloned from an installed image, with a changed file.
/// Its record has the store's layout (imgadm reads it through the store);
/// it never runs, so the driver reports it stopped.
fn fake_vm(env: &Env, image: &str) -> String {
    let vm = uuid::Uuid::new_v4().to_string();
    let ds = format!("{}/{vm}", env.pool);
    zfs(&["clone", &format!("{}/{image}@final", env.pool), &ds]);
    let root = zone_root_of(env, &ds);
    std::fs::write(root.join("etc/motd"), "changed in the VM\n").unwrap();
    std::fs::write(root.join("root/new-file"), "added in the VM\n").unwrap();
    let dir = env.root().join("state/vms");
    std::fs::create_dir_all(&dir).unwrap();
    let rec = json!({"record_version": 1, "vm": {"uuid": vm, "brand": "lx", "image_uuid": image, "zpool": env.pool}});
    std::fs::write(dir.join(format!("{vm}.json")), rec.to_string()).unwrap();
    vm
}

#[test]
fn create_from_vm_full_and_incremental_then_import_elsewhere() {
    let Some(fx) = fixture() else { return };
    let Some((env, srv)) = env_with_server() else {
        return;
    };
    let base = uuid_of(&fx.manifest);
    srv.add(fx.manifest.clone(), fx.file.clone());
    assert_exit(&env.imgadm(&["import", "-q", &base]), 0);
    let vm = fake_vm(&env, &base);
    let out = env.root().join("created");

    let o = env.imgadm(&[
        "create",
        &vm,
        "-o",
        out.to_str().unwrap(),
        "name=tiny-full",
        "version=2.0",
    ]);
    assert_exit(&o, 0);
    let full: Value =
        serde_json::from_slice(&std::fs::read(out.join("tiny-full-2.0.json")).unwrap()).unwrap();
    assert_eq!(full["os"], "linux");
    assert_eq!(full["requirements"]["brand"], "lx");
    assert!(full.get("origin").is_none());
    let full_file = std::fs::read(out.join("tiny-full-2.0.zfs.gz")).unwrap();
    assert_eq!(
        full["files"][0]["size"].as_u64().unwrap(),
        full_file.len() as u64
    );

    let o = env.imgadm(&[
        "create",
        &vm,
        "-i",
        "-c",
        "xz",
        "-o",
        out.to_str().unwrap(),
        "name=tiny-incr",
        "version=2.0",
    ]);
    assert_exit(&o, 0);
    let incr: Value =
        serde_json::from_slice(&std::fs::read(out.join("tiny-incr-2.0.json")).unwrap()).unwrap();
    assert_eq!(incr["origin"], base.as_str());
    let incr_file = std::fs::read(out.join("tiny-incr-2.0.zfs.xz")).unwrap();
    assert!(
        incr_file.len() < full_file.len(),
        "incremental should be smaller"
    );
    // The VM is left as it was (no leftover snapshot).
    assert!(
        !env.datasets()
            .iter()
            .any(|d| d.starts_with(&format!("{}/{vm}@", env.pool))),
        "{:?}",
        env.datasets()
    );

    // Delete is refused while the VM is cloned from the image.
    assert_exit(&env.imgadm(&["delete", &base]), 1);
    // A running VM is refused because the driver says it runs (records
    // never hold a state): ops::images::create's unit tests on the fake
    // driver and linux::vmadm_create_list_exec_stop_reboot_delete check it.

    srv.add(full.clone(), full_file);
    srv.add(incr.clone(), incr_file);
    // Same host: incremental lands on the installed origin.
    let o = env.imgadm(&["import", uuid_of(&incr).as_str()]);
    assert_exit(&o, 0);
    let ds = format!("{}/{}", env.pool, uuid_of(&incr));
    assert_eq!(
        std::fs::read_to_string(zone_root_of(&env, &ds).join("etc/motd")).unwrap(),
        "changed in the VM\n"
    );

    // Fresh host: the incremental pulls its origin first.
    let Some(env2) = Env::new() else { return };
    assert_exit(&env2.imgadm(&["sources", "-a", &srv.url]), 0);
    let o = env2.imgadm(&["import", uuid_of(&incr).as_str()]);
    assert_exit(&o, 0);
    let text = stdout(&o);
    let first = text
        .find(&format!("Imported image {base}"))
        .expect("origin imported");
    let second = text
        .find(&format!("Imported image {}", uuid_of(&incr)))
        .expect("image imported");
    assert!(first < second, "{text}");
    let ds2 = format!("{}/{}", env2.pool, uuid_of(&incr));
    assert_eq!(
        std::fs::read_to_string(zone_root_of(&env2, &ds2).join("root/new-file")).unwrap(),
        "added in the VM\n"
    );
    let o = env2.imgadm(&["import", uuid_of(&full).as_str()]);
    assert_exit(&o, 0);
    // A full image of a VM keeps the zone layout too: its tree under root/.
    let ds_full = format!("{}/{}", env2.pool, uuid_of(&full));
    assert_eq!(
        std::fs::read_to_string(zone_root_of(&env2, &ds_full).join("etc/motd")).unwrap(),
        "changed in the VM\n"
    );
    let o = env2.imgadm(&["get", &base]);
    assert_eq!(
        serde_json::from_str::<Value>(&stdout(&o)).unwrap()["clones"],
        1
    );
}

#[test]
fn publish_then_import() {
    let Some((env, srv)) = env_with_server() else {
        return;
    };
    let tree = env.root().join("tree");
    tiny_tree(&tree);
    let out = env.root().join("out");
    let f = build(
        &env,
        &tree,
        &out,
        "zstd",
        &["name=pub", "version=3", "os=linux"],
    );
    let uuid = uuid_of(&f.manifest);
    let o = env.imgadm(&[
        "publish",
        "-m",
        out.join("pub-3.json").to_str().unwrap(),
        "-f",
        out.join("pub-3.zfs.zst").to_str().unwrap(),
        &srv.url,
    ]);
    assert_exit(&o, 0);
    assert!(
        stdout(&o).contains(&format!("Successfully published image {uuid}")),
        "{}",
        stdout(&o)
    );
    assert_eq!(srv.manifest(&uuid).unwrap()["state"], "active");
    assert_exit(&env.imgadm(&["import", &uuid]), 0);

    // A file that does not match its manifest is refused before upload.
    let o = env.imgadm(&[
        "publish",
        "-m",
        out.join("pub-3.json").to_str().unwrap(),
        "-f",
        env.config.to_str().unwrap(),
        &srv.url,
    ]);
    assert_exit(&o, 1);
    assert!(stderr(&o).contains("UploadError"), "{}", stderr(&o));
}

#[test]
fn sources_verb() {
    let Some(env) = Env::new() else { return };
    let o = env.imgadm(&["avail"]);
    assert_exit(&o, 1);
    assert!(stderr(&o).contains("NoSources"), "{}", stderr(&o));
    let srv = ImgServer::start();
    assert_exit(&env.imgadm(&["sources", "-a", &srv.url]), 0);
    let o = env.imgadm(&["sources", "-a", &srv.url]);
    assert_eq!(
        stdout(&o),
        format!(
            "Already have \"imgapi\" image source \"{}\", no change\n",
            srv.url
        )
    );
    let o = env.imgadm(&["sources"]);
    assert_eq!(stdout(&o), format!("{}\n", srv.url));
    let o = env.imgadm(&["sources", "-j"]);
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v[0]["type"], "imgapi");
    // A server whose ping is not IMGAPI's is refused unless forced.
    let old = ImgServer::start();
    old.set_ping(json!({"ping": "pong"}));
    let o = env.imgadm(&["sources", "-a", &old.url]);
    assert_exit(&o, 1);
    assert!(stderr(&o).contains("SourcePing"), "{}", stderr(&o));
    assert_exit(&env.imgadm(&["sources", "-a", &old.url, "-f"]), 0);
    let o = env.imgadm(&["sources", "-d", &old.url]);
    assert_eq!(
        stdout(&o),
        format!("Deleted \"imgapi\" image source \"{}\"\n", old.url)
    );
    let o = env.imgadm(&["sources", "-d", &old.url]);
    assert!(stdout(&o).contains("no change"));
    assert_exit(&env.imgadm(&["sources", "-a", "file:///etc"]), 1);
    let cfg = std::fs::read_to_string(&env.config).unwrap();
    assert!(cfg.contains(&srv.url) && !cfg.contains(&old.url), "{cfg}");
    // Bad usage exits 1, as SmartOS's imgadm (UsageError's exitStatus).
    assert_exit(&env.imgadm(&["import"]), 1);
    assert_exit(&env.imgadm(&["list", "bogus-filter"]), 1);
}

#[test]
fn busybox_script_builds_a_bootable_tree() {
    if !Path::new("/bin/busybox").exists() {
        eprintln!("SKIPPED: busybox-static not installed");
        return;
    }
    let Some((env, srv)) = env_with_server() else {
        return;
    };
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/build-busybox-image.sh");
    let out = env.root().join("bb");
    let o = Command::new("sh")
        .arg(&script)
        .arg(&out)
        .env("IMGADM", bin("imgadm"))
        .env("VMADM_CONFIG", &env.config)
        .output()
        .unwrap();
    assert_exit(&o, 0);
    let text = stdout(&o);
    let mpath = text
        .lines()
        .find_map(|l| l.strip_prefix("manifest: "))
        .unwrap();
    let fpath = text.lines().find_map(|l| l.strip_prefix("file: ")).unwrap();
    let m: Value = serde_json::from_slice(&std::fs::read(mpath).unwrap()).unwrap();
    assert_eq!(m["name"], "busybox");
    assert_eq!(m["os"], "linux");
    let uuid = uuid_of(&m);
    srv.add(m, std::fs::read(fpath).unwrap());
    assert_exit(&env.imgadm(&["import", &uuid]), 0);
    let mp = zone_root_of(&env, &format!("{}/{uuid}", env.pool));
    assert_eq!(
        std::fs::read_link(mp.join("sbin/init")).unwrap(),
        PathBuf::from("/bin/busybox")
    );
    assert!(std::fs::read_to_string(mp.join("etc/passwd"))
        .unwrap()
        .starts_with("root:x:0:0:"));
    assert!(
        mp.join("etc/inittab").exists()
            && mp.join("etc/resolv.conf").exists()
            && mp.join("etc/hosts").exists()
    );
    let st = Command::new(mp.join("bin/busybox"))
        .arg("true")
        .status()
        .unwrap();
    assert!(st.success());
}
