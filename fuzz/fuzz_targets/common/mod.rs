//! Helpers shared by the fuzz targets: payload invariants, the record
//! round trip and a structure-aware JSON value generator.
#![allow(dead_code)]

use arbitrary::{Result, Unstructured};
use rvmadm::spec::object::{apply_update, new_vm_record, CreateContext};
use rvmadm::spec::{self, props, Action, VmRecord, VmSpec};
use serde_json::{Map, Number, Value};

/// The uuid the invariants give a created VM without one.
pub const VM_UUID: &str = "6f4c1d2e-8a3b-4c5d-9e0f-1a2b3c4d5e6f";
/// An image uuid a create payload can name.
pub const IMAGE_UUID: &str = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d";

/// Encodes a record the way `Store::save` writes it.
pub fn encode(vm: &VmRecord) -> Vec<u8> {
    #[derive(serde::Serialize)]
    struct File<'a> {
        record_version: u64,
        vm: &'a VmRecord,
    }
    let mut bytes = serde_json::to_vec_pretty(&File {
        record_version: 1,
        vm,
    })
    .expect("a record always serialises");
    bytes.push(b'\n');
    bytes
}

/// Whatever is stored must read back as the same record (same bytes when
/// written again).
pub fn round_trip(vm: &VmRecord) {
    let first = encode(vm);
    let back = rvmadm::store::decode(&first)
        .unwrap_or_else(|e| panic!("a record we wrote does not decode: {e}"));
    let second = encode(&back);
    assert_eq!(
        String::from_utf8_lossy(&first),
        String::from_utf8_lossy(&second),
        "record changed through encode/decode"
    );
}

/// Checks a payload as create and as update, and what each accepts:
/// accepted again when checked again, and stored and read back unchanged.
pub fn payload(input: &Map<String, Value>) {
    let created = spec::check(input, Action::Create);
    let _ = created.errors.message();
    if !created.errors.blocks() {
        let again = spec::check(&created.payload, Action::Create);
        assert!(
            !again.errors.blocks(),
            "create accepted {:?} but refuses its own output {:?}: {:?}",
            input,
            created.payload,
            again.errors
        );
        let uuid = created
            .payload
            .get("uuid")
            .and_then(Value::as_str)
            .unwrap_or(VM_UUID)
            .to_string();
        let zonepath = format!("/zones/{uuid}");
        let ctx = CreateContext {
            uuid: &uuid,
            default_pool: "zones",
            zonepath: &zonepath,
            now: "2026-11-30T12:00:00.000Z",
        };
        let rec = new_vm_record(&created.payload, &ctx);
        round_trip(&rec);
        let _ = VmSpec::from_record(&rec);
    }
    let updated = spec::check(input, Action::Update);
    if !updated.errors.blocks() {
        let mut rec = base_record();
        if apply_update(&mut rec, &updated.payload).is_ok() {
            round_trip(&rec);
            let _ = VmSpec::from_record(&rec);
        }
    }
}

/// A created VM with a NIC, a filesystem and metadata, for updates to
/// work on.
pub fn base_record() -> VmRecord {
    let input: Map<String, Value> = serde_json::from_value(serde_json::json!({
        "uuid": VM_UUID,
        "brand": "jail",
        "image_uuid": IMAGE_UUID,
        "alias": "base",
        "quota": 5,
        "max_physical_memory": 512,
        "customer_metadata": {"a": "1"},
        "tags": {"t": true},
        "nics": [{"nic_tag": "admin", "ip": "192.0.2.10", "netmask": "255.255.255.0",
                  "mac": "02:00:00:00:00:01"}],
        "filesystems": [{"source": "/srv/a", "target": "/a", "type": "nullfs"}]
    }))
    .expect("literal object");
    let checked = spec::check(&input, Action::Create);
    let zonepath = format!("/zones/{VM_UUID}");
    let ctx = CreateContext {
        uuid: VM_UUID,
        default_pool: "zones",
        zonepath: &zonepath,
        now: "2026-11-30T12:00:00.000Z",
    };
    new_vm_record(&checked.payload, &ctx)
}

/// Strings that mean something to some property.
const WORDS: &[&str] = &[
    "",
    "jail",
    "lx",
    "joyent",
    "joyent-minimal",
    "bhyve",
    "kvm",
    VM_UUID,
    IMAGE_UUID,
    "00000000-0000-0000-0000-000000000000",
    "admin",
    "external",
    "02:00:00:00:00:01",
    "2:0:0:0:0:1",
    "ff:ff:ff:ff:ff:ff",
    "192.0.2.10",
    "192.0.2.10/24",
    "255.255.255.0",
    "198.51.100.1",
    "dhcp",
    "addrconf",
    "2001:db8::1/64",
    "true",
    "false",
    "0",
    "-1",
    "1.5",
    "18446744073709551616",
    "1e400",
    "a,b,,c",
    "/srv/a",
    "/a",
    "../..",
    "/",
    "nullfs",
    "lofs",
    "ro",
    "rw",
    "nosuid",
    "default",
    "zones",
    "zones/x",
    "on",
    "off",
    "lz4",
    "host.example",
    "é",
    "\u{0}",
    "💥",
];

fn key(u: &mut Unstructured) -> Result<String> {
    let tables = [props::PROPS, props::NIC_PROPS, props::FS_PROPS];
    Ok(match u.int_in_range(0..=9)? {
        0 => u.arbitrary::<String>()?,
        1..=5 => u.choose(props::PROPS)?.name.to_string(),
        _ => {
            let table = *u.choose(&tables)?;
            u.choose(table)?.name.to_string()
        }
    })
}

fn string(u: &mut Unstructured) -> Result<String> {
    Ok(match u.int_in_range(0..=3)? {
        0 => u.arbitrary::<String>()?,
        1 => {
            // Long values stress length limits without a huge input.
            let w = u.choose(WORDS)?;
            w.repeat(u.int_in_range(1..=400)?)
        }
        _ => u.choose(WORDS)?.to_string(),
    })
}

/// A JSON value of any type, biased to property names and meaningful
/// strings and numbers; nesting stops at `depth` 6.
pub fn value(u: &mut Unstructured, depth: u32) -> Result<Value> {
    let top = if depth >= 6 { 6 } else { 8 };
    Ok(match u.int_in_range(0..=top)? {
        0 => Value::Null,
        1 => Value::Bool(u.arbitrary()?),
        2 => {
            Value::from(*u.choose(&[0i64, 1, -1, 2, 64, 1024, i64::MIN, i64::MAX, 4096, 65535])?)
        }
        3 => Value::from(u.arbitrary::<u64>()?),
        4 => {
            let f: f64 = u.arbitrary()?;
            Number::from_f64(f).map_or(Value::Null, Value::Number)
        }
        5 | 6 => Value::String(string(u)?),
        7 => {
            let n = u.int_in_range(0..=4)?;
            Value::Array((0..n).map(|_| value(u, depth + 1)).collect::<Result<_>>()?)
        }
        _ => Value::Object(object(u, depth + 1)?),
    })
}

/// An object with mostly known property names.
pub fn object(u: &mut Unstructured, depth: u32) -> Result<Map<String, Value>> {
    let mut m = Map::new();
    let n = u.int_in_range(0..=8)?;
    for _ in 0..n {
        let k = key(u)?;
        let v = value(u, depth)?;
        m.insert(k, v);
    }
    Ok(m)
}
