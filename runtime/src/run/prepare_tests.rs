//! [`prepare`] on made-up host facts: what the sandbox gets for several requests.

use std::path::PathBuf;

use super::*;
use crate::devices::HostDevice;
use crate::security::{Seccomp, Security};
use crate::spec::{Mount, MountKind, Network, Process};
use crate::userns::{IdMap, IdRange};
use libc::{MS_BIND, MS_NODEV, MS_NOEXEC, MS_NOSUID, MS_RDONLY, MS_REC, MS_REMOUNT};

const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
                      app:x:1000:1000:app:/home/app:/bin/sh\n";
const GROUP: &str = "root:x:0:\nwheel:x:10:app\napp:x:1000:\ndocker:x:999:\n";

/// Capabilities 0..=40, but for CAP_SYS_MODULE (16), which hoist's own bounding set lacks here.
const BOUNDING: u64 = ((1 << 41) - 1) & !(1 << 16);

fn host() -> Host {
    Host {
        ids: IdMap::host(),
        setgroups_denied: false,
        setattr: true,
        bounding: BOUNDING,
        last_cap: 40,
        root: PathBuf::from("/run/x/rootfs"),
        root_locked: MS_NOSUID,
        overlay: None,
        etc_dir: PathBuf::from("/run/x"),
        etc_locked: MS_NOEXEC,
        sys_locked: 0,
        resolv_conf: "nameserver 10.0.0.1\n".into(),
        passwd: PASSWD.into(),
        group: GROUP.into(),
        cgroup_view: Vec::new(),
        cgroupns: false,
        devices: vec![
            HostDevice {
                path: "fuse".into(),
                mode: libc::S_IFCHR | 0o666,
                rdev: 0x0a00 | 229,
            },
            HostDevice {
                path: "net/tun".into(),
                mode: libc::S_IFCHR | 0o666,
                rdev: 0x0a00 | 200,
            },
        ],
        sources: vec![
            (PathBuf::from("/data"), Ok((true, MS_NOSUID))),
            (PathBuf::from("/etc/app.conf"), Ok((false, 0))),
            (
                PathBuf::from("/missing"),
                Err("bind source path /missing: No such file or directory (os error 2)".into()),
            ),
        ],
    }
}

fn spec(args: &[&str]) -> Spec {
    Spec {
        rootfs: Rootfs::Overlay {
            lowers: Vec::new(),
            upper: PathBuf::from("/u"),
            work: PathBuf::from("/w"),
        },
        process: Process {
            args: args.iter().map(|a| a.to_string()).collect(),
            ..Process::default()
        },
        ..Spec::default()
    }
}

/// (target, flags) of every mount op.
fn mounts(p: &Prepared) -> Vec<(String, libc::c_ulong)> {
    p.ops
        .iter()
        .filter_map(|op| match op {
            Op::Mount { target, flags, .. } => Some((target.to_string_lossy().into(), *flags)),
            _ => None,
        })
        .collect()
}

fn mount_flags(p: &Prepared, target: &str) -> Vec<libc::c_ulong> {
    mounts(p)
        .into_iter()
        .filter(|(t, _)| t == target)
        .map(|(_, f)| f)
        .collect()
}

fn masked(p: &Prepared) -> Vec<String> {
    p.ops
        .iter()
        .filter_map(|op| match op {
            Op::Mask { target } => Some(target.to_string_lossy().into()),
            _ => None,
        })
        .collect()
}

fn mknods(p: &Prepared) -> Vec<String> {
    p.ops
        .iter()
        .filter_map(|op| match op {
            Op::Mknod { dir, name, .. } => Some(format!(
                "{}/{}",
                dir.to_string_lossy(),
                name.to_string_lossy()
            )),
            _ => None,
        })
        .collect()
}

#[test]
fn defaults_are_dockers() {
    let p = prepare(&spec(&["ls", "-l"]), &host()).unwrap();
    assert_eq!(p.hostname, "hoist");
    assert_eq!((p.user.uid, p.user.gid), (0, 0));
    assert_eq!(p.env, [format!("PATH={DEFAULT_PATH}"), "HOME=/root".into()]);
    assert_eq!(p.candidates[0], "/usr/local/sbin/ls");
    assert_eq!(p.candidates.len(), DEFAULT_PATH.split(':').count());
    assert_eq!(p.cwd, "/");
    assert_eq!(p.root_flags, MS_NODEV);
    assert_eq!(
        p.caps.keep,
        crate::capabilities::docker_default_mask() & BOUNDING
    );
    assert!(!p.filters.programs.is_empty(), "Docker's seccomp profile");
    // Docker's masked paths, /proc and a nodev /dev, read-only sysfs.
    assert!(masked(&p).contains(&"proc/kcore".to_string()));
    assert_eq!(mount_flags(&p, "proc"), [MS_NOSUID | MS_NODEV | MS_NOEXEC]);
    assert_eq!(
        mount_flags(&p, "sys"),
        [MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC]
    );
    assert_eq!(mount_flags(&p, "dev")[0] & MS_NODEV, MS_NODEV);
    // The /etc files: written to the scratch directory, bound read-write.
    let files: Vec<&PathBuf> = p.files.iter().map(|(f, _)| f).collect();
    assert_eq!(
        files,
        ["/run/x/hosts", "/run/x/resolv.conf", "/run/x/hostname"]
            .map(PathBuf::from)
            .iter()
            .collect::<Vec<_>>()
    );
    assert_eq!(p.files[1].1, "nameserver 10.0.0.1\n");
    assert_eq!(p.files[2].1, "hoist\n");
    assert_eq!(mount_flags(&p, "etc/hosts"), [MS_BIND]);
    // No read-only root, no host devices.
    assert!(mount_flags(&p, ".").is_empty());
    assert!(mknods(&p).is_empty());
}

#[test]
fn privileged_unmasks_and_gets_the_host_devices() {
    let mut s = spec(&["sh"]);
    s.security = Security::privileged();
    let p = prepare(&s, &host()).unwrap();
    assert_eq!(p.root_flags, 0);
    assert!(p.root_recursive);
    assert!(masked(&p).is_empty());
    assert!(p.filters.programs.is_empty());
    assert_eq!(mount_flags(&p, "sys"), [MS_NOSUID | MS_NODEV | MS_NOEXEC]);
    assert_eq!(mount_flags(&p, "dev")[0] & MS_NODEV, 0);
    assert_eq!(mknods(&p), ["dev/fuse", "dev/net/tun"]);
    // Rootless: the host's nodes are bound over empty files instead.
    let mut h = host();
    h.ids = IdMap {
        uids: vec![IdRange {
            inside: 0,
            outside: 1000,
            count: 65536,
        }],
        gids: vec![IdRange {
            inside: 0,
            outside: 1000,
            count: 65536,
        }],
    };
    let p = prepare(&s, &h).unwrap();
    assert!(mknods(&p).is_empty());
    assert_eq!(mount_flags(&p, "dev/net/tun"), [MS_BIND]);
}

#[test]
fn read_only_root_keeps_nodev_and_locks_the_etc_files() {
    let mut s = spec(&["sh"]);
    s.readonly_rootfs = true;
    let p = prepare(&s, &host()).unwrap();
    let ro = MS_BIND | MS_REMOUNT | MS_RDONLY;
    assert_eq!(mount_flags(&p, "."), [ro | MS_NODEV]);
    assert_eq!(mount_flags(&p, "etc/hosts"), [MS_BIND, ro | MS_NOEXEC]);
    // The remount of the root comes last: mountpoints and the working directory exist by then.
    assert!(matches!(p.ops.last(), Some(Op::Mount { target, .. }) if target.to_str() == Ok(".")));
    // A directory root keeps the flags its mount locks.
    s.rootfs = Rootfs::Dir(PathBuf::from("/srv/root"));
    let p = prepare(&s, &host()).unwrap();
    assert_eq!(mount_flags(&p, "."), [ro | MS_NOSUID | MS_NODEV]);
}

#[test]
fn directory_root_is_made_nodev() {
    let mut s = spec(&["sh"]);
    s.rootfs = Rootfs::Dir(PathBuf::from("/srv/root"));
    let p = prepare(&s, &host()).unwrap();
    assert!(matches!(&p.ops[0], Op::SetAttr { target, set }
        if target.to_str() == Ok(".") && *set == libc::MOUNT_ATTR_NODEV));
    let mut h = host();
    h.setattr = false;
    let p = prepare(&s, &h).unwrap();
    assert!(!p.root_recursive);
    assert_eq!(
        mount_flags(&p, ".")[0],
        MS_BIND | MS_REMOUNT | MS_NODEV | MS_NOSUID
    );
}

#[test]
fn capabilities_are_the_asked_ones_within_the_bounding_set() {
    let mut s = spec(&["sh"]);
    let net_admin = 1u64 << 12;
    let sys_module = 1u64 << 16;
    let chown = 1u64;
    s.security.capabilities =
        (crate::capabilities::docker_default_mask() | net_admin | sys_module) & !chown;
    let p = prepare(&s, &host()).unwrap();
    assert_ne!(p.caps.keep & net_admin, 0, "added");
    assert_eq!(p.caps.keep & chown, 0, "dropped");
    assert_eq!(p.caps.keep & sys_module, 0, "not in hoist's bounding set");
    assert_eq!(p.caps.last_cap, 40);
}

#[test]
fn user_groups_and_home() {
    let mut s = spec(&["id"]);
    s.process.user = Some("app".into());
    s.process.groups = vec!["docker".into(), "4242".into(), "wheel".into()];
    s.process.cwd = "/work".into();
    s.process.tty = true;
    let p = prepare(&s, &host()).unwrap();
    assert_eq!((p.user.uid, p.user.gid), (1000, 1000));
    for g in [1000, 10, 999, 4242] {
        assert!(p.user.groups.contains(&g), "{g} in {:?}", p.user.groups);
    }
    assert_eq!(p.user.groups.iter().filter(|&&g| g == 10).count(), 1);
    assert!(p.env.contains(&"HOME=/home/app".to_string()));
    assert!(p.env.contains(&"TERM=xterm".to_string()));
    assert_eq!(p.cwd, "/work");
    assert!(matches!(p.ops.last(), Some(Op::Ensure { comps, .. })
        if comps.last().is_some_and(|c| c.path.to_str() == Ok("work"))));

    s.process.user = Some("nobody".into());
    let err = prepare(&s, &host()).unwrap_err().to_string();
    assert!(err.contains("nobody"), "{err}");
    s.process.user = None;
    s.process.groups = vec!["nogroup".into()];
    let err = prepare(&s, &host()).unwrap_err().to_string();
    assert!(err.contains("nogroup"), "{err}");
}

#[test]
fn tmpfs_and_binds_are_nodev_unless_privileged() {
    let mut s = spec(&["sh"]);
    s.mounts = vec![
        Mount {
            target: "/t".into(),
            kind: MountKind::TmpfsOptions {
                flags: MS_NOSUID,
                data: "size=1m".into(),
            },
        },
        Mount {
            target: "/s".into(),
            kind: MountKind::Tmpfs {
                size: Some(4096),
                mode: None,
            },
        },
        Mount {
            target: "/data".into(),
            kind: MountKind::Bind {
                src: PathBuf::from("/data"),
                readonly: true,
            },
        },
    ];
    let p = prepare(&s, &host()).unwrap();
    assert_eq!(mount_flags(&p, "t"), [MS_NOSUID | MS_NODEV]);
    assert_eq!(mount_flags(&p, "s"), [MS_NOSUID | MS_NODEV]);
    assert!(
        p.ops
            .iter()
            .any(|op| matches!(op, Op::Mount { target, data: Some(d), .. }
        if target.to_str() == Ok("s") && d.to_str() == Ok("mode=1777,size=4096")))
    );
    assert_eq!(mount_flags(&p, "data"), [MS_BIND | MS_REC]);
    assert!(
        p.ops
            .iter()
            .any(|op| matches!(op, Op::SetAttr { target, set }
        if target.to_str() == Ok("data")
            && *set == libc::MOUNT_ATTR_NODEV | libc::MOUNT_ATTR_RDONLY))
    );

    s.security = Security::privileged();
    let p = prepare(&s, &host()).unwrap();
    assert_eq!(mount_flags(&p, "t"), [MS_NOSUID]);
}

#[test]
fn bad_mounts_and_profiles_are_refused() {
    let mut s = spec(&["sh"]);
    s.mounts = vec![Mount {
        target: "/m".into(),
        kind: MountKind::Bind {
            src: PathBuf::from("/missing"),
            readonly: false,
        },
    }];
    let err = prepare(&s, &host()).unwrap_err().to_string();
    assert!(err.contains("bind source path /missing"), "{err}");
    s.mounts = vec![Mount {
        target: "/".into(),
        kind: MountKind::Tmpfs {
            size: None,
            mode: None,
        },
    }];
    let err = prepare(&s, &host()).unwrap_err().to_string();
    assert!(err.contains("cannot mount over /"), "{err}");
    s.mounts.clear();
    s.security.seccomp = Seccomp::Unconfined;
    assert!(prepare(&s, &host()).unwrap().filters.programs.is_empty());
}

#[test]
fn build_steps_get_buildkits_sandbox() {
    let mut s = spec(&["sh"]);
    s.flavor = Flavor::Build;
    s.network = Network::Host;
    let p = prepare(&s, &host()).unwrap();
    assert_eq!(p.hostname, "buildkitsandbox");
    let names: Vec<String> = p
        .files
        .iter()
        .map(|(f, _)| f.file_name().unwrap().to_string_lossy().into())
        .collect();
    assert_eq!(names, ["hosts", "resolv.conf"], "no /etc/hostname");
    let ro = MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC;
    assert_eq!(mount_flags(&p, "etc/resolv.conf"), [MS_BIND, ro]);
    s.hostname = "box".into();
    assert!(
        prepare(&s, &host()).unwrap().files[0]
            .1
            .contains("localhost box\n")
    );
}

#[test]
fn rootless_refuses_unmapped_users() {
    let mut h = host();
    let single = vec![IdRange {
        inside: 0,
        outside: 1000,
        count: 1,
    }];
    h.ids = IdMap {
        uids: single.clone(),
        gids: single,
    };
    let mut s = spec(&["sh"]);
    s.process.user = Some("app".into());
    let err = prepare(&s, &h).unwrap_err().to_string();
    assert!(err.contains("uid 1000 does not exist"), "{err}");
    s.process.user = None;
    assert!(prepare(&s, &h).is_ok());
}
