//! A [`ContentStore`] over an OCI image layout directory (`oci-layout`, `index.json`,
//! `blobs/<algo>/<hex>`), the format `skopeo copy oci:DIR:TAG` and umoci read and write. Used by
//! tests and by anything that wants registry transfers without the hoist store.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;

use crate::manifest::{Descriptor, Index, OCI_INDEX};
use crate::transfer::{ContentStore, PulledImage};

/// The annotation naming an index entry (`oci:DIR:NAME`).
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// An OCI image layout directory.
pub struct LayoutStore {
    root: PathBuf,
    index_lock: Mutex<()>,
}

impl LayoutStore {
    /// Opens (creating if needed) the layout at `root`.
    pub fn open(root: &Path) -> Result<LayoutStore> {
        std::fs::create_dir_all(root.join("blobs/sha256"))
            .with_context(|| format!("creating {}", root.display()))?;
        let layout = root.join("oci-layout");
        if !layout.exists() {
            std::fs::write(&layout, br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        }
        let index = root.join("index.json");
        if !index.exists() {
            write_atomic(&index, br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#)?;
        }
        Ok(LayoutStore {
            root: root.to_path_buf(),
            index_lock: Mutex::new(()),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path_of(&self, digest: &str) -> Result<PathBuf> {
        let (algo, hex) = digest
            .split_once(':')
            .ok_or_else(|| anyhow!("bad digest {digest:?}"))?;
        if hex.is_empty() || !hex.bytes().all(|b| b.is_ascii_hexdigit()) || algo.contains('/') {
            bail!("bad digest {digest:?}");
        }
        Ok(self.root.join("blobs").join(algo).join(hex))
    }

    /// The layout's `index.json`.
    pub fn index(&self) -> Result<Index> {
        let path = self.root.join("index.json");
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_slice(&bytes).with_context(|| format!("parsing {}", path.display()))
    }

    /// Adds (or replaces) the entry named `name` in `index.json`.
    pub fn set_ref(&self, name: &str, mut desc: Descriptor) -> Result<()> {
        let _guard = self.index_lock.lock().unwrap();
        let mut index = self.index()?;
        index.manifests.retain(|d| {
            d.annotations
                .as_ref()
                .and_then(|a| a.get(REF_NAME))
                .is_none_or(|n| n != name)
        });
        desc.annotations
            .get_or_insert_with(Default::default)
            .insert(REF_NAME.to_string(), name.to_string());
        index.manifests.push(desc);
        index.media_type = Some(OCI_INDEX.to_string());
        write_atomic(&self.root.join("index.json"), &serde_json::to_vec(&index)?)
    }
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    Ok(hoist_image::outfile::write_atomic(path, bytes)?)
}

impl ContentStore for LayoutStore {
    fn has_blob(&self, digest: &str) -> bool {
        self.path_of(digest).is_ok_and(|p| p.is_file())
    }

    fn blob_path(&self, digest: &str) -> Result<PathBuf> {
        let p = self.path_of(digest)?;
        if !p.is_file() {
            bail!("blob {digest} is not in {}", self.root.display());
        }
        Ok(p)
    }

    fn temp_dir(&self) -> Result<PathBuf> {
        let dir = self.root.join("ingest");
        std::fs::create_dir_all(&dir)?;
        Ok(dir)
    }

    fn commit_blob(&self, file: &Path, digest: &str) -> Result<()> {
        let dest = self.path_of(digest)?;
        std::fs::create_dir_all(dest.parent().expect("blob dir"))?;
        std::fs::rename(file, &dest)
            .with_context(|| format!("moving {} to {}", file.display(), dest.display()))
    }

    fn put_bytes(&self, bytes: &[u8], digest: &str) -> Result<()> {
        hoist_image::digest::verify(bytes, digest)?;
        let dest = self.path_of(digest)?;
        std::fs::create_dir_all(dest.parent().expect("blob dir"))?;
        write_atomic(&dest, bytes)
    }

    fn record_image(&self, image: &PulledImage) -> Result<()> {
        let name = image
            .reference
            .tag
            .clone()
            .unwrap_or_else(|| image.manifest_digest.clone());
        let mut desc = Descriptor::new(
            &image.media_type,
            &image.manifest_digest,
            image.manifest.len() as u64,
        );
        desc.platform = image.platform.clone();
        self.set_ref(&name, desc)
    }

    fn resolve_image(&self, name: &str) -> Result<(Bytes, String)> {
        let index = self.index()?;
        let tag = hoist_image::Reference::parse(name)
            .ok()
            .and_then(|r| r.tag)
            .unwrap_or_default();
        let entry = index
            .manifests
            .iter()
            .find(|d| {
                let n = d.annotations.as_ref().and_then(|a| a.get(REF_NAME));
                n.is_some_and(|n| n == name || n == &tag) || d.digest == name
            })
            .ok_or_else(|| anyhow!("{name}: no such image in {}", self.root.display()))?;
        let bytes = std::fs::read(self.blob_path(&entry.digest)?)?;
        hoist_image::digest::verify(&bytes, &entry.digest)?;
        Ok((Bytes::from(bytes), entry.media_type.clone()))
    }
}
