//! Blobs: content-addressed files under `blobs/sha256/`, written through a temp file, verified,
//! then renamed into place; read back verified.

use std::fs::{self, File};
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::PathBuf;

use super::{Lease, Store};
use crate::layer::{self, Compression};
use crate::{Digest, Error, HashingWriter, IoContext, Result, VerifyingReader};

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
    /// Fails with [`Error::DigestMismatch`] (naming the content `what`) unless what was written so
    /// far is `expected` (when given). The one place a written blob's digest is checked.
    pub fn check(&self, expected: Option<&Digest>, what: &str) -> Result<()> {
        match expected {
            Some(exp) if *exp != self.inner.digest() => Err(Error::DigestMismatch {
                what: what.into(),
                expected: exp.clone(),
                actual: self.inner.digest(),
            }),
            _ => Ok(()),
        }
    }

    /// Finishes the blob: fsync, verify against `expected` (if given), rename into `blobs/`.
    pub fn commit(self, expected: Option<&Digest>) -> Result<(Digest, u64)> {
        self.check(expected, "blob")?;
        let (buf, digest, size) = self.inner.finish();
        let tmp = buf.into_inner().map_err(|e| Error::Io {
            context: "writing blob".into(),
            error: e.into_error(),
        })?;
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
    /// Path of a blob (whether or not it exists).
    pub fn blob_path(&self, d: &Digest) -> PathBuf {
        self.root.join(crate::oci_layout::blob_name(d))
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
        w.check(expected, "layer blob")?;
        let blob = w.inner.digest();
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blobs_and_layer_blobs_refuse_other_content_and_store_nothing() {
        let t = tempfile::tempdir().unwrap();
        let store = Store::open(t.path()).unwrap();
        let mut tar = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(1);
        h.set_mode(0o644);
        h.set_cksum();
        tar.append_data(&mut h, "a", &b"a"[..]).unwrap();
        let tar = tar.into_inner().unwrap();
        let real = Digest::of(&tar);
        let claimed = Digest::of(b"something else");
        let err = store.put_blob(&tar[..], Some(&claimed)).unwrap_err();
        assert!(
            err.to_string()
                .starts_with(&format!("digest mismatch for blob: expected {claimed}")),
            "{err}"
        );
        let err = store
            .put_layer_blob(&tar[..], Some(&claimed), &real)
            .unwrap_err();
        assert!(
            err.to_string().starts_with(&format!(
                "digest mismatch for layer blob: expected {claimed}"
            )),
            "{err}"
        );
        assert!(!store.has_blob(&real) && !store.has_blob(&claimed));
        let (d, _, c) = store.put_layer_blob(&tar[..], Some(&real), &real).unwrap();
        assert_eq!((d, c), (real.clone(), Compression::None));
        assert!(store.has_blob(&real));
    }
}
