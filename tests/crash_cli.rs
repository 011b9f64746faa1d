//! Crash safety: a `hoist build` killed with SIGKILL at any moment (while copying a large file,
//! committing a layer, running a step, writing the image) leaves a store every later command can
//! use: every blob still hashes to its name, `index.json` parses, no mount or sandbox process is
//! left behind, and the next build finishes, reusing what the killed ones completed.

mod common;

use std::fs;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{Hoist, make_busybox};

/// Deterministic incompressible bytes (xorshift), so gzip/zstd cannot shortcut the work.
fn noise(len: usize, mut seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        out.extend_from_slice(&seed.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Every blob of the store hashes to its file name; index.json is valid JSON.
fn assert_store_consistent(root: &Path) {
    let index = fs::read(root.join("index.json")).expect("index.json");
    serde_json::from_slice::<serde_json::Value>(&index).expect("index.json parses");
    for e in fs::read_dir(root.join("blobs/sha256")).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        let got = hoist_image::Digest::of(&fs::read(&p).unwrap()).to_string();
        assert_eq!(
            got,
            format!("sha256:{name}"),
            "blob {} is not what it claims",
            p.display()
        );
    }
}

/// Mount points under `root` (the store's overlays and their binds), from the host's view.
fn mounts_under(root: &Path) -> Vec<String> {
    let root = root.to_string_lossy().into_owned();
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(String::from))
        .filter(|m| m.starts_with(&root))
        .collect()
}

/// Processes whose command line contains `marker` (the RUN step's unique sleep).
fn processes_with(marker: &str) -> usize {
    fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| fs::read(e.ok()?.path().join("cmdline")).ok())
        .filter(|c| String::from_utf8_lossy(c).contains(marker))
        .count()
}

#[test]
fn sigkilled_builds_leave_a_usable_store() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("store");
    make_busybox(&root);
    let hoist = Hoist::new(&root);
    let ctx = tmp.path().join("ctx");
    fs::create_dir_all(&ctx).unwrap();
    fs::write(ctx.join("big.bin"), noise(16 << 20, 0x9e37_79b9_7f4a_7c15)).unwrap();
    fs::write(ctx.join("small.txt"), "small\n").unwrap();
    // A unique sleep length marks the sandbox's processes for this test.
    let marker = "sleep 0.4321";
    fs::write(
        ctx.join("Dockerfile"),
        format!(
            "FROM busybox\nCOPY big.bin /big.bin\n\
             RUN cp /big.bin /copy.bin && {marker} && echo ran > /ran\n\
             COPY small.txt /\nRUN cat /ran /small.txt > /both\n"
        ),
    )
    .unwrap();

    // Kill points spread over the build, each reached by watching the plain progress: while the
    // big COPY is hashed and committed, inside the RUN (sandbox up), while the RUN's layer is
    // committed, at the last steps, and while the image is written.
    let log_path = tmp.path().join("killed-build.log");
    let points: [(&str, u64); 7] = [
        ("COPY big.bin", 50),
        ("COPY big.bin", 400),
        ("RUN cp /big.bin", 300),
        ("RUN cp /big.bin", 900),
        ("COPY small.txt", 0),
        ("RUN cat /ran", 20),
        ("exporting", 0),
    ];
    for (trigger, delay_ms) in points {
        let mut child = hoist
            .command(&[
                "build",
                "--progress=plain",
                "-t",
                "crash:1",
                ctx.to_str().unwrap(),
            ])
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log_path).unwrap())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut finished = false;
        while !fs::read_to_string(&log_path)
            .unwrap_or_default()
            .contains(trigger)
        {
            if child.try_wait().unwrap().is_some() {
                finished = true;
                break;
            }
            assert!(Instant::now() < deadline, "{trigger:?} never printed");
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = child.kill();
        let _ = child.wait();
        let log = fs::read_to_string(&log_path).unwrap_or_default();
        eprintln!(
            "killed {delay_ms} ms after {trigger:?}, during: {}",
            log.lines().last().unwrap_or("(nothing printed)")
        );
        if finished {
            continue;
        }
        // The sandbox dies with hoist (PR_SET_PDEATHSIG), its mounts with its namespace.
        let deadline = Instant::now() + Duration::from_secs(20);
        while processes_with(marker) > 0 || !mounts_under(&root).is_empty() {
            assert!(
                Instant::now() < deadline,
                "after a kill at {delay_ms} ms: processes {} mounts {:?}",
                processes_with(marker),
                mounts_under(&root)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_store_consistent(&root);
        hoist.ok(&["images"]);
    }

    // The next build completes and the image is whole.
    let out = hoist.output(&[
        "build",
        "--progress=plain",
        "-t",
        "crash:1",
        ctx.to_str().unwrap(),
    ]);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    assert_store_consistent(&root);
    assert_eq!(
        hoist.ok(&["run", "--rm", "crash:1", "cat", "/both"]),
        "ran\nsmall\n"
    );
    let size = hoist.ok(&["run", "--rm", "crash:1", "sh", "-c", "wc -c < /copy.bin"]);
    assert_eq!(size.trim(), (16u64 << 20).to_string());
    assert!(mounts_under(&root).is_empty());
}
