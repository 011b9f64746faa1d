//! The local store: an OCI image layout (`oci-layout`, `index.json`, `blobs/sha256/...`) plus
//! hoist's own bookkeeping next to it.
//!
//! ```text
//! ROOT/oci-layout, index.json      OCI image layout; tags are index entries annotated with
//!                                  org.opencontainers.image.ref.name = docker.io/library/busybox:latest
//!                                  (entries without that annotation are untagged "<none>" images)
//! ROOT/blobs/sha256/<hex>          content-addressed blobs, verified on write and read
//! ROOT/layerdb/<diffhex>/<gzip|zstd>  digest of a blob verified to hold that layer compressed;
//!                                  written once, never repointed
//! ROOT/unpacked/<diffhex>/         a layer extracted once, for use as an overlayfs lowerdir
//! ROOT/gcroots/<name>              digests (one per line) that GC must keep (e.g. the build cache)
//! ROOT/tmp/                        temp files; renamed into place only when complete and verified
//! ROOT/locks/                      flock files
//! ROOT/<name>/                     directories reserved for other crates via [`Store::dir`]
//! ```
//!
//! The root and the content directories are owner-only (0700; see [`crate::perms`]).
//!
//! Integrity: an image is recorded only once every layer blob is verified to be the layer its
//! config's `diff_ids` names ([`Store::put_manifests`]); names move last, in one index update, so
//! a failed pull, load or build changes nothing that was there.
//!
//! Concurrency: `index.json` is changed read-modify-write under an exclusive lock and replaced
//! atomically; blobs appear by rename only. GC takes the `gc` lock exclusively and is skipped while
//! any [`Lease`] (a shared hold on that lock) exists: hold one while writing blobs that no image
//! references yet, or while a container uses unpacked layers.
//!
//! Owns: every file under the store root except the directories handed out by [`Store::dir`].
//! Must not touch: the network, processes, or what other crates keep in their [`Store::dir`]s.
//! Split by concern: [`blobs`](BlobWriter) (content-addressed files), `layers` (commits, the
//! layerdb, unpacked layers), `images` (index.json, names, manifests), `indexes` (image indexes
//! and platform selection), `gc` (roots, prune, GC);
//! this module opens the store and holds its locks.

mod blobs;
mod gc;
mod images;
mod indexes;
mod layers;

pub use blobs::BlobWriter;
pub use gc::GcReport;
use images::IndexFile;
pub use images::{Image, ImageSummary};
pub use indexes::{IndexChild, is_index_type};

use std::fs::{self, File};
use std::path::{Path, PathBuf};

use crate::layer;
use crate::oci_layout;
use crate::{Error, IoContext, Result, media_type};

/// The annotation holding an index entry's image name.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";
/// Index-entry annotation: the digests (space separated) of the manifest lists this manifest was
/// pulled through, so `name@sha256:<index>` resolves to it as Docker's does.
pub const INDEX_DIGESTS: &str = "io.hoist.index.digests";

/// Subdirectories managed by the store itself; [`Store::dir`] refuses them.
const INTERNAL: &[&str] = &["blobs", "tmp", "locks", "layerdb", "unpacked", "gcroots"];

/// Directories made owner-only (besides the root itself): everything holding image content.
const PRIVATE: &[&str] = &[
    "blobs",
    "blobs/sha256",
    "tmp",
    "locks",
    "layerdb",
    "unpacked",
    "gcroots",
];

/// The default store: `/var/lib/hoist` for root, `$XDG_DATA_HOME/hoist` (or
/// `~/.local/share/hoist`) otherwise, including rootless hoist (root of a user namespace, where the
/// environment is still the user's). `HOIST_ROOT`/`--root` are handled by the CLI.
pub fn default_root() -> PathBuf {
    if rustix::process::geteuid().is_root() && !layer::in_user_namespace() {
        return PathBuf::from("/var/lib/hoist");
    }
    match std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        Some(x) => PathBuf::from(x).join("hoist"),
        None => PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/tmp".into()))
            .join(".local/share/hoist"),
    }
}

/// A handle on a store directory. Cheap to clone; safe to use from several processes.
#[derive(Clone, Debug)]
pub struct Store {
    root: PathBuf,
}

/// A shared hold on the store that keeps GC away (see the module docs).
pub struct Lease {
    _file: File,
}

/// An exclusive flock, released on drop.
pub(super) struct Locked {
    _file: File,
}

impl Store {
    /// Opens (creating if needed) the store at `root`. The root and the directories holding image
    /// content are made (and, in a store made by an older hoist, tightened to) owner-only, so other
    /// users can reach neither setuid files nor device nodes of unpacked layers (see [`crate::perms`]).
    pub fn open(root: impl AsRef<Path>) -> Result<Store> {
        let root = root.as_ref().to_path_buf();
        crate::perms::private_dir(&root)?;
        for d in PRIVATE {
            crate::perms::private_dir(&root.join(d))?;
        }
        let s = Store { root };
        s.sweep_tmp();
        let layout = s.root.join(oci_layout::LAYOUT_FILE);
        if !layout.exists() {
            s.write_atomic(&layout, oci_layout::LAYOUT_CONTENT)?;
        }
        if !s.root.join(oci_layout::INDEX_FILE).exists() {
            let _l = s.lock("index")?;
            if !s.root.join(oci_layout::INDEX_FILE).exists() {
                s.write_index(&IndexFile {
                    schema_version: 2,
                    media_type: Some(media_type::INDEX.into()),
                    manifests: Vec::new(),
                    extra: Default::default(),
                })?;
            }
        }
        Ok(s)
    }

    /// Removes what killed processes left in `tmp/` (a load's extracted archive, a blob half
    /// written): only while no [`Lease`] is held anywhere (so nothing is writing there) and only
    /// entries untouched for a minute ([`Store::write_atomic`] writes there without a lease, for
    /// milliseconds). Best effort.
    fn sweep_tmp(&self) {
        let Ok(f) = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.root.join("locks/gc.lock"))
        else {
            return;
        };
        if rustix::fs::flock(&f, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_err() {
            return;
        }
        let Ok(entries) = fs::read_dir(self.tmp_dir()) else {
            return;
        };
        let now = std::time::SystemTime::now();
        for e in entries.flatten() {
            let Ok(m) = e.path().symlink_metadata() else {
                continue;
            };
            let idle = m
                .modified()
                .ok()
                .and_then(|t| now.duration_since(t).ok())
                .is_some_and(|d| d.as_secs() >= 60);
            if idle {
                let _ = if m.is_dir() {
                    fs::remove_dir_all(e.path())
                } else {
                    fs::remove_file(e.path())
                };
            }
        }
    }

    /// The store's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A directory reserved for another part of hoist (`"volumes"`, `"cache"`, `"containers"`...),
    /// created on demand, owner-only (tightened when open to others). Names are lowercase `[a-z0-9_-]+` and not one of the store's own.
    pub fn dir(&self, name: &str) -> Result<PathBuf> {
        let ok = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
            && !INTERNAL.contains(&name);
        if !ok {
            return Err(Error::Other(format!(
                "invalid or reserved store directory name {name:?}"
            )));
        }
        // Owner-only like the store's own directories: volumes, cache mounts and containers hold
        // what builds and containers wrote (secrets, setuid files).
        let p = self.root.join(name);
        crate::perms::private_dir(&p)?;
        Ok(p)
    }

    /// Where temp files live (same filesystem as the blobs, so renames are atomic).
    pub fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// Writes `bytes` to `path` atomically (temp file in the store, fsync, rename).
    pub fn write_atomic(&self, path: &Path, bytes: &[u8]) -> Result<()> {
        crate::outfile::write_atomic_via(&self.tmp_dir(), path, bytes)
    }

    fn lock(&self, name: &str) -> Result<Locked> {
        let p = self.root.join("locks").join(format!("{name}.lock"));
        let f = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&p)
            .ctx(|| format!("opening {}", p.display()))?;
        rustix::fs::flock(&f, rustix::fs::FlockOperation::LockExclusive)
            .ctx(|| format!("locking {}", p.display()))?;
        Ok(Locked { _file: f })
    }

    /// Holds GC off until dropped (shared with other leases).
    pub fn lease(&self) -> Result<Lease> {
        let p = self.root.join("locks/gc.lock");
        let f = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&p)
            .ctx(|| format!("opening {}", p.display()))?;
        rustix::fs::flock(&f, rustix::fs::FlockOperation::LockShared)
            .ctx(|| "taking store lease")?;
        Ok(Lease { _file: f })
    }

    // ---- blobs ----

    /// The GC lock held exclusively, without waiting: None while a [`Lease`] (a build, pull, load
    /// or running container) holds the store. Nothing writes blobs or uses unpacked layers meanwhile.
    pub fn try_exclusive(&self) -> Result<Option<File>> {
        let p = self.root.join("locks/gc.lock");
        let f = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&p)
            .ctx(|| format!("opening {}", p.display()))?;
        Ok(
            rustix::fs::flock(&f, rustix::fs::FlockOperation::NonBlockingLockExclusive)
                .is_ok()
                .then_some(f),
        )
    }
}
