//! The conformance suite: every case under `conformance/cases` is built with hoist and its
//! normalised dump (`hoist debug dump-image --base busybox:latest`) compared with the golden dump
//! of the image current BuildKit built (`conformance/golden/NAME.json`, made by
//! `conformance/run.sh`). Differences listed in `conformance/known-differences.toml` are allowed;
//! any other fails the test with a per-case diff. Needs root (RUN), not docker.

mod common;
#[path = "conformance/diff.rs"]
mod diff;
#[path = "conformance/known.rs"]
mod known;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use common::{Hoist, expect_success, make_busybox};

fn suite_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("conformance")
}

/// `build.args`: one `--flag value` a line (`--build-arg K=V`, `--target S`); `#` comments.
fn build_args(case_dir: &Path) -> Vec<String> {
    let Ok(text) = std::fs::read_to_string(case_dir.join("build.args")) else {
        return Vec::new();
    };
    let mut args = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (flag, value) = line.split_once(' ').unwrap_or_else(|| {
            panic!(
                "{}/build.args line {}: expected `--flag value`, got {line:?}",
                case_dir.display(),
                n + 1
            )
        });
        args.push(flag.to_string());
        args.push(value.trim().to_string());
    }
    args
}

/// What a case's build gave: the unexplained differences and the known ones seen.
struct Outcome {
    unexpected: Vec<String>,
    known_seen: Vec<usize>,
}

fn run_case(hoist: &Hoist, work: &Path, name: &str, known: &[known::Known]) -> Outcome {
    let dir = suite_dir().join("cases").join(name);
    let ctx = work.join(name);
    let out = Command::new("bash")
        .arg(suite_dir().join("prepare.sh"))
        .arg(&dir)
        .arg(&ctx)
        .output()
        .expect("run bash");
    expect_success(&format!("prepare.sh {name}"), out);
    let tag = format!("conformance-{name}");
    let mut args: Vec<String> = vec!["build".into(), "-q".into()];
    args.extend(build_args(&dir));
    args.extend(["-t".into(), tag.clone(), ctx.display().to_string()]);
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let built = hoist.output(&argv);
    let mut outcome = Outcome {
        unexpected: Vec::new(),
        known_seen: Vec::new(),
    };
    let diffs = if built.status.success() {
        let got: serde_json::Value = serde_json::from_str(&hoist.ok(&[
            "debug",
            "dump-image",
            "--base",
            "busybox:latest",
            &tag,
        ]))
        .expect("dump-image prints JSON");
        let golden_path = suite_dir().join("golden").join(format!("{name}.json"));
        let golden: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(&golden_path)
                .unwrap_or_else(|e| panic!("{}: {e}", golden_path.display())),
        )
        .unwrap_or_else(|e| panic!("{}: {e}", golden_path.display()));
        diff::diff(&golden, &got)
    } else {
        // A failed build is one difference at the path `build`.
        vec![diff::Difference {
            path: "build".into(),
            golden: Some("succeeds".into()),
            got: Some(String::from_utf8_lossy(&built.stderr).trim().into()),
        }]
    };
    for d in diffs {
        let hit = known
            .iter()
            .position(|k| k.applies_to(name) && diff::covers(&k.path, &d.path));
        match hit {
            Some(i) => outcome.known_seen.push(i),
            None => outcome.unexpected.push(d.to_string()),
        }
    }
    outcome
}

#[test]
fn hoist_builds_what_buildkit_builds() {
    let started = Instant::now();
    let known = known::load(&suite_dir().join("known-differences.toml"));
    let mut cases: Vec<String> = std::fs::read_dir(suite_dir().join("cases"))
        .expect("conformance/cases")
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    cases.sort();
    for k in &known {
        assert!(
            k.case == "*" || cases.contains(&k.case),
            "known-differences.toml names case {:?}, which does not exist",
            k.case
        );
    }
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    make_busybox(&store);
    let hoist = Hoist::new(&store);
    // Two workers: a build mostly waits on processes and disk, and cases share nothing but the store.
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(name) = cases.get(i) else { break };
                    let outcome = run_case(&hoist, &tmp.path().join("ctx"), name, &known);
                    results.lock().unwrap().push((name.clone(), outcome));
                }
            });
        }
    });
    let mut results = results.into_inner().unwrap();
    results.sort_by(|a, b| a.0.cmp(&b.0));
    let mut failures = Vec::new();
    let mut seen = vec![false; known.len()];
    for (name, outcome) in results {
        for i in outcome.known_seen {
            seen[i] = true;
        }
        if !outcome.unexpected.is_empty() {
            failures.push(format!(
                "== {name}: hoist differs from BuildKit:\n  {}",
                outcome.unexpected.join("\n  ")
            ));
        }
    }
    // A listed difference that no longer shows is a fix the list has not caught up with: the list
    // must say exactly what differs, so it fails too.
    for (k, _) in known.iter().zip(&seen).filter(|(_, s)| !**s) {
        failures.push(format!(
            "== known-differences.toml lists {} {}, which hoist no longer shows: remove it",
            k.case, k.path
        ));
    }
    eprintln!(
        "conformance: {} cases, {} with unexplained differences, {:.1}s",
        cases.len(),
        failures.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}
