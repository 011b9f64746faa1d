//! `hoist build` as a library call: read and parse the Dockerfile, open the context, lower to a plan,
//! solve it, and write the image (config, manifest, tags) into the store.

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context as _, Result, anyhow, bail};
use hoist_image::oci_spec::image::Descriptor;
use hoist_image::{Compression, Digest, Reference, Store};

use crate::cache::Cache;
use crate::context::open_context;
use crate::dockerfile::{FrontendOptions, lower};
use crate::plan::NetworkMode;
use crate::progress::{Mode, Progress};
use crate::solver::Solver;

/// Everything `hoist build` takes.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// The store directory.
    pub store_root: PathBuf,
    /// The context directory; None when the Dockerfile comes from stdin without a context.
    pub context: Option<PathBuf>,
    /// `-f`: the Dockerfile path (default `CONTEXT/Dockerfile`).
    pub dockerfile: Option<PathBuf>,
    /// The Dockerfile's text when it was read from stdin.
    pub dockerfile_text: Option<String>,
    pub tags: Vec<String>,
    pub build_args: BTreeMap<String, String>,
    pub target: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub no_cache: bool,
    pub pull: bool,
    pub network: NetworkMode,
    pub progress: Mode,
    /// `os/arch[/variant]`; default the host's.
    pub platform: Option<String>,
    /// `--secret` values (never in a layer, the history, a cache key or the logs).
    pub secrets: crate::secrets::Secrets,
    /// `--ssh` agent sockets.
    pub ssh: crate::secrets::SshAgents,
    /// `--push`, `--cache-from`, `--cache-to`, `--insecure-registry`.
    pub registry: crate::registry::RegistryOptions,
}

/// What a build produced.
#[derive(Debug, Clone)]
pub struct BuildOutput {
    /// The image ID (config digest).
    pub image_id: String,
    pub manifest_digest: String,
    /// The manifest digest in the registry when pushed (`--push`): layers go compressed.
    pub pushed_digest: Option<String>,
    /// The names it was tagged with, normalised (`docker.io/library/app:1.0`).
    pub names: Vec<String>,
    /// Build check findings (printed after the build, as BuildKit does).
    pub warnings: Vec<hoist_parser::lint::LintWarning>,
}

/// Runs a whole build.
pub fn build(opts: &BuildOptions) -> Result<BuildOutput> {
    let progress = Progress::new(opts.progress);
    build_with_progress(opts, progress)
}

/// [`build`] reporting to a given progress sink.
pub fn build_with_progress(opts: &BuildOptions, progress: Arc<Progress>) -> Result<BuildOutput> {
    let tags = opts
        .tags
        .iter()
        .map(|t| Reference::parse(t).map_err(|e| anyhow!("invalid tag {t:?}: {e}")))
        .collect::<Result<Vec<_>>>()?;

    let v = progress.vertex("[internal] load build definition from Dockerfile");
    let (text, df_path, file_name) = match (&opts.dockerfile_text, &opts.dockerfile, &opts.context)
    {
        (Some(t), _, _) => (t.clone(), None, "Dockerfile".to_string()),
        (None, Some(p), _) => (
            fs::read_to_string(p)
                .with_context(|| format!("failed to read dockerfile: open {}", p.display()))?,
            Some(p.clone()),
            p.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
        ),
        (None, None, Some(c)) => {
            let p = c.join("Dockerfile");
            (
                fs::read_to_string(&p)
                    .with_context(|| format!("failed to read dockerfile: open {}", p.display()))?,
                Some(p),
                "Dockerfile".to_string(),
            )
        }
        (None, None, None) => bail!("no Dockerfile and no context given"),
    };
    v.done();
    let ast = hoist_parser::parse(text.as_bytes(), &file_name).map_err(|e| anyhow!("{e}"))?;
    // Instruction-level validation of the whole file (reachable stages or not), as BuildKit does.
    let df = hoist_parser::parse_dockerfile(&ast)
        .map_err(|e| anyhow!(crate::lint::located(&text, &e)))?;

    let context = match &opts.context {
        Some(c) => {
            let v = progress.vertex("[internal] load .dockerignore");
            let ctx = open_context(c, df_path.as_deref())?;
            v.done();
            Some(ctx)
        }
        None => None,
    };

    let store = Store::open(&opts.store_root)?;
    let cache = Cache::open(&store.dir("cache")?)?;
    let (cache, remote) = crate::registry::attach_cache(cache, &store, &progress, &opts.registry)?;
    let platform = opts
        .platform
        .clone()
        .unwrap_or_else(|| format!("linux/{}", hoist_image::config::host_arch()));
    let fe = FrontendOptions {
        build_args: opts.build_args.clone(),
        target: opts.target.clone(),
        labels: opts.labels.clone(),
        network: opts.network,
        platform,
        file_name: file_name.clone(),
    };
    let mut seen: BTreeMap<String, hoist_image::Image> = BTreeMap::new();
    let mut resolver = |name: &str| -> Result<hoist_image::Image> {
        if let Some(img) = seen.get(name) {
            return Ok(img.clone());
        }
        let v = progress.vertex(&format!(
            "[internal] load metadata for {}",
            display_ref(name)
        ));
        let local = if opts.pull {
            None
        } else {
            store.resolve(name).ok()
        };
        let img = match local {
            Some(img) => img,
            None => {
                // Missing (or --pull): fetch it from its registry, as `docker build` does.
                let platform = opts
                    .platform
                    .as_deref()
                    .map(hoist_registry::Platform::parse)
                    .transpose()?;
                match hoist_registry::blocking::pull_image(
                    &store,
                    name,
                    platform,
                    &[],
                    hoist_registry::ProgressMode::Quiet,
                ) {
                    Ok(_) => store.resolve(name)?,
                    Err(e) => {
                        v.error(&format!("{e:#}"));
                        bail!(
                            "failed to resolve source metadata for {}: {e:#}",
                            display_ref(name)
                        );
                    }
                }
            }
        };
        v.done();
        seen.insert(name.to_string(), img.clone());
        Ok(img)
    };
    let lowered = lower(&df, &fe, &mut resolver)?;
    // Build checks (now that base images' environments are known): reported at the end;
    // `# check=error=true` fails before any step runs.
    let checks = crate::lint::check_with_bases(&text, &file_name, &|i| {
        lowered.base_env.get(i).cloned().flatten()
    })?;
    if checks.failed() {
        let mut rules: Vec<&str> = checks.warnings.iter().map(|w| w.rule).collect();
        rules.dedup();
        bail!(
            "{}lint violation found for rules: {}",
            checks.summary(),
            rules.join(", ")
        );
    }
    let plan = lowered.plan;

    let mut solver = Solver::new(
        store.clone(),
        cache,
        context,
        progress.clone(),
        opts.no_cache,
    );
    solver.secrets = opts.secrets.clone();
    solver.ssh = opts.ssh.clone();
    solver.source_date_epoch = crate::reproducible::source_date_epoch(&opts.build_args)?;
    let result = solver.solve(&plan)?;

    let v = progress.vertex("exporting to image");
    let mut layers: Vec<Descriptor> = Vec::new();
    for d in &result.config.rootfs.diff_ids {
        layers.push(layer_descriptor(&store, d)?);
    }
    let annotations =
        crate::registry::inline_annotations(remote.as_deref(), &opts.registry, &result.config)?;
    let image = store.write_image_annotated(&result.config, &layers, &tags, &annotations)?;
    v.log(&format!("writing image {}", image.id()));
    for t in &tags {
        v.log(&format!("naming to {t}"));
    }
    v.done();
    let pushed_digest = crate::registry::after_build(
        &store,
        &progress,
        &opts.registry,
        remote.as_deref(),
        &result.config,
        &tags,
    )?;
    Ok(BuildOutput {
        image_id: image.id().to_string(),
        manifest_digest: image.manifest_digest.to_string(),
        pushed_digest,
        names: tags.iter().map(|t| t.to_string()).collect(),
        warnings: checks.warnings,
    })
}

fn display_ref(name: &str) -> String {
    Reference::parse(name)
        .map(|r| r.to_string())
        .unwrap_or_else(|_| name.to_string())
}

/// The manifest descriptor of a stored layer: the uncompressed blob when present, else a compressed one.
fn layer_descriptor(store: &Store, diff_id: &Digest) -> Result<Descriptor> {
    for c in [Compression::None, Compression::Gzip, Compression::Zstd] {
        if let Some(b) = store.layer_blob(diff_id, c) {
            return Ok(Descriptor::new(
                c.media_type().into(),
                store.blob_size(&b)?,
                b.to_oci(),
            ));
        }
    }
    bail!("layer {diff_id} is missing from the store")
}
