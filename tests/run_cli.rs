//! `hoist run` and `hoist volume` end to end, on the busybox test image (fixtures/make-busybox.sh), as
//! root.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::{HOIST, Hoist, expect_success, make_busybox};

/// A store holding the busybox fixture.
struct Store {
    dir: tempfile::TempDir,
    hoist: Hoist,
}

impl Store {
    fn new() -> Store {
        let dir = tempfile::tempdir().unwrap();
        make_busybox(dir.path());
        Store {
            hoist: Hoist::new(dir.path()),
            dir,
        }
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = self.hoist.command(args);
        c.stdin(Stdio::null());
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    /// stdout of a successful command.
    fn ok(&self, args: &[&str]) -> String {
        expect_success(&format!("hoist {args:?}"), self.run(args))
    }

    /// Asserts hoist refuses `args` as Docker does: exit 125 and `err` in its stderr.
    fn refused(&self, args: &[&str], err: &str) {
        let out = self.run(args);
        assert_eq!(code(&out), 125, "{args:?}: {out:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(err),
            "{args:?}: {out:?}"
        );
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
    // With --init the command is PID 2: a signal it sends itself kills it.
    assert_eq!(
        code(&s.run(&["run", "--init", "busybox", "sh", "-c", "kill -9 $$"])),
        137
    );
    assert_eq!(
        code(&s.run(&["run", "--init", "busybox", "sh", "-c", "kill -TERM $$"])),
        143
    );
    // Without it the command is PID 1, which the kernel shields from signals it has no handler for
    // (Docker's behaviour): the shell goes on.
    assert_eq!(
        s.ok(&[
            "run",
            "busybox",
            "sh",
            "-c",
            "kill -9 $$; kill -TERM $$; echo alive"
        ]),
        "alive\n"
    );
    assert_eq!(
        code(&s.run(&[
            "run",
            "busybox",
            "sh",
            "-c",
            "trap 'exit 9' USR1; kill -USR1 $$; sleep 5"
        ])),
        9
    );
    let out = s.run(&["run", "busybox", "no-such-command"]);
    assert_eq!(code(&out), 127);
    assert!(String::from_utf8_lossy(&out.stderr).contains("executable file not found"));
    assert_eq!(code(&s.run(&["run", "busybox", "/etc/passwd"])), 126);
    s.refused(&["run", "no-such-image"], "Unable to find image");
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
    assert_eq!(lines[0], "1", "the command is PID 1: {out}");
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
    // Every task in the container counts, PID 1 (and the init with --init) included, as in Docker.
    let pids = |init: &[&str], sleeps: usize| {
        let script = format!("{} wait", "sleep 1 & ".repeat(sleeps));
        let mut args = vec!["run", "--pids-limit", "3"];
        args.extend(init);
        args.extend(["busybox", "sh", "-c", &script]);
        code(&s.run(&args))
    };
    assert_eq!(pids(&[], 2), 0);
    assert_ne!(pids(&[], 3), 0);
    assert_eq!(pids(&["--init"], 1), 0);
    assert_ne!(pids(&["--init"], 2), 0);
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
        // --init: a SIGTERM reaches the sleep through the init (as PID 1 it would ignore it).
        in_scratch(&["run", "--init", "busybox", "sleep", &alive_secs])
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
    // The pty comes from the container's own devpts: `tty` can name it.
    assert_eq!(s.ok(&["run", "-t", "busybox", "tty"]), "/dev/pts/0\r\n");
    assert_eq!(
        s.ok(&[
            "run",
            "-t",
            "--init",
            "-u",
            "nobody",
            "busybox",
            "sh",
            "-c",
            "tty; stat -c %U $(tty)"
        ]),
        "/dev/pts/0\r\nnobody\r\n"
    );
    // Without -t there is no terminal.
    let out = s.run(&["run", "busybox", "tty"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "not a tty\n");
}

/// A pty pair sized `rows` x `cols`: (master, slave).
fn openpty(rows: u16, cols: u16) -> (std::fs::File, std::fs::File) {
    use std::os::fd::FromRawFd;
    let (mut master, mut slave) = (0, 0);
    let size = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: every pointer is to a live local; openpty writes only the two descriptors.
    let r = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            &size,
        )
    };
    assert_eq!(r, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: openpty succeeded, so both descriptors are open and owned by nobody else.
    unsafe {
        (
            std::fs::File::from_raw_fd(master),
            std::fs::File::from_raw_fd(slave),
        )
    }
}

/// `hoist run -it` on a real terminal: a shell whose tty is the container's /dev/pts/0, with the
/// terminal's size, following a resize (SIGWINCH), and whose exit code comes back.
#[test]
fn run_interactive_tty() {
    use std::io::{Read, Write};
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    use std::sync::{Arc, Mutex};

    let s = Store::new();
    let (mut master, slave) = openpty(24, 80);
    let mut cmd = Command::new(HOIST);
    cmd.arg("--root")
        .arg(s.root())
        .args(["run", "-it", "busybox", "sh"])
        .stdin(slave.try_clone().unwrap())
        .stdout(slave.try_clone().unwrap())
        .stderr(slave);
    // hoist runs on the test's terminal as a login shell would: session leader, controlling tty.
    // SAFETY: the closure calls only async-signal-safe setsid(2) and ioctl(2) between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            libc::ioctl(0, libc::TIOCSCTTY, 0);
            Ok(())
        });
    }
    let mut child = cmd.spawn().unwrap();
    drop(cmd);
    let seen = Arc::new(Mutex::new(String::new()));
    let reader = {
        let seen = seen.clone();
        let mut master = master.try_clone().unwrap();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = master.read(&mut buf) {
                if n == 0 {
                    break;
                }
                seen.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        })
    };
    // Sends `line` (again every second) until `want` shows up.
    let mut writer = master.try_clone().unwrap();
    let mut expect = |line: &str, want: &str| {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            writer.write_all(line.as_bytes()).unwrap();
            for _ in 0..10 {
                if seen.lock().unwrap().contains(want) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        panic!("{want:?} never came: {:?}", seen.lock().unwrap());
    };
    // The markers are computed, so the echoed input never matches them.
    expect(
        "echo T$((1+1)) $(tty) $(stty size)\n",
        "T2 /dev/pts/0 24 80",
    );
    let size = libc::winsize {
        ws_row: 40,
        ws_col: 100,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    assert_eq!(
        // SAFETY: TIOCSWINSZ reads one `winsize`, which `size` is, from a live reference.
        unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &size) },
        0
    );
    expect("echo S$((2+2)) $(stty size)\n", "S4 40 100");
    master.write_all(b"exit 3\n").unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(3));
    reader.join().unwrap();
}

/// A descriptor hoist inherits without close-on-exec reaches neither the command nor the init.
#[test]
fn run_closes_inherited_fds() {
    use std::io::{BufRead, BufReader};
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;

    let s = Store::new();
    let marker = tempfile::NamedTempFile::new().unwrap();
    let file = std::fs::File::open(marker.path()).unwrap();
    let raw = file.as_raw_fd();
    let with_fd7 = |args: &[&str]| {
        let mut c = s.cmd(args);
        // dup2 clears close-on-exec: hoist starts with fd 7 open.
        // SAFETY: dup2(2) is async-signal-safe and `raw` stays open until the child has spawned.
        unsafe {
            c.pre_exec(move || {
                if libc::dup2(raw, 7) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        c
    };
    for init in [&[][..], &["--init"][..]] {
        let args: Vec<&str> = ["run"]
            .iter()
            .chain(init)
            .chain(&["busybox", "ls", "/proc/self/fd"])
            .copied()
            .collect();
        let out = with_fd7(&args).output().unwrap();
        assert!(out.status.success(), "{out:?}");
        // 3 is the directory ls reads.
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "0\n1\n2\n3\n",
            "{args:?}"
        );
    }

    // The init (PID 1 with --init) keeps only its scratch directory's lock.
    let mut child = with_fd7(&[
        "run",
        "--init",
        "busybox",
        "sh",
        "-c",
        "echo ready; sleep 60",
    ])
    .stdout(Stdio::piped())
    .spawn()
    .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line, "ready\n");
    let hoist = child.id();
    let fds = |pid: u32| -> Vec<String> {
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
            .map(|p| p.to_string_lossy().into_owned())
            .collect()
    };
    let marker_path = marker.path().to_string_lossy().into_owned();
    assert!(fds(hoist).contains(&marker_path), "hoist did not get fd 7");
    let init = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .find(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let after = stat.rsplit_once(") ").map(|(_, r)| r).unwrap_or("");
            stat.contains("(hoist-init)")
                && after.split(' ').nth(1) == Some(hoist.to_string().as_str())
        })
        .expect("the sandbox's init");
    let init_fds = fds(init);
    let _ = Command::new("kill").arg(hoist.to_string()).status();
    let _ = child.wait();
    assert_eq!(init_fds.len(), 1, "{init_fds:?}");
    assert!(init_fds[0].contains("hoist-run-"), "{init_fds:?}");
}

/// --init: a tiny init is PID 1, reaps orphans and forwards signals; the command is its child.
#[test]
fn run_init() {
    let s = Store::new();
    assert_eq!(
        s.ok(&[
            "run",
            "--init",
            "busybox",
            "sh",
            "-c",
            "echo $$; cat /proc/1/comm"
        ]),
        "2\nhoist-init\n"
    );
    // An orphan (its parent exits first) is reparented to PID 1, which reaps it once it exits.
    let out = s.ok(&[
        "run",
        "--init",
        "busybox",
        "sh",
        "-c",
        "sh -c 'sh -c \"echo \\$\\$ > /tmp/orphan\" &'; \
         while [ ! -s /tmp/orphan ]; do sleep 0.1; done; \
         for i in $(seq 100); do [ -e /proc/$(cat /tmp/orphan) ] || break; sleep 0.1; done; \
         [ -e /proc/$(cat /tmp/orphan) ] && echo zombie || echo reaped",
    ]);
    assert_eq!(out, "reaped\n");
    // SIGTERM to hoist goes through the init to the command.
    let mut child = s
        .cmd(&[
            "run",
            "--init",
            "busybox",
            "sh",
            "-c",
            "trap 'exit 7' TERM; echo ready; sleep 1000 & wait",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut ready = [0u8; 6];
    std::io::Read::read_exact(child.stdout.as_mut().unwrap(), &mut ready).unwrap();
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    assert_eq!(child.wait().unwrap().code(), Some(7));
}

#[test]
fn run_read_only() {
    let s = Store::new();
    s.ok(&["volume", "create", "data"]);
    let out = s.run(&[
        "run",
        "--read-only",
        "--tmpfs",
        "/tmp",
        "-v",
        "data:/data",
        "-w",
        "/new/workdir",
        "busybox",
        "sh",
        "-c",
        "touch /x; echo root=$?; touch /tmp/y && echo tmp=ok; touch /data/z && echo volume=ok; \
         echo >> /etc/hosts; echo hosts=$?; pwd; touch /dev/shm/s && echo shm=ok",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stdout, "root=1\ntmp=ok\nvolume=ok\nhosts=1\n/new/workdir\nshm=ok\n",
        "{stderr}"
    );
    assert!(
        stderr.contains("touch: /x: Read-only file system"),
        "{stderr}"
    );
    assert!(s.root().join("volumes/data/z").exists());
    // Without it, the root is writable.
    s.ok(&["run", "busybox", "touch", "/x"]);
}

#[test]
fn run_capabilities() {
    let s = Store::new();
    let cap_eff = |args: &[&str]| -> u64 {
        let mut all = vec!["run"];
        all.extend(args);
        all.extend(["busybox", "grep", "CapEff", "/proc/self/status"]);
        let out = s.ok(&all);
        u64::from_str_radix(out.trim().rsplit('\t').next().unwrap(), 16).unwrap()
    };
    // Docker's defaults: chown, dac_override, fowner, fsetid, kill, setgid, setuid, setpcap,
    // net_bind_service, net_raw, sys_chroot, mknod, audit_write, setfcap.
    assert_eq!(cap_eff(&[]), 0xa80425fb);
    assert_eq!(cap_eff(&["--cap-drop", "ALL"]), 0);
    assert_eq!(
        cap_eff(&["--cap-drop", "all", "--cap-add", "net_admin"]),
        1 << 12
    );
    assert_eq!(
        cap_eff(&["--cap-drop", "CAP_CHOWN", "--cap-drop", "mknod"]),
        0xa80425fb & !(1 | 1 << 27)
    );
    // CAP_SYS_ADMIN also opens Docker's seccomp profile to mount.
    let mount = "mkdir -p /mnt && mount -t tmpfs none /mnt && echo mounted";
    assert_eq!(
        s.ok(&[
            "run",
            "--cap-add",
            "SYS_ADMIN",
            "busybox",
            "sh",
            "-c",
            mount
        ]),
        "mounted\n"
    );
    assert_ne!(code(&s.run(&["run", "busybox", "sh", "-c", mount])), 0);
    // Unknown names: Docker's error, before the image is even looked up.
    s.refused(
        &["run", "--cap-add", "FOO", "no-such-image"],
        "invalid CapAdd: unknown capability: \"CAP_FOO\"",
    );
    s.refused(
        &["run", "--cap-drop", "nope", "busybox", "true"],
        "invalid CapDrop: unknown capability: \"CAP_NOPE\"",
    );
}

#[test]
fn run_privileged() {
    let s = Store::new();
    let out = s.ok(&[
        "run",
        "--privileged",
        "busybox",
        "sh",
        "-c",
        "mkdir -p /mnt && mount -t tmpfs none /mnt && echo mounted; \
         grep ' /sys ' /proc/mounts | cut -d' ' -f4 | cut -d, -f1; \
         grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status | tr -d '\t'; \
         grep -c ' /proc/sys ' /proc/mounts; ls /dev",
    ]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        &lines[..5],
        ["mounted", "rw", "NoNewPrivs:0", "Seccomp:0", "0"],
        "{out}"
    );
    // The host's devices are there (those the sandbox's own /dev lacks).
    let host_only = std::fs::read_dir("/dev")
        .unwrap()
        .filter_map(|e| {
            let e = e.ok()?;
            use std::os::unix::fs::FileTypeExt;
            let t = e.file_type().ok()?;
            (t.is_char_device() || t.is_block_device())
                .then(|| e.file_name().to_string_lossy().into_owned())
        })
        .filter(|n| n != "console")
        .collect::<Vec<_>>();
    assert!(!host_only.is_empty());
    for dev in &host_only {
        assert!(
            lines.contains(&dev.as_str()),
            "{dev} missing from /dev: {out}"
        );
    }
    // Not privileged: /sys and /proc/sys read-only.
    let out = s.ok(&[
        "run",
        "busybox",
        "sh",
        "-c",
        "grep -E ' /(sys|proc/sys) ' /proc/mounts | cut -d' ' -f2,4 | cut -d, -f1",
    ]);
    assert_eq!(out, "/sys ro\n/proc/sys ro\n");
}

#[test]
fn run_security_opts() {
    let s = Store::new();
    // Docker's profile denies unshare (creating a user namespace needs no capability).
    assert_ne!(
        code(&s.run(&["run", "busybox", "unshare", "-U", "true"])),
        0
    );
    s.ok(&[
        "run",
        "--security-opt",
        "seccomp=unconfined",
        "busybox",
        "unshare",
        "-U",
        "true",
    ]);
    let nnp = |args: &[&str]| {
        let mut all = vec!["run"];
        all.extend(args);
        all.extend(["busybox", "grep", "NoNewPrivs", "/proc/self/status"]);
        s.ok(&all)
    };
    assert_eq!(nnp(&[]), "NoNewPrivs:\t0\n");
    assert_eq!(
        nnp(&["--security-opt", "no-new-privileges"]),
        "NoNewPrivs:\t1\n"
    );
    assert_eq!(
        nnp(&["--security-opt", "no-new-privileges:true", "-u", "nobody"]),
        "NoNewPrivs:\t1\n"
    );
    assert_eq!(
        nnp(&["--security-opt", "no-new-privileges=false"]),
        "NoNewPrivs:\t0\n"
    );
    for (flag, err) in [
        ("foo=bar", "invalid --security-opt 2: \"foo=bar\""),
        ("foo", "Invalid --security-opt: \"foo\""),
        (
            "seccomp=/nonexistent.json",
            "opening seccomp profile (/nonexistent.json) failed",
        ),
    ] {
        s.refused(&["run", "--security-opt", flag, "busybox", "true"], err);
    }
}

#[test]
fn run_seccomp_profile_file() {
    let s = Store::new();
    let profile = s.root().join("deny-mkdir.json");
    // Docker's format: mkdir denied with EPERM unless CAP_SYS_ADMIN is kept, kill with SIGUSR1
    // (argument 1 == 10) denied, an unknown syscall name skipped, everything else allowed.
    std::fs::write(
        &profile,
        r#"{
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [
                {"names": ["mkdir", "mkdirat", "no_such_syscall"], "action": "SCMP_ACT_ERRNO",
                 "errnoRet": 1, "excludes": {"caps": ["CAP_SYS_ADMIN"]}},
                {"names": ["kill"], "action": "SCMP_ACT_ERRNO",
                 "args": [{"index": 1, "value": 10, "valueTwo": 0, "op": "SCMP_CMP_EQ"}]}
            ]
        }"#,
    )
    .unwrap();
    let opt = format!("seccomp={}", profile.display());
    let script = "mkdir /x; echo mkdir=$?; touch /y && echo touched; \
                  kill -USR1 $$; echo usr1=$?; kill -0 $$ && echo signal0";
    let out = s.run(&["run", "--security-opt", &opt, "busybox", "sh", "-c", script]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stdout, "mkdir=1\ntouched\nusr1=1\nsignal0\n", "{stderr}");
    assert!(stderr.contains("Operation not permitted"), "{stderr}");
    // Rules excluded for a capability do not apply when it is kept (as Docker's builtin profile).
    let out = s.ok(&[
        "run",
        "--cap-add",
        "SYS_ADMIN",
        "--security-opt",
        &opt,
        "busybox",
        "sh",
        "-c",
        "mkdir /x && echo made",
    ]);
    assert_eq!(out, "made\n");
    // Bad JSON and a bad action: Docker's errors, naming the file, exit 125.
    let bad = s.root().join("bad.json");
    for (text, err) in [
        (
            "{\"defaultAction\": ",
            format!(
                "compacting json for seccomp profile ({}) failed",
                bad.display()
            ),
        ),
        (
            r#"{"defaultAction": "SCMP_ACT_SOMETIMES"}"#,
            format!(
                "Decoding seccomp profile ({}) failed: invalid action \"SCMP_ACT_SOMETIMES\"",
                bad.display()
            ),
        ),
    ] {
        std::fs::write(&bad, text).unwrap();
        let opt = format!("seccomp={}", bad.display());
        s.refused(&["run", "--security-opt", &opt, "busybox", "true"], &err);
    }
}

#[test]
fn run_systempaths_unconfined() {
    let s = Store::new();
    // Mounts under /proc and /sys, and whether /sys is read-only.
    let script = "grep -cE ' /(proc|sys)/' /proc/mounts; grep ' /sys ' /proc/mounts | cut -d' ' -f4 | cut -d, -f1";
    // Docker's masked and read-only paths by default (/proc/bus, /proc/fs, /proc/irq, /proc/sys
    // read-only at least).
    let masked = s.ok(&["run", "busybox", "sh", "-c", script]);
    let count: u32 = masked.lines().next().unwrap().parse().unwrap();
    assert!(count >= 4, "{masked}");
    // None with systempaths=unconfined; /sys stays read-only (only --privileged changes that).
    let out = s.ok(&[
        "run",
        "--security-opt",
        "systempaths=unconfined",
        "busybox",
        "sh",
        "-c",
        script,
    ]);
    assert_eq!(out, "0\nro\n");
    let out = s.run(&[
        "run",
        "--security-opt",
        "systempaths=confined",
        "busybox",
        "true",
    ]);
    assert_eq!(code(&out), 125);
}

#[test]
fn run_ulimit_hosts_dns_groups_tmpfs() {
    let s = Store::new();
    assert_eq!(
        s.ok(&[
            "run",
            "--ulimit",
            "nofile=100:200",
            "busybox",
            "sh",
            "-c",
            "ulimit -n; ulimit -Hn"
        ]),
        "100\n200\n"
    );
    assert_eq!(
        s.ok(&[
            "run",
            "--ulimit",
            "nofile=64",
            "busybox",
            "sh",
            "-c",
            "ulimit -n; ulimit -Hn"
        ]),
        "64\n64\n"
    );
    let out = s.ok(&[
        "run",
        "--add-host",
        "db:10.1.2.3",
        "--add-host",
        "v6=[2001:db8::1]",
        "--dns",
        "9.9.9.9",
        "--dns-search",
        "example.com",
        "--dns-option",
        "ndots:2",
        "busybox",
        "sh",
        "-c",
        "grep -E 'db|v6' /etc/hosts; cat /etc/resolv.conf",
    ]);
    assert_eq!(
        out,
        "10.1.2.3\tdb\n2001:db8::1\tv6\nsearch example.com\nnameserver 9.9.9.9\noptions ndots:2\n"
    );
    assert_eq!(
        s.ok(&[
            "run",
            "--group-add",
            "4242",
            "--group-add",
            "nobody",
            "-u",
            "nobody",
            "busybox",
            "id",
            "-G"
        ]),
        "65534 4242\n"
    );
    s.refused(
        &["run", "--group-add", "ghost", "busybox", "true"],
        "unable to find group ghost",
    );
    // --tmpfs: noexec,nosuid,nodev by default, options as mount(8) takes them.
    let out = s.ok(&[
        "run",
        "--tmpfs",
        "/run",
        "--tmpfs",
        "/scratch:exec,size=1m,mode=700",
        "busybox",
        "sh",
        "-c",
        "grep -E ' /(run|scratch) ' /proc/mounts | cut -d' ' -f2,4; stat -c %a /scratch",
    ]);
    assert_eq!(
        out,
        "/run rw,nosuid,nodev,noexec,relatime\n/scratch rw,nosuid,nodev,relatime,size=1024k,mode=700\n700\n"
    );
    for (args, err) in [
        (
            &["--ulimit", "nofile"][..],
            "invalid argument \"nofile\" for \"--ulimit\" flag: invalid ulimit argument: nofile",
        ),
        (&["--ulimit", "bogus=1"], "invalid ulimit type: bogus"),
        (&["--add-host", "db"], "bad format for add-host: \"db\""),
        (
            &["--add-host", "db:1.2.3"],
            "invalid IP address in add-host: \"1.2.3\"",
        ),
        (
            &["--dns", "resolver"],
            "IP address is not correctly formatted: resolver",
        ),
        (&["--tmpfs", "/t:bogus"], "Invalid tmpfs option [\"bogus\"]"),
        (&["--tmpfs", "t"], "mount path must be absolute"),
    ] {
        let mut all = vec!["run"];
        all.extend(args);
        all.extend(["no-such-image", "true"]);
        s.refused(&all, err);
    }
}

/// CAP_MKNOD is a default capability (as in Docker), but a device node made in the container, or
/// found in a bind-mounted host directory, cannot be opened: the root filesystem, /dev and binds
/// are `nodev` (Docker's device cgroup allows `mknod`, not use). The standard devices work;
/// `--privileged` lifts the rule.
#[test]
fn devices_made_in_the_container_cannot_be_opened() {
    let s = Store::new();
    let host = tempfile::tempdir().unwrap();
    // A copy of /dev/null's node (1,3): harmless to open anywhere.
    let made = Command::new("mknod")
        .arg(host.path().join("null-copy"))
        .args(["c", "1", "3"])
        .status()
        .unwrap();
    assert!(made.success());
    let bind = format!("{}:/h", host.path().display());
    let probe = "echo x > /dev/null && head -c4 /dev/urandom | wc -c; \
                 mknod /made c 1 3 && (echo x > /made && echo root:open || echo root:denied); \
                 mknod /dev/made c 1 3 && (echo x > /dev/made && echo dev:open || echo dev:denied); \
                 (echo x > /h/null-copy && echo bind:open || echo bind:denied)";
    let out = s.ok(&["run", "--rm", "-v", &bind, "busybox", "sh", "-c", probe]);
    assert_eq!(
        out.split_whitespace().collect::<Vec<_>>(),
        ["4", "root:denied", "dev:denied", "bind:denied"],
        "{out}"
    );
    let out = s.ok(&[
        "run",
        "--rm",
        "--privileged",
        "-v",
        &bind,
        "busybox",
        "sh",
        "-c",
        probe,
    ]);
    assert_eq!(
        out.split_whitespace().collect::<Vec<_>>(),
        ["4", "root:open", "dev:open", "bind:open"],
        "{out}"
    );
}
