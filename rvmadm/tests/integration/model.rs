//! Model-based test: random sequences of vmadm commands, each run as its own
//! process against a real ZFS pool, compared after every step with a naive
//! in-memory model of what vmadm should hold. proptest shrinks a failing
//! sequence to a minimal one; a crash is just another mismatch.

use crate::harness::{stderr, stdout, Env};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::json;
use std::collections::BTreeMap;

const IMAGE: &str = "a1b2c3d4-0000-4000-8000-00000000000b";

/// What the model remembers of one VM.
#[derive(Debug, Clone, PartialEq)]
struct ModelVm {
    alias: String,
    ram: u64,
    quota: u64,
    tags: BTreeMap<String, u64>,
}

#[derive(Debug, Clone)]
enum Op {
    /// Create with alias index, ram, quota.
    Create(u8, u64, u64),
    /// Update the n-th existing VM (modulo count).
    SetAlias(usize, u8),
    SetRam(usize, u64),
    SetTag(usize, u8, u64),
    RemoveTag(usize, u8),
    /// An invalid update: must change nothing.
    BadQuota(usize),
    Delete(usize),
    /// Operations on a uuid that does not exist.
    GetMissing,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0u8..4, prop::sample::select(vec![128u64, 256, 512, 1024]), 0u64..4)
            .prop_map(|(a, r, q)| Op::Create(a, r, q)),
        2 => (any::<usize>(), 0u8..4).prop_map(|(i, a)| Op::SetAlias(i, a)),
        1 => (any::<usize>(), prop::sample::select(vec![64u64, 300, 2048])).prop_map(|(i, r)| Op::SetRam(i, r)),
        2 => (any::<usize>(), 0u8..3, 0u64..100).prop_map(|(i, k, v)| Op::SetTag(i, k, v)),
        1 => (any::<usize>(), 0u8..3).prop_map(|(i, k)| Op::RemoveTag(i, k)),
        1 => any::<usize>().prop_map(Op::BadQuota),
        2 => any::<usize>().prop_map(Op::Delete),
        1 => Just(Op::GetMissing),
    ]
}

fn pick(model: &BTreeMap<String, ModelVm>, i: usize) -> Option<String> {
    if model.is_empty() {
        None
    } else {
        model.keys().nth(i % model.len()).cloned()
    }
}

/// Runs one sequence; returns a description of the first mismatch.
fn run_sequence(env: &Env, ops: &[Op]) -> Result<(), String> {
    let mut model: BTreeMap<String, ModelVm> = BTreeMap::new();
    for (step, op) in ops.iter().enumerate() {
        let ctx = |what: &str| format!("step {step} {op:?}: {what}");
        match op {
            Op::Create(a, ram, quota) => {
                let alias = format!("vm{a}");
                let p = json!({"brand": "jail", "image_uuid": IMAGE, "autoboot": false,
                               "alias": alias, "ram": ram, "quota": quota});
                let o = env.vmadm_in(&["create"], &p.to_string());
                if o.status.code() != Some(0) {
                    return Err(ctx(&format!("create failed: {}", stderr(&o))));
                }
                let uuid = stderr(&o)
                    .trim()
                    .trim_start_matches("Successfully created VM ")
                    .to_string();
                model.insert(
                    uuid,
                    ModelVm {
                        alias,
                        ram: *ram,
                        quota: *quota,
                        tags: BTreeMap::new(),
                    },
                );
            }
            Op::SetAlias(i, _) | Op::SetRam(i, _) | Op::SetTag(i, _, _) | Op::RemoveTag(i, _)
                if pick(&model, *i).is_some() =>
            {
                let uuid = pick(&model, *i).unwrap_or_default();
                let vm = model.get_mut(&uuid).ok_or_else(|| ctx("model lost a vm"))?;
                let o = match op {
                    Op::SetAlias(_, a) => {
                        vm.alias = format!("vm{a}");
                        env.vmadm(&["update", &uuid, &format!("alias=vm{a}")])
                    }
                    Op::SetRam(_, ram) => {
                        vm.ram = *ram;
                        env.vmadm(&["update", &uuid, &format!("ram={ram}")])
                    }
                    Op::SetTag(_, k, v) => {
                        vm.tags.insert(format!("k{k}"), *v);
                        let p = json!({"set_tags": {format!("k{k}"): v}});
                        env.vmadm_in(&["update", &uuid], &p.to_string())
                    }
                    Op::RemoveTag(_, k) => {
                        vm.tags.remove(&format!("k{k}"));
                        let p = json!({"remove_tags": [format!("k{k}")]});
                        env.vmadm_in(&["update", &uuid], &p.to_string())
                    }
                    _ => return Err(ctx("unreachable update op")),
                };
                if o.status.code() != Some(0) {
                    return Err(ctx(&format!("update failed: {}", stderr(&o))));
                }
            }
            Op::BadQuota(i) => {
                if let Some(uuid) = pick(&model, *i) {
                    let o = env.vmadm(&["update", &uuid, "quota=-3"]);
                    if o.status.code() != Some(1) {
                        return Err(ctx("bad quota was not refused"));
                    }
                }
            }
            Op::Delete(i) => {
                if let Some(uuid) = pick(&model, *i) {
                    let o = env.vmadm(&["delete", &uuid]);
                    if o.status.code() != Some(0) {
                        return Err(ctx(&format!("delete failed: {}", stderr(&o))));
                    }
                    model.remove(&uuid);
                }
            }
            Op::GetMissing => {
                let o = env.vmadm(&["get", "99999999-0000-4000-8000-000000000000"]);
                if o.status.code() != Some(1) {
                    return Err(ctx("get of a missing vm did not fail"));
                }
            }
            _ => {} // an update with no VM to update
        }
        compare(env, &model).map_err(|e| ctx(&e))?;
    }
    Ok(())
}

/// The real state (list, tags, ZFS datasets and quotas) against the model.
fn compare(env: &Env, model: &BTreeMap<String, ModelVm>) -> Result<(), String> {
    let o = env.vmadm(&["list", "-p", "-o", "uuid,alias,ram,quota", "-s", "uuid"]);
    let want: String = model
        .iter()
        .map(|(u, vm)| format!("{u}:{}:{}:{}\n", vm.alias, vm.ram, vm.quota))
        .collect();
    if stdout(&o) != want {
        return Err(format!("list shows\n{}model has\n{want}", stdout(&o)));
    }
    let datasets = env.datasets();
    for (uuid, vm) in model {
        let ds = format!("{}/{uuid}", env.pool);
        if !datasets.contains(&ds) {
            return Err(format!("dataset {ds} missing"));
        }
        let quota = crate::harness::zfs(&["get", "-H", "-o", "value", "quota", &ds]);
        let want_quota = if vm.quota == 0 {
            "none".to_string()
        } else {
            format!("{}G", vm.quota)
        };
        if quota.trim() != want_quota {
            return Err(format!("{ds} quota {} != {want_quota}", quota.trim()));
        }
        {
            let o = env.vmadm(&["get", uuid]);
            let got: serde_json::Value =
                serde_json::from_slice(&o.stdout).map_err(|e| format!("get {uuid}: {e}"))?;
            let want_tags: serde_json::Value = vm
                .tags
                .iter()
                .map(|(k, v)| (k.clone(), json!(v)))
                .collect::<serde_json::Map<_, _>>()
                .into();
            if got["tags"] != want_tags {
                return Err(format!("{uuid} tags {} != {want_tags}", got["tags"]));
            }
        }
    }
    let vm_datasets = datasets
        .iter()
        .filter(|d| d.len() == env.pool.len() + 37 && !d.contains(IMAGE))
        .count();
    if vm_datasets != model.len() {
        return Err(format!(
            "{vm_datasets} VM datasets in the pool, model has {}",
            model.len()
        ));
    }
    Ok(())
}

#[test]
fn random_command_sequences_match_the_model() {
    if Env::new().is_none() {
        return;
    }
    let mut runner = TestRunner::new(Config {
        cases: 12,
        max_shrink_iters: 64,
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&prop::collection::vec(op(), 1..14), |ops| {
        let env = Env::new().ok_or_else(|| TestCaseError::fail("no ZFS"))?;
        env.fake_image_dataset(IMAGE);
        run_sequence(&env, &ops).map_err(TestCaseError::fail)
    });
    if let Err(e) = result {
        panic!("model mismatch: {e}");
    }
}
