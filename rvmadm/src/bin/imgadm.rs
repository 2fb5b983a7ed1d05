//! `imgadm`: SmartOS-compatible image management. All logic lives in
//! `rvmadm::image`; this binary only hands it argv and exits with its code.

fn main() {
    std::process::exit(rvmadm::image::cli::run(std::env::args().collect()));
}
