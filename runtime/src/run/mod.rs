//! Running one process in a sandbox, in three steps: [`host::gather`] reads what the run depends on
//! from the host and sets up its scratch directory; [`prepare::prepare`] (pure) turns the spec
//! and those facts into the full plan; [`launch::launch`] clones the sandbox and waits for it;
//! [`collect::outcome`] reads how it ended. Must not touch: Docker's flag semantics
//! ([`crate::container`]) or the children's code ([`crate::init`]) beyond handing it the plan.

mod collect;
mod host;
mod launch;
mod prepare;

use std::fs;
use std::sync::atomic::{AtomicI32, Ordering};

pub use prepare::DEFAULT_PATH;

use crate::cgroups::Cgroup;
use crate::error::{Error, Result};
use crate::init;
use crate::rootfs;
use crate::spec::{ExitStatus, Rootfs, Spec, Stdio};
use crate::tty;
use crate::user::{self, User};

/// Resolves `user` (None = root) against the rootfs's /etc/passwd and /etc/group.
pub fn lookup_user(rootfs: &Rootfs, user: Option<&str>) -> Result<User> {
    user::resolve(
        user,
        &rootfs::read_file(rootfs, "etc/passwd"),
        &rootfs::read_file(rootfs, "etc/group"),
    )
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
    // SAFETY: `sigset_t` is plain data (all-zero valid), filled in place through valid pointers;
    // blocking signals in this thread (before any other starts) touches no memory of ours.
    let set = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in signals {
            libc::sigaddset(&mut set, s);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    };
    std::thread::spawn(move || {
        loop {
            let mut sig = 0;
            // SAFETY: `set` is a valid signal set owned by this closure; `sig` a valid place.
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
                // SAFETY: kill takes no pointers.
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
    if spec.process.args.is_empty() {
        return Err(Error::Invalid("no command given".into()));
    }
    let (host, resources) = host::gather(spec)?;
    let mut prepared = prepare::prepare(spec, &host)?;
    for (path, content) in &prepared.files {
        fs::write(path, content).map_err(|e| Error::setup("writing /etc files", e))?;
    }
    let mut cgroup = match resources.step_cgroup {
        Some(cg) => Some(cg),
        None => Cgroup::create(&resources.scratch.name(), &spec.limits)
            .map_err(|e| Error::setup("creating the cgroup", e))?,
    };
    let shared =
        launch::SharedPage::new().map_err(|e| Error::setup("mapping the shared page", e))?;
    let (status, t_clone, t_reaped) = launch::launch(
        spec,
        &host,
        &mut prepared,
        &mut cgroup,
        resources.scratch.lock_fd(),
        stdio,
        shared.get(),
        started,
    )?;

    // Cleanup, then the results.
    let created = shared.get().created();
    let _ = rootfs::remove_created(&spec.rootfs, &prepared.tracker, &created);
    if let Some(mut c) = cgroup {
        c.remove();
    }
    drop(resources.scratch);
    if std::env::var_os("HOIST_RUNTIME_TRACE").is_some() {
        collect::trace(t_start, t_clone, shared.get(), t_reaped, init::now_ns());
    }
    collect::outcome(shared.get(), status, spec.pid1, &spec.process.args[0])
}
