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

use std::collections::{BTreeMap, HashSet};
use std::fs::{self, File};
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use oci_spec::image::{Descriptor, ImageManifest};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::layer::{self, ApplyMode, Compression, LayerInfo, LayerOptions};
use crate::{
    Digest, Error, HashingWriter, ImageConfig, IoContext, Reference, Result, VerifyingReader,
    media_type,
};

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

/// An image resolved from the store.
#[derive(Clone, Debug)]
pub struct Image {
    /// Digest of the manifest blob.
    pub manifest_digest: Digest,
    pub manifest: ImageManifest,
    /// Digest of the config blob: the image ID, as Docker shows it.
    pub config_digest: Digest,
    pub config: ImageConfig,
    /// Every name in the store pointing at this manifest.
    pub names: Vec<Reference>,
}

impl Image {
    /// The image ID (config digest).
    pub fn id(&self) -> &Digest {
        &self.config_digest
    }

    /// `(diff_id, blob descriptor)` for each layer, bottom first.
    pub fn layers(&self) -> Result<Vec<(Digest, Descriptor)>> {
        let diff_ids = &self.config.rootfs.diff_ids;
        let blobs = self.manifest.layers();
        if diff_ids.len() != blobs.len() {
            return Err(Error::Invalid {
                what: format!("image {}", self.config_digest),
                why: format!(
                    "{} layers in the manifest but {} diff_ids in the config",
                    blobs.len(),
                    diff_ids.len()
                ),
            });
        }
        Ok(diff_ids
            .iter()
            .cloned()
            .zip(blobs.iter().cloned())
            .collect())
    }

    /// Sum of the layer blob sizes.
    pub fn size(&self) -> u64 {
        self.manifest.layers().iter().map(|l| l.size()).sum()
    }
}

/// One row of `hoist images`.
#[derive(Clone, Debug)]
pub struct ImageSummary {
    pub name: Option<Reference>,
    pub id: Digest,
    pub manifest_digest: Digest,
    pub created: Option<String>,
    pub size: u64,
}

/// What GC removed.
#[derive(Clone, Debug, Default)]
pub struct GcReport {
    /// False when GC was skipped because a lease is held.
    pub ran: bool,
    pub blobs_removed: usize,
    pub bytes_removed: u64,
}

/// A shared hold on the store that keeps GC away (see the module docs).
pub struct Lease {
    _file: File,
}

/// An exclusive flock, released on drop.
struct Locked {
    _file: File,
}

/// The on-disk `index.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct IndexFile {
    schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Vec<IndexEntry>,
    #[serde(flatten)]
    extra: serde_json::Map<String, Value>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct IndexEntry {
    media_type: String,
    digest: Digest,
    size: u64,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    annotations: BTreeMap<String, String>,
    #[serde(flatten)]
    extra: serde_json::Map<String, Value>,
}

impl IndexEntry {
    fn name(&self) -> Option<Reference> {
        self.annotations
            .get(REF_NAME)
            .and_then(|n| Reference::parse(n).ok())
    }

    fn index_digests(&self) -> impl Iterator<Item = &str> {
        self.annotations
            .get(INDEX_DIGESTS)
            .map(|s| s.split(' '))
            .into_iter()
            .flatten()
            .filter(|d| !d.is_empty())
    }

    /// Whether `name@d` names this entry's manifest: its own digest or an index it came from.
    fn answers_to(&self, d: &Digest) -> bool {
        self.digest == *d || self.index_digests().any(|x| x == d.as_str())
    }
}

/// A blob being written: bytes go to a temp file and are hashed; [`BlobWriter::commit`] verifies
/// and renames into place. Dropping it uncommitted deletes the temp file.
pub struct BlobWriter {
    inner: HashingWriter<BufWriter<tempfile::NamedTempFile>>,
    store: Store,
    _lease: Lease,
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.inner.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl BlobWriter {
    /// Finishes the blob: fsync, verify against `expected` (if given), rename into `blobs/`.
    pub fn commit(self, expected: Option<&Digest>) -> Result<(Digest, u64)> {
        let (buf, digest, size) = self.inner.finish();
        let tmp = buf.into_inner().map_err(|e| Error::Io {
            context: "writing blob".into(),
            error: e.into_error(),
        })?;
        if let Some(exp) = expected
            && *exp != digest
        {
            return Err(Error::DigestMismatch {
                what: "blob".into(),
                expected: exp.clone(),
                actual: digest,
            });
        }
        let dest = self.store.blob_path(&digest);
        if !dest.exists() {
            tmp.as_file().sync_all().ctx(|| "fsync blob")?;
            tmp.persist(&dest).map_err(|e| Error::Io {
                context: format!("storing {}", dest.display()),
                error: e.error,
            })?;
        }
        Ok((digest, size))
    }
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
        let layout = s.root.join("oci-layout");
        if !layout.exists() {
            s.write_atomic(&layout, br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        }
        if !s.root.join("index.json").exists() {
            let _l = s.lock("index")?;
            if !s.root.join("index.json").exists() {
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

    /// Path of a blob (whether or not it exists).
    pub fn blob_path(&self, d: &Digest) -> PathBuf {
        self.root.join("blobs/sha256").join(d.hex())
    }

    pub fn has_blob(&self, d: &Digest) -> bool {
        self.blob_path(d).is_file()
    }

    /// Size of a stored blob.
    pub fn blob_size(&self, d: &Digest) -> Result<u64> {
        Ok(fs::metadata(self.blob_path(d))
            .map_err(|_| Error::BlobNotFound(d.clone()))?
            .len())
    }

    /// Starts writing a blob (see [`BlobWriter`]).
    pub fn blob_writer(&self) -> Result<BlobWriter> {
        let lease = self.lease()?;
        let tmp = tempfile::NamedTempFile::new_in(self.tmp_dir()).ctx(|| "creating temp blob")?;
        Ok(BlobWriter {
            inner: HashingWriter::new(BufWriter::with_capacity(1 << 20, tmp)),
            store: self.clone(),
            _lease: lease,
        })
    }

    /// Streams `reader` into a blob; with `expected`, refuses content with another digest.
    pub fn put_blob<R: Read>(
        &self,
        mut reader: R,
        expected: Option<&Digest>,
    ) -> Result<(Digest, u64)> {
        if let Some(d) = expected
            && self.has_blob(d)
        {
            return Ok((d.clone(), self.blob_size(d)?));
        }
        let mut w = self.blob_writer()?;
        std::io::copy(&mut reader, &mut w).ctx(|| "writing blob")?;
        w.commit(expected)
    }

    /// Stores a layer blob (compressed or not) from `reader`, checking while it streams that its
    /// uncompressed content is the layer `diff_id`: on a mismatch nothing is stored. The blob is
    /// then recorded as that layer's compressed form. With `expected`, the blob's own digest must
    /// be that too (checked first). Returns its digest, size and compression.
    pub fn put_layer_blob<R: Read>(
        &self,
        mut reader: R,
        expected: Option<&Digest>,
        diff_id: &Digest,
    ) -> Result<(Digest, u64, Compression)> {
        let mut w = self.blob_writer()?;
        let mut d = layer::DiffIdWriter::new();
        std::io::copy(&mut reader, &mut layer::Tee(&mut w, &mut d))
            .ctx(|| format!("storing layer {diff_id}"))?;
        let blob = w.inner.digest();
        if let Some(exp) = expected
            && *exp != blob
        {
            return Err(Error::DigestMismatch {
                what: "layer blob".into(),
                expected: exp.clone(),
                actual: blob,
            });
        }
        let (actual, c) = d
            .finish()
            .ctx(|| format!("decompressing layer blob {blob}"))?;
        if actual != *diff_id {
            return Err(Error::LayerMismatch {
                blob,
                expected: diff_id.clone(),
                actual,
            });
        }
        let (b, size) = w.commit(None)?;
        self.register_layer_blob(diff_id, &b, c)?;
        Ok((b, size, c))
    }

    /// Stores a small blob from memory.
    pub fn put_blob_bytes(&self, bytes: &[u8]) -> Result<Digest> {
        let d = Digest::of(bytes);
        if !self.has_blob(&d) {
            self.put_blob(bytes, Some(&d))?;
        }
        Ok(d)
    }

    /// Opens a blob for streaming; the reader fails at EOF if the content does not match.
    pub fn open_blob(&self, d: &Digest) -> Result<VerifyingReader<BufReader<File>>> {
        let f = File::open(self.blob_path(d)).map_err(|_| Error::BlobNotFound(d.clone()))?;
        Ok(VerifyingReader::new(
            BufReader::with_capacity(1 << 20, f),
            d.clone(),
        ))
    }

    /// Reads a whole (small) blob, verified.
    pub fn read_blob(&self, d: &Digest) -> Result<Vec<u8>> {
        let bytes = fs::read(self.blob_path(d)).map_err(|_| Error::BlobNotFound(d.clone()))?;
        let actual = Digest::of(&bytes);
        if actual != *d {
            return Err(Error::DigestMismatch {
                what: format!("stored blob {}", self.blob_path(d).display()),
                expected: d.clone(),
                actual,
            });
        }
        Ok(bytes)
    }

    // ---- layers ----

    /// Commits a directory tree as an (uncompressed) layer blob.
    pub fn commit_dir(&self, dir: &Path, opts: &LayerOptions) -> Result<LayerInfo> {
        let w = layer::write_dir(dir, opts, self.blob_writer()?)?;
        Self::layer_info(w.commit(None)?)
    }

    /// Commits an overlayfs upper directory (a RUN step's changes) as a layer blob with whiteouts.
    pub fn commit_overlay_upper(&self, upper: &Path, opts: &LayerOptions) -> Result<LayerInfo> {
        let w = layer::write_overlay_upper(upper, opts, self.blob_writer()?)?;
        Self::layer_info(w.commit(None)?)
    }

    /// Commits a directory tree in one pass as both the uncompressed layer blob and its compressed
    /// form `c` (cached for push/save). Returns the uncompressed layer and the compressed descriptor.
    pub fn commit_dir_compressed(
        &self,
        dir: &Path,
        opts: &LayerOptions,
        c: Compression,
    ) -> Result<(LayerInfo, Descriptor)> {
        let enc = layer::Compressor::new(self.blob_writer()?, c, u64::MAX)
            .ctx(|| "starting compressor")?;
        let tee = layer::write_dir(dir, opts, layer::Tee(self.blob_writer()?, enc))?;
        let layer::Tee(plain, enc) = tee;
        let info = Self::layer_info(plain.commit(None)?)?;
        let (b, size) = enc.finish().ctx(|| "compressing layer")?.commit(None)?;
        self.register_layer_blob(&info.diff_id, &b, c)?;
        Ok((
            info,
            Descriptor::new(c.media_type().into(), size, b.to_oci()),
        ))
    }

    /// Stores a layer tar given as a stream (uncompressed, gzip or zstd), uncompressed, once it has
    /// read through as a whole tar archive ([`layer::copy_checked_tar`]); otherwise nothing is
    /// stored and the error is [`Error::Invalid`].
    pub fn commit_tar<R: Read>(&self, reader: R) -> Result<LayerInfo> {
        let r = layer::decompress(reader)?;
        let mut w = self.blob_writer()?;
        layer::copy_checked_tar(r, &mut w).map_err(|e| Error::Invalid {
            what: "tar archive".into(),
            why: e.to_string(),
        })?;
        Self::layer_info(w.commit(None)?)
    }

    fn layer_info((digest, size): (Digest, u64)) -> Result<LayerInfo> {
        Ok(LayerInfo::uncompressed(digest, size))
    }

    /// Records that `blob` (compressed with `c`) holds the layer `diff_id`; the caller has verified
    /// that it does ([`Store::verify_layer_blob`] does both). A record already naming a stored blob
    /// is never replaced: a later image cannot change what an existing layer reads as.
    pub fn register_layer_blob(
        &self,
        diff_id: &Digest,
        blob: &Digest,
        c: Compression,
    ) -> Result<()> {
        if c == Compression::None || self.layer_blob(diff_id, c).is_some() {
            return Ok(());
        }
        let dir = self.root.join("layerdb").join(diff_id.hex());
        fs::create_dir_all(&dir).ctx(|| format!("creating {}", dir.display()))?;
        self.write_atomic(&dir.join(c.name()), blob.as_str().as_bytes())
    }

    /// Checks that the stored blob `blob` is the layer `diff_id` (its uncompressed content hashes to
    /// `diff_id`) and records it as that layer's compressed form. A blob that is the layer itself
    /// or is already recorded for it is not read again.
    pub fn verify_layer_blob(&self, diff_id: &Digest, blob: &Digest) -> Result<()> {
        if !self.has_blob(blob) {
            return Err(Error::BlobNotFound(blob.clone()));
        }
        if blob == diff_id
            || [Compression::Gzip, Compression::Zstd]
                .iter()
                .any(|c| self.layer_blob(diff_id, *c).as_ref() == Some(blob))
        {
            return Ok(());
        }
        let mut r = BufReader::with_capacity(1 << 20, self.open_blob(blob)?);
        let c = layer::detect(&mut r)?;
        let mut h = crate::HashingReader::new(layer::decompress(r)?);
        std::io::copy(&mut h, &mut std::io::sink()).ctx(|| format!("reading layer blob {blob}"))?;
        let (_, actual, _) = h.finish();
        if actual != *diff_id {
            return Err(Error::LayerMismatch {
                blob: blob.clone(),
                expected: diff_id.clone(),
                actual,
            });
        }
        self.register_layer_blob(diff_id, blob, c)
    }

    /// The stored blob holding `diff_id` in compression `c`, if any.
    pub fn layer_blob(&self, diff_id: &Digest, c: Compression) -> Option<Digest> {
        if c == Compression::None {
            return self.has_blob(diff_id).then(|| diff_id.clone());
        }
        let s = fs::read_to_string(self.root.join("layerdb").join(diff_id.hex()).join(c.name()))
            .ok()?;
        let d: Digest = s.trim().parse().ok()?;
        self.has_blob(&d).then_some(d)
    }

    /// The uncompressed tar of a layer, from whichever blob holds it; verified against `diff_id`.
    pub fn open_layer(&self, diff_id: &Digest) -> Result<Box<dyn Read>> {
        for c in [Compression::None, Compression::Gzip, Compression::Zstd] {
            if let Some(b) = self.layer_blob(diff_id, c) {
                let r = layer::decompress(self.open_blob(&b)?)?;
                return Ok(Box::new(VerifyingReader::new(r, diff_id.clone())));
            }
        }
        Err(Error::BlobNotFound(diff_id.clone()))
    }

    /// The layer compressed with `c`, made once and cached as a blob (for push and save).
    pub fn compressed_layer(&self, diff_id: &Digest, c: Compression) -> Result<Descriptor> {
        if let Some(b) = self.layer_blob(diff_id, c) {
            return Ok(Descriptor::new(
                c.media_type().into(),
                self.blob_size(&b)?,
                b.to_oci(),
            ));
        }
        let src = self.open_layer(diff_id)?;
        let w = layer::compress(src, c, self.blob_writer()?)
            .ctx(|| format!("compressing layer {diff_id}"))?;
        let (b, size) = w.commit(None)?;
        self.register_layer_blob(diff_id, &b, c)?;
        Ok(Descriptor::new(c.media_type().into(), size, b.to_oci()))
    }

    /// The layer extracted (once per diff_id) as an overlayfs lowerdir: whiteouts are 0/0 char
    /// devices and opaque directories carry `trusted.overlay.opaque=y` (`user.overlay.opaque=y`
    /// when rootless). Safe to call concurrently.
    pub fn unpacked_layer(&self, diff_id: &Digest) -> Result<PathBuf> {
        let dir = self.root.join("unpacked").join(diff_id.hex());
        if dir.is_dir() {
            return Ok(dir);
        }
        let _l = self.lock(&format!("unpack-{}", diff_id.hex()))?;
        if dir.is_dir() {
            return Ok(dir);
        }
        let tmp = self.root.join("unpacked").join(format!(
            ".tmp-{}-{}",
            diff_id.hex(),
            std::process::id()
        ));
        let _ = fs::remove_dir_all(&tmp);
        fs::create_dir(&tmp).ctx(|| format!("creating {}", tmp.display()))?;
        fs::set_permissions(&tmp, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .ctx(|| "chmod")?;
        let result = self
            .open_layer(diff_id)
            .and_then(|r| layer::apply_layer(r, &tmp, ApplyMode::OverlayLower));
        match result {
            Ok((d, _)) if d == *diff_id => {}
            Ok((d, _)) => {
                let _ = fs::remove_dir_all(&tmp);
                return Err(Error::DigestMismatch {
                    what: "layer".into(),
                    expected: diff_id.clone(),
                    actual: d,
                });
            }
            Err(e) => {
                let _ = fs::remove_dir_all(&tmp);
                return Err(e);
            }
        }
        fs::rename(&tmp, &dir).ctx(|| format!("renaming into {}", dir.display()))?;
        Ok(dir)
    }

    /// Unpacked lowerdirs for every layer of `image`, bottom first (overlayfs wants them top first:
    /// reverse before joining with ':').
    pub fn unpacked_layers(&self, image: &Image) -> Result<Vec<PathBuf>> {
        image
            .config
            .rootfs
            .diff_ids
            .iter()
            .map(|d| self.unpacked_layer(d))
            .collect()
    }

    /// A new empty directory (mode 0755) on the unpacked layers' filesystem, for laying out a layer's
    /// files while its tar is written; [`Store::adopt_unpacked`] then makes it the layer's unpacked
    /// form, so nothing has to extract the tar again. GC removes one left behind.
    pub fn staging_dir(&self) -> Result<PathBuf> {
        let parent = self.root.join("unpacked");
        spread_subdirs(&parent);
        spread_subdirs(&self.tmp_dir());
        let dir = tempfile::Builder::new()
            .prefix(".stage-")
            .tempdir_in(&parent)
            .ctx(|| format!("creating a directory in {}", parent.display()))?
            .keep();
        fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .ctx(|| format!("chmod {}", dir.display()))?;
        Ok(dir)
    }

    /// Makes `dir` (from [`Store::staging_dir`], holding exactly what extracting the layer `diff_id`
    /// in [`ApplyMode::OverlayLower`] gives) that layer's unpacked form. False when the layer was
    /// unpacked already: `dir` is then left to the caller.
    pub fn adopt_unpacked(&self, diff_id: &Digest, dir: &Path) -> Result<bool> {
        let target = self.root.join("unpacked").join(diff_id.hex());
        if target.is_dir() {
            return Ok(false);
        }
        match fs::rename(dir, &target) {
            Ok(()) => Ok(true),
            // Another process unpacked it meanwhile (rename onto a non-empty directory).
            Err(_) if target.is_dir() => Ok(false),
            Err(e) => Err(Error::Io {
                context: format!("renaming {} to {}", dir.display(), target.display()),
                error: e,
            }),
        }
    }

    // ---- index and images ----

    fn read_index(&self) -> Result<IndexFile> {
        let p = self.root.join("index.json");
        let bytes = fs::read(&p).ctx(|| format!("reading {}", p.display()))?;
        serde_json::from_slice(&bytes).map_err(|e| Error::Invalid {
            what: p.display().to_string(),
            why: e.to_string(),
        })
    }

    fn write_index(&self, idx: &IndexFile) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(idx).expect("index serialises");
        self.write_atomic(&self.root.join("index.json"), &bytes)
    }

    fn update_index<T>(&self, f: impl FnOnce(&mut IndexFile) -> Result<T>) -> Result<T> {
        let _l = self.lock("index")?;
        let mut idx = self.read_index()?;
        let out = f(&mut idx)?;
        self.write_index(&idx)?;
        Ok(out)
    }

    /// Writes the config and manifest blobs for an image made of `layers` (descriptors of blobs
    /// already in the store) and points each of `tags` at it. With no tags the image is kept untagged.
    pub fn write_image(
        &self,
        config: &ImageConfig,
        layers: &[Descriptor],
        tags: &[Reference],
    ) -> Result<Image> {
        self.write_image_annotated(config, layers, tags, &Default::default())
    }

    /// [`Store::write_image`] with manifest `annotations` (omitted when empty), e.g. an inline
    /// build cache.
    pub fn write_image_annotated(
        &self,
        config: &ImageConfig,
        layers: &[Descriptor],
        tags: &[Reference],
        annotations: &std::collections::BTreeMap<String, String>,
    ) -> Result<Image> {
        let _lease = self.lease()?;
        for l in layers {
            let d = Digest::from_oci(l.digest())?;
            if !self.has_blob(&d) {
                return Err(Error::BlobNotFound(d));
            }
        }
        let cfg_bytes = config.to_bytes();
        let cfg = self.put_blob_bytes(&cfg_bytes)?;
        let mut manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": media_type::MANIFEST,
            "config": { "mediaType": media_type::CONFIG, "digest": cfg, "size": cfg_bytes.len() },
            "layers": layers,
        });
        if !annotations.is_empty() {
            manifest["annotations"] = serde_json::json!(annotations);
        }
        let bytes = serde_json::to_vec(&manifest).expect("manifest serialises");
        self.put_manifest(&bytes, tags)
    }

    /// Stores a manifest (OCI or Docker schema 2) whose config and layer blobs are already in the
    /// store, and points `tags` at it, once every layer is verified against the config's diff_ids
    /// (see [`Store::put_manifests`]). Used by pulls and loads.
    pub fn put_manifest(&self, bytes: &[u8], tags: &[Reference]) -> Result<Image> {
        let mut images = self.put_manifests(&[(bytes.to_vec(), tags.to_vec())])?;
        Ok(images.remove(0))
    }

    /// Stores several manifests as one transaction: every layer blob of every image is verified to
    /// be the layer its config's `diff_ids` names (compressed forms decompressed and hashed, unless
    /// already verified), and only then are the manifests written and the tags moved, all in one
    /// index update. On any error nothing visible has changed: no tag moved, no layer record
    /// written for a layer that did not verify.
    pub fn put_manifests(&self, images: &[(Vec<u8>, Vec<Reference>)]) -> Result<Vec<Image>> {
        self.put_manifests_from(images, None)
    }

    /// [`Store::put_manifest`] for a manifest selected from the manifest list `index_digest` (a
    /// pull): the tags and the index digest (see [`Store::add_index_digest`]) are recorded in the
    /// same index update, so an interrupted pull never leaves one without the other.
    pub fn put_pulled_manifest(
        &self,
        bytes: &[u8],
        tags: &[Reference],
        index_digest: Option<&Digest>,
    ) -> Result<Image> {
        let mut images =
            self.put_manifests_from(&[(bytes.to_vec(), tags.to_vec())], index_digest)?;
        Ok(images.remove(0))
    }

    fn put_manifests_from(
        &self,
        images: &[(Vec<u8>, Vec<Reference>)],
        index_digest: Option<&Digest>,
    ) -> Result<Vec<Image>> {
        let _lease = self.lease()?;
        let mut staged = Vec::new();
        for (bytes, _) in images {
            staged.push(self.verify_manifest(bytes)?);
        }
        let mut digests = Vec::new();
        for ((bytes, _), mt) in images.iter().zip(&staged) {
            digests.push((self.put_blob_bytes(bytes)?, mt.clone(), bytes.len() as u64));
        }
        self.update_index(|idx| {
            for ((_, tags), (md, mt, size)) in images.iter().zip(&digests) {
                let entry = |name: Option<&Reference>| IndexEntry {
                    media_type: mt.clone(),
                    digest: md.clone(),
                    size: *size,
                    annotations: name
                        .map(|n| BTreeMap::from([(REF_NAME.to_string(), n.to_string())]))
                        .unwrap_or_default(),
                    extra: Default::default(),
                };
                for t in tags {
                    set_tag(idx, t, entry(Some(t)));
                }
                if !idx.manifests.iter().any(|e| e.digest == *md) {
                    idx.manifests.push(entry(None));
                }
                if let Some(index) = index_digest {
                    note_index_digest(idx, md, index);
                }
            }
            Ok(())
        })?;
        digests
            .iter()
            .map(|(md, _, _)| self.load_image(md))
            .collect()
    }

    /// Checks a manifest before it is stored: it parses, its config is stored and parses, and each
    /// layer blob is stored and is the layer its diff_id names. Returns the manifest's media type.
    fn verify_manifest(&self, bytes: &[u8]) -> Result<String> {
        let manifest: ImageManifest =
            serde_json::from_slice(bytes).map_err(|e| Error::Invalid {
                what: "image manifest".into(),
                why: e.to_string(),
            })?;
        let cfg_digest = Digest::from_oci(manifest.config().digest())?;
        let config: ImageConfig =
            serde_json::from_slice(&self.read_blob(&cfg_digest)?).map_err(|e| Error::Invalid {
                what: format!("image config {cfg_digest}"),
                why: e.to_string(),
            })?;
        if config.rootfs.diff_ids.len() != manifest.layers().len() {
            return Err(Error::Invalid {
                what: "image manifest".into(),
                why: format!(
                    "{} layers but {} diff_ids in the config {cfg_digest}",
                    manifest.layers().len(),
                    config.rootfs.diff_ids.len()
                ),
            });
        }
        for (diff_id, l) in config.rootfs.diff_ids.iter().zip(manifest.layers()) {
            self.verify_layer_blob(diff_id, &Digest::from_oci(l.digest())?)?;
        }
        Ok(match manifest.media_type() {
            Some(m) => m.to_string(),
            None => media_type::MANIFEST.to_string(),
        })
    }

    /// Records that the stored manifest `manifest_digest` was selected from the manifest list
    /// `index_digest` (a pull of `name@index_digest` or of a tag naming it), so references by the
    /// index's digest resolve to it.
    pub fn add_index_digest(&self, manifest_digest: &Digest, index_digest: &Digest) -> Result<()> {
        self.update_index(|idx| {
            note_index_digest(idx, manifest_digest, index_digest);
            Ok(())
        })
    }

    /// The image's size as Docker reports it: uncompressed layer sizes where the uncompressed blob
    /// is stored, the blob size otherwise.
    pub fn image_size(&self, image: &Image) -> u64 {
        match image.layers() {
            Ok(layers) => layers
                .iter()
                .map(|(diff_id, d)| self.blob_size(diff_id).unwrap_or(d.size()))
                .sum(),
            Err(_) => image.size(),
        }
    }

    /// Reads an image by manifest digest.
    pub fn load_image(&self, manifest_digest: &Digest) -> Result<Image> {
        let bytes = self.read_blob(manifest_digest)?;
        let manifest: ImageManifest =
            serde_json::from_slice(&bytes).map_err(|e| Error::Invalid {
                what: format!("manifest {manifest_digest}"),
                why: e.to_string(),
            })?;
        let config_digest = Digest::from_oci(manifest.config().digest())?;
        let config: ImageConfig = serde_json::from_slice(&self.read_blob(&config_digest)?)
            .map_err(|e| Error::Invalid {
                what: format!("config {config_digest}"),
                why: e.to_string(),
            })?;
        let names = self
            .read_index()?
            .manifests
            .iter()
            .filter(|e| e.digest == *manifest_digest)
            .filter_map(|e| e.name())
            .collect();
        Ok(Image {
            manifest_digest: manifest_digest.clone(),
            manifest,
            config_digest,
            config,
            names,
        })
    }

    /// Finds an image by name (`busybox`, `host:5000/a:t`, `name@sha256:...`) or by ID
    /// (`sha256:...` or a hex prefix of the config or manifest digest).
    pub fn resolve(&self, s: &str) -> Result<Image> {
        let idx = self.read_index()?;
        let hexpart = s.strip_prefix("sha256:").unwrap_or(s);
        let is_hex = !hexpart.is_empty()
            && hexpart
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase());
        if !s.starts_with("sha256:") {
            if let Ok(r) = Reference::parse(s) {
                let full = r.to_string();
                let by_name = idx.manifests.iter().find(|e| match &r.digest {
                    Some(d) => {
                        e.answers_to(d)
                            && (r.tag.is_none()
                                || e.annotations.get(REF_NAME) == Some(&r.repository_with_tag()))
                    }
                    None => e.annotations.get(REF_NAME) == Some(&full),
                });
                if let Some(e) = by_name {
                    return self.load_image(&e.digest);
                }
            } else if !is_hex {
                return Err(Reference::parse(s).unwrap_err());
            }
        }
        if is_hex {
            let mut found: Vec<Digest> = Vec::new();
            for e in &idx.manifests {
                if found.contains(&e.digest) {
                    continue;
                }
                let id = self.load_image(&e.digest).map(|i| i.config_digest).ok();
                if e.digest.hex().starts_with(hexpart)
                    || id.is_some_and(|c| c.hex().starts_with(hexpart))
                {
                    found.push(e.digest.clone());
                }
            }
            let ids: HashSet<Digest> = found
                .iter()
                .filter_map(|m| self.load_image(m).ok().map(|i| i.config_digest))
                .collect();
            match found.len() {
                0 => {}
                1 => return self.load_image(&found[0]),
                _ if ids.len() == 1 => return self.load_image(&found[0]),
                _ => {
                    return Err(Error::Other(format!(
                        "ambiguous image ID prefix {s:?} matches {} images",
                        ids.len()
                    )));
                }
            }
        }
        Err(Error::ImageNotFound(s.to_string()))
    }

    /// Every image entry, tagged and untagged (one row per name, like `docker images`).
    pub fn list_images(&self) -> Result<Vec<ImageSummary>> {
        let idx = self.read_index()?;
        let mut out = Vec::new();
        let named: HashSet<&Digest> = idx
            .manifests
            .iter()
            .filter(|e| e.name().is_some())
            .map(|e| &e.digest)
            .collect();
        let mut seen_dangling = HashSet::new();
        for e in &idx.manifests {
            let name = e.name();
            if name.is_none()
                && (named.contains(&e.digest) || !seen_dangling.insert(e.digest.clone()))
            {
                continue;
            }
            // An entry whose blobs are gone (e.g. a damaged store) is skipped, not fatal.
            let Ok(img) = self.load_image(&e.digest) else {
                continue;
            };
            out.push(ImageSummary {
                name,
                id: img.config_digest.clone(),
                manifest_digest: e.digest.clone(),
                created: img.config.created.clone(),
                size: self.image_size(&img),
            });
        }
        out.sort_by(|a, b| b.created.cmp(&a.created).then_with(|| a.name.cmp(&b.name)));
        Ok(out)
    }

    /// Points `target` at the image `source` names (`hoist tag`).
    pub fn tag(&self, source: &str, target: &Reference) -> Result<Image> {
        if target.digest.is_some() {
            return Err(Error::InvalidReference(format!(
                "{target}: cannot tag with a digest"
            )));
        }
        let img = self.resolve(source)?;
        let mt = serde_json::from_slice::<Value>(&self.read_blob(&img.manifest_digest)?)
            .ok()
            .and_then(|v| {
                v.get("mediaType")
                    .and_then(|m| m.as_str())
                    .map(String::from)
            })
            .unwrap_or_else(|| media_type::MANIFEST.into());
        let size = self.blob_size(&img.manifest_digest)?;
        self.update_index(|idx| {
            set_tag(
                idx,
                target,
                IndexEntry {
                    media_type: mt,
                    digest: img.manifest_digest.clone(),
                    size,
                    annotations: BTreeMap::from([(REF_NAME.to_string(), target.to_string())]),
                    extra: Default::default(),
                },
            );
            Ok(())
        })?;
        self.load_image(&img.manifest_digest)
    }

    /// Removes an image or a name, as `docker rmi`: a name with other names on the same image is
    /// only untagged; otherwise the image is deleted (by ID with several names: only with `force`).
    /// Returns Docker's `Untagged: ...` / `Deleted: ...` lines. Unreferenced blobs are then GC'd.
    pub fn remove_image(&self, s: &str, force: bool) -> Result<Vec<String>> {
        let img = self.resolve(s)?;
        let by_name = Reference::parse(s)
            .ok()
            .filter(|r| img.names.contains(r) && !s.starts_with("sha256:"));
        let mut events = Vec::new();
        self.update_index(|idx| {
            let names: Vec<Reference> =
                idx.manifests.iter().filter(|e| e.digest == img.manifest_digest).filter_map(|e| e.name()).collect();
            let remove_all = match &by_name {
                Some(r) if names.len() > 1 => {
                    idx.manifests.retain(|e| e.name().as_ref() != Some(r));
                    events.push(format!("Untagged: {}", r.familiar()));
                    false
                }
                Some(_) => true,
                None if names.len() > 1 && !force => {
                    return Err(Error::Other(format!(
                        "conflict: unable to delete {} (must be forced) - image is referenced in multiple repositories",
                        img.config_digest.short()
                    )));
                }
                None => true,
            };
            if remove_all {
                for n in &names {
                    events.push(format!("Untagged: {}", n.familiar()));
                }
                idx.manifests.retain(|e| e.digest != img.manifest_digest);
                events.push(format!("Deleted: {}", img.config_digest));
            }
            Ok(())
        })?;
        self.gc()?;
        Ok(events)
    }

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
        for ent in fs::read_dir(self.root.join("blobs/sha256")).ctx(|| "reading blobs")? {
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

/// Asks ext4 to spread `dir`'s subdirectories over the disk (`chattr +T`: the Orlov allocator's
/// top-directory hint) rather than pack them next to `dir`. A layer's files then do not land among
/// inodes a recent deletion freed, which a journal-less ext4 scans past one by one for a minute
/// after the deletion (seconds for a few thousand new files). Best effort: other filesystems ignore
/// it.
fn spread_subdirs(dir: &Path) {
    use rustix::fs::{IFlags, Mode, OFlags, ioctl_getflags, ioctl_setflags};
    let Ok(fd) = rustix::fs::open(
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    ) else {
        return;
    };
    if let Ok(f) = ioctl_getflags(&fd)
        && !f.contains(IFlags::TOPDIR)
    {
        let _ = ioctl_setflags(&fd, f | IFlags::TOPDIR);
    }
}

/// Moves the name `t` to `entry`; the image it pointed at stays, untagged, if nothing else names it.
/// Records on every index entry of `manifest_digest` that it was selected from `index_digest`.
fn note_index_digest(idx: &mut IndexFile, manifest_digest: &Digest, index_digest: &Digest) {
    for e in idx
        .manifests
        .iter_mut()
        .filter(|e| e.digest == *manifest_digest)
    {
        if e.index_digests().any(|x| x == index_digest.as_str()) {
            continue;
        }
        let mut all: Vec<String> = e.index_digests().map(String::from).collect();
        all.push(index_digest.to_string());
        e.annotations
            .insert(INDEX_DIGESTS.to_string(), all.join(" "));
    }
}

fn set_tag(idx: &mut IndexFile, t: &Reference, entry: IndexEntry) {
    let full = t.to_string();
    let mut orphan = None;
    idx.manifests.retain(|e| {
        if e.annotations.get(REF_NAME) == Some(&full) {
            orphan = Some(e.clone());
            false
        } else {
            true
        }
    });
    // The manifest lists it came from stay known under its new name.
    let mut aliases: Vec<String> = Vec::new();
    for e in idx.manifests.iter().chain(&orphan) {
        if e.digest == entry.digest {
            for d in e.index_digests() {
                if !aliases.iter().any(|a| a == d) {
                    aliases.push(d.to_string());
                }
            }
        }
    }
    let mut entry = entry;
    if !aliases.is_empty() {
        entry
            .annotations
            .insert(INDEX_DIGESTS.to_string(), aliases.join(" "));
    }
    if let Some(mut old) = orphan
        && old.digest != entry.digest
        && !idx.manifests.iter().any(|e| e.digest == old.digest)
    {
        old.annotations.remove(REF_NAME);
        idx.manifests.push(old);
    }
    // Drop the untagged placeholder for this manifest: it now has a name.
    idx.manifests
        .retain(|e| !(e.digest == entry.digest && e.name().is_none()));
    idx.manifests.push(entry);
}

// ---- for `hoist system check --repair` ([`crate::check`]) ----

impl Store {
    /// Every index entry as (manifest digest, its name annotation when it has one).
    pub fn index_entries(&self) -> Result<Vec<(Digest, Option<String>)>> {
        Ok(self
            .read_index()?
            .manifests
            .into_iter()
            .map(|e| (e.digest, e.annotations.get(REF_NAME).cloned()))
            .collect())
    }

    /// Removes every index entry pointing at `manifest` (tagged or not); returns the names removed.
    pub fn drop_index_entries(&self, manifest: &Digest) -> Result<Vec<String>> {
        self.update_index(|idx| {
            let names = idx
                .manifests
                .iter()
                .filter(|e| e.digest == *manifest)
                .filter_map(|e| e.annotations.get(REF_NAME).cloned())
                .collect();
            idx.manifests.retain(|e| e.digest != *manifest);
            Ok(names)
        })
    }

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
