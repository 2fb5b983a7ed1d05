//! Cached pool facts: where each pool's top dataset is mounted.
//!
//! `create` needs the new VM's zonepath, which is the pool's mountpoint
//! joined with the uuid (a clone directly below the pool inherits its
//! mountpoint from the pool). Asking `zfs get` for it on every create
//! would be a second `zfs` process on the happy path, so the answer is kept
//! in `<state_dir>/cache/pool.<pool>.mountpoint` after the first ask. The
//! file is a cache, never an authority: create checks the path it derives
//! (it must exist after the clone) and asks zfs again, rewriting the file,
//! when it does not.

use super::atomic::atomic_write;
use super::records::{io_err, Store, StoreError};
use std::path::{Path, PathBuf};

/// True for a mountpoint `create` may use: absolute, without `.`/`..`
/// components or control characters (zfs answers `none`, `legacy` or `-`
/// for a pool that is not mounted, which are refused too).
pub fn usable_mountpoint(p: &Path) -> bool {
    use std::path::Component;
    let s = p.as_os_str().to_string_lossy();
    p.is_absolute()
        && !s.chars().any(char::is_control)
        && p.components()
            .all(|c| matches!(c, Component::RootDir | Component::Normal(_)))
}

impl Store {
    fn pool_file(&self, pool: &str) -> Option<PathBuf> {
        // Pool names are single components ([A-Za-z0-9_.:-]); anything
        // else never names a cache file.
        let ok = !pool.is_empty()
            && !pool.starts_with('.')
            && pool
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.:-".contains(c));
        ok.then(|| self.cache.join(format!("pool.{pool}.mountpoint")))
    }

    /// The remembered mountpoint of `pool`, when there is a usable one.
    pub fn pool_mountpoint(&self, pool: &str) -> Option<PathBuf> {
        let text = std::fs::read_to_string(self.pool_file(pool)?).ok()?;
        let p = PathBuf::from(text.trim_end_matches('\n'));
        usable_mountpoint(&p).then_some(p)
    }

    /// Remembers `pool`'s mountpoint (written atomically; a name that
    /// cannot be a pool is not remembered).
    pub fn remember_pool_mountpoint(
        &self,
        pool: &str,
        mountpoint: &Path,
    ) -> Result<(), StoreError> {
        let Some(file) = self.pool_file(pool) else {
            return Ok(());
        };
        let mut text = mountpoint.as_os_str().to_string_lossy().into_owned();
        text.push('\n');
        atomic_write(&file, text.as_bytes()).map_err(io_err(&file))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_usable_mountpoints_only() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        assert_eq!(store.pool_mountpoint("zones"), None);
        store
            .remember_pool_mountpoint("zones", Path::new("/srv/zones"))
            .unwrap();
        assert_eq!(
            store.pool_mountpoint("zones"),
            Some(PathBuf::from("/srv/zones"))
        );
        assert_eq!(store.pool_mountpoint("other"), None);
        // Bad pool names never name a file.
        store
            .remember_pool_mountpoint("../x", Path::new("/x"))
            .unwrap();
        assert_eq!(store.pool_mountpoint("../x"), None);
        for bad in ["none", "legacy", "-", "rel/path", "/a/../b", "/a/\nb"] {
            assert!(!usable_mountpoint(Path::new(bad)), "{bad:?}");
        }
        assert!(usable_mountpoint(Path::new("/zones")));
    }
}
