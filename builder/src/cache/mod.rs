//! The build cache: step key -> result (the layer it produced). Every tier that keeps records sits
//! behind one trait, [`Tier`]: the [`local`] directory under the store (always), and a registry
//! cache ([`remote`], `--cache-from`/`--cache-to`) when asked. [`Cache`] asks the local tier, then
//! lets the remote one confirm or supply the record.
//!
//! Owns: records and their tiers. Must not touch: how keys are computed (the solver's `key`), layers
//! themselves (the store's) or registry wire formats (the registry crate's).

pub mod local;
pub mod remote;

use std::path::Path;
use std::sync::Arc;

use anyhow::Result;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use self::local::LocalTier;

/// What a cached step produced.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CacheRecord {
    /// The layer's diff_id (`sha256:...`), or None for a step that changed no file.
    pub diff_id: Option<String>,
    /// When the layer was made (RFC 3339); reused so an all-cached rebuild gives the same image.
    #[serde(default)]
    pub created: Option<String>,
}

/// One place records are kept.
pub trait Tier: Send + Sync {
    /// The record for `key`, given what the tiers below have (`below`; None for the lowest).
    fn lookup(&self, key: &str, below: Option<CacheRecord>) -> Option<CacheRecord>;
    /// Keeps (or notes for export) `record` under `key`.
    fn store(&self, key: &str, record: &CacheRecord) -> Result<()>;
}

/// Durable key -> record map: the local tier, optionally backed by a remote one.
#[derive(Clone)]
pub struct Cache {
    local: LocalTier,
    /// `--cache-from`/`--cache-to` state: lookups fall back to imported records; hits and new
    /// records are noted for export.
    remote: Option<Arc<dyn Tier>>,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("dir", &self.local.dir())
            .finish()
    }
}

impl Cache {
    /// The cache kept in `dir` (created if missing).
    pub fn open(dir: &Path) -> Result<Cache> {
        Ok(Cache {
            local: LocalTier::open(dir)?,
            remote: None,
        })
    }

    /// This cache backed by a remote one (see [`remote`]).
    pub fn with_remote(mut self, remote: Arc<dyn Tier>) -> Cache {
        self.remote = Some(remote);
        self
    }

    /// The cache's directory (for the context hash index and RUN cache mounts).
    pub fn dir(&self) -> &Path {
        self.local.dir()
    }

    /// The record for `key`, if any.
    pub fn get(&self, key: &str) -> Option<CacheRecord> {
        let local = self.local.lookup(key, None);
        let Some(remote) = &self.remote else {
            return local;
        };
        let rec = remote.lookup(key, local.clone())?;
        if local.as_ref() != Some(&rec) {
            let _ = self.local.store(key, &rec);
        }
        Some(rec)
    }

    /// Stores `record` under `key` (temp file + rename).
    pub fn put(&self, key: &str, record: &CacheRecord) -> Result<()> {
        if let Some(remote) = &self.remote {
            remote.store(key, record)?;
        }
        self.local.store(key, record)
    }

    /// The record for `key` kept here only (never imported from or exported to a remote cache).
    pub fn get_local(&self, key: &str) -> Option<CacheRecord> {
        self.local.lookup(key, None)
    }

    /// Stores `record` under `key` here only (see [`Cache::get_local`]).
    pub fn put_local(&self, key: &str, record: &CacheRecord) -> Result<()> {
        self.local.store(key, record)
    }

    /// Every layer the cache refers to (GC roots).
    pub fn layers(&self) -> Vec<String> {
        self.local.layers()
    }
}

/// A step key: sha256 over the parts, each length-prefixed so no two part lists collide.
pub fn key_of(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p.as_bytes());
    }
    format!("sha256:{}", hex::encode(h.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_get_round_trip() {
        let d = tempfile::tempdir().unwrap();
        let c = Cache::open(d.path()).unwrap();
        let k = key_of(&["a", "b"]);
        assert_ne!(k, key_of(&["ab"]));
        assert!(c.get(&k).is_none());
        let r = CacheRecord {
            diff_id: Some("sha256:00".into()),
            created: None,
        };
        c.put(&k, &r).unwrap();
        assert_eq!(Cache::open(d.path()).unwrap().get(&k), Some(r));
        assert_eq!(c.layers(), ["sha256:00"]);
    }
}
