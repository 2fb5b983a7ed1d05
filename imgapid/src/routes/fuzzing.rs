//! Entry points for the fuzz targets in `fuzz/` (not an API): the request
//! parsing that needs no server, catalog or socket, run the way the routes
//! run it, so a fuzzer finds what a client could make them do.

use super::actions::Action;
use super::query::{dsapi_filter, list_filter, paging, query_map, query_pairs, Dataset};
use super::request::{json_object_from, manifest_from, path_uuid};
use rvmadm_manifest::Manifest;

/// Parses a query string (what follows `?`) as ListImages, the DSAPI list
/// and the image actions read it, and matches the filters against
/// `subject`. `None` when no request can carry this query (hyper refuses
/// the URI before any route sees it); else whether each reader refused it.
pub fn query(raw: &str, subject: &Manifest) -> Option<[bool; 4]> {
    let req = hyper::Request::builder()
        .uri(format!("/images?{raw}"))
        .body(())
        .ok()?;
    let pairs = query_pairs(&req);
    let map = query_map(&req);
    let mut refused = [false; 4];
    for (i, privileged) in [false, true].into_iter().enumerate() {
        match list_filter(&pairs, privileged) {
            Ok(q) => {
                let _ = q.matches(subject);
            }
            Err(_) => refused[i] = true,
        }
    }
    refused[2] = paging(&pairs).is_err();
    let _ = dsapi_filter(&map).matches(&Dataset(subject));
    refused[3] = Action::parse(&map).is_err();
    Some(refused)
}

/// A UUID path segment as the routes read it.
pub fn path_segment(seg: &str) -> bool {
    path_uuid(seg).is_ok()
}

/// A create or import request body, read into a validated manifest as
/// `POST /images` and `?action=import` do; the error is the message the
/// client would get.
pub fn manifest_body(body: &[u8]) -> Result<Manifest, String> {
    let obj = json_object_from(body).map_err(|e| e.message)?;
    manifest_from(obj).map_err(|e| e.message)
}
