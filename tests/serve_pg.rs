//! `hoist serve` processes sharing a PostgreSQL queue (`queue = "postgres://…"`), against a real
//! private cluster (fixtures/pg-cluster.sh), a real registry and real `hoist build --push` runs: a
//! burst split between workers with every build done once, a killed worker's build requeued and
//! finished by another, label-constrained builds, sticky routing, logs and the API from any process.

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

use common::{HOIST, TestRegistry, free_port, git};

const SECRET: &str = "s3cr3t-for-pg-tests";

/// A private PostgreSQL cluster on a free loopback port, removed on drop.
struct Pg {
    /// Keeps the searchable parent directory alive.
    _parent: tempfile::TempDir,
    dir: PathBuf,
    url: String,
}

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

impl Pg {
    fn start() -> Pg {
        use std::os::unix::fs::PermissionsExt;
        let parent = tempfile::tempdir().unwrap();
        // The cluster runs as a non-root user, who must reach its directory.
        std::fs::set_permissions(parent.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let dir = parent.path().join("pg");
        let out = Command::new("bash")
            .arg(script("pg-cluster.sh"))
            .arg("start")
            .arg(&dir)
            .arg(free_port().to_string())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "starting PostgreSQL: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let url = String::from_utf8(out.stdout).unwrap().trim().to_string();
        Pg {
            _parent: parent,
            dir,
            url,
        }
    }
}

impl Drop for Pg {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(script("pg-cluster.sh"))
            .arg("stop")
            .arg(&self.dir)
            .status();
    }
}

/// One `hoist serve` process (its own state directory and store: another machine, as far as it
/// knows), in its own process group so a kill takes its builds too.
struct Serve {
    child: Child,
    addr: String,
    stderr: PathBuf,
}

impl Serve {
    fn start(config: &Path, args: &[&str]) -> Serve {
        let stderr = config.with_extension(format!("serve-{}.log", free_port()));
        let mut child = Command::new(HOIST)
            .args(["serve", "--config"])
            .arg(config)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .process_group(0)
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        let addr = loop {
            let text = std::fs::read_to_string(&stderr).unwrap_or_default();
            if let Some(line) = text.lines().find(|l| l.contains("listening on http://")) {
                break line.rsplit("http://").next().unwrap().trim().to_string();
            }
            let exited = child.try_wait().ok().flatten().is_some();
            assert!(
                Instant::now() < deadline && !exited,
                "hoist serve did not start:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        Serve {
            child,
            addr,
            stderr,
        }
    }

    /// SIGKILL to the service process alone, as when it crashes: its build child must not outlive it.
    fn kill_service_only(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }

    /// SIGKILL to the whole group: the service and the build it runs die mid-flight.
    fn kill(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.wait();
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    fn get(&self, path: &str) -> Value {
        let (status, body) = http(&self.addr, "GET", path, &[], b"");
        assert_eq!(status, 200, "GET {path}: {body}");
        serde_json::from_str(&body).unwrap()
    }

    fn build(&self, id: i64) -> Value {
        self.get(&format!("/api/builds/{id}"))
    }

    fn builds(&self) -> Vec<Value> {
        self.get("/api/builds?limit=1000")
            .as_array()
            .unwrap()
            .clone()
    }

    /// Waits until build `id` is final; returns it with its log.
    fn wait_final(&self, id: i64) -> Value {
        self.wait_until(id, "a final state", |b| {
            ["succeeded", "failed", "cancelled"].contains(&b["state"].as_str().unwrap())
        })
    }

    fn wait_until(&self, id: i64, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let b = self.build(id);
            if done(&b) {
                return b;
            }
            assert!(
                Instant::now() < deadline,
                "build {id} never reached {what}: {b:#}\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A signed GitHub push of `sha` to `git_ref` of `repo`; returns the queued build ids.
    fn push(&self, repo: &str, git_ref: &str, sha: &str) -> Vec<i64> {
        let (status, reply) =
            self.push_delivery(repo, git_ref, sha, &format!("{repo}-{git_ref}-{sha}"));
        assert_eq!(status, 202, "{reply}");
        let v: Value = serde_json::from_str(&reply).unwrap();
        v["queued"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_i64().unwrap())
            .collect()
    }

    /// The push webhook with delivery id `delivery`: the status and body.
    fn push_delivery(&self, repo: &str, git_ref: &str, sha: &str, delivery: &str) -> (u16, String) {
        let body = format!(
            r#"{{"ref":"{git_ref}","before":"{z}","after":"{sha}","repository":{{"full_name":"{repo}"}}}}"#,
            z = "0".repeat(40)
        );
        let sig = format!(
            "sha256={}",
            hoist_serve::webhook::sign(SECRET, body.as_bytes())
        );
        http(
            &self.addr,
            "POST",
            &format!("/hooks/{repo}"),
            &[
                ("Content-Type", "application/json"),
                ("X-GitHub-Event", "push"),
                ("X-GitHub-Delivery", delivery),
                ("X-Hub-Signature-256", &sig),
            ],
            body.as_bytes(),
        )
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            self.kill();
        }
    }
}

/// One HTTP/1.1 request (Connection: close); returns the status and body.
fn http(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String) {
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
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        if line.trim().is_empty() {
            break;
        }
        chunked |= line
            .to_ascii_lowercase()
            .starts_with("transfer-encoding: chunked");
    }
    let mut raw = Vec::new();
    reader.read_to_end(&mut raw).unwrap();
    let body = if chunked { dechunk(&raw) } else { raw };
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// What a server-sent event stream delivers within `for_`.
fn sse_for(addr: &str, path: &str, for_: Duration) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n"
    )
    .unwrap();
    let end = Instant::now() + for_;
    let mut got = Vec::new();
    let mut buf = [0u8; 8192];
    while let Some(left) = end.checked_duration_since(Instant::now()) {
        s.set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .unwrap();
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

/// A bare repository `name.git` under `root` with one branch per entry of `branches`, each a commit
/// of a tiny image; returns the bare path and each branch's commit.
fn repo(root: &Path, name: &str, branches: &[&str]) -> (PathBuf, Vec<String>) {
    let bare = root.join(format!("{name}.git"));
    let work = root.join(format!("{name}-work"));
    std::fs::create_dir_all(&work).unwrap();
    git(
        root,
        &["init", "-q", "--bare", "-b", "main", bare.to_str().unwrap()],
    );
    git(&work, &["init", "-q", "-b", "main"]);
    std::fs::write(work.join("Dockerfile"), "FROM scratch\nCOPY f.txt /\n").unwrap();
    std::fs::write(work.join("f.txt"), format!("{name}\n")).unwrap();
    git(&work, &["add", "."]);
    git(&work, &["commit", "-qm", "first"]);
    git(&work, &["remote", "add", "origin", bare.to_str().unwrap()]);
    let mut shas = Vec::new();
    for b in branches {
        git(&work, &["checkout", "-q", "-B", b, "main"]);
        std::fs::write(work.join("f.txt"), format!("{name} {b}\n")).unwrap();
        git(&work, &["commit", "-qam", b]);
        shas.push(git(&work, &["rev-parse", "HEAD"]).trim().to_string());
        git(&work, &["push", "-q", "origin", b]);
    }
    (bare, shas)
}

/// A `hoist.toml` for one process: its own state and store under `root/<name>`, the shared queue.
/// `extra` goes at the top level; `rule_labels`, when given, is every rule's `labels`.
#[allow(clippy::too_many_arguments)]
fn config(
    root: &Path,
    name: &str,
    pg: &Pg,
    registry: &str,
    repos: &[(&str, &Path)],
    sticky_seconds: f64,
    extra: &str,
    rule_labels: &str,
) -> PathBuf {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let mut text = format!(
        r#"listen = "127.0.0.1:0"
state_dir = "state"
store = "store"
registry = "{registry}/team"
secret = "{SECRET}"
queue = "{url}"
worker_name = "{name}"
{lease}
sticky_seconds = {sticky_seconds}
{extra}
"#,
        url = pg.url,
        // Short leases keep the tests quick; a test may set its own in `extra`.
        lease = if extra.contains("lease_seconds") {
            ""
        } else {
            "lease_seconds = 2"
        }
    );
    for (repo, bare) in repos {
        text.push_str(&format!(
            r#"
[[repository]]
name = "{repo}"
url = "file://{bare}"
[[repository.rule]]
source_type = "branch"
source = "/.*/"
tag = "{{sourceref}}"
{labels}
"#,
            bare = bare.display(),
            labels = if rule_labels.is_empty() {
                String::new()
            } else {
                format!("labels = {rule_labels}")
            }
        ));
    }
    let path = dir.join("hoist.toml");
    std::fs::write(&path, text).unwrap();
    path
}

// ---------------------------------------------------------------------------------------------

#[test]
fn three_processes_split_a_burst_of_pushes_and_build_each_once() {
    let tmp = tempfile::tempdir().unwrap();
    let pg = Pg::start();
    let registry = TestRegistry::start(None);
    let reg = format!("127.0.0.1:{}", registry.port);
    let branches = ["b0", "b1", "b2", "b3", "b4", "b5"];
    let names = ["r0", "r1", "r2", "r3", "r4"];
    let repos: Vec<(String, PathBuf, Vec<String>)> = names
        .iter()
        .map(|n| {
            let (bare, shas) = repo(tmp.path(), n, &branches);
            (n.to_string(), bare, shas)
        })
        .collect();
    let list: Vec<(&str, &Path)> = repos
        .iter()
        .map(|(n, b, _)| (n.as_str(), b.as_path()))
        .collect();
    // Short sticky wait: five repositories, three workers; the burst must spread.
    let sticky = 0.5;
    let web = Serve::start(
        &config(tmp.path(), "web", &pg, &reg, &list, sticky, "", ""),
        &["--role", "web"],
    );
    let workers: Vec<Serve> = ["w1", "w2", "w3"]
        .iter()
        .map(|w| {
            Serve::start(
                &config(tmp.path(), w, &pg, &reg, &list, sticky, "", ""),
                &["--role", "worker"],
            )
        })
        .collect();

    let mut ids = Vec::new();
    for (i, b) in branches.iter().enumerate() {
        for (name, _, shas) in &repos {
            ids.extend(web.push(name, &format!("refs/heads/{b}"), &shas[i]));
        }
    }
    assert_eq!(ids.len(), 30);
    let mut sorted = ids.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), 30, "ids are unique: {ids:?}");

    let mut by_worker = std::collections::BTreeMap::<String, usize>::new();
    for id in &ids {
        let b = web.wait_final(*id);
        assert_eq!(b["state"], "succeeded", "{b:#}");
        assert_eq!(b["attempts"], 1, "built once: {b:#}");
        assert!(
            b["digest"].as_str().unwrap().starts_with("sha256:"),
            "{b:#}"
        );
        let log = b["log"].as_str().unwrap();
        assert_eq!(
            log.matches("build --progress=plain --push").count(),
            1,
            "one hoist build: {log}"
        );
        *by_worker
            .entry(b["worker"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    assert!(
        by_worker.len() >= 2 && by_worker.keys().all(|w| w.starts_with('w')),
        "the workers split the burst (and the web process built nothing): {by_worker:?}"
    );
    // Each build ran in exactly one process.
    for id in &ids {
        let done = format!("build #{id} ");
        let runs: usize = workers
            .iter()
            .map(|w| {
                w.log()
                    .lines()
                    .filter(|l| l.contains(&done) && l.contains("succeeded"))
                    .count()
            })
            .sum();
        assert_eq!(runs, 1, "build {id}");
    }
    for (name, _, _) in &repos {
        // Every branch's tag, and the build cache every worker shares through the registry.
        assert_eq!(
            skopeo_tags(&reg, &format!("team/{name}")),
            ["b0", "b1", "b2", "b3", "b4", "b5", "buildcache"],
            "{name}"
        );
    }
    // Every process answers for the whole queue, and lists the workers.
    for w in &workers {
        assert_eq!(w.builds().len(), 30);
    }
    let seen = web.get("/api/workers");
    let names: Vec<&str> = seen
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["w1", "w2", "w3", "web"], "{seen:#}");
    // A worker refuses webhooks: they go to a web process.
    let (status, body) = http(&workers[0].addr, "POST", "/hooks/r0", &[], b"{}");
    assert_eq!(status, 503, "{body}");
}

#[test]
fn a_killed_workers_build_is_requeued_after_its_lease_and_finished_by_another() {
    let tmp = tempfile::tempdir().unwrap();
    let pg = Pg::start();
    let registry = TestRegistry::start(None);
    // The gate holds the first worker's push, so the build is mid-flight when its worker dies.
    let gate = Gate::start(registry.port);
    let reg = format!("127.0.0.1:{}", gate.port);
    let (bare, shas) = repo(tmp.path(), "app", &["main"]);
    let list = [("app", bare.as_path())];
    // No registry cache: its import would wait at the closed gate before the build starts.
    let nocache = "registry_cache = false";
    let mut a = Serve::start(
        &config(tmp.path(), "a", &pg, &reg, &list, 30.0, nocache, ""),
        &[],
    );
    let id = a.push("app", "refs/heads/main", &shas[0])[0];
    let b = a.wait_until(id, "its push", |b| {
        b["log"].as_str().unwrap().contains("pushing layers for ")
    });
    assert_eq!(
        (b["state"].as_str(), b["worker"].as_str()),
        (Some("running"), Some("a"))
    );
    assert_eq!(b["attempts"], 1);
    let worker_b = Serve::start(
        &config(tmp.path(), "b", &pg, &reg, &list, 30.0, nocache, ""),
        &["--role", "worker"],
    );
    // Another process streams the live log of the build running on a (the status page's stream).
    let events = sse_for(
        &worker_b.addr,
        &format!("/api/builds/{id}/events"),
        Duration::from_secs(2),
    );
    assert!(
        events.contains("event: log") && events.contains("pushing layers for "),
        "{events}"
    );
    assert!(
        events.contains(r#""state":"running""#) && events.contains(r#""worker":"a""#),
        "{events}"
    );
    let state_a = tmp.path().join("a/state");
    assert_eq!(
        processes_mentioning(&format!("{}/work/{id}", state_a.display())).len(),
        1,
        "a's hoist build runs"
    );
    a.kill_service_only();
    // Its build died with it (no orphan may push later), and b waits out the lease.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !processes_mentioning(&format!("{}/work/{id}", state_a.display())).is_empty() {
        assert!(Instant::now() < deadline, "a's hoist build outlived it");
        std::thread::sleep(Duration::from_millis(50));
    }
    let now = worker_b.build(id);
    assert_eq!(
        (now["state"].as_str(), now["worker"].as_str()),
        (Some("running"), Some("a"))
    );
    gate.open.store(true, Ordering::SeqCst);
    let done = worker_b.wait_final(id);
    assert_eq!(done["state"], "succeeded", "{done:#}");
    assert_eq!(done["worker"], "b");
    assert_eq!(done["attempts"], 2);
    let log = done["log"].as_str().unwrap();
    // One log across both workers: a's attempt (shipped before it died), the requeue, b's attempt.
    let first = log.find(&format!("build #{id} (attempt 1)")).expect(log);
    let lapse = log.find("lease of worker a expired").expect(log);
    let second = log.find(&format!("build #{id} (attempt 2)")).expect(log);
    assert!(first < lapse && lapse < second, "{log}");
    // Reading on from an offset (as the page's stream does) gives exactly the rest, from any chunk.
    for cut in [0, 1, lapse, second, log.len() - 1, log.len()] {
        let (status, rest) = http(
            &worker_b.addr,
            "GET",
            &format!("/api/builds/{id}/log?offset={cut}"),
            &[],
            b"",
        );
        assert_eq!(status, 200);
        assert_eq!(rest, log[cut..], "from {cut}");
    }
    assert_eq!(skopeo_tags(&reg, "team/app"), ["main"]);
    assert!(
        worker_b
            .log()
            .contains(&format!("build #{id} app refs/heads/main: succeeded"))
    );
}

#[test]
fn label_constrained_builds_wait_for_a_matching_worker() {
    let tmp = tempfile::tempdir().unwrap();
    let pg = Pg::start();
    let registry = TestRegistry::start(None);
    let reg = format!("127.0.0.1:{}", registry.port);
    let (bare, shas) = repo(tmp.path(), "app", &["main"]);
    let list = [("app", bare.as_path())];
    let plain = Serve::start(
        &config(tmp.path(), "plain", &pg, &reg, &list, 0.0, "", r#"["gpu"]"#),
        &[],
    );
    let id = plain.push("app", "refs/heads/main", &shas[0])[0];
    std::thread::sleep(Duration::from_millis(2500));
    let b = plain.build(id);
    assert_eq!(b["state"], "queued", "no worker has the label: {b:#}");
    assert_eq!(b["labels"], serde_json::json!(["gpu"]));
    let gpu = Serve::start(
        &config(
            tmp.path(),
            "gpu",
            &pg,
            &reg,
            &list,
            0.0,
            r#"labels = ["fast"]"#,
            r#"["gpu"]"#,
        ),
        &["--role", "worker", "--label", "gpu"],
    );
    let done = plain.wait_final(id);
    assert_eq!(done["state"], "succeeded", "{done:#}");
    assert_eq!(done["worker"], "gpu");
    let workers = gpu.get("/api/workers");
    let platform = if cfg!(target_arch = "x86_64") {
        "linux/amd64"
    } else {
        "linux/arm64"
    };
    let labels = |name: &str| {
        workers
            .as_array()
            .unwrap()
            .iter()
            .find(|w| w["name"] == name)
            .unwrap_or_else(|| panic!("{workers:#}"))["labels"]
            .clone()
    };
    assert_eq!(labels("gpu"), serde_json::json!([platform, "fast", "gpu"]));
    assert_eq!(labels("plain"), serde_json::json!([platform]));

    // A worker new to the repository (empty store) still hits the cache, through the registry.
    drop(gpu);
    let _fresh = Serve::start(
        &config(tmp.path(), "fresh", &pg, &reg, &list, 0.0, "", r#"["gpu"]"#),
        &["--role", "worker", "--label", "gpu"],
    );
    git(
        &tmp.path().join("app-work"),
        &["push", "-q", "origin", "main:again"],
    );
    let again = plain.push("app", "refs/heads/again", &shas[0])[0];
    let done = plain.wait_final(again);
    assert_eq!(done["state"], "succeeded", "{done:#}");
    assert_eq!(done["worker"], "fresh");
    let log = done["log"].as_str().unwrap();
    assert!(
        log.contains("cached steps") && log.contains("CACHED"),
        "{log}"
    );

    // The status page of any process shows which worker ran each build, and the workers.
    let dom = chromium_dom(&format!("http://{}/", plain.addr));
    assert!(dom.contains("<td>fresh</td><td>1</td>"), "{dom}");
    assert!(dom.contains("<h2>Workers</h2>"), "{dom}");
    assert!(
        dom.contains(&format!(
            "<td>fresh</td><td>{platform}, gpu</td><td>0 / 1</td>"
        )),
        "{dom}"
    );
    assert!(
        dom.contains(&format!("<td>plain</td><td>{platform}</td>")),
        "{dom}"
    );
    assert!(!dom.contains("workerlist\" hidden"), "{dom}");
}

#[test]
fn builds_of_a_repository_stick_to_the_worker_that_built_it_last() {
    let tmp = tempfile::tempdir().unwrap();
    let pg = Pg::start();
    let registry = TestRegistry::start(None);
    let reg = format!("127.0.0.1:{}", registry.port);
    let branches = ["b0", "b1", "b2", "b3"];
    let (bare, shas) = repo(tmp.path(), "app", &branches);
    let list = [("app", bare.as_path())];
    let one = Serve::start(
        &config(tmp.path(), "one", &pg, &reg, &list, 30.0, "", ""),
        &[],
    );
    let two = Serve::start(
        &config(tmp.path(), "two", &pg, &reg, &list, 30.0, "", ""),
        &[],
    );
    let first = one.push("app", "refs/heads/b0", &shas[0])[0];
    let owner = one.wait_final(first)["worker"]
        .as_str()
        .unwrap()
        .to_string();
    // Each later push goes to the other process, whose own workers are woken at once: they leave the
    // build to the repository's last worker, which takes it on its next poll.
    let (owner_proc, other) = if owner == "one" {
        (&one, &two)
    } else {
        (&two, &one)
    };
    for (i, b) in branches.iter().enumerate().skip(1) {
        let id = other.push("app", &format!("refs/heads/{b}"), &shas[i])[0];
        let done = owner_proc.wait_final(id);
        assert_eq!(done["state"], "succeeded", "{done:#}");
        assert_eq!(done["worker"], owner.as_str(), "sticky: {done:#}");
    }
}

#[test]
fn an_older_commit_never_moves_a_tag_back_across_processes() {
    let tmp = tempfile::tempdir().unwrap();
    let pg = Pg::start();
    let registry = TestRegistry::start(None);
    // The gate holds the older build's push, so the newer one arrives while it still runs.
    let gate = Gate::start(registry.port);
    let reg = format!("127.0.0.1:{}", gate.port);
    let (bare, shas) = repo(tmp.path(), "app", &["main"]);
    let list = [("app", bare.as_path())];
    let nocache = "registry_cache = false";
    let a = Serve::start(
        &config(tmp.path(), "a", &pg, &reg, &list, 0.0, nocache, ""),
        &[],
    );
    let b = Serve::start(
        &config(tmp.path(), "b", &pg, &reg, &list, 0.0, nocache, ""),
        &[],
    );
    let old_sha = shas[0].clone();
    let old = a.push("app", "refs/heads/main", &old_sha)[0];
    let o = a.wait_until(old, "its push", |b| {
        b["log"].as_str().unwrap().contains("pushing layers for ")
    });
    let work = tmp.path().join("app-work");
    std::fs::write(work.join("f.txt"), "newer\n").unwrap();
    git(&work, &["commit", "-qam", "newer"]);
    git(&work, &["push", "-q", "origin", "main"]);
    let new_sha = git(&work, &["rev-parse", "HEAD"]).trim().to_string();
    let new = b.push("app", "refs/heads/main", &new_sha)[0];
    // The other process's worker takes it (the first is busy) and waits for the tag.
    let n = b.wait_until(new, "waiting for the tag", |b| {
        b["log"]
            .as_str()
            .unwrap()
            .contains("waiting for another build of")
    });
    assert_ne!(n["worker"], o["worker"], "{n:#}");
    gate.open.store(true, Ordering::SeqCst);
    let (o, n) = (a.wait_final(old), b.wait_final(new));
    assert_eq!(o["state"], "succeeded", "{o:#}");
    assert_eq!(n["state"], "succeeded", "{n:#}");
    assert!(n["finished_at"].as_i64() >= o["finished_at"].as_i64());
    assert_ne!(o["digest"], n["digest"]);
    let latest = format!("{reg}/team/app:main");
    assert_eq!(
        common::skopeo_inspect(&latest, false)["Digest"],
        n["digest"]
    );
    // A late push of the older commit, wherever it runs, is not the tip: nothing moves.
    // The captured delivery, replayed to the other process: refused, the ids are shared.
    let replay = b.push_delivery(
        "app",
        "refs/heads/main",
        &old_sha,
        &format!("app-refs/heads/main-{old_sha}"),
    );
    assert_eq!(replay.0, 409, "{}", replay.1);
    let late = b.push_delivery("app", "refs/heads/main", &old_sha, "a-fresh-id");
    assert_eq!(late.0, 202, "{}", late.1);
    let late: Value = serde_json::from_str(&late.1).unwrap();
    let late = late["queued"][0].as_i64().unwrap();
    let l = a.wait_final(late);
    assert_eq!(l["state"], "cancelled", "{l:#}");
    assert!(
        l["error"].as_str().unwrap().contains(&new_sha[..12]),
        "{l:#}"
    );
    assert_eq!(
        common::skopeo_inspect(&latest, false)["Digest"],
        n["digest"]
    );
}

#[test]
fn a_stalled_worker_that_lost_its_lease_stops_its_build() {
    let tmp = tempfile::tempdir().unwrap();
    let pg = Pg::start();
    let registry = TestRegistry::start(None);
    let gate = Gate::start(registry.port);
    let reg = format!("127.0.0.1:{}", gate.port);
    let (bare, shas) = repo(tmp.path(), "app", &["main"]);
    let list = [("app", bare.as_path())];
    let nocache = "registry_cache = false";
    let a = Serve::start(
        &config(tmp.path(), "a", &pg, &reg, &list, 30.0, nocache, ""),
        &[],
    );
    let id = a.push("app", "refs/heads/main", &shas[0])[0];
    a.wait_until(id, "its push", |b| {
        b["log"].as_str().unwrap().contains("pushing layers for ")
    });
    let b = Serve::start(
        &config(tmp.path(), "b", &pg, &reg, &list, 30.0, nocache, ""),
        &["--role", "worker"],
    );
    // a stalls (its build goes on, held at the gate); its lease lapses and b takes the build over.
    let a_pid = a.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-STOP", &a_pid])
            .status()
            .unwrap()
            .success()
    );
    b.wait_until(id, "b's attempt", |x| x["worker"] == "b");
    let a_build = format!("{}/work/{id}", tmp.path().join("a/state").display());
    assert_eq!(
        processes_mentioning(&a_build).len(),
        1,
        "a's build still runs"
    );
    // Back, a learns it lost the lease and stops its build before it can push.
    assert!(
        Command::new("kill")
            .args(["-CONT", &a_pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while !processes_mentioning(&a_build).is_empty() {
        assert!(Instant::now() < deadline, "a's build went on: {}", a.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    gate.open.store(true, Ordering::SeqCst);
    let done = b.wait_final(id);
    assert_eq!(done["state"], "succeeded", "{done:#}");
    assert_eq!(
        (done["worker"].as_str(), done["attempts"].as_i64()),
        (Some("b"), Some(2))
    );
    assert!(
        a.log().contains(&format!("lost the lease of build #{id}")),
        "{}",
        a.log()
    );
    let log = done["log"].as_str().unwrap();
    assert!(
        log.contains("its lease was lost, another worker runs it"),
        "{log}"
    );
    assert!(
        !a.log()
            .contains(&format!("build #{id} app refs/heads/main: succeeded")),
        "{}",
        a.log()
    );
}

#[test]
fn worker_names_are_unique_and_roles_need_a_shared_queue() {
    let tmp = tempfile::tempdir().unwrap();
    let pg = Pg::start();
    let (bare, _) = repo(tmp.path(), "app", &[]);
    let list = [("app", bare.as_path())];
    let cfg = config(tmp.path(), "a", &pg, "127.0.0.1:1", &list, 0.0, "", "");
    let mut first = Serve::start(&cfg, &[]);
    let second = Command::new(HOIST)
        .args(["serve", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(!second.status.success());
    assert!(err.contains(r#"worker name "a" is in use"#), "{err}");
    // A graceful stop frees the name at once.
    assert!(
        Command::new("kill")
            .args(["-TERM", &first.child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    assert!(first.child.wait().unwrap().success(), "{}", first.log());
    let again = Serve::start(&cfg, &[]);
    assert_eq!(again.get("/api/workers")[0]["name"], "a");

    // With the embedded queue one process does everything.
    let embedded = tmp.path().join("embedded.toml");
    std::fs::write(
        &embedded,
        format!(
            "state_dir = \"state-e\"\nregistry = \"r\"\nsecret = \"s\"\n[[repository]]\nname = \"app\"\nurl = \"file://{}\"\n",
            bare.display()
        ),
    )
    .unwrap();
    for role in ["web", "worker"] {
        let out = Command::new(HOIST)
            .args(["serve", "--role", role, "--config"])
            .arg(&embedded)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(
            err.contains(&format!("role {role}: needs a shared `queue`")),
            "{err}"
        );
    }
    let out = Command::new(HOIST)
        .args(["serve", "--role", "boss", "--config"])
        .arg(&embedded)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("expected web, worker or all"), "{err}");
}

#[test]
fn a_stopping_worker_hands_its_build_back_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let pg = Pg::start();
    let registry = TestRegistry::start(None);
    let gate = Gate::start(registry.port);
    let reg = format!("127.0.0.1:{}", gate.port);
    let (bare, shas) = repo(tmp.path(), "app", &["main"]);
    let list = [("app", bare.as_path())];
    // A lease far longer than the test: only the hand-back can let b run the build.
    let extra = "registry_cache = false\nlease_seconds = 600";
    let mut a = Serve::start(
        &config(tmp.path(), "a", &pg, &reg, &list, 0.0, extra, ""),
        &[],
    );
    let id = a.push("app", "refs/heads/main", &shas[0])[0];
    a.wait_until(id, "its push", |b| {
        b["log"].as_str().unwrap().contains("pushing layers for ")
    });
    let b = Serve::start(
        &config(tmp.path(), "b", &pg, &reg, &list, 0.0, extra, ""),
        &["--role", "worker"],
    );
    assert!(
        Command::new("kill")
            .args(["-TERM", &a.child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    assert!(a.child.wait().unwrap().success(), "{}", a.log());
    gate.open.store(true, Ordering::SeqCst);
    let done = b.wait_final(id);
    assert_eq!(done["state"], "succeeded", "{done:#}");
    assert_eq!(
        (done["worker"].as_str(), done["attempts"].as_i64()),
        (Some("b"), Some(2))
    );
    let log = done["log"].as_str().unwrap();
    assert!(log.contains("hoist serve is stopping"), "{log}");
    let workers = b.get("/api/workers");
    assert_eq!(workers.as_array().unwrap().len(), 1, "a left: {workers:#}");
}
