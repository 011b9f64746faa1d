//! Rootless mode: an unprivileged hoist re-enters itself in a new user namespace (with its own mount
//! namespace) in which it is uid 0, as `buildah unshare` does ([`enter`]); and, inside, which ids that
//! namespace maps ([`IdMap`]), so the sandbox knows what a user namespace forbids (device nodes,
//! sysfs without a network namespace of its own, `trusted.*` xattrs, cgroups it does not own).
//!
//! The original process stays outside as a waiter: it maps the child's ids with `newuidmap` and
//! `newgidmap` (0 -> the user, 1..N -> the user's ranges in /etc/subuid and /etc/subgid) or, when
//! those are missing, maps only root (0 -> the user, `setgroups` denied) with a warning; then it
//! forwards SIGTERM, SIGHUP, SIGUSR1 and SIGUSR2 (and SIGINT/SIGQUIT sent with `kill`; from a
//! terminal the child gets those itself) and exits as the child did.

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

use crate::error::{Error, Result};
use crate::user::User;

/// One line of /proc/PID/uid_map or gid_map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdRange {
    pub inside: u32,
    pub outside: u32,
    pub count: u32,
}

/// The current process's user namespace mappings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdMap {
    pub uids: Vec<IdRange>,
    pub gids: Vec<IdRange>,
}

/// Parses the text of /proc/PID/uid_map or gid_map (`inside outside count` lines; others skipped).
pub fn parse_map(text: &str) -> Vec<IdRange> {
    text.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace().map(|n| n.parse::<u32>());
            match (w.next(), w.next(), w.next()) {
                (Some(Ok(inside)), Some(Ok(outside)), Some(Ok(count))) => Some(IdRange {
                    inside,
                    outside,
                    count,
                }),
                _ => None,
            }
        })
        .collect()
}

fn maps(ranges: &[IdRange], id: u32) -> bool {
    ranges
        .iter()
        .any(|r| id >= r.inside && id - r.inside < r.count)
}

/// The initial user namespace maps every id onto itself.
fn identity(ranges: &[IdRange]) -> bool {
    ranges
        == [IdRange {
            inside: 0,
            outside: 0,
            count: u32::MAX,
        }]
}

impl IdMap {
    /// The mappings of this process, read once (a missing /proc reads as the initial namespace).
    pub fn current() -> &'static IdMap {
        static MAP: OnceLock<IdMap> = OnceLock::new();
        MAP.get_or_init(|| {
            let read = |f: &str| fs::read_to_string(f).map(|s| parse_map(&s));
            match (read("/proc/self/uid_map"), read("/proc/self/gid_map")) {
                (Ok(uids), Ok(gids)) => IdMap { uids, gids },
                _ => IdMap::host(),
            }
        })
    }

    /// The initial user namespace's (identity) mappings.
    pub fn host() -> IdMap {
        let all = vec![IdRange {
            inside: 0,
            outside: 0,
            count: u32::MAX,
        }];
        IdMap {
            uids: all.clone(),
            gids: all,
        }
    }

    /// Running in a user namespace: hoist's root is not the host's.
    pub fn rootless(&self) -> bool {
        !identity(&self.uids)
    }

    /// Only root is mapped (no subordinate ids): no other user can exist inside.
    pub fn single(&self) -> bool {
        self.rootless() && self.uids.iter().map(|r| r.count as u64).sum::<u64>() <= 1
    }

    pub fn maps_uid(&self, id: u32) -> bool {
        maps(&self.uids, id)
    }

    pub fn maps_gid(&self, id: u32) -> bool {
        maps(&self.gids, id)
    }

    /// The host uid that is root here (the user rootless hoist runs as).
    pub fn outside_uid(&self) -> u32 {
        self.uids
            .iter()
            .find(|r| r.inside == 0)
            .map_or(0, |r| r.outside)
    }

    /// The highest mapped uid (inside), for messages.
    pub fn max_uid(&self) -> u32 {
        self.uids
            .iter()
            .map(|r| r.inside.saturating_add(r.count.saturating_sub(1)))
            .max()
            .unwrap_or(0)
    }
}

/// Whether this process runs in a user namespace (rootless hoist).
pub fn rootless() -> bool {
    IdMap::current().rootless()
}

/// Whether `setgroups(2)` is denied in this user namespace (single mapping without newgidmap).
pub fn setgroups_denied() -> bool {
    fs::read_to_string("/proc/self/setgroups").is_ok_and(|s| s.trim() == "deny")
}

/// Fails clearly when `user` needs an id this user namespace does not map (rootless), instead of
/// the sandbox failing with EINVAL. Supplementary groups do not count where `setgroups` is denied.
pub(crate) fn check_user(ids: &IdMap, user: &User, groups_denied: bool) -> Result<()> {
    if !ids.rootless() {
        return Ok(());
    }
    let unmapped = if !ids.maps_uid(user.uid) {
        Some(("uid", user.uid))
    } else if !ids.maps_gid(user.gid) {
        Some(("gid", user.gid))
    } else if groups_denied {
        None
    } else {
        user.groups
            .iter()
            .find(|g| !ids.maps_gid(**g))
            .map(|g| ("group", *g))
    };
    let Some((what, id)) = unmapped else {
        return Ok(());
    };
    let mapped = if ids.single() {
        "only root is mapped: the user has no range in /etc/subuid".to_string()
    } else {
        format!("ids 0-{} are mapped", ids.max_uid())
    };
    Err(Error::Invalid(format!(
        "{what} {id} does not exist in rootless hoist's user namespace ({mapped})"
    )))
}

/// Rootless entry: when started unprivileged (euid != 0), forks; the child moves into a new user and
/// mount namespace in which it is root and returns from here to carry on with the command; the
/// original process maps the child's ids, waits for it, and exits with its exit code (or dies of its
/// signal). A no-op for root, including root of a user namespace (no nesting).
///
/// Call it first thing in `main`, before any thread exists. On failure, prints why and exits 125.
pub fn enter() {
    if rustix::process::geteuid().is_root() {
        return;
    }
    if let Err(e) = fork_into_namespace() {
        eprintln!("hoist: rootless: {e}");
        std::process::exit(125);
    }
}

/// Signals the waiting parent takes synchronously (the child restores the caller's mask).
const WAITER_SIGNALS: [libc::c_int; 7] = [
    libc::SIGINT,
    libc::SIGQUIT,
    libc::SIGTERM,
    libc::SIGHUP,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGCHLD,
];

fn pipe() -> io::Result<(fs::File, fs::File)> {
    let (read, write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
    Ok((read.into(), write.into()))
}

/// Blocks `signals` in this thread; returns (the set of them, the previous mask).
fn block(signals: &[libc::c_int]) -> (libc::sigset_t, libc::sigset_t) {
    // SAFETY: `sigset_t` is plain data (all-zero valid); both sets are filled in place through
    // valid pointers, and `sigprocmask` only reads `set` and writes `old`.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for &s in signals {
            libc::sigaddset(&mut set, s);
        }
        libc::sigprocmask(libc::SIG_BLOCK, &set, &mut old);
        (set, old)
    }
}

/// Sets this thread's signal mask to `mask`.
fn set_mask(mask: &libc::sigset_t) {
    // SAFETY: `mask` is a valid set, only read.
    unsafe { libc::sigprocmask(libc::SIG_SETMASK, mask, std::ptr::null_mut()) };
}

/// Sends `sig` (any number, real-time ones too) to `pid`.
fn kill(pid: libc::pid_t, sig: libc::c_int) {
    // SAFETY: kill takes no pointers.
    unsafe { libc::kill(pid, sig) };
}

fn fork_into_namespace() -> io::Result<()> {
    let owner = Owner::current();
    let (from_child, to_parent) = pipe()?;
    let (from_parent, to_child) = pipe()?;
    let (set, old) = block(&WAITER_SIGNALS);
    let parent = rustix::process::getpid();
    // SAFETY: no other thread exists yet (the caller's contract), so the child is a complete copy
    // of this process and may allocate and run any code.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    if pid == 0 {
        set_mask(&old);
        drop((from_child, to_child));
        return child(parent, to_parent, from_parent);
    }
    drop((to_parent, from_parent));
    let result = map_child(pid, &owner, from_child, to_child);
    if let Err(e) = result {
        kill(pid, libc::SIGKILL);
        wait_exit(pid);
        return Err(e);
    }
    wait_and_forward(pid, &set)
}

/// The child: unshare, let the parent map, become root inside, make mounts private.
fn child(
    parent: rustix::process::Pid,
    mut to_parent: fs::File,
    mut from_parent: fs::File,
) -> io::Result<()> {
    use rustix::thread::UnshareFlags;
    // SAFETY: no descriptor table is unshared (no CLONE_FILES), and this process has one thread.
    let r = unsafe { rustix::thread::unshare_unsafe(UnshareFlags::NEWUSER | UnshareFlags::NEWNS) };
    let errno = match r {
        Ok(()) => 0,
        Err(e) => e.raw_os_error(),
    };
    let _ = to_parent.write_all(&errno.to_ne_bytes());
    drop(to_parent);
    let mut ok = [1u8];
    if errno != 0 || from_parent.read_exact(&mut ok).is_err() || ok[0] != 0 {
        // The parent reports the failure.
        exit_now(125);
    }
    // This process has a single thread: the thread's ids are the process's.
    use rustix::process::{Gid, Uid};
    rustix::thread::set_thread_res_gid(Gid::ROOT, Gid::ROOT, Gid::ROOT)
        .and_then(|()| rustix::thread::set_thread_res_uid(Uid::ROOT, Uid::ROOT, Uid::ROOT))
        .map_err(|e| {
            io::Error::other(format!(
                "becoming root in the user namespace: {}",
                io::Error::from(e)
            ))
        })?;
    // Denied with a single mapping: the user's own groups then stay (unmapped, as nogroup).
    let _ = rustix::thread::set_thread_groups(&[]);
    let _ = rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL));
    if rustix::process::getppid() != Some(parent) {
        exit_now(125);
    }
    use rustix::mount::MountPropagationFlags;
    rustix::mount::mount_change(
        c"/",
        MountPropagationFlags::REC | MountPropagationFlags::PRIVATE,
    )
    .map_err(|e| io::Error::other(format!("making mounts private: {}", io::Error::from(e))))?;
    Ok(())
}

/// The parent: waits for the child's unshare, maps its ids, lets it go on.
fn map_child(
    pid: libc::pid_t,
    owner: &Owner,
    mut from_child: fs::File,
    mut to_child: fs::File,
) -> io::Result<()> {
    let mut buf = [0u8; 4];
    from_child
        .read_exact(&mut buf)
        .map_err(|e| io::Error::other(format!("the namespace child died: {e}")))?;
    let errno = i32::from_ne_bytes(buf);
    if errno != 0 {
        return Err(io::Error::other(format!(
            "cannot create a user namespace: {} (are unprivileged user namespaces enabled? \
             sysctl user.max_user_namespaces, kernel.unprivileged_userns_clone)",
            io::Error::from_raw_os_error(errno)
        )));
    }
    // newuidmap and newgidmap side by side.
    let uids = owner.start_map(pid, Kind::Uid);
    let gids = owner.start_map(pid, Kind::Gid);
    let uid_single = owner.finish_map(pid, Kind::Uid, uids)?;
    let gid_single = owner.finish_map(pid, Kind::Gid, gids)?;
    if let Some(why) = uid_single.or(gid_single) {
        eprintln!(
            "hoist: warning: rootless without subordinate ids ({why}): only root exists inside containers"
        );
    }
    to_child.write_all(&[0])?;
    Ok(())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Uid,
    Gid,
}

impl Kind {
    /// (subordinate id file, mapping tool, /proc/PID file).
    fn files(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Kind::Uid => ("/etc/subuid", "newuidmap", "uid_map"),
            Kind::Gid => ("/etc/subgid", "newgidmap", "gid_map"),
        }
    }
}

/// The unprivileged user hoist runs as.
struct Owner {
    uid: u32,
    gid: u32,
    name: Option<String>,
}

impl Owner {
    fn current() -> Owner {
        let uid = rustix::process::getuid().as_raw();
        let name = fs::read_to_string("/etc/passwd").ok().and_then(|p| {
            p.lines().find_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f.len() > 2 && f[2] == uid.to_string()).then(|| f[0].to_string())
            })
        });
        Owner {
            uid,
            gid: rustix::process::getgid().as_raw(),
            name,
        }
    }

    fn id(&self, kind: Kind) -> u32 {
        match kind {
            Kind::Uid => self.uid,
            Kind::Gid => self.gid,
        }
    }

    /// Starts newuidmap (newgidmap) on the child with the user's subordinate ids, or says why not.
    fn start_map(&self, pid: libc::pid_t, kind: Kind) -> std::result::Result<Child, String> {
        let (file, tool, _) = kind.files();
        let ranges = fs::read_to_string(file)
            .map(|s| subordinate_ranges(&s, self.uid, self.name.as_deref()))
            .unwrap_or_default();
        if ranges.is_empty() {
            let who = self.name.clone().unwrap_or_else(|| self.uid.to_string());
            return Err(format!("no range for {who} in {file}"));
        }
        let path = find_tool(tool).ok_or_else(|| format!("{tool} not found: install uidmap"))?;
        let mut args = vec![
            pid.to_string(),
            "0".into(),
            self.id(kind).to_string(),
            "1".into(),
        ];
        for r in &ranges {
            args.extend([r.inside, r.outside, r.count].map(|n| n.to_string()));
        }
        Command::new(&path)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("{tool}: {e}"))
    }

    /// Waits for [`Owner::start_map`]'s tool; when it failed or could not start, maps root only.
    /// Returns why only root was mapped, if so.
    fn finish_map(
        &self,
        pid: libc::pid_t,
        kind: Kind,
        started: std::result::Result<Child, String>,
    ) -> io::Result<Option<String>> {
        let (_, tool, proc_file) = kind.files();
        let why = match started.map(|c| c.wait_with_output()) {
            Ok(Ok(out)) if out.status.success() => return Ok(None),
            Ok(Ok(out)) => format!(
                "{tool} failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ),
            Ok(Err(e)) => format!("{tool}: {e}"),
            Err(why) => why,
        };
        let id = self.id(kind);
        let proc = PathBuf::from(format!("/proc/{pid}"));
        if kind == Kind::Gid {
            write_proc(&proc.join("setgroups"), "deny")?;
        }
        write_proc(&proc.join(proc_file), &format!("0 {id} 1\n"))?;
        Ok(Some(why))
    }
}

fn write_proc(path: &Path, value: &str) -> io::Result<()> {
    fs::write(path, value).map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))
}

/// The ranges for the user (by name or uid) in an /etc/subuid-format file, laid out from inside id 1.
fn subordinate_ranges(text: &str, uid: u32, name: Option<&str>) -> Vec<IdRange> {
    let mut next = 1u32;
    let mut out = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.trim().split(':').collect();
        let [who, start, count] = f[..] else { continue };
        if Some(who) != name && who != uid.to_string() {
            continue;
        }
        let (Ok(start), Ok(count)) = (start.parse::<u32>(), count.parse::<u32>()) else {
            continue;
        };
        let count = count.min(u32::MAX - next);
        if count == 0 {
            continue;
        }
        out.push(IdRange {
            inside: next,
            outside: start,
            count,
        });
        next += count;
    }
    out
}

/// `tool` on PATH or in the usual system directories (a minimal PATH may lack /usr/bin).
fn find_tool(tool: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    path.split(':')
        .filter(|d| !d.is_empty())
        .chain(["/usr/bin", "/bin", "/usr/sbin", "/sbin"])
        .map(|d| Path::new(d).join(tool))
        .find(|p| p.is_file())
}

/// `_exit(code)`: the forked child leaves without running the parent's exit handlers.
fn exit_now(code: i32) -> ! {
    // SAFETY: `_exit` takes no pointers; it ends this process at once.
    unsafe { libc::_exit(code) }
}

/// Waits until child `pid` is gone.
fn wait_exit(pid: libc::pid_t) {
    let Some(pid) = rustix::process::Pid::from_raw(pid) else {
        return;
    };
    while let Err(rustix::io::Errno::INTR) =
        rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::empty())
    {}
}

/// Waits for the child, forwarding signals; exits as it did. Never returns.
fn wait_and_forward(pid: libc::pid_t, set: &libc::sigset_t) -> ! {
    let child = rustix::process::Pid::from_raw(pid);
    loop {
        // SAFETY: `siginfo_t` is plain data (all-zero valid); `set` is a valid set and `info` a
        // valid place for the kernel to write.
        let (sig, info) = unsafe {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            (libc::sigwaitinfo(set, &mut info), info)
        };
        match sig {
            libc::SIGCHLD => {
                if let Ok(Some((_, status))) =
                    rustix::process::waitpid(child, rustix::process::WaitOptions::NOHANG)
                {
                    exit_like(status);
                }
            }
            // From a terminal (sent by the kernel) the child, in the same process group, got it too.
            libc::SIGINT | libc::SIGQUIT if info.si_code == libc::SI_KERNEL => {}
            s if s > 0 => kill(pid, s),
            _ => {}
        }
    }
}

/// Exits with the child's code, or dies of the child's signal.
fn exit_like(status: rustix::process::WaitStatus) -> ! {
    if let Some(sig) = status.terminating_signal() {
        // No core file of hoist for the child's crash.
        let none = rustix::process::Rlimit {
            current: Some(0),
            maximum: Some(0),
        };
        let _ = rustix::process::setrlimit(rustix::process::Resource::Core, none);
        // SAFETY: installs the default disposition (no handler code); `only` is plain data
        // (all-zero valid), filled in place and only read by `sigprocmask`.
        unsafe {
            libc::signal(sig, libc::SIG_DFL);
            let mut only: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut only);
            libc::sigaddset(&mut only, sig);
            libc::sigprocmask(libc::SIG_UNBLOCK, &only, std::ptr::null_mut());
        }
        kill(rustix::process::getpid().as_raw_nonzero().get(), sig);
        std::process::exit(128 + sig);
    }
    std::process::exit(status.exit_status().unwrap_or(0));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subordinate_ranges_by_name_or_uid_from_one() {
        let text = "alice:100000:65536\nbob:200000:10\n1000:300000:5\n# junk\n";
        assert_eq!(
            subordinate_ranges(text, 1000, Some("alice")),
            vec![
                IdRange {
                    inside: 1,
                    outside: 100000,
                    count: 65536
                },
                IdRange {
                    inside: 65537,
                    outside: 300000,
                    count: 5
                },
            ]
        );
        assert!(subordinate_ranges(text, 2000, Some("carol")).is_empty());
    }

    #[test]
    fn id_maps() {
        let host = IdMap::host();
        assert!(!host.rootless());
        let m = IdMap {
            uids: parse_map("         0       1001          1\n         1     100000      65536\n"),
            gids: parse_map("0 1001 1\n"),
        };
        assert!(m.rootless() && !m.single());
        assert!(m.maps_uid(0) && m.maps_uid(65536) && !m.maps_uid(65537));
        assert!(m.maps_gid(0) && !m.maps_gid(5));
        assert_eq!(m.max_uid(), 65536);
        let single = IdMap {
            uids: parse_map("0 1001 1"),
            gids: parse_map("0 1001 1"),
        };
        assert!(single.single());
    }
}
