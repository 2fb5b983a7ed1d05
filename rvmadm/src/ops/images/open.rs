//! The context an image verb runs in: [`Ctx`] for this host, plus the path
//! of the configuration it came from (`sources` writes the list back there).

use crate::config::Config;
use crate::image::error::Result;
use crate::ops::Ctx;
use std::path::PathBuf;

/// Loads the configuration (`$VMADM_CONFIG` or the default path) and builds
/// the host's context: real processes and the configured driver. A bad
/// configuration is imgadm's `ConfigError`.
pub fn open() -> Result<(Ctx, PathBuf)> {
    let (config, path) = Config::load()?;
    Ok((Ctx::for_host(config), path))
}
