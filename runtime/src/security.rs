//! The sandboxed process's privileges: its capability set, seccomp profile and no_new_privs, and what
//! Docker's `--privileged` changes beyond them (no masked or read-only /proc paths, /sys read-write,
//! the host's devices in /dev); and the read-only root filesystem of `--read-only`.

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use std::sync::Arc;

use crate::capabilities::{self, CapSet};
use crate::error::{Error, Result};
use crate::init::Op;
use crate::mounts::{cstr, ensure};
use crate::seccomp::{self, Filters};
use crate::seccomp_profile::Profile;

/// Privileges of the sandboxed process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Security {
    /// Capabilities kept (bit n = capability n): the bounding set, and the permitted and effective
    /// sets of a root process. Default: Docker's ([`crate::DEFAULT_CAPABILITIES`]).
    pub capabilities: u64,
    pub seccomp: Seccomp,
    /// Set no_new_privs (setuid binaries and file capabilities grant nothing).
    pub no_new_privileges: bool,
    /// Docker's `--privileged` mounts: /proc unmasked and writable where Docker protects it, /sys
    /// read-write, the host's device nodes. (Capabilities and seccomp are the fields above:
    /// [`Security::privileged`] sets them all.)
    pub privileged: bool,
    /// `--security-opt systempaths=unconfined`: no masked or read-only paths in /proc and /sys
    /// (as with `privileged`, which implies it).
    pub unmasked_paths: bool,
}

/// The seccomp filter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Seccomp {
    /// Docker's default profile for the capability set.
    #[default]
    Default,
    /// None (`--security-opt seccomp=unconfined`, `--privileged`).
    Unconfined,
    /// A profile in Docker's JSON format (`--security-opt seccomp=FILE`), for the capability set.
    Profile(Arc<Profile>),
}

impl Seccomp {
    /// The profile in Docker's JSON format at `file`; errors name it.
    pub fn from_file(file: &str) -> std::result::Result<Seccomp, String> {
        crate::seccomp_json::load(file).map(|p| Seccomp::Profile(Arc::new(p)))
    }
}

impl Default for Security {
    /// Docker's capabilities and seccomp profile, with no_new_privs.
    fn default() -> Self {
        Security {
            capabilities: capabilities::docker_default_mask(),
            seccomp: Seccomp::Default,
            no_new_privileges: true,
            privileged: false,
            unmasked_paths: false,
        }
    }
}

impl Security {
    /// `docker run --privileged`: every capability, no seccomp, no no_new_privs, privileged mounts.
    /// In a user namespace (rootless) the capabilities are those of that namespace.
    pub fn privileged() -> Self {
        Security {
            capabilities: capabilities::all_mask(),
            seccomp: Seccomp::Unconfined,
            no_new_privileges: false,
            privileged: true,
            unmasked_paths: true,
        }
    }

    /// The capability set and seccomp filters to apply in the child.
    pub(crate) fn prepare(&self) -> Result<(CapSet, Filters)> {
        let filters = match &self.seccomp {
            Seccomp::Default => seccomp::for_capabilities(self.capabilities),
            Seccomp::Profile(p) => seccomp::for_profile(p, self.capabilities),
            Seccomp::Unconfined => Ok(Filters::default()),
        }
        .map_err(|e| Error::Invalid(format!("seccomp profile: {e}")))?;
        Ok((CapSet::new(self.capabilities), filters))
    }
}

/// Directories of the host's /dev that hold no devices to copy (as runc's `HostDevices`).
const SKIP_DIRS: &[&str] = &["pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev"];
/// Nodes the sandbox's /dev has already (or must not have: the host's console, its ptmx).
const SKIP_NODES: &[&str] = &[
    "null", "zero", "full", "random", "urandom", "tty", "ptmx", "console",
];

/// `--privileged`: the host's character and block devices (/dev and its subdirectories) in the
/// sandbox's /dev, created with the host's type, numbers and mode, or bind-mounted in a user namespace
/// (`bind`), where mknod is not allowed.
pub(crate) fn host_devices(ops: &mut Vec<Op>, bind: bool) -> Result<()> {
    let mut stack = vec![String::new()];
    while let Some(rel) = stack.pop() {
        let Ok(entries) = fs::read_dir(Path::new("/dev").join(&rel)) else {
            continue;
        };
        let mut entries: Vec<_> = entries.flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        let dir = if rel.is_empty() {
            "dev".to_string()
        } else {
            format!("dev/{rel}")
        };
        let mut dir_ensured = rel.is_empty();
        for entry in entries {
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = if rel.is_empty() {
                name.clone()
            } else {
                format!("{rel}/{name}")
            };
            let Ok(meta) = entry.metadata() else { continue };
            let kind = meta.file_type();
            if kind.is_dir() {
                if !(rel.is_empty() && SKIP_DIRS.contains(&name.as_str())) {
                    stack.push(path);
                }
                continue;
            }
            if !(kind.is_char_device() || kind.is_block_device())
                || (rel.is_empty() && SKIP_NODES.contains(&name.as_str()))
            {
                continue;
            }
            if !dir_ensured {
                ops.push(ensure(&format!("/{dir}"), false, false, None)?);
                dir_ensured = true;
            }
            if bind {
                ops.push(ensure(&format!("/dev/{path}"), true, false, None)?);
                ops.push(Op::Mount {
                    src: Some(cstr(&format!("/dev/{path}"))?),
                    target: cstr(&format!("dev/{path}"))?,
                    fstype: None,
                    flags: libc::MS_BIND,
                    data: None,
                    optional: false,
                });
            } else {
                ops.push(Op::Mknod {
                    dir: cstr(&dir)?,
                    name: cstr(&name)?,
                    mode: meta.mode() & (libc::S_IFMT | 0o7777),
                    dev: meta.rdev(),
                });
            }
        }
    }
    Ok(())
}

/// A read-only remount of the mount at `target` (relative to the new root; "." is the root itself)
/// keeping `locked` flags (those a user namespace may not clear). `optional`: skipped with the
/// previous Ensure, or when missing.
pub(crate) fn readonly_remount(target: &str, locked: u64, optional: bool) -> Result<Op> {
    Ok(Op::Mount {
        src: None,
        target: cstr(target)?,
        fstype: None,
        flags: libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY | locked,
        data: None,
        optional,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_privileged() {
        let d = Security::default();
        assert_eq!(d.capabilities, capabilities::docker_default_mask());
        assert!(d.no_new_privileges && !d.privileged);
        let p = Security::privileged();
        assert_eq!(p.capabilities, capabilities::all_mask());
        assert_eq!(p.seccomp, Seccomp::Unconfined);
        let (_, filters) = p.prepare().unwrap();
        assert!(filters.programs.is_empty());
    }

    #[test]
    fn host_devices_are_copied_with_their_type() {
        let mut ops = Vec::new();
        host_devices(&mut ops, false).unwrap();
        let nodes: Vec<(String, u32)> = ops
            .iter()
            .filter_map(|op| match op {
                Op::Mknod {
                    dir, name, mode, ..
                } => Some((
                    format!("{}/{}", dir.to_string_lossy(), name.to_string_lossy()),
                    *mode,
                )),
                _ => None,
            })
            .collect();
        // Every host device but the ones the sandbox has (null, ...) is there, with its type.
        for (path, mode) in &nodes {
            let meta = fs::metadata(format!("/{path}")).unwrap();
            assert_eq!(meta.mode() & libc::S_IFMT, mode & libc::S_IFMT, "{path}");
        }
        assert!(
            !nodes
                .iter()
                .any(|(p, _)| p == "dev/null" || p == "dev/ptmx")
        );
        if Path::new("/dev/loop-control").exists() {
            assert!(nodes.iter().any(|(p, _)| p == "dev/loop-control"));
        }
    }
}
