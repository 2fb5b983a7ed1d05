//! Fills an imgapid data directory directly through the storage layer, for
//! benchmarks: N small active images plus one large one whose file the
//! download benchmark fetches. Prints `UUID BLOB_PATH` of the large image.
//!
//! Usage: cargo run --release -p imgapid --example seed -- DATA_DIR COUNT FILE_MIB

use imgapid::store::{ImageRecord, LocalDisk, Storage, StoredBlob};
use rvmadm_manifest::{Compression, ImageFile, Manifest};
use serde_json::json;
use sha1::{Digest, Sha1};
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 4 {
        return Err("usage: seed DATA_DIR COUNT FILE_MIB".into());
    }
    let dir = PathBuf::from(&args[1]);
    let count: usize = args[2].parse()?;
    let mib: usize = args[3].parse()?;
    let disk = LocalDisk::open(&dir)?;
    let record = |i: usize,
                  file: Option<StoredBlob>|
     -> Result<ImageRecord, Box<dyn std::error::Error>> {
        let uuid = uuid::Uuid::new_v4();
        let day = i % 28 + 1;
        let secs = i % 86_400;
        let os = ["linux", "bsd", "bsd"][i % 3];
        let mut manifest: Manifest = serde_json::from_value(json!({
            "v": 2, "uuid": uuid.to_string(), "name": format!("image-{}", i % 100),
            "version": format!("1.{i}"), "type": "zone-dataset",
            "os": os,
            "description": format!("Benchmark image number {i}, a FreeBSD jail base with a few packages."),
            "published_at": format!("2024-01-{day:02}T{:02}:{:02}:{:02}.{:03}Z", secs / 3600, secs / 60 % 60, secs % 60, i % 1000),
            "requirements": {"networks": [{"name": "net0", "description": "public"}]},
            "users": [{"name": "root"}], "tags": {"role": "os", "n": i}
        }))?;
        let blob = file.unwrap_or_else(|| StoredBlob {
            key: format!("{uuid}-file-{}", "0".repeat(40)),
            size: 1000 + i as u64,
            sha1: "0".repeat(40),
            md5: "AAAAAAAAAAAAAAAAAAAAAA==".into(),
            mtime: 1_700_000_000,
            content_type: None,
        });
        manifest.files = vec![ImageFile {
            sha1: blob.sha1.clone(),
            size: blob.size,
            compression: Compression::Gzip,
            dataset_guid: None,
            extra: Default::default(),
        }];
        // Records carry the blob under their own uuid's key.
        let mut blob = blob;
        blob.key = format!("{uuid}-file-{}", blob.sha1);
        Ok(ImageRecord {
            manifest,
            activated: true,
            file: Some(blob),
            icon: None,
            expect: None,
        })
    };
    for i in 0..count {
        // Small images share no real blob: the list benchmark never reads files.
        let mut rec = record(i, None)?;
        rec.file = None;
        disk.put_record(&rec)?;
    }
    // The large image: a real blob with real digests.
    let mut data = vec![0u8; mib * 1024 * 1024];
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    for b in data.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    let sha1 = hex::encode(Sha1::digest(&data));
    let md5 = {
        use base64::Engine;
        use md5::Digest as _;
        base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(&data))
    };
    let blob = StoredBlob {
        key: String::new(),
        size: data.len() as u64,
        sha1,
        md5,
        mtime: 1_700_000_000,
        content_type: None,
    };
    let rec = record(count, Some(blob))?;
    let key = rec.file.as_ref().map(|b| b.key.clone()).ok_or("no blob")?;
    let mut up = disk.new_upload("seed")?;
    up.write_all(&data)?;
    up.commit(&key)?;
    disk.put_record(&rec)?;
    println!("{} {}", rec.manifest.uuid, disk.blob_path(&key)?.display());
    Ok(())
}
