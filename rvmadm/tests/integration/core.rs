//! The core verbs through the real `vmadm` binary on a real ZFS pool:
//! create/get/list/lookup/update/delete/validate/snapshots, and every kind
//! of bad input leaving disk and pool exactly as they were.

use crate::harness::{assert_exit, stderr, stdout, zfs, Env};
use serde_json::{json, Value};

const IMAGE: &str = "a1b2c3d4-0000-4000-8000-00000000000a";

fn env_with_image() -> Option<Env> {
    let env = Env::new()?;
    env.fake_image_dataset(IMAGE);
    Some(env)
}

fn payload(extra: Value) -> String {
    let mut p = json!({"brand": "jail", "image_uuid": IMAGE, "autoboot": false});
    for (k, v) in extra.as_object().unwrap() {
        p[k] = v.clone();
    }
    p.to_string()
}

/// Creates a VM and returns its uuid.
fn create(env: &Env, extra: Value) -> String {
    let o = env.vmadm_in(&["create"], &payload(extra));
    assert_exit(&o, 0);
    let msg = stderr(&o);
    let uuid = msg
        .trim()
        .strip_prefix("Successfully created VM ")
        .unwrap_or_else(|| panic!("unexpected create message {msg:?}"))
        .to_string();
    assert_eq!(uuid.len(), 36);
    assert!(stdout(&o).is_empty(), "create printed data on stdout");
    uuid
}

fn get(env: &Env, uuid: &str) -> Value {
    let o = env.vmadm(&["get", uuid]);
    assert_exit(&o, 0);
    serde_json::from_slice(&o.stdout).expect("get prints JSON")
}

#[test]
fn create_get_update_delete_round_trip() {
    let Some(env) = env_with_image() else { return };
    let uuid = create(
        &env,
        json!({"alias": "web01", "hostname": "web01", "quota": 2, "ram": 512,
               "nics": [{"nic_tag": "admin", "ips": ["192.0.2.10/24"], "gateways": ["192.0.2.1"]}],
               "customer_metadata": {"role": "web"}, "unknown_thing": 1}),
    );
    let ds = format!("{}/{}", env.pool, uuid);
    assert!(env.datasets().contains(&ds));
    assert_eq!(
        zfs(&["get", "-H", "-o", "value", "quota", &ds]).trim(),
        "2G"
    );
    assert_eq!(
        zfs(&["get", "-H", "-o", "value", "origin", &ds]).trim(),
        format!("{}/{IMAGE}@final", env.pool)
    );

    let vm = get(&env, &uuid);
    assert_eq!(vm["uuid"], json!(uuid));
    assert_eq!(vm["state"], json!("stopped"));
    assert_eq!(vm["zone_state"], json!("installed"));
    assert_eq!(vm["max_physical_memory"], json!(512));
    assert_eq!(vm["max_swap"], json!(512));
    assert_eq!(vm["quota"], json!(2));
    assert_eq!(vm["zfs_filesystem"], json!(ds));
    assert_eq!(
        vm["zonepath"],
        json!(env.mountpoint(&ds).display().to_string())
    );
    assert_eq!(vm["nics"][0]["interface"], json!("net0"));
    assert_eq!(vm["nics"][0]["primary"], json!(true));
    assert_eq!(vm["customer_metadata"]["role"], json!("web"));
    assert!(vm.get("unknown_thing").is_none());
    assert!(vm.get("ram").is_none(), "ram is a list-only field");
    // 2-space JSON with a trailing newline.
    let raw = stdout(&env.vmadm(&["get", &uuid]));
    assert!(raw.starts_with("{\n  \"zonename\""), "{raw}");
    assert!(raw.ends_with("}\n"));

    // key=value update, flags after the uuid are fine too.
    let o = env.vmadm(&[
        "update",
        &uuid,
        "alias=db01",
        "quota=5",
        "cpu_cap=150",
        "bogus=1",
    ]);
    assert_exit(&o, 0);
    assert_eq!(stderr(&o).trim(), format!("Successfully updated VM {uuid}"));
    let vm = get(&env, &uuid);
    assert_eq!(vm["alias"], json!("db01"));
    assert_eq!(vm["cpu_cap"], json!(150));
    assert_eq!(
        zfs(&["get", "-H", "-o", "value", "quota", &ds]).trim(),
        "5G"
    );

    // JSON update with set_/remove_ and nic changes.
    let mac = vm["nics"][0]["mac"].as_str().unwrap().to_string();
    let upd = json!({"set_customer_metadata": {"a": "1"}, "remove_customer_metadata": ["role"],
                     "set_tags": {"env": "prod"}, "resolvers": ["192.0.2.53"],
                     "update_nics": [{"mac": mac, "vlan_id": 12}],
                     "add_nics": [{"nic_tag": "internal", "ips": ["198.51.100.5/24"]}],
                     "cpu_cap": null, "quota": 0});
    let o = env.vmadm_in(&["update", &uuid], &upd.to_string());
    assert_exit(&o, 0);
    let vm = get(&env, &uuid);
    assert_eq!(vm["customer_metadata"], json!({"a": "1"}));
    assert_eq!(vm["tags"], json!({"env": "prod"}));
    assert_eq!(vm["resolvers"], json!(["192.0.2.53"]));
    assert_eq!(vm["nics"][0]["vlan_id"], json!(12));
    assert_eq!(vm["nics"][1]["interface"], json!("net1"));
    assert!(vm.get("cpu_cap").is_none());
    assert_eq!(
        zfs(&["get", "-H", "-o", "value", "quota", &ds]).trim(),
        "none"
    );

    let o = env.vmadm(&["delete", &uuid]);
    assert_exit(&o, 0);
    assert_eq!(stderr(&o).trim(), format!("Successfully deleted VM {uuid}"));
    assert!(!env.datasets().contains(&ds));
    assert!(env
        .state_files()
        .iter()
        .all(|p| !p.to_string_lossy().contains(&format!("{uuid}.json"))));
    let o = env.vmadm(&["get", &uuid]);
    assert_exit(&o, 1);
    assert_eq!(
        stderr(&o).trim(),
        format!("zoneadm: {uuid}: No such zone configured")
    );
    // The image is still there.
    assert!(env
        .datasets()
        .contains(&format!("{}/{IMAGE}@final", env.pool)));
}

#[test]
fn create_from_file_and_given_uuid() {
    let Some(env) = env_with_image() else { return };
    let uuid = "0d9a4a76-5c39-4f0b-9b5f-2ed7c2a5e001";
    let file = env.root().join("payload.json");
    std::fs::write(&file, payload(json!({"uuid": uuid}))).unwrap();
    let o = env.vmadm(&["create", "-f", file.to_str().unwrap()]);
    assert_exit(&o, 0);
    assert_eq!(get(&env, uuid)["uuid"], json!(uuid));
    // The same uuid again is refused, and nothing changes.
    let before = (env.state_files(), env.datasets());
    let o = env.vmadm(&["create", "-f", file.to_str().unwrap()]);
    assert_exit(&o, 1);
    assert!(stderr(&o).contains(&format!("VM with UUID {uuid} already exists")));
    assert_eq!(before, (env.state_files(), env.datasets()));
}

#[test]
fn vm_datasets_have_devices_off_and_a_private_zonepath() {
    use std::os::unix::fs::PermissionsExt;
    let Some(env) = env_with_image() else { return };
    let uuid = create(&env, json!({}));
    let ds = format!("{}/{}", env.pool, uuid);
    assert_eq!(
        zfs(&["get", "-H", "-o", "value", "devices", &ds]).trim(),
        "off"
    );
    // The zonepath create derived (pool mountpoint + uuid) is where zfs
    // mounted the clone, and is 0700 as on SmartOS.
    let zonepath = get(&env, &uuid)["zonepath"].as_str().unwrap().to_string();
    assert_eq!(zonepath, env.mountpoint(&ds).display().to_string());
    let mode = std::fs::metadata(&zonepath).unwrap().permissions().mode();
    assert_eq!(mode & 0o7777, 0o700, "{mode:o}");
    // A missing image and a missing pool still say so, from the clone's
    // own error; nothing is left behind.
    let before = (env.state_files(), env.datasets());
    let other = "b1b2c3d4-0000-4000-8000-00000000000b";
    let o = env.vmadm_in(&["create"], &payload(json!({"image_uuid": other})));
    assert_exit(&o, 1);
    assert!(
        stderr(&o).contains(&format!("image {other} is not installed")),
        "{}",
        stderr(&o)
    );
    let o = env.vmadm_in(&["create"], &payload(json!({"zpool": "f-no-such-pool"})));
    assert_exit(&o, 1);
    assert!(
        stderr(&o).contains("zpool f-no-such-pool does not exist"),
        "{}",
        stderr(&o)
    );
    assert_eq!(before, (env.state_files(), env.datasets()));
    assert_exit(&env.vmadm(&["delete", &uuid]), 0);
}

#[test]
fn vmadm_images_runs_imgadm() {
    let Some(env) = Env::new() else { return };
    let direct = env.run("imgadm", &["list", "-H"], None);
    let through = env.vmadm(&["images", "list", "-H"]);
    assert_exit(&through, direct.status.code().unwrap_or(-1));
    assert_eq!(stdout(&through), stdout(&direct));
    // Exit codes come through unchanged (3: image not installed).
    let o = env.vmadm(&["images", "get", "b1b2c3d4-0000-4000-8000-00000000000b"]);
    assert_exit(&o, 3);
}

#[test]
fn bad_input_is_refused_and_changes_nothing() {
    let Some(env) = env_with_image() else { return };
    let keep = create(&env, json!({"alias": "keep"}));
    let before = (env.state_files(), env.datasets());
    let huge = format!(
        "{{\"brand\":\"jail\",\"image_uuid\":\"{IMAGE}\",\"alias\":\"{}\"}}",
        "x".repeat(10 << 20)
    );
    let cases: Vec<(String, &str)> = vec![
        ("not json".into(), "Invalid JSON payload"),
        ("[1,2]".into(), "not a JSON object"),
        ("\"str\"".into(), "not a JSON object"),
        (
            payload(json!({"brand": "plan9"})),
            "Invalid value(s) for: brand",
        ),
        (
            payload(json!({"brand": "kvm"})),
            "Invalid value(s) for: brand",
        ),
        (
            payload(json!({"image_uuid": "../../etc"})),
            "Invalid value(s) for: image_uuid",
        ),
        (
            payload(json!({"uuid": "not-a-uuid"})),
            "Invalid value(s) for: uuid",
        ),
        (payload(json!({"ram": -5})), "Invalid value(s) for: ram"),
        (
            payload(json!({"quota": 1e30})),
            "Invalid value(s) for: quota",
        ),
        (
            payload(json!({"max_physical_memory": "lots"})),
            "Invalid value(s) for: max_physical_memory",
        ),
        (
            payload(json!({"autoboot": [true]})),
            "Invalid value(s) for: autoboot",
        ),
        (
            payload(json!({"hostname": "a;reboot"})),
            "Invalid value(s) for: hostname",
        ),
        (
            payload(json!({"hostname": "$(touch /tmp/pwned)"})),
            "Invalid value(s) for: hostname",
        ),
        (
            payload(json!({"hostname": "../../x"})),
            "Invalid value(s) for: hostname",
        ),
        (
            payload(json!({"hostname": "a\nb"})),
            "Invalid value(s) for: hostname",
        ),
        (
            payload(json!({"alias": "a\u{0}b"})),
            "Invalid value(s) for: alias",
        ),
        (
            payload(json!({"alias": ".."})),
            "Invalid value(s) for: alias",
        ),
        (
            payload(json!({"alias": "a/b"})),
            "Invalid value(s) for: alias",
        ),
        (
            payload(json!({"alias": "`id`"})),
            "Invalid value(s) for: alias",
        ),
        (
            payload(json!({"nics": [{"nic_tag": "admin", "vlan_id": 99999}]})),
            "Invalid value(s) for: nics.*.vlan_id",
        ),
        (
            json!({"brand": "jail"}).to_string(),
            "Missing required properties: image_uuid",
        ),
        (
            payload(json!({"image_uuid": "ffffffff-0000-4000-8000-000000000000"})),
            "imgadm import ffffffff-0000-4000-8000-000000000000",
        ),
        (huge, "larger than"),
    ];
    for (input, want) in cases {
        let o = env.vmadm_in(&["create"], &input);
        assert_exit(&o, 1);
        assert!(
            stderr(&o).contains(want),
            "input {:.80}: wanted {want:?}, got {:?}",
            input,
            stderr(&o)
        );
        assert_eq!(
            before,
            (env.state_files(), env.datasets()),
            "input {input:.80} changed state"
        );
    }
    // An unreadable -f file.
    let o = env.vmadm(&["create", "-f", "/nonexistent/payload.json"]);
    assert_exit(&o, 1);
    assert_eq!(
        stderr(&o).trim(),
        "File: /nonexistent/payload.json does not exist."
    );
    // Invalid UUID arguments are usage errors.
    for args in [
        vec!["get", "nope"],
        vec!["delete", "../../etc"],
        vec!["update", "x", "alias=a"],
        vec!["start", ""],
    ] {
        let o = env.vmadm(&args);
        assert_exit(&o, 2);
        assert!(
            stderr(&o).contains("Invalid or missing UUID"),
            "{args:?}: {}",
            stderr(&o)
        );
    }
    // Bad updates.
    for (pairs, want) in [
        (vec!["quota=-1"], "Invalid value(s) for: quota"),
        (vec!["hostname=a b"], "Invalid value(s) for: hostname"),
        (vec!["noequals"], "expected key=value"),
    ] {
        let mut args = vec!["update", keep.as_str()];
        args.extend(pairs);
        let o = env.vmadm(&args);
        assert!(stderr(&o).contains(want), "{args:?}: {}", stderr(&o));
        assert_ne!(o.status.code(), Some(0));
    }
    let o = env.vmadm_in(
        &["update", &keep],
        "{\"update_nics\": [{\"mac\": \"02:00:00:00:00:99\", \"vlan_id\": 1}]}",
    );
    assert_exit(&o, 1);
    assert!(stderr(&o).contains("no existing NIC"));
    assert_eq!(before, (env.state_files(), env.datasets()));
    assert_eq!(get(&env, &keep)["alias"], json!("keep"));
}

#[test]
fn unknown_command_and_help() {
    let Some(env) = Env::new() else { return };
    let o = env.vmadm(&["frobnicate"]);
    assert_exit(&o, 2);
    assert!(stderr(&o).contains("Invalid command: \"frobnicate\"."));
    let o = env.vmadm(&["--help"]);
    assert_exit(&o, 0);
    assert!(stdout(&o).contains("create"));
    let o = env.vmadm(&["list", "-h"]);
    assert_exit(&o, 0);
}

#[test]
fn validate_speaks_smartos() {
    let Some(env) = Env::new() else { return };
    let o = env.vmadm_in(&["validate", "create"], &payload(json!({})));
    assert_exit(&o, 0);
    assert_eq!(
        stderr(&o).trim(),
        "VALID 'create' payload for jail brand VMs."
    );
    let o = env.vmadm_in(
        &["validate", "create"],
        &payload(json!({"quota": "x", "foo": 1, "nics": [{"nic_tag": "a", "bar": 1}]})),
    );
    assert_exit(&o, 1);
    let errs: Value = serde_json::from_slice(&o.stderr).unwrap();
    assert_eq!(
        errs,
        json!({"bad_values": ["quota"], "bad_properties": ["foo", "nics.*.bar"], "missing_properties": []})
    );
    let o = env.vmadm_in(&["validate", "create"], "{\"brand\": \"bhyve\"}");
    assert_exit(&o, 1);
    assert_eq!(
        serde_json::from_slice::<Value>(&o.stderr).unwrap(),
        json!({"bad_brand": "bhyve"})
    );
    let o = env.vmadm_in(&["validate", "update", "joyent"], "{\"alias\": \"x\"}");
    assert_exit(&o, 0);
    assert_eq!(
        stderr(&o).trim(),
        "VALID 'update' payload for joyent brand VMs."
    );
    let o = env.vmadm_in(&["validate", "update"], "{}");
    assert_exit(&o, 2);
}

#[test]
fn list_and_lookup_like_smartos() {
    let Some(env) = env_with_image() else { return };
    let a = create(
        &env,
        json!({"alias": "alpha", "ram": 1024, "tags": {"role": "db"}, "nics": [{"nic_tag": "admin", "ips": ["192.0.2.20/24"]}]}),
    );
    let b = create(&env, json!({"alias": "beta", "ram": 512, "brand": "lx"}));
    let c = create(&env, json!({"ram": 512, "brand": "joyent-minimal"}));

    let o = env.vmadm(&["list"]);
    assert_exit(&o, 0);
    let lines: Vec<String> = stdout(&o).lines().map(str::to_string).collect();
    assert_eq!(
        lines[0],
        format!(
            "{:<36}  {:<4}  {:<7}  {:<16}  ALIAS",
            "UUID", "TYPE", "RAM", "STATE"
        )
    );
    // Default sort ram,uuid: the two 512s by uuid, then 1024.
    let (first, second) = if b < c { (&b, &c) } else { (&c, &b) };
    assert!(lines[1].starts_with(first.as_str()));
    assert!(lines[2].starts_with(second.as_str()));
    assert_eq!(
        lines[3],
        format!("{a}  OS    1024     stopped           alpha")
    );
    let beta = lines.iter().find(|l| l.starts_with(&b)).unwrap();
    assert!(beta.contains("  LX  "), "{beta}");
    let nameless = lines.iter().find(|l| l.starts_with(&c)).unwrap();
    assert!(nameless.ends_with("stopped           -"), "{nameless:?}");

    let o = env.vmadm(&["list", "-p", "-o", "alias,ram", "-s", "-ram,alias"]);
    // A missing (falsy) value sorts after a present one, as in SmartOS.
    assert_eq!(stdout(&o), "alpha:1024\nbeta:512\n:512\n");
    let o = env.vmadm(&["list", "-H", "-o", "uuid", "alias=~^AL"]);
    assert_eq!(stdout(&o).trim(), a);
    let o = env.vmadm(&[
        "list",
        "-H",
        "-o",
        "uuid",
        "nics.*.ip=192.0.2.20",
        "tags.role=db",
        "type=OS",
    ]);
    assert_eq!(stdout(&o).trim(), a);
    let o = env.vmadm(&[
        "list",
        "-o",
        "uuid,nics.0.ip,tags.role",
        "uuid=".to_string().as_str(),
    ]);
    assert_eq!(stdout(&o).lines().count(), 1, "header only: {}", stdout(&o));
    assert!(stdout(&o).contains("NICS.0.IP"));
    for (args, want) in [
        (vec!["list", "-o", "bogus"], "invalid order field: bogus"),
        (vec!["list", "-s", "bogus"], "invalid sort field: bogus"),
        (vec!["list", "bogus=1"], "Invalid filter key: \"bogus\""),
        (vec!["lookup", "bogus=1"], "Invalid lookup key: \"bogus\""),
        (vec!["lookup", "-o", "uuid"], "Cannot specify -o without -j"),
        (
            vec!["lookup", "-1", "type=OS"],
            "Requested unique lookup but found 2 results.",
        ),
    ] {
        let o = env.vmadm(&args);
        assert_exit(&o, 1);
        assert!(stderr(&o).contains(want), "{args:?}: {}", stderr(&o));
    }
    let o = env.vmadm(&["lookup", "ram=512"]);
    let mut want = [b.clone(), c.clone()];
    want.sort();
    assert_eq!(stdout(&o), format!("{}\n{}\n", want[0], want[1]));
    let o = env.vmadm(&["lookup", "-j", "alias=nomatch"]);
    assert_exit(&o, 0);
    assert_eq!(stdout(&o).trim(), "[]");
    let o = env.vmadm(&["lookup", "-j", "-1", "alias=beta"]);
    let objs: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(objs[0]["uuid"], json!(b));
    assert_eq!(objs[0]["type"], json!("LX"));
    assert_eq!(objs[0]["ram"], json!(512));
    let o = env.vmadm(&["lookup", "-j", "-o", "uuid,alias", "alias=~a"]);
    let objs: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(objs.as_array().unwrap().len(), 2);
    assert_eq!(objs[0].as_object().unwrap().len(), 2);
}

#[test]
fn corrupt_record_is_reported_and_others_still_listed() {
    let Some(env) = env_with_image() else { return };
    let good = create(&env, json!({"alias": "good"}));
    let bad = "5a5a5a5a-0000-4000-8000-000000000bad";
    std::fs::write(
        env.root().join(format!("state/vms/{bad}.json")),
        "{\"record_version\": 1, \"vm\": ",
    )
    .unwrap();
    let o = env.vmadm(&["list", "-H", "-o", "uuid"]);
    assert_exit(&o, 0);
    assert_eq!(stdout(&o).trim(), good);
    assert!(stderr(&o).contains(bad), "{}", stderr(&o));
    let o = env.vmadm(&["get", bad]);
    assert_exit(&o, 1);
    assert!(stderr(&o).contains("corrupt"), "{}", stderr(&o));
}

#[test]
fn failed_boot_leaves_nothing_behind() {
    let Some(env) = env_with_image() else { return };
    let before = (env.state_files(), env.datasets());
    // driver = "none": booting is not possible, so autoboot create must undo.
    let o = env.vmadm_in(&["create"], &payload(json!({"autoboot": true})));
    assert_exit(&o, 1);
    assert!(
        stderr(&o).contains("not supported on this host"),
        "{}",
        stderr(&o)
    );
    assert_eq!(before, (env.state_files(), env.datasets()));
}

#[test]
fn interrupted_create_is_swept_by_the_next_one() {
    let Some(env) = env_with_image() else { return };
    // What a create killed after cloning looks like: an incomplete record
    // plus its dataset.
    let dead = "deaddead-0000-4000-8000-000000000001";
    let ds = format!("{}/{dead}", env.pool);
    zfs(&["clone", &format!("{}/{IMAGE}@final", env.pool), &ds]);
    let rec = json!({"record_version": 1, "vm": {"uuid": dead, "brand": "jail", "image_uuid": IMAGE,
        "zpool": env.pool, "zfs_filesystem": ds, "_incomplete": true}});
    std::fs::create_dir_all(env.root().join("state/vms")).unwrap();
    std::fs::write(
        env.root().join(format!("state/vms/{dead}.json")),
        rec.to_string(),
    )
    .unwrap();
    let o = env.vmadm(&["list", "-H", "-o", "uuid,state"]);
    assert!(
        stdout(&o).contains(&format!("{dead}  incomplete")),
        "{}",
        stdout(&o)
    );
    let alive = create(&env, json!({}));
    assert!(!env.datasets().contains(&ds));
    let o = env.vmadm(&["list", "-H", "-o", "uuid"]);
    assert_eq!(stdout(&o).trim(), alive);
}

#[test]
fn concurrent_creates_of_one_uuid_make_exactly_one_vm() {
    let Some(env) = env_with_image() else { return };
    let uuid = "c0c0c0c0-0000-4000-8000-000000000001";
    let input = payload(json!({"uuid": uuid}));
    let results: Vec<std::process::Output> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..6)
            .map(|_| s.spawn(|| env.vmadm_in(&["create"], &input)))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let ok = results
        .iter()
        .filter(|o| o.status.code() == Some(0))
        .count();
    assert_eq!(
        ok,
        1,
        "{:?}",
        results.iter().map(stderr).collect::<Vec<_>>()
    );
    for o in results.iter().filter(|o| o.status.code() != Some(0)) {
        assert!(stderr(o).contains("already exists"), "{}", stderr(o));
    }
    assert_eq!(get(&env, uuid)["uuid"], json!(uuid));
}

#[test]
fn snapshots_create_list_rollback_delete() {
    let Some(env) = env_with_image() else { return };
    let uuid = create(&env, json!({}));
    let ds = format!("{}/{uuid}", env.pool);
    let root = env.mountpoint(&ds).join("root");
    std::fs::write(root.join("etc/motd"), "before\n").unwrap();
    assert_exit(&env.vmadm(&["create-snapshot", &uuid, "snap1"]), 0);
    std::fs::write(root.join("etc/motd"), "after\n").unwrap();
    let o = env.vmadm(&["create-snapshot", &uuid, "snap1"]);
    assert_exit(&o, 1);
    assert!(stderr(&o).contains("already exists"));
    assert_exit(&env.vmadm(&["create-snapshot", &uuid, "bad/name"]), 1);
    let vm = get(&env, &uuid);
    assert_eq!(vm["snapshots"][0]["name"], json!("snap1"));
    assert!(env.datasets().contains(&format!("{ds}@vmsnap-snap1")));
    let o = env.vmadm(&["rollback-snapshot", &uuid, "snap1"]);
    assert_exit(&o, 0);
    assert_eq!(
        std::fs::read_to_string(root.join("etc/motd")).unwrap(),
        "before\n"
    );
    assert_exit(&env.vmadm(&["delete-snapshot", &uuid, "snap1"]), 0);
    assert!(!env.datasets().contains(&format!("{ds}@vmsnap-snap1")));
    assert_eq!(get(&env, &uuid)["snapshots"], json!([]));
}

#[test]
fn lifecycle_verbs_without_a_driver_say_so() {
    let Some(env) = env_with_image() else { return };
    let uuid = create(&env, json!({}));
    let o = env.vmadm(&["start", &uuid]);
    assert_exit(&o, 1);
    assert!(stderr(&o).contains(&format!("Unable to start VM {uuid}")));
    let o = env.vmadm(&["stop", &uuid]);
    assert_exit(&o, 0);
    assert_eq!(
        stderr(&o).trim(),
        format!("VM {uuid} is already not 'running' (currently: stopped)")
    );
    let o = env.vmadm(&["kill", "-9", &uuid]);
    assert_exit(&o, 1);
    assert!(stderr(&o).contains("Cannot find running init PID"));
    let o = env.vmadm(&["kill", "-s", "BOGUS", &uuid]);
    assert_exit(&o, 1);
    assert!(stderr(&o).contains("Unknown signal"));
    let o = env.vmadm(&["reboot", &uuid, "-F"]);
    assert_exit(&o, 1);
    assert!(stderr(&o).contains("Cannot reboot vm from state \"stopped\""));
}

#[test]
fn delegated_dataset_is_created_and_deleted_with_the_vm() {
    let Some(env) = env_with_image() else { return };
    let uuid = create(&env, json!({"delegate_dataset": true}));
    let data = format!("{}/{uuid}/data", env.pool);
    assert!(env.datasets().contains(&data));
    assert_eq!(get(&env, &uuid)["datasets"], json!([data]));
    // Anything else below the VM's dataset would not travel: send says
    // so up front. (The delegated dataset itself does: send.rs.)
    zfs(&["create", &format!("{data}/extra")]);
    let o = env.vmadm(&["send", &uuid]);
    assert_exit(&o, 1);
    assert!(
        stderr(&o).contains("datasets below its own other than its delegated data"),
        "{}",
        stderr(&o)
    );
    assert!(o.stdout.is_empty());
    assert_exit(&env.vmadm(&["delete", &uuid]), 0);
    assert!(!env.datasets().iter().any(|d| d.contains(&uuid)));
}

#[test]
fn send_then_receive_moves_a_vm_with_its_data() {
    let Some(env) = env_with_image() else { return };
    let uuid = create(
        &env,
        json!({"alias": "mover", "quota": 3, "tags": {"a": 1}}),
    );
    let ds = format!("{}/{uuid}", env.pool);
    std::fs::write(env.mountpoint(&ds).join("root/etc/motd"), "moved\n").unwrap();
    let before = get(&env, &uuid);

    let o = env.vmadm(&["send", &uuid]);
    assert_exit(&o, 0);
    assert_eq!(stderr(&o).trim(), format!("Successfully sent VM {uuid}"));
    let stream = o.stdout;
    assert!(stream.starts_with(b"MAGIC-VMBUNDLE\0"));
    assert!(!env.datasets().iter().any(|d| d.ends_with("@sending")));

    // The same uuid cannot be received twice.
    let o = env.run("vmadm", &["receive"], Some(&stream));
    assert_exit(&o, 1);
    assert!(stderr(&o).contains("already exists"), "{}", stderr(&o));

    assert_exit(&env.vmadm(&["delete", &uuid]), 0);
    let empty = (env.state_files(), env.datasets());

    // Truncated or corrupt streams are refused and leave nothing.
    for bad in [
        stream[..stream.len() / 2].to_vec(),
        stream[..300].to_vec(),
        b"not a bundle at all".to_vec(),
        {
            let mut s = stream.clone();
            s[0] = b'X';
            s
        },
    ] {
        let o = env.run("vmadm", &["receive"], Some(&bad));
        assert_exit(&o, 1);
        assert!(stderr(&o).contains("Invalid VM bundle"), "{}", stderr(&o));
        assert_eq!(empty, (env.state_files(), env.datasets()));
    }

    let o = env.run("vmadm", &["receive"], Some(&stream));
    assert_exit(&o, 0);
    assert_eq!(
        stderr(&o).trim(),
        format!("Successfully received VM {uuid}")
    );
    let after = get(&env, &uuid);
    for k in [
        "alias",
        "quota",
        "tags",
        "max_physical_memory",
        "nics",
        "image_uuid",
        "brand",
    ] {
        assert_eq!(after[k], before[k], "{k}");
    }
    assert_eq!(after["state"], json!("stopped"));
    assert_eq!(
        std::fs::read_to_string(env.mountpoint(&ds).join("root/etc/motd")).unwrap(),
        "moved\n"
    );
    assert_eq!(
        zfs(&["get", "-H", "-o", "value", "quota", &ds]).trim(),
        "3G"
    );
    assert!(!env.datasets().iter().any(|d| d.ends_with("@sending")));
    assert_exit(&env.vmadm(&["delete", &uuid]), 0);
}

#[test]
fn events_stream_creates_modifies_and_deletes() {
    use std::io::{BufRead, BufReader};
    let Some(env) = env_with_image() else { return };
    let mut child = std::process::Command::new(crate::harness::bin("vmadm"))
        .args(["events", "-j", "-r"])
        .env("VMADM_CONFIG", &env.config)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // A watchdog: if an expected event never comes, the stream ends and the
    // test fails instead of hanging.
    let pid = child.id() as i32;
    std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_secs(60));
        unsafe { libc::kill(pid, libc::SIGKILL) };
    });
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut next = || -> Value { serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap() };
    assert_eq!(next()["type"], json!("ready"));
    let uuid = create(&env, json!({"alias": "watched"}));
    let e = next();
    assert_eq!(
        (e["type"].clone(), e["uuid"].clone()),
        (json!("create"), json!(uuid))
    );
    assert_eq!(e["vm"]["alias"], json!("watched"));
    assert_exit(&env.vmadm(&["update", &uuid, "alias=renamed"]), 0);
    // Events are pushed as they happen: the create's own completion (the
    // record leaving "incomplete") may come first as its own modify.
    let alias_change = loop {
        let e = next();
        assert_eq!(e["type"], json!("modify"));
        if let Some(c) = e["changes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["prettyPath"] == json!("alias"))
        {
            break c.clone();
        }
    };
    assert_eq!(alias_change["oldValue"], json!("watched"));
    assert_eq!(alias_change["newValue"], json!("renamed"));
    assert_exit(&env.vmadm(&["delete", &uuid]), 0);
    let e = next();
    assert_eq!(
        (e["type"].clone(), e["uuid"].clone()),
        (json!("delete"), json!(uuid))
    );
    let _ = child.kill();
    let _ = child.wait();
    let o = env.vmadm(&["events", "99999999-0000-4000-8000-000000000000"]);
    assert_exit(&o, 1);
    assert!(stderr(&o).contains("not found"));
}

#[test]
fn reprovision_swaps_the_root_and_keeps_data_and_record() {
    let Some(env) = env_with_image() else { return };
    let image2 = "a1b2c3d4-0000-4000-8000-00000000002b";
    let img2 = format!("{}/{image2}", env.pool);
    zfs(&["create", &img2]);
    std::fs::create_dir_all(env.mountpoint(&img2).join("root/etc")).unwrap();
    std::fs::write(env.mountpoint(&img2).join("root/etc/motd"), "image two\n").unwrap();
    zfs(&["snapshot", &format!("{img2}@final")]);
    let uuid = create(
        &env,
        json!({"alias": "rp", "quota": 2, "delegate_dataset": true}),
    );
    let ds = format!("{}/{uuid}", env.pool);
    std::fs::write(
        env.mountpoint(&ds).join("root/etc/motd"),
        "changed by tenant\n",
    )
    .unwrap();
    std::fs::write(env.mountpoint(&format!("{ds}/data")).join("keep"), "kept\n").unwrap();

    let o = env.vmadm_in(&["reprovision", &uuid], "{}");
    assert_exit(&o, 1);
    assert!(stderr(&o).contains("payload is missing image_uuid"));
    let o = env.vmadm_in(
        &["reprovision", &uuid],
        &json!({"image_uuid": "ffffffff-0000-4000-8000-000000000000"}).to_string(),
    );
    assert_exit(&o, 1);
    assert!(stderr(&o).contains("imgadm import"));

    let o = env.vmadm_in(
        &["reprovision", &uuid],
        &json!({"image_uuid": image2}).to_string(),
    );
    assert_exit(&o, 0);
    assert_eq!(
        stderr(&o).trim(),
        format!("Successfully reprovisioned VM {uuid}")
    );
    let vm = get(&env, &uuid);
    assert_eq!(vm["image_uuid"], json!(image2));
    assert_eq!(vm["alias"], json!("rp"));
    assert_eq!(
        std::fs::read_to_string(env.mountpoint(&ds).join("root/etc/motd")).unwrap(),
        "image two\n"
    );
    assert_eq!(
        std::fs::read_to_string(env.mountpoint(&format!("{ds}/data")).join("keep")).unwrap(),
        "kept\n"
    );
    assert_eq!(
        zfs(&["get", "-H", "-o", "value", "origin", &ds]).trim(),
        format!("{}/{image2}@final", env.pool)
    );
    assert_eq!(
        zfs(&["get", "-H", "-o", "value", "quota", &ds]).trim(),
        "2G"
    );
    assert_exit(&env.vmadm(&["delete", &uuid]), 0);
    assert!(!env.datasets().iter().any(|d| d.contains(&uuid)));
}
