//! imgapid replicas over a real distributed store: a 3-node Garage cluster
//! (replication factor 3) on 127.0.0.1 with random ports and temporary
//! directories, started and torn down here, and real `imgapid` binaries
//! sharing one bucket. Garage is installed by scripts/install.d/garage.sh
//! (part of the test command); without it these tests skip, and under
//! CI=true they fail.

// Test code: a failed unwrap/expect is a test failure with its location.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;
use imgapid::store::s3::{S3Settings, S3Store};
use imgapid::store::Storage;
use std::io::Read;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Barrier};
use std::time::Duration;

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// The pinned Garage binary: `$GARAGE_BIN`, the install script's root, or
/// PATH.
fn garage_bin() -> Option<PathBuf> {
    let root = std::env::var("GARAGE_ROOT").unwrap_or_else(|_| "/opt/garage".into());
    let candidates = [
        std::env::var_os("GARAGE_BIN").map(PathBuf::from),
        Some(PathBuf::from(root).join("bin/garage")),
        Some(PathBuf::from("garage")),
    ];
    let found = candidates.into_iter().flatten().find(|p| {
        Command::new(p)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    });
    assert!(
        found.is_some() || !in_ci(),
        "CI=true: Garage is not installed (scripts/install.d/garage.sh)"
    );
    found
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

struct Node {
    child: Option<Child>,
    config: PathBuf,
    s3_port: u16,
}

/// A running 3-node cluster with one bucket and one key; every process is
/// killed on drop, panics included.
struct Garage {
    bin: PathBuf,
    nodes: Vec<Node>,
    key_id: String,
    secret: String,
    _dir: tempfile::TempDir,
}

const BUCKET: &str = "images";

impl Garage {
    fn start(bin: PathBuf) -> Garage {
        let dir = tempfile::tempdir().expect("tmp");
        let rpc_secret = format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        let mut g = Garage {
            bin,
            nodes: Vec::new(),
            key_id: String::new(),
            secret: String::new(),
            _dir: tempfile::tempdir().expect("tmp"),
        };
        for i in 0..3 {
            let home = dir.path().join(format!("node{i}"));
            std::fs::create_dir_all(&home).expect("mkdir");
            let (rpc, s3) = (free_port(), free_port());
            let config = home.join("garage.toml");
            std::fs::write(
                &config,
                format!(
                    "metadata_dir = \"{h}/meta\"\ndata_dir = \"{h}/data\"\ndb_engine = \"lmdb\"\n\
                     replication_factor = 3\nconsistency_mode = \"consistent\"\n\
                     rpc_bind_addr = \"127.0.0.1:{rpc}\"\nrpc_public_addr = \"127.0.0.1:{rpc}\"\n\
                     rpc_secret = \"{rpc_secret}\"\n\n[s3_api]\ns3_region = \"garage\"\n\
                     api_bind_addr = \"127.0.0.1:{s3}\"\n",
                    h = home.display()
                ),
            )
            .expect("config");
            let log = std::fs::File::create(home.join("garage.log")).expect("log");
            let child = Command::new(&g.bin)
                .arg("-c")
                .arg(&config)
                .arg("server")
                .env("RUST_LOG", "warn")
                .stdout(log.try_clone().expect("log"))
                .stderr(log)
                .spawn()
                .expect("spawn garage");
            g.nodes.push(Node {
                child: Some(child),
                config,
                s3_port: s3,
            });
        }
        g._dir = dir;
        let ids: Vec<String> = (0..3)
            .map(|i| {
                let out = g.retry(i, &["node", "id", "-q"]);
                String::from_utf8_lossy(&out.stdout).trim().to_string()
            })
            .collect();
        for id in &ids[1..] {
            g.retry(0, &["node", "connect", id]);
        }
        for (i, id) in ids.iter().enumerate() {
            let short = id.split('@').next().expect("id");
            g.retry(
                0,
                &[
                    "layout",
                    "assign",
                    "-z",
                    &format!("z{i}"),
                    "-c",
                    "1G",
                    short,
                ],
            );
        }
        g.retry(0, &["layout", "apply", "--version", "1"]);
        let out = g.retry(0, &["key", "create", "imgapid"]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let field = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name))
                .map(|v| v.trim_start_matches(':').trim().to_string())
                .unwrap_or_else(|| panic!("no {name} in {text}"))
        };
        g.key_id = field("Key ID");
        g.secret = field("Secret key");
        g.retry(0, &["bucket", "create", BUCKET]);
        g.retry(
            0,
            &[
                "bucket", "allow", "--read", "--write", "--owner", BUCKET, "--key", "imgapid",
            ],
        );
        // Every node must answer S3 before a replica starts on it.
        for i in 0..3 {
            let store = g.store(i);
            eventually_long("S3 API on every node", || store.list_keys("").is_ok());
        }
        g
    }

    fn garage(&self, node: usize, args: &[&str]) -> Output {
        Command::new(&self.bin)
            .arg("-c")
            .arg(&self.nodes[node].config)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run garage")
    }

    /// Runs a CLI command until it succeeds (the cluster settles for a few
    /// seconds after start and after a layout change).
    fn retry(&self, node: usize, args: &[&str]) -> Output {
        let mut last = None;
        for _ in 0..120 {
            let out = self.garage(node, args);
            if out.status.success() {
                return out;
            }
            last = Some(out);
            std::thread::sleep(Duration::from_millis(250));
        }
        let out = last.expect("ran");
        panic!(
            "garage {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }

    fn settings(&self, node: usize) -> S3Settings {
        S3Settings {
            endpoint: format!("http://127.0.0.1:{}", self.nodes[node].s3_port),
            bucket: BUCKET.into(),
            region: "garage".into(),
            access_key_id: self.key_id.clone(),
            secret_access_key: self.secret.clone(),
            refresh: Duration::from_millis(200),
            blob_grace: imgapid::store::s3::BLOB_GRACE,
        }
    }

    /// A direct client of the bucket, to check what is stored.
    fn store(&self, node: usize) -> S3Store {
        S3Store::new(&self.settings(node)).expect("store")
    }

    /// The `[storage]` table of a replica that talks to `node`.
    fn storage_toml(&self, node: usize) -> String {
        let s = self.settings(node);
        format!(
            "[storage]\nbackend = \"s3\"\nendpoint = \"{}\"\nbucket = \"{}\"\nregion = \"garage\"\n\
             access_key_id = \"{}\"\nsecret_access_key = \"{}\"\nrefresh_ms = 200\n",
            s.endpoint, s.bucket, s.access_key_id, s.secret_access_key
        )
    }

    fn replica(&self, node: usize) -> Server {
        Server::start(&self.storage_toml(node))
    }

    fn kill(&mut self, node: usize) {
        if let Some(mut c) = self.nodes[node].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Garage {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill(i);
        }
    }
}

fn eventually_long(what: &str, f: impl Fn() -> bool) {
    let start = std::time::Instant::now();
    while !f() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn cluster() -> Option<Garage> {
    match garage_bin() {
        Some(bin) => Some(Garage::start(bin)),
        None => {
            eprintln!("SKIPPED: Garage is not installed (scripts/install.d/garage.sh)");
            None
        }
    }
}

/// UUIDs in a replica's `GET /images` (as an admin, so unactivated too).
fn listed(s: &Server) -> Vec<String> {
    let r = request("GET", &s.url("/images"), admin(), &[], None);
    assert_eq!(r.status, 200);
    r.json()
        .as_array()
        .expect("array")
        .iter()
        .map(|m| m["uuid"].as_str().expect("uuid").to_string())
        .collect()
}

/// The keys stored under `prefix` now. Listed keys are checked with a read:
/// right after a delete, a listing may still name the deleted key (a node
/// that has not applied it yet answers for the listing; see the S3
/// backend's module docs), while a read already finds nothing.
fn keys(store: &S3Store, prefix: &str) -> Vec<String> {
    store.existing_keys(prefix).expect("list")
}

#[test]
fn published_through_a_is_listed_and_served_through_b() {
    let Some(g) = cluster() else { return };
    let a = g.replica(0);
    let b = g.replica(1);
    let uuid = new_uuid();
    // Three multipart parts and a short tail.
    let file = payload(2 * imgapid::store::s3::PART_SIZE + 300_001, 7);
    publish(&a, &manifest(&uuid, "replicated", "1.0"), &file);
    // Asked by UUID, B finds it at once (a miss looks in the store).
    let r = get(&b.url(&format!("/images/{uuid}")));
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["state"], "active");
    // Listed once the refresh ran.
    eventually("B lists the image", || listed(&b) == vec![uuid.clone()]);
    let r = get(&b.url(&format!("/images/{uuid}/file")));
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), file.len());
    assert_eq!(sha1_hex(&r.body), sha1_hex(&file));
    assert_eq!(r.header("etag"), Some(sha1_hex(&file).as_str()));
    assert_eq!(r.header("content-md5"), Some(md5_b64(&file).as_str()));
    // A range that starts in one part and ends in the next.
    let from = imgapid::store::s3::PART_SIZE - 10;
    let range = format!("bytes={from}-{}", from + 99);
    let r = request(
        "GET",
        &b.url(&format!("/images/{uuid}/file")),
        Auth::None,
        &[("Range", &range)],
        None,
    );
    assert_eq!(r.status, 206);
    assert_eq!(r.body, file[from..from + 100]);
    let store = g.store(2);
    assert_eq!(
        keys(&store, "records/"),
        vec![format!("records/{uuid}.json")]
    );
    assert_eq!(keys(&store, "blobs/").len(), 1);
    assert!(keys(&store, "locks/").is_empty(), "every lock released");
    // Deleted through B: gone from A after a refresh, and from the store.
    let r = request(
        "DELETE",
        &b.url(&format!("/images/{uuid}")),
        admin(),
        &[],
        None,
    );
    assert_eq!(r.status, 204, "{}", String::from_utf8_lossy(&r.body));
    eventually("A forgets the image", || listed(&a).is_empty());
    assert!(keys(&store, "records/").is_empty());
    assert!(keys(&store, "blobs/").is_empty());
}

#[test]
fn a_garage_node_stopping_mid_download_does_not_break_it() {
    let Some(mut g) = cluster() else { return };
    let a = g.replica(0);
    let b = g.replica(1);
    let uuid = new_uuid();
    let file = payload(6 * imgapid::store::s3::PART_SIZE, 11);
    publish(&a, &manifest(&uuid, "big", "1.0"), &file);
    let resp = ureq::get(&b.url(&format!("/images/{uuid}/file")))
        .call()
        .expect("download starts");
    let mut body = resp.into_reader();
    let mut got = vec![0u8; 4 * 1024 * 1024];
    body.read_exact(&mut got).expect("first 4 MiB");
    // Node 2 serves neither replica directly but holds a copy of everything.
    g.kill(2);
    body.read_to_end(&mut got).expect("rest of the file");
    assert_eq!(got.len(), file.len());
    assert_eq!(sha1_hex(&got), sha1_hex(&file));
    // With one node of three down the quorums still hold: publishing and
    // reading go on.
    let second = new_uuid();
    let small = payload(100_000, 3);
    publish(&b, &manifest(&second, "while-degraded", "1.0"), &small);
    let r = get(&a.url(&format!("/images/{second}/file")));
    assert_eq!(r.status, 200);
    assert_eq!(sha1_hex(&r.body), sha1_hex(&small));
}

#[test]
fn concurrent_publishes_and_races_have_one_winner() {
    let Some(g) = cluster() else { return };
    let replicas = Arc::new([g.replica(0), g.replica(1)]);
    // 20 distinct images, alternating replicas, all at once.
    let uuids: Vec<String> = (0..20).map(|_| new_uuid()).collect();
    let go = Arc::new(Barrier::new(uuids.len()));
    let workers: Vec<_> = uuids
        .iter()
        .enumerate()
        .map(|(i, u)| {
            let (replicas, go, u) = (replicas.clone(), go.clone(), u.clone());
            std::thread::spawn(move || {
                go.wait();
                let file = payload(50_000 + i * 1000, i as u8);
                publish(
                    &replicas[i % 2],
                    &manifest(&u, &format!("img{i}"), "1.0"),
                    &file,
                );
            })
        })
        .collect();
    for w in workers {
        w.join().expect("publish thread");
    }
    // Four importers of one UUID, two per replica.
    let raced = new_uuid();
    let go = Arc::new(Barrier::new(4));
    let statuses: Vec<(u16, String)> = (0..4)
        .map(|i| {
            let (replicas, go, raced) = (replicas.clone(), go.clone(), raced.clone());
            std::thread::spawn(move || {
                let m = manifest(&raced, &format!("racer{i}"), "1.0");
                go.wait();
                let r = request(
                    "POST",
                    &replicas[i % 2].url(&format!("/images/{raced}?action=import")),
                    admin(),
                    &[("Content-Type", "application/json")],
                    Some(m.to_string().as_bytes()),
                );
                let code = if r.status == 200 {
                    String::new()
                } else {
                    r.code()
                };
                (r.status, code)
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| t.join().expect("racer"))
        .collect();
    let wins = statuses.iter().filter(|(s, _)| *s == 200).count();
    assert_eq!(wins, 1, "{statuses:?}");
    assert!(
        statuses
            .iter()
            .all(|(s, c)| *s == 200 || (*s == 409 && c == "ImageUuidAlreadyExists")),
        "{statuses:?}"
    );
    // Its file, then four activations at once: one wins.
    let file = payload(70_000, 99);
    let r = request(
        "PUT",
        &replicas[1].url(&format!("/images/{raced}/file?compression=none")),
        admin(),
        &[],
        Some(&file),
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let go = Arc::new(Barrier::new(4));
    let statuses: Vec<(u16, String)> = (0..4)
        .map(|i| {
            let (replicas, go, raced) = (replicas.clone(), go.clone(), raced.clone());
            std::thread::spawn(move || {
                go.wait();
                let r = request(
                    "POST",
                    &replicas[i % 2].url(&format!("/images/{raced}?action=activate")),
                    admin(),
                    &[],
                    Some(b"{}"),
                );
                let code = if r.status == 200 {
                    String::new()
                } else {
                    r.code()
                };
                (r.status, code)
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| t.join().expect("activator"))
        .collect();
    assert_eq!(
        statuses.iter().filter(|(s, _)| *s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses
            .iter()
            .all(|(s, c)| *s == 200 || c == "ImageAlreadyActivated"),
        "{statuses:?}"
    );
    let mut want: Vec<String> = uuids.clone();
    want.push(raced.clone());
    want.sort();
    for s in replicas.iter() {
        let start = std::time::Instant::now();
        loop {
            let mut l = listed(s);
            l.sort();
            if l == want {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "replica {} lists {} images: {l:?}, want {want:?}",
                s.addr,
                l.len()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let store = g.store(0);
    assert_eq!(keys(&store, "records/").len(), 21);
    assert_eq!(keys(&store, "blobs/").len(), 21);
    assert!(keys(&store, "locks/").is_empty(), "every lock released");
}

#[test]
fn the_store_lock_excludes_other_replicas_until_released() {
    let Some(g) = cluster() else { return };
    // Two clients on different nodes, as two replicas would be.
    let (one, two) = (g.store(0), g.store(1));
    let uuid = uuid::Uuid::new_v4();
    let held = one.lock(uuid).expect("first lock");
    assert!(held.is_some());
    // While it is held, the other gives up after its tries.
    let err = two.lock(uuid).expect_err("lock taken twice");
    assert_eq!(err.kind(), std::io::ErrorKind::WouldBlock);
    assert_eq!(
        keys(&one, &format!("locks/{uuid}/")).len(),
        1,
        "loser withdrew"
    );
    one.unlock(held).expect("unlock");
    let second = two.lock(uuid).expect("free again");
    assert!(second.is_some());
    two.unlock(second).expect("unlock");
    assert!(keys(&one, "locks/").is_empty());
}

#[test]
fn bad_input_is_refused_and_leaves_nothing_in_the_bucket() {
    let Some(g) = cluster() else { return };
    let a = g.replica(0);
    let b = g.replica(1);
    let store = g.store(1);
    let uuid = new_uuid();
    let file = payload(300_000, 5);
    // Writes need credentials.
    let m = manifest(&uuid, "bad", "1.0");
    let r = request(
        "POST",
        &a.url(&format!("/images/{uuid}?action=import")),
        Auth::None,
        &[("Content-Type", "application/json")],
        Some(m.to_string().as_bytes()),
    );
    assert_eq!(r.status, 401);
    assert!(keys(&store, "records/").is_empty());
    // Traversal in any segment matches no route.
    for path in [
        "/datasets/../../etc/passwd",
        "/images/..%2f..%2fetc%2fpasswd/file",
        "/images/../records/x",
    ] {
        assert_eq!(get(&a.url(path)).status, 404, "{path}");
    }
    // An import announcing size and SHA-1: a different body is refused.
    let mut announced = m.clone();
    announced["files"] = serde_json::json!([{
        "sha1": sha1_hex(&file), "size": file.len(), "compression": "none"
    }]);
    let r = request(
        "POST",
        &a.url(&format!("/images/{uuid}?action=import")),
        admin(),
        &[("Content-Type", "application/json")],
        Some(announced.to_string().as_bytes()),
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let put = |s: &Server, body: &[u8]| {
        request(
            "PUT",
            &s.url(&format!("/images/{uuid}/file?compression=none")),
            admin(),
            &[],
            Some(body),
        )
    };
    let r = put(&b, &file[..file.len() - 1]);
    assert_eq!(r.status, 400, "size mismatch");
    let mut tampered = file.clone();
    tampered[1000] ^= 1;
    let r = put(&b, &tampered);
    assert_eq!(r.status, 400, "sha1 mismatch");
    assert!(r.code() == "Upload", "{}", String::from_utf8_lossy(&r.body));
    assert!(keys(&store, "blobs/").is_empty(), "refused bodies stored");
    // An upload cut off mid-body (after one multipart part went to the
    // store) leaves no blob that anyone lists, and no file on the record.
    let cut = new_uuid();
    let r = request(
        "POST",
        &a.url(&format!("/images/{cut}?action=import")),
        admin(),
        &[("Content-Type", "application/json")],
        Some(manifest(&cut, "cut", "1.0").to_string().as_bytes()),
    );
    assert_eq!(r.status, 200);
    let big = imgapid::store::s3::PART_SIZE * 2;
    let head = format!(
        "PUT /images/{cut}/file?compression=none HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: {big}\r\n\r\n"
    );
    {
        use std::io::Write;
        let mut sock = std::net::TcpStream::connect(&a.addr).expect("connect");
        sock.write_all(head.as_bytes()).expect("head");
        let chunk = payload(imgapid::store::s3::PART_SIZE + 4096, 1);
        sock.write_all(&chunk).expect("body");
        sock.flush().expect("flush");
    }
    // Once the server has seen the disconnect the slot is free again: the
    // good upload then succeeds through the same replica.
    let put_cut = |body: &[u8]| {
        request(
            "PUT",
            &a.url(&format!("/images/{cut}/file?compression=none")),
            admin(),
            &[],
            Some(body),
        )
    };
    assert!(
        keys(&store, "blobs/").is_empty(),
        "a cut-off upload is listed"
    );
    let r = get(&b.url(&format!("/images/{cut}/file")));
    assert_eq!(r.status, 404, "no file on the record");
    eventually("the cut-off upload is dropped", || {
        put_cut(&file).status == 200
    });
    let r = put(&a, &file);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let blobs = keys(&store, "blobs/");
    assert_eq!(blobs.len(), 2, "{blobs:?}");
    let r = request(
        "GET",
        &b.url(&format!("/images/{uuid}/file")),
        admin(),
        &[],
        None,
    );
    assert_eq!(r.status, 200);
    assert_eq!(sha1_hex(&r.body), sha1_hex(&file));
}

/// A TCP relay in front of a replica that, once it has passed `after`
/// bytes of one response, SIGKILLs the replica and cuts the connection: the
/// replica dies at a known point in the middle of a download.
/// Writes `body` as object `key` straight into the bucket, past imgapid
/// (standing in for a disk fault or a hand edit).
fn put_raw(g: &Garage, key: &str, body: &[u8]) {
    use rusty_s3::S3Action;
    let s = g.settings(0);
    let bucket = rusty_s3::Bucket::new(
        s.endpoint.parse().expect("endpoint"),
        rusty_s3::UrlStyle::Path,
        s.bucket.clone(),
        s.region.clone(),
    )
    .expect("bucket");
    let creds = rusty_s3::Credentials::new(s.access_key_id.clone(), s.secret_access_key.clone());
    let url = bucket
        .put_object(Some(&creds), key)
        .sign(Duration::from_secs(60));
    ureq::request_url("PUT", &url)
        .send_bytes(body)
        .expect("raw PUT");
}

/// Reads a blob through the store.
fn blob(store: &S3Store, key: &str) -> Vec<u8> {
    let mut out = Vec::new();
    store
        .open_blob(key)
        .expect("open")
        .read_to_end(&mut out)
        .expect("read");
    out
}

/// Records that do not parse are moved to `quarantine/` by the start-up
/// load, as the local-disk backend does, once even when two replicas start
/// at the same moment; the blobs they name (by key, or by their uuid) stay
/// through every sweep, while an unnamed blob goes.
#[test]
fn unreadable_records_are_quarantined_and_their_blobs_kept() {
    let Some(g) = cluster() else { return };
    let stores: Vec<S3Store> = (0..2)
        .map(|node| {
            let mut s = g.settings(node);
            // Sweep every unnamed blob at once, so a kept one proves it.
            s.blob_grace = Duration::ZERO;
            S3Store::new(&s).expect("store")
        })
        .collect();
    let upload = |prefix: &str, bytes: &[u8]| {
        let mut up = stores[0].new_upload(prefix).expect("upload");
        up.write_all(bytes).expect("write");
        up.commit("").expect("commit")
    };
    let id = new_uuid();
    let file_key = upload(&format!("{id}-file"), b"image bytes");
    let odd_key = upload("odd-key", b"named by a broken record");
    let orphan_key = upload("orphan", b"named by nothing");
    // A record cut short, and one that is JSON but no record.
    let cut: &[u8] = br#"{"manifest": {"uuid": "#;
    put_raw(&g, &format!("records/{id}.json"), cut);
    let other = new_uuid();
    let named = format!(r#"{{"file": {{"key": "{odd_key}"}}}}"#);
    put_raw(&g, &format!("records/{other}.json"), named.as_bytes());

    let barrier = Barrier::new(2);
    std::thread::scope(|s| {
        for store in &stores {
            let barrier = &barrier;
            s.spawn(move || {
                barrier.wait();
                assert!(store.load().expect("load").is_empty());
            });
        }
    });
    // A later start finds them in quarantine and keeps their blobs again.
    assert!(stores[0].load().expect("load").is_empty());

    // Names what stayed. (This failed under load when it trusted the
    // listing: a Garage node that had not yet applied the deletes still
    // listed both records, which reads found gone; 8 of 60 runs with four
    // clusters at once.)
    assert_eq!(
        keys(&stores[0], "records/"),
        Vec::<String>::new(),
        "quarantine/: {:?}",
        keys(&stores[0], "quarantine/")
    );
    let mut quarantined = keys(&stores[0], "quarantine/");
    quarantined.sort();
    let mut want = vec![
        format!("quarantine/{id}.json"),
        format!("quarantine/{other}.json"),
    ];
    want.sort();
    assert_eq!(quarantined, want);
    let blobs = keys(&stores[0], "blobs/");
    for kept in [&file_key, &odd_key] {
        assert!(
            blobs.contains(&format!("blobs/{kept}")),
            "{kept}: {blobs:?}"
        );
    }
    assert!(!blobs.contains(&format!("blobs/{orphan_key}")), "{blobs:?}");
    assert_eq!(blob(&stores[0], &file_key), b"image bytes");

    // A replica on this bucket serves none of it, and nothing comes back.
    let a = g.replica(0);
    assert!(listed(&a).is_empty());
    assert_eq!(get(&a.url(&format!("/images/{id}"))).status, 404);
    assert!(keys(&stores[0], "records/").is_empty());
    assert_eq!(keys(&stores[0], "quarantine/").len(), 2);
}

fn killing_relay(target: String, pid: u32, after: u64) -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", l.local_addr().expect("addr"));
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(client) = conn else { return };
            let Ok(upstream) = std::net::TcpStream::connect(&target) else {
                continue;
            };
            let (mut c_in, mut u_out) = (
                client.try_clone().expect("clone"),
                upstream.try_clone().expect("clone"),
            );
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut c_in, &mut u_out);
            });
            std::thread::spawn(move || {
                let (mut up, mut down) = (upstream, client);
                let mut seen: u64 = 0;
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    let n = match up.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    let n = if seen + n as u64 > after {
                        (after - seen) as usize
                    } else {
                        n
                    };
                    if std::io::Write::write_all(&mut down, &buf[..n]).is_err() {
                        return;
                    }
                    seen += n as u64;
                    if seen >= after {
                        let _ = Command::new("kill")
                            .args(["-KILL", &pid.to_string()])
                            .status();
                        let _ = down.shutdown(std::net::Shutdown::Both);
                        return;
                    }
                }
            });
        }
    });
    url
}

#[test]
fn imgadm_finishes_from_replica_b_when_replica_a_dies_mid_import() {
    if !common::zfs::zfs_ok() {
        return;
    }
    let Some(g) = cluster() else { return };
    let pool = common::zfs::Pool::new();
    let a = g.replica(0);
    let b = g.replica(1);
    // An image whose file is several multipart parts: 24 MiB of noise.
    let tree = pool.root.join("tree");
    std::fs::create_dir_all(tree.join("data")).expect("tree");
    std::fs::write(tree.join("data/noise"), payload(24 << 20, 42)).expect("noise");
    let out = pool.root.join("out");
    common::zfs::ok(&pool.imgadm(&[
        "build",
        tree.to_str().expect("utf8"),
        "-c",
        "none",
        "-o",
        out.to_str().expect("utf8"),
        "name=failover",
        "version=1.0",
        "os=linux",
    ]));
    let (mut mpath, mut fpath) = (None, None);
    for e in std::fs::read_dir(&out).expect("out").flatten() {
        let p = e.path();
        if p.extension().is_some_and(|x| x == "json") {
            mpath = Some(p);
        } else {
            fpath = Some(p);
        }
    }
    let (mpath, fpath) = (mpath.expect("manifest"), fpath.expect("file"));
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&mpath).expect("read")).expect("json");
    let uuid = m["uuid"].as_str().expect("uuid").to_string();
    let size = m["files"][0]["size"].as_u64().expect("size");
    assert!(size > 16 << 20, "file is {size} bytes");
    let (user, password) = ADMIN;
    common::zfs::ok(&pool.imgadm(&[
        "publish",
        "-m",
        mpath.to_str().expect("utf8"),
        "-f",
        fpath.to_str().expect("utf8"),
        &format!("http://{user}:{password}@{}", a.addr),
    ]));
    // Sources: replica A behind the relay that kills it 5 MiB into the
    // file, then replica B. Manifest answers are far smaller than that.
    let cut = 5u64 << 20;
    let relay = killing_relay(a.addr.clone(), a.child.id(), cut);
    let b_url = format!("http://{}", b.addr);
    for url in [&relay, &b_url] {
        common::zfs::ok(&pool.imgadm(&["sources", "-a", url, "-f"]));
    }
    let out = common::zfs::ok(&pool.imgadm(&["import", &uuid]));
    assert!(out.contains(&format!("from \"{relay}\"")), "{out}");
    let resumed = out
        .lines()
        .find(|l| l.starts_with(&format!("Resumed {uuid} from \"{b_url}\" at byte ")))
        .unwrap_or_else(|| panic!("no resume by B: {out}"));
    let at: u64 = resumed
        .rsplit(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .expect("offset");
    assert!(at > 0 && at <= cut, "resumed at {at}");
    assert!(out.contains(&format!("Imported image {uuid}")), "{out}");
    // Replica A is really gone.
    assert!(
        std::net::TcpStream::connect(&a.addr).is_err(),
        "A still answers"
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
    assert!(!datasets.contains("-partial"), "{datasets}");
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Not a pass/fail test: the S3 backend's numbers next to the disk
/// backend's, same run, same machine. Prints download throughput of a
/// 64 MiB file (median of 5) and `GET /images` latency over 100 images
/// (median and p99 of 300 sequential requests). Run with
/// `cargo test -p imgapid --test replicas -- --ignored --nocapture bench`.
#[test]
#[ignore]
fn bench_s3_next_to_disk() {
    let Some(g) = cluster() else { return };
    let disk = Server::start("");
    let s3 = g.replica(0);
    let big = payload(64 * 1024 * 1024, 1);
    let mut report = Vec::new();
    for (name, s) in [("disk", &disk), ("s3", &s3)] {
        for i in 0..100 {
            let small = payload(2000, i as u8);
            publish(s, &manifest(&new_uuid(), &format!("img{i}"), "1.0"), &small);
        }
        let uuid = new_uuid();
        publish(s, &manifest(&uuid, "big", "1.0"), &big);
        let mut lat = Vec::new();
        for _ in 0..300 {
            let t = std::time::Instant::now();
            let r = get(&s.url("/images"));
            lat.push(t.elapsed().as_secs_f64() * 1000.0);
            assert_eq!(r.status, 200);
        }
        let mut mibs = Vec::new();
        for _ in 0..5 {
            let t = std::time::Instant::now();
            let resp = ureq::get(&s.url(&format!("/images/{uuid}/file")))
                .call()
                .expect("download");
            let n = std::io::copy(&mut resp.into_reader(), &mut std::io::sink()).expect("read");
            assert_eq!(n, big.len() as u64);
            mibs.push(n as f64 / 1048576.0 / t.elapsed().as_secs_f64());
        }
        let mut sorted = lat.clone();
        sorted.sort_by(f64::total_cmp);
        let p99 = sorted[sorted.len() * 99 / 100];
        report.push(format!(
            "{name}: download {:.0} MiB/s (median of 5); GET /images p50 {:.2} ms, p99 {:.2} ms",
            median(mibs),
            median(lat),
            p99
        ));
    }
    for l in report {
        println!("BENCH {l}");
    }
}
