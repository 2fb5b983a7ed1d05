//! `vmadm`: parse argv, call one ops verb, render, exit 0/1/2.
//!
//! Data goes to stdout, human messages to stderr, exactly as SmartOS's vmadm
//! does, so scripts written for it keep working. This file never touches
//! drivers, ZFS or record files itself.

use clap::{Args, Parser, Subcommand};
use rvmadm::driver::StopOptions;
use rvmadm::ops::list::{ListOptions, LookupOptions, LookupOutput};
use rvmadm::ops::{self, parse_uuid, Ctx, OpsError, OpsResult};
use rvmadm::spec::Action;
use serde_json::{Map, Value};
use std::io::{IsTerminal, Read, Write};
use std::time::Duration;

// Start-up is most of a `get` or small `list` (docs/performance.md): this
// binary links no image code (`vmadm images` runs the `imgadm` binary) and
// keeps the system allocator (mimalloc's start-up alone cost more than a
// `get`'s own work).

/// Payloads larger than this are refused before parsing.
const MAX_PAYLOAD: u64 = 1 << 20;

#[derive(Parser)]
#[command(
    name = "vmadm",
    about = "Manage jails the SmartOS vmadm way",
    version,
    disable_help_subcommand = true
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args)]
struct PayloadArg {
    /// JSON payload file (`-` or absent: stdin)
    #[arg(short = 'f', long = "file")]
    file: Option<String>,
}

#[derive(Args)]
struct StopArgs {
    uuid: String,
    /// Stop at once, without the graceful phase
    #[arg(short = 'F', long = "force")]
    force: bool,
    /// Seconds to wait for a graceful stop before killing
    #[arg(short = 't', long = "timeout")]
    timeout: Option<u64>,
}

#[derive(Subcommand)]
enum Command {
    /// Create a VM from a JSON payload
    Create(PayloadArg),
    /// Print a VM's JSON object
    #[command(alias = "json")]
    Get { uuid: String },
    /// List VMs as a table
    List {
        /// Parsable output: fields joined by ':'
        #[arg(short = 'p', long = "parsable")]
        parsable: bool,
        /// No header line
        #[arg(short = 'H')]
        no_header: bool,
        /// Columns (default uuid,type,ram,state,alias)
        #[arg(short = 'o', long = "order")]
        order: Option<String>,
        /// Sort keys, '-' prefix for descending (default ram,uuid)
        #[arg(short = 's', long = "sortby", allow_hyphen_values = true)]
        sortby: Option<String>,
        /// Filters: key=value or key=~regex
        filters: Vec<String>,
    },
    /// Print UUIDs (or JSON objects) of matching VMs
    Lookup {
        /// JSON objects instead of UUIDs
        #[arg(short = 'j', long = "json")]
        json: bool,
        /// Require exactly one match
        #[arg(short = '1', long = "unique")]
        unique: bool,
        /// Keys to keep in JSON objects
        #[arg(short = 'o', long = "output")]
        output: Option<String>,
        filters: Vec<String>,
    },
    /// Change a VM from a JSON payload or key=value arguments
    Update {
        uuid: String,
        #[arg(short = 'f', long = "file")]
        file: Option<String>,
        /// key=value pairs (stdin/-f ignored when given)
        pairs: Vec<String>,
    },
    /// Delete a VM and its dataset
    #[command(alias = "destroy")]
    Delete {
        uuid: String,
        /// Accepted as SmartOS's tools send it; delete always stops a
        /// running VM at once, so it changes nothing
        #[arg(short = 'F', long = "force")]
        force: bool,
    },
    /// Validate a payload: `validate create` or `validate update <brand>`
    Validate {
        action: Option<String>,
        brand: Option<String>,
        #[arg(short = 'f', long = "file")]
        file: Option<String>,
    },
    /// Start a VM
    #[command(alias = "boot")]
    Start { uuid: String },
    /// Stop a VM
    #[command(alias = "halt")]
    Stop(StopArgs),
    /// Reboot a running VM
    Reboot(StopArgs),
    /// Send a signal to a VM's init
    Kill {
        /// Signal name or number (default SIGTERM)
        #[arg(short = 's', long = "signal")]
        signal: Option<String>,
        uuid: String,
    },
    /// Interactive login shell in a running VM
    Console { uuid: String },
    // The help text as an attribute, not a doc comment: rustdoc would read
    // `<uuid>` as HTML and `[args]` as a link.
    #[command(about = "Run one command in a running VM: exec <uuid> -- cmd [args]")]
    Exec {
        uuid: String,
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Start every VM marked autoboot (for host boot)
    Autoboot,
    /// Snapshot a VM's dataset
    CreateSnapshot { uuid: String, name: String },
    /// Delete a VM snapshot
    DeleteSnapshot { uuid: String, name: String },
    /// Roll a VM back to a snapshot
    RollbackSnapshot { uuid: String, name: String },
    /// Replace a VM's root with a fresh clone of an image (payload: image_uuid)
    Reprovision {
        uuid: String,
        #[arg(short = 'f', long = "file")]
        file: Option<String>,
    },
    /// Print VM changes as they happen (runs until interrupted)
    Events {
        /// Full dates and zonenames
        #[arg(short = 'f', long = "full")]
        full: bool,
        /// One JSON object per line
        #[arg(short = 'j', long = "json")]
        json: bool,
        /// Print a ready event first
        #[arg(short = 'r', long = "ready")]
        ready: bool,
        /// Only this VM
        uuid: Option<String>,
    },
    /// Write a VM (JSON and dataset) as one stream to stdout
    Send {
        uuid: String,
        /// Ignored, as in SmartOS: the stream always goes to stdout
        target: Option<String>,
    },
    /// Create a VM from a `vmadm send` stream on stdin
    #[command(alias = "recv")]
    Receive {
        /// Accepted for compatibility; the stream is read from stdin
        #[arg(short = 'f', long = "file")]
        file: Option<String>,
    },
    /// Hardware-VM information (not available for jails)
    Info { uuid: String, types: Vec<String> },
    /// Hardware-VM requests: nmi, screenshot (not available for jails)
    Sysrq { uuid: String, kind: Vec<String> },
    /// Image management: the same as `imgadm <args>`
    #[command(disable_help_flag = true)]
    Images {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

/// The line SmartOS's vmadm prints for a command line with missing or
/// extra arguments, where it has one: a missing or malformed uuid, a
/// snapshot verb without its one name, `kill` with too much. `None`: let
/// clap explain.
fn smartos_usage(args: &[String], kind: clap::error::ErrorKind) -> Option<String> {
    use clap::error::ErrorKind;
    let verb = args.get(1)?.as_str();
    let rest: Vec<&str> = args
        .iter()
        .skip(2)
        .map(String::as_str)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let has_uuid = rest
        .first()
        .is_some_and(|a| rvmadm::spec::value::is_uuid(a));
    let missing = kind == ErrorKind::MissingRequiredArgument;
    let extra = kind == ErrorKind::UnknownArgument;
    match verb {
        "create-snapshot" | "delete-snapshot" | "rollback-snapshot" if missing || extra => {
            Some(if has_uuid {
                format!("Wrong number of parameters to \"{verb}\"")
            } else {
                format!("Invalid or missing UUID for {verb}")
            })
        }
        "kill" if extra => Some("Too many arguments.".into()),
        "kill" if missing => Some("Invalid or missing argument UUID".into()),
        "get" | "json" | "delete" | "destroy" | "start" | "boot" | "stop" | "halt" | "reboot"
        | "console" | "send" | "update" | "reprovision" | "info" | "exec" | "sysrq"
            if missing && !has_uuid =>
        {
            Some(format!("Invalid or missing UUID for {verb}"))
        }
        _ => None,
    }
}

/// Turns SmartOS's `kill -9 <uuid>` / `kill -HUP <uuid>` into `-s`.
fn rewrite_kill_args(mut args: Vec<String>) -> Vec<String> {
    if args.get(1).map(String::as_str) == Some("kill") {
        for a in args.iter_mut().skip(2) {
            if let Some(sig) = a.strip_prefix('-') {
                let looks_like_signal = !sig.is_empty()
                    && sig != "s"
                    && !sig.starts_with('-')
                    && sig.chars().all(|c| c.is_ascii_alphanumeric());
                if looks_like_signal {
                    *a = format!("--signal={sig}");
                }
            }
        }
    }
    args
}

/// Reads a JSON payload from `file` or stdin. `tty_refusal` is SmartOS's
/// usage line for the verb when stdin is a terminal.
fn read_payload(file: Option<&str>, tty_refusal: &str) -> OpsResult<Map<String, Value>> {
    let mut text = String::new();
    match file {
        Some(path) if path != "-" => {
            let f = std::fs::File::open(path).map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => {
                    OpsError::Failed(format!("File: {path} does not exist."))
                }
                _ => OpsError::Failed(format!("File: {path} cannot be read: {e}")),
            })?;
            f.take(MAX_PAYLOAD + 1)
                .read_to_string(&mut text)
                .map_err(|e| OpsError::Failed(format!("File: {path} cannot be read: {e}")))?;
        }
        _ => {
            let stdin = std::io::stdin();
            if stdin.is_terminal() {
                return Err(OpsError::Usage(tty_refusal.into()));
            }
            stdin
                .lock()
                .take(MAX_PAYLOAD + 1)
                .read_to_string(&mut text)
                .map_err(|e| {
                    OpsError::Failed(format!("Invalid JSON payload: cannot read stdin: {e}"))
                })?;
        }
    }
    if text.len() as u64 > MAX_PAYLOAD {
        return Err(OpsError::Failed(format!(
            "Invalid JSON payload: larger than {} KiB",
            MAX_PAYLOAD / 1024
        )));
    }
    match serde_json::from_str::<Value>(&text) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(OpsError::Failed(
            "Invalid JSON payload: not a JSON object".into(),
        )),
        Err(e) => Err(OpsError::Failed(format!("Invalid JSON payload: {e}"))),
    }
}

/// Writes data to stdout; a closed pipe ends the program quietly (exit 0).
fn out(text: &str) {
    let mut so = std::io::stdout().lock();
    if so
        .write_all(text.as_bytes())
        .and_then(|_| so.flush())
        .is_err()
    {
        std::process::exit(0);
    }
}

fn json_out(v: &impl serde::Serialize) {
    match serde_json::to_string_pretty(v) {
        Ok(s) => out(&format!("{s}\n")),
        Err(e) => eprintln!("cannot render JSON: {e}"),
    }
}

fn stop_options(a: &StopArgs) -> StopOptions {
    let mut o = StopOptions {
        force: a.force,
        ..Default::default()
    };
    if let Some(t) = a.timeout {
        o.timeout = Duration::from_secs(t);
    }
    o
}

/// SmartOS prefixes every delete failure with `Failed to delete VM <uuid>: `
/// and names a missing VM `VM <uuid> not found` there (vminfod's wording,
/// not zoneadm's).
fn delete_failed(uuid: &uuid::Uuid, e: OpsError) -> OpsError {
    match e {
        OpsError::NoSuchVm(_) => {
            OpsError::Failed(format!("Failed to delete VM {uuid}: VM {uuid} not found"))
        }
        OpsError::Failed(m) if m.starts_with("Failed to delete VM ") => OpsError::Failed(m),
        OpsError::Usage(m) => OpsError::Usage(m),
        other => OpsError::Failed(format!("Failed to delete VM {uuid}: {other}")),
    }
}

/// `vmadm images …` is `imgadm …`: the same command line, verbs, output
/// and exit codes, because it is the `imgadm` binary installed beside this
/// one (or, failing that, the one on `PATH`) run on the same terminal.
/// Keeping the image code (HTTP, TLS, decompressors) out of `vmadm` makes
/// every other verb start faster.
fn images(args: Vec<String>) -> OpsResult<i32> {
    use rvmadm::exec::{Argv, CommandRunner, SystemRunner};
    let beside = std::env::current_exe()
        .ok()
        .map(|exe| exe.with_file_name("imgadm"))
        .filter(|p| p.is_file());
    let program = beside.map_or_else(|| "imgadm".to_string(), |p| p.display().to_string());
    let argv = Argv::new(std::iter::once(program).chain(args));
    SystemRunner
        .interactive(&argv)
        .map_err(|e| OpsError::Failed(format!("vmadm images: {e}")))
}

fn run(cmd: Command) -> OpsResult<i32> {
    // `vmadm images …` is imgadm; it reads the config itself.
    let cmd = match cmd {
        Command::Images { args } => return images(args),
        other => other,
    };
    let ctx = Ctx::from_env()?;
    let warn = &mut |m: String| eprintln!("{m}");
    match cmd {
        Command::Create(p) => {
            let payload = read_payload(
                p.file.as_deref(),
                "Will not create from stdin when stdin is a tty.",
            )?;
            let uuid = ops::create::create(&ctx, &payload)?;
            eprintln!("Successfully created VM {uuid}");
        }
        Command::Get { uuid } => {
            let uuid = parse_uuid(&uuid, "get")?;
            json_out(&ops::get::get(&ctx, &uuid)?);
        }
        Command::List {
            parsable,
            no_header,
            order,
            sortby,
            filters,
        } => {
            let opts = ListOptions {
                columns: order,
                sort: sortby,
                parsable,
                header: !parsable && !no_header,
                filters,
            };
            out(&ops::list::list(&ctx, &opts, warn)?);
        }
        Command::Lookup {
            json,
            unique,
            output,
            filters,
        } => {
            let opts = LookupOptions {
                json,
                unique,
                fields: output,
                filters,
            };
            match ops::list::lookup(&ctx, &opts, warn)? {
                LookupOutput::Uuids(u) => {
                    let mut s = u.join("\n");
                    if !s.is_empty() {
                        s.push('\n');
                    }
                    out(&s);
                }
                LookupOutput::Objects(o) => json_out(&o),
            }
        }
        Command::Update { uuid, file, pairs } => {
            let uuid = parse_uuid(&uuid, "update")?;
            let payload = if pairs.is_empty() {
                read_payload(
                    file.as_deref(),
                    "Will not update from stdin when stdin is a tty.",
                )?
            } else {
                ops::update::payload_from_args(&pairs)?
            };
            let res = ops::update::update(&ctx, &uuid, &payload)?;
            if !res.need_reboot.is_empty() {
                eprintln!(
                    "Note: {} will take effect at the next boot",
                    res.need_reboot.join(",")
                );
            }
            eprintln!("Successfully updated VM {uuid}");
        }
        Command::Delete { uuid, force: _ } => {
            let uuid = parse_uuid(&uuid, "delete")?;
            ops::delete::delete(&ctx, &uuid).map_err(|e| delete_failed(&uuid, e))?;
            eprintln!("Successfully deleted VM {uuid}");
        }
        Command::Validate {
            action,
            brand,
            file,
        } => {
            let action = match action.as_deref() {
                Some("create") => Action::Create,
                Some("update") => {
                    if brand.is_none() {
                        return Err(OpsError::Usage(
                            "Will not validate without a valid action and brand.".into(),
                        ));
                    }
                    Action::Update
                }
                _ => {
                    return Err(OpsError::Usage(
                        "Will not validate without a valid action.".into(),
                    ))
                }
            };
            let payload = read_payload(
                file.as_deref(),
                "Will not validate from stdin when stdin is a tty.",
            )?;
            match ops::validate::validate_on_host(&ctx, action, brand.as_deref(), &payload) {
                Ok(msg) => eprintln!("{msg}"),
                Err(errors) => {
                    eprintln!(
                        "{}",
                        serde_json::to_string_pretty(&errors).unwrap_or_default()
                    );
                    return Ok(1);
                }
            }
        }
        Command::Start { uuid } => {
            let uuid = parse_uuid(&uuid, "start")?;
            match ops::start::start(&ctx, &uuid)? {
                ops::start::Started::Started => eprintln!("Successfully started VM {uuid}"),
                ops::start::Started::AlreadyRunning => {
                    eprintln!("Unable to start VM {uuid}: VM {uuid} is already 'running'")
                }
            }
        }
        Command::Stop(a) => {
            let uuid = parse_uuid(&a.uuid, "stop")?;
            match ops::stop::stop(&ctx, &uuid, stop_options(&a))? {
                ops::stop::Stopped::Stopped => {
                    eprintln!("Successfully completed stop for VM {uuid}")
                }
                ops::stop::Stopped::NotRunning(state) => {
                    eprintln!("VM {uuid} is already not 'running' (currently: {state})")
                }
            }
        }
        Command::Reboot(a) => {
            let uuid = parse_uuid(&a.uuid, "reboot")?;
            ops::reboot::reboot(&ctx, &uuid, stop_options(&a))?;
            eprintln!("Successfully completed reboot for VM {uuid}");
        }
        Command::Kill { signal, uuid } => {
            let uuid = parse_uuid(&uuid, "kill")?;
            // SmartOS echoes the signal as given (`9`, `KILL`), SIGTERM
            // when none was.
            let given = signal.unwrap_or_else(|| "SIGTERM".into());
            let parsed = ops::kill::parse_signal(&given)?;
            ops::kill::kill(&ctx, &uuid, parsed)?;
            eprintln!("Sent signal \"{given}\" to init process for VM {uuid}");
        }
        Command::Console { uuid } => {
            let uuid = parse_uuid(&uuid, "console")?;
            return ops::console::console(&ctx, &uuid);
        }
        Command::Exec { uuid, command } => {
            let uuid = parse_uuid(&uuid, "exec")?;
            return ops::console::exec(&ctx, &uuid, &command);
        }
        Command::Autoboot => {
            let mut failed = 0;
            for (uuid, r) in ops::autoboot::autoboot(&ctx)? {
                match r {
                    Ok(()) => eprintln!("Successfully started VM {uuid}"),
                    Err(e) => {
                        failed += 1;
                        eprintln!("{e}");
                    }
                }
            }
            return Ok(if failed > 0 { 1 } else { 0 });
        }
        Command::CreateSnapshot { uuid, name } => {
            let uuid = parse_uuid(&uuid, "create-snapshot")?;
            ops::snapshot::create_snapshot(&ctx, &uuid, &name)?;
            eprintln!("Created snapshot {name} for VM {uuid}");
        }
        Command::DeleteSnapshot { uuid, name } => {
            let uuid = parse_uuid(&uuid, "delete-snapshot")?;
            ops::snapshot::delete_snapshot(&ctx, &uuid, &name)?;
            eprintln!("Deleted snapshot {name} for VM {uuid}");
        }
        Command::RollbackSnapshot { uuid, name } => {
            let uuid = parse_uuid(&uuid, "rollback-snapshot")?;
            ops::snapshot::rollback_snapshot(&ctx, &uuid, &name)?;
            eprintln!("Rolled back snapshot {name} for VM {uuid}");
        }
        Command::Images { args } => return images(args),
        Command::Sysrq { uuid, kind } => {
            let uuid = parse_uuid(&uuid, "sysrq")?;
            let [kind] = kind.as_slice() else {
                return Err(OpsError::Usage(
                    "Wrong number of parameters to \"sysrq\"".into(),
                ));
            };
            if kind != "nmi" && kind != "screenshot" {
                return Err(OpsError::Usage(format!("Invalid sysrq type: {kind}")));
            }
            // SmartOS's order: the state, then the brand (only bhyve and
            // kvm take requests, so a jail never does).
            let vm = ops::get::get(&ctx, &uuid)?;
            let state = vm.get("state").and_then(Value::as_str).unwrap_or("stopped");
            return Err(OpsError::Failed(
                if state == "running" || state == "stopping" {
                    "The sysrq command is only supported for VMs  with brand \"bhyve\" or \"kvm\"."
                        .into()
                } else {
                    format!("Unable to send request to vm from state \"{state}\", must be \"running\" or \"stopping\".")
                },
            ));
        }
        Command::Reprovision { uuid, file } => {
            let uuid = parse_uuid(&uuid, "reprovision")?;
            let payload = read_payload(
                file.as_deref(),
                "Will not take payload from stdin when stdin is a tty.",
            )?;
            ops::reprovision::reprovision(&ctx, &uuid, &payload)?;
            eprintln!("Successfully reprovisioned VM {uuid}");
        }
        Command::Events {
            full,
            json,
            ready,
            uuid,
        } => {
            let uuid = uuid.map(|u| parse_uuid(&u, "events")).transpose()?;
            let opts = ops::events::EventOptions {
                full,
                json,
                ready,
                uuid,
                interval: Duration::from_millis(250),
                backstop: ops::events::BACKSTOP,
            };
            let mut so = std::io::stdout().lock();
            ops::events::events(&ctx, &opts, &mut so, &|| false)?;
        }
        Command::Send { uuid, target: _ } => {
            let uuid = parse_uuid(&uuid, "send")?;
            if std::io::stdout().is_terminal() {
                return Err(OpsError::Failed("Cannot send VM to a TTY.".into()));
            }
            let mut so = std::io::stdout().lock();
            ops::send::send(&ctx, &uuid, &mut so)?;
            eprintln!("Successfully sent VM {uuid}");
        }
        Command::Receive { file: _ } => {
            if std::io::stdin().is_terminal() {
                return Err(OpsError::Usage(
                    "will not read a VM stream from a terminal: pipe `vmadm send` into it".into(),
                ));
            }
            let mut si = std::io::stdin().lock();
            let uuid = ops::receive::receive(&ctx, &mut si)?;
            eprintln!("Successfully received VM {uuid}");
        }
        Command::Info { uuid, types: _ } => {
            let uuid = parse_uuid(&uuid, "info")?;
            let vm = ops::get::get(&ctx, &uuid)?;
            let brand = vm.get("brand").and_then(Value::as_str).unwrap_or("jail");
            let state = vm.get("state").and_then(Value::as_str).unwrap_or("stopped");
            // SmartOS looks at the state first, then at the brand's info
            // types (none for a jail).
            let why = if state == "running" || state == "stopping" {
                format!("no info types supported for brand {brand}")
            } else {
                format!("Unable to get info for vm from state \"{state}\", must be \"running\" or \"stopping\".")
            };
            return Err(OpsError::Failed(format!(
                "Unable to get VM info for VM {uuid}: {why}"
            )));
        }
    }
    Ok(0)
}

/// Logs go to stderr: warnings by default, `VMADM_LOG` (an env-filter
/// string such as `debug`) for more. The filter parser is only built when
/// asked for: it costs a noticeable share of a 2 ms command.
fn init_logging() {
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .without_time();
    let _ = match std::env::var("VMADM_LOG") {
        Ok(spec) if !spec.is_empty() => builder
            .with_env_filter(tracing_subscriber::EnvFilter::new(spec))
            .try_init(),
        _ => builder.with_max_level(tracing::Level::WARN).try_init(),
    };
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    // Started by the Linux driver as a jail's console log keeper, not by a user.
    if args.get(1).map(String::as_str) == Some(rvmadm::driver::linux::console_log::KEEPER_ARG) {
        std::process::exit(rvmadm::driver::linux::console_log::keeper_main(&args[2..]));
    }
    init_logging();
    let args = rewrite_kill_args(args);
    let cli = match Cli::try_parse_from(&args) {
        Ok(c) => c,
        Err(e) => {
            use clap::error::ErrorKind;
            let code = match e.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
                    let _ = e.print();
                    0
                }
                ErrorKind::InvalidSubcommand => {
                    let cmd = args.get(1).cloned().unwrap_or_default();
                    eprintln!("Invalid command: \"{cmd}\".");
                    eprintln!(
                        "Usage: vmadm <command> [options]  (vmadm --help lists the commands)"
                    );
                    2
                }
                _ => {
                    match smartos_usage(&args, e.kind()) {
                        Some(line) => {
                            eprintln!("{line}");
                            eprintln!(
                                "Usage: vmadm <command> [options]  (vmadm --help lists the commands)"
                            );
                        }
                        None => {
                            let _ = e.print();
                        }
                    }
                    2
                }
            };
            std::process::exit(code);
        }
    };
    let code = match run(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("{e}");
            e.exit_code()
        }
    };
    std::process::exit(code);
}
