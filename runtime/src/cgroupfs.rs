//! A RUN step's read-only view of its cgroups at /sys/fs/cgroup, as runc gives BuildKit's steps.
//!
//! cgroup v2: the step gets its own cgroup namespace (rooted at the cgroup it runs in) and a
//! read-only cgroup2 mount, so it sees `0::/` and its own cgroup's files. cgroup v1 (no cgroup
//! namespace, as BuildKit on v1): a tmpfs (mode 755) with, per v1 hierarchy, the directory of the
//! cgroup it runs in bound read-only under the hierarchy's name (`cpu`, `memory`, `systemd`...;
//! co-mounted controllers such as `cpu,cpuacct` get a symlink per controller); the hybrid
//! `unified` cgroup2 mount is left out, as runc does.

use std::fs;
use std::path::{Path, PathBuf};

use crate::error::Result;
use crate::init::Op;
use crate::mounts::{ensure, locked_flags, mount, remount};

/// A v1 hierarchy as the sandbox shows it: its name under /sys/fs/cgroup (its host mountpoint's)
/// and the host directory of the cgroup the sandbox runs in.
#[derive(Debug, PartialEq, Eq)]
pub struct Hierarchy {
    pub name: String,
    pub source: PathBuf,
}

/// The host's v1 hierarchies (none on a cgroup v2 host), with this process's cgroup in each.
pub fn v1_hierarchies() -> Vec<Hierarchy> {
    let read = |p: &str| fs::read_to_string(p).unwrap_or_default();
    hierarchies(&read("/proc/self/mountinfo"), &read("/proc/self/cgroup"))
        .into_iter()
        .filter(|h| h.source.is_dir())
        .collect()
}

/// The v1 hierarchies of `mountinfo` with the cgroups `own` (`/proc/self/cgroup`) names for them,
/// when the mount shows that cgroup.
fn hierarchies(mountinfo: &str, own: &str) -> Vec<Hierarchy> {
    let own: Vec<(Vec<&str>, &str)> = own
        .lines()
        .filter_map(|l| {
            let mut f = l.splitn(3, ':');
            let (_, ctrl, path) = (f.next()?, f.next()?, f.next()?);
            (!ctrl.is_empty()).then(|| (ctrl.split(',').collect(), path))
        })
        .collect();
    let mut out = Vec::new();
    for line in mountinfo.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let left: Vec<&str> = left.split(' ').collect();
        let right: Vec<&str> = right.split(' ').collect();
        let (Some(root), Some(point), Some(&"cgroup"), Some(opts)) =
            (left.get(3), left.get(4), right.first(), right.get(2))
        else {
            continue;
        };
        if point.contains('\\') || root.contains('\\') {
            continue;
        }
        let opts: Vec<&str> = opts.split(',').collect();
        let Some((_, path)) = own
            .iter()
            .find(|(ctrl, _)| ctrl.iter().all(|c| opts.contains(c)))
        else {
            continue;
        };
        // The mount shows the hierarchy from `root` down: the cgroup must be below it.
        let Ok(rel) = Path::new(path).strip_prefix(root) else {
            continue;
        };
        let Some(name) = Path::new(point).file_name() else {
            continue;
        };
        out.push(Hierarchy {
            name: name.to_string_lossy().into_owned(),
            source: Path::new(point).join(rel),
        });
    }
    out
}

/// Adds the /sys/fs/cgroup mounts to `ops` (read-write when `privileged`) for the v1 `found`
/// ([`v1_hierarchies`], their `source` the sandbox's cgroups); returns whether the sandbox needs its
/// own cgroup namespace (v2). Nothing where the host shows no cgroup.
pub fn view(ops: &mut Vec<Op>, privileged: bool, found: &[Hierarchy]) -> Result<bool> {
    use libc::{MS_NODEV, MS_NOEXEC, MS_NOSUID, MS_RDONLY};
    let ro = if privileged { 0 } else { MS_RDONLY };
    let root = Path::new("/sys/fs/cgroup");
    if root.join("cgroup.controllers").exists() {
        if !Path::new("/proc/self/ns/cgroup").exists() {
            return Ok(false);
        }
        ops.push(mount(
            Some("cgroup2"),
            "sys/fs/cgroup",
            Some("cgroup2"),
            ro | MS_NOSUID | MS_NODEV | MS_NOEXEC,
            None,
            true,
        )?);
        return Ok(true);
    }
    if found.is_empty() {
        return Ok(false);
    }
    ops.push(mount(
        Some("tmpfs"),
        "sys/fs/cgroup",
        Some("tmpfs"),
        MS_NOSUID | MS_NODEV | MS_NOEXEC,
        Some("mode=755"),
        true,
    )?);
    for h in found {
        let target = format!("sys/fs/cgroup/{}", h.name);
        ops.push(ensure(&format!("/{target}"), false, true, None)?);
        ops.push(mount(
            Some(&h.source.to_string_lossy()),
            &target,
            None,
            libc::MS_BIND,
            None,
            true,
        )?);
        let flags = ro | MS_NOSUID | MS_NODEV | MS_NOEXEC | locked_flags(&h.source);
        ops.push(remount(&target, flags)?);
    }
    for h in found {
        for ctrl in h.name.split(',').filter(|c| *c != h.name) {
            ops.push(Op::Symlink {
                dir: crate::mounts::cstr("sys/fs/cgroup")?,
                name: crate::mounts::cstr(ctrl)?,
                target: crate::mounts::cstr(&h.name)?,
            });
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_hierarchies_show_the_own_cgroup_under_the_mount_name() {
        let mountinfo = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 /outer /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 /elsewhere /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";
        let own = "5:pids:/mine\n4:memory:/outer/inner\n2:cpu,cpuacct:/\n\
                   1:name=systemd:/user.slice\n0::/user.slice\n";
        let got = hierarchies(mountinfo, own);
        let want = [
            ("cpu,cpuacct", "/sys/fs/cgroup/cpu,cpuacct"),
            ("memory", "/sys/fs/cgroup/memory/inner"),
            ("systemd", "/sys/fs/cgroup/systemd/user.slice"),
        ]
        .map(|(name, source)| (name.to_string(), PathBuf::from(source)));
        let got: Vec<(String, PathBuf)> = got.into_iter().map(|h| (h.name, h.source)).collect();
        assert_eq!(got, want);
    }
}
