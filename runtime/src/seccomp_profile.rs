//! The one seccomp compiler: a profile in Docker's model (a default action, and rules naming syscalls
//! with an action, argument checks and the capabilities they need or exclude) compiled with
//! `seccompiler` to BPF for an architecture and a capability set. The build script (runtime/build.rs)
//! includes this file to compile Docker's default profile ([`docker_default`]) for Docker's default
//! capabilities; the same code compiles other capability sets and `--security-opt seccomp=FILE`
//! profiles at run time.

use std::collections::{BTreeMap, BTreeSet};

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

/// The capabilities Docker's default profile depends on (two sets equal under this mask give the
/// same filters).
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

/// A seccomp profile: what a syscall no rule matches gets, and the rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    pub default_action: Action,
    pub rules: Vec<Rule>,
}

/// What a filter answers (libseccomp's `SCMP_ACT_*`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Action {
    #[default]
    Allow,
    Errno(u32),
    KillThread,
    KillProcess,
    Trap,
    Trace(u32),
    Log,
}

/// Syscalls (names; those this architecture lacks are skipped) that get `action` when every
/// argument check holds, for a capability set holding all of `includes_caps` and none of
/// `excludes_caps` (capability numbers; 64 and above: never held).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rule {
    pub names: Vec<String>,
    pub action: Action,
    pub args: Vec<Arg>,
    pub includes_caps: Vec<u32>,
    pub excludes_caps: Vec<u32>,
}

/// An argument check: argument `index` (64 bits) compared with `value`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arg {
    pub index: u8,
    pub op: CmpOp,
    pub value: u64,
}

/// libseccomp's `SCMP_CMP_*`; `MaskedEq(mask)`: `arg & mask == value`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    MaskedEq(u64),
}

impl Rule {
    /// Allows the whitespace-separated `names`.
    fn allow(names: &str) -> Rule {
        Rule {
            names: names.split_whitespace().map(str::to_string).collect(),
            ..Rule::default()
        }
    }

    /// The rule applies to the capability mask `caps`.
    fn applies(&self, caps: u64) -> bool {
        let held = |c: &u32| *c < 64 && caps & (1 << c) != 0;
        self.includes_caps.iter().all(held) && !self.excludes_caps.iter().any(held)
    }

    /// The alternatives (any may hold) of checks (all must hold); none: unconditional. As runc
    /// does, checks of one argument index given twice are alternatives each.
    fn alternatives(&self) -> Option<Vec<Vec<Arg>>> {
        if self.args.is_empty() {
            return None;
        }
        let indexes: BTreeSet<u8> = self.args.iter().map(|a| a.index).collect();
        Some(if indexes.len() == self.args.len() {
            vec![self.args.clone()]
        } else {
            self.args.iter().map(|a| vec![*a]).collect()
        })
    }
}

/// Docker's default profile (moby `profiles/seccomp/default.json`): an allowlist answering EPERM to
/// everything else, `clone` without namespace flags and `clone3` answering ENOSYS (so libcs fall
/// back to `clone`) unless CAP_SYS_ADMIN is kept, `socket` without AF_VSOCK, `personality` limited
/// to the usual personas, and the syscalls some capabilities unlock.
pub fn docker_default() -> Profile {
    let mut rules = vec![Rule::allow(ALLOWED)];
    for (cap, names) in GATED {
        rules.push(Rule {
            includes_caps: vec![*cap],
            ..Rule::allow(names)
        });
    }
    let arg0 = |op, value| {
        vec![Arg {
            index: 0,
            op,
            value,
        }]
    };
    rules.push(Rule {
        args: arg0(CmpOp::MaskedEq(CLONE_NS_MASK), 0),
        excludes_caps: vec![CAP_SYS_ADMIN],
        ..Rule::allow("clone")
    });
    rules.push(Rule {
        args: arg0(CmpOp::Ne, AF_VSOCK),
        ..Rule::allow("socket")
    });
    for p in PERSONAS {
        rules.push(Rule {
            args: arg0(CmpOp::Eq, *p),
            ..Rule::allow("personality")
        });
    }
    rules.push(Rule {
        action: Action::Errno(libc::ENOSYS as u32),
        excludes_caps: vec![CAP_SYS_ADMIN],
        ..Rule::allow("clone3")
    });
    Profile {
        default_action: Action::Errno(libc::EPERM as u32),
        rules,
    }
}

/// One BPF instruction: (code, jt, jf, k).
pub type Insn = (u16, u8, u8, u32);

/// One seccompiler filter: `matched` for the rules' syscalls, `mismatched` for the others.
struct Filter<'a> {
    mismatched: Action,
    matched: Action,
    rules: Vec<&'a Rule>,
}

/// `profile` for `arch` (Rust's `target_arch` name) and the capability mask `caps` (bit n =
/// capability n), as BPF programs to install in order. A filter answers one action for its
/// syscalls, so a profile is several: the first answers the default action to the syscalls no rule
/// names (if that is not "allow"), one per other action answers it to its rules' syscalls. The
/// kernel applies the most restrictive answer of all the filters, so each syscall gets its rule's.
pub fn compile(profile: &Profile, arch: &str, caps: u64) -> Result<Vec<Vec<Insn>>, String> {
    let target = seccompiler::TargetArch::try_from(arch).map_err(|e| e.to_string())?;
    let rules: Vec<&Rule> = profile
        .rules
        .iter()
        .filter(|r| r.applies(caps) && r.action != profile.default_action)
        .collect();
    let mut filters = Vec::new();
    if profile.default_action != Action::Allow {
        filters.push(Filter {
            mismatched: profile.default_action,
            matched: Action::Allow,
            rules: rules.clone(),
        });
    }
    let mut actions: Vec<Action> = Vec::new();
    for r in &rules {
        if r.action != Action::Allow && !actions.contains(&r.action) {
            actions.push(r.action);
        }
    }
    for action in actions {
        filters.push(Filter {
            mismatched: Action::Allow,
            matched: action,
            rules: rules
                .iter()
                .copied()
                .filter(|r| r.action == action)
                .collect(),
        });
    }
    let unknown = unknown_names(&rules, target)?;
    let json = filters
        .iter()
        .enumerate()
        .filter_map(|(i, f)| filter_json(f, &unknown).map(|j| format!(r#""{i}":{j}"#)))
        .collect::<Vec<_>>();
    let mut map =
        seccompiler::compile_from_json(format!("{{{}}}", json.join(",")).as_bytes(), target)
            .map_err(|e| format!("compiling the seccomp profile: {e}"))?;
    Ok((0..filters.len())
        .filter_map(|i| map.remove(&i.to_string()))
        .map(|p| p.into_iter().map(|i| (i.code, i.jt, i.jf, i.k)).collect())
        .collect())
}

/// The names of `rules` this architecture has no syscall for (Docker skips them).
fn unknown_names(
    rules: &[&Rule],
    target: seccompiler::TargetArch,
) -> Result<BTreeSet<String>, String> {
    let names: BTreeSet<&str> = rules
        .iter()
        .flat_map(|r| &r.names)
        .map(String::as_str)
        .collect();
    let mut rest: Vec<&str> = names.into_iter().collect();
    let mut unknown = BTreeSet::new();
    loop {
        let list: Vec<String> = rest
            .iter()
            .map(|n| format!(r#"{{"syscall":{}}}"#, json_str(n)))
            .collect();
        let json = format!(
            r#"{{"probe":{{"mismatch_action":"allow","match_action":"trap","filter":[{}]}}}}"#,
            list.join(",")
        );
        match seccompiler::compile_from_json(json.as_bytes(), target) {
            Ok(_) => return Ok(unknown),
            // seccompiler resolves the names in order and stops at the first it cannot: those
            // before it are known, the rest are probed again.
            Err(e) => match unknown_name(&e.to_string())
                .and_then(|name| Some((rest.iter().position(|n| *n == name)?, name)))
            {
                Some((at, name)) => {
                    rest.drain(..=at);
                    unknown.insert(name);
                }
                None => return Err(format!("compiling the seccomp profile: {e}")),
            },
        }
    }
}

/// The syscall name in seccompiler's "Invalid syscall name: NAME for given arch" error.
fn unknown_name(msg: &str) -> Option<String> {
    let rest = &msg[msg.find("Invalid syscall name: ")? + 22..];
    Some(rest[..rest.find(" for given arch")?].to_string())
}

/// `f` in seccompiler's JSON (none if it has no syscall this architecture knows and would change
/// nothing). A syscall one rule allows unconditionally needs no argument checks from the others.
fn filter_json(f: &Filter, unknown: &BTreeSet<String>) -> Option<String> {
    let mut syscalls: BTreeMap<&str, Option<Vec<Vec<Arg>>>> = BTreeMap::new();
    for rule in &f.rules {
        for name in rule.names.iter().filter(|n| !unknown.contains(*n)) {
            let entry = syscalls.entry(name).or_insert_with(|| Some(Vec::new()));
            match (entry.as_mut(), rule.alternatives()) {
                (Some(alts), Some(more)) => alts.extend(more),
                _ => *entry = None,
            }
        }
    }
    if syscalls.is_empty() && f.mismatched == Action::Allow {
        return None;
    }
    let mut rules = Vec::new();
    for (name, alts) in syscalls {
        let name = json_str(name);
        match alts {
            None => rules.push(format!(r#"{{"syscall":{name}}}"#)),
            Some(alts) => rules.extend(alts.iter().map(|checks| {
                let args: Vec<String> = checks.iter().map(arg_json).collect();
                format!(r#"{{"syscall":{name},"args":[{}]}}"#, args.join(","))
            })),
        }
    }
    Some(format!(
        r#"{{"mismatch_action":{},"match_action":{},"filter":[{}]}}"#,
        action_json(f.mismatched),
        action_json(f.matched),
        rules.join(",")
    ))
}

fn arg_json(a: &Arg) -> String {
    let op = match a.op {
        CmpOp::Eq => r#""eq""#.to_string(),
        CmpOp::Ne => r#""ne""#.to_string(),
        CmpOp::Lt => r#""lt""#.to_string(),
        CmpOp::Le => r#""le""#.to_string(),
        CmpOp::Gt => r#""gt""#.to_string(),
        CmpOp::Ge => r#""ge""#.to_string(),
        CmpOp::MaskedEq(mask) => format!(r#"{{"masked_eq":{mask}}}"#),
    };
    format!(
        r#"{{"index":{},"type":"qword","op":{op},"val":{}}}"#,
        a.index, a.value
    )
}

fn action_json(a: Action) -> String {
    match a {
        Action::Allow => r#""allow""#.into(),
        Action::Errno(n) => format!(r#"{{"errno":{n}}}"#),
        Action::KillThread => r#""kill_thread""#.into(),
        Action::KillProcess => r#""kill_process""#.into(),
        Action::Trap => r#""trap""#.into(),
        Action::Trace(n) => format!(r#"{{"trace":{n}}}"#),
        Action::Log => r#""log""#.into(),
    }
}

/// `s` as a JSON string (syscall names from a profile may hold anything).
fn json_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
