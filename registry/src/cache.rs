//! Build cache through a registry (`--cache-to/--cache-from type=registry,ref=R`): an OCI artifact
//! manifest whose config blob is the builder's cache metadata (opaque here) and whose layers are
//! the cached step layers. The builder decides what the metadata says and which layers to fetch
//! ([`crate::fetch_blobs`] on the hits only); this module only moves it.

use std::io::{Read, Write};

use crate::verify::BlobCheck;
use anyhow::{Context, Result, bail};
use bytes::Bytes;

use crate::client::Client;
use crate::layout::{LayoutStore, REF_NAME};
use crate::manifest::{
    Descriptor, Index, Manifest, OCI_MANIFEST, Platform, is_index, select_platform,
};
use crate::progress::Progress;
use crate::transfer::{ContentStore, PushOptions, PushedImage, push_manifest};
use hoist_image::Reference;

/// `artifactType` of hoist's cache manifests.
pub const CACHE_ARTIFACT_TYPE: &str = "application/vnd.hoist.buildcache.v1";
/// Media type of the cache metadata (config) blob.
pub const CACHE_CONFIG_TYPE: &str = "application/vnd.hoist.buildcache.config.v1+json";

/// A cache manifest read from a registry.
#[derive(Debug, Clone)]
pub struct RemoteCache {
    /// Digest of the cache manifest.
    pub digest: String,
    pub manifest: Manifest,
    /// The config blob: the builder's metadata, verified.
    pub metadata: Bytes,
}

impl RemoteCache {
    /// The cached layers the manifest lists (fetch the ones you need with [`crate::fetch_blobs`]).
    pub fn layers(&self) -> &[Descriptor] {
        &self.manifest.layers
    }

    /// Whether this is a cache artifact (`--cache-to type=registry`), not an image that may carry
    /// an inline cache.
    pub fn is_artifact(&self) -> bool {
        self.manifest.config.media_type == CACHE_CONFIG_TYPE
    }
}

/// Exports a cache: stores `metadata` in the local store, then pushes it with `layers` (blobs
/// already in the store, e.g. [`hoist_image::Store::compressed_layer`] descriptors) as an artifact
/// manifest to `dest` (its tag, e.g. `buildcache`).
pub async fn export_cache(
    client: &Client,
    store: &dyn ContentStore,
    dest: &Reference,
    metadata: Bytes,
    layers: Vec<Descriptor>,
    opts: &PushOptions,
    progress: &Progress,
) -> Result<PushedImage> {
    let body = cache_manifest(store, &metadata, layers)?;
    push_manifest(client, store, dest, body, OCI_MANIFEST, opts, progress)
        .await
        .with_context(|| format!("exporting build cache to {dest}"))
}

/// Stores `metadata` in `store` and returns the artifact manifest naming it and `layers`.
fn cache_manifest(
    store: &dyn ContentStore,
    metadata: &[u8],
    layers: Vec<Descriptor>,
) -> Result<Bytes> {
    let digest = hoist_image::Digest::of(metadata).to_string();
    store.put_bytes(metadata, &digest)?;
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(OCI_MANIFEST.to_string()),
        artifact_type: Some(CACHE_ARTIFACT_TYPE.to_string()),
        config: Descriptor::new(CACHE_CONFIG_TYPE, &digest, metadata.len() as u64),
        layers,
        annotations: None,
    };
    Ok(Bytes::from(serde_json::to_vec(&manifest)?))
}

/// Exports a cache into the OCI layout `layout` (`--cache-to type=local,dest=DIR`): the layer
/// blobs are copied from `store` (verified), then the metadata, the manifest, and last the
/// `index.json` entry named `tag`, so a reader never sees a manifest whose blobs are missing.
pub fn export_cache_local(
    store: &dyn ContentStore,
    layout: &LayoutStore,
    tag: &str,
    metadata: &[u8],
    layers: Vec<Descriptor>,
) -> Result<Descriptor> {
    for l in &layers {
        copy_blob(store, layout, &l.digest)?;
    }
    let body = cache_manifest(layout, metadata, layers)?;
    let digest = hoist_image::Digest::of(&body).to_string();
    layout.put_bytes(&body, &digest)?;
    let desc = Descriptor::new(OCI_MANIFEST, &digest, body.len() as u64);
    layout.set_ref(tag, desc.clone())?;
    Ok(desc)
}

/// Imports the cache named `tag` from the OCI layout at `layout` (`--cache-from
/// type=local,src=DIR`); `None` when the layout has no such entry.
pub fn import_cache_local(layout: &LayoutStore, tag: &str) -> Result<Option<RemoteCache>> {
    let index = layout.index()?;
    let Some(entry) = index.manifests.iter().find(|d| {
        d.annotations
            .as_ref()
            .and_then(|a| a.get(REF_NAME))
            .is_some_and(|n| n == tag)
    }) else {
        return Ok(None);
    };
    let read = |digest: &str| -> Result<Bytes> {
        let bytes = std::fs::read(layout.blob_path(digest)?)?;
        hoist_image::digest::verify(&bytes, digest)?;
        Ok(Bytes::from(bytes))
    };
    let body = read(&entry.digest)?;
    let manifest: Manifest = serde_json::from_slice(&body)
        .with_context(|| format!("parsing the build cache manifest {}", entry.digest))?;
    let metadata = read(&manifest.config.digest)?;
    Ok(Some(RemoteCache {
        digest: entry.digest.clone(),
        manifest,
        metadata,
    }))
}

/// Copies the blob `digest` from one store to another unless it is there, verifying its content
/// on the way (a blob that does not hash to its name is refused, nothing is stored).
pub fn copy_blob(from: &dyn ContentStore, to: &dyn ContentStore, digest: &str) -> Result<()> {
    copy_verified(from, to, digest, None)
}

/// [`copy_blob`] for a layer blob that must also decompress to the layer `diff_id`: checked as it
/// is copied, and on a mismatch ([`crate::LayerMismatch`]) nothing is stored.
pub fn copy_layer(
    from: &dyn ContentStore,
    to: &dyn ContentStore,
    digest: &str,
    diff_id: &str,
) -> Result<()> {
    copy_verified(from, to, digest, Some(diff_id))
}

fn copy_verified(
    from: &dyn ContentStore,
    to: &dyn ContentStore,
    digest: &str,
    diff_id: Option<&str>,
) -> Result<()> {
    if to.has_blob(digest) {
        return Ok(());
    }
    let src = from.blob_path(digest)?;
    let mut tmp = tempfile::NamedTempFile::new_in(to.temp_dir()?)?;
    let mut input =
        std::fs::File::open(&src).with_context(|| format!("opening {}", src.display()))?;
    let mut check = BlobCheck::new(digest, diff_id, &src.display().to_string())?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = input
            .read(&mut buf)
            .with_context(|| format!("reading {digest}"))?;
        if n == 0 {
            break;
        }
        check.update(&buf[..n])?;
        tmp.write_all(&buf[..n])?;
    }
    check.finish()?;
    tmp.as_file().sync_all()?;
    let (_, path) = tmp.keep()?;
    to.commit_blob(&path, digest)
}

/// Imports a cache manifest and its metadata from `src`; `None` when there is none yet.
///
/// `src` may also name an image (or an index: the host platform's image is taken), for inline
/// caches: then `metadata` is the image config and the builder reads its cache from the
/// manifest's annotations ([`RemoteCache::is_artifact`] tells the two apart).
pub async fn import_cache(client: &Client, src: &Reference) -> Result<Option<RemoteCache>> {
    let Some((mut body, mut mt, mut digest)) = client.find_manifest(src, src.reference()).await?
    else {
        return Ok(None);
    };
    if is_index(&mt) {
        let index: Index = serde_json::from_slice(&body)
            .with_context(|| format!("parsing the manifest list of {src}"))?;
        let child = select_platform(&index, &Platform::host())
            .with_context(|| src.to_string())?
            .digest
            .clone();
        (body, mt, digest) = client.get_manifest(src, &child).await?;
    }
    if is_index(&mt) {
        bail!("{src}: nested manifest lists are not supported");
    }
    let manifest: Manifest = serde_json::from_slice(&body)
        .with_context(|| format!("parsing the build cache manifest {src}"))?;
    let metadata = client.get_blob_bytes(src, &manifest.config).await?;
    Ok(Some(RemoteCache {
        digest,
        manifest,
        metadata,
    }))
}
