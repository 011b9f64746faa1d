//! Detached containers end to end, as root: `run -d` and its monitor, `ps`, `logs`, names, `--rm`,
//! and a monitor killed with -9 (busybox fixture).

use std::time::{Duration, Instant};

mod common;

use common::{Hoist, make_busybox};

struct Store {
    _dir: tempfile::TempDir,
    hoist: Hoist,
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
}

#[test]
fn killed_monitor_reads_as_exited() {
    let s = Store::new();
    let id = s.detach(&["busybox", "sleep", "60"]);
    s.wait_status(&id, "Up ");
    let pid = s.monitor_pid(&id);
    // SAFETY: kill takes no pointers; `pid` is the monitor this test started.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    let line = s.wait_status(&id, "Exited (137)");
    assert!(!line.contains("Up "), "{line}");
    // The container's PID 1 went with its monitor: no `sleep 60` of this container is left.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let alive = std::fs::read_dir("/proc").unwrap().flatten().any(|e| {
            std::fs::read_to_string(e.path().join("cmdline")).is_ok_and(|c| c == "sleep\060\0")
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
