//! The JSON form of [`VmRecord`]: written in its recorded key order, and
//! read by a hand-written visitor that turns known property names into
//! fields without allocating them and keeps every other key as stored.

use super::{Field, KeyRef, VmRecord};
use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::Value;
use std::fmt;

impl Serialize for VmRecord {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let keys = self.keys();
        let mut m = s.serialize_map(Some(keys.len()))?;
        for k in keys {
            match k {
                KeyRef::Field(f) => self.serialize_field(f, &mut m)?,
                KeyRef::Extra(n) => {
                    if let Some(v) = self.extra.get(n) {
                        m.serialize_entry(n, v)?;
                    }
                }
            }
        }
        m.end()
    }
}

/// A key as read: a known property (no allocation) or another name.
pub(super) enum KeyName {
    Known(Field),
    Other(String),
}

impl<'de> Deserialize<'de> for KeyName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = KeyName;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a property name")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<KeyName, E> {
                Ok(match Field::from_name(s) {
                    Some(f) => KeyName::Known(f),
                    None => KeyName::Other(s.to_string()),
                })
            }
            fn visit_string<E: de::Error>(self, s: String) -> Result<KeyName, E> {
                Ok(match Field::from_name(&s) {
                    Some(f) => KeyName::Known(f),
                    None => KeyName::Other(s),
                })
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

struct RecordVisitor;

impl<'de> Visitor<'de> for RecordVisitor {
    type Value = VmRecord;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a VM object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<VmRecord, A::Error> {
        let mut rec = VmRecord::default();
        rec.order.reserve(map.size_hint().unwrap_or(64));
        while let Some(key) = map.next_key::<KeyName>()? {
            let v: Value = map.next_value()?;
            rec.load(key, v);
        }
        Ok(rec)
    }
}

impl<'de> Deserialize<'de> for VmRecord {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(RecordVisitor)
    }
}
