//! Picks the driver for this host from the configuration.

use super::api::Driver;
use super::unsupported::Unsupported;
use crate::config::Config;
use crate::exec::CommandRunner;
use std::sync::Arc;

/// The driver named by `config.driver` (`auto` = by the host OS).
pub fn for_host(config: &Config, runner: Arc<dyn CommandRunner>) -> Box<dyn Driver> {
    let _ = (config, runner);
    Box::new(Unsupported)
}
