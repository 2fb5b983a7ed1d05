//! Streams a hostile image server or bundle sender would use, made with the
//! real `zfs send` of the pool under test: property-carrying (`-p`) and
//! replication (`-R`) streams of a dataset whose `mountpoint` is a scratch
//! directory standing in for a host one (never a real host path), a dedup
//! stream, a compression bomb and an xz stream asking for a 4 GiB
//! dictionary. `imgadm import` (from a real imgapid they were published to,
//! or the loopback test server) and `vmadm receive` refuse them all, the
//! scratch directory stays as it was and the pool holds nothing new.

use crate::harness::{assert_exit, stderr, stdout, zfs, Env};
use crate::imgserver::ImgServer;
use crate::layout::Imgapid;
use serde_json::{json, Value};
use sha1::{Digest, Sha1};
use std::io::Write;
use std::path::PathBuf;
use std::process::Command;

/// The streams of one hostile dataset, and the directory it pointed at.
struct Hostile {
    /// Stands in for a host directory such as `/etc/cron.d`: the dataset's
    /// `mountpoint`. After the streams are made it holds only `host-file`.
    target: PathBuf,
    plain: Vec<u8>,
    props: Vec<u8>,
    replicate: Vec<u8>,
    dedup: Vec<u8>,
}

fn send(args: &[&str]) -> Vec<u8> {
    let out = Command::new("zfs")
        .arg("send")
        .args(args)
        .output()
        .expect("zfs send");
    assert!(
        out.status.success(),
        "zfs send {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Destroys `ds` and below; zfs-fuse answers "busy" for a moment.
pub(crate) fn destroy(ds: &str) {
    for attempt in 0..20u64 {
        let ok = Command::new("zfs")
            .args(["destroy", "-r", ds])
            .output()
            .is_ok_and(|o| o.status.success());
        if ok {
            return;
        }
        let _ = Command::new("zfs").args(["unmount", "-f", ds]).output();
        std::thread::sleep(std::time::Duration::from_millis(50 * (attempt + 1)));
    }
    panic!("cannot destroy {ds}");
}

fn hostile_streams(env: &Env) -> Hostile {
    let target = env.root().join("scratch/etc-cron.d");
    std::fs::create_dir_all(target.parent().unwrap()).unwrap();
    let src = format!("{}/evil", env.pool);
    zfs(&[
        "create",
        "-o",
        &format!("mountpoint={}", target.display()),
        "-o",
        "setuid=on",
        &src,
    ]);
    std::fs::write(target.join("payload"), "* * * * * root /tmp/evil\n").unwrap();
    zfs(&["create", &format!("{src}/child")]);
    zfs(&["snapshot", "-r", &format!("{src}@s")]);
    let snap = format!("{src}@s");
    let streams = Hostile {
        target: target.clone(),
        plain: send(&[&snap]),
        props: send(&["-p", &snap]),
        replicate: send(&["-R", &snap]),
        dedup: send(&["-D", &snap]),
    };
    destroy(&src);
    // The "host directory" gets a file of its own, which must stay alone.
    std::fs::create_dir_all(&target).unwrap();
    std::fs::write(target.join("host-file"), "host\n").unwrap();
    assert_eq!(env.datasets(), vec![env.pool.clone()]);
    streams
}

/// The scratch directory holds only its own file and nothing is mounted
/// on it.
#[track_caller]
fn assert_untouched(h: &Hostile) {
    let names: Vec<String> = std::fs::read_dir(&h.target)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["host-file"]);
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
    let path = h.target.display().to_string();
    assert!(
        !mounts.lines().any(|l| l.split(' ').nth(1) == Some(&path)),
        "something is mounted on {path}"
    );
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// A valid manifest for `file` (compressed with `compression`).
fn manifest(file: &[u8], compression: &str, extra: Value) -> Value {
    let mut m = json!({
        "v": 2,
        "uuid": uuid::Uuid::new_v4().to_string(),
        "owner": "00000000-0000-0000-0000-000000000000",
        "name": "hostile",
        "version": "1.0",
        "state": "active",
        "disabled": false,
        "public": true,
        "published_at": "2026-01-01T00:00:00Z",
        "type": "zone-dataset",
        "os": "other",
        "files": [{
            "sha1": hex::encode(Sha1::digest(file)),
            "size": file.len(),
            "compression": compression,
        }],
    });
    for (k, v) in extra.as_object().unwrap() {
        m[k] = v.clone();
    }
    m
}

fn env_with_server(extra_config: &str) -> Option<(Env, ImgServer)> {
    let env = Env::with_config(extra_config)?;
    let srv = ImgServer::start();
    assert_exit(&env.imgadm(&["sources", "-a", &srv.url]), 0);
    Some((env, srv))
}

/// Serves `file` under a fresh uuid, imports it and expects a refusal
/// naming `why`; the pool and the image records stay empty.
#[track_caller]
fn expect_refused(env: &Env, srv: &ImgServer, m: Value, file: Vec<u8>, why: &str) {
    let uuid = m["uuid"].as_str().unwrap().to_string();
    srv.add(m, file);
    expect_import_refused(env, &uuid, why);
}

#[track_caller]
fn expect_import_refused(env: &Env, uuid: &str, why: &str) {
    let o = env.imgadm(&["import", uuid]);
    assert_exit(&o, 1);
    let err = stderr(&o);
    assert!(err.contains("error (StreamRefused)"), "{err}");
    assert!(err.contains(why), "want {why:?}: {err}");
    assert_eq!(env.datasets(), vec![env.pool.clone()], "datasets left");
    let records: Vec<_> = std::fs::read_dir(env.root().join("images"))
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(records.is_empty(), "records left: {records:?}");
}

/// Publishes an image to a real imgapid with `imgadm publish`; returns
/// its uuid.
fn publish(env: &Env, server: &Imgapid, m: &Value, file: &[u8]) -> String {
    let uuid = m["uuid"].as_str().unwrap().to_string();
    let dir = env.root().join(format!("publish-{uuid}"));
    std::fs::create_dir_all(&dir).unwrap();
    let (mpath, fpath) = (dir.join("image.json"), dir.join("image.zfs.gz"));
    std::fs::write(&mpath, m.to_string()).unwrap();
    std::fs::write(&fpath, file).unwrap();
    let o = env.imgadm(&[
        "publish",
        "-m",
        mpath.to_str().unwrap(),
        "-f",
        fpath.to_str().unwrap(),
        &server.admin_url(),
    ]);
    assert_exit(&o, 0);
    uuid
}

#[test]
fn imgadm_refuses_compound_and_dedup_streams_before_zfs_sees_them() {
    let Some(env) = Env::new() else { return };
    let server = Imgapid::start();
    assert_exit(&env.imgadm(&["sources", "-a", &server.url()]), 0);
    let h = hostile_streams(&env);
    for (stream, why) in [
        (&h.props, "compound ZFS stream"),
        (&h.replicate, "compound ZFS stream"),
        (&h.dedup, "dedup"),
    ] {
        let file = gzip(stream);
        let uuid = publish(&env, &server, &manifest(&file, "gzip", json!({})), &file);
        expect_import_refused(&env, &uuid, why);
        assert_untouched(&h);
    }
    // The plain stream of the same dataset is fine: it lands in the pool,
    // mounted where the pool says, not where the sender's dataset was.
    let file = gzip(&h.plain);
    let uuid = publish(&env, &server, &manifest(&file, "gzip", json!({})), &file);
    let o = env.imgadm(&["import", &uuid]);
    assert_exit(&o, 0);
    assert!(stdout(&o).contains("Imported"), "{}", stdout(&o));
    let ds = format!("{}/{uuid}", env.pool);
    let pool_mp = env.mountpoint(&env.pool);
    assert_eq!(env.mountpoint(&ds), pool_mp.join(&uuid));
    assert_eq!(
        std::fs::read_to_string(pool_mp.join(&uuid).join("payload")).unwrap(),
        "* * * * * root /tmp/evil\n"
    );
    assert_eq!(
        zfs(&["get", "-H", "-o", "value,source", "setuid,mounted", &ds]),
        "on\tdefault\nyes\t-\n"
    );
    assert_eq!(
        env.datasets(),
        vec![env.pool.clone(), ds.clone(), format!("{ds}@final")]
    );
    assert_untouched(&h);
}

#[test]
fn a_compression_bomb_stops_at_the_quota_and_leaves_nothing() {
    // image_size 1 (MiB) gives a quota of 1 + 0 + 32 MiB.
    let Some((env, srv)) = env_with_server("") else {
        return;
    };
    let src = format!("{}/zeros", env.pool);
    zfs(&["create", "-o", "compression=off", &src]);
    let zeros = vec![0u8; 1 << 20];
    let mut f = std::fs::File::create(env.mountpoint(&src).join("zeros")).unwrap();
    for _ in 0..48 {
        f.write_all(&zeros).unwrap();
    }
    drop(f);
    zfs(&["snapshot", &format!("{src}@s")]);
    let stream = send(&[&format!("{src}@s")]);
    destroy(&src);
    assert!(stream.len() > 48 << 20);
    let file = gzip(&stream);
    assert!(file.len() < stream.len() / 100, "not much of a bomb");
    let m = manifest(&file, "gzip", json!({"image_size": 1}));
    expect_refused(&env, &srv, m, file, "quota of 34603008 bytes");

    // Without image_size, max_image_size caps it the same way.
    drop(env);
    let Some((env, srv)) = env_with_server("max_image_size = 1\n") else {
        return;
    };
    let file = gzip(&stream);
    let m = manifest(&file, "gzip", json!({"image_size": 4096}));
    expect_refused(&env, &srv, m, file, "quota of 34603008 bytes");
}

/// An xz stream of `data` whose block header claims a 4 GiB dictionary
/// (size code 40); the data itself was packed with a small one.
fn xz_with_huge_dictionary(data: &[u8]) -> Vec<u8> {
    let mut e = xz2::write::XzEncoder::new(Vec::new(), 1);
    e.write_all(data).unwrap();
    let mut xz = e.finish().unwrap();
    // Block header after the 12-byte stream header: size byte, flags (one
    // filter, no sizes), LZMA2 filter id 0x21, one property byte (the
    // dictionary size code), padding, CRC32.
    let size = (xz[12] as usize + 1) * 4;
    let header = &mut xz[12..12 + size];
    assert_eq!(&header[1..4], &[0x00, 0x21, 0x01]);
    header[4] = 40;
    let crc = crc32fast::hash(&header[..size - 4]);
    header[size - 4..].copy_from_slice(&crc.to_le_bytes());
    xz
}

#[test]
fn an_xz_file_asking_for_a_huge_dictionary_is_refused() {
    let Some((env, srv)) = env_with_server("") else {
        return;
    };
    let h = hostile_streams(&env);
    let file = xz_with_huge_dictionary(&h.plain);
    let m = manifest(&file, "xz", json!({}));
    expect_refused(&env, &srv, m, file, "more than 96 MiB of memory");
}

/// One VM bundle chunk header (SmartOS's layout, as `vmadm send` writes).
pub(crate) fn bundle_header(name: &str, size: usize) -> [u8; 512] {
    let mut h = [0u8; 512];
    let mut at = 0;
    let padded = size.div_ceil(512) * 512;
    for field in [
        "MAGIC-VMBUNDLE",
        "1",
        "CHECKSUM",
        name,
        &size.to_string(),
        &padded.to_string(),
    ] {
        h[at..at + field.len()].copy_from_slice(field.as_bytes());
        at += field.len() + 1;
    }
    h
}

/// A bundle of a valid VM object followed by `stream`.
fn bundle(pool: &str, uuid: &str, stream: &[u8]) -> Vec<u8> {
    let vm = json!({
        "uuid": uuid,
        "brand": "jail",
        "image_uuid": "a1b2c3d4-0000-4000-8000-00000000000a",
        "autoboot": false,
        "quota": 2,
        "zonepath": "/etc/cron.d",
    });
    let json = serde_json::to_vec(&vm).unwrap();
    let mut b = bundle_header("JSON", json.len()).to_vec();
    b.extend_from_slice(&json);
    b.resize(b.len() + json.len().div_ceil(512) * 512 - json.len(), 0);
    b.extend_from_slice(&bundle_header(&format!("{pool}/{uuid}"), 0));
    b.extend_from_slice(stream);
    b
}

#[test]
fn vmadm_receive_refuses_compound_and_unframed_streams() {
    let Some(env) = Env::new() else { return };
    let h = hostile_streams(&env);
    for stream in [&h.props, &h.replicate] {
        let uuid = uuid::Uuid::new_v4().to_string();
        let o = env.run(
            "vmadm",
            &["receive"],
            Some(&bundle(&env.pool, &uuid, stream)),
        );
        assert_exit(&o, 1);
        assert!(stderr(&o).contains("compound ZFS stream"), "{}", stderr(&o));
        assert!(env.state_files().is_empty(), "{:?}", env.state_files());
        assert_eq!(env.datasets(), vec![env.pool.clone()]);
        assert_untouched(&h);
    }
    // A chunk header claiming an absurd padded size is refused before any
    // allocation (the process would abort otherwise).
    let mut b = bundle(&env.pool, &uuid::Uuid::new_v4().to_string(), &h.plain);
    let huge = bundle_header("JSON", 100);
    let mut forged = [0u8; 512];
    let text = b"MAGIC-VMBUNDLE\x001\x00CHECKSUM\x00JSON\x00100\x00999999999999999488\x00";
    forged[..text.len()].copy_from_slice(text);
    assert_ne!(forged, huge);
    b[..512].copy_from_slice(&forged);
    let o = env.run("vmadm", &["receive"], Some(&b));
    assert_exit(&o, 1);
    assert!(stderr(&o).contains("bad chunk header"), "{}", stderr(&o));

    // Even a plain stream is refused in this unframed layout: its length
    // is unknown, so the receiver would read to the end of the input. (The
    // received zonepath coming from the pool is checked in send.rs.)
    let uuid = uuid::Uuid::new_v4().to_string();
    let o = env.run(
        "vmadm",
        &["receive"],
        Some(&bundle(&env.pool, &uuid, &h.plain)),
    );
    assert_exit(&o, 1);
    assert!(stderr(&o).contains("unframed stream"), "{}", stderr(&o));
    assert!(env.state_files().is_empty(), "{:?}", env.state_files());
    assert_eq!(env.datasets(), vec![env.pool.clone()]);
    assert_untouched(&h);
}
