//! The build cache: step key -> result (the layer it produced), one small JSON file per key under the
//! store's `cache/` directory, written atomically, so a crash never leaves a half-written record.

pub mod remote;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Result;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// What a cached step produced.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CacheRecord {
    /// The layer's diff_id (`sha256:...`), or None for a step that changed no file.
    pub diff_id: Option<String>,
    /// When the layer was made (RFC 3339); reused so an all-cached rebuild gives the same image.
    #[serde(default)]
    pub created: Option<String>,
}

/// Durable key -> record map.
#[derive(Clone)]
pub struct Cache {
    dir: PathBuf,
    /// `--cache-from`/`--cache-to` state: lookups fall back to imported records; hits and new
    /// records are noted for export.
    remote: Option<std::sync::Arc<crate::cache::remote::RemoteCache>>,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache").field("dir", &self.dir).finish()
    }
}

impl Cache {
    /// The cache kept in `dir` (created if missing).
    pub fn open(dir: &Path) -> Result<Cache> {
        fs::create_dir_all(dir.join("keys"))?;
        Ok(Cache {
            dir: dir.to_path_buf(),
            remote: None,
        })
    }

    /// This cache backed by a remote one (see [`crate::cache::remote`]).
    pub fn with_remote(
        mut self,
        remote: std::sync::Arc<crate::cache::remote::RemoteCache>,
    ) -> Cache {
        self.remote = Some(remote);
        self
    }

    /// The cache's directory (for the context hash index and RUN cache mounts).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, key: &str) -> PathBuf {
        self.dir
            .join("keys")
            .join(key.trim_start_matches("sha256:"))
    }

    /// The record for `key`, if any.
    pub fn get(&self, key: &str) -> Option<CacheRecord> {
        let local = self.get_local(key);
        let Some(remote) = &self.remote else {
            return local;
        };
        let rec = remote.lookup(key, local.clone())?;
        if local.as_ref() != Some(&rec) {
            let _ = self.write(key, &rec);
        }
        Some(rec)
    }

    /// Stores `record` under `key` (temp file + rename).
    pub fn put(&self, key: &str, record: &CacheRecord) -> Result<()> {
        if let Some(remote) = &self.remote {
            remote.note(key, record);
        }
        self.write(key, record)
    }

    /// The record for `key` kept here only (never imported from or exported to a remote cache).
    pub fn get_local(&self, key: &str) -> Option<CacheRecord> {
        fs::read(self.path(key))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
    }

    /// Stores `record` under `key` here only (see [`Cache::get_local`]).
    pub fn put_local(&self, key: &str, record: &CacheRecord) -> Result<()> {
        self.write(key, record)
    }

    fn write(&self, key: &str, record: &CacheRecord) -> Result<()> {
        let mut tmp = tempfile::NamedTempFile::new_in(self.dir.join("keys"))?;
        tmp.write_all(&serde_json::to_vec(record)?)?;
        tmp.persist(self.path(key))?;
        Ok(())
    }

    /// Every layer the cache refers to (GC roots).
    pub fn layers(&self) -> Vec<String> {
        let Ok(rd) = fs::read_dir(self.dir.join("keys")) else {
            return Vec::new();
        };
        rd.filter_map(|e| e.ok())
            .filter_map(|e| fs::read(e.path()).ok())
            .filter_map(|b| serde_json::from_slice::<CacheRecord>(&b).ok())
            .filter_map(|r| r.diff_id)
            .collect()
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
