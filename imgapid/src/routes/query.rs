//! Query strings: decoding, and the ListImages and DSAPI filters read into
//! terms of the shared filter engine (`rvmadm_manifest::filter`), together
//! with the views of a catalog entry those terms are matched against.
//!
//! Which prefixes a parameter takes is IMGAPI's: `name` and `version` accept
//! `~substring`, `type` accepts `!negation`, everything else is literal; the
//! DSAPI takes literals only and compares `type` in its v1 spelling.

use crate::catalog::{parse_date_ns, Entry};
use crate::error::{ApiError, ApiResult};
use hyper::Request;
use rvmadm_manifest::filter::{Fields, Query, Syntax, Term};
use rvmadm_manifest::{ImageState, Manifest};
use std::borrow::Cow;
use std::collections::HashMap;
use uuid::Uuid;

/// Highest `limit` for ListImages (also the default).
pub(super) const MAX_LIMIT: usize = 1000;

/// Decodes `%XX` and `+` in a query component.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let hex = |c: u8| (c as char).to_digit(16);
                match (hex(b[i + 1]), hex(b[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push((h * 16 + l) as u8);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The query string as (key, value) pairs, decoded, in order.
pub(super) fn query_pairs<B>(req: &Request<B>) -> Vec<(String, String)> {
    req.uri()
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

/// The query as a map; a repeated key keeps its last value.
pub(super) fn query_map<B>(req: &Request<B>) -> HashMap<String, String> {
    query_pairs(req).into_iter().collect()
}

/// A catalog entry as ListImages filters it: the manifest's fields, with
/// `state` the one the server computed.
pub(super) struct Listed<'a>(pub &'a Entry);

impl Fields for Listed<'_> {
    fn field(&self, name: &str) -> Option<Cow<'_, str>> {
        match name {
            "state" => Some(Cow::Borrowed(self.0.state.as_str())),
            _ => self.0.manifest().field(name),
        }
    }
}

/// A manifest as the DSAPI filters it: `type` in its v1 spelling.
pub(super) struct Dataset<'a>(pub &'a Manifest);

impl Fields for Dataset<'_> {
    fn field(&self, name: &str) -> Option<Cow<'_, str>> {
        match name {
            "type" => Some(Cow::Borrowed(self.0.dsapi_type())),
            _ => self.0.field(name),
        }
    }
}

/// The ListImages filter. Anonymous readers (`privileged` false) only ever
/// see active, public images, though a bad `state` is still refused (and
/// `public=false` simply matches nothing for them). A repeated
/// parameter keeps its last value, except `tag.KEY`, where every one counts.
pub(super) fn list_filter(pairs: &[(String, String)], privileged: bool) -> ApiResult<Query> {
    let mut q = Query::new();
    q.set(Term::equals("state", ImageState::Active.as_str()));
    for (k, v) in pairs {
        match k.as_str() {
            "state" => {
                let state = match v.as_str() {
                    "all" => None,
                    "active" => Some(ImageState::Active),
                    "disabled" => Some(ImageState::Disabled),
                    "unactivated" => Some(ImageState::Unactivated),
                    "creating" => Some(ImageState::Creating),
                    "failed" => Some(ImageState::Failed),
                    _ => return Err(ApiError::invalid_param(format!("unknown state {v:?}"))),
                };
                if privileged {
                    match state {
                        None => q.remove("state"),
                        Some(s) => q.set(Term::equals("state", s.as_str())),
                    }
                }
            }
            "name" | "version" => q.set(Term::new(k.as_str(), v, Syntax::SUBSTRING)),
            "os" => q.set(Term::new(k.as_str(), v, Syntax::EXACT)),
            "type" => q.set(Term::new(k.as_str(), v, Syntax::NEGATABLE)),
            "owner" => {
                let owner = Uuid::try_parse(v)
                    .map_err(|_| ApiError::invalid_param("owner must be a UUID"))?;
                // Canonical spelling, as the manifest's owner reads.
                q.set(Term::equals("owner", owner.to_string()));
            }
            "public" => match v.as_str() {
                "true" | "false" => q.set(Term::equals("public", v.as_str())),
                _ => return Err(ApiError::invalid_param("public must be true or false")),
            },
            _ if k.starts_with("tag.") => q.push(Term::equals(k.as_str(), v.as_str())),
            _ => {}
        }
    }
    if !privileged {
        // An extra term, not a replacement: a `public=false` of theirs
        // stays, and the two together match nothing.
        q.push(Term::equals("public", "true"));
    }
    Ok(q)
}

/// Where a ListImages page starts: an image (standing for its
/// `published_at`) or a date.
#[derive(Debug)]
pub(super) enum Marker {
    Image(Uuid),
    Date(i128),
}

/// ListImages paging: page size, direction and the inclusive marker.
#[derive(Debug)]
pub(super) struct Paging {
    pub limit: usize,
    pub desc: bool,
    pub marker: Option<Marker>,
}

/// Reads `limit`, `sort` and `marker` (in that order, so the first bad one
/// is the one reported).
pub(super) fn paging(pairs: &[(String, String)]) -> ApiResult<Paging> {
    let q: HashMap<&str, &str> = pairs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let limit = match q.get("limit") {
        None => MAX_LIMIT,
        Some(l) => match l.parse::<usize>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
            _ => {
                return Err(ApiError::invalid_param(format!(
                    "limit must be 1..={MAX_LIMIT}"
                )))
            }
        },
    };
    let desc = match q.get("sort").copied() {
        None | Some("published_at") | Some("published_at.asc") => false,
        Some("published_at.desc") => true,
        Some(s) => return Err(ApiError::invalid_param(format!("unknown sort {s:?}"))),
    };
    let marker =
        match q.get("marker") {
            None => None,
            Some(mk) => Some(match Uuid::try_parse(mk) {
                Ok(u) => Marker::Image(u),
                Err(_) => Marker::Date(parse_date_ns(mk).ok_or_else(|| {
                    ApiError::invalid_param("marker must be a UUID or an ISO date")
                })?),
            }),
        };
    Ok(Paging {
        limit,
        desc,
        marker,
    })
}

/// The DSAPI list filter: literal `name`, `version`, `os` and v1 `type`.
pub(super) fn dsapi_filter(q: &HashMap<String, String>) -> Query {
    ["name", "version", "os", "type"]
        .into_iter()
        .filter_map(|k| q.get(k).map(|v| Term::new(k, v, Syntax::EXACT)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pairs(q: &str) -> Vec<(String, String)> {
        let req = Request::builder()
            .uri(format!("/images?{q}"))
            .body(())
            .unwrap();
        query_pairs(&req)
    }

    fn manifest(extra: serde_json::Value) -> Manifest {
        let mut v = json!({
            "uuid": "01b2c898-945f-11e1-a523-af1afbe22822",
            "owner": "930896af-bf8c-48d4-885c-6573a94b1853",
            "name": "base-64", "version": "24.4.1", "type": "zone-dataset", "os": "smartos",
            "state": "active",
            "tags": {"role": "os", "kvm": false, "n": 2}
        });
        if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
            o.extend(e.clone());
        }
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn decoding() {
        assert_eq!(percent_decode("a%20b+c%2"), "a b c%2");
        assert_eq!(percent_decode("%2e%2E"), "..");
        assert_eq!(
            pairs("name=%7Ebase&&flag&tag.role=os"),
            [
                ("name".to_string(), "~base".to_string()),
                ("flag".to_string(), String::new()),
                ("tag.role".to_string(), "os".to_string()),
            ]
        );
    }

    #[test]
    fn list_filter_follows_imgapi() {
        let m = manifest(json!({}));
        let ok = |q: &str| list_filter(&pairs(q), true).unwrap().matches(&m);
        assert!(ok(""));
        assert!(ok("name=~se-6&version=~24"));
        assert!(!ok("name=base"));
        assert!(ok("name=nope&name=base-64"), "last value wins");
        assert!(!ok("os=~smart"), "os takes no substring");
        assert!(ok("type=!zvol"));
        assert!(!ok("type=!zone-dataset"));
        assert!(ok("owner=930896AF-BF8C-48D4-885C-6573A94B1853"));
        assert!(ok("owner=930896afbf8c48d4885c6573a94b1853"));
        assert!(!ok("public=false"));
        assert!(ok("tag.role=os&tag.kvm=false&tag.n=2"));
        assert!(!ok("tag.role=os&tag.role=db"), "every tag term counts");
        assert!(!ok("tag.missing=x"));
        assert!(ok("limit=5&sort=published_at&unknown=1"));
        for bad in ["state=gone", "owner=x", "public=yes"] {
            assert_eq!(list_filter(&pairs(bad), true).unwrap_err().status, 422);
            assert_eq!(list_filter(&pairs(bad), false).unwrap_err().status, 422);
        }
    }

    #[test]
    fn anonymous_readers_see_active_public_only() {
        let q = list_filter(&pairs("state=all"), false).unwrap();
        assert_eq!(
            q.terms(),
            [
                Term::equals("state", "active"),
                Term::equals("public", "true")
            ]
        );
        let private = manifest(json!({"public": false, "state": "active"}));
        assert!(!list_filter(&pairs(""), false).unwrap().matches(&private));
        assert!(!list_filter(&pairs("public=false"), false)
            .unwrap()
            .matches(&private));
        assert!(list_filter(&pairs("public=false"), true)
            .unwrap()
            .matches(&private));
        let q = list_filter(&pairs("state=disabled"), true).unwrap();
        assert_eq!(q.terms(), [Term::equals("state", "disabled")]);
        assert!(list_filter(&pairs("state=all"), true)
            .unwrap()
            .terms()
            .is_empty());
    }

    #[test]
    fn dsapi_filter_is_literal_with_v1_types() {
        let m = manifest(json!({"type": "lx-dataset"}));
        let q = |s: &str| dsapi_filter(&pairs(s).into_iter().collect());
        assert!(q("type=zone-dataset").matches(&Dataset(&m)));
        assert!(!q("type=lx-dataset").matches(&Dataset(&m)));
        assert!(!q("name=~base").matches(&Dataset(&m)));
        assert!(q("name=base-64&os=smartos&version=24.4.1").matches(&Dataset(&m)));
        assert!(q("owner=x").matches(&Dataset(&m)), "other keys are ignored");
    }

    #[test]
    fn paging_checks_in_order() {
        let p = paging(&pairs("")).unwrap();
        assert_eq!(
            (p.limit, p.desc, p.marker.is_none()),
            (MAX_LIMIT, false, true)
        );
        let p = paging(&pairs(
            "limit=5&sort=published_at.desc&marker=2024-01-01T00:00:00Z",
        ))
        .unwrap();
        assert!(matches!(p.marker, Some(Marker::Date(_))));
        assert_eq!((p.limit, p.desc), (5, true));
        let e = paging(&pairs("limit=0&sort=x")).unwrap_err();
        assert!(e.message.starts_with("limit"));
        let e = paging(&pairs("sort=x&marker=y")).unwrap_err();
        assert!(e.message.starts_with("unknown sort"));
        assert!(paging(&pairs("marker=y")).is_err());
    }
}
