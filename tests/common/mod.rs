//! Shared harness of the root integration tests, which drive the real `hoist` binary:
//!
//! ```ignore
//! mod common;
//! use common::{Hoist, make_busybox};
//! let store = tempdir.path().join("store");
//! make_busybox(&store);                       // busybox:latest, CMD ["sh"]
//! let out = Hoist::new(&store).ok(&["images"]); // stdout; panics with stderr on failure
//! ```
//!
//! The real registry harness (Debian's docker-registry, proxies, tiny images) is [`registry`], from
//! the `hoist-test-support` crate.
#![allow(dead_code)]

pub use hoist_test_support::registry;

use std::ffi::OsStr;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

#[allow(unused_imports)]
pub use registry::{TestRegistry, free_port, run};

/// The `hoist` binary under test.
pub const HOIST: &str = env!("CARGO_BIN_EXE_hoist");

/// `hoist --root STORE ...` with an optional Docker config directory and environment.
#[derive(Clone, Debug)]
pub struct Hoist {
    root: PathBuf,
    envs: Vec<(String, String)>,
}

impl Hoist {
    pub fn new(root: &Path) -> Hoist {
        Hoist {
            root: root.to_path_buf(),
            envs: Vec::new(),
        }
    }

    /// The same store with `DOCKER_CONFIG` pointing at `dir` (credentials live there).
    pub fn docker_config(self, dir: &Path) -> Hoist {
        self.env("DOCKER_CONFIG", dir)
    }

    pub fn env(mut self, key: &str, value: impl AsRef<OsStr>) -> Hoist {
        self.envs.push((
            key.to_string(),
            value.as_ref().to_string_lossy().into_owned(),
        ));
        self
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The command, ready to run (for callers that need stdin, a cwd or a spawn).
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(HOIST);
        c.arg("--root").arg(&self.root).args(args);
        for (k, v) in &self.envs {
            c.env(k, v);
        }
        c
    }

    /// Runs to completion; stdin is empty (or `stdin`'s bytes).
    pub fn output_with(&self, args: &[&str], stdin: Option<&[u8]>) -> Output {
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run hoist");
        let mut input = child.stdin.take().unwrap();
        if let Some(bytes) = stdin {
            input.write_all(bytes).unwrap();
        }
        drop(input);
        child.wait_with_output().unwrap()
    }

    pub fn output(&self, args: &[&str]) -> Output {
        self.output_with(args, None)
    }

    /// Stdout of a command that must succeed (panics with its output otherwise).
    pub fn ok(&self, args: &[&str]) -> String {
        expect_success(&format!("hoist {args:?}"), self.output(args))
    }

    /// As [`Hoist::ok`], feeding `stdin`.
    pub fn ok_with(&self, args: &[&str], stdin: &[u8]) -> String {
        expect_success(
            &format!("hoist {args:?}"),
            self.output_with(args, Some(stdin)),
        )
    }

    /// Stderr of a command that must fail (panics if it succeeds).
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.output(args);
        assert!(
            !out.status.success(),
            "hoist {args:?} succeeded: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }
}

/// Stdout of `out`, which must be a success (else panics naming `what` with its output).
pub fn expect_success(what: &str, out: Output) -> String {
    assert!(
        out.status.success(),
        "{what} failed ({}): {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Makes `busybox:latest` in the store at `root` ([`hoist_test_support::busybox::make`]).
pub fn make_busybox(root: &Path) {
    make_busybox_named(root, "busybox:latest");
}

/// As [`make_busybox`], with another name.
pub fn make_busybox_named(root: &Path, name: &str) {
    hoist_test_support::busybox::make(Path::new(HOIST), root, name);
}

/// `git ARGS` in `dir` with a test identity; stdout and stderr (a hook's `remote:` lines) joined.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(["-c", "user.name=Test", "-c", "user.email=test@example.com"])
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    expect_success(&format!("git {args:?}"), out) + &stderr
}

/// `skopeo inspect [--raw] docker://NAME` over plain http.
pub fn skopeo_inspect(name: &str, raw: bool) -> serde_json::Value {
    let mut c = Command::new("skopeo");
    c.args(["inspect", "--tls-verify=false"]);
    if raw {
        c.arg("--raw");
    }
    c.arg(format!("docker://{name}"));
    serde_json::from_str(&run(&mut c)).unwrap()
}

/// Serves `body` to every request on a free 127.0.0.1 port (until the test process ends).
pub fn serve_http(body: Vec<u8>) -> u16 {
    use std::io::Read;
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut c in l.incoming().flatten() {
            let mut buf = [0u8; 4096];
            let _ = c.read(&mut buf);
            let _ = write!(
                c,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = c.write_all(&body);
        }
    });
    port
}
