//! Test harness: the real CNCF registry (Debian's `docker-registry`) on a free loopback port, an
//! optional htpasswd file, a small TCP proxy that corrupts or cuts blob responses, and tiny images
//! built through the image crate's API.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hoist_image::{ImageConfig, LayerOptions, Reference, Store};

pub struct TestRegistry {
    child: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
}

impl TestRegistry {
    /// Starts a registry; with `user` it requires htpasswd basic auth for that user/password.
    pub fn start(user: Option<(&str, &str)>) -> TestRegistry {
        Self::start_with(user, "")
    }

    /// Starts a registry whose configuration ends with `extra` (e.g. an `auth: token:` section).
    pub fn start_with(user: Option<(&str, &str)>, extra: &str) -> TestRegistry {
        // A free port can be taken by another test between probing and binding: retry then.
        for _ in 0..5 {
            if let Some(r) = Self::try_start(user, extra) {
                return r;
            }
        }
        panic!("could not start docker-registry");
    }

    fn try_start(user: Option<(&str, &str)>, extra: &str) -> Option<TestRegistry> {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut cfg = format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
            dir.path().join("data").display()
        );
        if let Some((u, p)) = user {
            let out = Command::new("htpasswd")
                .args(["-Bbn", u, p])
                .output()
                .unwrap();
            assert!(out.status.success(), "htpasswd failed");
            std::fs::write(dir.path().join("htpasswd"), &out.stdout).unwrap();
            cfg.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: hoist-test\n    path: {}\n",
                dir.path().join("htpasswd").display()
            ));
        }
        cfg.push_str(extra);
        let cfg_path = dir.path().join("config.yml");
        std::fs::write(&cfg_path, cfg).unwrap();
        let mut child = Command::new("/usr/bin/docker-registry")
            .arg("serve")
            .arg(&cfg_path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("docker-registry (fixtures/install-deps.sh installs it)");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if child.try_wait().unwrap().is_some() {
                return None; // exited: most likely the port was taken
            }
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "registry did not start on port {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        // Still ours after a moment (not another test's registry answering on a reused port).
        std::thread::sleep(Duration::from_millis(100));
        if child.try_wait().unwrap().is_some() {
            return None;
        }
        Some(TestRegistry { child, port, dir })
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Deterministic incompressible bytes.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Builds a one-layer image in `store` holding `file` with `content`, tagged `name`.
pub fn make_image(
    store: &Store,
    name: &str,
    file: &str,
    content: &[u8],
    arch: &str,
) -> hoist_image::Image {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(file), content).unwrap();
    let info = store
        .commit_dir(
            dir.path(),
            &LayerOptions {
                source_date_epoch: Some(0),
            },
        )
        .unwrap();
    let mut config = ImageConfig::new_for_host();
    config.architecture = arch.to_string();
    config.rootfs.diff_ids = vec![info.diff_id.clone()];
    let tags = vec![Reference::parse(name).unwrap()];
    store
        .write_image(&config, &[info.descriptor()], &tags)
        .unwrap()
}

/// What the proxy does to responses for a blob whose path contains `target`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tamper {
    /// Flip one byte of the body.
    Corrupt,
    /// Forward this many body bytes of the first response, then close.
    CutOnceAfter(usize),
    /// Answer the first request with 503 Service Unavailable.
    UnavailableOnce,
}

/// A TCP proxy in front of a real registry that tampers with one blob's responses.
pub struct Proxy {
    pub port: u16,
    /// Every request head seen (for asserting on `Range`).
    pub requests: Arc<Mutex<Vec<String>>>,
}

impl Proxy {
    pub fn start(upstream: u16, target: &str, tamper: Tamper) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        let target = target.to_string();
        let cut_done = Arc::new(Mutex::new(false));
        std::thread::spawn(move || {
            for conn in listener.incoming().take(200) {
                let Ok(client) = conn else { break };
                let seen = seen.clone();
                let target = target.clone();
                let cut_done = cut_done.clone();
                std::thread::spawn(move || {
                    let _ = serve(client, upstream, &target, tamper, &seen, &cut_done);
                });
            }
        });
        Proxy { port, requests }
    }
}

fn read_head(s: &mut TcpStream) -> std::io::Result<(Vec<u8>, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = buf.split_off(i + 4);
            return Ok((buf, rest));
        }
        let n = s.read(&mut chunk)?;
        if n == 0 {
            return Ok((buf, Vec::new()));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn serve(
    mut client: TcpStream,
    upstream: u16,
    target: &str,
    tamper: Tamper,
    seen: &Mutex<Vec<String>>,
    cut_done: &Mutex<bool>,
) -> std::io::Result<()> {
    let (head, body) = read_head(&mut client)?;
    if head.is_empty() {
        return Ok(());
    }
    let text = String::from_utf8_lossy(&head).to_string();
    seen.lock().unwrap().push(text.clone());
    // One request per connection keeps the proxy simple.
    let text = text
        .lines()
        .filter(|l| !l.to_ascii_lowercase().starts_with("connection:"))
        .collect::<Vec<_>>()
        .join("\r\n");
    let text = text.trim_end().to_string() + "\r\nConnection: close\r\n\r\n";
    let mut up = TcpStream::connect(("127.0.0.1", upstream))?;
    up.write_all(text.as_bytes())?;
    up.write_all(&body)?;
    let mut up_r = up.try_clone()?;
    let mut client_w = client.try_clone()?;
    // Any further request body bytes go upstream.
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut client, &mut up);
    });
    let is_target = text
        .lines()
        .next()
        .is_some_and(|l| l.starts_with("GET ") && l.contains(target));
    if is_target && tamper == Tamper::UnavailableOnce {
        let mut done = cut_done.lock().unwrap();
        if !*done {
            *done = true;
            client_w.write_all(
                b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            )?;
            return Ok(());
        }
    }
    let (rhead, mut rbody) = read_head(&mut up_r)?;
    client_w.write_all(&rhead)?;
    let mut sent = 0usize;
    let mut flipped = false;
    let mut chunk = vec![0u8; 16384];
    loop {
        if rbody.is_empty() {
            let n = up_r.read(&mut chunk)?;
            if n == 0 {
                break;
            }
            rbody.extend_from_slice(&chunk[..n]);
        }
        if is_target {
            match tamper {
                Tamper::Corrupt if !flipped => {
                    rbody[0] ^= 0xff;
                    flipped = true;
                }
                Tamper::CutOnceAfter(limit) => {
                    let mut done = cut_done.lock().unwrap();
                    if !*done && sent + rbody.len() > limit {
                        let keep = limit.saturating_sub(sent);
                        client_w.write_all(&rbody[..keep])?;
                        *done = true;
                        client_w.shutdown(std::net::Shutdown::Both)?;
                        return Ok(());
                    }
                }
                _ => {}
            }
        }
        client_w.write_all(&rbody)?;
        sent += rbody.len();
        rbody.clear();
    }
    Ok(())
}

/// Plain progress for library calls in tests.
pub fn quiet() -> hoist_registry::Progress {
    hoist_registry::Progress::new(hoist_registry::ProgressMode::Plain)
}

/// An empty store in a fresh temp dir (kept alive by the returned guard).
pub fn store() -> (tempfile::TempDir, Store) {
    let d = tempfile::tempdir().unwrap();
    let s = Store::open(d.path().join("store")).unwrap();
    (d, s)
}

/// Runs a command, panicking with its output on failure; returns stdout.
pub fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

pub fn files_in(dir: &Path) -> usize {
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}
