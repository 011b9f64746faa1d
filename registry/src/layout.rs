//! A [`ContentStore`] over an OCI image layout directory (`oci-layout`, `index.json`,
//! `blobs/<algo>/<hex>`), the format `skopeo copy oci:DIR:TAG` and umoci read and write. Used by
//! tests and by anything that wants registry transfers without the hoist store.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use hoist_image::oci_layout::LayoutDir;

use crate::manifest::{Descriptor, Index, OCI_INDEX};
use crate::transfer::{ContentStore, PulledImage};

/// The annotation naming an index entry (`oci:DIR:NAME`).
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// An OCI image layout directory (written through [`LayoutDir`], the image crate's one layout
/// writer).
pub struct LayoutStore {
    dir: LayoutDir,
    index_lock: Mutex<()>,
}

impl LayoutStore {
    /// Opens (creating if needed) the layout at `root`.
    pub fn open(root: &Path) -> Result<LayoutStore> {
        Ok(LayoutStore {
            dir: LayoutDir::create(root)?,
            index_lock: Mutex::new(()),
        })
    }

    pub fn root(&self) -> &Path {
        self.dir.root()
    }

    fn path_of(&self, digest: &str) -> Result<PathBuf> {
        self.dir
            .blob_path(digest)
            .map_err(|_| anyhow!("bad digest {digest:?}"))
    }

    /// The layout's `index.json`.
    pub fn index(&self) -> Result<Index> {
        let path = self.dir.index_path();
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
        Ok(self.dir.write_index(&serde_json::to_vec(&index)?)?)
    }
}

impl ContentStore for LayoutStore {
    fn has_blob(&self, digest: &str) -> bool {
        self.path_of(digest).is_ok_and(|p| p.is_file())
    }

    fn blob_path(&self, digest: &str) -> Result<PathBuf> {
        let p = self.path_of(digest)?;
        if !p.is_file() {
            bail!("blob {digest} is not in {}", self.root().display());
        }
        Ok(p)
    }

    fn temp_dir(&self) -> Result<PathBuf> {
        let dir = self.root().join("ingest");
        std::fs::create_dir_all(&dir)?;
        Ok(dir)
    }

    fn commit_blob(&self, file: &Path, digest: &str) -> Result<()> {
        self.path_of(digest)?;
        Ok(self.dir.commit_blob_file(file, digest)?)
    }

    fn put_bytes(&self, bytes: &[u8], digest: &str) -> Result<()> {
        self.path_of(digest)?;
        Ok(self.dir.put_blob_bytes(bytes, digest)?)
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
            .ok_or_else(|| anyhow!("{name}: no such image in {}", self.root().display()))?;
        let bytes = std::fs::read(self.blob_path(&entry.digest)?)?;
        hoist_image::digest::verify(&bytes, &entry.digest)?;
        Ok((Bytes::from(bytes), entry.media_type.clone()))
    }
}
