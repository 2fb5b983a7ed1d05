//! `VmRecord`: the stored VM, typed.
//!
//! A VM is one JSON object with SmartOS's property names and units. Here
//! every property vmadm writes is a typed field (`None` = absent, which
//! `get` shows by leaving the key out); anything else a record holds, or a
//! known property holding a value of another type, stays as stored in
//! `extra` and is written back unchanged. What an absent property means
//! comes from the property table ([`super::props`]) through the
//! `*_or_default` readers, never from literals at the call sites.
//!
//! Key order is part of what `vmadm get` prints (keys outside its fixed
//! order follow in stored order), so the record keeps it: a key set for the
//! first time goes to the end, and [`VmRecord::remove`] gives the removed
//! key's place to the last key, exactly as the JSON map that held VMs
//! before did. Reading goes through a hand-written serde visitor (no
//! `flatten`, which buffers every entry): known keys become fields without
//! allocating their names, and the order is recorded on the way.
//!
//! Fields may be assigned directly; a property set that way for the first
//! time lands at the end of the order, behind those placed before it. Code
//! that adds several properties and cares about their order uses
//! [`VmRecord::set`] or [`VmRecord::place`] for each.

use super::props::{self, DefaultRule, Fixed};
use super::stored::Stored;
pub use super::stored::{JsonObject, Snapshot};
use serde::ser::SerializeMap;
use serde_json::{Map, Value};

mod wire;
use wire::KeyName;

/// The name a field has in the JSON: its own, or the one given.
macro_rules! json_name {
    ($field:ident) => {
        stringify!($field)
    };
    ($field:ident, $name:literal) => {
        $name
    };
}

/// Declares the record: its fields, the [`Field`] enum naming them, and the
/// per-field plumbing the by-name operations and serde need.
macro_rules! vm_record {
    ($( $(#[doc = $doc:literal])* $variant:ident $field:ident $(= $name:literal)? : $ty:ty, )*) => {
        /// The stored VM. See the module documentation.
        #[derive(Debug, Clone, Default)]
        pub struct VmRecord {
            $( $(#[doc = $doc])* pub $field: Option<$ty>, )*
            /// Properties vmadm does not know (and known ones holding a
            /// value of another type), as stored.
            pub extra: Map<String, Value>,
            /// Every present key, in stored order (see the module docs).
            order: Vec<Key>,
        }

        /// A known property of the record; each variant is documented as
        /// the field it names.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Field { $( $(#[doc = $doc])* $variant,)* }

        impl Field {
            /// Every known property, in declaration order.
            pub const ALL: &'static [Field] = &[$(Field::$variant,)*];

            /// The property's JSON name.
            pub const fn name(self) -> &'static str {
                match self { $(Field::$variant => json_name!($field $(, $name)?),)* }
            }

            /// The known property with this JSON name; `None` for a name
            /// the record keeps in `extra`.
            pub fn from_name(name: &str) -> Option<Field> {
                match name {
                    $(json_name!($field $(, $name)?) => Some(Field::$variant),)*
                    _ => None,
                }
            }
        }

        impl VmRecord {
            fn is_set(&self, f: Field) -> bool {
                match f { $(Field::$variant => self.$field.is_some(),)* }
            }

            fn clear(&mut self, f: Field) {
                match f { $(Field::$variant => self.$field = None,)* }
            }

            fn field_value(&self, f: Field) -> Option<Value> {
                match f { $(Field::$variant => self.$field.as_ref().map(Stored::to_value),)* }
            }

            fn take_field(&mut self, f: Field) -> Option<Value> {
                match f { $(Field::$variant => self.$field.take().map(Stored::into_value),)* }
            }

            /// Stores `v` in `f` when it has the field's type, else gives
            /// it back.
            fn put_field(&mut self, f: Field, v: Value) -> Result<(), Value> {
                match f {
                    $(Field::$variant => {
                        self.$field = Some(<$ty as Stored>::from_value(v)?);
                        Ok(())
                    })*
                }
            }

            fn serialize_field<M: SerializeMap>(&self, f: Field, m: &mut M) -> Result<(), M::Error> {
                match f {
                    $(Field::$variant => match &self.$field {
                        Some(v) => m.serialize_entry(f.name(), v),
                        None => Ok(()),
                    },)*
                }
            }

            /// An integer field's value, by field.
            pub fn get_u64(&self, f: Field) -> Option<u64> {
                match f { $(Field::$variant => self.$field.as_ref().and_then(Stored::as_u64),)* }
            }

            /// A boolean field's value, by field.
            pub fn get_bool(&self, f: Field) -> Option<bool> {
                match f { $(Field::$variant => self.$field.as_ref().and_then(Stored::as_bool),)* }
            }

            /// A text field's value, by field.
            pub fn get_str(&self, f: Field) -> Option<&str> {
                match f { $(Field::$variant => self.$field.as_ref().and_then(Stored::as_str),)* }
            }

            /// An object field's value (metadata, tags, routes), by field.
            pub fn get_object(&self, f: Field) -> Option<&JsonObject> {
                match f { $(Field::$variant => self.$field.as_ref().and_then(Stored::as_object),)* }
            }
        }
    };
}

vm_record! {
    /// The zone name: the VM's uuid unless the create payload chose one.
    Zonename zonename: String,
    /// Boot the VM when the host boots; `start` sets it, `stop` clears it.
    Autoboot autoboot: bool,
    /// The brand exactly as the payload spelled it (`jail`, `joyent`, `lx` …).
    Brand brand: String,
    /// Privilege set, one comma-separated string as SmartOS stores it
    /// (recorded only: jails restrict themselves by other means).
    LimitPriv limit_priv: String,
    /// VM object version (1).
    V v: u64,
    /// When the VM was created: ISO-8601 UTC with milliseconds.
    CreateTimestamp create_timestamp: String,
    /// The image whose `@final` snapshot the VM's dataset was cloned from.
    ImageUuid image_uuid: String,
    /// Relative CPU weight against other VMs on the host.
    CpuShares cpu_shares: u64,
    /// Most processes and threads the VM may run at once.
    MaxLwps max_lwps: u64,
    /// Most System V message queue identifiers.
    MaxMsgIds max_msg_ids: u64,
    /// Most System V semaphore identifiers.
    MaxSemIds max_sem_ids: u64,
    /// Most System V shared memory identifiers.
    MaxShmIds max_shm_ids: u64,
    /// System V shared memory cap in MiB.
    MaxShmMemory max_shm_memory: u64,
    /// Relative I/O weight against other VMs on the host.
    ZfsIoPriority zfs_io_priority: u64,
    /// Memory cap in MiB (what `ram` sets).
    MaxPhysicalMemory max_physical_memory: u64,
    /// Locked memory cap in MiB, never above `max_physical_memory`.
    MaxLockedMemory max_locked_memory: u64,
    /// Memory plus swap cap in MiB, at least 256 and at least
    /// `max_physical_memory`.
    MaxSwap max_swap: u64,
    /// CPU cap in percent of one CPU (200 = two CPUs); absent or 0 = none.
    CpuCap cpu_cap: u64,
    /// Billing (package) uuid; bookkeeping only.
    BillingId billing_id: String,
    /// Owner uuid; bookkeeping only.
    OwnerUuid owner_uuid: String,
    /// Size of the tmpfs mounted on `/tmp` in MiB; 0 = no tmpfs.
    Tmpfs tmpfs: u64,
    /// Host name inside the VM; absent = the uuid.
    Hostname hostname: String,
    /// DNS search domain written into the VM.
    DnsDomain dns_domain: String,
    /// DNS server addresses for the VM's resolv.conf, as given.
    Resolvers resolvers: Vec<String>,
    /// Free-form name shown by `list`; not unique.
    Alias alias: String,
    /// The network interfaces, each as SmartOS's NIC object.
    Nics nics: Vec<JsonObject>,
    /// The VM's uuid.
    Uuid uuid: String,
    /// Where the VM's dataset is mounted on the host, as `zfs` reported it
    /// when the dataset was made.
    Zonepath zonepath: String,
    /// When the record was last written: ISO-8601 UTC with milliseconds,
    /// stamped by [`crate::store::Store::save`].
    LastModified last_modified: String,
    /// Recorded for SmartOS tools; rvmadm manages no firewall.
    FirewallEnabled firewall_enabled: bool,
    /// Key/value metadata the guest may read.
    CustomerMetadata customer_metadata: JsonObject,
    /// Key/value metadata set by the operator.
    InternalMetadata internal_metadata: JsonObject,
    /// Static routes: destination (IP or CIDR) → gateway.
    Routes routes: JsonObject,
    /// Key/value tags for the operator's own use.
    Tags tags: JsonObject,
    /// Quota on the VM's dataset in GiB; 0 or absent = none.
    Quota quota: u64,
    /// Record size of the VM's dataset in bytes (a power of 2).
    ZfsRootRecsize zfs_root_recsize: u64,
    /// The VM's dataset, `<zpool>/<uuid>`.
    ZfsFilesystem zfs_filesystem: String,
    /// The pool holding the VM's dataset.
    Zpool zpool: String,
    /// The VM's `vmsnap-*` snapshots, newest first.
    Snapshots snapshots: Vec<Snapshot>,
    /// Start the VM again when its init exits (SmartOS semantics; stored
    /// and handed to drivers, which do not act on it yet).
    RestartInit restart_init: bool,
    /// `<zfs_filesystem>/data` when `delegate_dataset` made it.
    Datasets datasets: Vec<String>,
    /// Keep debug data on delete; recorded only.
    ArchiveOnDelete archive_on_delete: bool,
    /// Whether create made `<zfs_filesystem>/data` for the VM to manage.
    DelegateDataset delegate_dataset: bool,
    /// Hide the VM from inventory tools; bookkeeping only.
    DoNotInventory do_not_inventory: bool,
    /// Host paths mounted into the VM, each as SmartOS's filesystem object.
    Filesystems filesystems: Vec<JsonObject>,
    /// File system types the VM may mount. Stored as one comma-separated
    /// string, as SmartOS does.
    FsAllowed fs_allowed: String,
    /// Refuse to delete the delegated dataset (recorded only: `delete`
    /// does not check it).
    IndestructibleDelegated indestructible_delegated: bool,
    /// Refuse to delete or reprovision the VM's dataset.
    IndestructibleZoneroot indestructible_zoneroot: bool,
    /// Path of the init program inside the VM; absent = the OS's default.
    InitName init_name: String,
    /// Namespaces of internal metadata the guest may read; recorded only.
    InternalMetadataNamespaces internal_metadata_namespaces: Vec<String>,
    /// Linux kernel version lx VMs should report; recorded only.
    KernelVersion kernel_version: String,
    /// Rewrite the VM's resolv.conf when `resolvers` change; recorded only.
    MaintainResolvers maintain_resolvers: bool,
    /// Seconds the metadata user-script may run; recorded only.
    MdataExecTimeout mdata_exec_timeout: u64,
    /// Create without waiting for provisioning; recorded only.
    Nowait nowait: bool,
    /// Package name (deprecated bookkeeping).
    PackageName package_name: String,
    /// Package version (deprecated bookkeeping).
    PackageVersion package_version: String,
    /// Only ever passes through: create and update turn it into
    /// `max_physical_memory`.
    Ram ram: u64,
    /// Compression of the delegated dataset (`lz4`, `off` …).
    ZfsDataCompression zfs_data_compression: String,
    /// Record size of the delegated dataset in bytes (a power of 2).
    ZfsDataRecsize zfs_data_recsize: u64,
    /// Most file systems the VM's dataset may hold below it.
    ZfsFilesystemLimit zfs_filesystem_limit: u64,
    /// Compression of the VM's dataset (`lz4`, `off` …).
    ZfsRootCompression zfs_root_compression: String,
    /// Most snapshots the VM's dataset may have.
    ZfsSnapshotLimit zfs_snapshot_limit: u64,
    /// Set while a create or receive is under way (never shown by `get`).
    Incomplete incomplete = "_incomplete": bool,
}

const _: () = assert!(Field::ALL.len() <= 128, "FieldSet is a u128");

/// A key of the record: a known property or one kept in `extra`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key {
    /// A property stored in its typed field.
    Field(Field),
    /// A key stored in [`VmRecord::extra`], by its JSON name.
    Extra(String),
}

impl Key {
    /// The key's JSON name.
    pub fn name(&self) -> &str {
        match self {
            Key::Field(f) => f.name(),
            Key::Extra(n) => n,
        }
    }
}

/// A borrowed [`Key`].
#[derive(Debug, Clone, Copy)]
enum KeyRef<'a> {
    Field(Field),
    Extra(&'a str),
}

impl KeyRef<'_> {
    fn to_owned(self) -> Key {
        match self {
            KeyRef::Field(f) => Key::Field(f),
            KeyRef::Extra(n) => Key::Extra(n.to_string()),
        }
    }
}

/// A set of fields, one bit each.
#[derive(Default)]
struct FieldSet(u128);

impl FieldSet {
    fn insert(&mut self, f: Field) -> bool {
        let bit = 1u128 << (f as u32);
        let new = self.0 & bit == 0;
        self.0 |= bit;
        new
    }
}

impl VmRecord {
    /// Reads a JSON object (a payload or a record) in its key order.
    pub fn from_map(map: Map<String, Value>) -> VmRecord {
        let mut rec = VmRecord::default();
        rec.order.reserve(map.len());
        for (k, v) in map {
            let key = match Field::from_name(&k) {
                Some(f) => KeyName::Known(f),
                None => KeyName::Other(k),
            };
            rec.load(key, v);
        }
        rec
    }

    /// One entry as read from JSON: appended, or replacing a repeated key
    /// in its first place (what a JSON map does).
    fn load(&mut self, key: KeyName, v: Value) {
        match key {
            KeyName::Known(f) if !self.is_set(f) && !self.extra.contains_key(f.name()) => {
                match self.put_field(f, v) {
                    Ok(()) => self.order.push(Key::Field(f)),
                    Err(v) => {
                        self.extra.insert(f.name().to_string(), v);
                        self.order.push(Key::Extra(f.name().to_string()));
                    }
                }
            }
            KeyName::Known(f) => self.set(f.name(), v),
            KeyName::Other(name) => {
                if !self.extra.contains_key(&name) {
                    self.order.push(Key::Extra(name.clone()));
                }
                self.extra.insert(name, v);
            }
        }
    }

    /// The present keys in stored order: the recorded order (a known name
    /// kept in `extra` whose field has been set since counts as the field),
    /// then fields assigned directly since (declaration order), then extra
    /// keys inserted directly.
    fn keys(&self) -> Vec<KeyRef<'_>> {
        let mut out = Vec::with_capacity(self.order.len() + 2);
        let mut done = FieldSet::default();
        let mut known = |out: &mut Vec<KeyRef<'_>>, f: Field| {
            if self.is_set(f) {
                if done.insert(f) {
                    out.push(KeyRef::Field(f));
                }
            } else if self.extra.contains_key(f.name()) && done.insert(f) {
                out.push(KeyRef::Extra(f.name()));
            }
        };
        for k in &self.order {
            match k {
                Key::Field(f) => known(&mut out, *f),
                Key::Extra(n) => match Field::from_name(n) {
                    Some(f) => known(&mut out, f),
                    None if self.extra.contains_key(n) => out.push(KeyRef::Extra(n)),
                    None => {}
                },
            }
        }
        for f in Field::ALL {
            if self.is_set(*f) {
                known(&mut out, *f);
            }
        }
        for n in self.extra.keys() {
            match Field::from_name(n) {
                Some(f) => known(&mut out, f),
                None => {
                    if !self
                        .order
                        .iter()
                        .any(|k| matches!(k, Key::Extra(o) if o == n))
                    {
                        out.push(KeyRef::Extra(n));
                    }
                }
            }
        }
        out
    }

    /// Makes `order` the canonical list of present keys and drops copies in
    /// `extra` that a typed field has replaced.
    fn sync_order(&mut self) {
        if self.order_is_canonical() {
            return;
        }
        let keys: Vec<Key> = self.keys().into_iter().map(KeyRef::to_owned).collect();
        if !self.extra.is_empty() {
            let stale: Vec<String> = self
                .extra
                .keys()
                .filter(|k| Field::from_name(k).is_some_and(|f| self.is_set(f)))
                .cloned()
                .collect();
            for k in stale {
                self.extra.shift_remove(&k);
            }
        }
        self.order = keys;
    }

    /// True when `order` lists exactly the present values, once each (the
    /// usual case: nothing was assigned or cleared directly since).
    fn order_is_canonical(&self) -> bool {
        let present = Field::ALL.iter().filter(|f| self.is_set(**f)).count() + self.extra.len();
        present == self.order.len()
            && self.order.iter().all(|k| match k {
                Key::Field(f) => self.is_set(*f),
                Key::Extra(n) => self.extra.contains_key(n),
            })
    }

    fn position(&self, name: &str) -> Option<usize> {
        match Field::from_name(name) {
            // Known keys compare as fields (a mistyped one sits in extra).
            Some(f) => self.order.iter().position(|k| match k {
                Key::Field(g) => *g == f,
                Key::Extra(n) => n == name,
            }),
            None => self
                .order
                .iter()
                .position(|k| matches!(k, Key::Extra(n) if n == name)),
        }
    }

    /// The names of the present keys, in stored order.
    pub fn key_names(&self) -> Vec<&str> {
        self.keys()
            .into_iter()
            .map(|k| match k {
                KeyRef::Field(f) => f.name(),
                KeyRef::Extra(n) => n,
            })
            .collect()
    }

    /// True when the record has `name`, whatever its value.
    pub fn has(&self, name: &str) -> bool {
        Field::from_name(name).is_some_and(|f| self.is_set(f)) || self.extra.contains_key(name)
    }

    /// The value of `name` as JSON, if present.
    pub fn get(&self, name: &str) -> Option<Value> {
        Field::from_name(name)
            .and_then(|f| self.field_value(f))
            .or_else(|| self.extra.get(name).cloned())
    }

    /// Sets `name` as inserting into a JSON map does: a present key keeps
    /// its place, a new one goes to the end. A value of another type than
    /// a known property's is kept in `extra`.
    pub fn set(&mut self, name: &str, v: Value) {
        self.sync_order();
        let key = match Field::from_name(name) {
            Some(f) => match self.put_field(f, v) {
                Ok(()) => {
                    self.extra.shift_remove(name);
                    Key::Field(f)
                }
                Err(v) => {
                    self.clear(f);
                    self.extra.insert(name.to_string(), v);
                    Key::Extra(name.to_string())
                }
            },
            None => {
                self.extra.insert(name.to_string(), v);
                Key::Extra(name.to_string())
            }
        };
        match self.position(name) {
            Some(i) => self.order[i] = key,
            None => self.order.push(key),
        }
    }

    /// [`VmRecord::set`] for an integer field.
    pub fn set_u64(&mut self, f: Field, v: u64) {
        self.set(f.name(), Value::from(v));
    }

    /// Removes `name` as the JSON map did: the last key takes its place.
    pub fn remove(&mut self, name: &str) -> Option<Value> {
        self.sync_order();
        let pos = self.position(name)?;
        self.order.swap_remove(pos);
        match Field::from_name(name) {
            Some(f) if self.is_set(f) => self.take_field(f),
            _ => self.extra.shift_remove(name),
        }
    }

    /// Records that field `f`, just assigned, was set now: a new key goes
    /// to the end, behind any assigned earlier without being placed.
    pub fn place(&mut self, f: Field) {
        if !self.is_set(f) || self.position(f.name()).is_some() {
            return;
        }
        // Place the others first, so `f` ends up last.
        let v = self.take_field(f);
        self.sync_order();
        if let Some(v) = v {
            // It came out of this field, so it fits back in.
            let _ = self.put_field(f, v);
        }
        self.order.push(Key::Field(f));
    }

    /// Every present key with its JSON value, in stored order.
    pub fn into_entries(mut self) -> Vec<(Key, Value)> {
        let keys: Vec<Key> = self.keys().into_iter().map(KeyRef::to_owned).collect();
        let mut out = Vec::with_capacity(keys.len());
        for k in keys {
            let v = match &k {
                Key::Field(f) => self.take_field(*f),
                Key::Extra(n) => self.extra.swap_remove(n),
            };
            if let Some(v) = v {
                out.push((k, v));
            }
        }
        out
    }

    /// The record as a JSON object, in stored order.
    pub fn into_map(self) -> Map<String, Value> {
        let entries = self.into_entries();
        let mut m = Map::with_capacity(entries.len());
        for (k, v) in entries {
            let name = match k {
                Key::Field(f) => f.name().to_string(),
                Key::Extra(n) => n,
            };
            m.insert(name, v);
        }
        m
    }

    /// Only the keys in `names` (those present), as a JSON object in the
    /// order asked: for `list`, which reads a few fields of many VMs.
    pub fn into_map_of<S: AsRef<str>>(mut self, names: &[S]) -> Map<String, Value> {
        let mut m = Map::with_capacity(names.len());
        for n in names {
            let n = n.as_ref();
            if m.contains_key(n) {
                continue;
            }
            let v = match Field::from_name(n) {
                Some(f) if self.is_set(f) => self.take_field(f),
                _ => self.extra.shift_remove(n),
            };
            if let Some(v) = v {
                m.insert(n.to_string(), v);
            }
        }
        m
    }

    /// True when a create or receive marked the record and has not finished.
    pub fn is_incomplete(&self) -> bool {
        self.incomplete == Some(true)
    }

    /// True when the record carries the incomplete marker in any form.
    pub fn has_incomplete_marker(&self) -> bool {
        self.has(Field::Incomplete.name())
    }

    /// The property table's rule for `f`.
    fn rule(f: Field) -> DefaultRule {
        props::find(f.name()).map_or(DefaultRule::NoDefault, |p| p.default)
    }

    /// An integer property as the VM has it: the stored value, else what
    /// the property table says a record without it means. `None` means it
    /// has none (`cpu_cap`, and `quota`, which create fills in but a record
    /// may lose).
    pub fn int_or_default(&self, f: Field) -> Option<u64> {
        self.get_u64(f).or_else(|| match Self::rule(f) {
            DefaultRule::Stored(Fixed::Int(n)) | DefaultRule::Implied(Fixed::Int(n)) => Some(n),
            DefaultRule::PhysicalMemory => self.int_or_default(Field::MaxPhysicalMemory),
            DefaultRule::AtLeastPhysicalMemory => {
                let floor = props::find(f.name()).map_or(0, |p| p.min());
                self.int_or_default(Field::MaxPhysicalMemory)
                    .map(|m| m.max(floor))
            }
            _ => None,
        })
    }

    /// A boolean property as the VM has it (see [`VmRecord::int_or_default`]).
    pub fn bool_or_default(&self, f: Field) -> Option<bool> {
        self.get_bool(f).or_else(|| match Self::rule(f) {
            DefaultRule::Stored(x) | DefaultRule::Implied(x) => x.as_bool(),
            _ => None,
        })
    }

    /// A text property as the VM has it (see [`VmRecord::int_or_default`]).
    pub fn str_or_default(&self, f: Field) -> Option<&str> {
        self.get_str(f).or_else(|| match Self::rule(f) {
            DefaultRule::Stored(x) | DefaultRule::Implied(x) => x.as_str(),
            _ => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::props::{Kind, PROPS};
    use serde_json::json;

    fn rec(v: Value) -> VmRecord {
        VmRecord::from_map(v.as_object().unwrap().clone())
    }

    fn text(r: &VmRecord) -> String {
        serde_json::to_string(r).unwrap()
    }

    #[test]
    fn known_keys_are_typed_and_the_rest_is_kept_in_order() {
        let src = r#"{"uuid":"u","zz":{"a":[1,2.5]},"quota":10,"cpu_cap":1.5,"tags":{"b":1,"a":2},"snapshots":[{"name":"s","created_at":"t"}],"_incomplete":true}"#;
        let r: VmRecord = serde_json::from_str(src).unwrap();
        assert_eq!(r.uuid.as_deref(), Some("u"));
        assert_eq!(r.quota, Some(10));
        assert_eq!(r.cpu_cap, None, "a float is not a u64");
        assert_eq!(r.extra.get("cpu_cap"), Some(&json!(1.5)));
        assert_eq!(r.snapshots.as_ref().unwrap()[0].name, "s");
        assert!(r.is_incomplete());
        assert_eq!(serde_json::to_string(&r).unwrap(), src);
        assert_eq!(
            r.key_names(),
            [
                "uuid",
                "zz",
                "quota",
                "cpu_cap",
                "tags",
                "snapshots",
                "_incomplete"
            ]
        );
        assert_eq!(
            serde_json::to_value(r.clone().into_map()).unwrap(),
            serde_json::from_str::<Value>(src).unwrap()
        );
    }

    #[test]
    fn odd_shapes_round_trip_verbatim() {
        for src in [
            r#"{"snapshots":[{"created_at":"t","name":"s"}]}"#,
            r#"{"resolvers":["192.0.2.1",5]}"#,
            r#"{"nics":[{"mac":"x"},"junk"]}"#,
            r#"{"quota":-1,"autoboot":"yes","alias":null}"#,
        ] {
            let r: VmRecord = serde_json::from_str(src).unwrap();
            assert_eq!(text(&r), src);
        }
    }

    #[test]
    fn set_and_remove_behave_like_the_json_map() {
        let mut r = rec(json!({"a": 1, "alias": "x", "quota": 5, "b": 2}));
        r.set("cpu_cap", json!(50));
        r.set("alias", json!("y"));
        assert_eq!(r.key_names(), ["a", "alias", "quota", "b", "cpu_cap"]);
        // Removal moves the last key into the gap.
        assert_eq!(r.remove("alias"), Some(json!("y")));
        assert_eq!(r.key_names(), ["a", "cpu_cap", "quota", "b"]);
        // A wrong type for a known key lands in extra, in place.
        r.set("quota", json!("ten"));
        assert_eq!(r.quota, None);
        assert_eq!(r.key_names(), ["a", "cpu_cap", "quota", "b"]);
        r.set("quota", json!(7));
        assert_eq!((r.quota, r.extra.contains_key("quota")), (Some(7), false));
        // Direct assignment: appended at the next use, in field order.
        r.datasets = Some(vec!["d".into()]);
        r.autoboot = Some(true);
        assert_eq!(
            r.key_names(),
            ["a", "cpu_cap", "quota", "b", "autoboot", "datasets"]
        );
        r.incomplete = Some(true);
        r.place(Field::Incomplete);
        r.snapshots = Some(Vec::new());
        r.place(Field::Snapshots);
        assert_eq!(
            r.key_names()[4..],
            ["autoboot", "datasets", "_incomplete", "snapshots"]
        );
        r.incomplete = None;
        assert!(!r.key_names().contains(&"_incomplete"));
        // A typed assignment replaces a mistyped copy where it stood.
        let mut r = rec(json!({"tags": "x", "alias": "a"}));
        r.tags = Some(Map::new());
        assert_eq!(text(&r), r#"{"tags":{},"alias":"a"}"#);
        r.set("alias", json!("b"));
        assert!(r.extra.is_empty());
    }

    #[test]
    fn repeated_keys_keep_the_first_place_and_the_last_value() {
        let r: VmRecord = serde_json::from_str(r#"{"alias":"a","x":1,"alias":"b","x":2}"#).unwrap();
        assert_eq!(text(&r), r#"{"alias":"b","x":2}"#);
    }

    #[test]
    fn every_payload_property_is_a_field_of_its_kind() {
        for p in PROPS.iter().filter(|p| p.create) {
            if ["dataset_uuid", "zfs_storage_pool_name"].contains(&p.name) {
                continue; // renamed by validation before anything is stored
            }
            let f = Field::from_name(p.name).unwrap_or_else(|| panic!("{} is not a field", p.name));
            let sample = match p.kind {
                Kind::Bool => json!(true),
                Kind::Int { max, .. } => json!(max),
                Kind::List | Kind::IpList if p.name != "limit_priv" && p.name != "fs_allowed" => {
                    json!(["192.0.2.1"])
                }
                Kind::FlatObject | Kind::Routes => json!({"k": "v"}),
                Kind::Nics | Kind::Filesystems => json!([{"k": "v"}]),
                _ => json!("text"),
            };
            let mut r = VmRecord::default();
            r.set(p.name, sample);
            assert!(r.extra.is_empty(), "{} did not fit its field", p.name);
            assert!(r.has(f.name()));
        }
    }

    #[test]
    fn defaults_come_from_the_table() {
        let r = rec(json!({"max_physical_memory": 1024, "max_swap": 512}));
        assert_eq!(r.int_or_default(Field::MaxLwps), Some(2000));
        assert_eq!(r.int_or_default(Field::MaxLockedMemory), Some(1024));
        assert_eq!(r.int_or_default(Field::MaxSwap), Some(512));
        assert_eq!(r.int_or_default(Field::Quota), None);
        assert_eq!(r.int_or_default(Field::CpuCap), None);
        let r = rec(json!({"max_physical_memory": 64}));
        assert_eq!(r.int_or_default(Field::MaxSwap), Some(256));
        assert_eq!(r.str_or_default(Field::DnsDomain), Some("local"));
        assert_eq!(r.bool_or_default(Field::RestartInit), Some(true));
        assert_eq!(r.str_or_default(Field::ZfsRootCompression), Some("off"));
        assert_eq!(VmRecord::default().int_or_default(Field::Tmpfs), Some(256));
    }
}
