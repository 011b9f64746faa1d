//! Fault injection: the store is never damaged by bad input or a crash.
//!
//! Faults: blobs corrupted or cut short by a tampering proxy in front of the real registry; images
//! whose config lies about its diff_ids (pulled and loaded); `hoist save` archives with a byte flipped
//! at a random place fed to `hoist load`; SIGKILL at a random moment of build, pull, load and save.
//! After every fault: `hoist system check` passes (nothing was repaired first) and every image that
//! was in the store before still runs and shows the right file content.
//!
//! Random choices come from one seeded generator per test: `HOIST_FAULT_SEED=N` replays a run, and
//! every failure message names the seed. Each test ends by printing `fault tally: NAME tries=T
//! held=H seed=S` (see RELIABILITY.md) and fails unless every try held.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::registry::{Proxy, Tamper};
use common::{Hoist, TestRegistry, make_busybox, skopeo_inspect};
use hoist_image::Digest;

/// xorshift64*: small, seeded, reproducible.
struct Rng(u64);

impl Rng {
    fn from_env(test: &str) -> Rng {
        let seed = std::env::var("HOIST_FAULT_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
            });
        eprintln!("{test}: HOIST_FAULT_SEED={seed}");
        Rng(seed.max(1))
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Tries and how many held; fails at the end listing what did not hold.
struct Tally {
    name: &'static str,
    seed: u64,
    tries: usize,
    failures: Vec<String>,
}

impl Tally {
    fn new(name: &'static str, rng: &Rng) -> Tally {
        Tally {
            name,
            seed: rng.0,
            tries: 0,
            failures: Vec::new(),
        }
    }
    fn record(&mut self, fault: String, outcome: Result<(), String>) {
        self.tries += 1;
        if let Err(why) = outcome {
            self.failures.push(format!("{fault}: {why}"));
        }
    }
    fn finish(self) {
        let held = self.tries - self.failures.len();
        println!(
            "fault tally: {} tries={} held={held} seed={}",
            self.name, self.tries, self.seed
        );
        assert!(
            self.failures.is_empty(),
            "{}: {} of {} faults damaged the store (HOIST_FAULT_SEED={}):\n{}",
            self.name,
            self.failures.len(),
            self.tries,
            self.seed,
            self.failures.join("\n")
        );
    }
}

/// Deterministic incompressible bytes.
fn noise(len: usize, rng: &mut Rng) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        out.extend_from_slice(&rng.next().to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A store with busybox and `keep` (busybox + /keep): the images every fault must leave intact.
fn victim(dir: &Path) -> Hoist {
    let h = Hoist::new(&dir.join("victim"));
    make_busybox(h.root());
    build(&h, dir, "keep", "keep", b"kept across every fault\n");
    h
}

/// Builds `tag` = busybox + COPY of `content` to /`file`.
fn build(h: &Hoist, dir: &Path, tag: &str, file: &str, content: &[u8]) {
    let ctx = dir.join(format!("ctx-{tag}"));
    fs::create_dir_all(&ctx).unwrap();
    fs::write(
        ctx.join("Dockerfile"),
        format!("FROM busybox\nCOPY {file} /{file}\n"),
    )
    .unwrap();
    fs::write(ctx.join(file), content).unwrap();
    h.ok(&["build", "-q", "-t", tag, ctx.to_str().unwrap()]);
}

/// The invariant: `system check` passes and busybox and keep run with their content.
fn store_holds(h: &Hoist) -> Result<(), String> {
    let out = h.output(&["system", "check"]);
    if !out.status.success() {
        return Err(format!(
            "system check failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    for (image, path, want) in [
        ("busybox", "/etc/group", "root:x:0:\n"),
        ("keep", "/keep", "kept across every fault\n"),
    ] {
        let out = h.output(&["run", "--rm", image, "cat", path]);
        let got = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() || !got.starts_with(want) {
            return Err(format!(
                "`run {image} cat {path}` gave {got:?} ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    Ok(())
}

/// When `image` is in the store, it must run and show `want` at `path`.
fn right_if_present(h: &Hoist, image: &str, path: &str, want: &[u8]) -> Result<(), String> {
    if !h.output(&["image", "inspect", image]).status.success() {
        return Ok(());
    }
    let out = h.output(&["run", "--rm", image, "cat", path]);
    if out.status.success() && out.stdout == want {
        Ok(())
    } else {
        Err(format!(
            "{image} is in the store but `cat {path}` gave {} bytes ({}): {}",
            out.stdout.len(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// `app` (busybox + 3 MB of noise in /app) pushed to a fresh registry; returns the registry, the
/// image's content and its (config, top layer) digests in the registry.
fn registry_with_app(dir: &Path, rng: &mut Rng) -> (TestRegistry, Vec<u8>, String, String) {
    let registry = TestRegistry::start(None);
    let src = Hoist::new(&dir.join("source"));
    make_busybox(src.root());
    let content = noise(3 << 20, rng);
    build(&src, dir, "app", "app", &content);
    let name = format!("127.0.0.1:{}/app:1", registry.port);
    src.ok(&["tag", "app", &name]);
    src.ok(&["push", "-q", &name]);
    let m = skopeo_inspect(&name, true);
    let config = m["config"]["digest"].as_str().unwrap().to_string();
    let top = m["layers"][1]["digest"].as_str().unwrap().to_string();
    (registry, content, config, top)
}

#[test]
fn tampered_pulls_never_reach_the_store() {
    let tmp = tempfile::tempdir().unwrap();
    let mut rng = Rng::from_env("tampered_pulls");
    let mut tally = Tally::new("tampered pulls", &rng);
    let (registry, content, config, top) = registry_with_app(tmp.path(), &mut rng);
    let h = victim(tmp.path());
    let mut faults: Vec<(String, String, Tamper)> = vec![
        ("corrupt layer".into(), top.clone(), Tamper::Corrupt),
        ("corrupt config".into(), config.clone(), Tamper::Corrupt),
    ];
    for _ in 0..3 {
        let cut = rng.below(3 << 20) as usize;
        faults.push((
            format!("layer cut after {cut} bytes"),
            top.clone(),
            Tamper::CutOnceAfter(cut),
        ));
    }
    for (what, target, tamper) in faults {
        let proxy = Proxy::start(registry.port, target.trim_start_matches("sha256:"), tamper);
        let name = format!("127.0.0.1:{}/app:1", proxy.port);
        let out = h.output(&["pull", "-q", &name]);
        let outcome = (|| {
            if tamper == Tamper::Corrupt && out.status.success() {
                return Err("a corrupt blob was accepted".to_string());
            }
            store_holds(&h)?;
            right_if_present(&h, &name, "/app", &content)
        })();
        tally.record(what, outcome);
        let _ = h.output(&["rmi", &name]);
    }
    tally.finish();
}

/// An OCI layout holding one image whose config names a diff_id its layer does not have.
fn lying_layout(dir: &Path) -> PathBuf {
    let layout = dir.join("lying");
    let blobs = layout.join("blobs/sha256");
    fs::create_dir_all(&blobs).unwrap();
    let put = |bytes: &[u8]| {
        let d = Digest::of(bytes);
        fs::write(blobs.join(d.hex()), bytes).unwrap();
        (d, bytes.len())
    };
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(4);
    h.set_mode(0o644);
    b.append_data(&mut h, "lie", &b"lie\n"[..]).unwrap();
    let layer = b.into_inner().unwrap();
    let (layer_d, layer_n) = put(&layer);
    let liar = Digest::of(b"some other layer");
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Cmd": ["cat", "/lie"]},
        "rootfs": {"type": "layers", "diff_ids": [liar.to_string()]},
    });
    let (config_d, config_n) = put(config.to_string().as_bytes());
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config_d.to_string(), "size": config_n},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": layer_d.to_string(), "size": layer_n}],
    });
    let (m_d, m_n) = put(manifest.to_string().as_bytes());
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "digest": m_d.to_string(), "size": m_n,
                       "annotations": {"org.opencontainers.image.ref.name": "1",
                                       "io.containerd.image.name": "docker.io/library/liar:1"}}],
    });
    fs::write(layout.join("index.json"), index.to_string()).unwrap();
    fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    layout
}

#[test]
fn configs_that_lie_about_diff_ids_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let rng = Rng::from_env("lying_configs");
    let mut tally = Tally::new("lying configs", &rng);
    let layout = lying_layout(tmp.path());
    let h = victim(tmp.path());

    // Through `hoist load` (an OCI archive of the layout).
    let archive = tmp.path().join("liar.tar");
    let mut b = tar::Builder::new(fs::File::create(&archive).unwrap());
    b.append_dir_all(".", &layout).unwrap();
    b.finish().unwrap();
    drop(b);
    let out = h.output(&["load", "-i", archive.to_str().unwrap()]);
    let outcome = if out.status.success() {
        Err(format!(
            "load accepted it: {}",
            String::from_utf8_lossy(&out.stdout)
        ))
    } else {
        store_holds(&h)
    };
    tally.record("load of a lying config".into(), outcome);

    // Through `hoist pull` (the layout copied as is into the registry).
    let registry = TestRegistry::start(None);
    let name = format!("127.0.0.1:{}/liar:1", registry.port);
    let copied = std::process::Command::new("skopeo")
        .args([
            "copy",
            "--quiet",
            "--dest-tls-verify=false",
            "--preserve-digests",
        ])
        .arg(format!("oci:{}:1", layout.display()))
        .arg(format!("docker://{name}"))
        .output()
        .unwrap();
    assert!(
        copied.status.success(),
        "{}",
        String::from_utf8_lossy(&copied.stderr)
    );
    let out = h.output(&["pull", "-q", &name]);
    let outcome = if out.status.success() {
        Err("pull accepted it".to_string())
    } else {
        store_holds(&h)
    };
    tally.record("pull of a lying config".into(), outcome);
    tally.finish();
}

#[test]
fn byte_flipped_archives_never_damage_the_store() {
    let tmp = tempfile::tempdir().unwrap();
    let mut rng = Rng::from_env("flipped_archives");
    let mut tally = Tally::new("byte-flipped archives", &rng);
    let h = victim(tmp.path());
    let content = noise(256 << 10, &mut rng);
    build(&h, tmp.path(), "flip", "flip", &content);
    let mut archives = Vec::new();
    for format in ["docker", "oci"] {
        let p = tmp.path().join(format!("flip-{format}.tar"));
        h.ok(&[
            "save",
            "--format",
            format,
            "-o",
            p.to_str().unwrap(),
            "flip",
        ]);
        archives.push((format, fs::read(&p).unwrap()));
    }
    h.ok(&["rmi", "flip"]);
    for i in 0..16 {
        let (format, bytes) = &archives[i % 2];
        let at = rng.below(bytes.len() as u64) as usize;
        let mut bad = bytes.clone();
        bad[at] ^= 1 << rng.below(8);
        let p = tmp.path().join("flipped.tar");
        fs::write(&p, &bad).unwrap();
        let out = h.output(&["load", "-i", p.to_str().unwrap()]);
        let outcome = store_holds(&h).and_then(|()| {
            if out.status.success() {
                right_if_present(&h, "flip", "/flip", &content)
            } else {
                Ok(())
            }
        });
        tally.record(format!("{format} archive, byte {at} flipped"), outcome);
        let _ = h.output(&["rmi", "flip"]);
    }
    tally.finish();
}

/// Runs `args`, SIGKILLs it after `delay`; returns whether it had finished by itself.
fn run_killed(h: &Hoist, args: &[&str], delay: Duration) -> bool {
    let mut child = h
        .command(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while start.elapsed() < delay {
        if child.try_wait().unwrap().is_some() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let _ = child.kill();
    let _ = child.wait();
    false
}

/// How long `args` takes when left alone.
fn timed(h: &Hoist, args: &[&str]) -> Duration {
    let start = Instant::now();
    h.ok(args);
    start.elapsed()
}

#[test]
fn sigkill_at_random_moments_never_damages_the_store() {
    let tmp = tempfile::tempdir().unwrap();
    let mut rng = Rng::from_env("sigkill");
    let mut tally = Tally::new("kill -9", &rng);
    let (registry, content, _, _) = registry_with_app(tmp.path(), &mut rng);
    let h = victim(tmp.path());
    let name = format!("127.0.0.1:{}/app:1", registry.port);
    const TRIES: usize = 3;

    // Pull.
    let full = timed(&h, &["pull", "-q", &name]);
    for _ in 0..TRIES {
        let _ = h.output(&["rmi", &name]);
        let delay = Duration::from_millis(rng.below(full.as_millis() as u64 + 1));
        let done = run_killed(&h, &["pull", "-q", &name], delay);
        let outcome = store_holds(&h).and_then(|()| right_if_present(&h, &name, "/app", &content));
        tally.record(
            format!("pull killed at {delay:?} (finished: {done})"),
            outcome,
        );
    }
    h.ok(&["pull", "-q", &name]);

    // Save: the output is complete or absent.
    let out = tmp.path().join("saved.tar");
    let full = timed(&h, &["save", "-o", out.to_str().unwrap(), &name]);
    let good = fs::read(&out).unwrap();
    for _ in 0..TRIES {
        let _ = fs::remove_file(&out);
        let delay = Duration::from_millis(rng.below(full.as_millis() as u64 + 1));
        let done = run_killed(&h, &["save", "-o", out.to_str().unwrap(), &name], delay);
        let outcome = store_holds(&h).and_then(|()| match fs::read(&out) {
            Ok(b) if b != good => Err(format!(
                "a partial archive ({} of {} bytes) was left at the output path",
                b.len(),
                good.len()
            )),
            _ => Ok(()),
        });
        tally.record(
            format!("save killed at {delay:?} (finished: {done})"),
            outcome,
        );
    }
    fs::write(&out, &good).unwrap();

    // Load.
    let _ = h.output(&["rmi", &name]);
    let full = timed(&h, &["load", "-q", "-i", out.to_str().unwrap()]);
    for _ in 0..TRIES {
        let _ = h.output(&["rmi", &name]);
        let delay = Duration::from_millis(rng.below(full.as_millis() as u64 + 1));
        let done = run_killed(&h, &["load", "-q", "-i", out.to_str().unwrap()], delay);
        let outcome = store_holds(&h).and_then(|()| right_if_present(&h, &name, "/app", &content));
        tally.record(
            format!("load killed at {delay:?} (finished: {done})"),
            outcome,
        );
    }

    // Build (new content each time, so every build has work to do).
    let ctx = tmp.path().join("ctx-killed");
    fs::create_dir_all(&ctx).unwrap();
    fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\nCOPY big /big\nRUN cp /big /copy\n",
    )
    .unwrap();
    fs::write(ctx.join("big"), noise(2 << 20, &mut rng)).unwrap();
    let full = timed(&h, &["build", "-q", "-t", "killed", ctx.to_str().unwrap()]);
    for _ in 0..TRIES {
        let big = noise(2 << 20, &mut rng);
        fs::write(ctx.join("big"), &big).unwrap();
        let delay = Duration::from_millis(rng.below(full.as_millis() as u64 + 1));
        let done = run_killed(
            &h,
            &["build", "-q", "-t", "killed", ctx.to_str().unwrap()],
            delay,
        );
        let outcome = store_holds(&h).and_then(|()| {
            if done {
                right_if_present(&h, "killed", "/copy", &big)
            } else {
                Ok(())
            }
        });
        tally.record(
            format!("build killed at {delay:?} (finished: {done})"),
            outcome,
        );
    }
    tally.finish();
}
