//! imgapid as a source users can trust: anonymous readers see only active,
//! public images (every route: ListImages, GetImage, files, DSAPI, HTML),
//! `/metrics` follows `public_reads`, clients that never read a download
//! cannot stall anyone else, and a record that fails to parse is kept aside
//! with its file instead of being swept as garbage.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;
use serde_json::json;
use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

fn disable(s: &Server, uuid: &str) {
    let r = request(
        "POST",
        &s.url(&format!("/images/{uuid}?action=disable")),
        admin(),
        &[],
        None,
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
}

fn uuids(v: &serde_json::Value) -> Vec<String> {
    let mut out: Vec<String> = v
        .as_array()
        .expect("array")
        .iter()
        .map(|m| m["uuid"].as_str().expect("uuid").to_string())
        .collect();
    out.sort();
    out
}

#[test]
fn private_and_disabled_images_are_invisible_to_anonymous_readers() {
    let s = Server::start("");
    let (public, private, disabled) = (new_uuid(), new_uuid(), new_uuid());
    publish(&s, &manifest(&public, "pub", "1"), &payload(2000, 1));
    let mut m = manifest(&private, "priv", "1");
    m["public"] = json!(false);
    publish(&s, &m, &payload(2000, 2));
    publish(&s, &manifest(&disabled, "off", "1"), &payload(2000, 3));
    disable(&s, &disabled);

    // Lists: every way of asking shows the public active image only.
    for q in ["", "?state=all", "?public=false", "?name=priv", "?limit=10"] {
        let got = uuids(&get(&s.url(&format!("/images{q}"))).json());
        let want = if q == "?public=false" || q == "?name=priv" {
            vec![]
        } else {
            vec![public.clone()]
        };
        assert_eq!(got, want, "/images{q}");
    }
    assert_eq!(
        uuids(&get(&s.url("/datasets")).json()),
        vec![public.clone()]
    );
    let page = String::from_utf8(get(&s.url("/")).body).unwrap();
    assert!(page.contains(&public) && !page.contains(&private) && !page.contains(&disabled));

    // Single images, files and the DSAPI form: 404, as for a missing image.
    for u in [&private, &disabled] {
        for p in [
            format!("/images/{u}"),
            format!("/images/{u}/file"),
            format!("/datasets/{u}"),
        ] {
            let r = get(&s.url(&p));
            assert_eq!(r.status, 404, "{p}");
            assert_eq!(r.code(), "ResourceNotFound", "{p}");
        }
    }
    assert_eq!(get(&s.url(&format!("/images/{public}/file"))).status, 200);

    // Writers see the private image in the default list, and everything
    // with state=all; the cached default list is not shared between the two.
    let r = request("GET", &s.url("/images"), admin(), &[], None);
    let mut want = vec![public.clone(), private.clone()];
    want.sort();
    assert_eq!(uuids(&r.json()), want);
    let r = request("GET", &s.url("/images?state=all"), admin(), &[], None);
    assert_eq!(uuids(&r.json()).len(), 3);
    assert_eq!(uuids(&get(&s.url("/images")).json()), vec![public.clone()]);
    for u in [&private, &disabled] {
        let r = request(
            "GET",
            &s.url(&format!("/images/{u}/file")),
            admin(),
            &[],
            None,
        );
        assert_eq!(r.status, 200);
    }
}

#[test]
fn metrics_follow_public_reads() {
    let s = Server::start(&format!(
        "[auth]\npublic_reads = false\ntokens = [\"{TOKEN}\"]\n"
    ));
    assert_eq!(get(&s.url("/metrics")).status, 401);
    let r = request("GET", &s.url("/metrics"), Auth::Bearer(TOKEN), &[], None);
    assert_eq!(r.status, 200);
    assert!(String::from_utf8_lossy(&r.body).contains("imgapid_requests_total"));
    drop(s);
    let s = Server::start("");
    assert_eq!(get(&s.url("/metrics")).status, 200, "public by default");
}

#[test]
fn a_corrupt_record_survives_a_restart_with_its_file() {
    let s = Server::start("");
    let (keep, broken) = (new_uuid(), new_uuid());
    let file = payload(5000, 7);
    publish(&s, &manifest(&keep, "keep", "1"), &payload(3000, 8));
    publish(&s, &manifest(&broken, "broken", "1"), &file);
    let (status, dir) = s.terminate();
    assert!(status.success());
    let data = dir.path().join("data");
    let rec = data.join(format!("records/{broken}.json"));
    let good = std::fs::read(&rec).unwrap();
    // A torn write: the record loses its second half.
    std::fs::write(&rec, &good[..good.len() / 2]).unwrap();
    let blob = std::fs::read_dir(data.join("blobs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .find(|n| n.starts_with(&broken))
        .expect("the broken image's blob");

    // Two restarts: the second must not sweep what the first set aside.
    let s = Server::start_in(dir, "");
    let (_, dir) = s.terminate();
    let s = Server::start_in(dir, "");
    assert_eq!(get(&s.url(&format!("/images/{broken}"))).status, 404);
    assert_eq!(get(&s.url(&format!("/images/{keep}"))).status, 200);
    assert_eq!(s.files_in("quarantine"), vec![format!("{broken}.json")]);
    assert!(s.files_in("blobs").contains(&blob), "blob kept");
    assert_eq!(
        std::fs::read(s.data().join("blobs").join(&blob)).unwrap(),
        file
    );
    assert_eq!(
        std::fs::read(s.data().join(format!("quarantine/{broken}.json"))).unwrap(),
        &good[..good.len() / 2]
    );
}

/// 600 clients ask for a large file and never read a byte of it. Each one
/// fills its socket buffers and then waits forever; the server must go on
/// answering a normal client (list, and a full verified download). The idle
/// cut-off is set far beyond the client's time-out so that it cannot be what
/// frees the server: only not parking a thread per stalled download does.
#[test]
fn idle_downloaders_do_not_stall_other_clients() {
    let s = Server::start("connection_idle_timeout_secs = 3600\n");
    let uuid = new_uuid();
    let file = payload(16 * 1024 * 1024, 9);
    publish(&s, &manifest(&uuid, "big", "1"), &file);
    let req = format!(
        "GET /images/{uuid}/file HTTP/1.1\r\nHost: {}\r\n\r\n",
        s.addr
    );
    let mut idle = Vec::new();
    for i in 0..600 {
        let mut c = TcpStream::connect(&s.addr).unwrap_or_else(|e| panic!("connect {i}: {e}"));
        c.write_all(req.as_bytes()).unwrap();
        idle.push(c);
    }
    // Give the server time to start all 600 responses.
    std::thread::sleep(Duration::from_secs(2));
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(60))
        .build();
    let list: serde_json::Value = agent
        .get(&s.url("/images"))
        .call()
        .expect("list while 600 downloads stall")
        .into_json()
        .unwrap();
    assert_eq!(uuids(&list), vec![uuid.clone()]);
    let mut body = Vec::new();
    std::io::Read::read_to_end(
        &mut agent
            .get(&s.url(&format!("/images/{uuid}/file")))
            .call()
            .expect("download while 600 downloads stall")
            .into_reader(),
        &mut body,
    )
    .unwrap();
    assert_eq!(sha1_hex(&body), sha1_hex(&file));
    // Writes (storage work on the blocking pool) still go through too.
    let other = new_uuid();
    publish(&s, &manifest(&other, "small", "1"), &payload(1000, 4));
    drop(idle);
}
