//! Sandboxes: Linux namespaces, overlay root filesystems, mounts, cgroups, capabilities, seccomp, and
//! running one process to completion (`hoist run` and every RUN step).
//!
//! Owns: the kernel-facing side of execution. Must not touch: Dockerfile syntax, the network beyond
//! network namespaces, or the image store's files except through read-only layer directories.
