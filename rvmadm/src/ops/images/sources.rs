//! `imgadm sources`: list the configured image sources, or add (after a
//! ping, unless forced) or delete one, saving `vmadm.toml`.

use crate::config::Source;
use crate::image::error::{Code, ImgError, Result};
use crate::image::http::Client;
use crate::image::sources::{check_url, ping};
use crate::ops::Ctx;
use std::path::Path;

/// What `imgadm sources` was asked to change (nothing: list).
#[derive(Debug, Clone, Default)]
pub struct SourcesRequest {
    /// `-a URL`
    pub add: Option<String>,
    /// `-d URL`
    pub delete: Option<String>,
    /// `-t imgapi|dsapi` for `-a`.
    pub kind: Option<String>,
    /// `-f`: add without pinging.
    pub force: bool,
    /// `-c`: ping every source and report.
    pub check: bool,
}

/// What came of it. Changes carry the whole source because imgadm names
/// one as `"<type>" image source "<url>"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourcesOutcome {
    /// Nothing to change: the configured sources, in order.
    Listed(Vec<Source>),
    /// `-a`: the URL answered its ping (or `-f` skipped it) and was saved.
    Added(Source),
    /// `-a` of a URL and type already configured: the one configured.
    AlreadyHave(Source),
    /// `-d`: every source with that URL (any type) was removed and the
    /// configuration saved.
    Deleted(Vec<Source>),
    /// `-d` of a URL not configured (as given).
    DoNotHave(String),
    /// `-c`: each source with why its ping failed (`None`: it answered).
    Checked(Vec<(Source, Option<String>)>),
}

/// A URL as imgadm compares them: without a trailing `/` on its path.
fn norm_url(url: &str) -> &str {
    url.strip_suffix('/').unwrap_or(url)
}

/// Lists, adds or deletes; a change is saved to `config_path`.
pub fn sources(ctx: &Ctx, config_path: &Path, req: &SourcesRequest) -> Result<SourcesOutcome> {
    let actions = [req.add.is_some(), req.delete.is_some(), req.check];
    if actions.iter().filter(|a| **a).count() > 1 {
        return Err(ImgError::usage(
            "cannot specify more than one of \"-a\", \"-d\", \"-e\", and \"-c\"",
        ));
    }
    if req.check {
        let client = Client::new();
        let checked = ctx
            .config
            .sources
            .iter()
            .cloned()
            .map(|s| {
                let err = ping(&client, &s).err().map(|e| e.message);
                (s, err)
            })
            .collect();
        return Ok(SourcesOutcome::Checked(checked));
    }
    let mut cfg = ctx.config.clone();
    if let Some(url) = &req.add {
        check_url(url)?;
        let kind = req.kind.clone().unwrap_or_else(|| "imgapi".into());
        if kind != "imgapi" && kind != "dsapi" {
            return Err(ImgError::usage(format!(
                "unknown source type \"{kind}\" (imgapi or dsapi)"
            )));
        }
        if kind == "dsapi" && !url.trim_end_matches('/').ends_with("/datasets") {
            return Err(ImgError::new(
                Code::InvalidArgument,
                format!("a dsapi source URL must end in \"/datasets\": {url}"),
            ));
        }
        // imgadm's rule: the same URL with another type is a new source.
        if let Some(have) = cfg
            .sources
            .iter()
            .find(|s| norm_url(&s.url) == norm_url(url) && s.kind == kind)
        {
            return Ok(SourcesOutcome::AlreadyHave(have.clone()));
        }
        let src = Source {
            url: url.clone(),
            kind,
        };
        if !req.force {
            ping(&Client::new(), &src)?;
        }
        cfg.sources.push(src.clone());
        cfg.save(config_path)?;
        return Ok(SourcesOutcome::Added(src));
    }
    if let Some(url) = &req.delete {
        let (gone, kept): (Vec<Source>, Vec<Source>) = cfg
            .sources
            .into_iter()
            .partition(|s| norm_url(&s.url) == norm_url(url));
        if gone.is_empty() {
            return Ok(SourcesOutcome::DoNotHave(url.clone()));
        }
        cfg.sources = kept;
        cfg.save(config_path)?;
        return Ok(SourcesOutcome::Deleted(gone));
    }
    Ok(SourcesOutcome::Listed(cfg.sources))
}
