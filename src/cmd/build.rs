//! `hoist build`: flags -> [`hoist_builder::build`] -> the image id (and iid/metadata files).

use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use hoist_builder::plan::NetworkMode;
use hoist_builder::progress::Mode;
use hoist_builder::{BuildOptions, build};

use super::Global;

#[derive(Debug, Subcommand)]
pub enum Commands {
    /// Build an image from a Dockerfile
    Build(Box<BuildArgs>),
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// Name of the Dockerfile (default: "PATH/Dockerfile"; "-" reads it from stdin)
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    file: Option<String>,
    /// Name and optionally a tag ("name:tag")
    #[arg(short = 't', long = "tag", value_name = "NAME:TAG")]
    tags: Vec<String>,
    /// Set build-time variables (KEY=VALUE, or KEY to take it from the environment)
    #[arg(long = "build-arg", value_name = "KEY=VALUE")]
    build_args: Vec<String>,
    /// Additional build contexts (NAME=PATH, NAME=docker-image://IMAGE, NAME=oci-layout://DIR[:TAG],
    /// NAME=GIT-URL): reached with FROM NAME, COPY --from=NAME, RUN --mount=from=NAME
    #[arg(long = "build-context", value_name = "NAME=VALUE")]
    build_contexts: Vec<String>,
    /// Set the target build stage to build
    #[arg(long)]
    target: Option<String>,
    /// Do not use cache when building the image
    #[arg(long)]
    no_cache: bool,
    /// Do not cache specified stages
    #[arg(long = "no-cache-filter", value_name = "STAGE")]
    no_cache_filter: Vec<String>,
    /// Add a custom host-to-IP mapping for RUN (format: "host:ip")
    #[arg(long = "add-host", value_name = "HOST:IP", value_delimiter = ',')]
    add_hosts: Vec<String>,
    /// Shared memory size for RUN (/dev/shm; default 64m)
    #[arg(long = "shm-size", value_name = "BYTES")]
    shm_size: Option<String>,
    /// Ulimit options for RUN (NAME=SOFT[:HARD])
    #[arg(long = "ulimit", value_name = "ULIMIT")]
    ulimits: Vec<String>,
    /// Shorthand for "--output=type=docker": keep the image in the store (it always is without -o)
    #[arg(long)]
    load: bool,
    /// Add annotation to the image manifest ("[manifest:]KEY=VALUE")
    #[arg(long = "annotation", value_name = "KEY=VALUE")]
    annotations: Vec<String>,
    /// Always attempt to pull all referenced images
    #[arg(long)]
    pull: bool,
    /// Set metadata for an image (KEY=VALUE)
    #[arg(long = "label", value_name = "KEY=VALUE")]
    labels: Vec<String>,
    /// Networking mode for the RUN instructions during build: default, none, host
    #[arg(long, default_value = "default")]
    network: String,
    /// Type of progress output: auto, tty, plain, quiet
    #[arg(long, default_value = "auto")]
    progress: String,
    /// Suppress the build output and print image ID on success
    #[arg(short, long)]
    quiet: bool,
    /// Write the image ID to the file
    #[arg(long, value_name = "FILE")]
    iidfile: Option<PathBuf>,
    /// Write build result metadata to the file
    #[arg(long, value_name = "FILE")]
    metadata_file: Option<PathBuf>,
    /// Set target platform for build (a comma list builds an image index; foreign RUN steps run
    /// under QEMU)
    #[arg(long)]
    platform: Option<String>,
    /// Secret to expose to the build (format: "id=mysecret[,src=/local/secret]" or "id=X,env=VAR")
    #[arg(long = "secret", value_name = "SECRET")]
    secrets: Vec<String>,
    /// SSH agent socket to expose to the build (format: "default|<id>[=<socket>]")
    #[arg(long = "ssh", value_name = "SSH")]
    ssh: Vec<String>,
    /// Push the image to its registry after the build (every -t name)
    #[arg(long)]
    push: bool,
    /// Output destination: "type=local,dest=DIR" (or just DIR), "type=oci|docker|tar,dest=FILE|-", "-" (tar on stdout), "type=registry,name=REGISTRY/REPO:TAG", "type=docker" (the store); exports alone leave no image in the store (add -t or --load)
    #[arg(short = 'o', long = "output", value_name = "PATH|TYPE=...")]
    outputs: Vec<String>,
    /// External cache sources (e.g. "type=registry,ref=REGISTRY/REPO:TAG", "type=local,src=DIR", or an image with an inline cache)
    #[arg(long = "cache-from", value_name = "SPEC")]
    cache_from: Vec<String>,
    /// Cache export destinations (e.g. "type=registry,ref=REGISTRY/REPO:TAG[,mode=max]", "type=local,dest=DIR[,mode=max]", "type=inline")
    #[arg(long = "cache-to", value_name = "SPEC")]
    cache_to: Vec<String>,
    /// Registry reached over plain http (loopback registries always are)
    #[arg(long = "insecure-registry", value_name = "HOST")]
    insecure_registries: Vec<String>,
    /// Run the build checks (lint rules) on the Dockerfile and exit without building
    #[arg(long)]
    check: bool,
    /// Build context: a directory, a git URL ("https://host/repo.git#REF:SUBDIR", "git@host:repo"),
    /// an http(s) URL of a tarball or of a Dockerfile, or "-" to read a Dockerfile from stdin
    #[arg(value_name = "PATH | -")]
    context: String,
}

impl Commands {
    pub fn run(self, global: &Global) -> anyhow::Result<ExitCode> {
        match self {
            // Docker's report of a failed build: the failed step's context, then one line.
            Commands::Build(a) => {
                // Quiet progress shows no step log (as docker), so the report starts at the excerpt.
                let quiet = a.quiet || a.progress == "quiet";
                a.run(global).or_else(|e| {
                    if let Some(step) = e.downcast_ref::<hoist_builder::solver::StepError>() {
                        eprint!(
                            "{}",
                            if quiet {
                                step.location.clone()
                            } else {
                                step.report()
                            }
                        );
                    } else if let Some(l) =
                        e.downcast_ref::<hoist_builder::frontend::snippet::Located>()
                    {
                        eprint!("{}", l.excerpt);
                    }
                    eprintln!("ERROR: failed to build: {e:#}");
                    Ok(ExitCode::FAILURE)
                })
            }
        }
    }
}

fn key_values(items: &[String], from_env: bool) -> anyhow::Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for kv in items {
        match kv.split_once('=') {
            Some((k, v)) => {
                out.insert(k.to_string(), v.to_string());
            }
            None if from_env => {
                if let Ok(v) = std::env::var(kv) {
                    out.insert(kv.clone(), v);
                }
            }
            None => {
                out.insert(kv.clone(), String::new());
            }
        }
    }
    Ok(out)
}

impl BuildArgs {
    /// `--push`, `--output type=registry`, `--cache-from/--cache-to`, `--insecure-registry`
    /// (registry outputs add their names to the tags).
    fn registry_options(
        &mut self,
    ) -> anyhow::Result<hoist_builder::export::registry::RegistryOptions> {
        use hoist_builder::cache::remote::CacheSpec;
        let mut push = self.push;
        for o in &self.outputs {
            if hoist_builder::export::outputs::Export::parse(o)?.is_some() {
                continue; // written after the build
            }
            // type=image|registry name (and push) the store image; type=cacheonly needs nothing.
            if let Some(out) = hoist_builder::export::registry::parse_image_output(o)? {
                push |= out.push;
                self.tags.extend(out.names);
            }
        }
        if push && self.tags.is_empty() {
            bail!(
                "tag is needed when pushing to registry (--push needs -t REGISTRY/REPOSITORY:TAG)"
            );
        }
        Ok(hoist_builder::export::registry::RegistryOptions {
            push,
            cache_from: self
                .cache_from
                .iter()
                .map(|s| CacheSpec::parse_from(s))
                .collect::<anyhow::Result<_>>()?,
            cache_to: self
                .cache_to
                .iter()
                .map(|s| CacheSpec::parse_to(s))
                .collect::<anyhow::Result<_>>()?,
            insecure_registries: self.insecure_registries.clone(),
        })
    }

    fn run(mut self, global: &Global) -> anyhow::Result<ExitCode> {
        let store_root = global
            .root
            .clone()
            .unwrap_or_else(hoist_image::default_root);
        let mut stdin_text = None;
        let read_stdin = || -> anyhow::Result<String> {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .context("reading the Dockerfile from stdin")?;
            Ok(s)
        };
        let context = if self.context == "-" {
            stdin_text = Some(read_stdin()?);
            None
        } else {
            Some(PathBuf::from(&self.context))
        };
        let dockerfile = match self.file.as_deref() {
            Some("-") => {
                if stdin_text.is_some() {
                    bail!(
                        "invalid argument: can't use stdin for both build context and dockerfile"
                    );
                }
                stdin_text = Some(read_stdin()?);
                None
            }
            Some(f) => Some(PathBuf::from(f)),
            None => None,
        };
        if self.check {
            let (text, name) = match (&stdin_text, &dockerfile, &context) {
                (Some(t), _, _) => (t.clone(), "Dockerfile".to_string()),
                (None, f, Some(c))
                    if hoist_builder::context::remote::is_remote(&c.to_string_lossy())
                        && f.as_ref().is_none_or(|f| f.is_relative()) =>
                {
                    bail!(
                        "--check reads the Dockerfile locally: with a URL context {}, give it as an absolute -f path",
                        c.display()
                    )
                }
                (None, f, c) => {
                    let p = f
                        .clone()
                        .unwrap_or_else(|| c.clone().unwrap_or_default().join("Dockerfile"));
                    let t = std::fs::read_to_string(&p).with_context(|| {
                        format!("failed to read dockerfile: open {}", p.display())
                    })?;
                    let n = p.file_name().map(|n| n.to_string_lossy().into_owned());
                    (t, n.unwrap_or_default())
                }
            };
            let report = hoist_builder::frontend::lint::check_in_store(
                &text,
                &name,
                &store_root,
                &key_values(&self.build_args, true)?,
                self.platform.as_deref(),
            )?;
            print!("{}", report.render());
            if let Some(e) = report.render_error() {
                eprint!("{e}");
            }
            return Ok(if report.failed() {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            });
        }
        let network = match self.network.as_str() {
            "default" | "host" => NetworkMode::Host,
            "none" => NetworkMode::None,
            other => bail!("network mode {other:?} not supported by buildkit"),
        };
        let progress = if self.quiet {
            Mode::Quiet
        } else {
            Mode::parse(&self.progress).with_context(|| {
                format!(
                    "invalid progress mode {:?}: use auto, tty, plain or quiet",
                    self.progress
                )
            })?
        };
        let registry = self.registry_options()?;
        let keep_image = hoist_builder::export::outputs::keeps_image(
            &self.outputs,
            self.load,
            !self.tags.is_empty(),
        )?;
        let opts = BuildOptions {
            store_root,
            context,
            dockerfile,
            dockerfile_text: stdin_text,
            tags: self.tags,
            build_args: key_values(&self.build_args, true)?,
            target: self.target,
            labels: key_values(&self.labels, false)?,
            no_cache: self.no_cache,
            pull: self.pull,
            network,
            progress,
            platform: self.platform,
            secrets: hoist_builder::context::secrets::Secrets::from_specs(&self.secrets)?,
            ssh: hoist_builder::context::secrets::SshAgents::from_specs(&self.ssh)?,
            registry,
            build_contexts: hoist_builder::frontend::named_context::parse_build_contexts(
                &self.build_contexts,
            )?,
            no_cache_filter: self.no_cache_filter,
            run: hoist_builder::plan::RunOptions::from_flags(
                &self.add_hosts,
                self.shm_size.as_deref(),
                &self.ulimits,
            )?,
            annotations: self.annotations,
            exports: self
                .outputs
                .iter()
                .filter_map(|o| hoist_builder::export::outputs::Export::parse(o).transpose())
                .collect::<anyhow::Result<Vec<_>>>()?,
            keep_image,
        };
        let out = build(&opts)?;
        if let Some(p) = &self.iidfile {
            std::fs::write(p, &out.image_id).with_context(|| format!("writing {}", p.display()))?;
        }
        if let Some(p) = &self.metadata_file {
            let mut m = serde_json::json!({
                "containerimage.config.digest": out.image_id,
                "containerimage.digest": out.pushed_digest.as_ref().unwrap_or(&out.manifest_digest),
            });
            if !out.names.is_empty() {
                m["image.name"] = serde_json::Value::String(out.names.join(","));
            }
            std::fs::write(p, serde_json::to_vec_pretty(&m)?)
                .with_context(|| format!("writing {}", p.display()))?;
        }
        let stdout_taken = opts
            .exports
            .iter()
            .any(|x| x.dest == hoist_builder::export::outputs::Dest::Stdout);
        if self.quiet && !stdout_taken {
            println!("{}", out.image_id);
        } else if progress == Mode::Tty {
            eprintln!("writing image {}", out.image_id);
            for n in &out.names {
                eprintln!("naming to {n}");
            }
        }
        if !self.quiet && !out.warnings.is_empty() {
            eprint!(
                "\n{}",
                hoist_builder::frontend::lint::summary(&out.warnings)
            );
        }
        Ok(ExitCode::SUCCESS)
    }
}
