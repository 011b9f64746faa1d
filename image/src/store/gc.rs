//! Garbage collection: `prune`, GC roots (`gcroots/`), and removing what no image, root or
//! lease keeps.

use std::collections::HashSet;
use std::fs::{self, File};

use serde_json::Value;

use super::Store;
use crate::layer::Compression;
use crate::{Digest, IoContext, Result};

/// What GC removed.
#[derive(Clone, Debug, Default)]
pub struct GcReport {
    /// False when GC was skipped because a lease is held.
    pub ran: bool,
    pub blobs_removed: usize,
    pub bytes_removed: u64,
}

impl Store {
    /// Removes untagged images (all images with `all`), then GCs; returns the deleted image IDs.
    pub fn prune(&self, all: bool) -> Result<(Vec<Digest>, GcReport)> {
        let removed = self.update_index(|idx| {
            let named: HashSet<Digest> = idx
                .manifests
                .iter()
                .filter(|e| e.name().is_some())
                .map(|e| e.digest.clone())
                .collect();
            let mut gone = Vec::new();
            idx.manifests.retain(|e| {
                let keep = !all && named.contains(&e.digest);
                if !keep && !gone.contains(&e.digest) {
                    gone.push(e.digest.clone());
                }
                keep
            });
            Ok(gone)
        })?;
        let ids = removed
            .iter()
            .filter_map(|m| self.load_image(m).ok().map(|i| i.config_digest))
            .collect();
        Ok((ids, self.gc()?))
    }

    /// Records `digests` as GC roots under `name` (replacing earlier ones), e.g. for the build cache.
    pub fn set_gc_root(&self, name: &str, digests: &[Digest]) -> Result<()> {
        let body: String = digests.iter().map(|d| format!("{d}\n")).collect();
        let safe: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        self.write_atomic(&self.root.join("gcroots").join(safe), body.as_bytes())
    }

    /// Deletes blobs, compressed-layer records and unpacked layers no image or GC root refers to.
    /// Skipped (report `ran: false`) while a [`Lease`] is held anywhere.
    pub fn gc(&self) -> Result<GcReport> {
        let p = self.root.join("locks/gc.lock");
        let f = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&p)
            .ctx(|| format!("opening {}", p.display()))?;
        if rustix::fs::flock(&f, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_err() {
            return Ok(GcReport::default());
        }
        let mut live: HashSet<Digest> = HashSet::new();
        let mut diff_ids: HashSet<Digest> = HashSet::new();
        let mut todo: Vec<Digest> = self
            .read_index()?
            .manifests
            .into_iter()
            .map(|e| e.digest)
            .collect();
        for ent in fs::read_dir(self.root.join("gcroots")).ctx(|| "reading gcroots")? {
            let ent = ent.ctx(|| "reading gcroots")?;
            let s = fs::read_to_string(ent.path()).unwrap_or_default();
            todo.extend(s.lines().filter_map(|l| l.trim().parse::<Digest>().ok()));
        }
        while let Some(d) = todo.pop() {
            if !live.insert(d.clone()) {
                continue;
            }
            let Ok(bytes) = fs::read(self.blob_path(&d)) else {
                continue;
            };
            if bytes.first() != Some(&b'{') || bytes.len() > 4 << 20 {
                continue;
            }
            let Ok(v) = serde_json::from_slice::<Value>(&bytes) else {
                continue;
            };
            let digest_of = |x: &Value| {
                x.get("digest")
                    .and_then(|d| d.as_str())
                    .and_then(|d| d.parse::<Digest>().ok())
            };
            if let Some(c) = v.get("config").and_then(digest_of) {
                todo.push(c);
            }
            for key in ["layers", "manifests"] {
                if let Some(arr) = v.get(key).and_then(|a| a.as_array()) {
                    todo.extend(arr.iter().filter_map(digest_of));
                }
            }
            if let Some(ids) = v.pointer("/rootfs/diff_ids").and_then(|a| a.as_array()) {
                for id in ids
                    .iter()
                    .filter_map(|x| x.as_str()?.parse::<Digest>().ok())
                {
                    diff_ids.insert(id.clone());
                    todo.push(id.clone());
                    for c in [Compression::Gzip, Compression::Zstd] {
                        if let Some(b) = self.layer_blob(&id, c) {
                            todo.push(b);
                        }
                    }
                }
            }
        }
        let mut report = GcReport {
            ran: true,
            ..Default::default()
        };
        for ent in
            fs::read_dir(self.root.join(crate::oci_layout::SHA256_DIR)).ctx(|| "reading blobs")?
        {
            let ent = ent.ctx(|| "reading blobs")?;
            let name = ent.file_name().to_string_lossy().into_owned();
            let keep = format!("sha256:{name}")
                .parse::<Digest>()
                .is_ok_and(|d| live.contains(&d));
            if !keep {
                report.bytes_removed += ent.metadata().map(|m| m.len()).unwrap_or(0);
                report.blobs_removed += 1;
                fs::remove_file(ent.path()).ctx(|| format!("removing {}", ent.path().display()))?;
            }
        }
        for sub in ["layerdb", "unpacked"] {
            for ent in fs::read_dir(self.root.join(sub)).ctx(|| format!("reading {sub}"))? {
                let ent = ent.ctx(|| format!("reading {sub}"))?;
                let name = ent.file_name().to_string_lossy().into_owned();
                let keep = format!("sha256:{name}")
                    .parse::<Digest>()
                    .is_ok_and(|d| diff_ids.contains(&d));
                if !keep {
                    fs::remove_dir_all(ent.path())
                        .ctx(|| format!("removing {}", ent.path().display()))?;
                }
            }
        }
        // No lease is held, so nothing in tmp/ is being written.
        for ent in fs::read_dir(self.tmp_dir())
            .ctx(|| "reading tmp")?
            .flatten()
        {
            let p = ent.path();
            let _ = if p.is_dir() {
                fs::remove_dir_all(&p)
            } else {
                fs::remove_file(&p)
            };
        }
        Ok(report)
    }
}
