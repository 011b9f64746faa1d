//! End-to-end tests of `hoist build`'s advanced features on testdata/build-advanced/: RUN mounts
//! (secret, cache, bind, tmpfs, ssh), `hoist builder prune`, outputs, reproducible builds and
//! build checks. Each test has its own store with the busybox fixture.

mod build_support;
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use build_support::{Env, context_with};
use common::{git, serve_http};
use hoist_image::Store;

fn testdata(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/build-advanced")
        .join(name)
}

fn sha256_hex(data: &[u8]) -> String {
    let d = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(d.path(), data).unwrap();
    let out = Command::new("sha256sum").arg(d.path()).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

/// Every file under `dir` whose bytes contain `needle` (gzip/zstd blobs are decompressed first).
fn files_containing(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut hits = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap().map(|e| e.unwrap()) {
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                todo.push(e.path());
                continue;
            }
            if !ft.is_file() {
                continue;
            }
            let raw = std::fs::read(e.path()).unwrap_or_default();
            let mut views = vec![raw.clone()];
            let tool = if raw.starts_with(&[0x1f, 0x8b]) {
                Some("gzip")
            } else if raw.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
                Some("zstd")
            } else {
                None
            };
            if let Some(tool) = tool {
                let out = Command::new(tool)
                    .arg("-dc")
                    .arg(e.path())
                    .output()
                    .unwrap();
                assert!(out.status.success(), "{tool} -dc {}", e.path().display());
                views.push(out.stdout);
            }
            if views
                .iter()
                .any(|v| v.windows(needle.len()).any(|w| w == needle))
            {
                hits.push(e.path());
            }
        }
    }
    hits
}

#[test]
fn secrets_reach_the_step_and_nothing_else() {
    let env = Env::new();
    let secret = b"hoist-test-secret-7f3a9c";
    let sfile = env.dir.path().join("tok.txt");
    std::fs::write(&sfile, secret).unwrap();
    let ctx = testdata("secret");
    let src = format!("id=tok,src={}", sfile.display());
    // Builds the context as `tag` with both secrets, the env one holding `env_value`.
    let build = |tag: &str, env_value: &str| {
        env.ok(env
            .cmd(&[
                "build",
                "--progress",
                "plain",
                "--secret",
                &src,
                "--secret",
                "id=fromenv,env=HOIST_TEST_SECRET_ENV",
                "-t",
                tag,
                ctx.to_str().unwrap(),
            ])
            .env("HOIST_TEST_SECRET_ENV", env_value))
    };
    let progress = build("sec", "env-secret-55aa");
    let sha = sha256_hex(secret);
    assert_eq!(env.read("sec", "/file-sha").trim(), sha);
    assert_eq!(env.read("sec", "/env-sha").trim(), sha);
    assert_eq!(
        env.read("sec", "/env2-sha").trim(),
        sha256_hex(b"env-secret-55aa")
    );
    assert!(env.read("sec", "/secrets-dir").contains("-r--------"));
    assert_eq!(
        env.read("sec", "/stat").trim(),
        format!("440 7 8 {}", secret.len())
    );
    assert!(
        env.exists("sec", "/absent-ok"),
        "an optional missing secret is skipped"
    );
    // The mountpoints the runtime made for the secrets are not in any layer.
    for p in ["/run/secrets", "/run", "/etc/mysecret"] {
        assert!(!env.exists("sec", p), "{p} leaked into the image");
    }
    assert!(
        !progress.contains("hoist-test-secret"),
        "secret in the logs"
    );
    // Every blob, record and index of the store: no secret value.
    for needle in [&secret[..], b"env-secret-55aa"] {
        let hits = files_containing(&env.root, needle);
        assert!(hits.is_empty(), "secret found in {hits:?}");
    }
    let history = env.ok(&mut env.cmd(&["history", "--no-trunc", "sec"]));
    assert!(!history.contains("hoist-test-secret"));

    // The value is not part of the cache key: another value is a cache hit (as in BuildKit).
    std::fs::write(&sfile, b"another-value").unwrap();
    let again = build("sec2", "x");
    assert_eq!(again.matches("CACHED").count(), 6, "{again}");
    assert_eq!(env.image_id("sec"), env.image_id("sec2"));

    // A required secret that was not given fails the step with BuildKit's message (when the step
    // runs: like BuildKit, a cache hit does not need the secret).
    let req = env.dir.path().join("Dockerfile.required");
    std::fs::write(
        &req,
        "FROM busybox\nRUN --mount=type=secret,id=tok,required=true true\n",
    )
    .unwrap();
    let out = env.hoist(&[
        "build",
        "-f",
        req.to_str().unwrap(),
        env.dir.path().to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("secret tok: not found"), "{err}");
    let out = env.hoist(&[
        "build",
        "--secret",
        "id=x,src=/nonexistent/file",
        ctx.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/file"));
}

#[test]
fn cache_mounts_persist_across_builds_until_pruned() {
    let env = Env::new();
    let ctx = testdata("cache");
    let c = ctx.to_str().unwrap();
    env.build(&["--build-arg", "N=1", "-t", "c1", c]);
    assert_eq!(env.read("c1", "/seen"), "run-1\n");
    assert_eq!(env.read("c1", "/cache-stat").trim(), "700 5 6");
    env.build(&["--build-arg", "N=2", "-t", "c2", c]);
    assert_eq!(env.read("c2", "/seen"), "run-1\nrun-2\n");
    for p in ["/var/cache/app", "/var/cache/locked", "/var/cache/private"] {
        assert!(!env.exists("c2", p), "{p}: a cache mount landed in a layer");
    }
    let out = env.ok(&mut env.cmd(&["builder", "prune", "-f"]));
    assert!(out.contains("\nTotal:"), "{out}");
    env.build(&["--build-arg", "N=3", "-t", "c3", c]);
    assert_eq!(env.read("c3", "/seen"), "run-3\n");
}

/// A relative `--root` (here `store`, from the temp dir) works for RUN steps with cache mounts: the
/// sandbox mounts after changing directory, so the store's paths must be absolute by then.
#[test]
fn a_relative_root_works_with_cache_mounts() {
    let env = Env::new();
    let ctx = testdata("cache");
    let out = Command::new(common::HOIST)
        .current_dir(env.dir.path())
        .args([
            "--root",
            "store",
            "build",
            "--build-arg",
            "N=1",
            "-t",
            "rel",
        ])
        .arg(&ctx)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(env.read("rel", "/seen"), "run-1\n");
}

#[test]
fn bind_tmpfs_and_ssh_mounts() {
    let env = Env::new();
    let ctx = testdata("mounts");
    let sock = env.dir.path().join("agent.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    // `--ssh default` forwards $SSH_AUTH_SOCK.
    env.ok(env
        .cmd(&[
            "build",
            "--progress",
            "plain",
            "--ssh",
            "default",
            "-t",
            "m",
            ctx.to_str().unwrap(),
        ])
        .env("SSH_AUTH_SOCK", &sock));
    assert_eq!(env.read("m", "/from-context"), "context-data\n");
    assert_eq!(env.read("m", "/ctx-mode"), "readonly\n");
    assert_eq!(env.read("m", "/from-stage"), "tool-v1\n");
    assert_eq!(
        env.read("m", "/after-rw"),
        "tool-v1\n",
        "rw bind writes were kept"
    );
    assert_eq!(env.read("m", "/from-cache-seed"), "tool-v1\n");
    assert_eq!(env.read("m", "/tmpfs-ok"), "tmpfs\n");
    assert_eq!(
        env.read("m", "/from-image"),
        "root:x:0:0:root:/root:/bin/sh\n"
    );
    assert_eq!(env.read("m", "/ssh-sock"), "/run/buildkit/ssh_agent.0\n");
    for p in [
        "/ctx",
        "/t",
        "/t2",
        "/seeded",
        "/scratchpad",
        "/run",
        "/opt",
    ] {
        assert!(!env.exists("m", p), "{p} landed in a layer");
    }
    // Without --ssh an optional ssh mount is skipped, so the step fails its own test.
    let req = env.dir.path().join("Dockerfile.required");
    std::fs::write(
        &req,
        "FROM busybox\nRUN --mount=type=secret,id=tok,required=true true\n",
    )
    .unwrap();
    let out = env.hoist(&[
        "build",
        "-f",
        req.to_str().unwrap(),
        env.dir.path().to_str().unwrap(),
    ]);
    assert!(!out.status.success());
}

#[test]
fn outputs_oci_docker_tar_local_and_stdout() {
    let env = Env::new();
    let ctx = testdata("outputs");
    let out = env.dir.path().join("out");
    let oci = out.join("img-oci.tar");
    let docker = out.join("img-docker.tar");
    let fs_tar = out.join("fs.tar");
    let local = out.join("rootfs");
    let arg = |k: &str, p: &Path| format!("type={k},dest={}", p.display());
    env.build(&[
        "-t",
        "outs:1",
        "-o",
        &arg("oci", &oci),
        "--output",
        &arg("docker", &docker),
        "-o",
        &arg("tar", &fs_tar),
        "-o",
        local.to_str().unwrap(),
        ctx.to_str().unwrap(),
    ]);
    // skopeo reads both archives and sees the image's config.
    for (transport, path) in [("oci-archive", &oci), ("docker-archive", &docker)] {
        let out = Command::new("skopeo")
            .args(["inspect", "--config"])
            .arg(format!("{transport}:{}", path.display()))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "skopeo {transport}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let cfg: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(cfg["rootfs"]["diff_ids"].as_array().unwrap().len(), 3);
    }
    // The image is in the store too (type=image stays the default).
    assert!(env.exists("outs:1", "/app/result"));
    // The final filesystem: files of every layer, deletions applied.
    assert_eq!(
        std::fs::read_to_string(local.join("app/result")).unwrap(),
        "built\n"
    );
    assert_eq!(
        std::fs::read_to_string(local.join("app/hello.txt")).unwrap(),
        "hello-output\n"
    );
    assert!(local.join("bin/busybox").is_file());
    assert!(!local.join("tmp").exists(), "a deleted dir came back");
    let list = Command::new("tar").arg("tf").arg(&fs_tar).output().unwrap();
    let list = String::from_utf8_lossy(&list.stdout);
    assert!(list.lines().any(|l| l == "app/hello.txt"), "{list}");
    assert!(
        !list.lines().any(|l| l.contains(".wh.")),
        "whiteouts in a flat tar"
    );
    // `-o -`: the filesystem tar on stdout, and -q's image id does not corrupt it.
    let out = env.hoist(&["build", "-q", "-o", "-", ctx.to_str().unwrap()]);
    assert!(out.status.success());
    let t = env.dir.path().join("stdout.tar");
    std::fs::write(&t, &out.stdout).unwrap();
    let list = Command::new("tar").arg("tf").arg(&t).output().unwrap();
    assert!(list.status.success());
    assert!(String::from_utf8_lossy(&list.stdout).contains("app/result"));
    // A local output needs a directory.
    let bad = env.hoist(&["build", "-o", "type=local", ctx.to_str().unwrap()]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("output directory is required"));
}

/// Copies a directory tree (files and dirs) and sets every mtime to `stamp` (touch -d syntax).
fn copy_with_mtime(src: &Path, dst: &Path, stamp: &str) {
    let st = Command::new("cp")
        .arg("-r")
        .arg(src)
        .arg(dst)
        .status()
        .unwrap();
    assert!(st.success());
    let st = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "find '{}' -exec touch -h -d '{stamp}' {{}} +",
            dst.display()
        ))
        .status()
        .unwrap();
    assert!(st.success());
}

#[test]
fn source_date_epoch_gives_the_same_digest_from_different_checkouts() {
    let (a, b) = (Env::new(), Env::new());
    let ca = a.dir.path().join("checkout-one");
    let cb = b.dir.path().join("elsewhere/checkout-two");
    std::fs::create_dir_all(cb.parent().unwrap()).unwrap();
    copy_with_mtime(&testdata("repro"), &ca, "2024-01-02 03:04:05");
    copy_with_mtime(&testdata("repro"), &cb, "2025-06-07 08:09:10");
    a.build(&[
        "--build-arg",
        "SOURCE_DATE_EPOCH=1700000000",
        "-t",
        "r",
        ca.to_str().unwrap(),
    ]);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    // The second build takes it from the environment instead.
    b.ok(b
        .cmd(&["build", "-q", "-t", "r", cb.to_str().unwrap()])
        .env("SOURCE_DATE_EPOCH", "1700000000"));
    let store_a = Store::open(&a.root).unwrap();
    let store_b = Store::open(&b.root).unwrap();
    let (ia, ib) = (store_a.resolve("r").unwrap(), store_b.resolve("r").unwrap());
    assert_eq!(ia.id(), ib.id(), "config digests differ");
    assert_eq!(ia.manifest_digest, ib.manifest_digest);
    assert_eq!(ia.config.created.as_deref(), Some("2023-11-14T22:13:20Z"));
    let last = ia.config.history.last().unwrap();
    assert_eq!(last.created.as_deref(), Some("2023-11-14T22:13:20Z"));
    // Without it, the times (and so the digest) are the build's own.
    b.build(&["-t", "now", "--no-cache", cb.to_str().unwrap()]);
    assert_ne!(store_b.resolve("now").unwrap().id(), ib.id());
}

#[test]
fn lint_and_build_check_report_buildkit_rules() {
    let env = Env::new();
    let ctx = testdata("lint");
    let df = ctx.join("Dockerfile");
    let out = env.hoist(&["lint", df.to_str().unwrap()]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with("Check complete, 6 warnings have been found!"),
        "{text}"
    );
    for (rule, kebab, line) in [
        ("StageNameCasing", "stage-name-casing", 2),
        ("FromAsCasing", "from-as-casing", 2),
        ("SecretsUsedInArgOrEnv", "secrets-used-in-arg-or-env", 4),
        ("WorkdirRelativePath", "workdir-relative-path", 5),
        ("UndefinedVar", "undefined-var", 6),
        ("JSONArgsRecommended", "json-args-recommended", 7),
    ] {
        let head =
            format!("WARNING: {rule} - https://docs.docker.com/go/dockerfile/rule/{kebab}/\n");
        let at = text
            .find(&head)
            .unwrap_or_else(|| panic!("{rule} missing:\n{text}"));
        assert!(
            text[at..].contains(&format!("Dockerfile:{line}\n")),
            "{rule}"
        );
    }
    assert!(
        !text.contains("WARNING: MaintainerDeprecated"),
        "skip= ignored"
    );
    // `build --check` reports the same without building, and error=true fails.
    let out = env.hoist(&["build", "--check", ctx.to_str().unwrap()]);
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), text);
    let images = env.ok(&mut env.cmd(&["images", "-q"]));
    assert_eq!(
        images.lines().count(),
        1,
        "--check built something: {images}"
    );
    // A build lists the findings after it, and error=true fails it before anything runs.
    let progress = env.build(&["-t", "linted", ctx.to_str().unwrap()]);
    let tail = &progress[progress.find("6 warnings found:").expect(&progress)..];
    assert!(tail.contains(" - UndefinedVar: Usage of undefined variable '$SRC_DIR' (line 6)"));
    let bad = ctx.join("Dockerfile.error");
    let out = env.hoist(&["build", "-f", bad.to_str().unwrap(), ctx.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("lint violation found for rules: JSONArgsRecommended"),
        "{err}"
    );
    assert!(!err.contains("[1/"), "a step ran: {err}");
    for args in [
        vec!["lint", bad.to_str().unwrap()],
        vec![
            "build",
            "--check",
            "-f",
            bad.to_str().unwrap(),
            ctx.to_str().unwrap(),
        ],
    ] {
        let out = env.hoist(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stdout)
                .contains("ERROR: lint violation found for rules: JSONArgsRecommended")
        );
    }
}

#[test]
fn heredocs_in_copy_add_and_run() {
    let env = Env::new();
    env.build(&["-t", "hd", testdata("heredoc").to_str().unwrap()]);
    let read = |p: &str| env.read("hd", p);
    assert_eq!(
        read("/greet.txt"),
        "hello world\n",
        "unquoted delimiter expands"
    );
    assert_eq!(
        read("/raw.txt"),
        "literal ${NAME}\ninner tab\n",
        "<<- strips all leading tabs (as sh does); a quoted delimiter does not expand"
    );
    assert_eq!(read("/multi/A"), "file a\n");
    assert_eq!(read("/multi/B"), "file b\n");
    assert_eq!(read("/added.txt"), "added\n");
    assert_eq!(read("/script-out"), "from-script\nworld\n");
    assert_eq!(read("/shebang-out"), "shebang world /dev/pipes/EOF\n");
    assert!(
        !env.exists("hd", "/dev/pipes"),
        "the script mount landed in a layer"
    );
    assert_eq!(read("/inline-out"), "value world\n");
    assert_eq!(read("/tool-out"), "tool-ran\n");
    let v = env.view("hd");
    let (_, md) = v.lookup("/bin/tool").unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(md.permissions().mode() & 0o7777, 0o755);
}

#[test]
fn add_git_repositories_by_ref_and_subdir() {
    let env = Env::new();
    let work = env.dir.path().join("work");
    std::fs::create_dir_all(work.join("sub")).unwrap();
    git(&work, &["init", "-q", "-b", "main"]);
    std::fs::write(work.join("top.txt"), "v1\n").unwrap();
    std::fs::write(work.join("sub/inner.txt"), "inner\n").unwrap();
    git(&work, &["add", "."]);
    git(&work, &["commit", "-qm", "one"]);
    git(&work, &["tag", "v1"]);
    let c1 = git(&work, &["rev-parse", "HEAD"]).trim().to_string();
    std::fs::write(work.join("top.txt"), "v2\n").unwrap();
    git(&work, &["commit", "-qam", "two"]);
    let bare = env.dir.path().join("repo.git");
    git(
        env.dir.path(),
        &[
            "clone",
            "-q",
            "--bare",
            work.to_str().unwrap(),
            bare.to_str().unwrap(),
        ],
    );
    let url = format!("file://{}", bare.display());
    let ctx = env.dir.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        format!(
            "FROM busybox\nADD {url} /repo/\nADD {url}#v1:sub /sub/\nADD --keep-git-dir=true {url}#main /kept/\nADD --checksum={c1} {url}#v1 /pinned/\n"
        ),
    )
    .unwrap();
    env.build(&["-t", "g", ctx.to_str().unwrap()]);
    assert_eq!(env.read("g", "/repo/top.txt"), "v2\n");
    assert!(
        !env.exists("g", "/repo/.git"),
        ".git kept without --keep-git-dir"
    );
    assert_eq!(env.read("g", "/sub/inner.txt"), "inner\n");
    assert!(!env.exists("g", "/sub/top.txt"));
    assert!(env.exists("g", "/kept/.git/HEAD"));
    assert_eq!(env.read("g", "/pinned/top.txt"), "v1\n");
    // A new commit on the branch is a new cache key; the same commit is a hit.
    let again = env.build(&["-t", "g2", ctx.to_str().unwrap()]);
    assert_eq!(again.matches("CACHED").count(), 5, "{again}");
    std::fs::write(work.join("top.txt"), "v3\n").unwrap();
    git(&work, &["commit", "-qam", "three"]);
    git(&work, &["push", "-q", bare.to_str().unwrap(), "main"]);
    env.build(&["-t", "g3", ctx.to_str().unwrap()]);
    assert_eq!(env.read("g3", "/repo/top.txt"), "v3\n");
    // A checksum that is not the ref's commit fails.
    std::fs::write(
        ctx.join("Dockerfile"),
        format!("FROM busybox\nADD --checksum=0123456789abcdef {url}#v1 /x/\n"),
    )
    .unwrap();
    let out = env.hoist(&["build", ctx.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("expected checksum to match"));
    // A repository as a named build context (--build-context NAME=GIT-URL#REF:SUBDIR).
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\nCOPY --from=src inner.txt /ctx-inner\nCOPY --from=whole top.txt /ctx-top\n",
    )
    .unwrap();
    env.build(&[
        "-t",
        "gctx",
        "--build-context",
        &format!("src={url}#v1:sub"),
        "--build-context",
        &format!("whole={url}"),
        ctx.to_str().unwrap(),
    ]);
    assert_eq!(env.read("gctx", "/ctx-inner"), "inner\n");
    assert_eq!(env.read("gctx", "/ctx-top"), "v3\n");
}

#[test]
fn add_url_with_checksum() {
    let env = Env::new();
    let body: &'static [u8] = b"downloaded content\n";
    let port = serve_http(body.to_vec());
    let sum = format!("sha256:{}", sha256_hex(body));
    let ctx = env.dir.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    let url = format!("http://127.0.0.1:{port}/files/data.txt");
    std::fs::write(
        ctx.join("Dockerfile"),
        format!("FROM busybox\nADD --checksum={sum} {url} /d/\n"),
    )
    .unwrap();
    env.build(&["-t", "u", ctx.to_str().unwrap()]);
    assert_eq!(env.read("u", "/d/data.txt"), "downloaded content\n");
    let wrong = format!("sha256:{}", "0".repeat(64));
    std::fs::write(
        ctx.join("Dockerfile"),
        format!("FROM busybox\nADD --checksum={wrong} {url} /d/\n"),
    )
    .unwrap();
    let out = env.hoist(&["build", ctx.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("digest mismatch"), "{err}");
}

#[test]
fn history_layers_reports_wasted_bytes() {
    let env = Env::new();
    env.build(&["-t", "w", testdata("waste").to_str().unwrap()]);
    let out = env.ok(&mut env.cmd(&["history", "--layers", "--human", "false", "w"]));
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("LAYER"), "{out}");
    // Layer 2 added 300 KiB + 4 + 3 bytes that layer 3 deletes or overwrites.
    let l2: Vec<&str> = lines[2].split_whitespace().collect();
    assert_eq!((l2[0], *l2.last().unwrap()), ("2", "307207"), "{out}");
    assert_eq!(lines[3].split_whitespace().last(), Some("0"), "{out}");
    assert!(out.contains("Wasted space: 307207 in 3 files"), "{out}");
    let row = |path: &str| {
        lines
            .iter()
            .find(|l| l.split_whitespace().nth(1) == Some(path))
            .unwrap_or_else(|| panic!("{path} missing:\n{out}"))
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert_eq!(row("/big"), "307200 /big layer 2 layer 3 (deleted)");
    assert_eq!(row("/cache/d/f"), "4 /cache/d/f layer 2 layer 3 (deleted)");
    assert_eq!(row("/conf"), "3 /conf layer 2 layer 3 (overwritten)");
    // The human form and an image without waste.
    let out = env.ok(&mut env.cmd(&["history", "--layers", "busybox"]));
    assert!(out.contains("No wasted space"), "{out}");
}

#[test]
fn bind_mount_of_the_context_honours_dockerignore() {
    let env = Env::new();
    let ctx = context_with(
        "FROM busybox\nRUN --mount=type=bind,target=/ctx cd /ctx && find . | sort > /listing\nRUN --mount=type=bind,source=sub,target=/sub,rw ls /sub > /sub-listing\n",
        &[
            (".dockerignore", b"secret.txt\n**/*.log\n!sub/keep.log\n"),
            ("keep.txt", b"k"),
            ("secret.txt", b"s"),
            ("a.log", b"l"),
            ("sub/b.log", b"l"),
            ("sub/keep.log", b"k"),
            ("sub/c.txt", b"c"),
        ],
    );
    let c = ctx.path().to_str().unwrap();
    env.build(&["-t", "bi", c]);
    assert_eq!(
        env.read("bi", "/listing"),
        ".\n./.dockerignore\n./Dockerfile\n./keep.txt\n./sub\n./sub/c.txt\n./sub/keep.log\n"
    );
    assert_eq!(env.read("bi", "/sub-listing"), "c.txt\nkeep.log\n");
    // An ignored file cannot be mounted.
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM busybox\nRUN --mount=type=bind,source=secret.txt,target=/s cat /s\n",
    )
    .unwrap();
    let out = env.hoist(&["build", c]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("\"/secret.txt\": not found"), "{err}");
}

#[test]
fn source_date_epoch_reaches_run_once_declared_with_arg() {
    let env = Env::new();
    let ctx = context_with(
        "FROM busybox\nRUN echo \"[$SOURCE_DATE_EPOCH]\" > /before\nARG SOURCE_DATE_EPOCH\nRUN echo \"[$SOURCE_DATE_EPOCH]\" > /after\n",
        &[],
    );
    let c = ctx.path().to_str().unwrap();
    // From the environment (as buildx passes it on as the build arg)...
    env.ok(env
        .cmd(&["build", "-q", "-t", "sde", c])
        .env("SOURCE_DATE_EPOCH", "1700000000"));
    assert_eq!(env.read("sde", "/before"), "[]\n", "undeclared: not seen");
    assert_eq!(env.read("sde", "/after"), "[1700000000]\n");
    let store = Store::open(&env.root).unwrap();
    let img = store.resolve("sde").unwrap();
    assert_eq!(img.config.created.as_deref(), Some("2023-11-14T22:13:20Z"));
    let run = img.config.history.last().unwrap();
    assert!(
        run.created_by
            .as_deref()
            .unwrap()
            .starts_with("RUN |1 SOURCE_DATE_EPOCH=1700000000 "),
        "{run:?}"
    );
    // ...and --build-arg wins over the environment.
    env.ok(env
        .cmd(&[
            "build",
            "-q",
            "--build-arg",
            "SOURCE_DATE_EPOCH=1600000000",
            "-t",
            "sde2",
            c,
        ])
        .env("SOURCE_DATE_EPOCH", "1700000000"));
    assert_eq!(env.read("sde2", "/after"), "[1600000000]\n");
    let img = store.resolve("sde2").unwrap();
    assert_eq!(img.config.created.as_deref(), Some("2020-09-13T12:26:40Z"));
}

#[test]
fn undefined_var_check_knows_the_base_image_environment() {
    let env = Env::new();
    let base = context_with("FROM busybox\nENV APP_DIR=/srv/app\n", &[]);
    env.build(&["-t", "with-env", base.path().to_str().unwrap()]);
    let ctx = context_with(
        "FROM busybox AS plain\nLABEL y=$APP_DIR\nFROM with-env AS one\nWORKDIR $APP_DIR\nLABEL x=$NOPE\nFROM busybox AS unused\nLABEL z=$NOPE_TOO\nFROM one\nCOPY --from=plain /etc/passwd /p\nUSER $APP_DIR\n",
        &[],
    );
    let progress = env.build(&["-t", "uv", ctx.path().to_str().unwrap()]);
    let tail = &progress[progress.find("warnings found:").expect(&progress)..];
    let found: Vec<&str> = tail
        .lines()
        .filter(|l| l.contains("UndefinedVar"))
        .collect();
    // The base image defines APP_DIR for stage one and the stage built on it, not for busybox; a
    // stage the target does not need is not checked (BuildKit checks while converting).
    assert_eq!(
        found,
        [
            " - UndefinedVar: Usage of undefined variable '$APP_DIR' (line 2)",
            " - UndefinedVar: Usage of undefined variable '$NOPE' (line 5)",
        ],
        "{tail}"
    );
    assert!(env.exists("uv", "/srv/app"), "WORKDIR $APP_DIR made it");
    let user = Store::open(&env.root)
        .unwrap()
        .resolve("uv")
        .unwrap()
        .config
        .config
        .unwrap()
        .user;
    assert_eq!(user.as_deref(), Some("/srv/app"));

    // `hoist lint` and `build --check` look base images up in the store as a build does (every
    // stage is checked); without the image, $APP_DIR is unknown in the stages built on it.
    let df = ctx.path().join("Dockerfile");
    let undefined = |root: &Path, args: &[&str]| -> Vec<String> {
        let out = Command::new(common::HOIST)
            .arg("--root")
            .arg(root)
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}");
        // Each message is followed by its location (`Dockerfile:N`).
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let lines: Vec<&str> = text.lines().collect();
        lines
            .windows(2)
            .filter(|w| w[0].starts_with("Usage of undefined variable"))
            .map(|w| format!("{} (line {})", w[0], w[1].rsplit(':').next().unwrap()))
            .collect()
    };
    let with_store = [
        "Usage of undefined variable '$APP_DIR' (line 2)",
        "Usage of undefined variable '$NOPE' (line 5)",
        "Usage of undefined variable '$NOPE_TOO' (line 7)",
    ];
    let (df, dir) = (df.to_str().unwrap(), ctx.path().to_str().unwrap());
    assert_eq!(undefined(&env.root, &["lint", df]), with_store);
    assert_eq!(undefined(&env.root, &["build", "--check", dir]), with_store);
    let empty = env.dir.path().join("no-store");
    let without = undefined(&empty, &["lint", df]);
    assert!(
        without.contains(&"Usage of undefined variable '$APP_DIR' (line 4)".to_string()),
        "{without:?}"
    );
    assert!(!empty.exists(), "lint created a store");
}

/// A tree of (path, content) files under a new temp dir.
fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    for (p, c) in files {
        let path = d.path().join(p);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, c).unwrap();
    }
    d
}

#[test]
fn build_contexts_replace_stages_and_images_and_add_sources() {
    let env = Env::new();
    // An OCI layout directory holding `laid:v1` (untarred from a type=oci output).
    let laid_ctx = context_with("FROM busybox\nRUN echo laid > /etc/laid\n", &[]);
    let laid_tar = env.dir.path().join("laid.tar");
    env.build(&[
        "-t",
        "laid:v1",
        "-o",
        &format!("type=oci,dest={}", laid_tar.display()),
        laid_ctx.path().to_str().unwrap(),
    ]);
    let layout = env.dir.path().join("layout");
    std::fs::create_dir(&layout).unwrap();
    let st = Command::new("tar")
        .arg("xf")
        .arg(&laid_tar)
        .arg("-C")
        .arg(&layout)
        .status()
        .unwrap();
    assert!(st.success());
    env.ok(&mut env.cmd(&["rmi", "laid:v1"]));

    // The main context ignores a.txt; the named one ignores only what its own file says.
    let ctx = context_with(
        "FROM busybox AS tools\nRUN echo from-stage > /tool\n\
         FROM rootctx AS fromdir\n\
         FROM alpine\n\
         COPY --from=tools /tool /tool\n\
         COPY --from=src / /src/\n\
         RUN --mount=from=src,target=/m cat /m/a.txt > /mounted\n\
         COPY --from=fromdir /hello /hello\n\
         COPY --from=laid /etc/laid /laid\n",
        &[(".dockerignore", b"a.txt\n"), ("a.txt", b"main\n")],
    );
    let src = tree(&[
        ("a.txt", "named-a\n"),
        ("ignored.txt", "x"),
        (".dockerignore", "ignored.txt\n"),
    ]);
    let tools = tree(&[("tool", "from-context\n")]);
    let rootctx = tree(&[("hello", "hello-root\n")]);
    let ctx_arg = |name: &str, dir: &Path| format!("{name}={}", dir.display());
    let args = [
        "--build-context".to_string(),
        ctx_arg("src", src.path()),
        "--build-context".into(),
        ctx_arg("tools", tools.path()),
        "--build-context".into(),
        ctx_arg("rootctx", rootctx.path()),
        "--build-context".into(),
        "alpine=docker-image://busybox:latest".into(),
        "--build-context".into(),
        format!("laid=oci-layout://{}:v1", layout.display()),
    ];
    let mut a: Vec<&str> = vec!["-t", "named:1"];
    a.extend(args.iter().map(String::as_str));
    a.push(ctx.path().to_str().unwrap());
    let progress = env.build(&a);
    assert!(
        progress.contains("[context src] load .dockerignore"),
        "{progress}"
    );
    // The stage named like a context is replaced: its RUN never ran.
    assert_eq!(env.read("named:1", "/tool"), "from-context\n");
    assert!(!progress.contains("echo from-stage"), "{progress}");
    assert_eq!(env.read("named:1", "/src/a.txt"), "named-a\n");
    assert!(!env.exists("named:1", "/src/ignored.txt"));
    assert_eq!(env.read("named:1", "/mounted"), "named-a\n");
    assert_eq!(env.read("named:1", "/hello"), "hello-root\n");
    assert_eq!(env.read("named:1", "/laid"), "laid\n");
    // `FROM alpine` is busybox: its config and layers.
    let cfg = env.config("named:1");
    let busybox = env.config("busybox:latest");
    assert_eq!(cfg.config.unwrap().cmd, busybox.config.unwrap().cmd);
    assert_eq!(
        cfg.rootfs.diff_ids[..busybox.rootfs.diff_ids.len()],
        busybox.rootfs.diff_ids[..]
    );
    // The oci-layout image was only borrowed: nothing untagged is left in the store.
    let store = Store::open(&env.root).unwrap();
    let images = store.list_images().unwrap();
    assert!(images.iter().all(|i| i.name.is_some()), "{images:?}");

    // A stage whose base is a local context starts from its files, as one layer.
    env.build(&[
        "--target",
        "fromdir",
        "-t",
        "fromdir:1",
        "--build-context",
        &ctx_arg("rootctx", rootctx.path()),
        ctx.path().to_str().unwrap(),
    ]);
    assert_eq!(env.read("fromdir:1", "/hello"), "hello-root\n");
    let fd = env.config("fromdir:1");
    assert_eq!(fd.rootfs.diff_ids.len(), 1);
    assert_eq!(
        fd.history[0].created_by.as_deref(),
        Some("local source for rootctx")
    );

    // A change in a named context reaches the steps that read it.
    std::fs::write(src.path().join("a.txt"), "named-b\n").unwrap();
    env.build(&a);
    assert_eq!(env.read("named:1", "/src/a.txt"), "named-b\n");
    assert_eq!(env.read("named:1", "/mounted"), "named-b\n");

    // buildx's errors.
    let fails = |extra: &[&str]| {
        let mut a = vec!["build"];
        a.extend_from_slice(extra);
        a.push(ctx.path().to_str().unwrap());
        let out = env.hoist(&a);
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let e = fails(&["--build-context", "src"]);
    assert!(
        e.contains("invalid context value: src, expected key=value"),
        "{e}"
    );
    let e = fails(&["--build-context", "src=/does/not/exist"]);
    assert!(
        e.contains("failed to get build context src: stat /does/not/exist: "),
        "{e}"
    );
    // Without the contexts, `FROM rootctx` is an image nobody has.
    let e = fails(&["--target", "fromdir"]);
    assert!(e.contains("rootctx"), "{e}");
}

#[test]
fn run_sandbox_flags_no_cache_filter_and_annotations() {
    let env = Env::new();
    let ctx = context_with(
        "FROM busybox AS base\n\
         RUN cat /etc/hosts > /hosts; df -k /dev/shm | tail -1 > /shm; ulimit -n > /nofile; \
         cat /proc/sys/kernel/random/uuid > /stamp\n\
         FROM base\nRUN true\n",
        &[],
    );
    let dir = ctx.path().to_str().unwrap();
    let flags = [
        "--add-host",
        "db:10.1.2.3,cache=10.1.2.4",
        "--add-host",
        "v6=[2001:db8::1]",
        "--shm-size",
        "32m",
        "--ulimit",
        "nofile=512:1024",
    ];
    let build = |extra: &[&str]| {
        let mut a = vec!["-t", "sandbox:1"];
        a.extend_from_slice(&flags);
        a.extend_from_slice(extra);
        a.push(dir);
        env.build(&a)
    };
    build(&[
        "--annotation",
        "org.example.a=1",
        "--annotation",
        "manifest:org.example.b=2",
    ]);
    let hosts = env.read("sandbox:1", "/hosts");
    for line in [
        "10.1.2.3\tdb",
        "10.1.2.4\tcache",
        "2001:db8::1\tv6",
        "127.0.0.1\tlocalhost buildkitsandbox",
    ] {
        assert!(hosts.lines().any(|l| l == line), "{line:?} in {hosts}");
    }
    // 32m of tmpfs: 32768 1K-blocks.
    let shm = env.read("sandbox:1", "/shm");
    assert_eq!(shm.split_whitespace().nth(1), Some("32768"), "{shm}");
    assert_eq!(env.read("sandbox:1", "/nofile"), "512\n");
    let store = Store::open(&env.root).unwrap();
    let ann = store
        .resolve("sandbox:1")
        .unwrap()
        .manifest
        .annotations()
        .clone()
        .unwrap_or_default();
    assert_eq!(ann.get("org.example.a").map(String::as_str), Some("1"));
    assert_eq!(ann.get("org.example.b").map(String::as_str), Some("2"));

    // Same flags: cached. The sandbox settings are part of the key: another size runs again.
    let stamp = env.read("sandbox:1", "/stamp");
    build(&[]);
    assert_eq!(env.read("sandbox:1", "/stamp"), stamp);
    env.build(&["-t", "sandbox:2", "--shm-size", "16m", dir]);
    assert_ne!(env.read("sandbox:2", "/stamp"), stamp);
    assert_eq!(
        env.read("sandbox:2", "/shm").split_whitespace().nth(1),
        Some("16384")
    );
    // --no-cache-filter (any case) runs the stage's steps again.
    build(&["--no-cache-filter", "BASE"]);
    let again = env.read("sandbox:1", "/stamp");
    assert_ne!(again, stamp);
    build(&["--no-cache-filter", "other"]);
    assert_eq!(env.read("sandbox:1", "/stamp"), again);

    // Docker's errors.
    let fails = |args: &[&str], msg: &str| {
        let mut a = vec!["build"];
        a.extend_from_slice(args);
        a.push(dir);
        let out = env.hoist(&a);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains(msg),
            "{args:?}: {err}"
        );
    };
    fails(&["--add-host", "bad"], "invalid host bad");
    fails(&["--add-host", "db:1.2.3"], "invalid host db:1.2.3");
    fails(
        &["--ulimit", "nofile=x"],
        "invalid argument \"nofile=x\" for \"--ulimit\" flag: ",
    );
    fails(
        &["--shm-size", "x"],
        "invalid argument \"x\" for \"--shm-size\" flag: invalid size: 'x'",
    );
    fails(
        &["--annotation", "foo"],
        "invalid annotation \"foo\", expected key=value",
    );
    fails(
        &["--annotation", "bogus:k=v"],
        "unknown annotation type \"bogus\"",
    );
}

#[test]
fn exports_leave_no_image_in_the_store_unless_asked() {
    let env = Env::new();
    let ctx = context_with("FROM busybox\nRUN echo built > /result\n", &[]);
    let dir = ctx.path().to_str().unwrap();
    let images = || {
        let mut v: Vec<(Option<String>, String)> = Store::open(&env.root)
            .unwrap()
            .list_images()
            .unwrap()
            .into_iter()
            .map(|i| (i.name.map(|n| n.to_string()), i.id.to_string()))
            .collect();
        v.sort();
        v
    };
    let before = images();
    assert_eq!(before.len(), 1, "{before:?}");
    let out = env.dir.path().join("out");
    let iid = env.dir.path().join("iid");
    let iid_arg = iid.to_str().unwrap();
    env.build(&[
        "-o",
        &format!("type=local,dest={}", out.display()),
        "--iidfile",
        iid_arg,
        dir,
    ]);
    assert_eq!(
        std::fs::read_to_string(out.join("result")).unwrap(),
        "built\n"
    );
    let tar = env.dir.path().join("fs.tar");
    env.build(&["-o", &format!("type=tar,dest={}", tar.display()), dir]);
    assert!(tar.is_file());
    // Exports only: nothing tagged, nothing dangling.
    assert_eq!(images(), before);
    let id = std::fs::read_to_string(&iid).unwrap();

    // --load keeps it (untagged), as does type=docker without dest (buildx loads it).
    env.build(&[
        "-o",
        &format!("type=tar,dest={}", tar.display()),
        "--load",
        dir,
    ]);
    let loaded = images();
    assert!(loaded.contains(&(None, id.clone())), "{loaded:?}");
    let rmi = env.hoist(&["rmi", &id]);
    assert!(rmi.status.success());
    env.build(&["-o", "type=docker", dir]);
    assert!(images().contains(&(None, id.clone())));
    // An image the store had before an export-only build stays.
    env.build(&["-o", &format!("type=local,dest={}", out.display()), dir]);
    assert!(images().contains(&(None, id.clone())));
    // -t names it.
    env.build(&[
        "-t",
        "exp:1",
        "-o",
        &format!("type=local,dest={}", out.display()),
        dir,
    ]);
    assert_eq!(env.image_id("exp:1"), id);
}
