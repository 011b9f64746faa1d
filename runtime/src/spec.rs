//! What to run and how: the sandbox description callers build (`hoist run`, every RUN step).

use std::os::fd::OwnedFd;
use std::path::PathBuf;

use crate::security::Security;

/// One sandboxed process: its root filesystem, process, network, extra mounts and limits.
#[derive(Debug, Clone, Default)]
pub struct Spec {
    pub rootfs: Rootfs,
    pub process: Process,
    /// Host name inside the UTS namespace (also written to /etc/hostname for a container). Empty:
    /// the flavor's ("hoist" for a container, `buildkitsandbox` for a build step).
    pub hostname: String,
    /// Whose sandbox this is: `docker run`'s or a BuildKit RUN step's (host name, /etc files).
    pub flavor: Flavor,
    pub network: Network,
    /// Extra mounts, applied in order after the standard ones (/proc, /dev, /sys, /etc files).
    pub mounts: Vec<Mount>,
    pub limits: Limits,
    /// Contents of /etc/hosts, /etc/resolv.conf and /etc/hostname (bind-mounted from temp files, so they
    /// never land in the rootfs). `None` = the flavor's default.
    pub etc: EtcFiles,
    /// Who is PID 1: hoist's tiny init (default) or the command.
    pub pid1: Pid1,
    /// Capabilities, seccomp, no_new_privs, `--privileged`.
    pub security: Security,
    /// Mount the root filesystem read-only (`--read-only`; the /etc files too, as Docker does; the
    /// caller's mounts and /dev stay writable). Mountpoints and the working directory are created first.
    pub readonly_rootfs: bool,
}

/// Whose conventions the sandbox follows for its host name and /etc files.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Flavor {
    /// `docker run`: Docker's /etc/hosts and /etc/resolv.conf, and /etc/hostname, bound
    /// read-write (read-only with `readonly_rootfs`).
    #[default]
    Container,
    /// A RUN step, as BuildKit runs it: its /etc/hosts and /etc/resolv.conf bound read-only
    /// (nosuid, nodev, noexec); no /etc/hostname mount (the image's own file, which a step may
    /// change). Mountpoints the runtime creates for them are removed afterwards, but /dev, /proc
    /// and /sys, which runc leaves in the step's layer when the image lacks them, are kept.
    Build,
}

/// Who is PID 1 in the sandbox.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Pid1 {
    /// hoist's tiny init, which reaps zombies and forwards signals; the command is its child
    /// (`docker run --init`, RUN steps).
    #[default]
    Init,
    /// The command itself (`docker run` without `--init`): signals reach it directly (as PID 1 it
    /// ignores those it has no handler for) and orphans are its to reap.
    Command,
}

/// The root filesystem.
#[derive(Debug, Clone)]
pub enum Rootfs {
    /// An overlay. `lowers` are read-only layer directories in IMAGE ORDER: `lowers[0]` is the base
    /// (first) layer, the last element is the topmost layer (the runtime reverses them for overlayfs).
    /// They are never modified. `upper` and `work` are empty directories on the same filesystem, owned by
    /// the caller: they persist after the run so the caller can commit `upper` as a layer diff (overlay
    /// whiteouts: 0/0 char devices and `trusted.overlay.opaque` xattrs). Mountpoints the runtime had to
    /// create (/etc/hosts, mount targets...; /proc, /dev, /sys but for a [`Flavor::Build`]) are
    /// removed from `upper` after the run.
    /// An empty `lowers` is allowed (scratch). The overlay is mounted `volatile` (no sync of the
    /// upper's filesystem when it is unmounted): a caller that needs `upper` durable syncs it itself.
    Overlay {
        lowers: Vec<PathBuf>,
        upper: PathBuf,
        work: PathBuf,
    },
    /// A plain directory used read-write as the root (tests, `--rootfs`-style use).
    Dir(PathBuf),
}

impl Default for Rootfs {
    fn default() -> Self {
        Rootfs::Dir(PathBuf::from("/nonexistent"))
    }
}

/// The process to start.
#[derive(Debug, Clone, Default)]
pub struct Process {
    /// argv; `args[0]` without a `/` is looked up in the container's `PATH`.
    pub args: Vec<String>,
    /// `KEY=VALUE` entries. `PATH` and `HOME` get Docker's defaults when missing.
    pub env: Vec<String>,
    /// Working directory inside the container (absolute; created if missing). Empty: "/".
    pub cwd: String,
    /// `user`, `uid`, `user:group` or `uid:gid`, resolved from the rootfs's /etc/passwd and /etc/group.
    /// `None`: root.
    pub user: Option<String>,
    /// Give the process a pseudo-terminal as stdin/stdout/stderr (`-t`).
    pub tty: bool,
    /// Extra resource limits (RLIMIT_*); Docker's defaults otherwise.
    pub rlimits: Vec<Rlimit>,
    /// Additional groups (`--group-add`): names from the rootfs's /etc/group, or numbers.
    pub groups: Vec<String>,
}

/// One `setrlimit` entry.
#[derive(Debug, Clone, Copy)]
pub struct Rlimit {
    /// `libc::RLIMIT_*` resource.
    pub resource: u32,
    pub soft: u64,
    pub hard: u64,
}

/// Network namespace choice.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Network {
    /// A fresh network namespace with only `lo`, brought up.
    #[default]
    None,
    /// The host's network namespace.
    Host,
}

/// An extra mount inside the container.
#[derive(Debug, Clone)]
pub struct Mount {
    /// Absolute path inside the container.
    pub target: String,
    pub kind: MountKind,
}

/// What is mounted.
#[derive(Debug, Clone)]
pub enum MountKind {
    /// A host file or directory (also how named volumes and caches are mounted).
    Bind { src: PathBuf, readonly: bool },
    /// A fresh tmpfs; `size` in bytes (None: the kernel's default, half of RAM).
    Tmpfs {
        size: Option<u64>,
        mode: Option<u32>,
    },
    /// A fresh tmpfs mounted with `MS_*` `flags` and tmpfs options `data` ("size=1m,mode=1777"), as
    /// `--tmpfs DST:OPTIONS` asks.
    TmpfsOptions { flags: u64, data: String },
}

/// cgroup limits (v1 or v2, whichever the host has). All `None`: no cgroup is created.
#[derive(Debug, Clone, Copy, Default)]
pub struct Limits {
    /// Memory limit in bytes (swap limited to the same amount again, as Docker does).
    pub memory: Option<u64>,
    /// CPU quota in CPUs (1.5 = 150ms per 100ms period).
    pub cpus: Option<f64>,
    /// Maximum number of tasks.
    pub pids: Option<i64>,
}

/// Contents for the files provided by bind mount (`hostname`: a [`Flavor::Container`] only).
#[derive(Debug, Clone, Default)]
pub struct EtcFiles {
    pub hosts: Option<String>,
    pub resolv_conf: Option<String>,
    pub hostname: Option<String>,
}

/// Where the process's stdin/stdout/stderr come from.
#[derive(Debug, Default)]
pub enum Stdio {
    /// The caller's own 0, 1, 2.
    #[default]
    Inherit,
    /// /dev/null for all three.
    Null,
    /// Caller-provided descriptors (e.g. pipe ends to capture and stream output). `stdin: None` = /dev/null.
    Fds {
        stdin: Option<OwnedFd>,
        stdout: OwnedFd,
        stderr: OwnedFd,
    },
}

/// How the process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// Exited with this code.
    Code(i32),
    /// Killed by this signal (e.g. 9 when the memory limit was hit).
    Signal(i32),
}

impl ExitStatus {
    /// Docker's convention: the code, or 128 + signal.
    pub fn code(self) -> i32 {
        match self {
            ExitStatus::Code(c) => c,
            ExitStatus::Signal(s) => 128 + s,
        }
    }

    pub fn success(self) -> bool {
        self == ExitStatus::Code(0)
    }
}
