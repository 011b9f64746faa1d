//! PID 1 of the sandbox: joins the cgroup, mounts the root filesystem, runs the mount plan,
//! `pivot_root`s, names the host, brings up `lo`; then either becomes the command or forks it and
//! reaps zombies, forwarding signals to it, until it exits.

use std::ffi::CString;
use std::os::raw::{c_char, c_int, c_ulong};
use std::ptr;
use std::sync::atomic::Ordering;

use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;
use rustix::mount::{MountFlags, UnmountFlags};
use rustix::process::{DumpableBehavior, Signal, WaitOptions};

use super::{Mark, OrFail, Plan, Stage, close_except, command, errno, exit, fail, mark, ops};

/// The first code run in the clone child (PID 1 of the new PID namespace). Never returns.
///
/// # Safety
/// Must only be called in the child right after `clone` (it exits, never returns to the caller's
/// stack, and assumes no other thread shares its signal mask); `plan` must be fully built, with
/// its descriptors open.
pub unsafe fn init_main(plan: &Plan) -> ! {
    mark(plan, Mark::InitStarted);
    // Best effort, as before: neither can fail with valid arguments.
    let _ = rustix::process::set_parent_process_death_signal(Some(Signal::KILL));
    // Not dumpable: container processes cannot open /proc/1/exe or /proc/1/mem (CVE-2019-5736).
    let _ = rustix::process::set_dumpable_behavior(DumpableBehavior::NotDumpable);
    let _ = rustix::thread::set_name(c"hoist-init");
    close_except(&plan.keep_fds);

    for fd in &plan.cgroup_fds {
        if rustix::io::write(fd, b"0").or_fail(plan, Stage::Cgroup, 0) != 1 {
            fail(plan, Stage::Cgroup, 0, errno(), 125);
        }
    }
    if plan.cgroupns {
        // SAFETY: CLONE_NEWCGROUP only changes this process's cgroup namespace; no descriptor
        // table is unshared, so no descriptor anyone holds becomes invalid.
        unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWCGROUP) }.or_fail(
            plan,
            Stage::Cgroup,
            1,
        );
    }
    rustix::mount::mount_change(
        c"/",
        rustix::mount::MountPropagationFlags::REC | rustix::mount::MountPropagationFlags::PRIVATE,
    )
    .or_fail(plan, Stage::Private, 0);
    mount_root(plan);
    mark(plan, Mark::RootfsMounted);
    let root = rustix::fs::open(
        plan.root.as_c_str(),
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .or_fail(plan, Stage::OpenRoot, 0);
    ops::run(plan, &root);
    drop(root);
    mark(plan, Mark::MountsDone);

    let pivot = rustix::process::chdir(plan.root.as_c_str())
        .and_then(|()| rustix::process::pivot_root(c".", c"."))
        .and_then(|()| rustix::mount::unmount(c".", UnmountFlags::DETACH))
        .and_then(|()| rustix::process::chdir(c"/"));
    pivot.or_fail(plan, Stage::PivotRoot, 0);
    rustix::system::sethostname(plan.hostname.as_bytes()).or_fail(plan, Stage::Hostname, 0);
    if plan.lo_up {
        bring_up_lo(plan);
    }

    mark(plan, Mark::PivotRootDone);
    if !plan.init {
        // SAFETY: this is the clone child (our caller's contract), which `command_main` needs.
        unsafe { command::command_main(plan) }
    }
    reap_and_forward(plan)
}

/// Mounts the root filesystem at `plan.root`: the overlay, or the directory bound onto itself.
fn mount_root(plan: &Plan) {
    match &plan.overlay {
        Some(ov) => {
            rustix::process::chdir(ov.cwd.as_c_str()).or_fail(plan, Stage::Rootfs, 0);
            let overlay = |data: &CString| {
                rustix::mount::mount(
                    c"overlay",
                    plan.root.as_c_str(),
                    c"overlay",
                    MountFlags::from_bits_retain(plan.root_flags as _),
                    Some(data.as_c_str()),
                )
            };
            match overlay(&ov.data) {
                Ok(()) => {}
                // Kernels before 5.10 have no `volatile`.
                Err(Errno::INVAL) => overlay(&ov.fallback).or_fail(plan, Stage::Rootfs, 0),
                Err(e) => fail(plan, Stage::Rootfs, 0, e.raw_os_error(), 125),
            }
        }
        None => {
            let bind = if plan.root_recursive {
                rustix::mount::mount_bind_recursive
            } else {
                rustix::mount::mount_bind
            };
            bind(plan.root.as_c_str(), plan.root.as_c_str()).or_fail(plan, Stage::Rootfs, 0);
        }
    }
}

/// Forks the command, then reaps every child and forwards every signal to the command until it
/// exits; records how it ended and exits.
fn reap_and_forward(plan: &Plan) -> ! {
    // SAFETY: `sigset_t` is plain data, all-zero a valid (empty) set; `sigfillset` fills it in
    // place; `signal` and `sigprocmask` take valid arguments and are async-signal-safe. Blocking
    // everything is what makes `sigwaitinfo` below see every signal.
    let all = unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::signal(libc::SIGCHLD, libc::SIG_DFL);
        libc::sigprocmask(libc::SIG_SETMASK, &all, ptr::null_mut());
        all
    };
    // SAFETY: a plain fork (no CLONE_VM, no new stack): the child gets a copy of this
    // single-threaded process and only runs `command_main`, which never returns.
    let pid =
        unsafe { libc::syscall(libc::SYS_clone, libc::SIGCHLD as c_ulong, 0, 0, 0, 0) } as c_int;
    if pid < 0 {
        fail(plan, Stage::Fork, 0, errno(), 125);
    }
    if pid == 0 {
        // SAFETY: this is the child of the clone just above.
        unsafe { command::command_main(plan) }
    }
    // PID 1 keeps none of the command's descriptors.
    close_except(&[plan.lock_fd]);
    loop {
        // SAFETY: `siginfo_t` is plain data (all-zero valid); `all` is a valid set and `info` a
        // valid place for the kernel to write.
        let sig = unsafe {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            libc::sigwaitinfo(&all, &mut info)
        };
        if sig == libc::SIGCHLD {
            while let Ok(Some((reaped, status))) = rustix::process::wait(WaitOptions::NOHANG) {
                if reaped.as_raw_nonzero().get() == pid {
                    let s = plan.shared;
                    if let Some(signal) = status.terminating_signal() {
                        s.status.store(signal, Ordering::SeqCst);
                        s.status_kind.store(2, Ordering::SeqCst);
                    } else {
                        s.status
                            .store(status.exit_status().unwrap_or(0), Ordering::SeqCst);
                        s.status_kind.store(1, Ordering::SeqCst);
                    }
                    exit(0);
                }
            }
        } else if sig > 0 {
            // SAFETY: kill takes no pointers (any signal number, real-time ones too, which
            // rustix's `Signal` cannot name safely).
            unsafe { libc::kill(pid, sig) };
        }
    }
}

/// Sets `lo` up (a fresh network namespace has it down).
fn bring_up_lo(plan: &Plan) {
    let sock = rustix::net::socket_with(
        rustix::net::AddressFamily::INET,
        rustix::net::SocketType::DGRAM,
        rustix::net::SocketFlags::CLOEXEC,
        None,
    )
    .or_fail(plan, Stage::Loopback, 0);
    let fd = std::os::fd::AsRawFd::as_raw_fd(&sock);
    // SAFETY: `ifreq` is plain data (all-zero valid) holding the NUL-terminated name "lo"; both
    // ioctls read or write exactly one `ifreq`, which lives across the calls; `fd` is open.
    let ok = unsafe {
        let mut req: libc::ifreq = std::mem::zeroed();
        req.ifr_name[0] = b'l' as c_char;
        req.ifr_name[1] = b'o' as c_char;
        libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut req) == 0 && {
            req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as i16;
            libc::ioctl(fd, libc::SIOCSIFFLAGS, &req) == 0
        }
    };
    if !ok {
        fail(plan, Stage::Loopback, 0, errno(), 125);
    }
}
