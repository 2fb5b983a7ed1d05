//! The `imgadm` command line, shared by the `imgadm` binary and `vmadm
//! images …` (both include this directory with `#[path]`, so the two can
//! never drift apart): parse argv with clap, call one verb of
//! `rvmadm::ops::images`, render its result, and map the outcome to
//! imgadm's exit codes (0 ok, 3 image not installed, 1 anything else —
//! usage errors too, as SmartOS's imgadm).
//!
//! Errors are printed once, here, as `imgadm <verb>: error (<Code>): <message>`;
//! data and change messages go to stdout, warnings and the import progress
//! bar to stderr.

mod progress;
mod render;
mod vacuum;

use clap::{Args, Parser, Subcommand};
use rvmadm::image::build::{BuildOpts, Layout};
use rvmadm::image::create::CreateOpts;
use rvmadm::image::error::Result;
use rvmadm::image::interrupt;
use rvmadm::image::manifest::Compression;
use rvmadm::ops::images::{self, sources::SourcesRequest};
use std::io::Write;
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "imgadm",
    version,
    about = "Manage images (ZFS datasets) for vmadm"
)]
pub(crate) struct Cli {
    /// Debug logging on stderr.
    #[arg(short = 'v', long, global = true)]
    verbose: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Args, Debug, Clone, Default)]
struct TableArgs {
    /// JSON output.
    #[arg(short = 'j', long)]
    json: bool,
    /// No header line.
    #[arg(short = 'H')]
    no_header: bool,
    /// Columns, comma separated.
    #[arg(short = 'o')]
    columns: Option<String>,
    /// Sort fields, comma separated; `-field` for descending.
    #[arg(short = 's', allow_hyphen_values = true)]
    sort: Option<String>,
    /// field=value or field=~substring filters.
    filters: Vec<String>,
}

fn parse_compression(s: &str) -> std::result::Result<Compression, String> {
    Compression::parse(s)
        .ok_or_else(|| format!("unknown compression \"{s}\" (none, gzip, bzip2, xz, zstd)"))
}

fn parse_layout(s: &str) -> std::result::Result<Layout, String> {
    Layout::parse(s).ok_or_else(|| format!("unknown layout \"{s}\" (auto, tree, zone)"))
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// List, add or delete image sources.
    Sources {
        #[arg(short = 'a', long = "add", value_name = "URL")]
        add: Option<String>,
        #[arg(short = 'd', long = "del", value_name = "URL")]
        delete: Option<String>,
        /// Source type for -a: imgapi (default) or dsapi.
        #[arg(short = 't', long = "type")]
        kind: Option<String>,
        /// Add without pinging the source.
        #[arg(short = 'f', long)]
        force: bool,
        /// Ping every source and report.
        #[arg(short = 'c', long)]
        check: bool,
        #[arg(short = 'j', long)]
        json: bool,
        /// Table with URL and type (`-v` is taken by verbose logging here).
        #[arg(short = 'l', long = "long")]
        long: bool,
    },
    /// Images available from the sources.
    #[command(alias = "available")]
    Avail(TableArgs),
    /// The manifest of an image in the sources.
    Show { uuid: String },
    /// Download and install an image (and its origins).
    Import {
        uuid: String,
        #[arg(short = 'P')]
        pool: Option<String>,
        #[arg(short = 'q', long)]
        quiet: bool,
        /// Use this source instead of the configured ones (repeatable).
        #[arg(short = 'S', long = "source")]
        source: Vec<String>,
    },
    /// Install an image from a local manifest and file.
    Install {
        #[arg(short = 'm')]
        manifest: PathBuf,
        #[arg(short = 'f')]
        file: PathBuf,
        #[arg(short = 'P')]
        pool: Option<String>,
        #[arg(short = 'q', long)]
        quiet: bool,
    },
    /// Installed images.
    List {
        #[command(flatten)]
        table: TableArgs,
        #[arg(short = 'P')]
        pool: Option<String>,
    },
    /// An installed image: manifest, zpool, source, clones.
    #[command(alias = "info")]
    Get {
        uuid: String,
        #[arg(short = 'P')]
        pool: Option<String>,
    },
    /// An installed image and its origins, child first.
    Ancestry {
        uuid: String,
        /// JSON output.
        #[arg(short = 'j', long)]
        json: bool,
        /// No header line.
        #[arg(short = 'H')]
        no_header: bool,
        /// Columns, comma separated (default uuid,name,version,published).
        #[arg(short = 'o')]
        columns: Option<String>,
        #[arg(short = 'P')]
        pool: Option<String>,
    },
    /// Remove an installed image (refused while anything is cloned from it).
    #[command(alias = "destroy")]
    Delete {
        uuid: String,
        #[arg(short = 'P')]
        pool: Option<String>,
    },
    /// Make an image from a stopped VM.
    Create {
        vm_uuid: String,
        /// Output directory (default: current directory).
        #[arg(short = 'o', long = "output-dir")]
        outdir: Option<PathBuf>,
        /// Incremental from the VM's origin image.
        #[arg(short = 'i', long)]
        incremental: bool,
        #[arg(short = 'c', long, value_parser = parse_compression)]
        compression: Option<Compression>,
        /// A JSON file of manifest fields.
        #[arg(short = 'm')]
        manifest: Option<PathBuf>,
        /// name=… version=… and other manifest fields.
        fields: Vec<String>,
    },
    /// Make an image from a directory tree or a tarball.
    Build {
        /// Directory or .tar/.tar.gz/.tar.bz2/.tar.xz/.txz/.tar.zst file.
        source: PathBuf,
        #[arg(short = 'o', long = "output-dir")]
        outdir: Option<PathBuf>,
        #[arg(short = 'c', long, value_parser = parse_compression)]
        compression: Option<Compression>,
        #[arg(short = 'P')]
        pool: Option<String>,
        /// How the source is laid out: `tree` (it is the guest's /, placed
        /// under root/), `zone` (already a zone dataset's top, root/ holding
        /// the guest's /: taken as is) or `auto` (told from the source;
        /// refused when it could be either).
        #[arg(long, value_parser = parse_layout, default_value = "auto")]
        layout: Layout,
        /// name=… version=… os=… [type=…] [description=…] and other fields.
        fields: Vec<String>,
    },
    /// Refresh installed images' manifests from the sources.
    Update {
        /// Say what would change, change nothing.
        #[arg(short = 'n', long = "dry-run")]
        dry_run: bool,
        /// Images to update (default: all installed).
        uuids: Vec<String>,
    },
    /// Remove images no VM or image is cloned from.
    Vacuum {
        /// Say what would be removed, remove nothing.
        #[arg(short = 'n', long = "dry-run")]
        dry_run: bool,
        /// Do not ask for confirmation.
        #[arg(short = 'f', long)]
        force: bool,
    },
    /// Upload an image to an IMGAPI server.
    Publish {
        #[arg(short = 'm')]
        manifest: PathBuf,
        #[arg(short = 'f')]
        file: PathBuf,
        #[arg(short = 'q', long)]
        quiet: bool,
        url: String,
    },
}

impl Cmd {
    fn name(&self) -> &'static str {
        match self {
            Cmd::Sources { .. } => "sources",
            Cmd::Avail(_) => "avail",
            Cmd::Show { .. } => "show",
            Cmd::Import { .. } => "import",
            Cmd::Install { .. } => "install",
            Cmd::List { .. } => "list",
            Cmd::Get { .. } => "get",
            Cmd::Ancestry { .. } => "ancestry",
            Cmd::Delete { .. } => "delete",
            Cmd::Create { .. } => "create",
            Cmd::Build { .. } => "build",
            Cmd::Update { .. } => "update",
            Cmd::Vacuum { .. } => "vacuum",
            Cmd::Publish { .. } => "publish",
        }
    }
}

fn cwd() -> PathBuf {
    std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."))
}

/// Clean-up problems the verbs report on the way (their error, if any,
/// follows).
fn warn(message: String) {
    eprintln!("warning: {message}");
}

/// One verb: open the host's context, call the verb, render its result.
fn dispatch(cmd: Cmd, out: &mut dyn Write) -> Result<()> {
    let (ctx, config_path) = images::open()?;
    match cmd {
        Cmd::Sources {
            add,
            delete,
            kind,
            force,
            check,
            json,
            long,
        } => {
            let req = SourcesRequest {
                add,
                delete,
                kind,
                force,
                check,
            };
            let outcome = images::sources::sources(&ctx, &config_path, &req)?;
            render::sources(out, &outcome, json, long)
        }
        Cmd::Avail(t) => {
            let avail_warn = &mut |m: String| eprintln!("imgadm avail: warning: {m}");
            let found = images::avail::avail(&ctx, &t.filters, avail_warn)?;
            render::images(out, found, &t, false)
        }
        Cmd::Show { uuid } => render::json(out, &images::show::show(&ctx, &uuid)?),
        Cmd::Import {
            uuid,
            pool,
            quiet,
            source,
        } => {
            interrupt::install();
            let mut report = progress::Report::new(out, quiet);
            images::import::import(&ctx, &uuid, pool.as_deref(), &source, &mut report)
        }
        Cmd::Install {
            manifest,
            file,
            pool,
            quiet,
        } => {
            interrupt::install();
            let mut report = progress::Report::new(out, quiet);
            images::install::install(&ctx, &manifest, &file, pool.as_deref(), &mut report)
        }
        Cmd::List { table, pool } => {
            let found = images::list::list(&ctx, &table.filters, pool.as_deref())?;
            render::images(out, found, &table, true)
        }
        Cmd::Get { uuid, pool } => {
            let image = images::get::get(&ctx, &uuid, pool.as_deref())?;
            render::json(out, &image.info_json())
        }
        Cmd::Ancestry {
            uuid,
            json,
            no_header,
            columns,
            pool,
        } => {
            let chain = images::ancestry::ancestry(&ctx, &uuid, pool.as_deref())?;
            render::ancestry(&chain, json, !no_header, columns.as_deref(), out)
        }
        Cmd::Delete { uuid, pool } => {
            let uuid = images::delete::delete(&ctx, &uuid, pool.as_deref())?;
            render::line(out, format_args!("Deleted image {uuid}"))
        }
        Cmd::Create {
            vm_uuid,
            outdir,
            incremental,
            compression,
            manifest,
            fields,
        } => {
            interrupt::install();
            let opts = CreateOpts {
                outdir: outdir.unwrap_or_else(cwd),
                incremental,
                compression: compression.unwrap_or(Compression::Gzip),
                manifest,
                fields,
            };
            let built = images::create::create(&ctx, &vm_uuid, &opts, &mut warn)?;
            render::built(out, "Created", &built)
        }
        Cmd::Build {
            source,
            outdir,
            compression,
            pool,
            layout,
            fields,
        } => {
            interrupt::install();
            let opts = BuildOpts {
                source,
                fields,
                outdir: outdir.unwrap_or_else(cwd),
                compression: compression.unwrap_or(Compression::Gzip),
                pool,
                layout,
            };
            let built = images::build::build(&ctx, &opts, &mut warn)?;
            render::built(out, "Built", &built)
        }
        Cmd::Update { dry_run, uuids } => {
            let opts = images::update::UpdateOptions { uuids, dry_run };
            let mut failed_write = None;
            let result = images::update::update(&ctx, &opts, &mut |m| {
                if let Err(e) = render::line(out, &m) {
                    failed_write.get_or_insert(e);
                }
            });
            result?;
            failed_write.map_or(Ok(()), Err)
        }
        Cmd::Vacuum { dry_run, force } => vacuum::run(&ctx, out, dry_run, force),
        Cmd::Publish {
            manifest,
            file,
            url,
            quiet: _,
        } => {
            let done = images::publish::publish(&manifest, &file, &url, &mut warn)?;
            render::line(
                out,
                format_args!(
                    "Successfully published image {} to {}",
                    done.uuid, done.server
                ),
            )
        }
    }
}

/// Runs imgadm with `args` (`args[0]` is the program name) and returns the
/// exit code. `vmadm images …` calls this with its remaining arguments.
pub fn run(args: Vec<String>) -> i32 {
    let cli = match Cli::try_parse_from(&args) {
        Ok(c) => c,
        Err(e) => return parse_error(&args, e),
    };
    if cli.verbose {
        let _ = tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .with_env_filter("debug")
            .try_init();
    }
    let verb = cli.cmd.name();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match dispatch(cli.cmd, &mut out) {
        Ok(()) => {
            let _ = out.flush();
            0
        }
        Err(e) => {
            let _ = out.flush();
            // An empty message is a refused prompt: already said.
            if !e.message.is_empty() {
                eprintln!("imgadm {verb}: error ({}): {}", e.code, e.message);
            }
            e.exit_code()
        }
    }
}

/// The arguments after the verb that are neither options nor the value of
/// one (the options that take a value are the ones imgadm's verbs have).
fn positional_args<'a>(verb: &str, after_verb: &'a [String]) -> Vec<&'a str> {
    const TAKE_VALUE: &[&str] = &["-P", "-S", "-o", "-c", "-m", "-f", "-t", "-a", "-d", "-s"];
    // vacuum's and update's options are all flags.
    let flags_only = matches!(verb, "vacuum" | "update");
    let mut out = Vec::new();
    let mut skip = false;
    for a in after_verb {
        if skip {
            skip = false;
        } else if !flags_only && TAKE_VALUE.contains(&a.as_str()) {
            skip = true;
        } else if !a.starts_with('-') {
            out.push(a.as_str());
        }
    }
    out
}

/// A command line clap refused, reported as imgadm's cmdln does: `imgadm:
/// error (UnknownCommand): unknown command: "x"` or `imgadm <verb>: error
/// (Usage): <what is wrong>`, exit status 1. Help and version exit 0.
fn parse_error(args: &[String], e: clap::Error) -> i32 {
    use clap::error::ErrorKind;
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let _ = e.print();
            return 0;
        }
        ErrorKind::InvalidSubcommand => {
            let verb = args.get(1).map(String::as_str).unwrap_or("");
            eprintln!("imgadm: error (UnknownCommand): unknown command: \"{verb}\"");
            return 1;
        }
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand | ErrorKind::MissingSubcommand => {
            let _ = e.print();
            return 1;
        }
        _ => {}
    }
    // The verb is the first argument that is not a global flag.
    let verb_at = args
        .iter()
        .skip(1)
        .position(|a| !a.starts_with('-'))
        .map(|i| i + 1);
    let verb = verb_at
        .and_then(|i| args.get(i))
        .map_or(String::new(), |v| format!(" {v}"));
    // imgadm's own words where it has them: an unknown option, extra
    // arguments to vacuum, the wrong number of arguments to the rest.
    let bad = match e.get(clap::error::ContextKind::InvalidArg) {
        Some(clap::error::ContextValue::String(s)) => {
            s.split_whitespace().next().map(str::to_string)
        }
        _ => None,
    };
    let positional = positional_args(
        verb.trim_start(),
        verb_at.map_or(&[][..], |i| &args[i + 1..]),
    );
    let smartos = match (e.kind(), bad) {
        (ErrorKind::UnknownArgument, Some(opt)) if opt.starts_with('-') => {
            eprintln!("imgadm{verb}: error (Option): unknown option: \"{opt}\"");
            return 1;
        }
        (ErrorKind::UnknownArgument, _) if verb == " vacuum" => {
            Some(format!("unexpected arguments: {}", positional.join(" ")))
        }
        (ErrorKind::UnknownArgument | ErrorKind::MissingRequiredArgument, _) => Some(format!(
            "incorrect number of args ({}): \"{}\"",
            positional.len(),
            positional.join(" ")
        )),
        _ => None,
    };
    if let Some(m) = smartos {
        eprintln!("imgadm{verb}: error (Usage): {m}");
        return 1;
    }
    let text = e.render().to_string();
    let first = text
        .lines()
        .next()
        .unwrap_or("")
        .trim_start_matches("error: ")
        .to_string();
    eprintln!("imgadm{verb}: error (Usage): {first}");
    1
}
