//! What image sources answer: an IMGAPI/DSAPI image list as `imgadm
//! avail` reads it (DSAPI v1 upgraded, rows made, filters matched) and one
//! manifest as `imgadm import` checks it, with its DSAPI file URL judged
//! against the source's origin.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rvmadm::config::{Config, Source};
use rvmadm::image::import::{check_remote, receive_quota};
use rvmadm::image::sources::{check_same_origin, check_url, upgrade_v1, Remote};
use rvmadm::image::table::{make_row, parse_filters};
use serde_json::Value;
use uuid::Uuid;

const SOURCE: &str = "http://198.51.100.1:8080/datasets";

fuzz_target!(|data: &[u8]| {
    // Lines after the first NUL are filter arguments.
    let (json, rest) = match data.iter().position(|b| *b == 0) {
        Some(i) => (
            &data[..i],
            String::from_utf8_lossy(&data[i + 1..]).into_owned(),
        ),
        None => (data, String::new()),
    };
    let filters: Vec<String> = rest.lines().map(str::to_string).collect();
    let filters = parse_filters(&filters).unwrap_or_default();
    let Ok(body) = serde_json::from_slice::<Value>(json) else {
        return;
    };
    // The list, as avail reads it from either kind of source.
    let items = body.as_array().cloned().unwrap_or_default();
    for m in items.iter().chain(
        items
            .iter()
            .filter_map(|m| upgrade_v1(m).ok())
            .collect::<Vec<_>>()
            .iter(),
    ) {
        let row = make_row(m, Some(SOURCE), None, None);
        for f in &filters {
            let _ = f.matches(&row);
        }
    }
    // One manifest, as import fetches and checks it.
    let cfg = Config::default();
    for (kind, manifest) in [("imgapi", Ok(body.clone())), ("dsapi", upgrade_v1(&body))] {
        let Ok(manifest) = manifest else { continue };
        if kind == "dsapi" {
            if let Some(url) = body.pointer("/files/0/url").and_then(Value::as_str) {
                if check_url(url).is_ok() {
                    let _ = check_same_origin(SOURCE, url);
                }
            }
        }
        let want = manifest
            .get("uuid")
            .and_then(Value::as_str)
            .and_then(|u| Uuid::parse_str(u).ok())
            .unwrap_or_default();
        let remote = Remote {
            manifest,
            source: Source {
                url: SOURCE.into(),
                kind: kind.into(),
            },
            file_url: format!("{SOURCE}/{want}/file"),
        };
        if let Ok(checked) = check_remote(remote, &want) {
            let _ = receive_quota(&cfg, &checked.manifest);
        }
    }
});
