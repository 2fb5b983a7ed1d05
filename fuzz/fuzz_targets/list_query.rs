//! `vmadm list/lookup` arguments: `key=value` filters, `-s` sort keys and
//! `-o` columns, applied to VM objects (a few fixed ones and any the input
//! brings as JSON). Sorting must keep every VM.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rvmadm::ops::query::{parse_columns, parse_sort, render_table, sort_vms, Filter};
use serde_json::{json, Map, Value};

fn fixed() -> Vec<Map<String, Value>> {
    [
        json!({"uuid": "6f4c1d2e-8a3b-4c5d-9e0f-1a2b3c4d5e6f", "alias": "web", "ram": 512, "quota": 1.5,
               "state": "running", "tags": {"role": "db", "n": 2},
               "nics": [{"mac": "02:00:00:00:00:01", "ip": "192.0.2.10", "primary": true}]}),
        json!({"uuid": "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d", "alias": null, "ram": "512", "quota": -3,
               "state": "stopped", "tags": [], "nics": [{"mac": "2:0:0:0:0:1"}, 7]}),
        json!({"uuid": "x", "ram": 1e300, "quota": true, "customer_metadata": {"a.b": "c"}}),
    ]
    .into_iter()
    .filter_map(|v| v.as_object().cloned())
    .collect()
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut parts = text.split('\0');
    let filters = parts.next().unwrap_or_default();
    let sort = parts.next();
    let columns = parts.next();
    let mut vms = fixed();
    if let Some(Ok(Value::Array(extra))) = parts.next().map(serde_json::from_str::<Value>) {
        vms.extend(extra.into_iter().filter_map(|v| v.as_object().cloned()));
    }
    let mut kept = Vec::new();
    for line in filters.lines() {
        for lookup in [false, true] {
            if let Ok(f) = Filter::parse(line, lookup) {
                kept.push(f);
            }
        }
    }
    vms.retain(|vm| kept.iter().all(|f| f.matches(vm)));
    if let Some(Ok(keys)) = sort.map(parse_sort) {
        let n = vms.len();
        sort_vms(&mut vms, &keys);
        assert_eq!(vms.len(), n, "sorting lost VMs");
    }
    let cols = columns
        .and_then(|c| parse_columns(c).ok())
        .unwrap_or_else(|| vec!["uuid".into(), "alias".into(), "ram".into()]);
    for parsable in [false, true] {
        let _ = render_table(&vms, &cols, parsable, true);
    }
});
