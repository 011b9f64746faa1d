//! The mount plan: /proc (with Docker's masked and read-only paths), a minimal /dev with devpts and
//! shm, read-only /sys, the /etc files, and the caller's bind and tmpfs mounts, as [`Op`]s for the child.
//!
//! Rootless (in a user namespace, as runc rootless does): the device nodes are the host's, bind-mounted
//! (mknod is never allowed there); devpts gets `gid=5` only if gid 5 is mapped; with the host network
//! /sys is the host's, bind-mounted read-only (sysfs needs a network namespace the user namespace
//! owns). Read-only bind remounts keep the source's nosuid/nodev/noexec/atime flags, which a user
//! namespace may not clear (and which a read-only view should keep anyway).

use std::ffi::CString;
use std::path::Path;

use crate::error::{Error, Result};
use crate::init::{Component, MAX_CREATED, Op};
use crate::spec::{Mount, MountKind, Network};
use crate::userns::IdMap;

/// Paths Docker hides (`/dev/null` over files, an empty read-only tmpfs over directories).
const MASKED: &[&str] = &[
    "proc/asound",
    "proc/acpi",
    "proc/kcore",
    "proc/keys",
    "proc/latency_stats",
    "proc/timer_list",
    "proc/timer_stats",
    "proc/sched_debug",
    "proc/scsi",
    "sys/firmware",
    "sys/devices/virtual/powercap",
];
/// Paths Docker makes read-only.
const READONLY: &[&str] = &[
    "proc/bus",
    "proc/fs",
    "proc/irq",
    "proc/sys",
    "proc/sysrq-trigger",
];
/// Device nodes of the minimal /dev: (name, major, minor).
const DEVICES: &[&str] = &["null", "zero", "full", "random", "urandom", "tty"];
const DEV_LINKS: &[(&str, &str)] = &[
    ("ptmx", "pts/ptmx"),
    ("fd", "/proc/self/fd"),
    ("stdin", "/proc/self/fd/0"),
    ("stdout", "/proc/self/fd/1"),
    ("stderr", "/proc/self/fd/2"),
];

pub(crate) fn cstr(s: &str) -> Result<CString> {
    CString::new(s).map_err(|_| Error::Invalid(format!("path contains a NUL byte: {s:?}")))
}

fn cpath(p: &Path) -> Result<CString> {
    cstr(&p.to_string_lossy())
}

/// Mountpoints that may be created in the rootfs, recorded so they can be removed after the run.
#[derive(Debug, Default)]
pub struct Tracker {
    /// (path relative to the root, is a file).
    pub entries: Vec<(String, bool)>,
}

/// Normalizes an absolute container path to its components (no `.`/`..`/empty).
pub fn components(path: &str) -> Result<Vec<&str>> {
    if !path.starts_with('/') {
        return Err(Error::Invalid(format!("{path:?} is not an absolute path")));
    }
    let mut out = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    Ok(out)
}

/// An Ensure op for `path` (absolute in the container). `track`: record created components.
pub fn ensure(path: &str, file: bool, soft: bool, tracker: Option<&mut Tracker>) -> Result<Op> {
    let parts = components(path)?;
    let mut comps = Vec::new();
    let mut tracker = tracker;
    for i in 0..parts.len() {
        let rel = parts[..=i].join("/");
        let parent = if i == 0 {
            ".".to_string()
        } else {
            parts[..i].join("/")
        };
        let is_file = file && i + 1 == parts.len();
        let track = match tracker.as_deref_mut() {
            Some(t) => {
                if t.entries.len() >= MAX_CREATED {
                    return Err(Error::Invalid("too many mountpoints".into()));
                }
                t.entries.push((rel.clone(), is_file));
                Some(t.entries.len() - 1)
            }
            None => None,
        };
        comps.push(Component {
            path: cstr(&rel)?,
            parent: cstr(&parent)?,
            name: cstr(parts[i])?,
            file: is_file,
            track,
        });
    }
    Ok(Op::Ensure { comps, soft })
}

pub(crate) fn mount(
    src: Option<&str>,
    target: &str,
    fstype: Option<&str>,
    flags: libc::c_ulong,
    data: Option<&str>,
    optional: bool,
) -> Result<Op> {
    Ok(Op::Mount {
        src: src.map(cstr).transpose()?,
        target: cstr(target)?,
        fstype: fstype.map(cstr).transpose()?,
        flags,
        data: data.map(cstr).transpose()?,
        optional,
    })
}

/// The flags of the mount holding `path` that a bind remount must keep (a user namespace cannot
/// clear the ones of mounts it inherited).
pub(crate) fn locked_flags(path: &Path) -> libc::c_ulong {
    let Ok(st) = rustix::fs::statvfs(path) else {
        return 0;
    };
    let f_flag = st.f_flag.bits();
    [
        (libc::ST_NOSUID, libc::MS_NOSUID),
        (libc::ST_NODEV, libc::MS_NODEV),
        (libc::ST_NOEXEC, libc::MS_NOEXEC),
        (libc::ST_NOATIME, libc::MS_NOATIME),
        (libc::ST_NODIRATIME, libc::MS_NODIRATIME),
        (libc::ST_RELATIME, libc::MS_RELATIME),
    ]
    .iter()
    .filter(|(st_flag, _)| f_flag & st_flag != 0)
    .fold(0, |acc, (_, ms)| acc | ms)
}

/// The device nodes: the host's, bound over empty files (runc's rootless way, used as root too).
/// A bind mount has the flags of the host's /dev (no `nodev`), so these work while the container's
/// /dev itself is `nodev`: a node the container makes there (CAP_MKNOD) cannot be opened, as
/// Docker's device cgroup allows `mknod` but only these devices' use.
fn devices(ops: &mut Vec<Op>) -> Result<()> {
    for name in DEVICES {
        let target = format!("dev/{name}");
        ops.push(ensure(&format!("/{target}"), true, false, None)?);
        ops.push(mount(
            Some(&format!("/{target}")),
            &target,
            None,
            libc::MS_BIND,
            None,
            false,
        )?);
    }
    Ok(())
}

/// /sys read-only (read-write when `privileged`): a fresh sysfs, or the host's (bound) when a user
/// namespace cannot mount one.
/// `sys_locked`: the flags of the host's /sys mount a remount must keep ([`locked_flags`]).
fn sys(
    ops: &mut Vec<Op>,
    ids: &IdMap,
    network: Network,
    privileged: bool,
    sys_locked: libc::c_ulong,
) -> Result<()> {
    use libc::{MS_BIND, MS_NODEV, MS_NOEXEC, MS_NOSUID, MS_RDONLY, MS_REC, MS_REMOUNT};
    if ids.rootless() && network == Network::Host {
        ops.push(mount(
            Some("/sys"),
            "sys",
            None,
            MS_BIND | MS_REC,
            None,
            false,
        )?);
        if !privileged {
            let flags = MS_BIND | MS_REMOUNT | MS_RDONLY | sys_locked;
            ops.push(mount(None, "sys", None, flags, None, false)?);
        }
        return Ok(());
    }
    let ro = if privileged { 0 } else { MS_RDONLY };
    ops.push(mount(
        Some("sysfs"),
        "sys",
        Some("sysfs"),
        ro | MS_NOSUID | MS_NODEV | MS_NOEXEC,
        None,
        false,
    )?);
    Ok(())
}

/// /proc, /dev and /sys, for a sandbox in the user namespace `ids` on `network`.
/// `privileged` (`--privileged`): /sys read-write, /dev not `nodev`. `sys_locked`: the flags of
/// the host's /sys mount a remount must keep.
pub fn standard(
    ops: &mut Vec<Op>,
    tracker: &mut Tracker,
    ids: &IdMap,
    network: Network,
    privileged: bool,
    sys_locked: libc::c_ulong,
) -> Result<()> {
    use libc::{MS_NODEV, MS_NOEXEC, MS_NOSUID};
    ops.push(ensure("/proc", false, false, Some(tracker))?);
    ops.push(mount(
        Some("proc"),
        "proc",
        Some("proc"),
        MS_NOSUID | MS_NODEV | MS_NOEXEC,
        None,
        false,
    )?);
    ops.push(ensure("/dev", false, false, Some(tracker))?);
    // `nodev` unless privileged (then the host's devices are made here): see [`devices`].
    let nodev = if privileged { 0 } else { MS_NODEV };
    ops.push(mount(
        Some("tmpfs"),
        "dev",
        Some("tmpfs"),
        MS_NOSUID | libc::MS_STRICTATIME | nodev,
        Some("mode=755,size=65536k"),
        false,
    )?);
    devices(ops)?;
    ops.push(ensure("/dev/pts", false, false, None)?);
    // Group tty (5), when this user namespace has it.
    let pts = if ids.maps_gid(5) {
        "newinstance,ptmxmode=0666,mode=0620,gid=5"
    } else {
        "newinstance,ptmxmode=0666,mode=0620"
    };
    ops.push(mount(
        Some("devpts"),
        "dev/pts",
        Some("devpts"),
        MS_NOSUID | MS_NOEXEC,
        Some(pts),
        false,
    )?);
    ops.push(ensure("/dev/shm", false, false, None)?);
    ops.push(mount(
        Some("shm"),
        "dev/shm",
        Some("tmpfs"),
        MS_NOSUID | MS_NODEV | MS_NOEXEC,
        Some("mode=1777,size=65536k"),
        false,
    )?);
    ops.push(ensure("/dev/mqueue", false, false, None)?);
    ops.push(mount(
        Some("mqueue"),
        "dev/mqueue",
        Some("mqueue"),
        MS_NOSUID | MS_NODEV | MS_NOEXEC,
        None,
        false,
    )?);
    for (name, target) in DEV_LINKS {
        ops.push(Op::Symlink {
            dir: cstr("dev")?,
            name: cstr(name)?,
            target: cstr(target)?,
        });
    }
    ops.push(ensure("/sys", false, false, Some(tracker))?);
    sys(ops, ids, network, privileged, sys_locked)?;
    Ok(())
}

/// Docker's masked and read-only paths in /proc and /sys (none with `--privileged` or
/// `--security-opt systempaths=unconfined`).
pub fn system_path_masks(ops: &mut Vec<Op>) -> Result<()> {
    use libc::{MS_BIND, MS_NODEV, MS_NOEXEC, MS_NOSUID, MS_RDONLY, MS_REC, MS_REMOUNT};
    for path in MASKED {
        ops.push(Op::Mask {
            target: cstr(path)?,
        });
    }
    for path in READONLY {
        ops.push(mount(None, path, None, MS_BIND | MS_REC, None, true)?);
        ops.push(mount(
            None,
            path,
            None,
            MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
            None,
            true,
        )?);
    }
    Ok(())
}

/// A file bind-mounted at `target` (the /etc files), skipped if the image has something odd there.
pub fn etc_file(ops: &mut Vec<Op>, tracker: &mut Tracker, src: &Path, target: &str) -> Result<()> {
    ops.push(ensure(target, true, true, Some(tracker))?);
    ops.push(Op::Mount {
        src: Some(cpath(src)?),
        target: cstr(target.trim_start_matches('/'))?,
        fstype: None,
        flags: libc::MS_BIND,
        data: None,
        optional: true,
    });
    Ok(())
}

/// Whether this kernel has mount_setattr(2) (Linux 5.12), asked once: an attribute size of 0 is
/// EINVAL where the call exists (ENOSYS without it, EPERM where a seccomp filter denies it).
pub(crate) fn setattr_supported() -> bool {
    static SUPPORTED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *SUPPORTED.get_or_init(|| {
        // SAFETY: no pointer is dereferenced: the descriptor is invalid, the attribute size is 0.
        let r = unsafe {
            libc::syscall(
                libc::SYS_mount_setattr,
                -1,
                c"".as_ptr(),
                0,
                std::ptr::null::<libc::mount_attr>(),
                0usize,
            )
        };
        r != 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINVAL)
    })
}

/// `MS_NODEV` unless `privileged`.
///
/// Without `--privileged` no mount of a sandbox lets a device node be opened, whatever the caller
/// asked (`--tmpfs /t:dev` included), except the bound standard devices. Docker lets `dev` through
/// because its device cgroup refuses opening any node but the standard ones; hoist has no device
/// cgroup (none on cgroup v1 hosts without a devices hierarchy it may write, none rootless), so
/// `nodev` is the only thing between a container with CAP_MKNOD and the host's disks. (`suid` and
/// `exec` are honoured: the root filesystem allows both, as Docker's does, so they open nothing
/// new.)
pub(crate) fn nodev(privileged: bool) -> libc::c_ulong {
    if privileged { 0 } else { libc::MS_NODEV }
}

/// The caller's mounts, parents before children.
///
/// Binds take their submounts along (`rbind`) where mount_setattr(2) can then restrict the whole
/// tree: `nodev` unless `privileged` (see [`nodev`]: a host directory of device nodes, or the
/// host's /dev below a bound `/`, is no way around it), and read-only for `readonly` (recursively,
/// as Docker does on Linux 5.12+). On older kernels a bind is not recursive unless `privileged`:
/// its own mount is remounted, keeping the flags a user namespace may not clear.
/// tmpfs mounts are `nodev` unless `privileged` asks for `dev`.
///
/// `recursive` tells whether mount_setattr(2) is there; `source` what each bind source is
/// ([`bind_source`], or facts read from it earlier).
pub fn user(
    ops: &mut Vec<Op>,
    tracker: &mut Tracker,
    mounts: &[Mount],
    privileged: bool,
    recursive: bool,
    source: &dyn Fn(&Path) -> BindSource,
) -> Result<()> {
    let mut sorted: Vec<&Mount> = mounts.iter().collect();
    sorted.sort_by_key(|m| components(&m.target).map(|c| c.len()).unwrap_or(0));
    for m in sorted {
        let rel = components(&m.target)?.join("/");
        if rel.is_empty() {
            return Err(Error::Invalid("cannot mount over /".into()));
        }
        match &m.kind {
            MountKind::Bind { src, readonly } => {
                let (is_dir, locked) = source(src).map_err(Error::Invalid)?;
                ops.push(ensure(&m.target, !is_dir, false, Some(tracker))?);
                let rec = if recursive || privileged {
                    libc::MS_REC
                } else {
                    0
                };
                ops.push(Op::Mount {
                    src: Some(cpath(src)?),
                    target: cstr(&rel)?,
                    fstype: None,
                    flags: libc::MS_BIND | rec,
                    data: None,
                    optional: false,
                });
                let ro = if *readonly { libc::MS_RDONLY } else { 0 };
                let restrict = ro | nodev(privileged);
                if restrict != 0 && recursive {
                    ops.push(set_attr(&rel, restrict)?);
                } else if restrict != 0 {
                    ops.push(remount(&rel, restrict | locked)?);
                }
            }
            MountKind::Tmpfs { size, mode } => {
                ops.push(ensure(&m.target, false, false, Some(tracker))?);
                let mut data = format!("mode={:o}", mode.unwrap_or(0o1777));
                if let Some(size) = size {
                    data.push_str(&format!(",size={size}"));
                }
                ops.push(mount(
                    Some("tmpfs"),
                    &rel,
                    Some("tmpfs"),
                    libc::MS_NOSUID | libc::MS_NODEV,
                    Some(&data),
                    false,
                )?);
            }
            MountKind::TmpfsOptions { flags, data } => {
                ops.push(ensure(&m.target, false, false, Some(tracker))?);
                ops.push(mount(
                    Some("tmpfs"),
                    &rel,
                    Some("tmpfs"),
                    *flags as libc::c_ulong | nodev(privileged),
                    Some(data),
                    false,
                )?);
            }
        }
    }
    Ok(())
}

/// A bind mount's source as found on the host: (is a directory, the flags its mount locks), or
/// why it cannot be bound.
pub type BindSource = std::result::Result<(bool, libc::c_ulong), String>;

/// What `src` is, for [`user`].
pub fn bind_source(src: &Path) -> BindSource {
    let meta =
        std::fs::metadata(src).map_err(|e| format!("bind source path {}: {e}", src.display()))?;
    Ok((meta.is_dir(), locked_flags(src)))
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

/// A recursive mount_setattr(2) of `target` (relative to the new root) adding `flags` (`MS_RDONLY`,
/// `MS_NODEV`).
pub(crate) fn set_attr(target: &str, flags: libc::c_ulong) -> Result<Op> {
    Ok(Op::SetAttr {
        target: cstr(target)?,
        set: mount_attrs(flags),
    })
}

/// A bind remount of `target` (relative to the new root) with exactly `flags`.
pub(crate) fn remount(target: &str, flags: libc::c_ulong) -> Result<Op> {
    mount(
        None,
        target,
        None,
        libc::MS_BIND | libc::MS_REMOUNT | flags,
        None,
        false,
    )
}

/// `MOUNT_ATTR_*` for the `MS_RDONLY` and `MS_NODEV` in `flags`.
fn mount_attrs(flags: libc::c_ulong) -> u64 {
    let mut attrs = 0;
    if flags & libc::MS_RDONLY != 0 {
        attrs |= libc::MOUNT_ATTR_RDONLY;
    }
    if flags & libc::MS_NODEV != 0 {
        attrs |= libc::MOUNT_ATTR_NODEV;
    }
    attrs
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (flags, set attributes) of the mount ops `user` plans for `kind` at /m.
    fn plan(kind: MountKind, privileged: bool, recursive: bool) -> Vec<(libc::c_ulong, u64)> {
        let mut ops = Vec::new();
        let m = Mount {
            target: "/m".into(),
            kind,
        };
        user(
            &mut ops,
            &mut Tracker::default(),
            &[m],
            privileged,
            recursive,
            &bind_source,
        )
        .unwrap();
        ops.iter()
            .filter_map(|op| match op {
                Op::Mount { flags, .. } => Some((*flags, 0)),
                Op::SetAttr { set, .. } => Some((0, *set)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn binds_are_nodev_with_their_submounts_or_bound_alone() {
        use libc::{MOUNT_ATTR_NODEV, MOUNT_ATTR_RDONLY, MS_BIND, MS_NODEV, MS_RDONLY, MS_REC};
        let dir = std::env::temp_dir();
        let bind = |readonly| MountKind::Bind {
            src: dir.clone(),
            readonly,
        };
        let locked = locked_flags(&dir);
        let remount = MS_BIND | libc::MS_REMOUNT;
        // mount_setattr(2): the whole tree restricted.
        assert_eq!(
            plan(bind(false), false, true),
            [(MS_BIND | MS_REC, 0), (0, MOUNT_ATTR_NODEV)]
        );
        assert_eq!(
            plan(bind(true), false, true),
            [
                (MS_BIND | MS_REC, 0),
                (0, MOUNT_ATTR_NODEV | MOUNT_ATTR_RDONLY)
            ]
        );
        assert_eq!(plan(bind(false), true, true), [(MS_BIND | MS_REC, 0)]);
        // Without it: no submounts unless privileged, the bind's own mount remounted.
        assert_eq!(
            plan(bind(false), false, false),
            [(MS_BIND, 0), (remount | MS_NODEV | locked, 0)]
        );
        assert_eq!(
            plan(bind(true), true, false),
            [(MS_BIND | MS_REC, 0), (remount | MS_RDONLY | locked, 0)]
        );
    }

    #[test]
    fn tmpfs_is_nodev_unless_privileged() {
        let asked = |privileged| {
            plan(
                MountKind::TmpfsOptions {
                    flags: libc::MS_NOSUID,
                    data: String::new(),
                },
                privileged,
                true,
            )
        };
        assert_eq!(asked(false), [(libc::MS_NOSUID | libc::MS_NODEV, 0)]);
        assert_eq!(asked(true), [(libc::MS_NOSUID, 0)]);
    }
}
