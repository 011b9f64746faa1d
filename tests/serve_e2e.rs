//! `hoist serve` end to end: a real git repository pushed with `git push` to a bare repository whose
//! post-receive hook (printed by `hoist trigger`) triggers the service; signed webhooks from GitHub,
//! GitLab and Gitea (bad signatures get 401 and build nothing); images built by `hoist build` and pushed
//! to the real CNCF registry; a service killed mid-queue resumes after a restart.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;
mod serve_support;

use serve_support::{Gate, chromium_dom, dechunk, processes_mentioning, skopeo_tags};

use common::{HOIST, TestRegistry, free_port, git, skopeo_inspect};

const SECRET: &str = "s3cr3t-for-tests";

// ---------------------------------------------------------------------------------------------
// Harness: registry, a gate proxy in front of it, the service process, HTTP, git.

/// `hoist serve` in its own process group (so a kill takes its build children too).
struct Serve {
    child: Child,
    addr: String,
    stderr: PathBuf,
    /// The configured `status_token`, sent as a bearer token by [`Serve::request`].
    token: Option<String>,
}

impl Serve {
    fn start(config: &Path) -> Serve {
        let stderr = config.with_extension(format!("serve-{}.log", free_port()));
        let child = Command::new(HOIST)
            .args(["serve", "--config"])
            .arg(config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .process_group(0)
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        let addr = loop {
            let text = std::fs::read_to_string(&stderr).unwrap_or_default();
            if let Some(line) = text.lines().find(|l| l.contains("listening on http://")) {
                break line.rsplit("http://").next().unwrap().trim().to_string();
            }
            assert!(
                Instant::now() < deadline,
                "hoist serve did not start:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        Serve {
            child,
            addr,
            stderr,
            token: None,
        }
    }

    /// SIGKILL to the whole group: the service and any build it runs die mid-flight.
    fn kill(mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.wait();
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> (u16, String) {
        let bearer = self.token.as_ref().map(|t| format!("Bearer {t}"));
        let mut headers = headers.to_vec();
        if let Some(b) = &bearer {
            headers.push(("Authorization", b));
        }
        http(&self.addr, method, path, &headers, body)
    }

    fn builds(&self) -> Vec<Value> {
        let (status, body) = self.request("GET", "/api/builds?limit=100", &[], b"");
        assert_eq!(status, 200, "{body}");
        serde_json::from_str::<Vec<Value>>(&body).unwrap()
    }

    fn build(&self, id: i64) -> Value {
        let (status, body) = self.request("GET", &format!("/api/builds/{id}"), &[], b"");
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    }

    /// Waits until build `id` is in a final state; returns it (with its log).
    fn wait_final(&self, id: i64) -> Value {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let b = self.build(id);
            if ["succeeded", "failed", "cancelled"].contains(&b["state"].as_str().unwrap()) {
                return b;
            }
            assert!(
                Instant::now() < deadline,
                "build {id} never finished: {b:#}\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn wait_state(&self, id: i64, state: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.build(id)["state"] != state {
            assert!(
                Instant::now() < deadline,
                "build {id} never {state}: {:#}",
                self.build(id)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", self.child.id())])
                .status();
            let _ = self.child.wait();
        }
    }
}

/// One HTTP/1.1 request; returns the status and body.
fn http(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String) {
    let (status, _, body) = http_with_headers(addr, method, path, headers, body);
    (status, body)
}

/// One HTTP/1.1 request; returns the status, the response headers (names lowercased) and the body.
fn http_with_headers(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, Vec<(String, String)>, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut reader = BufReader::new(s);
    let mut status_line = String::new();
    reader.read_line(&mut status_line).unwrap();
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let mut chunked = false;
    let mut response_headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        if line.trim().is_empty() {
            break;
        }
        if line
            .to_ascii_lowercase()
            .starts_with("transfer-encoding: chunked")
        {
            chunked = true;
        }
        if let Some((k, v)) = line.split_once(':') {
            response_headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let mut raw = Vec::new();
    reader.read_to_end(&mut raw).unwrap();
    let body = if chunked { dechunk(&raw) } else { raw };
    (
        status,
        response_headers,
        String::from_utf8_lossy(&body).into_owned(),
    )
}

/// A working repository with a Dockerfile, and a bare repository it pushes to.
fn repos(root: &Path) -> (PathBuf, PathBuf) {
    let bare = root.join("app.git");
    let work = root.join("work");
    std::fs::create_dir_all(&work).unwrap();
    git(
        root,
        &["init", "-q", "--bare", "-b", "main", bare.to_str().unwrap()],
    );
    git(&work, &["init", "-q", "-b", "main"]);
    std::fs::write(
        work.join("Dockerfile"),
        "FROM scratch\nARG FLAVOUR=plain\nLABEL flavour=$FLAVOUR\nCOPY hello.txt /\n",
    )
    .unwrap();
    std::fs::create_dir_all(work.join("docker")).unwrap();
    std::fs::write(
        work.join("docker/Dockerfile.tools"),
        "FROM scratch\nCOPY tools.txt /\n",
    )
    .unwrap();
    std::fs::write(work.join("hello.txt"), "hello 1\n").unwrap();
    std::fs::write(work.join("tools.txt"), "tools\n").unwrap();
    git(&work, &["add", "."]);
    git(&work, &["commit", "-qm", "first"]);
    git(&work, &["remote", "add", "origin", bare.to_str().unwrap()]);
    (work, bare)
}

fn commit(work: &Path, file: &str, content: &str) -> String {
    std::fs::write(work.join(file), content).unwrap();
    git(work, &["add", file]);
    git(work, &["commit", "-qm", content]);
    git(work, &["rev-parse", "HEAD"]).trim().to_string()
}

fn write_config(root: &Path, registry: &str, bare: &Path, concurrency: usize) -> PathBuf {
    let cfg = format!(
        r#"
listen = "127.0.0.1:0"
state_dir = "state"
store = "store"
registry = "{registry}/team"
secret = "{SECRET}"
concurrency = {concurrency}

[[repository]]
name = "app"
url = "file://{bare}"
default_branch = "main"

[[repository.rule]]
source_type = "branch"
source = "main"

[[repository.rule]]
source_type = "branch"
source = '/^feature-(.+)$/'
tag = 'feat-{{\1}}'

[[repository.rule]]
source_type = "tag"
source = '/^v([0-9]+)\.([0-9]+)$/'
tag = '{{sourceref}},{{\1}}'
build_args = {{ FLAVOUR = "release" }}

[[repository.rule]]
source_type = "tag"
source = '/^v/'
tag = 'tools-{{sourceref}}'
dockerfile = "docker/Dockerfile.tools"
"#,
        bare = bare.display()
    );
    let path = root.join("hoist.toml");
    std::fs::write(&path, cfg).unwrap();
    path
}

/// `hoist trigger app --output hooks/post-receive`: a private (0700) hook without the plain secret.
fn install_hook(config: &Path, bare: &Path, serve: &Serve) {
    use std::os::unix::fs::PermissionsExt;
    let hook = bare.join("hooks/post-receive");
    let out = Command::new(HOIST)
        .args(["trigger", "app", "--config"])
        .arg(config)
        .args(["--url", &format!("http://{}/hooks/app", serve.addr)])
        .arg("--output")
        .arg(&hook)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty());
    let mode = std::fs::metadata(&hook).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700);
    let text = std::fs::read_to_string(&hook).unwrap();
    assert!(
        text.starts_with("#!/bin/sh\n") && !text.contains(SECRET),
        "{text}"
    );
}

/// Ids the hook reported queued in `git push` output (`remote: hoist: REF: {"queued":[..],...}`).
fn queued_ids(push_output: &str) -> Vec<i64> {
    push_output
        .lines()
        .filter_map(|l| l.find('{').map(|i| &l[i..]))
        .filter_map(|j| serde_json::from_str::<Value>(j.trim()).ok())
        .flat_map(|v| {
            v["queued"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(|x| x.as_i64().unwrap())
        })
        .collect()
}

fn hmac_hex(body: &[u8]) -> String {
    hoist_serve::webhook::sign(SECRET, body)
}

// ---------------------------------------------------------------------------------------------

#[test]
fn git_push_through_post_receive_hook_builds_and_pushes_rule_tags() {
    let tmp = tempfile::tempdir().unwrap();
    let registry = TestRegistry::start(None);
    let reg = format!("127.0.0.1:{}", registry.port);
    let (work, bare) = repos(tmp.path());
    let config = write_config(tmp.path(), &reg, &bare, 2);
    let serve = Serve::start(&config);
    install_hook(&config, &bare, &serve);

    // Branch push: the default branch is tagged latest.
    let out = git(&work, &["push", "origin", "main"]);
    let ids = queued_ids(&out);
    assert_eq!(ids.len(), 1, "{out}");
    let b = serve.wait_final(ids[0]);
    assert_eq!(b["state"], "succeeded", "{}", b["log"].as_str().unwrap());
    assert_eq!(b["ref"], "refs/heads/main");
    assert_eq!(
        b["tags"],
        serde_json::json!([format!("{reg}/team/app:latest")])
    );
    let log = b["log"].as_str().unwrap();
    assert!(log.contains("git clone --mirror"), "{log}");
    let digest = b["digest"].as_str().unwrap().to_string();
    let inspected = skopeo_inspect(&format!("{reg}/team/app:latest"), false);
    assert_eq!(inspected["Digest"], digest.as_str());
    assert_eq!(inspected["Labels"]["flavour"], "plain");

    // A tag push matching two rules: two builds (different Dockerfiles), the first with two tags
    // from capture groups and the rule's build arg. A later push fetches only what is new.
    let sha = commit(&work, "hello.txt", "hello 2\n");
    git(&work, &["tag", "v2.5"]);
    let out = git(&work, &["push", "origin", "v2.5"]);
    let ids = queued_ids(&out);
    assert_eq!(ids.len(), 2, "{out}");
    let release = serve.wait_final(ids[0]);
    let tools = serve.wait_final(ids[1]);
    for b in [&release, &tools] {
        assert_eq!(b["state"], "succeeded", "{}", b["log"].as_str().unwrap());
        assert_eq!(b["sha"], sha.as_str());
        let log = b["log"].as_str().unwrap();
        assert!(
            !log.contains("clone --mirror"),
            "the mirror is reused:\n{log}"
        );
    }
    assert_eq!(
        release["tags"],
        serde_json::json!([format!("{reg}/team/app:v2.5"), format!("{reg}/team/app:2")])
    );
    assert_eq!(release["build_args"]["FLAVOUR"], "release");
    assert_eq!(
        tools["tags"],
        serde_json::json!([format!("{reg}/team/app:tools-v2.5")])
    );
    assert_eq!(tools["dockerfile"], "docker/Dockerfile.tools");

    assert_eq!(
        skopeo_tags(&reg, "team/app"),
        ["2", "latest", "tools-v2.5", "v2.5"]
    );
    let v25 = skopeo_inspect(&format!("{reg}/team/app:v2.5"), false);
    assert_eq!(v25["Labels"]["flavour"], "release");
    assert_eq!(v25["Digest"], release["digest"]);
    assert_eq!(
        skopeo_inspect(&format!("{reg}/team/app:2"), false)["Digest"],
        release["digest"]
    );
    assert_ne!(release["digest"], tools["digest"]);

    // A branch no rule matches is answered but builds nothing; a matching feature branch does.
    git(&work, &["checkout", "-q", "-b", "wip"]);
    let out = git(&work, &["push", "origin", "wip"]);
    assert!(out.contains("no build rule matches"), "{out}");
    git(&work, &["checkout", "-q", "-b", "feature-login"]);
    let out = git(&work, &["push", "origin", "feature-login"]);
    let ids = queued_ids(&out);
    assert_eq!(ids.len(), 1, "{out}");
    let feat = serve.wait_final(ids[0]);
    assert_eq!(feat["state"], "succeeded");
    assert_eq!(
        feat["tags"],
        serde_json::json!([format!("{reg}/team/app:feat-login")])
    );
    assert_eq!(serve.builds().len(), 4);

    // Deleting a branch builds nothing.
    let out = git(&work, &["push", "origin", "--delete", "feature-login"]);
    assert!(out.contains("deleted"), "{out}");
    assert_eq!(serve.builds().len(), 4);

    // The status page and the live log stream.
    let (status, page) = serve.request("GET", "/", &[], b"");
    assert_eq!(status, 200);
    assert!(page.contains("hoist builds") && page.contains("EventSource"));
    let (status, events) = serve.request(
        "GET",
        &format!("/api/builds/{}/events", feat["id"]),
        &[],
        b"",
    );
    assert_eq!(status, 200);
    assert!(
        events.contains("event: log") && events.contains("event: state"),
        "{events}"
    );
    assert!(events.contains("\"state\":\"succeeded\""), "{events}");
    assert!(
        events.contains("data: $ git archive"),
        "the log streams: {events}"
    );
    // A reconnecting EventSource resumes after the last log offset it saw.
    let log_len = feat["log"].as_str().unwrap().len();
    assert!(events.contains(&format!("id: {log_len}\n")), "{events}");
    let (status, resumed) = serve.request(
        "GET",
        &format!("/api/builds/{}/events", feat["id"]),
        &[("Last-Event-ID", &log_len.to_string())],
        b"",
    );
    assert_eq!(status, 200);
    assert!(
        !resumed.contains("event: log") && resumed.contains("event: state"),
        "{resumed}"
    );
}

#[test]
fn webhooks_need_valid_signatures() {
    let tmp = tempfile::tempdir().unwrap();
    let registry = TestRegistry::start(None);
    let reg = format!("127.0.0.1:{}", registry.port);
    let (work, bare) = repos(tmp.path());
    let config = write_config(tmp.path(), &reg, &bare, 1);
    git(&work, &["push", "-q", "origin", "main"]);
    let sha = git(&work, &["rev-parse", "HEAD"]).trim().to_string();
    let serve = Serve::start(&config);
    let github = format!(
        r#"{{"ref":"refs/heads/main","before":"{z}","after":"{sha}","repository":{{"full_name":"app"}}}}"#,
        z = "0".repeat(40)
    );
    let sig = format!("sha256={}", hmac_hex(github.as_bytes()));
    let bad_sig = format!(
        "sha256={}",
        hoist_serve::webhook::sign("wrong", github.as_bytes())
    );
    let json = ("Content-Type", "application/json");

    // Rejected: wrong secret, tampered body, missing signature, unknown sender, wrong GitLab token,
    // wrong Gitea signature, wrong hoist trigger signature.
    let tampered = github.replace("refs/heads/main", "refs/tags/v9.9");
    let rejected: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (
            vec![
                json,
                ("X-GitHub-Event", "push"),
                ("X-Hub-Signature-256", &bad_sig),
            ],
            &github,
        ),
        (
            vec![
                json,
                ("X-GitHub-Event", "push"),
                ("X-Hub-Signature-256", &sig),
            ],
            &tampered,
        ),
        (vec![json, ("X-GitHub-Event", "push")], &github),
        (vec![json], &github),
        (
            vec![
                json,
                ("X-Gitlab-Event", "Push Hook"),
                ("X-Gitlab-Token", "s3cr3t-for-test"),
            ],
            &github,
        ),
        (
            vec![
                json,
                ("X-Gitea-Event", "push"),
                ("X-Gitea-Signature", &bad_sig[7..]),
            ],
            &github,
        ),
        (vec![json, ("X-Hoist-Signature-256", &bad_sig)], &github),
    ];
    for (headers, body) in &rejected {
        let (status, reply) = serve.request("POST", "/hooks/app", headers, body.as_bytes());
        assert_eq!(status, 401, "{headers:?}: {reply}");
    }
    // Routed by the payload's repository name, still checked.
    let (status, _) = serve.request(
        "POST",
        "/hooks",
        &[
            json,
            ("X-GitHub-Event", "push"),
            ("X-Hub-Signature-256", &bad_sig),
        ],
        github.as_bytes(),
    );
    assert_eq!(status, 401);
    let (status, _) = serve.request(
        "POST",
        "/hooks/nope",
        &[
            json,
            ("X-GitHub-Event", "push"),
            ("X-Hub-Signature-256", &sig),
        ],
        github.as_bytes(),
    );
    assert_eq!(status, 404);
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        serve.builds().is_empty(),
        "nothing queued for rejected webhooks"
    );
    assert!(serve.log().contains("rejected"), "{}", serve.log());

    // A GitHub ping with a valid signature is answered and builds nothing.
    let ping = br#"{"zen":"Keep it logically awesome.","hook_id":1}"#;
    let ping_sig = format!("sha256={}", hmac_hex(ping));
    let (status, reply) = serve.request(
        "POST",
        "/hooks/app",
        &[
            json,
            ("X-GitHub-Event", "ping"),
            ("X-Hub-Signature-256", &ping_sig),
        ],
        ping,
    );
    assert_eq!((status, reply.contains("pong")), (200, true), "{reply}");

    // Valid GitHub push (routed by payload), GitLab tag push, Gitea push: each queues and builds.
    let (status, reply) = serve.request(
        "POST",
        "/hooks",
        &[
            json,
            ("X-GitHub-Event", "push"),
            ("X-Hub-Signature-256", &sig),
        ],
        github.as_bytes(),
    );
    assert_eq!(status, 202, "{reply}");
    let gh: Value = serde_json::from_str(&reply).unwrap();
    let gh_id = gh["queued"][0].as_i64().unwrap();

    git(&work, &["tag", "-a", "-m", "annotated", "v3.1"]);
    git(&work, &["push", "-q", "origin", "v3.1"]);
    let tag_object = git(&work, &["rev-parse", "v3.1"]).trim().to_string();
    assert_ne!(tag_object, sha);
    let gitlab = format!(
        r#"{{"object_kind":"tag_push","ref":"refs/tags/v3.1","before":"{z}","after":"{tag_object}","checkout_sha":"{sha}","project":{{"path_with_namespace":"app"}}}}"#,
        z = "0".repeat(40)
    );
    let (status, reply) = serve.request(
        "POST",
        "/hooks/app",
        &[
            json,
            ("X-Gitlab-Event", "Tag Push Hook"),
            ("X-Gitlab-Token", SECRET),
        ],
        gitlab.as_bytes(),
    );
    assert_eq!(status, 202, "{reply}");
    let gl: Value = serde_json::from_str(&reply).unwrap();
    assert_eq!(
        gl["queued"].as_array().unwrap().len(),
        2,
        "two tag rules match v3.1"
    );

    let feature_sha = commit(&work, "hello.txt", "feature\n");
    git(
        &work,
        &["push", "-q", "origin", "HEAD:refs/heads/feature-x"],
    );
    let gitea =
        format!(r#"{{"ref":"refs/heads/feature-x","before":"{sha}","after":"{feature_sha}"}}"#);
    let gitea_sig = hmac_hex(gitea.as_bytes());
    let (status, reply) = serve.request(
        "POST",
        "/hooks/app",
        &[
            json,
            ("X-Forgejo-Event", "push"),
            ("X-Forgejo-Signature", &gitea_sig),
        ],
        gitea.as_bytes(),
    );
    assert_eq!(status, 202, "{reply}");
    let ge: Value = serde_json::from_str(&reply).unwrap();

    let mut ids = vec![gh_id, ge["queued"][0].as_i64().unwrap()];
    ids.extend(
        gl["queued"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_i64().unwrap()),
    );
    for id in &ids {
        let b = serve.wait_final(*id);
        assert_eq!(b["state"], "succeeded", "{}", b["log"].as_str().unwrap());
    }
    let gl_build = serve.build(ids[2]);
    assert_eq!(
        gl_build["sha"],
        sha.as_str(),
        "the tag's commit is built, not the tag object"
    );
    assert_eq!(serve.builds().len(), 4);
    assert_eq!(
        skopeo_tags(&reg, "team/app"),
        ["3", "feat-x", "latest", "tools-v3.1", "v3.1"]
    );
}

#[test]
fn restart_mid_queue_resumes_and_newer_push_cancels_queued() {
    let tmp = tempfile::tempdir().unwrap();
    let registry = TestRegistry::start(None);
    // Pushes go through a gate that holds them: build 1 stays running until the service is killed.
    let gate = Gate::start(registry.port);
    let reg = format!("127.0.0.1:{}", gate.port);
    let (work, bare) = repos(tmp.path());
    let config = write_config(tmp.path(), &reg, &bare, 1);
    let serve = Serve::start(&config);
    install_hook(&config, &bare, &serve);

    let first = queued_ids(&git(&work, &["push", "origin", "main"]))[0];
    serve.wait_state(first, "running");
    git(&work, &["checkout", "-q", "-b", "feature-a"]);
    let older = queued_ids(&git(&work, &["push", "origin", "feature-a"]))[0];
    let newer_sha = commit(&work, "hello.txt", "newer\n");
    let newer = queued_ids(&git(&work, &["push", "origin", "feature-a"]))[0];
    let tag_id = {
        git(&work, &["tag", "v1.0"]);
        queued_ids(&git(&work, &["push", "origin", "v1.0"]))
    };
    assert_eq!(tag_id.len(), 2);
    let older_build = serve.build(older);
    assert_eq!(older_build["state"], "cancelled", "{older_build:#}");
    assert!(
        older_build["error"]
            .as_str()
            .unwrap()
            .contains("superseded")
    );
    assert_eq!(serve.build(newer)["state"], "queued");
    assert_eq!(
        serve.build(first)["state"],
        "running",
        "at most 1 build at once"
    );
    for id in &tag_id {
        assert_eq!(serve.build(*id)["state"], "queued");
    }

    // Kill everything mid-build, open the gate, start again: nothing accepted is lost.
    serve.kill();
    gate.open.store(true, Ordering::SeqCst);
    let serve = Serve::start(&config);
    assert!(serve.log().contains("requeued 1 build"), "{}", serve.log());
    let b = serve.wait_final(first);
    assert_eq!(b["state"], "succeeded", "{}", b["log"].as_str().unwrap());
    assert_eq!(b["attempts"], 2);
    assert_eq!(b["log"].as_str().unwrap().matches("(attempt ").count(), 2);
    let n = serve.wait_final(newer);
    assert_eq!(n["state"], "succeeded", "{}", n["log"].as_str().unwrap());
    assert_eq!(n["sha"], newer_sha.as_str());
    for id in &tag_id {
        assert_eq!(serve.wait_final(*id)["state"], "succeeded");
    }
    assert_eq!(serve.build(older)["state"], "cancelled");
    // Builds ran one at a time: no two run intervals overlap.
    let mut spans: Vec<(i64, i64)> = serve
        .builds()
        .iter()
        .filter(|b| b["state"] == "succeeded")
        .map(|b| {
            (
                b["started_at"].as_i64().unwrap(),
                b["finished_at"].as_i64().unwrap(),
            )
        })
        .collect();
    spans.sort();
    assert_eq!(spans.len(), 4);
    for w in spans.windows(2) {
        assert!(w[0].1 <= w[1].0, "builds overlapped: {spans:?}");
    }
    assert_eq!(
        skopeo_tags(&registry_host(registry.port), "team/app"),
        ["1", "feat-a", "latest", "tools-v1.0", "v1.0"]
    );
}

fn registry_host(port: u16) -> String {
    format!("127.0.0.1:{port}")
}

/// Waits until build `id`'s `hoist build --push` logged that it is pushing (through the gate, where it
/// is held until the gate opens).
fn wait_for_push(serve: &Serve, id: i64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let b = serve.build(id);
        let log = b["log"].as_str().unwrap();
        if log.contains("pushing layers for ") {
            assert_eq!(b["state"], "running", "{log}");
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the build never reached its push: {b:#}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn status_page_lists_builds_and_shows_logs_in_headless_chromium() {
    let tmp = tempfile::tempdir().unwrap();
    let registry = TestRegistry::start(None);
    let gate = Gate::start(registry.port);
    let reg = format!("127.0.0.1:{}", gate.port);
    let (work, bare) = repos(tmp.path());
    let config = write_config(tmp.path(), &reg, &bare, 1);
    let serve = Serve::start(&config);
    install_hook(&config, &bare, &serve);

    let id = queued_ids(&git(&work, &["push", "origin", "main"]))[0];
    git(&work, &["checkout", "-q", "-b", "feature-page"]);
    let queued = queued_ids(&git(&work, &["push", "origin", "feature-page"]))[0];
    // The build is held at its push: the page shows it running with the log so far.
    wait_for_push(&serve, id);
    // The list shows one build running and one queued.
    let dom = chromium_dom(&format!("http://{}/", serve.addr));
    assert!(dom.contains(r#"<td class="running">running</td>"#), "{dom}");
    assert!(dom.contains(r#"<td class="queued">queued</td>"#), "{dom}");
    assert!(dom.contains("refs/heads/feature-page"), "{dom}");
    assert!(dom.contains(&format!("{reg}/team/app:feat-page")), "{dom}");

    gate.open.store(true, Ordering::SeqCst);
    let done = serve.wait_final(id);
    assert_eq!(done["state"], "succeeded");
    serve.wait_final(queued);
    let dom = chromium_dom(&format!("http://{}/#build-{id}", serve.addr));
    assert!(dom.contains("Log of build #1"), "{dom}");
    assert!(dom.contains("naming to"), "the build log is shown: {dom}");
    assert!(
        dom.contains(r#"<td class="succeeded">succeeded</td>"#),
        "{dom}"
    );
    assert!(
        !dom.contains(r#"class="running""#) && !dom.contains(r#"class="queued""#),
        "{dom}"
    );
    let digest = done["digest"].as_str().unwrap();
    assert!(
        dom.contains(&format!("latest: digest: {digest}")),
        "the whole log is shown: {dom}"
    );
}

#[test]
fn at_most_concurrency_builds_run_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let registry = TestRegistry::start(None);
    let gate = Gate::start(registry.port);
    let reg = format!("127.0.0.1:{}", gate.port);
    let (work, bare) = repos(tmp.path());
    let config = write_config(tmp.path(), &reg, &bare, 2);
    let serve = Serve::start(&config);
    install_hook(&config, &bare, &serve);

    let mut ids = queued_ids(&git(&work, &["push", "origin", "main"]));
    for branch in ["feature-one", "feature-two"] {
        git(&work, &["checkout", "-q", "-b", branch]);
        ids.extend(queued_ids(&git(&work, &["push", "origin", branch])));
    }
    assert_eq!(ids.len(), 3);
    serve.wait_state(ids[0], "running");
    serve.wait_state(ids[1], "running");
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        serve.build(ids[2])["state"],
        "queued",
        "only 2 builds at once"
    );
    gate.open.store(true, Ordering::SeqCst);
    for id in &ids {
        let b = serve.wait_final(*id);
        assert_eq!(b["state"], "succeeded", "{}", b["log"].as_str().unwrap());
    }
    assert_eq!(
        skopeo_tags(&registry_host(registry.port), "team/app"),
        ["feat-one", "feat-two", "latest"]
    );
}

#[test]
fn sigterm_interrupts_the_running_build_and_the_next_start_reruns_it() {
    let tmp = tempfile::tempdir().unwrap();
    let registry = TestRegistry::start(None);
    let gate = Gate::start(registry.port);
    let reg = format!("127.0.0.1:{}", gate.port);
    let (work, bare) = repos(tmp.path());
    let config = write_config(tmp.path(), &reg, &bare, 1);
    let mut serve = Serve::start(&config);
    install_hook(&config, &bare, &serve);
    let id = queued_ids(&git(&work, &["push", "origin", "main"]))[0];
    wait_for_push(&serve, id);
    let store = tmp.path().join("store");
    let store = store.to_str().unwrap();
    let pushing = format!("{store} build --progress=plain --push ");
    assert_eq!(
        processes_mentioning(&pushing).len(),
        1,
        "hoist build --push runs (held at the gate)"
    );

    // SIGTERM to the service alone: it stops its build child and exits.
    Command::new("kill")
        .args(["-TERM", &serve.child.id().to_string()])
        .status()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = serve.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "hoist serve did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}\n{}", serve.log());
    assert!(
        processes_mentioning(&pushing).is_empty(),
        "no build child outlives the service"
    );
    let log = std::fs::read_to_string(tmp.path().join(format!("state/logs/{id}.log"))).unwrap();
    assert!(log.contains("interrupted"), "{log}");

    gate.open.store(true, Ordering::SeqCst);
    let serve = Serve::start(&config);
    assert!(serve.log().contains("requeued 1 build"), "{}", serve.log());
    let b = serve.wait_final(id);
    assert_eq!(b["state"], "succeeded", "{}", b["log"].as_str().unwrap());
    assert_eq!(b["attempts"], 2);
    assert_eq!(
        skopeo_tags(&registry_host(registry.port), "team/app"),
        ["latest"]
    );
}

#[test]
fn status_token_guards_the_page_and_api_but_not_webhooks() {
    const TOKEN: &str = "status-t0ken-for-tests";
    let tmp = tempfile::tempdir().unwrap();
    let registry = TestRegistry::start(None);
    let reg = format!("127.0.0.1:{}", registry.port);
    let (work, bare) = repos(tmp.path());
    let config = write_config(tmp.path(), &reg, &bare, 1);
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, format!("status_token = \"{TOKEN}\"\n{text}")).unwrap();
    let mut serve = Serve::start(&config);
    install_hook(&config, &bare, &serve);

    // The hook (signed with the webhook secret, no status token) still queues a build.
    let id = queued_ids(&git(&work, &["push", "origin", "main"]))[0];
    serve.token = Some(TOKEN.into());
    let b = serve.wait_final(id);
    assert_eq!(b["state"], "succeeded", "{}", b["log"].as_str().unwrap());

    // Without the token (or with a wrong one, or with it in the wrong place) nothing is shown.
    let addr = serve.addr.clone();
    let get =
        |path: &str, headers: &[(&str, &str)]| http_with_headers(&addr, "GET", path, headers, b"");
    let wrong = "Bearer status-t0ken-for-test";
    for path in [
        "/api/builds".to_string(),
        format!("/api/builds/{id}"),
        format!("/api/builds/{id}/log"),
        format!("/api/builds/{id}/events"),
        format!("/api/builds?token={TOKEN}"),
    ] {
        for headers in [
            vec![],
            vec![("Authorization", wrong)],
            vec![("Cookie", "hoist_status=00")],
        ] {
            let (status, response_headers, body) = get(&path, &headers);
            assert_eq!(status, 401, "{path} {headers:?}: {body}");
            assert!(
                !body.contains("refs/heads/main") && !body.contains("git archive"),
                "{body}"
            );
            assert!(
                response_headers
                    .iter()
                    .any(|(k, v)| k == "www-authenticate" && v.starts_with("Bearer"))
            );
        }
    }
    let (status, _, page) = get("/", &[]);
    assert_eq!(status, 401);
    assert!(
        page.contains("needs the status token") && !page.contains("EventSource"),
        "{page}"
    );
    assert_eq!(get("/?token=wrong", &[]).0, 401);
    assert_eq!(get("/healthz", &[]).0, 200);

    // With the bearer token: the API answers.
    let bearer = format!("Bearer {TOKEN}");
    let (status, _, list) = get("/api/builds", &[("Authorization", &bearer)]);
    assert_eq!(status, 200, "{list}");
    assert!(list.contains("refs/heads/main"), "{list}");
    let (status, _, log) = get(
        &format!("/api/builds/{id}/log"),
        &[("Authorization", &bearer)],
    );
    assert_eq!(
        (status, log.contains("pushing layers for")),
        (200, true),
        "{log}"
    );

    // `/?token=` sets a cookie (not the token itself) and sends the browser back to the page.
    let (status, headers, _) = get(&format!("/?token={TOKEN}"), &[]);
    assert_eq!(status, 303);
    let cookie = headers
        .iter()
        .find(|(k, _)| k == "set-cookie")
        .map(|(_, v)| v.split(';').next().unwrap().to_string())
        .expect("a cookie");
    assert!(
        cookie.starts_with("hoist_status=") && !cookie.contains(TOKEN),
        "{cookie}"
    );
    assert!(headers.iter().any(|(k, v)| k == "location" && v == "./"));
    let (status, _, page) = get("/", &[("Cookie", &cookie)]);
    assert_eq!(
        (status, page.contains("EventSource")),
        (200, true),
        "{page}"
    );
    let (status, _, list) = get("/api/builds", &[("Cookie", &cookie)]);
    assert_eq!(
        (status, list.contains("refs/heads/main")),
        (200, true),
        "{list}"
    );

    // In a browser: the token link shows the builds and the log; a fresh browser sees neither.
    let dom = chromium_dom(&format!("http://{addr}/?token={TOKEN}#build-{id}"));
    assert!(
        dom.contains(r#"<td class="succeeded">succeeded</td>"#),
        "{dom}"
    );
    assert!(dom.contains("pushing layers for"), "the log streams: {dom}");
    let dom = chromium_dom(&format!("http://{addr}/#build-{id}"));
    assert!(dom.contains("needs the status token"), "{dom}");
    assert!(
        !dom.contains("refs/heads/main") && !dom.contains("succeeded"),
        "{dom}"
    );
}

/// A signed GitHub push of `sha` to main, with delivery id `delivery`; returns the status and body.
fn github_push(serve: &Serve, sha: &str, delivery: &str) -> (u16, String) {
    let body = format!(
        r#"{{"ref":"refs/heads/main","before":"{z}","after":"{sha}","repository":{{"full_name":"app"}}}}"#,
        z = "0".repeat(40)
    );
    let sig = format!("sha256={}", hmac_hex(body.as_bytes()));
    serve.request(
        "POST",
        "/hooks/app",
        &[
            ("Content-Type", "application/json"),
            ("X-GitHub-Event", "push"),
            ("X-GitHub-Delivery", delivery),
            ("X-Hub-Signature-256", &sig),
        ],
        body.as_bytes(),
    )
}

fn queued_id(reply: &(u16, String)) -> i64 {
    assert_eq!(reply.0, 202, "{}", reply.1);
    let v: Value = serde_json::from_str(&reply.1).unwrap();
    v["queued"][0].as_i64().unwrap()
}

#[test]
fn replayed_and_late_pushes_never_roll_the_tag_back() {
    let tmp = tempfile::tempdir().unwrap();
    let registry = TestRegistry::start(None);
    // The gate holds the first build's push, so the second push arrives while it still runs.
    let gate = Gate::start(registry.port);
    let reg = format!("127.0.0.1:{}", gate.port);
    let (work, bare) = repos(tmp.path());
    let config = write_config(tmp.path(), &reg, &bare, 2);
    git(&work, &["push", "-q", "origin", "main"]);
    let old_sha = git(&work, &["rev-parse", "HEAD"]).trim().to_string();
    let serve = Serve::start(&config);

    let old = queued_id(&github_push(&serve, &old_sha, "delivery-old"));
    wait_for_push(&serve, old);
    let new_sha = commit(&work, "hello.txt", "hello 2\n");
    git(&work, &["push", "-q", "origin", "main"]);
    let new = queued_id(&github_push(&serve, &new_sha, "delivery-new"));
    // Two workers, but the newer build of the same tag waits for the older one to push.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !serve.build(new)["log"]
        .as_str()
        .unwrap()
        .contains("waiting for another build of")
    {
        assert!(Instant::now() < deadline, "{:#}", serve.build(new));
        std::thread::sleep(Duration::from_millis(50));
    }
    gate.open.store(true, Ordering::SeqCst);
    let (o, n) = (serve.wait_final(old), serve.wait_final(new));
    assert_eq!(o["state"], "succeeded", "{}", o["log"].as_str().unwrap());
    assert_eq!(n["state"], "succeeded", "{}", n["log"].as_str().unwrap());
    assert!(n["finished_at"].as_i64() >= o["finished_at"].as_i64());
    let latest = format!("{}/team/app:latest", registry_host(registry.port));
    let new_digest = n["digest"].as_str().unwrap().to_string();
    assert_ne!(o["digest"], n["digest"]);
    assert_eq!(
        skopeo_inspect(&latest, false)["Digest"],
        new_digest.as_str()
    );

    // The captured old request, replayed as is: refused, logged, nothing queued.
    let before = serve.builds().len();
    let (status, body) = github_push(&serve, &old_sha, "delivery-old");
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("replay"), "{body}");
    assert!(
        serve
            .log()
            .contains("delivery github:delivery-old was seen before")
    );
    assert_eq!(serve.builds().len(), before);

    // The same signed body under a fresh delivery id: queued, but the old commit is not main's tip,
    // so nothing is built or pushed and the tag stays on the newer image.
    let replay = queued_id(&github_push(&serve, &old_sha, "delivery-forged"));
    let r = serve.wait_final(replay);
    assert_eq!(r["state"], "cancelled", "{r:#}");
    let why = r["error"].as_str().unwrap();
    assert!(
        why.contains("superseded") && why.contains(&new_sha[..12]),
        "{why}"
    );
    assert!(!r["log"].as_str().unwrap().contains("hoist build"), "{r:#}");
    assert_eq!(
        skopeo_inspect(&latest, false)["Digest"],
        new_digest.as_str()
    );

    // Delivery ids outlive a restart.
    serve.kill();
    let serve = Serve::start(&config);
    assert_eq!(github_push(&serve, &new_sha, "delivery-new").0, 409);
    assert_eq!(github_push(&serve, &old_sha, "delivery-old").0, 409);

    // A force-push that rewinds main is the tip, so its build runs and moves the tag.
    git(&work, &["reset", "-q", "--hard", &old_sha]);
    git(&work, &["push", "-q", "-f", "origin", "main"]);
    let rewind = queued_id(&github_push(&serve, &old_sha, "delivery-rewind"));
    let w = serve.wait_final(rewind);
    assert_eq!(w["state"], "succeeded", "{}", w["log"].as_str().unwrap());
    assert_eq!(
        skopeo_inspect(&latest, false)["Digest"],
        o["digest"].as_str().unwrap()
    );
}
