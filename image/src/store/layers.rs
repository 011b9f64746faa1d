//! Layers: committing directories and tars as layer blobs, the diff_id -> compressed blob map
//! under `layerdb/`, and layers unpacked once under `unpacked/` for overlayfs.

use std::fs::{self};
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use oci_spec::image::Descriptor;

use super::Store;
use super::images::Image;
use crate::layer::{self, ApplyMode, Compression, LayerInfo, LayerOptions};
use crate::{Digest, Error, IoContext, Result, VerifyingReader};

impl Store {
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

    pub(super) fn layer_info((digest, size): (Digest, u64)) -> Result<LayerInfo> {
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
}

/// Asks ext4 to spread `dir`'s subdirectories over the disk (`chattr +T`: the Orlov allocator's
/// top-directory hint) rather than pack them next to `dir`. A layer's files then do not land among
/// inodes a recent deletion freed, which a journal-less ext4 scans past one by one for a minute
/// after the deletion (seconds for a few thousand new files). Best effort: other filesystems ignore
/// it.
pub(super) fn spread_subdirs(dir: &Path) {
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
