//! Instruction layer: every flag of every instruction, its accepted values and BuildKit's errors.

use hoist_parser::chmod::parse_chmod;
use hoist_parser::instructions::{
    Healthcheck, Instruction, MountType, NetworkMode, SecurityMode, Sharing, ShellOrExec,
    parse_go_duration, parse_mount,
};
use hoist_parser::{Dockerfile, parse_and_validate};

fn ok(src: &str) -> Dockerfile {
    parse_and_validate(src.as_bytes(), "Dockerfile").unwrap_or_else(|e| panic!("{src:?}: {e}"))
}

/// The error message for a one-instruction stage body.
fn err(body: &str) -> String {
    let src = format!("FROM busybox\n{body}\n");
    let e = parse_and_validate(src.as_bytes(), "Dockerfile").expect_err(body);
    assert_eq!(e.start_line, 2, "{body}: {e}");
    e.message
}

fn first(src: &str) -> Instruction {
    ok(&format!("FROM busybox\n{src}\n")).stages[0].commands[0]
        .instruction
        .clone()
}

#[test]
fn stages_and_global_args() {
    let df = ok(
        "ARG V=1\nARG B\nFROM --platform=$BUILDPLATFORM alpine:$V AS Build\nRUN x\nFROM build\nCOPY --from=build /a /b\n",
    );
    assert_eq!(df.global_arg_decls().len(), 2);
    assert_eq!(df.global_arg_decls()[0].default.as_deref(), Some("1"));
    assert_eq!(df.stages.len(), 2);
    let s = &df.stages[0];
    assert_eq!(
        (s.name.as_deref(), s.base.as_str()),
        (Some("build"), "alpine:$V")
    );
    assert_eq!(s.platform.as_deref(), Some("$BUILDPLATFORM"));
    assert_eq!((s.source.start_line, s.commands.len()), (3, 1));
    assert_eq!(df.stage("BUILD").unwrap().index, 0);
    assert_eq!(df.stage("1").unwrap().base, "build");
}

#[test]
fn from_errors() {
    let e = |s: &str| parse_and_validate(s.as_bytes(), "df").unwrap_err().message;
    assert_eq!(
        e("FROM a b\n"),
        "FROM requires either one or three arguments"
    );
    assert_eq!(
        e("FROM a AS 1x\n"),
        "invalid name for build stage: \"1x\", name can't start with a number or contain symbols"
    );
    assert_eq!(
        e("FROM --platfrm=x a\n"),
        "unknown flag: --platfrm (did you mean platform?)"
    );
    assert_eq!(
        e("FROM --platform a\n"),
        "missing a value on flag: --platform"
    );
    assert_eq!(e("RUN x\nFROM a\n"), "no build stage in current context");
    assert_eq!(e("ARG x\n"), "dockerfile contains no stages to build");
    let err = parse_and_validate(b"FROM a\nFROOM b\n", "my.Dockerfile").unwrap_err();
    assert_eq!(
        err.to_string(),
        "my.Dockerfile:2: unknown instruction: FROOM (did you mean FROM?)"
    );
}

#[test]
fn run_flags() {
    let Instruction::Run {
        mounts,
        network,
        security,
        cmd,
        ..
    } = first(
        "RUN --mount=type=cache,target=/root/.cache --mount=type=secret,id=tok --network=none --security=insecure make",
    )
    else {
        panic!()
    };
    assert_eq!(mounts.len(), 2);
    assert_eq!(
        (network, security),
        (NetworkMode::None, SecurityMode::Insecure)
    );
    assert_eq!(cmd, ShellOrExec::Shell("make".into()));
    let Instruction::Run { network, cmd, .. } = first("RUN --network=host [\"a\", \"b\"]") else {
        panic!()
    };
    assert_eq!(
        (network, cmd),
        (
            NetworkMode::Host,
            ShellOrExec::Exec(vec!["a".into(), "b".into()])
        )
    );
    assert_eq!(
        err("RUN --network=bridge x"),
        "invalid network mode \"bridge\""
    );
    assert_eq!(
        err("RUN --security=root x"),
        "security \"root\" is not valid"
    );
    assert_eq!(
        err("RUN --network=none --network=host x"),
        "duplicate flag specified: --network"
    );
    assert_eq!(err("RUN --mount x"), "missing a value on flag: --mount");
    assert_eq!(
        err("RUN --mounts=type=bind x"),
        "unknown flag: --mounts (did you mean mount?)"
    );
    assert_eq!(err("RUN --frobnicate x"), "unknown flag: --frobnicate");
    assert_eq!(
        err("RUN --mount=type=bind,from=$X/y x"),
        "'from' doesn't support variable expansion, define alias stage instead"
    );
    assert_eq!(
        err("RUN --mount=type=cache,rox x"),
        "invalid field 'rox' must be a key=value pair"
    );
    assert!(
        matches!(first("RUN --device=vendor.com/gpu=all x"), Instruction::Run { devices, .. } if devices.len() == 1)
    );
}

fn mount(v: &str) -> Result<hoist_parser::instructions::Mount, String> {
    let id = |s: &str| Ok(s.to_string());
    parse_mount(v, Some(&id))
}

#[test]
fn mount_options_and_errors() {
    let m = mount("type=cache,target=/c,id=x,sharing=locked,mode=0755,uid=1,gid=2").unwrap();
    assert_eq!(m.mount_type, MountType::Cache);
    assert_eq!(
        (m.sharing, m.mode, m.uid, m.gid),
        (Some(Sharing::Locked), Some(0o755), Some(1), Some(2))
    );
    assert!(!m.read_only);
    let m = mount("target=/src,from=build,source=/out,rw").unwrap();
    assert_eq!(
        (m.mount_type, m.read_only, m.from.as_deref()),
        (MountType::Bind, false, Some("build"))
    );
    assert!(mount("type=bind,target=/x").unwrap().read_only);
    let m = mount("type=tmpfs,target=/t,size=64m").unwrap();
    assert_eq!(m.size, Some(64 << 20));
    let m = mount("type=secret,id=aws,target=/root/.aws/credentials,required").unwrap();
    assert!(m.required && m.read_only);
    let m = mount("type=secret,id=tok,env=TOKEN").unwrap();
    assert_eq!(m.env.as_deref(), Some("TOKEN"));
    let m = mount("type=ssh,required=true,mode=0600").unwrap();
    assert!(m.required);
    let m = mount("\"type=bind\",\"target=/a,b\"").unwrap();
    assert_eq!(m.target.as_deref(), Some("/a,b"));

    let cases = [
        ("type=volume", "unsupported mount type \"volume\""),
        (
            "type=cahce",
            "unsupported mount type \"cahce\" (did you mean cache?)",
        ),
        (
            "type=cache,sharing=exclusive",
            "unsupported sharing value \"exclusive\"",
        ),
        (
            "type=bind,sharing=shared",
            "invalid cache sharing set for bind mount",
        ),
        (
            "type=bind,size=1m",
            "unexpected key 'size' for mount type 'bind'",
        ),
        ("type=tmpfs,size=lots", "invalid value for size: lots"),
        (
            "type=bind,mode=0755",
            "mode not allowed for \"bind\" type mounts",
        ),
        (
            "type=tmpfs,uid=1",
            "uid not allowed for \"tmpfs\" type mounts",
        ),
        ("type=cache,mode=999", "invalid value 999 for mode"),
        ("type=cache,uid=me", "invalid value me for uid"),
        ("type=cache,gid=-1", "invalid value -1 for gid"),
        (
            "type=bind,required",
            "unexpected key 'required' for mount type 'bind'",
        ),
        ("type=bind,ro=maybe", "invalid value for ro: maybe"),
        (
            "type=secret,from=x,id=a",
            "secret mount should not have a from",
        ),
        (
            "type=secret",
            "invalid secret mount. one of source, target required",
        ),
        (
            "type=secret,source=a,id=b",
            "both source and id can't be set",
        ),
        ("type=ssh,source=x", "ssh does not support source"),
        ("type=bind,target=/", "invalid mount target \"/\""),
        (
            "type=bind,taget=/x",
            "unexpected key 'taget' in 'taget=/x' (did you mean target?)",
        ),
        (
            "type=bind,bogus",
            "invalid field 'bogus' must be a key=value pair",
        ),
    ];
    for (v, want) in cases {
        assert_eq!(mount(v).unwrap_err(), want, "{v}");
    }
    assert!(
        mount("type=bind,\"x")
            .unwrap_err()
            .starts_with("failed to parse csv mounts")
    );
}

#[test]
fn copy_and_add_flags() {
    let Instruction::Copy(c) = first(
        "COPY --from=build --chown=1000:1000 --chmod=0644 --link --parents --exclude=*.md --exclude=.git a b /dst/",
    ) else {
        panic!()
    };
    assert_eq!(c.from.as_deref(), Some("build"));
    assert_eq!(
        (c.chown.as_deref(), c.chmod.as_deref()),
        (Some("1000:1000"), Some("0644"))
    );
    assert!(c.link && c.parents);
    assert_eq!(c.exclude, ["*.md", ".git"]);
    assert_eq!(
        (c.sources.clone(), c.dest.as_str()),
        (vec!["a".to_string(), "b".to_string()], "/dst/")
    );
    let Instruction::Add(a) = first(
        "ADD --checksum=sha256:abc --keep-git-dir=false --unpack=true --link=false https://x/y.tar /y",
    ) else {
        panic!()
    };
    assert_eq!(
        (a.checksum.as_deref(), a.keep_git_dir, a.unpack, a.link),
        (Some("sha256:abc"), Some(false), Some(true), false)
    );
    assert_eq!(
        err("COPY --checksum=sha256:x a b"),
        "unknown flag: --checksum"
    );
    assert_eq!(
        err("COPY --keep-git-dir a b"),
        "unknown flag: --keep-git-dir"
    );
    assert_eq!(err("ADD --from=x a b"), "unknown flag: --from");
    assert_eq!(err("ADD --parents a b"), "unknown flag: --parents");
    assert_eq!(
        err("COPY --link=yes a b"),
        "expecting boolean value for flag --link, not: yes"
    );
    assert_eq!(err("COPY --link= a b"), "missing a value on flag: --link");
    assert_eq!(err("COPY --chown a b"), "missing a value on flag: --chown");
    assert_eq!(
        err("COPY --bogus a"),
        "COPY requires at least two arguments, but only one was provided. Destination could not be determined"
    );
    assert_eq!(
        err("ADD a"),
        "ADD requires at least two arguments, but only one was provided. Destination could not be determined"
    );
    assert_eq!(
        err("COPY a <<EOF\nx\nEOF"),
        "COPY cannot accept a heredoc as a destination"
    );
    let Instruction::Copy(c) = first("COPY --chown= [\"a b\", \"/c d/\"]") else {
        panic!()
    };
    assert!(c.json);
    assert_eq!((c.chown.as_deref(), c.dest.as_str()), (Some(""), "/c d/"));
}

#[test]
fn copy_heredoc_sources_become_inline_files() {
    let Instruction::Copy(c) = first("COPY <<-EOF <<'RAW' /etc/\n\thello $NAME\n\tEOF\n$NOT\nRAW")
    else {
        panic!()
    };
    assert!(c.sources.is_empty());
    assert_eq!(c.inline.len(), 2);
    assert_eq!(
        (
            c.inline[0].name.as_str(),
            c.inline[0].data.as_str(),
            c.inline[0].expand
        ),
        ("EOF", "hello $NAME\n", true)
    );
    assert_eq!(
        (c.inline[1].data.as_str(), c.inline[1].expand),
        ("$NOT\n", false)
    );
}

#[test]
fn chmod_values() {
    for v in [
        "0",
        "644",
        "0755",
        "7777",
        "u=rwX,go=rX",
        "+x",
        "a-w",
        "g=u-w",
    ] {
        assert!(parse_chmod(v).unwrap().is_some(), "{v}");
    }
    assert_eq!(parse_chmod(""), Ok(None), "--chmod= sets nothing");
    for v in ["10000", "8"] {
        assert_eq!(
            parse_chmod(v).unwrap_err(),
            format!(
                "invalid chmod parameter: '{v}'. it should be octal string and between 0 and 07777"
            )
        );
    }
    for v in ["rwx", "u=q"] {
        assert!(
            parse_chmod(v).unwrap_err().contains("invalid syntax"),
            "{v}"
        );
    }
}

#[test]
fn healthcheck_flags() {
    let Instruction::Healthcheck(Healthcheck::Cmd {
        test,
        interval_ns,
        timeout_ns,
        start_period_ns,
        start_interval_ns,
        retries,
    }) = first(
        "HEALTHCHECK --interval=30s --timeout=1m30s --start-period=500ms --start-interval=2s --retries=3 CMD curl -f http://localhost/",
    )
    else {
        panic!()
    };
    assert_eq!(test, ["CMD-SHELL", "curl -f http://localhost/"]);
    assert_eq!(
        (
            interval_ns,
            timeout_ns,
            start_period_ns,
            start_interval_ns,
            retries
        ),
        (
            30_000_000_000,
            90_000_000_000,
            500_000_000,
            2_000_000_000,
            3
        )
    );
    let Instruction::Healthcheck(Healthcheck::Cmd { test, .. }) =
        first("HEALTHCHECK cmd [\"true\"]")
    else {
        panic!()
    };
    assert_eq!(test, ["CMD", "true"]);
    assert_eq!(
        first("HEALTHCHECK --whatever NONE"),
        Instruction::Healthcheck(Healthcheck::None)
    );
    assert_eq!(
        err("HEALTHCHECK"),
        "HEALTHCHECK requires at least one argument"
    );
    assert_eq!(
        err("HEALTHCHECK NONE x"),
        "HEALTHCHECK NONE takes no arguments"
    );
    assert_eq!(
        err("HEALTHCHECK CMD"),
        "Missing command after HEALTHCHECK CMD"
    );
    assert_eq!(
        err("HEALTHCHECK CONNECT x"),
        "Unknown type \"CONNECT\" in HEALTHCHECK (try CMD)"
    );
    assert_eq!(
        err("HEALTHCHECK --interval=1us CMD x"),
        "Interval \"interval\" cannot be less than 1ms"
    );
    assert_eq!(
        err("HEALTHCHECK --timeout=abc CMD x"),
        "time: invalid duration \"abc\""
    );
    assert_eq!(
        err("HEALTHCHECK --retries=-1 CMD x"),
        "--retries cannot be negative (-1)"
    );
    assert_eq!(
        err("HEALTHCHECK --retries=x CMD x"),
        "strconv.ParseInt: parsing \"x\": invalid syntax"
    );
    assert_eq!(
        err("HEALTHCHECK --intervall=1s CMD x"),
        "unknown flag: --intervall (did you mean interval?)"
    );
    assert_eq!(parse_go_duration("1h2m3.5s"), Ok(3_723_500_000_000));
    assert_eq!(parse_go_duration("0"), Ok(0));
    assert_eq!(
        parse_go_duration("5").unwrap_err(),
        "time: missing unit in duration \"5\""
    );
    assert_eq!(
        parse_go_duration("5d").unwrap_err(),
        "time: unknown unit \"d\" in duration \"5d\""
    );
}

#[test]
fn key_value_instructions() {
    let Instruction::Env(kv) = first("ENV A=1 B=\"two words\"") else {
        panic!()
    };
    assert_eq!(
        (kv[1].key.as_str(), kv[1].value.as_str(), kv[1].legacy),
        ("B", "\"two words\"", false)
    );
    let Instruction::Env(kv) = first("ENV LEGACY some value") else {
        panic!()
    };
    assert!(kv[0].legacy);
    assert_eq!(kv[0].value, "some value");
    assert_eq!(err("ENV =x"), "ENV names can not be blank");
    assert_eq!(err("LABEL =x"), "LABEL names can not be blank");
    assert_eq!(err("ENV"), "ENV requires at least one argument");
    assert_eq!(err("LABEL"), "LABEL requires at least one argument");
    assert_eq!(err("ENV --x A=b"), "unknown flag: --x");
    let Instruction::Arg(a) = first("ARG --ignored A B=2 C=\"x y\"") else {
        panic!()
    };
    assert_eq!(a.len(), 3);
    assert_eq!(
        (a[0].default.clone(), a[2].default.as_deref()),
        (None, Some("\"x y\""))
    );
    assert_eq!(err("ARG =x"), "ARG names can not be blank");
    assert_eq!(err("ARG"), "ARG requires at least one argument");
}

#[test]
fn single_argument_instructions() {
    assert_eq!(first("USER app:app"), Instruction::User("app:app".into()));
    assert_eq!(
        first("WORKDIR /srv/app"),
        Instruction::Workdir("/srv/app".into())
    );
    assert_eq!(
        first("STOPSIGNAL --x SIGTERM"),
        Instruction::StopSignal("SIGTERM".into())
    );
    assert_eq!(
        first("MAINTAINER me <me@x>"),
        Instruction::Maintainer("me <me@x>".into())
    );
    for k in ["USER", "WORKDIR", "STOPSIGNAL", "MAINTAINER"] {
        assert_eq!(err(k), format!("{k} requires exactly one argument"));
    }
    for k in ["USER", "WORKDIR", "MAINTAINER"] {
        assert_eq!(err(&format!("{k} --x v")), "unknown flag: --x");
    }
}

#[test]
fn list_instructions() {
    assert_eq!(
        first("EXPOSE 80 443/tcp"),
        Instruction::Expose(vec!["80".into(), "443/tcp".into()])
    );
    assert_eq!(
        first("VOLUME [\"/a\", \"/b\"]"),
        Instruction::Volume(vec!["/a".into(), "/b".into()])
    );
    assert_eq!(err("EXPOSE"), "EXPOSE requires at least one argument");
    assert_eq!(err("EXPOSE --p 80"), "unknown flag: --p");
    assert_eq!(err("VOLUME"), "VOLUME requires at least one argument");
    assert_eq!(
        err("VOLUME [\"/a\", \" \"]"),
        "VOLUME specified can not be an empty string"
    );
    assert_eq!(err("VOLUME --v /a"), "unknown flag: --v");
}

#[test]
fn cmd_entrypoint_shell() {
    assert_eq!(
        first("CMD [\"a\"]"),
        Instruction::Cmd(ShellOrExec::Exec(vec!["a".into()]))
    );
    assert_eq!(first("CMD []"), Instruction::Cmd(ShellOrExec::Exec(vec![])));
    assert_eq!(
        first("ENTRYPOINT exec app"),
        Instruction::Entrypoint(ShellOrExec::Shell("exec app".into()))
    );
    assert_eq!(
        first("SHELL [\"/bin/bash\", \"-c\"]"),
        Instruction::Shell(vec!["/bin/bash".into(), "-c".into()])
    );
    assert_eq!(
        err("SHELL /bin/bash -c"),
        "SHELL requires the arguments to be in JSON form"
    );
    assert_eq!(err("SHELL []"), "SHELL requires at least one argument");
    assert_eq!(err("CMD --x a"), "unknown flag: --x");
    assert_eq!(err("ENTRYPOINT --x a"), "unknown flag: --x");
    assert_eq!(err("SHELL --x [\"a\"]"), "unknown flag: --x");
}

#[test]
fn onbuild_rules() {
    let Instruction::OnBuild {
        expression,
        trigger,
    } = first("ONBUILD RUN <<EOF\necho hi\nEOF")
    else {
        panic!()
    };
    assert_eq!(expression, "RUN <<EOF\necho hi\nEOF");
    assert_eq!(trigger.keyword, "RUN");
    assert_eq!(
        err("ONBUILD ONBUILD RUN x"),
        "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"
    );
    assert_eq!(
        err("ONBUILD FROM x"),
        "FROM isn't allowed as an ONBUILD trigger"
    );
    assert_eq!(
        err("ONBUILD maintainer x"),
        "MAINTAINER isn't allowed as an ONBUILD trigger"
    );
    assert_eq!(err("ONBUILD"), "ONBUILD requires at least one argument");
    assert_eq!(err("ONBUILD --x RUN a"), "unknown flag: --x");
}

#[test]
fn locations_are_kept() {
    let df = ok("FROM a\n\nRUN a \\\n  b\nCOPY <<EOF /x\nhi\nEOF\n");
    let c: Vec<(usize, usize)> = df.stages[0]
        .commands
        .iter()
        .map(|c| (c.source.start_line, c.source.end_line))
        .collect();
    assert_eq!(c, [(3, 4), (5, 7)]);
    assert_eq!(df.stages[0].commands[0].source.original, "RUN a   b");
}

#[test]
fn expansion_helpers() {
    use hoist_parser::instructions::{expand, expand_heredoc, expand_words};
    let env = [("NAME", "world"), ("P", "80 443")];
    assert_eq!(
        expand("\"hello $NAME\"", &env, '\\').unwrap(),
        "hello world"
    );
    assert_eq!(
        expand_words("$P 8080", &env, '\\').unwrap(),
        ["80", "443", "8080"]
    );
    assert_eq!(
        expand_heredoc("'$NAME' \"x\"\n", &env, '\\').unwrap(),
        "'world' \"x\"\n"
    );
}

#[test]
fn onbuild_trigger_round_trip() {
    use hoist_parser::instructions::parse_onbuild_trigger;
    let Instruction::OnBuild { expression, .. } = first("ONBUILD COPY <<EOF /x\nhi $N\nEOF") else {
        panic!()
    };
    let cmd = parse_onbuild_trigger(&expression, "onbuild").unwrap();
    let Instruction::Copy(c) = cmd.instruction else {
        panic!()
    };
    assert_eq!(
        (c.inline[0].data.as_str(), c.dest.as_str()),
        ("hi $N\n", "/x")
    );
    let e = parse_onbuild_trigger("RUN a\nRUN b", "onbuild").unwrap_err();
    assert_eq!(e.message, "onbuild trigger should be a single expression");
    let e = parse_onbuild_trigger("RUN --bogus a", "onbuild").unwrap_err();
    assert_eq!(e.message, "unknown flag: --bogus");
    let e = parse_onbuild_trigger("FROM x", "onbuild").unwrap_err();
    assert_eq!(e.message, "FROM isn't allowed as an ONBUILD trigger");
}
