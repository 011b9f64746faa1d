//! The sandbox of a RUN step as BuildKit gives it (host name `buildkitsandbox`, its read-only
//! /etc/hosts and /etc/resolv.conf, the image's own /etc/hostname, no mountpoint left in a layer),
//! `hoist run`'s Docker container beside it, and images whose layers repeat (equal layers).

use std::path::{Path, PathBuf};

use build_support::{Env, context_with};
use hoist_image::Store;

mod build_support;
mod common;

/// BuildKit's /etc/hosts (executor/oci/hosts.go).
const BUILDKIT_HOSTS: &str =
    "127.0.0.1\tlocalhost buildkitsandbox\n::1\tlocalhost ip6-localhost ip6-loopback\n";

/// Every path in a layer directory, relative, sorted.
fn entries(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            out.push(p.strip_prefix(base).unwrap().to_string_lossy().into_owned());
            if e.file_type().unwrap().is_dir() {
                walk(base, &p, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// The unpacked layer of each history entry of `name` that made one, as (created_by, layer dir).
fn layers(env: &Env, name: &str) -> Vec<(String, PathBuf)> {
    let store = Store::open(&env.root).unwrap();
    let img = store.resolve(name).unwrap();
    let dirs = store.unpacked_layers(&img).unwrap();
    let made: Vec<String> = img
        .config
        .history
        .iter()
        .filter(|h| !h.empty_layer)
        .map(|h| h.created_by.clone().unwrap_or_default())
        .collect();
    assert_eq!(made.len(), dirs.len());
    made.into_iter().zip(dirs).collect()
}

/// The entries of the last layer of `name`, which `created_by` made.
fn last_layer(env: &Env, name: &str, created_by: &str) -> Vec<String> {
    let layers = layers(env, name);
    let (by, dir) = layers.last().unwrap();
    assert!(by.contains(created_by), "{by}");
    entries(dir)
}

fn build(env: &Env, name: &str, dockerfile: &str, files: &[(&str, &[u8])]) -> String {
    let ctx = context_with(dockerfile, files);
    env.build(&["-t", name, ctx.path().to_str().unwrap()])
}

fn run(env: &Env, args: &[&str]) -> String {
    let mut all = vec!["run", "--rm"];
    all.extend(args);
    env.ok(&mut env.cmd(&all))
}

#[test]
fn run_steps_get_buildkits_host_name_and_etc_files() {
    let env = Env::new();
    build(
        &env,
        "sandbox",
        "FROM busybox\n\
         RUN hostname > /hostname.txt; cat /etc/hosts > /hosts.txt; \
             (test -e /etc/hostname && echo present || echo absent) > /etc-hostname.txt; \
             grep -E ' /etc/(hosts|resolv.conf) ' /proc/mounts | cut -d' ' -f2,4 | \
             sed -E 's/^([^ ]+ [^,]+,[^,]+,[^,]+,[^,]+).*/\\1/' | sort > /mounts.txt\n",
        &[],
    );
    assert_eq!(env.read("sandbox", "/hostname.txt"), "buildkitsandbox\n");
    assert_eq!(env.read("sandbox", "/hosts.txt"), BUILDKIT_HOSTS);
    // /etc/hostname is not mounted: the busybox image has none.
    assert_eq!(env.read("sandbox", "/etc-hostname.txt"), "absent\n");
    assert_eq!(
        env.read("sandbox", "/mounts.txt"),
        "/etc/hosts ro,nosuid,nodev,noexec\n/etc/resolv.conf ro,nosuid,nodev,noexec\n"
    );
    // Nothing but the step's own files in its layer.
    assert_eq!(
        last_layer(&env, "sandbox", "RUN "),
        [
            "etc-hostname.txt",
            "hostname.txt",
            "hosts.txt",
            "mounts.txt"
        ]
    );
    // --add-host lines follow BuildKit's two.
    let ctx = context_with("FROM busybox\nRUN cat /etc/hosts > /hosts.txt\n", &[]);
    env.build(&[
        "--add-host",
        "db=10.1.2.3",
        "-t",
        "added",
        ctx.path().to_str().unwrap(),
    ]);
    assert_eq!(
        env.read("added", "/hosts.txt"),
        format!("{BUILDKIT_HOSTS}10.1.2.3\tdb\n")
    );
}

/// A step may gain privileges as in BuildKit (no no_new_privs: setuid binaries work), as a user too.
#[test]
fn run_steps_have_no_no_new_privs() {
    let env = Env::new();
    build(
        &env,
        "privs",
        "FROM busybox
RUN grep NoNewPrivs /proc/self/status > /root.txt
         USER nobody
RUN grep NoNewPrivs /proc/self/status > /tmp/user.txt
",
        &[],
    );
    assert_eq!(env.read("privs", "/root.txt"), "NoNewPrivs:\t0\n");
    assert_eq!(env.read("privs", "/tmp/user.txt"), "NoNewPrivs:\t0\n");
}

/// A write to /etc/hosts or /etc/resolv.conf fails as in BuildKit: EROFS, the step's exit code 1.
#[test]
fn etc_hosts_and_resolv_conf_are_read_only_in_run() {
    let env = Env::new();
    for file in ["hosts", "resolv.conf"] {
        let ctx = context_with(&format!("FROM busybox\nRUN echo x >> /etc/{file}\n"), &[]);
        let out = env.hoist(&["build", "--progress", "plain", ctx.path().to_str().unwrap()]);
        let text = String::from_utf8_lossy(&out.stderr).into_owned()
            + &String::from_utf8_lossy(&out.stdout);
        assert!(!out.status.success(), "{text}");
        for want in [
            format!("/bin/sh: can't create /etc/{file}: Read-only file system"),
            format!(
                "process \"/bin/sh -c echo x >> /etc/{file}\" did not complete successfully: exit code: 1"
            ),
        ] {
            assert!(text.contains(&want), "{want:?} missing:\n{text}");
        }
    }
}

/// /etc/hostname is the image's file in a RUN: a step's write lands in its layer, the next steps
/// see it, and nothing else of the /etc mounts does.
#[test]
fn etc_hostname_written_by_a_run_step_lands_in_its_layer() {
    let env = Env::new();
    build(
        &env,
        "named",
        "FROM busybox\nRUN echo myhost > /etc/hostname\nRUN cat /etc/hostname > /seen\n",
        &[],
    );
    assert_eq!(env.read("named", "/etc/hostname"), "myhost\n");
    assert_eq!(env.read("named", "/seen"), "myhost\n");
    let layers = layers(&env, "named");
    let (by, dir) = &layers[layers.len() - 2];
    assert!(by.contains("echo myhost"), "{by}");
    assert_eq!(entries(dir), ["etc", "etc/hostname"]);
    // A container still gets Docker's: its own host name, in a writable /etc/hosts too.
    let out = run(
        &env,
        &[
            "named",
            "sh",
            "-c",
            "hostname; cat /etc/hostname; echo 10.9.9.9 extra >> /etc/hosts && tail -n1 /etc/hosts",
        ],
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(
        lines[0].len() == 12 && lines[0].chars().all(|c| c.is_ascii_hexdigit()),
        "{out}"
    );
    assert_eq!(lines[1], lines[0], "{out}");
    assert_eq!(lines[2], "10.9.9.9 extra");
}

/// The mountpoints a step needs (/etc/hosts, /etc/resolv.conf, `--mount` targets of every kind,
/// their missing parents) never reach a layer, even in an image that has no /etc at all; an
/// image's own /etc/hosts is covered while the step runs and kept. /dev, /proc and /sys are the
/// exception, as in BuildKit (runc makes them): the first step of an image without them leaves
/// them in its layer, root's and 0755.
#[test]
fn mountpoints_leave_no_trace_in_layers() {
    use std::os::unix::fs::MetadataExt;
    let env = Env::new();
    let busybox = std::fs::read("/bin/busybox").unwrap();
    let secret = env.dir.path().join("secret");
    std::fs::write(&secret, "s3cret\n").unwrap();
    let ctx = context_with(
        "FROM scratch\nCOPY --chmod=755 busybox /bin/busybox\n\
         RUN [\"/bin/busybox\", \"true\"]\n\
         RUN --mount=type=tmpfs,target=/var/t --mount=type=cache,target=/opt/c/d [\"/bin/busybox\", \"true\"]\n\
         RUN --mount=type=secret,id=s --mount=type=secret,id=s,target=/a/b/sec \
             --mount=type=bind,target=/x/y/z --mount=type=cache,target=/cache \
             --mount=type=bind,source=busybox,target=/f/g/file [\"/bin/busybox\", \"true\"]\n\
         RUN [\"/bin/busybox\", \"sh\", \"-c\", \"/bin/busybox cat /etc/hosts > /hosts.txt\"]\n",
        &[("busybox", &busybox)],
    );
    env.build(&[
        "--secret",
        &format!("id=s,src={}", secret.display()),
        "-t",
        "bare",
        ctx.path().to_str().unwrap(),
    ]);
    let layers = layers(&env, "bare");
    let got: Vec<(&str, Vec<String>)> = layers[1..]
        .iter()
        .map(|(by, dir)| (by.as_str(), entries(dir)))
        .collect();
    assert_eq!(got.len(), 4, "{got:?}");
    assert_eq!(got[0].1, ["dev", "proc", "sys"], "{got:?}");
    for d in ["dev", "proc", "sys"] {
        let m = std::fs::symlink_metadata(layers[1].1.join(d)).unwrap();
        assert!(m.is_dir(), "{d}");
        assert_eq!((m.mode() & 0o7777, m.uid(), m.gid()), (0o755, 0, 0), "{d}");
    }
    assert!(got[1].1.is_empty() && got[2].1.is_empty(), "{got:?}");
    assert_eq!(got[3].1, ["hosts.txt"], "{got:?}");
    assert_eq!(env.read("bare", "/hosts.txt"), BUILDKIT_HOSTS);

    // An image with /etc (no /etc/hosts) and /var: their copies made for the mountpoints go too.
    build(
        &env,
        "etc",
        "FROM busybox\nRUN rm -f /etc/hosts /etc/resolv.conf; mkdir -p /var/lib\n\
         RUN --mount=type=cache,target=/var/lib/c --mount=type=tmpfs,target=/etc/t true\n",
        &[],
    );
    assert!(last_layer(&env, "etc", "true").is_empty());

    build(
        &env,
        "own",
        "FROM busybox\nCOPY hosts /etc/hosts\nRUN cat /etc/hosts > /seen\nRUN true\n",
        &[("hosts", b"10.0.0.1 mine\n")],
    );
    assert_eq!(env.read("own", "/seen"), BUILDKIT_HOSTS);
    assert_eq!(env.read("own", "/etc/hosts"), "10.0.0.1 mine\n");
    assert!(last_layer(&env, "own", "-c true").is_empty());
    assert!(!env.exists("own", "/etc/resolv.conf"));
    assert!(!env.exists("own", "/etc/hostname"));
}

/// A step's own files next to mountpoints stay, as do the directories it made for them; /dev,
/// /proc and /sys come with the first step only, and not at all where the image has them.
#[test]
fn a_steps_own_files_beside_mountpoints_stay() {
    let env = Env::new();
    let busybox = std::fs::read("/bin/busybox").unwrap();
    build(
        &env,
        "beside",
        "FROM scratch\nCOPY --chmod=755 busybox /bin/busybox\n\
         RUN [\"/bin/busybox\", \"sh\", \"-c\", \"/bin/busybox echo x > /etc/foo\"]\n\
         RUN --mount=type=cache,target=/var/cache/x --mount=type=tmpfs,target=/run/secrets/s \
             [\"/bin/busybox\", \"mkdir\", \"-p\", \"/run/secrets/other\", \"/var/cache/y\"]\n",
        &[("busybox", &busybox)],
    );
    let layers = layers(&env, "beside");
    let got: Vec<Vec<String>> = layers[1..].iter().map(|(_, dir)| entries(dir)).collect();
    assert_eq!(
        got,
        [
            vec!["dev", "etc", "etc/foo", "proc", "sys"],
            vec![
                "run",
                "run/secrets",
                "run/secrets/other",
                "var",
                "var/cache",
                "var/cache/y"
            ],
        ]
    );
    // busybox has /dev, /proc and /sys.
    build(&env, "has", "FROM busybox\nRUN true\n", &[]);
    assert!(last_layer(&env, "has", "true").is_empty());
}

/// `--build-arg BUILDKIT_SANDBOX_HOSTNAME` names the RUN host (its /etc/hosts line too, before
/// `--add-host` lines) without an `ARG`; an empty value is BuildKit's default; it is part of a
/// step's cache key.
#[test]
fn sandbox_hostname_build_arg_names_the_run_host() {
    let env = Env::new();
    let ctx = context_with(
        "FROM busybox\nRUN hostname > /h; cat /etc/hosts >> /h\n",
        &[],
    );
    let dir = ctx.path().to_str().unwrap();
    env.build(&["-t", "default", dir]);
    assert_eq!(
        env.read("default", "/h"),
        format!("buildkitsandbox\n{BUILDKIT_HOSTS}")
    );
    let out = env.build(&[
        "--build-arg",
        "BUILDKIT_SANDBOX_HOSTNAME=myhost",
        "-t",
        "named",
        dir,
    ]);
    // The step ran again (FROM alone cached).
    assert_eq!(out.matches("CACHED").count(), 1, "{out}");
    assert_eq!(
        env.read("named", "/h"),
        "myhost\n127.0.0.1\tlocalhost myhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
    );
    env.build(&[
        "--build-arg",
        "BUILDKIT_SANDBOX_HOSTNAME=other",
        "--add-host",
        "db=10.1.2.3",
        "-t",
        "added",
        dir,
    ]);
    assert_eq!(
        env.read("added", "/h"),
        "other\n127.0.0.1\tlocalhost other\n::1\tlocalhost ip6-localhost ip6-loopback\n\
         10.1.2.3\tdb\n"
    );
    let out = env.build(&[
        "--build-arg",
        "BUILDKIT_SANDBOX_HOSTNAME=",
        "-t",
        "empty",
        dir,
    ]);
    assert_eq!(out.matches("CACHED").count(), 2, "{out}");
    assert_eq!(env.read("empty", "/h"), env.read("default", "/h"));
}

/// Equal layers below a step (two `RUN true`, two `WORKDIR` of an existing directory share one
/// layer directory) do not stop later steps or containers.
#[test]
fn equal_layers_below_a_step() {
    let env = Env::new();
    build(
        &env,
        "twice",
        "FROM busybox\nRUN true\nRUN true\nRUN echo ok > /ok\n\
         WORKDIR /tmp\nWORKDIR /tmp\nRUN echo there > here\n",
        &[],
    );
    let layers = layers(&env, "twice");
    let dirs: Vec<&PathBuf> = layers.iter().map(|(_, d)| d).collect();
    assert!(
        dirs.iter().enumerate().any(|(i, d)| dirs[..i].contains(d)),
        "the image repeats a layer: {layers:?}"
    );
    assert_eq!(env.read("twice", "/ok"), "ok\n");
    assert_eq!(env.read("twice", "/tmp/here"), "there\n");
    assert_eq!(
        run(&env, &["twice", "sh", "-c", "pwd; cat /ok here"]),
        "/tmp\nok\nthere\n"
    );
    // A build on top of it runs as well.
    build(
        &env,
        "above",
        "FROM twice\nRUN true\nRUN cat /ok here > both\n",
        &[],
    );
    assert_eq!(env.read("above", "/tmp/both"), "ok\nthere\n");
}

/// The host's cgroup v1 hierarchies as (name under /sys/fs/cgroup, this process's cgroup in it),
/// none on a cgroup v2 host.
fn v1_hierarchies() -> Vec<(String, String)> {
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let mut out = Vec::new();
    for line in mountinfo.lines() {
        let (left, right) = line.split_once(" - ").unwrap();
        let left: Vec<&str> = left.split(' ').collect();
        let right: Vec<&str> = right.split(' ').collect();
        if right[0] != "cgroup" {
            continue;
        }
        let opts: Vec<&str> = right[2].split(',').collect();
        let path = own.lines().find_map(|l| {
            let mut f = l.splitn(3, ':');
            let (_, ctrl, path) = (f.next()?, f.next()?, f.next()?);
            (!ctrl.is_empty() && ctrl.split(',').all(|c| opts.contains(&c))).then_some(path)
        });
        if let Some(path) = path {
            let name = left[4].rsplit('/').next().unwrap().to_string();
            out.push((name, path.to_string()));
        }
    }
    out
}

/// A RUN step runs in a cgroup of its own, which it sees read-only at /sys/fs/cgroup as in
/// BuildKit: on cgroup v1 a tmpfs with each hierarchy's step cgroup bound read-only (its
/// /proc/self/cgroup naming it, below hoist's own), removed after the step; on v2 its own
/// cgroup namespace and a read-only cgroup2 mount.
#[test]
fn run_steps_see_their_own_cgroup_read_only() {
    let env = Env::new();
    build(
        &env,
        "cg",
        "FROM busybox\nRUN cat /proc/self/cgroup > /cg.txt; ls /sys/fs/cgroup > /ls.txt; \
         grep ' /sys/fs/cgroup' /proc/mounts | cut -d' ' -f2,3,4 | cut -d, -f1 > /mounts.txt; \
         for d in /sys/fs/cgroup /sys/fs/cgroup/*/; do mkdir $d/sub 2>/dev/null && echo $d; done \
           > /writable.txt; true\n",
        &[],
    );
    let v1 = v1_hierarchies();
    let cg = env.read("cg", "/cg.txt");
    let mounts = env.read("cg", "/mounts.txt");
    if v1.is_empty() {
        assert_eq!(cg, "0::/\n");
        assert!(env.read("cg", "/ls.txt").contains("cgroup.procs\n"));
        assert_eq!(mounts, "/sys/fs/cgroup cgroup2 ro\n");
        assert_eq!(env.read("cg", "/writable.txt"), "");
        return;
    }
    // Every hierarchy, and a symlink per co-mounted controller.
    let mut names: Vec<String> = v1.iter().map(|(n, _)| n.clone()).collect();
    for (n, _) in &v1 {
        names.extend(n.split(',').filter(|c| c != n).map(String::from));
    }
    names.sort();
    names.dedup();
    assert_eq!(env.read("cg", "/ls.txt"), names.join("\n") + "\n");
    let mut want_mounts = vec!["/sys/fs/cgroup tmpfs rw".to_string()];
    want_mounts.extend(
        v1.iter()
            .map(|(n, _)| format!("/sys/fs/cgroup/{n} cgroup ro")),
    );
    let mut got_mounts: Vec<&str> = mounts.lines().collect();
    got_mounts[1..].sort();
    want_mounts[1..].sort();
    assert_eq!(got_mounts, want_mounts);
    // Only the tmpfs takes a directory.
    assert_eq!(env.read("cg", "/writable.txt"), "/sys/fs/cgroup\n");
    // The step's cgroup, below hoist's (this test's) own in each hierarchy, is gone afterwards.
    let step = cg
        .lines()
        .find_map(|l| l.rsplit_once("/hoist/").map(|(_, n)| n.to_string()))
        .unwrap_or_else(|| panic!("no step cgroup in {cg}"));
    assert!(step.starts_with("hoist-run-"), "{cg}");
    for (name, own) in &v1 {
        let ctrl = name.split(',').next().unwrap();
        let line = cg
            .lines()
            .find(|l| {
                l.split(':')
                    .nth(1)
                    .unwrap()
                    .split(',')
                    .any(|c| c == ctrl || c == format!("name={ctrl}"))
            })
            .unwrap_or_else(|| panic!("{name} missing from {cg}"));
        let inside = format!("{}/hoist/{step}", own.trim_end_matches('/'));
        assert!(line.ends_with(&format!(":{inside}")), "{line} in {cg}");
        let host = Path::new("/sys/fs/cgroup")
            .join(name)
            .join(inside.trim_start_matches('/'));
        assert!(!host.exists(), "{} left behind", host.display());
    }
}

/// A failed RUN names its command Go-quoted as BuildKit's `process %q did not complete
/// successfully` does: backslashes and quotes escaped, a tab as `\t`.
#[test]
fn failed_run_error_quotes_the_command_as_go_does() {
    let env = Env::new();
    let ctx = context_with("FROM busybox\nRUN printf 'a\\n\"b\"\t' && exit 4\n", &[]);
    let out = env.hoist(&["build", "--progress", "plain", ctx.path().to_str().unwrap()]);
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    let want = r#"process "/bin/sh -c printf 'a\\n\"b\"\t' && exit 4" did not complete successfully: exit code: 4"#;
    assert!(text.contains(want), "{want:?} missing:\n{text}");
}

/// Stderr of a failed `hoist build -q` of `dockerfile`.
fn failed_quiet_build(env: &Env, dockerfile: &str) -> String {
    let ctx = context_with(dockerfile, &[]);
    let out = env.hoist(&["build", "-q", ctx.path().to_str().unwrap()]);
    assert!(!out.status.success());
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Errors tied to Dockerfile lines end the report as BuildKit's CLI does: the lines with numbered
/// context (`>>>` on the instruction's), then `ERROR: failed to build: failed to solve: MESSAGE`
/// (`dockerfile parse error on line N:` only for errors BuildKit finds when parsing; none for
/// `--mount` values, found at dispatch); quiet builds show no step log.
#[test]
fn error_reports_show_the_source_lines_as_buildkit() {
    let env = Env::new();
    let cases = [
        (
            "FROM busybox\nFOO bar\n",
            "Dockerfile:2\n--------------------\n   1 |     FROM busybox\n   2 | >>> FOO bar\n   3 |     \n--------------------\nERROR: failed to build: failed to solve: dockerfile parse error on line 2: unknown instruction: FOO (did you mean FROM?)\n",
        ),
        (
            "FROM busybox\nENV A\n",
            "Dockerfile:2\n--------------------\n   1 |     FROM busybox\n   2 | >>> ENV A\n   3 |     \n--------------------\nERROR: failed to build: failed to solve: ENV must have two arguments\n",
        ),
        (
            "FROM busybox\nEXPOSE 80-70\n",
            "Dockerfile:2\n--------------------\n   1 |     FROM busybox\n   2 | >>> EXPOSE 80-70\n   3 |     \n--------------------\nERROR: failed to build: failed to solve: invalid containerPort: 80-70\n",
        ),
        (
            "FROM busybox\nRUN --mount=type=cache,target=/x,sharing=bogus \\\n    true\nRUN true\n",
            "Dockerfile:2\n--------------------\n   1 |     FROM busybox\n   2 | >>> RUN --mount=type=cache,target=/x,sharing=bogus \\\n   3 | >>>     true\n   4 |     RUN true\n--------------------\nERROR: failed to build: failed to solve: unsupported sharing value \"bogus\"\n",
        ),
        (
            "FROM busybox\nRUN --mount=type=bind true\n",
            "Dockerfile:2\n--------------------\n   1 |     FROM busybox\n   2 | >>> RUN --mount=type=bind true\n   3 |     \n--------------------\nERROR: failed to build: failed to solve: invalid mount target \"/\"\n",
        ),
        (
            "FROM busybox\nARG X\nRUN exit 3\n",
            "Dockerfile:3\n--------------------\n   1 |     FROM busybox\n   2 |     ARG X\n   3 | >>> RUN exit 3\n   4 |     \n--------------------\nERROR: failed to build: failed to solve: process \"/bin/sh -c exit 3\" did not complete successfully: exit code: 3\n",
        ),
    ];
    let cases = cases.into_iter().chain([
        (
            "RUN true\n",
            "Dockerfile:1\n--------------------\n   1 | >>> RUN true\n   2 |     \n--------------------\nERROR: failed to build: failed to solve: no build stage in current context\n",
        ),
        (
            "FROM busybox\nCOPY --from=0 /x /y\n",
            "Dockerfile:2\n--------------------\n   1 |     FROM busybox\n   2 | >>> COPY --from=0 /x /y\n   3 |     \n--------------------\nERROR: failed to build: failed to solve: circular dependency detected on stage: stage-0\n",
        ),
        (
            "FROM busybox AS Me\nCOPY --from=me /x /y\n",
            "Dockerfile:2\n--------------------\n   1 |     FROM busybox AS Me\n   2 | >>> COPY --from=me /x /y\n   3 |     \n--------------------\nERROR: failed to build: failed to solve: circular dependency detected on stage: me\n",
        ),
        (
            "FROM busybox AS me\nRUN --mount=from=ME,target=/x true\n",
            "Dockerfile:2\n--------------------\n   1 |     FROM busybox AS me\n   2 | >>> RUN --mount=from=ME,target=/x true\n   3 |     \n--------------------\nERROR: failed to build: failed to solve: circular dependency detected on stage: me\n",
        ),
    ]);
    for (dockerfile, want) in cases {
        let err = failed_quiet_build(&env, dockerfile);
        assert_eq!(err, want, "for {dockerfile:?}");
    }
}

/// A base image that cannot be resolved is named as written first, as BuildKit does
/// (`nosuch:1: failed to resolve source metadata for docker.io/library/nosuch:1: ...`), after the
/// FROM line's source.
#[test]
fn an_unresolvable_base_is_named_as_written() {
    let env = Env::new();
    let err = failed_quiet_build(&env, "FROM hoist-e2-nosuch:1\n");
    assert!(
        err.starts_with(
            "Dockerfile:1\n--------------------\n   1 | >>> FROM hoist-e2-nosuch:1\n   2 |     \n--------------------\n\
             ERROR: failed to build: failed to solve: hoist-e2-nosuch:1: failed to resolve source metadata for docker.io/library/hoist-e2-nosuch:1: "
        ),
        "{err}"
    );
}
