//! The manifest documents a registry serves (OCI and Docker schema 2, single images and indexes) and
//! platform selection in an index.
//!
//! Hand-written rather than oci-spec's `ImageManifest`/`ImageIndex`/`Descriptor`, because what
//! hoist writes (cache manifests, indexes, re-serialized descriptors) must keep its bytes, and so
//! its digests, which tests pin: oci-spec keeps annotations in a `HashMap` (its serialized order
//! changes from run to run), orders a descriptor's fields differently (`annotations` before
//! `platform`) and drops fields it does not know.

use std::collections::BTreeMap;
use std::fmt;

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

/// An OS/architecture(/variant) pair, as in `--platform linux/arm64/v8`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    #[serde(
        rename = "os.version",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_version: Option<String>,
}

impl Platform {
    /// Parses `os/arch[/variant]` (`linux/amd64`, `linux/arm/v7`); `arch` alone means linux.
    pub fn parse(s: &str) -> Result<Platform> {
        let parts: Vec<&str> = s.trim().split('/').collect();
        let (os, arch, variant) = match parts.as_slice() {
            [arch] if !arch.is_empty() => ("linux", *arch, None),
            [os, arch] => (*os, *arch, None),
            [os, arch, v] => (*os, *arch, Some(v.to_string())),
            _ => bail!("invalid platform {s:?}: expected os/arch[/variant]"),
        };
        if os.is_empty() || arch.is_empty() {
            bail!("invalid platform {s:?}: expected os/arch[/variant]");
        }
        let (architecture, variant) = normalize_arch(arch, variant);
        Ok(Platform {
            os: os.to_lowercase(),
            architecture,
            variant,
            os_version: None,
        })
    }

    /// The platform this binary runs on (Docker's names: amd64, arm64, arm/v7, ...).
    pub fn host() -> Platform {
        let (arch, variant) = match std::env::consts::ARCH {
            "x86_64" => ("amd64", None),
            "aarch64" => ("arm64", None),
            "arm" => ("arm", Some("v7".to_string())),
            "x86" => ("386", None),
            "powerpc64" => ("ppc64le", None),
            "s390x" => ("s390x", None),
            "riscv64" => ("riscv64", None),
            other => (other, None),
        };
        Platform {
            os: "linux".into(),
            architecture: arch.into(),
            variant,
            os_version: None,
        }
    }

    /// Whether an index entry for `candidate` serves a request for `self`.
    pub fn matches(&self, candidate: &Platform) -> bool {
        if self.os != candidate.os {
            return false;
        }
        let (arch, variant) = normalize_arch(&candidate.architecture, candidate.variant.clone());
        if self.architecture != arch {
            return false;
        }
        match (&self.variant, &variant) {
            (Some(want), Some(have)) => want == have,
            // arm64 without a variant is v8; a request without a variant takes any.
            (Some(want), None) => self.architecture == "arm64" && want == "v8",
            (None, _) => true,
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

fn normalize_arch(arch: &str, variant: Option<String>) -> (String, Option<String>) {
    let arch = arch.to_lowercase();
    match arch.as_str() {
        "x86_64" | "x86-64" => ("amd64".into(), None),
        "aarch64" => ("arm64".into(), variant.filter(|v| v != "v8")),
        "arm64" => ("arm64".into(), variant.filter(|v| v != "v8")),
        "armhf" => ("arm".into(), Some("v7".into())),
        "armel" => ("arm".into(), Some("v6".into())),
        _ => (arch, variant),
    }
}

/// Picks the manifest for `want` from an index: exact variant first, then the first match.
/// Entries without a platform (attestations, `unknown/unknown`) are never picked.
pub fn select_platform<'a>(index: &'a Index, want: &Platform) -> Result<&'a Descriptor> {
    let mut candidates = index
        .manifests
        .iter()
        .filter(|d| d.platform.as_ref().is_some_and(|p| want.matches(p)));
    let first = candidates.next();
    let exact = index.manifests.iter().find(|d| {
        d.platform
            .as_ref()
            .is_some_and(|p| want.matches(p) && p.variant == want.variant)
    });
    match exact.or(first) {
        Some(d) => Ok(d),
        None => {
            let have: Vec<String> = index
                .manifests
                .iter()
                .filter_map(|d| d.platform.as_ref().map(|p| p.to_string()))
                .collect();
            bail!(
                "no matching manifest for {want} in the manifest list entries (available: {})",
                have.join(", ")
            )
        }
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
        assert_eq!(pick("linux/arm"), "b");
        assert_eq!(pick("linux/arm64"), "d");
        assert_eq!(pick("arm64"), "d");
        let err = select_platform(&index, &Platform::parse("linux/s390x").unwrap()).unwrap_err();
        assert!(err.to_string().contains("linux/s390x"), "{err}");
    }
}
