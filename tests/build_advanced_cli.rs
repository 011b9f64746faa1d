//! End-to-end tests of `hoist build`'s advanced features on testdata/build-advanced/: RUN mounts
//! (secret, cache, bind, tmpfs, ssh), `hoist builder prune`, outputs, reproducible builds and
//! build checks. Each test has its own store with the busybox fixture.

#[path = "image_fixture.rs"]
mod image_fixture;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use hoist_builder::union::Union;
use hoist_image::Store;
use image_fixture::HOIST;

fn testdata(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/build-advanced")
        .join(name)
}

struct Env {
    dir: tempfile::TempDir,
    root: PathBuf,
}

impl Env {
    fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("store");
        image_fixture::make_busybox(&root);
        Env { dir, root }
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(HOIST);
        c.arg("--root").arg(&self.root).args(args);
        c
    }

    fn hoist(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    /// Runs a command, asserting success; returns stdout + stderr.
    fn ok(&self, c: &mut Command) -> String {
        let out = c.output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "{c:?} failed:\n{text}");
        text
    }

    fn build(&self, args: &[&str]) -> String {
        let mut a = vec!["build", "--progress", "plain"];
        a.extend_from_slice(args);
        self.ok(&mut self.cmd(&a))
    }

    fn view(&self, name: &str) -> Union {
        let store = Store::open(&self.root).unwrap();
        let img = store.resolve(name).unwrap();
        Union::new(store.unpacked_layers(&img).unwrap())
    }

    fn read(&self, name: &str, path: &str) -> String {
        let v = self.view(name);
        String::from_utf8(
            v.read(path)
                .unwrap_or_else(|| panic!("{path} missing from {name}")),
        )
        .unwrap()
    }

    fn exists(&self, name: &str, path: &str) -> bool {
        self.view(name).lookup(path).is_some()
    }

    fn id(&self, name: &str) -> String {
        Store::open(&self.root)
            .unwrap()
            .resolve(name)
            .unwrap()
            .id()
            .to_string()
    }
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
    let progress = env.ok(env
        .cmd(&[
            "build",
            "--progress",
            "plain",
            "--secret",
            &src,
            "--secret",
            "id=fromenv,env=HOIST_TEST_SECRET_ENV",
            "-t",
            "sec",
            ctx.to_str().unwrap(),
        ])
        .env("HOIST_TEST_SECRET_ENV", "env-secret-55aa"));
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
    let again = env.ok(env
        .cmd(&[
            "build",
            "--progress",
            "plain",
            "--secret",
            &src,
            "--secret",
            "id=fromenv,env=HOIST_TEST_SECRET_ENV",
            "-t",
            "sec2",
            ctx.to_str().unwrap(),
        ])
        .env("HOIST_TEST_SECRET_ENV", "x"));
    assert_eq!(again.matches("CACHED").count(), 6, "{again}");
    assert_eq!(env.id("sec"), env.id("sec2"));

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
    assert!(out.contains("Total reclaimed space"), "{out}");
    env.build(&["--build-arg", "N=3", "-t", "c3", c]);
    assert_eq!(env.read("c3", "/seen"), "run-3\n");
}

#[test]
fn bind_tmpfs_and_ssh_mounts() {
    let env = Env::new();
    let ctx = testdata("mounts");
    let sock = env.dir.path().join("agent.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let ssh = format!("default={}", sock.display());
    env.build(&["--ssh", &ssh, "-t", "m", ctx.to_str().unwrap()]);
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
