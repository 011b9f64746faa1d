//! Per-run scratch directories (the /etc files, the rootfs mountpoint) and the shared mountpoint
//! skeleton, on a tmpfs so that creating and removing them costs no disk I/O.
//!
//! The base is `$HOIST_RUNTIME_TMP` if set, else `/run/hoist` when /run is a tmpfs, else
//! `/dev/shm/hoist` (private to root: 0700, checked), else `/run/hoist` on disk. Rootless hoist uses
//! the user's own `$XDG_RUNTIME_DIR/hoist`, else `/dev/shm/hoist-UID`, else `$TMPDIR/hoist-UID`
//! (UID: the user's id on the host; each checked private the same way). A run holds an
//! `flock` on its directory for as long as the sandbox lives (the sandbox's init inherits it), so a
//! directory whose lock can be taken belongs to a killed hoist and is swept by the next run.

use std::fs;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

const TMPFS_MAGIC: i64 = 0x0102_1994;
/// Per-run directory name prefix.
const PREFIX: &str = "hoist-run-";
/// The mountpoint skeleton (bump the suffix when its contents change).
const SKELETON: &str = "skeleton-2";

fn is_tmpfs(path: &Path) -> bool {
    rustix::fs::statfs(path).is_ok_and(|st| st.f_type == TMPFS_MAGIC)
}

/// `dir` exists (created 0700 if missing), is a real directory owned by us and writable by no one else.
fn private_dir(dir: &Path) -> bool {
    let _ = fs::DirBuilder::new().mode(0o700).create(dir);
    match fs::symlink_metadata(dir) {
        Ok(m) => {
            m.is_dir() && m.uid() == rustix::process::geteuid().as_raw() && m.mode() & 0o022 == 0
        }
        Err(_) => false,
    }
}

fn choose_base() -> PathBuf {
    if let Some(dir) = std::env::var_os("HOIST_RUNTIME_TMP") {
        let dir = PathBuf::from(dir);
        let _ = fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir);
        return dir;
    }
    if crate::userns::rootless() {
        return rootless_base();
    }
    let run = Path::new("/run/hoist");
    if is_tmpfs(Path::new("/run")) && private_dir(run) {
        return run.into();
    }
    let shm = Path::new("/dev/shm/hoist");
    if is_tmpfs(Path::new("/dev/shm")) && private_dir(shm) {
        return shm.into();
    }
    if private_dir(run) {
        return run.into();
    }
    std::env::temp_dir()
}

/// A rootless user's base: never root's /run/hoist (nor a name another user may hold first).
fn rootless_base() -> PathBuf {
    let uid = crate::userns::IdMap::current().outside_uid();
    let runtime_dir = std::env::var_os("XDG_RUNTIME_DIR")
        .filter(|d| !d.is_empty())
        .map(|d| PathBuf::from(d).join("hoist"));
    let shm = Path::new("/dev/shm");
    let shm = is_tmpfs(shm).then(|| shm.join(format!("hoist-{uid}")));
    let tmp = std::env::temp_dir().join(format!("hoist-{uid}"));
    runtime_dir
        .into_iter()
        .chain(shm)
        .chain([tmp])
        .find(|d| private_dir(d))
        .unwrap_or_else(|| {
            // Someone else holds the name: a directory of this process's own.
            let own = std::env::temp_dir().join(format!("hoist-{uid}-{}", std::process::id()));
            let _ = private_dir(&own);
            own
        })
}

/// The directory holding scratch directories and the skeleton; stale scratch directories are swept
/// the first time a process asks.
pub fn base() -> &'static Path {
    static BASE: OnceLock<PathBuf> = OnceLock::new();
    BASE.get_or_init(|| {
        let base = choose_base();
        sweep(&base);
        base
    })
}

fn open_dir(path: &Path) -> io::Result<OwnedFd> {
    Ok(fs::File::open(path)?.into())
}

fn try_lock(fd: &OwnedFd) -> bool {
    rustix::fs::flock(fd, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_ok()
}

/// Removes the scratch directories under `base` whose lock is free (their hoist was killed).
pub fn sweep(base: &Path) {
    let Ok(entries) = fs::read_dir(base) else {
        return;
    };
    for entry in entries.flatten() {
        if !entry.file_name().to_string_lossy().starts_with(PREFIX) {
            continue;
        }
        let path = entry.path();
        // A directory just created by a live run and not locked yet may be removed here: its owner
        // notices (its lock or inode check fails) and takes another name.
        if let Ok(fd) = open_dir(&path) {
            if try_lock(&fd) {
                let _ = fs::remove_dir_all(&path);
            }
        }
    }
}

/// A per-run scratch directory, locked while the run lives, removed on drop.
pub struct Scratch {
    pub dir: PathBuf,
    _lock: OwnedFd,
}

impl Scratch {
    pub fn new() -> io::Result<Scratch> {
        static N: AtomicU64 = AtomicU64::new(0);
        let base = base();
        for _ in 0..100 {
            let dir = base.join(format!(
                "{PREFIX}{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            match fs::DirBuilder::new().mode(0o700).create(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
            let lock = open_dir(&dir)?;
            // A sweeper holding or having deleted it: take another name.
            let same = |l: &OwnedFd| {
                rustix::fs::fstat(l)
                    .is_ok_and(|st| fs::symlink_metadata(&dir).is_ok_and(|m| m.ino() == st.st_ino))
            };
            if try_lock(&lock) && same(&lock) {
                return Ok(Scratch { dir, _lock: lock });
            }
        }
        Err(io::Error::other("no free scratch directory name"))
    }

    /// The lock's descriptor (the sandbox's init keeps it).
    pub fn lock_fd(&self) -> std::os::fd::RawFd {
        self._lock.as_raw_fd()
    }

    /// The directory's name (also used as the cgroup name).
    pub fn name(&self) -> String {
        self.dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Empty mountpoints every sandbox needs (/proc, /dev, /sys, /etc/hosts, /etc/resolv.conf), as a
/// read-only bottom overlay layer: an image lacking them then shows them without the runtime
/// creating (and later deleting) them in the upper. Not /etc/hostname: a build step sees the
/// image's own (or none), as in BuildKit; a container's is created as a tracked mountpoint. Built once, atomically (built aside, then renamed into place).
pub fn skeleton() -> io::Result<PathBuf> {
    let base = base();
    let dir = base.join(SKELETON);
    if dir.is_dir() {
        return Ok(dir);
    }
    static N: AtomicU64 = AtomicU64::new(0);
    let tmp = base.join(format!(
        ".{SKELETON}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = fs::remove_dir_all(&tmp);
    let build = || -> io::Result<()> {
        let mut b = fs::DirBuilder::new();
        b.mode(0o755);
        b.create(&tmp)?;
        for d in ["proc", "dev", "sys", "etc"] {
            b.create(tmp.join(d))?;
        }
        for f in ["etc/hosts", "etc/resolv.conf"] {
            fs::write(tmp.join(f), "")?;
            fs::set_permissions(tmp.join(f), fs::Permissions::from_mode(0o644))?;
        }
        // Exact modes whatever the umask.
        for d in ["", "proc", "dev", "sys", "etc"] {
            fs::set_permissions(tmp.join(d), fs::Permissions::from_mode(0o755))?;
        }
        Ok(())
    };
    let r = build().and_then(|()| fs::rename(&tmp, &dir));
    if r.is_err() {
        let _ = fs::remove_dir_all(&tmp);
        // Another process may have won the race.
        if !dir.is_dir() {
            r?;
        }
    }
    Ok(dir)
}
