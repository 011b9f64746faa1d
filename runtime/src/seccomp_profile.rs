//! Docker's default seccomp profile, compiled to BPF with `seccompiler`, for a given capability set
//! (Docker's profile allows some syscalls only with a capability: `mount` with CAP_SYS_ADMIN, ...).
//! The build script (runtime/build.rs) compiles it for Docker's default capabilities and embeds the
//! result, so a default run never compiles it; other sets (`--cap-add`) are compiled at run time.

use std::collections::BTreeSet;

/// Syscalls Docker allows unconditionally.
const ALLOWED: &str = "accept accept4 access adjtimex alarm bind brk cachestat capget capset chdir chmod \
chown clock_adjtime clock_getres clock_gettime clock_nanosleep close close_range connect \
copy_file_range creat dup dup2 dup3 epoll_create epoll_create1 epoll_ctl epoll_ctl_old epoll_pwait \
epoll_pwait2 epoll_wait epoll_wait_old eventfd eventfd2 execve execveat exit exit_group faccessat \
faccessat2 fadvise64 fallocate fanotify_mark fchdir fchmod fchmodat fchmodat2 fchown fchownat fcntl \
fdatasync fgetxattr flistxattr flock fork fremovexattr fsetxattr fstat fstatfs fsync ftruncate futex \
futex_requeue futex_wait futex_waitv futex_wake futimesat getcpu getcwd getdents getdents64 getegid \
geteuid getgid getgroups getitimer getpeername getpgid getpgrp getpid getppid getpriority getrandom \
getresgid getresuid getrlimit get_robust_list getrusage getsid getsockname getsockopt get_thread_area \
gettid gettimeofday getuid getxattr getxattrat inotify_add_watch inotify_init inotify_init1 \
inotify_rm_watch io_cancel ioctl io_destroy io_getevents io_pgetevents ioprio_get ioprio_set io_setup \
io_submit kill landlock_add_rule landlock_create_ruleset landlock_restrict_self lchown lgetxattr link \
linkat listen listmount listxattr listxattrat llistxattr lremovexattr lseek lsetxattr lstat madvise \
map_shadow_stack membarrier memfd_create memfd_secret mincore mkdir mkdirat mknod mknodat mlock mlock2 \
mlockall mmap mprotect mq_getsetattr mq_notify mq_open mq_timedreceive mq_timedsend mq_unlink mremap \
mseal msgctl msgget msgrcv msgsnd msync munlock munlockall munmap name_to_handle_at nanosleep \
newfstatat open openat openat2 pause pidfd_open pidfd_send_signal pipe pipe2 pkey_alloc pkey_free \
pkey_mprotect poll ppoll prctl pread64 preadv preadv2 prlimit64 process_mrelease process_vm_readv \
process_vm_writev pselect6 ptrace pwrite64 pwritev pwritev2 read readahead readlink readlinkat readv \
recvfrom recvmmsg recvmsg remap_file_pages removexattr removexattrat rename renameat renameat2 \
restart_syscall rmdir rseq rt_sigaction rt_sigpending rt_sigprocmask rt_sigqueueinfo rt_sigreturn \
rt_sigsuspend rt_sigtimedwait rt_tgsigqueueinfo sched_getaffinity sched_getattr sched_getparam \
sched_get_priority_max sched_get_priority_min sched_getscheduler sched_rr_get_interval \
sched_setaffinity sched_setattr sched_setparam sched_setscheduler sched_yield seccomp select semctl \
semget semop semtimedop sendfile sendmmsg sendmsg sendto setfsgid setfsuid setgid setgroups \
setitimer setpgid setpriority setregid setresgid setresuid setreuid setrlimit set_robust_list setsid \
setsockopt set_thread_area set_tid_address setuid setxattr setxattrat shmat shmctl shmdt shmget \
shutdown sigaltstack signalfd signalfd4 socketpair splice stat statfs statmount statx symlink \
symlinkat sync sync_file_range syncfs sysinfo tee tgkill time timer_create timer_delete \
timer_getoverrun timer_gettime timer_settime timerfd_create timerfd_gettime timerfd_settime times \
tkill truncate umask uname unlink unlinkat utime utimensat utimes vfork vmsplice wait4 waitid write \
writev arch_prctl modify_ldt";

/// Syscalls Docker allows only with a capability (number, names), as in moby's default.json.
const GATED: &[(u32, &str)] = &[
    (2, "open_by_handle_at"),
    (
        21,
        "bpf clone clone3 fanotify_init fsconfig fsmount fsopen fspick lookup_dcookie mount \
         mount_setattr move_mount open_tree perf_event_open quotactl quotactl_fd setdomainname \
         sethostname setns syslog umount umount2 unshare",
    ),
    (22, "reboot"),
    (18, "chroot"),
    (16, "delete_module init_module finit_module"),
    (20, "acct"),
    (
        19,
        "kcmp pidfd_getfd process_madvise process_vm_readv process_vm_writev ptrace",
    ),
    (17, "iopl ioperm"),
    (25, "settimeofday stime clock_settime clock_settime64"),
    (26, "vhangup"),
    (
        23,
        "get_mempolicy mbind set_mempolicy set_mempolicy_home_node",
    ),
    (34, "syslog"),
    (39, "bpf"),
    (38, "perf_event_open"),
];
/// CAP_SYS_ADMIN: `clone` with namespace flags and `clone3` are allowed with it.
const CAP_SYS_ADMIN: u32 = 21;

/// The capabilities the profile depends on (two sets equal under this mask give the same filter).
pub const GATED_MASK: u64 = {
    let mut m = 0u64;
    let mut i = 0;
    while i < GATED.len() {
        m |= 1 << GATED[i].0;
        i += 1;
    }
    m
};

/// CLONE_NEWNS | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET | NEWCGROUP: `clone` with any is denied.
const CLONE_NS_MASK: u64 = 0x7E02_0000;
/// AF_VSOCK: `socket` for it is denied.
const AF_VSOCK: u64 = 40;
/// Personas Docker allows: PER_LINUX, UNAME26, PER_LINUX32, PER_LINUX32|UNAME26, query.
const PERSONAS: &[u64] = &[0x0, 0x8, 0x20000, 0x20008, 0xffff_ffff];

fn target(arch: &str) -> Result<seccompiler::TargetArch, String> {
    seccompiler::TargetArch::try_from(arch).map_err(|e| e.to_string())
}

/// (allowlist, clone3 filter) for `arch` (Rust's `target_arch` name) and the capability mask `caps`
/// (bit n = capability n), as (code, jt, jf, k). The clone3 filter is empty with CAP_SYS_ADMIN.
pub fn compile(arch: &str, caps: u64) -> Result<(Vec<Insn>, Vec<Insn>), String> {
    let mut names: BTreeSet<&str> = ALLOWED.split_whitespace().collect();
    for (cap, gated) in GATED {
        if caps & (1 << cap) != 0 {
            names.extend(gated.split_whitespace());
        }
    }
    let admin = caps & (1 << CAP_SYS_ADMIN) != 0;
    loop {
        let json = main_json(&names, admin);
        match seccompiler::compile_from_json(json.as_bytes(), target(arch)?) {
            Ok(mut map) => {
                let main = insns(map.remove("main").unwrap_or_default());
                let clone3 = if admin {
                    Vec::new()
                } else {
                    compile_clone3(arch)?
                };
                return Ok((main, clone3));
            }
            // A name this architecture lacks (e.g. `arch_prctl` on aarch64): drop it and retry.
            Err(e) => match unknown_name(&e.to_string()) {
                Some(name) if names.contains(name.as_str()) => {
                    names.remove(name.as_str());
                }
                _ => return Err(format!("compiling the seccomp profile: {e}")),
            },
        }
    }
}

/// The syscall name in seccompiler's "Invalid syscall name: NAME for given arch" error.
fn unknown_name(msg: &str) -> Option<String> {
    let rest = &msg[msg.find("Invalid syscall name: ")? + 22..];
    Some(rest[..rest.find(' ')?].to_string())
}

/// `admin`: CAP_SYS_ADMIN is kept, so `clone` is in `names` and needs no flag check.
fn main_json(names: &BTreeSet<&str>, admin: bool) -> String {
    let mut rules: Vec<String> = names
        .iter()
        .map(|n| format!(r#"{{"syscall":"{n}"}}"#))
        .collect();
    if !admin {
        rules.push(format!(
            r#"{{"syscall":"clone","args":[{{"index":0,"type":"qword","op":{{"masked_eq":{CLONE_NS_MASK}}},"val":0}}]}}"#
        ));
    }
    rules.push(format!(
        r#"{{"syscall":"socket","args":[{{"index":0,"type":"dword","op":"ne","val":{AF_VSOCK}}}]}}"#
    ));
    for p in PERSONAS {
        rules.push(format!(
            r#"{{"syscall":"personality","args":[{{"index":0,"type":"dword","op":"eq","val":{p}}}]}}"#
        ));
    }
    format!(
        r#"{{"main":{{"mismatch_action":{{"errno":{}}},"match_action":"allow","filter":[{}]}}}}"#,
        libc::EPERM,
        rules.join(",")
    )
}

fn compile_clone3(arch: &str) -> Result<Vec<Insn>, String> {
    let json = format!(
        r#"{{"main":{{"mismatch_action":"allow","match_action":{{"errno":{}}},"filter":[{{"syscall":"clone3"}}]}}}}"#,
        libc::ENOSYS
    );
    let mut map = seccompiler::compile_from_json(json.as_bytes(), target(arch)?)
        .map_err(|e| format!("compiling the clone3 filter: {e}"))?;
    Ok(insns(map.remove("main").unwrap_or_default()))
}

/// One BPF instruction: (code, jt, jf, k).
pub type Insn = (u16, u8, u8, u32);

fn insns(prog: seccompiler::BpfProgram) -> Vec<Insn> {
    prog.into_iter()
        .map(|i| (i.code, i.jt, i.jf, i.k))
        .collect()
}
