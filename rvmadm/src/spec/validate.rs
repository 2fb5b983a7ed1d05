//! Payload validation with SmartOS's outcome shape.
//!
//! Every key is looked up in the property table for the action (create or
//! update): unknown or not-allowed keys are `bad_properties` (and dropped, as
//! SmartOS does inside create/update), values failing their kind are
//! `bad_values`, absent required keys are `missing_properties`. Nested NIC
//! and filesystem objects are checked against their own tables and reported
//! as `nics.*.<key>`.

use super::mac;
use super::props::{self, Kind, Prop};
use super::value::{self, normalize, Norm};
use super::vm::NicAddr;
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr};

/// Which payload is being checked: each property row says whether create,
/// update or both accept it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// A `vmadm create` payload: required properties must be present.
    Create,
    /// A `vmadm update` payload: only the changes; an explicit `null`
    /// removes a property.
    Update,
}

impl Action {
    /// The verb's name, as `vmadm validate` prints it.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Update => "update",
        }
    }
}

/// SmartOS's validation error object; all three arrays always present.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ValidationErrors {
    /// Keys whose value fails the property's kind or a rule of its object
    /// (a duplicate MAC, two primary NICs …); nested keys as
    /// `nics.*.<key>`.
    pub bad_values: Vec<String>,
    /// Keys unknown, or not allowed in this action; they are dropped.
    pub bad_properties: Vec<String>,
    /// Required keys the payload lacks (`brand`, `image_uuid` on create,
    /// `nic_tag` of a new NIC …).
    pub missing_properties: Vec<String>,
}

fn push_unique(list: &mut Vec<String>, item: String) {
    if !list.contains(&item) {
        list.push(item);
    }
}

impl ValidationErrors {
    /// True when nothing blocks the operation (bad_properties are only
    /// stripped, as in SmartOS create/update).
    pub fn blocks(&self) -> bool {
        !self.bad_values.is_empty() || !self.missing_properties.is_empty()
    }

    /// True when nothing at all was reported, not even a dropped key.
    pub fn is_clean(&self) -> bool {
        !self.blocks() && self.bad_properties.is_empty()
    }

    fn bad_value(&mut self, k: impl Into<String>) {
        push_unique(&mut self.bad_values, k.into());
    }
    fn bad_property(&mut self, k: impl Into<String>) {
        push_unique(&mut self.bad_properties, k.into());
    }
    fn missing(&mut self, k: impl Into<String>) {
        push_unique(&mut self.missing_properties, k.into());
    }

    /// The message create/update print: `Invalid value(s) for: a,b` or
    /// `Missing required properties: x,y`.
    pub fn message(&self) -> String {
        if !self.bad_values.is_empty() {
            format!("Invalid value(s) for: {}", self.bad_values.join(","))
        } else if !self.missing_properties.is_empty() {
            format!(
                "Missing required properties: {}",
                self.missing_properties.join(",")
            )
        } else {
            String::new()
        }
    }
}

/// A payload after validation: only known, allowed keys, canonical values.
/// On update an explicit unset is kept as JSON `null`.
#[derive(Debug, Clone)]
pub struct Checked {
    /// The keys that passed, with their normalised values (deprecated
    /// names already mapped to current ones on create).
    pub payload: Map<String, Value>,
    /// Everything refused; the payload is usable only when
    /// [`ValidationErrors::blocks`] is false.
    pub errors: ValidationErrors,
}

/// Validates a create or update payload.
pub fn check(input: &Map<String, Value>, action: Action) -> Checked {
    let mut errors = ValidationErrors::default();
    let mut payload = Map::new();
    for (key, raw) in input {
        let allowed = props::find(key).filter(|p| match action {
            Action::Create => p.create,
            Action::Update => p.update,
        });
        let Some(prop) = allowed else {
            errors.bad_property(key.clone());
            continue;
        };
        match normalize(prop.kind, raw) {
            Norm::Bad => errors.bad_value(key.clone()),
            Norm::Unset => {
                if action == Action::Update {
                    payload.insert(key.clone(), Value::Null);
                }
            }
            Norm::Value(v) => {
                let v = match prop.kind {
                    Kind::Nics => Value::Array(check_nics(key, &v, true, &mut errors)),
                    Kind::NicUpdates => Value::Array(check_nics(key, &v, false, &mut errors)),
                    Kind::Filesystems => Value::Array(check_filesystems(key, &v, &mut errors)),
                    Kind::Keys if key == "remove_nics" => check_macs(key, v, &mut errors),
                    // SmartOS stores and shows these two lists as comma strings.
                    Kind::List if key == "limit_priv" || key == "fs_allowed" => {
                        Value::String(super::value::list_items(&v).unwrap_or_default().join(","))
                    }
                    _ => v,
                };
                payload.insert(key.clone(), v);
            }
        }
    }
    // Deprecated names map to the current ones (SmartOS does the same).
    if action == Action::Create {
        for (old, new) in [
            ("dataset_uuid", "image_uuid"),
            ("zfs_storage_pool_name", "zpool"),
        ] {
            if let Some(v) = payload.remove(old) {
                payload.entry(new.to_string()).or_insert(v);
            }
        }
        for required in ["brand", "image_uuid"] {
            if !payload.contains_key(required) && !errors.bad_values.iter().any(|b| b == required) {
                errors.missing(required);
            }
        }
        if payload.contains_key("nics") && input.contains_key("add_nics") {
            errors.bad_value("add_nics");
        }
    }
    Checked { payload, errors }
}

/// The prefix used in error names: `nics.*`, `add_nics.*` …
fn elem(key: &str, sub: &str) -> String {
    let base = if key == "add_nics" { "nics" } else { key };
    format!("{base}.*.{sub}")
}

fn check_nics(key: &str, v: &Value, adding: bool, errors: &mut ValidationErrors) -> Vec<Value> {
    let mut out = Vec::new();
    let mut primaries = 0;
    let mut macs = HashSet::new();
    let mut ips = HashSet::new();
    for nic in v.as_array().into_iter().flatten() {
        let Some(obj) = nic.as_object() else { continue };
        let mut clean = Map::new();
        for (k, raw) in obj {
            let Some(prop) = props::find_nic(k) else {
                errors.bad_property(elem(key, k));
                continue;
            };
            match normalize(prop.kind, raw) {
                Norm::Bad => errors.bad_value(elem(key, k)),
                Norm::Unset => {}
                Norm::Value(v) => {
                    clean.insert(k.clone(), v);
                }
            }
        }
        if let Err(sub) = check_nic_semantics(&mut clean, adding) {
            match sub {
                NicProblem::Missing(s) => errors.missing(elem(key, s)),
                NicProblem::Bad(s) => errors.bad_value(elem(key, s)),
            }
        }
        if clean.get("primary") == Some(&Value::Bool(true)) {
            primaries += 1;
        }
        if let Some(m) = clean.get("mac").and_then(Value::as_str) {
            if !macs.insert(m.to_string()) {
                errors.bad_value(elem(key, "mac"));
            }
        }
        for ip in clean
            .get("ips")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(NicAddr::Static { addr, .. }) = ip.as_str().and_then(NicAddr::parse) {
                if !ips.insert(addr) {
                    errors.bad_value(elem(key, "ips"));
                }
            }
        }
        out.push(Value::Object(clean));
    }
    if primaries > 1 {
        errors.bad_value(elem(key, "primary"));
    }
    out
}

enum NicProblem {
    Missing(&'static str),
    Bad(&'static str),
}

/// NIC rules beyond single values: tags, addresses, legacy ip/netmask,
/// primary. Fills `ips`/`gateways` from the legacy fields.
fn check_nic_semantics(nic: &mut Map<String, Value>, adding: bool) -> Result<(), NicProblem> {
    use NicProblem::{Bad, Missing};
    let s =
        |nic: &Map<String, Value>, k: &str| nic.get(k).and_then(Value::as_str).map(str::to_string);
    match s(nic, "nic_tag") {
        Some(tag) if super::valid_nic_tag(&tag) => {}
        Some(_) => return Err(Bad("nic_tag")),
        None if adding => return Err(Missing("nic_tag")),
        None => {}
    }
    match s(nic, "mac") {
        Some(m) => {
            let norm = mac::normalize(&m).ok_or(Bad("mac"))?;
            nic.insert("mac".into(), Value::String(norm));
        }
        None if !adding => return Err(Missing("mac")),
        None => {}
    }
    // A VRRP NIC's MAC is the virtual router's (RFC 5798, IPv4): SmartOS
    // sets it from the VRID and refuses another one.
    if let Some(vrid) = nic.get("vrrp_vrid").and_then(Value::as_u64) {
        let vmac = vrrp_mac(vrid).ok_or(Bad("vrrp_vrid"))?;
        match s(nic, "mac") {
            Some(m) if m != vmac => return Err(Bad("vrrp_vrid")),
            Some(_) => {}
            None => {
                nic.insert("mac".into(), Value::String(vmac));
            }
        }
    }
    if let Some(ip) = s(nic, "vrrp_primary_ip") {
        ip.parse::<Ipv4Addr>().map_err(|_| Bad("vrrp_primary_ip"))?;
    }
    if let Some(ifname) = s(nic, "interface") {
        let ok = ["net", "eth"].iter().any(|p| {
            ifname.strip_prefix(p).is_some_and(|n| {
                !n.is_empty() && n.len() <= 2 && n.bytes().all(|b| b.is_ascii_digit())
            })
        });
        if !ok {
            return Err(Bad("interface"));
        }
    }
    // Legacy single address: ip + netmask → ips.
    if let Some(ip) = s(nic, "ip") {
        let entry = if ip == "dhcp" {
            "dhcp".to_string()
        } else {
            let addr: Ipv4Addr = ip.parse().map_err(|_| Bad("ip"))?;
            let mask = s(nic, "netmask").ok_or(Missing("netmask"))?;
            let prefix = value::netmask_prefix(&mask).ok_or(Bad("netmask"))?;
            format!("{addr}/{prefix}")
        };
        if !nic.contains_key("ips") {
            nic.insert("ips".into(), Value::from(vec![entry]));
        }
    } else if let Some(mask) = s(nic, "netmask") {
        value::netmask_prefix(&mask).ok_or(Bad("netmask"))?;
    }
    if let Some(gw) = s(nic, "gateway") {
        gw.parse::<Ipv4Addr>().map_err(|_| Bad("gateway"))?;
        if !nic.contains_key("gateways") {
            nic.insert("gateways".into(), Value::from(vec![gw]));
        }
    }
    if let Some(list) = nic.get("ips").and_then(Value::as_array) {
        if list.len() > 20 {
            return Err(Bad("ips"));
        }
        for ip in list {
            ip.as_str().and_then(NicAddr::parse).ok_or(Bad("ips"))?;
        }
    }
    if let Some(list) = nic.get("gateways").and_then(Value::as_array) {
        for gw in list {
            let ok = gw
                .as_str()
                .and_then(|g| g.parse::<IpAddr>().ok())
                .is_some_and(|a| a.is_ipv4());
            if !ok {
                return Err(Bad("gateways"));
            }
        }
    }
    if let Some(list) = nic.get("allowed_ips").and_then(Value::as_array) {
        if !list
            .iter()
            .all(|i| i.as_str().is_some_and(value::is_ip_or_cidr))
        {
            return Err(Bad("allowed_ips"));
        }
    }
    if let Some(list) = nic.get("blocked_outgoing_ports").and_then(Value::as_array) {
        if !list
            .iter()
            .all(|p| p.as_str().is_some_and(|p| p.parse::<u16>().is_ok()))
        {
            return Err(Bad("blocked_outgoing_ports"));
        }
    }
    if let Some(list) = nic.get("allowed_dhcp_cids").and_then(Value::as_array) {
        // SmartOS's limits: 20 identifiers, each `0x` and an even number of
        // hex digits (at most 512 characters), under 1024 characters joined.
        let cids: Vec<&str> = list.iter().filter_map(Value::as_str).collect();
        let joined = cids.iter().map(|c| c.len() + 1).sum::<usize>();
        if cids.len() != list.len() || cids.len() > 20 || joined > 1024 {
            return Err(Bad("allowed_dhcp_cids"));
        }
        if !cids.iter().all(|c| valid_dhcp_cid(c)) {
            return Err(Bad("allowed_dhcp_cids"));
        }
    }
    match nic.get("primary") {
        Some(Value::Bool(true)) | None => {}
        // SmartOS drops `primary: false`.
        Some(Value::Bool(false)) => {
            nic.remove("primary");
        }
        Some(_) => return Err(Bad("primary")),
    }
    Ok(())
}

/// The MAC of VRRP virtual router `vrid` (IPv4): `00:00:5e:00:01:<vrid>`.
pub fn vrrp_mac(vrid: u64) -> Option<String> {
    u8::try_from(vrid)
        .ok()
        .map(|v| format!("00:00:5e:00:01:{v:02x}"))
}

/// A DHCP client identifier as SmartOS writes one: `0x` and hex digits,
/// an even count in all, at most 512 characters.
fn valid_dhcp_cid(c: &str) -> bool {
    c.len().is_multiple_of(2)
        && c.len() <= 512
        && c.strip_prefix("0x")
            .is_some_and(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn check_macs(key: &str, v: Value, errors: &mut ValidationErrors) -> Value {
    let mut out = Vec::new();
    for m in v.as_array().into_iter().flatten() {
        match m.as_str().and_then(mac::normalize) {
            Some(m) => out.push(Value::String(m)),
            None => errors.bad_value(key.to_string()),
        }
    }
    Value::Array(out)
}

/// A path that is absolute, normal (no `.`/`..`/empty components) and printable.
pub fn clean_abs_path(p: &str) -> bool {
    p.starts_with('/')
        && p.len() <= 1024
        && !p.chars().any(char::is_control)
        && p[1..]
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != "..")
        || p == "/"
}

fn check_filesystems(key: &str, v: &Value, errors: &mut ValidationErrors) -> Vec<Value> {
    let sub = |p: &Prop| format!("{key}.*.{}", p.name);
    let mut out = Vec::new();
    for fs in v.as_array().into_iter().flatten() {
        let Some(obj) = fs.as_object() else { continue };
        let mut clean = Map::new();
        for (k, raw) in obj {
            let Some(prop) = props::find_fs(k) else {
                errors.bad_property(format!("{key}.*.{k}"));
                continue;
            };
            match normalize(prop.kind, raw) {
                Norm::Value(v) => {
                    clean.insert(k.clone(), v);
                }
                Norm::Unset => {}
                Norm::Bad => errors.bad_value(sub(prop)),
            }
        }
        for k in ["source", "target"] {
            match clean.get(k).and_then(Value::as_str) {
                Some(p) if clean_abs_path(p) && p != "/" => {}
                Some(_) => errors.bad_value(format!("{key}.*.{k}")),
                None if key != "update_filesystems" || k == "target" => {
                    errors.missing(format!("{key}.*.{k}"))
                }
                None => {}
            }
        }
        if let Some(t) = clean.get("type").and_then(Value::as_str) {
            if !matches!(t, "lofs" | "nullfs" | "bind") {
                errors.bad_value(format!("{key}.*.type"));
            }
        }
        out.push(Value::Object(clean));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const IMG: &str = "11111111-2222-4333-8444-555555555555";

    fn create(v: Value) -> Checked {
        check(v.as_object().unwrap(), Action::Create)
    }
    fn update(v: Value) -> Checked {
        check(v.as_object().unwrap(), Action::Update)
    }

    #[test]
    fn minimal_create_is_clean() {
        let c = create(json!({"brand": "jail", "image_uuid": IMG}));
        assert!(c.errors.is_clean(), "{:?}", c.errors);
    }

    #[test]
    fn missing_required() {
        let c = create(json!({"alias": "x"}));
        assert_eq!(c.errors.missing_properties, vec!["brand", "image_uuid"]);
        assert_eq!(
            c.errors.message(),
            "Missing required properties: brand,image_uuid"
        );
    }

    #[test]
    fn unknown_properties_are_stripped_not_fatal() {
        let c = create(json!({"brand": "jail", "image_uuid": IMG, "bogus": 1, "state": "running"}));
        assert_eq!(c.errors.bad_properties, vec!["bogus", "state"]);
        assert!(!c.errors.blocks());
        assert!(!c.payload.contains_key("bogus"));
    }

    #[test]
    fn one_fixture_per_rule() {
        let cases = [
            (json!({"brand": "kvm"}), "brand"),
            (json!({"brand": "nope"}), "brand"),
            (json!({"image_uuid": "not-a-uuid"}), "image_uuid"),
            (json!({"max_physical_memory": -1}), "max_physical_memory"),
            (json!({"max_physical_memory": 1e12}), "max_physical_memory"),
            (json!({"quota": "ten"}), "quota"),
            (json!({"cpu_shares": 70000}), "cpu_shares"),
            (json!({"max_swap": 100}), "max_swap"),
            (json!({"autoboot": "maybe"}), "autoboot"),
            (json!({"hostname": "a;rm -rf /"}), "hostname"),
            (json!({"hostname": "$(reboot)"}), "hostname"),
            (json!({"hostname": "a\nb"}), "hostname"),
            (json!({"alias": "../../etc"}), "alias"),
            (json!({"alias": "a\u{0}b"}), "alias"),
            (json!({"alias": 5}), "alias"),
            (json!({"resolvers": ["x"]}), "resolvers"),
            (
                json!({"customer_metadata": {"a": [1]}}),
                "customer_metadata",
            ),
            (json!({"tags": "x"}), "tags"),
            (json!({"nics": {"a": 1}}), "nics"),
            (
                json!({"nics": [{"nic_tag": "admin", "vlan_id": 5000}]}),
                "nics.*.vlan_id",
            ),
            (json!({"nics": [{"nic_tag": "ad min"}]}), "nics.*.nic_tag"),
            (
                json!({"nics": [{"nic_tag": "admin", "ips": ["192.0.2.1"]}]}),
                "nics.*.ips",
            ),
            (
                json!({"nics": [{"nic_tag": "admin", "gateways": ["2001:db8::1"]}]}),
                "nics.*.gateways",
            ),
            (
                json!({"nics": [{"nic_tag": "admin", "mac": "zz:00:00:00:00:00"}]}),
                "nics.*.mac",
            ),
            (
                json!({"nics": [{"nic_tag": "admin", "ip": "192.0.2.1", "netmask": "255.0.255.0"}]}),
                "nics.*.netmask",
            ),
            (
                json!({"nics": [{"nic_tag": "a", "primary": true}, {"nic_tag": "b", "primary": true}]}),
                "nics.*.primary",
            ),
            (
                json!({"nics": [{"nic_tag": "a", "ips": ["192.0.2.1/24"]}, {"nic_tag": "b", "ips": ["192.0.2.1/24"]}]}),
                "nics.*.ips",
            ),
            (
                json!({"filesystems": [{"source": "/a/../b", "target": "/mnt"}]}),
                "filesystems.*.source",
            ),
            (
                json!({"filesystems": [{"source": "/data", "target": "relative"}]}),
                "filesystems.*.target",
            ),
            (json!({"init_name": "sbin/init"}), "init_name"),
            (
                json!({"zfs_root_compression": "snappy"}),
                "zfs_root_compression",
            ),
            (json!({"routes": {"198.51.100.0/24": "; ls"}}), "routes"),
        ];
        for (extra, bad) in cases {
            let mut p = json!({"brand": "jail", "image_uuid": IMG});
            for (k, v) in extra.as_object().unwrap() {
                p[k] = v.clone();
            }
            let c = create(p.clone());
            assert!(
                c.errors.bad_values.iter().any(|b| b == bad),
                "{p} should have bad value {bad}: {:?}",
                c.errors
            );
            assert!(c.errors.blocks());
        }
    }

    #[test]
    fn legacy_nic_fields_become_ips_and_gateways() {
        let c = create(json!({"brand": "jail", "image_uuid": IMG, "nics": [
            {"nic_tag": "admin", "ip": "192.0.2.10", "netmask": "255.255.255.0", "gateway": "192.0.2.1", "primary": false}
        ]}));
        assert!(c.errors.is_clean(), "{:?}", c.errors);
        let nic = &c.payload["nics"][0];
        assert_eq!(nic["ips"], json!(["192.0.2.10/24"]));
        assert_eq!(nic["gateways"], json!(["192.0.2.1"]));
        assert_eq!(nic["ip"], json!("192.0.2.10"));
        assert!(nic.get("primary").is_none());
    }

    #[test]
    fn a_vrrp_nic_takes_the_virtual_router_mac() {
        let c = create(json!({"brand": "jail", "image_uuid": IMG, "nics": [
            {"nic_tag": "admin", "vrrp_vrid": 26, "vrrp_primary_ip": "192.0.2.5",
             "ips": ["192.0.2.6/24"]}]}));
        assert!(c.errors.is_clean(), "{:?}", c.errors);
        assert_eq!(c.payload["nics"][0]["mac"], json!("00:00:5e:00:01:1a"));
        let same = create(json!({"brand": "jail", "image_uuid": IMG, "nics": [
            {"nic_tag": "admin", "vrrp_vrid": 26, "mac": "00:00:5E:00:01:1A"}]}));
        assert!(same.errors.is_clean(), "{:?}", same.errors);
        for bad in [
            json!({"nic_tag": "admin", "vrrp_vrid": 26, "mac": "02:00:00:00:00:01"}),
            json!({"nic_tag": "admin", "vrrp_vrid": 256}),
            json!({"nic_tag": "admin", "vrrp_vrid": 1, "vrrp_primary_ip": "2001:db8::1"}),
        ] {
            let c = create(json!({"brand": "jail", "image_uuid": IMG, "nics": [bad.clone()]}));
            assert!(c.errors.blocks(), "{bad}: {:?}", c.errors);
        }
        // update_nics: the key MAC must be the VRID's.
        let u = update(json!({"update_nics": [{"mac": "00:00:5e:00:01:07", "vrrp_vrid": 8}]}));
        assert!(u.errors.blocks(), "{:?}", u.errors);
        let u = update(json!({"update_nics": [{"mac": "00:00:5e:00:01:07", "vrrp_vrid": 7}]}));
        assert!(u.errors.is_clean(), "{:?}", u.errors);
    }

    #[test]
    fn dhcp_client_ids_follow_smartos_limits() {
        let nic = |cids: Value| {
            create(json!({"brand": "jail", "image_uuid": IMG,
                          "nics": [{"nic_tag": "admin", "allowed_dhcp_cids": cids}]}))
        };
        let ok = nic(json!(["0x01020000000001", "0xABcd"]));
        assert!(ok.errors.is_clean(), "{:?}", ok.errors);
        assert_eq!(
            ok.payload["nics"][0]["allowed_dhcp_cids"],
            json!(["0x01020000000001", "0xABcd"])
        );
        let long = format!("0x{}", "ab".repeat(255));
        assert!(nic(json!([long])).errors.is_clean());
        let twenty: Vec<String> = (0..20).map(|i| format!("0x{i:02x}")).collect();
        assert!(nic(json!(twenty)).errors.is_clean());
        let twenty_one: Vec<String> = (0..21).map(|i| format!("0x{i:02x}")).collect();
        let too_long = format!("0x{}", "ab".repeat(256));
        let joined: Vec<String> = (0..4).map(|_| format!("0x{}", "cd".repeat(127))).collect();
        for bad in [
            json!(["01020304"]),
            json!(["0x123"]),
            json!(["0x"]),
            json!(["0xzz"]),
            json!(twenty_one),
            json!([too_long]),
            json!(joined),
        ] {
            let c = nic(bad.clone());
            assert!(
                c.errors
                    .bad_values
                    .iter()
                    .any(|b| b == "nics.*.allowed_dhcp_cids"),
                "{bad}: {:?}",
                c.errors
            );
        }
    }

    #[test]
    fn nic_tag_required_on_add_but_mac_on_update() {
        let c = create(json!({"brand": "jail", "image_uuid": IMG, "nics": [{"ips": ["dhcp"]}]}));
        assert_eq!(c.errors.missing_properties, vec!["nics.*.nic_tag"]);
        let u = update(json!({"update_nics": [{"vlan_id": 3}]}));
        assert_eq!(u.errors.missing_properties, vec!["update_nics.*.mac"]);
    }

    #[test]
    fn update_permissions_and_unset() {
        let u = update(
            json!({"brand": "lx", "image_uuid": IMG, "quota": "", "cpu_cap": null, "alias": "x", "set_tags": {"a": 1}}),
        );
        assert_eq!(u.errors.bad_properties, vec!["brand", "image_uuid"]);
        assert_eq!(u.payload["quota"], Value::Null);
        assert_eq!(u.payload["cpu_cap"], Value::Null);
        assert_eq!(u.payload["alias"], json!("x"));
    }

    #[test]
    fn deprecated_names_map() {
        let c = create(json!({"brand": "joyent", "dataset_uuid": IMG}));
        assert!(c.errors.is_clean(), "{:?}", c.errors);
        assert_eq!(c.payload["image_uuid"], json!(IMG));
    }

    #[test]
    fn remove_nics_macs_are_normalized() {
        let u = update(json!({"remove_nics": ["2:0:0:0:0:1"]}));
        assert_eq!(u.payload["remove_nics"], json!(["02:00:00:00:00:01"]));
        let u = update(json!({"remove_nics": ["x"]}));
        assert_eq!(u.errors.bad_values, vec!["remove_nics"]);
    }
}
