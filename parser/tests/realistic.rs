//! Large Dockerfiles in the style of official images (testdata/parser/) parse and validate, with
//! the stages, heredocs, mounts and line numbers a reader of the file would expect.

use std::path::PathBuf;

use hoist_parser::instructions::{Healthcheck, Instruction, MountType, parse_mount};
use hoist_parser::{Dockerfile, parse, parse_dockerfile};

fn load(name: &str) -> (hoist_parser::Ast, Dockerfile) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata/parser")
        .join(name);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let ast = parse(&bytes, name).unwrap_or_else(|e| panic!("{e}"));
    let df = parse_dockerfile(&ast).unwrap_or_else(|e| panic!("{e}"));
    // Every mount of every RUN is valid once values are expanded (identity here).
    let id = |s: &str| Ok(s.to_string());
    for c in df.stages.iter().flat_map(|s| &s.commands) {
        if let Instruction::Run { mounts, .. } = &c.instruction {
            for m in mounts {
                parse_mount(m, Some(&id))
                    .unwrap_or_else(|e| panic!("{name}:{}: {e}", c.source.start_line));
            }
        }
    }
    (ast, df)
}

fn find<'a>(df: &'a Dockerfile, stage: &str, line: usize) -> &'a Instruction {
    let s = df
        .stage(stage)
        .unwrap_or_else(|| panic!("no stage {stage}"));
    &s.commands
        .iter()
        .find(|c| c.source.start_line == line)
        .unwrap_or_else(|| panic!("nothing at {line}"))
        .instruction
}

#[test]
fn go_service() {
    let (ast, df) = load("go-service.Dockerfile");
    assert_eq!(
        ast.directives.syntax.as_deref(),
        Some("docker/dockerfile:1.7")
    );
    assert_eq!(ast.directives.check.as_deref(), Some("error=true"));
    assert_eq!(
        df.global_arg_decls()
            .iter()
            .map(|a| a.name.as_str())
            .collect::<Vec<_>>(),
        ["GO_VERSION", "ALPINE_VERSION", "TARGETOS", "TARGETARCH"]
    );
    let names: Vec<_> = df
        .stages
        .iter()
        .map(|s| s.name.clone().unwrap_or_default())
        .collect();
    assert_eq!(
        names,
        ["base", "deps", "build", "test", "export", "runtime"]
    );
    assert_eq!(df.stages[0].platform.as_deref(), Some("$BUILDPLATFORM"));
    let Instruction::Run { mounts, .. } = find(&df, "build", 29) else {
        panic!()
    };
    assert_eq!(mounts.len(), 4);
    let id = |s: &str| Ok(s.to_string());
    let secret = parse_mount(&mounts[3], Some(&id)).unwrap();
    assert_eq!(
        (secret.mount_type, secret.required),
        (MountType::Secret, false)
    );
    let runtime = df.stage("runtime").unwrap();
    let Instruction::Run { heredocs, .. } = find(&df, "runtime", 49) else {
        panic!()
    };
    assert_eq!(heredocs[0].content.lines().count(), 5);
    let run = runtime
        .commands
        .iter()
        .find(|c| c.source.start_line == 49)
        .unwrap();
    assert_eq!(run.source.end_line, 55);
    let Instruction::Copy(c) = find(&df, "runtime", 57) else {
        panic!()
    };
    assert!(c.link);
    assert_eq!(
        c.inline[0].data,
        "listen: \":8080\"\ndata: /var/lib/server\nlog_level: ${LOG_LEVEL:-info}\n"
    );
    let Instruction::Healthcheck(Healthcheck::Cmd { retries, test, .. }) = find(&df, "runtime", 67)
    else {
        panic!()
    };
    assert_eq!((*retries, test.len()), (3, 3));
    assert_eq!(ast.end_line, 71);
}

#[test]
fn python_app() {
    let (ast, df) = load("python-app.Dockerfile");
    assert_eq!(df.stages.len(), 3);
    let Instruction::Env(kv) = find(&df, "python-base", 9) else {
        panic!()
    };
    assert_eq!(kv.len(), 5);
    assert_eq!(kv[4].value, "\"/opt/venv\"");
    let Instruction::Run { cmd, .. } = find(&df, "builder", 18) else {
        panic!()
    };
    let hoist_parser::instructions::ShellOrExec::Shell(text) = cmd else {
        panic!()
    };
    assert!(text.contains("libpq-dev \t\tgit"), "{text}");
    let Instruction::Copy(c) = find(&df, "builder", 37) else {
        panic!()
    };
    assert!(c.parents);
    assert_eq!(c.exclude, ["**/__pycache__", "*.pyc"]);
    let Instruction::Copy(c) = find(&df, "runtime", 54) else {
        panic!()
    };
    assert_eq!(
        c.inline
            .iter()
            .map(|f| (f.name.as_str(), f.expand))
            .collect::<Vec<_>>(),
        [("EOF", true), ("RAW", false)]
    );
    assert!(c.inline[1].data.starts_with("#!/bin/sh\n"));
    let onbuilds = df.stages[2]
        .commands
        .iter()
        .filter(|c| matches!(c.instruction, Instruction::OnBuild { .. }))
        .count();
    assert_eq!(onbuilds, 2);
    assert_eq!(ast.children.last().unwrap().start_line, 67);
}

#[test]
fn nginx_backtick() {
    let (ast, df) = load("nginx-backtick.Dockerfile");
    assert_eq!(ast.directives.escape, '`');
    assert_eq!(df.escape, '`');
    assert_eq!(df.stages.len(), 3);
    assert_eq!(df.stages[2].name, None);
    let Instruction::Add(a) = find(&df, "source", 12) else {
        panic!()
    };
    assert!(a.checksum.as_deref().unwrap().starts_with("sha256:"));
    assert_eq!(
        a.sources,
        ["https://nginx.org/download/nginx-${NGINX_VERSION}.tar.gz"]
    );
    let Instruction::Add(a) = find(&df, "source", 14) else {
        panic!()
    };
    assert_eq!(a.keep_git_dir, Some(true));
    let Instruction::Run { mounts, .. } = find(&df, "build", 21) else {
        panic!()
    };
    let id = |s: &str| Ok(s.to_string());
    assert_eq!(
        parse_mount(&mounts[1], Some(&id)).unwrap().size,
        Some(256 << 20)
    );
    let last = &df.stages[2];
    let conf = last
        .commands
        .iter()
        .find(|c| matches!(&c.instruction, Instruction::Copy(c) if !c.inline.is_empty()))
        .unwrap();
    assert_eq!((conf.source.start_line, conf.source.end_line), (48, 53));
    let Instruction::Copy(c) = &conf.instruction else {
        panic!()
    };
    assert!(!c.inline[0].expand);
    assert!(c.inline[0].data.starts_with("server {\n    listen 80;"));
}
