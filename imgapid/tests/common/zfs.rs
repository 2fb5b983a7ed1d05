//! A real ZFS pool (zfs-fuse, file-backed) and our `imgadm` binary, for
//! the tests that import from imgapid.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

pub fn zfs_ok() -> bool {
    let ok = Command::new("zpool")
        .arg("list")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "ZFS is not available and CI=true: run scripts/install-deps.sh"
        );
        eprintln!("SKIPPED: ZFS not available");
    }
    ok
}

/// The imgadm binary next to imgapid. imgapid does not depend on the rvmadm
/// crate (a dev-dependency would build its library, not its binaries), so
/// ask cargo for the binary once per run: a no-op when it is fresh, and
/// never a stale one.
pub fn imgadm_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(build_imgadm).clone()
}

fn build_imgadm() -> PathBuf {
    let dir = Path::new(env!("CARGO_BIN_EXE_imgapid"))
        .parent()
        .expect("bin dir")
        .to_path_buf();
    let mut build = Command::new(env!("CARGO"));
    build.args(["build", "--quiet", "-p", "rvmadm", "--bin", "imgadm"]);
    if dir.file_name().is_some_and(|n| n == "release") {
        build.arg("--release");
    }
    let st = build.status().expect("cargo build imgadm");
    assert!(st.success(), "building imgadm failed");
    let bin = dir.join("imgadm");
    assert!(bin.exists(), "cargo built no {}", bin.display());
    bin
}

pub struct Pool {
    pub name: String,
    _dir: tempfile::TempDir,
    pub config: PathBuf,
    pub root: PathBuf,
}

impl Pool {
    pub fn new() -> Pool {
        let dir = tempfile::tempdir().expect("tempdir");
        let name = format!("imgc{}", std::process::id());
        let file = dir.path().join("pool.img");
        std::fs::File::create(&file)
            .and_then(|f| f.set_len(512 << 20))
            .expect("pool file");
        let out = Command::new("zpool")
            .args(["create", "-f", "-m"])
            .arg(dir.path().join("mnt"))
            .arg(&name)
            .arg(&file)
            .output()
            .expect("zpool create");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let config = dir.path().join("vmadm.toml");
        std::fs::write(
            &config,
            format!(
                "pool = \"{name}\"\nstate_dir = \"{0}/state\"\nimage_dir = \"{0}/images\"\ndriver = \"none\"\n",
                dir.path().display()
            ),
        )
        .expect("config");
        Pool {
            name,
            root: dir.path().to_path_buf(),
            _dir: dir,
            config,
        }
    }

    pub fn imgadm(&self, args: &[&str]) -> Output {
        Command::new(imgadm_bin())
            .args(args)
            .env("VMADM_CONFIG", &self.config)
            .env_remove("IMGAPI_TOKEN")
            .output()
            .expect("run imgadm")
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        for attempt in 0..20u64 {
            let ok = Command::new("zpool")
                .args(["destroy", "-f", &self.name])
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50 * (attempt + 1)));
        }
    }
}

#[track_caller]
pub fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}
