use super::copy::source_of;
use super::*;
use crate::plan::{ExecMount, Input, Op, Source as CopySource};
use hoist_image::ImageConfig;
use hoist_parser::chmod::Chmod;

fn opts() -> FrontendOptions {
    FrontendOptions {
        platform: "linux/amd64".into(),
        ..FrontendOptions::new("Dockerfile")
    }
}

fn plan(text: &str, o: &FrontendOptions) -> Result<Plan> {
    let df = hoist_parser::parse_and_validate(text.as_bytes(), "Dockerfile").unwrap();
    lower(&df, o, &mut |n: &str, _: &hoist_image::Platform| {
        bail!("no image {n} in this test")
    })
    .map(|l| l.plan)
}

#[test]
fn only_needed_stages_are_lowered() {
    let df =
        "ARG X=1\nFROM scratch AS a\nFROM scratch AS b\nCOPY --from=a /x /x\nFROM scratch AS c\n";
    let p = plan(df, &opts()).unwrap();
    assert_eq!(p.chains.len(), 1, "only c");
    let mut o = opts();
    o.target = Some("B".into());
    let p = plan(df, &o).unwrap();
    assert_eq!(p.chains.len(), 2);
    assert_eq!(p.chains[p.target].label, "b");
    match &p.chains[p.target].steps[0].op {
        Op::File(f) => assert_eq!(f.from, Input::Chain(0)),
        other => panic!("{other:?}"),
    }
    // A mount's `from=` is a dependency too.
    let df = "FROM scratch AS a\nFROM scratch AS b\nRUN --mount=type=bind,from=a,target=/a true\n";
    assert_eq!(plan(df, &opts()).unwrap().chains.len(), 2);
    let e = plan(
        "FROM scratch AS a\nCOPY --from=b /x /x\nFROM scratch AS b\n",
        &{
            let mut o = opts();
            o.target = Some("a".into());
            o
        },
    )
    .unwrap_err();
    assert!(
        format!("{e:#}").contains(
            "cannot copy from stage \"b\", it needs to be defined before current stage \"a\""
        ),
        "{e:#}"
    );
}

#[test]
fn named_contexts_replace_stages_and_sources() {
    let mut o = opts();
    o.contexts.insert("tools".into(), NamedInput::Local);
    o.contexts.insert("empty".into(), NamedInput::Scratch);
    o.contexts.insert("src".into(), NamedInput::Local);
    let df = "FROM scratch AS tools\nRUN false\nFROM scratch\nCOPY --from=tools /a /a\nCOPY --from=empty /c /c\nRUN --mount=from=src,target=/m true\n";
    let p = plan(df, &o).unwrap();
    assert_eq!(p.chains.len(), 2);
    // The replaced stage runs none of its instructions: it is the context's files.
    let tools = &p.chains[0];
    assert_eq!(tools.steps.len(), 1);
    match &tools.steps[0].op {
        Op::File(f) => {
            assert_eq!(f.from, Input::Local("tools".into()));
            assert_eq!(
                (f.sources.as_slice(), f.dest.as_str()),
                (&[CopySource::Path(".".into())][..], "/")
            );
        }
        other => panic!("{other:?}"),
    }
    let last = &p.chains[1];
    let froms: Vec<Input> = last
        .steps
        .iter()
        .map(|s| match &s.op {
            Op::File(f) => f.from.clone(),
            Op::Exec(e) => match &e.mounts[0] {
                ExecMount::Bind { from, .. } => from.clone(),
                other => panic!("{other:?}"),
            },
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        froms,
        [
            Input::Chain(0),
            Input::Inline(Vec::new()),
            Input::Local("src".into())
        ]
    );
    // `FROM src` starts from the directory.
    let p = plan("FROM src\nRUN true\n", &o).unwrap();
    assert_eq!(p.chains[0].steps.len(), 2);
    assert_eq!(
        p.chains[0].history[0].created_by.as_deref(),
        Some("local source for src")
    );
}

#[test]
fn import_changes_go_through_the_frontend() {
    let mut c = ImageConfig::default();
    let changes: Vec<String> = [
        "ENV A=1 B=two",
        "ENV C=${A}-$B",
        "CMD echo $A",
        "WORKDIR /srv",
        "WORKDIR app",
        "EXPOSE 80 53/udp",
        "LABEL k=v",
        "USER nobody",
        "HEALTHCHECK --interval=5s CMD true",
        "ONBUILD RUN make",
        "STOPSIGNAL SIGTERM",
        "VOLUME /data",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    apply_changes(&mut c, &changes).unwrap();
    let cc = c.config.unwrap();
    assert_eq!(
        cc.env.unwrap(),
        ["A=1", "B=two", "C=1-two"],
        "no PATH is added"
    );
    assert_eq!(cc.cmd.unwrap(), ["/bin/sh", "-c", "echo $A"]);
    assert_eq!(cc.working_dir.as_deref(), Some("/srv/app"));
    let ports: Vec<String> = cc.exposed_ports.unwrap().into_keys().collect();
    assert_eq!(ports, ["53/udp", "80/tcp"]);
    assert_eq!(cc.labels.unwrap()["k"], "v");
    assert_eq!(cc.user.as_deref(), Some("nobody"));
    assert_eq!(cc.healthcheck.unwrap().interval, Some(5_000_000_000));
    assert_eq!(cc.on_build.unwrap(), ["RUN make"]);
    assert_eq!(cc.stop_signal.as_deref(), Some("SIGTERM"));
    assert!(cc.volumes.unwrap().contains_key("/data"));
    assert!(c.history.is_empty());
    // ENTRYPOINT resets a CMD set before this build step, as in Docker.
    let mut c = ImageConfig::default();
    apply_changes(&mut c, &["CMD [\"a\"]".into()]).unwrap();
    apply_changes(&mut c, &["ENTRYPOINT [\"e\"]".into()]).unwrap();
    assert_eq!(c.config.as_ref().unwrap().cmd, None);
    let e = |ch: &str| {
        apply_changes(&mut ImageConfig::default(), &[ch.to_string()])
            .unwrap_err()
            .to_string()
    };
    assert_eq!(e("RUN make"), "run is not a valid change command");
    assert_eq!(e("COPY a b"), "copy is not a valid change command");
    assert_eq!(e("FROM x"), "from is not a valid change command");
    assert!(
        e("EXPOSE 80/xyz").contains("invalid proto: xyz"),
        "{}",
        e("EXPOSE 80/xyz")
    );
    assert!(e("ENV").contains("ENV"), "{}", e("ENV"));
}

#[test]
fn args_env_and_expansion() {
    let df = "ARG V=global\nFROM scratch\nARG V\nARG W=${V}-w\nENV A=$W B=${A:-unset}\nWORKDIR /x\nWORKDIR y\nRUN echo hi\n";
    let mut o = opts();
    o.build_args.insert("V".into(), "cli".into());
    let p = plan(df, &o).unwrap();
    let c = &p.chains[0];
    let env = c.config.config.as_ref().unwrap().env.clone().unwrap();
    assert!(env.contains(&"A=cli-w".to_string()), "{env:?}");
    // Pairs on one ENV line see the environment from before the line.
    assert!(env.contains(&"B=unset".to_string()), "{env:?}");
    let exec = c
        .steps
        .iter()
        .find_map(|s| match &s.op {
            Op::Exec(e) => Some(e),
            _ => None,
        })
        .unwrap();
    assert_eq!(exec.cwd, "/x/y");
    assert_eq!(exec.args, ["/bin/sh", "-c", "echo hi"]);
    assert!(exec.env.contains(&"V=cli".to_string()));
    let run = c
        .history
        .iter()
        .find(|h| h.created_by.as_deref().unwrap().starts_with("RUN"))
        .unwrap();
    assert_eq!(
        run.created_by.as_deref(),
        Some("RUN |2 V=cli W=cli-w /bin/sh -c echo hi # buildkit")
    );
    assert!(
        c.history
            .iter()
            .all(|h| h.comment.as_deref() == Some("buildkit.dockerfile.v0"))
    );
}

#[test]
fn workdir_is_a_step_owned_by_the_user() {
    let df = "FROM scratch\nWORKDIR /\nUSER app:staff\nWORKDIR a/b\nWORKDIR /a/b\n";
    let c = &plan(df, &opts()).unwrap().chains[0];
    let dirs: Vec<(&str, Option<&str>)> = c
        .steps
        .iter()
        .map(|s| match &s.op {
            Op::Mkdir(m) => (m.path.as_str(), m.user.as_deref()),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        dirs,
        [("/a/b", Some("app:staff")), ("/a/b", Some("app:staff"))]
    );
    let layers: Vec<(&str, bool)> = c
        .history
        .iter()
        .map(|h| (h.created_by.as_deref().unwrap(), h.empty_layer))
        .collect();
    assert_eq!(
        layers,
        [
            ("WORKDIR /", true),
            ("USER app:staff", true),
            ("WORKDIR /a/b", false),
            ("WORKDIR /a/b", false)
        ]
    );
    assert_eq!(c.steps[0].display, "WORKDIR a/b");
}

#[test]
fn copy_flags_and_history() {
    let df = "FROM scratch\nARG OWNER=1:2 DIR=/dst\nCOPY --chown=$OWNER --chmod=0640 a $DIR/\n";
    let p = plan(df, &opts()).unwrap();
    let c = &p.chains[0];
    match &c.steps[0].op {
        Op::File(f) => {
            assert_eq!(f.chown.as_deref(), Some("1:2"));
            assert_eq!(f.chmod, Some(Chmod::Octal(0o640)));
            assert_eq!(f.dest, "/dst/");
            assert_eq!(f.from, Input::Context);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        c.history.last().unwrap().created_by.as_deref(),
        Some("COPY --chown=1:2 --chmod=0640 a /dst/ # buildkit")
    );
    let e = plan("FROM scratch\nCOPY https://example.com/x /x\n", &opts()).unwrap_err();
    assert!(format!("{e:#}").contains("source can't be a URL for COPY"));
    let e = plan("FROM scratch\nRUN --device=/dev/null true\n", &opts()).unwrap_err();
    assert!(format!("{e:#}").contains("unknown flag: --device"));
}

#[test]
fn conversion_errors() {
    let e = plan("FROM scratch\nEXPOSE 80/xyz\n", &opts()).unwrap_err();
    assert!(format!("{e:#}").contains("invalid proto: xyz"), "{e:#}");
    let e = plan("FROM scratch\nSTOPSIGNAL NOPE\n", &opts()).unwrap_err();
    assert!(format!("{e:#}").contains("invalid signal: NOPE"));
    let e = plan("FROM scratch\nCOPY --chmod=999 a b\n", &opts()).unwrap_err();
    assert!(format!("{e:#}").contains("invalid chmod parameter: '999'"));
    let e = plan("FROM scratch\nCOPY --chmod=u=q a b\n", &opts()).unwrap_err();
    assert!(format!("{e:#}").contains("invalid chmod parameter: 'u=q': invalid syntax"));
    // The error carries the numbered excerpt of its instruction.
    let text = "FROM scratch\nARG P=80/xyz\nEXPOSE $P\n";
    let o = FrontendOptions {
        text: text.into(),
        ..opts()
    };
    let e = plan(text, &o).unwrap_err();
    let l = e.downcast_ref::<Located>().expect("a located error");
    assert_eq!(
        l.excerpt,
        "Dockerfile:3\n--------------------\n   1 |     FROM scratch\n   2 |     ARG P=80/xyz\n   3 | >>> EXPOSE $P\n   4 |     \n--------------------\n"
    );
    assert_eq!(
        e.to_string(),
        "failed to solve: invalid port: \"80/xyz\": invalid proto: xyz"
    );
    let mut o = opts();
    o.target = Some("zzz".into());
    let e = plan("FROM scratch\n", &o).unwrap_err();
    assert_eq!(e.to_string(), "target stage \"zzz\" could not be found");
}

#[test]
fn metadata_instructions() {
    let df = "FROM scratch\nEXPOSE 8080 53/udp 8080\nSTOPSIGNAL SIGINT\nHEALTHCHECK --interval=5s --retries=2 CMD true\nSHELL [\"/bin/sh\", \"-ec\"]\nCMD echo hi\n";
    let p = plan(df, &opts()).unwrap();
    let c = &p.chains[0];
    let cc = c.config.config.as_ref().unwrap();
    let ports: Vec<&String> = cc.exposed_ports.as_ref().unwrap().keys().collect();
    assert_eq!(ports, ["53/udp", "8080/tcp"]);
    let hc = cc.healthcheck.as_ref().unwrap();
    assert_eq!(
        (hc.interval, hc.retries, hc.timeout),
        (Some(5_000_000_000), Some(2), None)
    );
    assert_eq!(cc.cmd.as_deref().unwrap(), ["/bin/sh", "-ec", "echo hi"]);
    let by: Vec<&str> = c
        .history
        .iter()
        .map(|h| h.created_by.as_deref().unwrap())
        .collect();
    assert_eq!(by[0], "EXPOSE [53/udp 8080/tcp 8080/tcp]");
    assert_eq!(
        by[2],
        "HEALTHCHECK {Test:[CMD-SHELL true] Interval:5s Timeout:0s StartPeriod:0s StartInterval:0s Retries:2}"
    );
    assert!(c.steps.is_empty());
}

#[test]
fn sources_are_typed_by_the_frontend() {
    let src = |v: &str, add: bool| source_of(v.to_string(), add).map_err(|e| e.to_string());
    let git = "https://example.com/r.git#main:sub";
    let g = |url: &str| CopySource::Git {
        url: url.into(),
        keep_git_dir: false,
        checksum: None,
    };
    assert_eq!(src(git, true), Ok(g(git)));
    assert_eq!(src("git@host:r.git", true), Ok(g("git@host:r.git")));
    assert_eq!(
        src("https://example.com/f.tgz", true),
        Ok(CopySource::Http {
            url: "https://example.com/f.tgz".into(),
            checksum: None,
        })
    );
    assert_eq!(src("a/*.txt", true), Ok(CopySource::Path("a/*.txt".into())));
    // COPY never fetches: URLs and git refs are refused, as BuildKit does.
    assert_eq!(
        src("https://example.com/f", false).unwrap_err(),
        "source can't be a URL for COPY"
    );
    assert_eq!(
        src("git@host:r.git", false).unwrap_err(),
        "source can't be a git ref for COPY"
    );
    assert_eq!(
        src("https://example.com/r.git", false).unwrap_err(),
        "source can't be a git ref for COPY"
    );
    for add in [false, true] {
        assert_eq!(
            src("github.com/o/r", add),
            Ok(CopySource::Path("github.com/o/r".into()))
        );
    }
    let p = plan(
        "FROM scratch\nADD --keep-git-dir --checksum=abc https://h/r.git /\nADD --checksum=sha256:00 https://h/f /\n",
        &opts(),
    )
    .unwrap();
    let sources: Vec<&CopySource> = p.chains[0]
        .steps
        .iter()
        .filter_map(|s| match &s.op {
            Op::File(f) => f.sources.first(),
            _ => None,
        })
        .collect();
    assert_eq!(
        sources,
        [
            &CopySource::Git {
                url: "https://h/r.git".into(),
                keep_git_dir: true,
                checksum: Some("abc".into()),
            },
            &CopySource::Http {
                url: "https://h/f".into(),
                checksum: Some("sha256:00".into()),
            }
        ]
    );
    let p = plan("FROM scratch\nADD --checksum=sha256:00 a.txt /\n", &opts());
    assert!(format!("{:#}", p.unwrap_err()).contains("checksum requires HTTP(S) or Git sources"));
}

#[test]
fn from_platform_sets_the_stage_platform_and_explicit_target_wins() {
    let text =
        "FROM --platform=linux/arm/v6 scratch AS a\nFROM --platform=$BUILDPLATFORM scratch\n";
    let arch = |p: &Plan, c: usize| {
        let cfg = &p.chains[c].config;
        (cfg.architecture.clone(), cfg.variant.clone())
    };
    let o = FrontendOptions {
        target: Some("a".into()),
        ..opts()
    };
    let p = plan(text, &o).unwrap();
    assert_eq!(arch(&p, p.target), ("arm".into(), Some("v6".into())));
    // Asked for with --platform: the result says the target platform, as BuildKit does.
    let o = FrontendOptions {
        platform: "linux/arm64".into(),
        platform_explicit: true,
        ..opts()
    };
    let p = plan(text, &o).unwrap();
    assert_eq!(arch(&p, p.target), ("arm64".into(), None));
    let o = FrontendOptions {
        platform: "linux/arm64".into(),
        ..opts()
    };
    let p = plan(text, &o).unwrap();
    let host = hoist_image::Platform::host();
    assert_eq!(arch(&p, p.target), (host.architecture, host.variant));
    let e = plan("FROM --platform=linux/a/b/c/d scratch\n", &opts()).unwrap_err();
    assert!(
        format!("{e:#}").contains("failed to parse platform linux/a/b/c/d"),
        "{e:#}"
    );
}

#[test]
fn build_args_replace_predefined_platform_args() {
    let mut o = opts();
    o.build_args.insert("TARGETARCH".into(), "mine".into());
    let p = plan("FROM scratch\nARG TARGETARCH\nLABEL a=$TARGETARCH\n", &o).unwrap();
    let labels = p.chains[p.target]
        .config
        .config
        .as_ref()
        .unwrap()
        .labels
        .clone();
    assert_eq!(labels.unwrap()["a"], "mine");
}
