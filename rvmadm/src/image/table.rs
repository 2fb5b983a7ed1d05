//! Rows, filters, sorting and the text table of `imgadm list` / `avail`.
//!
//! Mirrors imgadm's behaviour: a row is the manifest plus computed fields
//! (`pub`, `published_date`, `published`, `source`, `clones`, `zpool`,
//! `size`); filters are `field=value` (string or boolean equality) and
//! `field=~substr` over dotted paths; `-field` sorts descending, numbers
//! compare as numbers; the table has upper-cased headers, two-space gaps, `-`
//! for missing cells, and prints nothing at all for zero rows.

use super::error::{ImgError, Result};
/// Dotted-path lookup (`requirements.brand`), shared with the filter engine.
pub use super::manifest::filter::lookup;
use super::manifest::filter::{value_text, Syntax, Term};
use serde_json::{Map, Value};
use std::cmp::Ordering;

/// imgadm's default columns (`-o`).
pub const DEFAULT_COLUMNS: &str = "uuid,name,version,os,type,pub";
/// imgadm's default sort order (`-s`): oldest first, then by name.
pub const DEFAULT_SORT: &str = "published_at,name";

/// `text` without control characters (C0, DEL, C1: escape sequences, line
/// breaks, tabs) and without the Unicode marks that reorder or hide text on
/// a terminal (bidi overrides and isolates, zero-width characters).
pub fn printable(text: &str) -> String {
    text.chars()
        .filter(|c| {
            !c.is_control()
                && !matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}')
        })
        .collect()
}

/// Builds a row from a manifest and the facts only the caller knows.
pub fn make_row(
    manifest: &Value,
    source: Option<&str>,
    zpool: Option<&str>,
    clones: Option<usize>,
) -> Map<String, Value> {
    let mut row = manifest.as_object().cloned().unwrap_or_default();
    if let Some(p) = manifest.get("published_at").and_then(Value::as_str) {
        let date: String = p.chars().take(10).collect();
        row.insert("published_date".into(), Value::from(date.clone()));
        row.insert("pub".into(), Value::from(date));
        let no_ms = match p.split_once('.') {
            Some((head, _)) => format!("{head}Z"),
            None => p.to_string(),
        };
        row.insert("published".into(), Value::from(no_ms));
    }
    if let Some(s) = source {
        row.insert("source".into(), Value::from(s));
    }
    if let Some(z) = zpool {
        row.insert("zpool".into(), Value::from(z));
    }
    if let Some(c) = clones {
        row.insert("clones".into(), Value::from(c));
    }
    if let Some(size) = manifest.pointer("/files/0/size") {
        row.insert("size".into(), size.clone());
    }
    row
}

/// One `field=value` / `field=~substr` filter over a row, matched by the
/// engine imgapid's ListImages uses too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter(Term);

impl Filter {
    /// Parses one command-line filter; a malformed one is a usage error.
    pub fn parse(arg: &str) -> Result<Filter> {
        Term::parse_arg(arg, Syntax::SUBSTRING)
            .map(Filter)
            .map_err(|e| ImgError::usage(e.to_string()))
    }

    /// True when `row` (from [`make_row`]) passes the filter; a missing
    /// field never matches.
    pub fn matches(&self, row: &Map<String, Value>) -> bool {
        self.0.matches(row)
    }
}

/// Parses every filter argument.
pub fn parse_filters(args: &[String]) -> Result<Vec<Filter>> {
    args.iter().map(|a| Filter::parse(a)).collect()
}

/// How a value prints in a cell (and compares in a filter).
pub fn cell_text(v: &Value) -> String {
    value_text(v).into_owned()
}

fn as_number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    }
}

fn compare(a: Option<&Value>, b: Option<&Value>) -> Ordering {
    match (a, b) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (Some(a), Some(b)) => match (as_number(a), as_number(b)) {
            (Some(x), Some(y)) => x.partial_cmp(&y).unwrap_or(Ordering::Equal),
            _ => cell_text(a).cmp(&cell_text(b)),
        },
    }
}

/// Sorts rows by comma-separated fields, `-field` descending.
pub fn sort_rows(rows: &mut [Map<String, Value>], spec: &str) {
    sort_by_row(rows, |r| r, spec);
}

/// Sorts anything that carries a row, as [`sort_rows`] sorts rows (stable:
/// equal rows keep their order).
pub fn sort_by_row<T>(items: &mut [T], row: impl Fn(&T) -> &Map<String, Value>, spec: &str) {
    let keys: Vec<(String, bool)> = spec
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|s| match s.strip_prefix('-') {
            Some(f) => (f.to_string(), true),
            None => (s.to_string(), false),
        })
        .collect();
    items.sort_by(|a, b| {
        let (a, b) = (row(a), row(b));
        for (field, desc) in &keys {
            let ord = compare(lookup(a, field), lookup(b, field));
            let ord = if *desc { ord.reverse() } else { ord };
            if ord != Ordering::Equal {
                return ord;
            }
        }
        Ordering::Equal
    });
}

/// Renders the table (nothing at all for zero rows).
pub fn render(rows: &[Map<String, Value>], columns: &str, header: bool) -> String {
    if rows.is_empty() {
        return String::new();
    }
    let cols: Vec<&str> = columns.split(',').filter(|c| !c.is_empty()).collect();
    let mut grid: Vec<Vec<String>> = Vec::new();
    if header {
        grid.push(cols.iter().map(|c| c.to_uppercase()).collect());
    }
    for row in rows {
        grid.push(
            cols.iter()
                .map(|c| {
                    // Rows hold what a remote source sent: no escape
                    // sequence or line break of theirs reaches the terminal.
                    lookup(row, c)
                        .map(|v| printable(&cell_text(v)))
                        .unwrap_or_else(|| "-".into())
                })
                .collect(),
        );
    }
    // tabula sizes a column to max(header, longest cell) even when the
    // header line is not printed (-H).
    let widths: Vec<usize> = (0..cols.len())
        .map(|i| {
            grid.iter()
                .map(|r| r[i].chars().count())
                .chain(std::iter::once(cols[i].chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in &grid {
        let mut line = String::new();
        for (i, cell) in r.iter().enumerate() {
            if i + 1 == r.len() {
                line.push_str(cell);
            } else {
                line.push_str(cell);
                let pad = widths[i] - cell.chars().count() + 2;
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn remote_text_loses_control_characters_before_printing() {
        assert_eq!(
            printable("base\x1b]0;pwned\x07-64\r\n\t"),
            "base]0;pwned-64"
        );
        assert_eq!(printable("a\u{9b}2Jb\u{202e}c\u{200b}d"), "a2Jbcd");
        assert_eq!(printable("plain 1.0-ü"), "plain 1.0-ü");
        let rows = vec![row(json!({
            "uuid": "u", "name": "evil\x1b[2J\nname", "version": "1\u{7f}", "published_at": "2020-01-01T00:00:00Z"
        }))];
        let text = render(&rows, "name,version", false);
        assert_eq!(text, "evil[2Jname  1\n");
        assert!(!text.chars().any(|c| c.is_control() && c != '\n'));
    }

    fn row(v: Value) -> Map<String, Value> {
        make_row(&v, Some("http://src"), Some("zones"), Some(2))
    }

    #[test]
    fn computed_fields() {
        let r = row(
            json!({"uuid": "u", "published_at": "2024-01-02T03:04:05.678Z", "files": [{"size": 42}]}),
        );
        assert_eq!(r["pub"], "2024-01-02");
        assert_eq!(r["published"], "2024-01-02T03:04:05Z");
        assert_eq!(r["size"], 42);
        assert_eq!(r["clones"], 2);
        assert_eq!(r["source"], "http://src");
    }

    #[test]
    fn filters_match_like_imgadm() {
        let r = row(
            json!({"name": "base-64", "public": true, "requirements": {"brand": "lx"}, "v": 2}),
        );
        let m = |f: &str| Filter::parse(f).unwrap().matches(&r);
        assert!(m("name=base-64"));
        assert!(!m("name=base"));
        assert!(m("name=~se-6"));
        assert!(!m("name=~SE"));
        assert!(m("public=true"));
        assert!(!m("public=false"));
        assert!(m("requirements.brand=lx"));
        assert!(m("v=2"));
        assert!(!m("missing=x"));
        assert!(!m("name=*"), "a glob is a literal, never 'everything'");
        assert!(Filter::parse("name").is_err());
        assert!(Filter::parse("=x").is_err());
    }

    #[test]
    fn sorting_numeric_descending_and_missing_first() {
        let mut rows = vec![
            row(json!({"name": "b", "n": 10})),
            row(json!({"name": "a", "n": 9})),
            row(json!({"name": "c"})),
        ];
        sort_rows(&mut rows, "n");
        let names: Vec<_> = rows
            .iter()
            .map(|r| r["name"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(names, ["c", "a", "b"]);
        sort_rows(&mut rows, "-name");
        assert_eq!(rows[0]["name"], "c");
    }

    #[test]
    fn table_layout() {
        let rows = vec![
            row(json!({"uuid": "u1", "name": "long-name", "tags": {"a": 1}})),
            row(json!({"uuid": "u22", "name": "x"})),
        ];
        let t = render(&rows, "uuid,name,tags", true);
        assert_eq!(
            t,
            "UUID  NAME       TAGS\nu1    long-name  {\"a\":1}\nu22   x          -\n"
        );
        assert_eq!(render(&rows, "uuid", false), "u1\nu22\n");
        assert_eq!(render(&[], "uuid", true), "");
    }
}
