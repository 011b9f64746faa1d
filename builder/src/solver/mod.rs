//! The solver: runs a [`Plan`] (knows nothing of Dockerfiles). Chains run in parallel threads as soon
//! as the chains they read from are done; each step is keyed by content (parent key + operation +
//! digests of what it reads) and skipped when the cache already has its layer.

pub mod fileops;
pub mod key;
pub mod mount_key;
pub mod mounts;
pub mod reproducible;
pub mod schedule;

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context as _, Result, anyhow, bail};
use hoist_image::layer::entries::clamp_mtime;
use hoist_image::{Digest, ImageConfig, Store};
use hoist_runtime as rt;

use self::schedule::Scheduler;
use crate::cache::{Cache, CacheRecord, key_of};
use crate::context::{HashIndex, SourceRoot, sha256_bytes};
use crate::copy::dest_tree::FileSource;
use crate::copy::union::Union;
use crate::copy::{
    CopyOptions, DestFs, Reads, digest_sources, has_wildcard, plan_copy, resolve_in_layers,
    resolve_sources,
};
use crate::plan::{
    Base, Chain, ExecMount, ExecOp, FileOp, Input, NetworkMode, Op, Plan, Source, Step,
};
use crate::progress::{Progress, Vertex};
use crate::trash::{Scratch, Trash};

/// What a chain produced.
#[derive(Debug, Clone)]
pub struct ChainResult {
    /// The key of the chain's last step (or of its base).
    pub key: String,
    /// All layers, bottom first.
    pub diff_ids: Vec<String>,
    /// The final config (history and rootfs filled in).
    pub config: ImageConfig,
}

/// A failed step. It displays as the last line of BuildKit's report (`failed to solve: MESSAGE`,
/// which the CLI prefixes with `ERROR: failed to build: `); [`StepError::report`] is what
/// precedes it.
#[derive(Debug, thiserror::Error)]
#[error("failed to solve: {message}")]
pub struct StepError {
    pub title: String,
    /// The Dockerfile excerpt at the step (all a quiet build shows above the error).
    pub location: String,
    pub display: String,
    pub message: String,
    pub tail: String,
}

/// Everything the solver needs.
pub struct Solver {
    pub store: Store,
    pub cache: Cache,
    pub index: HashIndex,
    pub context: Option<SourceRoot>,
    /// Named local contexts (`--build-context NAME=DIR`), by name.
    pub named: HashMap<String, SourceRoot>,
    pub progress: Arc<Progress>,
    pub no_cache: bool,
    /// `--secret` values, `--ssh` sockets (see [`crate::solver::mounts`]).
    pub secrets: crate::context::secrets::Secrets,
    pub ssh: crate::context::secrets::SshAgents,
    /// `SOURCE_DATE_EPOCH`: clamps layer mtimes and the times in the config (see [`crate::solver::reproducible`]).
    pub source_date_epoch: Option<i64>,
    /// Flattened chains and images used as `COPY --from` sources, made once per build.
    flat: Mutex<HashMap<String, Arc<Scratch>>>,
    /// Where scratch trees go instead of being deleted during the build.
    trash: Arc<Trash>,
    /// Whether any step ran (then the cache's GC roots are refreshed).
    ran: std::sync::atomic::AtomicBool,
}

impl StepError {
    /// The lines BuildKit prints above the error: the step and the end of its output between
    /// `------` rules, then where it is in the Dockerfile.
    pub fn report(&self) -> String {
        format!(
            "------\n{}\n{}------\n{}",
            self.title, self.tail, self.location
        )
    }
}

impl Solver {
    pub fn new(
        store: Store,
        cache: Cache,
        context: Option<SourceRoot>,
        progress: Arc<Progress>,
        no_cache: bool,
    ) -> Solver {
        let index = HashIndex::load(&cache.dir().join("context-index.json"));
        let trash = Arc::new(Trash::open(&store));
        Solver {
            store,
            cache,
            index,
            context,
            named: HashMap::new(),
            progress,
            no_cache,
            secrets: Default::default(),
            ssh: Default::default(),
            source_date_epoch: None,
            flat: Mutex::new(HashMap::new()),
            trash,
            ran: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Runs every chain of the plan (in parallel where independent) and returns the target's result.
    pub fn solve(&self, plan: &Plan) -> Result<ChainResult> {
        let _lease = self.store.lease()?;
        // Chains other chains build on or read from: their last layer is needed unpacked.
        let consumed: Vec<bool> = (0..plan.chains.len())
            .map(|i| plan.chains.iter().any(|c| reads_chain(c, i)))
            .collect();
        let sched = Scheduler::<ChainResult>::new(plan.chains.len());
        let results = sched.run(|i, sched| self.run_chain(&plan.chains[i], consumed[i], sched));
        let mut first_err: Option<anyhow::Error> = None;
        let mut target = None;
        for (i, r) in results.into_iter().enumerate() {
            match r {
                Ok(r) if i == plan.target => target = Some(r),
                Ok(_) => {}
                Err(e) => {
                    // Prefer the step that failed over chains that failed waiting for it.
                    let is_step = e.downcast_ref::<StepError>().is_some();
                    if first_err.is_none()
                        || (is_step
                            && first_err
                                .as_ref()
                                .is_some_and(|f| f.downcast_ref::<StepError>().is_none()))
                    {
                        first_err = Some(e);
                    }
                }
            }
        }
        let _ = self.index.save();
        if self.ran.load(std::sync::atomic::Ordering::SeqCst) {
            let _ = self.store.set_gc_root(
                "build-cache",
                &self
                    .cache
                    .layers()
                    .iter()
                    .filter_map(|d| d.parse::<Digest>().ok())
                    .collect::<Vec<_>>(),
            );
        }
        if let Some(e) = first_err {
            return Err(e);
        }
        match target {
            Some(r) => Ok((*r).clone()),
            None => bail!("target was not built"),
        }
    }

    /// Runs one chain; `consumed`: another chain builds on it or reads from it.
    fn run_chain(
        &self,
        chain: &Chain,
        consumed: bool,
        sched: &Scheduler<ChainResult>,
    ) -> Result<ChainResult> {
        let wait = &|i: usize| sched.wait(i);
        // As BuildKit numbers a stage's steps: its FROM counts when it is an image (not scratch
        // or another stage), and the index is padded to the total's width (`[ 1/10]`).
        let from_image = matches!(chain.base, Base::Image { .. });
        let total = chain.steps.len() + usize::from(from_image);
        let width = total.to_string().len();
        let prefix = |i: usize| {
            let i = i - usize::from(!from_image);
            if chain.label.is_empty() {
                format!("[{i:>width$}/{total}]")
            } else {
                format!("[{} {i:>width$}/{total}]", chain.label)
            }
        };
        let (mut key, mut diff_ids, base_config) = match &chain.base {
            Base::Scratch => ("scratch".to_string(), Vec::new(), None),
            Base::Image { id, diff_ids, .. } => {
                let img = self.store.resolve(id)?;
                (key_of(&["image", id]), diff_ids.clone(), Some(img.config))
            }
            Base::Chain(c) => {
                let r = wait(*c)?;
                (r.key.clone(), r.diff_ids.clone(), Some(r.config.clone()))
            }
        };
        if from_image {
            let v = self
                .progress
                .vertex(&format!("{} {}", prefix(1), chain.base_display));
            v.cached();
        }
        let mut created: Vec<Option<String>> = Vec::new();
        for (i, step) in chain.steps.iter().enumerate() {
            if sched.is_cancelled() {
                return Err(schedule::Cancelled.into());
            }
            // Inputs this step reads must be ready before its key can be computed.
            for c in step_inputs(step) {
                wait(c)?;
            }
            let v = self
                .progress
                .vertex(&format!("{} {}", prefix(i + 2), step.display));
            // Files a later step will see are laid down while the layer is written.
            let unpack = consumed || i + 1 < chain.steps.len();
            let result = self.run_step(step, &key, &diff_ids, unpack, wait, &v);
            match result {
                Ok((k, rec, was_cached)) => {
                    if was_cached {
                        v.cached();
                    } else {
                        v.done();
                    }
                    key = k;
                    if let Some(d) = &rec.diff_id {
                        diff_ids.push(d.clone());
                    }
                    created.push(rec.created.clone());
                }
                Err(e) => {
                    let msg = format!("{e:#}");
                    let tail: String = v.tail().iter().map(|l| format!("{l}\n")).collect();
                    let title = format!(" > {} {}:", prefix(i + 2), step.display);
                    v.error(&msg);
                    // A context source's checksum is part of the step's cache key in BuildKit.
                    let message = if e.downcast_ref::<crate::copy::NotFound>().is_some() {
                        format!("failed to compute cache key: {msg}")
                    } else {
                        msg
                    };
                    return Err(StepError {
                        title,
                        location: step.location.clone(),
                        display: step.display.clone(),
                        message,
                        tail,
                    }
                    .into());
                }
            }
        }
        // The config: base history + this chain's entries, stamped with the time their layer was made
        // (so an all-cached rebuild yields the same image).
        let mut config = chain.config.clone();
        let base_config = base_config.unwrap_or_default();
        let base_created = base_config.created.clone();
        config.history = base_config.history.clone();
        // Each metadata entry takes the time of the nearest layer step (the next one, else the previous).
        let layer_times: Vec<Option<String>> = created.clone();
        let mut layer_i = 0;
        let n_layers = layer_times.len();
        for h in &chain.history {
            let mut h = h.clone();
            let t = if !h.empty_layer {
                let t = layer_times.get(layer_i).cloned().flatten();
                layer_i += 1;
                t
            } else if layer_i < n_layers {
                layer_times[layer_i].clone()
            } else if layer_i > 0 {
                layer_times[layer_i - 1].clone()
            } else {
                None
            };
            h.created = t
                .or_else(|| base_created.clone())
                .or_else(|| Some(hoist_image::config::now_rfc3339()));
            config.history.push(h);
        }
        config.created = created
            .iter()
            .rev()
            .find_map(|c| c.clone())
            .or(base_created)
            .or_else(|| Some(hoist_image::config::now_rfc3339()));
        config.rootfs.diff_ids = diff_ids
            .iter()
            .map(|d| d.parse::<Digest>().map_err(|e| anyhow!("{e}")))
            .collect::<Result<_>>()?;
        if let Some(t) = self.source_date_epoch {
            crate::solver::reproducible::clamp_config(&mut config, base_config.history.len(), t);
        }
        // The chain's config (labels, env...) is part of what later chains see: fold it into the key.
        let cfg_key = serde_json::to_string(&config.config)?;
        Ok(ChainResult {
            key: key_of(&[&key, &cfg_key]),
            diff_ids,
            config,
        })
    }

    /// Computes a step's key, reuses the cached layer or runs it. `unpack`: a later step needs the
    /// layer's files (a COPY then writes them while it writes the layer).
    fn run_step(
        &self,
        step: &Step,
        parent: &str,
        diff_ids: &[String],
        unpack: bool,
        wait: &dyn Fn(usize) -> Result<Arc<ChainResult>>,
        v: &Vertex,
    ) -> Result<(String, CacheRecord, bool)> {
        let mut extra = Vec::new();
        let mut prepared: Option<PreparedCopy> = None;
        match &step.op {
            // What the mounts read, by content (see `mount_key`).
            Op::Exec(e) => extra.extend(self.mount_digests(e, wait)?),
            Op::File(f) => {
                let p = self.prepare_copy(f, wait)?;
                extra.push(p.digest.clone());
                prepared = Some(p);
            }
            Op::Mkdir(_) => {}
        }
        let key = key::step_key(parent, &step.op, self.source_date_epoch, &extra);
        if !self.no_cache
            && !step.no_cache
            && let Some(rec) = self.cache.get(&key)
            && rec
                .diff_id
                .as_ref()
                .and_then(|d| d.parse::<Digest>().ok())
                .is_some_and(|d| self.store.has_blob(&d))
        {
            return Ok((key, rec, true));
        }
        let lowers: Vec<PathBuf> = diff_ids
            .iter()
            .map(|d| {
                let d: Digest = d.parse().map_err(|e| anyhow!("{e}"))?;
                Ok(self.store.unpacked_layer(&d)?)
            })
            .collect::<Result<_>>()?;
        let info = match &step.op {
            Op::Exec(e) => {
                let work = Scratch::new(&self.trash, &self.store.tmp_dir(), "build-")?;
                let upper = work.path().join("upper");
                fs::create_dir(&upper)?;
                self.exec(e, lowers, &upper, &work.path().join("work"), wait, v)?;
                self.store
                    .commit_overlay_upper(&upper, &self.layer_options())?
            }
            Op::File(f) => {
                let mut p = prepared.expect("prepared");
                self.file(f, &mut p, lowers, unpack, wait)?
            }
            Op::Mkdir(m) => {
                let work = Scratch::new(&self.trash, &self.store.tmp_dir(), "mkdir-")?;
                let upper = work.path().join("upper");
                fs::create_dir(&upper)?;
                crate::solver::fileops::mkdir(m, lowers, &upper)?;
                self.store
                    .commit_overlay_upper(&upper, &self.layer_options())?
            }
        };
        let rec = CacheRecord {
            diff_id: Some(info.diff_id.to_string()),
            created: Some(self.now()),
        };
        self.cache.put(&key, &rec)?;
        self.ran.store(true, std::sync::atomic::Ordering::SeqCst);
        Ok((key, rec, false))
    }

    /// A key standing for the content of an input.
    fn input_key(
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

    fn context(&self) -> Result<&SourceRoot> {
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

    fn resolve_image(&self, r: &str) -> Result<hoist_image::Image> {
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
    fn layer_dirs(
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

    fn prepare_copy(
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
                Source::Git { url } => {
                    let co = crate::context::git::checkout(
                        url,
                        &self.store.tmp_dir(),
                        f.keep_git_dir,
                        f.checksum.as_deref(),
                    )?;
                    let digest = format!("git:{}:{}:{}", co.commit, co.subdir, f.keep_git_dir);
                    digest_parts.push(digest.clone());
                    downloads.push(crate::context::fetch::Download {
                        dir: co.dir,
                        name: co.subdir,
                        digest,
                    });
                }
                Source::Http { url } => urls.push(url.clone()),
                Source::Path(p) => local.push(p.clone()),
            }
        }
        for u in &urls {
            let dl =
                crate::context::fetch::download(u, &self.store.tmp_dir(), f.checksum.as_deref())?;
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
    fn file(
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

    fn exec(
        &self,
        e: &ExecOp,
        lowers: Vec<PathBuf>,
        upper: &Path,
        work: &Path,
        wait: &dyn Fn(usize) -> Result<Arc<ChainResult>>,
        v: &Vertex,
    ) -> Result<()> {
        fs::create_dir_all(work)?;
        let prepared = self.prepare_mounts(e, wait)?;
        let mut env: Vec<String> = e
            .env
            .iter()
            .filter(|kv| {
                let k = kv.split('=').next().unwrap_or("");
                !prepared.env.iter().any(|x| x.split('=').next() == Some(k))
            })
            .cloned()
            .collect();
        env.extend(prepared.env.iter().cloned());
        let spec = rt::Spec {
            rootfs: rt::Rootfs::Overlay {
                lowers,
                upper: upper.to_path_buf(),
                work: work.to_path_buf(),
            },
            process: rt::Process {
                args: e.args.clone(),
                env,
                cwd: e.cwd.clone(),
                user: e.user.clone(),
                rlimits: prepared.rlimits.clone(),
                ..Default::default()
            },
            hostname: e
                .sandbox
                .hostname
                .clone()
                .unwrap_or_else(|| rt::BUILD_HOSTNAME.into()),
            flavor: rt::Flavor::Build,
            network: match e.network {
                NetworkMode::Host => rt::Network::Host,
                NetworkMode::None => rt::Network::None,
            },
            mounts: prepared.mounts.clone(),
            etc: rt::EtcFiles {
                hosts: prepared.hosts.clone(),
                ..Default::default()
            },
            // BuildKit's RUN may gain privileges (setuid binaries work, no no_new_privs).
            security: rt::Security {
                no_new_privileges: false,
                ..Default::default()
            },
            ..Default::default()
        };
        let (out_r, out_w) = rustix::pipe::pipe()?;
        let (err_r, err_w) = rustix::pipe::pipe()?;
        let (out_r, err_r) = (fs::File::from(out_r), fs::File::from(err_r));
        let done = std::sync::atomic::AtomicBool::new(false);
        let status = std::thread::scope(|s| {
            let runner = s.spawn(|| {
                let st = rt::run(
                    &spec,
                    rt::Stdio::Fds {
                        stdin: None,
                        stdout: out_w,
                        stderr: err_w,
                    },
                );
                done.store(true, std::sync::atomic::Ordering::SeqCst);
                st
            });
            // Stream output while the process runs; stop at EOF on both pipes, or shortly after the
            // run returned even if something still holds a write end.
            pump_output(&[&out_r, &err_r], &done, v);
            runner
                .join()
                .unwrap_or_else(|_| Err(rt::Error::Invalid("runtime thread panicked".into())))
        });
        drop(prepared);
        let status = status.map_err(|e| anyhow!("{e}"))?;
        if !status.success() {
            // BuildKit: `process %q did not complete successfully` (Go-quoted: `\n` shows as
            // `\\n`, quotes as `\"`, a tab as `\t`).
            bail!(
                "process {} did not complete successfully: exit code: {}",
                hoist_parser::dump::go_quote(&e.args.join(" ")),
                status.code()
            );
        }
        Ok(())
    }
}

/// Reads lines from the pipes into the vertex log until every pipe is at EOF, or `done` is set and
/// nothing more arrives for a moment.
fn pump_output(pipes: &[&fs::File], done: &std::sync::atomic::AtomicBool, v: &Vertex) {
    use rustix::event::{PollFd, PollFlags, poll};
    use std::io::Read;
    let mut bufs: Vec<Vec<u8>> = vec![Vec::new(); pipes.len()];
    let mut open: Vec<bool> = vec![true; pipes.len()];
    let mut idle_after_done = 0;
    while open.iter().any(|o| *o) {
        let mut fds: Vec<PollFd> = pipes
            .iter()
            .zip(&open)
            .filter(|(_, o)| **o)
            .map(|(p, _)| PollFd::new(*p, PollFlags::IN))
            .collect();
        let idx: Vec<usize> = (0..pipes.len()).filter(|i| open[*i]).collect();
        let timeout = rustix::time::Timespec {
            tv_sec: 0,
            tv_nsec: 100_000_000,
        };
        let n = poll(&mut fds, Some(&timeout)).unwrap_or(0);
        let ready: Vec<bool> = fds.iter().map(|f| !f.revents().is_empty()).collect();
        drop(fds);
        if n == 0 {
            if done.load(std::sync::atomic::Ordering::SeqCst) {
                idle_after_done += 1;
                if idle_after_done > 5 {
                    break;
                }
            }
            continue;
        }
        for (k, i) in idx.into_iter().enumerate() {
            if !ready[k] {
                continue;
            }
            let mut chunk = [0u8; 8192];
            match { pipes[i] }.read(&mut chunk) {
                Ok(0) | Err(_) => open[i] = false,
                Ok(m) => {
                    bufs[i].extend_from_slice(&chunk[..m]);
                    while let Some(pos) = bufs[i].iter().position(|b| *b == b'\n') {
                        let line: Vec<u8> = bufs[i].drain(..=pos).collect();
                        v.log(String::from_utf8_lossy(&line[..line.len() - 1]).as_ref());
                    }
                }
            }
        }
    }
    for b in bufs {
        if !b.is_empty() {
            v.log(&String::from_utf8_lossy(&b));
        }
    }
}

/// The chains a step reads from.
fn step_inputs(step: &Step) -> Vec<usize> {
    let mut out = Vec::new();
    match &step.op {
        Op::File(f) => {
            if let Input::Chain(c) = f.from {
                out.push(c);
            }
        }
        Op::Mkdir(_) => {}
        Op::Exec(e) => {
            for m in &e.mounts {
                match m {
                    ExecMount::Bind {
                        from: Input::Chain(c),
                        ..
                    }
                    | ExecMount::Cache(crate::plan::CacheMount {
                        from: Some(Input::Chain(c)),
                        ..
                    }) => out.push(*c),
                    _ => {}
                }
            }
        }
    }
    out
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
struct PreparedCopy {
    digest: String,
    root: Option<SourceRoot>,
    matched: Vec<crate::copy::Matched>,
    downloads: Vec<crate::context::fetch::Download>,
    /// What hashing walked and read, for the copy.
    reads: Reads,
}

/// Whether `chain` builds on chain `i` or reads files from it.
fn reads_chain(chain: &Chain, i: usize) -> bool {
    matches!(chain.base, Base::Chain(c) if c == i)
        || chain.steps.iter().any(|s| step_inputs(s).contains(&i))
}
