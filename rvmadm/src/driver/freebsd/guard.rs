//! What the FreeBSD driver refuses to plan.
//!
//! `VmSpec` has been validated by the property table, but the driver is the
//! last line before values reach jail(8), ifconfig(8), route(8) and files in
//! the tenant's root, so it re-checks every user value it uses against the
//! strict shape that the command expects. Values it does not use (alias,
//! metadata, tags) never reach a plan at all. A value that fails here is
//! refused with the field name instead of being passed on.

use super::names::{MAX_IFNAME, MAX_NICS};
use super::plan::PlanError;
use crate::config::Config;
use crate::spec::{valid_hostname, Nic, VmSpec};
use std::net::IpAddr;
use std::path::{Component, Path};

/// Checks every value a start plan uses.
pub fn check_vm(vm: &VmSpec, cfg: &Config) -> Result<(), PlanError> {
    check_paths(vm)?;
    // The zonepath also ends up inside jail(8) parameter values
    // (`exec.consolelog=`), which jail(8) may expand: plain names only.
    let zp = vm.zonepath.to_string_lossy();
    if !zp
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"/._:-".contains(&b))
    {
        return Err(PlanError::refused(
            "zonepath",
            zp.to_string(),
            "must be made of letters, digits and /._:- to be started",
        ));
    }
    if cfg.devfs_ruleset == 0 {
        return Err(PlanError::refused(
            "devfs_ruleset",
            "0",
            "0 means no ruleset, which shows the jail every host device; use vmadm's \
             ruleset (10, dist/freebsd/devfs.rules)",
        ));
    }
    check_hostname(vm)?;
    check_dns_domain(vm)?;
    if vm.nics.len() > MAX_NICS {
        return Err(PlanError::Unsupported(format!(
            "at most {MAX_NICS} nics per VM, got {}",
            vm.nics.len()
        )));
    }
    let mut seen = std::collections::HashSet::new();
    for nic in &vm.nics {
        check_nic(nic, cfg)?;
        if !seen.insert(nic.interface.as_str()) {
            return Err(PlanError::refused(
                "nics.interface",
                nic.interface.clone(),
                "is used by two nics",
            ));
        }
    }
    for (dst, gw) in &vm.routes {
        route_dest(dst)?;
        gw.parse::<IpAddr>().map_err(|_| {
            PlanError::refused("routes", gw.clone(), "gateway must be an IP address")
        })?;
    }
    if !vm.filesystems.is_empty() {
        return Err(PlanError::Unsupported(
            "the FreeBSD driver does not mount `filesystems` yet".into(),
        ));
    }
    if let Some(init) = &vm.init_name {
        check_init(init)?;
    }
    Ok(())
}

/// The host name both jails get.
pub fn check_hostname(vm: &VmSpec) -> Result<(), PlanError> {
    let host = vm.effective_hostname();
    if valid_hostname(&host) {
        Ok(())
    } else {
        Err(PlanError::refused(
            "hostname",
            host,
            "must be an RFC 1123 host name",
        ))
    }
}

/// The search domain written into resolv.conf (only used with resolvers).
pub fn check_dns_domain(vm: &VmSpec) -> Result<(), PlanError> {
    if vm.resolvers.is_empty() || valid_hostname(&vm.dns_domain) {
        Ok(())
    } else {
        Err(PlanError::refused(
            "dns_domain",
            vm.dns_domain.clone(),
            "must be a DNS domain name",
        ))
    }
}

/// The checks teardown plans need: they only use names and paths.
pub fn check_paths(vm: &VmSpec) -> Result<(), PlanError> {
    let zp = &vm.zonepath;
    let text = zp
        .to_str()
        .ok_or_else(|| PlanError::refused("zonepath", zp.to_string_lossy(), "must be UTF-8"))?;
    let normal = zp.is_absolute()
        && zp
            .components()
            .skip(1)
            .all(|c| matches!(c, Component::Normal(_)))
        && zp.components().count() > 1
        && !text.contains(['\n', '\0']);
    if !normal {
        return Err(PlanError::refused(
            "zonepath",
            text,
            "must be an absolute path without `..`",
        ));
    }
    if !crate::zfs::valid_name(&vm.zfs_filesystem) {
        return Err(PlanError::refused(
            "zfs_filesystem",
            vm.zfs_filesystem.clone(),
            "must be a ZFS dataset name",
        ));
    }
    Ok(())
}

/// Interface names inside the jail: letters then a unit number (`net0`,
/// `eth1`), short enough for IFNAMSIZ.
pub fn valid_ifname(name: &str) -> bool {
    let letters = name.trim_end_matches(|c: char| c.is_ascii_digit());
    name.len() <= MAX_IFNAME
        && !letters.is_empty()
        && letters.len() < name.len()
        && letters.bytes().all(|b| b.is_ascii_lowercase())
}

fn valid_mac(mac: &str) -> bool {
    let parts: Vec<&str> = mac.split(':').collect();
    parts.len() == 6
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn check_nic(nic: &Nic, cfg: &Config) -> Result<(), PlanError> {
    if !valid_ifname(&nic.interface) {
        return Err(PlanError::refused(
            "nics.interface",
            nic.interface.clone(),
            "must be lowercase letters then digits, at most 15 characters",
        ));
    }
    // The driver's own temporary names inside the jail use these prefixes.
    if ["lo", "vlan", "epair", "vj"]
        .iter()
        .any(|p| nic.interface.starts_with(p))
    {
        return Err(PlanError::refused(
            "nics.interface",
            nic.interface.clone(),
            "must not start with lo, vlan, epair or vj (used by the system)",
        ));
    }
    if !valid_mac(&nic.mac) {
        return Err(PlanError::refused(
            "nics.mac",
            nic.mac.clone(),
            "must be aa:bb:cc:dd:ee:ff",
        ));
    }
    if nic.vlan_id > 4094 {
        return Err(PlanError::refused(
            "nics.vlan_id",
            nic.vlan_id.to_string(),
            "must be 0 (untagged) to 4094",
        ));
    }
    if let Some(mtu) = nic.mtu {
        if !(576..=9000).contains(&mtu) {
            return Err(PlanError::refused(
                "nics.mtu",
                mtu.to_string(),
                "must be 576 to 9000",
            ));
        }
    }
    bridge_for(nic, cfg)?;
    Ok(())
}

/// The bridge a NIC joins: `[networks]` maps its nic_tag.
pub fn bridge_for(nic: &Nic, cfg: &Config) -> Result<String, PlanError> {
    cfg.networks.get(&nic.nic_tag).cloned().ok_or_else(|| {
        PlanError::refused(
            "nics.nic_tag",
            nic.nic_tag.clone(),
            "has no bridge: add it under [networks] in vmadm.toml",
        )
    })
}

/// A route destination: an address (host route) or `addr/prefix` (network).
/// Returns whether it is IPv6 and whether it is a network.
pub fn route_dest(dst: &str) -> Result<(bool, bool), PlanError> {
    let bad = || PlanError::refused("routes", dst, "destination must be an IP address or CIDR");
    match dst.split_once('/') {
        Some((a, p)) => {
            let addr: IpAddr = a.parse().map_err(|_| bad())?;
            let max = if addr.is_ipv4() { 32 } else { 128 };
            let ok = !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit());
            let prefix: u8 = if ok {
                p.parse().map_err(|_| bad())?
            } else {
                return Err(bad());
            };
            if prefix > max {
                return Err(bad());
            }
            Ok((addr.is_ipv6(), true))
        }
        None => {
            let addr: IpAddr = dst.parse().map_err(|_| bad())?;
            Ok((addr.is_ipv6(), false))
        }
    }
}

/// `init_name` ends up in jail(8)'s `exec.start`, which jail(8) runs with
/// `sh -c`; only a plain absolute path is allowed there.
pub fn check_init(init: &str) -> Result<(), PlanError> {
    let ok = init.starts_with('/')
        && init.len() <= 255
        && init
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-".contains(&b))
        && Path::new(init)
            .components()
            .all(|c| !matches!(c, Component::ParentDir));
    if ok {
        Ok(())
    } else {
        Err(PlanError::refused(
            "init_name",
            init,
            "must be an absolute path of [A-Za-z0-9/._-]",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interface_names() {
        assert!(valid_ifname("net0"));
        assert!(valid_ifname("eth12"));
        for bad in [
            "net",
            "0",
            "Net0",
            "net0;x",
            "net 0",
            "netnetnetnetnet0",
            "-n0",
            "",
        ] {
            assert!(!valid_ifname(bad), "{bad:?}");
        }
    }

    #[test]
    fn routes_and_init() {
        assert_eq!(route_dest("10.0.0.0/8").unwrap(), (false, true));
        assert_eq!(route_dest("2001:db8::1").unwrap(), (true, false));
        for bad in [
            "-interface",
            "10.0.0.0/33",
            "10.0.0.0/",
            "$(id)",
            "10.0.0.0/+8",
        ] {
            assert!(route_dest(bad).is_err(), "{bad}");
        }
        assert!(check_init("/sbin/init").is_ok());
        assert!(check_init("/bin/sh -c x").is_err());
        assert!(check_init("/../x").is_err());
        assert!(check_init("init").is_err());
    }
}
