//! The image configuration (`application/vnd.oci.image.config.v1+json`), as a superset of the OCI
//! schema that also carries Docker's extensions (`Healthcheck`, `Shell`, `OnBuild`, `ArgsEscaped`).
//! Unknown fields are kept in `extra` maps so a config read from elsewhere round-trips unchanged.
//!
//! Hand-written rather than oci-spec's `ImageConfiguration`: that type has no place for Docker's
//! extensions, drops unknown fields, and serializes labels from a `HashMap` (in an order that
//! changes from run to run), so the image IDs hoist computes (pinned by the conformance test)
//! would change.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::Digest;

/// The whole image config blob.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ImageConfig {
    /// RFC 3339 creation time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    pub architecture: String,
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// The run-time defaults (Docker's `config`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<ContainerConfig>,
    pub rootfs: RootFs,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<History>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Run-time defaults. Field names are Docker's (PascalCase), as in every image config.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// `"80/tcp": {}` entries.
    #[serde(default, skip_serializing_if = "omit_empty")]
    pub exposed_ports: Option<BTreeMap<String, Value>>,
    #[serde(default, skip_serializing_if = "omit_empty")]
    pub env: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "omit_empty")]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "omit_empty")]
    pub cmd: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "omit_empty")]
    pub volumes: Option<BTreeMap<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    #[serde(default, skip_serializing_if = "omit_empty")]
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    /// Docker extension.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<Healthcheck>,
    /// Docker extension (`SHELL`).
    #[serde(default, skip_serializing_if = "omit_empty")]
    pub shell: Option<Vec<String>>,
    /// Docker extension (`ONBUILD` triggers).
    #[serde(default, skip_serializing_if = "omit_empty")]
    pub on_build: Option<Vec<String>>,
    /// Docker extension (Windows-only meaning, kept for fidelity).
    #[serde(default, skip_serializing_if = "omit_false")]
    pub args_escaped: Option<bool>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Docker's `HEALTHCHECK` settings; durations in nanoseconds as Docker stores them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Healthcheck {
    /// `["NONE"]`, `["CMD", ...]` or `["CMD-SHELL", "..."]`.
    #[serde(default, skip_serializing_if = "omit_empty")]
    pub test: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_period: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_interval: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<i64>,
}

/// Go's `omitempty` for the slices and maps of Docker's config: an empty one is left out, as
/// BuildKit and Docker write configs (`CMD []` gives no `Cmd` key).
fn omit_empty<C>(v: &Option<C>) -> bool
where
    for<'a> &'a C: IntoIterator,
{
    v.as_ref().is_none_or(|c| c.into_iter().next().is_none())
}

/// Go's `omitempty` for a bool: `false` is left out.
fn omit_false(v: &Option<bool>) -> bool {
    *v != Some(true)
}

/// The uncompressed layer digests, bottom first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RootFs {
    #[serde(rename = "type")]
    pub kind: String,
    pub diff_ids: Vec<Digest>,
}

impl Default for RootFs {
    fn default() -> Self {
        RootFs {
            kind: "layers".into(),
            diff_ids: Vec::new(),
        }
    }
}

/// One build step. `empty_layer` steps (ENV, CMD, ...) add no layer.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub empty_layer: bool,
}

impl ImageConfig {
    /// An empty config for this machine's platform (`linux`/`amd64` etc.), created now.
    pub fn new_for_host() -> ImageConfig {
        ImageConfig {
            created: Some(now_rfc3339()),
            architecture: host_arch().to_string(),
            os: "linux".into(),
            ..Default::default()
        }
    }

    /// Serialises to the canonical bytes stored as the config blob.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("config serialises")
    }
}

/// The current time as RFC 3339 with nanoseconds, or `SOURCE_DATE_EPOCH` when that is set.
pub fn now_rfc3339() -> String {
    let t = match crate::layer::source_date_epoch() {
        Some(secs) => chrono::DateTime::from_timestamp(secs, 0).unwrap_or_default(),
        None => chrono::Utc::now(),
    };
    t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

/// The OCI/Go name of this machine's architecture.
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        "arm" => "arm",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_extensions_round_trip() {
        let json = r#"{"architecture":"amd64","os":"linux","config":{"Env":["A=1"],"Cmd":["sh"],
          "Healthcheck":{"Test":["CMD-SHELL","true"],"Interval":1000000000},"Shell":["/bin/sh","-c"],
          "OnBuild":["RUN x"],"Custom":1},"rootfs":{"type":"layers","diff_ids":[]},
          "history":[{"created_by":"ENV A=1","empty_layer":true}],"container":"abc"}"#;
        let c: ImageConfig = serde_json::from_str(json).unwrap();
        let cc = c.config.as_ref().unwrap();
        assert_eq!(cc.shell.as_deref().unwrap(), ["/bin/sh", "-c"]);
        assert_eq!(
            cc.healthcheck.as_ref().unwrap().interval,
            Some(1_000_000_000)
        );
        assert_eq!(cc.extra["Custom"], 1);
        assert_eq!(c.extra["container"], "abc");
        assert!(c.history[0].empty_layer);
        let back: ImageConfig = serde_json::from_slice(&c.to_bytes()).unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn empty_collections_and_false_are_omitted_as_go_does() {
        let cc = ContainerConfig {
            cmd: Some(vec![]),
            env: Some(vec![]),
            labels: Some(BTreeMap::new()),
            exposed_ports: Some(BTreeMap::new()),
            args_escaped: Some(false),
            entrypoint: Some(vec!["/bin/sh".into()]),
            ..Default::default()
        };
        let v = serde_json::to_value(&cc).unwrap();
        assert_eq!(v, serde_json::json!({"Entrypoint": ["/bin/sh"]}));
        let cc = ContainerConfig {
            args_escaped: Some(true),
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_value(&cc).unwrap(),
            serde_json::json!({"ArgsEscaped": true})
        );
    }
}
