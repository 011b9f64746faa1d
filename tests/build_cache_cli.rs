//! `hoist build` cache keys seen from the command line: a RUN's `--mount`s key it on what they
//! bind (the content of the bound path, not the whole context), never on cache contents or
//! secrets; git and http URLs as the build context; and incremental rebuilds of small pip- and
//! npm-style apps that re-run only the steps an edit reaches.

mod build_support;
mod common;

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;

use build_support::{Env, context_with, steps_run};

fn write(dir: &Path, rel: &str, content: &str) {
    let p = dir.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, content).unwrap();
}

/// Builds `ctx` with `args` (plain progress), returning the instructions that ran.
fn rebuild(env: &Env, ctx: &Path, args: &[&str]) -> Vec<String> {
    let mut a = args.to_vec();
    a.push(ctx.to_str().unwrap());
    steps_run(&env.build(&a))
}

const BIND_STEPS: &str = "FROM busybox
RUN --mount=type=bind,source=ca.crt,target=/tmp/ca.crt cat /tmp/ca.crt > /ca
RUN --mount=type=bind,source=conf,target=/conf ls -ln /conf > /conf.list
RUN --mount=type=bind,target=/ctx find /ctx -type f | sort > /all
";

#[test]
fn a_bind_mount_keys_the_run_on_the_bound_path_only() {
    let env = Env::new();
    let ctx = context_with(
        BIND_STEPS,
        &[
            ("certs/real.crt", b"CERT1\n"),
            ("conf/app.ini", b"a=1\n"),
            ("src/main.py", b"print(1)\n"),
            ("ignored/big.log", b"log\n"),
            (".dockerignore", b"ignored\n"),
        ],
    );
    let c = ctx.path();
    symlink("certs/real.crt", c.join("ca.crt")).unwrap();
    let first = rebuild(&env, c, &["-t", "b"]);
    assert_eq!(first.len(), 3, "{first:?}");
    assert_eq!(env.read("b", "/ca"), "CERT1\n");
    assert!(!env.read("b", "/all").contains("big.log"));

    // An unrelated source edit re-runs only the step that binds the whole context.
    write(c, "src/main.py", "print(2)\n");
    assert_eq!(
        rebuild(&env, c, &["-t", "b"]),
        ["RUN --mount=type=bind,target=/ctx find /ctx -type f | sort > /all"]
    );
    // A file .dockerignore hides is not part of any key.
    write(c, "ignored/big.log", "more\n");
    assert_eq!(rebuild(&env, c, &["-t", "b"]), Vec::<String>::new());

    // The bound file is followed through its symlink (the steps after it build on its result).
    write(c, "certs/real.crt", "CERT2\n");
    let ran = rebuild(&env, c, &["-t", "b"]);
    assert_eq!(ran.len(), 3, "{ran:?}");
    assert_eq!(env.read("b", "/ca"), "CERT2\n");

    // A bound directory: content and mode bits below it count.
    write(c, "conf/app.ini", "a=2\n");
    let ran = rebuild(&env, c, &["-t", "b"]);
    assert_eq!(ran.len(), 2, "{ran:?}");
    assert!(ran[0].contains("/conf.list"), "{ran:?}");
    fs::set_permissions(c.join("conf/app.ini"), fs::Permissions::from_mode(0o600)).unwrap();
    let ran = rebuild(&env, c, &["-t", "b"]);
    assert_eq!(ran.len(), 2, "{ran:?}");
    assert!(ran[0].contains("/conf.list"), "{ran:?}");
    assert!(env.read("b", "/conf.list").contains("-rw-------"));

    // A missing source, or one .dockerignore hides, fails the step's key as BuildKit's does.
    for source in ["nope", "ignored/big.log"] {
        fs::write(
            c.join("Dockerfile"),
            format!("FROM busybox\nRUN --mount=type=bind,source={source},target=/x true\n"),
        )
        .unwrap();
        let out = env.hoist(&["build", c.to_str().unwrap()]);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        // BuildKit 0.25: `ERROR: failed to build: failed to solve: failed to compute cache key:
        // failed to calculate checksum of ref SHARED::REF: "/nope": not found`.
        let last = err
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("");
        assert!(
            last.starts_with(
                "ERROR: failed to build: failed to solve: failed to compute cache key: failed to calculate checksum of ref "
            ) && last.ends_with(&format!(": \"/{source}\": not found")),
            "{err}"
        );
    }
}

#[test]
fn cache_mounts_and_secrets_do_not_enter_the_key_but_the_mount_spec_does() {
    let env = Env::new();
    let df = "FROM busybox
RUN --mount=type=cache,target=/c --mount=type=secret,id=tok,env=TOK --mount=type=tmpfs,target=/t date +%s%N >> /c/runs && echo $TOK | wc -c > /len
";
    let ctx = context_with(df, &[]);
    let c = ctx.path();
    let secret = env.dir.path().join("tok");
    fs::write(&secret, "one").unwrap();
    let s = format!("id=tok,src={}", secret.display());
    assert_eq!(rebuild(&env, c, &["--secret", &s, "-t", "m"]).len(), 1);
    // Another secret value, and a cache directory the step changed: still cached.
    fs::write(&secret, "a longer one").unwrap();
    assert_eq!(
        rebuild(&env, c, &["--secret", &s, "-t", "m"]),
        Vec::<String>::new()
    );
    // Another cache target is another step.
    fs::write(c.join("Dockerfile"), df.replace("/c", "/c2")).unwrap();
    assert_eq!(rebuild(&env, c, &["--secret", &s, "-t", "m"]).len(), 1);
}

#[test]
fn a_stage_or_named_context_bind_keys_on_the_bound_content() {
    let env = Env::new();
    let df = "FROM busybox AS gen
ARG OTHER=1
ARG OUT=a
RUN mkdir -p /out && echo $OUT > /out/f && echo $OTHER > /other
FROM busybox
RUN --mount=from=busybox,source=/etc/passwd,target=/p cat /p > /from-image
RUN --mount=from=gen,source=/out,target=/o cat /o/f > /from-stage
RUN --mount=from=src,source=lock.txt,target=/lock cat /lock > /from-named
";
    let ctx = context_with(df, &[]);
    let c = ctx.path();
    let named = tempfile::tempdir().unwrap();
    write(named.path(), "lock.txt", "v1\n");
    write(named.path(), "app.js", "1\n");
    let src = format!("src={}", named.path().display());
    let args = |other: &'static str, out: &'static str| -> Vec<String> {
        [
            "--build-context",
            &src,
            "--build-arg",
            &format!("OTHER={other}"),
            "--build-arg",
            &format!("OUT={out}"),
            "-t",
            "s",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let run = |a: Vec<String>| {
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        rebuild(&env, c, &a)
    };
    let first = run(args("1", "a"));
    assert_eq!(first.len(), 4, "{first:?}");
    assert!(env.read("s", "/from-image").starts_with("root:"));
    // The stage re-runs, but what it leaves in /out is the same.
    assert_eq!(
        run(args("2", "a")),
        ["RUN mkdir -p /out && echo $OUT > /out/f && echo $OTHER > /other"]
    );
    // Its /out changes: the bind step re-runs (and the step built on it).
    let ran = run(args("2", "b"));
    assert_eq!(ran.len(), 3, "{ran:?}");
    assert_eq!(env.read("s", "/from-stage"), "b\n");
    // The named context: another file changes, then the bound one.
    write(named.path(), "app.js", "2\n");
    assert_eq!(run(args("2", "b")), Vec::<String>::new());
    write(named.path(), "lock.txt", "v2\n");
    assert_eq!(
        run(args("2", "b")),
        ["RUN --mount=from=src,source=lock.txt,target=/lock cat /lock > /from-named"]
    );
    assert_eq!(env.read("s", "/from-named"), "v2\n");
}

/// Serves the files under `root` over plain http on a free 127.0.0.1 port (GET only; 404 for
/// anything missing): enough for git's dumb-http protocol.
fn serve_dir(root: &Path) -> u16 {
    use std::io::{BufRead, BufReader, Write};
    let root = root.to_path_buf();
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for c in l.incoming().flatten() {
            let root = root.clone();
            std::thread::spawn(move || {
                let mut r = BufReader::new(c.try_clone().unwrap());
                let mut line = String::new();
                let _ = r.read_line(&mut line);
                let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
                let path = path.split('?').next().unwrap().trim_start_matches('/');
                loop {
                    let mut h = String::new();
                    if r.read_line(&mut h).map_or(true, |n| n == 0) || h == "\r\n" {
                        break;
                    }
                }
                let mut c = c;
                let file = root.join(path);
                match fs::read(&file).ok().filter(|_| !path.contains("..")) {
                    Some(body) => {
                        let _ = write!(
                            c,
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                            body.len()
                        );
                        let _ = c.write_all(&body);
                    }
                    None => {
                        let _ = write!(
                            c,
                            "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                        );
                    }
                }
            });
        }
    });
    port
}

/// A bare repository served over dumb http: `app/` holds a Dockerfile, `Other.df`, a
/// `.dockerignore` and files; tag `v1` is the first commit, `main` the second. Returns the URL of
/// `repo.git` and the temp dir holding it.
fn served_repo() -> (String, tempfile::TempDir) {
    use common::git;
    let d = tempfile::tempdir().unwrap();
    let work = d.path().join("work");
    fs::create_dir_all(&work).unwrap();
    git(&work, &["init", "-q", "-b", "main"]);
    write(
        &work,
        "app/Dockerfile",
        "FROM busybox\nCOPY . /ctx/\nRUN cat /ctx/version > /version\n",
    );
    write(&work, "app/Other.df", "FROM busybox\nCOPY version /other\n");
    write(&work, "app/.dockerignore", "notes.txt\n");
    write(&work, "app/notes.txt", "notes\n");
    write(&work, "app/version", "1\n");
    write(&work, "top.txt", "top\n");
    git(&work, &["add", "."]);
    git(&work, &["commit", "-qm", "one"]);
    git(&work, &["tag", "v1"]);
    write(&work, "app/version", "2\n");
    git(&work, &["commit", "-qam", "two"]);
    let bare = d.path().join("srv/repo.git");
    git(
        d.path(),
        &[
            "clone",
            "-q",
            "--bare",
            work.to_str().unwrap(),
            bare.to_str().unwrap(),
        ],
    );
    git(&bare, &["update-server-info"]);
    let port = serve_dir(&d.path().join("srv"));
    (format!("http://127.0.0.1:{port}/repo.git"), d)
}

#[test]
fn a_git_url_is_a_build_context() {
    let env = Env::new();
    let (repo, _srv) = served_repo();
    let main = format!("{repo}#main:app");
    let out = env.build(&["-t", "g", &main]);
    assert!(
        out.contains(&format!("[internal] load git source {main}")),
        "{out}"
    );
    assert_eq!(env.read("g", "/version"), "2\n");
    // The subdir is the context; as in BuildKit, the repository's .dockerignore is not applied.
    assert_eq!(env.read("g", "/ctx/notes.txt"), "notes\n");
    assert!(env.exists("g", "/ctx/Other.df"));
    assert!(!env.exists("g", "/ctx/top.txt"));
    assert!(!env.exists("g", "/ctx/.git"));
    // Fetched again, the same content is all cached.
    assert_eq!(
        steps_run(&env.build(&["-t", "g", &main])),
        Vec::<String>::new()
    );

    // A tag, the query form, -f relative to the subdir.
    env.build(&["-t", "g1", &format!("{repo}#v1:app")]);
    assert_eq!(env.read("g1", "/version"), "1\n");
    env.build(&["-t", "q", &format!("{repo}?tag=v1&subdir=app")]);
    assert_eq!(env.read("q", "/version"), "1\n");
    env.build(&["-t", "o", "-f", "Other.df", &main]);
    assert_eq!(env.read("o", "/other"), "2\n");

    // The repository's root with .git kept, and a --build-context beside it.
    let extra = tempfile::tempdir().unwrap();
    write(extra.path(), "e.txt", "extra\n");
    let df = env.dir.path().join("Root.df");
    fs::write(
        &df,
        "FROM busybox\nCOPY . /r/\nCOPY --from=extra e.txt /e.txt\n",
    )
    .unwrap();
    env.build(&[
        "-t",
        "root",
        "-f",
        df.to_str().unwrap(),
        "--build-arg",
        "BUILDKIT_CONTEXT_KEEP_GIT_DIR=1",
        "--build-context",
        &format!("extra={}", extra.path().display()),
        &repo,
    ]);
    assert_eq!(env.read("root", "/r/top.txt"), "top\n");
    assert!(env.exists("root", "/r/.git/HEAD"));
    assert_eq!(env.read("root", "/e.txt"), "extra\n");

    let out = env.hoist(&["build", "-t", "x", &format!("{repo}#nosuchref")]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("failed to load git source"), "{err}");
}

#[test]
fn an_http_url_is_a_build_context_tarball_or_dockerfile() {
    use common::serve_http;
    let env = Env::new();
    let ctx = context_with(
        "FROM busybox\nCOPY . /ctx/\n",
        &[("a.txt", b"a\n"), ("sub/b.txt", b"b\n")],
    );
    let tgz = env.dir.path().join("ctx.tar.gz");
    let st = std::process::Command::new("tar")
        .arg("-czf")
        .arg(&tgz)
        .arg("-C")
        .arg(ctx.path())
        .arg(".")
        .status()
        .unwrap();
    assert!(st.success());
    let port = serve_http(fs::read(&tgz).unwrap());
    let out = env.build(&["-t", "t", &format!("http://127.0.0.1:{port}/ctx.tar.gz")]);
    assert!(
        out.contains("[internal] load remote build context"),
        "{out}"
    );
    assert_eq!(env.read("t", "/ctx/a.txt"), "a\n");
    assert_eq!(env.read("t", "/ctx/sub/b.txt"), "b\n");

    // Not an archive: the URL is the Dockerfile.
    let port = serve_http(b"FROM busybox\nRUN echo from-url > /hi\n".to_vec());
    env.build(&["-t", "d", &format!("http://127.0.0.1:{port}/Dockerfile")]);
    assert_eq!(env.read("d", "/hi"), "from-url\n");
}

/// A copy of `testdata/incremental/NAME` to edit.
fn app(name: &str) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/incremental")
        .join(name);
    let st = std::process::Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", src.display()))
        .arg(d.path())
        .status()
        .unwrap();
    assert!(st.success());
    d
}

/// Builds the app at `ctx` with its `dockerfile`, edits `source` and rebuilds: only `COPY . .`
/// and the build step after it run again; an edit of the dependency list re-runs the install.
fn incremental(env: &Env, ctx: &Path, dockerfile: &str, source: &str, deps: &str, tag: &str) {
    let df = ctx.join(dockerfile);
    let args = ["-t", tag, "-f", df.to_str().unwrap()];
    let first = rebuild(env, ctx, &args);
    assert!(
        first
            .iter()
            .any(|s| s.contains(" ci") || s.contains("install")),
        "{first:?}"
    );
    assert_eq!(
        rebuild(env, ctx, &args),
        Vec::<String>::new(),
        "{dockerfile}: nothing changed"
    );

    fs::write(
        ctx.join(source),
        format!(
            "{}// edited\n",
            fs::read_to_string(ctx.join(source)).unwrap()
        ),
    )
    .unwrap();
    let ran = rebuild(env, ctx, &args);
    assert_eq!(ran.len(), 2, "{dockerfile} after a source edit: {ran:?}");
    assert_eq!(ran[0], "COPY . .", "{ran:?}");
    assert!(
        ran[1].contains("compile") || ran[1].contains("run build"),
        "{ran:?}"
    );

    let list = ctx.join(deps);
    let text = fs::read_to_string(&list).unwrap();
    fs::write(
        &list,
        text.replacen("4.", "5.", 1).replacen("2.32", "2.33", 1),
    )
    .unwrap();
    let ran = rebuild(env, ctx, &args);
    assert!(
        ran.iter()
            .any(|s| s.contains(" ci") || s.contains("install")),
        "{dockerfile} after a dependency edit: {ran:?}"
    );
}

#[test]
fn a_pip_app_rebuilds_only_what_a_source_edit_reaches() {
    let env = Env::new();
    for df in ["Dockerfile", "Dockerfile.bind"] {
        let ctx = app("pip");
        incremental(
            &env,
            ctx.path(),
            df,
            "app/util.py",
            "requirements.txt",
            "pip-app",
        );
        let bundle = env.read("pip-app", "/usr/local/lib/app.bundle");
        assert!(bundle.contains("// edited"), "{bundle}");
        assert!(env.exists(
            "pip-app",
            "/usr/local/lib/python3/site-packages/click/m0.py"
        ));
        // The bind-mounted list and the cache directory are not in the image.
        assert!(!env.exists("pip-app", "/tmp/r.txt"));
        assert!(!env.exists("pip-app", "/root/.cache/pip/last-install") || df == "Dockerfile");
    }
}

#[test]
fn an_npm_app_rebuilds_only_what_a_source_edit_reaches() {
    let env = Env::new();
    for df in ["Dockerfile", "Dockerfile.bind"] {
        let ctx = app("npm");
        incremental(
            &env,
            ctx.path(),
            df,
            "src/lib.js",
            "package-lock.json",
            "npm-app",
        );
        let bundle = env.read("npm-app", "/app/dist/bundle.js");
        assert!(bundle.contains("// edited"), "{bundle}");
        assert!(env.exists("npm-app", "/app/node_modules/lodash/index.js"));
        if df == "Dockerfile.bind" {
            assert!(!env.exists("npm-app", "/root/.npm/last-ci"));
        }
    }
}

/// `git daemon` serving `base` on a free loopback port; killed when dropped.
struct GitDaemon(std::process::Child, u16);

impl GitDaemon {
    fn start(base: &Path) -> GitDaemon {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        // git-daemon itself (`git daemon` would fork it and leave it running when killed).
        let exec_path = common::git(base, &["--exec-path"]);
        let child = std::process::Command::new(Path::new(exec_path.trim()).join("git-daemon"))
            .args(["--export-all", "--reuseaddr", "--listen=127.0.0.1"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .arg(format!("--port={port}"))
            .arg(format!("--base-path={}", base.display()))
            .arg(base)
            .spawn()
            .unwrap();
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        GitDaemon(child, port)
    }
}

impl Drop for GitDaemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_git_protocol_url_is_a_build_context() {
    let env = Env::new();
    let (_, srv) = served_repo();
    let daemon = GitDaemon::start(&srv.path().join("srv"));
    let url = format!("git://127.0.0.1:{}/repo.git#v1:app", daemon.1);
    env.build(&["-t", "gp", &url]);
    assert_eq!(env.read("gp", "/version"), "1\n");
    // The same commit again: every step cached.
    assert_eq!(
        steps_run(&env.build(&["-t", "gp", &url])),
        Vec::<String>::new()
    );
}

/// A stage counts by its content, never its position: inserting a stage at the top of the
/// Dockerfile (one the target needs, so every later stage moves) leaves the steps that read a
/// moved stage (`COPY --from`, a RUN binding it, the RUN after them) cached; only the new stage's
/// step and the new step reading it run.
#[test]
fn inserting_a_stage_earlier_keeps_later_steps_cached() {
    let env = Env::new();
    let body = "FROM busybox AS gen
RUN echo generated > /out
FROM busybox
COPY --from=gen /out /copied
RUN --mount=from=gen,source=/out,target=/o cat /o > /bound
RUN cat /copied > /ran
";
    let ctx = context_with(body, &[]);
    let c = ctx.path();
    let first = rebuild(&env, c, &["-t", "ins"]);
    assert_eq!(first.len(), 4, "{first:?}");
    fs::write(
        c.join("Dockerfile"),
        format!(
            "FROM busybox AS extra\nRUN echo extra > /extra\n{body}COPY --from=extra /extra /extra\n"
        ),
    )
    .unwrap();
    assert_eq!(
        rebuild(&env, c, &["-t", "ins"]),
        ["RUN echo extra > /extra", "COPY --from=extra /extra /extra"]
    );
    assert_eq!(env.read("ins", "/ran"), "generated\n");
    assert_eq!(env.read("ins", "/bound"), "generated\n");
    assert_eq!(env.read("ins", "/extra"), "extra\n");
}
