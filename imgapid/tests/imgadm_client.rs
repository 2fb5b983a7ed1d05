//! Our own `imgadm` against a real `imgapid` on loopback, on a real ZFS
//! pool: build an image from a tree, publish it (Basic auth from the URL),
//! then sources / avail / show / import / list / get, and refused
//! credentials storing nothing.

// Test code: a failed unwrap/expect is a test failure with its location.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::zfs::{ok, zfs_ok, Pool};
use common::Server;
use serde_json::Value;
use std::path::Path;
use std::process::Command;

#[test]
fn imgadm_builds_publishes_and_imports_through_imgapid() {
    if !zfs_ok() {
        return;
    }
    let pool = Pool::new();
    let server = Server::start("");

    // A tiny root tree → image files.
    let tree = pool.root.join("tree");
    std::fs::create_dir_all(tree.join("etc")).expect("tree");
    std::fs::write(tree.join("etc/motd"), "published through imgapid\n").expect("motd");
    let out_dir = pool.root.join("out");
    ok(&pool.imgadm(&[
        "build",
        tree.to_str().expect("utf8"),
        "name=imgc-test",
        "version=1.0.0",
        "os=linux",
        "-o",
        out_dir.to_str().expect("utf8"),
    ]));
    let mut manifest_path = None;
    let mut file_path = None;
    for e in std::fs::read_dir(&out_dir).expect("out dir").flatten() {
        let p = e.path();
        if p.extension().is_some_and(|x| x == "json") {
            manifest_path = Some(p);
        } else {
            file_path = Some(p);
        }
    }
    let (manifest_path, file_path) = (manifest_path.expect("manifest"), file_path.expect("file"));
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(&manifest_path).expect("read manifest"))
            .expect("json");
    let uuid = manifest["uuid"].as_str().expect("uuid").to_string();

    // Publishing without credentials is refused and stores nothing.
    let base = format!("http://{}", server.addr);
    let o = pool.imgadm(&[
        "publish",
        "-m",
        manifest_path.to_str().expect("utf8"),
        "-f",
        file_path.to_str().expect("utf8"),
        &base,
    ]);
    assert!(!o.status.success(), "publish without credentials succeeded");
    let list: Value = common::get(&server.url("/images?state=all")).json();
    assert_eq!(
        list,
        serde_json::json!([]),
        "a refused publish stored something"
    );

    // With Basic credentials in the URL it lands and is active.
    let (user, password) = common::ADMIN;
    let authed = format!("http://{user}:{password}@{}", server.addr);
    ok(&pool.imgadm(&[
        "publish",
        "-m",
        manifest_path.to_str().expect("utf8"),
        "-f",
        file_path.to_str().expect("utf8"),
        &authed,
    ]));
    let got = common::get(&server.url(&format!("/images/{uuid}"))).json();
    assert_eq!(got["state"], "active");
    assert_eq!(got["files"][0]["sha1"], manifest["files"][0]["sha1"]);

    // The client side: sources, avail, show, import, list, get.
    ok(&pool.imgadm(&["sources", "-a", &base]));
    let avail = ok(&pool.imgadm(&["avail", "-H", "-o", "uuid,name,version"]));
    assert!(
        avail.contains(&uuid) && avail.contains("imgc-test") && avail.contains("1.0.0"),
        "{avail}"
    );
    let shown: Value =
        serde_json::from_str(&ok(&pool.imgadm(&["show", &uuid]))).expect("show json");
    assert_eq!(shown["uuid"], uuid.as_str());
    let imported = ok(&pool.imgadm(&["import", &uuid]));
    assert!(
        imported.contains(&format!("Imported image {uuid} (imgc-test@1.0.0)")),
        "{imported}"
    );
    let datasets = String::from_utf8_lossy(
        &Command::new("zfs")
            .args(["list", "-H", "-t", "all", "-o", "name", "-r", &pool.name])
            .output()
            .expect("zfs list")
            .stdout,
    )
    .into_owned();
    assert!(
        datasets.contains(&format!("{}/{uuid}@final", pool.name)),
        "{datasets}"
    );
    let listed = ok(&pool.imgadm(&["list", "-H", "-o", "uuid,name"]));
    assert!(listed.contains(&uuid), "{listed}");
    let info: Value = serde_json::from_str(&ok(&pool.imgadm(&["get", &uuid]))).expect("get json");
    assert_eq!(info["manifest"]["name"], "imgc-test");
    assert_eq!(info["source"], base.as_str());
    // The imported tree is the published one.
    let mp = String::from_utf8_lossy(
        &Command::new("zfs")
            .args([
                "get",
                "-H",
                "-o",
                "value",
                "mountpoint",
                &format!("{}/{uuid}", pool.name),
            ])
            .output()
            .expect("zfs get")
            .stdout,
    )
    .trim()
    .to_string();
    // `imgadm build` puts the tree under root/ (the SmartOS zone layout).
    assert_eq!(
        std::fs::read_to_string(Path::new(&mp).join("root/etc/motd")).expect("motd in image"),
        "published through imgapid\n"
    );
    assert!(!Path::new(&mp).join("etc").exists(), "tree at the top");
}
