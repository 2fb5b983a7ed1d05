//! Criterion benchmarks of the hot pure functions behind `vmadm`: payload
//! validation, building the VM record, reading record files into typed
//! records and turning them into what `get`/`list` show, and the list query
//! pipeline (filter, sort, render) over 1000 VM objects.

// Benchmark code: a failed unwrap/expect aborts the run with its location.
#![allow(clippy::unwrap_used, clippy::expect_used)]
// `criterion_group!` defines `pub fn benches`, which cannot carry a doc comment.
#![allow(missing_docs)]

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use rvmadm::ops::query::{parse_columns, parse_sort, render_table, sort_vms, Filter};
use rvmadm::ops::view::{full_object, unordered_object};
use rvmadm::spec::object::{new_vm_record, CreateContext};
use rvmadm::spec::{check, Action, VmRecord};
use rvmadm::store::{decode, Record};
use serde_json::{json, Map, Value};

fn payload() -> Map<String, Value> {
    json!({
        "brand": "jail", "image_uuid": "11111111-2222-4333-8444-555555555555",
        "alias": "web01", "hostname": "web01", "ram": 1024, "quota": 20, "cpu_cap": 200,
        "resolvers": ["192.0.2.53", "192.0.2.54"],
        "nics": [{"nic_tag": "admin", "ips": ["192.0.2.10/24"], "gateways": ["192.0.2.1"], "vlan_id": 12},
                 {"nic_tag": "internal", "ip": "198.51.100.10", "netmask": "255.255.255.0"}],
        "customer_metadata": {"user-script": "#!/bin/sh\necho hi"}, "tags": {"role": "web"}
    })
    .as_object()
    .cloned()
    .unwrap_or_default()
}

fn records(n: usize) -> Vec<VmRecord> {
    let checked = check(&payload(), Action::Create);
    (0..n)
        .map(|i| {
            let uuid = format!("{i:08x}-0000-4000-8000-000000000000");
            new_vm_record(
                &checked.payload,
                &CreateContext {
                    uuid: &uuid,
                    default_pool: "zones",
                    zonepath: "/zones/x",
                    now: "2026-01-01T00:00:00.000Z",
                },
            )
        })
        .collect()
}

fn vms(n: usize) -> Vec<Map<String, Value>> {
    records(n)
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            let mut o = r.into_map();
            o.insert("state".into(), "running".into());
            o.insert("type".into(), "OS".into());
            o.insert("ram".into(), ((i % 4 + 1) * 256).into());
            o
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let p = payload();
    c.bench_function("validate create payload", |b| {
        b.iter(|| check(black_box(&p), Action::Create))
    });
    let checked = check(&p, Action::Create);
    c.bench_function("build VM object", |b| {
        b.iter(|| {
            new_vm_record(
                black_box(&checked.payload),
                &CreateContext {
                    uuid: "6b8b4567-327b-4c4e-8d8e-1b2c3d4e5f60",
                    default_pool: "zones",
                    zonepath: "/zones/x",
                    now: "2026-01-01T00:00:00.000Z",
                },
            )
        })
    });
    let all = vms(1000);
    let cols = parse_columns("uuid,type,ram,state,alias").unwrap_or_default();
    let sort = parse_sort("ram,uuid").unwrap_or_default();
    c.bench_function("list 1000: sort + render", |b| {
        b.iter_batched(
            || all.clone(),
            |mut v| {
                sort_vms(&mut v, &sort);
                render_table(&v, &cols, false, true)
            },
            criterion::BatchSize::LargeInput,
        )
    });
    let filters: Vec<Filter> = ["alias=~^web", "nics.*.ip=192.0.2.10", "tags.role=web"]
        .iter()
        .filter_map(|f| Filter::parse(f, false).ok())
        .collect();
    c.bench_function("list 1000: three filters", |b| {
        b.iter(|| {
            all.iter()
                .filter(|vm| filters.iter().all(|f| f.matches(vm)))
                .count()
        })
    });
    let stored = records(1000);
    let text: Vec<String> = stored
        .iter()
        .map(|vm| {
            serde_json::to_string(&json!({"record_version": 1, "vm": vm})).unwrap_or_default()
        })
        .collect();
    c.bench_function("parse 1000 records", |b| {
        b.iter(|| {
            text.iter()
                .filter_map(|t| decode(t.as_bytes()).ok())
                .count()
        })
    });
    c.bench_function("view 1000 records (get order)", |b| {
        b.iter_batched(
            || stored.clone(),
            |recs| {
                recs.into_iter()
                    .map(|vm| full_object(Record { vm }, None, None).len())
                    .sum::<usize>()
            },
            criterion::BatchSize::LargeInput,
        )
    });
    // What `vmadm list` reads by default: its columns and sort keys.
    let wanted: Vec<String> = [
        "uuid",
        "brand",
        "max_physical_memory",
        "type",
        "ram",
        "state",
        "alias",
    ]
    .map(String::from)
    .to_vec();
    c.bench_function("view 1000 records (list columns)", |b| {
        b.iter_batched(
            || stored.clone(),
            |recs| {
                recs.into_iter()
                    .map(|vm| unordered_object(Record { vm }, None, None, Some(&wanted)).len())
                    .sum::<usize>()
            },
            criterion::BatchSize::LargeInput,
        )
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
