//! The manifest documents a registry serves (OCI and Docker schema 2, single images and indexes) and
//! platform selection in an index.
//!
//! Hand-written rather than oci-spec's `ImageManifest`/`ImageIndex`/`Descriptor`, because what
//! hoist writes (cache manifests, indexes, re-serialized descriptors) must keep its bytes, and so
//! its digests, which tests pin: oci-spec keeps annotations in a `HashMap` (its serialized order
//! changes from run to run), orders a descriptor's fields differently (`annotations` before
//! `platform`) and drops fields it does not know.

use std::collections::BTreeMap;

use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// Every manifest type hoist asks a registry for (the `Accept` header).
pub const ACCEPT_MANIFESTS: &str = "application/vnd.oci.image.index.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.v2+json";

/// True for index-type documents (OCI index, Docker manifest list).
pub fn is_index(media_type: &str) -> bool {
    media_type == OCI_INDEX || media_type == DOCKER_MANIFEST_LIST
}

/// A content descriptor: what a manifest says about a blob or a child manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
}

impl Descriptor {
    /// A descriptor with just type, digest and size.
    pub fn new(media_type: &str, digest: &str, size: u64) -> Descriptor {
        Descriptor {
            media_type: media_type.to_string(),
            digest: digest.to_string(),
            size,
            platform: None,
            annotations: None,
            artifact_type: None,
        }
    }
}

/// An image (or artifact) manifest: a config blob and layers.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    pub config: Descriptor,
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// An OCI image index or Docker manifest list.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub manifests: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

pub use hoist_image::Platform;

/// Picks the manifest for `want` from an index as containerd does: the closest compatible
/// platform (`arm/v7` before `arm/v6`; `arm64` takes `arm64/v8`), the first listed among equals.
/// Entries without a platform (attestations, `unknown/unknown`) are never picked.
pub fn select_platform<'a>(index: &'a Index, want: &Platform) -> Result<&'a Descriptor> {
    let entries: Vec<(&Descriptor, &Platform)> = index
        .manifests
        .iter()
        .filter_map(|d| d.platform.as_ref().map(|p| (d, p)))
        .filter(|(_, p)| p.os != "unknown")
        .collect();
    match want.select(entries.iter().map(|(_, p)| *p)) {
        Some(i) => Ok(entries[i].0),
        None => bail!(
            "no matching manifest for {} in the manifest list entries",
            want.normalize()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(p: &str, d: &str) -> Descriptor {
        let mut desc = Descriptor::new(OCI_MANIFEST, d, 1);
        desc.platform = Some(Platform::parse(p).unwrap());
        desc
    }

    #[test]
    fn picks_platform() {
        let index = Index {
            schema_version: 2,
            media_type: Some(OCI_INDEX.into()),
            manifests: vec![
                entry("linux/amd64", "a"),
                entry("linux/arm/v6", "b"),
                entry("linux/arm/v7", "c"),
                entry("linux/arm64/v8", "d"),
            ],
            annotations: None,
        };
        let pick = |p: &str| {
            select_platform(&index, &Platform::parse(p).unwrap())
                .unwrap()
                .digest
                .clone()
        };
        assert_eq!(pick("linux/amd64"), "a");
        assert_eq!(pick("linux/arm/v7"), "c");
        // containerd: `linux/arm` is `arm/v7`, which takes v7 before v6.
        assert_eq!(pick("linux/arm"), "c");
        assert_eq!(pick("linux/arm/v6"), "b");
        assert_eq!(pick("linux/arm64"), "d");
        assert_eq!(pick("arm64"), "d");
        let err = select_platform(&index, &Platform::parse("linux/s390x").unwrap()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "no matching manifest for linux/s390x in the manifest list entries"
        );
    }
}
