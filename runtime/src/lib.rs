//! Sandboxes: Linux namespaces, overlay root filesystems, mounts, cgroups, capabilities, seccomp, and
//! running one process to completion (`hoist run` and every RUN step).
//!
//! Owns: the kernel-facing side of execution, and `docker run`'s semantics on top of it ([`container`]:
//! flag parsing and Docker's errors, ENTRYPOINT/CMD, environment, volumes, security options). Must not
//! touch: Dockerfile syntax, the network beyond network namespaces, or the image store's files except
//! through read-only layer directories: the caller resolves images and hands over their config values
//! and unpacked layers (for `hoist run`, the binary's `src/cmd/run.rs`; for RUN steps, the builder).
//!
//! Must not touch (in this file): any logic; it holds the crate's docs and re-exports only.
//!
//! Entry point: [`run`] (blocking; async callers use `spawn_blocking`). Safe to call from a
//! multi-threaded process: everything is prepared before a raw `clone`, and the child only makes system
//! calls on pre-built data until `execve` (no allocation, no locks). The child gets new mount, PID, UTS,
//! IPC (and network, for [`Network::None`]) namespaces; its PID 1 is a tiny init that reaps zombies and
//! forwards signals to the command ([`Pid1::Init`]), or the command itself ([`Pid1::Command`]). Only the
//! descriptors the run needs cross the clone; with `-t` the pty comes from the sandbox's own devpts.
//! Mounts die with the mount namespace, processes with the PID
//! namespace (PID 1 has `PR_SET_PDEATHSIG`), cgroups are removed after the run (and swept if a killed
//! hoist left one behind).

pub mod binfmt;
mod capabilities;
mod cgroupfs;
mod cgroups;
pub mod container;
mod devices;
mod error;
mod etc;
mod init;
pub mod lifecycle;
pub mod monitor;
mod mounts;
mod rootfs;
mod run;
mod scratch;
mod seccomp;
mod seccomp_json;
mod seccomp_profile;
mod security;
mod spec;
pub mod state;
mod tty;
mod user;
pub mod userns;
pub mod volume;

pub use capabilities::DOCKER_DEFAULT as DEFAULT_CAPABILITIES;
pub use error::{Error, Result};
pub use etc::{BUILD_HOSTNAME, build_hosts, build_resolv_conf, default_hosts, default_resolv_conf};
pub use rootfs::overlay_capable;
pub use run::{DEFAULT_PATH, lookup_user, run, run_foreground, run_with};
pub use security::{Seccomp, Security};
pub use spec::{
    EtcFiles, ExitStatus, Flavor, Limits, Mount, MountKind, Network, Pid1, Process, Rlimit, Rootfs,
    Spec, Stdio,
};
pub use user::{User, resolve as resolve_user};
