//! Turning a [`Spec`] and the [`Host`] facts into everything the sandbox needs ([`Prepared`]): host
//! name, identity, environment, the mount plan, the /etc files, capabilities, seccomp, rlimits. A
//! pure function: it reads nothing and changes nothing on the host (so it is tested on its own).

use std::path::PathBuf;

use super::host::Host;
use crate::capabilities::CapSet;
use crate::devices;
use crate::error::Result;
use crate::etc::{BUILD_HOSTNAME, build_hosts, default_hosts};
use crate::init::Op;
use crate::mounts::{self, Tracker};
use crate::seccomp::Filters;
use crate::spec::{Flavor, Process, Rootfs, Spec};
use crate::user::{self, User};
use crate::userns;

/// Docker's default `PATH`.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A run, prepared: what the parent writes and what the children do.
#[derive(Debug)]
pub(crate) struct Prepared {
    pub hostname: String,
    pub user: User,
    pub env: Vec<String>,
    /// Exec candidates for `args[0]`, in order.
    pub candidates: Vec<String>,
    pub cwd: String,
    /// The mount plan, in order.
    pub ops: Vec<Op>,
    /// Mountpoints the plan may create in the rootfs (removed after the run).
    pub tracker: Tracker,
    /// Files to write before the run (the /etc files the plan binds).
    pub files: Vec<(PathBuf, String)>,
    /// Flags of the overlay root mount.
    pub root_flags: libc::c_ulong,
    /// A directory root is bound with its submounts.
    pub root_recursive: bool,
    pub caps: CapSet,
    pub filters: Filters,
}

/// Prepares `spec` on `host`. Errors: an unusable spec (user, paths, seccomp profile).
pub(crate) fn prepare(spec: &Spec, host: &Host) -> Result<Prepared> {
    let p = &spec.process;
    let hostname = match (spec.hostname.as_str(), spec.flavor) {
        ("", Flavor::Container) => "hoist",
        ("", Flavor::Build) => BUILD_HOSTNAME,
        (name, _) => name,
    }
    .to_string();

    // Identity and environment.
    let mut user = user::resolve(p.user.as_deref(), &host.passwd, &host.group)?;
    for g in &p.groups {
        let gid = user::group_id(g, &host.group)?;
        if !user.groups.contains(&gid) {
            user.groups.push(gid);
        }
    }
    userns::check_user(&host.ids, &user, host.setgroups_denied)?;
    let env = environment(p, &user.home);

    // Mount plan.
    let mut ops = Vec::new();
    let mut tracker = Tracker::default();
    let privileged = spec.security.privileged;
    // A directory root is bound, not mounted `nodev` as the overlay is: made `nodev` with its
    // submounts, or bound without them where that cannot be done.
    let root_recursive = privileged || host.setattr;
    if let Rootfs::Dir(_) = spec.rootfs
        && !privileged
    {
        ops.push(if root_recursive {
            mounts::set_attr(".", libc::MS_NODEV)?
        } else {
            mounts::remount(".", libc::MS_NODEV | host.root_locked)?
        });
    }
    mounts::standard(
        &mut ops,
        &mut tracker,
        &host.ids,
        spec.network,
        privileged,
        host.sys_locked,
    )?;
    ops.extend(host.cgroup_view.iter().cloned());
    if !spec.security.unmasked_paths {
        mounts::system_path_masks(&mut ops)?;
    }
    if privileged {
        devices::ops(&mut ops, &host.devices, host.ids.rootless())?;
    }
    let files = etc_files(spec, host, &hostname, &mut ops, &mut tracker)?;
    mounts::user(
        &mut ops,
        &mut tracker,
        &spec.mounts,
        privileged,
        host.setattr,
        &|src| host.source(src),
    )?;
    let cwd = if p.cwd.is_empty() { "/" } else { &p.cwd }.to_string();
    ops.push(mounts::ensure(&cwd, false, false, None)?);
    if spec.readonly_rootfs {
        let locked = match &spec.rootfs {
            Rootfs::Dir(_) => host.root_locked,
            Rootfs::Overlay { .. } => 0,
        };
        // A remount sets every flag: the root's `nodev` is kept (an image may hold device nodes).
        let keep = locked | mounts::nodev(privileged);
        ops.push(mounts::readonly_remount(".", keep, false)?);
    }

    let filters = spec.security.filters()?;
    Ok(Prepared {
        candidates: candidates(&p.args[0], &env),
        hostname,
        user,
        env,
        cwd,
        ops,
        tracker,
        files,
        root_flags: if privileged { 0 } else { libc::MS_NODEV },
        root_recursive,
        caps: CapSet {
            keep: spec.security.capabilities & host.bounding,
            last_cap: host.last_cap,
        },
        filters,
    })
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

/// The /etc files of `spec`'s flavor, to be written to the scratch directory and bound over the
/// image's: returns (where to write, content).
fn etc_files(
    spec: &Spec,
    host: &Host,
    hostname: &str,
    ops: &mut Vec<Op>,
    tracker: &mut Tracker,
) -> Result<Vec<(PathBuf, String)>> {
    let etc = &spec.etc;
    let files = match spec.flavor {
        Flavor::Container => vec![
            (
                "hosts",
                etc.hosts.clone().unwrap_or_else(|| default_hosts(hostname)),
            ),
            ("resolv.conf", host.resolv_conf.clone()),
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
            ("resolv.conf", host.resolv_conf.clone()),
        ],
    };
    let mut written = Vec::new();
    for (name, content) in files {
        let src = host.etc_dir.join(name);
        mounts::etc_file(ops, tracker, &src, &format!("/etc/{name}"))?;
        let target = format!("etc/{name}");
        let locked = host.etc_locked;
        if spec.flavor == Flavor::Build {
            // BuildKit's: read-only, nosuid, nodev, noexec (a write fails with EROFS).
            let flags = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC | locked;
            ops.push(mounts::readonly_remount(&target, flags, true)?);
        } else if spec.readonly_rootfs {
            ops.push(mounts::readonly_remount(&target, locked, true)?);
        }
        written.push((src, content));
    }
    Ok(written)
}

#[cfg(test)]
#[path = "prepare_tests.rs"]
mod tests;
