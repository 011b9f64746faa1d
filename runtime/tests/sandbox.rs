//! Sandbox behaviour on a real busybox root filesystem (Debian's busybox-static), as root.

use std::fs;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use hoist_runtime::{
    ExitStatus, Flavor, Limits, Mount, MountKind, Network, Pid1, Process, Rootfs, Security, Spec,
    Stdio, run,
};

/// A minimal image: busybox, its applets, /etc/passwd and /etc/group.
fn busybox_rootfs(dir: &Path) {
    fs::create_dir_all(dir.join("bin")).unwrap();
    fs::copy("/bin/busybox", dir.join("bin/busybox")).unwrap();
    let out = std::process::Command::new("/bin/busybox")
        .arg("--list")
        .output()
        .unwrap();
    for applet in String::from_utf8(out.stdout).unwrap().lines() {
        if applet != "busybox" {
            let _ = symlink("busybox", dir.join("bin").join(applet));
        }
    }
    fs::create_dir_all(dir.join("etc")).unwrap();
    fs::write(
        dir.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home/nobody:/bin/sh\n",
    )
    .unwrap();
    fs::write(
        dir.join("etc/group"),
        "root:x:0:\nnogroup:x:65534:\nstaff:x:50:nobody\n",
    )
    .unwrap();
}

struct Fixture {
    _tmp: tempfile::TempDir,
    lower: PathBuf,
    upper: PathBuf,
    work: PathBuf,
}

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let lower = tmp.path().join("lower");
    busybox_rootfs(&lower);
    let upper = tmp.path().join("upper");
    let work = tmp.path().join("work");
    fs::create_dir(&upper).unwrap();
    fs::create_dir(&work).unwrap();
    Fixture {
        _tmp: tmp,
        lower,
        upper,
        work,
    }
}

impl Fixture {
    fn spec(&self, script: &str) -> Spec {
        Spec {
            rootfs: Rootfs::Overlay {
                lowers: vec![self.lower.clone()],
                upper: self.upper.clone(),
                work: self.work.clone(),
            },
            process: Process {
                args: vec!["sh".into(), "-c".into(), script.into()],
                ..Default::default()
            },
            ..Default::default()
        }
    }
}

fn pipe() -> (fs::File, fs::File) {
    use std::os::fd::FromRawFd;
    let mut fds = [0; 2];
    // SAFETY: `fds` is a valid array of two descriptors for the kernel to fill.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: pipe2 succeeded: both descriptors are open and owned by nothing else.
    unsafe { (fs::File::from_raw_fd(fds[0]), fs::File::from_raw_fd(fds[1])) }
}

/// Runs and captures stdout and stderr.
fn capture(spec: &Spec) -> (hoist_runtime::Result<ExitStatus>, String, String) {
    let (mut out_r, out_w) = pipe();
    let (mut err_r, err_w) = pipe();
    let status = run(
        spec,
        Stdio::Fds {
            stdin: None,
            stdout: OwnedFd::from(out_w),
            stderr: OwnedFd::from(err_w),
        },
    );
    let mut out = String::new();
    let mut err = String::new();
    out_r.read_to_string(&mut out).unwrap();
    err_r.read_to_string(&mut err).unwrap();
    (status, out, err)
}

fn ok(spec: &Spec) -> String {
    let (status, out, err) = capture(spec);
    assert_eq!(
        status.unwrap(),
        ExitStatus::Code(0),
        "stdout: {out}\nstderr: {err}"
    );
    out
}

#[test]
fn pid1_and_no_host_processes() {
    let f = fixture();
    let out = ok(&f.spec("echo $PPID; ls /proc | grep -E '^[0-9]+$' | sort -n | tr '\\n' ' '"));
    let mut lines = out.lines();
    // The shell's parent is the sandbox's PID 1; only sandbox processes are visible.
    assert_eq!(lines.next(), Some("1"));
    let pids: Vec<u32> = lines
        .next()
        .unwrap()
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    assert_eq!(pids[0], 1);
    assert!(pids.len() <= 8, "{pids:?}");
    assert!(pids.iter().all(|p| *p < 20), "{pids:?}");
}

#[test]
fn hostname_and_etc_files() {
    let f = fixture();
    let mut spec =
        f.spec("hostname; cat /etc/hostname; grep -c box1 /etc/hosts; echo x >> /etc/hosts");
    spec.hostname = "box1".into();
    assert_eq!(ok(&spec), "box1\nbox1\n1\n");
    // The /etc files and mountpoints never land in the upper.
    let left: Vec<_> = walk(&f.upper);
    assert!(left.is_empty(), "upper holds {left:?}");
}

/// A build step's sandbox is BuildKit's: its host name and /etc/hosts, both /etc files read-only,
/// no /etc/hostname mount (a write to it is the step's change, in the upper with nothing else
/// but the /dev, /proc and /sys the image lacked).
#[test]
fn build_flavor_is_buildkits_sandbox() {
    let f = fixture();
    let mut spec = f.spec(
        "hostname; cat /etc/hosts; test -e /etc/hostname || echo no-hostname; \
         echo x >> /etc/hosts || echo hosts-ro; echo x >> /etc/resolv.conf || echo resolv-ro; \
         echo myhost > /etc/hostname",
    );
    spec.flavor = Flavor::Build;
    assert_eq!(
        ok(&spec),
        "buildkitsandbox\n127.0.0.1\tlocalhost buildkitsandbox\n\
         ::1\tlocalhost ip6-localhost ip6-loopback\nno-hostname\nhosts-ro\nresolv-ro\n"
    );
    // The fixture's image has no /dev, /proc, /sys: runc's are kept, as BuildKit's layer has them.
    let mut left: Vec<_> = walk(&f.upper);
    left.sort();
    let want = ["dev", "etc", "etc/hostname", "proc", "sys"].map(|p| f.upper.join(p));
    assert_eq!(left, want);
    assert_eq!(
        fs::read_to_string(f.upper.join("etc/hostname")).unwrap(),
        "myhost\n"
    );
}

/// A directory root is `nodev` with the submounts below it: nodes there cannot be opened.
#[test]
fn dir_rootfs_is_nodev_with_its_submounts() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    busybox_rootfs(&root);
    fs::create_dir(root.join("sub")).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "hoist-test"])
        .arg(root.join("sub"))
        .status()
        .unwrap();
    assert!(mounted.success());
    for node in [root.join("node"), root.join("sub/node")] {
        let c = std::ffi::CString::new(node.to_str().unwrap()).unwrap();
        let dev = libc::makedev(1, 3);
        assert_eq!(
            // SAFETY: `c` is a valid NUL-terminated path that outlives the call.
            unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR | 0o666, dev) },
            0
        );
    }
    let probe = "for n in /node /sub/node; do \
                 if (echo x > $n) 2>/dev/null; then echo open; else echo denied; fi; done";
    let mut spec = Spec {
        rootfs: Rootfs::Dir(root.clone()),
        process: Process {
            args: vec!["sh".into(), "-c".into(), probe.into()],
            ..Default::default()
        },
        ..Default::default()
    };
    let denied = ok(&spec);
    spec.security = Security::privileged();
    let privileged = ok(&spec);
    let _ = std::process::Command::new("umount")
        .arg("-l")
        .arg(root.join("sub"))
        .status();
    assert_eq!(denied, "denied\ndenied\n");
    assert_eq!(privileged, "open\nopen\n");
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        out.push(p.clone());
        if p.is_dir() && !p.is_symlink() {
            out.extend(walk(&p));
        }
    }
    out
}

#[test]
fn network_none_has_only_lo_up() {
    let f = fixture();
    let out = ok(&f.spec("ls /sys/class/net; ip link show lo"));
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("lo"));
    assert!(lines.next().unwrap().contains("UP"), "{out}");
}

#[test]
fn network_host_sees_host_interfaces() {
    let f = fixture();
    let mut spec = f.spec("ls /sys/class/net");
    spec.network = Network::Host;
    let out = ok(&spec);
    let host: Vec<String> = fs::read_dir("/sys/class/net")
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    for name in host {
        assert!(out.lines().any(|l| l == name), "{name} missing from {out}");
    }
}

#[test]
fn writes_land_in_upper_not_lower() {
    let f = fixture();
    ok(&f.spec("echo hi > /etc/new; rm /bin/ls; mkdir -p /app/x"));
    assert_eq!(fs::read_to_string(f.upper.join("etc/new")).unwrap(), "hi\n");
    assert!(!f.lower.join("etc/new").exists());
    assert!(f.lower.join("bin/ls").is_symlink());
    assert!(f.upper.join("app/x").is_dir());
    // Whiteout for the deleted file.
    use std::os::unix::fs::FileTypeExt;
    assert!(
        fs::symlink_metadata(f.upper.join("bin/ls"))
            .unwrap()
            .file_type()
            .is_char_device()
    );
    // Standard mountpoints were removed again.
    for p in [
        "proc",
        "dev",
        "sys",
        "etc/hosts",
        "etc/resolv.conf",
        "etc/hostname",
    ] {
        assert!(!f.upper.join(p).exists(), "{p} left in upper");
    }
}

#[test]
fn exit_codes_and_signals() {
    let f = fixture();
    assert_eq!(capture(&f.spec("exit 42")).0.unwrap(), ExitStatus::Code(42));
    assert_eq!(
        capture(&f.spec("kill -TERM $$")).0.unwrap(),
        ExitStatus::Signal(15)
    );
    assert_eq!(capture(&f.spec("kill -KILL $$")).0.unwrap().code(), 137);
    let mut spec = f.spec("");
    spec.process.args = vec!["/nonexistent".into()];
    assert_eq!(capture(&spec).0.unwrap_err().exit_code(), 127);
    spec.process.args = vec!["/etc/passwd".into()];
    assert_eq!(capture(&spec).0.unwrap_err().exit_code(), 126);
    spec.process.args = vec!["no-such-command".into()];
    assert_eq!(capture(&spec).0.unwrap_err().exit_code(), 127);
}

#[test]
fn seccomp_and_capabilities() {
    let f = fixture();
    // unshare(2) and mount(2) are denied (EPERM) even for root.
    let (status, _, err) = capture(&f.spec("unshare -m true"));
    assert_ne!(status.unwrap(), ExitStatus::Code(0));
    assert!(err.contains("Operation not permitted"), "{err}");
    let (status, _, _) = capture(&f.spec("mount -t tmpfs t /mnt"));
    assert_ne!(status.unwrap(), ExitStatus::Code(0));
    let out = ok(&f.spec("grep -E '^(CapBnd|CapEff|NoNewPrivs|Seccomp):' /proc/self/status"));
    assert!(out.contains("CapBnd:\t00000000a80425fb"), "{out}");
    assert!(out.contains("CapEff:\t00000000a80425fb"), "{out}");
    assert!(out.contains("NoNewPrivs:\t1"), "{out}");
    assert!(out.contains("Seccomp:\t2"), "{out}");
}

/// keyctl(2) is denied by Docker's profile (the kernel keyring is not namespaced). busybox has no
/// keyctl applet, so a static probe is compiled with the host's C compiler and put in the image;
/// on the host, and with seccomp unconfined, the same probe is allowed.
#[test]
fn seccomp_denies_keyctl() {
    let f = fixture();
    let src = f.lower.join("probe.c");
    fs::write(
        &src,
        "#include <sys/syscall.h>\n#include <unistd.h>\n#include <errno.h>\n#include <stdio.h>\n\
         int main(void) { long r = syscall(SYS_keyctl, 0L, -3L, 0L);\n\
         puts(r >= 0 ? \"allowed\" : errno == EPERM ? \"EPERM\" : \"other\"); return 0; }\n",
    )
    .unwrap();
    let probe = f.lower.join("bin/keyctl-probe");
    let built = std::process::Command::new("cc")
        .args(["-static", "-O2", "-o"])
        .arg(&probe)
        .arg(&src)
        .status()
        .expect("cc (gcc) to build the probe");
    assert!(built.success());
    let host = std::process::Command::new(&probe).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&host.stdout), "allowed\n");
    assert_eq!(ok(&f.spec("keyctl-probe")), "EPERM\n");
    let mut spec = f.spec("keyctl-probe");
    spec.security.seccomp = hoist_runtime::Seccomp::Unconfined;
    assert_eq!(ok(&spec), "allowed\n");
}

#[test]
fn user_resolution() {
    let f = fixture();
    let mut spec = f.spec("id -u; id -g; id -G; echo $HOME; grep CapEff /proc/self/status");
    spec.process.user = Some("nobody".into());
    assert_eq!(
        ok(&spec),
        "65534\n65534\n65534 50\n/home/nobody\nCapEff:\t0000000000000000\n"
    );
    spec.process.user = Some("1234:77".into());
    spec.process.args[2] = "id -u; id -g".into();
    assert_eq!(ok(&spec), "1234\n77\n");
    spec.process.user = Some("ghost".into());
    assert!(capture(&spec).0.is_err());
}

#[test]
fn env_and_workdir() {
    let f = fixture();
    let mut spec = f.spec("pwd; echo $FOO; echo $PATH");
    spec.process.env = vec!["FOO=bar baz".into()];
    spec.process.cwd = "/work/dir".into();
    assert_eq!(
        ok(&spec),
        format!("/work/dir\nbar baz\n{}\n", hoist_runtime::DEFAULT_PATH)
    );
    assert!(f.upper.join("work/dir").is_dir());
}

#[test]
fn bind_tmpfs_and_readonly_mounts() {
    let f = fixture();
    let host = tempfile::tempdir().unwrap();
    fs::write(host.path().join("in"), "data").unwrap();
    let mut spec = f.spec(
        "cat /ro/in; touch /ro/x 2>/dev/null && echo ro-writable; echo out > /rw/out; \
         grep -q ' /tmp/t tmpfs ' /proc/mounts && echo tmpfs",
    );
    spec.mounts = vec![
        Mount {
            target: "/ro".into(),
            kind: MountKind::Bind {
                src: host.path().into(),
                readonly: true,
            },
        },
        Mount {
            target: "/rw".into(),
            kind: MountKind::Bind {
                src: host.path().into(),
                readonly: false,
            },
        },
        Mount {
            target: "/tmp/t".into(),
            kind: MountKind::Tmpfs {
                size: Some(1 << 20),
                mode: None,
            },
        },
    ];
    assert_eq!(ok(&spec), "datatmpfs\n");
    assert_eq!(
        fs::read_to_string(host.path().join("out")).unwrap(),
        "out\n"
    );
    assert!(!host.path().join("x").exists());
    assert!(!f.upper.join("ro").exists() && !f.upper.join("rw").exists());
}

#[test]
fn no_mount_left_behind() {
    let before = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let f = fixture();
    ok(&f.spec("true"));
    let after = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let count = |s: &str| s.lines().filter(|l| l.contains("hoist-run")).count();
    assert_eq!(count(&after), 0);
    assert_eq!(before.lines().count(), after.lines().count());
}

#[test]
fn memory_limit_kills_hog() {
    let f = fixture();
    let mut spec = f.spec("head -c 400m /dev/zero | tail");
    spec.limits = Limits {
        memory: Some(32 << 20),
        ..Default::default()
    };
    let (status, _, _) = capture(&spec);
    assert_eq!(status.unwrap(), ExitStatus::Code(137));
    spec.process.args[2] = "head -c 4m /dev/zero | tail | wc -c".into();
    assert_eq!(ok(&spec), "4194304\n");
}

#[test]
fn pids_limit_enforced() {
    let f = fixture();
    let script = "for i in 1 2 3 4 5 6 7 8 9 10; do sleep 2 & done; echo started";
    let mut spec = f.spec(script);
    // Unlimited: ten background sleeps start.
    assert_eq!(ok(&spec), "started\n");
    spec.limits = Limits {
        pids: Some(5),
        ..Default::default()
    };
    let (status, out, err) = capture(&spec);
    assert_ne!(status.unwrap(), ExitStatus::Code(0), "{out}");
    assert!(err.contains("fork"), "{err}");
}

#[test]
fn dir_rootfs_and_cleanup() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    busybox_rootfs(&root);
    let spec = Spec {
        rootfs: Rootfs::Dir(root.clone()),
        process: Process {
            args: vec!["sh".into(), "-c".into(), "echo $$ > /pid; ls /dev".into()],
            ..Default::default()
        },
        ..Default::default()
    };
    let out = ok(&spec);
    for dev in [
        "null", "zero", "full", "random", "urandom", "tty", "ptmx", "pts", "shm",
    ] {
        assert!(out.lines().any(|l| l == dev), "{dev} missing: {out}");
    }
    assert_eq!(fs::read_to_string(root.join("pid")).unwrap(), "2\n");
    for p in ["proc", "dev", "sys", "etc/hosts"] {
        assert!(!root.join(p).exists(), "{p} left behind");
    }
}

#[test]
fn command_as_pid1_on_a_read_only_root() {
    let f = fixture();
    let mut spec = f.spec(
        "echo $$; touch /x 2>/dev/null && echo rw || echo ro; touch /t/y && echo tmpfs-rw; \
         echo > /etc/hostname 2>/dev/null || echo etc-ro; pwd",
    );
    spec.pid1 = Pid1::Command;
    spec.readonly_rootfs = true;
    spec.process.cwd = "/made/here".into();
    spec.mounts = vec![Mount {
        target: "/t".into(),
        kind: MountKind::TmpfsOptions {
            flags: libc::MS_NOSUID,
            data: "size=1m".into(),
        },
    }];
    assert_eq!(ok(&spec), "1\nro\ntmpfs-rw\netc-ro\n/made/here\n");
    assert!(!f.upper.join("x").exists());
    // The command's own exit status and signal come back without the init.
    spec.process.args = vec!["sh".into(), "-c".into(), "exit 5".into()];
    assert_eq!(capture(&spec).0.unwrap(), ExitStatus::Code(5));
    spec.process.args = vec![
        "sh".into(),
        "-c".into(),
        "trap - TERM; kill -SEGV $$".into(),
    ];
    assert_eq!(
        capture(&spec).0.unwrap(),
        ExitStatus::Code(0),
        "PID 1 ignores it"
    );
}

#[test]
fn only_stdio_crosses_into_concurrent_sandboxes() {
    // A descriptor this process opened without close-on-exec, and the runs' own descriptors.
    // SAFETY: the path is a valid C string.
    let leak = unsafe { libc::open(c"/".as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY) };
    assert!(leak > 2);
    let runs: Vec<_> = (0..4)
        .map(|i| {
            std::thread::spawn(move || {
                let f = fixture();
                let mut spec = f.spec("ls /proc/self/fd; sleep 0.2");
                spec.pid1 = if i % 2 == 0 {
                    Pid1::Init
                } else {
                    Pid1::Command
                };
                ok(&spec)
            })
        })
        .collect();
    for r in runs {
        assert_eq!(r.join().unwrap(), "0\n1\n2\n3\n");
    }
    // SAFETY: `leak` is the descriptor opened above, used by nothing else.
    unsafe { libc::close(leak) };
}

#[test]
fn tty_is_the_sandboxs_own_pts() {
    let f = fixture();
    let mut spec = f.spec("tty; test -t 0 && test -t 2 && echo all-three");
    spec.process.tty = true;
    spec.pid1 = Pid1::Command;
    // Output goes through the pty (CRLF).
    assert_eq!(ok(&spec), "/dev/pts/0\r\nall-three\r\n");
}

#[test]
fn capability_sets_and_privileged() {
    let f = fixture();
    let mut spec = f.spec("grep CapEff /proc/self/status");
    spec.security.capabilities = 1 << 12;
    assert_eq!(ok(&spec), "CapEff:\t0000000000001000\n");
    spec.process.args[2] = "mkdir -p /mnt && mount -t tmpfs none /mnt && echo mounted".into();
    assert_ne!(capture(&spec).0.unwrap(), ExitStatus::Code(0));
    spec.security = Security::privileged();
    assert_eq!(ok(&spec), "mounted\n");
}

#[test]
fn failures_in_the_sandbox_name_their_step_and_errno() {
    let f = fixture();
    // A working directory below a file: making it fails in the mount plan, as ENOTDIR.
    let mut spec = f.spec("true");
    spec.process.cwd = "/etc/passwd/sub".into();
    let err = run(&spec, Stdio::Null).unwrap_err();
    assert_eq!(err.exit_code(), 125);
    let msg = err.to_string();
    assert!(
        msg.starts_with("sandbox setup failed: creating a mountpoint (step "),
        "{msg}"
    );
    assert!(msg.ends_with("Not a directory (os error 20)"), "{msg}");
    // A command that is not there: the exec step's own report (127), not a setup failure.
    let spec = Spec {
        process: Process {
            args: vec!["no-such-command".into()],
            ..Default::default()
        },
        ..f.spec("")
    };
    let err = run(&spec, Stdio::Null).unwrap_err();
    assert_eq!(err.exit_code(), 127);
    assert_eq!(
        err.to_string(),
        "exec: \"no-such-command\": executable file not found in $PATH"
    );
    // A directory that is not executable: 126, with the errno.
    let spec = Spec {
        process: Process {
            args: vec!["/etc".into()],
            ..Default::default()
        },
        ..f.spec("")
    };
    let err = run(&spec, Stdio::Null).unwrap_err();
    assert_eq!(err.exit_code(), 126);
    assert!(err.to_string().contains("Permission denied"), "{err}");
}
