//! Running the mount plan ([`Op`]s) before `pivot_root`: every target resolved inside the new root
//! (`RESOLVE_IN_ROOT`), so a symlink in the image cannot point a mount at the host.

use std::ffi::CStr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::raw::c_int;
use std::sync::atomic::Ordering;

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;
use rustix::mount::MountFlags;

use super::{Op, OrFail, Plan, Stage, errno, fail};

/// "/proc/self/fd/N" in a stack buffer, NUL-terminated.
struct FdPath([u8; 32]);

impl FdPath {
    fn new(fd: c_int) -> Self {
        let mut buf = [0u8; 32];
        let prefix = b"/proc/self/fd/";
        buf[..prefix.len()].copy_from_slice(prefix);
        let mut digits = [0u8; 12];
        let mut n = fd as u32;
        let mut len = 0;
        loop {
            digits[len] = b'0' + (n % 10) as u8;
            len += 1;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        for i in 0..len {
            buf[prefix.len() + i] = digits[len - 1 - i];
        }
        FdPath(buf)
    }

    fn as_c_str(&self) -> &CStr {
        // The buffer always ends in zeros (14 + at most 10 digits of 32 bytes).
        CStr::from_bytes_until_nul(&self.0).unwrap_or(c"")
    }
}

/// openat2(root, path, O_PATH, RESOLVE_IN_ROOT): resolves `path` as if `root` were `/`.
fn open_in_root(root: &OwnedFd, path: &CStr, extra: OFlags) -> rustix::io::Result<OwnedFd> {
    rustix::fs::openat2(
        root,
        path,
        OFlags::PATH | OFlags::CLOEXEC | extra,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    )
}

/// Runs every op of the plan in order; the first failure is reported and ends the child.
pub(super) fn run(plan: &Plan, root: &OwnedFd) {
    let mut skipped = false;
    for (i, op) in plan.ops.iter().enumerate() {
        match op {
            Op::Ensure { comps, soft } => {
                skipped = !ensure(plan, root, i, comps, *soft);
            }
            Op::Mount {
                src,
                target,
                fstype,
                flags,
                data,
                optional,
            } => {
                if *optional && skipped {
                    continue;
                }
                let fd = match open_in_root(root, target, OFlags::empty()) {
                    Ok(fd) => fd,
                    Err(Errno::NOENT) if *optional => continue,
                    Err(e) => fail(plan, Stage::Mount, i, e.raw_os_error(), 125),
                };
                let path = FdPath::new(fd.as_raw_fd());
                // A missing type (bind, remount, propagation) is ignored by the kernel.
                rustix::mount::mount(
                    src.as_deref().unwrap_or(path.as_c_str()),
                    path.as_c_str(),
                    fstype.as_deref().unwrap_or(c""),
                    MountFlags::from_bits_retain(*flags as _),
                    data.as_deref(),
                )
                .or_fail(plan, Stage::Mount, i);
            }
            Op::Mask { target } => {
                let Ok(fd) = open_in_root(root, target, OFlags::empty()) else {
                    continue;
                };
                let path = FdPath::new(fd.as_raw_fd());
                let is_dir = rustix::fs::fstat(&fd)
                    .is_ok_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::Directory);
                let r = if is_dir {
                    rustix::mount::mount(
                        c"tmpfs",
                        path.as_c_str(),
                        c"tmpfs",
                        MountFlags::RDONLY,
                        Some(c"size=0"),
                    )
                } else {
                    rustix::mount::mount_bind(c"/dev/null", path.as_c_str())
                };
                r.or_fail(plan, Stage::Mount, i);
            }
            Op::SetAttr { target, set } => {
                let fd = open_in_root(root, target, OFlags::empty()).or_fail(plan, Stage::Mount, i);
                set_attr_recursive(plan, i, fd.as_fd(), *set);
            }
            Op::Mknod {
                dir,
                name,
                mode,
                dev,
            } => {
                let d = open_in_root(root, dir, OFlags::DIRECTORY).or_fail(plan, Stage::Mknod, i);
                // A mode without a file type is a character device.
                let kind = if mode & libc::S_IFMT == 0 {
                    FileType::CharacterDevice
                } else {
                    FileType::from_raw_mode(*mode)
                };
                let perm = Mode::from_raw_mode(mode & 0o7777);
                rustix::fs::mknodat(&d, name.as_c_str(), kind, perm, *dev).or_fail(
                    plan,
                    Stage::Mknod,
                    i,
                );
                // mknod honours the umask: set the mode exactly.
                let _ = rustix::fs::chmodat(&d, name.as_c_str(), perm, AtFlags::empty());
            }
            Op::Symlink { dir, name, target } => {
                let d = open_in_root(root, dir, OFlags::DIRECTORY).or_fail(plan, Stage::Symlink, i);
                rustix::fs::symlinkat(target.as_c_str(), &d, name.as_c_str()).or_fail(
                    plan,
                    Stage::Symlink,
                    i,
                );
            }
        }
    }
}

/// Makes each component of an `Ensure` exist. Returns false when `soft` skipped the rest.
fn ensure(plan: &Plan, root: &OwnedFd, i: usize, comps: &[super::Component], soft: bool) -> bool {
    for c in comps {
        match open_in_root(root, &c.path, OFlags::empty()) {
            Ok(_) => continue,
            Err(Errno::NOENT) => {}
            Err(e) => fail(plan, Stage::Ensure, i, e.raw_os_error(), 125),
        }
        let parent = match open_in_root(root, &c.parent, OFlags::DIRECTORY) {
            Ok(p) => p,
            Err(_) if soft => return false,
            Err(e) => fail(plan, Stage::Ensure, i, e.raw_os_error(), 125),
        };
        let made = if c.file {
            rustix::fs::openat(
                &parent,
                c.name.as_c_str(),
                OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::CLOEXEC,
                Mode::from_raw_mode(0o644),
            )
            .map(drop)
        } else {
            rustix::fs::mkdirat(&parent, c.name.as_c_str(), Mode::from_raw_mode(0o755))
        };
        match made {
            Ok(()) => {}
            Err(Errno::EXIST) if soft => return false,
            Err(e) => fail(plan, Stage::Ensure, i, e.raw_os_error(), 125),
        }
        if let Some(t) = c.track {
            plan.shared.created[t].store(1, Ordering::SeqCst);
        }
    }
    true
}

/// mount_setattr(fd, "", AT_EMPTY_PATH | AT_RECURSIVE) adding `set` (rustix has no wrapper).
fn set_attr_recursive(plan: &Plan, i: usize, fd: std::os::fd::BorrowedFd, set: u64) {
    let attr = libc::mount_attr {
        attr_set: set,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: `fd` is open; the path is a valid empty C string; `attr` is a valid `mount_attr`
    // that lives across the call, and its size is passed as the kernel expects.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH | libc::AT_RECURSIVE,
            &attr as *const libc::mount_attr,
            std::mem::size_of::<libc::mount_attr>(),
        )
    };
    if r != 0 {
        fail(plan, Stage::Mount, i, errno(), 125);
    }
}
