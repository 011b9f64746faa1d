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
    assert_eq!(first.len(), 3, "{first:?}");
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
