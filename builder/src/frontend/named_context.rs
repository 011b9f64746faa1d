//! `--build-context NAME=VALUE` (buildx): additional contexts a Dockerfile reaches with `FROM NAME`,
//! `COPY --from=NAME` and `RUN --mount=from=NAME`. VALUE is a local directory (relative to the
//! current directory; its own `.dockerignore` applies, never the main context's), a
//! `docker-image://REF` (pulled when missing; `docker-image://scratch` is empty), an
//! `oci-layout://DIR[:TAG][@DIGEST]` (an image of an OCI layout directory, tag `latest` by default)
//! or a git repository URL (`https://host/repo.git#ref:subdir`, `git@host:repo`).
//!
//! Precedence, as buildx documents it ("when Dockerfile defines a stage with the same name it is
//! overwritten") and BuildKit's frontend does: a named context replaces a stage of that name (the
//! stage's instructions are not run) as well as an image of that name. Names are matched as
//! BuildKit does: normalised as image references, familiar form without `:latest` (`alpine`,
//! `alpine:latest` and `docker.io/library/alpine` are one name).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, Result, anyhow, bail};
use hoist_image::{Digest, Reference, Store};
use serde_json::Value;

use crate::context::SourceRoot;
use crate::frontend::NamedInput;
use crate::progress::Progress;

/// Where a named context's files come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContextSource {
    /// A local directory.
    Local(PathBuf),
    /// An image reference (`docker-image://`).
    Image(String),
    /// An empty filesystem (`docker-image://scratch`).
    Scratch,
    /// An image of an OCI layout directory: by `digest` when given, else by `tag`.
    OciLayout {
        dir: PathBuf,
        tag: String,
        digest: Option<String>,
    },
    /// A git repository URL (`REPO[#REF[:SUBDIR]]`).
    Git(String),
}

/// The name a context is known by: the image-reference normal form BuildKit matches on.
pub fn context_name(name: &str) -> Result<String> {
    let r = Reference::parse(name).map_err(|e| anyhow!("invalid context name {name}: {e}"))?;
    let f = r.familiar();
    Ok(f.strip_suffix(":latest").map(String::from).unwrap_or(f))
}

/// Parses `--build-context` values (later ones win for the same name), with buildx's errors.
pub fn parse_build_contexts(specs: &[String]) -> Result<BTreeMap<String, ContextSource>> {
    let mut out = BTreeMap::new();
    for spec in specs {
        let Some((name, value)) = spec.split_once('=') else {
            bail!("invalid context value: {spec}, expected key=value");
        };
        out.insert(context_name(name)?, parse_source(name, value)?);
    }
    Ok(out)
}

fn parse_source(name: &str, value: &str) -> Result<ContextSource> {
    if let Some(r) = value.strip_prefix("docker-image://") {
        if r == "scratch" {
            return Ok(ContextSource::Scratch);
        }
        Reference::parse(r).map_err(|e| anyhow!("{e}"))?;
        return Ok(ContextSource::Image(r.to_string()));
    }
    if let Some(rest) = value.strip_prefix("oci-layout://") {
        let (path, digest) = match rest.split_once('@') {
            Some((p, d)) => (p, Some(d.to_string())),
            None => (rest, None),
        };
        // A tag follows the last ':' after the last '/'.
        let slash = path.rfind('/').map_or(0, |i| i + 1);
        let (dir, tag) = match path[slash..].rfind(':') {
            Some(i) => (&path[..slash + i], &path[slash + i + 1..]),
            None => (path, "latest"),
        };
        if dir.is_empty() {
            bail!("invalid oci-layout context {value:?}: a directory is required");
        }
        return Ok(ContextSource::OciLayout {
            dir: PathBuf::from(dir),
            tag: tag.to_string(),
            digest,
        });
    }
    if crate::context::git::is_git_url(value) {
        return Ok(ContextSource::Git(value.to_string()));
    }
    if value.starts_with("http://") || value.starts_with("https://") {
        bail!("build context {name}: only git repositories are supported as URLs ({value})");
    }
    if value.starts_with("target:") {
        bail!("build context {name}: target: contexts are only valid in bake files ({value})");
    }
    let path = PathBuf::from(value);
    let meta = std::fs::metadata(&path)
        .map_err(|e| anyhow!("failed to get build context {name}: stat {value}: {e}"))?;
    if !meta.is_dir() {
        bail!("failed to get build context path {value}: not a directory");
    }
    Ok(ContextSource::Local(path))
}

/// The named contexts of one build, ready for the frontend and the solver.
#[derive(Default)]
pub struct Prepared {
    /// What the frontend sees, by name.
    pub inputs: BTreeMap<String, NamedInput>,
    /// Local directories and git checkouts, by name (the solver's [`crate::plan::Input::Local`]).
    pub roots: HashMap<String, SourceRoot>,
    /// Git checkouts, removed when the build is over.
    _checkouts: Vec<tempfile::TempDir>,
    /// Manifests an `oci-layout://` context added to the store (untagged), removed at the end.
    imported: Vec<Digest>,
    store: Option<Store>,
}

impl Drop for Prepared {
    fn drop(&mut self) {
        let Some(store) = &self.store else { return };
        for m in &self.imported {
            // Only while nothing (the build's result, a tag) names it.
            if store.load_image(m).is_ok_and(|i| i.names.is_empty()) {
                let _ = store.remove_image(m.as_str(), false);
            }
        }
    }
}

/// Opens local contexts (with their own `.dockerignore`), checks out git ones and brings
/// `oci-layout://` images into the store.
pub fn prepare(
    store: &Store,
    progress: &Arc<Progress>,
    contexts: &BTreeMap<String, ContextSource>,
) -> Result<Prepared> {
    let mut p = Prepared::default();
    p.store = Some(store.clone());
    for (name, src) in contexts {
        let input = match src {
            ContextSource::Local(dir) => {
                let v = progress.vertex(&format!("[context {name}] load .dockerignore"));
                let root = crate::context::open_context(dir, None)
                    .with_context(|| format!("build context {name}"))?;
                v.done();
                p.roots.insert(name.clone(), root);
                NamedInput::Local
            }
            ContextSource::Git(url) => {
                let v = progress.vertex(&format!("[context {name}] load git source {url}"));
                let co = crate::context::git::checkout(url, &store.tmp_dir(), false, None)
                    .with_context(|| format!("build context {name}"))?;
                v.done();
                let root = SourceRoot::plain(crate::paths::resolve_in_root(
                    co.dir.path(),
                    &co.subdir,
                    true,
                )?);
                p.roots.insert(name.clone(), root);
                p._checkouts.push(co.dir);
                NamedInput::Local
            }
            ContextSource::Image(r) => NamedInput::Image(r.clone()),
            ContextSource::Scratch => NamedInput::Scratch,
            ContextSource::OciLayout { dir, tag, digest } => {
                let (id, manifest, existed) = import_layout(store, dir, tag, digest.as_deref())
                    .with_context(|| format!("build context {name}: {}", dir.display()))?;
                if !existed {
                    p.imported.push(manifest);
                }
                NamedInput::Image(id)
            }
        };
        p.inputs.insert(name.clone(), input);
    }
    Ok(p)
}

/// Copies the image `tag` (or `digest`) of the OCI layout `dir` into the store, untagged, this
/// machine's platform from an index. Returns its id, its manifest digest and whether the store
/// had it already.
fn import_layout(
    store: &Store,
    dir: &Path,
    tag: &str,
    digest: Option<&str>,
) -> Result<(String, Digest, bool)> {
    let read = |d: &Digest| -> Result<Vec<u8>> {
        let bytes = std::fs::read(dir.join("blobs/sha256").join(d.hex()))
            .with_context(|| format!("reading blob {d}"))?;
        if Digest::of(&bytes) != *d {
            bail!("blob {d} does not match its digest");
        }
        Ok(bytes)
    };
    let index: Value = serde_json::from_slice(
        &std::fs::read(dir.join("index.json")).context("reading index.json")?,
    )
    .context("parsing index.json")?;
    let entries = index["manifests"].as_array().cloned().unwrap_or_default();
    let ref_name = |e: &Value| {
        e["annotations"]["org.opencontainers.image.ref.name"]
            .as_str()
            .map(String::from)
    };
    let entry = match digest {
        Some(d) => entries.iter().find(|e| e["digest"] == d),
        None => entries.iter().find(|e| {
            ref_name(e).is_some_and(|n| {
                n == tag
                    || Reference::parse(&n).is_ok_and(|r| {
                        r.tag.as_deref() == Some(tag) && (n.contains(':') || n.contains('/'))
                    })
            })
        }),
    };
    let Some(entry) = entry else {
        bail!(
            "no image {} in the layout's index.json",
            digest.unwrap_or(tag)
        );
    };
    let mut md: Digest = entry["digest"]
        .as_str()
        .unwrap_or_default()
        .parse()
        .map_err(|e| anyhow!("{e}"))?;
    let mut bytes = read(&md)?;
    let mut v: Value = serde_json::from_slice(&bytes).context("parsing the manifest")?;
    if let Some(ms) = v["manifests"].as_array() {
        let arch = hoist_image::config::host_arch();
        let m = ms
            .iter()
            .find(|m| m["platform"]["architecture"] == arch && m["platform"]["os"] == "linux")
            .ok_or_else(|| anyhow!("no linux/{arch} image in the layout's index"))?;
        md = m["digest"]
            .as_str()
            .unwrap_or_default()
            .parse()
            .map_err(|e| anyhow!("{e}"))?;
        bytes = read(&md)?;
        v = serde_json::from_slice(&bytes).context("parsing the manifest")?;
    }
    let existed = store.resolve(md.as_str()).is_ok();
    let mut blobs = vec![
        v["config"]["digest"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    ];
    for l in v["layers"].as_array().cloned().unwrap_or_default() {
        blobs.push(l["digest"].as_str().unwrap_or_default().to_string());
    }
    for b in blobs {
        let d: Digest = b.parse().map_err(|e| anyhow!("{e}"))?;
        if !store.has_blob(&d) {
            let f = std::fs::File::open(dir.join("blobs/sha256").join(d.hex()))
                .with_context(|| format!("opening blob {d}"))?;
            store.put_blob(f, Some(&d))?;
        }
    }
    let img = store.put_manifest(&bytes, &[])?;
    Ok((img.id().to_string(), md, existed))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(spec: &str) -> Result<(String, ContextSource)> {
        Ok(parse_build_contexts(&[spec.to_string()])?
            .into_iter()
            .next()
            .unwrap())
    }

    #[test]
    fn names_are_normalised_as_buildkit_matches_them() {
        assert_eq!(context_name("alpine").unwrap(), "alpine");
        assert_eq!(context_name("alpine:latest").unwrap(), "alpine");
        assert_eq!(context_name("docker.io/library/alpine").unwrap(), "alpine");
        assert_eq!(context_name("alpine:3.19").unwrap(), "alpine:3.19");
        assert_eq!(context_name("reg:5000/x/y").unwrap(), "reg:5000/x/y");
        assert!(
            context_name("Bad")
                .unwrap_err()
                .to_string()
                .starts_with("invalid context name Bad")
        );
    }

    #[test]
    fn values() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().to_str().unwrap();
        assert_eq!(
            one(&format!("src={dir}")).unwrap(),
            ("src".into(), ContextSource::Local(d.path().into()))
        );
        assert_eq!(
            one("base=docker-image://busybox:1.36").unwrap().1,
            ContextSource::Image("busybox:1.36".into())
        );
        assert_eq!(
            one("base=docker-image://scratch").unwrap().1,
            ContextSource::Scratch
        );
        assert_eq!(
            one("l=oci-layout:///x/lay:v1").unwrap().1,
            ContextSource::OciLayout {
                dir: "/x/lay".into(),
                tag: "v1".into(),
                digest: None
            }
        );
        assert_eq!(
            one("l=oci-layout://lay").unwrap().1,
            ContextSource::OciLayout {
                dir: "lay".into(),
                tag: "latest".into(),
                digest: None
            }
        );
        assert_eq!(
            one("g=https://example.com/r.git#main").unwrap().1,
            ContextSource::Git("https://example.com/r.git#main".into())
        );
        let e = |s: &str| one(s).unwrap_err().to_string();
        assert_eq!(
            e("noequals"),
            "invalid context value: noequals, expected key=value"
        );
        assert!(
            e("x=/does/not/exist")
                .starts_with("failed to get build context x: stat /does/not/exist: "),
            "{}",
            e("x=/does/not/exist")
        );
        let f = d.path().join("file");
        std::fs::write(&f, "").unwrap();
        assert!(e(&format!("x={}", f.display())).contains("not a directory"));
    }
}
