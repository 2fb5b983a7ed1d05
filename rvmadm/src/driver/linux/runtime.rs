//! Invoking the OCI runtime (runc by default, any OCI runtime by config).
//!
//! Builds the runtime's argv vectors (always with `--root` so vmadm's
//! containers live apart from anyone else's; a detached start is run by the
//! driver through [`crate::exec::CommandRunner::run_logged`], its output going
//! to the jail's console log), and checks before a start that the
//! configured runtime can work on this host: crun refuses hosts with hybrid
//! cgroups whose cgroup2 mount has controllers, which is said plainly instead
//! of letting every start fail with crun's own message.

use super::bundle::HostCaps;
use crate::driver::{DriverError, DriverResult};
use crate::exec::Argv;
use std::path::{Path, PathBuf};

/// The configured runtime binary and its state directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Runtime {
    pub program: String,
    pub root: PathBuf,
}

impl Runtime {
    fn argv(&self, rest: &[&str]) -> Argv {
        let root = self.root.to_string_lossy().into_owned();
        let mut v = vec![self.program.clone(), "--root".into(), root];
        v.extend(rest.iter().map(|s| s.to_string()));
        Argv(v)
    }

    /// `run --detach`: creates and starts the container in one call.
    pub fn run_detached(&self, id: &str, bundle: &Path, pid_file: &Path) -> Argv {
        let b = bundle.to_string_lossy();
        let p = pid_file.to_string_lossy();
        self.argv(&["run", "--detach", "--bundle", &b, "--pid-file", &p, id])
    }

    pub fn delete(&self, id: &str, force: bool) -> Argv {
        if force {
            self.argv(&["delete", "--force", id])
        } else {
            self.argv(&["delete", id])
        }
    }

    /// `update --resources -`: new limits as JSON on stdin.
    pub fn update(&self, id: &str) -> Argv {
        self.argv(&["update", "--resources", "-", id])
    }

    /// `exec`, with a pseudo-terminal when `tty`.
    pub fn exec(&self, id: &str, tty: bool, cmd: &[String]) -> Argv {
        let mut v: Vec<&str> = vec!["exec"];
        if tty {
            v.push("--tty");
        }
        v.push(id);
        let mut argv = self.argv(&v);
        argv.0.extend(cmd.iter().cloned());
        argv
    }

    /// The runtime's own state directory of a container (exists from
    /// create until delete).
    pub fn state_dir(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }

    /// True for crun, whatever path it was configured by.
    pub fn is_crun(&self) -> bool {
        Path::new(&self.program)
            .file_name()
            .map(|n| n.to_string_lossy().starts_with("crun"))
            .unwrap_or(false)
    }
}

/// How cgroups are mounted on this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CgroupMode {
    /// cgroup2 only.
    Unified,
    /// v1 controllers plus a cgroup2 mount; `v2_controllers` lists what the
    /// cgroup2 side holds.
    Hybrid { v2_controllers: Vec<String> },
    /// v1 only.
    Legacy,
}

/// Reads the cgroup layout below `root` (normally `/sys/fs/cgroup`).
pub fn cgroup_mode(root: &Path) -> CgroupMode {
    let read = |p: PathBuf| std::fs::read_to_string(p).ok();
    if root.join("cgroup.controllers").exists() {
        return CgroupMode::Unified;
    }
    match read(root.join("unified/cgroup.controllers")) {
        Some(text) => CgroupMode::Hybrid {
            v2_controllers: text.split_whitespace().map(str::to_string).collect(),
        },
        None => CgroupMode::Legacy,
    }
}

/// Where `program` would be run from: itself when it holds a `/`, else the
/// first match on `$PATH`.
pub fn locate(program: &str) -> Option<PathBuf> {
    if program.contains('/') {
        let p = PathBuf::from(program);
        return p.is_file().then_some(p);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

/// Checks that `rt` can run containers here and what the host enforces.
pub fn probe(rt: &Runtime, cgroup_root: &Path) -> DriverResult<HostCaps> {
    if locate(&rt.program).is_none() {
        return Err(DriverError::NotSupported(format!(
            "OCI runtime {:?} (not found; install runc or set runtime in vmadm.toml)",
            rt.program
        )));
    }
    let mode = cgroup_mode(cgroup_root);
    if let CgroupMode::Hybrid { v2_controllers } = &mode {
        if rt.is_crun() && !v2_controllers.is_empty() {
            return Err(DriverError::NotSupported(format!(
                "runtime {:?} on this host: it refuses hybrid cgroup hosts whose cgroup2 mount \
                 holds controllers ({}); set runtime = \"runc\" in vmadm.toml",
                rt.program,
                v2_controllers.join(" ")
            )));
        }
    }
    let swap_accounting = match mode {
        CgroupMode::Unified => true,
        _ => cgroup_root
            .join("memory/memory.memsw.limit_in_bytes")
            .exists(),
    };
    Ok(HostCaps {
        swap_accounting,
        memlock_hard: super::sys::memlock_ceiling(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rt(p: &str) -> Runtime {
        Runtime {
            program: p.into(),
            root: "/run/vmadm/runc".into(),
        }
    }

    #[test]
    fn argv_always_carries_root() {
        let r = rt("runc");
        assert_eq!(
            r.run_detached("id1", Path::new("/b"), Path::new("/b/init.pid"))
                .to_string(),
            "runc --root /run/vmadm/runc run --detach --bundle /b --pid-file /b/init.pid id1"
        );
        assert_eq!(
            r.exec("id1", true, &["/bin/sh".into(), "-l".into()])
                .to_string(),
            "runc --root /run/vmadm/runc exec --tty id1 /bin/sh -l"
        );
        assert_eq!(
            r.delete("id1", true).to_string(),
            "runc --root /run/vmadm/runc delete --force id1"
        );
    }

    #[test]
    fn crun_is_refused_on_hybrid_hosts_with_v2_controllers() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("unified")).unwrap();
        std::fs::create_dir_all(tmp.path().join("memory")).unwrap();
        std::fs::write(tmp.path().join("unified/cgroup.controllers"), "hugetlb\n").unwrap();
        let fake_crun = tmp.path().join("crun");
        std::fs::write(&fake_crun, "").unwrap();
        let e = probe(&rt(&fake_crun.to_string_lossy()), tmp.path()).unwrap_err();
        assert!(e.to_string().contains("hybrid"), "{e}");
        let fake_runc = tmp.path().join("runc");
        std::fs::write(&fake_runc, "").unwrap();
        let runc = rt(&fake_runc.to_string_lossy());
        let caps = probe(&runc, tmp.path()).unwrap();
        assert!(!caps.swap_accounting);
        std::fs::write(tmp.path().join("unified/cgroup.controllers"), "").unwrap();
        assert!(probe(&rt(&fake_crun.to_string_lossy()), tmp.path()).is_ok());
        std::fs::write(tmp.path().join("memory/memory.memsw.limit_in_bytes"), "1").unwrap();
        assert!(probe(&runc, tmp.path()).unwrap().swap_accounting);
        let e = probe(&rt("no-such-runtime-xyz"), tmp.path()).unwrap_err();
        assert!(e.to_string().contains("not found"), "{e}");
        assert!(locate("sh").is_some());
    }

    #[test]
    fn cgroup_modes() {
        let tmp = tempfile::tempdir().unwrap();
        assert_eq!(cgroup_mode(tmp.path()), CgroupMode::Legacy);
        std::fs::write(tmp.path().join("cgroup.controllers"), "cpu memory").unwrap();
        assert_eq!(cgroup_mode(tmp.path()), CgroupMode::Unified);
    }
}
