//! What `imgadm import` shows while it works: its notes as lines on stdout
//! (`-q` drops the "Importing …" ones) and, on a terminal, a progress bar
//! per download on stderr.

use super::render::line;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rvmadm::image::error::Result;
use rvmadm::image::import::{DownloadProgress, ImportNote, ImportReport};
use std::io::{IsTerminal, Write};
use std::sync::Arc;
use uuid::Uuid;

/// The import report of the command line.
pub struct Report<'a> {
    out: &'a mut dyn Write,
    quiet: bool,
}

impl<'a> Report<'a> {
    pub fn new(out: &'a mut dyn Write, quiet: bool) -> Report<'a> {
        Report { out, quiet }
    }
}

impl ImportReport for Report<'_> {
    fn note(&mut self, note: ImportNote) -> Result<()> {
        match note {
            ImportNote::AlreadyInstalled {
                uuid,
                name,
                version,
            } => line(
                self.out,
                format_args!("Image {uuid} ({name} {version}) is already installed, skipping"),
            ),
            ImportNote::Importing { .. } if self.quiet => Ok(()),
            ImportNote::Importing {
                uuid,
                label,
                source,
            } => line(
                self.out,
                format_args!("Importing {uuid} ({label}) from \"{source}\""),
            ),
            ImportNote::Installing { uuid, label } => {
                line(self.out, format_args!("Installing image {uuid} ({label})"))
            }
            ImportNote::Resumed { .. } if self.quiet => Ok(()),
            ImportNote::Resumed {
                uuid,
                source,
                offset,
            } => line(
                self.out,
                format_args!("Resumed {uuid} from \"{source}\" at byte {offset}"),
            ),
            ImportNote::Imported { uuid, label } => {
                line(self.out, format_args!("Imported image {uuid} ({label})"))
            }
            ImportNote::Warning(message) => {
                super::warn(message);
                Ok(())
            }
        }
    }

    fn download(&mut self, _uuid: &Uuid, size: u64) -> Arc<dyn DownloadProgress> {
        Arc::new(Bar(progress_bar(size, self.quiet)))
    }
}

/// An indicatif bar (hidden when quiet or not on a terminal).
struct Bar(ProgressBar);

impl DownloadProgress for Bar {
    fn inc(&self, bytes: u64) {
        self.0.inc(bytes);
    }
    fn finish(&self) {
        self.0.finish_and_clear();
    }
}

fn progress_bar(size: u64, quiet: bool) -> ProgressBar {
    if quiet || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(size), ProgressDrawTarget::stderr());
    if let Ok(style) =
        ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {bytes_per_sec} {eta}")
    {
        bar.set_style(style);
    }
    bar
}
