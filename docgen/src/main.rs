//! `rvmadm-docgen OUTDIR`: writes the manual pages and shell completions of
//! `vmadm`, `imgadm` and `imgapid` from their own clap definitions.
//!
//! The three definitions are the binaries' source files, included here with
//! `#[path]` (vmadm.rs whole, the shared imgadm_cli, imgapid's cli.rs), so a
//! flag added to a binary shows up in its page and completions without
//! anyone editing documentation. clap_mangen and clap_complete live only in
//! this package (`docgen/`), never in the binaries that are installed.
//!
//! Output, under OUTDIR:
//! - `man/man8/`: vmadm.8, imgadm.8, imgapid.8 and one page per subcommand
//!   (vmadm-create.8 …), the layout clap_mangen's subcommand lists refer to;
//! - `man/man5/`: vmadm.toml.5 and imgapid.toml.5, written by hand in
//!   dist/man/ (a config file has no clap definition) and copied;
//! - `completions/{bash,zsh,fish}/`: one file per binary, named where each
//!   shell's vendor directory expects it.

// imgadm_cli is compiled twice on purpose: inside vmadm.rs (as `vmadm
// images`), where it is private to that module, and once more below so its
// `Cli` can be named here. Editing vmadm.rs to export it would be the only
// other way, and the generator should not shape the binaries.
#![allow(clippy::duplicate_mod)]

// The included binaries' `main`, run functions and tests are not used here.
#[allow(dead_code, unused_imports)]
#[path = "../../rvmadm/src/bin/vmadm.rs"]
mod vmadm;

#[allow(dead_code, unused_imports)]
#[path = "../../rvmadm/src/bin/imgadm_cli/mod.rs"]
mod imgadm_cli;

#[allow(dead_code)]
#[path = "../../imgapid/src/cli.rs"]
mod imgapid_cli;

use clap::CommandFactory;
use clap_complete::Shell;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The hand-written configuration pages (section 5).
const CONFIG_PAGES: [(&str, &str); 2] = [
    ("vmadm.toml.5", include_str!("../../dist/man/vmadm.toml.5")),
    (
        "imgapid.toml.5",
        include_str!("../../dist/man/imgapid.toml.5"),
    ),
];

/// Sections clap has no field for, appended to each binary's main page.
const VMADM_EXTRA: &str = r#".SH ENVIRONMENT
.TP
\fBVMADM_CONFIG\fR
The configuration file; default \fI/etc/vmadm.toml\fR (\fI/usr/local/etc/vmadm.toml\fR on FreeBSD).
.TP
\fBVMADM_LOG\fR
A tracing filter (for example \fBdebug\fR) for log lines on stderr; warnings only when unset.
.SH FILES
.TP
\fI/etc/vmadm.toml\fR
See \fBvmadm.toml\fR(5).
.TP
\fI/var/lib/vmadm/vms/<uuid>.json\fR
One record per VM (the \fBstate_dir\fR of the configuration).
.SH EXIT STATUS
0 on success, 1 when the command failed, 2 for a usage error.
.SH SEE ALSO
\fBimgadm\fR(8), \fBimgapid\fR(8), \fBvmadm.toml\fR(5)
"#;

const IMGADM_EXTRA: &str = r#".SH ENVIRONMENT
.TP
\fBVMADM_CONFIG\fR
The configuration file holding the pool and the image sources; default \fI/etc/vmadm.toml\fR.
.SH EXIT STATUS
0 on success, 1 on error, 2 for a usage error, 3 when the image is not installed.
.SH SEE ALSO
\fBvmadm\fR(8), \fBimgapid\fR(8), \fBvmadm.toml\fR(5)
"#;

const IMGAPID_EXTRA: &str = r#".SH ENVIRONMENT
.TP
\fBRUST_LOG\fR
Log filter; default \fBinfo\fR.
.TP
\fBIMGAPID_LOG_FORMAT\fR
\fBjson\fR: one JSON object per log event instead of key=value lines.
.SH SIGNALS
SIGTERM and SIGINT start a graceful shutdown that waits up to \fBshutdown_timeout_secs\fR for open requests.
.SH EXIT STATUS
0 after a clean shutdown, 1 when the configuration cannot be loaded or the server fails, 2 for a usage error.
.SH SEE ALSO
\fBimgapid.toml\fR(5), \fBimgadm\fR(8), \fBvmadm\fR(8)
"#;

/// Why the generator stopped.
#[derive(Debug, thiserror::Error)]
enum GenError {
    /// A file or directory under OUTDIR could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn write_err(path: &Path) -> impl FnOnce(std::io::Error) -> GenError + '_ {
    move |source| GenError::Write {
        path: path.to_path_buf(),
        source,
    }
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), GenError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(write_err(dir))?;
    }
    std::fs::write(path, bytes).map_err(write_err(path))
}

/// Renders `cmd`'s page (plus `extra` roff) and, recursively, one page per
/// visible subcommand, all in section 8.
fn man_pages(cmd: &clap::Command, extra: &str, dir: &Path) -> Result<(), GenError> {
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        man_pages(sub, "", dir)?;
    }
    let man = clap_mangen::Man::new(cmd.clone())
        .section("8")
        .manual("rvmadm")
        .source(format!("rvmadm {}", env!("CARGO_PKG_VERSION")));
    let path = dir.join(man.get_filename());
    let mut page = Vec::new();
    man.render(&mut page).map_err(write_err(&path))?;
    page.extend_from_slice(extra.as_bytes());
    write_file(&path, &page)
}

/// Bash, zsh and fish completions for `cmd`, at the names and places the
/// shells' vendor directories use.
fn completions(cmd: &mut clap::Command, out: &Path) -> Result<(), GenError> {
    let name = cmd.get_name().to_string();
    for (shell, file) in [
        (Shell::Bash, format!("bash/{name}")),
        (Shell::Zsh, format!("zsh/_{name}")),
        (Shell::Fish, format!("fish/{name}.fish")),
    ] {
        let mut text = Vec::new();
        clap_complete::generate(shell, cmd, name.clone(), &mut text);
        write_file(&out.join(file), &text)?;
    }
    Ok(())
}

fn generate(out: &Path) -> Result<(), GenError> {
    let man8 = out.join("man/man8");
    let mut cmds = [
        (vmadm::Cli::command(), VMADM_EXTRA),
        (imgadm_cli::Cli::command(), IMGADM_EXTRA),
        (imgapid_cli::Cli::command(), IMGAPID_EXTRA),
    ];
    for (cmd, extra) in cmds.iter_mut() {
        // clap's implicit `help` subcommand is no verb: no page for it.
        *cmd = cmd.clone().disable_help_subcommand(true);
        // Building fills in the subcommands' display names (vmadm-create)
        // and bin names (vmadm create) that the pages and synopses use.
        cmd.build();
        man_pages(cmd, extra, &man8)?;
        completions(cmd, &out.join("completions"))?;
    }
    for (name, text) in CONFIG_PAGES {
        write_file(&out.join("man/man5").join(name), text.as_bytes())?;
    }
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [out] = args.as_slice() else {
        eprintln!("usage: rvmadm-docgen OUTDIR");
        return ExitCode::from(2);
    };
    match generate(Path::new(out)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rvmadm-docgen: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_verb_gets_a_page_and_a_completion() {
        let dir = tempfile::tempdir().unwrap();
        generate(dir.path()).unwrap();
        let man8 = dir.path().join("man/man8");
        for (cmd, name) in [
            (vmadm::Cli::command(), "vmadm"),
            (imgadm_cli::Cli::command(), "imgadm"),
        ] {
            let page = std::fs::read_to_string(man8.join(format!("{name}.8"))).unwrap();
            let bash = std::fs::read_to_string(dir.path().join(format!("completions/bash/{name}")))
                .unwrap();
            let subs: Vec<String> = cmd
                .get_subcommands()
                .map(|s| s.get_name().to_string())
                .collect();
            assert!(subs.len() > 5, "{name}: {subs:?}");
            for sub in subs {
                assert!(
                    man8.join(format!("{name}-{sub}.8")).is_file(),
                    "{name}-{sub}.8"
                );
                assert!(
                    page.contains(&format!("{name}\\-{}(8)", sub.replace('-', "\\-"))),
                    "{name} lists {sub}"
                );
                assert!(
                    bash.contains(&format!("{name},{sub})")),
                    "bash: {name} {sub}"
                );
            }
        }
        let imgapid = std::fs::read_to_string(man8.join("imgapid.8")).unwrap();
        assert!(imgapid.contains("\\-\\-config"), "{imgapid}");
        assert!(imgapid.contains(".SH ENVIRONMENT"));
        // No page for clap's implicit help subcommand.
        assert!(!man8.join("imgadm-help.8").exists());
        for page in ["vmadm.toml.5", "imgapid.toml.5"] {
            let text = std::fs::read_to_string(dir.path().join("man/man5").join(page)).unwrap();
            assert!(text.starts_with(".TH "), "{page}");
        }
    }
}
