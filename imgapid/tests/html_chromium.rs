//! The human catalog page (`GET /`) rendered by headless Chromium: the DOM
//! Chromium builds must show every active image's name, version, os, size,
//! date and description, and hostile manifest text must stay text. A
//! screenshot is written to the test's temp dir (kept with
//! IMGAPID_KEEP_SCREENSHOT=path). Under CI=true a missing chromium fails.

// Test code: a failed unwrap/expect is a test failure with its location.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;
use serde_json::json;
use std::process::Command;

fn chromium() -> Option<&'static str> {
    ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|b| {
            Command::new(b)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
}

fn run_chromium(
    bin: &str,
    profile: &std::path::Path,
    extra: &[&str],
    url: &str,
) -> std::process::Output {
    Command::new(bin)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(url)
        .output()
        .expect("run chromium")
}

#[test]
fn catalog_page_renders_in_headless_chromium() {
    let Some(bin) = chromium() else {
        let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
        assert!(
            !ci,
            "CI=true: chromium is missing (scripts/install-deps.sh installs it)"
        );
        eprintln!("SKIPPED: chromium is not installed");
        return;
    };
    let s = Server::start("");
    let a = new_uuid();
    let mut m = manifest(&a, "freebsd-14-base", "14.1.0");
    m["description"] =
        json!("FreeBSD 14.1 base jail <img src=x onerror=\"document.title='pwned'\">");
    m["published_at"] = json!("2024-06-01T10:00:00.000Z");
    publish(&s, &m, &payload(3 * 1024 * 1024, 1));
    let b = new_uuid();
    let mut m = manifest(&b, "debian-12-lx", "20240701");
    m["os"] = json!("linux");
    m["type"] = json!("lx-dataset");
    m["published_at"] = json!("2024-07-01T10:00:00.000Z");
    publish(&s, &m, &payload(1536, 2));
    // An unactivated image must not appear.
    let c = new_uuid();
    request(
        "POST",
        &s.url(&format!("/images/{c}?action=import")),
        admin(),
        &[],
        Some(manifest(&c, "hidden-draft", "0").to_string().as_bytes()),
    );

    let work = tempfile::tempdir().expect("tmp");
    let out = run_chromium(
        bin,
        &work.path().join("profile1"),
        &["--dump-dom"],
        &s.url("/"),
    );
    let dom = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        dom.contains("<title>imgapid image catalog</title>"),
        "script ran or page missing: {dom}"
    );
    assert!(dom.contains("id=\"images\""), "{dom}");
    // Rows in the rendered DOM, newest first.
    let rows: Vec<&str> = dom.split("<tr>").skip(2).collect();
    assert_eq!(rows.len(), 2, "{dom}");
    assert!(
        rows[0].contains("debian-12-lx")
            && rows[0].contains("20240701")
            && rows[0].contains("linux")
    );
    assert!(rows[0].contains("1.5 KiB") && rows[0].contains("2024-07-01"));
    assert!(
        rows[1].contains("freebsd-14-base")
            && rows[1].contains("14.1.0")
            && rows[1].contains("bsd")
    );
    assert!(rows[1].contains("3.0 MiB") && rows[1].contains("2024-06-01"));
    assert!(
        rows[1].contains("FreeBSD 14.1 base jail &lt;img"),
        "description must stay text: {}",
        rows[1]
    );
    assert!(!dom.contains("<img"), "no element injected");
    assert!(!dom.contains("hidden-draft"));
    assert!(dom.contains("2 images"));

    let shot = work.path().join("catalog.png");
    let out = run_chromium(
        bin,
        &work.path().join("profile2"),
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1200,500",
            "--hide-scrollbars",
        ],
        &s.url("/"),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let png = std::fs::read(&shot).expect("screenshot written");
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 5000,
        "{} bytes",
        png.len()
    );
    // Width and height from the IHDR chunk.
    let w = u32::from_be_bytes([png[16], png[17], png[18], png[19]]);
    let h = u32::from_be_bytes([png[20], png[21], png[22], png[23]]);
    assert_eq!((w, h), (1200, 500));
    if let Some(keep) = std::env::var_os("IMGAPID_KEEP_SCREENSHOT") {
        std::fs::copy(&shot, keep).expect("keep screenshot");
    }
}
