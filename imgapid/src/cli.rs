//! imgapid's command line as a clap definition. `main.rs` parses argv with
//! it, and rvmadm's doc generator includes this file (`#[path]`) to write
//! imgapid(8) and the shell completions from the same definition, so the
//! manual cannot drift from what the binary accepts.

use clap::Parser;
use std::path::PathBuf;

/// `imgapid --config FILE`.
#[derive(Parser, Debug)]
#[command(
    name = "imgapid",
    version,
    about = "IMGAPI/DSAPI image (dataset) server for rvmadm",
    long_about = "Serves IMGAPI (/images) and DSAPI (/datasets) from the data \
                  directory or the S3 bucket named in the configuration file (see \
                  imgapid.toml(5)); replicas may share one bucket. \
                  Runs in the foreground until SIGTERM or SIGINT, then shuts down \
                  gracefully. Logs go to stderr, filtered by RUST_LOG (default info); \
                  with IMGAPID_LOG_FORMAT=json each event is one JSON object per line."
)]
pub struct Cli {
    /// The configuration file (TOML, see imgapid.toml(5))
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    pub config: PathBuf,
}
