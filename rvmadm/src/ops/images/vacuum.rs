//! `imgadm vacuum [-n] [-f]`: remove the installed images nothing uses.
//!
//! SmartOS's rule, which only looks at ZFS: an image is unused when no
//! dataset is cloned from it. Removing an unused child image can make its
//! parent unused, so the search runs in rounds until a round finds nothing,
//! and images go in round order (children before their parents, which ZFS
//! requires). A VM's dataset is never an image, so an image a VM is cloned
//! from is never unused.
//!
//! The plan is made once to show and confirm, then made again under the
//! global lock (the one `vmadm create` takes before cloning), and only
//! images that are in both plans are removed: a VM created while the user
//! read the prompt keeps its image.

use crate::image::error::Result;
use crate::image::records::{self, installed_images, Installed};
use crate::ops::Ctx;
use std::collections::{BTreeMap, BTreeSet};

/// What `vacuum` was asked for.
#[derive(Debug, Clone, Copy, Default)]
pub struct VacuumOptions {
    /// `-n`: say what would go, remove nothing.
    pub dry_run: bool,
}

/// One image vacuum removes (or, with `-n`, would remove).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vacuumed {
    /// The image's uuid.
    pub uuid: uuid::Uuid,
    /// `<name>@<version>` from its manifest (empty parts when unknown).
    pub label: String,
}

/// The unused images of `images`, in the order they can be destroyed.
pub fn unused(images: &[Installed]) -> Vec<&Installed> {
    // Clones left per image dataset; a clone that is itself an image
    // dataset disappears from these sets when that image is planned.
    let mut clones: BTreeMap<&str, BTreeSet<&str>> = images
        .iter()
        .map(|i| {
            (
                i.dataset.as_str(),
                i.clones.iter().map(String::as_str).collect(),
            )
        })
        .collect();
    let mut order: Vec<&str> = Vec::new();
    loop {
        // In pool order within a round, as imgadm lists them.
        let round: Vec<&str> = images
            .iter()
            .map(|i| i.dataset.as_str())
            .filter(|ds| clones.get(ds).is_some_and(BTreeSet::is_empty))
            .collect();
        if round.is_empty() {
            break;
        }
        for ds in &round {
            clones.remove(ds);
        }
        for left in clones.values_mut() {
            for ds in &round {
                left.remove(ds);
            }
        }
        order.extend(round);
    }
    order
        .into_iter()
        .filter_map(|ds| images.iter().find(|i| i.dataset == ds))
        .collect()
}

fn summary(i: &Installed) -> Vacuumed {
    Vacuumed {
        uuid: i.uuid,
        label: i.label(),
    }
}

/// Finds the unused images of the configured pool, asks `confirm` (which
/// sees them all and answers yes or no; it is not asked when there are
/// none), then removes them — or, with `dry_run`, only reports them. Each
/// image is passed to `done` as it goes. Returns `Ok(false)` when
/// `confirm` said no.
pub fn vacuum(
    ctx: &Ctx,
    opts: VacuumOptions,
    confirm: &mut dyn FnMut(&[Vacuumed]) -> bool,
    done: &mut dyn FnMut(&Vacuumed) -> Result<()>,
) -> Result<bool> {
    let pool = ctx.config.pool.clone();
    let zfs = ctx.zfs();
    let first: Vec<Vacuumed> = {
        let images = installed_images(&ctx.config, &ctx.store, &zfs, &pool)?;
        unused(&images).into_iter().map(summary).collect()
    };
    if first.is_empty() {
        return Ok(true);
    }
    if !confirm(&first) {
        return Ok(false);
    }
    if opts.dry_run {
        for v in &first {
            done(v)?;
        }
        return Ok(true);
    }
    let _global = ctx.store.lock_global()?;
    let images = installed_images(&ctx.config, &ctx.store, &zfs, &pool)?;
    let confirmed: BTreeSet<uuid::Uuid> = first.iter().map(|v| v.uuid).collect();
    for img in unused(&images) {
        if !confirmed.contains(&img.uuid) {
            continue;
        }
        zfs.destroy(&img.dataset, true)?;
        records::remove_record(&ctx.config, &pool, &img.uuid)?;
        done(&summary(img))?;
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn img(n: u8, clones: &[&str]) -> Installed {
        let uuid = uuid::Uuid::from_bytes([n; 16]);
        Installed {
            uuid,
            zpool: "zones".into(),
            dataset: format!("zones/{uuid}"),
            record: None,
            clones: clones.iter().map(|c| c.to_string()).collect(),
        }
    }

    #[test]
    fn children_go_before_parents_and_vm_clones_keep_their_chain() {
        let leaf = img(3, &[]);
        let mid = img(2, &[&leaf.dataset.clone()]);
        let base = img(1, &[&mid.dataset.clone()]);
        let used_base = img(4, &["zones/vm-dataset"]);
        let used_child = img(5, &[]);
        // 6 is the parent of an image (5) and of a VM: kept, while 5 goes.
        let parent_of_vm = img(6, &[&used_child.dataset.clone(), "zones/other-vm"]);
        let images = vec![base, mid, leaf, used_base, used_child, parent_of_vm];
        let order: Vec<u8> = unused(&images)
            .iter()
            .map(|i| i.uuid.as_bytes()[0])
            .collect();
        assert_eq!(order, [3, 5, 2, 1]);
    }

    #[test]
    fn nothing_unused_is_an_empty_plan() {
        let images = vec![img(1, &["zones/vm"])];
        assert!(unused(&images).is_empty());
    }
}
