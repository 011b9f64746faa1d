//! The OCI image layout (`oci-layout`, `index.json`, `blobs/<algo>/<hex>`): its names and fixed
//! contents, and [`LayoutDir`], the writer of a layout directory. The store (which is a layout
//! plus hoist's bookkeeping), `save` archives and `oci:DIR` exports all name their files here.

use std::path::{Path, PathBuf};

use crate::{Digest, Error, IoContext, Result};

/// The layout marker file.
pub const LAYOUT_FILE: &str = "oci-layout";
/// Its content: the layout version hoist writes.
pub const LAYOUT_CONTENT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;
/// The index of a layout.
pub const INDEX_FILE: &str = "index.json";
/// `index.json` of a layout without images.
pub const EMPTY_INDEX: &[u8] =
    br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#;
/// The directory of sha256 blobs.
pub const SHA256_DIR: &str = "blobs/sha256";

/// `blobs/sha256/<hex>` of a digest.
pub fn blob_name(d: &Digest) -> String {
    format!("{SHA256_DIR}/{}", d.hex())
}

/// `blobs/<algo>/<hex>` of any `algo:hex` digest string, refusing what could leave `blobs/`.
pub fn blob_name_of(digest: &str) -> Result<String> {
    let bad = || Error::InvalidDigest(format!("{digest:?}"));
    let (algo, hex) = digest.split_once(':').ok_or_else(bad)?;
    let algo_ok = !algo.is_empty()
        && algo
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+._-".contains(&b));
    if !algo_ok || hex.is_empty() || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad());
    }
    Ok(format!("blobs/{algo}/{hex}"))
}

/// An OCI image layout directory being written: blobs appear whole (temp file, then rename) and
/// `index.json` is replaced atomically.
#[derive(Clone, Debug)]
pub struct LayoutDir {
    root: PathBuf,
}

impl LayoutDir {
    /// Opens the layout at `root`, creating the directory, `oci-layout` and an empty
    /// `index.json` where missing.
    pub fn create(root: &Path) -> Result<LayoutDir> {
        let blobs = root.join(SHA256_DIR);
        std::fs::create_dir_all(&blobs).ctx(|| format!("creating {}", root.display()))?;
        let dir = LayoutDir {
            root: root.to_path_buf(),
        };
        let layout = root.join(LAYOUT_FILE);
        if !layout.exists() {
            // World-readable, as a layout made by other tools; its content never varies.
            std::fs::write(&layout, LAYOUT_CONTENT)
                .ctx(|| format!("writing {}", layout.display()))?;
        }
        if !dir.index_path().exists() {
            dir.write_index(EMPTY_INDEX)?;
        }
        Ok(dir)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the blob `digest` (any algorithm) lives.
    pub fn blob_path(&self, digest: &str) -> Result<PathBuf> {
        Ok(self.root.join(blob_name_of(digest)?))
    }

    /// The layout's `index.json`.
    pub fn index_path(&self) -> PathBuf {
        self.root.join(INDEX_FILE)
    }

    /// Replaces `index.json` with `bytes`, atomically.
    pub fn write_index(&self, bytes: &[u8]) -> Result<()> {
        crate::outfile::write_atomic(&self.index_path(), bytes)
    }

    /// Stores `bytes` as the blob `digest` after checking they hash to it.
    pub fn put_blob_bytes(&self, bytes: &[u8], digest: &str) -> Result<()> {
        crate::digest::verify(bytes, digest)?;
        let dest = self.blob_path(digest)?;
        let dir = dest.parent().expect("a blob has a directory");
        std::fs::create_dir_all(dir).ctx(|| format!("creating {}", dir.display()))?;
        crate::outfile::write_atomic(&dest, bytes)
    }

    /// Moves the complete, verified file `file` (on the same filesystem) into place as `digest`.
    pub fn commit_blob_file(&self, file: &Path, digest: &str) -> Result<()> {
        let dest = self.blob_path(digest)?;
        let dir = dest.parent().expect("a blob has a directory");
        std::fs::create_dir_all(dir).ctx(|| format!("creating {}", dir.display()))?;
        std::fs::rename(file, &dest)
            .ctx(|| format!("moving {} to {}", file.display(), dest.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_dir_and_blob_names() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("oci");
        let dir = LayoutDir::create(&root).unwrap();
        assert_eq!(
            std::fs::read(root.join("oci-layout")).unwrap(),
            LAYOUT_CONTENT
        );
        assert_eq!(std::fs::read(root.join("index.json")).unwrap(), EMPTY_INDEX);
        let d = Digest::of(b"x");
        dir.put_blob_bytes(b"x", d.as_str()).unwrap();
        assert_eq!(std::fs::read(root.join(blob_name(&d))).unwrap(), b"x");
        assert!(dir.put_blob_bytes(b"y", d.as_str()).is_err());
        assert_eq!(blob_name_of("sha512:ab").unwrap(), "blobs/sha512/ab");
        for bad in ["sha256:../x", "../x:ab", "sha256:", "nocolon", "a/b:ab"] {
            assert!(blob_name_of(bad).is_err(), "{bad}");
        }
        // Reopening keeps what is there.
        dir.write_index(b"{}").unwrap();
        LayoutDir::create(&root).unwrap();
        assert_eq!(std::fs::read(root.join("index.json")).unwrap(), b"{}");
    }
}
