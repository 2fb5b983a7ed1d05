//! The third-party client check: the npm IMGAPI client (`sdc-clients`) and
//! `imgmanifest` run against a real imgapid (tests/node/sdc-client.js). The
//! npm packages are installed by scripts/install.d/imgapid-node.sh into a
//! git-ignored node_modules; under CI=true a missing node/npm is a failure.

// Test code: a failed unwrap/expect is a test failure with its location.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;
use std::process::Command;

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Makes sure node and the npm packages are there; `false` means skip.
fn node_ready() -> bool {
    let node_dir = repo_root().join("imgapid/tests/node");
    let installed = node_dir
        .join("node_modules/sdc-clients/package.json")
        .exists()
        && node_dir
            .join("node_modules/imgmanifest/package.json")
            .exists();
    if !installed {
        let ok = Command::new("bash")
            .arg(repo_root().join("scripts/install.d/imgapid-node.sh"))
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            assert!(
                !in_ci(),
                "CI=true: the npm IMGAPI client could not be installed"
            );
            return false;
        }
    }
    let has_node = Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(has_node || !in_ci(), "CI=true: node is missing");
    has_node
}

#[test]
fn sdc_clients_imgapi_client_against_imgapid() {
    if !node_ready() {
        eprintln!(
            "SKIPPED: node or the npm packages are not available (run scripts/install-deps.sh)"
        );
        return;
    }
    let s = Server::start("");
    // A pre-existing image so listImages validates more than our own.
    let uuid = new_uuid();
    publish(
        &s,
        &manifest(&uuid, "preexisting", "1.0"),
        &payload(4096, 1),
    );
    let out = Command::new("node")
        .arg(repo_root().join("imgapid/tests/node/sdc-client.js"))
        .arg(format!("http://{}", s.addr))
        .args([ADMIN.0, ADMIN.1])
        .output()
        .expect("run node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "sdc-client.js failed\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("all sdc-clients checks passed"), "{stdout}");
    assert!(stdout.contains("getImageFile (Content-MD5 checked)"));
    // The node client deleted its image; ours is intact.
    s.assert_stored(1, 1);
}
