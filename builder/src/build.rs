//! `hoist build` as a library call: read and parse the Dockerfile, open the context, lower to a plan,
//! solve it, and write the image (config, manifest, tags) into the store.

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context as _, Result, anyhow, bail};
use hoist_image::oci_spec::image::Descriptor;
use hoist_image::{Compression, Digest, Platform, Reference, Store};

mod multi_platform;

use crate::cache::Cache;
use crate::context::open_context;
use crate::frontend::snippet::Located;
use crate::frontend::{FrontendOptions, lower};
use crate::plan::{NetworkMode, RunOptions, Ulimit};
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
    pub secrets: crate::context::secrets::Secrets,
    /// `--ssh` agent sockets.
    pub ssh: crate::context::secrets::SshAgents,
    /// `--push`, `--cache-from`, `--cache-to`, `--insecure-registry`.
    pub registry: crate::export::registry::RegistryOptions,
    /// `--build-context`s by normalised name.
    pub build_contexts: BTreeMap<String, crate::frontend::named_context::ContextSource>,
    /// `--no-cache-filter`: stages whose steps run even when cached.
    pub no_cache_filter: Vec<String>,
    /// `--add-host`, `--shm-size`, `--ulimit` (see [`RunOptions::from_flags`]).
    pub run: RunOptions,
    /// `--annotation` values (see [`parse_annotations`]).
    pub annotations: Vec<String>,
    /// `--output`s written from the image after the build (local, tar, oci, docker archives).
    pub exports: Vec<crate::export::outputs::Export>,
    /// Whether the image stays in the store afterwards ([`crate::export::outputs::keeps_image`]).
    pub keep_image: bool,
}

impl RunOptions {
    /// From `docker build --add-host HOST:IP|HOST=IP`, `--shm-size SIZE` and `--ulimit
    /// NAME=SOFT[:HARD]`, with buildx's errors.
    pub fn from_flags(
        add_hosts: &[String],
        shm_size: Option<&str>,
        ulimits: &[String],
    ) -> Result<RunOptions> {
        let mut extra_hosts = Vec::new();
        for h in add_hosts {
            let (host, ip) = h
                .split_once('=')
                .or_else(|| h.split_once(':'))
                .filter(|(host, ip)| !host.is_empty() && !ip.is_empty())
                .ok_or_else(|| anyhow!("invalid host {h}"))?;
            if ip == "host-gateway" {
                bail!("invalid host {h}: host-gateway needs a bridge network hoist does not have");
            }
            let bare = ip
                .strip_prefix('[')
                .and_then(|i| i.strip_suffix(']'))
                .unwrap_or(ip);
            let ip: std::net::IpAddr = bare.parse().map_err(|_| anyhow!("invalid host {h}"))?;
            extra_hosts.push(format!("{ip}\t{host}"));
        }
        let shm_size = shm_size
            .map(|s| {
                hoist_runtime::container::args::parse_bytes(s)
                    .map_err(|e| anyhow!("invalid argument {s:?} for \"--shm-size\" flag: {e}"))
            })
            .transpose()?;
        let ulimits = ulimits
            .iter()
            .map(|u| {
                let r = hoist_runtime::container::args::parse_ulimit(u).map_err(|e| anyhow!(e))?;
                Ok(Ulimit {
                    resource: r.resource,
                    soft: r.soft,
                    hard: r.hard,
                })
            })
            .collect::<Result<_>>()?;
        Ok(RunOptions {
            extra_hosts,
            shm_size,
            ulimits,
            hostname: None,
        })
    }
}

/// The RUN host name `--build-arg BUILDKIT_SANDBOX_HOSTNAME=NAME` asks for (an empty value is
/// BuildKit's default), with no `ARG` needed, as BuildKit's frontend reads it.
fn sandbox_hostname(build_args: &BTreeMap<String, String>) -> Option<String> {
    build_args
        .get("BUILDKIT_SANDBOX_HOSTNAME")
        .filter(|v| !v.is_empty())
        .cloned()
}

/// The `--platform` list (`linux/amd64,linux/arm64`), each parsed and normalised as containerd
/// does (duplicates dropped, order kept); the host's platform without one. A bad value is an
/// error naming it.
pub fn target_platforms(spec: Option<&str>) -> Result<Vec<Platform>> {
    let Some(spec) = spec else {
        return Ok(vec![Platform::host()]);
    };
    let mut out: Vec<Platform> = Vec::new();
    for part in spec.split(',').map(str::trim) {
        let p = Platform::parse(part)
            .map_err(|e| anyhow!("invalid platform {part:?} in --platform {spec:?}: {e}"))?
            .normalize();
        if !out.contains(&p) {
            out.push(p);
        }
    }
    Ok(out)
}

/// `--annotation [TYPE[PLATFORM]:]KEY=VALUE` as buildx parses it. Manifest annotations (no type,
/// or `manifest`) are returned; those for another platform than `platform` are left out. hoist
/// writes a single manifest and no image index, so index and descriptor types are refused.
pub fn parse_annotations(specs: &[String], platform: &str) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for spec in specs {
        let (k, v) = spec
            .split_once('=')
            .ok_or_else(|| anyhow!("invalid annotation {spec:?}, expected key=value"))?;
        let bad =
            || anyhow!("invalid annotation format, expected <type>:<key>=<value>, got {spec:?}");
        let (typ, plat, key) = match k.split_once(':') {
            Some((t, key)) => {
                let (name, plat) = match t.split_once('[') {
                    Some((n, rest)) => (n, Some(rest.strip_suffix(']').ok_or_else(bad)?)),
                    None => (t, None),
                };
                let name_ok =
                    !name.is_empty() && name.bytes().all(|b| b.is_ascii_lowercase() || b == b'-');
                let plat_ok = plat.is_none_or(|p| {
                    !p.is_empty()
                        && p.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b"_/-".contains(&b))
                });
                if name_ok && plat_ok {
                    (name, plat, key)
                } else {
                    ("", None, k)
                }
            }
            None => ("", None, k),
        };
        if key.is_empty() || key.contains(char::is_whitespace) {
            return Err(bad());
        }
        match typ {
            "" | "manifest" => {}
            "index" | "index-descriptor" | "manifest-descriptor" => bail!(
                "annotation type {typ:?} is not supported: hoist writes a single image manifest and no index"
            ),
            other => bail!("unknown annotation type {other:?}"),
        }
        if plat.is_none_or(|p| p == platform) {
            out.insert(key.to_string(), v.to_string());
        }
    }
    Ok(out)
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

/// A frontend error without an excerpt.
fn located(message: String) -> Located {
    Located {
        excerpt: String::new(),
        message,
    }
}

/// [`build`] reporting to a given progress sink.
pub fn build_with_progress(opts: &BuildOptions, progress: Arc<Progress>) -> Result<BuildOutput> {
    let tags = opts
        .tags
        .iter()
        .map(|t| Reference::parse(t).map_err(|e| anyhow!("invalid tag {t:?}: {e}")))
        .collect::<Result<Vec<_>>>()?;
    let platforms = target_platforms(opts.platform.as_deref())?;
    let platform_explicit = opts.platform.is_some();
    let [target_platform] = platforms.as_slice() else {
        return multi_platform::build_index(opts, &platforms, progress);
    };
    let platform = target_platform.to_string();
    let manifest_annotations = parse_annotations(&opts.annotations, &platform)?;

    let store = Store::open(&opts.store_root)?;
    // A git or http(s) URL as the context is fetched first: it holds the Dockerfile.
    let remote = match opts
        .context
        .as_deref()
        .and_then(|c| c.to_str())
        .filter(|c| crate::context::remote::is_remote(c))
    {
        Some(url) => {
            let keep_git = opts
                .build_args
                .get("BUILDKIT_CONTEXT_KEEP_GIT_DIR")
                .is_some_and(|v| matches!(v.as_str(), "1" | "t" | "T" | "true" | "TRUE" | "True"));
            Some(crate::context::remote::fetch(
                url,
                &store.tmp_dir(),
                keep_git,
                &progress,
            )?)
        }
        None => None,
    };
    let context_dir = remote
        .as_ref()
        .map(|r| r.root.clone())
        .or_else(|| opts.context.clone());
    let dockerfile = match (&remote, &opts.dockerfile_text) {
        (Some(r), None) => Some(crate::context::remote::dockerfile_path(
            r,
            opts.dockerfile.as_deref(),
        )?),
        _ => opts.dockerfile.clone(),
    };

    let v = progress.vertex("[internal] load build definition from Dockerfile");
    let (text, df_path, file_name) = match (&opts.dockerfile_text, &dockerfile, &context_dir) {
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
    v.status(&transfer_status(
        "dockerfile",
        text.len() as u64,
        v.elapsed(),
    ));
    v.done();
    if text.is_empty() {
        return Err(located("the Dockerfile cannot be empty".into()).into());
    }
    // Syntax errors are the bare message; instruction errors say `dockerfile parse error on line`.
    let ast = hoist_parser::parse(text.as_bytes(), &file_name).map_err(|e| Located {
        message: e.message.clone(),
        ..Located::parse(&text, &e)
    })?;
    // Instruction-level validation of the whole file (reachable stages or not), as BuildKit does.
    let df = hoist_parser::parse_dockerfile(&ast).map_err(|e| Located::parse(&text, &e))?;

    let context = match (&remote, &context_dir) {
        // BuildKit reads ignore files from local contexts only.
        (Some(r), _) => Some(crate::context::SourceRoot::plain(r.root.clone())),
        (None, Some(c)) => {
            let v = progress.vertex("[internal] load .dockerignore");
            let ctx = open_context(c, df_path.as_deref())?;
            v.done();
            Some(ctx)
        }
        (None, None) => None,
    };

    let named = crate::frontend::named_context::prepare(&store, &progress, &opts.build_contexts)?;
    let cache = Cache::open(&store.dir("cache")?)?;
    let (cache, remote) =
        crate::export::registry::attach_cache(cache, &store, &progress, &opts.registry)?;
    // As buildx does, the client's SOURCE_DATE_EPOCH is the build arg unless --build-arg sets it:
    // it clamps the image's times, and a stage that declares `ARG SOURCE_DATE_EPOCH` sees it.
    let mut build_args = opts.build_args.clone();
    if let Some(v) = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .filter(|v| !v.is_empty())
    {
        build_args.entry("SOURCE_DATE_EPOCH".into()).or_insert(v);
    }
    let fe = FrontendOptions {
        build_args: build_args.clone(),
        target: opts.target.clone(),
        labels: opts.labels.clone(),
        network: opts.network,
        platform,
        platform_explicit,
        file_name: file_name.clone(),
        text: text.clone(),
        contexts: named.inputs.clone(),
        no_cache_filter: opts.no_cache_filter.clone(),
        run: RunOptions {
            hostname: sandbox_hostname(&build_args),
            ..opts.run.clone()
        },
    };
    let mut seen: BTreeMap<String, hoist_image::Image> = BTreeMap::new();
    let mut resolver = |name: &str, want: &Platform| -> Result<hoist_image::Image> {
        let seen_key = format!("{want} {name}");
        if let Some(img) = seen.get(&seen_key) {
            return Ok(img.clone());
        }
        let v = progress.vertex(&format!(
            "[internal] load metadata for {}",
            display_ref(name)
        ));
        let local = if opts.pull {
            None
        } else {
            store.resolve_platform(name, Some(want)).ok()
        };
        let img = match local {
            Some(img) => img,
            None => {
                // Missing (or --pull): fetch it from its registry, as `docker build` does.
                match hoist_registry::blocking::pull_image(
                    &store,
                    name,
                    Some(want.clone()),
                    &[],
                    hoist_registry::ProgressMode::Quiet,
                ) {
                    Ok(_) => store.resolve_platform(name, Some(want))?,
                    Err(e) => {
                        v.error(&format!("{e:#}"));
                        // BuildKit names the reference as written first (`alpine:3: failed ...`).
                        bail!(
                            "{name}: failed to resolve source metadata for {}: {e:#}",
                            display_ref(name)
                        );
                    }
                }
            }
        };
        v.done();
        seen.insert(seen_key, img.clone());
        Ok(img)
    };
    // Everything the frontend rejects fails the solve, as in BuildKit.
    let lowered = lower(&df, &fe, &mut resolver).map_err(|e| match e.downcast::<Located>() {
        Ok(l) => l.into(),
        Err(e) => anyhow::Error::from(located(format!("{e:#}"))),
    })?;
    // Build checks (now that base images' environments are known): reported at the end;
    // `# check=error=true` fails before any step runs.
    let checks = crate::frontend::lint::check_with_bases(&text, &file_name, &|i| {
        lowered.base_env[i].clone()
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
    if let Some(ctx) = context.as_ref().filter(|_| plan.reads_context()) {
        // BuildKit's vertex for sending the context: hoist reads it in place, so this is the size of
        // what a first transfer would send (the files .dockerignore leaves).
        let v = progress.vertex("[internal] load build context");
        let bytes = context_bytes(ctx)?;
        v.status(&transfer_status("context", bytes, v.elapsed()));
        v.done();
    }
    for (name, root) in &named.roots {
        if plan.reads(&crate::plan::Input::Local(name.clone())) {
            let v = progress.vertex(&format!("[context {name}] load from client"));
            let bytes = context_bytes(root)?;
            v.status(&transfer_status(name, bytes, v.elapsed()));
            v.done();
        }
    }

    let mut solver = Solver::new(
        store.clone(),
        cache,
        context,
        progress.clone(),
        opts.no_cache,
    );
    solver.secrets = opts.secrets.clone();
    solver.ssh = opts.ssh.clone();
    solver.named = named.roots.clone();
    solver.source_date_epoch = crate::solver::reproducible::source_date_epoch(&build_args)?;
    let result = solver.solve(&plan)?;

    // With exports only (no -t, --load or image output), the image is written for them, then
    // removed: unless the store had it already.
    let remove_after = !opts.keep_image
        && tags.is_empty()
        && store
            .resolve(Digest::of(&result.config.to_bytes()).as_str())
            .is_err();
    let v = progress.vertex("exporting to image");
    let mut layers: Vec<Descriptor> = Vec::new();
    for d in &result.config.rootfs.diff_ids {
        layers.push(layer_descriptor(&store, d)?);
    }
    let mut annotations = manifest_annotations;
    annotations.extend(crate::export::registry::inline_annotations(
        remote.as_deref(),
        &opts.registry,
        &result.config,
    )?);
    let image = store.write_image_annotated(&result.config, &layers, &tags, &annotations)?;
    v.log(&format!("writing image {}", image.id()));
    for t in &tags {
        v.log(&format!("naming to {t}"));
    }
    v.done();
    let pushed_digest = crate::export::registry::after_build(
        &store,
        &progress,
        &opts.registry,
        remote.as_deref(),
        &result.config,
        &tags,
    )?;
    let names: Vec<String> = tags.iter().map(|t| t.to_string()).collect();
    let mut exported = Ok(());
    for x in &opts.exports {
        let v = progress.vertex(x.vertex_name());
        exported = x.write(&store, image.id().as_str(), &names);
        if let Err(e) = &exported {
            v.error(&format!("{e:#}"));
            break;
        }
        v.done();
    }
    if remove_after {
        store.remove_image(image.manifest_digest.as_str(), false)?;
    }
    exported?;
    crate::prune::enforce_cap(&store)?;
    Ok(BuildOutput {
        image_id: image.id().to_string(),
        manifest_digest: image.manifest_digest.to_string(),
        pushed_digest,
        names,
        warnings: checks.warnings,
    })
}

/// Bytes of the regular files a context holds after its ignore rules.
fn context_bytes(ctx: &crate::context::SourceRoot) -> Result<u64> {
    Ok(crate::context::walk(ctx, "", None)?
        .iter()
        .filter(|e| e.meta.is_file())
        .map(|e| e.meta.len())
        .sum())
}

/// BuildKit's plain-progress transfer line: `transferring NAME: SIZE[ TIME] done`, the size as
/// `units.Bytes` prints it with `%.2f` (decimal units, `2.05kB`; `30B` under 1000), none when zero,
/// and the time only past 10 ms.
fn transfer_status(name: &str, bytes: u64, took: std::time::Duration) -> String {
    const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    let size = if bytes == 0 {
        String::new()
    } else if bytes < 1000 {
        format!(" {bytes}B")
    } else {
        let mut i = 1;
        while i < UNITS.len() - 1 && bytes >= 1000u64.pow(i as u32 + 1) {
            i += 1;
        }
        format!(" {:.2}{}", bytes as f64 / 1000f64.powi(i as i32), UNITS[i])
    };
    let secs = took.as_secs_f64();
    let time = if secs > 0.01 {
        format!(" {secs:.1}s")
    } else {
        String::new()
    };
    format!("transferring {name}:{size}{time} done")
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    #[test]
    fn transfer_lines_as_buildkit_prints_them() {
        let fast = Duration::from_millis(3);
        let t = |b| super::transfer_status("context", b, fast);
        assert_eq!(t(0), "transferring context: done");
        assert_eq!(t(30), "transferring context: 30B done");
        assert_eq!(t(2048), "transferring context: 2.05kB done");
        assert_eq!(t(61_790_000), "transferring context: 61.79MB done");
        assert_eq!(
            super::transfer_status("dockerfile", 98, Duration::from_millis(300)),
            "transferring dockerfile: 98B 0.3s done"
        );
    }
}
