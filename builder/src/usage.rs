//! What the build cache holds on disk, as `docker buildx du` lists it: one [`UsageRecord`] per step
//! record (its layer's bytes, counted once per layer), per `RUN --mount=type=cache` directory, and
//! the context metadata index. A record is *shared* when a stored image needs its layer (removing
//! the record frees nothing), and *in use* while a running build holds it (a cache mount's lock, or
//! any store lease for cache mounts without one).
//!
//! Last use: a step record's file time (touched on every cache hit by [`crate::cache::local`]); a cache
//! mount's newest file time.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::Result;
use hoist_image::{Compression, Digest, Store};

use crate::cache::CacheRecord;

/// What kind of record (buildx's `Type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A step's result (`regular`).
    Regular,
    /// A `RUN --mount=type=cache` directory (`exec.cachemount`).
    CacheMount,
    /// The context metadata index (`internal`).
    Internal,
}

impl Kind {
    /// buildx's type name.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Regular => "regular",
            Kind::CacheMount => "exec.cachemount",
            Kind::Internal => "internal",
        }
    }
}

/// One entry of `builder du`.
#[derive(Debug, Clone)]
pub struct UsageRecord {
    /// The step key's hex, or the cache mount's directory name.
    pub id: String,
    pub kind: Kind,
    /// Bytes on disk (a layer counted on its first record only).
    pub size: u64,
    /// A stored image needs this record's layer.
    pub shared: bool,
    /// A running build holds it.
    pub in_use: bool,
    /// Cache mounts are mutable (buildx marks their ID with `*`).
    pub mutable: bool,
    pub created: SystemTime,
    pub last_used: SystemTime,
    pub description: String,
    /// The step's layer, for step records.
    pub layer: Option<Digest>,
    /// The file or directory this record is.
    pub path: PathBuf,
}

impl UsageRecord {
    /// Bytes that removing this record would free.
    pub fn reclaimable_size(&self) -> u64 {
        if self.shared || self.in_use {
            0
        } else {
            self.size
        }
    }
}

fn times(m: &fs::Metadata) -> (SystemTime, SystemTime) {
    let modified = m.modified().unwrap_or(SystemTime::UNIX_EPOCH);
    (m.created().unwrap_or(modified), modified)
}

/// Bytes on disk under `p` and its newest modification time.
pub fn tree_usage(p: &Path) -> (u64, SystemTime) {
    use std::os::unix::fs::MetadataExt;
    let mut size = 0;
    let mut newest = SystemTime::UNIX_EPOCH;
    for m in walkdir::WalkDir::new(p)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter_map(|e| e.metadata().ok())
    {
        if !m.is_dir() {
            size += m.blocks() * 512;
        }
        newest = newest.max(m.modified().unwrap_or(SystemTime::UNIX_EPOCH));
    }
    (size, newest)
}

/// Every layer a stored image (tagged or not) needs.
fn image_layers(store: &Store) -> Result<HashSet<Digest>> {
    let mut out = HashSet::new();
    for s in store.list_images()? {
        if let Ok(img) = store.load_image(&s.manifest_digest) {
            out.extend(img.config.rootfs.diff_ids.iter().cloned());
        }
    }
    Ok(out)
}

/// Bytes a layer takes in the store: its uncompressed blob and any compressed forms.
fn layer_bytes(store: &Store, diff_id: &Digest) -> u64 {
    [Compression::None, Compression::Gzip, Compression::Zstd]
        .into_iter()
        .filter_map(|c| store.layer_blob(diff_id, c))
        .filter_map(|b| fs::metadata(store.blob_path(&b)).ok())
        .map(|m| m.len())
        .sum()
}

/// Every record of the build cache, most recently used first (as buildx sorts).
pub fn records(store: &Store) -> Result<Vec<UsageRecord>> {
    let cache = store.dir("cache")?;
    let needed = image_layers(store)?;
    let build_running = store.try_exclusive()?.is_none();
    let mut out = Vec::new();
    if let Ok(rd) = fs::read_dir(cache.join("keys")) {
        for e in rd.flatten() {
            let path = e.path();
            let (Ok(m), Ok(bytes)) = (e.metadata(), fs::read(&path)) else {
                continue;
            };
            let Ok(rec) = serde_json::from_slice::<CacheRecord>(&bytes) else {
                continue;
            };
            let layer = rec.diff_id.and_then(|d| d.parse::<Digest>().ok());
            let (created, last_used) = times(&m);
            out.push(UsageRecord {
                id: e.file_name().to_string_lossy().into_owned(),
                kind: Kind::Regular,
                size: m.len(),
                shared: layer.as_ref().is_some_and(|l| needed.contains(l)),
                in_use: false,
                mutable: false,
                created,
                last_used,
                description: match &layer {
                    Some(l) => format!("layer {l}"),
                    None => "no file changes".into(),
                },
                layer,
                path,
            });
        }
    }
    // A layer's bytes go to its most recently used record; the others only share it.
    out.sort_by_key(|r| std::cmp::Reverse(r.last_used));
    let mut counted = HashSet::new();
    for r in &mut out {
        if let Some(l) = &r.layer {
            if counted.insert(l.clone()) {
                r.size += layer_bytes(store, l);
            } else {
                r.shared = true;
            }
        }
    }
    let mounts = crate::solver::mounts::cache_mounts_dir(store)?;
    if let Ok(rd) = fs::read_dir(&mounts) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || !e.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let lock = mounts.join(format!("{name}.lock"));
            let locked = lock.exists() && crate::solver::mounts::try_lock(&lock)?.is_none();
            let (size, last_used) = tree_usage(&e.path());
            let created = e.metadata().map(|m| times(&m).0).unwrap_or(last_used);
            out.push(UsageRecord {
                id: name,
                kind: Kind::CacheMount,
                size,
                shared: false,
                in_use: locked || build_running,
                mutable: true,
                created,
                last_used,
                description: "cached mount (RUN --mount=type=cache)".into(),
                layer: None,
                path: e.path(),
            });
        }
    }
    let index = cache.join("context-index.json");
    if let Ok(m) = fs::metadata(&index) {
        let (created, last_used) = times(&m);
        out.push(UsageRecord {
            id: "context-index".into(),
            kind: Kind::Internal,
            size: m.len(),
            shared: false,
            in_use: build_running,
            mutable: true,
            created,
            last_used,
            description: "local source metadata index".into(),
            layer: None,
            path: index,
        });
    }
    out.sort_by_key(|r| std::cmp::Reverse(r.last_used));
    Ok(out)
}
