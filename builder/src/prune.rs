//! `hoist builder prune`: drops the build cache — RUN cache mounts, step records and the layers only
//! they kept alive — and reports the space reclaimed.

use std::fs;
use std::path::Path;

use anyhow::Result;
use hoist_image::Store;

/// What a prune removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneReport {
    /// Cache mount directories removed.
    pub cache_mounts: usize,
    /// Step cache records removed.
    pub records: usize,
    /// Bytes freed (cache mounts and blobs).
    pub bytes: u64,
}

fn tree_size(p: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    walkdir::WalkDir::new(p)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter_map(|e| e.metadata().ok())
        .filter(|m| !m.is_dir())
        .map(|m| m.blocks() * 512)
        .sum()
}

/// Removes every cache mount not in use by a running build, every step record, and then the blobs
/// nothing else references.
pub fn prune(store: &Store) -> Result<PruneReport> {
    let mut r = PruneReport::default();
    let mounts = crate::solver::mounts::cache_mounts_dir(store)?;
    if let Ok(entries) = fs::read_dir(&mounts) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.ends_with(".lock") || !e.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            // A locked or private cache held by a running build stays.
            let lock = mounts.join(format!("{name}.lock"));
            let _held = match crate::solver::mounts::try_lock(&lock)? {
                Some(l) => l,
                None => continue,
            };
            let size = tree_size(&e.path());
            let doomed = mounts.join(format!(".prune-{name}"));
            if fs::rename(e.path(), &doomed).is_ok() {
                fs::remove_dir_all(&doomed)?;
                r.cache_mounts += 1;
                r.bytes += size;
            }
            let _ = fs::remove_file(&lock);
        }
    }
    let keys = store.dir("cache")?.join("keys");
    if let Ok(entries) = fs::read_dir(&keys) {
        for e in entries.flatten() {
            if fs::remove_file(e.path()).is_ok() {
                r.records += 1;
            }
        }
    }
    store.set_gc_root("build-cache", &[])?;
    let gc = store.gc()?;
    r.bytes += gc.bytes_removed;
    Ok(r)
}
