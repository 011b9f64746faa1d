//! `docker run` semantics on top of [`crate::run`]: the flags as given ([`RunOptions`]) are checked
//! with Docker's errors ([`RunOptions::validate`]), then combined with the image's config values
//! ([`ImageConfig`]: ENTRYPOINT/CMD rules, environment, working directory, user) into a [`Spec`]
//! with its writable layer and volumes ([`Validated::prepare`]), and run in the foreground
//! ([`Container::run`]).
//!
//! This module never reads the image store: the caller resolves the image and passes its config values
//! and unpacked layer directories (`hoist run` does that in the binary's run command).

pub mod args;
pub mod mount_args;

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::io::IsTerminal;
use std::net::IpAddr;
use std::path::PathBuf;

use crate::capabilities;
use crate::security::{Seccomp, Security};
use crate::spec::{
    EtcFiles, Flavor, Limits, Mount, MountKind, Network, Pid1, Process, Rlimit, Rootfs, Spec, Stdio,
};
use crate::volume::Volumes;
use mount_args::MountSpec;

/// `docker run`'s flags, as given on the command line.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// `-e KEY=VALUE` or `-e KEY` (copied from this process's environment when set).
    pub env: Vec<String>,
    pub env_files: Vec<PathBuf>,
    /// `-v SRC:DST[:MODE]` / `-v DST`.
    pub volumes: Vec<String>,
    /// `--mount type=...`.
    pub mounts: Vec<String>,
    /// `--tmpfs DST[:OPTIONS]`.
    pub tmpfs: Vec<String>,
    pub workdir: Option<String>,
    pub user: Option<String>,
    pub network: Option<String>,
    pub hostname: Option<String>,
    pub memory: Option<String>,
    pub cpus: Option<f64>,
    pub pids_limit: Option<i64>,
    /// `--entrypoint` ("" clears the image's).
    pub entrypoint: Option<String>,
    pub interactive: bool,
    pub tty: bool,
    /// `-d`: no terminal of the caller's is involved (so `-t` needs none).
    pub detach: bool,
    /// `--init`: a tiny init is PID 1 and the command its child.
    pub init: bool,
    pub read_only: bool,
    pub privileged: bool,
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    pub security_opt: Vec<String>,
    /// `--ulimit NAME=SOFT[:HARD]`.
    pub ulimits: Vec<String>,
    /// `--add-host NAME:IP`.
    pub add_hosts: Vec<String>,
    pub dns: Vec<String>,
    pub dns_search: Vec<String>,
    pub dns_options: Vec<String>,
    pub group_add: Vec<String>,
    /// The command and its arguments after the image name.
    pub command: Vec<String>,
}

/// The image config values a container starts from (the OCI image config's `config`).
#[derive(Debug, Clone, Default)]
pub struct ImageConfig {
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    pub env: Vec<String>,
    pub working_dir: Option<String>,
    pub user: Option<String>,
}

/// Where a container keeps its writable layer and named volumes (under the store).
#[derive(Debug, Clone)]
pub struct Dirs {
    /// Parent of the per-container directories (`upper`, `work`), removed after the run.
    pub containers: PathBuf,
    pub volumes: Volumes,
}

/// A failed `hoist run`, with Docker's exit code.
#[derive(Debug)]
pub enum Error {
    /// A flag value or combination Docker refuses, or a problem preparing the container (125).
    Invalid(String),
    /// From the sandbox (125, or 126/127 when the command cannot be executed).
    Run(crate::Error),
}

impl Error {
    /// Docker's exit code: 125 for hoist's own errors, 126/127 when the command cannot run.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Invalid(_) => 125,
            Error::Run(e) => e.exit_code(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Invalid(msg) => f.write_str(msg),
            Error::Run(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for Error {}

impl From<String> for Error {
    fn from(msg: String) -> Self {
        Error::Invalid(msg)
    }
}

impl From<crate::Error> for Error {
    fn from(e: crate::Error) -> Self {
        Error::Run(e)
    }
}

/// The flags, checked: everything but the image's part.
#[derive(Debug, Clone)]
pub struct Validated {
    opts: RunOptions,
    mounts: Vec<MountSpec>,
    network: Network,
    limits: Limits,
    security: Security,
    rlimits: Vec<Rlimit>,
    hosts: Vec<String>,
    dns: Vec<IpAddr>,
    dns_search: Vec<String>,
    /// `--env-file` lines, in order.
    env_file_lines: Vec<String>,
}

impl RunOptions {
    /// Checks every flag as the Docker CLI and daemon do before looking at the image.
    pub fn validate(&self) -> Result<Validated, Error> {
        let mut mounts = Vec::new();
        for v in &self.volumes {
            mounts.push(mount_args::parse_volume(v)?);
        }
        for m in &self.mounts {
            mounts.push(mount_args::parse_mount(m)?);
        }
        for t in &self.tmpfs {
            mounts.push(mount_args::parse_tmpfs(t)?);
        }
        let mut env_file_lines = Vec::new();
        for file in &self.env_files {
            let text =
                fs::read_to_string(file).map_err(|e| format!("open {}: {e}", file.display()))?;
            env_file_lines.extend(args::env_file_lines(&text, &file.display().to_string())?);
        }
        for kv in &self.env {
            if kv.starts_with('=') || kv.is_empty() {
                return Err(Error::Invalid(format!(
                    "invalid environment variable: {kv}"
                )));
            }
        }
        let limits = Limits {
            memory: self.memory.as_deref().map(args::parse_bytes).transpose()?,
            cpus: self.cpus,
            pids: self.pids_limit.filter(|p| *p > 0),
        };
        let sec = args::parse_security_opts(&self.security_opt)?;
        let capabilities = capabilities::tweak(&self.cap_add, &self.cap_drop, self.privileged)?;
        let security = Security {
            capabilities,
            seccomp: if self.privileged {
                Seccomp::Unconfined
            } else {
                sec.seccomp
            },
            no_new_privileges: sec.no_new_privileges,
            privileged: self.privileged,
            unmasked_paths: self.privileged || sec.unmasked_paths,
        };
        if self.tty && self.interactive && !self.detach && !std::io::stdin().is_terminal() {
            return Err(Error::Invalid("the input device is not a TTY".into()));
        }
        Ok(Validated {
            opts: self.clone(),
            mounts,
            network: args::parse_network(self.network.as_deref())?,
            limits,
            security,
            rlimits: self
                .ulimits
                .iter()
                .map(|u| args::parse_ulimit(u))
                .collect::<Result<_, _>>()?,
            hosts: self
                .add_hosts
                .iter()
                .map(|h| args::parse_add_host(h))
                .collect::<Result<_, _>>()?,
            dns: self
                .dns
                .iter()
                .map(|d| args::parse_dns(d))
                .collect::<Result<_, _>>()?,
            dns_search: self
                .dns_search
                .iter()
                .map(|d| args::parse_dns_search(d))
                .collect::<Result<_, _>>()?,
            env_file_lines,
        })
    }
}

/// Docker's ENTRYPOINT/CMD rules: `--entrypoint` replaces the image's entrypoint and drops its CMD
/// ("" clears it); arguments after the image replace CMD.
pub fn command_line(
    entrypoint_flag: Option<&str>,
    args: &[String],
    image: &ImageConfig,
) -> Result<Vec<String>, Error> {
    let (entrypoint, image_cmd) = match entrypoint_flag {
        Some("") => (Vec::new(), Vec::new()),
        Some(e) => (vec![e.to_string()], Vec::new()),
        None => (
            image.entrypoint.clone().unwrap_or_default(),
            image.cmd.clone().unwrap_or_default(),
        ),
    };
    let cmd = if args.is_empty() {
        image_cmd
    } else {
        args.to_vec()
    };
    let argv: Vec<String> = entrypoint.into_iter().chain(cmd).collect();
    if argv.is_empty() {
        return Err(Error::Invalid("no command specified".into()));
    }
    Ok(argv)
}

/// The environment, Docker's way: the image's, then HOSTNAME, then `--env-file` lines, then `-e`
/// (later wins, first position kept). `KEY` alone takes `lookup(KEY)` and is dropped when unset.
pub fn environment(
    image: &[String],
    hostname: &str,
    env_files: &[String],
    flags: &[String],
    lookup: impl Fn(&str) -> Option<String>,
) -> Vec<String> {
    let mut values: BTreeMap<String, String> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    let host = format!("HOSTNAME={hostname}");
    for kv in image
        .iter()
        .chain(std::iter::once(&host))
        .chain(env_files)
        .chain(flags)
    {
        let (k, v) = match kv.split_once('=') {
            Some((k, v)) => (k.to_string(), Some(v.to_string())),
            None => (kv.clone(), lookup(kv)),
        };
        if k.is_empty() {
            continue;
        }
        match v {
            Some(v) => {
                if !order.contains(&k) {
                    order.push(k.clone());
                }
                values.insert(k, v);
            }
            None => {
                order.retain(|o| *o != k);
                values.remove(&k);
            }
        }
    }
    order.iter().map(|k| format!("{k}={}", values[k])).collect()
}

/// 64 random hex digits (a container or anonymous volume id).
pub fn random_id() -> String {
    let mut bytes = [0u8; 32];
    if let Ok(mut f) = fs::File::open("/dev/urandom") {
        use std::io::Read;
        let _ = f.read_exact(&mut bytes);
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A prepared container: its spec, and the directories removed when it is dropped (its writable
/// layer, anonymous volumes).
#[derive(Debug)]
pub struct Container {
    pub spec: Spec,
    pub id: String,
    interactive: bool,
    cleanup: Vec<PathBuf>,
}

impl Drop for Container {
    fn drop(&mut self) {
        for p in &self.cleanup {
            let _ = fs::remove_dir_all(p);
        }
    }
}

impl Validated {
    /// The container for `image` (its config values and unpacked layer directories, base first):
    /// volumes created, a fresh writable layer under `dirs.containers`.
    pub fn prepare(
        &self,
        image: &ImageConfig,
        layers: Vec<PathBuf>,
        dirs: &Dirs,
    ) -> Result<Container, Error> {
        self.prepare_as(random_id(), image, layers, dirs)
    }

    /// The container's command line: `--entrypoint` and the command over the image's ENTRYPOINT/CMD.
    pub fn command_line(&self, image: &ImageConfig) -> Result<Vec<String>, Error> {
        command_line(self.opts.entrypoint.as_deref(), &self.opts.command, image)
    }

    /// [`Self::prepare`] with a given container id (a detached container's monitor gets its id from
    /// the `hoist run -d` that started it).
    pub fn prepare_as(
        &self,
        id: String,
        image: &ImageConfig,
        layers: Vec<PathBuf>,
        dirs: &Dirs,
    ) -> Result<Container, Error> {
        let o = &self.opts;
        let args = command_line(o.entrypoint.as_deref(), &o.command, image)?;
        let mut container = Container {
            spec: Spec::default(),
            id: id.clone(),
            interactive: o.interactive,
            cleanup: Vec::new(),
        };
        let hostname = o.hostname.clone().unwrap_or_else(|| id[..12].to_string());
        let env = environment(&image.env, &hostname, &self.env_file_lines, &o.env, |k| {
            std::env::var(k).ok()
        });
        let mut mounts = Vec::new();
        for m in &self.mounts {
            mounts.push(self.mount(m, dirs, &mut container.cleanup)?);
        }
        let dir = dirs.containers.join(&id);
        container.cleanup.push(dir.clone());
        let (upper, work) = (dir.join("upper"), dir.join("work"));
        for d in [&upper, &work] {
            fs::create_dir_all(d)
                .map_err(|e| format!("creating the container layer {}: {e}", d.display()))?;
        }
        let etc = EtcFiles {
            hosts: (!self.hosts.is_empty()).then(|| {
                let mut hosts = crate::default_hosts(&hostname);
                for line in &self.hosts {
                    hosts.push_str(line);
                    hosts.push('\n');
                }
                hosts
            }),
            resolv_conf: (!self.dns.is_empty()
                || !self.dns_search.is_empty()
                || !o.dns_options.is_empty())
            .then(|| {
                args::resolv_conf(
                    &crate::default_resolv_conf(self.network),
                    &self.dns,
                    &self.dns_search,
                    &o.dns_options,
                )
            }),
            hostname: None,
        };
        container.spec = Spec {
            rootfs: Rootfs::Overlay {
                lowers: layers,
                upper,
                work,
            },
            process: Process {
                args,
                env,
                cwd: o
                    .workdir
                    .clone()
                    .or(image.working_dir.clone())
                    .filter(|w| !w.is_empty())
                    .unwrap_or_else(|| "/".into()),
                user: o
                    .user
                    .clone()
                    .or(image.user.clone())
                    .filter(|u| !u.is_empty()),
                tty: o.tty,
                rlimits: self.rlimits.clone(),
                groups: o.group_add.clone(),
            },
            hostname,
            flavor: Flavor::Container,
            network: self.network,
            mounts,
            limits: self.limits,
            etc,
            pid1: if o.init { Pid1::Init } else { Pid1::Command },
            security: self.security.clone(),
            readonly_rootfs: o.read_only,
        };
        Ok(container)
    }

    /// A runtime mount for `m`, creating its volume (anonymous ones are removed with the container).
    fn mount(
        &self,
        m: &MountSpec,
        dirs: &Dirs,
        cleanup: &mut Vec<PathBuf>,
    ) -> Result<Mount, Error> {
        let volume = |name: &str| {
            dirs.volumes
                .create(name)
                .map(|v| v.mountpoint)
                .map_err(|e| Error::Invalid(format!("creating volume {name}: {e}")))
        };
        Ok(match m {
            MountSpec::Bind {
                src,
                target,
                readonly,
                create,
            } => {
                if *create && !src.exists() {
                    fs::create_dir_all(src)
                        .map_err(|e| format!("creating bind source {}: {e}", src.display()))?;
                }
                Mount {
                    target: target.clone(),
                    kind: MountKind::Bind {
                        src: src.clone(),
                        readonly: *readonly,
                    },
                }
            }
            MountSpec::Volume {
                name,
                target,
                readonly,
            } => {
                let src = match name {
                    Some(n) => volume(n)?,
                    None => {
                        let path = volume(&random_id())?;
                        cleanup.push(path.clone());
                        path
                    }
                };
                Mount {
                    target: target.clone(),
                    kind: MountKind::Bind {
                        src,
                        readonly: *readonly,
                    },
                }
            }
            MountSpec::Tmpfs {
                target,
                flags,
                data,
            } => Mount {
                target: target.clone(),
                kind: MountKind::TmpfsOptions {
                    flags: *flags,
                    data: data.clone(),
                },
            },
        })
    }
}

impl Container {
    /// `-i`: stdin is kept open (a detached container's stays open with no writer attached).
    pub fn interactive(&self) -> bool {
        self.interactive
    }

    /// Keeps the writable layer and anonymous volumes when dropped (a detached container without
    /// `--rm` lives until `hoist rm`).
    pub fn keep(&mut self) {
        self.cleanup.clear();
    }

    /// Runs in the foreground (`hoist run`): stdin attached with `-i`, signals forwarded, the
    /// caller's terminal followed with `-t`. Returns Docker's exit code for the command.
    pub fn run(&self) -> Result<i32, Error> {
        let stdio = if self.interactive {
            Stdio::Inherit
        } else {
            let dup = |fd: &dyn std::os::fd::AsFd, what: &str| {
                fd.as_fd()
                    .try_clone_to_owned()
                    .map_err(|e| Error::Invalid(format!("{what}: {e}")))
            };
            Stdio::Fds {
                stdin: None,
                stdout: dup(&std::io::stdout(), "stdout")?,
                stderr: dup(&std::io::stderr(), "stderr")?,
            }
        };
        Ok(crate::run_foreground(&self.spec, stdio)?.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn entrypoint_and_cmd() {
        let image = ImageConfig {
            entrypoint: Some(s(&["/entry"])),
            cmd: Some(s(&["default"])),
            ..Default::default()
        };
        assert_eq!(
            command_line(None, &[], &image).unwrap(),
            s(&["/entry", "default"])
        );
        assert_eq!(
            command_line(None, &s(&["x"]), &image).unwrap(),
            s(&["/entry", "x"])
        );
        assert_eq!(command_line(Some("sh"), &[], &image).unwrap(), s(&["sh"]));
        assert_eq!(
            command_line(Some(""), &s(&["ls"]), &image).unwrap(),
            s(&["ls"])
        );
        assert_eq!(
            command_line(Some(""), &[], &image).unwrap_err().to_string(),
            "no command specified"
        );
    }

    #[test]
    fn environment_merging() {
        let env = environment(
            &s(&["PATH=/bin", "A=image"]),
            "box",
            &s(&["A=file", "B=file"]),
            &s(&["B=flag", "FROM_HOST", "UNSET", "PATH"]),
            |k| (k == "FROM_HOST").then(|| "h".to_string()),
        );
        // A key without value that the host lacks is removed, even the image's PATH.
        assert_eq!(env, s(&["A=file", "HOSTNAME=box", "B=flag", "FROM_HOST=h"]));
    }

    #[test]
    fn validation_errors_are_dockers() {
        let check = |o: RunOptions| o.validate().unwrap_err().to_string();
        assert_eq!(
            check(RunOptions {
                cap_add: s(&["NOPE"]),
                ..Default::default()
            }),
            "invalid CapAdd: unknown capability: \"CAP_NOPE\""
        );
        assert!(
            check(RunOptions {
                ulimits: s(&["nofile=x"]),
                ..Default::default()
            })
            .contains("\"--ulimit\" flag")
        );
        assert_eq!(
            check(RunOptions {
                security_opt: s(&["x=y"]),
                ..Default::default()
            }),
            "invalid --security-opt 2: \"x=y\""
        );
        assert_eq!(
            check(RunOptions {
                env: s(&["=x"]),
                ..Default::default()
            }),
            "invalid environment variable: =x"
        );
        let e = RunOptions {
            tmpfs: s(&["/t:bogus"]),
            ..Default::default()
        }
        .validate()
        .unwrap_err();
        assert_eq!(e.exit_code(), 125);
    }

    #[test]
    fn security_from_flags() {
        let v = RunOptions::default().validate().unwrap();
        assert_eq!(v.security.capabilities, capabilities::docker_default_mask());
        assert!(!v.security.no_new_privileges, "Docker's default");
        let v = RunOptions {
            privileged: true,
            cap_drop: s(&["ALL"]),
            security_opt: s(&["no-new-privileges"]),
            ..Default::default()
        }
        .validate()
        .unwrap();
        assert_eq!(v.security.capabilities, capabilities::all_mask());
        assert_eq!(v.security.seccomp, Seccomp::Unconfined);
        assert!(v.security.privileged && v.security.no_new_privileges);
    }

    #[test]
    fn prepare_builds_the_spec() {
        let tmp = std::env::temp_dir().join(format!("hoist-container-test-{}", std::process::id()));
        let dirs = Dirs {
            containers: tmp.join("containers"),
            volumes: Volumes::new(&tmp),
        };
        let v = RunOptions {
            init: true,
            read_only: true,
            hostname: Some("h".into()),
            add_hosts: s(&["db:10.1.2.3"]),
            dns: s(&["9.9.9.9"]),
            volumes: s(&["/anon"]),
            tmpfs: s(&["/tmp"]),
            ulimits: s(&["nofile=100:200"]),
            group_add: s(&["wheel"]),
            command: s(&["true"]),
            ..Default::default()
        }
        .validate()
        .unwrap();
        let c = v
            .prepare(&ImageConfig::default(), Vec::new(), &dirs)
            .unwrap();
        assert_eq!(c.spec.pid1, Pid1::Init);
        assert!(c.spec.readonly_rootfs);
        assert!(
            c.spec
                .etc
                .hosts
                .as_deref()
                .unwrap()
                .ends_with("10.1.2.3\tdb\n")
        );
        assert!(
            c.spec
                .etc
                .resolv_conf
                .as_deref()
                .unwrap()
                .contains("nameserver 9.9.9.9\n")
        );
        assert_eq!(c.spec.process.groups, s(&["wheel"]));
        assert_eq!(c.spec.process.rlimits[0].soft, 100);
        assert_eq!(c.spec.mounts.len(), 2);
        let MountKind::Bind { src, .. } = &c.spec.mounts[0].kind else {
            panic!("{:?}", c.spec.mounts[0]);
        };
        let (anon, layer) = (src.clone(), dirs.containers.join(&c.id));
        assert!(anon.is_dir() && layer.join("upper").is_dir());
        drop(c);
        assert!(!anon.exists() && !layer.exists(), "not cleaned up");
        let _ = fs::remove_dir_all(&tmp);
    }
}
