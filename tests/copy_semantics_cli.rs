//! COPY/ADD give the image BuildKit gives: wildcards that match nothing, which files ADD unpacks,
//! `--chown` ids, the mode and owner of the directories a copy creates, setuid bits under
//! `--chown`, and hardlinks. Each case was checked against BuildKit 0.25 (docker 28.5); images are
//! read back through `hoist run ... stat` and the layer tars.

use std::fs;
use std::os::unix::fs::{PermissionsExt, chown};
use std::path::Path;
use std::process::{Command, Stdio};

use build_support::{Env, context_with};
use hoist_image::Store;

mod build_support;
mod common;

/// `stat -c FORMAT PATHS...` in a container of `image`, one line per path.
fn stat(env: &Env, image: &str, format: &str, paths: &[&str]) -> Vec<String> {
    let mut args = vec!["run", "--rm", image, "stat", "-c", format];
    args.extend_from_slice(paths);
    let out = env.ok(&mut env.cmd(&args));
    out.lines().map(str::to_string).collect()
}

/// `hoist build -t TAG CTX`, expected to fail: its stderr.
fn build_fails(env: &Env, tag: &str, ctx: &Path) -> String {
    let out = env.hoist(&[
        "build",
        "--progress",
        "plain",
        "-t",
        tag,
        ctx.to_str().unwrap(),
    ]);
    assert!(!out.status.success(), "the build of {tag} succeeded");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn set_mode(p: &Path, mode: u32) {
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
}

fn set_mtime(p: &Path, secs: i64) {
    let ok = Command::new("touch")
        .args(["-h", "-d", &format!("@{secs}")])
        .arg(p)
        .status()
        .unwrap()
        .success();
    assert!(ok);
}

/// A shell tool over `input` (gzip, xz, tar ...): its stdout.
fn pipe(cmd: &[&str], input: &[u8]) -> Vec<u8> {
    let mut c = Command::new(cmd[0])
        .args(&cmd[1..])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = c.stdin.take().unwrap();
    let data = input.to_vec();
    let writer = std::thread::spawn(move || std::io::Write::write_all(&mut stdin, &data));
    let out = c.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(out.status.success(), "{cmd:?} failed");
    out.stdout
}

/// `tar -tv` of the image's layer number `n` (0 = the base).
fn layer_listing(env: &Env, image: &str, n: usize) -> String {
    let diff_id = env.config(image).rootfs.diff_ids[n].clone();
    let store = Store::open(&env.root).unwrap();
    let mut tar = Vec::new();
    std::io::Read::read_to_end(&mut store.open_layer(&diff_id).unwrap(), &mut tar).unwrap();
    String::from_utf8(pipe(&["tar", "--numeric-owner", "-tvf", "-"], &tar)).unwrap()
}

#[test]
fn wildcards_may_match_nothing_plain_sources_must_exist() {
    let env = Env::new();
    let ctx = context_with(
        "FROM busybox AS s\n\
         FROM busybox\n\
         COPY package.json package-lock.json* yarn.lock* /app/\n\
         COPY nomatch* /none/\n\
         COPY one.txt nomatch* /single\n\
         ADD nomatch* /added/\n\
         COPY --from=s /nomatch* /bin/busybox /fromstage/\n",
        &[("package.json", b"{}"), ("one.txt", b"1")],
    );
    env.build(&["-t", "wild", ctx.path().to_str().unwrap()]);
    assert_eq!(env.read("wild", "/app/package.json"), "{}");
    assert!(!env.exists("wild", "/app/package-lock.json"));
    // Nothing matched: nothing is created, not even the destination.
    assert!(!env.exists("wild", "/none"));
    assert!(!env.exists("wild", "/added"));
    // One file onto a name that does not end with `/`: that name is the file.
    assert_eq!(env.read("wild", "/single"), "1");
    assert!(env.exists("wild", "/fromstage/busybox"));

    let fails = |dockerfile: &str| {
        let ctx = context_with(dockerfile, &[("one.txt", b"1")]);
        build_fails(&env, "nope", ctx.path())
    };
    for df in [
        "FROM busybox\nCOPY missing one.txt /x/\n",
        "FROM busybox\nADD missing* missing /x/\n",
    ] {
        let err = fails(df);
        assert!(
            err.contains("failed to calculate checksum of ref ")
                && err.contains(": \"/missing\": not found"),
            "{df}: {err}"
        );
    }
    let err = fails("FROM busybox AS s\nFROM busybox\nCOPY --from=s /missing /x/\n");
    assert!(
        err.contains("lstat /missing: no such file or directory"),
        "{err}"
    );
    // A wildcard's directory must exist.
    let err = fails("FROM busybox\nCOPY nodir/*.txt /x/\n");
    assert!(
        err.contains("lstat /nodir: no such file or directory"),
        "{err}"
    );
}

#[test]
fn add_unpacks_tars_by_content_and_copies_anything_else_as_it_is() {
    let env = Env::new();
    let text = b"hello\n".as_slice();
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir(dir.path().join("x")).unwrap();
    fs::write(dir.path().join("x/in"), "in\n").unwrap();
    let tar_of = |format: &str| {
        let out = Command::new("tar")
            .args(["--format", format, "-cf", "-", "-C"])
            .arg(dir.path())
            .arg("x")
            .output()
            .unwrap();
        assert!(out.status.success());
        out.stdout
    };
    let ustar = tar_of("ustar");
    let mut bad_sum = ustar.clone();
    bad_sum[148..152].copy_from_slice(b"ZZZZ");
    let files: Vec<(&str, Vec<u8>)> = vec![
        ("t.gz", pipe(&["gzip", "-c"], text)),
        ("t.bz2", pipe(&["bzip2", "-c"], text)),
        ("t.xz", pipe(&["xz", "-c"], text)),
        ("t.zst", pipe(&["zstd", "-q", "-c"], text)),
        ("empty.tar.gz", Vec::new()),
        ("plain.tar", b"not a tar\n".to_vec()),
        ("short.tar", ustar[..100].to_vec()),
        ("badsum.tar", bad_sum),
        // Recognised by content, whatever the name: a gzip tar, an old v7 tar, a zstd tar.
        ("data.bin", pipe(&["gzip", "-c"], &ustar)),
        ("v7.tar", tar_of("v7")),
        ("layer.zst", pipe(&["zstd", "-q", "-c"], &ustar)),
    ];
    let refs: Vec<(&str, &[u8])> = files.iter().map(|(n, b)| (*n, b.as_slice())).collect();
    let mut df = String::from("FROM busybox\n");
    for (name, _) in &files {
        df.push_str(&format!("ADD {name} /{name}.d/\n"));
    }
    let ctx = context_with(&df, &refs);
    env.build(&["-t", "adds", ctx.path().to_str().unwrap()]);
    let view = env.view("adds");
    for (name, content) in &files[..8] {
        let copied = view.read(&format!("/{name}.d/{name}"));
        assert_eq!(copied.as_ref(), Some(content), "{name} not copied verbatim");
    }
    for (name, _) in &files[8..] {
        assert_eq!(
            env.read("adds", &format!("/{name}.d/x/in")),
            "in\n",
            "{name} not unpacked"
        );
        assert!(!env.exists("adds", &format!("/{name}.d/{name}")));
    }
}

#[test]
fn chown_ids_as_buildkit_resolves_them() {
    let env = Env::new();
    let ctx = context_with(
        "FROM busybox AS s\n\
         FROM busybox\n\
         RUN echo 'app:x:1234:4321::/home/app:/bin/sh' >> /etc/passwd && echo 'staff:x:50:' >> /etc/group\n\
         COPY --chown=1500 f /c/num\n\
         COPY --chown=1234 f /c/num-in-passwd\n\
         COPY --chown=app f /c/name\n\
         COPY --chown=app:staff f /c/name-group\n\
         COPY --chown=1500:staff f /c/num-group\n\
         COPY --chown=app:77 f /c/name-gid\n\
         COPY --chown=nosuch f /c/unknown\n\
         COPY --chown=app:nosuch f /c/unknown-group\n\
         ADD --chown=1500 f /c/add\n\
         COPY --from=s --chown=1500 /etc/passwd /c/from\n",
        &[("f", b"f")],
    );
    env.build(&["-t", "owners", ctx.path().to_str().unwrap()]);
    let got = stat(
        &env,
        "owners",
        "%n %u:%g",
        &[
            "/c/num",
            "/c/num-in-passwd",
            "/c/name",
            "/c/name-group",
            "/c/num-group",
            "/c/name-gid",
            "/c/unknown",
            "/c/unknown-group",
            "/c/add",
            "/c/from",
        ],
    );
    assert_eq!(
        got,
        [
            "/c/num 1500:1500",
            "/c/num-in-passwd 1234:1234",
            "/c/name 1234:4321",
            "/c/name-group 1234:50",
            "/c/num-group 1500:50",
            "/c/name-gid 1234:77",
            "/c/unknown 0:0",
            "/c/unknown-group 1234:4321",
            "/c/add 1500:1500",
            "/c/from 1500:1500",
        ]
    );
}

#[test]
fn created_directories_are_0755_or_octal_chmod_and_owned_by_chown() {
    let env = Env::new();
    let ctx = context_with(
        "FROM busybox\n\
         RUN mkdir -m 711 /ex && chown 3:3 /ex\n\
         COPY d7/ /n1/\n\
         COPY d7 /n2/x/y/\n\
         COPY --chmod=700 f /n3/p/q/\n\
         COPY --chmod=u+x f /n4/p/\n\
         COPY --chown=1500:1600 f /n5/p/\n\
         COPY --chmod=750 d7 /n6/\n\
         COPY --chmod=4755 f /n7/\n\
         COPY --chown=1500:1600 d7/ /n8/\n\
         COPY d7/ /ex/\n",
        &[("d7/sub/f", b"x"), ("d7/g", b"y"), ("f", b"f")],
    );
    let d7 = ctx.path().join("d7");
    set_mode(&d7.join("sub"), 0o700);
    set_mode(&d7, 0o700);
    set_mtime(&d7, 1_577_836_800);
    env.build(&["-t", "dirs", ctx.path().to_str().unwrap()]);
    let paths = [
        "/n1",
        "/n1/sub",
        "/n2",
        "/n2/x",
        "/n2/x/y",
        "/n2/x/y/sub",
        "/n3",
        "/n3/p",
        "/n3/p/q",
        "/n3/p/q/f",
        "/n4",
        "/n4/p",
        "/n4/p/f",
        "/n5",
        "/n5/p",
        "/n6",
        "/n6/sub",
        "/n6/g",
        "/n7",
        "/n7/f",
        "/n8",
        "/n8/sub",
        "/ex",
    ];
    let got = stat(&env, "dirs", "%n %a %u:%g", &paths);
    assert_eq!(
        got,
        [
            "/n1 755 0:0",
            "/n1/sub 700 0:0",
            "/n2 755 0:0",
            "/n2/x 755 0:0",
            "/n2/x/y 755 0:0",
            "/n2/x/y/sub 700 0:0",
            "/n3 700 0:0",
            "/n3/p 700 0:0",
            "/n3/p/q 700 0:0",
            "/n3/p/q/f 700 0:0",
            "/n4 755 0:0",
            "/n4/p 755 0:0",
            "/n4/p/f 744 0:0",
            "/n5 755 1500:1600",
            "/n5/p 755 1500:1600",
            "/n6 750 0:0",
            "/n6/sub 750 0:0",
            "/n6/g 750 0:0",
            "/n7 755 0:0",
            "/n7/f 4755 0:0",
            "/n8 755 1500:1600",
            "/n8/sub 700 1500:1600",
            // An existing directory keeps its mode and owner.
            "/ex 711 3:3",
        ]
    );
    // The directory a directory's content lands in takes the source's mtime, new or not.
    let times = stat(&env, "dirs", "%Y", &["/n1", "/n2/x/y", "/ex"]);
    assert_eq!(times, ["1577836800"; 3]);
}

#[test]
fn setuid_bits_survive_chown() {
    let env = Env::new();
    let src = tempfile::tempdir().unwrap();
    let t = src.path().join("t");
    fs::create_dir_all(t.join("d")).unwrap();
    fs::write(t.join("su"), "su").unwrap();
    fs::write(t.join("d/q"), "q").unwrap();
    fs::hard_link(t.join("d/q"), t.join("hq")).unwrap();
    chown(t.join("su"), Some(7), Some(8)).unwrap();
    chown(t.join("d"), Some(7), Some(8)).unwrap();
    set_mode(&t.join("su"), 0o6755);
    set_mode(&t.join("d"), 0o2775);
    set_mtime(&t.join("d"), 1_500_000_000);
    set_mtime(&t, 1_500_000_000);
    let out = Command::new("tar")
        .args(["--numeric-owner", "-czf", "-", "-C"])
        .arg(src.path())
        .arg("t")
        .output()
        .unwrap();
    assert!(out.status.success());
    let ctx = context_with(
        "FROM busybox\n\
         ADD --chown=1500 arch.tar.gz /a1/\n\
         ADD arch.tar.gz /a2/\n\
         COPY --chown=1500 suid sgid /s/\n",
        &[("arch.tar.gz", &out.stdout), ("suid", b"s"), ("sgid", b"g")],
    );
    set_mode(&ctx.path().join("suid"), 0o4755);
    set_mode(&ctx.path().join("sgid"), 0o2755);
    env.build(&["-t", "suid", ctx.path().to_str().unwrap()]);
    let got = stat(
        &env,
        "suid",
        "%n %a %u:%g %h",
        &[
            "/a1", "/a1/t/su", "/a1/t/d", "/a1/t/hq", "/a2/t/su", "/a2/t/d", "/a2/t/hq", "/s/suid",
            "/s/sgid",
        ],
    );
    assert_eq!(
        got,
        [
            "/a1 755 1500:1500 3",
            "/a1/t/su 6755 1500:1500 1",
            "/a1/t/d 2775 1500:1500 2",
            "/a1/t/hq 644 1500:1500 2",
            "/a2/t/su 6755 7:8 1",
            "/a2/t/d 2775 7:8 2",
            "/a2/t/hq 644 0:0 2",
            "/s/suid 4755 1500:1500 1",
            "/s/sgid 2755 1500:1500 1",
        ]
    );
    // An archive's directories keep their own mtimes (set after their content).
    let times = stat(&env, "suid", "%Y", &["/a1/t", "/a1/t/d", "/a2/t/d"]);
    assert_eq!(times, ["1500000000"; 3]);
}

#[test]
fn hardlinks_stay_hardlinks_within_one_source() {
    let env = Env::new();
    let ctx = context_with(
        "FROM busybox AS s\n\
         RUN mkdir /s && echo z > /s/a && ln /s/a /s/b\n\
         FROM busybox\n\
         COPY hd /l2/\n\
         COPY h1 h2 /l1/\n\
         COPY --from=s /s /l3/\n\
         COPY h* /l4/\n",
        &[
            ("hd/a", b"z"),
            ("hd/x", b"x"),
            ("h1", b"h"),
            ("outside", b"o"),
        ],
    );
    let c = ctx.path();
    fs::create_dir(c.join("hd/sub")).unwrap();
    fs::hard_link(c.join("hd/a"), c.join("hd/b")).unwrap();
    fs::hard_link(c.join("hd/a"), c.join("hd/sub/c")).unwrap();
    fs::hard_link(c.join("h1"), c.join("h2")).unwrap();
    // Linked to a file that is not copied: a plain file.
    fs::hard_link(c.join("outside"), c.join("hd/x2")).unwrap();
    env.build(&["-t", "links", c.to_str().unwrap()]);
    let got = stat(
        &env,
        "links",
        "%n %h %s",
        &[
            "/l2/a",
            "/l2/b",
            "/l2/sub/c",
            "/l2/x",
            "/l2/x2",
            "/l1/h1",
            "/l1/h2",
            "/l3/a",
            "/l3/b",
            "/l4/h1",
            "/l4/h2",
        ],
    );
    assert_eq!(
        got,
        [
            "/l2/a 3 1",
            "/l2/b 3 1",
            "/l2/sub/c 3 1",
            "/l2/x 1 1",
            "/l2/x2 1 1",
            // Separate sources are separate copies.
            "/l1/h1 1 1",
            "/l1/h2 1 1",
            "/l3/a 2 2",
            "/l3/b 2 2",
            "/l4/h1 1 1",
            "/l4/h2 1 1",
        ]
    );
    // The layer tars hold hardlink entries: one file, the other names linking to it.
    let l2 = layer_listing(&env, "links", 1);
    assert!(l2.contains("l2/b link to l2/a"), "{l2}");
    assert!(l2.contains("l2/sub/c link to l2/a"), "{l2}");
    let l3 = layer_listing(&env, "links", 3);
    assert!(l3.contains("l3/b link to l3/a"), "{l3}");
    let l1 = layer_listing(&env, "links", 2);
    assert!(!l1.contains("link to"), "{l1}");
}

#[test]
fn several_sources_are_copied_one_after_the_other() {
    let env = Env::new();
    // No `/` and no directory there: each file lands on the name in turn, the last one stays;
    // a directory's content makes it a directory the next file goes into.
    let ctx = context_with(
        "FROM busybox\nCOPY *.txt /dst\nCOPY d1 a.txt /app\n",
        &[("a.txt", b"a"), ("b.txt", b"b"), ("d1/in", b"in")],
    );
    env.build(&["-t", "several", ctx.path().to_str().unwrap()]);
    assert_eq!(env.read("several", "/dst"), "b");
    assert_eq!(env.read("several", "/app/in"), "in");
    assert_eq!(env.read("several", "/app/a.txt"), "a");
    // A file, then a directory onto it.
    let df = ctx.path().join("Dockerfile");
    fs::write(&df, "FROM busybox\nCOPY a.txt d1 /app2\n").unwrap();
    let err = build_fails(&env, "several2", ctx.path());
    assert!(err.contains("cannot copy to non-directory: /app2"), "{err}");
}

/// `sh -c SCRIPT` in a container of `image`: its stdout.
fn sh(env: &Env, image: &str, script: &str) -> String {
    env.ok(&mut env.cmd(&["run", "--rm", image, "sh", "-c", script]))
}

#[test]
fn a_destination_naming_a_symlink_is_written_through_it() {
    let env = Env::new();
    let ctx = context_with(
        "FROM busybox AS st\n\
         RUN echo fromstage > /sf\n\
         FROM busybox\n\
         RUN for t in abs rel parent esc chain chmod wd from add joined; do echo old > /t-$t; done \\\n\
          && mkdir /rel /tdir /sub && ln -s /t-abs /l-abs && ln -s ../t-rel /rel/l-rel \\\n\
          && ln -s /nx/new /l-dangling && ln -s new2 /l-dangling-rel \\\n\
          && ln -s /tdir /plink && ln -s /t-parent /tdir/flink \\\n\
          && ln -s ../../../t-esc /sub/l-esc && ln -s ../../../../etc/escaped /sub/l-esc2 \\\n\
          && ln -s /c2 /c1 && ln -s /t-chain /c2 && ln -s /t-chmod /l-chmod \\\n\
          && ln -s /t-wd /tdir/wlink && ln -s /t-from /l-from && ln -s /t-add /l-add \\\n\
          && ln -s /t-joined /tdir/f && ln -s /t-joined /tdir/g\n\
         COPY f /l-abs\n\
         COPY f /rel/l-rel\n\
         COPY f /l-dangling\n\
         COPY f /l-dangling-rel\n\
         COPY f /plink/flink\n\
         COPY f /sub/l-esc\n\
         COPY f /sub/l-esc2\n\
         COPY f /c1\n\
         COPY --chmod=600 --chown=1:2 f /l-chmod\n\
         WORKDIR /plink\n\
         COPY f wlink\n\
         COPY --from=st /sf /l-from\n\
         ADD f /l-add\n\
         COPY f /tdir/\n",
        &[("f", b"new\n")],
    );
    env.build(&["-t", "through", ctx.path().to_str().unwrap()]);
    // The links stay as they were; what they lead to (inside the root) gets the content.
    let links = sh(
        &env,
        "through",
        "for l in /l-abs /rel/l-rel /l-dangling /l-dangling-rel /tdir/flink /sub/l-esc \
         /sub/l-esc2 /c1 /c2 /l-chmod /tdir/wlink /l-from /l-add /tdir/g; \
         do echo \"$l -> $(readlink $l)\"; done",
    );
    assert_eq!(
        links,
        "/l-abs -> /t-abs\n/rel/l-rel -> ../t-rel\n/l-dangling -> /nx/new\n\
         /l-dangling-rel -> new2\n/tdir/flink -> /t-parent\n/sub/l-esc -> ../../../t-esc\n\
         /sub/l-esc2 -> ../../../../etc/escaped\n/c1 -> /c2\n/c2 -> /t-chain\n\
         /l-chmod -> /t-chmod\n/tdir/wlink -> /t-wd\n/l-from -> /t-from\n/l-add -> /t-add\n\
         /tdir/g -> /t-joined\n"
    );
    let content = sh(
        &env,
        "through",
        "for t in abs rel parent esc chain chmod wd from add joined; do echo \"$t $(cat /t-$t)\"; done; \
         cat /nx/new /new2 /etc/escaped",
    );
    assert_eq!(
        content,
        "abs new\nrel new\nparent new\nesc new\nchain new\nchmod new\nwd new\nfrom fromstage\n\
         add new\njoined old\nnew\nnew\nnew\n"
    );
    // --chmod and --chown apply to the file written, the created parent is 0755.
    assert_eq!(
        stat(
            &env,
            "through",
            "%n %a %u:%g",
            &["/t-chmod", "/nx", "/l-chmod"]
        ),
        ["/t-chmod 600 1:2", "/nx 755 0:0", "/l-chmod 777 0:0"]
    );
    // A name joined to a directory destination is not followed: the link there is replaced.
    assert_eq!(
        sh(&env, "through", "[ -L /tdir/f ] || cat /tdir/f"),
        "new\n"
    );
}

#[test]
fn a_copy_never_turns_a_directory_into_a_file_or_back() {
    let env = Env::new();
    // (image setup, COPY, BuildKit's error with the in-image path)
    let cases = [
        (
            "mkdir /tt && echo old > /tt/sub",
            "COPY d /tt/",
            "cannot copy to non-directory: /tt/sub",
        ),
        (
            "mkdir -p /tt/sub-target && ln -s /tt/sub-target /tt/sub",
            "COPY d /tt/",
            "cannot copy to non-directory: /tt/sub",
        ),
        (
            "mkdir -p /tt/x/inner",
            "COPY d /tt/",
            "cannot replace to directory /tt/x with file",
        ),
        (
            "mkdir -p /tt/f",
            "COPY f /tt/",
            "cannot replace to directory /tt/f with file",
        ),
        (
            "echo old > /target && ln -s /target /l",
            "COPY d /l",
            "cannot copy to non-directory: /target",
        ),
        (
            "echo old > /target && ln -s /target /l",
            "COPY f /l/",
            "mkdir /target: not a directory",
        ),
        (
            "echo old > /target && ln -s /target /l",
            "COPY f /l/sub/x",
            "mkdir /target: not a directory",
        ),
    ];
    for (setup, copy, want) in cases {
        let ctx = context_with(
            &format!("FROM busybox\nRUN {setup}\n{copy}\n"),
            &[("f", b"f"), ("d/x", b"x"), ("d/sub/y", b"y")],
        );
        let err = build_fails(&env, "conflict", ctx.path());
        assert!(err.contains(want), "{setup} / {copy}: {err}");
    }
    // ADD unpacks an archive over what is there, whatever the types.
    let src = tempfile::tempdir().unwrap();
    fs::create_dir_all(src.path().join("d/sub")).unwrap();
    fs::write(src.path().join("d/x"), "x").unwrap();
    let out = Command::new("tar")
        .arg("-C")
        .arg(src.path())
        .args(["-cf", "-", "d"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let ctx = context_with(
        "FROM busybox
RUN mkdir -p /ad/d/x && echo old > /ad/d/sub
ADD a.tar /ad/
",
        &[("a.tar", &out.stdout)],
    );
    env.build(&["-t", "unpacked", ctx.path().to_str().unwrap()]);
    assert_eq!(
        stat(&env, "unpacked", "%n %F", &["/ad/d/x", "/ad/d/sub"]),
        ["/ad/d/x regular file", "/ad/d/sub directory"]
    );
}

#[test]
fn a_failed_copy_is_reported_as_docker_reports_it() {
    let env = Env::new();
    let last_line = |dockerfile: &str| {
        let ctx = context_with(dockerfile, &[("one.txt", b"1")]);
        let err = build_fails(&env, "report", ctx.path());
        (err.trim_end().lines().last().unwrap().to_string(), err)
    };
    // A context source that is missing fails the step's cache key.
    let (last, err) = last_line("FROM busybox\nCOPY missing one.txt /x/\n");
    assert!(
        last.starts_with(
            "ERROR: failed to build: failed to solve: failed to compute cache key: \
             failed to calculate checksum of ref "
        ) && last.ends_with(": \"/missing\": not found"),
        "{err}"
    );
    assert!(
        err.contains(
            "------\n > [2/2] COPY missing one.txt /x/:\n------\nDockerfile:2\n\
             --------------------\n   1 |     FROM busybox\n   2 | >>> COPY missing one.txt /x/\n\
             \x20  3 |     \n--------------------\nERROR: "
        ),
        "{err}"
    );
    // A stage's missing path and a failed copy are not about the cache key.
    let (last, err) = last_line("FROM busybox AS s\nFROM busybox\nCOPY --from=s /missing /x/\n");
    assert_eq!(
        last, "ERROR: failed to build: failed to solve: lstat /missing: no such file or directory",
        "{err}"
    );
    let (last, err) = last_line("FROM busybox\nRUN mkdir -p /d/one.txt\nCOPY one.txt /d/\n");
    assert_eq!(
        last,
        "ERROR: failed to build: failed to solve: cannot replace to directory /d/one.txt with file",
        "{err}"
    );
}

/// `github.com/ORG/REPO` without a scheme is a path of the context for COPY and ADD alike (BuildKit
/// fetches nothing), while a scheme or `git@` makes COPY fail as BuildKit words it.
#[test]
fn a_schemeless_github_source_is_a_context_path() {
    let env = Env::new();
    let ctx = context_with(
        "FROM busybox\nCOPY github.com/o/r /c\nADD github.com/o/r /a\n",
        &[("github.com/o/r", b"local\n")],
    );
    env.build(&["-t", "gh", ctx.path().to_str().unwrap()]);
    assert_eq!(env.read("gh", "/c"), "local\n");
    assert_eq!(env.read("gh", "/a"), "local\n");
    fs::write(
        ctx.path().join("Dockerfile"),
        "FROM busybox\nCOPY git@github.com:o/r.git /c\n",
    )
    .unwrap();
    let err = build_fails(&env, "gh2", ctx.path());
    assert!(
        err.contains("failed to solve: source can't be a git ref for COPY"),
        "{err}"
    );
}
