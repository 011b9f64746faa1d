//! The local tier: one small JSON file per key under the store's `cache/keys/` directory, written
//! atomically, so a crash never leaves a half-written record. A record's file time is its last
//! use.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Result;

use super::{CacheRecord, Tier};

/// Records in a directory.
#[derive(Debug, Clone)]
pub struct LocalTier {
    dir: PathBuf,
}

impl LocalTier {
    /// The records kept in `dir` (created if missing).
    pub fn open(dir: &Path) -> Result<LocalTier> {
        fs::create_dir_all(dir.join("keys"))?;
        Ok(LocalTier {
            dir: dir.to_path_buf(),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, key: &str) -> PathBuf {
        self.dir
            .join("keys")
            .join(key.trim_start_matches("sha256:"))
    }

    /// Every layer a record refers to (GC roots).
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

impl Tier for LocalTier {
    /// The lowest tier: `below` is always None. A hit marks the record used now (its file time),
    /// which `builder prune` and the cache cap evict by.
    fn lookup(&self, key: &str, _below: Option<CacheRecord>) -> Option<CacheRecord> {
        let path = self.path(key);
        let rec = fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())?;
        let _ = filetime::set_file_mtime(&path, filetime::FileTime::now());
        Some(rec)
    }

    /// Temp file + rename.
    fn store(&self, key: &str, record: &CacheRecord) -> Result<()> {
        let mut tmp = tempfile::NamedTempFile::new_in(self.dir.join("keys"))?;
        tmp.write_all(&serde_json::to_vec(record)?)?;
        tmp.persist(self.path(key))?;
        Ok(())
    }
}
