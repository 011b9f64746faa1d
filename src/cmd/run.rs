//! `hoist run` and `hoist volume create|ls|rm|inspect`: flags -> [`hoist_runtime::container`] (Docker's
//! `run` semantics and errors) -> exit code (125 for hoist's own errors, 126/127 when the command cannot
//! be executed, the command's code otherwise, 128+n for a signal). The image store is read here (the
//! runtime never reads it): the image's config values and unpacked layers are handed over.
//!
//! `run -d` starts a monitor (a re-exec of this binary with the same arguments and
//! `HOIST_MONITOR_ID` set, in its own session) that runs the container and records its end; the
//! CLI prints the ID once PID 1 exists.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use clap::{ArgAction, Args, Subcommand};
use hoist_image::{Store, default_root};
use hoist_runtime::container::{self, Dirs, Error, ImageConfig, RunOptions};
use hoist_runtime::lifecycle;
use hoist_runtime::monitor::{LOG_MAX_BYTES, run_logged};
use hoist_runtime::state::{Containers, State, now};
use hoist_runtime::volume::Volumes;
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
    /// Automatically remove the container when it exits (a foreground container is always removed)
    #[arg(long)]
    rm: bool,
    /// Run container in background and print container ID
    #[arg(short = 'd', long = "detach")]
    detach: bool,
    /// Assign a name to the container
    #[arg(long = "name")]
    name: Option<String>,
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
    /// Mount a tmpfs directory: DST[:OPTIONS] (noexec,nosuid,nodev unless OPTIONS say otherwise)
    #[arg(long = "tmpfs", value_name = "DST[:OPTIONS]")]
    tmpfs: Vec<String>,
    /// Working directory inside the container
    #[arg(short = 'w', long = "workdir", value_name = "DIR")]
    workdir: Option<String>,
    /// Username or UID (format: <name|uid>[:<group|gid>])
    #[arg(short = 'u', long = "user")]
    user: Option<String>,
    /// Add additional groups to join (names from the image's /etc/group, or numbers)
    #[arg(long = "group-add", value_name = "GROUP")]
    group_add: Vec<String>,
    /// Network: none (only loopback) or host [default: host]
    #[arg(long = "network", alias = "net", value_name = "NETWORK")]
    network: Option<String>,
    /// Container host name
    #[arg(short = 'h', long = "hostname")]
    hostname: Option<String>,
    /// Add a custom host-to-IP mapping (NAME:IP)
    #[arg(long = "add-host", value_name = "NAME:IP")]
    add_host: Vec<String>,
    /// Set custom DNS servers
    #[arg(long = "dns", value_name = "IP")]
    dns: Vec<String>,
    /// Set custom DNS search domains
    #[arg(long = "dns-search", value_name = "DOMAIN")]
    dns_search: Vec<String>,
    /// Set DNS options
    #[arg(long = "dns-option", alias = "dns-opt", value_name = "OPTION")]
    dns_option: Vec<String>,
    /// Set platform if server is multi-platform capable: the image of a multi-platform tag to
    /// run (os/arch[/variant]; default: this machine's)
    #[arg(long = "platform", value_name = "PLATFORM")]
    platform: Option<String>,
    /// Memory limit (e.g. 64m, 1g)
    #[arg(short = 'm', long = "memory", value_name = "BYTES")]
    memory: Option<String>,
    /// Number of CPUs
    #[arg(long = "cpus")]
    cpus: Option<f64>,
    /// Tune container pids limit (-1 for unlimited)
    #[arg(long = "pids-limit", allow_hyphen_values = true)]
    pids_limit: Option<i64>,
    /// Ulimit options (NAME=SOFT[:HARD], e.g. nofile=1024:2048)
    #[arg(long = "ulimit", value_name = "NAME=SOFT[:HARD]")]
    ulimit: Vec<String>,
    /// Add Linux capabilities (names with or without CAP_, or ALL)
    #[arg(long = "cap-add", value_name = "CAP")]
    cap_add: Vec<String>,
    /// Drop Linux capabilities (names with or without CAP_, or ALL)
    #[arg(long = "cap-drop", value_name = "CAP")]
    cap_drop: Vec<String>,
    /// Give extended privileges to this container (all capabilities, no seccomp, no masked paths,
    /// read-write /sys, the host's devices)
    #[arg(long)]
    privileged: bool,
    /// Security options: seccomp=unconfined|builtin, no-new-privileges[:true|false]
    #[arg(long = "security-opt", value_name = "OPTION")]
    security_opt: Vec<String>,
    /// Mount the container's root filesystem as read only
    #[arg(long = "read-only")]
    read_only: bool,
    /// Run an init inside the container that forwards signals and reaps processes
    #[arg(long)]
    init: bool,
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

impl RunArgs {
    fn options(self) -> (String, RunOptions) {
        let opts = RunOptions {
            env: self.env,
            env_files: self.env_file,
            volumes: self.volume,
            mounts: self.mount,
            tmpfs: self.tmpfs,
            workdir: self.workdir,
            user: self.user,
            network: self.network,
            hostname: self.hostname,
            memory: self.memory,
            cpus: self.cpus,
            pids_limit: self.pids_limit,
            entrypoint: self.entrypoint,
            interactive: self.interactive,
            tty: self.tty,
            detach: self.detach,
            init: self.init,
            read_only: self.read_only,
            privileged: self.privileged,
            cap_add: self.cap_add,
            cap_drop: self.cap_drop,
            security_opt: self.security_opt,
            ulimits: self.ulimit,
            add_hosts: self.add_host,
            dns: self.dns,
            dns_search: self.dns_search,
            dns_options: self.dns_option,
            group_add: self.group_add,
            command: self.command,
        };
        (self.image, opts)
    }
}

fn run_container(root: &Path, args: RunArgs) -> ExitCode {
    let result = if args.detach {
        detach(root, args)
    } else {
        validate_and_run(root, args)
    };
    match result {
        Ok(code) => ExitCode::from(code as u8),
        Err(e) => {
            eprintln!("hoist: {e:#}");
            ExitCode::from(e.exit_code() as u8)
        }
    }
}

/// Flags checked first (as Docker does, whatever the image), then the image from the store.
fn validate_and_run(root: &Path, args: RunArgs) -> Result<i32, container::Error> {
    let resolved = resolve(root, args)?;
    resolved
        .validated
        .prepare(&resolved.config, resolved.layers, &resolved.dirs)?
        .run()
}

/// A run's flags checked and its image resolved: what [`container::Validated::prepare`] needs.
pub struct Resolved {
    pub validated: container::Validated,
    pub config: ImageConfig,
    pub layers: Vec<PathBuf>,
    pub dirs: Dirs,
    /// The image as named on the command line.
    pub image_name: String,
    pub name: Option<String>,
    pub auto_remove: bool,
    /// The image's STOPSIGNAL.
    pub stop_signal: Option<String>,
    /// Keeps the image's layers from garbage collection while the container may use them.
    pub lease: hoist_image::store::Lease,
}

/// An image for another architecture runs under QEMU: the runtime finds (or, as root, registers)
/// its binfmt_misc entry and the run says so, as Docker does after `docker run --platform`.
fn emulate_if_foreign(config: &hoist_image::ImageConfig) -> Result<(), container::Error> {
    let wanted =
        hoist_image::Platform::new(&config.os, &config.architecture, config.variant.as_deref());
    if config.architecture.is_empty() || hoist_image::Platform::host().matches(&wanted) {
        return Ok(());
    }
    let arch = match &config.variant {
        Some(v) if config.architecture == "arm" => format!("arm/{v}"),
        _ => config.architecture.clone(),
    };
    let emulation = hoist_runtime::binfmt::ensure(&arch)
        .map_err(|e| container::Error::Invalid(format!("image platform {wanted}: {e}")))?;
    if let Some(line) = emulation.announcement() {
        eprintln!("{line}");
    }
    Ok(())
}

/// Checks the flags (as Docker does, whatever the image), then resolves the image in the store.
pub fn resolve(root: &Path, args: RunArgs) -> Result<Resolved, container::Error> {
    let platform = args.platform.clone();
    let (name, auto_remove) = (args.name.clone(), args.rm);
    let (image_name, opts) = args.options();
    let validated = opts.validate()?;
    let platform = platform
        .as_deref()
        .map(hoist_image::Platform::parse)
        .transpose()
        .map_err(|e| container::Error::Invalid(e.to_string()))?;
    let store_err = |e: anyhow::Error| container::Error::Invalid(format!("{e:#}"));
    let store = Store::open(root).map_err(|e| {
        container::Error::Invalid(format!("opening the store {}: {e:#}", root.display()))
    })?;
    let lease = store.lease().map_err(|e| store_err(e.into()))?;
    let image = store
        .resolve_platform(&image_name, platform.as_ref())
        .map_err(|e| {
            container::Error::Invalid(format!(
                "Unable to find image '{image_name}' locally: {e:#}"
            ))
        })?;
    emulate_if_foreign(&image.config)?;
    let layers = store
        .unpacked_layers(&image)
        .map_err(|e| store_err(e.into()))?;
    let cfg = image.config.config.clone().unwrap_or_default();
    let stop_signal = cfg.stop_signal.clone();
    let config = ImageConfig {
        entrypoint: cfg.entrypoint,
        cmd: cfg.cmd,
        env: cfg.env.unwrap_or_default(),
        working_dir: cfg.working_dir,
        user: cfg.user,
    };
    let dirs = Dirs {
        containers: store.dir("containers").map_err(|e| store_err(e.into()))?,
        volumes: Volumes::new(root),
    };
    Ok(Resolved {
        validated,
        config,
        layers,
        dirs,
        image_name,
        name,
        auto_remove,
        stop_signal,
        lease,
    })
}

/// Set in the monitor's environment: the id of the container it runs.
const MONITOR_ENV: &str = "HOIST_MONITOR_ID";

/// `hoist run -d`: in the CLI, claims the name and starts the monitor; in the monitor, runs the
/// container to completion and records how it ended.
pub fn detach(root: &Path, args: RunArgs) -> Result<i32, Error> {
    match std::env::var(MONITOR_ENV) {
        Ok(id) => monitor(root, args, id),
        Err(_) => start(root, args),
    }
}

fn start(root: &Path, args: RunArgs) -> Result<i32, Error> {
    let resolved = resolve(root, args)?;
    let containers = Containers::new(resolved.dirs.containers.clone());
    let id = container::random_id();
    let name = resolved.name.clone().unwrap_or_else(|| random_name(&id));
    {
        let _names = containers.lock_names()?;
        containers.check_name(&name)?;
        std::fs::create_dir_all(containers.dir(&id)).map_err(|e| e.to_string())?;
        let args = resolved.validated.command_line(&resolved.config)?;
        containers.save(&State {
            id: id.clone(),
            name,
            image: resolved.image_name.clone(),
            command: args.join(" "),
            args,
            stop_signal: resolved.stop_signal.clone(),
            created: now(),
            auto_remove: resolved.auto_remove,
            ..Default::default()
        })?;
    }
    drop(resolved);
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let cwd = std::env::current_dir().map_err(|e| format!("the current directory: {e}"))?;
    let saved = serde_json::json!({ "args": argv, "cwd": cwd });
    let path = containers.dir(&id).join("argv.json");
    if let Err(e) = std::fs::write(&path, saved.to_string()) {
        let _ = containers.remove(&id);
        return Err(format!("writing {}: {e}", path.display()).into());
    }
    match start_monitor(&containers, &id, true)? {
        0 => {
            println!("{id}");
            Ok(0)
        }
        code => Ok(code),
    }
}

/// Starts `id`'s monitor with the command line saved by `run -d` and waits until PID 1 exists;
/// 0, or the monitor's exit code after its error. A `fresh` container that fails to start is
/// removed (`run -d`); one started again keeps its state (`start`).
pub fn start_monitor(containers: &Containers, id: &str, fresh: bool) -> Result<i32, Error> {
    let path = containers.dir(id).join("argv.json");
    let saved: serde_json::Value = std::fs::read(&path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| {
            format!(
                "reading {}: the container cannot be started",
                path.display()
            )
        })?;
    let args: Vec<&str> = saved["args"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_str()).collect())
        .unwrap_or_default();
    let cwd = saved["cwd"].as_str().unwrap_or("/");
    let err_path = containers.dir(id).join("monitor.err");
    let spawned = std::fs::File::create(&err_path)
        .and_then(|err| {
            Command::new(std::env::current_exe()?)
                .args(&args)
                .current_dir(cwd)
                .env(MONITOR_ENV, id)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(err)
                .spawn()
        })
        .map_err(|e| format!("starting the container monitor: {e}"));
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => {
            if fresh {
                let _ = containers.remove(id);
            }
            return Err(e.into());
        }
    };
    // Wait until the monitor has started the container (or failed to).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        // Started: the monitor has recorded the start and cloned PID 1 (or it already ended).
        if let Ok(state) = containers.load(id)
            && state.started != 0
            && (!state.running || lifecycle::pid1(state.pid).is_some())
        {
            break;
        }
        if let Ok(Some(status)) = child.try_wait() {
            let msg = std::fs::read_to_string(&err_path).unwrap_or_default();
            let started = containers.load(id).is_ok_and(|s| s.started != 0);
            if started || msg.is_empty() {
                break; // ended already (and removed, with --rm)
            }
            if fresh {
                let _ = containers.remove(id);
            }
            eprint!("{msg}");
            return Ok(status.code().unwrap_or(125));
        }
        if Instant::now() > deadline {
            return Err("timed out waiting for the container monitor to start"
                .to_string()
                .into());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(0)
}

/// The monitor: its own session (no terminal), the container's lock held for its lifetime.
fn monitor(root: &Path, args: RunArgs, id: String) -> Result<i32, Error> {
    // SAFETY: setsid takes no pointers; it only detaches this process from the caller's session.
    unsafe { libc::setsid() };
    let resolved = resolve(root, args)?;
    let containers = Containers::new(resolved.dirs.containers.clone());
    let _lock = containers.lock_monitor(&id)?;
    let mut state = containers.load(&id)?;
    let mut prepared = resolved.validated.prepare_as(
        id.clone(),
        &resolved.config,
        resolved.layers,
        &resolved.dirs,
    )?;
    if !state.auto_remove {
        prepared.keep();
    }
    drop(resolved.lease);
    state.running = true;
    state.pid = std::process::id();
    state.started = now();
    containers.save(&state)?;
    let outcome = run_logged(
        &prepared.spec,
        &containers.log_path(&id),
        LOG_MAX_BYTES,
        prepared.interactive(),
    );
    let code = match &outcome {
        Ok(code) => *code,
        Err(e) => {
            eprintln!("hoist: {e:#}");
            e.exit_code()
        }
    };
    state.running = false;
    state.exit_code = code;
    state.finished = now();
    if state.auto_remove {
        drop(prepared);
        let _ = containers.remove(&id);
    } else {
        containers.save(&state)?;
    }
    Ok(code)
}

/// Docker-like generated names (`adjective_name`), chosen from the id's bytes.
fn random_name(id: &str) -> String {
    const LEFT: [&str; 8] = [
        "brave", "eager", "gifted", "happy", "jolly", "keen", "quirky", "vibrant",
    ];
    const RIGHT: [&str; 8] = [
        "curie", "darwin", "euler", "hopper", "lovelace", "noether", "ritchie", "turing",
    ];
    let byte = |i: usize| usize::from_str_radix(&id[i..i + 2], 16).unwrap_or(0);
    format!("{}_{}", LEFT[byte(0) % 8], RIGHT[byte(2) % 8])
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
            let name = name.unwrap_or_else(container::random_id);
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
