//! `imgadm vacuum`'s conversation: the list of images about to go, the
//! `[y/N]` prompt on the terminal (also when stdout or stdin is a pipe, as
//! imgadm asks `/dev/tty` then), and one line per removed image.

use super::render;
use rvmadm::image::error::{Code, ImgError, Result};
use rvmadm::ops::images::vacuum::{self, VacuumOptions, Vacuumed};
use rvmadm::ops::Ctx;
use std::cell::RefCell;
use std::io::{BufRead, IsTerminal, Write};

/// Asks `question` on the terminal; true only for an answer starting with
/// `y`. No terminal at all is an error that says to use `-f`.
fn ask(question: &str) -> Result<bool> {
    let no_tty = |e: std::io::Error| {
        ImgError::usage(format!(
            "cannot ask for confirmation without a terminal ({e}): use -f"
        ))
    };
    let mut answer = String::new();
    if std::io::stdin().is_terminal() && std::io::stdout().is_terminal() {
        print!("{question}");
        let _ = std::io::stdout().flush();
        std::io::stdin()
            .lock()
            .read_line(&mut answer)
            .map_err(no_tty)?;
    } else {
        let tty = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/tty")
            .map_err(no_tty)?;
        (&tty).write_all(question.as_bytes()).map_err(no_tty)?;
        std::io::BufReader::new(&tty)
            .read_line(&mut answer)
            .map_err(no_tty)?;
    }
    Ok(answer.trim_start().starts_with('y'))
}

/// The summary imgadm prints for an image: `<uuid> (<name>@<version>)`.
fn summary(v: &Vacuumed) -> String {
    format!("{} ({})", v.uuid, v.label)
}

/// Runs the verb; a "no" at the prompt prints `Aborting` and ends with
/// exit status 1 and no error line, as imgadm does. Each removed image is
/// printed as it goes.
pub fn run(ctx: &Ctx, out: &mut dyn Write, dry_run: bool, force: bool) -> Result<()> {
    // Both callbacks write to `out`, one after the other.
    let out = RefCell::new(out);
    let mut prompt_err = None;
    let mut confirm = |list: &[Vacuumed]| -> bool {
        if force {
            return true;
        }
        let names: Vec<String> = list.iter().map(summary).collect();
        let mut o = out.borrow_mut();
        let shown = render::line(
            &mut **o,
            format_args!(
                "This will delete the following images:\n    {}",
                names.join("\n    ")
            ),
        );
        let _ = o.flush();
        let question = match list.len() {
            1 => "Delete this image? [y/N] ".to_string(),
            n => format!("Delete these {n} images? [y/N] "),
        };
        match shown.and_then(|_| ask(&question)) {
            Ok(true) => {
                // imgadm leaves an empty line after a "y".
                if let Err(e) = render::line(&mut **o, "") {
                    prompt_err = Some(e);
                    return false;
                }
                true
            }
            Ok(false) => false,
            Err(e) => {
                prompt_err = Some(e);
                false
            }
        }
    };
    let prefix = if dry_run { "[dry-run] " } else { "" };
    let mut done = |v: &Vacuumed| {
        render::line(
            &mut **out.borrow_mut(),
            format_args!("{prefix}Deleted image {}", summary(v)),
        )
    };
    let confirmed = vacuum::vacuum(ctx, VacuumOptions { dry_run }, &mut confirm, &mut done)?;
    if let Some(e) = prompt_err {
        return Err(e);
    }
    if !confirmed {
        render::line(&mut **out.borrow_mut(), "Aborting")?;
        // An empty message: exit status 1, nothing more printed.
        return Err(ImgError::new(Code::Usage, String::new()));
    }
    Ok(())
}
