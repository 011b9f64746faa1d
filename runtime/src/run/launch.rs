//! Launching a prepared run: its stdio (or the `-t` console), the children's [`Plan`], the raw
//! `clone` into new namespaces, and, while the sandbox runs, the pty pumps and the wait for its
//! PID 1. Returns PID 1's wait status; what the children reported is on the [`Shared`] page.

use std::ffi::CString;
use std::fs;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::raw::c_char;

use rustix::process::{Gid, Pid, Uid, WaitOptions, WaitStatus};

use super::host::Host;
use super::prepare::Prepared;
use crate::cgroups::Cgroup;
use crate::error::{Error, Result};
use crate::init::{self, Command, Plan, Shared};
use crate::mounts::cstr;
use crate::spec::{Network, Pid1, Spec, Stdio};
use crate::tty;

/// The page the children report through: anonymous, shared with them across the clone.
pub(crate) struct SharedPage(std::ptr::NonNull<Shared>);

impl SharedPage {
    pub fn new() -> io::Result<SharedPage> {
        // SAFETY: a fresh anonymous mapping (no address hint, no descriptor): it aliases nothing.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                std::mem::size_of::<Shared>(),
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        std::ptr::NonNull::new(p.cast())
            .map(SharedPage)
            .ok_or_else(|| io::Error::other("mmap returned NULL"))
    }

    pub fn get(&self) -> &Shared {
        // SAFETY: the mapping is page-aligned, readable and writable, at least
        // `size_of::<Shared>()` long and zero-filled, which is a valid `Shared` (atomics only); it
        // lives until `self` is dropped, and is only ever accessed through atomics.
        unsafe { self.0.as_ref() }
    }
}

impl Drop for SharedPage {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping `new` made; no reference from `get` outlives `self`.
        unsafe { libc::munmap(self.0.as_ptr().cast(), std::mem::size_of::<Shared>()) };
    }
}

fn setup_err(step: &str) -> impl FnOnce(io::Error) -> Error + '_ {
    move |e| Error::setup(step, e)
}

fn null_terminated(strings: &[CString]) -> Vec<*const c_char> {
    strings
        .iter()
        .map(|s| s.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect()
}

/// The command's stdio: the three descriptors, or (`-t`) the caller's input and output for the pty.
enum Streams {
    Plain([OwnedFd; 3]),
    Tty { input: OwnedFd, output: OwnedFd },
}

fn streams(stdio: Stdio, tty: bool) -> Result<Streams> {
    let null = || -> Result<OwnedFd> {
        Ok(fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/null")
            .map_err(setup_err("opening /dev/null"))?
            .into())
    };
    let dup = |fd: BorrowedFd| -> Result<OwnedFd> {
        Ok(tty::dup_file(fd)
            .map_err(setup_err("duplicating stdio"))?
            .into())
    };
    let [input, output, error] = match stdio {
        Stdio::Inherit => [
            dup(io::stdin().as_fd())?,
            dup(io::stdout().as_fd())?,
            dup(io::stderr().as_fd())?,
        ],
        Stdio::Null => [null()?, null()?, null()?],
        Stdio::Fds {
            stdin,
            stdout,
            stderr,
        } => [
            match stdin {
                Some(f) => f,
                None => null()?,
            },
            stdout,
            stderr,
        ],
    };
    Ok(if tty {
        Streams::Tty { input, output }
    } else {
        Streams::Plain([input, output, error])
    })
}

/// Starts the prepared sandbox and waits for its PID 1; `started` gets its host PID. Returns the
/// wait status and the clone's and the reaping's times (for the trace).
#[allow(clippy::too_many_arguments)]
pub(crate) fn launch(
    spec: &Spec,
    host: &Host,
    prepared: &mut Prepared,
    cgroup: &mut Option<Cgroup>,
    lock_fd: i32,
    stdio: Stdio,
    shared: &Shared,
    started: impl FnOnce(u32),
) -> Result<(WaitStatus, u64, u64)> {
    let p = &spec.process;
    let streams = streams(stdio, p.tty)?;
    // `-t`: the pty is opened inside (its devpts), its master sent back over this socket pair.
    let console_pair = match &streams {
        Streams::Tty { input, output } => {
            let (ours, theirs) =
                tty::socket_pair().map_err(setup_err("creating the console socket"))?;
            let size = tty::window_size(input).or_else(|| tty::window_size(output));
            Some((ours, theirs, size))
        }
        Streams::Plain(_) => None,
    };
    let argv: Vec<CString> = p.args.iter().map(|a| cstr(a)).collect::<Result<_>>()?;
    let envp: Vec<CString> = prepared
        .env
        .iter()
        .map(|e| cstr(e))
        .collect::<Result<_>>()?;
    let candidates: Vec<CString> = prepared
        .candidates
        .iter()
        .map(|c| cstr(c))
        .collect::<Result<_>>()?;
    let hoist_pidfd = (spec.pid1 == Pid1::Command)
        .then(|| {
            rustix::process::pidfd_open(
                rustix::process::getpid(),
                rustix::process::PidfdFlags::empty(),
            )
            .ok()
        })
        .flatten();
    let cgroup_fds: Vec<BorrowedFd> = cgroup
        .as_ref()
        .map(|c| c.procs.iter().map(|f| f.as_fd()).collect())
        .unwrap_or_default();
    // Everything else the clone inherits (the caller's descriptors, a concurrent run's) is closed.
    let mut keep_fds: Vec<i32> = cgroup_fds.iter().map(|f| f.as_raw_fd()).collect();
    keep_fds.extend(hoist_pidfd.iter().map(|f| f.as_raw_fd()));
    keep_fds.push(lock_fd);
    match (&streams, &console_pair) {
        (Streams::Plain(fds), _) => keep_fds.extend(fds.iter().map(|f| f.as_raw_fd())),
        (Streams::Tty { .. }, Some((_, theirs, _))) => keep_fds.push(theirs.as_raw_fd()),
        (Streams::Tty { .. }, None) => {}
    }
    keep_fds.sort_unstable();
    keep_fds.dedup();

    let user = &prepared.user;
    let plan = Plan {
        shared,
        root: cstr(&host.root.to_string_lossy())?,
        overlay: host.overlay.as_ref(),
        root_flags: prepared.root_flags,
        root_recursive: prepared.root_recursive,
        ops: std::mem::take(&mut prepared.ops),
        hostname: cstr(&prepared.hostname)?,
        cgroupns: host.cgroupns,
        lo_up: spec.network == Network::None,
        cgroup_fds,
        keep_fds,
        lock_fd,
        init: spec.pid1 == Pid1::Init,
        hoist_pidfd: hoist_pidfd.as_ref().map(|f| f.as_fd()),
        cmd: Command {
            candidates,
            argv: null_terminated(&argv),
            envp: null_terminated(&envp),
            cwd: cstr(&prepared.cwd)?,
            uid: Uid::from_raw(user.uid),
            gid: Gid::from_raw(user.gid),
            groups: user.groups.iter().map(|&g| Gid::from_raw(g)).collect(),
            setgroups_denied: host.setgroups_denied,
            caps: prepared.caps,
            rlimits: p
                .rlimits
                .iter()
                .map(|r| {
                    (
                        r.resource,
                        libc::rlimit {
                            rlim_cur: r.soft,
                            rlim_max: r.hard,
                        },
                    )
                })
                .collect(),
            stdio: match &streams {
                Streams::Plain(fds) => Some([fds[0].as_fd(), fds[1].as_fd(), fds[2].as_fd()]),
                Streams::Tty { .. } => None,
            },
            console: console_pair.as_ref().map(|(_, theirs, size)| tty::Console {
                sock: theirs.as_fd(),
                size: *size,
            }),
            seccomp: std::mem::take(&mut prepared.filters.programs),
            no_new_privs: spec.security.no_new_privileges,
        },
    };

    let mut flags =
        libc::CLONE_NEWNS | libc::CLONE_NEWPID | libc::CLONE_NEWUTS | libc::CLONE_NEWIPC;
    if spec.network == Network::None {
        flags |= libc::CLONE_NEWNET;
    }
    let raw_mode = match &streams {
        Streams::Tty { input, .. } => tty::RawMode::enter(input),
        Streams::Plain(_) => None,
    };

    let t_clone = init::now_ns();
    // SAFETY: a fork-like clone (no CLONE_VM, no new stack) into new namespaces. The child gets a
    // copy of this address space, in which `plan` and everything it points to stay valid, and
    // only runs `init_main`, which makes raw system calls on that copy and never returns.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone,
            (flags | libc::SIGCHLD) as libc::c_ulong,
            0usize,
            0usize,
            0usize,
            0usize,
        )
    } as libc::pid_t;
    if pid == 0 {
        // SAFETY: this is the child of the clone just above, `plan` fully built.
        unsafe { init::init_main(&plan) }
    }
    let clone_err = io::Error::last_os_error();
    // The parent's copies of the children's descriptors close now.
    drop(plan);
    drop(hoist_pidfd);
    let (console_sock, pty) = match (streams, console_pair) {
        (Streams::Tty { input, output }, Some((ours, theirs, _))) => {
            drop(theirs);
            (Some(ours), Some((input, output)))
        }
        _ => (None, None),
    };
    if let Some(c) = cgroup.as_mut() {
        c.procs.clear();
    }
    let pid = match Pid::from_raw(pid) {
        Some(pid) if pid.as_raw_nonzero().get() > 0 => pid,
        _ => return Err(Error::setup("clone", clone_err)),
    };
    started(pid.as_raw_nonzero().get() as u32);
    // No master: the child failed before opening the pty (its error is on the shared page).
    let master = match &console_sock {
        Some(sock) => tty::recv_fd(sock).map_err(setup_err("receiving the pty"))?,
        None => None,
    };
    let mut follow = None;
    let pumps = match (pty, master) {
        (Some((input, output)), Some(master)) => {
            let master = fs::File::from(master);
            follow = tty::Follow::start(&input, &output, &master);
            // The input side is left running: it ends with the caller's stdin.
            if let Ok(to_pty) = master.try_clone() {
                tty::pump(fs::File::from(input), to_pty);
            }
            Some(tty::pump(master, fs::File::from(output)))
        }
        _ => None,
    };
    let status = loop {
        match rustix::process::waitpid(Some(pid), WaitOptions::empty()) {
            Ok(Some((_, status))) => break status,
            Ok(None) | Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(Error::setup("waitpid", e.into())),
        }
    };
    let t_reaped = init::now_ns();
    drop(follow);
    if let Some(pump) = pumps {
        let _ = pump.join();
    }
    drop(raw_mode);
    Ok((status, t_clone, t_reaped))
}
