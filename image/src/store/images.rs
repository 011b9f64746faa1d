//! Images and names: `index.json` (tags are annotated index entries), recording manifests once
//! their layers are verified, resolving names, tagging and removing.
//!
//! `index.json` is a hand-written type, not oci-spec's `ImageIndex`: it must keep fields and
//! annotations it does not know (`#[serde(flatten)] extra`) in their order through a rewrite, and
//! leave out what was absent; oci-spec's type drops unknown fields and re-serializes its own way.

use std::collections::{BTreeMap, HashSet};
use std::fs::{self};

use oci_spec::image::{Descriptor, ImageManifest};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{INDEX_DIGESTS, REF_NAME, Store};
use crate::{Digest, Error, ImageConfig, IoContext, Reference, Result, media_type};

/// An image resolved from the store.
#[derive(Clone, Debug)]
pub struct Image {
    /// Digest of the manifest blob.
    pub manifest_digest: Digest,
    pub manifest: ImageManifest,
    /// Digest of the config blob: the image ID, as Docker shows it.
    pub config_digest: Digest,
    pub config: ImageConfig,
    /// Every name in the store pointing at this manifest (at its index, when it came from one).
    pub names: Vec<Reference>,
    /// The stored index this image was picked from, when the name or digest named an index.
    pub index_digest: Option<Digest>,
}

impl Image {
    /// The image ID (config digest).
    pub fn id(&self) -> &Digest {
        &self.config_digest
    }

    /// `(diff_id, blob descriptor)` for each layer, bottom first.
    pub fn layers(&self) -> Result<Vec<(Digest, Descriptor)>> {
        let diff_ids = &self.config.rootfs.diff_ids;
        let blobs = self.manifest.layers();
        if diff_ids.len() != blobs.len() {
            return Err(Error::Invalid {
                what: format!("image {}", self.config_digest),
                why: format!(
                    "{} layers in the manifest but {} diff_ids in the config",
                    blobs.len(),
                    diff_ids.len()
                ),
            });
        }
        Ok(diff_ids
            .iter()
            .cloned()
            .zip(blobs.iter().cloned())
            .collect())
    }

    /// The digest `index.json` names: the index it was picked from, else its manifest.
    pub fn entry_digest(&self) -> &Digest {
        self.index_digest.as_ref().unwrap_or(&self.manifest_digest)
    }

    /// Sum of the layer blob sizes.
    pub fn size(&self) -> u64 {
        self.manifest.layers().iter().map(|l| l.size()).sum()
    }
}

/// One row of `hoist images`.
#[derive(Clone, Debug)]
pub struct ImageSummary {
    pub name: Option<Reference>,
    pub id: Digest,
    pub manifest_digest: Digest,
    pub created: Option<String>,
    pub size: u64,
}

/// The on-disk `index.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct IndexFile {
    pub(super) schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) media_type: Option<String>,
    #[serde(default)]
    pub(super) manifests: Vec<IndexEntry>,
    #[serde(flatten)]
    pub(super) extra: serde_json::Map<String, Value>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct IndexEntry {
    pub(super) media_type: String,
    pub(super) digest: Digest,
    pub(super) size: u64,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(super) annotations: BTreeMap<String, String>,
    #[serde(flatten)]
    pub(super) extra: serde_json::Map<String, Value>,
}

impl IndexEntry {
    pub(super) fn name(&self) -> Option<Reference> {
        self.annotations
            .get(REF_NAME)
            .and_then(|n| Reference::parse(n).ok())
    }

    pub(super) fn index_digests(&self) -> impl Iterator<Item = &str> {
        self.annotations
            .get(INDEX_DIGESTS)
            .map(|s| s.split(' '))
            .into_iter()
            .flatten()
            .filter(|d| !d.is_empty())
    }

    /// Whether `name@d` names this entry's manifest: its own digest or an index it came from.
    pub(super) fn answers_to(&self, d: &Digest) -> bool {
        self.digest == *d || self.index_digests().any(|x| x == d.as_str())
    }
}

impl Store {
    pub(super) fn read_index(&self) -> Result<IndexFile> {
        let p = self.root.join(crate::oci_layout::INDEX_FILE);
        let bytes = fs::read(&p).ctx(|| format!("reading {}", p.display()))?;
        serde_json::from_slice(&bytes).map_err(|e| Error::Invalid {
            what: p.display().to_string(),
            why: e.to_string(),
        })
    }

    pub(super) fn write_index(&self, idx: &IndexFile) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(idx).expect("index serialises");
        self.write_atomic(&self.root.join(crate::oci_layout::INDEX_FILE), &bytes)
    }

    pub(super) fn update_index<T>(&self, f: impl FnOnce(&mut IndexFile) -> Result<T>) -> Result<T> {
        let _l = self.lock("index")?;
        let mut idx = self.read_index()?;
        let out = f(&mut idx)?;
        self.write_index(&idx)?;
        Ok(out)
    }

    /// Writes the config and manifest blobs for an image made of `layers` (descriptors of blobs
    /// already in the store) and points each of `tags` at it. With no tags the image is kept untagged.
    pub fn write_image(
        &self,
        config: &ImageConfig,
        layers: &[Descriptor],
        tags: &[Reference],
    ) -> Result<Image> {
        self.write_image_annotated(config, layers, tags, &Default::default())
    }

    /// [`Store::write_image`] with manifest `annotations` (omitted when empty), e.g. an inline
    /// build cache.
    pub fn write_image_annotated(
        &self,
        config: &ImageConfig,
        layers: &[Descriptor],
        tags: &[Reference],
        annotations: &std::collections::BTreeMap<String, String>,
    ) -> Result<Image> {
        let _lease = self.lease()?;
        for l in layers {
            let d = Digest::from_oci(l.digest())?;
            if !self.has_blob(&d) {
                return Err(Error::BlobNotFound(d));
            }
        }
        let cfg_bytes = config.to_bytes();
        let cfg = self.put_blob_bytes(&cfg_bytes)?;
        let mut manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": media_type::MANIFEST,
            "config": { "mediaType": media_type::CONFIG, "digest": cfg, "size": cfg_bytes.len() },
            "layers": layers,
        });
        if !annotations.is_empty() {
            manifest["annotations"] = serde_json::json!(annotations);
        }
        let bytes = serde_json::to_vec(&manifest).expect("manifest serialises");
        self.put_manifest(&bytes, tags)
    }

    /// Stores a manifest (OCI or Docker schema 2) whose config and layer blobs are already in the
    /// store, and points `tags` at it, once every layer is verified against the config's diff_ids
    /// (see [`Store::put_manifests`]). Used by pulls and loads.
    pub fn put_manifest(&self, bytes: &[u8], tags: &[Reference]) -> Result<Image> {
        let mut images = self.put_manifests(&[(bytes.to_vec(), tags.to_vec())])?;
        Ok(images.remove(0))
    }

    /// Stores several manifests as one transaction: every layer blob of every image is verified to
    /// be the layer its config's `diff_ids` names (compressed forms decompressed and hashed, unless
    /// already verified), and only then are the manifests written and the tags moved, all in one
    /// index update. On any error nothing visible has changed: no tag moved, no layer record
    /// written for a layer that did not verify.
    pub fn put_manifests(&self, images: &[(Vec<u8>, Vec<Reference>)]) -> Result<Vec<Image>> {
        self.put_manifests_from(images, None)
    }

    /// [`Store::put_manifest`] for a manifest selected from the manifest list `index_digest` (a
    /// pull): the tags and the index digest (see [`Store::add_index_digest`]) are recorded in the
    /// same index update, so an interrupted pull never leaves one without the other.
    pub fn put_pulled_manifest(
        &self,
        bytes: &[u8],
        tags: &[Reference],
        index_digest: Option<&Digest>,
    ) -> Result<Image> {
        let mut images =
            self.put_manifests_from(&[(bytes.to_vec(), tags.to_vec())], index_digest)?;
        Ok(images.remove(0))
    }

    pub(super) fn put_manifests_from(
        &self,
        images: &[(Vec<u8>, Vec<Reference>)],
        index_digest: Option<&Digest>,
    ) -> Result<Vec<Image>> {
        let _lease = self.lease()?;
        let mut staged = Vec::new();
        for (bytes, _) in images {
            staged.push(self.verify_manifest(bytes)?);
        }
        let mut digests = Vec::new();
        for ((bytes, _), mt) in images.iter().zip(&staged) {
            digests.push((self.put_blob_bytes(bytes)?, mt.clone(), bytes.len() as u64));
        }
        self.update_index(|idx| {
            for ((_, tags), (md, mt, size)) in images.iter().zip(&digests) {
                let entry = |name: Option<&Reference>| IndexEntry {
                    media_type: mt.clone(),
                    digest: md.clone(),
                    size: *size,
                    annotations: name
                        .map(|n| BTreeMap::from([(REF_NAME.to_string(), n.to_string())]))
                        .unwrap_or_default(),
                    extra: Default::default(),
                };
                for t in tags {
                    set_tag(idx, t, entry(Some(t)));
                }
                if !idx.manifests.iter().any(|e| e.digest == *md) {
                    idx.manifests.push(entry(None));
                }
                if let Some(index) = index_digest {
                    note_index_digest(idx, md, index);
                }
            }
            Ok(())
        })?;
        digests
            .iter()
            .map(|(md, _, _)| self.load_image(md))
            .collect()
    }

    /// Checks a manifest before it is stored: it parses, its config is stored and parses, and each
    /// layer blob is stored and is the layer its diff_id names. Returns the manifest's media type.
    pub(super) fn verify_manifest(&self, bytes: &[u8]) -> Result<String> {
        let manifest: ImageManifest =
            serde_json::from_slice(bytes).map_err(|e| Error::Invalid {
                what: "image manifest".into(),
                why: e.to_string(),
            })?;
        let cfg_digest = Digest::from_oci(manifest.config().digest())?;
        let config: ImageConfig =
            serde_json::from_slice(&self.read_blob(&cfg_digest)?).map_err(|e| Error::Invalid {
                what: format!("image config {cfg_digest}"),
                why: e.to_string(),
            })?;
        if config.rootfs.diff_ids.len() != manifest.layers().len() {
            return Err(Error::Invalid {
                what: "image manifest".into(),
                why: format!(
                    "{} layers but {} diff_ids in the config {cfg_digest}",
                    manifest.layers().len(),
                    config.rootfs.diff_ids.len()
                ),
            });
        }
        for (diff_id, l) in config.rootfs.diff_ids.iter().zip(manifest.layers()) {
            self.verify_layer_blob(diff_id, &Digest::from_oci(l.digest())?)?;
        }
        Ok(match manifest.media_type() {
            Some(m) => m.to_string(),
            None => media_type::MANIFEST.to_string(),
        })
    }

    /// Records that the stored manifest `manifest_digest` was selected from the manifest list
    /// `index_digest` (a pull of `name@index_digest` or of a tag naming it), so references by the
    /// index's digest resolve to it.
    pub fn add_index_digest(&self, manifest_digest: &Digest, index_digest: &Digest) -> Result<()> {
        self.update_index(|idx| {
            note_index_digest(idx, manifest_digest, index_digest);
            Ok(())
        })
    }

    /// The image's size as Docker reports it: uncompressed layer sizes where the uncompressed blob
    /// is stored, the blob size otherwise.
    pub fn image_size(&self, image: &Image) -> u64 {
        match image.layers() {
            Ok(layers) => layers
                .iter()
                .map(|(diff_id, d)| self.blob_size(diff_id).unwrap_or(d.size()))
                .sum(),
            Err(_) => image.size(),
        }
    }

    /// Reads an image by manifest digest; an index's digest gives its image for this machine's
    /// platform (see [`Store::index_image`]).
    pub fn load_image(&self, manifest_digest: &Digest) -> Result<Image> {
        if self.is_index(manifest_digest) {
            return self.index_image(manifest_digest, None);
        }
        self.load_manifest_image(manifest_digest)
    }

    /// Reads an image manifest (not an index) by digest.
    pub(super) fn load_manifest_image(&self, manifest_digest: &Digest) -> Result<Image> {
        let bytes = self.read_blob(manifest_digest)?;
        let manifest: ImageManifest =
            serde_json::from_slice(&bytes).map_err(|e| Error::Invalid {
                what: format!("manifest {manifest_digest}"),
                why: e.to_string(),
            })?;
        let config_digest = Digest::from_oci(manifest.config().digest())?;
        let config: ImageConfig = serde_json::from_slice(&self.read_blob(&config_digest)?)
            .map_err(|e| Error::Invalid {
                what: format!("config {config_digest}"),
                why: e.to_string(),
            })?;
        let names = self.names_of(manifest_digest)?;
        Ok(Image {
            manifest_digest: manifest_digest.clone(),
            manifest,
            config_digest,
            config,
            names,
            index_digest: None,
        })
    }

    /// Finds an image by name (`busybox`, `host:5000/a:t`, `name@sha256:...`) or by ID
    /// (`sha256:...` or a hex prefix of the config or manifest digest).
    pub fn resolve(&self, s: &str) -> Result<Image> {
        let idx = self.read_index()?;
        let hexpart = s.strip_prefix("sha256:").unwrap_or(s);
        let is_hex = !hexpart.is_empty()
            && hexpart
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase());
        if !s.starts_with("sha256:") {
            if let Ok(r) = Reference::parse(s) {
                let full = r.to_string();
                let by_name = idx.manifests.iter().find(|e| match &r.digest {
                    Some(d) => {
                        e.answers_to(d)
                            && (r.tag.is_none()
                                || e.annotations.get(REF_NAME) == Some(&r.repository_with_tag()))
                    }
                    None => e.annotations.get(REF_NAME) == Some(&full),
                });
                if let Some(e) = by_name {
                    return self.load_image(&e.digest);
                }
                if let Some(d) = &r.digest
                    && let Some(img) = self.image_in_indexes(&idx, &r.repository(), d)?
                {
                    return Ok(img);
                }
            } else if !is_hex {
                return Err(Reference::parse(s).unwrap_err());
            }
        }
        if is_hex {
            let mut found: Vec<Digest> = Vec::new();
            for e in &idx.manifests {
                if found.contains(&e.digest) {
                    continue;
                }
                let id = self.load_image(&e.digest).map(|i| i.config_digest).ok();
                if e.digest.hex().starts_with(hexpart)
                    || id.is_some_and(|c| c.hex().starts_with(hexpart))
                {
                    found.push(e.digest.clone());
                }
            }
            let ids: HashSet<Digest> = found
                .iter()
                .filter_map(|m| self.load_image(m).ok().map(|i| i.config_digest))
                .collect();
            match found.len() {
                0 => {}
                1 => return self.load_image(&found[0]),
                _ if ids.len() == 1 => return self.load_image(&found[0]),
                _ => {
                    return Err(Error::Other(format!(
                        "ambiguous image ID prefix {s:?} matches {} images",
                        ids.len()
                    )));
                }
            }
        }
        Err(Error::ImageNotFound(s.to_string()))
    }

    /// Every image entry, tagged and untagged (one row per name, like `docker images`).
    pub fn list_images(&self) -> Result<Vec<ImageSummary>> {
        let idx = self.read_index()?;
        let mut out = Vec::new();
        let named: HashSet<&Digest> = idx
            .manifests
            .iter()
            .filter(|e| e.name().is_some())
            .map(|e| &e.digest)
            .collect();
        let mut seen_dangling = HashSet::new();
        for e in &idx.manifests {
            let name = e.name();
            if name.is_none()
                && (named.contains(&e.digest) || !seen_dangling.insert(e.digest.clone()))
            {
                continue;
            }
            // An entry whose blobs are gone (e.g. a damaged store) is skipped, not fatal.
            let Ok(img) = self.load_image(&e.digest) else {
                continue;
            };
            out.push(ImageSummary {
                name,
                // An index shows once, under its own digest (Docker's containerd store).
                id: img
                    .index_digest
                    .clone()
                    .unwrap_or(img.config_digest.clone()),
                manifest_digest: e.digest.clone(),
                created: img.config.created.clone(),
                size: self.image_size(&img),
            });
        }
        out.sort_by(|a, b| b.created.cmp(&a.created).then_with(|| a.name.cmp(&b.name)));
        Ok(out)
    }

    /// Points `target` at the image `source` names (`hoist tag`).
    pub fn tag(&self, source: &str, target: &Reference) -> Result<Image> {
        if target.digest.is_some() {
            return Err(Error::InvalidReference(format!(
                "{target}: cannot tag with a digest"
            )));
        }
        let img = self.resolve(source)?;
        let entry_digest = img.entry_digest().clone();
        let mt = serde_json::from_slice::<Value>(&self.read_blob(&entry_digest)?)
            .ok()
            .and_then(|v| {
                v.get("mediaType")
                    .and_then(|m| m.as_str())
                    .map(String::from)
            })
            .unwrap_or_else(|| media_type::MANIFEST.into());
        let size = self.blob_size(&entry_digest)?;
        self.update_index(|idx| {
            set_tag(
                idx,
                target,
                IndexEntry {
                    media_type: mt,
                    digest: entry_digest.clone(),
                    size,
                    annotations: BTreeMap::from([(REF_NAME.to_string(), target.to_string())]),
                    extra: Default::default(),
                },
            );
            Ok(())
        })?;
        self.load_image(&entry_digest)
    }

    /// Removes an image or a name, as `docker rmi`: a name with other names on the same image is
    /// only untagged; otherwise the image is deleted (by ID with several names: only with `force`).
    /// Returns Docker's `Untagged: ...` / `Deleted: ...` lines. Unreferenced blobs are then GC'd.
    pub fn remove_image(&self, s: &str, force: bool) -> Result<Vec<String>> {
        let img = self.resolve(s)?;
        let by_name = Reference::parse(s)
            .ok()
            .filter(|r| img.names.contains(r) && !s.starts_with("sha256:"));
        let mut events = Vec::new();
        let entry_digest = img.entry_digest().clone();
        // An index is deleted under its own digest, as Docker's containerd store reports it.
        let deleted = img
            .index_digest
            .clone()
            .unwrap_or(img.config_digest.clone());
        self.update_index(|idx| {
            let names: Vec<Reference> =
                idx.manifests.iter().filter(|e| e.digest == entry_digest).filter_map(|e| e.name()).collect();
            let remove_all = match &by_name {
                Some(r) if names.len() > 1 => {
                    idx.manifests.retain(|e| e.name().as_ref() != Some(r));
                    events.push(format!("Untagged: {}", r.familiar()));
                    false
                }
                Some(_) => true,
                None if names.len() > 1 && !force => {
                    return Err(Error::Other(format!(
                        "conflict: unable to delete {} (must be forced) - image is referenced in multiple repositories",
                        img.config_digest.short()
                    )));
                }
                None => true,
            };
            if remove_all {
                for n in &names {
                    events.push(format!("Untagged: {}", n.familiar()));
                }
                idx.manifests.retain(|e| e.digest != entry_digest);
                events.push(format!("Deleted: {deleted}"));
            }
            Ok(())
        })?;
        self.gc()?;
        Ok(events)
    }

    /// Every index entry as (manifest digest, its name annotation when it has one).
    pub fn index_entries(&self) -> Result<Vec<(Digest, Option<String>)>> {
        Ok(self
            .read_index()?
            .manifests
            .into_iter()
            .map(|e| (e.digest, e.annotations.get(REF_NAME).cloned()))
            .collect())
    }

    /// Removes every index entry pointing at `manifest` (tagged or not); returns the names removed.
    pub fn drop_index_entries(&self, manifest: &Digest) -> Result<Vec<String>> {
        self.update_index(|idx| {
            let names = idx
                .manifests
                .iter()
                .filter(|e| e.digest == *manifest)
                .filter_map(|e| e.annotations.get(REF_NAME).cloned())
                .collect();
            idx.manifests.retain(|e| e.digest != *manifest);
            Ok(names)
        })
    }
}

/// Records on every index entry of `manifest_digest` that it was selected from `index_digest`.
pub(super) fn note_index_digest(
    idx: &mut IndexFile,
    manifest_digest: &Digest,
    index_digest: &Digest,
) {
    for e in idx
        .manifests
        .iter_mut()
        .filter(|e| e.digest == *manifest_digest)
    {
        if e.index_digests().any(|x| x == index_digest.as_str()) {
            continue;
        }
        let mut all: Vec<String> = e.index_digests().map(String::from).collect();
        all.push(index_digest.to_string());
        e.annotations
            .insert(INDEX_DIGESTS.to_string(), all.join(" "));
    }
}

/// Moves the name `t` to `entry`; the image it pointed at stays, untagged, if nothing else names it.
pub(super) fn set_tag(idx: &mut IndexFile, t: &Reference, entry: IndexEntry) {
    let full = t.to_string();
    let mut orphan = None;
    idx.manifests.retain(|e| {
        if e.annotations.get(REF_NAME) == Some(&full) {
            orphan = Some(e.clone());
            false
        } else {
            true
        }
    });
    // The manifest lists it came from stay known under its new name.
    let mut aliases: Vec<String> = Vec::new();
    for e in idx.manifests.iter().chain(&orphan) {
        if e.digest == entry.digest {
            for d in e.index_digests() {
                if !aliases.iter().any(|a| a == d) {
                    aliases.push(d.to_string());
                }
            }
        }
    }
    let mut entry = entry;
    if !aliases.is_empty() {
        entry
            .annotations
            .insert(INDEX_DIGESTS.to_string(), aliases.join(" "));
    }
    if let Some(mut old) = orphan
        && old.digest != entry.digest
        && !idx.manifests.iter().any(|e| e.digest == old.digest)
    {
        old.annotations.remove(REF_NAME);
        idx.manifests.push(old);
    }
    // Drop the untagged placeholder for this manifest: it now has a name.
    idx.manifests
        .retain(|e| !(e.digest == entry.digest && e.name().is_none()));
    idx.manifests.push(entry);
}
