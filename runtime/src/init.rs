//! The sandbox's PID 1 and the command's last steps before `execve`.
//!
//! Everything here runs in a child created by a raw `clone` of a possibly multi-threaded process, so it
//! must not allocate, lock or panic: it only reads the pre-built [`Plan`] and makes system calls. Errors
//! are written to the [`Shared`] page (a `MAP_SHARED` mapping the parent reads after the child exits).

use std::borrow::Cow;
use std::ffi::{CStr, CString};
use std::os::raw::{c_char, c_int, c_ulong};
use std::ptr;

use crate::capabilities::CapSet;
use crate::tty::Console;

/// Steps whose failure is reported back (index into [`STAGES`]).
pub const STAGES: &[&str] = &[
    "none",
    "joining the cgroup",
    "making mounts private",
    "mounting the root filesystem",
    "opening the root filesystem",
    "creating a mountpoint",
    "mounting",
    "creating a device node",
    "creating a symlink",
    "pivot_root",
    "setting the host name",
    "bringing up the loopback interface",
    "forking the command",
    "setting up stdio",
    "setting rlimits",
    "setting groups",
    "setting the user",
    "dropping capabilities",
    "setting no_new_privs",
    "installing the seccomp filter",
    "changing to the working directory",
];
const ST_CGROUP: i32 = 1;
const ST_PRIVATE: i32 = 2;
const ST_ROOTFS: i32 = 3;
const ST_OPEN_ROOT: i32 = 4;
const ST_ENSURE: i32 = 5;
const ST_MOUNT: i32 = 6;
const ST_MKNOD: i32 = 7;
const ST_SYMLINK: i32 = 8;
const ST_PIVOT: i32 = 9;
const ST_HOSTNAME: i32 = 10;
const ST_LO: i32 = 11;
const ST_FORK: i32 = 12;
const ST_STDIO: i32 = 13;
const ST_RLIMIT: i32 = 14;
const ST_GROUPS: i32 = 15;
const ST_USER: i32 = 16;
const ST_CAPS: i32 = 17;
const ST_NNP: i32 = 18;
const ST_SECCOMP: i32 = 19;
const ST_CWD: i32 = 20;

/// Maximum number of tracked created mountpoint components.
pub const MAX_CREATED: usize = 512;

/// Written by the children, read by the parent after `waitpid`.
#[repr(C)]
pub struct Shared {
    /// Setup failure: stage (0 = none), errno, op index.
    pub stage: i32,
    pub errno: i32,
    pub index: i32,
    /// `execve` failure errno (0 = none).
    pub exec_errno: i32,
    /// 1 = exited with `status`, 2 = killed by signal `status`.
    pub status_kind: i32,
    pub status: i32,
    /// `created[i] == 1`: tracked component `i` did not exist and was created.
    pub created: [u8; MAX_CREATED],
    /// CLOCK_MONOTONIC nanoseconds at the children's milestones ([`MARKS`]), for `HOIST_RUNTIME_TRACE`.
    pub marks: [u64; 6],
}

/// Names of the children's milestones in [`Shared::marks`].
pub const MARKS: [&str; 6] = [
    "init started",
    "rootfs mounted",
    "mounts done",
    "pivot_root done",
    "command forked",
    "exec",
];

/// Records milestone `i` (a vDSO clock read: no allocation, no lock).
fn mark(plan: &Plan, i: usize) {
    unsafe { ptr::write_volatile(&mut (*plan.shared).marks[i], now_ns()) }
}

/// CLOCK_MONOTONIC in nanoseconds.
pub fn now_ns() -> u64 {
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// One path component to make exist (relative to the new root, resolved inside it).
#[derive(Debug)]
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
#[derive(Debug)]
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
pub struct Plan {
    pub shared: *mut Shared,
    /// Where the root filesystem is mounted (absolute host path).
    pub root: CString,
    /// `Some`: mount an overlay at `root`; `None`: bind `root` onto itself.
    pub overlay: Option<OverlayMount>,
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
    pub cgroup_fds: Vec<c_int>,
    /// The descriptors the children need, sorted: every other one inherited from hoist (its caller's,
    /// a concurrent run's) is closed first thing.
    pub keep_fds: Vec<c_int>,
    /// Kept by PID 1 for the sandbox's life (the scratch directory's lock; -1: none).
    pub lock_fd: c_int,
    /// A tiny init is PID 1, reaping zombies and forwarding signals to the command, its child
    /// (`docker run --init`, RUN steps); else the command itself is PID 1 (`docker run`).
    pub init: bool,
    /// A pidfd of hoist (-1: none). A command that is PID 1 loses its parent-death signal when it
    /// changes credentials: it re-arms it, then checks on this that hoist did not die meanwhile.
    pub hoist_pidfd: c_int,
    pub cmd: Command,
}

/// The command: identity, limits, stdio and what to exec.
#[derive(Debug)]
pub struct Command {
    /// Candidates tried in order (PATH lookup done ahead).
    pub candidates: Vec<CString>,
    pub argv: Vec<*const c_char>,
    pub envp: Vec<*const c_char>,
    pub cwd: CString,
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
    /// `setgroups` is denied here (rootless with a single mapping): its EPERM is tolerated.
    pub setgroups_denied: bool,
    pub caps: CapSet,
    pub rlimits: Vec<(u32, libc::rlimit)>,
    /// stdin, stdout, stderr (ignored with a console).
    pub stdio: [c_int; 3],
    /// `-t`: the pty is opened inside and becomes stdio and the controlling terminal.
    pub console: Option<Console>,
    /// Seccomp filters, installed in order (empty: none).
    pub seccomp: Vec<Cow<'static, [libc::sock_filter]>>,
    /// Set no_new_privs (then seccomp is installed last; without it, before the user changes, while
    /// CAP_SYS_ADMIN still allows it, as runc does).
    pub no_new_privs: bool,
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

unsafe fn fail(plan: &Plan, stage: i32, index: usize, code: i32) -> ! {
    let e = errno();
    unsafe {
        let s = plan.shared;
        ptr::write_volatile(&mut (*s).errno, e);
        ptr::write_volatile(&mut (*s).index, index as i32);
        ptr::write_volatile(&mut (*s).stage, stage);
        libc::_exit(code)
    }
}

/// Closes every descriptor but `keep` (sorted; negative entries ignored).
unsafe fn close_except(keep: &[c_int]) {
    let mut next: u32 = 0;
    for &k in keep {
        if k < 0 || (k as u32) < next {
            continue;
        }
        if k as u32 > next {
            unsafe { libc::syscall(libc::SYS_close_range, next, k as u32 - 1, 0) };
        }
        next = k as u32 + 1;
    }
    unsafe { libc::syscall(libc::SYS_close_range, next, u32::MAX, 0) };
}

/// "/proc/self/fd/N" in a stack buffer.
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

    fn ptr(&self) -> *const c_char {
        self.0.as_ptr().cast()
    }
}

/// openat2(root, path, O_PATH, RESOLVE_IN_ROOT): resolves `path` as if `root` were `/`.
unsafe fn open_in_root(root: c_int, path: &CStr, extra: u64) -> c_int {
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (libc::O_PATH | libc::O_CLOEXEC) as u64 | extra;
    how.resolve = libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS;
    unsafe {
        libc::syscall(
            libc::SYS_openat2,
            root,
            path.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        ) as c_int
    }
}

/// The first code run in the clone child (PID 1 of the new PID namespace). Never returns.
///
/// # Safety
/// Must only be called in the child right after `clone`; `plan` must be fully built.
pub unsafe fn init_main(plan: &Plan) -> ! {
    mark(plan, 0);
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
        // Not dumpable: container processes cannot open /proc/1/exe or /proc/1/mem (CVE-2019-5736).
        libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
        libc::prctl(libc::PR_SET_NAME, c"hoist-init".as_ptr(), 0, 0, 0);
        close_except(&plan.keep_fds);

        for &fd in &plan.cgroup_fds {
            if libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                fail(plan, ST_CGROUP, 0, 125);
            }
            libc::close(fd);
        }
        if plan.cgroupns && libc::unshare(libc::CLONE_NEWCGROUP) != 0 {
            fail(plan, ST_CGROUP, 1, 125);
        }
        if libc::mount(
            ptr::null(),
            c"/".as_ptr(),
            ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            ptr::null(),
        ) != 0
        {
            fail(plan, ST_PRIVATE, 0, 125);
        }
        match &plan.overlay {
            Some(ov) => {
                if libc::chdir(ov.cwd.as_ptr()) != 0 {
                    fail(plan, ST_ROOTFS, 0, 125);
                }
                let overlay = |data: &CString| {
                    libc::mount(
                        c"overlay".as_ptr(),
                        plan.root.as_ptr(),
                        c"overlay".as_ptr(),
                        plan.root_flags,
                        data.as_ptr().cast(),
                    )
                };
                if overlay(&ov.data) != 0 && (errno() != libc::EINVAL || overlay(&ov.fallback) != 0)
                {
                    fail(plan, ST_ROOTFS, 0, 125);
                }
            }
            None => {
                let rec = if plan.root_recursive { libc::MS_REC } else { 0 };
                if libc::mount(
                    plan.root.as_ptr(),
                    plan.root.as_ptr(),
                    ptr::null(),
                    libc::MS_BIND | rec,
                    ptr::null(),
                ) != 0
                {
                    fail(plan, ST_ROOTFS, 0, 125);
                }
            }
        }
        mark(plan, 1);
        let root = libc::open(
            plan.root.as_ptr(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
        );
        if root < 0 {
            fail(plan, ST_OPEN_ROOT, 0, 125);
        }
        run_ops(plan, root);
        libc::close(root);
        mark(plan, 2);

        if libc::chdir(plan.root.as_ptr()) != 0
            || libc::syscall(libc::SYS_pivot_root, c".".as_ptr(), c".".as_ptr()) != 0
            || libc::umount2(c".".as_ptr(), libc::MNT_DETACH) != 0
            || libc::chdir(c"/".as_ptr()) != 0
        {
            fail(plan, ST_PIVOT, 0, 125);
        }
        let host = plan.hostname.as_bytes();
        if libc::sethostname(host.as_ptr().cast(), host.len()) != 0 {
            fail(plan, ST_HOSTNAME, 0, 125);
        }
        if plan.lo_up {
            bring_up_lo(plan);
        }

        mark(plan, 3);
        if !plan.init {
            command_main(plan);
        }
        // Reap and forward: block everything, take signals synchronously.
        let mut all: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::signal(libc::SIGCHLD, libc::SIG_DFL);
        libc::sigprocmask(libc::SIG_SETMASK, &all, ptr::null_mut());

        let pid = libc::syscall(libc::SYS_clone, libc::SIGCHLD as c_ulong, 0, 0, 0, 0) as c_int;
        if pid < 0 {
            fail(plan, ST_FORK, 0, 125);
        }
        if pid == 0 {
            command_main(plan);
        }
        // PID 1 keeps none of the command's descriptors.
        close_except(&[plan.lock_fd]);
        loop {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            let sig = libc::sigwaitinfo(&all, &mut info);
            if sig == libc::SIGCHLD {
                loop {
                    let mut status = 0;
                    let r = libc::waitpid(-1, &mut status, libc::WNOHANG);
                    if r <= 0 {
                        break;
                    }
                    if r == pid {
                        let s = plan.shared;
                        if libc::WIFSIGNALED(status) {
                            ptr::write_volatile(&mut (*s).status, libc::WTERMSIG(status));
                            ptr::write_volatile(&mut (*s).status_kind, 2);
                        } else {
                            ptr::write_volatile(&mut (*s).status, libc::WEXITSTATUS(status));
                            ptr::write_volatile(&mut (*s).status_kind, 1);
                        }
                        libc::_exit(0);
                    }
                }
            } else if sig > 0 {
                libc::kill(pid, sig);
            }
        }
    }
}

unsafe fn run_ops(plan: &Plan, root: c_int) {
    let mut skipped = false;
    for (i, op) in plan.ops.iter().enumerate() {
        unsafe {
            match op {
                Op::Ensure { comps, soft } => {
                    skipped = false;
                    for c in comps {
                        let fd = open_in_root(root, &c.path, 0);
                        if fd >= 0 {
                            libc::close(fd);
                            continue;
                        }
                        if errno() != libc::ENOENT {
                            fail(plan, ST_ENSURE, i, 125);
                        }
                        let parent = open_in_root(root, &c.parent, libc::O_DIRECTORY as u64);
                        if parent < 0 {
                            if *soft {
                                skipped = true;
                                break;
                            }
                            fail(plan, ST_ENSURE, i, 125);
                        }
                        let r = if c.file {
                            let f = libc::openat(
                                parent,
                                c.name.as_ptr(),
                                libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY | libc::O_CLOEXEC,
                                0o644,
                            );
                            if f >= 0 {
                                libc::close(f);
                            }
                            f
                        } else {
                            libc::mkdirat(parent, c.name.as_ptr(), 0o755)
                        };
                        let e = errno();
                        libc::close(parent);
                        if r < 0 {
                            if *soft && e == libc::EEXIST {
                                skipped = true;
                                break;
                            }
                            fail(plan, ST_ENSURE, i, 125);
                        }
                        if let Some(t) = c.track {
                            ptr::write_volatile(&mut (*plan.shared).created[t], 1);
                        }
                    }
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
                    let fd = open_in_root(root, target, 0);
                    if fd < 0 {
                        if *optional && errno() == libc::ENOENT {
                            continue;
                        }
                        fail(plan, ST_MOUNT, i, 125);
                    }
                    let path = FdPath::new(fd);
                    let src_ptr = match src {
                        Some(s) => s.as_ptr(),
                        None => path.ptr(),
                    };
                    let r = libc::mount(
                        src_ptr,
                        path.ptr(),
                        fstype.as_ref().map_or(ptr::null(), |f| f.as_ptr()),
                        *flags,
                        data.as_ref().map_or(ptr::null(), |d| d.as_ptr().cast()),
                    );
                    if r != 0 {
                        fail(plan, ST_MOUNT, i, 125);
                    }
                    libc::close(fd);
                }
                Op::Mask { target } => {
                    let fd = open_in_root(root, target, 0);
                    if fd < 0 {
                        continue;
                    }
                    let mut st: libc::stat = std::mem::zeroed();
                    let path = FdPath::new(fd);
                    let r = if libc::fstat(fd, &mut st) == 0
                        && st.st_mode & libc::S_IFMT == libc::S_IFDIR
                    {
                        libc::mount(
                            c"tmpfs".as_ptr(),
                            path.ptr(),
                            c"tmpfs".as_ptr(),
                            libc::MS_RDONLY,
                            c"size=0".as_ptr().cast(),
                        )
                    } else {
                        libc::mount(
                            c"/dev/null".as_ptr(),
                            path.ptr(),
                            ptr::null(),
                            libc::MS_BIND,
                            ptr::null(),
                        )
                    };
                    if r != 0 {
                        fail(plan, ST_MOUNT, i, 125);
                    }
                    libc::close(fd);
                }
                Op::SetAttr { target, set } => {
                    let fd = open_in_root(root, target, 0);
                    if fd < 0 {
                        fail(plan, ST_MOUNT, i, 125);
                    }
                    let mut attr: libc::mount_attr = std::mem::zeroed();
                    attr.attr_set = *set;
                    if libc::syscall(
                        libc::SYS_mount_setattr,
                        fd,
                        c"".as_ptr(),
                        libc::AT_EMPTY_PATH | libc::AT_RECURSIVE,
                        &attr as *const libc::mount_attr,
                        std::mem::size_of::<libc::mount_attr>(),
                    ) != 0
                    {
                        fail(plan, ST_MOUNT, i, 125);
                    }
                    libc::close(fd);
                }
                Op::Mknod {
                    dir,
                    name,
                    mode,
                    dev,
                } => {
                    let d = open_in_root(root, dir, libc::O_DIRECTORY as u64);
                    // A mode without a file type is a character device.
                    let kind = if mode & libc::S_IFMT == 0 {
                        libc::S_IFCHR
                    } else {
                        0
                    };
                    if d < 0 || libc::mknodat(d, name.as_ptr(), kind | mode, *dev) != 0 {
                        fail(plan, ST_MKNOD, i, 125);
                    }
                    // mknod honours the umask: set the mode exactly.
                    libc::fchmodat(d, name.as_ptr(), mode & 0o7777, 0);
                    libc::close(d);
                }
                Op::Symlink { dir, name, target } => {
                    let d = open_in_root(root, dir, libc::O_DIRECTORY as u64);
                    if d < 0 || libc::symlinkat(target.as_ptr(), d, name.as_ptr()) != 0 {
                        fail(plan, ST_SYMLINK, i, 125);
                    }
                    libc::close(d);
                }
            }
        }
    }
}

unsafe fn bring_up_lo(plan: &Plan) {
    unsafe {
        let sock = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if sock < 0 {
            fail(plan, ST_LO, 0, 125);
        }
        let mut req: libc::ifreq = std::mem::zeroed();
        req.ifr_name[0] = b'l' as c_char;
        req.ifr_name[1] = b'o' as c_char;
        if libc::ioctl(sock, libc::SIOCGIFFLAGS, &mut req) != 0 {
            fail(plan, ST_LO, 0, 125);
        }
        req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as i16;
        if libc::ioctl(sock, libc::SIOCSIFFLAGS, &req) != 0 {
            fail(plan, ST_LO, 0, 125);
        }
        libc::close(sock);
    }
}

/// The command's process (PID 2): stdio, limits, identity, capabilities, seccomp, then exec.
unsafe fn command_main(plan: &Plan) -> ! {
    let cmd = &plan.cmd;
    mark(plan, 4);
    unsafe {
        // Default dispositions (an ignored SIGPIPE would survive exec), empty mask.
        for sig in 1..libc::SIGRTMAX() {
            if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                libc::signal(sig, libc::SIG_DFL);
            }
        }
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        libc::sigprocmask(libc::SIG_SETMASK, &empty, ptr::null_mut());

        if libc::setsid() < 0 {
            fail(plan, ST_STDIO, 0, 125);
        }
        let mut stdio = cmd.stdio;
        if let Some(console) = &cmd.console {
            let slave = console.open_in_container(cmd.uid);
            if slave < 0 {
                fail(plan, ST_STDIO, 4, 125);
            }
            stdio = [slave; 3];
        }
        // Move the sources out of 0..2 first so the dup2s cannot clobber each other.
        let mut high = [0; 3];
        for (i, &fd) in stdio.iter().enumerate() {
            high[i] = libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 10);
            if high[i] < 0 {
                fail(plan, ST_STDIO, i, 125);
            }
        }
        for (i, &fd) in high.iter().enumerate() {
            if libc::dup2(fd, i as c_int) < 0 {
                fail(plan, ST_STDIO, i, 125);
            }
        }
        if cmd.console.is_some() && libc::ioctl(0, libc::TIOCSCTTY, 0) != 0 {
            fail(plan, ST_STDIO, 3, 125);
        }
        for (i, (res, lim)) in cmd.rlimits.iter().enumerate() {
            if libc::setrlimit(*res as _, lim) != 0 {
                fail(plan, ST_RLIMIT, i, 125);
            }
        }
        if !cmd.no_new_privs {
            install_seccomp(plan);
        }
        if !cmd.caps.drop_bounding() {
            fail(plan, ST_CAPS, 0, 125);
        }
        // Raw syscalls, not glibc's wrappers: after a raw clone glibc still believes the parent's
        // threads exist, and its set*id broadcast to them would wait forever on a futex.
        if libc::syscall(libc::SYS_setgroups, cmd.groups.len(), cmd.groups.as_ptr()) != 0
            && !(cmd.setgroups_denied && errno() == libc::EPERM)
        {
            fail(plan, ST_GROUPS, 0, 125);
        }
        if libc::syscall(libc::SYS_setresgid, cmd.gid, cmd.gid, cmd.gid) != 0 {
            fail(plan, ST_USER, 0, 125);
        }
        if libc::syscall(libc::SYS_setresuid, cmd.uid, cmd.uid, cmd.uid) != 0 {
            fail(plan, ST_USER, 1, 125);
        }
        if !plan.init {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
            let mut hoist = libc::pollfd {
                fd: plan.hoist_pidfd,
                events: libc::POLLIN,
                revents: 0,
            };
            if plan.hoist_pidfd >= 0 && libc::poll(&mut hoist, 1, 0) > 0 {
                libc::_exit(125);
            }
        }
        if cmd.uid == 0 && !cmd.caps.apply() {
            fail(plan, ST_CAPS, 1, 125);
        }
        if libc::chdir(cmd.cwd.as_ptr()) != 0 {
            fail(plan, ST_CWD, 0, 125);
        }
        if cmd.no_new_privs {
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                fail(plan, ST_NNP, 0, 125);
            }
            install_seccomp(plan);
        }
        // Nothing but 0..2 crosses exec.
        libc::syscall(
            libc::SYS_close_range,
            3u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        );
        mark(plan, 5);
        let mut err = libc::ENOENT;
        for c in &cmd.candidates {
            libc::execve(c.as_ptr(), cmd.argv.as_ptr(), cmd.envp.as_ptr());
            match errno() {
                libc::ENOENT | libc::ENOTDIR => {}
                libc::EACCES => err = libc::EACCES,
                e => {
                    err = e;
                    break;
                }
            }
        }
        ptr::write_volatile(&mut (*plan.shared).exec_errno, err);
        libc::_exit(if err == libc::ENOENT { 127 } else { 126 })
    }
}

/// Installs the command's seccomp filters, in order.
unsafe fn install_seccomp(plan: &Plan) {
    for filter in &plan.cmd.seccomp {
        let prog = libc::sock_fprog {
            len: filter.len() as u16,
            filter: filter.as_ptr() as *mut libc::sock_filter,
        };
        if unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                0,
                &prog as *const libc::sock_fprog,
            )
        } != 0
        {
            unsafe { fail(plan, ST_SECCOMP, 0, 125) };
        }
    }
}
