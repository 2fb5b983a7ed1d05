//! `vmadm list` and `vmadm lookup`: every record read once, runtime state
//! from one driver query for all VMs, then filter, sort and render.
//!
//! `list` and `lookup` without `-j` work on [`Row`]s: per VM, only the
//! values of the keys the query reads (columns, sort keys, filter keys),
//! stored or derived (`state`, `type`, `ram` …), in one vector — no JSON
//! object per VM. A query whose keys are all [`indexed`] (the default
//! `list`, most `-o` columns and filters, `lookup` without `-j`) takes the
//! values from the store's list index, which serves unchanged records
//! without opening their files (see `store::index`); anything else reads
//! every record. `lookup -j` builds whole objects in `get`'s order.

use super::context::Ctx;
use super::error::{OpsError, OpsResult};
use super::query::{self, Fields, Filter};
use super::view::{add_list_fields, full_object, states_of, unordered_object};
use serde_json::{Map, Value};

/// How much of each VM list and lookup need.
pub enum Shape {
    /// Every key, in `get`'s order (lookup -j prints these).
    Full,
    /// Only the stored keys these query keys read (plus runtime fields and
    /// `type`/`ram`), unordered: `list` reads a few fields of many VMs.
    Reading(Vec<String>),
}

/// The stored keys that query keys read: each key as a whole (a stored key
/// may contain dots), its top-level part (`nics` of `nics.0.ip`), and what
/// `type` and `ram` derive from.
fn stored_keys<'a>(keys: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut out: Vec<String> = ["uuid", "brand", "max_physical_memory"]
        .map(String::from)
        .to_vec();
    for k in keys {
        for n in [k, k.split('.').next().unwrap_or(k)] {
            if !out.iter().any(|o| o == n) {
                out.push(n.to_string());
            }
        }
    }
    out
}

/// The stored keys a table query reads: its columns, sort keys and
/// filter keys (see [`stored_keys`]).
fn query_keys(columns: &[String], sort: &[query::SortKey], filters: &[Filter]) -> Vec<String> {
    stored_keys(
        columns
            .iter()
            .chain(sort.iter().map(|s| &s.key))
            .map(String::as_str)
            .chain(filters.iter().map(|f| f.key.as_str())),
    )
}

/// The keys the default `list` reads (and `state` needs), first in the
/// index so a reader of just these stops early in each line.
const INDEXED_FIRST: &[&str] = &[
    "uuid",
    "_incomplete",
    "brand",
    "max_physical_memory",
    "alias",
    "ram",
];

/// List keys whose value never comes from the record: `state` and
/// `zone_state` are always the runtime's, `type` always derived from the
/// brand. The index does not keep them, and readers need not ask for them.
const NEVER_STORED: &[&str] = &["state", "zone_state", "type"];

/// Keys the list index keeps beyond the plain list columns: the dataset
/// name, and the arrays and tags that filters and `-o` columns commonly
/// name.
const INDEXED_EXTRA: &[&str] = &["zfs_filesystem", "nics", "disks", "tags"];

/// The stored keys the list index keeps of each record: `INDEXED_FIRST`,
/// every other plain list column (runtime ones such as `state` are simply
/// never found in a record) and `INDEXED_EXTRA`. Metadata maps and other
/// large keys stay out: a query naming them reads the records. Stored keys
/// with a dot in their name are always kept too (see `store::index`), so a
/// dotted query key is covered when its first part is.
pub fn indexed() -> &'static [&'static str] {
    static KEYS: std::sync::OnceLock<Vec<&'static str>> = std::sync::OnceLock::new();
    KEYS.get_or_init(|| {
        let mut keys: Vec<&'static str> = INDEXED_FIRST.to_vec();
        for k in query::LIST_FIELDS
            .iter()
            .map(|(k, _, _)| *k)
            .chain(INDEXED_EXTRA.iter().copied())
        {
            if !keys.contains(&k) && !NEVER_STORED.contains(&k) {
                keys.push(k);
            }
        }
        keys
    })
}

/// True when the list index holds what a query reading `keys` needs.
fn index_covers(keys: &[String]) -> bool {
    let idx = indexed();
    keys.iter().all(|k| {
        let top = k.split('.').next().unwrap_or(k);
        idx.contains(&k.as_str()) || idx.contains(&top) || NEVER_STORED.contains(&k.as_str())
    })
}

/// Reads the records a query of `shape` needs: through the list index when
/// it covers every key the query reads, else every record in full.
fn records_for(ctx: &Ctx, shape: &Shape) -> OpsResult<Vec<crate::store::LoadedRecord>> {
    match shape {
        Shape::Reading(keys) if index_covers(keys) => {
            // The incomplete marker decides `state`, whatever is asked.
            let mut wanted: Vec<&str> = keys
                .iter()
                .map(String::as_str)
                .filter(|k| !NEVER_STORED.contains(k))
                .collect();
            wanted.push("_incomplete");
            Ok(ctx.store.load_summaries(indexed(), &wanted)?)
        }
        _ => Ok(ctx.store.load_all()?),
    }
}

/// All VMs as list/lookup see them (with `type` and `ram`), in `shape`, as
/// JSON objects. A corrupt record is reported through `warn` and left out;
/// the others still show.
pub fn all_vms(
    ctx: &Ctx,
    shape: &Shape,
    warn: &mut dyn FnMut(String),
) -> OpsResult<Vec<Map<String, Value>>> {
    let records = records_for(ctx, shape)?;
    let uuids: Vec<uuid::Uuid> = records.iter().map(|(u, _)| *u).collect();
    let runtimes = ctx.runtimes(&uuids)?;
    let mut out = Vec::with_capacity(records.len());
    for (uuid, rec) in records {
        match rec {
            Ok(rec) => {
                let rt = runtimes.get(&uuid);
                let server = ctx.config.server_uuid.as_deref();
                let mut obj = match shape {
                    Shape::Full => full_object(rec, rt, server),
                    Shape::Reading(keys) => unordered_object(rec, rt, server, Some(keys)),
                };
                add_list_fields(&mut obj);
                out.push(obj);
            }
            Err(e) => warn(format!("WARNING: skipping VM {uuid}: {e}")),
        }
    }
    Ok(out)
}

/// One VM as `list` and `lookup` read it: the value of each of the query's
/// keys (`keys`, shared by every row), stored or derived, as
/// [`unordered_object`] plus [`add_list_fields`] would give them (of the
/// host's fields only `server_uuid` is left out, and `snapshots`: neither
/// is a list column or filter key).
pub struct Row<'k> {
    keys: &'k [String],
    vals: Vec<Option<Value>>,
}

impl Fields for Row<'_> {
    fn field(&self, key: &str) -> Option<&Value> {
        let i = self.keys.iter().position(|k| k == key)?;
        self.vals.get(i)?.as_ref()
    }
}

/// Where a row's value for one key comes from: the position of a stored
/// key in the values read, or how it is derived.
enum Src {
    /// The stored value.
    Stored(usize),
    /// The runtime state (or `incomplete`).
    State,
    /// The runtime zone state.
    ZoneState,
    /// From the brand.
    Type(usize),
    /// `max_physical_memory`, else a stored `ram`.
    Ram(usize, usize),
    /// From the runtime when the VM runs and the runtime knows it, else
    /// stored: `pid`, `boot_timestamp`, `zoneid`.
    Runtime(Live, usize),
}

/// The runtime fields a row can show.
#[derive(Clone, Copy)]
enum Live {
    Pid,
    Boot,
    Zoneid,
}

/// The rows of every VM for a query reading `keys` (as [`stored_keys`]
/// gives them) that match every filter. A corrupt record is reported
/// through `warn` and left out.
fn matching_rows<'k>(
    ctx: &Ctx,
    keys: &'k [String],
    filters: &[Filter],
    warn: &mut dyn FnMut(String),
) -> OpsResult<Vec<Row<'k>>> {
    let mut wanted: Vec<&str> = keys
        .iter()
        .map(String::as_str)
        .filter(|k| !NEVER_STORED.contains(k))
        .collect();
    for k in ["_incomplete", "brand", "max_physical_memory", "ram"] {
        if !wanted.contains(&k) {
            wanted.push(k);
        }
    }
    let at = |k: &str| wanted.iter().position(|w| *w == k).unwrap_or(0);
    let srcs: Vec<Src> = keys
        .iter()
        .map(|k| match k.as_str() {
            "state" => Src::State,
            "zone_state" => Src::ZoneState,
            "type" => Src::Type(at("brand")),
            "ram" => Src::Ram(at("max_physical_memory"), at("ram")),
            "pid" => Src::Runtime(Live::Pid, at(k)),
            "boot_timestamp" => Src::Runtime(Live::Boot, at(k)),
            "zoneid" => Src::Runtime(Live::Zoneid, at(k)),
            _ => Src::Stored(at(k)),
        })
        .collect();
    let incomplete_at = at("_incomplete");

    let records: Vec<crate::store::LoadedValues> = if index_covers(keys) {
        ctx.store.load_columns(indexed(), &wanted)?
    } else {
        ctx.store
            .load_all()?
            .into_iter()
            .map(|(u, r)| {
                let vals = r.map(|rec| {
                    let mut m = rec.vm.into_map_of(&wanted);
                    wanted.iter().map(|w| m.remove(*w)).collect()
                });
                (u, vals)
            })
            .collect()
    };
    let uuids: Vec<uuid::Uuid> = records.iter().map(|(u, _)| *u).collect();
    let runtimes = ctx.runtimes(&uuids)?;
    let mut out = Vec::with_capacity(records.len());
    for (uuid, vals) in records {
        let mut vals = match vals {
            Ok(v) => v,
            Err(e) => {
                warn(format!("WARNING: skipping VM {uuid}: {e}"));
                continue;
            }
        };
        let rt = runtimes.get(&uuid);
        let incomplete = matches!(vals.get(incomplete_at), Some(Some(Value::Bool(true))));
        let (state, zone_state) = states_of(incomplete, rt);
        let live = rt.filter(|r| r.running);
        // Derived values first (they read stored ones), then the stored
        // values are moved out.
        let mut row: Vec<Option<Value>> = srcs
            .iter()
            .map(|src| match src {
                Src::Stored(_) => None,
                Src::State => Some(state.into()),
                Src::ZoneState => Some(zone_state.into()),
                Src::Type(b) => {
                    let brand = vals[*b].as_ref().and_then(Value::as_str).unwrap_or("");
                    Some(crate::spec::brand::list_type(brand).into())
                }
                Src::Ram(m, r) => vals[*m].clone().or_else(|| vals[*r].clone()),
                Src::Runtime(which, i) => {
                    let from_rt = live.and_then(|rt| match which {
                        Live::Pid => rt.pid.map(Value::from),
                        Live::Boot => rt.boot_timestamp.clone().map(Value::from),
                        Live::Zoneid => rt.zoneid.map(Value::from),
                    });
                    from_rt.or_else(|| vals[*i].clone())
                }
            })
            .collect();
        for (slot, src) in row.iter_mut().zip(&srcs) {
            if let Src::Stored(i) = src {
                *slot = vals[*i].take();
            }
        }
        let row = Row { keys, vals: row };
        if filters.iter().all(|f| f.matches(&row)) {
            out.push(row);
        }
    }
    Ok(out)
}

fn parse_filters(filters: &[String], lookup: bool) -> OpsResult<Vec<Filter>> {
    Ok(filters
        .iter()
        .map(|f| Filter::parse(f, lookup))
        .collect::<Result<Vec<_>, _>>()?)
}

/// The flags of `vmadm list`.
pub struct ListOptions {
    /// `-o`: comma-separated column keys; `None` = `uuid,type,ram,state,alias`.
    pub columns: Option<String>,
    /// `-s`: comma-separated sort keys, `-key` for descending; `None` =
    /// `ram,uuid`.
    pub sort: Option<String>,
    /// `-p`: cells joined by `:` without padding, empty instead of `-`.
    pub parsable: bool,
    /// Print the header line (the CLI clears it for `-p` and `-H`).
    pub header: bool,
    /// `key=value` or `key=~regex` conditions; a VM must meet all of them.
    pub filters: Vec<String>,
}

/// The rendered table.
pub fn list(ctx: &Ctx, opts: &ListOptions, warn: &mut dyn FnMut(String)) -> OpsResult<String> {
    let columns = query::parse_columns(
        opts.columns
            .as_deref()
            .unwrap_or("uuid,type,ram,state,alias"),
    )?;
    let sort = query::parse_sort(opts.sort.as_deref().unwrap_or("ram,uuid"))?;
    let filters = parse_filters(&opts.filters, false)?;
    let keys = query_keys(&columns, &sort, &filters);
    let mut rows = matching_rows(ctx, &keys, &filters, warn)?;
    query::sort_vms(&mut rows, &sort);
    Ok(query::render_table(
        &rows,
        &columns,
        opts.parsable,
        opts.header,
    ))
}

/// The flags of `vmadm lookup`.
pub struct LookupOptions {
    /// `-j`: whole VM objects instead of uuids.
    pub json: bool,
    /// `-1`: fail unless exactly one VM matches.
    pub unique: bool,
    /// `-o`: with `-j` only, the comma-separated keys to keep of each
    /// object (objects left with none are dropped).
    pub fields: Option<String>,
    /// `key=value` or `key=~regex` conditions; a VM must meet all of them.
    pub filters: Vec<String>,
}

/// What lookup prints.
pub enum LookupOutput {
    /// Without `-j`: the matching uuids, sorted.
    Uuids(Vec<String>),
    /// With `-j`: the matching VM objects in `get`'s key order (or only
    /// the `-o` keys), sorted by uuid.
    Objects(Vec<Map<String, Value>>),
}

/// The VMs matching every filter, as `opts` asks for them. A corrupt
/// record is reported through `warn` and skipped. Fails on a bad filter
/// key or regex, on `-o` without `-j`, and on `-1` with other than one
/// match.
pub fn lookup(
    ctx: &Ctx,
    opts: &LookupOptions,
    warn: &mut dyn FnMut(String),
) -> OpsResult<LookupOutput> {
    if opts.fields.is_some() && !opts.json {
        return Err(OpsError::Failed("Cannot specify -o without -j".into()));
    }
    let filters = parse_filters(&opts.filters, true)?;
    let unique = |n: usize| {
        if opts.unique && n != 1 {
            return Err(OpsError::Failed(format!(
                "Requested unique lookup but found {n} results."
            )));
        }
        Ok(())
    };
    // Without -j only uuids are printed; with it, whole objects in `get` order.
    if !opts.json {
        let keys =
            stored_keys(std::iter::once("uuid").chain(filters.iter().map(|f| f.key.as_str())));
        let rows = matching_rows(ctx, &keys, &filters, warn)?;
        unique(rows.len())?;
        let mut uuids: Vec<String> = rows
            .iter()
            .map(|r| r.field("uuid").map(query::js_string).unwrap_or_default())
            .collect();
        uuids.sort();
        return Ok(LookupOutput::Uuids(uuids));
    }
    let mut vms = all_vms(ctx, &Shape::Full, warn)?;
    vms.retain(|vm| filters.iter().all(|f| f.matches(vm)));
    unique(vms.len())?;
    vms.sort_by(|a, b| query::js_string(&a["uuid"]).cmp(&query::js_string(&b["uuid"])));
    if let Some(fields) = &opts.fields {
        let keys: Vec<&str> = fields.split(',').collect();
        vms = vms
            .into_iter()
            .map(|vm| {
                keys.iter()
                    .filter_map(|k| vm.get(*k).map(|v| ((*k).to_string(), v.clone())))
                    .collect::<Map<String, Value>>()
            })
            .filter(|m| !m.is_empty())
            .collect();
    }
    Ok(LookupOutput::Objects(vms))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::testing::Fixture;
    use serde_json::json;
    use uuid::Uuid;

    /// Two VMs, `a` running and `b` stopped, on one fixture.
    fn two_vms() -> (Fixture, Uuid, Uuid) {
        let fx = Fixture::new();
        let a = fx.running_vm(json!({"alias": "a", "max_physical_memory": 512}));
        let b = fx.create_vm(json!({"alias": "b", "max_physical_memory": 256}));
        (fx, a, b)
    }

    fn list_opts(columns: &str, filters: &[&str]) -> ListOptions {
        ListOptions {
            columns: Some(columns.into()),
            sort: Some("alias".into()),
            parsable: true,
            header: false,
            filters: filters.iter().map(|f| f.to_string()).collect(),
        }
    }

    fn lookup_opts(filters: &[&str]) -> LookupOptions {
        LookupOptions {
            json: false,
            unique: false,
            fields: None,
            filters: filters.iter().map(|f| f.to_string()).collect(),
        }
    }

    fn no_warnings() -> impl FnMut(String) {
        |w| panic!("unexpected warning {w}")
    }

    #[test]
    fn list_and_lookup_spawn_no_process() {
        let (fx, _, _) = two_vms();
        let mark = fx.mark();
        list(&fx.ctx, &list_opts("uuid,state", &[]), &mut no_warnings()).unwrap();
        lookup(
            &fx.ctx,
            &lookup_opts(&["state=running"]),
            &mut no_warnings(),
        )
        .unwrap();
        assert!(fx.commands_since(&mark).is_empty());
    }

    #[test]
    fn the_index_gives_the_same_answers_as_the_records() {
        let (mut fx, a, _) = two_vms();
        let c = fx.create_vm(json!({"alias": "c", "tags": {"role": "db"},
            "nics": [{"nic_tag": "admin", "ip": "192.0.2.9", "netmask": "255.255.255.0"}],
            "customer_metadata": {"k": "v"}}));
        fx.mark_incomplete(&a);
        let queries: Vec<(&str, Vec<&str>)> = vec![
            ("uuid,type,ram,state,alias", vec![]),
            ("uuid,alias,zonepath,quota,autoboot", vec!["state=stopped"]),
            ("uuid,tags.role,nics.0.ip", vec!["tags.role=db"]),
            ("uuid,alias", vec!["nics.*.ip=192.0.2.9"]),
            ("uuid", vec!["customer_metadata.k=v"]),
        ];
        let run = |fx: &Fixture| -> Vec<String> {
            queries
                .iter()
                .map(|(cols, filters)| {
                    list(&fx.ctx, &list_opts(cols, filters), &mut no_warnings()).unwrap()
                })
                .collect()
        };
        let from_records = run(&fx);
        // Now trust even fresh files, so the second round is served from
        // the index the first one built.
        let trust = crate::store::Tuning {
            racy: std::time::Duration::ZERO,
            recheck: std::time::Duration::from_secs(3600),
        };
        fx.ctx.store.set_index_tuning(trust);
        run(&fx);
        let (_, stats) = fx
            .ctx
            .store
            .load_columns_with(indexed(), &["uuid"], trust)
            .unwrap();
        assert!(stats.trusted, "{stats:?}");
        assert_eq!(stats.reused, 3, "{stats:?}");
        assert_eq!(run(&fx), from_records);
        assert!(
            from_records[2].contains(&format!("{c}:db:192.0.2.9")),
            "{from_records:?}"
        );
        assert!(!from_records[1].contains(&format!("{a}:")));
    }

    /// What list printed when it built a JSON object per VM: the
    /// reference the rows must agree with.
    fn list_by_objects(ctx: &Ctx, opts: &ListOptions) -> String {
        let columns = query::parse_columns(opts.columns.as_deref().unwrap()).unwrap();
        let sort = query::parse_sort(opts.sort.as_deref().unwrap()).unwrap();
        let filters = parse_filters(&opts.filters, false).unwrap();
        let keys = query_keys(&columns, &sort, &filters);
        let mut vms = all_vms(ctx, &Shape::Reading(keys), &mut no_warnings()).unwrap();
        vms.retain(|vm| filters.iter().all(|f| f.matches(vm)));
        query::sort_vms(&mut vms, &sort);
        query::render_table(&vms, &columns, opts.parsable, opts.header)
    }

    #[test]
    fn rows_give_what_the_json_objects_gave() {
        let (mut fx, a, _) = two_vms();
        // Odd records written directly: `ram` without max_physical_memory,
        // stored keys that runtime or derived ones shadow, a stored key
        // with a dot in its name, another brand.
        for (i, extra) in [
            json!({"ram": 300, "pid": 7, "state": "bogus", "type": "X", "brand": "lx"}),
            json!({"tags.role": "literal", "tags": {"role": "db"}, "zoneid": 3,
                   "nics": [{"ip": "192.0.2.7", "mac": "02:08:20:0a:0b:03"}]}),
        ]
        .into_iter()
        .enumerate()
        {
            let u = Uuid::new_v4();
            let mut vm = json!({"uuid": u.to_string(), "alias": format!("odd{i}")});
            for (k, v) in extra.as_object().unwrap() {
                vm[k] = v.clone();
            }
            let rec = crate::spec::VmRecord::from_map(vm.as_object().unwrap().clone());
            fx.ctx.store.save(&u, &rec).unwrap();
        }
        fx.ctx.config.server_uuid = Some("930896af-bf8c-48d4-885c-6573a94b1853".into());
        let cols =
            "uuid,type,ram,state,zone_state,pid,zoneid,boot_timestamp,alias,tags.role,nics.0.mac";
        let queries: Vec<(&str, &str, Vec<&str>)> = vec![
            (cols, "alias", vec![]),
            (cols, "-ram,uuid", vec!["type=OS"]),
            ("uuid,alias", "state,alias", vec!["ram=300"]),
            ("alias,tags.role", "alias", vec!["tags.role=~lit"]),
            ("alias", "alias", vec!["nics.*.mac=2:8:20:a:b:3"]),
            ("alias,customer_metadata.x", "-alias", vec!["state=running"]),
        ];
        let trust = crate::store::Tuning {
            racy: std::time::Duration::ZERO,
            recheck: std::time::Duration::from_secs(3600),
        };
        let mut seen = 0;
        for round in 0..3 {
            if round == 1 {
                fx.ctx.store.set_index_tuning(trust);
            }
            for (cols, sort, filters) in &queries {
                for parsable in [true, false] {
                    let opts = ListOptions {
                        columns: Some(cols.to_string()),
                        sort: Some(sort.to_string()),
                        parsable,
                        header: !parsable,
                        filters: filters.iter().map(|f| f.to_string()).collect(),
                    };
                    let by_rows = list(&fx.ctx, &opts, &mut no_warnings()).unwrap();
                    assert_eq!(
                        by_rows,
                        list_by_objects(&fx.ctx, &opts),
                        "{cols} {filters:?}"
                    );
                    seen += by_rows.lines().count();
                }
            }
        }
        assert!(seen > 40, "the queries match something: {seen}");
        let table = list(
            &fx.ctx,
            &list_opts("alias,ram,type,pid,tags.role", &[]),
            &mut no_warnings(),
        )
        .unwrap();
        // Stored `ram` stands in for memory; a stored pid shows when the
        // VM is not running, the runtime's when it is; a stored dotted key
        // wins over the nested one.
        assert_eq!(
            table, "a:512:OS:4242:\nb:256:OS::\nodd0:300:LX:7:\nodd1::OS::literal\n",
            "{a}"
        );
    }

    #[test]
    fn list_shows_the_runtime_state_from_the_driver() {
        let (fx, a, b) = two_vms();
        let table = list(
            &fx.ctx,
            &list_opts("uuid,alias,state,ram", &[]),
            &mut no_warnings(),
        )
        .unwrap();
        assert_eq!(table, format!("{a}:a:running:512\n{b}:b:stopped:256\n"));
    }

    #[test]
    fn the_default_columns_sort_by_ram() {
        let (fx, a, b) = two_vms();
        let opts = ListOptions {
            columns: None,
            sort: None,
            parsable: true,
            header: false,
            filters: Vec::new(),
        };
        let table = list(&fx.ctx, &opts, &mut no_warnings()).unwrap();
        assert_eq!(
            table,
            format!("{b}:OS:256:stopped:b\n{a}:OS:512:running:a\n")
        );
    }

    #[test]
    fn list_filters_on_runtime_state() {
        let (fx, a, _) = two_vms();
        let table = list(
            &fx.ctx,
            &list_opts("uuid", &["state=running"]),
            &mut no_warnings(),
        )
        .unwrap();
        assert_eq!(table, format!("{a}\n"));
    }

    #[test]
    fn a_corrupt_record_is_warned_about_and_the_others_still_listed() {
        let (fx, a, b) = two_vms();
        let bad = Uuid::new_v4();
        std::fs::write(fx.ctx.config.vm_dir().join(format!("{bad}.json")), "{").unwrap();
        let mut warnings = Vec::new();
        let table = list(&fx.ctx, &list_opts("uuid", &[]), &mut |w| warnings.push(w)).unwrap();
        assert_eq!(table, format!("{a}\n{b}\n"));
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].starts_with(&format!("WARNING: skipping VM {bad}")),
            "{warnings:?}"
        );
    }

    #[test]
    fn a_bad_filter_is_a_query_error() {
        let (fx, _, _) = two_vms();
        let err = list(
            &fx.ctx,
            &list_opts("uuid", &["nonsense"]),
            &mut no_warnings(),
        )
        .unwrap_err();
        assert!(matches!(err, OpsError::Query(_)), "{err:?}");
    }

    #[test]
    fn lookup_finds_running_vms_by_state() {
        let (fx, a, b) = two_vms();
        let found = lookup(
            &fx.ctx,
            &lookup_opts(&["state=running"]),
            &mut no_warnings(),
        );
        assert!(matches!(found, Ok(LookupOutput::Uuids(u)) if u == [a.to_string()]));
        let found = lookup(
            &fx.ctx,
            &lookup_opts(&["state=stopped"]),
            &mut no_warnings(),
        );
        assert!(matches!(found, Ok(LookupOutput::Uuids(u)) if u == [b.to_string()]));
    }

    #[test]
    fn lookup_json_fields_keep_only_the_named_keys() {
        let (fx, a, _) = two_vms();
        let opts = LookupOptions {
            json: true,
            fields: Some("uuid,state,pid".into()),
            ..lookup_opts(&["alias=a"])
        };
        let Ok(LookupOutput::Objects(objs)) = lookup(&fx.ctx, &opts, &mut no_warnings()) else {
            panic!("lookup -j gives objects");
        };
        assert_eq!(
            objs.into_iter().map(Value::Object).collect::<Vec<_>>(),
            [json!({"uuid": a.to_string(), "state": "running", "pid": 4242})]
        );
    }

    #[test]
    fn lookup_unique_refuses_several_matches() {
        let (fx, _, _) = two_vms();
        let opts = LookupOptions {
            unique: true,
            ..lookup_opts(&[])
        };
        let Err(err) = lookup(&fx.ctx, &opts, &mut no_warnings()) else {
            panic!("two VMs are not unique");
        };
        assert_eq!(
            err.to_string(),
            "Requested unique lookup but found 2 results."
        );
    }

    #[test]
    fn lookup_fields_need_json() {
        let (fx, _, _) = two_vms();
        let opts = LookupOptions {
            fields: Some("uuid".into()),
            ..lookup_opts(&[])
        };
        let Err(err) = lookup(&fx.ctx, &opts, &mut no_warnings()) else {
            panic!("-o without -j is refused");
        };
        assert_eq!(err.to_string(), "Cannot specify -o without -j");
    }
}
