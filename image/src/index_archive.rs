//! Image indexes in save archives: the blobs a stored index brings into an OCI archive, and the
//! manifests of an index in an archive staged for [`crate::Store::put_index`].

use std::fs;
use std::path::Path;

use serde_json::Value;

use crate::store::Store;
use crate::{Digest, Error, IoContext, Result, oci_layout};

/// The config and layer digests a manifest names.
fn manifest_blobs(v: &Value) -> Vec<Digest> {
    let digest_of = |x: &Value| x["digest"].as_str().and_then(|d| d.parse().ok());
    let mut out: Vec<Digest> = v.get("config").and_then(digest_of).into_iter().collect();
    if let Some(layers) = v["layers"].as_array() {
        out.extend(layers.iter().filter_map(digest_of));
    }
    out
}

/// Every stored blob the index `index` reaches: itself, then each stored manifest it lists and
/// that manifest's config and layers. Manifests not in the store (a platform never pulled) are
/// left out, as Docker leaves out content it does not have.
pub(crate) fn index_blobs(store: &Store, index: &Digest) -> Result<Vec<Digest>> {
    let mut out = vec![index.clone()];
    for (child, have) in store.index_children(index)? {
        if !have {
            continue;
        }
        let v: Value = serde_json::from_slice(&store.read_blob(&child.digest)?).map_err(|e| {
            Error::Invalid {
                what: format!("manifest {}", child.digest),
                why: e.to_string(),
            }
        })?;
        out.push(child.digest.clone());
        out.extend(manifest_blobs(&v).into_iter().filter(|d| store.has_blob(d)));
    }
    Ok(out)
}

/// Copies the manifests an index in the archive `dir` lists (those the archive holds) into the
/// store: platform images through `put_image_blobs` (layers checked against diff_ids), other
/// manifests (attestations) and their blobs through `put`. Returns the platform image manifests,
/// for [`Store::put_index`] to verify and record.
pub(crate) fn stage_children(
    dir: &Path,
    index: &Value,
    put: &dyn Fn(&Digest) -> Result<()>,
    put_image_blobs: &dyn Fn(&Value) -> Result<()>,
) -> Result<Vec<Vec<u8>>> {
    let mut images = Vec::new();
    for m in index["manifests"].as_array().into_iter().flatten() {
        let d: Digest = m["digest"].as_str().unwrap_or_default().parse()?;
        let path = dir.join(oci_layout::blob_name(&d));
        if !path.is_file() {
            continue;
        }
        let (bytes, v) = read_manifest(&path, &d)?;
        let platform = &m["platform"];
        let image = platform.is_object()
            && platform["os"] != "unknown"
            && platform["architecture"] != "unknown"
            && v.get("manifests").is_none();
        if image {
            put_image_blobs(&v)?;
            images.push(bytes);
        } else {
            for b in manifest_blobs(&v) {
                if dir.join(oci_layout::blob_name(&b)).is_file() {
                    put(&b)?;
                }
            }
            put(&d)?;
        }
    }
    Ok(images)
}

/// A manifest or index blob of an archive, checked against its digest and parsed.
pub(crate) fn read_manifest(path: &Path, d: &Digest) -> Result<(Vec<u8>, Value)> {
    let bytes = fs::read(path).ctx(|| format!("reading blob {d}"))?;
    let actual = Digest::of(&bytes);
    if &actual != d {
        return Err(Error::DigestMismatch {
            what: "manifest in archive".into(),
            expected: d.clone(),
            actual,
        });
    }
    let v: Value = serde_json::from_slice(&bytes).map_err(|e| Error::Invalid {
        what: format!("manifest {d}"),
        why: e.to_string(),
    })?;
    Ok((bytes, v))
}
