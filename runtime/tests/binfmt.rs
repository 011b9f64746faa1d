//! Foreign-architecture RUN steps: binfmt_misc registration of Debian's qemu-user-static, then an
//! arm64 busybox (Debian's busybox-static:arm64, from fixtures/install-deps.sh) in the sandbox, as root.

use std::fs;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::Path;

use hoist_runtime::binfmt::{self, Emulation};
use hoist_runtime::{ExitStatus, Process, Rootfs, Spec, Stdio, run};

const DEBS: &str = "/var/cache/hoist-fixtures";

/// Unpacks the foreign busybox .deb into `dir` (a root filesystem with /bin/busybox).
fn foreign_busybox(arch: &str, dir: &Path) {
    let deb = fs::read_dir(DEBS)
        .ok()
        .and_then(|entries| {
            entries.flatten().map(|e| e.path()).find(|p| {
                let name = p.file_name().unwrap().to_string_lossy().into_owned();
                name.starts_with("busybox-static_") && name.ends_with(&format!("_{arch}.deb"))
            })
        })
        .unwrap_or_else(|| {
            panic!("no busybox-static_*_{arch}.deb in {DEBS}: run fixtures/install-deps.sh")
        });
    let status = std::process::Command::new("dpkg-deb")
        .arg("-x")
        .arg(&deb)
        .arg(dir)
        .status()
        .unwrap();
    assert!(status.success(), "dpkg-deb -x {}", deb.display());
}

#[test]
fn arm64_busybox_runs_as_aarch64_under_qemu() {
    if rustix::system::uname().machine().to_bytes() != b"x86_64" {
        eprintln!("skipped: the arm64 fixture is foreign only on amd64 hosts");
        return;
    }
    let emulation = binfmt::ensure("arm64").unwrap_or_else(|e| panic!("{e}"));
    let entry = match &emulation {
        Emulation::Native => panic!("arm64 is not native on an x86_64 host"),
        Emulation::Registered(e) | Emulation::RegisteredNow(e) => e,
    };
    assert_eq!(entry.name, "qemu-aarch64");
    assert!(
        Path::new("/proc/sys/fs/binfmt_misc/qemu-aarch64").exists(),
        "ensure returned {emulation:?} without a kernel entry"
    );
    // A second call finds what the first registered.
    assert!(matches!(
        binfmt::ensure("arm64").unwrap(),
        Emulation::Registered(_)
    ));
    assert_eq!(binfmt::ensure("amd64").unwrap(), Emulation::Native);
    assert_eq!(binfmt::ensure("386").unwrap(), Emulation::Native);

    let tmp = tempfile::tempdir().unwrap();
    let lower = tmp.path().join("lower");
    foreign_busybox("arm64", &lower);
    emulation.check_rootfs(&lower).unwrap();
    let (upper, work) = (tmp.path().join("upper"), tmp.path().join("work"));
    fs::create_dir(&upper).unwrap();
    fs::create_dir(&work).unwrap();
    let spec = Spec {
        rootfs: Rootfs::Overlay {
            lowers: vec![lower],
            upper,
            work,
        },
        process: Process {
            args: vec![
                "/bin/busybox".into(),
                "sh".into(),
                "-c".into(),
                "busybox uname -m; busybox echo ok".into(),
            ],
            ..Default::default()
        },
        ..Default::default()
    };
    let mut fds = [0; 2];
    // SAFETY: `fds` is a valid array of two descriptors for the kernel to fill.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    use std::os::fd::FromRawFd;
    // SAFETY: pipe2 succeeded: both descriptors are open and owned by nothing else.
    let (mut out_r, out_w) =
        unsafe { (fs::File::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let err_w = out_w.try_clone().unwrap();
    let status = run(
        &spec,
        Stdio::Fds {
            stdin: None,
            stdout: out_w,
            stderr: err_w,
        },
    );
    let mut out = String::new();
    out_r.read_to_string(&mut out).unwrap();
    assert_eq!(status.unwrap(), ExitStatus::Code(0), "output: {out}");
    assert_eq!(out, "aarch64\nok\n");
}
