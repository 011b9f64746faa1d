//! `hoist builder du`, `builder prune` and the build cache's cap, on real builds: what du lists,
//! what prune removes (least recently used first, never a layer a stored image needs), and a store
//! built past its cap many times that stays under it while its latest build still hits.

mod build_support;
mod common;

use std::fs;
use std::path::Path;

use build_support::{Env, context_with, steps_run};

/// A step whose layer is `kb` KiB of random bytes, and one with a cache mount.
fn dockerfile(kb: u32) -> String {
    format!(
        "FROM busybox
ARG N=0
RUN head -c {kb}000 /dev/urandom > /big && echo $N > /n
RUN --mount=type=cache,target=/cache,id=dl echo $N >> /cache/seen && head -c 50000 /dev/urandom > /cache/blob-$N
"
    )
}

fn build(env: &Env, ctx: &Path, extra: &[&str]) -> Vec<String> {
    let mut a = extra.to_vec();
    a.push(ctx.to_str().unwrap());
    steps_run(&env.build(&a))
}

/// Bytes under a directory.
fn du(p: &Path) -> u64 {
    let mut n = 0;
    for e in fs::read_dir(p).into_iter().flatten().flatten() {
        let m = e.metadata().unwrap();
        n += if m.is_dir() { du(&e.path()) } else { m.len() };
    }
    n
}

#[test]
fn du_lists_records_and_prune_keeps_what_images_need() {
    let env = Env::new();
    let ctx = context_with(&dockerfile(200), &[]);
    let out_dir = env.dir.path().join("out");
    let o = format!("type=local,dest={}", out_dir.display());
    // An image that keeps its layers, and a build whose layers only the cache keeps.
    build(&env, ctx.path(), &["-t", "kept"]);
    build(&env, ctx.path(), &["--build-arg", "N=1", "-o", &o]);

    let du_out = env.ok(&mut env.cmd(&["builder", "du"]));
    let lines: Vec<&str> = du_out.lines().collect();
    assert!(
        lines[0].starts_with("ID")
            && lines[0].contains("RECLAIMABLE")
            && lines[0].ends_with("LAST ACCESSED"),
        "{du_out}"
    );
    // The tagged image's layers are shared (`*`), the cache mount is mutable (`*`).
    assert!(lines.iter().any(|l| l.contains("kB*")), "{du_out}");
    assert!(lines.iter().any(|l| l.starts_with("dl*")), "{du_out}");
    let n = lines.len();
    assert!(lines[n - 2].starts_with("Reclaimable:\t"), "{du_out}");
    assert!(lines[n - 1].starts_with("Total:\t\t"), "{du_out}");
    assert!(du_out.contains("\nShared:\t\t"), "{du_out}");

    let verbose = env.ok(&mut env.cmd(&["builder", "du", "--verbose"]));
    assert!(
        verbose.contains("Type:         exec.cachemount"),
        "{verbose}"
    );
    assert!(verbose.contains("Type:         regular"), "{verbose}");
    assert!(verbose.contains("Mutable:      true"), "{verbose}");

    // Nothing is older than an hour: nothing goes.
    let none = env.ok(&mut env.cmd(&["builder", "prune", "-f", "--filter", "until=1h"]));
    assert_eq!(none, "Total:\t0B\n", "{none}");
    let bad = env.hoist(&["builder", "prune", "-f", "--filter", "until=soon"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("expects a duration"));

    // Only cache mounts: the step records stay.
    let mounts =
        env.ok(&mut env.cmd(&["builder", "prune", "-f", "--filter", "type=exec.cachemount"]));
    assert!(mounts.contains("dl*"), "{mounts}");
    let left = env.ok(&mut env.cmd(&["builder", "du"]));
    assert!(!left.contains("dl*") && left.contains("kB*"), "{left}");

    let pruned = env.ok(&mut env.cmd(&["builder", "prune", "-f"]));
    assert!(
        pruned.lines().last().unwrap().starts_with("Total:\t"),
        "{pruned}"
    );
    assert!(pruned.contains("kB*"), "{pruned}");
    let after = env.ok(&mut env.cmd(&["builder", "du"]));
    assert!(!after.contains("kB"), "{after}");
    // The image still has every layer: it saves whole.
    let tar = env.dir.path().join("kept.tar");
    env.ok(&mut env.cmd(&["save", "-o", tar.to_str().unwrap(), "kept"]));
    assert!(fs::metadata(&tar).unwrap().len() > 200_000);
    // The records went: the steps run again.
    assert_eq!(build(&env, ctx.path(), &["-t", "kept"]).len(), 2);
}

#[test]
fn keep_storage_removes_least_recently_used_first() {
    let env = Env::new();
    let ctx = context_with(&dockerfile(300), &[]);
    let o = format!("type=local,dest={}", env.dir.path().join("out").display());
    for n in ["1", "2", "3"] {
        build(
            &env,
            ctx.path(),
            &["--build-arg", &format!("N={n}"), "-o", &o],
        );
        std::thread::sleep(std::time::Duration::from_millis(1100));
    }
    // N=1 used again: now the most recent.
    assert!(build(&env, ctx.path(), &["--build-arg", "N=1", "-o", &o]).len() <= 1);
    env.ok(&mut env.cmd(&["builder", "prune", "-f", "--keep-storage", "700kb"]));
    // 2 went (oldest), then 3; 1 stays cached.
    let run1 = build(&env, ctx.path(), &["--build-arg", "N=1", "-o", &o]);
    assert!(
        run1.iter().all(|s| !s.contains("head -c 300000")),
        "{run1:?}"
    );
    let run2 = build(&env, ctx.path(), &["--build-arg", "N=2", "-o", &o]);
    assert!(
        run2.iter().any(|s| s.contains("head -c 300000")),
        "{run2:?}"
    );
}

#[test]
fn the_cache_stays_under_its_cap_and_the_latest_build_still_hits() {
    let env = Env::new();
    fs::write(
        env.root.join("config.toml"),
        "[builder]\nmax-storage = \"1MiB\"\n",
    )
    .unwrap();
    let ctx = context_with(&dockerfile(300), &[]);
    let o = format!("type=local,dest={}", env.dir.path().join("out").display());
    let baseline = du(&env.root.join("blobs")) + du(&env.root.join("cache"));
    for n in 0..8 {
        let ran = build(
            &env,
            ctx.path(),
            &["--build-arg", &format!("N={n}"), "-o", &o],
        );
        assert_eq!(ran.len(), 2, "{ran:?}");
        let used = du(&env.root.join("blobs")) + du(&env.root.join("cache")) - baseline;
        assert!(
            used <= 1 << 20,
            "build {n}: the build cache holds {used} bytes, over 1MiB"
        );
    }
    // The latest build hits whole.
    assert_eq!(
        build(&env, ctx.path(), &["--build-arg", "N=7", "-o", &o]),
        Vec::<String>::new()
    );
    // The env var overrides the file; a bad value names where it came from.
    let bad = env
        .cmd(&[
            "build",
            "--build-arg",
            "N=9",
            "-o",
            &o,
            ctx.path().to_str().unwrap(),
        ])
        .env("HOIST_BUILDER_MAX_STORAGE", "lots")
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("HOIST_BUILDER_MAX_STORAGE"));
}

#[test]
fn prune_during_a_build_keeps_what_the_build_holds() {
    let env = Env::new();
    let df = "FROM busybox
RUN --mount=type=cache,target=/cache,id=slow echo x > /cache/f && sleep 3 && cat /cache/f > /got
";
    let ctx = context_with(df, &[]);
    let child = env
        .cmd(&[
            "build",
            "--progress",
            "plain",
            "-t",
            "slow",
            ctx.path().to_str().unwrap(),
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mounts = env.root.join("cache/mounts/slow");
    let t0 = std::time::Instant::now();
    while !mounts.join("f").exists() {
        assert!(
            t0.elapsed().as_secs() < 20,
            "the build never reached its RUN"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let pruned = env.ok(&mut env.cmd(&["builder", "prune", "-f"]));
    assert!(!pruned.contains("slow"), "{pruned}");
    let du = env.ok(&mut env.cmd(&["builder", "du"]));
    assert!(
        du.lines()
            .any(|l| l.starts_with("slow*") && l.contains(" false ")),
        "{du}"
    );
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(env.read("slow", "/got"), "x\n");
}
