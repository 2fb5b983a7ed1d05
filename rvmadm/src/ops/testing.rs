//! The fixture the verb unit tests share: a [`Ctx`] whose store lives in a
//! temporary directory, whose runner is a [`RecordingRunner`] that answers
//! the zfs questions `create` asks as if image [`IMAGE`] were installed on
//! pool [`POOL`], and whose driver is a [`FakeDriver`] the test keeps a
//! handle on, to read the calls it got and to change what "runs". Nothing
//! here touches the host, so the verbs' own logic is tested in milliseconds.

use super::context::Ctx;
use crate::config::Config;
use crate::driver::fake::FakeDriver;
use crate::driver::{
    DatasetChange, Driver, DriverResult, Limit, RuntimeState, Signal, StopOptions,
};
use crate::exec::{Output, RecordingRunner};
use crate::spec::{VmRecord, VmSpec};
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::Arc;
use uuid::Uuid;

/// A successful run that printed `stdout`.
pub fn ok(stdout: &str) -> Output {
    Output {
        status: 0,
        stdout: stdout.as_bytes().to_vec(),
        stderr: Vec::new(),
    }
}

/// The pool the fixture's config names.
pub const POOL: &str = "zones";
/// The image the fixture's zfs answers treat as installed.
pub const IMAGE: &str = "a1b2c3d4-0000-4000-8000-00000000000a";

/// The fake as the context's driver while the test holds it too: `Ctx`
/// owns a `Box<dyn Driver>`, so the sharing goes through this forwarder.
struct Shared(Arc<FakeDriver>);

impl Driver for Shared {
    fn name(&self) -> &'static str {
        self.0.name()
    }
    fn states(&self, uuids: &[Uuid]) -> DriverResult<HashMap<Uuid, RuntimeState>> {
        self.0.states(uuids)
    }
    fn start(&self, vm: &VmSpec) -> DriverResult<()> {
        self.0.start(vm)
    }
    fn stop(&self, vm: &VmSpec, opts: StopOptions) -> DriverResult<()> {
        self.0.stop(vm, opts)
    }
    fn kill(&self, vm: &VmSpec, signal: Signal) -> DriverResult<()> {
        self.0.kill(vm, signal)
    }
    fn update_dataset(&self, vm: &VmSpec, changes: &[DatasetChange]) -> DriverResult<()> {
        self.0.update_dataset(vm, changes)
    }
    fn update_live(&self, vm: &VmSpec, limits: &[Limit]) -> DriverResult<Vec<Limit>> {
        self.0.update_live(vm, limits)
    }
    fn update_nics(&self, vm: &VmSpec) -> DriverResult<()> {
        self.0.update_nics(vm)
    }
    fn console(&self, vm: &VmSpec) -> DriverResult<i32> {
        self.0.console(vm)
    }
    fn exec(&self, vm: &VmSpec, argv: &[String]) -> DriverResult<i32> {
        self.0.exec(vm, argv)
    }
    fn cleanup(&self, vm: &VmSpec) -> DriverResult<()> {
        self.0.cleanup(vm)
    }
    fn check_layout(&self, zonepath: &std::path::Path) -> DriverResult<()> {
        self.0.check_layout(zonepath)
    }
}

/// Where the recorded commands and driver calls stood at one moment, so a
/// test can look at what one verb did after its setup.
pub struct Mark {
    commands: usize,
    driver: usize,
}

pub struct Fixture {
    pub ctx: Ctx,
    /// Where the pool is "mounted": the store's pool cache points here, and
    /// [`Fixture::answer_mountpoint`] makes a VM's directory below it as a
    /// real clone would.
    pub mnt: std::path::PathBuf,
    pub runner: Arc<RecordingRunner>,
    pub driver: Arc<FakeDriver>,
    /// Kept for its drop: the state directory lives as long as the fixture.
    _dir: tempfile::TempDir,
}

impl Fixture {
    pub fn new() -> Fixture {
        Fixture::with_driver(FakeDriver::new())
    }

    /// A fixture around a fake configured by the test (`fail_start`,
    /// `reboot_limits`).
    pub fn with_driver(driver: FakeDriver) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let runner = Arc::new(RecordingRunner::new());
        // Every dataset is missing except the image's origin snapshot (the
        // runner answers from the last matching prefix registered).
        runner.fail(
            &["zfs", "list", "-H", "-o", "name", "-t", "all"],
            "cannot open: dataset does not exist",
        );
        let origin = format!("{POOL}/{IMAGE}@final");
        runner.answer(
            &["zfs", "list", "-H", "-o", "name", "-t", "all", &origin],
            Output {
                status: 0,
                stdout: format!("{origin}\n").into_bytes(),
                stderr: Vec::new(),
            },
        );
        let driver = Arc::new(driver);
        let config = Config {
            pool: POOL.into(),
            state_dir: dir.path().join("state"),
            image_dir: dir.path().join("images"),
            run_dir: dir.path().join("run"),
            ..Config::default()
        };
        let ctx = Ctx::new(config, runner.clone(), Box::new(Shared(driver.clone())));
        let mnt = dir.path().join("mnt");
        std::fs::create_dir_all(&mnt).unwrap();
        ctx.store.remember_pool_mountpoint(POOL, &mnt).unwrap();
        Fixture {
            ctx,
            mnt,
            runner,
            driver,
            _dir: dir,
        }
    }

    /// A create payload for image [`IMAGE`] with `uuid`, autoboot off, and
    /// `extra`'s keys on top.
    pub fn payload(&self, uuid: &Uuid, extra: Value) -> Map<String, Value> {
        let mut p = json!({
            "uuid": uuid.to_string(), "brand": "jail", "image_uuid": IMAGE, "autoboot": false,
        });
        for (k, v) in extra.as_object().unwrap() {
            p[k] = v.clone();
        }
        p.as_object().unwrap().clone()
    }

    /// Makes the directory the VM's clone would be mounted on
    /// (`<mnt>/<uuid>`, where create derives the zonepath from the cached
    /// pool mountpoint), and has `zfs get mountpoint` of its dataset say so.
    pub fn answer_mountpoint(&self, uuid: &Uuid) {
        let dataset = format!("{POOL}/{uuid}");
        let dir = self.mnt.join(uuid.to_string());
        std::fs::create_dir_all(&dir).unwrap();
        self.runner.answer(
            &["zfs", "get", "-H", "-o", "value", "mountpoint", &dataset],
            Output {
                status: 0,
                stdout: format!("{}\n", dir.display()).into_bytes(),
                stderr: Vec::new(),
            },
        );
    }

    /// Has `zfs list` find the dataset or snapshot `name` (every other one
    /// is missing, but the image's origin snapshot).
    pub fn answer_exists(&self, name: &str) {
        self.runner.answer(
            &["zfs", "list", "-H", "-o", "name", "-t", "all", name],
            ok(&format!("{name}\n")),
        );
    }

    /// Answers the `name,origin` listing of the datasets of `types` below
    /// `ds` (`zfs list -H -r -t <types> -o name,origin <ds>`) with `listing`.
    pub fn answer_tree(&self, types: &str, ds: &str, listing: &str) {
        self.runner.answer(
            &[
                "zfs",
                "list",
                "-H",
                "-r",
                "-t",
                types,
                "-o",
                "name,origin",
                ds,
            ],
            ok(listing),
        );
    }

    /// Creates a VM through the `create` verb (stopped unless `extra` sets
    /// autoboot) and returns its uuid.
    pub fn create_vm(&self, extra: Value) -> Uuid {
        let uuid = Uuid::new_v4();
        self.answer_mountpoint(&uuid);
        let made = super::create::create(&self.ctx, &self.payload(&uuid, extra)).unwrap();
        assert_eq!(made, uuid);
        uuid
    }

    /// Creates a VM and marks it running in the fake, as if it had booted
    /// earlier; no driver call is recorded for that.
    pub fn running_vm(&self, extra: Value) -> Uuid {
        let uuid = self.create_vm(extra);
        self.driver.set_running(uuid, true);
        uuid
    }

    /// The stored record.
    pub fn record(&self, uuid: &Uuid) -> VmRecord {
        self.ctx.store.load(uuid).unwrap().unwrap().vm
    }

    /// Marks a VM's record incomplete, as a receive killed halfway (or a
    /// create of an earlier release) leaves it.
    pub fn mark_incomplete(&self, uuid: &Uuid) {
        let mut rec = self.record(uuid);
        rec.incomplete = Some(true);
        rec.place(crate::spec::Field::Incomplete);
        self.ctx.store.save(uuid, &rec).unwrap();
    }

    /// The stored record as JSON, to compare values the way `get` shows them.
    pub fn stored(&self, uuid: &Uuid) -> Value {
        serde_json::to_value(self.record(uuid)).unwrap()
    }

    pub fn mark(&self) -> Mark {
        Mark {
            commands: self.runner.calls().len(),
            driver: self.driver.calls().len(),
        }
    }

    /// Every command run since `mark`, as its display string.
    pub fn commands_since(&self, mark: &Mark) -> Vec<String> {
        self.runner.calls()[mark.commands..]
            .iter()
            .map(|a| a.to_string())
            .collect()
    }

    /// Every driver call since `mark`, as the fake writes them down.
    pub fn driver_calls_since(&self, mark: &Mark) -> Vec<String> {
        self.driver.calls()[mark.driver..].to_vec()
    }
}
