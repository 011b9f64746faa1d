//! Image indexes (OCI image index, Docker manifest list) in the store: a tag may point at an index
//! whose platform manifests are stored too (all of them or some). The index is one `index.json`
//! entry, so `hoist images` shows it once, as Docker's containerd store does; its platform images
//! are reached through it ([`Store::resolve_platform`], [`Store::index_children`]).

use std::collections::BTreeMap;

use serde::Deserialize;

use super::images::{IndexEntry, IndexFile, set_tag};
use super::{REF_NAME, Store};
use crate::{Digest, Error, Image, Platform, Reference, Result, media_type};

/// True for index-type media types (OCI index, Docker manifest list).
pub fn is_index_type(mt: &str) -> bool {
    mt == media_type::INDEX || mt == media_type::DOCKER_MANIFEST_LIST
}

/// One entry of an index document.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IndexChild {
    #[serde(default)]
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default)]
    pub platform: Option<Platform>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

impl IndexChild {
    /// An image for a real platform (not an attestation, not `unknown/unknown`).
    pub fn is_platform_image(&self) -> bool {
        self.platform
            .as_ref()
            .is_some_and(|p| p.os != "unknown" && p.architecture != "unknown")
            && !is_index_type(&self.media_type)
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct IndexDoc {
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Vec<IndexChild>,
}

/// An index blob's media type from its `mediaType` field (an index without one is taken as OCI
/// when it has `manifests` and no `config`).
fn document_type(bytes: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    if let Some(mt) = v.get("mediaType").and_then(|m| m.as_str()) {
        return Some(mt.to_string());
    }
    (v.get("manifests").is_some() && v.get("config").is_none()).then(|| media_type::INDEX.into())
}

impl Store {
    /// The media type of the stored manifest or index `d` (its `mediaType`, or what its shape says).
    pub fn document_media_type(&self, d: &Digest) -> Option<String> {
        self.read_blob(d).ok().and_then(|b| document_type(&b))
    }

    /// Whether the blob `d` is an index (OCI image index or Docker manifest list).
    pub fn is_index(&self, d: &Digest) -> bool {
        self.document_media_type(d)
            .is_some_and(|mt| is_index_type(&mt))
    }

    /// The entries of the stored index `d`, each with whether its manifest is in the store.
    pub fn index_children(&self, d: &Digest) -> Result<Vec<(IndexChild, bool)>> {
        let bytes = self.read_blob(d)?;
        let doc: IndexDoc = serde_json::from_slice(&bytes).map_err(|e| Error::Invalid {
            what: format!("image index {d}"),
            why: e.to_string(),
        })?;
        let _ = doc.media_type;
        Ok(doc
            .manifests
            .into_iter()
            .map(|c| {
                let have = self.has_blob(&c.digest);
                (c, have)
            })
            .collect())
    }

    /// Stores an index: `manifests` (image manifests it lists, their config and layer blobs
    /// already stored) are verified as [`Store::put_manifests`] does, the index must parse and
    /// list each of them; then the blobs are written and `tags` point at the index, in one index
    /// update. Platform manifests the index lists but that are not given stay absent (a pull of one
    /// platform keeps the index of a multi-platform tag only through that one image).
    pub fn put_index(
        &self,
        index: &[u8],
        manifests: &[Vec<u8>],
        tags: &[Reference],
    ) -> Result<Digest> {
        let _lease = self.lease()?;
        let mt = document_type(index)
            .filter(|m| is_index_type(m))
            .ok_or_else(|| Error::Invalid {
                what: "image index".into(),
                why: "not an OCI image index or Docker manifest list".into(),
            })?;
        let doc: IndexDoc = serde_json::from_slice(index).map_err(|e| Error::Invalid {
            what: "image index".into(),
            why: e.to_string(),
        })?;
        for m in manifests {
            self.verify_manifest(m)?;
            let d = Digest::of(m);
            if !doc.manifests.iter().any(|c| c.digest == d) {
                return Err(Error::Invalid {
                    what: "image index".into(),
                    why: format!("manifest {d} is not listed in it"),
                });
            }
        }
        for m in manifests {
            self.put_blob_bytes(m)?;
        }
        let digest = self.put_blob_bytes(index)?;
        let size = index.len() as u64;
        self.update_index(|idx| {
            let entry = |name: Option<&Reference>| IndexEntry {
                media_type: mt.clone(),
                digest: digest.clone(),
                size,
                annotations: name
                    .map(|n| BTreeMap::from([(REF_NAME.to_string(), n.to_string())]))
                    .unwrap_or_default(),
                extra: Default::default(),
            };
            for t in tags {
                set_tag(idx, t, entry(Some(t)));
            }
            if !idx.manifests.iter().any(|e| e.digest == digest) {
                idx.manifests.push(entry(None));
            }
            Ok(())
        })?;
        Ok(digest)
    }

    /// The image of the stored index `index` for `want`, as containerd picks it (closest
    /// compatible platform among the manifests that are stored). With `want` `None`: the host's
    /// platform, else the first stored platform image (so `images`/`inspect` can show an index
    /// pulled for another platform).
    pub fn index_image(&self, index: &Digest, want: Option<&Platform>) -> Result<Image> {
        let children: Vec<IndexChild> = self
            .index_children(index)?
            .into_iter()
            .filter(|(c, have)| *have && c.is_platform_image())
            .map(|(c, _)| c)
            .collect();
        let platforms: Vec<&Platform> = children
            .iter()
            .filter_map(|c| c.platform.as_ref())
            .collect();
        let pick = match want {
            Some(p) => p.select(platforms.iter().copied()),
            None => Platform::host()
                .select(platforms.iter().copied())
                .or((!children.is_empty()).then_some(0)),
        };
        let Some(i) = pick else {
            let wanted = want.cloned().unwrap_or_else(Platform::host).normalize();
            return Err(Error::Other(format!(
                "image {index} has no manifest for {wanted} in the store{}",
                if platforms.is_empty() {
                    String::new()
                } else {
                    format!(
                        " (it has {})",
                        platforms
                            .iter()
                            .map(|p| p.to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                }
            )));
        };
        let mut img = self.load_manifest_image(&children[i].digest)?;
        img.index_digest = Some(index.clone());
        img.names = self.names_of(index)?;
        Ok(img)
    }

    /// Resolves `s` as [`Store::resolve`] does; when it names an index, picks the image for
    /// `want` (host when `None`). A single image for another platform than an explicit `want` is
    /// refused as Docker does.
    pub fn resolve_platform(&self, s: &str, want: Option<&Platform>) -> Result<Image> {
        let img = self.resolve(s)?;
        let Some(want) = want else {
            return Ok(img);
        };
        if let Some(index) = img.index_digest.clone() {
            return self.index_image(&index, Some(want)).map_err(|_| {
                Error::Other(format!(
                    "image with reference {s} was found but does not provide the specified platform ({})",
                    want.normalize()
                ))
            });
        }
        let have = Platform {
            os: img.config.os.clone(),
            architecture: img.config.architecture.clone(),
            variant: img.config.variant.clone(),
            os_version: None,
        };
        if !want.matches(&have) {
            return Err(Error::Other(format!(
                "image with reference {s} was found but its platform ({}) does not match the specified platform ({})",
                have.normalize(),
                want.normalize()
            )));
        }
        Ok(img)
    }

    /// `repo@d` where `d` is a platform manifest of a stored index named in `repo` (Docker
    /// resolves a platform's digest within a multi-platform image too).
    pub(super) fn image_in_indexes(
        &self,
        idx: &IndexFile,
        repo: &str,
        d: &Digest,
    ) -> Result<Option<Image>> {
        for e in idx
            .manifests
            .iter()
            .filter(|e| is_index_type(&e.media_type))
        {
            if e.name().is_none_or(|n| n.repository() != repo) {
                continue;
            }
            let Ok(children) = self.index_children(&e.digest) else {
                continue;
            };
            if children.iter().any(|(c, have)| *have && c.digest == *d) {
                // That exact image: not the index (no re-pick by platform, no index names).
                return self.load_manifest_image(d).map(Some);
            }
        }
        Ok(None)
    }

    /// Every name in `index.json` pointing at `d`.
    pub(super) fn names_of(&self, d: &Digest) -> Result<Vec<Reference>> {
        Ok(self
            .read_index()?
            .manifests
            .iter()
            .filter(|e| e.digest == *d)
            .filter_map(|e| e.name())
            .collect())
    }
}
