//! Test environment: a temporary root (config, state, images, run dirs), a
//! real ZFS pool on a sparse file (zfs-fuse here, any ZFS elsewhere), and
//! helpers to run the real binaries against it.
//!
//! Under `CI=true` a missing capability (no zfs daemon, not root) fails the
//! test instead of skipping it.

#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

/// Set when the test must not run here; panics under CI.
pub fn require_zfs() -> bool {
    let ok = Command::new("zpool")
        .arg("list")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!(
                "ZFS is not available (zpool list failed) and CI=true: run scripts/install-deps.sh"
            );
        }
        eprintln!("SKIPPED: ZFS not available");
    }
    ok
}

/// Returns the binary path cargo built for this test run.
pub fn bin(name: &str) -> PathBuf {
    match name {
        "vmadm" => PathBuf::from(env!("CARGO_BIN_EXE_vmadm")),
        "imgadm" => PathBuf::from(env!("CARGO_BIN_EXE_imgadm")),
        other => panic!("unknown binary {other}"),
    }
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

pub struct Env {
    pub dir: tempfile::TempDir,
    pub pool: String,
    pub pool_file: PathBuf,
    pub config: PathBuf,
    /// Extra TOML appended to the config (networks, driver …).
    pub extra_config: String,
}

impl Env {
    /// A fresh root and pool with the driver set to `none`.
    pub fn new() -> Option<Env> {
        Self::with_config("driver = \"none\"\n")
    }

    /// A fresh root and pool; `extra` is appended to the generated vmadm.toml.
    pub fn with_config(extra: &str) -> Option<Env> {
        if !require_zfs() {
            return None;
        }
        let dir = tempfile::Builder::new()
            .prefix("rvmadm-it-")
            .tempdir()
            .expect("tempdir");
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let pool = format!("rvt{}x{}", std::process::id(), n);
        let pool_file = dir.path().join("pool.img");
        let f = std::fs::File::create(&pool_file).expect("pool file");
        f.set_len(512 << 20).expect("size pool file");
        drop(f);
        let mountpoint = dir.path().join("mnt");
        let st = Command::new("zpool")
            .args(["create", "-f", "-m"])
            .arg(&mountpoint)
            .arg(&pool)
            .arg(&pool_file)
            .output()
            .expect("zpool create");
        assert!(
            st.status.success(),
            "zpool create failed: {}",
            String::from_utf8_lossy(&st.stderr)
        );
        let root = dir.path();
        let config = root.join("vmadm.toml");
        let text = format!(
            "pool = \"{pool}\"\nstate_dir = \"{s}\"\nimage_dir = \"{i}\"\nrun_dir = \"{r}\"\nruntime_root = \"{rr}\"\n{extra}",
            s = root.join("state").display(),
            i = root.join("images").display(),
            r = root.join("run").display(),
            rr = root.join("run/runc").display(),
        );
        std::fs::write(&config, text).expect("write config");
        Some(Env {
            dir,
            pool,
            pool_file,
            config,
            extra_config: extra.to_string(),
        })
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// Runs a binary with this environment's config and optional stdin.
    pub fn run(&self, binary: &str, args: &[&str], stdin: Option<&[u8]>) -> Output {
        let mut cmd = Command::new(bin(binary));
        cmd.args(args)
            .env("VMADM_CONFIG", &self.config)
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            });
        let mut child = cmd.spawn().expect("spawn binary");
        if let (Some(data), Some(mut pipe)) = (stdin, child.stdin.take()) {
            let _ = pipe.write_all(data);
        }
        child.wait_with_output().expect("wait binary")
    }

    pub fn vmadm(&self, args: &[&str]) -> Output {
        self.run("vmadm", args, None)
    }

    pub fn vmadm_in(&self, args: &[&str], stdin: &str) -> Output {
        self.run("vmadm", args, Some(stdin.as_bytes()))
    }

    pub fn imgadm(&self, args: &[&str]) -> Output {
        self.run("imgadm", args, None)
    }

    /// Creates `<pool>/<uuid>` with a tiny tree under `root/` (the SmartOS
    /// zone layout) and an `@final` snapshot, the shape of an installed
    /// image, directly with zfs (no imgadm).
    pub fn fake_image_dataset(&self, uuid: &str) {
        let ds = format!("{}/{}", self.pool, uuid);
        zfs(&["create", &ds]);
        let root = self.mountpoint(&ds).join("root");
        for d in ["bin", "etc", "sbin", "tmp", "root"] {
            std::fs::create_dir_all(root.join(d)).expect("mkdir in image");
        }
        std::fs::write(root.join("etc/motd"), "test image\n").expect("motd");
        zfs(&["snapshot", &format!("{ds}@final")]);
    }

    pub fn mountpoint(&self, dataset: &str) -> PathBuf {
        PathBuf::from(zfs(&["get", "-H", "-o", "value", "mountpoint", dataset]).trim())
    }

    /// Names of all datasets in the pool (filesystems and snapshots).
    pub fn datasets(&self) -> Vec<String> {
        zfs(&["list", "-H", "-r", "-t", "all", "-o", "name", &self.pool])
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Every file below the state dir but lock files, the intent slot and
    /// the derived cache, for "nothing changed" checks.
    pub fn state_files(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        walk(&self.root().join("state"), &mut out);
        out.retain(|p| p.extension().is_none_or(|e| e != "lock"));
        // Derived files (the list index, the cached pool mountpoint) come
        // and go with reads; they are not state.
        let cache = self.root().join("state/cache");
        out.retain(|p| !p.starts_with(&cache));
        // The intent slot of create and delete is made by the first of them
        // and names the last one; like the lock files it coordinates, it
        // holds no VM.
        let intent = self.root().join("state/intent");
        out.retain(|p| *p != intent);
        out.sort();
        out
    }
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else {
                out.push(p);
            }
        }
    }
}

impl Drop for Env {
    /// Destroys the pool. zfs-fuse answers "busy" for a moment after heavy
    /// use, so retry; a leaked pool keeps ~40 daemon threads alive.
    fn drop(&mut self) {
        let mut last = String::new();
        for attempt in 0..20 {
            match Command::new("zpool")
                .args(["destroy", "-f", &self.pool])
                .output()
            {
                Ok(o) if o.status.success() => return,
                Ok(o) => last = String::from_utf8_lossy(&o.stderr).into_owned(),
                Err(e) => last = e.to_string(),
            }
            std::thread::sleep(std::time::Duration::from_millis(50 * (attempt + 1)));
        }
        eprintln!("warning: could not destroy test pool {}: {last}", self.pool);
    }
}

/// Runs `zfs` and returns stdout; panics on failure.
pub fn zfs(args: &[&str]) -> String {
    let out = Command::new("zfs").args(args).output().expect("zfs");
    assert!(
        out.status.success(),
        "zfs {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts the exit code, showing both streams on mismatch.
#[track_caller]
pub fn assert_exit(o: &Output, code: i32) {
    assert_eq!(
        o.status.code(),
        Some(code),
        "unexpected exit\nstdout: {}\nstderr: {}",
        stdout(o),
        stderr(o)
    );
}
