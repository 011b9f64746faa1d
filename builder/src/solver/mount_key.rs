//! What the `--mount`s of a RUN add to its cache key, as BuildKit's exec op computes it: the mount
//! specs (targets, sources, `readonly`, cache ids, secret and ssh ids, tmpfs sizes), and the
//! *content* of what bind mounts and cache-mount seeds read: the checksum of the `source` path of
//! their input (symlinks in it followed), never the rest of that input. Cache directories, secret
//! values, SSH sockets and tmpfs contents never enter a key.
//!
//! A context (main or named) is hashed through its `.dockerignore`, without owners (BuildKit's
//! client sends context files as 0:0); a stage or an image is hashed with owners, as BuildKit's
//! content checksums include them. The checksum of a stage or image path is remembered under its
//! layer list, so a cached stage is not hashed again on the next build.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;

use anyhow::Result;
use sha2::{Digest as _, Sha256};

use super::{ChainResult, Solver};
use crate::cache::key_of;
use crate::context::{SourceRoot, sha256_file, walk};
use crate::copy::{CopyOptions, digest_sources, resolve_sources};
use crate::paths::{clean, resolve_in_root};
use crate::plan::{ExecMount, ExecOp, Input};

/// Bumped when the way stage and image sources are hashed changes.
const SOURCE_DIGEST_VERSION: &str = "hoist-mount-source-v1";

/// Whether a mount source names its input's whole root.
fn is_root(source: &str) -> bool {
    clean(&format!("/{source}")) == "/"
}

impl Solver {
    /// The content checksums an exec's mounts add to its key, one per bind mount and per cache
    /// mount seeded `from` an input, in mount order.
    pub(crate) fn mount_digests(
        &self,
        e: &ExecOp,
        wait: &dyn Fn(usize) -> Result<Arc<ChainResult>>,
    ) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for m in &e.mounts {
            let (from, source) = match m {
                ExecMount::Bind { from, source, .. } => (from, source),
                ExecMount::Cache(crate::plan::CacheMount {
                    from: Some(from),
                    source,
                    ..
                }) => (from, source),
                _ => continue,
            };
            // A missing source is copy::NotFound, which the solver reports as BuildKit does.
            let d = self.source_digest(from, source, wait)?;
            out.push(d);
        }
        Ok(out)
    }

    /// The checksum of `source` in `from`.
    fn source_digest(
        &self,
        from: &Input,
        source: &str,
        wait: &dyn Fn(usize) -> Result<Arc<ChainResult>>,
    ) -> Result<String> {
        match from {
            Input::Context | Input::Local(_) => {
                let root = self.local_root(from)?;
                let source = if is_root(source) { "." } else { source };
                let matched = resolve_sources(root, source)?;
                digest_sources(root, &matched, &CopyOptions::default(), &self.index, None)
            }
            Input::Inline(files) => Ok(crate::context::sha256_bytes(
                format!("{}\0{}", serde_json::to_string(files)?, clean(source)).as_bytes(),
            )),
            Input::Chain(_) | Input::Image(_) => {
                let diff_ids = self.input_diff_ids(from, wait)?;
                let memo = key_of(&[
                    SOURCE_DIGEST_VERSION,
                    &diff_ids.join(","),
                    &clean(&format!("/{source}")),
                ]);
                let memo_path = self
                    .cache
                    .dir()
                    .join("mount-sources")
                    .join(memo.trim_start_matches("sha256:"));
                if let Ok(d) = fs::read_to_string(&memo_path) {
                    return Ok(d);
                }
                let root = self.input_root(from, wait)?;
                let d = tree_digest(&root.root, source)?;
                remember(&memo_path, &d)?;
                Ok(d)
            }
        }
    }
}

/// Writes `value` at `path` atomically (temp file + rename).
fn remember(path: &Path, value: &str) -> Result<()> {
    let dir = path.parent().expect("memo path has a parent");
    fs::create_dir_all(dir)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(value.as_bytes())?;
    tmp.persist(path)?;
    Ok(())
}

/// The checksum of `source` (symlinks followed) inside the plain tree `root`: for each entry of
/// it, sorted, its path, type, mode, owner, symlink target and file content (never times).
pub fn tree_digest(root: &Path, source: &str) -> Result<String> {
    let top = resolve_in_root(root, source, true)?;
    let meta = fs::symlink_metadata(&top).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            anyhow::Error::new(crate::copy::NotFound::in_root(
                root,
                &clean(&format!("/{source}")),
            ))
        } else {
            anyhow::Error::new(e).context(format!("reading {}", top.display()))
        }
    })?;
    let mut h = Sha256::new();
    entry(&mut h, "", &top, &meta)?;
    if meta.is_dir() {
        let rel = top
            .strip_prefix(root)
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        for e in walk(&SourceRoot::plain(root), &rel, None)? {
            entry(&mut h, &e.rel, &e.path, &e.meta)?;
        }
    }
    Ok(format!("sha256:{}", hex::encode(h.finalize())))
}

fn entry(h: &mut Sha256, rel: &str, path: &Path, meta: &fs::Metadata) -> Result<()> {
    let ft = meta.file_type();
    let (kind, content) = if ft.is_file() {
        ('f', sha256_file(path)?)
    } else if ft.is_symlink() {
        ('l', fs::read_link(path)?.to_string_lossy().into_owned())
    } else if ft.is_dir() {
        ('d', String::new())
    } else {
        ('o', format!("{}", meta.rdev()))
    };
    h.update(format!(
        "{kind} {:o} {}:{} {rel}\0{content}\n",
        meta.mode() & 0o7777,
        meta.uid(),
        meta.gid()
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{PermissionsExt, symlink};

    #[test]
    fn tree_digest_covers_content_modes_owners_and_follows_the_source_link() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        fs::create_dir_all(r.join("app/sub")).unwrap();
        fs::write(r.join("app/sub/a"), "a").unwrap();
        fs::write(r.join("other"), "x").unwrap();
        symlink("app", r.join("link")).unwrap();
        let before = tree_digest(r, "app").unwrap();
        // The source link is followed; unrelated files do not count.
        assert_eq!(tree_digest(r, "link").unwrap(), before);
        fs::write(r.join("other"), "y").unwrap();
        assert_eq!(tree_digest(r, "/app/").unwrap(), before);
        // Content, mode and owner of anything below do.
        fs::write(r.join("app/sub/a"), "b").unwrap();
        let content = tree_digest(r, "app").unwrap();
        assert_ne!(content, before);
        fs::set_permissions(r.join("app/sub/a"), fs::Permissions::from_mode(0o600)).unwrap();
        let mode = tree_digest(r, "app").unwrap();
        assert_ne!(mode, content);
        if rustix::process::geteuid().is_root() {
            std::os::unix::fs::chown(r.join("app/sub"), Some(7), Some(7)).unwrap();
            assert_ne!(tree_digest(r, "app").unwrap(), mode);
        }
        let e = tree_digest(r, "missing").unwrap_err();
        let e = e.downcast::<crate::copy::NotFound>().unwrap();
        assert_eq!(e.path, "/missing");
    }
}
