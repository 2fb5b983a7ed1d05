//! The query language shared by `list` and `lookup`: the fixed column table,
//! key validation, `key=value` / `key=~regex` filters, field extraction with
//! `nics.*.ip` wildcards, JavaScript-style stringification and sorting —
//! all as SmartOS's vmadm does them, so scripts get the same answers.

use regex::{Regex, RegexBuilder};
use serde_json::{Map, Value};
use std::cmp::Ordering;

/// `(key, HEADER, width)` of every plain list column (SmartOS `LIST_FIELDS`).
pub const LIST_FIELDS: &[(&str, &str, usize)] = &[
    ("alias", "ALIAS", 10),
    ("autoboot", "AUTOBOOT", 8),
    ("billing_id", "BILLING_ID", 36),
    ("boot_timestamp", "BOOT_TIMESTAMP", 24),
    ("brand", "BRAND", 14),
    ("cpu_cap", "CPU_CAP", 7),
    ("cpu_shares", "CPU_SHARE", 9),
    ("cpu_type", "CPU_TYPE", 8),
    ("create_timestamp", "CREATE_TIMESTAMP", 24),
    ("dns_domain", "DOMAIN", 32),
    ("do_not_inventory", "DNI", 5),
    ("docker", "DOCKER", 6),
    ("exit_status", "EXIT", 4),
    ("exit_timestamp", "EXIT_TIMESTAMP", 24),
    ("firewall_enabled", "FIREWALL_ENABLED", 16),
    ("flexible_disk_size", "FLEX_DISK_SIZE", 14),
    ("free_space", "FREE_SPACE", 14),
    ("hostname", "HOSTNAME", 32),
    ("hvm", "HVM", 5),
    ("image_uuid", "IMAGE_UUID", 36),
    ("indestructible_delegated", "INDESTR_DATA", 12),
    ("indestructible_zoneroot", "INDESTR_ROOT", 12),
    ("max_locked_memory", "MAX_LOCKED", 10),
    ("max_lwps", "MAX_LWP", 7),
    ("max_physical_memory", "MAX_PHYS", 8),
    ("max_swap", "MAX_SWAP", 8),
    ("owner_uuid", "OWNER_UUID", 36),
    ("package_name", "PACKAGE_NAME", 32),
    ("package_version", "PACKAGE_VER", 11),
    ("pid", "PID", 6),
    ("qemu_extra_opts", "QEMU_EXTRA_OPTS", 15),
    ("quota", "QUOTA", 5),
    ("ram", "RAM", 7),
    ("state", "STATE", 16),
    ("tmpfs", "TMPFS", 5),
    ("type", "TYPE", 4),
    ("uuid", "UUID", 36),
    ("vcpus", "VCPUS", 5),
    ("zfs_io_priority", "IO_PRIORITY", 11),
    ("zone_state", "ZONE_STATE", 10),
    ("zoneid", "ZONEID", 6),
    ("zonename", "ZONENAME", 12),
    ("zonepath", "ZONEPATH", 40),
    ("zpool", "ZPOOL", 12),
];

const HASHES: &[&str] = &["customer_metadata", "internal_metadata", "routes", "tags"];
const NIC_FILTER_KEYS: &[&str] = &[
    "dhcp_server",
    "gateway",
    "interface",
    "ip",
    "mac",
    "model",
    "netmask",
    "nic_tag",
    "vlan_id",
];
const DISK_FILTER_KEYS: &[&str] = &[
    "boot",
    "image_name",
    "image_size",
    "image_uuid",
    "size",
    "media",
    "model",
    "zpool",
];

fn plain_field(key: &str) -> Option<&'static (&'static str, &'static str, usize)> {
    LIST_FIELDS.iter().find(|(k, _, _)| *k == key)
}

fn is_index(s: &str) -> bool {
    !s.is_empty() && s.len() <= 4 && s.bytes().all(|b| b.is_ascii_digit())
}

/// A key valid for filters (`list` and `lookup`): plain fields, the nested
/// NIC/disk keys with `*` or an index, and hash members.
pub fn valid_filter_key(key: &str) -> bool {
    if plain_field(key).is_some() {
        return true;
    }
    let parts: Vec<&str> = key.splitn(3, '.').collect();
    match parts.as_slice() {
        [arr, idx, prop] if *arr == "nics" => {
            (*idx == "*" || is_index(idx)) && NIC_FILTER_KEYS.contains(prop)
        }
        [arr, idx, prop] if *arr == "disks" => {
            (*idx == "*" || is_index(idx)) && DISK_FILTER_KEYS.contains(prop)
        }
        [hash, k] => HASHES.contains(hash) && !k.is_empty(),
        [hash, k1, k2] => HASHES.contains(hash) && !k1.is_empty() && !k2.is_empty(),
        _ => false,
    }
}

/// A key valid as a `list` column or sort key: plain fields, `arr.N.prop`,
/// `hash.key`. Wildcards are refused.
pub fn valid_column(key: &str) -> bool {
    if plain_field(key).is_some() {
        return true;
    }
    let parts: Vec<&str> = key.splitn(3, '.').collect();
    match parts.as_slice() {
        [arr, idx, prop] if ["disks", "nics", "pci_devices"].contains(arr) => {
            is_index(idx) && !prop.is_empty()
        }
        [hash, k] => HASHES.contains(hash) && !k.is_empty(),
        [hash, k1, k2] => HASHES.contains(hash) && !k1.is_empty() && !k2.is_empty(),
        _ => false,
    }
}

/// Header and width of a column.
pub fn column_header(key: &str) -> (String, usize) {
    match plain_field(key) {
        Some((_, h, w)) => (h.to_string(), *w),
        None => (key.to_uppercase(), 20),
    }
}

/// What the query functions read a VM through: a JSON object (lookup -j,
/// image lists), or `list`'s rows holding just the keys a query reads.
pub trait Fields {
    /// The value of the key named exactly `key`, if present.
    fn field(&self, key: &str) -> Option<&Value>;
}

impl Fields for Map<String, Value> {
    fn field(&self, key: &str) -> Option<&Value> {
        self.get(key)
    }
}

impl<T: Fields + ?Sized> Fields for &T {
    fn field(&self, key: &str) -> Option<&Value> {
        (**self).field(key)
    }
}

/// Values of `key` in `vm`: one for plain keys, any number for wildcards.
pub fn field_values<'a, F: Fields + ?Sized>(vm: &'a F, key: &str) -> Vec<&'a Value> {
    if let Some(v) = vm.field(key) {
        return vec![v];
    }
    let mut parts = key.splitn(3, '.');
    let (Some(first), Some(second)) = (parts.next(), parts.next()) else {
        return Vec::new();
    };
    let third = parts.next();
    let Some(top) = vm.field(first) else {
        return Vec::new();
    };
    match (top, third) {
        (Value::Array(items), Some(prop)) => {
            if second == "*" {
                items.iter().filter_map(|i| i.get(prop)).collect()
            } else {
                second
                    .parse::<usize>()
                    .ok()
                    .and_then(|i| items.get(i))
                    .and_then(|i| i.get(prop))
                    .into_iter()
                    .collect()
            }
        }
        (Value::Object(m), None) => m.get(second).into_iter().collect(),
        // Hash keys that themselves contain a dot.
        (Value::Object(m), Some(rest)) => m.get(&format!("{second}.{rest}")).into_iter().collect(),
        _ => Vec::new(),
    }
}

/// JavaScript `String(value)`.
pub fn js_string(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        Value::Array(items) => items
            .iter()
            .map(|i| match i {
                Value::Null => String::new(),
                other => js_string(other),
            })
            .collect::<Vec<_>>()
            .join(","),
        Value::Object(_) => "[object Object]".into(),
    }
}

/// JavaScript truthiness.
pub fn truthy(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_f64().is_some_and(|f| f != 0.0),
        Some(Value::String(s)) => !s.is_empty(),
        Some(_) => true,
    }
}

/// The text of a list cell: the value when truthy or the number 0, else `-`
/// (or nothing in parsable mode).
pub fn cell(v: Option<&Value>, parsable: bool) -> String {
    let zero = matches!(v, Some(Value::Number(n)) if n.as_f64() == Some(0.0));
    if truthy(v) || zero {
        v.map(js_string).unwrap_or_default()
    } else if parsable {
        String::new()
    } else {
        "-".into()
    }
}

/// One `key=value` or `key=~regex` condition.
#[derive(Debug)]
pub struct Filter {
    /// The key tested: a list field, `nics.*.<prop>`, `tags.<name>` …
    pub key: String,
    matcher: Matcher,
}

#[derive(Debug)]
enum Matcher {
    Exact(String),
    Regex(Regex),
}

/// A filter, column or sort key `list` or `lookup` cannot use; each
/// carries the key or argument at fault.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum QueryError {
    /// A `list` filter names a key filters cannot test.
    #[error("Invalid filter key: \"{0}\"")]
    FilterKey(String),
    /// The same for `lookup`, in its own SmartOS wording.
    #[error("Invalid lookup key: \"{0}\"")]
    LookupKey(String),
    /// A filter without `=`.
    #[error("invalid filter: \"{0}\" (expected key=value or key=~regex)")]
    FilterSyntax(String),
    /// A `key=~regex` whose regex does not compile (or is too large):
    /// the filter, then the regex engine's message.
    #[error("invalid regular expression in filter \"{0}\": {1}")]
    Regex(String, String),
    /// A `-o` column that is not a list field, `arr.N.prop` or `hash.key`.
    #[error("invalid order field: {0}")]
    OrderField(String),
    /// A `-s` key refused for the same reasons.
    #[error("invalid sort field: {0}")]
    SortField(String),
}

impl Filter {
    /// Parses `key=value`; `lookup` selects which key error is reported.
    pub fn parse(arg: &str, lookup: bool) -> Result<Filter, QueryError> {
        let (key, value) = arg
            .split_once('=')
            .ok_or_else(|| QueryError::FilterSyntax(arg.to_string()))?;
        if !valid_filter_key(key) {
            return Err(if lookup {
                QueryError::LookupKey(key.to_string())
            } else {
                QueryError::FilterKey(key.to_string())
            });
        }
        let matcher = match value.strip_prefix('~') {
            Some(re) => Matcher::Regex(
                RegexBuilder::new(re)
                    .case_insensitive(true)
                    .size_limit(1 << 20)
                    .build()
                    .map_err(|e| QueryError::Regex(arg.to_string(), e.to_string()))?,
            ),
            None => {
                let is_mac_key = key.starts_with("nics.") && key.ends_with(".mac");
                let v = if is_mac_key {
                    crate::spec::mac::normalize(value).unwrap_or_else(|| value.to_string())
                } else {
                    value.to_string()
                };
                Matcher::Exact(v)
            }
        };
        Ok(Filter {
            key: key.to_string(),
            matcher,
        })
    }

    /// True when any value of the key matches. A VM without the key never matches.
    pub fn matches<F: Fields + ?Sized>(&self, vm: &F) -> bool {
        field_values(vm, &self.key).into_iter().any(|v| {
            let s = if self.key.starts_with("nics.") && self.key.ends_with(".mac") {
                v.as_str()
                    .and_then(crate::spec::mac::normalize)
                    .unwrap_or_else(|| js_string(v))
            } else {
                js_string(v)
            };
            match &self.matcher {
                Matcher::Exact(want) => s == *want,
                Matcher::Regex(re) => re.is_match(&s),
            }
        })
    }
}

/// One sort key with direction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SortKey {
    /// The column key sorted on.
    pub key: String,
    /// True for `-key`: largest first.
    pub descending: bool,
}

/// Parses `-s a,-b,+c`.
pub fn parse_sort(spec: &str) -> Result<Vec<SortKey>, QueryError> {
    spec.split(',')
        .map(|raw| {
            let (key, descending) = match raw.strip_prefix('-') {
                Some(k) => (k, true),
                None => (raw.strip_prefix('+').unwrap_or(raw), false),
            };
            if valid_column(key) {
                Ok(SortKey {
                    key: key.to_string(),
                    descending,
                })
            } else {
                Err(QueryError::SortField(key.to_string()))
            }
        })
        .collect()
}

/// Parses `-o a,b,c`.
pub fn parse_columns(spec: &str) -> Result<Vec<String>, QueryError> {
    spec.split(',')
        .map(|k| {
            if valid_column(k) {
                Ok(k.to_string())
            } else {
                Err(QueryError::OrderField(k.to_string()))
            }
        })
        .collect()
}

fn first_value<'a, F: Fields + ?Sized>(vm: &'a F, key: &str) -> Option<&'a Value> {
    match vm.field(key) {
        Some(v) => Some(v),
        None => field_values(vm, key).into_iter().next(),
    }
}

/// JavaScript `<` between two values as vmadm's sort uses it: numbers
/// numerically, everything else as strings; a falsy value sorts after a
/// truthy one (ascending).
fn compare_values(a: Option<&Value>, b: Option<&Value>) -> Ordering {
    match (truthy(a), truthy(b)) {
        (true, false) => return Ordering::Less,
        (false, true) => return Ordering::Greater,
        (false, false) => return Ordering::Equal,
        _ => {}
    }
    match (a, b) {
        (Some(Value::Number(x)), Some(Value::Number(y))) => x
            .as_f64()
            .partial_cmp(&y.as_f64())
            .unwrap_or(Ordering::Equal),
        // Most sort keys are strings: compare them without allocating.
        (Some(Value::String(x)), Some(Value::String(y))) => x.cmp(y),
        (Some(x), Some(y)) => js_string(x).cmp(&js_string(y)),
        _ => Ordering::Equal,
    }
}

/// A sort key's value, classified once per VM so the comparisons a sort
/// makes (n log n of them: 130,000 for 10,000 VMs) do no work but compare.
enum SortVal<'a> {
    /// `undefined`, `null`, `false`, `0`, `""`: after everything else.
    Falsy,
    /// A number, compared numerically with another number.
    Num(f64, &'a Value),
    /// A string, compared bytewise with another string.
    Str(&'a str),
    /// Anything else truthy, compared by its JavaScript string.
    Other(&'a Value),
}

impl<'a> SortVal<'a> {
    fn of(v: Option<&'a Value>) -> SortVal<'a> {
        if !truthy(v) {
            return SortVal::Falsy;
        }
        match v {
            Some(n @ Value::Number(x)) => SortVal::Num(x.as_f64().unwrap_or(f64::NAN), n),
            Some(Value::String(s)) => SortVal::Str(s),
            Some(other) => SortVal::Other(other),
            None => SortVal::Falsy,
        }
    }

    fn value(&self) -> Option<&'a Value> {
        match self {
            SortVal::Num(_, v) | SortVal::Other(v) => Some(v),
            _ => None,
        }
    }

    /// The order of [`compare_values`] on the values classified, except
    /// that a number sorts before any other truthy value: JavaScript's
    /// `<` across numbers and strings is no order at all (2 < 10,
    /// "10" < "1x", "1x" < "2"), which leaves SmartOS's result arbitrary and
    /// makes Rust's sort panic (found by fuzz/list_query).
    fn cmp(&self, other: &SortVal<'a>) -> Ordering {
        match (self, other) {
            (SortVal::Falsy, SortVal::Falsy) => Ordering::Equal,
            (_, SortVal::Falsy) => Ordering::Less,
            (SortVal::Falsy, _) => Ordering::Greater,
            (SortVal::Num(x, _), SortVal::Num(y, _)) => x.total_cmp(y),
            (SortVal::Num(..), _) => Ordering::Less,
            (_, SortVal::Num(..)) => Ordering::Greater,
            (SortVal::Str(x), SortVal::Str(y)) => x.cmp(y),
            (SortVal::Str(x), y) => (*x).cmp(js_string(y.value().unwrap_or(&Value::Null)).as_str()),
            (x, SortVal::Str(y)) => js_string(x.value().unwrap_or(&Value::Null)).as_str().cmp(y),
            (x, y) => compare_values(x.value(), y.value()),
        }
    }
}

/// Sorts VMs by the keys in order, ties falling through to the next key.
pub fn sort_vms<F: Fields>(vms: &mut Vec<F>, keys: &[SortKey]) {
    if keys.is_empty() {
        return;
    }
    // Look every sort key up once per VM, sort positions, then reorder.
    let order: Vec<usize> = {
        let cols: Vec<SortVal<'_>> = vms
            .iter()
            .flat_map(|vm| keys.iter().map(|k| SortVal::of(first_value(vm, &k.key))))
            .collect();
        let n = keys.len();
        let mut idx: Vec<usize> = (0..vms.len()).collect();
        idx.sort_by(|&a, &b| {
            for (i, k) in keys.iter().enumerate() {
                let mut ord = cols[a * n + i].cmp(&cols[b * n + i]);
                if k.descending {
                    ord = ord.reverse();
                }
                if ord != Ordering::Equal {
                    return ord;
                }
            }
            Ordering::Equal
        });
        idx
    };
    let mut slots: Vec<Option<F>> = vms.drain(..).map(Some).collect();
    vms.extend(order.into_iter().filter_map(|i| slots[i].take()));
}

/// Writes a list cell into `out`: what [`cell`] returns, without making a
/// string of it first.
fn push_cell(out: &mut String, v: Option<&Value>, parsable: bool) {
    use std::fmt::Write as _;
    let zero = matches!(v, Some(Value::Number(n)) if n.as_f64() == Some(0.0));
    if truthy(v) || zero {
        match v {
            Some(Value::String(s)) => out.push_str(s),
            Some(Value::Number(n)) => {
                let _ = write!(out, "{n}");
            }
            Some(other) => out.push_str(&js_string(other)),
            None => {}
        }
    } else if !parsable {
        out.push('-');
    }
}

/// Padding for table cells, pushed in one piece.
const SPACES: &str = "                                        ";

/// Renders the list table (or parsable lines).
pub fn render_table<F: Fields>(
    vms: &[F],
    columns: &[String],
    parsable: bool,
    header: bool,
) -> String {
    let heads: Vec<(String, usize)> = columns.iter().map(|c| column_header(c)).collect();
    let width: usize = heads.iter().map(|(_, w)| w + 2).sum();
    let mut out = String::with_capacity((vms.len() + 1) * width);
    // Each line is written straight into `out`: cells padded to their
    // column's width (in characters, as `{:<w$}` pads) and joined by two
    // spaces, or joined by `:` when parsable; trailing whitespace trimmed.
    let sep = if parsable { ":" } else { "  " };
    let line = |out: &mut String, cell: &mut dyn FnMut(&mut String, usize)| {
        let start = out.len();
        for (i, (_, w)) in heads.iter().enumerate() {
            if i > 0 {
                out.push_str(sep);
            }
            let at = out.len();
            cell(out, i);
            if !parsable {
                let text = &out[at..];
                let len = if text.is_ascii() {
                    text.len()
                } else {
                    text.chars().count()
                };
                let mut pad = w.saturating_sub(len);
                while pad > 0 {
                    let n = pad.min(SPACES.len());
                    out.push_str(&SPACES[..n]);
                    pad -= n;
                }
            }
        }
        if !parsable {
            let kept = out[start..].trim_end().len();
            out.truncate(start + kept);
        }
        out.push('\n');
    };
    if header {
        line(&mut out, &mut |o, i| o.push_str(&heads[i].0));
    }
    for vm in vms {
        line(&mut out, &mut |o, i| {
            push_cell(o, first_value(vm, &columns[i]), parsable)
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn vm(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn keys() {
        for ok in [
            "alias",
            "nics.*.ip",
            "nics.0.mac",
            "tags.role",
            "customer_metadata.x",
            "disks.*.size",
        ] {
            assert!(valid_filter_key(ok), "{ok}");
        }
        for bad in [
            "bogus",
            "nics.*.ips",
            "nics.x.ip",
            "tags.",
            "nics",
            "state.x",
        ] {
            assert!(!valid_filter_key(bad), "{bad}");
        }
        assert!(valid_column("nics.0.ip"));
        assert!(!valid_column("nics.*.ip"));
    }

    #[test]
    fn filters_match_like_vmadm() {
        let a = vm(json!({"alias": "Web01", "ram": 256, "autoboot": false,
            "nics": [{"ip": "192.0.2.1", "mac": "02:08:20:0a:0b:03"}, {"ip": "198.51.100.7"}],
            "tags": {"role": "db"}, "resolvers": ["192.0.2.53", "192.0.2.54"]}));
        let m = |f: &str| Filter::parse(f, false).unwrap().matches(&a);
        assert!(m("alias=Web01"));
        assert!(!m("alias=web01"));
        assert!(m("alias=~^web"));
        assert!(m("ram=256"));
        assert!(m("autoboot=false"));
        assert!(m("nics.*.ip=198.51.100.7"));
        assert!(!m("nics.0.ip=198.51.100.7"));
        assert!(m("nics.0.mac=2:8:20:a:b:3"));
        assert!(m("tags.role=db"));
        assert!(!m("hostname="));
        assert_eq!(
            Filter::parse("bogus=1", false).unwrap_err(),
            QueryError::FilterKey("bogus".into())
        );
        assert_eq!(
            Filter::parse("bogus=1", true).unwrap_err(),
            QueryError::LookupKey("bogus".into())
        );
        assert!(Filter::parse("alias=~(", false).is_err());
    }

    #[test]
    fn sorting_numbers_strings_falsy_and_descending() {
        let mut vms = vec![
            vm(json!({"uuid": "c", "ram": 1024})),
            vm(json!({"uuid": "a", "ram": 256})),
            vm(json!({"uuid": "b"})),
            vm(json!({"uuid": "d", "ram": 256})),
        ];
        sort_vms(&mut vms, &parse_sort("ram,uuid").unwrap());
        let order: Vec<&str> = vms.iter().map(|v| v["uuid"].as_str().unwrap()).collect();
        assert_eq!(order, ["a", "d", "c", "b"]);
        sort_vms(&mut vms, &parse_sort("-ram,uuid").unwrap());
        let order: Vec<&str> = vms.iter().map(|v| v["uuid"].as_str().unwrap()).collect();
        assert_eq!(order, ["b", "c", "a", "d"]);
        assert_eq!(
            parse_sort("nope").unwrap_err(),
            QueryError::SortField("nope".into())
        );
    }

    /// Found by fuzz/list_query: numbers, numeric-looking strings and
    /// other values under one sort key made the comparison cyclic, and
    /// the sort panicked.
    #[test]
    fn sorting_mixed_types_is_a_total_order() {
        let values = [
            json!([1]),
            json!("58x"),
            json!(34.79),
            json!(4),
            json!(true),
            json!("30x"),
            json!(2),
            json!("10"),
            json!(10),
            json!("1x"),
            json!(null),
            json!({"a": 1}),
        ];
        let mut vms: Vec<_> = (0..120)
            .map(|i| vm(json!({"uuid": format!("{i:03}"), "ram": values[(i * 7) % values.len()]})))
            .collect();
        sort_vms(&mut vms, &parse_sort("ram,uuid").unwrap());
        assert_eq!(vms.len(), 120);
        let rams: Vec<Value> = vms.iter().map(|v| v["ram"].clone()).collect();
        // Numbers first, in numeric order; then the rest as JavaScript
        // strings; falsy last.
        assert_eq!(rams[0], json!(2));
        let nums: Vec<f64> = rams.iter().filter_map(Value::as_f64).collect();
        assert!(nums.windows(2).all(|w| w[0] <= w[1]), "{nums:?}");
        assert_eq!(rams.last(), Some(&json!(null)));
        // The fuzzer's input, on which the old comparison made sort panic.
        let found = json!([
            [1],
            "58x",
            [1],
            34.79,
            47.26,
            4,
            true,
            [1],
            "30x",
            [1],
            true,
            true,
            true,
            [1],
            [1],
            "96x",
            true,
            48,
            41.99,
            23.46,
            true,
            22,
            null,
            null,
            null,
            true,
            "17.5",
            null,
            20.67,
            null,
            "43x",
            82,
            true,
            22.64,
            "35",
            8.37,
            true,
            [1],
            [1],
            true,
            66,
            true,
            [1],
            null,
            [1],
            [1],
            "95x",
            42.92,
            20.8,
            17,
            true,
            18.89,
            [1],
            true,
            24.98,
            "52x",
            "73",
            null,
            null,
            "9.5"
        ]);
        let mut vms: Vec<_> = found
            .as_array()
            .unwrap()
            .iter()
            .enumerate()
            .map(|(i, r)| vm(json!({"uuid": i.to_string(), "ram": r})))
            .collect();
        sort_vms(&mut vms, &parse_sort("ram").unwrap());
        assert_eq!(vms.len(), 60);
    }

    #[test]
    fn table_format() {
        let vms = vec![vm(
            json!({"uuid": "u1", "type": "OS", "ram": 256, "state": "running", "alias": "averyveryverylongalias", "autoboot": false, "quota": 0}),
        )];
        let cols = parse_columns("uuid,type,ram,state,alias").unwrap();
        let t = render_table(&vms, &cols, false, true);
        let want = format!(
            "{:<36}  {:<4}  {:<7}  {:<16}  ALIAS\n{:<36}  OS    256      running           averyveryverylongalias\n",
            "UUID", "TYPE", "RAM", "STATE", "u1"
        );
        assert_eq!(t, want);
        let cols = parse_columns("uuid,autoboot,quota,hostname").unwrap();
        assert_eq!(render_table(&vms, &cols, true, false), "u1::0:\n");
        assert!(render_table(&vms, &cols, false, false).starts_with("u1"));
        assert!(render_table(&vms, &cols, false, false).contains("-"));
        assert_eq!(
            parse_columns("x").unwrap_err(),
            QueryError::OrderField("x".into())
        );
    }

    #[test]
    fn js_strings() {
        assert_eq!(js_string(&json!(["a", 1, true])), "a,1,true");
        assert_eq!(js_string(&json!({"a": 1})), "[object Object]");
        assert_eq!(cell(Some(&json!(false)), false), "-");
        assert_eq!(cell(Some(&json!("")), true), "");
        assert_eq!(cell(Some(&json!(0)), false), "0");
    }
}
