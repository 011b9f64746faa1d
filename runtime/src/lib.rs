//! Sandboxes: Linux namespaces, overlay root filesystems, mounts, cgroups, capabilities, seccomp, and
//! running one process to completion (`hoist run` and every RUN step).
//!
//! Owns: the kernel-facing side of execution, and `docker run`'s semantics on top of it ([`container`]:
//! flag parsing and Docker's errors, ENTRYPOINT/CMD, environment, volumes, security options). Must not
//! touch: Dockerfile syntax, the network beyond network namespaces, or the image store's files except
//! through read-only layer directories: the caller resolves images and hands over their config values
//! and unpacked layers (for `hoist run`, the binary's `src/cmd/run.rs`; for RUN steps, the builder).
//!
//! Entry point: [`run`] (blocking; async callers use `spawn_blocking`). Safe to call from a
//! multi-threaded process: everything is prepared before a raw `clone`, and the child only makes system
//! calls on pre-built data until `execve` (no allocation, no locks). The child gets new mount, PID, UTS,
//! IPC (and network, for [`Network::None`]) namespaces; its PID 1 is a tiny init that reaps zombies and
//! forwards signals to the command ([`Pid1::Init`]), or the command itself ([`Pid1::Command`]). Only the
//! descriptors the run needs cross the clone; with `-t` the pty comes from the sandbox's own devpts.
//! Mounts die with the mount namespace, processes with the PID
//! namespace (PID 1 has `PR_SET_PDEATHSIG`), cgroups are removed after the run (and swept if a killed
//! hoist left one behind).

mod capabilities;
mod cgroupfs;
mod cgroups;
pub mod container;
mod error;
mod etc;
mod init;
mod mounts;
mod rootfs;
mod scratch;
mod seccomp;
mod seccomp_json;
mod seccomp_profile;
mod security;
mod spec;
mod tty;
mod user;
pub mod userns;
pub mod volume;

use std::ffi::CString;
use std::fs;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

pub use capabilities::DOCKER_DEFAULT as DEFAULT_CAPABILITIES;
pub use error::{Error, Result};
pub use etc::{BUILD_HOSTNAME, build_hosts, build_resolv_conf, default_hosts, default_resolv_conf};
pub use spec::{
    EtcFiles, ExitStatus, Flavor, Limits, Mount, MountKind, Network, Pid1, Process, Rlimit, Rootfs,
    Seccomp, Security, Spec, Stdio,
};
pub use user::{User, resolve as resolve_user};

use init::{Command, OverlayMount, Plan, Shared};
use mounts::{Tracker, cstr};
use scratch::Scratch;

/// Docker's default `PATH`.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Resolves `user` (None = root) against the rootfs's /etc/passwd and /etc/group.
pub fn lookup_user(rootfs: &Rootfs, user: Option<&str>) -> Result<User> {
    user::resolve(
        user,
        &rootfs::read_file(rootfs, "etc/passwd"),
        &rootfs::read_file(rootfs, "etc/group"),
    )
}

/// The shared page the children report through.
struct SharedPage(*mut Shared);

impl SharedPage {
    fn new() -> io::Result<SharedPage> {
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
        Ok(SharedPage(p.cast()))
    }

    fn get(&self) -> &Shared {
        unsafe { &*self.0 }
    }
}

impl Drop for SharedPage {
    fn drop(&mut self) {
        unsafe {
            libc::munmap(self.0.cast(), std::mem::size_of::<Shared>());
        }
    }
}

fn setup_err(step: &str) -> impl FnOnce(io::Error) -> Error + '_ {
    move |e| Error::setup(step, e)
}

/// Builds the environment: the caller's, plus PATH, HOME (and TERM for a tty) when missing.
fn environment(process: &Process, home: &str) -> Vec<String> {
    let mut env = process.env.clone();
    let has = |env: &[String], k: &str| env.iter().any(|e| e.split('=').next() == Some(k));
    if !has(&env, "PATH") {
        env.push(format!("PATH={DEFAULT_PATH}"));
    }
    if !has(&env, "HOME") {
        env.push(format!("HOME={home}"));
    }
    if process.tty && !has(&env, "TERM") {
        env.push("TERM=xterm".into());
    }
    env
}

/// Exec candidates for `arg0`: itself if it has a `/`, else each `PATH` entry joined with it.
fn candidates(arg0: &str, env: &[String]) -> Vec<String> {
    if arg0.contains('/') {
        return vec![arg0.to_string()];
    }
    let path = env
        .iter()
        .rev()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or(DEFAULT_PATH);
    path.split(':')
        .map(|d| {
            let d = if d.is_empty() { "." } else { d };
            format!("{}/{arg0}", d.trim_end_matches('/'))
        })
        .collect()
}

fn null_terminated(strings: &[CString]) -> Vec<*const libc::c_char> {
    strings
        .iter()
        .map(|s| s.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect()
}

/// Runs `spec` to completion in a fresh sandbox and returns how the process ended. Blocks.
///
/// The command's own failure is an `Ok` status; `Err` means the sandbox could not be set up
/// ([`Error::exit_code`] 125) or the command could not be executed (126/127).
pub fn run(spec: &Spec, stdio: Stdio) -> Result<ExitStatus> {
    run_with(spec, stdio, |_| {})
}

/// Like [`run`] for a foreground command (`hoist run`): SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1 and
/// SIGUSR2 sent to this process are forwarded to the command instead of killing hoist. Call it from a
/// single-threaded process (it sets the signal mask of the calling thread before starting others).
pub fn run_foreground(spec: &Spec, stdio: Stdio) -> Result<ExitStatus> {
    use std::sync::atomic::AtomicI32;
    static INIT: AtomicI32 = AtomicI32::new(0);
    let signals = [
        libc::SIGINT,
        libc::SIGTERM,
        libc::SIGHUP,
        libc::SIGQUIT,
        libc::SIGUSR1,
        libc::SIGUSR2,
        libc::SIGWINCH,
    ];
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    unsafe {
        libc::sigemptyset(&mut set);
        for s in signals {
            libc::sigaddset(&mut set, s);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
    std::thread::spawn(move || {
        loop {
            let mut sig = 0;
            if unsafe { libc::sigwait(&set, &mut sig) } != 0 {
                continue;
            }
            if sig == libc::SIGWINCH {
                tty::resize();
                continue;
            }
            let pid = INIT.load(Ordering::SeqCst);
            if pid > 0 {
                // PID 1 of the sandbox forwards it to the command.
                unsafe { libc::kill(pid, sig) };
            } else {
                std::process::exit(128 + sig);
            }
        }
    });
    run_with(spec, stdio, |pid| INIT.store(pid as i32, Ordering::SeqCst))
}

/// [`run`], calling `started` with the host PID of the sandbox's PID 1 once it exists.
pub fn run_with(spec: &Spec, stdio: Stdio, started: impl FnOnce(u32)) -> Result<ExitStatus> {
    let t_start = init::now_ns();
    let p = &spec.process;
    if p.args.is_empty() {
        return Err(Error::Invalid("no command given".into()));
    }
    let scratch = Scratch::new().map_err(setup_err("creating the scratch directory"))?;
    let hostname = match (spec.hostname.as_str(), spec.flavor) {
        ("", Flavor::Container) => "hoist",
        ("", Flavor::Build) => BUILD_HOSTNAME,
        (name, _) => name,
    };

    // Root filesystem.
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

    // Identity and environment.
    let mut user = lookup_user(&spec.rootfs, p.user.as_deref())?;
    if !p.groups.is_empty() {
        let group_file = rootfs::read_file(&spec.rootfs, "etc/group");
        for g in &p.groups {
            let gid = user::group_id(g, &group_file)?;
            if !user.groups.contains(&gid) {
                user.groups.push(gid);
            }
        }
    }
    let ids = userns::IdMap::current();
    let setgroups_denied = ids.rootless() && userns::setgroups_denied();
    userns::check_user(ids, &user, setgroups_denied)?;
    let env = environment(p, &user.home);

    // Mount plan.
    let mut ops = Vec::new();
    let mut tracker = Tracker::default();
    let privileged = spec.security.privileged;
    // A directory root is bound, not mounted `nodev` as the overlay is: made `nodev` with its
    // submounts, or bound without them where that cannot be done.
    let root_recursive = privileged || mounts::setattr_supported();
    if let Rootfs::Dir(_) = spec.rootfs
        && !privileged
    {
        ops.push(if root_recursive {
            mounts::set_attr(".", libc::MS_NODEV)?
        } else {
            mounts::remount(".", libc::MS_NODEV | mounts::locked_flags(&root))?
        });
    }
    mounts::standard(&mut ops, &mut tracker, ids, spec.network, privileged)?;
    // A RUN step runs in a cgroup of its own and sees it read-only, as BuildKit's (rootless: /sys
    // as it is).
    let mut step_cgroup = None;
    let cgroupns = if spec.flavor == Flavor::Build && !ids.rootless() {
        let mut v1 = cgroupfs::v1_hierarchies();
        let own: Vec<(String, PathBuf)> = v1
            .iter()
            .map(|h| (h.name.clone(), h.source.clone()))
            .collect();
        let limits = &spec.limits;
        let unlimited = limits.memory.is_none() && limits.cpus.is_none() && limits.pids.is_none();
        if let Some(Ok((cg, made))) =
            unlimited.then(|| cgroups::Cgroup::create_step(&scratch.name(), &own))
        {
            for h in &mut v1 {
                if let Some((_, dir)) = made.iter().find(|(n, _)| *n == h.name) {
                    h.source = dir.clone();
                }
            }
            step_cgroup = Some(cg);
        }
        cgroupfs::view(&mut ops, privileged, &v1)?
    } else {
        false
    };
    if !spec.security.unmasked_paths {
        mounts::system_path_masks(&mut ops)?;
    }
    if privileged {
        security::host_devices(&mut ops, ids.rootless())?;
    }
    etc_files(spec, hostname, &scratch, &mut ops, &mut tracker)?;
    mounts::user(&mut ops, &mut tracker, &spec.mounts, privileged)?;
    let cwd = if p.cwd.is_empty() { "/" } else { &p.cwd };
    ops.push(mounts::ensure(cwd, false, false, None)?);
    if spec.readonly_rootfs {
        let locked = match &spec.rootfs {
            Rootfs::Dir(_) => mounts::locked_flags(&root),
            Rootfs::Overlay { .. } => 0,
        };
        // A remount sets every flag: the root's `nodev` is kept (an image may hold device nodes).
        let keep = locked | mounts::nodev(privileged);
        ops.push(security::readonly_remount(".", keep, false)?);
    }

    // Limits and security.
    let mut cgroup = match step_cgroup {
        Some(cg) => Some(cg),
        None => cgroups::Cgroup::create(&scratch.name(), &spec.limits)
            .map_err(setup_err("creating the cgroup"))?,
    };
    let (caps, filters) = spec.security.prepare()?;

    // Stdio.
    let mut pty = None;
    let mut keep: Vec<OwnedFd> = Vec::new();
    let (in_fd, out_fd, err_fd): (OwnedFd, OwnedFd, OwnedFd);
    let null = || -> Result<OwnedFd> {
        Ok(fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/null")
            .map_err(setup_err("opening /dev/null"))?
            .into())
    };
    let dup = |fd: i32| -> Result<OwnedFd> {
        Ok(tty::dup_file(&fd)
            .map_err(setup_err("duplicating stdio"))?
            .into())
    };
    match stdio {
        Stdio::Inherit => {
            in_fd = dup(0)?;
            out_fd = dup(1)?;
            err_fd = dup(2)?;
        }
        Stdio::Null => {
            in_fd = null()?;
            out_fd = null()?;
            err_fd = null()?;
        }
        Stdio::Fds {
            stdin,
            stdout,
            stderr,
        } => {
            in_fd = match stdin {
                Some(f) => f,
                None => null()?,
            };
            out_fd = stdout;
            err_fd = stderr;
        }
    }
    // `-t`: the pty is opened inside (its devpts), its master sent back over this socket pair.
    let mut console = None;
    let stdio_raw = if p.tty {
        let (ours, theirs) =
            tty::socket_pair().map_err(setup_err("creating the console socket"))?;
        let size =
            tty::window_size(in_fd.as_raw_fd()).or_else(|| tty::window_size(out_fd.as_raw_fd()));
        console = Some((
            ours,
            tty::Console {
                sock: theirs.as_raw_fd(),
                size,
            },
        ));
        keep.push(theirs);
        pty = Some((in_fd, out_fd));
        drop(err_fd);
        [-1; 3]
    } else {
        let raw = [in_fd.as_raw_fd(), out_fd.as_raw_fd(), err_fd.as_raw_fd()];
        keep.extend([in_fd, out_fd, err_fd]);
        raw
    };

    // The plan.
    let argv: Vec<CString> = p.args.iter().map(|a| cstr(a)).collect::<Result<_>>()?;
    let envp: Vec<CString> = env.iter().map(|e| cstr(e)).collect::<Result<_>>()?;
    let cands: Vec<CString> = candidates(&p.args[0], &env)
        .iter()
        .map(|c| cstr(c))
        .collect::<Result<_>>()?;
    let shared = SharedPage::new().map_err(setup_err("mapping the shared page"))?;
    let hoist_pidfd = if spec.pid1 == Pid1::Command {
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, libc::getpid(), 0) } as i32;
        (fd >= 0).then(|| unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) })
    } else {
        None
    };
    let hoist_pidfd_raw = hoist_pidfd.as_ref().map_or(-1, |f| f.as_raw_fd());
    keep.extend(hoist_pidfd);
    let cgroup_fds = cgroup.as_ref().map(|c| c.raw_procs()).unwrap_or_default();
    // Everything else the clone inherits (the caller's descriptors, a concurrent run's) is closed.
    let mut keep_fds: Vec<i32> = keep.iter().map(|f| f.as_raw_fd()).collect();
    keep_fds.extend(&cgroup_fds);
    keep_fds.push(scratch.lock_fd());
    keep_fds.sort_unstable();
    keep_fds.dedup();
    let (console_sock, console) = match console {
        Some((ours, theirs)) => (Some(ours), Some(theirs)),
        None => (None, None),
    };
    let plan = Plan {
        shared: shared.0,
        root: cstr(&root.to_string_lossy())?,
        overlay,
        root_flags: if spec.security.privileged {
            0
        } else {
            libc::MS_NODEV
        },
        root_recursive,
        ops,
        hostname: cstr(hostname)?,
        cgroupns,
        lo_up: spec.network == Network::None,
        cgroup_fds,
        keep_fds,
        lock_fd: scratch.lock_fd(),
        init: spec.pid1 == Pid1::Init,
        hoist_pidfd: hoist_pidfd_raw,
        cmd: Command {
            candidates: cands,
            argv: null_terminated(&argv),
            envp: null_terminated(&envp),
            cwd: cstr(cwd)?,
            uid: user.uid,
            gid: user.gid,
            groups: user.groups.clone(),
            setgroups_denied,
            caps,
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
            stdio: stdio_raw,
            console,
            seccomp: filters.programs,
            no_new_privs: spec.security.no_new_privileges,
        },
    };

    let mut flags =
        libc::CLONE_NEWNS | libc::CLONE_NEWPID | libc::CLONE_NEWUTS | libc::CLONE_NEWIPC;
    if spec.network == Network::None {
        flags |= libc::CLONE_NEWNET;
    }
    let raw_mode = pty
        .as_ref()
        .and_then(|(i, _)| tty::RawMode::enter(i.as_raw_fd()));

    let t_clone = init::now_ns();
    // SAFETY: the child only runs `init_main`, which makes raw system calls on `plan` and never returns.
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
        unsafe { init::init_main(&plan) }
    }
    let clone_err = io::Error::last_os_error();
    drop(keep);
    if let Some(c) = cgroup.as_mut() {
        c.procs.clear();
    }
    if pid < 0 {
        return Err(Error::setup("clone", clone_err));
    }
    started(pid as u32);
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
    let mut status = 0;
    loop {
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r == pid {
            break;
        }
        if r < 0 && io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            return Err(Error::setup("waitpid", io::Error::last_os_error()));
        }
    }
    let t_reaped = init::now_ns();
    drop(follow);
    if let Some(pump) = pumps {
        let _ = pump.join();
    }
    drop(raw_mode);

    // Results and cleanup.
    let sh = shared.get();
    let created = unsafe { std::ptr::read_volatile(&sh.created) };
    let _ = rootfs::remove_created(&spec.rootfs, &tracker, &created);
    if let Some(mut c) = cgroup {
        c.remove();
    }
    drop(scratch);
    if std::env::var_os("HOIST_RUNTIME_TRACE").is_some() {
        trace(t_start, t_clone, &sh.marks, t_reaped, init::now_ns());
    }

    let (stage, errno, index) = unsafe {
        (
            std::ptr::read_volatile(&sh.stage),
            std::ptr::read_volatile(&sh.errno),
            std::ptr::read_volatile(&sh.index),
        )
    };
    if stage != 0 {
        let name = init::STAGES.get(stage as usize).unwrap_or(&"?");
        return Err(Error::setup(
            format!("{name} (step {index})"),
            io::Error::from_raw_os_error(errno),
        ));
    }
    let exec_errno = unsafe { std::ptr::read_volatile(&sh.exec_errno) };
    if exec_errno != 0 {
        return Err(Error::Exec {
            program: p.args[0].clone(),
            source: io::Error::from_raw_os_error(exec_errno),
        });
    }
    let (kind, value) = unsafe {
        (
            std::ptr::read_volatile(&sh.status_kind),
            std::ptr::read_volatile(&sh.status),
        )
    };
    match kind {
        1 => Ok(ExitStatus::Code(value)),
        2 => Ok(ExitStatus::Signal(value)),
        // PID 1 killed (the command, or the init: the OOM killer may pick it, as it counts the pages
        // it shares with hoist): the whole sandbox died of that signal.
        _ if libc::WIFSIGNALED(status) => Ok(ExitStatus::Signal(libc::WTERMSIG(status))),
        // The command was PID 1: its own status.
        _ if spec.pid1 == Pid1::Command => Ok(ExitStatus::Code(libc::WEXITSTATUS(status))),
        _ => Err(Error::setup(
            "the sandbox's init exited without a status",
            io::Error::other(format!("exit code {}", libc::WEXITSTATUS(status))),
        )),
    }
}

/// The /etc files of `spec`'s flavor, written to the scratch directory and bound over the image's.
fn etc_files(
    spec: &Spec,
    hostname: &str,
    scratch: &Scratch,
    ops: &mut Vec<init::Op>,
    tracker: &mut Tracker,
) -> Result<()> {
    let etc = &spec.etc;
    let files = match spec.flavor {
        Flavor::Container => vec![
            (
                "hosts",
                etc.hosts.clone().unwrap_or_else(|| default_hosts(hostname)),
            ),
            (
                "resolv.conf",
                etc.resolv_conf
                    .clone()
                    .unwrap_or_else(|| default_resolv_conf(spec.network)),
            ),
            (
                "hostname",
                etc.hostname
                    .clone()
                    .unwrap_or_else(|| format!("{hostname}\n")),
            ),
        ],
        Flavor::Build => vec![
            (
                "hosts",
                etc.hosts.clone().unwrap_or_else(|| build_hosts(hostname)),
            ),
            (
                "resolv.conf",
                etc.resolv_conf
                    .clone()
                    .unwrap_or_else(|| build_resolv_conf(spec.network)),
            ),
        ],
    };
    for (name, content) in files {
        let src = scratch.dir.join(name);
        fs::write(&src, content).map_err(setup_err("writing /etc files"))?;
        mounts::etc_file(ops, tracker, &src, &format!("/etc/{name}"))?;
        let target = format!("etc/{name}");
        let locked = mounts::locked_flags(&src);
        if spec.flavor == Flavor::Build {
            // BuildKit's: read-only, nosuid, nodev, noexec (a write fails with EROFS).
            let flags = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC | locked;
            ops.push(security::readonly_remount(&target, flags, true)?);
        } else if spec.readonly_rootfs {
            ops.push(security::readonly_remount(&target, locked, true)?);
        }
    }
    Ok(())
}

/// Prints the run's phases (`HOIST_RUNTIME_TRACE`), in microseconds since `run` was called.
fn trace(start: u64, clone: u64, marks: &[u64; 6], reaped: u64, end: u64) {
    let us = |t: u64| t.saturating_sub(start) / 1000;
    let mut line = format!("hoist-runtime trace (us): clone {}", us(clone));
    for (name, &t) in init::MARKS.iter().zip(marks) {
        let t = unsafe { std::ptr::read_volatile(&t) };
        line.push_str(&format!(", {name} {}", us(t)));
    }
    line.push_str(&format!(", reaped {}, returned {}", us(reaped), us(end)));
    eprintln!("{line}");
}

/// Whether `path` is on a filesystem usable as an overlay upper (not overlay itself).
pub fn overlay_capable(path: &Path) -> bool {
    let Ok(c) = CString::new(path.as_os_str().as_encoded_bytes()) else {
        return false;
    };
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    unsafe { libc::statfs(c.as_ptr(), &mut st) == 0 && st.f_type != 0x794c7630 }
}
