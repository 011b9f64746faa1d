//! The solver: runs a [`Plan`] (knows nothing of Dockerfiles). Chains run in parallel threads as soon
//! as the chains they read from are done ([`schedule`]); each step is keyed by content ([`key`]:
//! parent key + operation + digests of what it reads) and skipped when the cache already has its
//! layer.
//!
//! Owns: scheduling, step keys, running RUN (`exec`) with its mounts ([`mounts`], [`mount_key`]),
//! COPY/ADD (`file_copy`) and mkdir ([`fileops`]) at solve time, what steps read (`inputs`),
//! `SOURCE_DATE_EPOCH` clamping ([`reproducible`]) and step errors ([`StepError`]).
//! Must not touch: Dockerfile syntax or source strings (the frontend types every input), nor how
//! errors are excerpted (the frontend renders a step's location).

mod emulation;
mod error;
mod exec;
mod file_copy;
pub mod fileops;
mod inputs;
pub mod key;
pub mod mount_key;
pub mod mounts;
pub mod reproducible;
pub mod schedule;

pub use error::StepError;

use std::collections::HashMap;
use std::fs;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::{Result, anyhow, bail};
use hoist_image::{Digest, ImageConfig, Store};

use self::file_copy::PreparedCopy;
use self::schedule::Scheduler;
use crate::cache::{Cache, CacheRecord, key_of};
use crate::context::{HashIndex, SourceRoot};
use crate::plan::{Base, Chain, ExecMount, Input, Op, Plan, Step};
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
    /// The config of base image `id` (its config digest): the blob itself, so that an image
    /// picked from a multi-platform index, which has no name of its own, is found too.
    fn base_config(&self, id: &str) -> Result<hoist_image::ImageConfig> {
        if let Ok(img) = self.store.resolve(id) {
            return Ok(img.config);
        }
        let d: hoist_image::Digest = id
            .parse()
            .map_err(|e| anyhow::anyhow!("base image id {id:?}: {e}"))?;
        let bytes = self.store.read_blob(&d)?;
        serde_json::from_slice(&bytes)
            .map_err(|e| anyhow::anyhow!("config of base image {id}: {e}"))
    }

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
            Base::Image { id, diff_ids, .. } => (
                key_of(&["image", id]),
                diff_ids.clone(),
                Some(self.base_config(id)?),
            ),
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
            let result = self.run_step(step, (&key, &chain.platform), &diff_ids, unpack, wait, &v);
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

    /// Computes a step's key, reuses the cached layer or runs it. `(parent, platform)`: the key it
    /// builds on and its stage's platform. `unpack`: a later step needs the layer's files (a COPY
    /// then writes them while it writes the layer).
    fn run_step(
        &self,
        step: &Step,
        (parent, platform): (&str, &str),
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
        let key = key::step_key(parent, platform, &step.op, self.source_date_epoch, &extra);
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
                emulation::ensure(platform)?;
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

/// Whether `chain` builds on chain `i` or reads files from it.
fn reads_chain(chain: &Chain, i: usize) -> bool {
    matches!(chain.base, Base::Chain(c) if c == i)
        || chain.steps.iter().any(|s| step_inputs(s).contains(&i))
}
