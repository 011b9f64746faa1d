//! What steps read from: the build context, named contexts, stages and images, by content key,
//! by their layers, or flattened once per build.

use std::fs;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context as _, Result, anyhow, bail};

use super::{ChainResult, Solver};
use crate::context::{SourceRoot, sha256_bytes};
use crate::copy::union::Union;
use crate::copy::{CopyOptions, digest_sources, resolve_sources};
use crate::plan::Input;
use crate::trash::Scratch;

impl Solver {
    /// A key standing for the content of an input.
    pub(super) fn input_key(
        &self,
        input: &Input,
        wait: &dyn Fn(usize) -> Result<Arc<ChainResult>>,
    ) -> Result<String> {
        Ok(match input {
            Input::Context | Input::Local(_) => {
                let ctx = self.local_root(input)?;
                let m = resolve_sources(ctx, ".")?;
                digest_sources(ctx, &m, &CopyOptions::default(), &self.index, None)?
            }
            Input::Chain(c) => wait(*c)?.key.clone(),
            Input::Image(r) => self.resolve_image(r)?.id().to_string(),
            Input::Inline(files) => sha256_bytes(serde_json::to_string(files)?.as_bytes()),
        })
    }

    pub(super) fn context(&self) -> Result<&SourceRoot> {
        self.context
            .as_ref()
            .ok_or_else(|| anyhow!("no build context: the Dockerfile was read from stdin"))
    }

    /// The directory of the main context or of a named local one.
    pub(crate) fn local_root(&self, input: &Input) -> Result<&SourceRoot> {
        match input {
            Input::Local(n) => self
                .named
                .get(n)
                .ok_or_else(|| anyhow!("no build context named {n:?}")),
            _ => self.context(),
        }
    }

    /// The layers of a stage's result or of an image, bottom first.
    pub(crate) fn input_diff_ids(
        &self,
        input: &Input,
        wait: &dyn Fn(usize) -> Result<Arc<ChainResult>>,
    ) -> Result<Vec<String>> {
        Ok(match input {
            Input::Chain(c) => wait(*c)?.diff_ids.clone(),
            Input::Image(r) => {
                let ids = self.resolve_image(r)?.config.rootfs.diff_ids;
                ids.iter().map(|d| d.to_string()).collect()
            }
            _ => bail!("not a stage or an image"),
        })
    }

    pub(super) fn resolve_image(&self, r: &str) -> Result<hoist_image::Image> {
        self.store
            .resolve(r)
            .with_context(|| format!("failed to resolve source metadata for {r}"))
    }

    /// A directory holding an input's files (flattened once per build for chains and images).
    pub(crate) fn input_root(
        &self,
        input: &Input,
        wait: &dyn Fn(usize) -> Result<Arc<ChainResult>>,
    ) -> Result<SourceRoot> {
        let (name, layers) = match input {
            Input::Context | Input::Local(_) => return Ok(self.local_root(input)?.clone()),
            Input::Inline(files) => {
                let d = Scratch::new(&self.trash, &self.store.tmp_dir(), "inline-")?;
                for (n, c) in files {
                    fs::write(d.path().join(n), c)?;
                }
                let root = d.path().to_path_buf();
                self.flat
                    .lock()
                    .unwrap()
                    .insert(format!("inline-{}", root.display()), Arc::new(d));
                return Ok(SourceRoot::plain(root));
            }
            Input::Chain(_) | Input::Image(_) => self.layer_dirs(input, wait)?,
        };
        if let Some(d) = self.flat.lock().unwrap().get(&name) {
            return Ok(SourceRoot::plain(d.path()));
        }
        let d = Scratch::new(&self.trash, &self.store.tmp_dir(), "flat-")?;
        Union::new(layers).flatten_into(d.path())?;
        let root = d.path().to_path_buf();
        self.flat.lock().unwrap().insert(name, Arc::new(d));
        Ok(SourceRoot::plain(root))
    }

    /// A name for a chain's or an image's result and its unpacked layer directories, bottom first.
    pub(super) fn layer_dirs(
        &self,
        input: &Input,
        wait: &dyn Fn(usize) -> Result<Arc<ChainResult>>,
    ) -> Result<(String, Vec<PathBuf>)> {
        let (name, diff_ids) = match input {
            Input::Chain(c) => {
                let r = wait(*c)?;
                (r.key.clone(), r.diff_ids.clone())
            }
            Input::Image(r) => {
                let img = self.resolve_image(r)?;
                let ids = img.config.rootfs.diff_ids.iter();
                (img.id().to_string(), ids.map(|d| d.to_string()).collect())
            }
            _ => bail!("not a stage or an image"),
        };
        let layers = diff_ids
            .iter()
            .map(|d| {
                Ok(self
                    .store
                    .unpacked_layer(&d.parse().map_err(|e| anyhow!("{e}"))?)?)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok((name, layers))
    }
}
