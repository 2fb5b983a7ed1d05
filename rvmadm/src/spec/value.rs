//! Checks and normalises one value against its [`Kind`].
//!
//! SmartOS is lenient about input types (numbers as strings, booleans as
//! `"true"`, lists as comma strings, since `key=value` arguments are all
//! strings) but strict about what it stores. This module does the same: it
//! returns the canonical JSON value, or `None` for a bad value.

use super::props::Kind;
use serde_json::{Map, Value};
use std::net::{IpAddr, Ipv4Addr};

/// Outcome of normalising one value.
#[derive(Debug, Clone, PartialEq)]
pub enum Norm {
    /// The canonical value.
    Value(Value),
    /// Explicit "unset" (`null` or `""` for numbers): remove on update.
    Unset,
    /// Not acceptable.
    Bad,
}

fn no_controls(s: &str) -> bool {
    !s.chars().any(char::is_control)
}

fn as_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn parse_int(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                .map(|f| f as i64)
        }),
        Value::String(s) => {
            let t = s.trim();
            if t.is_empty() || t.len() > 19 {
                return None;
            }
            t.parse::<i64>().ok()
        }
        _ => None,
    }
}

/// A list given as an array of strings/numbers or a comma-separated string.
pub fn list_items(v: &Value) -> Option<Vec<String>> {
    match v {
        Value::Array(items) => items
            .iter()
            .map(|i| as_text(i).filter(|s| !s.contains(',')))
            .collect(),
        Value::String(s) if s.is_empty() => Some(Vec::new()),
        Value::String(s) => Some(s.split(',').map(|p| p.trim().to_string()).collect()),
        _ => None,
    }
}

/// Dotted IPv4 netmask → prefix length.
pub fn netmask_prefix(mask: &str) -> Option<u8> {
    let m: Ipv4Addr = mask.parse().ok()?;
    let bits = u32::from(m);
    let ones = bits.leading_ones();
    (bits.checked_shl(ones).unwrap_or(0) == 0).then_some(ones as u8)
}

/// True for an IP address or an IP/prefix network.
pub fn is_ip_or_cidr(s: &str) -> bool {
    match s.split_once('/') {
        Some((a, p)) => {
            let Ok(addr) = a.parse::<IpAddr>() else {
                return false;
            };
            let max = if addr.is_ipv4() { 32 } else { 128 };
            p.parse::<u8>().is_ok_and(|p| p <= max) && !p.starts_with('+')
        }
        None => s.parse::<IpAddr>().is_ok(),
    }
}

fn compression_ok(s: &str) -> bool {
    matches!(s, "on" | "off" | "lz4" | "lzjb" | "zle" | "gzip" | "zstd")
        || s.strip_prefix("gzip-")
            .is_some_and(|n| matches!(n, "1" | "2" | "3" | "4" | "5" | "6" | "7" | "8" | "9"))
}

fn valid_key(k: &str) -> bool {
    !k.is_empty() && k.len() <= 128 && no_controls(k)
}

/// Normalises `v` for `kind`. Collections of objects (nics, filesystems) are
/// checked by the validator, which knows their sub-tables; here they only
/// have to be arrays of objects.
pub fn normalize(kind: Kind, v: &Value) -> Norm {
    use Norm::{Bad, Unset};
    let ok = Norm::Value;
    match kind {
        Kind::Bool => match v {
            Value::Bool(b) => ok(Value::Bool(*b)),
            Value::String(s) if s == "true" || s == "1" => ok(Value::Bool(true)),
            Value::String(s) if s == "false" || s == "0" => ok(Value::Bool(false)),
            Value::Number(n) if n.as_i64() == Some(1) => ok(Value::Bool(true)),
            Value::Number(n) if n.as_i64() == Some(0) => ok(Value::Bool(false)),
            _ => Bad,
        },
        Kind::Uuid => match v {
            Value::String(s) if is_uuid(s) => ok(Value::String(s.to_ascii_lowercase())),
            _ => Bad,
        },
        Kind::Int { min, max } => {
            if v.is_null() || v.as_str() == Some("") {
                return Unset;
            }
            match parse_int(v) {
                Some(n) if n >= min && n <= max => ok(Value::from(n)),
                _ => Bad,
            }
        }
        Kind::Text(max) => match v {
            Value::String(s) if s.len() <= max && no_controls(s) => ok(v.clone()),
            Value::Null => Unset,
            _ => Bad,
        },
        Kind::Hostname => match v {
            Value::String(s) if super::valid_hostname(s) => ok(v.clone()),
            Value::Null => Unset,
            _ => Bad,
        },
        Kind::Alias => match v {
            Value::String(s) if super::valid_alias(s) => ok(v.clone()),
            Value::Null => Unset,
            _ => Bad,
        },
        Kind::Brand => match v {
            Value::String(s) if super::brand::is_supported(s) => ok(v.clone()),
            _ => Bad,
        },
        Kind::Domain => match v {
            Value::String(s) if super::valid_hostname(s) => ok(v.clone()),
            _ => Bad,
        },
        Kind::JailPath => match v {
            Value::String(s)
                if s.starts_with('/')
                    && s.len() <= 1024
                    && no_controls(s)
                    && !s.split('/').any(|c| c == "..") =>
            {
                ok(v.clone())
            }
            Value::Null => Unset,
            _ => Bad,
        },
        Kind::Compression => match v {
            Value::String(s) if compression_ok(s) => ok(v.clone()),
            _ => Bad,
        },
        Kind::Zpool => match v {
            Value::String(s) if crate::zfs::valid_name(s) && !s.contains(['/', '@']) => {
                ok(v.clone())
            }
            _ => Bad,
        },
        Kind::List => match list_items(v) {
            Some(items)
                if items.len() <= 1024
                    && items.iter().all(|i| no_controls(i) && i.len() <= 1024) =>
            {
                ok(Value::from(items))
            }
            _ => Bad,
        },
        Kind::IpList => match list_items(v) {
            Some(items)
                if items.len() <= 32 && items.iter().all(|i| i.parse::<IpAddr>().is_ok()) =>
            {
                ok(Value::from(items))
            }
            _ => Bad,
        },
        Kind::FlatObject => match v {
            Value::Object(m)
                if m.len() <= 1024
                    && m.iter().all(|(k, v)| {
                        valid_key(k)
                            && matches!(v, Value::String(_) | Value::Number(_) | Value::Bool(_))
                    }) =>
            {
                ok(v.clone())
            }
            _ => Bad,
        },
        Kind::Routes => match v {
            Value::Object(m) if m.len() <= 256 => {
                let mut out = Map::new();
                for (dst, gw) in m {
                    let Some(gw) = gw.as_str() else { return Bad };
                    let gw_ok = gw.parse::<Ipv4Addr>().is_ok()
                        || gw
                            .strip_prefix("nics[")
                            .and_then(|r| r.strip_suffix(']'))
                            .is_some_and(|n| n.parse::<u8>().is_ok())
                        || gw
                            .strip_prefix("macs[")
                            .and_then(|r| r.strip_suffix(']'))
                            .is_some_and(|m| super::mac::normalize(m).is_some());
                    if !is_ip_or_cidr(dst) || !gw_ok {
                        return Bad;
                    }
                    out.insert(dst.clone(), Value::String(gw.to_string()));
                }
                ok(Value::Object(out))
            }
            _ => Bad,
        },
        Kind::Nics | Kind::NicUpdates | Kind::Filesystems => match v {
            Value::Array(items) if items.len() <= 32 && items.iter().all(Value::is_object) => {
                ok(v.clone())
            }
            _ => Bad,
        },
        Kind::Keys => match v {
            Value::Array(items)
                if items.len() <= 1024
                    && items.iter().all(|i| i.as_str().is_some_and(valid_key)) =>
            {
                ok(v.clone())
            }
            Value::String(s) if valid_key(s) => ok(Value::from(vec![s.clone()])),
            _ => Bad,
        },
    }
}

/// The canonical 8-4-4-4-12 hex form.
pub fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn n(kind: Kind, v: Value) -> Norm {
        normalize(kind, &v)
    }

    #[test]
    fn integers() {
        let k = Kind::Int { min: 0, max: 100 };
        assert_eq!(n(k, json!(5)), Norm::Value(json!(5)));
        assert_eq!(n(k, json!("7")), Norm::Value(json!(7)));
        assert_eq!(n(k, json!(5.0)), Norm::Value(json!(5)));
        assert_eq!(n(k, json!("")), Norm::Unset);
        assert_eq!(n(k, json!(null)), Norm::Unset);
        for bad in [
            json!(-1),
            json!(101),
            json!(1.5),
            json!("x"),
            json!(true),
            json!([1]),
            json!(1e300),
            json!("99999999999999999999999"),
        ] {
            assert_eq!(n(k, bad.clone()), Norm::Bad, "{bad}");
        }
    }

    #[test]
    fn booleans_and_uuids() {
        assert_eq!(n(Kind::Bool, json!("true")), Norm::Value(json!(true)));
        assert_eq!(n(Kind::Bool, json!("yes")), Norm::Bad);
        assert_eq!(
            n(Kind::Uuid, json!("6B8B4567-327B-4C4E-8D8E-1B2C3D4E5F60")),
            Norm::Value(json!("6b8b4567-327b-4c4e-8d8e-1b2c3d4e5f60"))
        );
        assert_eq!(n(Kind::Uuid, json!("../../etc/passwd")), Norm::Bad);
    }

    #[test]
    fn lists_and_objects() {
        assert_eq!(n(Kind::List, json!("a,b")), Norm::Value(json!(["a", "b"])));
        assert_eq!(n(Kind::List, json!(["a,b"])), Norm::Bad);
        assert_eq!(
            n(Kind::IpList, json!("192.0.2.1,2001:db8::1")),
            Norm::Value(json!(["192.0.2.1", "2001:db8::1"]))
        );
        assert_eq!(n(Kind::IpList, json!(["8.8.8.8; rm -rf /"])), Norm::Bad);
        assert_eq!(
            n(Kind::FlatObject, json!({"a": 1, "b": "x", "c": true})),
            Norm::Value(json!({"a": 1, "b": "x", "c": true}))
        );
        assert_eq!(n(Kind::FlatObject, json!({"a": {"nested": 1}})), Norm::Bad);
        assert_eq!(
            n(
                Kind::Routes,
                json!({"198.51.100.0/24": "192.0.2.1", "203.0.113.5": "nics[0]"})
            )
            .clone(),
            Norm::Value(json!({"198.51.100.0/24": "192.0.2.1", "203.0.113.5": "nics[0]"}))
        );
        assert_eq!(n(Kind::Routes, json!({"x": "192.0.2.1"})), Norm::Bad);
    }

    #[test]
    fn netmasks() {
        assert_eq!(netmask_prefix("255.255.255.0"), Some(24));
        assert_eq!(netmask_prefix("255.255.255.255"), Some(32));
        assert_eq!(netmask_prefix("0.0.0.0"), Some(0));
        assert_eq!(netmask_prefix("255.0.255.0"), None);
    }

    #[test]
    fn texts_refuse_controls() {
        assert_eq!(n(Kind::Text(10), json!("a\nb")), Norm::Bad);
        assert_eq!(n(Kind::Text(3), json!("abcd")), Norm::Bad);
        assert_eq!(n(Kind::JailPath, json!("/sbin/../init")), Norm::Bad);
        assert_eq!(
            n(Kind::JailPath, json!("/sbin/init")),
            Norm::Value(json!("/sbin/init"))
        );
    }
}
