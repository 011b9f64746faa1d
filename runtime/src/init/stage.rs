//! The names the children report through the shared page: the setup step that failed ([`Stage`])
//! and the milestones of a traced run ([`Mark`]). Each is a number on the page and a name for the
//! parent's error or trace line.

use std::fmt;

/// A setup step whose failure the children report (its number on the shared page; 0 = none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum Stage {
    None = 0,
    Cgroup,
    Private,
    Rootfs,
    OpenRoot,
    Ensure,
    Mount,
    Mknod,
    Symlink,
    PivotRoot,
    Hostname,
    Loopback,
    Fork,
    Stdio,
    Rlimit,
    Groups,
    User,
    Caps,
    NoNewPrivs,
    Seccomp,
    Cwd,
}

impl Stage {
    /// Every stage, in number order (`ALL[n as usize] as i32 == n`).
    pub const ALL: [Stage; 21] = [
        Stage::None,
        Stage::Cgroup,
        Stage::Private,
        Stage::Rootfs,
        Stage::OpenRoot,
        Stage::Ensure,
        Stage::Mount,
        Stage::Mknod,
        Stage::Symlink,
        Stage::PivotRoot,
        Stage::Hostname,
        Stage::Loopback,
        Stage::Fork,
        Stage::Stdio,
        Stage::Rlimit,
        Stage::Groups,
        Stage::User,
        Stage::Caps,
        Stage::NoNewPrivs,
        Stage::Seccomp,
        Stage::Cwd,
    ];

    /// The stage numbered `n` on the shared page, if any.
    pub fn from_repr(n: i32) -> Option<Stage> {
        usize::try_from(n)
            .ok()
            .and_then(|i| Stage::ALL.get(i))
            .copied()
    }

    /// What the step does, as the error names it ("mounting (step 3)").
    pub fn name(self) -> &'static str {
        match self {
            Stage::None => "none",
            Stage::Cgroup => "joining the cgroup",
            Stage::Private => "making mounts private",
            Stage::Rootfs => "mounting the root filesystem",
            Stage::OpenRoot => "opening the root filesystem",
            Stage::Ensure => "creating a mountpoint",
            Stage::Mount => "mounting",
            Stage::Mknod => "creating a device node",
            Stage::Symlink => "creating a symlink",
            Stage::PivotRoot => "pivot_root",
            Stage::Hostname => "setting the host name",
            Stage::Loopback => "bringing up the loopback interface",
            Stage::Fork => "forking the command",
            Stage::Stdio => "setting up stdio",
            Stage::Rlimit => "setting rlimits",
            Stage::Groups => "setting groups",
            Stage::User => "setting the user",
            Stage::Caps => "dropping capabilities",
            Stage::NoNewPrivs => "setting no_new_privs",
            Stage::Seccomp => "installing the seccomp filter",
            Stage::Cwd => "changing to the working directory",
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A milestone of the children, timed for `HOIST_RUNTIME_TRACE` (its index in `Shared::marks`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub enum Mark {
    InitStarted = 0,
    RootfsMounted,
    MountsDone,
    PivotRootDone,
    CommandForked,
    Exec,
}

impl Mark {
    /// Every milestone, in index order.
    pub const ALL: [Mark; 6] = [
        Mark::InitStarted,
        Mark::RootfsMounted,
        Mark::MountsDone,
        Mark::PivotRootDone,
        Mark::CommandForked,
        Mark::Exec,
    ];

    /// Its name in the trace line.
    pub fn name(self) -> &'static str {
        match self {
            Mark::InitStarted => "init started",
            Mark::RootfsMounted => "rootfs mounted",
            Mark::MountsDone => "mounts done",
            Mark::PivotRootDone => "pivot_root done",
            Mark::CommandForked => "command forked",
            Mark::Exec => "exec",
        }
    }
}

impl fmt::Display for Mark {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stage_numbers_round_trip() {
        for (i, &stage) in Stage::ALL.iter().enumerate() {
            assert_eq!(stage as i32, i as i32);
            assert_eq!(Stage::from_repr(stage as i32), Some(stage));
        }
        assert_eq!(Stage::from_repr(-1), None);
        assert_eq!(Stage::from_repr(Stage::ALL.len() as i32), None);
    }

    #[test]
    fn stage_names_are_the_reported_ones() {
        assert_eq!(Stage::None.to_string(), "none");
        assert_eq!(Stage::Mount.to_string(), "mounting");
        assert_eq!(Stage::PivotRoot.to_string(), "pivot_root");
        assert_eq!(Stage::Cwd.to_string(), "changing to the working directory");
        let mut names: Vec<&str> = Stage::ALL.iter().map(|s| s.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Stage::ALL.len(), "names are distinct");
    }

    #[test]
    fn marks_are_indexed_in_order() {
        for (i, &mark) in Mark::ALL.iter().enumerate() {
            assert_eq!(mark as usize, i);
        }
        assert_eq!(Mark::Exec.to_string(), "exec");
    }
}
