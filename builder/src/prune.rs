//! `hoist builder prune` and the build cache's cap. Prune removes build cache records
//! ([`crate::usage`]) least recently used first: step records (their layers go with them
//! unless an image needs them), cache mounts and the context index; never what a running build
//! holds. `--keep-storage` stops once the cache's reclaimable bytes fit; `until` spares what was
//! used more recently.
//!
//! The cap (`max-storage`) is read from env `HOIST_BUILDER_MAX_STORAGE` or, failing that, from
//! `<root>/config.toml`:
//!
//! ```toml
//! [builder]
//! max-storage = "2GB"   # go-units RAMInBytes: binary multiples, like --keep-storage
//! ```
//!
//! [`enforce_cap`] runs after every build and prunes down to it.

use std::fs;
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result, bail};
use hoist_image::Store;

use crate::usage::{self, Kind, UsageRecord};

/// What to prune.
#[derive(Debug, Clone, Default)]
pub struct PruneOptions {
    /// Keep this many reclaimable bytes (least recently used go first).
    pub keep_storage: Option<u64>,
    /// Only records not used for this long.
    pub until: Option<Duration>,
    /// Only records whose ID starts with one of these (`--filter id=`).
    pub ids: Vec<String>,
    /// Only records of these types (`--filter type=regular|exec.cachemount|internal`).
    pub types: Vec<String>,
}

/// What a prune removed.
#[derive(Debug, Clone, Default)]
pub struct PruneReport {
    /// The records removed, in the order they went.
    pub removed: Vec<UsageRecord>,
    /// Bytes freed.
    pub bytes: u64,
}

/// Parses `--filter` values as buildx does: `until=24h` (or its old name `unused-for`), `id=PREFIX`
/// and `type=regular|exec.cachemount|internal`, into `opts`.
pub fn parse_filters(filters: &[String], opts: &mut PruneOptions) -> Result<()> {
    let mut key_seen: Option<String> = None;
    for f in filters {
        let (k, v) = f
            .split_once('=')
            .with_context(|| format!("bad format of filter (expected name=value): {f}"))?;
        match k {
            "until" | "unused-for" => {
                if key_seen.as_deref().is_some_and(|s| s != k) {
                    bail!("conflicting filters \"until\" and \"unused-for\"");
                }
                if opts.until.is_some() {
                    bail!("{k:?} filter expects only one value");
                }
                let ns = hoist_parser::instructions::parse_go_duration(v).map_err(|e| {
                    anyhow::anyhow!("{k:?} filter expects a duration (e.g., '24h'): {e}")
                })?;
                opts.until = Some(Duration::from_nanos(ns.max(0) as u64));
                key_seen = Some(k.to_string());
            }
            "id" => opts.ids.push(v.to_string()),
            "type" => {
                if ![Kind::Regular, Kind::CacheMount, Kind::Internal]
                    .iter()
                    .any(|t| t.name() == v)
                {
                    bail!(
                        "invalid type filter {v:?}: expected regular, exec.cachemount or internal"
                    );
                }
                opts.types.push(v.to_string());
            }
            _ => bail!("invalid filter {k:?}: expected until, unused-for, id or type"),
        }
    }
    Ok(())
}

/// Removes one record's own files; false if it was gone or is now in use.
fn remove(r: &UsageRecord) -> Result<bool> {
    match r.kind {
        Kind::Regular | Kind::Internal => Ok(fs::remove_file(&r.path).is_ok()),
        Kind::CacheMount => {
            let Some(dir) = r.path.parent() else {
                return Ok(false);
            };
            let lock = dir.join(format!("{}.lock", r.id));
            let Some(_held) = crate::solver::mounts::try_lock(&lock)? else {
                return Ok(false);
            };
            let doomed = dir.join(format!(".prune-{}", r.id));
            if fs::rename(&r.path, &doomed).is_err() {
                return Ok(false);
            }
            fs::remove_dir_all(&doomed)?;
            let _ = fs::remove_file(&lock);
            Ok(true)
        }
    }
}

/// Prunes the build cache of `store` as `opts` says.
pub fn prune(store: &Store, opts: &PruneOptions) -> Result<PruneReport> {
    let mut recs = usage::records(store)?;
    recs.reverse(); // least recently used first
    let now = SystemTime::now();
    let mut total: u64 = recs.iter().map(UsageRecord::reclaimable_size).sum();
    let mut report = PruneReport::default();
    for r in recs {
        if opts.keep_storage.is_some_and(|k| total <= k) {
            break;
        }
        if r.in_use {
            continue;
        }
        let age = now.duration_since(r.last_used).unwrap_or_default();
        if opts.until.is_some_and(|u| age < u)
            || (!opts.ids.is_empty() && !opts.ids.iter().any(|i| r.id.starts_with(i.as_str())))
            || (!opts.types.is_empty() && !opts.types.iter().any(|t| t == r.kind.name()))
        {
            continue;
        }
        if remove(&r)? {
            total -= r.reclaimable_size();
            report.bytes += r.reclaimable_size();
            report.removed.push(r);
        }
    }
    if !report.removed.is_empty() {
        let kept: Vec<_> = crate::cache::Cache::open(&store.dir("cache")?)?
            .layers()
            .iter()
            .filter_map(|d| d.parse().ok())
            .collect();
        store.set_gc_root("build-cache", &kept)?;
        store.gc()?;
    }
    Ok(report)
}

/// The configured cap, if any: env `HOIST_BUILDER_MAX_STORAGE`, else `[builder] max-storage` in
/// `<root>/config.toml`.
pub fn max_storage(store: &Store) -> Result<Option<u64>> {
    let parse = |s: &str, from: &str| {
        hoist_image::display::ram_in_bytes(s)
            .map_err(|e| anyhow::anyhow!("{from}: max-storage: {e} (expected a size such as 2GB)"))
    };
    if let Ok(v) = std::env::var("HOIST_BUILDER_MAX_STORAGE") {
        if !v.is_empty() {
            return parse(&v, "HOIST_BUILDER_MAX_STORAGE").map(Some);
        }
    }
    let path = store.root().join("config.toml");
    let Ok(text) = fs::read_to_string(&path) else {
        return Ok(None);
    };
    let doc: toml::Table = text
        .parse()
        .with_context(|| format!("{}: invalid TOML", path.display()))?;
    let Some(b) = doc.get("builder") else {
        return Ok(None);
    };
    match b.get("max-storage") {
        None => Ok(None),
        Some(toml::Value::String(s)) => parse(s, &path.display().to_string()).map(Some),
        Some(toml::Value::Integer(n)) if *n >= 0 => Ok(Some(*n as u64)),
        Some(v) => bail!(
            "{}: [builder] max-storage = {v}: expected a size string such as \"2GB\"",
            path.display()
        ),
    }
}

/// Prunes down to the configured cap (least recently used first); nothing without a cap.
pub fn enforce_cap(store: &Store) -> Result<()> {
    if let Some(cap) = max_storage(store)? {
        prune(
            store,
            &PruneOptions {
                keep_storage: Some(cap),
                ..PruneOptions::default()
            },
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(f: &[&str]) -> Result<PruneOptions> {
        let mut o = PruneOptions::default();
        parse_filters(&f.iter().map(|s| s.to_string()).collect::<Vec<_>>(), &mut o)?;
        Ok(o)
    }

    #[test]
    fn filters_parse_as_buildx_does() {
        let o = parsed(&["until=1h30m", "type=exec.cachemount", "id=ab"]).unwrap();
        assert_eq!(o.until, Some(Duration::from_secs(5400)));
        assert_eq!(
            (o.types, o.ids),
            (vec!["exec.cachemount".into()], vec!["ab".into()])
        );
        let err = |f: &[&str]| parsed(f).unwrap_err().to_string();
        assert!(err(&["until=1h", "unused-for=2h"]).contains("conflicting filters"));
        assert!(err(&["until=1h", "until=2h"]).contains("only one value"));
        assert!(err(&["until=soon"]).contains("expects a duration"));
        assert!(err(&["type=layer"]).contains("expected regular, exec.cachemount or internal"));
        assert!(err(&["label=x"]).contains("expected until, unused-for, id or type"));
        assert!(err(&["until"]).contains("expected name=value"));
    }
}
