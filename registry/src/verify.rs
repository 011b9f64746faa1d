//! Checking a blob while it streams past: its digest (any algorithm a descriptor names) and, for a
//! layer, the diff_id its uncompressed content must have. One check serves registry downloads and
//! copies between content stores.

use anyhow::{Context, Result};
use hoist_image::digest::AlgoHasher;
use hoist_image::layer::{Compression, DiffIdWriter};

use crate::LayerMismatch;
use crate::error::RegistryError;

/// The running check of one blob.
pub(crate) struct BlobCheck {
    digest: String,
    diff_id: Option<String>,
    /// Where the blob comes from (a repository or a path), for errors.
    source: String,
    hasher: AlgoHasher,
    layer: Option<DiffIdWriter>,
}

impl BlobCheck {
    /// Checks a blob named `digest` from `source`; a layer's also against `diff_id`.
    pub(crate) fn new(digest: &str, diff_id: Option<&str>, source: &str) -> Result<BlobCheck> {
        Ok(BlobCheck {
            digest: digest.to_string(),
            diff_id: diff_id.map(str::to_string),
            source: source.to_string(),
            hasher: AlgoHasher::for_digest(digest)?,
            layer: diff_id.map(|_| DiffIdWriter::new()),
        })
    }

    /// Forgets everything seen (the source starts over from byte 0).
    pub(crate) fn restart(&mut self) -> Result<()> {
        *self = BlobCheck::new(&self.digest, self.diff_id.as_deref(), &self.source)?;
        Ok(())
    }

    /// Takes the next bytes.
    pub(crate) fn update(&mut self, bytes: &[u8]) -> Result<()> {
        self.hasher.update(bytes);
        if let Some(l) = &mut self.layer {
            std::io::Write::write_all(l, bytes).with_context(|| self.decompressing())?;
        }
        Ok(())
    }

    /// Fails with [`RegistryError::DigestMismatch`] when the bytes are not the blob, or with
    /// [`LayerMismatch`] when they are not the layer; else the layer's compression (with a diff_id).
    pub(crate) fn finish(self) -> Result<Option<Compression>> {
        let actual = self.hasher.finish();
        if actual != self.digest {
            return Err(RegistryError::DigestMismatch {
                from: self.source,
                expected: self.digest,
                actual,
            }
            .into());
        }
        let (Some(l), Some(want)) = (self.layer, &self.diff_id) else {
            return Ok(None);
        };
        let what = format!("layer {} from {}: decompressing", self.digest, self.source);
        let (actual, c) = l.finish().context(what)?;
        if actual.as_str() != want {
            return Err(LayerMismatch {
                blob: self.digest,
                source: self.source,
                actual: actual.to_string(),
                expected: want.clone(),
            }
            .into());
        }
        Ok(Some(c))
    }

    fn decompressing(&self) -> String {
        format!("layer {} from {}: decompressing", self.digest, self.source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_of(name: &str, body: &[u8]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(body.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, name, body).unwrap();
        b.into_inner().unwrap()
    }

    #[test]
    fn digest_then_diff_id() {
        let tar = tar_of("a", b"a");
        let digest = hoist_image::Digest::of(&tar).to_string();
        let check = |bytes: &[u8], diff_id: Option<&str>| {
            let mut c = BlobCheck::new(&digest, diff_id, "reg/app").unwrap();
            for part in bytes.chunks(100) {
                c.update(part).unwrap();
            }
            c.finish()
        };
        assert_eq!(check(&tar, None).unwrap(), None);
        assert_eq!(check(&tar, Some(&digest)).unwrap(), Some(Compression::None));
        let err = check(&tar_of("b", b"b"), Some(&digest)).unwrap_err();
        assert!(
            matches!(
                err.downcast_ref::<RegistryError>(),
                Some(RegistryError::DigestMismatch { .. })
            ),
            "{err:#}"
        );
        assert!(err.to_string().starts_with(&format!(
            "blob from reg/app failed verification: expected {digest}, got sha256:"
        )));
        let other = hoist_image::Digest::of(b"other").to_string();
        let err = check(&tar, Some(&other)).unwrap_err();
        let m = err
            .downcast_ref::<LayerMismatch>()
            .expect("a layer mismatch");
        assert_eq!(
            (m.actual.as_str(), m.expected.as_str()),
            (digest.as_str(), other.as_str())
        );
        let mut c = BlobCheck::new(&digest, None, "x").unwrap();
        c.update(b"junk").unwrap();
        c.restart().unwrap();
        c.update(&tar).unwrap();
        assert_eq!(c.finish().unwrap(), None);
    }
}
