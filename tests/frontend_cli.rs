//! The Dockerfile frontend as BuildKit's: ARG and ENV scoping across `FROM <stage>`, the image
//! config and history each instruction writes, lint rules, and bounded variable expansion. Expected
//! values were taken from Docker 28.5 / BuildKit 0.25 building the same files.

use build_support::{Env, context_with};
use hoist_image::ImageConfig;

mod build_support;
mod common;

/// `created_by` and `empty_layer` of the history entries the build added (the frontend's).
fn frontend_history(c: &ImageConfig) -> Vec<(String, bool)> {
    c.history
        .iter()
        .filter(|h| h.comment.as_deref() == Some("buildkit.dockerfile.v0"))
        .map(|h| (h.created_by.clone().unwrap_or_default(), h.empty_layer))
        .collect()
}

const INHERIT: &str = r#"ARG GL=gdef
FROM busybox AS base
ENV A=envA
ARG A=argA
ARG B=argB
ENV B=envB
RUN echo "A=$A B=$B" > /o1
ARG C=argC
ARG GL
ARG UNSET
FROM base AS child
ARG C
RUN echo "A=$A B=$B C=$C GL=$GL" > /o2
WORKDIR /w/$A/$C
LABEL l=$C u=$UNSET n=$NOPE
FROM child AS gc
ARG B=gcB
RUN echo "B=$B" > /o3
"#;

#[test]
fn stages_inherit_the_args_of_the_stage_they_are_built_on() {
    let env = Env::new();
    let ctx = context_with(INHERIT, &[]);
    let dir = ctx.path().to_str().unwrap();
    let progress = env.build(&["-t", "inherit", "--build-arg", "C=cliC", dir]);
    // ARG after ENV wins in its stage; a child stage gets the image ENV back on top of the
    // inherited ARG values; ARG C (no value) in the child keeps the build arg.
    assert_eq!(env.read("inherit", "/o1"), "A=argA B=envB\n");
    assert_eq!(env.read("inherit", "/o2"), "A=envA B=envB C=cliC GL=gdef\n");
    assert_eq!(env.read("inherit", "/o3"), "B=gcB\n");
    let c = env.config("inherit");
    let cc = c.config.as_ref().unwrap();
    assert_eq!(cc.working_dir.as_deref(), Some("/w/envA/cliC"));
    let labels = cc.labels.as_ref().unwrap();
    assert_eq!(
        (
            labels["l"].as_str(),
            labels["u"].as_str(),
            labels["n"].as_str()
        ),
        ("cliC", "", "")
    );
    let runs: Vec<String> = frontend_history(&c)
        .into_iter()
        .map(|(by, _)| by)
        .filter(|by| by.starts_with("RUN") || by.starts_with("LABEL"))
        .collect();
    assert_eq!(
        runs,
        [
            r#"RUN |2 A=argA B=envB /bin/sh -c echo "A=$A B=$B" > /o1 # buildkit"#,
            r#"RUN |5 A=envA B=envB C=cliC GL=gdef UNSET= /bin/sh -c echo "A=$A B=$B C=$C GL=$GL" > /o2 # buildkit"#,
            "LABEL l=cliC u= n=",
            r#"RUN |5 A=envA B=gcB C=cliC GL=gdef UNSET= /bin/sh -c echo "B=$B" > /o3 # buildkit"#,
        ]
    );
    // Only $NOPE is undefined: inherited ARGs count, with or without a value.
    let warned = |text: &str| -> Vec<String> {
        text.lines()
            .filter(|l| l.contains("UndefinedVar"))
            .map(|l| l.trim().to_string())
            .collect()
    };
    assert_eq!(
        warned(&progress),
        ["- UndefinedVar: Usage of undefined variable '$NOPE' (line 15)"]
    );
    let df = ctx.path().join("Dockerfile");
    let lint = env.ok(&mut env.cmd(&["lint", df.to_str().unwrap()]));
    assert_eq!(
        warned(&lint),
        ["WARNING: UndefinedVar - https://docs.docker.com/go/dockerfile/rule/undefined-var/"]
    );
    assert!(
        lint.contains("Usage of undefined variable '$NOPE'\nDockerfile:15\n"),
        "{lint}"
    );
}

const METADATA: &str = r#"FROM busybox AS base
ONBUILD RUN echo base-trigger > /trigger
FROM base AS child
ONBUILD RUN echo hi
EXPOSE 8080 53/udp 8080 1234/udp 7000-7001
HEALTHCHECK --interval=5s --retries=2 CMD true
SHELL ["/bin/sh", "-ec"]
CMD echo hi
ENTRYPOINT echo e
WORKDIR /usr/src/
VOLUME /data /x
STOPSIGNAL SIGINT
USER nobody
LABEL b=2 a=1
MAINTAINER me@x
LABEL c=3
"#;

#[test]
fn config_and_history_as_buildkit_writes_them() {
    let env = Env::new();
    let ctx = context_with(METADATA, &[]);
    env.build(&["-t", "meta", ctx.path().to_str().unwrap()]);
    let c = env.config("meta");
    let cc = c.config.as_ref().unwrap();
    assert_eq!(cc.working_dir.as_deref(), Some("/usr/src/"));
    assert_eq!(cc.args_escaped, Some(true));
    assert_eq!(cc.on_build.as_deref().unwrap(), ["RUN echo hi"]);
    assert_eq!(cc.cmd.as_deref().unwrap(), ["/bin/sh", "-ec", "echo hi"]);
    assert_eq!(
        cc.entrypoint.as_deref().unwrap(),
        ["/bin/sh", "-ec", "echo e"]
    );
    assert_eq!(cc.user.as_deref(), Some("nobody"));
    assert_eq!(c.author.as_deref(), Some("me@x"));
    let labels: Vec<(&str, &str)> = cc
        .labels
        .as_ref()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(labels, [("a", "1"), ("b", "2"), ("c", "3")]);
    // A base stage's ONBUILD trigger runs (first, at the FROM line) and is consumed.
    assert_eq!(env.read("meta", "/trigger"), "base-trigger\n");
    let hist = frontend_history(&c);
    let expected: Vec<(String, bool)> = [
        (
            "RUN /bin/sh -c echo base-trigger > /trigger # buildkit",
            false,
        ),
        (
            "EXPOSE [1234/udp 53/udp 7000/tcp 7001/tcp 8080/tcp 8080/tcp]",
            true,
        ),
        (
            "HEALTHCHECK {Test:[CMD-SHELL true] Interval:5s Timeout:0s StartPeriod:0s StartInterval:0s Retries:2}",
            true,
        ),
        ("SHELL [/bin/sh -ec]", true),
        (r#"CMD ["/bin/sh" "-ec" "echo hi"]"#, true),
        (r#"ENTRYPOINT ["/bin/sh" "-ec" "echo e"]"#, true),
        ("WORKDIR /usr/src/", false),
        ("VOLUME [/data /x]", true),
        ("STOPSIGNAL SIGINT", true),
        ("USER nobody", true),
        ("LABEL b=2 a=1", true),
        ("MAINTAINER me@x", true),
        ("LABEL c=3", true),
    ]
    .iter()
    .map(|(s, e)| (s.to_string(), *e))
    .collect();
    assert_eq!(hist, expected);
}

#[test]
fn scratch_images_work_in_root() {
    let env = Env::new();
    let ctx = context_with("FROM scratch\nCMD [\"/app\"]\n", &[]);
    env.build(&["-t", "bare", ctx.path().to_str().unwrap()]);
    let c = env.config("bare");
    let cc = c.config.as_ref().unwrap();
    assert_eq!(cc.working_dir.as_deref(), Some("/"));
    assert_eq!(cc.args_escaped, Some(true));
    assert_eq!(
        cc.env.as_deref().unwrap(),
        ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
    );
}

/// ARG lines that double a value at each step ("billion laughs"): `depth` levels from `A0=xx`.
fn doubling(depth: usize) -> String {
    let mut s = String::from("ARG A0=xx\n");
    for i in 1..=depth {
        s.push_str(&format!("ARG A{i}=$A{p}$A{p}\n", p = i - 1));
    }
    s
}

#[test]
fn doubling_args_stop_at_the_expansion_limit() {
    let env = Env::new();
    let cases = [
        // In a stage, and among the global ARGs (FROM's scope).
        (
            format!("FROM scratch\n{}COPY Dockerfile /x\n", doubling(40)),
            24,
        ),
        (
            format!("{}FROM scratch\nCOPY Dockerfile /x\n", doubling(40)),
            23,
        ),
    ];
    for (df, line) in cases {
        let ctx = context_with(&df, &[]);
        let start = std::time::Instant::now();
        let out = env.hoist(&["build", ctx.path().to_str().unwrap()]);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!(
                "Dockerfile:{line}\n--------------------\n  {} |     ARG A20=$A19$A19\n  {} |     ARG A21=$A20$A20\n  {line} | >>> ARG A22=$A21$A21\n",
                line - 2,
                line - 1
            )),
            "{err}"
        );
        assert!(
            err.contains("expansion exceeds 4 MiB (the limit on one expanded word)"),
            "{err}"
        );
        assert!(start.elapsed().as_secs() < 60, "{:?}", start.elapsed());
    }
    // A value under the word limit repeated many times hits the build's total.
    let mut df = format!("FROM scratch\n{}", doubling(20));
    for i in 0..40 {
        df.push_str(&format!("LABEL l{i}=$A20\n"));
    }
    let ctx = context_with(&df, &[]);
    let out = env.hoist(&["build", ctx.path().to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(" | >>> LABEL l"), "{err}");
    assert!(
        err.contains(
            "the Dockerfile expands to more than 64 MiB of values, RUN environments and history"
        ),
        "{err}"
    );
}

/// A file exercising the FROM, WORKDIR, SHELL, EXPOSE and casing rules.
const CHECKED: &str = r#"arg V=1
FROM --platform=linux/arm64 scratch AS build-arm64
FROM --platform="${TARGETPLATFORM}" scratch
FROM --platform=linux/amd64 scratch AS x
FROM scratch AS base
SHELL ["/bin/bash", "-c"]
WORKDIR app
WORKDIR more
EXPOSE 80/TCP 127.0.0.1:8080:80 9000:90/udp 53/udp
FROM base
CMD echo hi
WORKDIR again
FROM scratch
CMD echo hi
"#;

/// `docker build --check` (Docker 28.5, BuildKit 0.25) on [`CHECKED`], verbatim.
const CHECKED_BY_DOCKER: &str = r#"Check complete, 7 warnings have been found!

WARNING: RedundantTargetPlatform - https://docs.docker.com/go/dockerfile/rule/redundant-target-platform/
Setting platform to predefined ${TARGETPLATFORM} in FROM is redundant as this is the default behavior
Dockerfile:3
--------------------
   1 |     arg V=1
   2 |     FROM --platform=linux/arm64 scratch AS build-arm64
   3 | >>> FROM --platform="${TARGETPLATFORM}" scratch
   4 |     FROM --platform=linux/amd64 scratch AS x
   5 |     FROM scratch AS base
--------------------

WARNING: FromPlatformFlagConstDisallowed - https://docs.docker.com/go/dockerfile/rule/from-platform-flag-const-disallowed/
FROM --platform flag should not use constant value "linux/amd64"
Dockerfile:4
--------------------
   2 |     FROM --platform=linux/arm64 scratch AS build-arm64
   3 |     FROM --platform="${TARGETPLATFORM}" scratch
   4 | >>> FROM --platform=linux/amd64 scratch AS x
   5 |     FROM scratch AS base
   6 |     SHELL ["/bin/bash", "-c"]
--------------------

WARNING: WorkdirRelativePath - https://docs.docker.com/go/dockerfile/rule/workdir-relative-path/
Relative workdir "app" can have unexpected results if the base image changes
Dockerfile:7
--------------------
   5 |     FROM scratch AS base
   6 |     SHELL ["/bin/bash", "-c"]
   7 | >>> WORKDIR app
   8 |     WORKDIR more
   9 |     EXPOSE 80/TCP 127.0.0.1:8080:80 9000:90/udp 53/udp
--------------------

WARNING: ExposeInvalidFormat - https://docs.docker.com/go/dockerfile/rule/expose-invalid-format/
EXPOSE instruction should not define an IP address or host-port mapping, found '127.0.0.1:8080:80'
Dockerfile:9
--------------------
   7 |     WORKDIR app
   8 |     WORKDIR more
   9 | >>> EXPOSE 80/TCP 127.0.0.1:8080:80 9000:90/udp 53/udp
  10 |     FROM base
  11 |     CMD echo hi
--------------------

WARNING: ExposeProtoCasing - https://docs.docker.com/go/dockerfile/rule/expose-proto-casing/
Defined protocol '80/TCP' in EXPOSE instruction should be lowercase
Dockerfile:9
--------------------
   7 |     WORKDIR app
   8 |     WORKDIR more
   9 | >>> EXPOSE 80/TCP 127.0.0.1:8080:80 9000:90/udp 53/udp
  10 |     FROM base
  11 |     CMD echo hi
--------------------

WARNING: ExposeInvalidFormat - https://docs.docker.com/go/dockerfile/rule/expose-invalid-format/
EXPOSE instruction should not define an IP address or host-port mapping, found '9000:90/udp'
Dockerfile:9
--------------------
   7 |     WORKDIR app
   8 |     WORKDIR more
   9 | >>> EXPOSE 80/TCP 127.0.0.1:8080:80 9000:90/udp 53/udp
  10 |     FROM base
  11 |     CMD echo hi
--------------------

WARNING: JSONArgsRecommended - https://docs.docker.com/go/dockerfile/rule/json-args-recommended/
JSON arguments recommended for CMD to prevent unintended behavior related to OS signals
Dockerfile:14
--------------------
  12 |     WORKDIR again
  13 |     FROM scratch
  14 | >>> CMD echo hi
  15 |     
--------------------
"#;

#[test]
fn lint_prints_what_docker_build_check_prints() {
    let env = Env::new();
    let ctx = context_with(CHECKED, &[]);
    let df = ctx.path().join("Dockerfile");
    let out = env.hoist(&["lint", df.to_str().unwrap()]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), CHECKED_BY_DOCKER);
    assert!(out.status.success());
    let out = env.hoist(&["build", "--check", ctx.path().to_str().unwrap()]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), CHECKED_BY_DOCKER);
}

#[test]
fn a_from_that_expands_to_nothing_fails_the_check() {
    let env = Env::new();
    let ctx = context_with("ARG X\nFROM $X\nRUN true\n", &[]);
    let df = ctx.path().join("Dockerfile");
    let snippet = "Dockerfile:2\n--------------------\n   1 |     ARG X\n   2 | >>> FROM $X\n   3 |     RUN true\n   4 |     \n--------------------\n";
    let out = env.hoist(&["lint", df.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!(
            "Check complete, 1 warning has been found!\n\nWARNING: InvalidDefaultArgInFrom - https://docs.docker.com/go/dockerfile/rule/invalid-default-arg-in-from/\nDefault value for ARG $X results in empty or invalid base image name\n{snippet}\n"
        )
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!("ERROR: base name ($X) should not be blank\n{snippet}\n")
    );
    // A build arg gives it a value: the check passes, the default is still reported.
    let out = env.hoist(&[
        "build",
        "--check",
        "--build-arg",
        "X=busybox",
        ctx.path().to_str().unwrap(),
    ]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("InvalidDefaultArgInFrom"));
    // A build fails at the FROM line.
    let out = env.hoist(&["build", ctx.path().to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.ends_with(
            "Dockerfile:2\n--------------------\n   1 |     ARG X\n   2 | >>> FROM $X\n   3 |     RUN true\n   4 |     \n\
             --------------------\nERROR: failed to build: failed to solve: base name ($X) should not be blank\n"
        ),
        "{err}"
    );
}

#[test]
fn a_shebang_heredoc_is_recorded_as_buildkit_runs_it() {
    let env = Env::new();
    let ctx = context_with(
        "FROM busybox\nARG WHO=you\nRUN <<EOF\n#!/bin/sh\necho hi $WHO > /o\nEOF\n",
        &[],
    );
    env.build(&["-t", "sb", ctx.path().to_str().unwrap()]);
    assert_eq!(env.read("sb", "/o"), "hi you\n");
    let by: Vec<String> = frontend_history(&env.config("sb"))
        .into_iter()
        .map(|(by, _)| by)
        .collect();
    assert_eq!(
        by,
        [
            "ARG WHO=you",
            "RUN |1 WHO=you /bin/sh -c /dev/pipes/EOF # buildkit"
        ]
    );
}
