//! Deterministic names and paths for one jail's host-side objects.
//!
//! Everything the driver creates for a jail (runtime container id, network
//! namespace, host veth ends, cgroup, bundle directory) is named from the
//! jail's UUID alone, so `cleanup` can find and remove it after a crash
//! without any record of what was made.

use sha1::{Digest, Sha1};
use std::path::{Path, PathBuf};
use uuid::Uuid;

/// Where the kernel keeps named network namespaces (`ip netns` convention).
pub const NETNS_DIR: &str = "/run/netns";

/// Parent of every jail's cgroup in each hierarchy.
pub const CGROUP_PARENT: &str = "rvmadm";

/// The OCI runtime's container id: the UUID itself.
pub fn container_id(uuid: &Uuid) -> String {
    uuid.to_string()
}

/// The named network namespace of a jail (`ip netns` name).
pub fn netns_name(uuid: &Uuid) -> String {
    format!("vmadm-{uuid}")
}

pub fn netns_path(uuid: &Uuid) -> PathBuf {
    Path::new(NETNS_DIR).join(netns_name(uuid))
}

/// Host end of NIC `index`'s veth pair: `vm` + 11 hex digits of the SHA-1
/// of the whole UUID + the index. At most 15 characters (IFNAMSIZ - 1) for
/// up to 100 NICs. A hash rather than a UUID prefix, because payloads may
/// choose their UUID: two UUIDs sharing a prefix get unrelated names. The
/// name is only a convenience; what marks a link as this jail's is its
/// alias ([`link_alias`]), so even a hash collision costs a failed start,
/// never another jail's link.
pub fn host_veth(uuid: &Uuid, index: usize) -> String {
    let digest = Sha1::digest(uuid.as_bytes());
    let hex = hex::encode(&digest[..6]);
    format!("vm{}{}", &hex[..11], index)
}

/// The alias every host-side link of a jail carries: the full UUID, which
/// teardown matches exactly before deleting a link.
pub fn link_alias(uuid: &Uuid) -> String {
    format!("vmadm:{uuid}")
}

/// The cgroup path handed to the runtime (below each hierarchy's root).
pub fn cgroup_path(uuid: &Uuid) -> String {
    format!("/{CGROUP_PARENT}/{uuid}")
}

/// Per-jail files under `run_dir`: the OCI bundle and our boot record.
#[derive(Debug, Clone)]
pub struct JailDir {
    pub dir: PathBuf,
}

impl JailDir {
    pub fn new(run_dir: &Path, uuid: &Uuid) -> JailDir {
        JailDir {
            dir: run_dir.join("linux").join(uuid.to_string()),
        }
    }
    /// The bundle directory (holds `config.json`).
    pub fn bundle(&self) -> &Path {
        &self.dir
    }
    pub fn config_json(&self) -> PathBuf {
        self.dir.join("config.json")
    }
    pub fn resolv_conf(&self) -> PathBuf {
        self.dir.join("resolv.conf")
    }
    pub fn hosts(&self) -> PathBuf {
        self.dir.join("hosts")
    }
    pub fn hostname(&self) -> PathBuf {
        self.dir.join("hostname")
    }
    /// Written by the runtime (`--pid-file`).
    pub fn pid_file(&self) -> PathBuf {
        self.dir.join("init.pid")
    }
    /// `<pid> <starttime>`: written last by a successful start; its presence
    /// is what makes a jail count as booted.
    pub fn boot_record(&self) -> PathBuf {
        self.dir.join("boot")
    }
    /// stdout/stderr of the jail's init (and the runtime's own messages),
    /// capped by the console log keeper (`console_log`); the older half
    /// is `console.log.1`.
    pub fn console_log(&self) -> PathBuf {
        self.dir.join("console.log")
    }
    /// Where a start stages its bind mounts' sources for the runtime (see
    /// `binds`); empty again once the runtime has made its mounts.
    pub fn binds(&self) -> PathBuf {
        self.dir.join("binds")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_veth_names_fit_ifnamsiz_and_are_stable() {
        let u = Uuid::parse_str("6b8b4567-327b-4c4e-8d8e-1b2c3d4e5f60").unwrap();
        assert_eq!(host_veth(&u, 0), host_veth(&u, 0));
        assert!(host_veth(&u, 99).len() <= 15);
        assert!(host_veth(&u, 0).starts_with("vm"));
        assert_ne!(host_veth(&u, 1), host_veth(&u, 0));
        // UUIDs that share their first 12 hex digits get unrelated names.
        let v = Uuid::parse_str("6b8b4567-327b-4c4e-8d8e-000000000001").unwrap();
        assert_ne!(host_veth(&u, 0)[..13], host_veth(&v, 0)[..13]);
        assert_eq!(link_alias(&u), "vmadm:6b8b4567-327b-4c4e-8d8e-1b2c3d4e5f60");
    }

    #[test]
    fn paths_derive_from_uuid() {
        let u = Uuid::parse_str("6b8b4567-327b-4c4e-8d8e-1b2c3d4e5f60").unwrap();
        let d = JailDir::new(Path::new("/run/vmadm"), &u);
        assert_eq!(
            d.config_json(),
            PathBuf::from("/run/vmadm/linux/6b8b4567-327b-4c4e-8d8e-1b2c3d4e5f60/config.json")
        );
        assert_eq!(
            netns_path(&u),
            PathBuf::from("/run/netns/vmadm-6b8b4567-327b-4c4e-8d8e-1b2c3d4e5f60")
        );
        assert_eq!(
            cgroup_path(&u),
            "/rvmadm/6b8b4567-327b-4c4e-8d8e-1b2c3d4e5f60"
        );
    }
}
