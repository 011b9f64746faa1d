//! Sandboxes: Linux namespaces, overlay root filesystems, mounts, cgroups, capabilities, seccomp, and
//! running one process to completion (`hoist run` and every RUN step).
//!
//! Owns: the kernel-facing side of execution. Must not touch: Dockerfile syntax, the network beyond
//! network namespaces, or the image store's files except through read-only layer directories.
//!
//! Entry point: [`run`] (blocking; async callers use `spawn_blocking`). Safe to call from a
//! multi-threaded process: everything is prepared before `clone`, and the child only makes raw system
//! calls on pre-built data until `execve` (no allocation, no locks).

mod error;
mod spec;
pub mod volume;

pub use error::{Error, Result};
pub use spec::{
    EtcFiles, ExitStatus, Limits, Mount, MountKind, Network, Process, Rlimit, Rootfs, Spec, Stdio,
};

/// Runs `spec` to completion in a fresh sandbox and returns how the process ended. Blocks.
pub fn run(spec: &Spec, stdio: Stdio) -> Result<ExitStatus> {
    let _ = (spec, stdio);
    Err(Error::Invalid("runtime not implemented yet".into()))
}
