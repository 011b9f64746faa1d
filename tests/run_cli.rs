//! `hoist run` and `hoist volume` end to end, on the busybox test image (fixtures/make-busybox.sh), as
//! root.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const HOIST: &str = env!("CARGO_BIN_EXE_hoist");

struct Store {
    dir: tempfile::TempDir,
}

impl Store {
    fn new() -> Store {
        let dir = tempfile::tempdir().unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/make-busybox.sh");
        let out = Command::new("bash")
            .arg(script)
            .arg(dir.path())
            .env("HOIST", HOIST)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "make-busybox: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Store { dir }
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(HOIST);
        c.arg("--root").arg(self.root()).args(args);
        c.stdin(Stdio::null());
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    /// stdout of a successful command.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "hoist {args:?}: {:?}\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
}

fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

#[test]
fn run_exit_codes() {
    let s = Store::new();
    assert_eq!(
        s.ok(&["run", "--rm", "busybox", "echo", "hello"]),
        "hello\n"
    );
    assert_eq!(code(&s.run(&["run", "busybox", "sh", "-c", "exit 3"])), 3);
    assert_eq!(
        code(&s.run(&["run", "busybox", "sh", "-c", "kill -9 $$"])),
        137
    );
    assert_eq!(
        code(&s.run(&["run", "busybox", "sh", "-c", "kill -TERM $$"])),
        143
    );
    let out = s.run(&["run", "busybox", "no-such-command"]);
    assert_eq!(code(&out), 127);
    assert!(String::from_utf8_lossy(&out.stderr).contains("executable file not found"));
    assert_eq!(code(&s.run(&["run", "busybox", "/etc/passwd"])), 126);
    let out = s.run(&["run", "no-such-image"]);
    assert_eq!(code(&out), 125);
    assert!(String::from_utf8_lossy(&out.stderr).contains("Unable to find image"));
    // Default CMD ["sh"] with stdin closed exits 0.
    assert_eq!(s.ok(&["run", "busybox"]), "");
}

#[test]
fn run_entrypoint_cmd_env_user_workdir_hostname() {
    let s = Store::new();
    assert_eq!(
        s.ok(&["run", "--entrypoint", "echo", "busybox", "a", "b"]),
        "a b\n"
    );
    assert_eq!(s.ok(&["run", "--entrypoint", "pwd", "busybox"]), "/\n");
    let env_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(env_file.path(), "# comment\nFROM_FILE=1\nFOO=file\n").unwrap();
    let out = s.ok(&[
        "run",
        "-e",
        "FOO=bar",
        "--env-file",
        env_file.path().to_str().unwrap(),
        "-w",
        "/work/dir",
        "-u",
        "nobody",
        "--hostname",
        "box",
        "busybox",
        "sh",
        "-c",
        "echo $FOO $FROM_FILE $HOSTNAME; pwd; id -u; hostname; echo $PATH",
    ]);
    assert_eq!(
        out,
        "bar 1 box\n/work/dir\n65534\nbox\n/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n"
    );
}

#[test]
fn run_isolation() {
    let s = Store::new();
    let out = s.ok(&[
        "run",
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        "echo $$; ls /sys/class/net; ps -o pid | wc -l",
    ]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "2", "the command is PID 1's child: {out}");
    assert_eq!(lines[1], "lo", "{out}");
    let procs: usize = lines[2].trim().parse().unwrap();
    assert!(procs <= 6, "host processes visible: {out}");
    // Seccomp: unshare(2) is denied.
    let out = s.run(&["run", "busybox", "unshare", "-n", "true"]);
    assert_ne!(code(&out), 0);
}

#[test]
fn run_writes_do_not_change_the_image() {
    let s = Store::new();
    // The first run unpacks the layer; later runs must leave it as it is.
    s.ok(&["run", "busybox", "true"]);
    let unpacked = s.root().join("unpacked");
    let before = tree(&unpacked);
    s.ok(&[
        "run",
        "busybox",
        "sh",
        "-c",
        "echo x > /etc/passwd; rm /bin/ls; touch /new",
    ]);
    let after = tree(&unpacked);
    let changed: Vec<_> = after.iter().filter(|e| !before.contains(e)).collect();
    assert!(
        changed.is_empty() && after.len() == before.len(),
        "lower layer changed: {changed:?}"
    );
    let out = s.ok(&[
        "run",
        "busybox",
        "sh",
        "-c",
        "grep -c root /etc/passwd; ls /bin/ls; ls /new 2>&1 || true",
    ]);
    assert!(out.starts_with("1\n/bin/ls\n"), "{out}");
    // No container directories left behind.
    let containers = s.root().join("containers");
    if containers.exists() {
        assert_eq!(std::fs::read_dir(containers).unwrap().count(), 0);
    }
}

fn tree(dir: &Path) -> Vec<(PathBuf, u64, i64)> {
    use std::os::unix::fs::MetadataExt;
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            out.push((p.clone(), m.size(), m.mtime()));
            if m.is_dir() {
                stack.push(p);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn run_volumes_and_mounts() {
    let s = Store::new();
    assert_eq!(s.ok(&["volume", "create", "data"]), "data\n");
    s.ok(&[
        "run",
        "-v",
        "data:/data",
        "busybox",
        "sh",
        "-c",
        "echo kept > /data/f",
    ]);
    assert_eq!(
        s.ok(&[
            "run",
            "--mount",
            "type=volume,source=data,target=/d",
            "busybox",
            "cat",
            "/d/f"
        ]),
        "kept\n"
    );
    assert!(
        s.ok(&["volume", "ls"])
            .lines()
            .any(|l| l.ends_with(" data") || l == "local     data")
    );
    let inspect: serde_json::Value =
        serde_json::from_str(&s.ok(&["volume", "inspect", "data"])).unwrap();
    assert_eq!(inspect[0]["Name"], "data");
    assert_eq!(
        inspect[0]["Mountpoint"].as_str().unwrap(),
        s.root().join("volumes/data").to_str().unwrap()
    );
    assert_eq!(s.ok(&["volume", "rm", "data"]), "data\n");
    assert_eq!(s.ok(&["volume", "ls", "-q"]), "");
    assert_ne!(code(&s.run(&["volume", "rm", "data"])), 0);

    let host = tempfile::tempdir().unwrap();
    std::fs::write(host.path().join("in"), "hi").unwrap();
    let ro = format!("{}:/m:ro", host.path().display());
    let out = s.run(&[
        "run",
        "-v",
        &ro,
        "busybox",
        "sh",
        "-c",
        "cat /m/in; touch /m/x",
    ]);
    assert_ne!(code(&out), 0);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hi");
    assert!(!host.path().join("x").exists());
    let rw = format!("type=bind,source={},target=/m", host.path().display());
    s.ok(&["run", "--mount", &rw, "busybox", "touch", "/m/x"]);
    assert!(host.path().join("x").exists());
    let out = s.ok(&[
        "run",
        "--mount",
        "type=tmpfs,target=/scratch,tmpfs-size=1m",
        "busybox",
        "sh",
        "-c",
        "grep ' /scratch ' /proc/mounts | cut -d' ' -f3",
    ]);
    assert_eq!(out, "tmpfs\n");
}

#[test]
fn run_limits() {
    let s = Store::new();
    let out = s.run(&[
        "run",
        "--memory",
        "32m",
        "busybox",
        "sh",
        "-c",
        "head -c 300m /dev/zero | tail",
    ]);
    assert_eq!(code(&out), 137, "{}", String::from_utf8_lossy(&out.stderr));
    let out = s.run(&[
        "run",
        "--pids-limit",
        "4",
        "busybox",
        "sh",
        "-c",
        "for i in 1 2 3 4 5 6 7 8; do sleep 1 & done; wait",
    ]);
    assert_ne!(code(&out), 0);
    assert!(String::from_utf8_lossy(&out.stderr).contains("fork"));
    assert_eq!(s.ok(&["run", "--cpus", "0.5", "busybox", "true"]), "");
}

/// Processes whose command line is exactly `cmdline` (so hoist's own `... run busybox CMD` is not one).
fn processes_with(cmdline: &str) -> usize {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| std::fs::read(e.ok()?.path().join("cmdline")).ok())
        .filter(|c| String::from_utf8_lossy(c).replace('\0', " ").trim_end() == cmdline)
        .count()
}

#[test]
fn run_signals_and_killed_hoist() {
    let s = Store::new();
    s.ok(&["run", "busybox", "true"]);
    // SIGTERM to hoist reaches the command.
    let mut child = s
        .cmd(&[
            "run",
            "busybox",
            "sh",
            "-c",
            "trap 'exit 7' TERM; sleep 1000 & wait",
        ])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1000));
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    assert_eq!(child.wait().unwrap().code(), Some(7));

    // SIGKILL to hoist leaves no process and no mount behind, and the next run sweeps the scratch
    // directory it left, but not the one of a run still alive.
    // Unique command lines: no other test run's sandbox can match.
    let alive_secs = format!("9{}.6", std::process::id());
    let killed_secs = format!("9{}.5", std::process::id());
    let (alive_cmd, killed_cmd) = (
        format!("sleep {alive_secs}"),
        format!("sleep {killed_secs}"),
    );
    let scratch = tempfile::tempdir().unwrap();
    let in_scratch = |args: &[&str]| {
        let mut c = s.cmd(args);
        c.env("HOIST_RUNTIME_TMP", scratch.path());
        c
    };
    let runs = || -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(scratch.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("hoist-run-"))
            .collect();
        names.sort();
        names
    };
    let wait_for = |marker: &str, n: usize| {
        let deadline = Instant::now() + Duration::from_secs(10);
        while processes_with(marker) != n && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(processes_with(marker), n, "{marker}");
    };
    let mounts_before = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .count();
    /// Kills the long-running hoist if an assertion fails first.
    struct Reap(std::process::Child);
    impl Drop for Reap {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut alive = Reap(
        in_scratch(&["run", "busybox", "sleep", &alive_secs])
            .spawn()
            .unwrap(),
    );
    wait_for(&alive_cmd, 1);
    let alive_dir = runs();
    assert_eq!(alive_dir.len(), 1, "{alive_dir:?}");
    let mut child = in_scratch(&["run", "busybox", "sleep", &killed_secs])
        .spawn()
        .unwrap();
    wait_for(&killed_cmd, 1);
    let killed_dir: Vec<String> = runs()
        .into_iter()
        .filter(|n| !alive_dir.contains(n))
        .collect();
    assert_eq!(killed_dir.len(), 1);
    child.kill().unwrap();
    child.wait().unwrap();
    wait_for(&killed_cmd, 0);
    let mounts_after = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .count();
    assert_eq!(mounts_before, mounts_after);
    // The killed run's directory is left behind until the next run sweeps it.
    assert!(runs().contains(&killed_dir[0]));
    let out = in_scratch(&["run", "busybox", "true"]).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        runs(),
        alive_dir,
        "the killed run's directory was not swept"
    );
    // The live run ends normally and removes its own directory.
    Command::new("kill")
        .args(["-TERM", &alive.0.id().to_string()])
        .status()
        .unwrap();
    alive.0.wait().unwrap();
    wait_for(&alive_cmd, 0);
    assert_eq!(runs(), Vec::<String>::new());
}

#[test]
fn run_tty() {
    let s = Store::new();
    let out = s.ok(&[
        "run",
        "-t",
        "busybox",
        "sh",
        "-c",
        "test -t 0 && test -t 1 && echo is-a-tty",
    ]);
    assert!(out.contains("is-a-tty"), "{out:?}");
}
