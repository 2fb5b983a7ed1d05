//! `imgadm build <tree|tarball> name=… version=… os=…`: an image file and
//! manifest from a directory tree or a tarball, through a temporary dataset
//! of its own (no VM, so no lock). The pipeline is `image::build`.

use crate::image::build::{self as pipeline, BuildOpts, Built};
use crate::image::error::Result;
use crate::ops::Ctx;

/// Builds the image; a temporary dataset left behind is reported to `warn`.
pub fn build(ctx: &Ctx, opts: &BuildOpts, warn: &mut dyn FnMut(String)) -> Result<Built> {
    pipeline::build(&ctx.config, ctx.runner.as_ref(), opts, warn)
}
