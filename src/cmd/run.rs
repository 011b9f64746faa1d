//! `hoist run` and `hoist volume create|ls|rm|inspect`: flags -> `hoist_runtime::Spec` -> exit code,
//! with Docker's ENTRYPOINT/CMD rules and exit codes (125 for hoist's own errors, 126/127 when the
//! command cannot be executed, the command's code otherwise, 128+n for a signal).

use std::collections::BTreeMap;
use std::fs;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{ArgAction, Args, Subcommand};
use hoist_image::{Store, default_root};
use hoist_runtime::volume::Volumes;
use hoist_runtime::{Limits, Mount, MountKind, Network, Process, Rootfs, Spec, Stdio};
use serde_json::json;

use super::Global;

#[derive(Debug, Subcommand)]
pub enum Commands {
    /// Create and run a new container from an image
    Run(Box<RunArgs>),
    /// Manage volumes
    #[command(subcommand)]
    Volume(VolumeCommands),
}

#[derive(Debug, Args)]
#[command(disable_help_flag = true)]
pub struct RunArgs {
    /// Print help
    #[arg(long, action = ArgAction::Help)]
    help: Option<bool>,
    /// Automatically remove the container when it exits (always the case: containers do not outlive
    /// the command)
    #[arg(long)]
    rm: bool,
    /// Set environment variables (KEY=VALUE, or KEY to copy it from this environment)
    #[arg(short = 'e', long = "env", value_name = "KEY=VALUE")]
    env: Vec<String>,
    /// Read in a file of environment variables
    #[arg(long = "env-file", value_name = "FILE")]
    env_file: Vec<PathBuf>,
    /// Bind mount a volume: SRC:DST[:ro|rw] (SRC a host path or a volume name) or DST (anonymous)
    #[arg(short = 'v', long = "volume", value_name = "SRC:DST[:ro]")]
    volume: Vec<String>,
    /// Attach a filesystem mount: type=bind|volume|tmpfs,source=...,target=...[,readonly][,tmpfs-size=N]
    #[arg(long = "mount", value_name = "SPEC")]
    mount: Vec<String>,
    /// Working directory inside the container
    #[arg(short = 'w', long = "workdir", value_name = "DIR")]
    workdir: Option<String>,
    /// Username or UID (format: <name|uid>[:<group|gid>])
    #[arg(short = 'u', long = "user")]
    user: Option<String>,
    /// Network: none (only loopback) or host [default: host]
    #[arg(long = "network", alias = "net", value_name = "NETWORK")]
    network: Option<String>,
    /// Container host name
    #[arg(short = 'h', long = "hostname")]
    hostname: Option<String>,
    /// Memory limit (e.g. 64m, 1g)
    #[arg(short = 'm', long = "memory", value_name = "BYTES")]
    memory: Option<String>,
    /// Number of CPUs
    #[arg(long = "cpus")]
    cpus: Option<f64>,
    /// Tune container pids limit (-1 for unlimited)
    #[arg(long = "pids-limit")]
    pids_limit: Option<i64>,
    /// Overwrite the default ENTRYPOINT of the image
    #[arg(long = "entrypoint")]
    entrypoint: Option<String>,
    /// Keep STDIN open
    #[arg(short = 'i', long = "interactive")]
    interactive: bool,
    /// Allocate a pseudo-TTY
    #[arg(short = 't', long = "tty")]
    tty: bool,
    /// Image to run
    image: String,
    /// Command and arguments
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum VolumeCommands {
    /// Create a volume
    Create {
        /// Volume name (random if omitted)
        name: Option<String>,
    },
    /// List volumes
    #[command(alias = "list")]
    Ls {
        /// Only display volume names
        #[arg(short, long)]
        quiet: bool,
    },
    /// Remove one or more volumes
    #[command(alias = "remove")]
    Rm {
        /// Ignored (volumes are never in use by a running container after hoist run ends)
        #[arg(short, long)]
        force: bool,
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Display detailed information on one or more volumes
    Inspect {
        #[arg(required = true)]
        names: Vec<String>,
    },
}

impl Commands {
    pub fn run(self, global: &Global) -> anyhow::Result<ExitCode> {
        let root = global.root.clone().unwrap_or_else(default_root);
        match self {
            Commands::Run(args) => Ok(run_container(&root, *args)),
            Commands::Volume(v) => volume(&root, v),
        }
    }
}

fn random_hex(n: usize) -> String {
    let mut bytes = vec![0u8; n.div_ceil(2)];
    if let Ok(mut f) = fs::File::open("/dev/urandom") {
        use std::io::Read;
        let _ = f.read_exact(&mut bytes);
    }
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    hex[..n].to_string()
}

/// Docker's size syntax: 1024, 512k, 64m, 1g (b/k/m/g, optional trailing "b").
fn parse_bytes(s: &str) -> anyhow::Result<u64> {
    let lower = s.trim().to_ascii_lowercase();
    let t = lower
        .strip_suffix('b')
        .filter(|t| !t.is_empty())
        .unwrap_or(&lower);
    let (num, mult) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1u64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        Some('t') => (&t[..t.len() - 1], 1 << 40),
        _ => (t, 1),
    };
    let n: f64 = num
        .parse()
        .with_context(|| format!("invalid size: {s:?}"))?;
    Ok((n * mult as f64) as u64)
}

fn run_container(root: &Path, args: RunArgs) -> ExitCode {
    match prepare_and_run(root, args) {
        Ok(code) => ExitCode::from(code as u8),
        Err(Failure(code, err)) => {
            eprintln!("hoist: {err:#}");
            ExitCode::from(code as u8)
        }
    }
}

struct Failure(i32, anyhow::Error);

impl<E: Into<anyhow::Error>> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure(125, e.into())
    }
}

/// Removes the container's directory (and anonymous volumes) on drop.
struct Cleanup(Vec<PathBuf>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = fs::remove_dir_all(p);
        }
    }
}

fn prepare_and_run(root: &Path, args: RunArgs) -> Result<i32, Failure> {
    let store =
        Store::open(root).with_context(|| format!("opening the store {}", root.display()))?;
    let _lease = store.lease()?;
    let image = store
        .resolve(&args.image)
        .with_context(|| format!("Unable to find image '{}' locally", args.image))?;
    let lowers = store.unpacked_layers(&image)?;
    let cfg = image.config.config.clone().unwrap_or_default();

    // ENTRYPOINT and CMD, Docker's way: --entrypoint drops the image's CMD too.
    let (entrypoint, image_cmd) = match &args.entrypoint {
        Some(e) if e.is_empty() => (Vec::new(), Vec::new()),
        Some(e) => (vec![e.clone()], Vec::new()),
        None => (
            cfg.entrypoint.clone().unwrap_or_default(),
            cfg.cmd.clone().unwrap_or_default(),
        ),
    };
    let cmd = if args.command.is_empty() {
        image_cmd
    } else {
        args.command.clone()
    };
    let argv: Vec<String> = entrypoint.into_iter().chain(cmd).collect();
    if argv.is_empty() {
        return Err(Failure(125, anyhow::anyhow!("no command specified")));
    }

    let id = random_hex(64);
    let hostname = args
        .hostname
        .clone()
        .unwrap_or_else(|| id[..12].to_string());

    // Environment: image, then HOSTNAME, then --env-file and -e (later wins).
    let mut env: BTreeMap<String, String> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    let mut set = |kv: &str| {
        let (k, v) = match kv.split_once('=') {
            Some((k, v)) => (k.to_string(), Some(v.to_string())),
            None => (kv.to_string(), std::env::var(kv).ok()),
        };
        if k.is_empty() {
            return;
        }
        if let Some(v) = v {
            if !order.contains(&k) {
                order.push(k.clone());
            }
            env.insert(k, v);
        }
    };
    for kv in cfg.env.iter().flatten() {
        set(kv);
    }
    set(&format!("HOSTNAME={hostname}"));
    for file in &args.env_file {
        let text = fs::read_to_string(file)
            .with_context(|| format!("reading env file {}", file.display()))?;
        for line in text.lines() {
            let line = line.trim_start();
            if !line.is_empty() && !line.starts_with('#') {
                set(line);
            }
        }
    }
    for kv in &args.env {
        set(kv);
    }
    let env: Vec<String> = order.iter().map(|k| format!("{k}={}", env[k])).collect();

    // Mounts.
    let volumes = Volumes::new(root);
    let mut cleanup = Cleanup(Vec::new());
    let mut mounts = Vec::new();
    for v in &args.volume {
        mounts.push(parse_volume(v, &volumes, &mut cleanup)?);
    }
    for m in &args.mount {
        mounts.push(parse_mount(m, &volumes, &mut cleanup)?);
    }

    let network = match args.network.as_deref() {
        None | Some("host") | Some("default") | Some("bridge") => Network::Host,
        Some("none") => Network::None,
        Some(other) => {
            return Err(Failure(
                125,
                anyhow::anyhow!("network {other} not found (supported: none, host)"),
            ));
        }
    };
    let limits = Limits {
        memory: args.memory.as_deref().map(parse_bytes).transpose()?,
        cpus: args.cpus,
        pids: args.pids_limit.filter(|p| *p > 0),
    };

    // The container's writable layer, on the store's filesystem.
    let dir = store.dir("containers")?.join(&id);
    cleanup.0.push(dir.clone());
    let (upper, work) = (dir.join("upper"), dir.join("work"));
    fs::create_dir_all(&upper).context("creating the container layer")?;
    fs::create_dir_all(&work).context("creating the container layer")?;

    let spec = Spec {
        rootfs: Rootfs::Overlay {
            lowers,
            upper,
            work,
        },
        process: Process {
            args: argv,
            env,
            cwd: args
                .workdir
                .clone()
                .or(cfg.working_dir.clone())
                .filter(|w| !w.is_empty())
                .unwrap_or_else(|| "/".into()),
            user: args
                .user
                .clone()
                .or(cfg.user.clone())
                .filter(|u| !u.is_empty()),
            tty: args.tty,
            rlimits: Vec::new(),
        },
        hostname,
        network,
        mounts,
        limits,
        etc: Default::default(),
    };
    let stdio = if args.interactive {
        Stdio::Inherit
    } else {
        let dup = |fd: &dyn std::os::fd::AsFd| fd.as_fd().try_clone_to_owned();
        Stdio::Fds {
            stdin: None,
            stdout: dup(&std::io::stdout()).context("stdout")?,
            stderr: dup(&std::io::stderr()).context("stderr")?,
        }
    };
    if args.tty && args.interactive && !std::io::stdin().is_terminal() {
        return Err(Failure(
            125,
            anyhow::anyhow!("the input device is not a TTY"),
        ));
    }
    match hoist_runtime::run_foreground(&spec, stdio) {
        Ok(status) => Ok(status.code()),
        Err(e) => Err(Failure(e.exit_code(), e.into())),
    }
}

/// `-v SRC:DST[:ro|rw]` or `-v DST` (anonymous volume).
fn parse_volume(v: &str, volumes: &Volumes, cleanup: &mut Cleanup) -> anyhow::Result<Mount> {
    let parts: Vec<&str> = v.split(':').collect();
    let (src, target, mode) = match parts.as_slice() {
        [dst] => (None, *dst, ""),
        [src, dst] => (Some(*src), *dst, ""),
        [src, dst, mode] => (Some(*src), *dst, *mode),
        _ => bail!("invalid volume specification: {v:?}"),
    };
    let readonly = mode.split(',').any(|m| m == "ro");
    if let Some(bad) = mode
        .split(',')
        .find(|m| !["", "ro", "rw", "z", "Z", "rprivate", "private"].contains(m))
    {
        bail!("invalid mode {bad:?} in volume specification {v:?}");
    }
    if !target.starts_with('/') {
        bail!("invalid volume specification: {v:?}: the destination must be an absolute path");
    }
    let src = volume_source(src, volumes, cleanup)?;
    Ok(Mount {
        target: target.into(),
        kind: MountKind::Bind { src, readonly },
    })
}

/// A host path, a named volume (created on demand) or a fresh anonymous volume.
fn volume_source(
    src: Option<&str>,
    volumes: &Volumes,
    cleanup: &mut Cleanup,
) -> anyhow::Result<PathBuf> {
    match src {
        Some(s) if s.starts_with('/') => Ok(PathBuf::from(s)),
        Some(s) if s.starts_with('.') => Ok(std::path::absolute(s)?),
        Some(name) => Ok(volumes.create(name)?.mountpoint),
        None => {
            let v = volumes.create(&random_hex(64))?;
            cleanup.0.push(v.mountpoint.clone());
            Ok(v.mountpoint)
        }
    }
}

/// `--mount type=bind|volume|tmpfs,source=...,target=...,readonly,tmpfs-size=...,tmpfs-mode=...`.
fn parse_mount(spec: &str, volumes: &Volumes, cleanup: &mut Cleanup) -> anyhow::Result<Mount> {
    let mut kind = "volume".to_string();
    let (mut src, mut target, mut readonly, mut size, mut mode) = (None, None, false, None, None);
    for field in spec.split(',') {
        let (k, v) = match field.split_once('=') {
            Some((k, v)) => (k.trim(), Some(v.trim())),
            None => (field.trim(), None),
        };
        match (k, v) {
            ("type", Some(v)) => kind = v.to_string(),
            ("source" | "src", Some(v)) => src = Some(v.to_string()),
            ("target" | "destination" | "dst", Some(v)) => target = Some(v.to_string()),
            ("readonly" | "ro", None) => readonly = true,
            ("readonly" | "ro", Some(v)) => readonly = v == "true" || v == "1",
            ("tmpfs-size", Some(v)) => size = Some(parse_bytes(v)?),
            ("tmpfs-mode", Some(v)) => {
                mode = Some(u32::from_str_radix(v, 8).with_context(|| format!("tmpfs-mode {v}"))?)
            }
            ("bind-propagation" | "consistency" | "volume-nocopy", _) => {}
            _ => bail!("invalid field {field:?} in --mount {spec:?}"),
        }
    }
    let target = target.with_context(|| format!("--mount {spec:?}: target is required"))?;
    if !target.starts_with('/') {
        bail!("--mount {spec:?}: target must be an absolute path");
    }
    let kind = match kind.as_str() {
        "bind" => {
            let src = src.with_context(|| format!("--mount {spec:?}: source is required"))?;
            let src = std::path::absolute(&src)?;
            if !src.exists() {
                bail!(
                    "invalid mount config for type \"bind\": bind source path does not exist: {}",
                    src.display()
                );
            }
            MountKind::Bind { src, readonly }
        }
        "volume" => MountKind::Bind {
            src: volume_source(
                Some(src.as_deref().unwrap_or("")).filter(|s| !s.is_empty()),
                volumes,
                cleanup,
            )?,
            readonly,
        },
        "tmpfs" => MountKind::Tmpfs { size, mode },
        other => bail!("--mount {spec:?}: unsupported type {other:?}"),
    };
    Ok(Mount { target, kind })
}

fn volume(root: &Path, cmd: VolumeCommands) -> anyhow::Result<ExitCode> {
    let volumes = Volumes::new(root);
    let inspect = |v: &hoist_runtime::volume::Volume| {
        json!({
            "CreatedAt": "",
            "Driver": "local",
            "Labels": null,
            "Mountpoint": v.mountpoint,
            "Name": v.name,
            "Options": null,
            "Scope": "local",
        })
    };
    match cmd {
        VolumeCommands::Create { name } => {
            let name = name.unwrap_or_else(|| random_hex(64));
            let v = volumes.create(&name)?;
            println!("{}", v.name);
        }
        VolumeCommands::Ls { quiet } => {
            let list = volumes.list()?;
            if quiet {
                for v in list {
                    println!("{}", v.name);
                }
            } else {
                println!("{:<10}VOLUME NAME", "DRIVER");
                for v in list {
                    println!("{:<10}{}", "local", v.name);
                }
            }
        }
        VolumeCommands::Rm { names, .. } => {
            let mut failed = false;
            for n in names {
                match volumes.remove(&n) {
                    Ok(()) => println!("{n}"),
                    Err(e) => {
                        eprintln!("Error response from daemon: get {n}: {e}");
                        failed = true;
                    }
                }
            }
            return Ok(if failed {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            });
        }
        VolumeCommands::Inspect { names } => {
            let mut out = Vec::new();
            let mut failed = false;
            for n in names {
                match volumes.get(&n)? {
                    Some(v) => out.push(inspect(&v)),
                    None => {
                        eprintln!("Error response from daemon: get {n}: no such volume");
                        failed = true;
                    }
                }
            }
            println!("{}", serde_json::to_string_pretty(&out)?);
            return Ok(if failed {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            });
        }
    }
    Ok(ExitCode::SUCCESS)
}
