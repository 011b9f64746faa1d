//! The sandbox's PID 1 and the command's last steps before `execve`: what the parent prepares for
//! them ([`Plan`]), what they report back ([`Shared`]), and the code they run ([`pid1`], [`ops`],
//! [`command`]).
//!
//! Everything here runs in a child created by a raw `clone` of a possibly multi-threaded process, so it
//! must not allocate, lock or panic: it only reads the pre-built [`Plan`] and makes system calls
//! (rustix's raw ones, or libc's plain wrappers where rustix has none). Errors are written to the
//! [`Shared`] page (a `MAP_SHARED` mapping the parent reads after the child exits). Must not touch:
//! anything of the parent's beyond the plan, or glibc state that assumes the parent's threads.

mod command;
mod ops;
mod pid1;
mod stage;

use std::borrow::Cow;
use std::ffi::CString;
use std::os::fd::BorrowedFd;
use std::os::raw::{c_char, c_int, c_ulong};
use std::sync::atomic::{AtomicI32, AtomicU8, AtomicU64, Ordering};

use rustix::process::{Gid, Uid};

use crate::capabilities::CapSet;
use crate::tty::Console;

pub use pid1::init_main;
pub use stage::{Mark, Stage};

/// Maximum number of tracked created mountpoint components.
pub const MAX_CREATED: usize = 512;

/// Written by the children, read by the parent after `waitpid`. Lives in a `MAP_SHARED` page, so
/// every field is an atomic (all-zero bytes are its initial state).
#[derive(Debug)]
#[repr(C)]
pub struct Shared {
    /// Setup failure: [`Stage`] number (0 = none), errno, op index.
    pub stage: AtomicI32,
    pub errno: AtomicI32,
    pub index: AtomicI32,
    /// `execve` failure errno (0 = none).
    pub exec_errno: AtomicI32,
    /// 1 = exited with `status`, 2 = killed by signal `status`.
    pub status_kind: AtomicI32,
    pub status: AtomicI32,
    /// `created[i] == 1`: tracked component `i` did not exist and was created.
    pub created: [AtomicU8; MAX_CREATED],
    /// CLOCK_MONOTONIC nanoseconds at the children's milestones ([`Mark`]), for `HOIST_RUNTIME_TRACE`.
    pub marks: [AtomicU64; Mark::ALL.len()],
}

impl Shared {
    /// What the children reported, once they are gone.
    pub fn created(&self) -> [u8; MAX_CREATED] {
        std::array::from_fn(|i| self.created[i].load(Ordering::SeqCst))
    }
}

/// Records milestone `m` (a vDSO clock read: no allocation, no lock).
fn mark(plan: &Plan, m: Mark) {
    plan.shared.marks[m as usize].store(now_ns(), Ordering::Relaxed);
}

/// CLOCK_MONOTONIC in nanoseconds. The parent reads it before the clone, so rustix's vDSO lookup is
/// done by then and the children only call through it.
pub fn now_ns() -> u64 {
    let ts = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Records a failure of `stage` (at op or fd `index`, with `errno`) and exits with `code`.
fn fail(plan: &Plan, stage: Stage, index: usize, errno: i32, code: i32) -> ! {
    let s = plan.shared;
    s.errno.store(errno, Ordering::SeqCst);
    s.index.store(index as i32, Ordering::SeqCst);
    s.stage.store(stage as i32, Ordering::SeqCst);
    exit(code)
}

/// Unwraps a system call's result, or reports `stage` failed and exits 125.
trait OrFail<T> {
    fn or_fail(self, plan: &Plan, stage: Stage, index: usize) -> T;
}

impl<T> OrFail<T> for rustix::io::Result<T> {
    fn or_fail(self, plan: &Plan, stage: Stage, index: usize) -> T {
        match self {
            Ok(v) => v,
            Err(e) => fail(plan, stage, index, e.raw_os_error(), 125),
        }
    }
}

/// `_exit(code)`: no atexit handlers, no stdio flush (they would take the parent's locks).
fn exit(code: i32) -> ! {
    // SAFETY: `_exit` takes no pointers and is async-signal-safe; it ends this process at once.
    unsafe { libc::_exit(code) }
}

/// The errno glibc's wrappers left (for the few calls rustix has no wrapper for).
fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// Closes every descriptor but `keep` (sorted; negative entries ignored). The caller must use
/// none of the others afterwards: the plan's descriptors are all in `plan.keep_fds`, and PID 1,
/// which keeps only the lock once the command is forked, touches none of them again.
fn close_except(keep: &[c_int]) {
    let close_range = |first: u32, last: u32| {
        // SAFETY: close_range takes no pointers. The descriptors it closes are copies this child
        // inherited; the objects that own them live in the parent (their copies here are never
        // dropped: the child ends in `_exit`), and the child uses none of them (see above).
        unsafe { libc::syscall(libc::SYS_close_range, first, last, 0) };
    };
    let mut next: u32 = 0;
    for &k in keep {
        if k < 0 || (k as u32) < next {
            continue;
        }
        if k as u32 > next {
            close_range(next, k as u32 - 1);
        }
        next = k as u32 + 1;
    }
    close_range(next, u32::MAX);
}

/// One path component to make exist (relative to the new root, resolved inside it).
#[derive(Debug, Clone)]
pub struct Component {
    /// Path up to and including this component ("etc/hosts").
    pub path: CString,
    /// Path of the parent ("etc", or "." at the top).
    pub parent: CString,
    /// This component's name ("hosts").
    pub name: CString,
    /// Create a regular file (else a directory).
    pub file: bool,
    /// Index into `Shared::created`, if tracked.
    pub track: Option<usize>,
}

/// One rootfs preparation step, run before `pivot_root`. Targets are relative to the new root and are
/// resolved inside it (`RESOLVE_IN_ROOT`), so symlinks in the image cannot point mounts at the host.
#[derive(Debug, Clone)]
pub enum Op {
    /// Make each component exist. With `soft`, an existing non-directory or dangling symlink skips the rest
    /// of the path silently (used for /etc files) and sets `skip_next`.
    Ensure { comps: Vec<Component>, soft: bool },
    /// mount(2) onto `target`. `src: None` = the target itself (bind onto itself). `optional`: a
    /// missing target is skipped (also skips when the previous Ensure was skipped).
    Mount {
        src: Option<CString>,
        target: CString,
        fstype: Option<CString>,
        flags: c_ulong,
        data: Option<CString>,
        optional: bool,
    },
    /// Hide `target`: /dev/null over a file, a read-only empty tmpfs over a directory (if it exists).
    Mask { target: CString },
    /// mount_setattr(2) with `AT_RECURSIVE`: `set` (`MOUNT_ATTR_*`) added to the mount at `target` and
    /// to every mount below it (a remount only reaches the top one). It only adds restrictions, which
    /// a user namespace may do even on mounts it inherited.
    SetAttr { target: CString, set: u64 },
    /// mknodat(dir, name) for a character device.
    Mknod {
        dir: CString,
        name: CString,
        mode: u32,
        dev: u64,
    },
    /// symlinkat(target, dir, name).
    Symlink {
        dir: CString,
        name: CString,
        target: CString,
    },
}

/// The overlay mount, done with the working directory set to `cwd` (short relative layer paths).
/// `data` asks for a `volatile` mount (no sync of the upper's whole filesystem when the mount dies
/// with the sandbox); `fallback` is the same without it, for kernels before 5.10.
#[derive(Debug)]
pub struct OverlayMount {
    pub cwd: CString,
    pub data: CString,
    pub fallback: CString,
}

/// Everything the children need, prepared by the parent.
#[derive(Debug)]
pub struct Plan<'a> {
    /// The page the children report through (the parent's, shared: it outlives the children).
    pub shared: &'a Shared,
    /// Where the root filesystem is mounted (absolute host path).
    pub root: CString,
    /// `Some`: mount an overlay at `root`; `None`: bind `root` onto itself.
    pub overlay: Option<&'a OverlayMount>,
    /// Flags of the overlay root mount: `MS_NODEV` unless privileged, so device nodes made in the
    /// container (CAP_MKNOD is a default capability) cannot be opened, as Docker's device cgroup
    /// allows `mknod` but not access.
    pub root_flags: libc::c_ulong,
    /// A directory root is bound with its submounts (`MS_REC`): set when they can be made `nodev`
    /// too (or need not be), else only the directory's own mount is bound.
    pub root_recursive: bool,
    pub ops: Vec<Op>,
    pub hostname: CString,
    /// Enter a new cgroup namespace once in the cgroup (rooted there).
    pub cgroupns: bool,
    pub lo_up: bool,
    /// Open `cgroup.procs` (or `tasks`) files to write "0" into.
    pub cgroup_fds: Vec<BorrowedFd<'a>>,
    /// The descriptors the children need, sorted: every other one inherited from hoist (its caller's,
    /// a concurrent run's) is closed first thing.
    pub keep_fds: Vec<c_int>,
    /// Kept by PID 1 for the sandbox's life (the scratch directory's lock; -1: none).
    pub lock_fd: c_int,
    /// A tiny init is PID 1, reaping zombies and forwarding signals to the command, its child
    /// (`docker run --init`, RUN steps); else the command itself is PID 1 (`docker run`).
    pub init: bool,
    /// A pidfd of hoist. A command that is PID 1 loses its parent-death signal when it changes
    /// credentials: it re-arms it, then checks on this that hoist did not die meanwhile.
    pub hoist_pidfd: Option<BorrowedFd<'a>>,
    pub cmd: Command<'a>,
}

/// The command: identity, limits, stdio and what to exec.
#[derive(Debug)]
pub struct Command<'a> {
    /// Candidates tried in order (PATH lookup done ahead).
    pub candidates: Vec<CString>,
    pub argv: Vec<*const c_char>,
    pub envp: Vec<*const c_char>,
    pub cwd: CString,
    pub uid: Uid,
    pub gid: Gid,
    pub groups: Vec<Gid>,
    /// `setgroups` is denied here (rootless with a single mapping): its EPERM is tolerated.
    pub setgroups_denied: bool,
    pub caps: CapSet,
    pub rlimits: Vec<(u32, libc::rlimit)>,
    /// stdin, stdout, stderr (`None` with a console).
    pub stdio: Option<[BorrowedFd<'a>; 3]>,
    /// `-t`: the pty is opened inside and becomes stdio and the controlling terminal.
    pub console: Option<Console<'a>>,
    /// Seccomp filters, installed in order (empty: none).
    pub seccomp: Vec<Cow<'static, [libc::sock_filter]>>,
    /// Set no_new_privs (then seccomp is installed last; without it, before the user changes, while
    /// CAP_SYS_ADMIN still allows it, as runc does).
    pub no_new_privs: bool,
}
