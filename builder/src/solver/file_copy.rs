//! COPY/ADD at solve time: sources resolved and hashed for the key (git checkouts and downloads
//! included), then planned over the layers below and written as one layer.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Result;
use hoist_image::Digest;
use hoist_image::layer::entries::clamp_mtime;

use super::{ChainResult, Solver, key};
use crate::cache::{CacheRecord, key_of};
use crate::context::SourceRoot;
use crate::copy::dest_tree::FileSource;
use crate::copy::union::Union;
use crate::copy::{
    CopyOptions, DestFs, Reads, digest_sources, has_wildcard, plan_copy, resolve_in_layers,
    resolve_sources,
};
use crate::plan::{FileOp, Input, Source};
use crate::trash::Scratch;

impl Solver {
    pub(super) fn prepare_copy(
        &self,
        f: &FileOp,
        wait: &dyn Fn(usize) -> Result<Arc<ChainResult>>,
    ) -> Result<PreparedCopy> {
        let mut urls = Vec::new();
        let mut local = Vec::new();
        let mut digest_parts = Vec::new();
        let mut downloads = Vec::new();
        for s in &f.sources {
            match s {
                Source::Git {
                    url,
                    keep_git_dir,
                    checksum,
                } => {
                    let co = crate::context::git::checkout(
                        url,
                        &self.store.tmp_dir(),
                        *keep_git_dir,
                        checksum.as_deref(),
                    )?;
                    let digest = format!("git:{}:{}:{}", co.commit, co.subdir, keep_git_dir);
                    digest_parts.push(digest.clone());
                    downloads.push(crate::context::fetch::Download {
                        dir: co.dir,
                        name: co.subdir,
                        digest,
                    });
                }
                Source::Http { url, checksum } => urls.push((url, checksum)),
                Source::Path(p) => local.push(p.clone()),
            }
        }
        for (u, checksum) in urls {
            let dl =
                crate::context::fetch::download(u, &self.store.tmp_dir(), checksum.as_deref())?;
            digest_parts.push(dl.digest.clone());
            downloads.push(dl);
        }
        let mut root = None;
        let mut matched = Vec::new();
        let mut reads = Reads::default();
        if !local.is_empty() {
            // A stage's or an image's sources are named through its layers; it is flattened only
            // to copy from it (in `file`, on a cache miss), unless a wildcard must be listed.
            let in_layers = matches!(f.from, Input::Chain(_) | Input::Image(_))
                && !local.iter().any(|s| has_wildcard(s));
            let r = if in_layers {
                let view = Union::new(self.layer_dirs(&f.from, wait)?.1);
                for s in &local {
                    matched.extend(resolve_in_layers(&view, s)?);
                }
                None
            } else {
                let r = self.input_root(&f.from, wait)?;
                for s in &local {
                    matched.extend(resolve_sources(&r, s)?);
                }
                Some(r)
            };
            let d = match (&f.from, &r) {
                (Input::Context | Input::Local(_) | Input::Inline(_), Some(r)) => {
                    digest_sources(r, &matched, &copy_options(f), &self.index, Some(&mut reads))?
                }
                (other, _) => {
                    let k = self.input_key(other, wait)?;
                    let names: Vec<&str> = matched.iter().map(|m| m.rel.as_str()).collect();
                    key_of(&[&k, &names.join("\n")])
                }
            };
            digest_parts.push(d);
            root = r;
        }
        Ok(PreparedCopy {
            digest: digest_parts.join(","),
            root,
            matched,
            downloads,
            reads,
        })
    }

    /// Runs a COPY/ADD: plans it over the image's layers, then writes its layer (and, with `unpack`,
    /// its unpacked files) in one pass.
    pub(super) fn file(
        &self,
        f: &FileOp,
        p: &mut PreparedCopy,
        lowers: Vec<PathBuf>,
        unpack: bool,
        wait: &dyn Fn(usize) -> Result<Arc<ChainResult>>,
    ) -> Result<hoist_image::LayerInfo> {
        let dest_fs = DestFs::plan(lowers, self.store.tmp_dir());
        let mut opts = copy_options(f);
        if let Some(c) = &f.chown {
            opts.chown = Some(crate::copy::users::resolve_chown(c, &dest_fs.view)?);
        }
        if p.root.is_none() && !p.matched.is_empty() {
            p.root = Some(self.input_root(&f.from, wait)?);
        }
        if let Some(root) = &p.root {
            plan_copy(
                root,
                &p.matched,
                &dest_fs,
                &f.dest,
                &opts,
                Some(&p.reads.walks),
            )?;
        }
        for dl in &p.downloads {
            let src = SourceRoot::plain(dl.dir.path());
            let m = resolve_sources(&src, &dl.name)?;
            let o = CopyOptions {
                unpack_archives: false,
                ..opts.clone()
            };
            plan_copy(&src, &m, &dest_fs, &f.dest, &o, None)?;
        }
        // A layer already stored with exactly this content (same entries, same file contents) is
        // taken as it is: nothing is written. Steps that read its files unpack it on demand.
        let epoch = self.source_date_epoch;
        let content = |s: &FileSource| p.reads.digests.get(&s.path).cloned();
        let same_layer = match self.no_cache {
            true => None,
            false => dest_fs
                .tree
                .borrow()
                .digest(&|t| clamp_mtime(t, epoch), &content),
        }
        .map(|d| key_of(&[key::CACHE_VERSION, "layer-content", &d]));
        if let Some(d) = same_layer
            .as_ref()
            .and_then(|k| self.cache.get_local(k)?.diff_id?.parse::<Digest>().ok())
            && self.store.has_blob(&d)
        {
            let size = self.store.blob_size(&d)?;
            return Ok(hoist_image::LayerInfo::uncompressed(d, size));
        }
        let staging = if unpack {
            Some(Scratch::adopt(&self.trash, self.store.staging_dir()?))
        } else {
            None
        };
        let info = crate::copy::layer_out::commit(
            &self.store,
            &dest_fs.tree.borrow(),
            Some(&mut p.reads.contents),
            &self.layer_options(),
            staging.as_ref().map(|s| s.path()),
        )?;
        if let Some(s) = staging
            && self.store.adopt_unpacked(&info.diff_id, s.path())?
        {
            s.forget();
        }
        if let Some(k) = &same_layer {
            let rec = CacheRecord {
                diff_id: Some(info.diff_id.to_string()),
                created: None,
            };
            self.cache.put_local(k, &rec)?;
        }
        Ok(info)
    }
}

fn copy_options(f: &FileOp) -> CopyOptions {
    CopyOptions {
        chown: None,
        chmod: f.chmod.clone(),
        exclude: f.exclude.clone(),
        parents: f.parents,
        preserve_owner: !matches!(f.from, Input::Context | Input::Local(_) | Input::Inline(_)),
        unpack_archives: f.unpack,
    }
}

/// A COPY/ADD whose sources are resolved and hashed.
pub(super) struct PreparedCopy {
    pub(super) digest: String,
    root: Option<SourceRoot>,
    matched: Vec<crate::copy::Matched>,
    downloads: Vec<crate::context::fetch::Download>,
    /// What hashing walked and read, for the copy.
    reads: Reads,
}
