//! What a build exchanges with registries besides pulling its bases: `--push` and
//! `--output type=registry` (push every name after the build), and the build cache
//! (`--cache-from`/`--cache-to`, see [`crate::cache::remote`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::{Result, anyhow, bail};
use hoist_image::{ImageConfig, Reference, Store};

use crate::cache::Cache;
use crate::cache::remote::{CacheSpec, RemoteCache};
use crate::progress::{Progress, Vertex};

/// The registry side of a build.
#[derive(Debug, Clone, Default)]
pub struct RegistryOptions {
    /// Push every name after the build (`--push`, `--output type=registry`).
    pub push: bool,
    /// `--cache-from` sources.
    pub cache_from: Vec<CacheSpec>,
    /// `--cache-to` destinations.
    pub cache_to: Vec<CacheSpec>,
    /// Registries reached over plain http besides loopback ones (`--insecure-registry`).
    pub insecure_registries: Vec<String>,
}

impl RegistryOptions {
    /// Whether a remote cache is involved (then [`attach_cache`] makes one).
    pub fn uses_cache(&self) -> bool {
        !self.cache_from.is_empty() || !self.cache_to.is_empty()
    }

    fn inline(&self) -> bool {
        self.cache_to.contains(&CacheSpec::Inline)
    }
}

/// An `--output` of type `image` or `registry`: the store image, named, and maybe pushed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageOutput {
    /// Names to tag (and push).
    pub names: Vec<String>,
    /// `type=registry`, or `type=image,push=true`.
    pub push: bool,
}

/// Parses an `--output` value of type `image` (`name=N[,push=true]`) or `registry`
/// (`name=N`; several names as `"name=a,b"`). `None` for other outputs.
pub fn parse_image_output(s: &str) -> Result<Option<ImageOutput>> {
    let mut kind = None;
    let mut names = Vec::new();
    let mut push = None;
    for field in split_csv(s) {
        let (k, v) = field
            .split_once('=')
            .ok_or_else(|| anyhow!("invalid output {s:?}: expected key=value, got {field:?}"))?;
        match k {
            "type" => kind = Some(v.to_string()),
            // `name` may list several names, comma separated inside quotes.
            "name" => names.extend(
                v.split(',')
                    .map(str::trim)
                    .filter(|n| !n.is_empty())
                    .map(String::from),
            ),
            "push" => push = Some(v == "true"),
            _ => {}
        }
    }
    let push = match kind.as_deref() {
        Some("registry") => true,
        Some("image") => push == Some(true),
        _ => return Ok(None),
    };
    if push && names.is_empty() {
        bail!("output {s:?}: pushing needs name=REGISTRY/REPOSITORY:TAG");
    }
    Ok(Some(ImageOutput { names, push }))
}

/// CSV fields, with `"..."` quoting (buildx: `name="a,b"`).
fn split_csv(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in s.chars() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    out.push(cur);
    out.into_iter()
        .map(|f| f.trim().to_string())
        .filter(|f| !f.is_empty())
        .collect()
}

/// Backs `cache` with the remote caches of `opts` (importing `--cache-from` metadata now).
pub fn attach_cache(
    cache: Cache,
    store: &Store,
    progress: &Arc<Progress>,
    opts: &RegistryOptions,
) -> Result<(Cache, Option<Arc<RemoteCache>>)> {
    if !opts.uses_cache() {
        return Ok((cache, None));
    }
    let mut remote = RemoteCache::new(store.clone(), progress.clone(), &opts.insecure_registries)?;
    remote.import(&opts.cache_from);
    let remote = Arc::new(remote);
    Ok((cache.with_remote(remote.clone()), Some(remote)))
}

/// The manifest annotations of the built image (an inline cache with `--cache-to type=inline`).
pub fn inline_annotations(
    remote: Option<&RemoteCache>,
    opts: &RegistryOptions,
    config: &ImageConfig,
) -> Result<BTreeMap<String, String>> {
    match remote {
        Some(r) if opts.inline() => r.inline_annotations(&diff_ids(config)),
        _ => Ok(BTreeMap::new()),
    }
}

fn diff_ids(config: &ImageConfig) -> Vec<String> {
    config
        .rootfs
        .diff_ids
        .iter()
        .map(|d| d.to_string())
        .collect()
}

/// After the image is in the store: pushes it under every name (`--push`), then exports the
/// `--cache-to type=registry` caches. Returns the pushed manifest's digest (layers are pushed
/// compressed, so it is not the local one).
pub fn after_build(
    store: &Store,
    progress: &Arc<Progress>,
    opts: &RegistryOptions,
    remote: Option<&RemoteCache>,
    config: &ImageConfig,
    names: &[Reference],
) -> Result<Option<String>> {
    let pushed = push(store, progress, opts, names)?;
    if let Some(r) = remote {
        r.export(&opts.cache_to, &diff_ids(config))?;
    }
    Ok(pushed)
}

/// `--push`: pushes the stored image or index each name points at; the digest the registry
/// gave the last one. Nothing without `--push`.
pub fn push(
    store: &Store,
    progress: &Arc<Progress>,
    opts: &RegistryOptions,
    names: &[Reference],
) -> Result<Option<String>> {
    if !opts.push {
        return Ok(None);
    }
    if names.is_empty() {
        bail!("--push needs an image name: add -t REGISTRY/REPOSITORY:TAG");
    }
    let v = progress.vertex("pushing to registry");
    match push_all(store, opts, names, &v) {
        Ok(d) => {
            v.done();
            Ok(d)
        }
        Err(e) => {
            v.error(&format!("{e:#}"));
            Err(e)
        }
    }
}

fn push_all(
    store: &Store,
    opts: &RegistryOptions,
    names: &[Reference],
    v: &Vertex,
) -> Result<Option<String>> {
    let mut digest = None;
    for n in names {
        let name = n.to_string();
        v.log(&format!("pushing layers for {name}"));
        let pushed = hoist_registry::blocking::push_image(
            store,
            &name,
            &name,
            &opts.insecure_registries,
            hoist_registry::ProgressMode::Quiet,
        )
        .map_err(|e| anyhow!("failed to push {name}: {e:#}"))?;
        v.log(&format!(
            "pushing manifest for {name}@{} done",
            pushed.digest
        ));
        let tag = n.tag.as_deref().unwrap_or("latest");
        v.log(&format!(
            "{tag}: digest: {} size: {}",
            pushed.digest, pushed.size
        ));
        digest = Some(pushed.digest);
    }
    Ok(digest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_and_registry_outputs() {
        let out = |names: &[&str], push| {
            Some(ImageOutput {
                names: names.iter().map(|n| n.to_string()).collect(),
                push,
            })
        };
        assert_eq!(
            parse_image_output("type=registry,name=r:5000/a:1").unwrap(),
            out(&["r:5000/a:1"], true)
        );
        assert_eq!(
            parse_image_output("type=image,\"name=r/a:1,r/a:2\",push=true").unwrap(),
            out(&["r/a:1", "r/a:2"], true)
        );
        assert_eq!(
            parse_image_output("type=image,name=a").unwrap(),
            out(&["a"], false)
        );
        assert_eq!(parse_image_output("type=image").unwrap(), out(&[], false));
        assert_eq!(parse_image_output("type=local,dest=out").unwrap(), None);
        assert_eq!(parse_image_output("type=cacheonly").unwrap(), None);
        assert!(parse_image_output("type=registry").is_err());
        assert!(parse_image_output("type=image,push=true").is_err());
    }
}
