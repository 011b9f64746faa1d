//! The command's process: default signals, stdio (or the pty), rlimits, seccomp, capabilities,
//! groups and user, working directory, no_new_privs, then `execve` along the candidates.

use std::os::fd::OwnedFd;
use std::ptr;
use std::sync::atomic::Ordering;

use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::process::Signal;

use super::{Mark, OrFail, Plan, Stage, errno, exit, fail, mark};

/// The command's process (PID 2, or PID 1 without the init). Never returns.
///
/// # Safety
/// Must only be called in a child of a raw `clone`/fork made for it (it resets the signal
/// dispositions and mask of the whole process, changes its credentials and execs).
pub(super) unsafe fn command_main(plan: &Plan) -> ! {
    let cmd = &plan.cmd;
    mark(plan, Mark::CommandForked);
    reset_signals();
    rustix::process::setsid().or_fail(plan, Stage::Stdio, 0);
    let console_slave;
    let stdio = match (&cmd.console, &cmd.stdio) {
        (Some(console), _) => {
            console_slave = console
                .open_in_container(cmd.uid)
                .or_fail(plan, Stage::Stdio, 4);
            [&console_slave; 3].map(std::os::fd::AsFd::as_fd)
        }
        (None, Some(stdio)) => *stdio,
        (None, None) => fail(plan, Stage::Stdio, 0, libc::EBADF, 125),
    };
    // Move the sources out of 0..2 first so the dup2s cannot clobber each other.
    let high: [OwnedFd; 3] = [0, 1, 2]
        .map(|i| rustix::io::fcntl_dupfd_cloexec(stdio[i], 10).or_fail(plan, Stage::Stdio, i));
    rustix::stdio::dup2_stdin(&high[0]).or_fail(plan, Stage::Stdio, 0);
    rustix::stdio::dup2_stdout(&high[1]).or_fail(plan, Stage::Stdio, 1);
    rustix::stdio::dup2_stderr(&high[2]).or_fail(plan, Stage::Stdio, 2);
    if cmd.console.is_some() {
        // The slave (0..2 are duplicates of it) becomes the controlling terminal.
        rustix::process::ioctl_tiocsctty(&high[0]).or_fail(plan, Stage::Stdio, 3);
    }
    for (i, (res, lim)) in cmd.rlimits.iter().enumerate() {
        // SAFETY: `lim` is a valid `rlimit` for the call; glibc's wrapper is a plain system call
        // (no lock, no allocation).
        if unsafe { libc::setrlimit(*res as _, lim) } != 0 {
            fail(plan, Stage::Rlimit, i, errno(), 125);
        }
    }
    if !cmd.no_new_privs {
        install_seccomp(plan);
    }
    cmd.caps.drop_bounding().or_fail(plan, Stage::Caps, 0);
    // Thread-level system calls (rustix's are raw): after a raw clone glibc still believes the
    // parent's threads exist, and its set*id broadcast to them would wait forever on a futex.
    match rustix::thread::set_thread_groups(&cmd.groups) {
        Err(rustix::io::Errno::PERM) if cmd.setgroups_denied => {}
        r => r.or_fail(plan, Stage::Groups, 0),
    }
    rustix::thread::set_thread_res_gid(cmd.gid, cmd.gid, cmd.gid).or_fail(plan, Stage::User, 0);
    rustix::thread::set_thread_res_uid(cmd.uid, cmd.uid, cmd.uid).or_fail(plan, Stage::User, 1);
    if !plan.init {
        let _ = rustix::process::set_parent_process_death_signal(Some(Signal::KILL));
        if let Some(hoist) = &plan.hoist_pidfd {
            let mut fds = [PollFd::from_borrowed_fd(*hoist, PollFlags::IN)];
            let now = Timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            if rustix::event::poll(&mut fds, Some(&now)).is_ok_and(|n| n > 0) {
                exit(125);
            }
        }
    }
    if cmd.uid.is_root() {
        cmd.caps.apply().or_fail(plan, Stage::Caps, 1);
    }
    rustix::process::chdir(cmd.cwd.as_c_str()).or_fail(plan, Stage::Cwd, 0);
    if cmd.no_new_privs {
        rustix::thread::set_no_new_privs(true).or_fail(plan, Stage::NoNewPrivs, 0);
        install_seccomp(plan);
    }
    // Nothing but 0..2 crosses exec.
    // SAFETY: close_range takes no pointers; it only marks descriptors close-on-exec.
    unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    mark(plan, Mark::Exec);
    let mut err = libc::ENOENT;
    for c in &cmd.candidates {
        // SAFETY: `c` is a valid C string; `argv` and `envp` are NULL-terminated arrays of
        // pointers into the plan's `CString`s, which the parent keeps alive (and which this
        // process's copy of memory holds) until exec replaces the image or the process exits.
        unsafe { libc::execve(c.as_ptr(), cmd.argv.as_ptr(), cmd.envp.as_ptr()) };
        match errno() {
            libc::ENOENT | libc::ENOTDIR => {}
            libc::EACCES => err = libc::EACCES,
            e => {
                err = e;
                break;
            }
        }
    }
    plan.shared.exec_errno.store(err, Ordering::SeqCst);
    exit(if err == libc::ENOENT { 127 } else { 126 })
}

/// Default dispositions for every signal (an ignored SIGPIPE would survive exec), empty mask.
fn reset_signals() {
    for sig in 1..libc::SIGRTMAX() {
        if sig != libc::SIGKILL && sig != libc::SIGSTOP {
            // SAFETY: installs the default disposition (no handler code); async-signal-safe.
            unsafe { libc::signal(sig, libc::SIG_DFL) };
        }
    }
    // SAFETY: `sigset_t` is plain data (all-zero valid), emptied in place and passed by valid
    // pointer; `sigprocmask` is async-signal-safe.
    unsafe {
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        libc::sigprocmask(libc::SIG_SETMASK, &empty, ptr::null_mut());
    }
}

/// Installs the command's seccomp filters, in order (rustix has no `seccomp` wrapper).
fn install_seccomp(plan: &Plan) {
    for filter in &plan.cmd.seccomp {
        let prog = libc::sock_fprog {
            len: filter.len() as u16,
            filter: filter.as_ptr() as *mut libc::sock_filter,
        };
        // SAFETY: `prog` points at `filter`, a live slice of `len` instructions the kernel only
        // reads (and copies) during the call.
        let r = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                0,
                &prog as *const libc::sock_fprog,
            )
        };
        if r != 0 {
            fail(plan, Stage::Seccomp, 0, errno(), 125);
        }
    }
}
