//! Detached containers end to end, as root: `run -d` and its monitor, `ps`, `logs`, names, `--rm`,
//! and a monitor killed with -9 (busybox fixture).

use std::time::{Duration, Instant};

mod common;

use common::{Hoist, make_busybox};

struct Store {
    _dir: tempfile::TempDir,
    hoist: Hoist,
}

/// A failed test leaves no monitor or container running.
impl Drop for Store {
    fn drop(&mut self) {
        let ids = self.hoist.output(&["ps", "-aq"]);
        for id in String::from_utf8_lossy(&ids.stdout).split_whitespace() {
            let _ = self.hoist.output(&["rm", "-f", id]);
        }
    }
}

impl Store {
    fn new() -> Store {
        let dir = tempfile::tempdir().unwrap();
        make_busybox(dir.path());
        Store {
            hoist: Hoist::new(dir.path()),
            _dir: dir,
        }
    }

    /// `run -d ARGS`: the printed id (64 hex digits).
    fn detach(&self, args: &[&str]) -> String {
        let mut all = vec!["run", "-d"];
        all.extend_from_slice(args);
        let id = self.hoist.ok(&all).trim().to_string();
        assert!(
            id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()),
            "not an id: {id:?}"
        );
        id
    }

    /// Polls `ps -a` until the line of `id` contains `want`.
    fn wait_status(&self, id: &str, want: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let ps = self.hoist.ok(&["ps", "-a"]);
            if let Some(line) = ps.lines().find(|l| l.starts_with(&id[..12]))
                && line.contains(want)
            {
                return line.to_string();
            }
            assert!(Instant::now() < deadline, "no {want:?} for {id}:\n{ps}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn monitor_pid(&self, id: &str) -> i32 {
        let state = std::fs::read_to_string(
            self.hoist
                .root()
                .join("containers")
                .join(id)
                .join("state.json"),
        )
        .unwrap();
        let v: serde_json::Value = serde_json::from_str(&state).unwrap();
        v["pid"].as_i64().unwrap() as i32
    }
}

#[test]
fn detached_run_logs_and_exit_code() {
    let s = Store::new();
    let start = Instant::now();
    let id = s.detach(&[
        "--name",
        "web",
        "busybox",
        "sh",
        "-c",
        "echo hello; echo oops >&2; sleep 1; echo bye; exit 3",
    ]);
    assert!(start.elapsed() < Duration::from_secs(5), "run -d waited");
    let running = s.hoist.ok(&["ps"]);
    let header = running.lines().next().unwrap();
    for col in [
        "CONTAINER ID",
        "IMAGE",
        "COMMAND",
        "CREATED",
        "STATUS",
        "PORTS",
        "NAMES",
    ] {
        assert!(header.contains(col), "{header}");
    }
    let line = running.lines().find(|l| l.starts_with(&id[..12])).unwrap();
    assert!(line.contains("Up ") && line.ends_with("web"), "{line}");
    // Docker's COMMAND: the arguments joined by spaces, cut to 20 characters, quoted.
    assert!(line.contains("\"sh -c echo hello; e…\""), "{line}");
    // The name is taken while the container exists.
    let err = s
        .hoist
        .fails(&["run", "-d", "--name", "web", "busybox", "true"]);
    assert!(
        err.contains(&format!(
            "Conflict. The container name \"/web\" is already in use by container \"{id}\""
        )),
        "{err}"
    );
    assert_eq!(s.hoist.ok(&["wait", "web"]), "3\n");
    let line = s.wait_status(&id, "Exited (3)");
    assert!(line.contains(" ago"), "{line}");
    assert!(!s.hoist.ok(&["ps"]).contains(&id[..12]), "ps lists exited");
    assert_eq!(s.hoist.ok(&["ps", "-a", "-q"]).trim(), &id[..12]);
    // stdout and stderr kept apart; by name or id prefix; --tail and -t.
    let out = s.hoist.output(&["logs", "web"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello\nbye\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "oops\n");
    assert_eq!(s.hoist.ok(&["logs", "--tail", "1", &id[..6]]), "bye\n");
    let stamped = s.hoist.ok(&["logs", "-t", "web"]);
    let first = stamped.lines().next().unwrap();
    assert!(
        first.ends_with("Z hello") && first.starts_with("20"),
        "{first}"
    );
    let err = s.hoist.fails(&["logs", "nosuch"]);
    assert!(err.contains("No such container: nosuch"), "{err}");
}

#[test]
fn logs_follow_and_auto_remove() {
    let s = Store::new();
    let id = s.detach(&[
        "--rm",
        "busybox",
        "sh",
        "-c",
        "for i in 1 2 3; do echo line$i; sleep 0.3; done",
    ]);
    // -f returns once the container has ended, with every line.
    let out = s.hoist.ok(&["logs", "-f", &id]);
    assert_eq!(out, "line1\nline2\nline3\n");
    let deadline = Instant::now() + Duration::from_secs(10);
    while s.hoist.ok(&["ps", "-a"]).contains(&id[..12]) {
        assert!(Instant::now() < deadline, "--rm left the container");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!s.hoist.root().join("containers").join(&id).exists());
    // A quick --rm container still prints its id.
    s.detach(&["--rm", "busybox", "true"]);
}

#[test]
fn killed_monitor_reads_as_exited() {
    let s = Store::new();
    let id = s.detach(&["busybox", "sleep", "61"]);
    s.wait_status(&id, "Up ");
    let pid = s.monitor_pid(&id);
    // SAFETY: kill takes no pointers; `pid` is the monitor this test started.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    let line = s.wait_status(&id, "Exited (137)");
    assert!(!line.contains("Up "), "{line}");
    // The container's PID 1 went with its monitor: no `sleep 61` of this container is left.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let alive = std::fs::read_dir("/proc").unwrap().flatten().any(|e| {
            std::fs::read_to_string(e.path().join("cmdline")).is_ok_and(|c| c == "sleep\x0061\0")
        });
        if !alive {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the container outlived its monitor"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn inspect(s: &Store, key: &str) -> serde_json::Value {
    let out = s.hoist.ok(&["container", "inspect", key]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v[0].clone()
}

#[test]
fn stop_kills_after_the_timeout_and_rm_needs_force() {
    let s = Store::new();
    // `sleep` as PID 1 has no SIGTERM handler: the signal is not delivered, SIGKILL ends it.
    let id = s.detach(&["--name", "stubborn", "busybox", "sleep", "60"]);
    let v = inspect(&s, "stubborn");
    assert_eq!(v["Id"], id.as_str());
    assert_eq!(v["Name"], "/stubborn");
    assert_eq!(v["State"]["Running"], true);
    let pid = v["State"]["Pid"].as_i64().unwrap();
    assert!(pid > 0 && std::path::Path::new(&format!("/proc/{pid}")).exists());
    assert_eq!(v["Path"], "sleep");
    assert_eq!(v["Args"], serde_json::json!(["60"]));
    // Removing a running container needs -f.
    let err = s.hoist.fails(&["rm", "stubborn"]);
    assert!(
        err.contains("cannot remove container \"/stubborn\": container is running"),
        "{err}"
    );
    let start = Instant::now();
    assert_eq!(s.hoist.ok(&["stop", "-t", "1", "stubborn"]), "stubborn\n");
    let took = start.elapsed();
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(6),
        "{took:?}"
    );
    let v = inspect(&s, &id[..8]);
    // Plain `inspect` finds containers too.
    let plain: serde_json::Value =
        serde_json::from_str(&s.hoist.ok(&["inspect", "stubborn"])).unwrap();
    assert_eq!(plain[0]["Id"], id.as_str());
    assert_eq!(v["State"]["Running"], false);
    assert_eq!(v["State"]["ExitCode"], 137);
    assert_eq!(v["State"]["Status"], "exited");
    assert!(
        v["State"]["FinishedAt"].as_str().unwrap() >= v["State"]["StartedAt"].as_str().unwrap()
    );
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
    assert_eq!(s.hoist.ok(&["rm", "stubborn"]), "stubborn\n");
    assert!(!s.hoist.root().join("containers").join(&id).exists());
    assert!(
        s.hoist
            .fails(&["rm", "stubborn"])
            .contains("No such container: stubborn")
    );

    // A handler for the stop signal: the container ends at once, with its own code.
    let id = s.detach(&[
        "busybox",
        "sh",
        "-c",
        "trap 'exit 7' TERM; echo ready; while true; do sleep 0.1; done",
    ]);
    // Once the handler is installed (before, PID 1 ignores SIGTERM as any PID 1 does).
    let deadline = Instant::now() + Duration::from_secs(10);
    while s.hoist.ok(&["logs", &id]) != "ready\n" {
        assert!(Instant::now() < deadline, "no ready");
        std::thread::sleep(Duration::from_millis(50));
    }
    let start = Instant::now();
    s.hoist.ok(&["stop", &id]);
    assert!(start.elapsed() < Duration::from_secs(5));
    s.wait_status(&id, "Exited (7)");
    // kill -s: the signal a handler sees; kill of a stopped container is an error.
    let id3 = s.detach(&[
        "busybox",
        "sh",
        "-c",
        "trap 'exit 9' USR1; echo ready; while true; do sleep 0.1; done",
    ]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while s.hoist.ok(&["logs", &id3]) != "ready\n" {
        assert!(Instant::now() < deadline, "no ready");
        std::thread::sleep(Duration::from_millis(50));
    }
    s.hoist.ok(&["kill", "-s", "USR1", &id3]);
    assert_eq!(s.hoist.ok(&["wait", &id3]), "9\n");
    let err = s.hoist.fails(&["kill", &id3]);
    assert!(err.contains("is not running"), "{err}");
    let err = s
        .hoist
        .fails(&["run", "-d", "--name", "bad name", "busybox", "true"]);
    assert!(err.contains("Invalid container name (bad name)"), "{err}");
    // rm -f kills a running container.
    let id2 = s.detach(&["busybox", "sleep", "60"]);
    let pid = inspect(&s, &id2)["State"]["Pid"].as_i64().unwrap();
    assert_eq!(
        s.hoist.ok(&["rm", "-f", &id2[..12]]),
        format!("{}\n", &id2[..12])
    );
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
    assert!(!s.hoist.ok(&["ps", "-a"]).contains(&id2[..12]));
    s.hoist.ok(&["rm", &id]);
}

#[test]
fn detached_stdin_and_tty() {
    let s = Store::new();
    // -dit: a terminal, and stdin held open: `cat` waits instead of ending.
    let id = s.detach(&["-it", "busybox", "sh", "-c", "tty; cat"]);
    std::thread::sleep(Duration::from_millis(700));
    s.wait_status(&id, "Up ");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !s.hoist.ok(&["logs", &id]).starts_with("/dev/pts/") {
        assert!(Instant::now() < deadline, "no tty in the logs");
        std::thread::sleep(Duration::from_millis(50));
    }
    s.hoist.ok(&["stop", "-t", "0", &id]);
    s.wait_status(&id, "Exited (137)");
    // -d alone: stdin is empty, `cat` ends at once.
    let id = s.detach(&["busybox", "cat"]);
    assert_eq!(s.hoist.ok(&["wait", &id]), "0\n");
}

#[test]
fn start_and_restart_keep_the_container() {
    let s = Store::new();
    let id = s.detach(&[
        "--name",
        "again",
        "busybox",
        "sh",
        "-c",
        "echo run >> /count; cat /count | wc -l; exit 2",
    ]);
    assert_eq!(s.hoist.ok(&["wait", "again"]), "2\n");
    assert_eq!(s.hoist.ok(&["start", "again"]), "again\n");
    assert_eq!(s.hoist.ok(&["wait", "again"]), "2\n");
    // The same writable layer: the file grew; the log holds both runs.
    assert_eq!(
        s.hoist
            .ok(&["logs", "again"])
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["1", "2"]
    );
    let id2 = s.detach(&["busybox", "sleep", "62"]);
    let pid = inspect(&s, &id2)["State"]["Pid"].as_i64().unwrap();
    assert_eq!(
        s.hoist.ok(&["restart", "-t", "0", &id2]),
        format!("{id2}\n")
    );
    let v = inspect(&s, &id2);
    assert_eq!(v["State"]["Running"], true);
    assert_ne!(v["State"]["Pid"].as_i64().unwrap(), pid);
    s.hoist.ok(&["rm", "-f", &id2]);
    s.hoist.ok(&["rm", &id]);
}
