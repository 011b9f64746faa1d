//! `hoist image diff A B` on real builds: added, removed and changed files (content, mode, owner,
//! link target, type) and config differences, in the readable form and as JSON.

mod build_support;
mod common;

use build_support::{Env, context_with};

const A: &str = "FROM busybox
COPY a.txt /app/a.txt
RUN echo keep > /app/keep && echo gone > /app/gone && ln -s a.txt /app/link && mkdir /app/d
ENV FOO=1 KEEP=k
USER root
CMD [\"sh\"]
";

const B: &str = "FROM busybox
COPY a.txt /app/a.txt
RUN echo keep > /app/keep && chmod 0755 /app/keep && chown 1000:1000 /app/keep \\
 && ln -s keep /app/link && echo new > /app/new && echo d > /app/d
ENV FOO=2 KEEP=k BAR=b
LABEL org.example=yes
WORKDIR /app
EXPOSE 8080/tcp
CMD [\"sh\", \"-c\", \"true\"]
";

fn build(env: &Env, tag: &str, dockerfile: &str, a_txt: &[u8]) {
    let ctx = context_with(dockerfile, &[("a.txt", a_txt)]);
    env.build(&["-t", tag, ctx.path().to_str().unwrap()]);
}

#[test]
fn image_diff_lists_files_and_config_that_differ() {
    let env = Env::new();
    build(&env, "a", A, b"one\n");
    build(&env, "b", B, b"two\n");
    let out = env.ok(&mut env.cmd(&["image", "diff", "a", "b"]));
    let lines: Vec<&str> = out.lines().collect();
    for want in [
        "C /app/a.txt (content)",
        "C /app/keep (mode 0644->0755, owner 0:0->1000:1000)",
        "C /app/link (link a.txt->keep)",
        "C /app/d (type dir->file, mode 0755->0644)",
        "D /app/gone",
        "A /app/new",
        "config Env FOO: \"1\" -> \"2\"",
        "config Env BAR: <unset> -> \"b\"",
        "config Labels org.example: <unset> -> \"yes\"",
        "config WorkingDir: <unset> -> \"/app\"",
        "config ExposedPorts 8080/tcp: <unset> -> {}",
        "config Cmd: [\"sh\"] -> [\"sh\",\"-c\",\"true\"]",
    ] {
        assert!(lines.contains(&want), "missing {want:?} in:\n{out}");
    }
    // Unchanged files, the shared base and unchanged env never show.
    assert!(!out.contains("/bin/"), "{out}");
    assert!(!out.contains("KEEP"), "{out}");
    assert!(!out.contains(" /app\n"), "{out}");

    let json: serde_json::Value = serde_json::from_str(
        &env.ok(&mut env.cmd(&["image", "diff", "--format", "json", "a", "b"])),
    )
    .unwrap();
    let files = json["files"].as_array().unwrap();
    let gone = files.iter().find(|f| f["path"] == "/app/gone").unwrap();
    assert_eq!(gone["change"], "D");
    let keep = files.iter().find(|f| f["path"] == "/app/keep").unwrap();
    assert_eq!(keep["details"][1], "owner 0:0->1000:1000");
    let foo = json["config"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["field"] == "Env" && c["key"] == "FOO")
        .unwrap();
    assert_eq!(
        (foo["old"].as_str(), foo["new"].as_str()),
        (Some("1"), Some("2"))
    );

    // An image compared with itself has no differences.
    let same = env.ok(&mut env.cmd(&["image", "diff", "a", "a"]));
    assert_eq!(same.trim(), "");
    // A bad format names what it expected.
    let bad = env.hoist(&["image", "diff", "--format", "yaml", "a", "b"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("expected \"table\" or \"json\""));
}
