//! Lint rules and the `# check=` directive.

use hoist_parser::lint::{CheckConfig, LintWarning, lint};

fn run(src: &str) -> Vec<LintWarning> {
    let ast = hoist_parser::parse(src.as_bytes(), "Dockerfile").unwrap();
    let df = hoist_parser::parse_dockerfile(&ast).unwrap();
    lint(&ast, &df).unwrap().0
}

fn rules(src: &str) -> Vec<(&'static str, usize)> {
    run(src).into_iter().map(|w| (w.rule, w.line)).collect()
}

#[test]
fn clean_file_has_no_warnings() {
    let src = "ARG BASE=alpine\nFROM $BASE AS build\nWORKDIR /src\nENV A=1\nCMD [\"x\"]\n";
    assert!(run(src).is_empty(), "{:?}", run(src));
}

#[test]
fn stage_rules() {
    let w = run("FROM alpine as Build\nFROM alpine AS build\nFROM alpine AS scratch\n");
    let got: Vec<_> = w
        .iter()
        .map(|w| (w.rule, w.line, w.message.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            (
                "StageNameCasing",
                1,
                "Stage name 'Build' should be lowercase"
            ),
            (
                "FromAsCasing",
                1,
                "'as' and 'FROM' keywords' casing do not match"
            ),
            (
                "DuplicateStageName",
                2,
                "Duplicate stage name \"build\", stage names should be unique"
            ),
            (
                "ReservedStageName",
                3,
                "Stage name should not use the same name as reserved stage \"scratch\""
            ),
        ]
    );
}

#[test]
fn from_args_and_platform() {
    assert_eq!(
        rules(
            "FROM --platform=linux/amd64 alpine:$TAG\nFROM --platform=$TARGETPLATFORM alpine\nFROM --platform=$BUILDPLATFORM alpine\n"
        ),
        [
            ("UndefinedArgInFrom", 1),
            ("FromPlatformFlagConstDisallowed", 1),
            ("RedundantTargetPlatform", 2)
        ]
    );
}

fn messages(src: &str) -> Vec<(&'static str, usize, String)> {
    run(src)
        .into_iter()
        .map(|w| (w.rule, w.line, w.message))
        .collect()
}

#[test]
fn platform_rules_follow_buildkit() {
    // A constant platform is fine when the stage name mentions its OS or architecture; a quoted
    // or braced $TARGETPLATFORM is still redundant; a platform mixing variables is neither.
    assert_eq!(
        rules(
            "FROM --platform=linux/arm64 alpine AS build-arm64
FROM --platform=\"${TARGETPLATFORM}\" alpine
FROM --platform=${TARGETOS}/amd64 alpine
FROM --platform=linux/amd64 alpine AS x
"
        ),
        [
            ("RedundantTargetPlatform", 2),
            ("FromPlatformFlagConstDisallowed", 4)
        ]
    );
    // Proxy ARGs are not FROM args; a near miss gets BuildKit's suggestion.
    assert_eq!(
        messages(
            "ARG VERSION=1\nFROM alpine:$VERSON\nFROM $HTTP_PROXY\nFROM alpine:$TARGETSTAGE\n"
        ),
        [
            (
                "UndefinedArgInFrom",
                2,
                "FROM argument 'VERSON' is not declared (did you mean VERSION?)".to_string()
            ),
            (
                "UndefinedArgInFrom",
                3,
                "FROM argument 'HTTP_PROXY' is not declared".to_string()
            ),
        ]
    );
}

#[test]
fn secrets_use_buildkits_deny_and_allow_tokens() {
    let flagged: Vec<String> = run("ARG GLOBAL_TOKEN\nFROM alpine\nARG SSH_PUBLIC_KEY GPG_KEY_FILE KEY_VERSION AWS_SECRET_ACCESS_KEY\nENV MY_KEY_ID=1 PASSWORD=x KEYS=1 APIKEY=1 PUBLIC_AUTH_TOKEN=1\n")
        .into_iter()
        .filter(|w| w.rule == "SecretsUsedInArgOrEnv")
        .map(|w| w.message)
        .collect();
    assert_eq!(
        flagged,
        [
            "Do not use ARG or ENV instructions for sensitive data (ARG \"AWS_SECRET_ACCESS_KEY\")",
            "Do not use ARG or ENV instructions for sensitive data (ENV \"MY_KEY_ID\")",
            "Do not use ARG or ENV instructions for sensitive data (ENV \"PASSWORD\")",
            "Do not use ARG or ENV instructions for sensitive data (ENV \"APIKEY\")",
        ]
    );
}

#[test]
fn expose_rules() {
    assert_eq!(
        messages("FROM alpine\nEXPOSE 80/TCP 127.0.0.1:8080:80 9000:90/udp 53/udp $P/UDP\n"),
        [
            (
                "ExposeInvalidFormat",
                2,
                "EXPOSE instruction should not define an IP address or host-port mapping, found '127.0.0.1:8080:80'".to_string()
            ),
            (
                "ExposeProtoCasing",
                2,
                "Defined protocol '80/TCP' in EXPOSE instruction should be lowercase".to_string()
            ),
            (
                "ExposeInvalidFormat",
                2,
                "EXPOSE instruction should not define an IP address or host-port mapping, found '9000:90/udp'".to_string()
            ),
        ]
    );
}

#[test]
fn stage_state_carries_over_to_stages_built_on_it() {
    // SHELL set in the base stage: no JSONArgsRecommended in the child; only the first WORKDIR
    // of a chain of stages is checked; global ARGs do not count for instruction casing.
    assert_eq!(
        rules(
            "arg V=1\nFROM alpine AS base\nSHELL [\"/bin/bash\", \"-c\"]\nWORKDIR app\nWORKDIR more\nFROM base\nCMD echo hi\nWORKDIR again\nFROM alpine\nCMD echo hi\n"
        ),
        [("WorkdirRelativePath", 4), ("JSONArgsRecommended", 10)]
    );
}

#[test]
fn instruction_rules() {
    let src = "FROM a\nMAINTAINER me\nWORKDIR app\nENV K v\nLABEL a b\nARG DB_PASSWORD\nENV API_TOKEN=x\nCMD a\nCMD [\"b\"]\nENTRYPOINT run\nSHELL [\"/bin/bash\", \"-c\"]\nENTRYPOINT run2\n";
    assert_eq!(
        rules(src),
        [
            ("MaintainerDeprecated", 2),
            ("WorkdirRelativePath", 3),
            ("LegacyKeyValueFormat", 4),
            ("LegacyKeyValueFormat", 5),
            ("SecretsUsedInArgOrEnv", 6),
            ("SecretsUsedInArgOrEnv", 7),
            ("JSONArgsRecommended", 8),
            ("MultipleInstructionsDisallowed", 8),
            ("JSONArgsRecommended", 10),
            ("MultipleInstructionsDisallowed", 10),
        ]
    );
}

#[test]
fn casing_and_empty_continuation() {
    assert_eq!(
        rules("FROM a\nrun x \\\n\n  y\nRUN z\n"),
        [
            ("NoEmptyContinuation", 2),
            ("ConsistentInstructionCasing", 2)
        ]
    );
}

#[test]
fn check_directive() {
    assert!(rules("# check=skip=all\nFROM a as B\nMAINTAINER x\n").is_empty());
    assert_eq!(
        rules("# check=skip=FromAsCasing,StageNameCasing\nFROM a as B\nMAINTAINER x\n"),
        [("MaintainerDeprecated", 3)]
    );
    let c = CheckConfig::parse("skip=A,B;error=true;experimental=all").unwrap();
    assert_eq!(
        (c.skip.len(), c.error, c.experimental.clone()),
        (2, true, vec!["all".to_string()])
    );
    assert_eq!(
        CheckConfig::parse("bogus").unwrap_err(),
        "invalid check option \"bogus\""
    );
    assert_eq!(
        CheckConfig::parse("nope=1").unwrap_err(),
        "invalid check option \"nope=1\""
    );
    assert_eq!(
        CheckConfig::parse("error=maybe").unwrap_err(),
        "failed to parse check option \"error=maybe\": strconv.ParseBool: parsing \"maybe\": invalid syntax"
    );
    let ast = hoist_parser::parse(b"# check=error=maybe\nFROM a\n", "df").unwrap();
    let df = hoist_parser::parse_dockerfile(&ast).unwrap();
    assert_eq!(lint(&ast, &df).unwrap_err().start_line, 1);
}

#[test]
fn undefined_vars_know_base_and_stage_environments() {
    use hoist_parser::lint::{BaseEnv, undefined_vars};
    let src = "ARG IMG=alpine\nFROM $IMG AS base\nENV A=1 B=$A\nWORKDIR /$FROM_IMAGE/$PATH\nFROM base\nARG C\nCOPY $A$C /${D:-d}\nUSER $a\nFROM scratch\nLABEL x=$A\n";
    let ast = hoist_parser::parse(src.as_bytes(), "Dockerfile").unwrap();
    let df = hoist_parser::parse_dockerfile(&ast).unwrap();
    let found = |env: &dyn Fn(usize) -> BaseEnv| -> Vec<(usize, String)> {
        undefined_vars(&df, env)
            .into_iter()
            .map(|w| (w.line, w.message))
            .collect()
    };
    // The base image's environment is unknown: only PATH is assumed.
    assert_eq!(
        found(&|_| BaseEnv::Unknown),
        [
            (3, "Usage of undefined variable '$A'".to_string()),
            (4, "Usage of undefined variable '$FROM_IMAGE'".to_string()),
            (
                8,
                "Usage of undefined variable '$a' (did you mean $A?)".to_string()
            ),
            (10, "Usage of undefined variable '$A'".to_string()),
        ]
    );
    // Known: a variable the base image defines is not undefined; a stage on a stage inherits ENV.
    let with_base = found(&|i| match i {
        0 => BaseEnv::Known(vec!["FROM_IMAGE=/x".to_string()]),
        _ => BaseEnv::Unknown,
    });
    assert_eq!(with_base.len(), 3, "{with_base:?}");
    assert!(!with_base.iter().any(|(l, _)| *l == 4), "{with_base:?}");
    // Stages a build skips are not reported (their ENV still passes on).
    let skipped = found(&|i| match i {
        0 => BaseEnv::Skip,
        _ => BaseEnv::Unknown,
    });
    let lines: Vec<usize> = skipped.iter().map(|(l, _)| *l).collect();
    assert_eq!(lines, [8, 10]);
}
