//! Pull and push of whole images between a registry and a local content store, and the lower-level
//! primitives they are made of (fetch missing blobs, push a manifest with everything it references)
//! that the build cache uses for arbitrary manifests.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use futures_util::{TryStreamExt, stream};

use crate::client::{Access, BlobPush, BlobSource, Client};
use crate::manifest::{Descriptor, Index, Manifest, Platform, is_index, select_platform};
use crate::progress::Progress;
use hoist_image::Reference;
use hoist_image::digest::short;
use hoist_image::layer::Compression;

/// The local side of a transfer: where pulled blobs land and pushed ones are read from. The image
/// crate's store implements it; [`crate::layout::LayoutStore`] does for an OCI layout directory.
pub trait ContentStore: Send + Sync {
    /// Whether the blob is stored (and so need not be downloaded).
    fn has_blob(&self, digest: &str) -> bool;
    /// A stored blob's file, to upload from.
    fn blob_path(&self, digest: &str) -> Result<PathBuf>;
    /// A directory on the store's filesystem for downloads in flight.
    fn temp_dir(&self) -> Result<PathBuf>;
    /// Takes a downloaded file, already verified against `digest`, into the store (by rename).
    fn commit_blob(&self, file: &Path, digest: &str) -> Result<()>;
    /// Stores a small verified blob (manifest, config) held in memory.
    fn put_bytes(&self, bytes: &[u8], digest: &str) -> Result<()>;
    /// Records a pulled image under its name once all its blobs are stored.
    fn record_image(&self, image: &PulledImage) -> Result<()>;
    /// Records a pulled index (`index`, already stored) and its platform image manifests
    /// (`images`, stored with all their blobs) under `tags`, in one transaction.
    fn record_index(&self, _index: &[u8], _images: &[Vec<u8>], _tags: &[Reference]) -> Result<()> {
        bail!("this store cannot keep multi-platform images")
    }
    /// The manifest (bytes, media type) of the local image `name`, to push.
    fn resolve_image(&self, name: &str) -> Result<(Bytes, String)>;
    /// Makes the blob `layer` from a layer already stored under another form (`diff_id` known
    /// uncompressed or otherwise compressed) when that gives exactly `layer`'s digest; true when
    /// `layer` is then in the store and need not be downloaded.
    fn reuse_layer(&self, _diff_id: &str, _layer: &Descriptor) -> bool {
        false
    }
    /// Told that the stored blob `blob` (compressed with `c`) was verified, as it streamed, to be
    /// the layer `diff_id`, so recording the image need not read it again.
    fn layer_verified(&self, _diff_id: &str, _blob: &str, _c: Compression) -> Result<()> {
        Ok(())
    }
    /// A hold that keeps garbage collection off while a transfer runs (dropped at the end).
    fn hold(&self) -> Result<Option<Box<dyn Send>>> {
        Ok(None)
    }
}

/// Knobs of [`pull`].
#[derive(Debug, Clone)]
pub struct PullOptions {
    /// The platform picked from an index (default: the host's).
    pub platform: Option<Platform>,
    /// Layers downloaded at once.
    pub max_concurrent: usize,
    /// Keep a multi-platform image whole: the index and every manifest it lists.
    pub all_platforms: bool,
}

impl Default for PullOptions {
    fn default() -> Self {
        PullOptions {
            platform: None,
            all_platforms: false,
            max_concurrent: 3,
        }
    }
}

/// What [`pull`] stored.
#[derive(Debug, Clone)]
pub struct PulledImage {
    /// The reference as asked for (normalized).
    pub reference: Reference,
    /// The image manifest's digest (the platform's, when the reference named an index).
    pub manifest_digest: String,
    pub media_type: String,
    pub manifest: Bytes,
    /// The config digest (Docker's image ID).
    pub config_digest: String,
    /// The index the manifest was selected from, if any (Docker's `RepoDigests` entry).
    pub index_digest: Option<String>,
    /// Platform selected from the index.
    pub platform: Option<Platform>,
    /// Blobs downloaded (0: everything was already in the store).
    pub downloaded: usize,
}

impl PulledImage {
    /// The digest a user pins this pull to (`name@digest`): the index's when there was one.
    pub fn repo_digest(&self) -> &str {
        self.index_digest
            .as_deref()
            .unwrap_or(&self.manifest_digest)
    }
}

/// Downloads every blob of `blobs` that the store does not have, in parallel (bounded), each
/// streamed to a temp file, verified, then committed. Returns how many were downloaded.
pub async fn fetch_blobs(
    client: &Client,
    store: &dyn ContentStore,
    repo: &Reference,
    blobs: &[Descriptor],
    max_concurrent: usize,
    progress: &Progress,
) -> Result<usize> {
    let blobs: Vec<(&Descriptor, Option<&str>)> = blobs.iter().map(|d| (d, None)).collect();
    fetch_verified(client, store, repo, &blobs, max_concurrent, progress).await
}

/// [`fetch_blobs`] where a blob paired with a diff_id is a layer that must decompress to it
/// (checked while it streams; a mismatch fails with [`crate::LayerMismatch`] before the blob is
/// stored).
pub async fn fetch_verified(
    client: &Client,
    store: &dyn ContentStore,
    repo: &Reference,
    blobs: &[(&Descriptor, Option<&str>)],
    max_concurrent: usize,
    progress: &Progress,
) -> Result<usize> {
    let downloaded = AtomicUsize::new(0);
    let tmp = store.temp_dir()?;
    stream::iter(blobs.iter().map(Ok::<_, anyhow::Error>))
        .try_for_each_concurrent(max_concurrent.max(1), |&(desc, diff_id)| {
            let tmp = &tmp;
            let downloaded = &downloaded;
            async move {
                let id = short(&desc.digest);
                if store.has_blob(&desc.digest) {
                    progress.message(&format!("{id}: Already exists"));
                    return Ok(());
                }
                let bar = progress.blob(id, desc.size, "Downloading");
                let file = tempfile::Builder::new()
                    .prefix("pull-")
                    .tempfile_in(tmp)
                    .with_context(|| format!("creating a temp file in {}", tmp.display()))?;
                let path = file.path().to_path_buf();
                let verified = client
                    .fetch_layer(repo, desc, diff_id, &path, &bar.on_bytes())
                    .await?;
                store.commit_blob(&path, &desc.digest)?;
                if let (Some(c), Some(d)) = (verified, diff_id) {
                    store.layer_verified(d, &desc.digest, c)?;
                }
                drop(file);
                downloaded.fetch_add(1, Ordering::Relaxed);
                bar.finish("Pull complete");
                Ok(())
            }
        })
        .await?;
    Ok(downloaded.into_inner())
}

/// Pulls one image: resolves the reference (selecting the platform from an index), stores config,
/// layers and manifest, then records the image in the store. Nothing is recorded unless every
/// blob arrived and verified. [`crate::pull`] also keeps whole indexes (`all_platforms`).
pub async fn pull_one(
    client: &Client,
    store: &dyn ContentStore,
    r: &Reference,
    opts: &PullOptions,
    progress: &Progress,
) -> Result<PulledImage> {
    let _hold = store.hold()?;
    let (mut body, mut media_type, mut digest) = client.get_manifest(r, r.reference()).await?;
    let mut index_digest = None;
    let mut platform = None;
    let mut index_body = None;
    if is_index(&media_type) {
        let index: Index = serde_json::from_slice(&body)
            .with_context(|| format!("parsing the manifest list of {r}"))?;
        let want = opts.platform.clone().unwrap_or_else(Platform::host);
        let chosen = select_platform(&index, &want).with_context(|| r.to_string())?;
        platform = chosen.platform.clone();
        index_digest = Some(digest.clone());
        index_body = Some(body.clone());
        let child = chosen.digest.clone();
        (body, media_type, digest) = client.get_manifest(r, &child).await?;
        if digest != child {
            bail!("manifest {child} of {r}: registry returned {digest}");
        }
    }
    if is_index(&media_type) {
        bail!("{r}: nested manifest lists are not supported");
    }
    let manifest: Manifest = serde_json::from_slice(&body).with_context(|| {
        format!("parsing the image manifest of {r} (schema 1 images are not supported)")
    })?;
    // The config first (small, in memory): with an explicit platform and no index to choose
    // from, Docker refuses an image built for another platform.
    let config = client.get_blob_bytes(r, &manifest.config).await?;
    if let (Some(want), None) = (&opts.platform, &index_digest) {
        let have: Platform = serde_json::from_slice(&config)
            .with_context(|| format!("parsing the image config of {r}"))?;
        if !want.matches(&have) {
            bail!(
                "image with reference {r} was found but does not match the specified platform: \
                 wanted {}, actual: {}",
                want.normalize(),
                have.normalize()
            );
        }
        platform = Some(have);
    }
    let downloaded =
        fetch_image_blobs(client, store, r, &manifest, &config, opts, progress).await?;
    store.put_bytes(&body, &digest)?;
    if let (Some(ib), Some(id)) = (&index_body, &index_digest) {
        store.put_bytes(ib, id)?;
    }
    let pulled = PulledImage {
        reference: r.clone(),
        manifest_digest: digest,
        media_type,
        manifest: body,
        config_digest: manifest.config.digest.clone(),
        index_digest,
        platform,
        downloaded,
    };
    store.record_image(&pulled)?;
    Ok(pulled)
}

/// Knobs of [`push`].
#[derive(Debug, Clone)]
pub struct PushOptions {
    /// Repositories of the destination registry to try mounting blobs from before uploading.
    pub mount_from: Vec<String>,
    /// Blobs uploaded at once.
    pub max_concurrent: usize,
}

impl Default for PushOptions {
    fn default() -> Self {
        PushOptions {
            mount_from: Vec::new(),
            max_concurrent: 3,
        }
    }
}

/// What [`push`] put in the registry.
#[derive(Debug, Clone)]
pub struct PushedImage {
    pub reference: Reference,
    /// Digest of the top-level manifest (index or image manifest).
    pub digest: String,
    pub size: u64,
    /// Blobs actually uploaded (not skipped or mounted).
    pub uploaded: usize,
}

/// An image's config and layers into `store`: layers held locally in another form (built here, or
/// stored uncompressed) are reused when compressing them gives the very blob the manifest names
/// (hoist's compression is deterministic); the rest download, each checked against its diff_id
/// while it streams (when the config names one per layer; otherwise recording the image refuses
/// it). Returns how many blobs were downloaded or written.
pub(crate) async fn fetch_image_blobs(
    client: &Client,
    store: &dyn ContentStore,
    r: &Reference,
    manifest: &Manifest,
    config: &[u8],
    opts: &PullOptions,
    progress: &Progress,
) -> Result<usize> {
    let diff_ids: Vec<String> = serde_json::from_slice::<serde_json::Value>(config)
        .ok()
        .and_then(|c| {
            c["rootfs"]["diff_ids"].as_array().map(|a| {
                a.iter()
                    .filter_map(|d| d.as_str().map(String::from))
                    .collect()
            })
        })
        .unwrap_or_default();
    let paired = diff_ids.len() == manifest.layers.len();
    if paired {
        for (d, layer) in diff_ids.iter().zip(&manifest.layers) {
            if !store.has_blob(&layer.digest) && store.reuse_layer(d, layer) {
                progress.message(&format!("{}: Already exists", short(&layer.digest)));
            }
        }
    }
    let mut downloaded = 0;
    if !store.has_blob(&manifest.config.digest) {
        store.put_bytes(config, &manifest.config.digest)?;
        downloaded += 1;
    }
    let layers: Vec<(&Descriptor, Option<&str>)> = if paired {
        manifest
            .layers
            .iter()
            .zip(&diff_ids)
            .map(|(l, d)| (l, Some(d.as_str())))
            .collect()
    } else {
        manifest.layers.iter().map(|l| (l, None)).collect()
    };
    downloaded += fetch_verified(client, store, r, &layers, opts.max_concurrent, progress).await?;
    Ok(downloaded)
}

/// Pushes the local image `local_name` to `dest` (tag, or digest when `dest` has none).
pub async fn push(
    client: &Client,
    store: &dyn ContentStore,
    local_name: &str,
    dest: &Reference,
    opts: &PushOptions,
    progress: &Progress,
) -> Result<PushedImage> {
    let (body, media_type) = store.resolve_image(local_name)?;
    push_manifest(client, store, dest, body, &media_type, opts, progress).await
}

/// Pushes a manifest whose blobs are all in the store: an image manifest, an artifact manifest
/// (any config media type, e.g. build cache metadata) or an index (its child manifests are read
/// from the store as blobs). Blobs go first, the manifest last, under `dest`'s tag or digest.
pub async fn push_manifest(
    client: &Client,
    store: &dyn ContentStore,
    dest: &Reference,
    body: Bytes,
    media_type: &str,
    opts: &PushOptions,
    progress: &Progress,
) -> Result<PushedImage> {
    let uploaded = AtomicUsize::new(0);
    push_tree(
        client, store, dest, &body, media_type, opts, progress, &uploaded,
    )
    .await?;
    let digest = hoist_image::Digest::of(&body).to_string();
    let reference = dest.tag.clone().unwrap_or_else(|| digest.clone());
    let size = body.len() as u64;
    client
        .put_manifest(dest, &reference, media_type, body)
        .await?;
    Ok(PushedImage {
        reference: dest.clone(),
        digest,
        size,
        uploaded: uploaded.into_inner(),
    })
}

#[allow(clippy::too_many_arguments)]
async fn push_tree(
    client: &Client,
    store: &dyn ContentStore,
    dest: &Reference,
    body: &Bytes,
    media_type: &str,
    opts: &PushOptions,
    progress: &Progress,
    uploaded: &AtomicUsize,
) -> Result<()> {
    if is_index(media_type) {
        let index: Index = serde_json::from_slice(body).context("parsing a local index")?;
        for child in &index.manifests {
            let path = store.blob_path(&child.digest)?;
            let child_body = Bytes::from(
                std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?,
            );
            hoist_image::digest::verify(&child_body, &child.digest)?;
            Box::pin(push_tree(
                client,
                store,
                dest,
                &child_body,
                &child.media_type,
                opts,
                progress,
                uploaded,
            ))
            .await?;
            client
                .put_manifest(dest, &child.digest, &child.media_type, child_body)
                .await?;
        }
        return Ok(());
    }
    let manifest: Manifest = serde_json::from_slice(body).context("parsing a local manifest")?;
    let mut blobs = manifest.layers.clone();
    blobs.push(manifest.config.clone());
    push_blobs(client, store, dest, &blobs, opts, progress, uploaded).await
}

/// Pushes blobs from the store to `dest`'s repository (skipping those it has, mounting when it can).
pub async fn push_blobs(
    client: &Client,
    store: &dyn ContentStore,
    dest: &Reference,
    blobs: &[Descriptor],
    opts: &PushOptions,
    progress: &Progress,
    uploaded: &AtomicUsize,
) -> Result<()> {
    stream::iter(blobs.iter().map(Ok::<_, anyhow::Error>))
        .try_for_each_concurrent(opts.max_concurrent.max(1), |desc| async move {
            let id = short(&desc.digest);
            if !store.has_blob(&desc.digest)
                && client.blob_exists(dest, &desc.digest, Access::Push).await?
            {
                // Not kept locally (e.g. a base layer never pulled here) but already there.
                progress.message(&format!("{id}: Layer already exists"));
                return Ok(());
            }
            let path = store.blob_path(&desc.digest)?;
            let bar = progress.blob(id, desc.size, "Pushing");
            let how = client
                .push_blob(
                    dest,
                    desc,
                    &BlobSource::File(path),
                    &opts.mount_from,
                    &bar.on_bytes(),
                )
                .await
                .with_context(|| format!("pushing blob {}", desc.digest))?;
            match how {
                BlobPush::Exists => bar.finish("Layer already exists"),
                BlobPush::Mounted { from } => bar.finish(&format!("Mounted from {from}")),
                BlobPush::Uploaded => {
                    uploaded.fetch_add(1, Ordering::Relaxed);
                    bar.finish("Pushed")
                }
            }
            Ok(())
        })
        .await
}

/// A store shared across tasks.
pub type SharedStore = Arc<dyn ContentStore>;
