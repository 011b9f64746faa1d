//! No mount a non-privileged container or RUN step gets lets it open a device node: a node made
//! there (CAP_MKNOD is a default capability), one in a bound host directory or below it in a host
//! submount, one in an image layer. hoist has no device cgroup, so every such mount is `nodev`,
//! whatever the options asked (`--tmpfs /t:dev`); `--privileged` lifts it. The probe node is
//! /dev/null's (1,3): harmless wherever it opens.

use std::path::Path;
use std::process::Command;

use build_support::{Env, context_with};

mod build_support;
mod common;

/// Makes a (1,3) node in `dir` and writes to it: prints "open" or "denied".
fn probe(dir: &str) -> String {
    format!(
        "n={dir}/probe-$$; mknod $n c 1 3 || exit 9; \
         if (echo x > $n) 2>/dev/null; then echo open; else echo denied; fi; rm -f $n"
    )
}

/// Writes to the existing node `path`: prints "open" or "denied".
fn open(path: &str) -> String {
    format!("if (echo x > {path}) 2>/dev/null; then echo open; else echo denied; fi")
}

/// `hoist run --rm [--privileged] ARGS busybox sh -c SCRIPT`'s stdout.
fn run(env: &Env, privileged: bool, args: &[&str], script: &str) -> String {
    let mut all = vec!["run", "--rm"];
    if privileged {
        all.push("--privileged");
    }
    all.extend(args);
    all.extend(["busybox", "sh", "-c", script]);
    env.ok(&mut env.cmd(&all))
}

/// A tmpfs mounted on the host (with device access, as the host's own /dev/shm may be), unmounted
/// on drop.
struct HostTmpfs(std::path::PathBuf);

impl HostTmpfs {
    fn mount(at: &Path) -> HostTmpfs {
        std::fs::create_dir_all(at).unwrap();
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "hoist-test", at.to_str().unwrap()])
            .status()
            .unwrap();
        assert!(st.success(), "mount tmpfs on {}", at.display());
        HostTmpfs(at.to_path_buf())
    }
}

impl Drop for HostTmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn container_mounts_never_open_device_nodes() {
    let env = Env::new();
    let host = tempfile::tempdir().unwrap();
    let dir = host.path().join("dir");
    std::fs::create_dir(&dir).unwrap();
    let d = dir.to_str().unwrap();
    let bind_mount = format!("type=bind,src={d},dst=/m");
    let [v, v_shared] = [format!("{d}:/m"), format!("{d}:/m:rshared")];
    // (mount, what --privileged gives: a tmpfs is `nodev` unless asked for `dev`, as Docker's).
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--tmpfs", "/m:dev"], "open\n"),
        (vec!["--tmpfs", "/m:dev,suid,exec,rw"], "open\n"),
        (vec!["--tmpfs", "/m"], "denied\n"),
        (vec!["--mount", "type=tmpfs,dst=/m"], "denied\n"),
        (vec!["--mount", &bind_mount], "open\n"),
        (vec!["--mount", "type=volume,src=devs1,dst=/m"], "open\n"),
        (vec!["-v", &v], "open\n"),
        (vec!["-v", &v_shared], "open\n"),
        (vec!["-v", "devs2:/m"], "open\n"),
        (vec!["-v", "/m"], "open\n"),
    ];
    for (args, privileged) in &cases {
        assert_eq!(run(&env, false, args, &probe("/m")), "denied\n", "{args:?}");
        assert_eq!(run(&env, true, args, &probe("/m")), *privileged, "{args:?}");
    }
    // The host's own devices, bound: their directory, or one node.
    for privileged in [false, true] {
        let want = if privileged { "open\n" } else { "denied\n" };
        assert_eq!(
            run(&env, privileged, &["-v", "/dev:/m"], &open("/m/null")),
            want
        );
        assert_eq!(
            run(&env, privileged, &["-v", "/dev/null:/n"], &open("/n")),
            want
        );
    }
    // Propagation modes are accepted and change nothing: a mount made inside stays there.
    std::fs::create_dir(dir.join("inner")).unwrap();
    run(
        &env,
        true,
        &["-v", &v_shared],
        "mount -t tmpfs inside /m/inner && touch /m/inner/f",
    );
    assert!(!dir.join("inner/f").exists(), "the mount reached the host");
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(&format!("{d}/inner")), "{mounts}");
    // Docker's `-v` modes have no `dev`, `suid` or `exec`.
    for mode in ["dev", "suid", "exec"] {
        let out = env.hoist(&[
            "run",
            "--rm",
            "-v",
            &format!("{d}:/m:{mode}"),
            "busybox",
            "true",
        ]);
        assert_eq!(out.status.code(), Some(125));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(&format!("invalid mode: {mode}")), "{err}");
    }
}

/// A bind takes the host's submounts below its source along (as Docker's rbind): they are made
/// `nodev` too, and read-only with `:ro` (Docker's recursive read-only).
#[test]
fn submounts_of_a_bind_are_nodev_and_read_only_too() {
    let env = Env::new();
    let host = tempfile::tempdir().unwrap();
    let dir = host.path().join("dir");
    let _sub = HostTmpfs::mount(&dir.join("sub"));
    let made = Command::new("mknod")
        .arg(dir.join("sub/node"))
        .args(["c", "1", "3"])
        .status()
        .unwrap();
    assert!(made.success());
    let rw = format!("{}:/m", dir.display());
    let ro = format!("{rw}:ro");
    assert_eq!(run(&env, false, &["-v", &rw], &probe("/m/sub")), "denied\n");
    assert_eq!(run(&env, true, &["-v", &rw], &probe("/m/sub")), "open\n");
    let script = format!(
        "{}; touch /m/sub/new 2>/dev/null && echo written || echo read-only",
        open("/m/sub/node")
    );
    assert_eq!(
        run(&env, false, &["-v", &ro], &script),
        "denied\nread-only\n"
    );
    assert_eq!(run(&env, true, &["-v", &ro], &script), "open\nread-only\n");
    assert!(!dir.join("sub/new").exists());
    // The host's / with its /dev below.
    assert_eq!(
        run(&env, false, &["-v", "/:/host:ro"], &open("/host/dev/null")),
        "denied\n"
    );
}

/// RUN steps: the root, `--mount=type=cache|tmpfs|bind`; and a node an image layer holds, in a
/// container, `--read-only` included.
#[test]
fn build_mounts_and_image_nodes_never_open() {
    let env = Env::new();
    let steps = [
        ("root", "", "/"),
        ("cache", "--mount=type=cache,target=/m ", "/m"),
        ("tmpfs", "--mount=type=tmpfs,target=/m ", "/m"),
        ("bind", "--mount=type=bind,target=/m,rw ", "/m"),
    ];
    let mut dockerfile = String::from("FROM busybox\nRUN mknod /node c 1 3\n");
    for (name, mount, dir) in steps {
        dockerfile.push_str(&format!(
            "RUN {mount}({}) > /result-{name}\n",
            probe(dir.trim_end_matches('/'))
        ));
    }
    // The node an earlier step left in a layer.
    dockerfile.push_str(&format!("RUN ({}) > /result-layer\n", open("/node")));
    let ctx = context_with(&dockerfile, &[]);
    env.build(&["-t", "nodes", ctx.path().to_str().unwrap()]);
    for name in steps.iter().map(|s| s.0).chain(["layer"]) {
        assert_eq!(
            env.read("nodes", &format!("/result-{name}")),
            "denied\n",
            "{name}"
        );
    }
    let script = open("/node");
    let image_node = |args: &[&str]| {
        let mut all = vec!["run", "--rm"];
        all.extend(args);
        all.extend(["nodes", "sh", "-c", &script]);
        env.ok(&mut env.cmd(&all))
    };
    assert_eq!(image_node(&[]), "denied\n");
    assert_eq!(image_node(&["--read-only"]), "denied\n");
    assert_eq!(image_node(&["--privileged"]), "open\n");
    assert_eq!(image_node(&["--privileged", "--read-only"]), "open\n");
}
