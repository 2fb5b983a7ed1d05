//! The value types of [`super::record::VmRecord`]'s fields and their JSON
//! forms. A conversion from JSON gives the value back untouched when it
//! has another shape, so the record can keep it verbatim instead of
//! refusing the whole file.

use serde::Serialize;
use serde_json::{Map, Value};

/// One stored NIC or filesystem entry. Their own key order is shown by
/// `get` too, so they stay JSON objects; [`super::VmSpec`] types them.
pub type JsonObject = Map<String, Value>;

/// One `vmsnap-*` snapshot as listed in the record, newest first.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Snapshot {
    /// The name the user gave; the ZFS snapshot is
    /// `<zfs_filesystem>@vmsnap-<name>`.
    pub name: String,
    /// When it was taken: ISO-8601 UTC with milliseconds.
    pub created_at: String,
}

/// A type a record field can hold, with its JSON form. `from_value` gives
/// the value back untouched when it has another shape, so it can be kept
/// in `extra` instead.
pub(super) trait Stored: Sized + Serialize {
    fn from_value(v: Value) -> Result<Self, Value>;
    fn to_value(&self) -> Value;
    fn into_value(self) -> Value;
    fn as_u64(&self) -> Option<u64> {
        None
    }
    fn as_bool(&self) -> Option<bool> {
        None
    }
    fn as_str(&self) -> Option<&str> {
        None
    }
    fn as_object(&self) -> Option<&JsonObject> {
        None
    }
}

impl Stored for u64 {
    fn from_value(v: Value) -> Result<Self, Value> {
        v.as_u64().ok_or(v)
    }
    fn to_value(&self) -> Value {
        Value::from(*self)
    }
    fn into_value(self) -> Value {
        Value::from(self)
    }
    fn as_u64(&self) -> Option<u64> {
        Some(*self)
    }
}

impl Stored for bool {
    fn from_value(v: Value) -> Result<Self, Value> {
        v.as_bool().ok_or(v)
    }
    fn to_value(&self) -> Value {
        Value::Bool(*self)
    }
    fn into_value(self) -> Value {
        Value::Bool(self)
    }
    fn as_bool(&self) -> Option<bool> {
        Some(*self)
    }
}

impl Stored for String {
    fn from_value(v: Value) -> Result<Self, Value> {
        match v {
            Value::String(s) => Ok(s),
            other => Err(other),
        }
    }
    fn to_value(&self) -> Value {
        Value::String(self.clone())
    }
    fn into_value(self) -> Value {
        Value::String(self)
    }
    fn as_str(&self) -> Option<&str> {
        Some(self)
    }
}

impl Stored for JsonObject {
    fn from_value(v: Value) -> Result<Self, Value> {
        match v {
            Value::Object(m) => Ok(m),
            other => Err(other),
        }
    }
    fn to_value(&self) -> Value {
        Value::Object(self.clone())
    }
    fn into_value(self) -> Value {
        Value::Object(self)
    }
    fn as_object(&self) -> Option<&JsonObject> {
        Some(self)
    }
}

/// Arrays convert only when every element fits; otherwise the whole array
/// stays as it was.
fn array_of<T>(
    v: Value,
    fits: impl Fn(&Value) -> bool,
    take: impl Fn(Value) -> Option<T>,
) -> Result<Vec<T>, Value> {
    match v {
        Value::Array(items) if items.iter().all(fits) => {
            Ok(items.into_iter().filter_map(take).collect())
        }
        other => Err(other),
    }
}

impl Stored for Vec<String> {
    fn from_value(v: Value) -> Result<Self, Value> {
        array_of(v, Value::is_string, |i| String::from_value(i).ok())
    }
    fn to_value(&self) -> Value {
        Value::Array(self.iter().map(|s| Value::String(s.clone())).collect())
    }
    fn into_value(self) -> Value {
        Value::Array(self.into_iter().map(Value::String).collect())
    }
}

impl Stored for Vec<JsonObject> {
    fn from_value(v: Value) -> Result<Self, Value> {
        array_of(v, Value::is_object, |i| JsonObject::from_value(i).ok())
    }
    fn to_value(&self) -> Value {
        Value::Array(self.iter().map(|o| Value::Object(o.clone())).collect())
    }
    fn into_value(self) -> Value {
        Value::Array(self.into_iter().map(Value::Object).collect())
    }
}

impl Snapshot {
    /// Exactly `{"name": …, "created_at": …}` in that order, as vmadm
    /// writes it; anything else is kept verbatim.
    fn fits(v: &Value) -> bool {
        let Some(m) = v.as_object() else {
            return false;
        };
        let mut it = m.iter();
        matches!(it.next(), Some((k, Value::String(_))) if k == "name")
            && matches!(it.next(), Some((k, Value::String(_))) if k == "created_at")
            && it.next().is_none()
    }

    fn to_value(&self) -> Value {
        let mut m = Map::with_capacity(2);
        m.insert("name".into(), Value::String(self.name.clone()));
        m.insert("created_at".into(), Value::String(self.created_at.clone()));
        Value::Object(m)
    }
}

impl Stored for Vec<Snapshot> {
    fn from_value(v: Value) -> Result<Self, Value> {
        array_of(v, Snapshot::fits, |i| {
            let Value::Object(mut m) = i else { return None };
            let mut text = |k: &str| String::from_value(m.shift_remove(k)?).ok();
            Some(Snapshot {
                name: text("name")?,
                created_at: text("created_at")?,
            })
        })
    }
    fn to_value(&self) -> Value {
        Value::Array(self.iter().map(Snapshot::to_value).collect())
    }
    fn into_value(self) -> Value {
        self.to_value()
    }
}
