//! `hoist push`, `hoist pull`, `hoist login` and `hoist logout` end to end against the real registry
//! (Debian's docker-registry on a free loopback port), with the busybox fixture image.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::{HOIST, Hoist, TestRegistry, expect_success, make_busybox_named as make_busybox};

/// `hoist --root ROOT ARGS` with `DOCKER_CONFIG=docker_config`, stdin fed from `stdin`.
fn hoist(root: &Path, docker_config: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    Hoist::new(root)
        .docker_config(docker_config)
        .output_with(args, stdin.map(str::as_bytes))
}

fn ok(out: Output) -> String {
    expect_success("hoist", out)
}

#[test]
fn push_then_pull_busybox_by_tag_and_digest() {
    let reg = TestRegistry::start(None);
    let tmp = tempfile::tempdir().unwrap();
    let (src, dst, cfg) = (
        tmp.path().join("src"),
        tmp.path().join("dst"),
        tmp.path().join("docker"),
    );
    let name = format!("{}/test/busybox:1", reg.host());
    make_busybox(&src, &name);

    let out = ok(hoist(&src, &cfg, &["push", &name], None));
    assert!(
        out.contains(&format!(
            "The push refers to repository [{}/test/busybox]",
            reg.host()
        )),
        "{out}"
    );
    let line = out
        .lines()
        .find(|l| l.starts_with("1: digest: sha256:"))
        .unwrap_or_else(|| panic!("{out}"));
    let digest = line.split_whitespace().nth(2).unwrap().to_string();

    let inspect = common::run(Command::new("skopeo").args([
        "inspect",
        "--tls-verify=false",
        &format!("docker://{name}"),
    ]));
    let v: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    assert_eq!(v["Digest"], digest.as_str());

    let out = ok(hoist(&dst, &cfg, &["pull", &name], None));
    assert!(out.contains(&format!("Digest: {digest}")), "{out}");
    assert!(out.contains("Status: Downloaded newer image for"), "{out}");
    assert_eq!(out.lines().last().unwrap(), name);
    let out = ok(hoist(&dst, &cfg, &["pull", &name], None));
    assert!(out.contains("Status: Image is up to date for"), "{out}");

    let s = hoist_image::Store::open(&src)
        .unwrap()
        .resolve(&name)
        .unwrap();
    let d = hoist_image::Store::open(&dst)
        .unwrap()
        .resolve(&name)
        .unwrap();
    assert_eq!(s.config_digest, d.config_digest);

    // Pushing the pulled image under another repository of the same registry mounts its blobs.
    let other = format!("{}/other/busybox:2", reg.host());
    ok(hoist(&dst, &cfg, &["tag", &name, &other], None));
    let out = hoist(&dst, &cfg, &["push", &other], None);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{err}");
    assert!(err.contains("Mounted from test/busybox"), "{err}");
    assert!(!err.contains(": Pushed"), "{err}");

    let pinned = format!("{}/test/busybox@{digest}", reg.host());
    let dst2 = tmp.path().join("dst2");
    let out = ok(hoist(&dst2, &cfg, &["pull", "-q", &pinned], None));
    assert_eq!(out.trim(), pinned);

    let missing = hoist(
        &dst2,
        &cfg,
        &["pull", &format!("{}/test/nothing:1", reg.host())],
        None,
    );
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("not found"));
}

#[test]
fn login_push_logout_with_basic_auth() {
    let reg = TestRegistry::start(Some(("bob", "b0b-pass")));
    let tmp = tempfile::tempdir().unwrap();
    let (src, cfg) = (tmp.path().join("src"), tmp.path().join("docker"));
    let name = format!("{}/private/busybox:latest", reg.host());
    make_busybox(&src, &name);

    let denied = hoist(&src, &cfg, &["push", &name], None);
    assert!(!denied.status.success());
    assert!(String::from_utf8_lossy(&denied.stderr).contains("authentication required"));

    let bad = hoist(
        &src,
        &cfg,
        &["login", &reg.host(), "-u", "bob", "--password-stdin"],
        Some("wrong\n"),
    );
    assert!(
        !bad.status.success(),
        "login with a wrong password succeeded"
    );
    assert!(
        !cfg.join("config.json").exists(),
        "a failed login wrote credentials"
    );

    let out = ok(hoist(
        &src,
        &cfg,
        &["login", &reg.host(), "-u", "bob", "--password-stdin"],
        Some("b0b-pass\n"),
    ));
    assert!(out.contains("Login Succeeded"));
    let file = cfg.join("config.json");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    // base64("bob:b0b-pass")
    assert_eq!(v["auths"][reg.host()]["auth"], "Ym9iOmIwYi1wYXNz");

    ok(hoist(&src, &cfg, &["push", &name], None));
    ok(hoist(&tmp.path().join("dst"), &cfg, &["pull", &name], None));

    let out = ok(hoist(&src, &cfg, &["logout", &reg.host()], None));
    assert!(
        out.contains(&format!("Removing login credentials for {}", reg.host())),
        "{out}"
    );
    let denied = hoist(&tmp.path().join("dst2"), &cfg, &["pull", &name], None);
    assert!(!denied.status.success(), "pull after logout succeeded");
}

/// `hoist login HOST` on a terminal prompts for the username and reads the password with echo off,
/// as `docker login` does: the password never appears on the terminal.
#[test]
fn interactive_login_prompts_and_hides_the_password() {
    use std::io::Read;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::os::unix::process::CommandExt;
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    let reg = TestRegistry::start(Some(("bob", "b0b-pass")));
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("docker");

    let (mut master, mut slave) = (0, 0);
    // SAFETY: openpty writes two new fds into the out-pointers.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(rc, 0, "openpty");
    // SAFETY: both fds were just returned by openpty and are owned here.
    let (master, slave) = unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
    let mut cmd = Command::new(HOIST);
    cmd.arg("--root")
        .arg(tmp.path().join("store"))
        .args(["login", &reg.host()])
        .env("DOCKER_CONFIG", &cfg)
        .stdin(Stdio::from(slave.try_clone().unwrap()))
        .stdout(Stdio::from(slave.try_clone().unwrap()))
        .stderr(Stdio::from(slave.try_clone().unwrap()));
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().unwrap();
    drop(slave);

    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut reader = std::fs::File::from(master.try_clone().unwrap());
    let sink = seen.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    });
    let wait_for = |what: &str| {
        let start = Instant::now();
        while !String::from_utf8_lossy(&seen.lock().unwrap()).contains(what) {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "no {what:?} in {:?}",
                String::from_utf8_lossy(&seen.lock().unwrap())
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let mut writer = std::fs::File::from(master.try_clone().unwrap());
    wait_for("Username: ");
    writer.write_all(b"bob\n").unwrap();
    wait_for("Password: ");
    // Type only once the terminal's echo is off (the pty's termios, read from the master side).
    let start = Instant::now();
    loop {
        // SAFETY: tcgetattr fills a zeroed termios for a valid fd.
        let echo = unsafe {
            let mut t: libc::termios = std::mem::zeroed();
            assert_eq!(libc::tcgetattr(master.as_raw_fd(), &mut t), 0);
            t.c_lflag & libc::ECHO != 0
        };
        if !echo {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "echo never turned off"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    writer.write_all(b"b0b-pass\n").unwrap();
    let status = child.wait().unwrap();
    wait_for("Login Succeeded");
    let shown = String::from_utf8_lossy(&seen.lock().unwrap()).to_string();
    assert!(status.success(), "{shown}");
    assert!(!shown.contains("b0b-pass"), "password echoed: {shown:?}");
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(cfg.join("config.json")).unwrap()).unwrap();
    assert_eq!(v["auths"][reg.host()]["auth"], "Ym9iOmIwYi1wYXNz");
}

/// How many times `hoist ARGS` replaced the store's `index.json` (traced renames onto it).
fn index_writes(h: &Hoist, args: &[&str]) -> usize {
    let trace = h.root().parent().unwrap().join("trace");
    let mut cmd = Command::new("strace");
    cmd.args(["-f", "-qq", "-e", "trace=rename,renameat,renameat2", "-o"])
        .arg(&trace)
        .arg(HOIST)
        .arg("--root")
        .arg(h.root())
        .args(args);
    common::run(&mut cmd);
    let log = std::fs::read_to_string(&trace).unwrap();
    log.lines()
        .filter(|l| l.contains("/index.json\"") && !l.contains("= -1"))
        .count()
}

#[test]
fn a_pull_through_a_manifest_list_moves_its_names_in_one_index_update() {
    let reg = TestRegistry::start(None);
    let tmp = tempfile::tempdir().unwrap();
    let (src, cfg) = (tmp.path().join("src"), tmp.path().join("docker"));
    let name = format!("{}/test/busybox:1", reg.host());
    make_busybox(&src, &name);
    ok(hoist(&src, &cfg, &["push", &name], None));
    // A manifest list over the pushed image, for this machine's platform.
    let raw = common::run(Command::new("skopeo").args([
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{name}"),
    ]));
    let m: serde_json::Value = serde_json::from_str(&raw).unwrap();
    let digest = hoist_image::Digest::of(raw.as_bytes()).to_string();
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": m["mediaType"],
            "digest": digest,
            "size": raw.len(),
            "platform": { "architecture": hoist_image::config::host_arch(), "os": "linux" },
        }],
    })
    .to_string();
    let index_digest = hoist_image::Digest::of(index.as_bytes()).to_string();
    common::run(Command::new("curl").args([
        "-fsS",
        "-X",
        "PUT",
        "-H",
        "Content-Type: application/vnd.oci.image.index.v1+json",
        "--data-binary",
        &index,
        &format!("http://{}/v2/test/busybox/manifests/multi", reg.host()),
    ]));

    let dst = tmp.path().join("dst");
    let h = Hoist::new(&dst);
    h.ok(&["images"]);
    let multi = format!("{}/test/busybox:multi", reg.host());
    assert_eq!(index_writes(&h, &["pull", "-q", &multi]), 1);
    // The tag and the manifest list's digest both resolve to the pulled image.
    let id = |r: &str| {
        let v: serde_json::Value = serde_json::from_str(&h.ok(&["image", "inspect", r])).unwrap();
        v[0]["Id"].as_str().unwrap().to_string()
    };
    let pinned = format!("{}/test/busybox@{index_digest}", reg.host());
    assert_eq!(id(&multi), id(&pinned));
    // A retag and a tag of the same image are one update each as well.
    assert_eq!(index_writes(&h, &["tag", &multi, "again:1"]), 1);
}
