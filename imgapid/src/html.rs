//! `GET /`: the catalog as a small, self-contained HTML page for people
//! (name, version, os, size, published date, description). Everything that
//! comes from a manifest is HTML-escaped; the page loads nothing external.

use crate::catalog::Entry;
use std::fmt::Write;
use std::sync::Arc;

/// Escapes text for element content and quoted attributes.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Human size, binary units.
pub fn human_size(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < UNITS.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[i])
    }
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2rem;color:#222}\
h1{font-size:1.4rem}table{border-collapse:collapse;width:100%}\
th,td{text-align:left;padding:.4rem .6rem;border-bottom:1px solid #ddd;vertical-align:top}\
th{background:#f3f3f3}tr:hover td{background:#fafafa}td.num{text-align:right;white-space:nowrap}.nw{white-space:nowrap}\
code{font-size:.85em;color:#555}.empty{color:#777}footer{margin-top:1rem;color:#777;font-size:.85em}";

/// Renders the page for the given (active) images, newest first.
pub fn catalog_page(entries: &[Arc<Entry>]) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
<title>imgapid image catalog</title><style>{STYLE}</style></head><body>\
<h1>Image catalog</h1><p id=\"count\">{} image{}</p>",
        entries.len(),
        if entries.len() == 1 { "" } else { "s" }
    );
    if entries.is_empty() {
        s.push_str("<p class=\"empty\">No images have been published yet.</p>");
    } else {
        s.push_str(
            "<table id=\"images\"><thead><tr><th>Name</th><th>Version</th><th>OS</th>\
<th>Size</th><th>Published</th><th>Description</th><th>UUID</th></tr></thead><tbody>",
        );
        for e in entries.iter().rev() {
            let m = e.manifest();
            let size = m
                .files
                .first()
                .map(|f| human_size(f.size))
                .unwrap_or_default();
            let published = m
                .published_at
                .as_deref()
                .map(|p| p.get(..10).unwrap_or(p).to_string())
                .unwrap_or_default();
            let _ = write!(
                s,
                "<tr><td class=\"name nw\">{}</td><td class=\"nw\">{}</td><td>{}</td><td class=\"num\">{}</td>\
<td class=\"nw\">{}</td><td>{}</td><td><a href=\"/images/{}\"><code>{}</code></a></td></tr>",
                escape(&m.name),
                escape(&m.version),
                escape(m.os.as_str()),
                escape(&size),
                escape(&published),
                escape(m.description.as_deref().unwrap_or("")),
                m.uuid,
                m.uuid
            );
        }
        s.push_str("</tbody></table>");
    }
    let _ = write!(
        s,
        "<footer>IMGAPI at <code>/images</code>, DSAPI at <code>/datasets</code> \
&middot; imgapid {}</footer></body></html>",
        env!("CARGO_PKG_VERSION")
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_sizes() {
        assert_eq!(
            escape("<a href='x'>&\""),
            "&lt;a href=&#39;x&#39;&gt;&amp;&quot;"
        );
        assert_eq!(human_size(512), "512 B");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(human_size(3 * 1024 * 1024 * 1024), "3.0 GiB");
    }
}
