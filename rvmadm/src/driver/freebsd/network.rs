//! Network plans: one epair per NIC, host end on the bridge of its nic_tag,
//! jail end moved into the outer jail's vnet and configured there.
//!
//! Host side (before the outer jail exists): create the epair under the
//! deterministic names from `names.rs`, describe it, set the MTU, join the
//! bridge, bring it up. Jail side (after): move the jail end into the vnet,
//! then — with `jexec <uuid> /sbin/ifconfig …`, i.e. the outer jail's own
//! binaries — rename it to the NIC's interface (net0 …), set the MAC, MTU and
//! addresses, bring up lo0, add the default route and static routes. A VLAN
//! NIC gets a vlan(4) interface on top of the jail end inside the vnet, so the
//! tagged frames leave through the bridge member and the tenant (which shares
//! the outer jail's stack but does not own it) cannot change the tag. The
//! tenant's resolv.conf is written from Rust. Teardown destroys the host end,
//! which takes the peer inside the jail with it.

use super::guard;
use super::layout;
use super::names;
use super::plan::{argv, Action, PlanError, Step};
use crate::config::Config;
use crate::exec::Argv;
use crate::spec::{NicAddr, VmSpec};
use std::net::IpAddr;

/// `jexec <outer> /sbin/ifconfig args…`: runs the outer jail's ifconfig, which
/// acts on the outer jail's vnet.
fn jifconfig(vm: &VmSpec, args: &[&str]) -> Argv {
    let outer = layout::outer(vm);
    let mut v = vec!["jexec", outer.as_str(), "/sbin/ifconfig"];
    v.extend_from_slice(args);
    argv(v)
}

fn jroute(vm: &VmSpec, args: &[&str]) -> Argv {
    let outer = layout::outer(vm);
    let mut v = vec!["jexec", outer.as_str(), "/sbin/route", "-n"];
    v.extend_from_slice(args);
    argv(v)
}

/// Host-side steps for every NIC, run before the outer jail is created.
pub fn host_side(vm: &VmSpec, cfg: &Config) -> Result<Vec<Step>, PlanError> {
    let mut steps = Vec::new();
    for (i, nic) in vm.nics.iter().enumerate() {
        let host = names::host_end(&vm.uuid, i);
        let jail = names::jail_end(&vm.uuid, i);
        let bridge = guard::bridge_for(nic, cfg)?;
        steps.push(
            Step::action(Action::CreateEpair {
                host: host.clone(),
                jail: jail.clone(),
            })
            .with_undo(argv(["ifconfig", &host, "destroy"])),
        );
        let description = format!("vmadm {} {}", vm.uuid, nic.interface);
        steps.push(Step::run(argv([
            "ifconfig",
            &host,
            "description",
            &description,
        ])));
        if let Some(mtu) = nic.mtu {
            let mtu = mtu.to_string();
            steps.push(Step::run(argv(["ifconfig", &host, "mtu", &mtu])));
            steps.push(Step::run(argv(["ifconfig", &jail, "mtu", &mtu])));
        }
        steps.push(Step::run_undo(
            argv(["ifconfig", &bridge, "addm", &host]),
            argv(["ifconfig", &bridge, "deletem", &host]),
        ));
        steps.push(Step::run(argv(["ifconfig", &host, "up"])));
    }
    Ok(steps)
}

/// Steps inside the outer jail's vnet, run once the outer jail exists.
pub fn jail_side(vm: &VmSpec) -> Vec<Step> {
    let outer = layout::outer(vm);
    let mut steps = Vec::new();
    for (i, nic) in vm.nics.iter().enumerate() {
        let jail = names::jail_end(&vm.uuid, i);
        let iface = nic.interface.as_str();
        steps.push(Step::run_undo(
            argv(["ifconfig", &jail, "vnet", &outer]),
            argv(["ifconfig", &jail, "-vnet", &outer]),
        ));
        let mtu = nic.mtu.map(|m| m.to_string());
        if nic.vlan_id == 0 {
            steps.push(Step::run_undo(
                jifconfig(vm, &[&jail, "name", iface]),
                jifconfig(vm, &[iface, "name", &jail]),
            ));
            steps.push(Step::run(jifconfig(vm, &[iface, "ether", &nic.mac])));
        } else {
            // The untagged end carries the MAC (vlan(4) inherits its parent's)
            // and must be up for tagged frames to flow.
            let temp = format!("vlan{i}");
            let vid = nic.vlan_id.to_string();
            steps.push(Step::run(jifconfig(vm, &[&jail, "ether", &nic.mac])));
            steps.push(Step::run(jifconfig(vm, &[&jail, "up"])));
            steps.push(Step::run_undo(
                jifconfig(vm, &[&temp, "create", "vlan", &vid, "vlandev", &jail]),
                jifconfig(vm, &[&temp, "destroy"]),
            ));
            steps.push(Step::run_undo(
                jifconfig(vm, &[&temp, "name", iface]),
                jifconfig(vm, &[iface, "name", &temp]),
            ));
        }
        if let Some(mtu) = &mtu {
            steps.push(Step::run(jifconfig(vm, &[iface, "mtu", mtu])));
        }
        steps.push(Step::run(jifconfig(vm, &[iface, "up"])));
        for addr in &nic.ips {
            match addr {
                NicAddr::Static { addr, prefix } => {
                    let family = if addr.is_ipv4() { "inet" } else { "inet6" };
                    let cidr = format!("{addr}/{prefix}");
                    steps.push(Step::run(jifconfig(vm, &[iface, family, &cidr, "alias"])));
                }
                NicAddr::Dhcp => {
                    steps.push(Step::run(argv([
                        "jexec",
                        &outer,
                        "/sbin/dhclient",
                        "-b",
                        iface,
                    ])));
                }
                NicAddr::Addrconf => {
                    steps.push(Step::run(jifconfig(
                        vm,
                        &[iface, "inet6", "-ifdisabled", "accept_rtadv"],
                    )));
                }
            }
        }
    }
    steps.push(Step::run(jifconfig(
        vm,
        &["lo0", "inet", "127.0.0.1/8", "up"],
    )));
    steps.extend(routes(vm));
    steps
}

/// Default routes from the primary NIC's gateways (first of each family),
/// then the `routes` property.
fn routes(vm: &VmSpec) -> Vec<Step> {
    let mut steps = Vec::new();
    if let Some(primary) = vm.primary_nic() {
        let v4 = primary.gateways.iter().find(|g| g.is_ipv4());
        let v6 = primary.gateways.iter().find(|g| g.is_ipv6());
        for gw in [v4, v6].into_iter().flatten() {
            let family = family_flag(gw);
            let gw = gw.to_string();
            steps.push(Step::run(jroute(vm, &["add", family, "default", &gw])));
        }
    }
    for (dst, gw) in &vm.routes {
        // guard::check_vm has refused anything that is not an address here.
        if let Ok((v6, net)) = guard::route_dest(dst) {
            let family = if v6 { "-inet6" } else { "-inet" };
            let kind = if net { "-net" } else { "-host" };
            steps.push(Step::run(jroute(vm, &["add", family, kind, dst, gw])));
        }
    }
    steps
}

fn family_flag(ip: &IpAddr) -> &'static str {
    if ip.is_ipv4() {
        "-inet"
    } else {
        "-inet6"
    }
}

/// Writes the tenant's /etc/resolv.conf when the VM has resolvers.
pub fn resolv_conf(vm: &VmSpec) -> Option<Step> {
    if vm.resolvers.is_empty() {
        return None;
    }
    let mut text = format!("# written by vmadm\nsearch {}\n", vm.dns_domain);
    for r in &vm.resolvers {
        text.push_str(&format!("nameserver {r}\n"));
    }
    Some(Step::action(Action::WriteFile {
        root: layout::tenant_root(vm),
        rel: "etc/resolv.conf".into(),
        contents: text,
        mode: 0o644,
    }))
}

/// Teardown: destroying the host end removes the pair, wherever its peer is.
pub fn teardown(vm: &VmSpec) -> Vec<Step> {
    (0..vm.nics.len())
        .map(|i| Step::try_run(argv(["ifconfig", &names::host_end(&vm.uuid, i), "destroy"])))
        .collect()
}
