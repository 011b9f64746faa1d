//! cgroups: one cgroup per sandbox with memory, CPU and pids limits, on v2 (unified) or v1 (one
//! hierarchy per controller), removed after the run. Created when a limit is set, and for every
//! RUN step (no limits, below hoist's own cgroup, as BuildKit gives each step one).
//!
//! Rootless, limits need cgroup v2 and a cgroup delegated to the user (systemd's `user@UID.service`
//! subtree): the sandboxes go under the parent of hoist's own cgroup. On cgroup v1, or without a
//! delegated cgroup, asking for a limit is an error (no limit asked: no cgroup, as for root).

use std::fs;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::spec::Limits;

const ROOT: &str = "/sys/fs/cgroup";
const PARENT: &str = "hoist";

/// The cgroup directories of one sandbox and the open `cgroup.procs` files the child joins through.
#[derive(Debug)]
pub struct Cgroup {
    dirs: Vec<PathBuf>,
    pub procs: Vec<OwnedFd>,
}

fn write(path: &Path, value: &str) -> io::Result<()> {
    fs::write(path, value).map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))
}

fn is_v2() -> bool {
    Path::new(ROOT).join("cgroup.controllers").exists()
}

impl Cgroup {
    /// Creates the cgroup `name` with `limits`, or returns `None` when no limit is set.
    /// Every task counts towards `limits.pids`, hoist's init too (as `docker run --init`'s does).
    pub fn create(name: &str, limits: &Limits) -> io::Result<Option<Cgroup>> {
        if limits.memory.is_none() && limits.cpus.is_none() && limits.pids.is_none() {
            return Ok(None);
        }
        let mut cg = Cgroup {
            dirs: Vec::new(),
            procs: Vec::new(),
        };
        let pids = limits
            .pids
            .map(|p| if p > 0 { p.to_string() } else { "max".into() });
        let cpu_quota = limits
            .cpus
            .map(|c| (c * 100_000.0).round().max(1000.0) as u64);
        let result = match (is_v2(), crate::userns::rootless()) {
            (true, false) => cg.create_v2(Path::new(ROOT), name, limits, pids, cpu_quota),
            (false, false) => cg.create_v1(name, limits, pids, cpu_quota),
            (true, true) => match delegated() {
                Some(base) => cg.create_v2(&base, name, limits, pids, cpu_quota),
                None => Err(io::Error::other(
                    "rootless hoist cannot set --memory, --cpus or --pids-limit: no cgroup v2 \
                     subtree is delegated to this user (systemd's user@UID.service does that)",
                )),
            },
            (false, true) => Err(io::Error::other(
                "rootless hoist cannot set --memory, --cpus or --pids-limit on cgroup v1 \
                 (its hierarchies belong to the host's root): run as root, or on a cgroup v2 host",
            )),
        };
        match result {
            Ok(()) => Ok(Some(cg)),
            Err(e) => {
                cg.remove();
                Err(e)
            }
        }
    }

    fn add_dir(&mut self, parent: &Path, name: &str, procs_file: &str) -> io::Result<PathBuf> {
        sweep_stale(parent);
        let dir = parent.join(name);
        fs::create_dir_all(&dir)?;
        self.dirs.push(dir.clone());
        let f = fs::OpenOptions::new()
            .write(true)
            .open(dir.join(procs_file))?;
        self.procs.push(f.into());
        Ok(dir)
    }

    /// Creates `base/hoist/name` (`base`: the root, or a delegated cgroup).
    fn create_v2(
        &mut self,
        base: &Path,
        name: &str,
        limits: &Limits,
        pids: Option<String>,
        cpu_quota: Option<u64>,
    ) -> io::Result<()> {
        let parent = base.join(PARENT);
        fs::create_dir_all(&parent)?;
        let mut wanted = Vec::new();
        if limits.memory.is_some() {
            wanted.push("+memory");
        }
        if cpu_quota.is_some() {
            wanted.push("+cpu");
        }
        if pids.is_some() {
            wanted.push("+pids");
        }
        for dir in [base, parent.as_path()] {
            write(&dir.join("cgroup.subtree_control"), &wanted.join(" "))?;
        }
        let dir = self.add_dir(&parent, name, "cgroup.procs")?;
        if let Some(m) = limits.memory {
            write(&dir.join("memory.max"), &m.to_string())?;
            let swap = dir.join("memory.swap.max");
            if swap.exists() {
                write(&swap, &m.to_string())?;
            }
        }
        if let Some(q) = cpu_quota {
            write(&dir.join("cpu.max"), &format!("{q} 100000"))?;
        }
        if let Some(p) = pids {
            write(&dir.join("pids.max"), &p)?;
        }
        Ok(())
    }

    fn create_v1(
        &mut self,
        name: &str,
        limits: &Limits,
        pids: Option<String>,
        cpu_quota: Option<u64>,
    ) -> io::Result<()> {
        let root = Path::new(ROOT);
        if let Some(m) = limits.memory {
            let dir = self.add_dir(&root.join("memory").join(PARENT), name, "cgroup.procs")?;
            write(&dir.join("memory.limit_in_bytes"), &m.to_string())?;
            let memsw = dir.join("memory.memsw.limit_in_bytes");
            if memsw.exists() {
                write(&memsw, &(m.saturating_mul(2)).to_string())?;
            }
        }
        if let Some(q) = cpu_quota {
            let dir = self.add_dir(&root.join("cpu").join(PARENT), name, "cgroup.procs")?;
            write(&dir.join("cpu.cfs_period_us"), "100000")?;
            write(&dir.join("cpu.cfs_quota_us"), &q.to_string())?;
        }
        if let Some(p) = pids {
            let dir = self.add_dir(&root.join("pids").join(PARENT), name, "cgroup.procs")?;
            write(&dir.join("pids.max"), &p)?;
        }
        Ok(())
    }

    /// A RUN step's own cgroup, without limits, as BuildKit runs each step in one: `hoist/name`
    /// below hoist's own cgroup (so whatever limits hoist runs under hold for the step too) in
    /// every hierarchy (v1: `hierarchies`, by name with hoist's cgroup directory in each), so that
    /// the step's /sys/fs/cgroup shows its own cgroup only. Returns it with the v1 directories by
    /// hierarchy name. An error where cgroups cannot be made (a read-only cgroupfs): the step then
    /// shares hoist's.
    pub fn create_step(
        name: &str,
        hierarchies: &[(String, PathBuf)],
    ) -> io::Result<(Cgroup, Vec<(String, PathBuf)>)> {
        let mut cg = Cgroup {
            dirs: Vec::new(),
            procs: Vec::new(),
        };
        let mut made = Vec::new();
        let mut step = || -> io::Result<()> {
            if is_v2() {
                let own = fs::read_to_string("/proc/self/cgroup")?;
                let own = own
                    .lines()
                    .find_map(|l| l.strip_prefix("0::"))
                    .ok_or_else(|| io::Error::other("no cgroup v2 entry in /proc/self/cgroup"))?;
                let parent = Path::new(ROOT)
                    .join(own.trim_start_matches('/'))
                    .join(PARENT);
                fs::create_dir_all(&parent)?;
                cg.add_dir(&parent, name, "cgroup.procs")?;
                return Ok(());
            }
            for (hierarchy, own) in hierarchies {
                let parent = own.join(PARENT);
                fs::create_dir_all(&parent)?;
                sweep_stale(&parent);
                let cpuset = hierarchy.split(',').any(|c| c == "cpuset");
                if cpuset {
                    inherit_cpuset(own, &parent)?;
                }
                let dir = parent.join(name);
                fs::create_dir_all(&dir)?;
                cg.dirs.push(dir.clone());
                if cpuset {
                    inherit_cpuset(&parent, &dir)?;
                }
                let f = fs::OpenOptions::new()
                    .write(true)
                    .open(dir.join("cgroup.procs"))?;
                cg.procs.push(f.into());
                made.push((hierarchy.clone(), dir));
            }
            Ok(())
        };
        match step() {
            Ok(()) => Ok((cg, made)),
            Err(e) => {
                cg.remove();
                Err(e)
            }
        }
    }

    /// Removes the cgroup directories (retrying while the kernel finishes tearing down the tasks).
    pub fn remove(&mut self) {
        self.procs.clear();
        for dir in self.dirs.drain(..) {
            for attempt in 0..200 {
                match fs::remove_dir(&dir) {
                    Ok(()) => break,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => break,
                    Err(_) => {
                        std::thread::sleep(Duration::from_millis(if attempt < 20 { 1 } else { 10 }))
                    }
                }
            }
        }
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        self.remove();
    }
}

/// Rootless on cgroup v2: the parent of hoist's own cgroup, if this user may manage it (hoist's own
/// cgroup holds processes, so it cannot hand controllers down itself).
fn delegated() -> Option<PathBuf> {
    let own = fs::read_to_string("/proc/self/cgroup").ok()?;
    let rel = own.lines().find_map(|l| l.strip_prefix("0::"))?;
    let parent = Path::new(ROOT)
        .join(rel.trim_start_matches('/'))
        .parent()?
        .to_path_buf();
    let writable =
        |f: &str| rustix::fs::access(parent.join(f), rustix::fs::Access::WRITE_OK).is_ok();
    (parent != Path::new(ROOT) && writable("cgroup.subtree_control") && writable("cgroup.procs"))
        .then_some(parent)
}

/// A new v1 cpuset cgroup has no CPUs and memory nodes (nothing could join it): its parent's.
fn inherit_cpuset(parent: &Path, dir: &Path) -> io::Result<()> {
    for f in ["cpuset.cpus", "cpuset.mems"] {
        if fs::read_to_string(dir.join(f))?.trim().is_empty() {
            write(&dir.join(f), fs::read_to_string(parent.join(f))?.trim())?;
        }
    }
    Ok(())
}

/// Removes cgroups left behind by a killed hoist: empty, and older than a minute (so a concurrent run's
/// fresh, not yet joined cgroup is never touched).
fn sweep_stale(parent: &Path) {
    let Ok(entries) = fs::read_dir(parent) else {
        return;
    };
    let cutoff = SystemTime::now() - Duration::from_secs(60);
    for entry in entries.flatten() {
        let path = entry.path();
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|t| t < cutoff);
        let empty =
            fs::read_to_string(path.join("cgroup.procs")).is_ok_and(|s| s.trim().is_empty());
        if entry.file_type().is_ok_and(|t| t.is_dir()) && old && empty {
            let _ = fs::remove_dir(&path);
        }
    }
}
