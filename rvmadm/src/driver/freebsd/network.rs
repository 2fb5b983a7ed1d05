//! Network plans: one epair per NIC, host end on the bridge of its nic_tag,
//! jail end moved into the outer jail's vnet and configured there with the
//! host's own tools.
//!
//! Host side (before the outer jail exists): create the epair under the
//! deterministic names from `names.rs`, describe it, give the jail end the
//! NIC's MAC (on the host, before the move, as Bastille does), set the MTU,
//! join the bridge, bring the host end up. Jail side (after): move the jail
//! end into the vnet, then with `jexec <uuid> /rescue/ifconfig …`, i.e. the
//! host's statically linked tools mounted read-only into the outer jail,
//! rename it to the NIC's interface (net0 …), set addresses, bring up lo0,
//! add the default and static routes. Nothing the image ships runs here.
//! A VLAN NIC gets a vlan(4) interface on top of the jail end inside the
//! vnet, so the tagged frames leave through the bridge member and the tenant
//! (which shares the outer jail's stack but does not own it) cannot change
//! the tag.
//!
//! `dhcp` runs `/rescue/dhclient` in the outer jail, configured by files
//! vmadm writes below the zonepath (the outer root): its script is
//! `/rescue/dhclient-script`, an enter hook puts `/rescue` on the script's
//! PATH, an exit hook copies the lease's resolv.conf into the tenant's
//! `/etc` (the outer jail sees the tenant's root as `/root`), and a one-user
//! password database gives dhclient its `_dhcp` user. `addrconf` turns on
//! `accept_rtadv` and solicits a router advertisement with `rtsol` instead of
//! waiting for the next unsolicited one. Static resolvers are written into
//! the tenant's resolv.conf from Rust. Teardown destroys the host end, which
//! takes the peer inside the jail with it. The NIC protections (MAC pinned
//! on the bridge port, pf rules per VM) live in `antispoof.rs`.

use super::antispoof;
use super::guard;
use super::layout;
use super::mounts;
use super::names;
use super::plan::{argv, Action, PlanError, Step};
use crate::config::Config;
use crate::exec::Argv;
use crate::spec::{NicAddr, VmSpec};
use std::net::IpAddr;

/// `jexec <outer> /rescue/<tool> args…`: runs a host tool inside the outer
/// jail, where it acts on the outer jail's vnet.
fn jtool(vm: &VmSpec, tool: &str, args: &[&str]) -> Argv {
    let outer = layout::outer(vm);
    let path = layout::tool(tool);
    let mut v = vec!["jexec", outer.as_str(), path.as_str()];
    v.extend_from_slice(args);
    argv(v)
}

fn jifconfig(vm: &VmSpec, args: &[&str]) -> Argv {
    jtool(vm, "ifconfig", args)
}

fn jroute(vm: &VmSpec, args: &[&str]) -> Argv {
    let mut v = vec!["-n"];
    v.extend_from_slice(args);
    jtool(vm, "route", &v)
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
        // The jail end carries the NIC's MAC (a vlan(4) on top inherits it).
        steps.push(Step::run(argv(["ifconfig", &jail, "ether", &nic.mac])));
        if let Some(mtu) = nic.mtu {
            let mtu = mtu.to_string();
            steps.push(Step::run(argv(["ifconfig", &host, "mtu", &mtu])));
            steps.push(Step::run(argv(["ifconfig", &jail, "mtu", &mtu])));
        }
        steps.push(Step::run_undo(
            argv(["ifconfig", &bridge, "addm", &host]),
            argv(["ifconfig", &bridge, "deletem", &host]),
        ));
        // Before the port is up: the NIC's MAC is the only source it may use.
        steps.extend(antispoof::pin_steps(nic, &host, &bridge)?);
        steps.push(Step::run(argv(["ifconfig", &host, "up"])));
    }
    Ok(steps)
}

/// The files dhclient needs in the outer jail, written from the host.
fn dhcp_files(vm: &VmSpec) -> Vec<Step> {
    let outer = layout::outer_root(vm);
    let tools = layout::TOOLS_IN_OUTER;
    let mut steps = Vec::new();
    for dir in ["etc", "var/empty", "var/db", "var/run/dhclient"] {
        steps.push(Step::action(Action::EnsureDir {
            root: outer.clone(),
            rel: dir.into(),
        }));
    }
    let file = |rel: &str, contents: String, mode| {
        Step::action(Action::WriteFile {
            root: outer.clone(),
            rel: rel.into(),
            contents,
            mode,
        })
    };
    steps.push(file(
        "etc/dhclient.conf",
        format!("# written by vmadm\nscript \"/{tools}/dhclient-script\";\n"),
        0o644,
    ));
    steps.push(file(
        "etc/dhclient-enter-hooks",
        format!("# written by vmadm: the outer jail's tools live in /{tools}\nPATH=/{tools}:$PATH\nexport PATH\n"),
        0o644,
    ));
    steps.push(file(
        "etc/dhclient-exit-hooks",
        "# written by vmadm: the tenant's root is /root here\n\
         case \"$reason\" in\n\
         BOUND|RENEW|REBIND|REBOOT)\n\
         \tif [ -f /etc/resolv.conf ]; then\n\
         \t\tcat /etc/resolv.conf > /root/etc/.resolv.conf.vmadm &&\n\
         \t\t    mv -f /root/etc/.resolv.conf.vmadm /root/etc/resolv.conf\n\
         \tfi\n\
         \t;;\n\
         esac\n"
            .to_string(),
        0o644,
    ));
    steps.push(file(
        "etc/master.passwd",
        format!(
            "root:*:0:0::0:0:vmadm outer jail:/var/empty:/{tools}/sh\n\
             _dhcp:*:65:65::0:0:dhcp programs:/var/empty:/usr/sbin/nologin\n"
        ),
        0o600,
    ));
    let etc = format!("{outer}/etc");
    steps.push(Step::run(argv([
        "pwd_mkdb",
        "-d",
        &etc,
        &format!("{etc}/master.passwd"),
    ])));
    steps
}

/// Steps inside the outer jail's vnet, run once the outer jail exists.
pub fn jail_side(vm: &VmSpec) -> Vec<Step> {
    let outer = layout::outer(vm);
    let mut steps = Vec::new();
    if mounts::wants_dhcp(vm) {
        steps.extend(dhcp_files(vm));
    }
    for (i, nic) in vm.nics.iter().enumerate() {
        let jail = names::jail_end(&vm.uuid, i);
        let iface = nic.interface.as_str();
        steps.push(Step::run_undo(
            argv(["ifconfig", &jail, "vnet", &outer]),
            argv(["ifconfig", &jail, "-vnet", &outer]),
        ));
        if nic.vlan_id == 0 {
            steps.push(Step::run_undo(
                jifconfig(vm, &[&jail, "name", iface]),
                jifconfig(vm, &[iface, "name", &jail]),
            ));
        } else {
            // The untagged end must be up for tagged frames to flow.
            let temp = format!("vlan{i}");
            let vid = nic.vlan_id.to_string();
            steps.push(Step::run(jifconfig(vm, &[&jail, "up"])));
            steps.push(Step::run_undo(
                jifconfig(vm, &[&temp, "create", "vlan", &vid, "vlandev", &jail]),
                jifconfig(vm, &[&temp, "destroy"]),
            ));
            steps.push(Step::run_undo(
                jifconfig(vm, &[&temp, "name", iface]),
                jifconfig(vm, &[iface, "name", &temp]),
            ));
            if let Some(mtu) = nic.mtu {
                steps.push(Step::run(jifconfig(vm, &[iface, "mtu", &mtu.to_string()])));
            }
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
                    steps.push(Step::run(jtool(
                        vm,
                        "dhclient",
                        &["-b", "-c", "/etc/dhclient.conf", iface],
                    )));
                }
                NicAddr::Addrconf => {
                    steps.push(Step::run(jifconfig(
                        vm,
                        &[iface, "inet6", "-ifdisabled", "accept_rtadv"],
                    )));
                    // No router may answer yet; unsolicited RAs still arrive.
                    steps.push(Step::try_run(jtool(vm, "rtsol", &[iface])));
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

/// Teardown: destroying the host end removes the pair, wherever its peer is
/// (and the member with its bridge entries); then the VM's pf anchor is
/// emptied.
pub fn teardown(vm: &VmSpec) -> Vec<Step> {
    let mut steps: Vec<Step> = (0..vm.nics.len())
        .map(|i| Step::try_run(argv(["ifconfig", &names::host_end(&vm.uuid, i), "destroy"])))
        .collect();
    steps.extend(antispoof::teardown(vm));
    steps
}
