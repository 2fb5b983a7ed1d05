//! Renders the property table as the Markdown reference `docs/properties.md`.
//! A unit test fails when the committed file differs from the table, so the
//! documentation can never drift from what validation enforces.

use super::props::{Kind, Live, Prop, FS_PROPS, GENERATED, NIC_PROPS, PROPS};

fn kind_text(k: Kind) -> String {
    match k {
        Kind::Bool => "boolean".into(),
        Kind::Uuid => "uuid".into(),
        Kind::Int { min, max } => format!("integer {min}–{max}"),
        Kind::Text(n) => format!("string (≤ {n} bytes)"),
        Kind::Hostname => "hostname (RFC 1123)".into(),
        Kind::Alias => "alias (1–128 of `A-Za-z0-9 _.:+@=,()-`)".into(),
        Kind::Brand => "brand".into(),
        Kind::Domain => "DNS domain".into(),
        Kind::JailPath => "absolute path".into(),
        Kind::Compression => "zfs compression".into(),
        Kind::Zpool => "pool name".into(),
        Kind::List => "list".into(),
        Kind::IpList => "list of IP addresses".into(),
        Kind::FlatObject => "object (string/number/bool values)".into(),
        Kind::Routes => "object: destination → gateway".into(),
        Kind::Nics => "array of NIC objects".into(),
        Kind::NicUpdates => "array of NIC changes (by mac)".into(),
        Kind::Filesystems => "array of filesystem objects".into(),
        Kind::Keys => "array of keys".into(),
    }
}

fn live_text(l: Live) -> &'static str {
    match l {
        Live::Yes => "live",
        Live::Reboot => "next boot",
        Live::NotApplicable => "—",
    }
}

fn table(out: &mut String, props: &[Prop], with_actions: bool) {
    if with_actions {
        out.push_str("| property | type | create | update | takes effect | meaning |\n|---|---|---|---|---|---|\n");
    } else {
        out.push_str("| property | type | takes effect | meaning |\n|---|---|---|---|\n");
    }
    for p in props {
        let yes = |b: bool| if b { "yes" } else { "no" };
        if with_actions {
            out.push_str(&format!(
                "| `{}` | {} | {} | {} | {} | {} |\n",
                p.name,
                kind_text(p.kind),
                yes(p.create),
                yes(p.update),
                live_text(p.live),
                p.doc
            ));
        } else {
            out.push_str(&format!(
                "| `{}` | {} | {} | {} |\n",
                p.name,
                kind_text(p.kind),
                live_text(p.live),
                p.doc
            ));
        }
    }
}

/// The whole document.
pub fn properties_markdown() -> String {
    let mut out = String::from(
        "# VM properties\n\n\
         Generated from `rvmadm/src/spec/props.rs` (the table validation uses); \
         a unit test keeps this file in sync. Units follow SmartOS: memory in MiB, \
         `quota` in GiB, `cpu_cap` in percent of one CPU. Unknown properties are \
         reported by `vmadm validate` as `bad_properties` and dropped by `create` and \
         `update`, as SmartOS does.\n\n## Top-level properties\n\n",
    );
    table(&mut out, PROPS, true);
    out.push_str("\n## NIC objects (`nics`, `add_nics`, `update_nics`)\n\n");
    table(&mut out, NIC_PROPS, false);
    out.push_str("\n## Filesystem objects (`filesystems`, `add_filesystems`, …)\n\n");
    table(&mut out, FS_PROPS, false);
    out.push_str("\n## Generated properties (shown by `get`, never accepted)\n\n| property | meaning |\n|---|---|\n");
    for (name, doc) in GENERATED {
        out.push_str(&format!("| `{name}` | {doc} |\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn committed_properties_doc_matches_the_table() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/properties.md");
        let want = properties_markdown();
        if std::env::var_os("UPDATE_DOCS").is_some() {
            std::fs::write(path, &want).unwrap();
        }
        let have = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            have == want,
            "docs/properties.md is out of date: run UPDATE_DOCS=1 cargo test -p rvmadm --lib spec::docs"
        );
    }
}
