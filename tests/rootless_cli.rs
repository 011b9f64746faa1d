//! Rootless hoist end to end: the real `hoist` binary run as unprivileged users (via `setpriv`), on the
//! busybox test image. Needs root to create the users (`useradd`), uidmap's newuidmap/newgidmap, and
//! unprivileged user namespaces with overlayfs in them (Linux >= 5.11).
//!
//! Two users: `hoist-rootless` with subordinate ids (/etc/subuid and /etc/subgid ranges, which
//! `useradd` adds) and `hoist-rl-single` without any (hoist maps only root).

use std::fs;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

const HOIST: &str = env!("CARGO_BIN_EXE_hoist");
const WORKSPACE: &str = env!("CARGO_MANIFEST_DIR");
const WITH_SUBIDS: &str = "hoist-rootless";
const SINGLE: &str = "hoist-rl-single";

/// A user's subordinate ranges in an /etc/subuid-format file: (start, count).
fn ranges(file: &str, name: &str) -> Vec<(u32, u32)> {
    fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() == 3 && f[0] == name).then(|| (f[1].parse().unwrap(), f[2].parse().unwrap()))
        })
        .collect()
}

fn sh(cmd: &mut Command) {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The id of `name`, creating the user (with or without subordinate ids) if missing.
fn ensure_user(name: &str, subids: bool) -> (u32, u32) {
    static LOCK: Mutex<()> = Mutex::new(());
    let _l = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let id = |flag: &str| -> Option<u32> {
        let out = Command::new("id").args([flag, name]).output().ok()?;
        String::from_utf8(out.stdout).ok()?.trim().parse().ok()
    };
    if id("-u").is_none() {
        let mut c = Command::new("useradd");
        c.args(["-m", "-s", "/bin/sh"]);
        if !subids {
            c.args(["-K", "SUB_UID_COUNT=0", "-K", "SUB_GID_COUNT=0"]);
        }
        sh(c.arg(name));
    }
    for (file, flag) in [("/etc/subuid", "uids"), ("/etc/subgid", "gids")] {
        let have = ranges(file, name);
        if subids && have.is_empty() {
            // Past every range already given out.
            let end = fs::read_to_string(file)
                .unwrap_or_default()
                .lines()
                .filter_map(|l| {
                    let f: Vec<&str> = l.split(':').collect();
                    Some(f.get(1)?.parse::<u64>().ok()? + f.get(2)?.parse::<u64>().ok()?)
                })
                .max()
                .unwrap_or(100_000)
                .max(100_000);
            sh(Command::new("usermod")
                .arg(format!("--add-sub{flag}"))
                .arg(format!("{end}-{}", end + 65535))
                .arg(name));
        }
        if !subids {
            for (start, count) in have {
                sh(Command::new("usermod")
                    .arg(format!("--del-sub{flag}"))
                    .arg(format!("{start}-{}", start + count - 1))
                    .arg(name));
            }
        }
    }
    (id("-u").unwrap(), id("-g").unwrap())
}

/// The hoist binary where unprivileged users can run it: in place if they can reach it, else a copy
/// in a root-owned directory of the temp dir (replaced by each test run).
fn hoist_for_users() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let (uid, gid) = ensure_user(WITH_SUBIDS, true);
        let ok = Command::new("setpriv")
            .args([format!("--reuid={uid}"), format!("--regid={gid}")])
            .args(["--clear-groups", "test", "-x", HOIST])
            .status()
            .unwrap()
            .success();
        if ok {
            return PathBuf::from(HOIST);
        }
        let dir = std::env::temp_dir().join("hoist-rootless-bin");
        let _ = fs::create_dir(&dir);
        let m = fs::symlink_metadata(&dir).unwrap();
        assert!(
            m.is_dir() && m.uid() == 0,
            "{} must be root's",
            dir.display()
        );
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        let tmp = dir.join(format!("hoist.{}", std::process::id()));
        fs::copy(HOIST, &tmp).unwrap();
        let bin = dir.join("hoist");
        fs::rename(&tmp, &bin).unwrap();
        bin
    })
}

/// An unprivileged user with a private home (a temp dir it owns) holding its default store.
struct User {
    uid: u32,
    gid: u32,
    home: tempfile::TempDir,
}

impl User {
    fn new(name: &str, subids: bool) -> User {
        let (uid, gid) = ensure_user(name, subids);
        hoist_for_users();
        let home = tempfile::Builder::new()
            .prefix("hoist-rootless-home")
            .tempdir()
            .unwrap();
        std::os::unix::fs::chown(home.path(), Some(uid), Some(gid)).unwrap();
        User { uid, gid, home }
    }

    fn home(&self) -> &Path {
        self.home.path()
    }

    /// hoist's default store for this user.
    fn store(&self) -> PathBuf {
        self.home().join(".local/share/hoist")
    }

    /// `program args` as this user, with a clean environment (HOME, PATH).
    fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("setpriv");
        c.args([
            format!("--reuid={}", self.uid),
            format!("--regid={}", self.gid),
        ])
        .arg("--init-groups")
        .arg(program)
        .env_clear()
        .env("HOME", self.home())
        .env("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
        .current_dir(self.home())
        .stdin(Stdio::null());
        c
    }

    fn hoist(&self, args: &[&str]) -> Output {
        self.command(hoist_for_users()).args(args).output().unwrap()
    }

    /// stdout of a successful `hoist ARGS`.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.hoist(args);
        assert!(
            out.status.success(),
            "hoist {args:?}: {:?}\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Copies `src` (a file or directory) into the home, owned by the user.
    fn give(&self, src: &Path) -> PathBuf {
        let dst = self.home().join(src.file_name().unwrap());
        sh(Command::new("cp").arg("-r").arg(src).arg(&dst));
        sh(Command::new("chown")
            .arg("-R")
            .arg(format!("{}:{}", self.uid, self.gid))
            .arg(&dst));
        dst
    }

    /// busybox:latest in the user's default store, made by fixtures/make-busybox.sh run as the user.
    fn make_busybox(&self) {
        let script = self.give(&Path::new(WORKSPACE).join("fixtures/make-busybox.sh"));
        let out = self
            .command("bash")
            .arg(script)
            .env("HOIST", hoist_for_users())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "make-busybox as uid {}: {}",
            self.uid,
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Writes a build context with `dockerfile`, owned by the user.
    fn context(&self, name: &str, dockerfile: &str) -> PathBuf {
        let dir = self.home().join(name);
        fs::create_dir(&dir).unwrap();
        fs::write(dir.join("Dockerfile"), dockerfile).unwrap();
        sh(Command::new("chown")
            .arg("-R")
            .arg(format!("{}:{}", self.uid, self.gid))
            .arg(&dir));
        dir
    }
}

/// Mount points on the host under `dir`.
fn host_mounts_under(dir: &Path) -> Vec<String> {
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| m.starts_with(&*dir.to_string_lossy()))
        .map(String::from)
        .collect()
}

/// Every path under `dir` whose owner (group) is neither `uid` (`gid`) nor one of the user's
/// subordinate ids.
fn foreign_owned(dir: &Path, uid: u32, gid: u32) -> Vec<String> {
    let name_of = |id: u32| {
        let out = Command::new("id")
            .args(["-nu", &id.to_string()])
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    let name = name_of(uid);
    let (subu, subg) = (ranges("/etc/subuid", &name), ranges("/etc/subgid", &name));
    let within = |id: u32, own: u32, r: &[(u32, u32)]| {
        id == own || r.iter().any(|(s, c)| id >= *s && id - s < *c)
    };
    let mut bad = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(p) = stack.pop() {
        let m = fs::symlink_metadata(&p).unwrap();
        if !within(m.uid(), uid, &subu) || !within(m.gid(), gid, &subg) {
            bad.push(format!("{} {}:{}", p.display(), m.uid(), m.gid()));
        }
        if m.is_dir() {
            stack.extend(fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
        }
    }
    bad
}

#[test]
fn hello_builds_and_runs_in_the_default_store_owned_by_the_user() {
    let u = User::new(WITH_SUBIDS, true);
    u.make_busybox();
    let ctx = u.give(&Path::new(WORKSPACE).join("testdata/hello"));
    u.ok(&["build", "-q", "-t", "hello", ctx.to_str().unwrap()]);
    assert_eq!(u.ok(&["run", "--rm", "hello"]), "HELLO FROM HOIST\n");

    // Root inside, the user outside.
    let ids = u.ok(&[
        "run",
        "--rm",
        "hello",
        "sh",
        "-c",
        "id -u; cat /proc/self/uid_map",
    ]);
    let mut lines = ids.lines();
    assert_eq!(lines.next(), Some("0"));
    let root_line: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(root_line, ["0", &u.uid.to_string(), "1"], "{ids}");

    // The default store is the user's, and nothing in it belongs to anyone else (root included).
    assert!(u.store().join("index.json").is_file());
    assert!(u.store().join("unpacked").is_dir());
    let bad = foreign_owned(&u.store(), u.uid, u.gid);
    assert!(bad.is_empty(), "not the user's: {bad:?}");
    assert!(host_mounts_under(u.home()).is_empty());
}

#[test]
fn a_user_added_in_a_run_step_owns_its_files_in_the_layer_and_runs_the_container() {
    let u = User::new(WITH_SUBIDS, true);
    u.make_busybox();
    // Debian's busybox-static has no adduser applet: the same entries, by hand.
    let ctx = u.context(
        "app",
        "FROM busybox\n\
         RUN echo 'app:x:1000:1000::/home/app:/bin/sh' >> /etc/passwd && \
         echo 'app:x:1000:' >> /etc/group && mkdir -p /home/app && chown app:app /home/app && \
         touch /f && chown app /f && mkdir -p /d/old\n\
         RUN rm -rf /d && mkdir /d && touch /d/new\n",
    );
    u.ok(&["build", "-q", "-t", "app", ctx.to_str().unwrap()]);
    let out = u.ok(&[
        "run", "--rm", "-u", "app", "app", "sh", "-c",
        "id -u; id -g; stat -c %u /f; echo written > /f && cat /f; touch /etc/x 2>/dev/null || echo denied; ls /d",
    ]);
    assert_eq!(out, "1000\n1000\n1000\nwritten\ndenied\nnew\n");

    // The committed layers record uid 1000 and the opaque directory (as `hoist save` exports them).
    let save = u.home().join("save");
    fs::create_dir(&save).unwrap();
    let out = u.hoist(&["save", "app"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tar = save.join("app.tar");
    fs::write(&tar, &out.stdout).unwrap();
    sh(Command::new("tar")
        .arg("-xf")
        .arg(&tar)
        .arg("-C")
        .arg(&save));
    let manifest = fs::read_to_string(save.join("manifest.json")).unwrap();
    let layers: Vec<String> = manifest
        .split("\"Layers\":[")
        .nth(1)
        .unwrap()
        .split(']')
        .next()
        .unwrap()
        .split(',')
        .map(|l| l.trim_matches('"').to_string())
        .collect();
    let list = |layer: &str| {
        let out = Command::new("tar")
            .args(["--numeric-owner", "-tvf"])
            .arg(save.join(layer))
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap()
    };
    let top = list(&layers[layers.len() - 1]);
    let names: Vec<&str> = top
        .lines()
        .filter_map(|l| l.split_whitespace().last())
        .collect();
    assert_eq!(names, ["d/", "d/.wh..wh..opq", "d/new"], "{top}");
    let listing = list(&layers[layers.len() - 2]);
    let owner = |path: &str| {
        listing
            .lines()
            .find(|l| l.ends_with(&format!(" {path}")))
            .and_then(|l| l.split_whitespace().nth(1))
            .map(String::from)
    };
    assert_eq!(owner("f").as_deref(), Some("1000/0"), "{listing}");
    assert_eq!(
        owner("home/app/").as_deref(),
        Some("1000/1000"),
        "{listing}"
    );

    // On the host, the extracted layer's file belongs to the user's subordinate uid for 1000.
    let start = ranges("/etc/subuid", WITH_SUBIDS)[0].0;
    let unpacked: Vec<u32> = fs::read_dir(u.store().join("unpacked"))
        .unwrap()
        .filter_map(|e| fs::symlink_metadata(e.unwrap().path().join("f")).ok())
        .map(|m| m.uid())
        .collect();
    assert_eq!(unpacked, [start + 999]);
}

#[test]
fn network_none_sees_only_lo_and_host_network_gets_a_read_only_sys() {
    let u = User::new(WITH_SUBIDS, true);
    u.make_busybox();
    assert_eq!(
        u.ok(&[
            "run",
            "--rm",
            "--network",
            "none",
            "busybox",
            "ls",
            "/sys/class/net"
        ]),
        "lo\n"
    );
    let host = u.ok(&[
        "run",
        "--rm",
        "--network",
        "host",
        "busybox",
        "sh",
        "-c",
        "ls /sys/class/net | grep -qx lo && echo lo; touch /sys/x 2>/dev/null || echo read-only",
    ]);
    assert_eq!(host, "lo\nread-only\n");
}

#[test]
fn limits_need_a_writable_cgroup() {
    let u = User::new(WITH_SUBIDS, true);
    u.make_busybox();
    let out = u.hoist(&["run", "--rm", "--memory", "64m", "busybox", "true"]);
    let err = String::from_utf8_lossy(&out.stderr);
    if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        // cgroup v2: a delegated cgroup makes it work, else the error says what is missing.
        assert!(out.status.success() || err.contains("delegated"), "{err}");
    } else {
        assert_eq!(out.status.code(), Some(125), "{err}");
        assert!(
            err.contains("rootless") && err.contains("cgroup v1"),
            "{err}"
        );
    }
    // No limit, no cgroup needed.
    u.ok(&["run", "--rm", "busybox", "true"]);
}

#[test]
fn exit_codes_and_signals_pass_through_the_namespace_waiter() {
    let u = User::new(WITH_SUBIDS, true);
    u.make_busybox();
    assert_eq!(
        u.hoist(&["run", "--rm", "busybox", "sh", "-c", "exit 7"])
            .status
            .code(),
        Some(7)
    );

    // SIGTERM to the hoist the user started (the waiter outside the namespace) reaches the command.
    // `--init`: without it `sleep` is PID 1 and, as in Docker, ignores a SIGTERM it has no handler for.
    let marker = format!("7{}", std::process::id());
    let sleeping = || -> bool {
        fs::read_dir("/proc").unwrap().flatten().any(|e| {
            fs::read(e.path().join("cmdline"))
                .is_ok_and(|c| c == format!("sleep\0{marker}\0").as_bytes())
        })
    };
    let start = || {
        let child = Killed(
            u.command(hoist_for_users())
                .args(["run", "--rm", "--init", "busybox", "sleep", &marker])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
        );
        wait_until("the container to start", &sleeping);
        child
    };
    let mut child = start();
    // SAFETY: kill(2) takes plain integers; the child is ours and not yet reaped, so its pid is live.
    unsafe { libc::kill(child.0.id() as i32, libc::SIGTERM) };
    let status = child.0.wait().unwrap();
    let mut err = String::new();
    let mut stderr = child.0.stderr.take().unwrap();
    stderr.read_to_string(&mut err).unwrap();
    assert_eq!(status.code(), Some(128 + libc::SIGTERM), "{err}");
    assert!(!sleeping());

    // SIGKILL to it takes the namespace and the container down too.
    let mut child = start();
    child.0.kill().unwrap();
    child.0.wait().unwrap();
    wait_until("the container to die with the killed hoist", &|| {
        !sleeping()
    });
    assert!(host_mounts_under(u.home()).is_empty());
}

/// A child killed when dropped (a failed assertion leaves no hoist running).
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Polls `cond` for up to 30 s.
fn wait_until(what: &str, cond: &dyn Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A layer made by root with device nodes and files owned by ids beyond 65536, saved for loading.
fn layer_with_devices(dir: &Path) -> PathBuf {
    let fs_dir = dir.join("fs");
    fs::create_dir_all(fs_dir.join("dev")).unwrap();
    fs::create_dir_all(fs_dir.join("bin")).unwrap();
    fs::copy("/bin/busybox", fs_dir.join("bin/busybox")).unwrap();
    std::os::unix::fs::symlink("busybox", fs_dir.join("bin/sh")).unwrap();
    sh(Command::new("mknod")
        .arg(fs_dir.join("dev/console"))
        .args(["c", "5", "1"]));
    fs::write(fs_dir.join("mid"), "").unwrap();
    std::os::unix::fs::chown(fs_dir.join("mid"), Some(1000), Some(1000)).unwrap();
    fs::write(fs_dir.join("far"), "").unwrap();
    std::os::unix::fs::chown(fs_dir.join("far"), Some(70000), Some(70000)).unwrap();
    let store = dir.join("root-store");
    let fs_arg = fs_dir.to_str().unwrap();
    let import = Command::new(HOIST)
        .args([
            "--root",
            store.to_str().unwrap(),
            "import",
            fs_arg,
            "devices",
        ])
        .output()
        .unwrap();
    assert!(
        import.status.success(),
        "{}",
        String::from_utf8_lossy(&import.stderr)
    );
    let save = Command::new(HOIST)
        .args(["--root", store.to_str().unwrap(), "save", "devices"])
        .output()
        .unwrap();
    assert!(save.status.success());
    let tar = dir.join("devices.tar");
    fs::write(&tar, save.stdout).unwrap();
    tar
}

#[test]
fn device_nodes_are_skipped_and_unmapped_owners_are_named() {
    let u = User::new(WITH_SUBIDS, true);
    let made = tempfile::tempdir().unwrap();
    let tar = u.give(&layer_with_devices(made.path()));
    u.ok(&["load", "-i", tar.to_str().unwrap()]);
    let out = u.hoist(&["run", "--rm", "devices", "true"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(125), "{err}");
    assert!(
        err.contains("extracting far: owner 70000:70000") && err.contains("/etc/subuid"),
        "{err}"
    );

    // Without subordinate ids every owner is root, with warnings, and the device node is gone.
    let single = User::new(SINGLE, false);
    let tar = single.give(&tar);
    single.ok(&["load", "-i", tar.to_str().unwrap()]);
    let out = single.hoist(&[
        "run",
        "--rm",
        "devices",
        "sh",
        "-c",
        "stat -c '%n %u' /mid /far; ls /dev/console",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "/mid 0\n/far 0\n",
        "{err}"
    );
    assert!(
        err.contains("1 device nodes of a layer skipped") && err.contains("/dev/console"),
        "{err}"
    );
    assert!(
        err.contains("2 files of a layer left owned by root"),
        "{err}"
    );
}

#[test]
fn a_user_without_subordinate_ids_builds_and_runs_as_root_only() {
    let u = User::new(SINGLE, false);
    u.make_busybox();
    let ctx = u.give(&Path::new(WORKSPACE).join("testdata/hello"));
    let out = u.hoist(&["build", "-q", "-t", "hello", ctx.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("only root exists inside containers"), "{err}");
    assert_eq!(u.ok(&["run", "--rm", "hello"]), "HELLO FROM HOIST\n");
    assert_eq!(
        u.ok(&[
            "run",
            "--rm",
            "hello",
            "sh",
            "-c",
            "cat /proc/self/uid_map /proc/self/setgroups"
        ])
        .split_whitespace()
        .collect::<Vec<_>>(),
        ["0", &u.uid.to_string(), "1", "deny"]
    );
    let out = u.hoist(&["run", "--rm", "-u", "1000", "hello", "id"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(125));
    assert!(
        err.contains("uid 1000 does not exist") && err.contains("only root is mapped"),
        "{err}"
    );
    let bad = foreign_owned(&u.store(), u.uid, u.gid);
    assert!(bad.is_empty(), "not the user's: {bad:?}");
}

#[test]
fn a_failing_newuidmap_falls_back_to_root_only_with_a_warning() {
    let u = User::new(WITH_SUBIDS, true);
    u.make_busybox();
    let fake = u.home().join("fake-bin");
    fs::create_dir(&fake).unwrap();
    for tool in ["newuidmap", "newgidmap"] {
        fs::write(
            fake.join(tool),
            format!("#!/bin/sh\necho '{tool}: refused' >&2\nexit 1\n"),
        )
        .unwrap();
        fs::set_permissions(fake.join(tool), fs::Permissions::from_mode(0o755)).unwrap();
    }
    let out = u
        .command(hoist_for_users())
        .args([
            "run",
            "--rm",
            "busybox",
            "cat",
            "/proc/self/uid_map",
            "/proc/self/setgroups",
        ])
        .env("PATH", format!("{}:/usr/bin:/bin", fake.display()))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["0", &u.uid.to_string(), "1", "deny"]
    );
    assert!(
        err.contains("newuidmap failed: newuidmap: refused") && err.contains("only root exists"),
        "{err}"
    );
}

#[test]
fn copy_from_a_stage_honours_opaque_directories() {
    let u = User::new(WITH_SUBIDS, true);
    u.make_busybox();
    let ctx = u.context(
        "opaque",
        "FROM busybox AS a\n\
         RUN mkdir -p /d/old\n\
         RUN rm -rf /d && mkdir /d && touch /d/new\n\
         FROM busybox\n\
         COPY --from=a /d /d\n",
    );
    u.ok(&["build", "-q", "-t", "opaque", ctx.to_str().unwrap()]);
    assert_eq!(u.ok(&["run", "--rm", "opaque", "ls", "/d"]), "new\n");
}

/// Unmounts its path when dropped.
struct Unmount(PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_read_only_bind_of_a_nosuid_mount_keeps_its_flags() {
    let u = User::new(WITH_SUBIDS, true);
    u.make_busybox();
    // A user namespace may not clear the flags of a mount it inherited: the ro remount keeps them.
    let src = u.home().join("nosuid");
    fs::create_dir(&src).unwrap();
    sh(Command::new("mount")
        .args([
            "-t",
            "tmpfs",
            "-o",
            "nosuid,nodev,noexec,mode=0777",
            "tmpfs",
        ])
        .arg(&src));
    let _unmount = Unmount(src.clone());
    let volume = format!("{}:/mnt:ro", src.display());
    let out = u.ok(&[
        "run",
        "--rm",
        "-v",
        &volume,
        "busybox",
        "sh",
        "-c",
        "grep ' /mnt ' /proc/mounts | cut -d' ' -f4 | cut -d, -f1-4; touch /mnt/x 2>/dev/null || echo read-only",
    ]);
    assert_eq!(out, "ro,nosuid,nodev,noexec\nread-only\n");
}
