//! `hoist build --platform P1,P2,…`: the build solved once per platform (the cache shares what
//! does not depend on the platform, such as `FROM --platform=$BUILDPLATFORM` stages), then one
//! OCI image index listing each platform's image, stored under the tags.

use std::sync::Arc;

use anyhow::{Context as _, Result, anyhow, bail};
use hoist_image::{Digest, Platform, Reference, Store};
use serde_json::json;

use super::{BuildOptions, BuildOutput, build_with_progress};
use crate::export::outputs::ExportKind;
use crate::progress::Progress;

/// Builds `opts` for each of `platforms` (two or more) and stores the index under its tags.
pub fn build_index(
    opts: &BuildOptions,
    platforms: &[Platform],
    progress: Arc<Progress>,
) -> Result<BuildOutput> {
    if let Some(x) = opts.exports.iter().find(|x| x.kind != ExportKind::Oci) {
        bail!(
            "the {} exporter does not support a multi-platform build (--platform {}): use type=oci or type=registry",
            x.kind.name(),
            opts.platform.as_deref().unwrap_or_default()
        );
    }
    let tags = opts
        .tags
        .iter()
        .map(|t| Reference::parse(t).map_err(|e| anyhow!("invalid tag {t:?}: {e}")))
        .collect::<Result<Vec<_>>>()?;
    let store = Store::open(&opts.store_root)?;
    let mut entries = Vec::new();
    let mut manifests = Vec::new();
    let mut warnings = Vec::new();
    for p in platforms {
        let one = BuildOptions {
            platform: Some(p.to_string()),
            tags: Vec::new(),
            keep_image: true,
            registry: crate::export::registry::RegistryOptions {
                push: false,
                ..opts.registry.clone()
            },
            ..opts.clone()
        };
        let out = build_with_progress(&one, progress.clone())
            .with_context(|| format!("building for {p}"))?;
        let digest: Digest = out.manifest_digest.parse()?;
        let bytes = store.read_blob(&digest)?;
        let media_type = serde_json::from_slice::<serde_json::Value>(&bytes)?["mediaType"]
            .as_str()
            .unwrap_or("application/vnd.oci.image.manifest.v1+json")
            .to_string();
        let mut platform = json!({"architecture": p.architecture, "os": p.os});
        if let Some(v) = &p.variant {
            platform["variant"] = json!(v);
        }
        entries.push(json!({
            "mediaType": media_type,
            "digest": digest.to_string(),
            "size": bytes.len(),
            "platform": platform,
        }));
        manifests.push((digest, bytes));
        warnings.extend(out.warnings);
    }
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": entries,
    }))?;
    let bodies: Vec<Vec<u8>> = manifests.iter().map(|(_, b)| b.clone()).collect();
    let digest = store.put_index(&index, &bodies, &tags)?;
    // The per-platform images live on in the index only (one row, as Docker's containerd store
    // shows a multi-platform image); an image that already had a name keeps it.
    let named: Vec<Digest> = store
        .index_entries()?
        .into_iter()
        .filter(|(_, n)| n.is_some())
        .map(|(d, _)| d)
        .collect();
    for (d, _) in &manifests {
        if !named.contains(d) {
            store.drop_index_entries(d)?;
        }
    }
    let pushed_digest = crate::export::registry::push(&store, &progress, &opts.registry, &tags)?;
    let names: Vec<String> = tags.iter().map(|t| t.to_string()).collect();
    let mut exported = Ok(());
    for x in &opts.exports {
        let v = progress.vertex(x.vertex_name());
        exported = x.write(&store, digest.as_str(), &names);
        if let Err(e) = &exported {
            v.error(&format!("{e:#}"));
            break;
        }
        v.done();
    }
    if !opts.keep_image && tags.is_empty() {
        store.drop_index_entries(&digest)?;
    }
    exported?;
    Ok(BuildOutput {
        image_id: digest.to_string(),
        manifest_digest: digest.to_string(),
        pushed_digest,
        names,
        warnings,
    })
}
