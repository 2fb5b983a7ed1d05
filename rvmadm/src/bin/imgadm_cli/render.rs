//! How imgadm's results look on stdout: pretty JSON, imgadm's text tables,
//! and one line per change. A failed write (a closed pipe) ends the verb
//! with `FileSystem: cannot write output`, as imgadm always has.

use super::TableArgs;
use rvmadm::config::Source;
use rvmadm::image::build::Built;
use rvmadm::image::error::{ImgError, Result};
use rvmadm::image::records::Installed;
use rvmadm::image::table;
use rvmadm::ops::images::sources::SourcesOutcome;
use rvmadm::ops::images::Listed;
use serde_json::{Map, Value};
use std::fmt::Display;
use std::io::Write;

fn write(out: &mut dyn Write, text: &str) -> Result<()> {
    out.write_all(text.as_bytes())
        .map_err(|e| ImgError::fs("cannot write output", e))
}

/// One line of text.
pub fn line(out: &mut dyn Write, text: impl Display) -> Result<()> {
    writeln!(out, "{text}").map_err(|e| ImgError::fs("cannot write output", e))
}

/// Pretty JSON and a newline.
pub fn json(out: &mut dyn Write, value: &impl serde::Serialize) -> Result<()> {
    line(out, serde_json::to_string_pretty(value).unwrap_or_default())
}

/// `list` and `avail`: `-j` prints the info objects (sorted like the table
/// for `list`; in source order for `avail`, as imgadm does), otherwise the
/// sorted table of the chosen columns.
pub fn images(
    out: &mut dyn Write,
    mut found: Vec<Listed>,
    t: &TableArgs,
    sort_json: bool,
) -> Result<()> {
    let sort = t.sort.as_deref().unwrap_or(table::DEFAULT_SORT);
    if t.json {
        if sort_json {
            table::sort_by_row(&mut found, |l| &l.row, sort);
        }
        let infos: Vec<&Value> = found.iter().map(|l| &l.info).collect();
        return json(out, &infos);
    }
    let mut rows: Vec<Map<String, Value>> = found.into_iter().map(|l| l.row).collect();
    table::sort_rows(&mut rows, sort);
    let cols = t.columns.as_deref().unwrap_or(table::DEFAULT_COLUMNS);
    write(out, &table::render(&rows, cols, !t.no_header))
}

/// `sources`: the list (plain, `-j`, or `-l` table) or what changed.
pub fn sources(
    out: &mut dyn Write,
    outcome: &SourcesOutcome,
    as_json: bool,
    long: bool,
) -> Result<()> {
    // imgadm names a source `"<type>" image source "<url>"`; tools match
    // these lines word for word.
    let named = |s: &Source| format!("\"{}\" image source \"{}\"", s.kind, s.url);
    let list = match outcome {
        SourcesOutcome::Added(s) => return line(out, format_args!("Added {}", named(s))),
        SourcesOutcome::AlreadyHave(s) => {
            return line(out, format_args!("Already have {}, no change", named(s)))
        }
        SourcesOutcome::Deleted(gone) => {
            for s in gone {
                line(out, format_args!("Deleted {}", named(s)))?;
            }
            return Ok(());
        }
        SourcesOutcome::DoNotHave(url) => {
            return line(
                out,
                format_args!("Do not have image source \"{url}\", no change"),
            )
        }
        SourcesOutcome::Checked(checked) => {
            let rows: Vec<Map<String, Value>> = checked
                .iter()
                .map(|(s, err)| {
                    let mut m = Map::new();
                    m.insert("url".into(), Value::from(s.url.clone()));
                    m.insert("type".into(), Value::from(s.kind.clone()));
                    m.insert("ok".into(), Value::from(err.is_none()));
                    if let Some(e) = err {
                        m.insert("error".into(), Value::from(e.clone()));
                    }
                    m
                })
                .collect();
            return write(out, &table::render(&rows, "url,type,ok,error", true));
        }
        SourcesOutcome::Listed(list) => list,
    };
    if as_json {
        let list: Vec<Value> = list
            .iter()
            .map(|s| serde_json::json!({"url": s.url, "type": s.kind}))
            .collect();
        return json(out, &list);
    }
    if long {
        let rows: Vec<Map<String, Value>> = list
            .iter()
            .map(|s| {
                let mut m = Map::new();
                m.insert("url".into(), Value::from(s.url.clone()));
                m.insert("type".into(), Value::from(s.kind.clone()));
                m
            })
            .collect();
        return write(out, &table::render(&rows, "url,type", true));
    }
    for s in list {
        line(out, &s.url)?;
    }
    Ok(())
}

/// `ancestry`: the chain as `-j` objects or a table in chain order (no
/// sorting), default columns `uuid,name,version,published` as imgadm's.
pub fn ancestry(
    chain: &[Installed],
    as_json: bool,
    header: bool,
    columns: Option<&str>,
    out: &mut dyn Write,
) -> Result<()> {
    if as_json {
        let infos: Vec<Value> = chain.iter().map(Installed::info_json).collect();
        return json(out, &infos);
    }
    let rows: Vec<Map<String, Value>> = chain
        .iter()
        .map(|i| {
            table::make_row(
                &i.manifest(),
                i.source(),
                Some(&i.zpool),
                Some(i.clones.len()),
            )
        })
        .collect();
    let cols = columns.unwrap_or("uuid,name,version,published");
    write(out, &table::render(&rows, cols, header))
}

/// `build` and `create`: `<verb> image <uuid> (<name>@<version>)` and where
/// the manifest and the file are.
pub fn built(out: &mut dyn Write, verb: &str, b: &Built) -> Result<()> {
    line(
        out,
        format_args!(
            "{verb} image {} ({}@{})\nmanifest: {}\nfile: {}",
            b.uuid,
            b.name,
            b.version,
            b.manifest_path.display(),
            b.file_path.display()
        ),
    )
}
