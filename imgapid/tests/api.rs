//! End-to-end tests of the IMGAPI and DSAPI endpoints against the real
//! `imgapid` binary on loopback: every endpoint, and every bad input refused
//! with the right status and nothing stored.

// Test code: a failed unwrap/expect is a test failure with its location.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;
use serde_json::json;
use std::io::Write;
use std::time::Duration;

#[test]
fn ping_empty_catalog_and_unknown_routes() {
    let s = Server::start("");
    let r = get(&s.url("/ping"));
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["imgapi"], json!(true));
    assert_eq!(r.json()["ping"], json!("pong"));
    let r = get(&s.url("/ping?error=Boom"));
    assert_eq!((r.status, r.code().as_str()), (500, "InternalError"));
    let r = get(&s.url("/images"));
    assert_eq!((r.status, r.json()), (200, json!([])));
    assert_eq!(r.header("content-type"), Some("application/json"));
    let r = get(&s.url(&format!("/images/{}", new_uuid())));
    assert_eq!((r.status, r.code().as_str()), (404, "ResourceNotFound"));
    let r = get(&s.url("/nope"));
    assert_eq!((r.status, r.code().as_str()), (404, "ResourceNotFound"));
    let r = request(
        "PATCH",
        &s.url(&format!("/images/{}", new_uuid())),
        admin(),
        &[],
        None,
    );
    assert_eq!(r.status, 405);
    let r = get(&s.url("/datasets"));
    assert_eq!((r.status, r.json()), (200, json!([])));
    s.assert_stored(0, 0);
}

#[test]
fn publish_get_download_and_delete() {
    let s = Server::start("");
    let uuid = new_uuid();
    let file = payload(300_000, 1);
    let m = publish(&s, &manifest(&uuid, "freebsd-14", "14.1.0"), &file);
    assert_eq!(m["state"], json!("active"));
    assert_eq!(m["owner"], json!("00000000-0000-0000-0000-000000000000"));
    assert_eq!(m["files"][0]["sha1"], json!(sha1_hex(&file)));
    assert_eq!(m["files"][0]["size"], json!(300_000));
    assert_eq!(m["files"][0]["compression"], json!("gzip"));
    assert!(m["published_at"].as_str().is_some_and(|p| p.ends_with('Z')));

    // GetImage, with a manifest ETag and 304 on If-None-Match.
    let r = get(&s.url(&format!("/images/{uuid}")));
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), m);
    let etag = r.header("etag").expect("etag").to_string();
    let r = request(
        "GET",
        &s.url(&format!("/images/{uuid}")),
        Auth::None,
        &[("If-None-Match", &etag)],
        None,
    );
    assert_eq!(r.status, 304);

    // GetImageFile: exact length, Content-MD5, sha1 ETag.
    let r = get(&s.url(&format!("/images/{uuid}/file")));
    assert_eq!(r.status, 200);
    assert_eq!(r.body, file);
    assert_eq!(r.header("content-length"), Some("300000"));
    assert_eq!(r.header("content-md5"), Some(md5_b64(&file).as_str()));
    assert_eq!(r.header("etag"), Some(sha1_hex(&file).as_str()));
    assert_eq!(r.header("content-type"), Some("application/octet-stream"));
    assert!(
        r.header("transfer-encoding").is_none(),
        "imgadm refuses chunked files"
    );
    let lm = r
        .header("last-modified")
        .expect("last-modified")
        .to_string();
    let r = request(
        "GET",
        &s.url(&format!("/images/{uuid}/file")),
        Auth::None,
        &[("If-Modified-Since", &lm)],
        None,
    );
    assert_eq!(r.status, 304);
    let r = request(
        "HEAD",
        &s.url(&format!("/images/{uuid}/file")),
        Auth::None,
        &[],
        None,
    );
    assert_eq!(
        (r.status, r.header("content-length")),
        (200, Some("300000"))
    );
    assert!(r.body.is_empty());

    // Range requests resume downloads.
    let r = request(
        "GET",
        &s.url(&format!("/images/{uuid}/file")),
        Auth::None,
        &[("Range", "bytes=1000-1999")],
        None,
    );
    assert_eq!(r.status, 206);
    assert_eq!(r.body, &file[1000..2000]);
    assert_eq!(r.header("content-range"), Some("bytes 1000-1999/300000"));
    let r = request(
        "GET",
        &s.url(&format!("/images/{uuid}/file")),
        Auth::None,
        &[("Range", "bytes=299990-")],
        None,
    );
    assert_eq!((r.status, r.body.as_slice()), (206, &file[299_990..]));
    let r = request(
        "GET",
        &s.url(&format!("/images/{uuid}/file")),
        Auth::None,
        &[("Range", "bytes=-5")],
        None,
    );
    assert_eq!((r.status, r.body.as_slice()), (206, &file[299_995..]));
    let r = request(
        "GET",
        &s.url(&format!("/images/{uuid}/file")),
        Auth::None,
        &[("Range", "bytes=300000-")],
        None,
    );
    assert_eq!(
        (r.status, r.header("content-range")),
        (416, Some("bytes */300000"))
    );
    let r = request(
        "GET",
        &s.url(&format!("/images/{uuid}/file")),
        Auth::None,
        &[
            ("Range", "bytes=0-9"),
            ("If-Range", "0000000000000000000000000000000000000000"),
        ],
        None,
    );
    assert_eq!(
        (r.status, r.body.len()),
        (200, 300_000),
        "stale If-Range gets the whole file"
    );

    // The list shows it; an icon does not exist yet.
    let r = get(&s.url("/images"));
    assert_eq!(r.json(), json!([m]));
    let r = get(&s.url(&format!("/images/{uuid}/icon")));
    assert_eq!(r.status, 404);

    // A file of an activated image is immutable; activation is one-way.
    let r = request(
        "PUT",
        &s.url(&format!("/images/{uuid}/file?compression=none")),
        admin(),
        &[],
        Some(b"x"),
    );
    assert_eq!((r.status, r.code().as_str()), (422, "ImageFilesImmutable"));
    let r = request(
        "POST",
        &s.url(&format!("/images/{uuid}?action=activate")),
        admin(),
        &[],
        None,
    );
    assert_eq!(
        (r.status, r.code().as_str()),
        (422, "ImageAlreadyActivated")
    );

    // Disable hides it from the default list; enable brings it back.
    let r = request(
        "POST",
        &s.url(&format!("/images/{uuid}?action=disable")),
        admin(),
        &[],
        None,
    );
    assert_eq!(
        (r.status, r.json()["state"].clone()),
        (200, json!("disabled"))
    );
    assert_eq!(get(&s.url("/images")).json(), json!([]));
    let r = request("GET", &s.url("/images?state=disabled"), admin(), &[], None);
    assert_eq!(r.json().as_array().map(Vec::len), Some(1));
    assert_eq!(
        get(&s.url("/images?state=all")).json(),
        json!([]),
        "anonymous sees active only"
    );
    // A disabled image is withdrawn: anonymous readers can neither see nor
    // fetch it (writers still can).
    assert_eq!(get(&s.url(&format!("/images/{uuid}"))).status, 404);
    assert_eq!(get(&s.url(&format!("/images/{uuid}/file"))).status, 404);
    assert_eq!(
        request(
            "GET",
            &s.url(&format!("/images/{uuid}/file")),
            admin(),
            &[],
            None
        )
        .status,
        200
    );
    let r = request(
        "POST",
        &s.url(&format!("/images/{uuid}?action=enable")),
        admin(),
        &[],
        None,
    );
    assert_eq!(r.json()["state"], json!("active"));

    // Update changes mutable fields only.
    let r = request(
        "POST",
        &s.url(&format!("/images/{uuid}?action=update")),
        admin(),
        &[],
        Some(json!({"description": "new words"}).to_string().as_bytes()),
    );
    assert_eq!(
        (r.status, r.json()["description"].clone()),
        (200, json!("new words"))
    );
    let r = request(
        "POST",
        &s.url(&format!("/images/{uuid}?action=update")),
        admin(),
        &[],
        Some(json!({"uuid": new_uuid()}).to_string().as_bytes()),
    );
    assert_eq!(r.status, 422);

    s.assert_stored(1, 1);
    let r = request(
        "DELETE",
        &s.url(&format!("/images/{uuid}")),
        admin(),
        &[],
        None,
    );
    assert_eq!(r.status, 204);
    assert!(r.body.is_empty());
    assert_eq!(get(&s.url(&format!("/images/{uuid}"))).status, 404);
    assert_eq!(get(&s.url(&format!("/images/{uuid}/file"))).status, 404);
    let r = request(
        "DELETE",
        &s.url(&format!("/images/{uuid}")),
        admin(),
        &[],
        None,
    );
    assert_eq!(r.status, 404);
    s.assert_stored(0, 0);
}

#[test]
fn create_image_icon_and_unactivated_visibility() {
    let s = Server::start("");
    let body = json!({"name": "made", "version": "1", "type": "lx-dataset", "os": "linux"});
    let r = request(
        "POST",
        &s.url("/images"),
        admin(),
        &[("Content-Type", "application/json")],
        Some(body.to_string().as_bytes()),
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let m = r.json();
    assert_eq!(
        (m["state"].clone(), m["files"].clone()),
        (json!("unactivated"), json!([]))
    );
    let uuid = m["uuid"].as_str().expect("uuid").to_string();
    assert!(uuid::Uuid::try_parse(&uuid).is_ok());
    // Not visible to anonymous readers until activated.
    assert_eq!(get(&s.url(&format!("/images/{uuid}"))).status, 404);
    assert_eq!(
        request(
            "GET",
            &s.url(&format!("/images/{uuid}")),
            admin(),
            &[],
            None
        )
        .status,
        200
    );
    let r = request(
        "POST",
        &s.url(&format!("/images/{uuid}?action=activate")),
        admin(),
        &[],
        None,
    );
    assert_eq!((r.status, r.code().as_str()), (422, "NoActivationNoFile"));
    // CreateImage refuses a client-chosen uuid.
    let r = request("POST", &s.url("/images"), admin(), &[], Some(json!({"uuid": new_uuid(), "name": "x", "version": "1", "type": "other", "os": "other"}).to_string().as_bytes()));
    assert_eq!(r.status, 422);
    // Icons: only images, at most 128 KiB.
    let png = b"\x89PNG\r\n\x1a\nfake";
    let r = request(
        "PUT",
        &s.url(&format!("/images/{uuid}/icon")),
        admin(),
        &[("Content-Type", "image/png")],
        Some(png),
    );
    assert_eq!((r.status, r.json()["icon"].clone()), (200, json!(true)));
    let r = request(
        "PUT",
        &s.url(&format!("/images/{uuid}/icon")),
        admin(),
        &[("Content-Type", "text/html")],
        Some(b"<x>"),
    );
    assert_eq!(r.status, 422);
    let file = payload(1000, 2);
    let r = request(
        "PUT",
        &s.url(&format!("/images/{uuid}/file?compression=xz")),
        admin(),
        &[],
        Some(&file),
    );
    assert_eq!(r.status, 200);
    let r = request(
        "POST",
        &s.url(&format!("/images/{uuid}?action=activate")),
        admin(),
        &[],
        None,
    );
    assert_eq!(r.status, 200);
    let r = get(&s.url(&format!("/images/{uuid}/icon")));
    assert_eq!(
        (r.status, r.body.as_slice(), r.header("content-type")),
        (200, &png[..], Some("image/png"))
    );
    assert_eq!(r.header("content-md5"), Some(md5_b64(png).as_str()));
    s.assert_stored(1, 2);
}

#[test]
fn filters_limit_and_inclusive_marker() {
    let s = Server::start("");
    let mut uuids = Vec::new();
    for i in 0..6 {
        let uuid = new_uuid();
        let mut m = manifest(
            &uuid,
            if i % 2 == 0 { "base" } else { "base-64" },
            &format!("1.{i}"),
        );
        m["published_at"] = json!(format!("2024-01-0{}T00:00:00.000Z", i + 1));
        m["os"] = json!(if i < 3 { "bsd" } else { "linux" });
        m["type"] = json!(if i == 5 { "lx-dataset" } else { "zone-dataset" });
        m["tags"] = json!({"role": if i == 1 { "db" } else { "os" }, "n": i});
        publish(&s, &m, &payload(100 + i, i as u8));
        uuids.push(uuid);
    }
    let list = |q: &str| -> Vec<String> {
        let r = get(&s.url(&format!("/images{q}")));
        assert_eq!(r.status, 200, "{q}: {}", String::from_utf8_lossy(&r.body));
        r.json()
            .as_array()
            .expect("array")
            .iter()
            .map(|m| m["uuid"].as_str().unwrap_or("").to_string())
            .collect()
    };
    assert_eq!(list(""), uuids, "ascending published_at");
    // The unfiltered list is cached; every change must invalidate it.
    let extra = new_uuid();
    let mut m = manifest(&extra, "late", "9");
    m["published_at"] = json!("2024-02-01T00:00:00Z");
    publish(&s, &m, b"late");
    assert_eq!(list("").last(), Some(&extra));
    assert_eq!(
        request(
            "DELETE",
            &s.url(&format!("/images/{extra}")),
            admin(),
            &[],
            None
        )
        .status,
        204
    );
    assert_eq!(list(""), uuids);
    assert_eq!(
        list("?name=base"),
        vec![uuids[0].clone(), uuids[2].clone(), uuids[4].clone()]
    );
    assert_eq!(list("?name=~64").len(), 3);
    assert_eq!(list("?version=1.3"), vec![uuids[3].clone()]);
    assert_eq!(list("?os=linux").len(), 3);
    assert_eq!(list("?type=lx-dataset"), vec![uuids[5].clone()]);
    assert_eq!(list("?type=!lx-dataset").len(), 5);
    assert_eq!(list("?tag.role=db"), vec![uuids[1].clone()]);
    assert_eq!(list("?tag.n=4"), vec![uuids[4].clone()]);
    assert_eq!(list("?owner=00000000-0000-0000-0000-000000000000").len(), 6);
    assert_eq!(list("?public=false").len(), 0);
    assert_eq!(list("?limit=2"), uuids[..2].to_vec());
    // Inclusive marker, as sdc-clients pages: the marker image comes first.
    assert_eq!(
        list(&format!("?limit=2&marker={}", uuids[1])),
        uuids[1..3].to_vec()
    );
    assert_eq!(list("?marker=2024-01-05T00:00:00Z"), uuids[4..].to_vec());
    let mut rev = uuids.clone();
    rev.reverse();
    assert_eq!(list("?sort=published_at.desc"), rev);
    for bad in [
        "?limit=0",
        "?limit=1001",
        "?limit=x",
        "?marker=yesterday",
        &format!("?marker={}", new_uuid()),
        "?state=bogus",
        "?sort=name",
        "?public=maybe",
    ] {
        let r = get(&s.url(&format!("/images{bad}")));
        assert_eq!(
            (r.status, r.code().as_str()),
            (422, "InvalidParameter"),
            "{bad}"
        );
    }
}

#[test]
fn dsapi_serves_v1_manifests_with_absolute_urls() {
    let s = Server::start("");
    let uuid = new_uuid();
    let file = payload(5000, 3);
    publish(&s, &manifest(&uuid, "old style", "2.0"), &file);
    let r = get(&s.url("/datasets"));
    let list = r.json();
    assert_eq!(list.as_array().map(Vec::len), Some(1));
    let d = &list[0];
    assert!(d.get("v").is_none());
    assert_eq!(
        d["creator_uuid"],
        json!("00000000-0000-0000-0000-000000000000")
    );
    let url = d["files"][0]["url"].as_str().expect("url").to_string();
    assert_eq!(
        url,
        s.url(&format!("/datasets/{uuid}/old_style-2.0.zfs.gz"))
    );
    let r = get(&s.url(&format!("/datasets/{uuid}")));
    assert_eq!(&r.json(), d);
    let r = get(&url);
    assert_eq!((r.status, r.body == file), (200, true));
    assert_eq!(r.header("content-md5"), Some(md5_b64(&file).as_str()));
    // Old DSAPI clients send absolute-form request targets.
    let path = url
        .trim_start_matches("http://")
        .split_once('/')
        .map(|x| x.1)
        .unwrap_or("");
    let out = raw(
        &s.addr,
        format!(
            "GET {url} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            s.addr
        )
        .as_bytes(),
    );
    assert!(
        out.starts_with("HTTP/1.1 200"),
        "{path}: {}",
        &out[..out.len().min(200)]
    );
    assert_eq!(
        get(&s.url(&format!("/datasets/{uuid}/other.zfs.gz"))).status,
        404
    );
    assert_eq!(get(&s.url("/datasets?name=nope")).json(), json!([]));
    assert_eq!(
        get(&s.url("/datasets?name=old%20style"))
            .json()
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    // A configured public URL wins over the Host header.
    drop(s);
    let s = Server::start("public_url = \"https://images.example.test/\"\n");
    publish(&s, &manifest(&uuid, "old style", "2.0"), &file);
    let d = get(&s.url(&format!("/datasets/{uuid}"))).json();
    assert_eq!(
        d["files"][0]["url"],
        json!(format!(
            "https://images.example.test/datasets/{uuid}/old_style-2.0.zfs.gz"
        ))
    );
}

#[test]
fn writes_need_credentials_and_store_nothing_without() {
    let s = Server::start("");
    let uuid = new_uuid();
    let m = manifest(&uuid, "x", "1").to_string();
    let import = s.url(&format!("/images/{uuid}?action=import"));
    for auth in [
        Auth::None,
        Auth::Basic(ADMIN.0, "wrong"),
        Auth::Basic("root", ADMIN.1),
        Auth::Bearer("tok-nope"),
    ] {
        let r = request("POST", &import, auth, &[], Some(m.as_bytes()));
        assert_eq!((r.status, r.code().as_str()), (401, "UnauthorizedError"));
        assert!(r.header("www-authenticate").is_some());
    }
    let r = request(
        "POST",
        &s.url("/images"),
        Auth::None,
        &[],
        Some(m.as_bytes()),
    );
    assert_eq!(r.status, 401);
    s.assert_stored(0, 0);
    // Bearer works too; then every other write still needs credentials.
    let r = request(
        "POST",
        &import,
        Auth::Bearer(TOKEN),
        &[],
        Some(m.as_bytes()),
    );
    assert_eq!(r.status, 200);
    let file = payload(10, 9);
    let put = s.url(&format!("/images/{uuid}/file?compression=none"));
    assert_eq!(
        request("PUT", &put, Auth::None, &[], Some(&file)).status,
        401
    );
    assert_eq!(
        request("PUT", &put, Auth::Bearer("x"), &[], Some(&file)).status,
        401
    );
    for action in ["activate", "disable", "enable", "update"] {
        let r = request(
            "POST",
            &s.url(&format!("/images/{uuid}?action={action}")),
            Auth::None,
            &[],
            Some(b"{}"),
        );
        assert_eq!(r.status, 401, "{action}");
    }
    assert_eq!(
        request(
            "DELETE",
            &s.url(&format!("/images/{uuid}")),
            Auth::None,
            &[],
            None
        )
        .status,
        401
    );
    assert_eq!(
        request(
            "PUT",
            &s.url(&format!("/images/{uuid}/icon")),
            Auth::None,
            &[("Content-Type", "image/png")],
            Some(b"x")
        )
        .status,
        401
    );
    s.assert_stored(1, 0);
    let r = request(
        "GET",
        &s.url(&format!("/images/{uuid}")),
        Auth::Bearer(TOKEN),
        &[],
        None,
    );
    assert_eq!((r.status, r.json()["files"].clone()), (200, json!([])));
}

#[test]
fn unauthenticated_writes_and_private_reads_are_options() {
    let s = Server::start("[auth]\nallow_unauthenticated_writes = true\n");
    let uuid = new_uuid();
    let m = publish_anon(&s, &uuid);
    assert_eq!(m["state"], json!("active"));
    drop(s);
    let s = Server::start(&format!(
        "[auth]\npublic_reads = false\ntokens = [\"{TOKEN}\"]\n"
    ));
    assert_eq!(get(&s.url("/ping")).status, 200, "ping stays public");
    for p in ["/images", "/datasets", "/", &format!("/images/{uuid}")] {
        assert_eq!(get(&s.url(p)).status, 401, "{p}");
    }
    assert_eq!(
        request("GET", &s.url("/images"), Auth::Bearer(TOKEN), &[], None).status,
        200
    );
}

fn publish_anon(s: &Server, uuid: &str) -> serde_json::Value {
    let m = manifest(uuid, "anon", "1");
    assert_eq!(
        request(
            "POST",
            &s.url(&format!("/images/{uuid}?action=import")),
            Auth::None,
            &[],
            Some(m.to_string().as_bytes())
        )
        .status,
        200
    );
    let file = payload(64, 4);
    assert_eq!(
        request(
            "PUT",
            &s.url(&format!("/images/{uuid}/file?compression=none")),
            Auth::None,
            &[],
            Some(&file)
        )
        .status,
        200
    );
    request(
        "POST",
        &s.url(&format!("/images/{uuid}?action=activate")),
        Auth::None,
        &[],
        None,
    )
    .json()
}

#[test]
fn path_traversal_in_every_segment_is_refused() {
    let s = Server::start("");
    let uuid = new_uuid();
    let file = payload(100, 5);
    publish(&s, &manifest(&uuid, "t", "1"), &file);
    let evil = [
        "..",
        "%2e%2e",
        "..%2f..%2fetc%2fpasswd",
        "%2e%2e%2f",
        "....//",
        "..\\..\\",
        "%00",
        "etc/passwd",
    ];
    let mut targets = Vec::new();
    for e in evil {
        targets.push(format!("/images/{e}"));
        targets.push(format!("/images/{e}/file"));
        targets.push(format!("/images/{e}/icon"));
        targets.push(format!("/images/{uuid}/{e}"));
        targets.push(format!("/{e}/{uuid}"));
        targets.push(format!("/{e}/{uuid}/file"));
        targets.push(format!("/datasets/{e}"));
        targets.push(format!("/datasets/{e}/x.zfs.gz"));
        targets.push(format!("/datasets/{uuid}/{e}"));
        targets.push(format!("/images/{uuid}/file/{e}"));
    }
    targets.push("/images/../../../../etc/passwd".into());
    targets.push(format!("/images/{uuid}/../../../etc/passwd"));
    targets.push(format!(
        "/images/{}/file",
        uuid.to_uppercase().replace('-', "")
    ));
    for t in &targets {
        for method in ["GET", "PUT", "POST", "DELETE"] {
            let req = format!(
                "{method} {t}?compression=none&action=import HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}",
                s.addr
            );
            let out = raw(&s.addr, req.as_bytes());
            let status = out.get(9..12).unwrap_or("");
            assert!(
                status == "404" || status == "405" || status == "400",
                "{method} {t}: {}",
                out.lines().next().unwrap_or("")
            );
            assert!(!out.contains("root:"), "{t} leaked a file");
        }
    }
    // The one real image is untouched.
    s.assert_stored(1, 1);
    assert_eq!(get(&s.url(&format!("/images/{uuid}/file"))).body, file);
}

#[test]
fn non_uuid_and_invalid_manifests_are_refused() {
    let s = Server::start("");
    for bad in [
        "not-a-uuid",
        "01b2c898945f11e1a523af1afbe22822",
        "{01b2c898-945f-11e1-a523-af1afbe22822}",
        "01b2c898-945f-11e1-a523-af1afbe2282Z",
    ] {
        let r = request(
            "POST",
            &s.url(&format!("/images/{bad}?action=import")),
            admin(),
            &[],
            Some(manifest(bad, "x", "1").to_string().as_bytes()),
        );
        assert_eq!(
            (r.status, r.code().as_str()),
            (404, "ResourceNotFound"),
            "{bad}"
        );
        assert_eq!(get(&s.url(&format!("/images/{bad}"))).status, 404);
    }
    let uuid = new_uuid();
    let import = s.url(&format!("/images/{uuid}?action=import"));
    let base = manifest(&uuid, "ok", "1");
    let mut cases: Vec<(serde_json::Value, u16)> = Vec::new();
    for (k, v) in [
        ("name", json!("bad;name")),
        ("name", json!("a".repeat(513))),
        ("name", json!("")),
        ("version", json!("1 2")),
        ("version", json!("v".repeat(129))),
        ("type", json!("jail")),
        ("os", json!("freebsd")),
        ("v", json!(1)),
        ("published_at", json!("yesterday")),
        ("homepage", json!("javascript:alert(1)")),
        (
            "files",
            json!([{"sha1": "abc", "size": 1, "compression": "gzip"}]),
        ),
        (
            "files",
            json!([{"sha1": sha1_hex(b"x"), "size": 0, "compression": "gzip"}]),
        ),
        (
            "files",
            json!([{"sha1": sha1_hex(b"x"), "size": 21_474_836_481u64, "compression": "gzip"}]),
        ),
        (
            "files",
            json!([{"sha1": sha1_hex(b"x"), "size": 1, "compression": "lz4"}]),
        ),
        ("origin", json!("../x")),
        ("tags", json!({"k": {"nested": 1}})),
    ] {
        let mut m = base.clone();
        m[k] = v;
        cases.push((m, 422));
    }
    let mut other_uuid = base.clone();
    other_uuid["uuid"] = json!(new_uuid());
    cases.push((other_uuid, 422));
    for (m, want) in cases {
        let r = request(
            "POST",
            &import,
            admin(),
            &[],
            Some(m.to_string().as_bytes()),
        );
        assert_eq!(r.status, want, "{m}: {}", String::from_utf8_lossy(&r.body));
        assert!(
            matches!(r.code().as_str(), "ValidationFailed" | "InvalidParameter"),
            "{}",
            r.code()
        );
    }
    for body in [&b"not json"[..], b"[1,2]", b"\"s\""] {
        let r = request("POST", &import, admin(), &[], Some(body));
        assert_eq!(r.status, 400);
    }
    let r = request(
        "POST",
        &s.url(&format!("/images/{uuid}?action=explode")),
        admin(),
        &[],
        None,
    );
    assert_eq!((r.status, r.code().as_str()), (422, "InvalidParameter"));
    let r = request(
        "POST",
        &s.url(&format!("/images/{uuid}")),
        admin(),
        &[],
        None,
    );
    assert_eq!(r.status, 422);
    s.assert_stored(0, 0);
    // Duplicate import.
    assert_eq!(
        request(
            "POST",
            &import,
            admin(),
            &[],
            Some(base.to_string().as_bytes())
        )
        .status,
        200
    );
    let r = request(
        "POST",
        &import,
        admin(),
        &[],
        Some(base.to_string().as_bytes()),
    );
    assert_eq!(
        (r.status, r.code().as_str()),
        (409, "ImageUuidAlreadyExists")
    );
    s.assert_stored(1, 0);
}

#[test]
fn bad_uploads_store_nothing() {
    let s = Server::start("max_upload_bytes = 1048576\nmax_json_bytes = 4096\n");
    let uuid = new_uuid();
    let file = payload(20_000, 6);
    let mut m = manifest(&uuid, "up", "1");
    let import = s.url(&format!("/images/{uuid}?action=import"));
    assert_eq!(
        request(
            "POST",
            &import,
            admin(),
            &[],
            Some(m.to_string().as_bytes())
        )
        .status,
        200
    );
    let put = |q: &str, body: &[u8]| {
        request(
            "PUT",
            &s.url(&format!("/images/{uuid}/file{q}")),
            admin(),
            &[],
            Some(body),
        )
    };
    let no_file = || {
        let r = request(
            "GET",
            &s.url(&format!("/images/{uuid}")),
            admin(),
            &[],
            None,
        );
        assert_eq!(r.json()["files"], json!([]));
    };
    // Wrong SHA-1.
    let r = put(
        &format!("?compression=gzip&sha1={}", sha1_hex(b"other")),
        &file,
    );
    assert_eq!((r.status, r.code().as_str()), (400, "Upload"));
    s.assert_stored(1, 0);
    no_file();
    // Missing or unknown compression, malformed sha1, empty body.
    for q in ["", "?compression=lz4", "?compression=gzip&sha1=xyz"] {
        assert_eq!(put(q, &file).status, 422, "{q}");
    }
    assert_eq!(put("?compression=gzip", b"").status, 400);
    // Larger than the configured limit: refused from the headers alone, so a
    // client that waits for `100 Continue` never sends the body.
    let out = raw(&s.addr, format!("PUT /images/{uuid}/file?compression=gzip HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: 1048577\r\nExpect: 100-continue\r\n\r\n").as_bytes());
    assert!(out.starts_with("HTTP/1.1 413"), "{out}");
    assert!(out.contains("RequestEntityTooLarge"));
    s.assert_stored(1, 0);
    no_file();
    // Oversized JSON body.
    let r = request(
        "POST",
        &s.url(&format!("/images/{}?action=import", new_uuid())),
        admin(),
        &[],
        Some(&vec![b' '; 5000]),
    );
    assert_eq!(r.status, 413);
    // Content-Length larger than what arrives, then the client goes away.
    let mut sock = std::net::TcpStream::connect(&s.addr).expect("connect");
    write!(sock, "PUT /images/{uuid}/file?compression=gzip HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: 900000\r\n\r\n").expect("head");
    sock.write_all(&payload(300_000, 8)).expect("half");
    sock.flush().expect("flush");
    std::thread::sleep(Duration::from_millis(200));
    drop(sock);
    eventually("the interrupted upload to be cleaned up", || {
        s.files_in("tmp").is_empty()
    });
    s.assert_stored(1, 0);
    no_file();
    // Imported with files[0]: the upload must match that size and SHA-1.
    let uuid2 = new_uuid();
    m["uuid"] = json!(uuid2);
    m["files"] = json!([{"sha1": sha1_hex(&file), "size": file.len(), "compression": "gzip"}]);
    let r = request(
        "POST",
        &s.url(&format!("/images/{uuid2}?action=import")),
        admin(),
        &[],
        Some(m.to_string().as_bytes()),
    );
    assert_eq!((r.status, r.json()["files"].clone()), (200, json!([])));
    let put2 = |body: &[u8]| {
        request(
            "PUT",
            &s.url(&format!("/images/{uuid2}/file?compression=gzip")),
            admin(),
            &[],
            Some(body),
        )
    };
    let r = put2(&file[..19_999]);
    assert_eq!((r.status, r.code().as_str()), (400, "Upload"), "wrong size");
    let mut tampered = file.clone();
    tampered[0] ^= 1;
    let r = put2(&tampered);
    assert_eq!((r.status, r.code().as_str()), (400, "Upload"), "wrong sha1");
    s.assert_stored(2, 0);
    assert_eq!(put2(&file).status, 200);
    s.assert_stored(2, 1);
    // Nothing to activate without a file; the first image still has none.
    let r = request(
        "POST",
        &s.url(&format!("/images/{uuid}?action=activate")),
        admin(),
        &[],
        None,
    );
    assert_eq!(r.code(), "NoActivationNoFile");
}

#[test]
fn concurrent_uploads_of_one_image() {
    let s = Server::start("");
    let uuid = new_uuid();
    assert_eq!(
        request(
            "POST",
            &s.url(&format!("/images/{uuid}?action=import")),
            admin(),
            &[],
            Some(manifest(&uuid, "c", "1").to_string().as_bytes())
        )
        .status,
        200
    );
    let a = payload(400_000, 10);
    let b = payload(400_000, 11);
    // Upload A starts and stalls halfway…
    let mut sock = std::net::TcpStream::connect(&s.addr).expect("connect");
    write!(sock, "PUT /images/{uuid}/file?compression=none&sha1={} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", sha1_hex(&a), a.len()).expect("head");
    sock.write_all(&a[..200_000]).expect("half");
    sock.flush().expect("flush");
    eventually("upload A to be in progress", || {
        !s.files_in("tmp").is_empty()
    });
    // …so upload B of the same image is refused.
    let r = request(
        "PUT",
        &s.url(&format!("/images/{uuid}/file?compression=none")),
        admin(),
        &[],
        Some(&b),
    );
    assert_eq!((r.status, r.code().as_str()), (409, "UploadInProgress"));
    // A finishes and wins.
    sock.write_all(&a[200_000..]).expect("rest");
    let mut out = String::new();
    std::io::Read::read_to_string(&mut sock, &mut out).expect("reply");
    assert!(
        out.starts_with("HTTP/1.1 200"),
        "{}",
        out.lines().next().unwrap_or("")
    );
    s.assert_stored(1, 1);
    let r = request(
        "GET",
        &s.url(&format!("/images/{uuid}")),
        admin(),
        &[],
        None,
    );
    assert_eq!(r.json()["files"][0]["sha1"], json!(sha1_hex(&a)));
    // Truly simultaneous uploads from threads: exactly the successful ones
    // are consistent and no temp files remain.
    let uuid2 = new_uuid();
    assert_eq!(
        request(
            "POST",
            &s.url(&format!("/images/{uuid2}?action=import")),
            admin(),
            &[],
            Some(manifest(&uuid2, "c", "2").to_string().as_bytes())
        )
        .status,
        200
    );
    let url = s.url(&format!("/images/{uuid2}/file?compression=none"));
    let handles: Vec<_> = [a.clone(), b.clone()]
        .into_iter()
        .map(|body| {
            let url = url.clone();
            std::thread::spawn(move || request("PUT", &url, admin(), &[], Some(&body)).status)
        })
        .collect();
    let statuses: Vec<u16> = handles
        .into_iter()
        .map(|h| h.join().expect("join"))
        .collect();
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 409),
        "{statuses:?}"
    );
    assert!(statuses.contains(&200));
    let stored = request(
        "GET",
        &s.url(&format!("/images/{uuid2}")),
        admin(),
        &[],
        None,
    )
    .json();
    let sha = stored["files"][0]["sha1"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(sha == sha1_hex(&a) || sha == sha1_hex(&b));
    s.assert_stored(2, 2);
}

#[test]
fn origins_and_dependent_images() {
    let s = Server::start("");
    let base = new_uuid();
    let inc = new_uuid();
    let mut m = manifest(&inc, "inc", "1");
    m["origin"] = json!(base);
    // Importing an incremental image before its origin works, activating does not.
    assert_eq!(
        request(
            "POST",
            &s.url(&format!("/images/{inc}?action=import")),
            admin(),
            &[],
            Some(m.to_string().as_bytes())
        )
        .status,
        200
    );
    assert_eq!(
        request(
            "PUT",
            &s.url(&format!("/images/{inc}/file?compression=none")),
            admin(),
            &[],
            Some(b"delta")
        )
        .status,
        200
    );
    let r = request(
        "POST",
        &s.url(&format!("/images/{inc}?action=activate")),
        admin(),
        &[],
        None,
    );
    assert_eq!(r.code(), "OriginDoesNotExist");
    publish(&s, &manifest(&base, "base", "1"), b"full");
    let r = request(
        "POST",
        &s.url(&format!("/images/{inc}?action=activate")),
        admin(),
        &[],
        None,
    );
    assert_eq!(r.status, 200);
    let r = request(
        "DELETE",
        &s.url(&format!("/images/{base}")),
        admin(),
        &[],
        None,
    );
    assert_eq!(
        (r.status, r.code().as_str()),
        (422, "ImageHasDependentImages")
    );
    assert_eq!(
        request(
            "DELETE",
            &s.url(&format!("/images/{inc}")),
            admin(),
            &[],
            None
        )
        .status,
        204
    );
    assert_eq!(
        request(
            "DELETE",
            &s.url(&format!("/images/{base}")),
            admin(),
            &[],
            None
        )
        .status,
        204
    );
    s.assert_stored(0, 0);
}

#[test]
fn restart_keeps_images_and_sweeps_crash_leftovers() {
    let s = Server::start("");
    let uuid = new_uuid();
    let file = payload(3000, 12);
    let m = publish(&s, &manifest(&uuid, "keep", "1"), &file);
    let (status, dir) = s.terminate();
    assert!(status.success(), "graceful exit: {status:?}");
    // What a crash mid-upload or mid-delete leaves: a temp file and a blob
    // no record points at.
    let data = dir.path().join("data");
    std::fs::write(data.join("tmp/0123abcd"), b"half an upload").expect("tmp");
    std::fs::write(data.join("blobs/orphan-file-0"), b"x").expect("orphan");
    std::fs::write(data.join("records/garbage.json.tmp"), b"{").expect("junk");
    let s = Server::start_in(dir, "");
    assert_eq!(get(&s.url(&format!("/images/{uuid}"))).json(), m);
    assert_eq!(get(&s.url(&format!("/images/{uuid}/file"))).body, file);
    assert_eq!(s.files_in("tmp"), Vec::<String>::new());
    assert_eq!(s.files_in("blobs").len(), 1);
}

#[test]
fn metrics_and_html_index() {
    let s = Server::start("");
    let uuid = new_uuid();
    let mut m = manifest(&uuid, "web<script>", "1");
    m["name"] = json!("web-image");
    m["description"] = json!("<script>alert(1)</script>");
    publish(&s, &m, &payload(2048, 13));
    get(&s.url(&format!("/images/{uuid}/file")));
    get(&s.url(&format!("/images/{}", new_uuid())));
    let r = get(&s.url("/metrics"));
    assert_eq!(r.status, 200);
    let text = String::from_utf8_lossy(&r.body).into_owned();
    assert!(
        text.contains(
            "imgapid_requests_total{route=\"image_file\",method=\"GET\",status=\"200\"} 1"
        ),
        "{text}"
    );
    assert!(text.contains("imgapid_errors_total{code=\"ResourceNotFound\"} 1"));
    assert!(text.contains("imgapid_bytes_served_total 2048"));
    assert!(text.contains("imgapid_bytes_received_total 2048"));
    assert!(text.contains("imgapid_images{state=\"active\"} 1"));
    let r = get(&s.url("/"));
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    let html = String::from_utf8_lossy(&r.body);
    assert!(html.contains("web-image"));
    assert!(html.contains("&lt;script&gt;"));
    assert!(!html.contains("<script>"));
}

#[test]
fn tls_when_configured() {
    let dir = tempfile::tempdir().expect("tmp");
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("cert");
    let cert_path = dir.path().join("cert.pem");
    let key_path = dir.path().join("key.pem");
    std::fs::write(&cert_path, cert.cert.pem()).expect("cert");
    std::fs::write(&key_path, cert.key_pair.serialize_pem()).expect("key");
    let s = Server::start_in(
        dir,
        &format!(
            "[tls]\ncert = \"{}\"\nkey = \"{}\"\n",
            cert_path.display(),
            key_path.display()
        ),
    );
    let port = s.addr.rsplit(':').next().unwrap_or("");
    let out = std::process::Command::new("curl")
        .args(["-sS", "--cacert"])
        .arg(&cert_path)
        .args([
            "--resolve",
            &format!("localhost:{port}:127.0.0.1"),
            &format!("https://localhost:{port}/ping"),
        ])
        .output()
        .expect("curl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["imgapi"], json!(true));
    // Plain HTTP to the TLS port gets no answer.
    let plain = raw(
        &s.addr,
        b"GET /ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(!plain.contains("pong"));
}

#[test]
fn bad_config_and_arguments() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_imgapid"))
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = dir.path().join("c.toml");
    std::fs::write(&cfg, "data_dir = \"/tmp/x\"\nbogus = 1\n").expect("write");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_imgapid"))
        .arg("--config")
        .arg(&cfg)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("bogus"));
}

#[test]
fn graceful_shutdown_finishes_open_downloads() {
    let s = Server::start("");
    let uuid = new_uuid();
    let file = payload(8 * 1024 * 1024, 14);
    publish(&s, &manifest(&uuid, "big", "1"), &file);
    // Start a download and read only its first bytes…
    let mut sock = std::net::TcpStream::connect(&s.addr).expect("connect");
    write!(
        sock,
        "GET /images/{uuid}/file HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .expect("req");
    let mut first = [0u8; 4096];
    std::io::Read::read_exact(&mut sock, &mut first).expect("first bytes");
    // …then ask the server to stop, and read the rest: it must all arrive.
    let pid = s.child.id().to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    std::thread::sleep(Duration::from_millis(200));
    let mut rest = Vec::new();
    std::io::Read::read_to_end(&mut sock, &mut rest).expect("rest");
    let mut all = first.to_vec();
    all.extend_from_slice(&rest);
    let split = all.windows(4).position(|w| w == b"\r\n\r\n").expect("head") + 4;
    assert_eq!(
        &all[split..],
        &file[..],
        "the whole file arrived during shutdown"
    );
    // New connections are refused once the listener is closed.
    assert!(std::net::TcpStream::connect(&s.addr).is_err());
    let (status, _) = s.terminate();
    assert!(status.success());
}

#[test]
fn kill_9_mid_upload_leaves_the_old_state() {
    let s = Server::start("");
    let uuid = new_uuid();
    let before = request(
        "POST",
        &s.url(&format!("/images/{uuid}?action=import")),
        admin(),
        &[],
        Some(manifest(&uuid, "crash", "1").to_string().as_bytes()),
    )
    .json();
    let mut sock = std::net::TcpStream::connect(&s.addr).expect("connect");
    write!(sock, "PUT /images/{uuid}/file?compression=none HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: 5000000\r\n\r\n").expect("head");
    sock.write_all(&payload(2_000_000, 15)).expect("part");
    eventually("bytes on disk", || !s.files_in("tmp").is_empty());
    let dir = {
        let mut s = s;
        s.child.kill().expect("SIGKILL");
        let _ = s.child.wait();
        std::mem::replace(&mut s.dir, tempfile::tempdir().expect("tmp"))
    };
    drop(sock);
    let s = Server::start_in(dir, "");
    let after = request(
        "GET",
        &s.url(&format!("/images/{uuid}")),
        admin(),
        &[],
        None,
    )
    .json();
    assert_eq!(after, before);
    s.assert_stored(1, 0);
}
