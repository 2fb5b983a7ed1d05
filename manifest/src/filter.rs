//! The one image filter engine: `field=value` terms matched against the text
//! of a field, used by `imgadm list`/`avail` (over table rows), by imgapid's
//! ListImages (over its catalog) and by its DSAPI list.
//!
//! A term compares text only: each side decides which fields it exposes and
//! how their values read ([`Fields`]), and which value prefixes a field
//! accepts ([`Syntax`]): `~sub` for a substring, `!value` for "anything but".
//! A value without an accepted prefix is taken literally, so `os=~li` on a
//! field that does not accept `~` looks for an os named `~li`. A field the
//! subject does not have never matches, whatever the operator. Several terms
//! must all match; an empty [`Query`] matches everything.

use crate::manifest::Manifest;
use serde_json::{Map, Value};
use std::borrow::Cow;

/// How a [`Term`] compares a field's text with its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// The field's text is exactly the value.
    Equals,
    /// The field's text contains the value (written `~value`).
    Contains,
    /// The field's text is anything but the value (written `!value`).
    NotEquals,
}

/// The value prefixes a field accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Syntax {
    /// `~value` means [`Op::Contains`].
    pub contains: bool,
    /// `!value` means [`Op::NotEquals`].
    pub not_equals: bool,
}

impl Syntax {
    /// Every value is literal.
    pub const EXACT: Syntax = Syntax {
        contains: false,
        not_equals: false,
    };
    /// `~sub` is a substring match.
    pub const SUBSTRING: Syntax = Syntax {
        contains: true,
        not_equals: false,
    };
    /// `!value` negates.
    pub const NEGATABLE: Syntax = Syntax {
        contains: false,
        not_equals: true,
    };
}

/// One condition on one field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Term {
    /// The field's name as the subject knows it (`name`, `tag.role`,
    /// `requirements.brand`).
    pub field: String,
    /// How the field's text is compared with `value`.
    pub op: Op,
    /// The text compared with, prefix removed.
    pub value: String,
}

/// A filter argument that is not `field=value`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid filter: \"{arg}\" (must be of the form \"field=value\")")]
pub struct SyntaxError {
    /// The argument as given.
    pub arg: String,
}

impl Term {
    /// A term from a field name and a raw value whose prefix `syntax` reads.
    pub fn new(field: impl Into<String>, raw: &str, syntax: Syntax) -> Term {
        let (op, value) = match (raw.strip_prefix('~'), raw.strip_prefix('!')) {
            (Some(sub), _) if syntax.contains => (Op::Contains, sub),
            (_, Some(not)) if syntax.not_equals => (Op::NotEquals, not),
            _ => (Op::Equals, raw),
        };
        Term {
            field: field.into(),
            op,
            value: value.to_string(),
        }
    }

    /// A literal equality term.
    pub fn equals(field: impl Into<String>, value: impl Into<String>) -> Term {
        Term {
            field: field.into(),
            op: Op::Equals,
            value: value.into(),
        }
    }

    /// Parses a command-line `field=value` argument (the field must not be
    /// empty; the value may be).
    pub fn parse_arg(arg: &str, syntax: Syntax) -> Result<Term, SyntaxError> {
        match arg.split_once('=') {
            Some((field, raw)) if !field.is_empty() => Ok(Term::new(field, raw, syntax)),
            _ => Err(SyntaxError {
                arg: arg.to_string(),
            }),
        }
    }

    /// Does `subject`'s field satisfy this term?
    pub fn matches<S: Fields + ?Sized>(&self, subject: &S) -> bool {
        let Some(text) = subject.field(&self.field) else {
            return false;
        };
        match self.op {
            Op::Equals => text == self.value,
            Op::Contains => text.contains(self.value.as_str()),
            Op::NotEquals => text != self.value,
        }
    }
}

/// Terms that must all match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    terms: Vec<Term>,
}

impl Query {
    /// The query that matches everything.
    pub fn new() -> Query {
        Query::default()
    }

    /// Adds a term next to any others on the same field.
    pub fn push(&mut self, term: Term) {
        self.terms.push(term);
    }

    /// Adds a term in place of any earlier ones on the same field (a
    /// repeated query parameter: the last one wins).
    pub fn set(&mut self, term: Term) {
        self.remove(&term.field);
        self.terms.push(term);
    }

    /// Drops every term on `field`.
    pub fn remove(&mut self, field: &str) {
        self.terms.retain(|t| t.field != field);
    }

    /// The terms, in the order they were added.
    pub fn terms(&self) -> &[Term] {
        &self.terms
    }

    /// Does `subject` satisfy every term?
    pub fn matches<S: Fields + ?Sized>(&self, subject: &S) -> bool {
        self.terms.iter().all(|t| t.matches(subject))
    }
}

impl FromIterator<Term> for Query {
    fn from_iter<I: IntoIterator<Item = Term>>(iter: I) -> Query {
        Query {
            terms: iter.into_iter().collect(),
        }
    }
}

/// Something filters can look at: the text of a named field, or `None`
/// when it has no such field.
pub trait Fields {
    /// The text of field `name`, as filters compare it.
    fn field(&self, name: &str) -> Option<Cow<'_, str>>;
}

/// Looks up a dotted path (`requirements.brand`, `tags.role`, `files.0.size`).
pub fn lookup<'a>(row: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    let mut parts = path.split('.');
    let mut cur = row.get(parts.next()?)?;
    for p in parts {
        cur = match cur {
            Value::Object(m) => m.get(p)?,
            Value::Array(a) => a.get(p.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(cur)
}

/// How a JSON value reads as text: strings as themselves, `null` as `-`
/// (what a table cell shows), everything else as its JSON.
pub fn value_text(v: &Value) -> Cow<'_, str> {
    match v {
        Value::Null => Cow::Borrowed("-"),
        Value::String(s) => Cow::Borrowed(s),
        other => Cow::Owned(other.to_string()),
    }
}

/// A JSON object (a manifest as JSON, an `imgadm list` row): fields are
/// dotted paths into it.
impl Fields for Map<String, Value> {
    fn field(&self, name: &str) -> Option<Cow<'_, str>> {
        lookup(self, name).map(value_text)
    }
}

/// A typed manifest, by its IMGAPI field names; `tag.KEY` reads a tag whose
/// value is a string, number or boolean.
impl Fields for Manifest {
    fn field(&self, name: &str) -> Option<Cow<'_, str>> {
        let flag = |b: bool| Cow::Borrowed(if b { "true" } else { "false" });
        Some(match name {
            "uuid" => Cow::Owned(self.uuid.to_string()),
            "owner" => Cow::Owned(self.owner.to_string()),
            "name" => Cow::Borrowed(self.name.as_str()),
            "version" => Cow::Borrowed(self.version.as_str()),
            "os" => Cow::Borrowed(self.os.as_str()),
            "type" => Cow::Borrowed(self.image_type.as_str()),
            "state" => Cow::Borrowed(self.state?.as_str()),
            "public" => flag(self.public),
            "disabled" => flag(self.disabled),
            "origin" => Cow::Owned(self.origin?.to_string()),
            _ => {
                let key = name.strip_prefix("tag.")?;
                match self.tags.as_ref()?.get(key)? {
                    Value::String(s) => Cow::Borrowed(s.as_str()),
                    Value::Bool(b) => flag(*b),
                    Value::Number(n) => Cow::Owned(n.to_string()),
                    _ => return None,
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::tests::{parse, sample};
    use serde_json::json;

    fn row(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn prefixes_follow_the_syntax() {
        let t = Term::new("name", "~ba", Syntax::SUBSTRING);
        assert_eq!((t.op, t.value.as_str()), (Op::Contains, "ba"));
        let t = Term::new("name", "~ba", Syntax::EXACT);
        assert_eq!((t.op, t.value.as_str()), (Op::Equals, "~ba"));
        let t = Term::new("type", "!zvol", Syntax::NEGATABLE);
        assert_eq!((t.op, t.value.as_str()), (Op::NotEquals, "zvol"));
        let t = Term::new("type", "!zvol", Syntax::SUBSTRING);
        assert_eq!((t.op, t.value.as_str()), (Op::Equals, "!zvol"));
        assert_eq!(
            Term::parse_arg("a=b=c", Syntax::SUBSTRING),
            Ok(Term::equals("a", "b=c"))
        );
        assert_eq!(
            Term::parse_arg("a=", Syntax::SUBSTRING),
            Ok(Term::equals("a", ""))
        );
        for bad in ["name", "=x", ""] {
            let e = Term::parse_arg(bad, Syntax::SUBSTRING).unwrap_err();
            assert_eq!(
                e.to_string(),
                format!("invalid filter: \"{bad}\" (must be of the form \"field=value\")")
            );
        }
    }

    #[test]
    fn json_rows_compare_as_text() {
        let r = row(json!({
            "name": "base-64", "public": true, "v": 2, "none": null,
            "requirements": {"brand": "lx"}, "files": [{"size": 42}]
        }));
        let m = |arg: &str| Term::parse_arg(arg, Syntax::SUBSTRING).unwrap().matches(&r);
        assert!(m("name=base-64"));
        assert!(!m("name=base"));
        assert!(m("name=~se-6"));
        assert!(m("public=true"));
        assert!(!m("public=false"));
        assert!(m("v=2"));
        assert!(m("none=-"));
        assert!(m("requirements.brand=lx"));
        assert!(m("files.0.size=42"));
        assert!(!m("files.1.size=42"));
        assert!(!m("missing=x"));
        assert!(!m("missing=~"));
    }

    #[test]
    fn manifests_expose_imgapi_fields_and_scalar_tags() {
        let mut v = sample();
        v["tags"] = json!({"role": "os", "smartdc_service": true, "n": 3, "list": [1]});
        let m = parse(&v);
        let t = |f: &str, val: &str| Term::equals(f, val).matches(&m);
        assert!(t("name", "freebsd-base"));
        assert!(t("os", "bsd"));
        assert!(t("type", "zone-dataset"));
        assert!(t("owner", "00000000-0000-0000-0000-000000000000"));
        assert!(t("public", "true"));
        assert!(t("state", "active"));
        assert!(t("tag.role", "os"));
        assert!(t("tag.smartdc_service", "true"));
        assert!(t("tag.n", "3"));
        assert!(!t("tag.list", "[1]"), "only scalar tags are filterable");
        assert!(!t("tag.missing", "x"));
        assert!(!t("origin", "x"));
        assert!(Term::new("type", "!zvol", Syntax::NEGATABLE).matches(&m));
        assert!(!Term::new("type", "!zone-dataset", Syntax::NEGATABLE).matches(&m));
    }

    #[test]
    fn queries_need_every_term_and_set_replaces() {
        let m = parse(&sample());
        let mut q = Query::new();
        assert!(q.matches(&m), "empty query matches everything");
        q.set(Term::equals("os", "linux"));
        assert!(!q.matches(&m));
        q.set(Term::equals("os", "bsd"));
        assert_eq!(q.terms().len(), 1);
        assert!(q.matches(&m));
        q.push(Term::equals("tag.role", "os"));
        q.push(Term::equals("tag.role", "db"));
        assert!(!q.matches(&m), "two values for one tag never both match");
        q.remove("tag.role");
        assert!(q.matches(&m));
    }
}
