//! End-to-end `hoist build` tests on testdata/build/ cases, built on the busybox fixture
//! (fixtures/make-busybox.sh) in a temp store per test. Results are checked in the store itself:
//! the image config, and files read from the image's layers.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use build_support::{Env, context_with, step_statuses};
use common::HOIST;
use hoist_builder::copy::union::Union;
use hoist_image::Store;

mod build_support;
mod common;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn case(name: &str) -> String {
    repo()
        .join("testdata/build")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

/// Copies a testdata case into a temp dir (tests that modify the context).
fn copy_case(name: &str, to: &Path) {
    let st = Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", case(name)))
        .arg(to)
        .status()
        .unwrap();
    assert!(st.success());
}

#[test]
fn every_instruction_lands_in_the_config() {
    let env = Env::new();
    env.build(&["-t", "basic:latest", &case("basic")]);
    let c = env.config("basic:latest");
    let cc = c.config.clone().unwrap();
    let envs = cc.env.clone().unwrap();
    assert!(envs.contains(&"APP_HOME=/app".to_string()), "{envs:?}");
    assert!(envs.contains(&"MODE=hello-mode".to_string()), "{envs:?}");
    let labels = cc.labels.clone().unwrap();
    assert_eq!(labels["org.example.title"], "basic");
    // ENV pairs on one line see the environment from before the line, LABEL sees MODE.
    assert_eq!(labels["org.example.mode"], "hello-mode");
    assert_eq!(cc.working_dir.as_deref(), Some("/app"));
    assert_eq!(cc.user.as_deref(), Some("root"));
    let ports: Vec<_> = cc.exposed_ports.clone().unwrap().into_keys().collect();
    assert_eq!(ports, ["53/udp", "8080/tcp"]);
    assert!(cc.volumes.clone().unwrap().contains_key("/data"));
    assert_eq!(cc.stop_signal.as_deref(), Some("SIGINT"));
    let hc = cc.healthcheck.clone().unwrap();
    assert_eq!(hc.test.unwrap(), ["CMD-SHELL", "test -f /app/built.txt"]);
    assert_eq!((hc.interval, hc.retries), (Some(5_000_000_000), Some(2)));
    assert_eq!(cc.shell.clone().unwrap(), ["/bin/sh", "-ec"]);
    assert_eq!(
        cc.on_build.clone().unwrap(),
        ["RUN echo triggered > /onbuild.txt"]
    );
    assert_eq!(cc.entrypoint.clone().unwrap(), ["/bin/sh", "-c"]);
    assert_eq!(cc.cmd.clone().unwrap(), ["cat /app/built.txt"]);
    assert_eq!(c.os, "linux");
    // History: one entry per instruction after FROM, layers only for COPY and RUN.
    let new: Vec<_> = c.history.iter().skip(1).collect();
    let by: Vec<&str> = new
        .iter()
        .map(|h| h.created_by.as_deref().unwrap())
        .collect();
    assert!(by.contains(&"RUN |1 GREETING=hello /bin/sh -c echo \"$GREETING from $(pwd) as $(id -u)\" > built.txt && ls -ln greeting.txt > owner.txt # buildkit"), "{by:#?}");
    assert!(by.contains(&"WORKDIR /app"), "{by:#?}");
    assert!(by.contains(&"CMD [\"cat /app/built.txt\"]"), "{by:#?}");
    let layers = c.history.iter().filter(|h| !h.empty_layer).count();
    assert_eq!(layers, c.rootfs.diff_ids.len());
    assert_eq!(layers, 1 + 5); // base + WORKDIR + COPY + 3 RUN
    // Files.
    assert_eq!(
        env.read("basic:latest", "/app/built.txt"),
        "hello from /app as 0\n"
    );
    assert_eq!(env.read("basic:latest", "/tmp/uid.txt"), "65534\n");
    assert_eq!(env.read("basic:latest", "/app/shell.txt"), "shell-ok\n");
    let (_, m) = env
        .view("basic:latest")
        .lookup("/app/greeting.txt")
        .unwrap();
    assert_eq!((m.uid(), m.gid(), m.mode() & 0o777), (65534, 65534, 0o640));
    // The image runs with its ENTRYPOINT + CMD.
    let out = env.hoist(&["run", "--rm", "basic:latest"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "hello from /app as 0\n"
    );
    // ONBUILD fires in a child image, and is not inherited further.
    env.build(&[
        "-t",
        "child",
        "-f",
        &format!("{}/child.Dockerfile", case("basic")),
        &case("basic"),
    ]);
    assert_eq!(env.read("child", "/onbuild.txt"), "triggered\n");
    assert!(env.config("child").config.unwrap().on_build.is_none());
}

#[test]
fn build_args_labels_and_output_files() {
    let env = Env::new();
    let dir = tempfile::tempdir().unwrap();
    let iid = dir.path().join("iid");
    let meta = dir.path().join("meta.json");
    let out = env.hoist(&[
        "build",
        "-q",
        "--build-arg",
        "GREETING=bye",
        "--label",
        "extra=yes",
        "-t",
        "a:1",
        "-t",
        "b:2",
        "--iidfile",
        iid.to_str().unwrap(),
        "--metadata-file",
        meta.to_str().unwrap(),
        &case("basic"),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(
        id.starts_with("sha256:") && id.len() == 71,
        "-q prints only the id: {id:?}"
    );
    assert!(
        out.stderr.is_empty(),
        "-q is quiet: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read_to_string(&iid).unwrap(), id);
    let m: serde_json::Value = serde_json::from_slice(&std::fs::read(&meta).unwrap()).unwrap();
    assert_eq!(m["containerimage.config.digest"], id.as_str());
    assert_eq!(env.image_id("a:1"), id);
    assert_eq!(env.image_id("b:2"), id);
    assert_eq!(env.read("a:1", "/app/built.txt"), "bye from /app as 0\n");
    assert_eq!(
        env.config("a:1").config.unwrap().labels.unwrap()["extra"],
        "yes"
    );
}

#[test]
fn multistage_parallel_target_and_unneeded_stages() {
    let env = Env::new();
    let progress = env.build(&["-t", "multi", &case("multistage")]);
    assert!(
        !progress.contains("must never run"),
        "an unneeded stage ran:\n{progress}"
    );
    let t = |p: &str| -> f64 { env.read("multi", p).trim().parse().unwrap() };
    let (a0, a1, b0, b1) = (
        t("/times/a.start"),
        t("/times/a.end"),
        t("/times/b.start"),
        t("/times/b.end"),
    );
    // Each stage sleeps 2 s; they ran side by side if each started before the other ended.
    assert!(
        a0 < b1 && b0 < a1,
        "stages a [{a0}, {a1}] and b [{b0}, {b1}] did not overlap"
    );
    assert_eq!(
        env.read("multi", "/times/b.again"),
        env.read("multi", "/times/b.start")
    );
    assert!(env.view("multi").lookup("/middle.txt").is_none());
    // --target builds the named stage and what it needs only (a, then middle; b is not needed).
    let progress = env.build(&["--target", "middle", "-t", "mid", &case("multistage")]);
    assert!(
        !progress.contains("[b "),
        "stage b ran for --target middle:\n{progress}"
    );
    assert_eq!(env.read("mid", "/middle.txt"), "middle\n");
    assert!(env.view("mid").lookup("/a.end").is_some());
    let out = env.hoist(&["build", "--target", "nope", &case("multistage")]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("target stage \"nope\" could not be found")
    );
}

#[test]
fn cache_hits_then_invalidation_from_the_first_reader() {
    let env = Env::new();
    let ctx = tempfile::tempdir().unwrap();
    copy_case("../hello", ctx.path());
    let c = ctx.path().to_str().unwrap();
    let first = env.build(&["-t", "hello", c]);
    let id1 = env.image_id("hello");
    assert!(
        step_statuses(&first)
            .iter()
            .any(|(_, s)| s.starts_with("DONE"))
    );
    // Second build: every step is a cache hit and the image is the same.
    let second = env.build(&["-t", "hello", c]);
    let st = step_statuses(&second);
    assert_eq!(st.len(), 6, "{second}");
    assert!(st.iter().all(|(_, s)| s == "CACHED"), "{st:#?}");
    assert_eq!(env.image_id("hello"), id1);
    // A new mtime with the same content is still a hit (content digests, not mtimes).
    let f = ctx.path().join("greeting.txt");
    assert!(
        Command::new("touch")
            .args(["-d", "@1000000"])
            .arg(&f)
            .status()
            .unwrap()
            .success()
    );
    let st = step_statuses(&env.build(&["-t", "hello", c]));
    assert!(st.iter().all(|(_, s)| s == "CACHED"), "{st:#?}");
    // Changed content: the COPY that reads it and every later step of its stage re-run.
    std::fs::write(&f, "changed text\n").unwrap();
    let third = env.build(&["-t", "hello", c]);
    let st = step_statuses(&third);
    let status = |prefix: &str| {
        st.iter()
            .find(|(t, _)| t.starts_with(prefix))
            .unwrap()
            .1
            .clone()
    };
    assert_eq!(status("[build 1/4] FROM"), "CACHED");
    assert_eq!(status("[build 2/4] WORKDIR"), "CACHED");
    assert!(status("[build 3/4] COPY").starts_with("DONE"), "{st:#?}");
    assert!(status("[build 4/4] RUN").starts_with("DONE"), "{st:#?}");
    assert!(status("[stage-1 2/2] COPY").starts_with("DONE"), "{st:#?}");
    assert_eq!(env.read("hello", "/etc/greeting"), "CHANGED TEXT\n");
    // --no-cache runs everything again.
    let st = step_statuses(&env.build(&["--no-cache", "-t", "hello", c]));
    assert!(
        st.iter()
            .filter(|(t, _)| !t.contains("FROM"))
            .all(|(_, s)| s.starts_with("DONE")),
        "{st:#?}"
    );
}

#[test]
fn dockerignore_rules_are_dockers() {
    let env = Env::new();
    env.build(&["-t", "ign", &case("dockerignore")]);
    let v = env.view("ign");
    let has = |p: &str| v.lookup(&format!("/ctx/{p}")).is_some();
    for p in ["README.md", "src/main.c", "docs/deep/keep.txt"] {
        assert!(has(p), "{p} should be in the context");
    }
    // Root-anchored: `*.md` and `*.log` do not match in subdirectories (gitignore would exclude them).
    assert!(has("src/NOTES.md") && has("src/sub/deep.log"));
    for p in [
        "CHANGES.md",
        "docs/a.txt",
        "node_modules",
        "top.log",
        "Dockerfile",
        ".dockerignore",
    ] {
        assert!(!has(p), "{p} should be excluded");
    }
}

#[test]
fn copy_semantics() {
    let env = Env::new();
    env.build(&["-t", "cp", &case("copy")]);
    let v = env.view("cp");
    let has = |p: &str| v.lookup(p).is_some();
    // A directory source copies its contents; the directory itself only when named as dest.
    assert!(has("/contents/a.txt") && has("/contents/sub/b.txt") && !has("/contents/dir"));
    assert!(has("/named/dir/a.txt"));
    // Destination without slash = the file's new name; with slash = a directory.
    assert_eq!(env.read("cp", "/file-renamed"), "one\n");
    assert_eq!(env.read("cp", "/into/one.txt"), "one\n");
    assert!(has("/glob/one.txt") && has("/glob/two.txt"));
    // Relative destinations are under WORKDIR.
    assert_eq!(env.read("cp", "/w/relative/one.txt"), "one\n");
    assert_eq!(env.read("cp", "/listing.txt"), "one.txt\n");
    assert!(has("/excluded/a.txt") && !has("/excluded/skip.tmp"));
    assert!(has("/parents/dir/sub/b.txt"));
    // ADD unpacks a local archive, COPY does not.
    assert_eq!(env.read("cp", "/unpacked/inner/packed.txt"), "packed\n");
    assert!(has("/not-unpacked/archive.tar.gz"));
    assert_eq!(env.read("cp", "/inline.txt"), "inline default\n");
    // Files from the context are owned by root.
    let (_, m) = v.lookup("/into/one.txt").unwrap();
    assert_eq!((m.uid(), m.gid()), (0, 0));
}

#[test]
fn error_messages_name_the_source_and_line() {
    let env = Env::new();
    let dir = case("errors");
    let out = env.hoist(&[
        "build",
        "--progress",
        "plain",
        "-f",
        &format!("{dir}/missing.Dockerfile"),
        &dir,
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("\"/missing.txt\": not found"), "{err}");
    assert!(err.contains("missing.Dockerfile:3"), "{err}");
    let out = env.hoist(&[
        "build",
        "--progress",
        "plain",
        "-f",
        &format!("{dir}/fail.Dockerfile"),
        &dir,
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("did not complete successfully: exit code: 3"),
        "{err}"
    );
    assert!(err.contains("fail.Dockerfile:2"), "{err}");
    assert!(
        err.contains("line-two"),
        "last output lines are shown: {err}"
    );
}

#[test]
fn dockerfile_from_stdin_and_network_modes() {
    let env = Env::new();
    let df = "FROM busybox:latest\nRUN --network=none cat /proc/net/dev > /none.txt\nRUN cat /proc/net/dev > /default.txt\n";
    let mut child = Command::new(HOIST)
        .args([
            "--root",
            env.root.to_str().unwrap(),
            "build",
            "--progress",
            "plain",
            "-t",
            "net",
            "-",
        ])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), df.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ifaces = |p: &str| -> Vec<String> {
        env.read("net", p)
            .lines()
            .skip(2)
            .filter_map(|l| l.split(':').next().map(|s| s.trim().to_string()))
            .collect()
    };
    assert_eq!(ifaces("/none.txt"), ["lo"]);
    let host: Vec<String> = std::fs::read_to_string("/proc/net/dev")
        .unwrap()
        .lines()
        .skip(2)
        .filter_map(|l| l.split(':').next().map(|s| s.trim().to_string()))
        .collect();
    let mut got = ifaces("/default.txt");
    got.sort();
    let mut want = host;
    want.sort();
    assert_eq!(got, want, "default network is the host's");
    // Without a context, COPY has nothing to read.
    let mut child = Command::new(HOIST)
        .args(["--root", env.root.to_str().unwrap(), "build", "-"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(
        child.stdin.as_mut().unwrap(),
        b"FROM busybox:latest\nCOPY x /x\n",
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
}

#[test]
fn instruction_errors_anywhere_in_the_file_are_reported_with_their_line() {
    let env = Env::new();
    let dir = tempfile::tempdir().unwrap();
    // The bad flag is in a stage the target does not need: BuildKit still rejects the file.
    std::fs::write(
        dir.path().join("Dockerfile"),
        "FROM busybox:latest AS unused\nCOPY --bogus=1 a b\nFROM busybox:latest\nRUN true\n",
    )
    .unwrap();
    let out = env.hoist(&["build", dir.path().to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("dockerfile parse error on line 2: unknown flag: --bogus"),
        "{err}"
    );
    std::fs::write(dir.path().join("Dockerfile"), "RUN true\n").unwrap();
    let out = env.hoist(&["build", dir.path().to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no build stage in current context"), "{err}");
}

/// A real registry (fixtures/registry.sh) stopped on drop.
struct Registry {
    dir: tempfile::TempDir,
    port: String,
}

impl Registry {
    fn start() -> Registry {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("bash")
            .arg(repo().join("fixtures/registry.sh"))
            .arg("start")
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "registry: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = String::from_utf8_lossy(&out.stdout).trim().to_string();
        Registry { dir, port }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(repo().join("fixtures/registry.sh"))
            .arg("stop")
            .arg(self.dir.path())
            .output();
    }
}

#[test]
fn missing_base_image_is_pulled_from_its_registry() {
    let env = Env::new();
    let reg = Registry::start();
    let name = format!("127.0.0.1:{}/base/busybox:1", reg.port);
    let out = env.hoist(&["tag", "busybox:latest", &name]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = env.hoist(&["push", &name]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A fresh store without the base: the build pulls it.
    let fresh = tempfile::tempdir().unwrap();
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        format!("FROM {name}\nRUN echo pulled > /p.txt\n"),
    )
    .unwrap();
    let out = Command::new(HOIST)
        .arg("--root")
        .arg(fresh.path())
        .args(["build", "--progress", "plain", "-t", "p"])
        .arg(ctx.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let store = Store::open(fresh.path()).unwrap();
    let img = store.resolve("p").unwrap();
    let v = Union::new(store.unpacked_layers(&img).unwrap());
    assert_eq!(v.read("/p.txt").unwrap(), b"pulled\n");
    assert!(
        store.resolve(&name).is_ok(),
        "the base is kept in the store"
    );
}

#[test]
fn workdir_creates_its_directory_in_its_own_layer() {
    let env = Env::new();
    let ctx = context_with(
        "FROM busybox:latest\nUSER nobody\nWORKDIR /srv/app/data\nUSER root\nWORKDIR /tmp\nWORKDIR /\nWORKDIR relative\n",
        &[],
    );
    let progress = env.build(&["-t", "wd", ctx.path().to_str().unwrap()]);
    assert!(
        progress.contains("[2/4] WORKDIR /srv/app/data"),
        "WORKDIR is a step of its own:\n{progress}"
    );
    // Created with its parents, mode 0755, owned by the USER in force (as BuildKit's mkdir).
    let v = env.view("wd");
    for dir in ["/srv", "/srv/app", "/srv/app/data"] {
        let (_, m) = v.lookup(dir).unwrap_or_else(|| panic!("{dir} missing"));
        assert!(m.is_dir());
        assert_eq!(
            (m.uid(), m.gid(), m.mode() & 0o7777),
            (65534, 65534, 0o755),
            "{dir}"
        );
    }
    let (_, m) = v.lookup("/relative").unwrap();
    assert_eq!(
        (m.uid(), m.mode() & 0o7777),
        (0, 0o755),
        "root's once USER is root again"
    );
    // Each WORKDIR but `/` adds a layer; an existing directory's layer is empty.
    let c = env.config("wd");
    let store = Store::open(&env.root).unwrap();
    let layer_of: Vec<(&str, Option<&hoist_image::Digest>)> = {
        let mut diffs = c.rootfs.diff_ids.iter().skip(1);
        c.history
            .iter()
            .skip(1)
            .map(|h| {
                let d = (!h.empty_layer).then(|| diffs.next().unwrap());
                (h.created_by.as_deref().unwrap(), d)
            })
            .collect()
    };
    let by: Vec<(&str, bool)> = layer_of.iter().map(|(b, d)| (*b, d.is_some())).collect();
    assert_eq!(
        by,
        [
            ("USER nobody", false),
            ("WORKDIR /srv/app/data", true),
            ("USER root", false),
            ("WORKDIR /tmp", true),
            ("WORKDIR /", false),
            ("WORKDIR /relative", true),
        ]
    );
    assert_eq!(c.rootfs.diff_ids.len(), 1 + 3);
    let tmp_layer = store.unpacked_layer(layer_of[3].1.unwrap()).unwrap();
    assert_eq!(
        std::fs::read_dir(&tmp_layer).unwrap().count(),
        0,
        "WORKDIR of an existing directory changes nothing"
    );
    let srv_layer = store.unpacked_layer(layer_of[1].1.unwrap()).unwrap();
    assert!(srv_layer.join("srv/app/data").is_dir());
    // The image runs there.
    let out = env.hoist(&["run", "--rm", "wd", "pwd"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "/relative\n");
}

#[test]
fn copy_chmod_takes_octal_and_symbolic_modes() {
    let env = Env::new();
    let ctx = context_with(
        "FROM busybox:latest\nARG M=go-w\nCOPY --chmod=+x run.sh /bin/\nCOPY --chmod=u=rwx,go=rx run.sh /exact.sh\nCOPY --chmod=a+X dir /d\nCOPY --chmod=$M dir /e\nCOPY --chmod=0640 run.sh /octal.sh\n",
        &[
            ("run.sh", b"#!/bin/sh\necho ran\n"),
            ("dir/f", b"f"),
            ("dir/sub/g", b"g"),
        ],
    );
    let set_mode = |p: &Path, m: u32| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap()
    };
    let set = |p: &str, m: u32| set_mode(&ctx.path().join(p), m);
    set("run.sh", 0o644);
    set("dir/f", 0o664);
    set("dir/sub", 0o700);
    set("dir/sub/g", 0o766);
    env.build(&["-t", "cm", ctx.path().to_str().unwrap()]);
    let v = env.view("cm");
    let mode = |p: &str| v.lookup(p).unwrap_or_else(|| panic!("{p}")).1.mode() & 0o7777;
    assert_eq!(mode("/bin/run.sh"), 0o755, "+x adds x for all");
    assert_eq!(mode("/exact.sh"), 0o755);
    assert_eq!(mode("/octal.sh"), 0o640);
    // X: directories (and files executable by someone) only.
    assert_eq!(
        (mode("/d/f"), mode("/d/sub"), mode("/d/sub/g")),
        (0o664, 0o711, 0o777)
    );
    // Each file's own mode changes: go-w (from a build arg).
    assert_eq!(
        (mode("/e/f"), mode("/e/sub"), mode("/e/sub/g")),
        (0o644, 0o700, 0o744)
    );
    let out = env.hoist(&["run", "--rm", "cm", "run.sh"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ran\n");
    // ADD of a local archive unpacks its entries as they are: --chmod (octal or symbolic) leaves
    // them alone, as BuildKit does; a plain file next to it still gets the mode.
    let arch = tempfile::tempdir().unwrap();
    std::fs::create_dir(arch.path().join("in")).unwrap();
    std::fs::write(arch.path().join("in/t.txt"), "t").unwrap();
    set_mode(&arch.path().join("in"), 0o750);
    set_mode(&arch.path().join("in/t.txt"), 0o604);
    let st = Command::new("tar")
        .arg("-C")
        .arg(arch.path())
        .arg("-cf")
        .arg(ctx.path().join("a.tar"))
        .arg("in")
        .status()
        .unwrap();
    assert!(st.success());
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM busybox:latest\nADD --chmod=+x a.tar run.sh /sym/\nADD --chmod=0700 a.tar /oct/\n",
    )
    .unwrap();
    env.build(&["-t", "cm-add", ctx.path().to_str().unwrap()]);
    let v = env.view("cm-add");
    let mode = |p: &str| v.lookup(p).unwrap_or_else(|| panic!("{p}")).1.mode() & 0o7777;
    assert_eq!(
        (mode("/sym/in"), mode("/sym/in/t.txt"), mode("/sym/run.sh")),
        (0o750, 0o604, 0o755)
    );
    assert_eq!((mode("/oct/in"), mode("/oct/in/t.txt")), (0o750, 0o604));
    let by: Vec<String> = env
        .config("cm")
        .history
        .iter()
        .filter_map(|h| h.created_by.clone())
        .collect();
    assert!(
        by.contains(&"COPY --chmod=go-w dir /e # buildkit".to_string()),
        "{by:#?}"
    );
    // A bad mode names the line and what is expected.
    for (bad, why) in [
        ("u=q", "invalid chmod parameter: 'u=q': invalid syntax"),
        (
            "10000",
            "invalid chmod parameter: '10000'. it should be octal string and between 0 and 07777",
        ),
    ] {
        std::fs::write(
            ctx.path().join("Dockerfile"),
            format!("FROM busybox:latest\nCOPY --chmod={bad} run.sh /x\n"),
        )
        .unwrap();
        let out = env.hoist(&["build", ctx.path().to_str().unwrap()]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(err.contains("Dockerfile:2") && err.contains(why), "{err}");
    }
}

#[test]
fn progress_shows_the_build_context_transfer() {
    let env = Env::new();
    let df = "FROM busybox:latest\nCOPY . /ctx/\n";
    let ctx = context_with(
        df,
        &[
            ("a.txt", &[b'a'; 1500]),
            ("big.bin", &[b'b'; 50_000]),
            (".dockerignore", b"*.bin\n"),
        ],
    );
    let progress = env.build(&["-t", "ctx", ctx.path().to_str().unwrap()]);
    let vertex = |name: &str| -> Vec<String> {
        let head = progress
            .lines()
            .find(|l| l.ends_with(name))
            .unwrap_or_else(|| panic!("no {name} vertex:\n{progress}"));
        let id = head.split(' ').next().unwrap().to_string();
        progress
            .lines()
            .filter(|l| l.starts_with(&format!("{id} ")))
            .map(|l| l[id.len() + 1..].to_string())
            .collect()
    };
    // What .dockerignore leaves: a.txt, the Dockerfile and .dockerignore itself.
    let bytes = 1500 + df.len() + "*.bin\n".len();
    let lines = vertex("[internal] load build context");
    let transfer = &lines[1];
    assert!(
        transfer.starts_with(&format!(
            "transferring context: {:.2}kB",
            bytes as f64 / 1000.0
        )) && transfer.ends_with(" done"),
        "{lines:?}"
    );
    assert!(lines.last().unwrap().starts_with("DONE "), "{lines:?}");
    let lines = vertex("[internal] load build definition from Dockerfile");
    assert!(
        lines[1].starts_with(&format!("transferring dockerfile: {}B", df.len())),
        "{lines:?}"
    );
    // No vertex when nothing reads the context.
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM busybox:latest\nRUN true\n",
    )
    .unwrap();
    let progress = env.build(&[ctx.path().to_str().unwrap()]);
    assert!(!progress.contains("load build context"), "{progress}");
}
