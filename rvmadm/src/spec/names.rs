//! Checks for the names users give: hostnames, aliases, nic tags. These end
//! up in files inside the jail and in argv elements, so they are strict.

/// A nic_tag names a network: `[A-Za-z0-9_]`, 1–31 characters.
pub fn valid_nic_tag(tag: &str) -> bool {
    !tag.is_empty() && tag.len() <= 31 && tag.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// RFC 1123 host name: dot-separated labels of `[A-Za-z0-9-]`, each 1–63
/// characters not starting or ending with `-`, 253 characters at most.
pub fn valid_hostname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

/// An alias is a free label, but one that is safe everywhere it is shown:
/// 1–128 printable characters from a conservative set, starting with a letter
/// or digit (so never `..`, `-x`, or a path).
pub fn valid_alias(alias: &str) -> bool {
    let mut chars = alias.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    alias.len() <= 128
        && first.is_ascii_alphanumeric()
        && chars.all(|c| c.is_ascii_alphanumeric() || " _.:+@=,()-".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostnames() {
        assert!(valid_hostname("web01"));
        assert!(valid_hostname("a.example.com"));
        for bad in [
            "",
            "-a",
            "a-",
            "a..b",
            "a b",
            "a;b",
            "$(id)",
            "a/b",
            "..",
            "a\nb",
            "a\0b",
            &"x".repeat(64),
            "a_b",
        ] {
            assert!(!valid_hostname(bad), "{bad:?}");
        }
    }

    #[test]
    fn aliases() {
        assert!(valid_alias("web server (prod)"));
        assert!(valid_alias("db-1"));
        for bad in [
            "",
            "..",
            "../x",
            "a/b",
            "a;b",
            "a`b`",
            "$(x)",
            "a\nb",
            "a\0b",
            " a",
            &"y".repeat(129),
        ] {
            assert!(!valid_alias(bad), "{bad:?}");
        }
    }
}
