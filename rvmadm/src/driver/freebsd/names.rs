//! Host-side interface names for a VM's epairs.
//!
//! FreeBSD interface names hold at most 15 characters (IFNAMSIZ 16), far less
//! than a UUID, and every epair end lives on the host until it is moved into
//! the jail, so names must be short, unique per VM and NIC, and derivable
//! again at stop time without stored state. A name is `vj` + ten base-32
//! characters of SHA-1(uuid) + `a` (host end) or `b` (jail end) + the NIC
//! index: 50 hash bits make a collision between two VMs on one host
//! vanishingly unlikely, and if one ever happened the rename fails with
//! "file exists" and the start is rolled back rather than sharing a port.
//! The `vj` prefix is not a FreeBSD driver name, so no cloner claims it.

use sha1::{Digest, Sha1};
use uuid::Uuid;

/// IFNAMSIZ minus the terminating NUL.
pub const MAX_IFNAME: usize = 15;

/// NIC indexes 0–99 keep names within [`MAX_IFNAME`].
pub const MAX_NICS: usize = 100;

const ALPHABET: &[u8; 32] = b"0123456789abcdefghijklmnopqrstuv";

/// The ten-character per-VM tag shared by all of its interface names.
pub fn vm_tag(uuid: &Uuid) -> String {
    let digest = Sha1::digest(uuid.as_bytes());
    let mut bits: u64 = 0;
    for b in digest.iter().take(8) {
        bits = (bits << 8) | u64::from(*b);
    }
    (0..10)
        .map(|i| ALPHABET[((bits >> (i * 5)) & 31) as usize] as char)
        .collect()
}

/// The host end of NIC `index` (stays on the host, joins the bridge).
pub fn host_end(uuid: &Uuid, index: usize) -> String {
    format!("vj{}a{index}", vm_tag(uuid))
}

/// The jail end of NIC `index` before it is moved and renamed inside the jail.
pub fn jail_end(uuid: &Uuid, index: usize) -> String {
    format!("vj{}b{index}", vm_tag(uuid))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn ten_thousand_uuids_give_unique_short_names() {
        let mut seen = HashSet::new();
        for _ in 0..10_000 {
            let u = Uuid::new_v4();
            for idx in [0, 1, MAX_NICS - 1] {
                for name in [host_end(&u, idx), jail_end(&u, idx)] {
                    assert!(name.len() <= MAX_IFNAME, "{name}");
                    assert!(name.bytes().all(|b| b.is_ascii_alphanumeric()));
                    assert!(seen.insert(name.clone()), "collision on {name}");
                }
            }
        }
        assert_eq!(seen.len(), 60_000);
    }

    #[test]
    fn sequential_uuids_do_not_collide_either() {
        let mut seen = HashSet::new();
        for n in 0..10_000u128 {
            let u = Uuid::from_u128(n);
            assert!(seen.insert(host_end(&u, 0)));
        }
    }

    #[test]
    fn names_are_stable() {
        let u = Uuid::parse_str("6b8b4567-327b-4c4e-8d8e-1b2c3d4e5f60").unwrap();
        assert_eq!(host_end(&u, 3), host_end(&u, 3));
        assert_eq!(host_end(&u, 3).len(), 14);
        assert_ne!(host_end(&u, 1), jail_end(&u, 1));
    }
}
