//! `imgapid --config FILE`: loads the config, sets up structured logging
//! (tracing events with key=value fields, or JSON lines, on stderr) and runs
//! the server until SIGTERM/SIGINT.

use std::process::ExitCode;

mod cli;

/// Logs go to stderr, filtered by `RUST_LOG` (default `info`); with
/// `IMGAPID_LOG_FORMAT=json` each event is one JSON object per line.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter);
    if std::env::var("IMGAPID_LOG_FORMAT").is_ok_and(|v| v == "json") {
        builder.json().with_current_span(false).init();
    } else {
        builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init();
    }
}

fn main() -> ExitCode {
    // Usage errors exit 2 (clap's code), --help and --version 0.
    let path = <cli::Cli as clap::Parser>::parse().config;
    init_logging();
    let cfg = match imgapid::config::Config::load(&path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("imgapid: {e}");
            return ExitCode::FAILURE;
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("imgapid: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(imgapid::server::run(cfg)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "imgapid failed");
            eprintln!("imgapid: {e}");
            ExitCode::FAILURE
        }
    }
}
