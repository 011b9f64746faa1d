//! BuildKit conformance: every parser testfile dump byte for byte, the negative cases, line numbers,
//! envVarTest (A and U lines) and wordsTest, from the data copied into testdata/conformance.

use std::fs;
use std::path::PathBuf;

use hoist_parser::shell::Lexer;

fn data() -> PathBuf {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata/conformance");
    assert!(
        p.join("parser").is_dir(),
        "conformance data missing at {}",
        p.display()
    );
    p
}

fn dirs(sub: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(data().join(sub))
        .unwrap_or_else(|e| panic!("reading {sub}: {e}"))
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

#[test]
fn testfiles_dump_byte_for_byte() {
    let cases = dirs("parser/testfiles");
    assert_eq!(cases.len(), 33, "expected 33 cases");
    let mut failures = Vec::new();
    for dir in &cases {
        let name = dir.file_name().unwrap().to_string_lossy().to_string();
        let bytes = fs::read(dir.join("Dockerfile")).unwrap();
        let expected = fs::read_to_string(dir.join("result")).unwrap();
        match hoist_parser::parse(&bytes, "Dockerfile") {
            Err(e) => failures.push(format!("{name}: parse failed: {e}")),
            Ok(ast) => {
                let got = hoist_parser::dump(&ast) + "\n";
                if got != expected {
                    let diff: Vec<String> = got
                        .lines()
                        .zip(expected.lines())
                        .filter(|(a, b)| a != b)
                        .take(3)
                        .map(|(a, b)| format!("  got:  {a}\n  want: {b}"))
                        .collect();
                    failures.push(format!(
                        "{name}: dump differs ({} vs {} lines)\n{}",
                        got.lines().count(),
                        expected.lines().count(),
                        diff.join("\n")
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of 33 failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn negative_cases_fail_with_buildkit_messages() {
    let cases = dirs("parser/testfiles-negative");
    assert_eq!(cases.len(), 4);
    for dir in &cases {
        let name = dir.file_name().unwrap().to_string_lossy().to_string();
        let bytes = fs::read(dir.join("Dockerfile")).unwrap();
        let err = hoist_parser::parse(&bytes, "Dockerfile").expect_err(&name);
        let want = match name.as_str() {
            "empty_dockerfile" | "only_comments" => "file with no instructions",
            "env_no_value" => "ENV must have two arguments",
            "shykes-nested-json" => {
                "when using JSON array syntax, arrays must be comprised of strings only"
            }
            other => panic!("unexpected negative case {other}"),
        };
        assert_eq!(err.message, want, "{name}");
    }
}

#[test]
fn testfile_line_numbers() {
    let bytes = fs::read(data().join("parser/testfile-line/Dockerfile")).unwrap();
    let ast = hoist_parser::parse(&bytes, "Dockerfile").unwrap();
    assert_eq!((ast.start_line, ast.end_line), (5, 31));
    let ranges: Vec<(usize, usize)> = ast
        .children
        .iter()
        .map(|n| (n.start_line, n.end_line))
        .collect();
    assert_eq!(ranges, [(5, 5), (11, 12), (17, 31)]);
}

#[test]
fn env_var_test() {
    let text = fs::read_to_string(data().join("shell/envVarTest")).unwrap();
    let env: Vec<(String, String)> = [
        ("PWD", "/home"),
        ("SHELL", "bash"),
        ("KOREAN", "한국어"),
        ("NULL", ""),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let lex = Lexer::new('\\');
    let (mut ran, mut failures) = (0, Vec::new());
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let parts: Vec<&str> = line.trim().split('|').map(str::trim).collect();
        assert_eq!(parts.len(), 3, "malformed line {line:?}");
        match parts[0] {
            "A" | "U" => {}
            "W" => continue,
            p => panic!("bad platform {p}"),
        }
        ran += 1;
        let got = lex.process_word(parts[1], &env);
        let ok = match (&got, parts[2]) {
            (Err(_), "error") => true,
            (Ok(v), want) => want != "error" && v == want,
            _ => false,
        };
        if !ok {
            failures.push(format!("{:?} -> {:?}, want {:?}", parts[1], got, parts[2]));
        }
    }
    assert_eq!(ran, 228);
    assert!(
        failures.is_empty(),
        "{} failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn words_test() {
    let text = fs::read_to_string(data().join("shell/wordsTest")).unwrap();
    let mut env: Vec<(String, String)> = Vec::new();
    let lex = Lexer::new('\\');
    let (mut ran, mut failures) = (0, Vec::new());
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        if let Some(rest) = line.strip_prefix("ENV ") {
            let (k, v) = rest.trim_start().split_once('=').unwrap();
            env.push((k.to_string(), v.to_string()));
            continue;
        }
        let (input, expected) = line.split_once('|').expect("one |");
        let input = input.trim();
        let expected: Vec<&str> = expected.trim_start().split(',').collect();
        ran += 1;
        let got = lex
            .process_words(input, &env)
            .unwrap_or_else(|_| vec!["error".into()]);
        if got != expected {
            failures.push(format!("{input:?} -> {got:?}, want {expected:?}"));
        }
    }
    assert_eq!(ran, 24);
    assert!(
        failures.is_empty(),
        "{} failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
