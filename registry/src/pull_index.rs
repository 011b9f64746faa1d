//! [`pull`], and with `all_platforms` (`pull --all-platforms`) an index (OCI image index or Docker manifest list) with every manifest
//! it lists: platform images (config and layers, each layer verified against its diff_id as it
//! streams) and the rest (attestations: their blobs as they are), then the index under its tag.
//! Nothing is recorded unless everything arrived.

use anyhow::{Context, Result, bail};
use bytes::Bytes;

use crate::client::Client;
use crate::manifest::{Descriptor, Index, Manifest, Platform, is_index};
use crate::progress::Progress;
use crate::transfer::{
    ContentStore, PullOptions, PulledImage, fetch_blobs, fetch_image_blobs, pull_one,
};
use hoist_image::Reference;

/// A manifest the index lists, fetched with its blobs.
struct Child {
    body: Bytes,
    image: bool,
}

/// Pulls `r`: one image ([`pull_one`]: the platform's, from an index), or with
/// `opts.all_platforms` an index whole.
pub async fn pull(
    client: &Client,
    store: &dyn ContentStore,
    r: &Reference,
    opts: &PullOptions,
    progress: &Progress,
) -> Result<PulledImage> {
    if opts.all_platforms {
        let _hold = store.hold()?;
        let top = client.get_manifest(r, r.reference()).await?;
        if is_index(&top.1) {
            return pull_all(client, store, r, top, opts, progress).await;
        }
    }
    pull_one(client, store, r, opts, progress).await
}

/// Pulls the index `r` names (`body`, `digest` already fetched) with every manifest it lists.
async fn pull_all(
    client: &Client,
    store: &dyn ContentStore,
    r: &Reference,
    (body, media_type, digest): (Bytes, String, String),
    opts: &PullOptions,
    progress: &Progress,
) -> Result<PulledImage> {
    let index: Index = serde_json::from_slice(&body)
        .with_context(|| format!("parsing the manifest list of {r}"))?;
    let mut downloaded = 0;
    let mut children = Vec::new();
    for desc in &index.manifests {
        let (child, n) = fetch_child(client, store, r, desc, opts, progress).await?;
        downloaded += n;
        children.push((desc, child));
    }
    let mut images = Vec::new();
    for (desc, child) in &children {
        store.put_bytes(&child.body, &desc.digest)?;
        if child.image {
            images.push(child.body.to_vec());
        }
    }
    if images.is_empty() {
        bail!("{r}: the manifest list has no image for any platform");
    }
    store.put_bytes(&body, &digest)?;
    let tags = match &r.tag {
        Some(t) => vec![Reference::parse(&format!("{}:{t}", r.repository()))?],
        None => Vec::new(),
    };
    store
        .record_index(&body, &images, &tags)
        .with_context(|| format!("storing {r}"))?;
    // The host's image stands for the whole (what `images`/`run` show by default).
    let host = crate::manifest::select_platform(&index, &Platform::host())
        .ok()
        .or_else(|| index.manifests.first());
    let config_digest = host
        .and_then(|d| {
            children
                .iter()
                .find(|(c, _)| c.digest == d.digest)
                .and_then(|(_, c)| serde_json::from_slice::<Manifest>(&c.body).ok())
        })
        .map(|m| m.config.digest)
        .unwrap_or_default();
    Ok(PulledImage {
        reference: r.clone(),
        manifest_digest: digest.clone(),
        media_type,
        manifest: body,
        config_digest,
        index_digest: Some(digest),
        platform: None,
        downloaded,
    })
}

/// Fetches one listed manifest and its blobs; platform images' layers are checked against their
/// config's diff_ids as they stream.
async fn fetch_child(
    client: &Client,
    store: &dyn ContentStore,
    r: &Reference,
    desc: &Descriptor,
    opts: &PullOptions,
    progress: &Progress,
) -> Result<(Child, usize)> {
    let (body, media_type, got) = client.get_manifest(r, &desc.digest).await?;
    if got != desc.digest {
        bail!("manifest {} of {r}: registry returned {got}", desc.digest);
    }
    if is_index(&media_type) {
        bail!("{r}: nested manifest lists are not supported");
    }
    let manifest: Manifest = serde_json::from_slice(&body)
        .with_context(|| format!("parsing manifest {} of {r}", desc.digest))?;
    let image = desc
        .platform
        .as_ref()
        .is_some_and(|p| p.os != "unknown" && p.architecture != "unknown");
    if !image {
        let mut blobs = manifest.layers.clone();
        blobs.push(manifest.config.clone());
        let n = fetch_blobs(client, store, r, &blobs, opts.max_concurrent, progress).await?;
        return Ok((Child { body, image }, n));
    }
    let config = client.get_blob_bytes(r, &manifest.config).await?;
    let n = fetch_image_blobs(client, store, r, &manifest, &config, opts, progress).await?;
    Ok((Child { body, image }, n))
}
