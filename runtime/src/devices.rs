//! `--privileged`: the host's character and block devices (/dev and its subdirectories) in the
//! sandbox's /dev, created with the host's type, numbers and mode, or bind-mounted in a user
//! namespace, where mknod is not allowed. [`list`] reads the host's /dev; [`ops`] turns the list
//! into mount-plan steps without touching the host. Must not touch: the standard /dev
//! ([`crate::mounts`]).

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use crate::error::Result;
use crate::init::Op;
use crate::mounts::{cstr, ensure};

/// Directories of the host's /dev that hold no devices to copy (as runc's `HostDevices`).
const SKIP_DIRS: &[&str] = &["pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev"];
/// Nodes the sandbox's /dev has already (or must not have: the host's console, its ptmx).
const SKIP_NODES: &[&str] = &[
    "null", "zero", "full", "random", "urandom", "tty", "ptmx", "console",
];

/// One device node of the host's /dev.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostDevice {
    /// Path below /dev ("loop0", "net/tun").
    pub path: String,
    /// `st_mode`: file type and permissions.
    pub mode: u32,
    /// `st_rdev`.
    pub rdev: u64,
}

/// The host's device nodes, directory by directory (each sorted by name), as runc lists them.
pub fn list() -> Vec<HostDevice> {
    let mut found = Vec::new();
    let mut stack = vec![String::new()];
    while let Some(rel) = stack.pop() {
        let Ok(entries) = fs::read_dir(Path::new("/dev").join(&rel)) else {
            continue;
        };
        let mut entries: Vec<_> = entries.flatten().collect();
        entries.sort_by_key(|e| e.file_name());
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
            found.push(HostDevice {
                path,
                mode: meta.mode() & (libc::S_IFMT | 0o7777),
                rdev: meta.rdev(),
            });
        }
    }
    found
}

/// Steps making `devices` in the sandbox's /dev: mknod, or (`bind`: in a user namespace) an empty
/// file with the host's node bound over it. Each subdirectory is created before its first node.
pub fn ops(ops: &mut Vec<Op>, devices: &[HostDevice], bind: bool) -> Result<()> {
    let mut ensured: Vec<&str> = Vec::new();
    for dev in devices {
        let (dir, name) = match dev.path.rsplit_once('/') {
            Some((sub, name)) => (format!("dev/{sub}"), name),
            None => ("dev".to_string(), dev.path.as_str()),
        };
        if let Some((sub, _)) = dev.path.rsplit_once('/')
            && !ensured.contains(&sub)
        {
            ops.push(ensure(&format!("/{dir}"), false, false, None)?);
            ensured.push(sub);
        }
        if bind {
            ops.push(ensure(&format!("/dev/{}", dev.path), true, false, None)?);
            ops.push(Op::Mount {
                src: Some(cstr(&format!("/dev/{}", dev.path))?),
                target: cstr(&format!("dev/{}", dev.path))?,
                fstype: None,
                flags: libc::MS_BIND,
                data: None,
                optional: false,
            });
        } else {
            ops.push(Op::Mknod {
                dir: cstr(&dir)?,
                name: cstr(name)?,
                mode: dev.mode,
                dev: dev.rdev,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_devices_are_listed_with_their_type() {
        let devices = list();
        // Every host device but the ones the sandbox has (null, ...) is there, with its type.
        for d in &devices {
            let meta = fs::metadata(format!("/dev/{}", d.path)).unwrap();
            assert_eq!(
                meta.mode() & libc::S_IFMT,
                d.mode & libc::S_IFMT,
                "{}",
                d.path
            );
        }
        assert!(!devices.iter().any(|d| d.path == "null" || d.path == "ptmx"));
        if Path::new("/dev/loop-control").exists() {
            assert!(devices.iter().any(|d| d.path == "loop-control"));
        }
    }

    fn dev(path: &str) -> HostDevice {
        HostDevice {
            path: path.into(),
            mode: libc::S_IFCHR | 0o660,
            rdev: 0x0a00,
        }
    }

    #[test]
    fn nodes_are_made_in_their_directory_once_it_exists() {
        let mut got = Vec::new();
        ops(
            &mut got,
            &[dev("fuse"), dev("net/tun"), dev("net/tap0")],
            false,
        )
        .unwrap();
        let shown: Vec<String> = got
            .iter()
            .map(|op| match op {
                Op::Ensure { comps, .. } => {
                    format!("ensure {}", comps.last().unwrap().path.to_string_lossy())
                }
                Op::Mknod { dir, name, .. } => {
                    format!("mknod {}/{}", dir.to_string_lossy(), name.to_string_lossy())
                }
                other => format!("{other:?}"),
            })
            .collect();
        assert_eq!(
            shown,
            [
                "mknod dev/fuse",
                "ensure dev/net",
                "mknod dev/net/tun",
                "mknod dev/net/tap0"
            ]
        );
    }

    #[test]
    fn a_user_namespace_binds_the_host_nodes() {
        let mut got = Vec::new();
        ops(&mut got, &[dev("fuse")], true).unwrap();
        assert!(matches!(&got[0], Op::Ensure { comps, .. } if comps.last().unwrap().file));
        assert!(matches!(&got[1], Op::Mount { src: Some(s), flags, .. }
            if s.to_str() == Ok("/dev/fuse") && *flags == libc::MS_BIND));
    }
}
