//! `imgadm`: SmartOS-compatible image management. The command line (clap
//! definitions and rendering) is `imgadm_cli`, shared with `vmadm images`;
//! the verbs are `rvmadm::ops::images`. This file only hands it argv and
//! exits with its code.

#[path = "imgadm_cli/mod.rs"]
mod imgadm_cli;

fn main() {
    std::process::exit(imgadm_cli::run(std::env::args().collect()));
}
