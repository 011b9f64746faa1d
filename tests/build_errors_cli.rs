//! Failed builds print what docker 28 (BuildKit 0.25) prints with `--progress=plain`: the failed
//! step's output between `------` rules, the numbered Dockerfile excerpt, then
//! `ERROR: failed to build: failed to solve: ...`, and exit 1. Each case under
//! `tests/build_errors/` holds a Dockerfile and the peer's stderr from the report on
//! (`expected`, output times as `T`).

mod common;

use std::path::Path;

use common::{Hoist, make_busybox};

/// Stderr from the report's first line on, times of output lines as `T`.
fn report(stderr: &str) -> String {
    let lines: Vec<&str> = stderr.split_inclusive('\n').collect();
    let at = lines
        .iter()
        .position(|l| {
            *l == "------\n"
                || l.starts_with("Dockerfile:")
                || l.starts_with("ERROR: failed to build")
        })
        .unwrap_or(lines.len());
    lines[at..]
        .iter()
        .map(|l| match l.split_once(' ') {
            Some((t, rest))
                if t.len() > 4
                    && t.split_once('.').is_some_and(|(a, b)| {
                        a.bytes().all(|c| c.is_ascii_digit())
                            && b.len() == 3
                            && b.bytes().all(|c| c.is_ascii_digit())
                    }) =>
            {
                format!("T {rest}")
            }
            _ => l.to_string(),
        })
        .collect()
}

fn hoist_fails(h: &Hoist, args: &[&str]) -> String {
    let out = h.output(args);
    assert_eq!(out.status.code(), Some(1), "hoist {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn failed_builds_report_as_docker_does() {
    let root = tempfile::tempdir().unwrap();
    make_busybox(root.path());
    let h = Hoist::new(root.path());
    let cases = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/build_errors");
    let mut names: Vec<_> = std::fs::read_dir(&cases)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    names.sort();
    assert!(names.len() >= 15, "{names:?}");
    let mut wrong = Vec::new();
    for dir in names {
        let err = hoist_fails(
            &h,
            &[
                "build",
                "--progress",
                "plain",
                "-t",
                "x",
                dir.to_str().unwrap(),
            ],
        );
        let want = std::fs::read_to_string(dir.join("expected")).unwrap();
        let got = report(&err);
        if got != want {
            wrong.push(format!(
                "{}:\n--- want\n{want}--- got\n{got}",
                dir.display()
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn an_unknown_target_and_another_dockerfile_name_report_as_docker_does() {
    let root = tempfile::tempdir().unwrap();
    let h = Hoist::new(root.path());
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM busybox AS a\nRUN true\nFROM busybox AS b\n",
    )
    .unwrap();
    let err = hoist_fails(
        &h,
        &[
            "build",
            "--progress",
            "plain",
            "--target",
            "nope",
            ctx.path().to_str().unwrap(),
        ],
    );
    let want = include_str!("build_errors/target-expected.txt");
    assert_eq!(report(&err), want, "{err}");
    // The excerpt names the Dockerfile by its base name.
    std::fs::create_dir(ctx.path().join("sub")).unwrap();
    let df = ctx.path().join("sub/My.Dockerfile");
    std::fs::write(&df, "FROM busybox\nFRM x\n").unwrap();
    let err = hoist_fails(
        &h,
        &[
            "build",
            "--progress",
            "plain",
            "-f",
            df.to_str().unwrap(),
            ctx.path().to_str().unwrap(),
        ],
    );
    assert!(
        err.ends_with(
            "My.Dockerfile:2\n--------------------\n   1 |     FROM busybox\n   2 | >>> FRM x\n   3 |     \n\
             --------------------\nERROR: failed to build: failed to solve: dockerfile parse error on line 2: \
             unknown instruction: FRM (did you mean FROM?)\n"
        ),
        "{err}"
    );
}

#[test]
fn failed_steps_are_numbered_as_buildkit_numbers_them() {
    let root = tempfile::tempdir().unwrap();
    make_busybox(root.path());
    let h = Hoist::new(root.path());
    let title = |df: &str| {
        let ctx = tempfile::tempdir().unwrap();
        std::fs::write(ctx.path().join("Dockerfile"), df).unwrap();
        let err = hoist_fails(
            &h,
            &["build", "--progress", "plain", ctx.path().to_str().unwrap()],
        );
        let at = err.find("------\n > ").expect(&err);
        err[at + 7..].lines().next().unwrap().to_string()
    };
    // FROM scratch and FROM another stage are no step; ten or more steps pad the index.
    assert_eq!(
        title("FROM scratch\nCOPY Dockerfile /a\nCOPY nope /b\n"),
        " > [2/2] COPY nope /b:"
    );
    assert_eq!(
        title("FROM busybox AS a\nRUN true\nFROM a\nRUN echo x; exit 3\n"),
        " > [stage-1 1/1] RUN echo x; exit 3:"
    );
    let mut df = String::from("FROM busybox\n");
    for i in 1..=8 {
        df.push_str(&format!("RUN echo {i}\n"));
    }
    df.push_str("WORKDIR /w\nRUN false\n");
    assert_eq!(title(&df), " > [11/11] RUN false:");
    df = df.replace("RUN echo 8\n", "RUN false\n");
    assert_eq!(title(&df), " > [ 9/11] RUN false:");
}
