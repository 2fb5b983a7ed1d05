//! Golden tests: every fixture VM under `tests/fixtures/freebsd/` → VmSpec →
//! the plan of every action, rendered and compared with
//! `golden/<fixture>.plan`. `UPDATE_GOLDEN=1` rewrites the files; a missing
//! golden file fails. Also: the hostile-value checks over all plans, and the
//! runner's rollback contract checked on real start plans.

use super::plan::{Action, OnFailure, Plan, Step};
use super::runner::PlanRunner;
use super::sys_files::HostFs;
use super::{antispoof, console, delete, kill, start, state, stop, update};
use crate::config::Config;
use crate::driver::{Limit, Signal, StopOptions};
use crate::exec::{Argv, CommandRunner, ExecError, Output};
use crate::spec::VmSpec;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/freebsd")
}

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src/driver/freebsd/golden")
}

fn config() -> Config {
    let mut networks = BTreeMap::new();
    networks.insert("admin".to_string(), "bridge0".to_string());
    networks.insert("external".to_string(), "bridge1".to_string());
    networks.insert("internal".to_string(), "vmbr-int".to_string());
    Config {
        pool: "zones".into(),
        networks,
        devfs_ruleset: 10,
        ..Config::default()
    }
}

fn fixtures() -> Vec<(String, VmSpec)> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(fixture_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            let obj: serde_json::Value = serde_json::from_str(&text).unwrap();
            let spec = VmSpec::from_object(obj.as_object().unwrap())
                .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (p.file_stem().unwrap().to_string_lossy().into_owned(), spec)
        })
        .collect()
}

/// The limits whose live update is rendered (each alone).
const UPDATE_LIMITS: &[Limit] = &[
    Limit::MaxPhysicalMemory,
    Limit::MaxSwap,
    Limit::MaxLockedMemory,
    Limit::MaxShmMemory,
    Limit::CpuCap,
    Limit::MaxLwps,
    Limit::MaxMsgIds,
    Limit::MaxSemIds,
    Limit::MaxShmIds,
    Limit::CpuShares,
];

/// The signals whose kill plan is rendered.
const KILL_SIGNALS: &[Signal] = &[Signal::Term, Signal::Kill, Signal::Hup, Signal::Usr1];

fn section(out: &mut String, title: &str, plan: Result<Plan, super::plan::PlanError>) {
    out.push_str(&format!("## {title}\n"));
    match plan {
        Ok(p) => out.push_str(&p.render()),
        Err(e) => out.push_str(&format!("refused: {e}\n")),
    }
    out.push('\n');
}

/// Every action's plan for one VM, as one text.
fn render_all(vm: &VmSpec, cfg: &Config) -> String {
    let mut out = String::new();
    let graceful = StopOptions {
        force: false,
        timeout: Duration::from_secs(60),
    };
    let force = StopOptions {
        force: true,
        timeout: Duration::from_secs(60),
    };
    section(&mut out, "start", start::plan(vm, cfg));
    section(&mut out, "stop", stop::plan(vm, cfg, &graceful));
    section(&mut out, "stop -F", stop::plan(vm, cfg, &force));
    match kill::reboot_plans(vm, cfg, &graceful) {
        Ok((s, b)) => {
            section(&mut out, "reboot: stop", Ok(s));
            section(&mut out, "reboot: start", Ok(b));
        }
        Err(e) => section(&mut out, "reboot", Err(e)),
    }
    for signal in KILL_SIGNALS {
        section(
            &mut out,
            &format!("kill {signal}"),
            kill::kill_plan(vm, *signal),
        );
    }
    for limit in UPDATE_LIMITS {
        section(
            &mut out,
            &format!("update {limit}"),
            update::plan(vm, &[*limit]),
        );
    }
    // A live NIC update of the VM as booted (ports in record order).
    section(
        &mut out,
        "update nics",
        antispoof::update_plan(vm, cfg, &antispoof::ports_by_position(vm)),
    );
    section(&mut out, "cleanup", delete::cleanup_plan(vm, cfg));
    section(&mut out, "delete", delete::delete_plan(vm, cfg));
    let q = |a: &Argv| serde_json::to_string(&a.0).unwrap();
    out.push_str(&format!(
        "## console\n{}\n\n",
        q(&console::console_argv(vm))
    ));
    let cmd: Vec<String> = ["/bin/sh", "-c", "echo \"$HOME\"; id"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    out.push_str(&format!(
        "## exec\n{}\n",
        q(&console::exec_argv(vm, &cmd).unwrap())
    ));
    out
}

#[test]
fn golden_plans_match() {
    let cfg = config();
    let update = std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1");
    let fixtures = fixtures();
    assert!(fixtures.len() >= 15, "fixtures missing: {}", fixtures.len());
    let mut problems = Vec::new();
    for (name, vm) in &fixtures {
        let text = render_all(vm, &cfg);
        let path = golden_dir().join(format!("{name}.plan"));
        if update {
            std::fs::write(&path, &text).unwrap();
            continue;
        }
        match std::fs::read_to_string(&path) {
            Ok(want) if want == text => {}
            Ok(want) => {
                let first = want
                    .lines()
                    .zip(text.lines())
                    .position(|(a, b)| a != b)
                    .unwrap_or_else(|| want.lines().count().min(text.lines().count()));
                problems.push(format!(
                    "{name}: plan differs from {} at line {}:\n  want: {}\n  got:  {}\n(UPDATE_GOLDEN=1 to accept)",
                    path.display(),
                    first + 1,
                    want.lines().nth(first).unwrap_or("<end>"),
                    text.lines().nth(first).unwrap_or("<end>"),
                ))
            }
            Err(_) => problems.push(format!("{name}: golden file {} missing", path.display())),
        }
    }
    // A golden file without a fixture is stale.
    for e in std::fs::read_dir(golden_dir()).unwrap() {
        let p = e.unwrap().path();
        let stem = p.file_stem().unwrap().to_string_lossy().into_owned();
        if p.extension().is_some_and(|x| x == "plan") && !fixtures.iter().any(|(n, _)| *n == stem) {
            problems.push(format!("stale golden file {}", p.display()));
        }
    }
    let jls = state::query_argv();
    assert_eq!(
        jls.0,
        ["jls", "--libxo=json", "jid", "name", "host.hostuuid"]
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Every hostile fixture is refused by the start plan, naming the field.
#[test]
fn hostile_values_are_refused() {
    let cfg = config();
    let expect = [
        ("hostile-hostname", "hostname"),
        ("hostile-long-hostname", "hostname"),
        ("hostile-dns-domain", "dns_domain"),
        ("hostile-route", "routes"),
        ("hostile-route-gateway", "routes"),
        ("hostile-interface", "nics.interface"),
        ("hostile-mac", "nics.mac"),
        ("unknown-nic-tag", "nics.nic_tag"),
        ("hostile-init", "init_name"),
        ("hostile-zonepath", "zonepath"),
        ("filesystems", "filesystems"),
    ];
    let all = fixtures();
    for (name, field) in expect {
        let vm = &all.iter().find(|(n, _)| n == name).unwrap().1;
        let err = start::plan(vm, &cfg).unwrap_err().to_string();
        assert!(err.contains(field), "{name}: {err}");
    }
}

/// In every plan that is built, no argv element carries shell syntax or a
/// control character, and values the driver does not use (alias, metadata,
/// tags) appear nowhere.
#[test]
fn no_plan_element_looks_like_shell() {
    let cfg = config();
    let graceful = StopOptions::default();
    for (name, vm) in fixtures() {
        let mut plans = Vec::new();
        plans.extend(start::plan(&vm, &cfg).ok());
        plans.extend(stop::plan(&vm, &cfg, &graceful).ok());
        plans.extend(delete::cleanup_plan(&vm, &cfg).ok());
        for limit in UPDATE_LIMITS {
            plans.extend(update::plan(&vm, &[*limit]).ok());
        }
        for signal in KILL_SIGNALS {
            plans.extend(kill::kill_plan(&vm, *signal).ok());
        }
        plans.extend(antispoof::update_plan(&vm, &cfg, &antispoof::ports_by_position(&vm)).ok());
        let mut forbidden: Vec<String> = Vec::new();
        for map in [&vm.customer_metadata, &vm.internal_metadata, &vm.tags] {
            for (k, v) in map {
                forbidden.push(k.clone());
                if let Some(s) = v.as_str() {
                    forbidden.push(s.to_string());
                }
            }
        }
        forbidden.extend(vm.alias.clone());
        forbidden.retain(|f| f.len() > 3);
        for plan in &plans {
            for a in plan.all_argvs() {
                for el in &a.0 {
                    // jail(8) starts an exec.start that ends in ` &` in the
                    // background; that one `&` is the only metacharacter
                    // allowed, and only there (command.c, run_command()).
                    let el = el
                        .strip_prefix("exec.start=")
                        .and_then(|c| c.strip_suffix(" &"))
                        .unwrap_or(el);
                    assert!(
                        !el.contains(['$', '`', ';', '\n', '"', '\'', '\\', '|', '&', '<', '>']),
                        "{name}: suspicious element {el:?} in {a}"
                    );
                    for f in &forbidden {
                        assert!(!el.contains(f.as_str()), "{name}: {f:?} leaked into {a}");
                    }
                }
            }
            for s in &plan.steps {
                if let Action::WriteFile { contents, .. } = &s.action {
                    for f in &forbidden {
                        assert!(!contents.contains(f.as_str()), "{name}: {f:?} in a file");
                    }
                }
            }
        }
    }
}

/// A runner that fails the `nth` call equal to `target` and answers
/// `ifconfig epair create` like the kernel would.
struct FailAt {
    target: Option<(Argv, usize)>,
    seen: Mutex<usize>,
    epairs: Mutex<usize>,
    calls: Mutex<Vec<Argv>>,
}

impl FailAt {
    fn new(target: Option<(Argv, usize)>) -> Self {
        FailAt {
            target,
            seen: Mutex::new(0),
            epairs: Mutex::new(0),
            calls: Mutex::new(Vec::new()),
        }
    }
}

impl CommandRunner for FailAt {
    fn output(&self, argv: &Argv, _stdin: Option<&[u8]>) -> Result<Output, ExecError> {
        self.calls.lock().unwrap().push(argv.clone());
        // `jls -j` answers "no such jail" unless told otherwise: the start
        // plan's first step requires the jail to be absent.
        let is_jls = argv.program() == "jls";
        if let Some((t, nth)) = &self.target {
            if t == argv {
                let mut seen = self.seen.lock().unwrap();
                *seen += 1;
                if *seen == nth + 1 {
                    return Ok(Output {
                        status: if is_jls { 0 } else { 1 },
                        stdout: vec![],
                        stderr: b"injected failure".to_vec(),
                    });
                }
            }
        }
        if is_jls {
            return Ok(Output {
                status: 1,
                stdout: vec![],
                stderr: b"jls: jail not found".to_vec(),
            });
        }
        let stdout = if argv
            .0
            .starts_with(&["devfs".to_string(), "rule".to_string()])
        {
            b"100 include 4\n".to_vec()
        } else if argv.0 == ["ifconfig", "epair", "create"] {
            let mut n = self.epairs.lock().unwrap();
            *n += 1;
            format!("epair{}a\n", *n).into_bytes()
        } else if argv.0.first().is_some_and(|p| p == "sysctl") {
            b"1\n".to_vec()
        } else {
            vec![]
        };
        Ok(Output {
            status: 0,
            stdout,
            stderr: vec![],
        })
    }
}

/// File operations that fail for one `root/rel` path.
struct FailFs(Option<String>);

impl HostFs for FailFs {
    fn ensure_dir(&self, root: &Path, rel: &str) -> std::io::Result<()> {
        match &self.0 {
            Some(r) if *r == format!("{}/{rel}", root.display()) => {
                Err(std::io::Error::other("symlink refused"))
            }
            _ => Ok(()),
        }
    }
    fn check_dir(&self, r: &Path, rel: &str) -> std::io::Result<()> {
        self.ensure_dir(r, rel)
    }
    fn write_file(&self, r: &Path, rel: &str, _c: &[u8], _m: u32) -> std::io::Result<()> {
        self.ensure_dir(r, rel)
    }
    fn check_zone_root(
        &self,
        zonepath: &Path,
    ) -> Result<(), crate::driver::zone_root::ZoneLayoutError> {
        match &self.0 {
            Some(r) if *r == zonepath.display().to_string() => {
                Err(crate::driver::zone_root::ZoneLayoutError::MissingRoot {
                    zonepath: zonepath.to_path_buf(),
                    unmounted: false,
                })
            }
            _ => Ok(()),
        }
    }
}

/// The host path a file-system step acts on, for [`FailFs`].
fn fs_target(action: &Action) -> Option<String> {
    match action {
        Action::EnsureDir { root, rel }
        | Action::WriteFile { root, rel, .. }
        | Action::RequireDir { root, rel, .. } => Some(format!("{root}/{rel}")),
        Action::CheckZoneRoot { zonepath } => Some(zonepath.clone()),
        _ => None,
    }
}

/// The argv that makes a step fail, and which occurrence of it.
fn failing_call(plan: &Plan, index: usize) -> Option<(Argv, usize)> {
    let key = |s: &Step| -> Option<Argv> {
        match &s.action {
            Action::Run(a)
            | Action::Expect { argv: a, .. }
            | Action::NonEmpty { argv: a, .. }
            | Action::Absent { argv: a, .. } => Some(a.clone()),
            Action::CreateEpair { .. } => Some(Argv::new(["ifconfig", "epair", "create"])),
            _ => None,
        }
    };
    let target = key(&plan.steps[index])?;
    let nth = plan.steps[..index]
        .iter()
        .filter(|s| key(s).as_ref() == Some(&target))
        .count();
    Some((target, nth))
}

#[test]
fn a_failure_at_each_step_undoes_exactly_the_steps_before_it() {
    let cfg = config();
    let mut checked = 0;
    for (name, vm) in fixtures() {
        let Ok(plan) = start::plan(&vm, &cfg) else {
            continue;
        };
        // The whole plan succeeds when nothing fails.
        let ok = FailAt::new(None);
        PlanRunner::new(&ok, &FailFs(None)).execute(&plan).unwrap();
        for index in 0..plan.steps.len() {
            let step = &plan.steps[index];
            if step.on_failure == OnFailure::Continue {
                continue;
            }
            let target = fs_target(&step.action);
            let (runner, fs) = match &target {
                Some(t) => (FailAt::new(None), FailFs(Some(t.clone()))),
                None => (FailAt::new(failing_call(&plan, index)), FailFs(None)),
            };
            let err = PlanRunner::new(&runner, &fs).execute(&plan).unwrap_err();
            assert_eq!(err.index, index, "{name}");
            let expected: Vec<Argv> = plan.steps[..index]
                .iter()
                .filter_map(|s| s.undo.clone())
                .rev()
                .collect();
            let calls = runner.calls.lock().unwrap().clone();
            let after: Vec<Argv> = match failing_call(&plan, index) {
                Some((t, nth)) if target.is_none() => {
                    let pos = calls
                        .iter()
                        .enumerate()
                        .filter(|(_, c)| **c == t)
                        .nth(nth)
                        .map(|(i, _)| i)
                        .unwrap();
                    calls[pos + 1..].to_vec()
                }
                _ => {
                    // A file step runs no command; the undo calls are the tail.
                    // An unmount of the failing path is skipped too (its
                    // symlink check fails), so it runs no command either.
                    let before: usize = plan.steps[..index]
                        .iter()
                        .map(|s| match &s.action {
                            Action::CreateEpair { .. } => 3,
                            Action::Unmount { root, rel }
                                if target.as_deref() == Some(&format!("{root}/{rel}")) =>
                            {
                                0
                            }
                            a if fs_target(a).is_some() => 0,
                            _ => 1,
                        })
                        .sum();
                    calls[before..].to_vec()
                }
            };
            assert_eq!(after, expected, "{name}: failure at step {index}");
            checked += 1;
        }
    }
    assert!(checked > 100, "only {checked} failure points checked");
}

/// Random hostile strings in every user-controlled string field: the plan is
/// either refused or made only of clean elements, and a value that does reach
/// a plan is always inside exactly one element.
#[test]
fn random_hostile_values_never_split_or_leak() {
    use rand::{Rng, SeedableRng};
    let cfg = config();
    let mut rng = rand::rngs::StdRng::seed_from_u64(6);
    let alphabet: Vec<char> = "ab-.0;$()`'\"\\ \n\t|&<>*?/=,:%@!{}#~".chars().collect();
    let mut built = 0;
    for _ in 0..2000 {
        let len = rng.gen_range(1..40);
        let s: String = (0..len)
            .map(|_| alphabet[rng.gen_range(0..alphabet.len())])
            .collect();
        let field = rng.gen_range(0..6);
        let mut obj = serde_json::json!({
            "uuid": "66666666-7777-4888-8999-aaaaaaaaaaaa",
            "brand": "jail",
            "hostname": "h",
            "image_uuid": "11111111-2222-4333-8444-555555555555",
            "zpool": "zones",
            "resolvers": ["192.0.2.53"],
            "nics": [{"interface": "net0", "mac": "02:00:00:00:00:01", "nic_tag": "admin",
                      "ips": ["192.0.2.10/24"], "gateways": ["192.0.2.1"]}]
        });
        match field {
            0 => obj["hostname"] = s.clone().into(),
            1 => obj["dns_domain"] = s.clone().into(),
            2 => obj["alias"] = s.clone().into(),
            3 => obj["routes"] = serde_json::json!({ s.clone(): "192.0.2.1" }),
            4 => obj["nics"][0]["interface"] = s.clone().into(),
            _ => obj["zonepath"] = format!("/zones/{s}").into(),
        }
        let Ok(vm) = VmSpec::from_object(obj.as_object().unwrap()) else {
            continue;
        };
        let Ok(plan) = start::plan(&vm, &cfg) else {
            continue;
        };
        built += 1;
        for a in plan.all_argvs() {
            for el in &a.0 {
                if field == 5 {
                    // Paths may hold odd characters, but only whole, as one element.
                    assert!(!el.contains('\n'), "{el:?}");
                    continue;
                }
                assert!(
                    !el.contains(['$', '`', ';', '\n', '"', '\'', '\\', '|', '&', '<', '>']),
                    "{s:?} produced {el:?}"
                );
            }
        }
    }
    assert!(built > 0);
}

fn fixture(name: &str) -> VmSpec {
    fixtures()
        .into_iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("fixture {name} missing"))
        .1
}

/// A fixture with its zonepath moved to `dir`.
fn fixture_at(name: &str, dir: &Path) -> VmSpec {
    let text = std::fs::read_to_string(fixture_dir().join(format!("{name}.json"))).unwrap();
    let mut obj: serde_json::Value = serde_json::from_str(&text).unwrap();
    obj["zonepath"] = dir.display().to_string().into();
    VmSpec::from_object(obj.as_object().unwrap()).unwrap()
}

/// The tenant's `jail -c` argv of a start plan.
fn tenant_create_argv(plan: &Plan) -> Vec<String> {
    plan.all_argvs()
        .into_iter()
        .find(|a| a.0.len() > 2 && a.0[0] == "jail" && a.0[2].ends_with(".tenant"))
        .map(|a| a.0.clone())
        .expect("no tenant jail -c")
}

fn param<'a>(argv: &'a [String], name: &str) -> Option<&'a str> {
    argv.iter()
        .find_map(|a| a.strip_prefix(name).and_then(|r| r.strip_prefix('=')))
}

/// An image laid out as SmartOS lays one out (only `root/`) starts with the
/// real file-system checks, and nothing of it runs outside the tenant; an
/// image with its tree at the top, or with `root` a symlink, is refused
/// before anything on the host changed.
#[test]
fn a_root_only_image_starts_and_other_layouts_stop_before_any_change() {
    let cfg = config();
    let t = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(t.path().join("root/etc")).unwrap();
    let vm = fixture_at("smartos-layout", t.path());
    let plan = start::plan(&vm, &cfg).unwrap();
    let runner = FailAt::new(None);
    PlanRunner::new(&runner, &super::RealFs)
        .execute(&plan)
        .unwrap();
    for dir in ["dev", "rescue", "root/dev"] {
        assert!(t.path().join(dir).is_dir(), "{dir}");
    }
    assert!(t.path().join("console.log").is_file());
    let calls = runner.calls.lock().unwrap().clone();
    for c in &calls {
        if c.program() == "jexec" {
            assert!(c.0[2].starts_with("/rescue/"), "image binary run: {c}");
        }
    }
    let tenant = tenant_create_argv(&plan);
    assert_eq!(
        param(&tenant, "path"),
        Some(format!("{}/root", t.path().display()).as_str())
    );

    // The pre-0.3 layout: the tree at the top, no root/.
    let old = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(old.path().join("etc")).unwrap();
    std::fs::create_dir_all(old.path().join("bin")).unwrap();
    // root -> / would make the tenant's path the host's root.
    let evil = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink("/", evil.path().join("root")).unwrap();
    for (dir, want) in [(old.path(), "no root/"), (evil.path(), "symbolic link")] {
        let vm = fixture_at("smartos-layout", dir);
        let plan = start::plan(&vm, &cfg).unwrap();
        let runner = FailAt::new(None);
        let err = PlanRunner::new(&runner, &super::RealFs)
            .execute(&plan)
            .unwrap_err();
        assert!(err.to_string().contains(want), "{err}");
        let calls = runner.calls.lock().unwrap().clone();
        let programs: Vec<&str> = calls.iter().map(|c| c.program()).collect();
        // Only the read-only prechecks ran: jls, sysctl queries (racct and
        // the bridge settings the NIC protections need), pf's status.
        assert_eq!(
            programs,
            ["jls", "sysctl", "sysctl", "sysctl", "pfctl"],
            "{err}"
        );
        let last = calls.last().unwrap();
        assert_eq!(last.0, ["pfctl", "-s", "Running"]);
        assert!(!dir.join("dev").exists());
    }
}

/// A runner whose `devfs rule -s N show` prints nothing, as devfs(8) does
/// for a ruleset that is not loaded.
struct NoRuleset(FailAt);

impl CommandRunner for NoRuleset {
    fn output(&self, argv: &Argv, stdin: Option<&[u8]>) -> Result<Output, ExecError> {
        if argv
            .0
            .starts_with(&["devfs".to_string(), "rule".to_string()])
        {
            self.0.calls.lock().unwrap().push(argv.clone());
            return Ok(Output::default());
        }
        self.0.output(argv, stdin)
    }
}

/// No devfs is mounted with a ruleset that is not loaded; what ran before
/// the check is undone.
#[test]
fn a_missing_devfs_ruleset_refuses_the_start_before_any_devfs_mount() {
    let cfg = config();
    for name in ["one-nic", "lx-long-init", "no-nics"] {
        let vm = fixture(name);
        let plan = start::plan(&vm, &cfg).unwrap();
        let runner = NoRuleset(FailAt::new(None));
        let err = PlanRunner::new(&runner, &FailFs(None))
            .execute(&plan)
            .unwrap_err();
        assert!(
            err.to_string().contains("ruleset 10 is not loaded"),
            "{err}"
        );
        assert!(err
            .step
            .starts_with("nonempty [\"devfs\",\"rule\",\"-s\",\"10\""));
        let calls = runner.0.calls.lock().unwrap().clone();
        assert!(!calls.iter().any(|c| c.program() == "mount"), "{name}");
        assert!(!calls.iter().any(|c| c.program() == "jail"), "{name}");
        // The rctl rules added before the check were taken back.
        let added = calls.iter().filter(|c| c.0[..2] == ["rctl", "-a"]).count();
        let undone = calls
            .iter()
            .filter(|c| c.0[..2] == ["rctl", "-r"] && c.0[2].ends_with(":deny"))
            .count();
        assert_eq!(added, undone, "{name}");
        assert!(added > 0, "{name}");
    }
}

/// Every devfs mount is preceded by its ruleset check, no plan mounts a devfs
/// without `ruleset=`, and `bpf*` is unhidden only on the outer jail's /dev.
#[test]
fn every_devfs_mount_is_checked_and_bpf_stays_out_of_the_tenant() {
    let cfg = config();
    let mut devfs_mounts = 0;
    for (name, vm) in fixtures() {
        let Ok(plan) = start::plan(&vm, &cfg) else {
            continue;
        };
        let outer_dev = format!("{}/dev", vm.zonepath.display());
        for (i, s) in plan.steps.iter().enumerate() {
            let Action::Run(a) = &s.action else { continue };
            if a.0[..3] == ["mount", "-t", "devfs"] {
                devfs_mounts += 1;
                assert_eq!(a.0[4], "ruleset=10", "{name}");
                assert!(
                    matches!(&plan.steps[i - 1].action, Action::NonEmpty { argv, .. }
                        if argv.0 == ["devfs", "rule", "-s", "10", "show"]),
                    "{name}: devfs mount without its check"
                );
            }
            if a.0.iter().any(|e| e.contains("bpf")) {
                assert_eq!(a.0[..3], ["devfs", "-m", outer_dev.as_str()], "{name}");
            }
        }
    }
    assert!(devfs_mounts >= 20, "{devfs_mounts}");
}

/// One default ruleset number everywhere: the code's default, the shipped
/// ruleset file, the sample configuration and the README.
#[test]
fn the_default_ruleset_number_agrees_everywhere() {
    let n = Config::default().devfs_ruleset;
    let top = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let rules = std::fs::read_to_string(top.join("dist/freebsd/devfs.rules")).unwrap();
    assert!(rules.contains(&format!("[vmadm_jail={n}]")), "devfs.rules");
    let body: Vec<&str> = rules
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .collect();
    assert!(body.iter().all(|l| !l.contains("bpf")), "{body:?}");
    let sample = std::fs::read_to_string(top.join("dist/freebsd/vmadm.toml.sample")).unwrap();
    let readme = std::fs::read_to_string(top.join("README.md")).unwrap();
    let docs = std::fs::read_to_string(top.join("docs/freebsd.md")).unwrap();
    for (what, text) in [("sample", &sample), ("README", &readme), ("docs", &docs)] {
        let values: Vec<&str> = text
            .lines()
            .filter_map(|l| l.trim().strip_prefix("devfs_ruleset = "))
            .map(|v| v.split_whitespace().next().unwrap_or(""))
            .collect();
        assert!(!values.is_empty(), "{what} names no devfs_ruleset");
        assert!(
            values.iter().all(|v| *v == n.to_string()),
            "{what}: {values:?}"
        );
    }
}

/// The lx init is started the way jail(8) starts a background command: the
/// only metacharacter jail(8) looks for is the final `&` (otherwise it would
/// hand the line to `sh -c` and wait). FreeBSD's rc is waited for.
#[test]
fn lx_init_runs_in_the_background_and_rc_in_the_foreground() {
    const JAIL_META: &[char] = &[
        '!', '"', '$', '&', '\'', '(', ')', '*', ';', '<', '>', '?', '[', '\\', ']', '`', '{', '|',
        '}', '~',
    ];
    let cfg = config();
    for (name, vm) in fixtures() {
        let Ok(plan) = start::plan(&vm, &cfg) else {
            continue;
        };
        let tenant = tenant_create_argv(&plan);
        let start = param(&tenant, "exec.start").unwrap();
        let first_meta = start.find(JAIL_META);
        if vm.is_lx() {
            assert_eq!(first_meta, Some(start.len() - 1), "{name}: {start}");
            assert!(start.ends_with(" &"), "{name}");
            assert!(tenant.iter().any(|a| a == "exec.system_jail_user"));
        } else {
            assert_eq!(start, "/bin/sh /etc/rc", "{name}");
        }
        assert!(tenant.iter().any(|a| a == "exec.clean"), "{name}");
    }
    let lx = fixture("lx-long-init");
    let tenant = tenant_create_argv(&start::plan(&lx, &cfg).unwrap());
    assert_eq!(param(&tenant, "exec.start"), Some("/lib/systemd/systemd &"));
}

/// Every limit names the tenant jail, the one whose processes rctl links
/// to its rules.
#[test]
fn limits_name_the_tenant() {
    let cfg = config();
    for (name, vm) in fixtures() {
        let Ok(plan) = start::plan(&vm, &cfg) else {
            continue;
        };
        let prefix = format!("jail:{}.tenant:", vm.uuid);
        for a in plan.all_argvs() {
            if a.0[..2] == ["rctl", "-a"] {
                assert!(a.0[2].starts_with(&prefix), "{name}: {a}");
            }
        }
    }
}

/// A delegated dataset is marked jailed before any jail exists, handed to
/// the tenant between creation and rc (exec.created), and both jails allow
/// the mount with an enforce_statfs below 2.
#[test]
fn a_delegated_dataset_is_jailed_mounted_by_the_tenant_and_unmounted_at_stop() {
    let cfg = config();
    let vm = fixture("delegate-dataset");
    let ds = format!("{}/data", vm.zfs_filesystem);
    let plan = start::plan(&vm, &cfg).unwrap();
    let argvs: Vec<Vec<String>> = plan.all_argvs().into_iter().map(|a| a.0.clone()).collect();
    let jailed = argvs
        .iter()
        .position(|a| *a == ["zfs", "set", "jailed=on", ds.as_str()])
        .unwrap();
    let first_jail = argvs.iter().position(|a| a[..2] == ["jail", "-c"]).unwrap();
    assert!(jailed < first_jail);
    for a in argvs.iter().filter(|a| a[..2] == ["jail", "-c"]) {
        for p in ["allow.mount", "allow.mount.zfs", "enforce_statfs=1"] {
            assert!(a.iter().any(|x| x == p), "{p} missing in {a:?}");
        }
    }
    let tenant = tenant_create_argv(&plan);
    assert_eq!(
        param(&tenant, "exec.created"),
        Some(format!("/sbin/zfs jail {}.tenant {ds}", vm.uuid).as_str())
    );
    let stop = stop::plan(&vm, &cfg, &StopOptions::default()).unwrap();
    assert!(stop
        .all_argvs()
        .iter()
        .any(|a| a.0 == ["zfs", "umount", "-f", ds.as_str()]));
    // Without the property none of it appears.
    let plain = start::plan(&fixture("one-nic"), &cfg).unwrap();
    assert!(!plain.render().contains("jailed=on"));
    assert!(!plain.render().contains("allow.mount"));
}

/// kill goes by name, from the host, to the tenant only; USR1 and HUP are
/// the signals whose numbers differ or matter most.
#[test]
fn kill_sends_usr1_and_hup_by_name_from_the_host() {
    let vm = fixture("kill-usr1-hup");
    for (signal, flag) in [(Signal::Usr1, "-USR1"), (Signal::Hup, "-HUP")] {
        let plan = kill::kill_plan(&vm, signal).unwrap();
        assert_eq!(plan.len(), 1);
        let a = plan.all_argvs()[0].0.clone();
        assert_eq!(a, ["pkill", flag, "-j", &format!("{}.tenant", vm.uuid)]);
    }
    assert!(kill::kill_plan(&vm, Signal::Pwr).is_err());
}

/// The graceful stop hands jail(8) a one-jail configuration: rc.shutdown for
/// FreeBSD, only the SIGTERM phase for lx, both bounded by the timeout.
#[test]
fn graceful_stop_goes_through_jail_r_with_exec_stop_and_stop_timeout() {
    let cfg = config();
    let opts = StopOptions {
        force: false,
        timeout: Duration::from_secs(45),
    };
    for (name, lx) in [("one-nic", false), ("lx-long-init", true)] {
        let vm = fixture(name);
        let plan = stop::plan(&vm, &cfg, &opts).unwrap();
        let Action::WriteFile { contents, rel, .. } = &plan.steps[0].action else {
            panic!("{name}: no stop file first");
        };
        assert_eq!(rel, "vmadm-stop.conf");
        assert!(contents.contains(&format!("\"{}.tenant\" {{", vm.uuid)));
        assert!(contents.contains("stop.timeout = 45;"));
        assert_eq!(contents.contains("rc.shutdown jail"), !lx, "{name}");
        let jail_r = plan.all_argvs()[0].0.clone();
        assert_eq!(jail_r[..2], ["jail", "-f"]);
        assert_eq!(
            jail_r[3..],
            ["-r".to_string(), format!("{}.tenant", vm.uuid)]
        );
        let forced = stop::plan(
            &vm,
            &cfg,
            &StopOptions {
                force: true,
                ..opts
            },
        )
        .unwrap();
        assert!(!forced.render().contains("vmadm-stop.conf"));
    }
}

/// A zonepath that is a valid absolute path but holds characters jail(8)
/// might read specially is refused for start, still accepted for cleanup.
#[test]
fn an_odd_zonepath_is_refused_for_start_but_can_be_cleaned_up() {
    let cfg = config();
    for odd in ["/zones/a b", "/zones/${HOME}", "/zones/x;y"] {
        let vm = fixture_at("smartos-layout", Path::new(odd));
        let err = start::plan(&vm, &cfg).unwrap_err().to_string();
        assert!(err.contains("zonepath"), "{odd}: {err}");
        assert!(delete::cleanup_plan(&vm, &cfg).is_ok(), "{odd}");
    }
}
