//! `hoist debug parse` end to end: the BuildKit dump of a conformance case, JSON output, stdin,
//! validation, and clear errors with file and line on bad input.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

fn hoist(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_hoist"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn hoist");
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.unwrap_or_default()).unwrap();
    drop(input);
    child.wait_with_output().unwrap()
}

fn case(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("parser/testdata/conformance/parser/testfiles")
        .join(name)
}

#[test]
fn dump_matches_buildkit_result() {
    for name in [
        "env",
        "lk4d4-the-edge-case-generator",
        "escape-nonewline",
        "health",
    ] {
        let dir = case(name);
        let out = hoist(
            &["debug", "parse", dir.join("Dockerfile").to_str().unwrap()],
            None,
        );
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let want = std::fs::read(dir.join("result")).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&want),
            "{name}"
        );
    }
}

#[test]
fn json_output_and_stdin() {
    let src = b"FROM busybox AS base\nRUN <<EOF\necho hi\nEOF\n";
    let out = hoist(&["debug", "parse", "--json", "-"], Some(src));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    let run = &v["children"][1];
    assert_eq!(run["keyword"], "RUN");
    assert_eq!(run["start_line"], 2);
    assert_eq!(run["end_line"], 4);
    assert_eq!(run["heredocs"][0]["name"], "EOF");
    assert_eq!(run["heredocs"][0]["content"], "echo hi\n");
    assert_eq!(
        v["children"][0]["args"],
        serde_json::json!(["busybox", "AS", "base"])
    );
}

#[test]
fn syntax_error_names_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("Dockerfile");
    std::fs::write(&path, "FROM busybox\n\nCMD [ \"echo\", [ \"nested\" ] ]\n").unwrap();
    let out = hoist(&["debug", "parse", path.to_str().unwrap()], None);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        err.trim(),
        format!(
            "Error: {}:3: when using JSON array syntax, arrays must be comprised of strings only",
            path.display()
        )
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn negative_case_and_validation_errors() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("parser/testdata/conformance/parser/testfiles-negative/env_no_value/Dockerfile");
    let out = hoist(&["debug", "parse", dir.to_str().unwrap()], None);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .ends_with("env_no_value/Dockerfile:3: ENV must have two arguments\n")
    );

    // Unknown flags pass the syntax layer but fail validation, naming flag and line.
    let src = b"FROM busybox\nRUN --netwrk=none true\n";
    let out = hoist(&["debug", "parse", "-"], Some(src));
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "(from \"busybox\")\n(run [\"--netwrk=none\"] \"true\")\n"
    );
    let out = hoist(&["debug", "parse", "--validate", "-"], Some(src));
    assert!(!out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "Error: -:2: unknown flag: --netwrk (did you mean network?)"
    );
}

#[test]
fn mount_values_split_like_buildkit_csv() {
    // Expected texts are current BuildKit's (docker 28.5) for the same lines.
    let cases = [
        ("--mount=", "failed to parse csv mounts: EOF"),
        (
            "--mount=target=\\\"/x\\\"",
            "failed to parse csv mounts: parse error on line 1, column 8: bare \" in non-quoted-field",
        ),
        (
            "--mount='type=bind,\"x'",
            "failed to parse csv mounts: parse error on line 1, column 12: extraneous or missing \" in quoted-field",
        ),
        (
            "--mount='\"a\"b,c'",
            "failed to parse csv mounts: parse error on line 1, column 3: extraneous or missing \" in quoted-field",
        ),
        (
            "--mount='ab,\"a\"\"b\"c'",
            "failed to parse csv mounts: parse error on line 1, column 9: extraneous or missing \" in quoted-field",
        ),
    ];
    for (flag, want) in cases {
        let src = format!("FROM scratch\nRUN {flag} true\n");
        let out = hoist(&["debug", "parse", "--validate", "-"], Some(src.as_bytes()));
        assert!(!out.status.success(), "{flag}");
        assert_eq!(
            String::from_utf8_lossy(&out.stderr).trim(),
            format!("Error: -:2: {want}"),
            "{flag}"
        );
    }
    // A quoted option keeps its comma: the mount parses.
    let src = b"FROM scratch\nRUN --mount='type=cache,\"target=/a,b\"' true\n";
    let out = hoist(&["debug", "parse", "--validate", "-"], Some(src));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn missing_file_is_a_clear_error() {
    let out = hoist(&["debug", "parse", "/nonexistent/Dockerfile"], None);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("reading /nonexistent/Dockerfile"));
}

#[test]
fn validate_prints_lint_warnings() {
    let src = b"FROM busybox as Build\nMAINTAINER me\n";
    let out = hoist(&["debug", "parse", "--validate", "-"], Some(src));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "3 warnings found:\n - StageNameCasing: Stage name 'Build' should be lowercase (line 1)\n - FromAsCasing: 'as' and 'FROM' keywords' casing do not match (line 1)\n - MaintainerDeprecated: Maintainer instruction is deprecated in favor of using label (line 2)\n"
    );
}

#[test]
fn typed_output_lists_stages_and_instructions() {
    let src =
        b"ARG V=1\nFROM busybox:$V AS base\nRUN --network=none true\nCOPY --from=base /a /b\n";
    let out = hoist(&["debug", "parse", "--typed", "-"], Some(src));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["stages"][0]["name"], "base");
    assert_eq!(v["stages"][0]["base"], "busybox:$V");
    assert_eq!(
        v["stages"][0]["commands"][0]["instruction"]["Run"]["network"],
        "None"
    );
    assert_eq!(
        v["stages"][0]["commands"][1]["instruction"]["Copy"]["from"],
        "base"
    );
    assert_eq!(v["global_args"][0]["source"]["start_line"], 1);
}
