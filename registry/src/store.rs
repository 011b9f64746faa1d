//! [`ContentStore`] for hoist's local store ([`hoist_image::Store`]): pulled blobs are renamed into
//! place from the store's temp dir once verified; pushed images get their uncompressed local layers
//! as cached gzip blobs ([`hoist_image::Store::compressed_layer`]).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use hoist_image::layer::Compression;
use hoist_image::{Digest, Reference, Store, media_type};

use crate::manifest::{DOCKER_MANIFEST, Descriptor, Index, Manifest, OCI_INDEX, OCI_MANIFEST};
use crate::transfer::{ContentStore, PulledImage};

fn digest(d: &str) -> Result<Digest> {
    d.parse::<Digest>().map_err(|e| anyhow::anyhow!("{d}: {e}"))
}

impl ContentStore for Store {
    fn has_blob(&self, d: &str) -> bool {
        digest(d).is_ok_and(|d| Store::has_blob(self, &d))
    }

    fn blob_path(&self, d: &str) -> Result<PathBuf> {
        let d = digest(d)?;
        if !Store::has_blob(self, &d) {
            bail!("blob {d} is not in the store");
        }
        Ok(Store::blob_path(self, &d))
    }

    fn temp_dir(&self) -> Result<PathBuf> {
        Ok(self.tmp_dir())
    }

    fn commit_blob(&self, file: &Path, d: &str) -> Result<()> {
        let dest = Store::blob_path(self, &digest(d)?);
        std::fs::rename(file, &dest)
            .with_context(|| format!("moving {} to {}", file.display(), dest.display()))
    }

    fn put_bytes(&self, bytes: &[u8], d: &str) -> Result<()> {
        let (got, _) = self.put_blob(bytes, Some(&digest(d)?))?;
        debug_assert_eq!(got.as_str(), d);
        Ok(())
    }

    fn record_image(&self, image: &PulledImage) -> Result<()> {
        let r = &image.reference;
        let tags = match &r.tag {
            Some(t) => vec![Reference::parse(&format!("{}:{t}", r.repository()))?],
            None => Vec::new(),
        };
        // `name@sha256:<index>` resolves locally to the platform's image, as in Docker; the
        // tag and that alias are written in one index update.
        let index = image.index_digest.as_deref().map(digest).transpose()?;
        self.put_pulled_manifest(&image.manifest, &tags, index.as_ref())
            .with_context(|| format!("storing {r}"))?;
        Ok(())
    }

    fn record_index(&self, index: &[u8], images: &[Vec<u8>], tags: &[Reference]) -> Result<()> {
        self.put_index(index, images, tags)?;
        Ok(())
    }

    fn reuse_layer(&self, diff_id: &str, layer: &Descriptor) -> bool {
        let (Ok(diff_id), Ok(want)) = (digest(diff_id), digest(&layer.digest)) else {
            return false;
        };
        let held = [Compression::None, Compression::Gzip, Compression::Zstd]
            .iter()
            .any(|c| self.layer_blob(&diff_id, *c).is_some());
        if !held {
            return false;
        }
        match Compression::from_media_type(&layer.media_type) {
            Compression::None => Store::has_blob(self, &want),
            c => self
                .compressed_layer(&diff_id, c)
                .is_ok_and(|made| made.digest().as_ref() == want.as_str()),
        }
    }

    fn layer_verified(&self, diff_id: &str, blob: &str, c: Compression) -> Result<()> {
        Ok(self.register_layer_blob(&digest(diff_id)?, &digest(blob)?, c)?)
    }

    fn hold(&self) -> Result<Option<Box<dyn Send>>> {
        Ok(Some(Box::new(self.lease()?)))
    }

    fn resolve_image(&self, name: &str) -> Result<(Bytes, String)> {
        let img = self.resolve(name)?;
        match &img.index_digest {
            Some(index) => index_push_form(self, index, name),
            None => manifest_push_form(self, &img, name),
        }
    }
}

/// An index as it is pushed: each manifest in its push form ([`manifest_push_form`], kept as a
/// blob), the index rewritten only when one of them changed. Every manifest it lists must be
/// here (Docker refuses to push an image whose content is partly missing).
fn index_push_form(store: &Store, index: &Digest, name: &str) -> Result<(Bytes, String)> {
    let bytes = store.read_blob(index)?;
    let mut doc: Index =
        serde_json::from_slice(&bytes).with_context(|| format!("parsing the index of {name}"))?;
    let mt = doc
        .media_type
        .clone()
        .unwrap_or_else(|| OCI_INDEX.to_string());
    let mut changed = false;
    for desc in &mut doc.manifests {
        let d = digest(&desc.digest)?;
        if !Store::has_blob(store, &d) {
            let what = desc
                .platform
                .as_ref()
                .map_or_else(|| desc.digest.clone(), |p| p.to_string());
            bail!(
                "{name}: the content of {what} is not in the store (pull it with --all-platforms to push the whole index)"
            );
        }
        if desc.platform.as_ref().is_none_or(|p| p.os == "unknown") {
            continue;
        }
        let child = store.load_image(&d)?;
        let (body, child_mt) = manifest_push_form(store, &child, name)?;
        let nd = Digest::of(&body);
        if nd.as_str() != desc.digest {
            desc.digest = nd.to_string();
            desc.size = body.len() as u64;
            desc.media_type = child_mt;
            changed = true;
        }
    }
    if !changed {
        return Ok((Bytes::from(bytes), mt));
    }
    let body = serde_json::to_vec(&doc)?;
    store.put_blob_bytes(&body)?;
    Ok((Bytes::from(body), mt))
}

/// An image manifest as it is pushed: uncompressed local layers replaced by their (cached,
/// deterministic) gzip form; the rewritten manifest is kept as a blob so it can be re-pushed.
fn manifest_push_form(
    store: &Store,
    img: &hoist_image::Image,
    name: &str,
) -> Result<(Bytes, String)> {
    let bytes = store.read_blob(&img.manifest_digest)?;
    let mut manifest: Manifest = serde_json::from_slice(&bytes)
        .with_context(|| format!("parsing the manifest of {name}"))?;
    let docker = manifest.media_type.as_deref() == Some(DOCKER_MANIFEST);
    let mut changed = false;
    for (layer, (diff_id, _)) in manifest.layers.iter_mut().zip(img.layers()?) {
        if Compression::from_media_type(&layer.media_type) != Compression::None {
            continue;
        }
        let c = store.compressed_layer(&diff_id, Compression::Gzip)?;
        let mt = if docker {
            media_type::DOCKER_LAYER_GZIP.to_string()
        } else {
            c.media_type().to_string()
        };
        *layer = Descriptor {
            media_type: mt,
            digest: c.digest().to_string(),
            size: c.size(),
            ..layer.clone()
        };
        changed = true;
    }
    let mt = manifest
        .media_type
        .clone()
        .unwrap_or_else(|| OCI_MANIFEST.to_string());
    if !changed {
        return Ok((Bytes::from(bytes), mt));
    }
    if manifest.media_type.is_none() {
        manifest.media_type = Some(OCI_MANIFEST.to_string());
    }
    let body = serde_json::to_vec(&manifest)?;
    // Keep the pushed manifest as a blob so the image can be re-pushed by digest.
    store.put_blob_bytes(&body)?;
    Ok((Bytes::from(body), mt))
}

/// Repositories of `dest`'s registry that local images were pulled from or pushed to and that share
/// a blob with `manifest`: candidates for cross-repository mounts ([`crate::PushOptions::mount_from`]).
pub fn mount_candidates(store: &Store, dest: &Reference, manifest: &[u8]) -> Vec<String> {
    let Ok(m) = serde_json::from_slice::<Manifest>(manifest) else {
        return Vec::new();
    };
    let wanted: std::collections::HashSet<String> =
        m.layers.iter().map(|l| l.digest.clone()).collect();
    let mut out = Vec::new();
    for summary in store.list_images().unwrap_or_default() {
        let Some(name) = summary.name else { continue };
        if name.domain != dest.domain || name.path == dest.path || out.contains(&name.path) {
            continue;
        }
        let Ok(img) = store.load_image(&summary.manifest_digest) else {
            continue;
        };
        if img
            .manifest
            .layers()
            .iter()
            .any(|l| wanted.contains(&l.digest().to_string()))
        {
            out.push(name.path.clone());
        }
    }
    out
}
