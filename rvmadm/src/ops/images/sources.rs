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
}

/// What came of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourcesOutcome {
    /// Nothing to change: the configured sources, in order.
    Listed(Vec<Source>),
    /// `-a`: the URL answered its ping (or `-f` skipped it) and was saved.
    Added(String),
    /// `-a` of a URL already configured.
    AlreadyHave(String),
    /// `-d`: the URL was removed and the configuration saved.
    Deleted(String),
    /// `-d` of a URL not configured.
    DoNotHave(String),
}

/// Lists, adds or deletes; a change is saved to `config_path`.
pub fn sources(ctx: &Ctx, config_path: &Path, req: &SourcesRequest) -> Result<SourcesOutcome> {
    if req.add.is_some() && req.delete.is_some() {
        return Err(ImgError::usage("only one of -a and -d may be given"));
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
        if cfg.sources.iter().any(|s| s.url == *url) {
            return Ok(SourcesOutcome::AlreadyHave(url.clone()));
        }
        let src = Source {
            url: url.clone(),
            kind,
        };
        if !req.force {
            ping(&Client::new(), &src)?;
        }
        cfg.sources.push(src);
        cfg.save(config_path)?;
        return Ok(SourcesOutcome::Added(url.clone()));
    }
    if let Some(url) = &req.delete {
        let before = cfg.sources.len();
        cfg.sources.retain(|s| s.url != *url);
        if cfg.sources.len() == before {
            return Ok(SourcesOutcome::DoNotHave(url.clone()));
        }
        cfg.save(config_path)?;
        return Ok(SourcesOutcome::Deleted(url.clone()));
    }
    Ok(SourcesOutcome::Listed(cfg.sources))
}
