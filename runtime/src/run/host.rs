//! Everything a run reads from the host before preparing it ([`Host`]), and what it sets up there
//! first ([`Resources`]: the scratch directory, the rootfs mountpoint, a RUN step's cgroup). The
//! only step of a run, with launching, that touches the host before the clone.

use std::fs;
use std::path::{Path, PathBuf};

use crate::capabilities;
use crate::cgroupfs;
use crate::cgroups::Cgroup;
use crate::devices::{self, HostDevice};
use crate::error::{Error, Result};
use crate::init::{Op, OverlayMount};
use crate::mounts::{self, BindSource, cstr};
use crate::rootfs;
use crate::scratch::{self, Scratch};
use crate::spec::{Flavor, MountKind, Rootfs, Spec};
use crate::userns::{self, IdMap};

/// Facts about the host and the run's files that preparation depends on.
#[derive(Debug)]
pub(crate) struct Host {
    /// This process's user namespace mappings.
    pub ids: IdMap,
    /// `setgroups` is denied here (rootless with a single mapping).
    pub setgroups_denied: bool,
    /// mount_setattr(2) exists.
    pub setattr: bool,
    /// This process's capability bounding set, and the kernel's last capability.
    pub bounding: u64,
    pub last_cap: u32,
    /// Where the root is mounted: the directory root itself (canonical), or the overlay's
    /// mountpoint in the scratch directory.
    pub root: PathBuf,
    /// The flags a remount of the mount holding `root` must keep (a directory root's).
    pub root_locked: libc::c_ulong,
    /// The overlay to mount at `root` (`None`: `root` is a directory, bound onto itself).
    pub overlay: Option<OverlayMount>,
    /// Where the /etc files are written, and the flags of its mount a remount must keep.
    pub etc_dir: PathBuf,
    pub etc_locked: libc::c_ulong,
    /// The flags of the host's /sys mount a remount must keep.
    pub sys_locked: libc::c_ulong,
    /// The /etc/resolv.conf to give: the spec's, or the flavor's default (from the host's).
    pub resolv_conf: String,
    /// The rootfs's /etc/passwd and /etc/group.
    pub passwd: String,
    pub group: String,
    /// A RUN step's /sys/fs/cgroup view, and whether it needs a cgroup namespace.
    pub cgroup_view: Vec<Op>,
    pub cgroupns: bool,
    /// The host's device nodes (read for `--privileged` only).
    pub devices: Vec<HostDevice>,
    /// Each bind mount's source.
    pub sources: Vec<(PathBuf, BindSource)>,
}

impl Host {
    /// What `src` is (a source [`gather`] did not see cannot be bound).
    pub fn source(&self, src: &Path) -> BindSource {
        self.sources
            .iter()
            .find(|(p, _)| p == src)
            .map(|(_, s)| s.clone())
            .unwrap_or_else(|| Err(format!("bind source path {}: not looked up", src.display())))
    }
}

/// What a run set up on the host, released after it.
pub(crate) struct Resources {
    pub scratch: Scratch,
    /// A RUN step's own cgroup (without limits).
    pub step_cgroup: Option<Cgroup>,
}

fn setup_err(step: &str) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |e| Error::setup(step, e)
}

/// Reads the host facts for `spec`, creating the scratch directory (and, for a RUN step, its
/// cgroup, and the system directories in its rootfs).
pub(crate) fn gather(spec: &Spec) -> Result<(Host, Resources)> {
    let scratch = Scratch::new().map_err(setup_err("creating the scratch directory"))?;
    let (root, overlay) = match &spec.rootfs {
        Rootfs::Dir(dir) => {
            let dir = fs::canonicalize(dir)
                .map_err(|e| Error::Invalid(format!("rootfs {}: {e}", dir.display())))?;
            (dir, None)
        }
        Rootfs::Overlay {
            lowers,
            upper,
            work,
        } => {
            // The skeleton at the bottom: the image's own entries win, missing mountpoints need no
            // creation in the upper.
            let skeleton =
                scratch::skeleton().map_err(setup_err("creating the mountpoint skeleton"))?;
            let lowers: Vec<PathBuf> = std::iter::once(skeleton)
                .chain(lowers.iter().cloned())
                .collect();
            let (cwd, data) = rootfs::overlay_options(&lowers, upper, work)?;
            rootfs::clear_volatile(work);
            let target = scratch.dir.join("rootfs");
            fs::create_dir(&target).map_err(setup_err("creating the rootfs mountpoint"))?;
            (
                target,
                Some(OverlayMount {
                    cwd: cstr(&cwd.to_string_lossy())?,
                    data: cstr(&format!("{data},volatile"))?,
                    fallback: cstr(&data)?,
                }),
            )
        }
    };
    if spec.flavor == Flavor::Build {
        rootfs::create_system_dirs(&spec.rootfs)
            .map_err(setup_err("creating /dev, /proc and /sys"))?;
    }
    let ids = userns::IdMap::current().clone();
    let privileged = spec.security.privileged;

    // A RUN step runs in a cgroup of its own and sees it read-only, as BuildKit's (rootless: /sys
    // as it is).
    let mut step_cgroup = None;
    let mut cgroup_view = Vec::new();
    let cgroupns = if spec.flavor == Flavor::Build && !ids.rootless() {
        let mut v1 = cgroupfs::v1_hierarchies();
        let own: Vec<(String, PathBuf)> = v1
            .iter()
            .map(|h| (h.name.clone(), h.source.clone()))
            .collect();
        let limits = &spec.limits;
        let unlimited = limits.memory.is_none() && limits.cpus.is_none() && limits.pids.is_none();
        if let Some(Ok((cg, made))) = unlimited.then(|| Cgroup::create_step(&scratch.name(), &own))
        {
            for h in &mut v1 {
                if let Some((_, dir)) = made.iter().find(|(n, _)| *n == h.name) {
                    h.source = dir.clone();
                }
            }
            step_cgroup = Some(cg);
        }
        cgroupfs::view(&mut cgroup_view, privileged, &v1)?
    } else {
        false
    };

    let sources = spec
        .mounts
        .iter()
        .filter_map(|m| match &m.kind {
            MountKind::Bind { src, .. } => Some((src.clone(), mounts::bind_source(src))),
            _ => None,
        })
        .collect();
    let host = Host {
        setgroups_denied: ids.rootless() && userns::setgroups_denied(),
        ids,
        setattr: mounts::setattr_supported(),
        bounding: capabilities::all_mask(),
        last_cap: capabilities::last_cap(),
        root_locked: match spec.rootfs {
            Rootfs::Dir(_) => mounts::locked_flags(&root),
            Rootfs::Overlay { .. } => 0,
        },
        root,
        overlay,
        etc_locked: mounts::locked_flags(&scratch.dir),
        etc_dir: scratch.dir.clone(),
        sys_locked: mounts::locked_flags(Path::new("/sys")),
        resolv_conf: match (&spec.etc.resolv_conf, spec.flavor) {
            (Some(given), _) => given.clone(),
            (None, Flavor::Container) => crate::etc::default_resolv_conf(spec.network),
            (None, Flavor::Build) => crate::etc::build_resolv_conf(spec.network),
        },
        passwd: rootfs::read_file(&spec.rootfs, "etc/passwd"),
        group: rootfs::read_file(&spec.rootfs, "etc/group"),
        cgroup_view,
        cgroupns,
        devices: if privileged {
            devices::list()
        } else {
            Vec::new()
        },
        sources,
    };
    Ok((
        host,
        Resources {
            scratch,
            step_cgroup,
        },
    ))
}
