//! The running service: state-dir layout, webhook intake (verify -> match rules -> enqueue), and the
//! workers that fetch, check out and build until told to stop ([`crate::server`] runs them).
//!
//! Tag order: a build holds a lock on each of its tags from its tip check to its push, and only
//! builds (and so moves its tags) while its commit is still the tip of its ref in the freshly fetched
//! mirror. A replayed or late push of an older commit therefore ends `cancelled` ("superseded")
//! without touching a tag, and a slow build of an older commit cannot finish after a newer one of the
//! same tags: the newer one waits for it, then pushes last.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use tokio::sync::Notify;

use crate::clock::timestamp;
use crate::config::{Config, Role};
use crate::mirror;
use crate::queue::{Build, Queue, WorkerIdentity};
use crate::rules::{self, Push};
use crate::runner::{BuildRequest, BuildRunner, Log};

/// Shared state of a running service.
pub struct Service {
    pub config: Config,
    pub queue: Queue,
    runner: Arc<dyn BuildRunner>,
    wake: Notify,
    mirror_locks: Mutex<HashMap<String, Arc<Mutex<()>>>>,
    /// Set at shutdown: no build is claimed, and interrupted builds stay `running` (requeued on start).
    stopping: AtomicBool,
    /// Builds executing now.
    in_flight: AtomicUsize,
    /// Their ids (leases to renew in a shared queue).
    running: Mutex<HashSet<i64>>,
    /// Builds whose lease this process lost (another worker may run them): stopped, not recorded.
    lost: Mutex<HashSet<i64>>,
}

/// The outcome of an accepted push.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Accepted {
    pub queued: Vec<i64>,
    pub cancelled: Vec<i64>,
}

impl Service {
    /// Opens the state directory and the queue (requeueing builds a stop interrupted).
    pub fn open(config: Config, runner: Arc<dyn BuildRunner>) -> anyhow::Result<Arc<Service>> {
        if config.queue.is_none() && config.role != Role::All {
            anyhow::bail!(
                "role {}: needs a shared `queue` (postgres://…) in the configuration; with the \
                 embedded queue one process both accepts webhooks and builds (role all)",
                if config.role == Role::Web {
                    "web"
                } else {
                    "worker"
                }
            );
        }
        if config.queue.is_none() {
            // The embedded queue has one worker, this process: a rule it cannot serve would wait forever.
            let mine = config.worker_labels();
            for repo in &config.repositories {
                for (i, rule) in repo.rules.iter().enumerate() {
                    if let Some(l) = rule.labels.iter().find(|l| !mine.contains(l)) {
                        anyhow::bail!(
                            "repository {:?} rule {}: needs worker label {l:?}, which this process \
                             does not have (labels: {}); add it with `labels`/--label, or share a \
                             `queue` with a worker that has it",
                            repo.name,
                            i + 1,
                            mine.join(", ")
                        );
                    }
                }
            }
        }
        // Owner-only: the queue, logs and checkouts are no other local user's to read.
        private_dir(&config.state_dir)?;
        for d in ["mirrors", "work", "logs"] {
            private_dir(&config.state_dir.join(d))?;
        }
        // Checkouts of interrupted builds are stale: they are made again when the build reruns.
        if let Ok(entries) = std::fs::read_dir(config.state_dir.join("work")) {
            for e in entries.flatten() {
                let p = e.path();
                let _ = if p.is_dir() {
                    std::fs::remove_dir_all(&p)
                } else {
                    std::fs::remove_file(&p)
                };
            }
        }
        let (queue, requeued) = match &config.queue {
            Some(url) => Queue::open_postgres(
                url,
                WorkerIdentity {
                    name: config.worker_name(),
                    labels: config.worker_labels(),
                    capacity: if config.role.runs_builds() {
                        config.concurrency
                    } else {
                        0
                    },
                    lease: Duration::from_secs_f64(config.lease_seconds),
                    sticky_wait: Duration::from_secs_f64(config.sticky_seconds),
                },
            )?,
            None => {
                let db = config.state_dir.join("queue.sqlite");
                let opened = Queue::open_sqlite(&db)?;
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o600))
                    .with_context(|| format!("making {} owner-only", db.display()))?;
                opened
            }
        };
        if requeued > 0 {
            eprintln!(
                "{} requeued {requeued} build(s) interrupted by the last stop",
                timestamp()
            );
        }
        Ok(Arc::new(Service {
            config,
            queue,
            runner,
            wake: Notify::new(),
            mirror_locks: Mutex::new(HashMap::new()),
            stopping: AtomicBool::new(false),
            in_flight: AtomicUsize::new(0),
            running: Mutex::new(HashSet::new()),
            lost: Mutex::new(HashSet::new()),
        }))
    }

    /// Whether the service is shutting down.
    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// A build's log from byte `offset` on: from the shared queue, or this process's log file.
    pub fn read_log(&self, id: i64, offset: u64) -> String {
        match self.queue.read_log(id, offset) {
            Ok(Some(text)) => text,
            Ok(None) => Log::open(&self.log_path(id))
                .map(|l| l.read_from(offset))
                .unwrap_or_default(),
            Err(e) => {
                eprintln!("{} reading the log of build #{id}: {e:#}", timestamp());
                String::new()
            }
        }
    }

    /// Appends a line to a build's log, where every process sees it.
    fn note(&self, id: i64, line: &str) {
        let text = format!("{} {line}\n", timestamp());
        if self.queue.is_shared() {
            let _ = self.queue.append_log(id, text.as_bytes());
        } else if let Ok(mut log) = Log::open(&self.log_path(id)) {
            let _ = log.write_all(text.as_bytes());
        }
    }

    /// The log file of a build.
    pub fn log_path(&self, id: i64) -> PathBuf {
        self.config.state_dir.join("logs").join(format!("{id}.log"))
    }

    /// Matches a verified push against the repository's rules and queues the builds.
    pub fn accept(&self, repo_name: &str, push: &Push) -> anyhow::Result<Accepted> {
        let repo = self
            .config
            .repository(repo_name)
            .with_context(|| format!("no repository {repo_name:?}"))?;
        let plans = rules::plan(repo, push);
        if plans.is_empty() {
            return Ok(Accepted::default());
        }
        let image = self.config.image_for(repo);
        let (queued, cancelled) = self.queue.enqueue(&repo.name, &image, push, &plans)?;
        eprintln!(
            "{} {} {} {}: queued {queued:?}{}",
            timestamp(),
            repo.name,
            push.git_ref,
            &push.sha[..12.min(push.sha.len())],
            if cancelled.is_empty() {
                String::new()
            } else {
                format!(", cancelled {cancelled:?}")
            }
        );
        for id in &cancelled {
            self.note(*id, "cancelled: superseded by a newer push");
        }
        self.wake.notify_waiters();
        Ok(Accepted { queued, cancelled })
    }

    /// Runs `concurrency` workers (none for `--role web`), each taking one queued build at a time,
    /// and with a shared queue the heartbeat that keeps their leases, until `shutdown` resolves.
    pub async fn work(self: Arc<Self>, shutdown: impl Future<Output = ()> + Send) {
        let mut tasks = Vec::new();
        if self.queue.is_shared() {
            let svc = self.clone();
            tasks.push(tokio::spawn(async move {
                let lease = Duration::from_secs_f64(svc.config.lease_seconds);
                let every = lease / 3;
                let mut renewed = tokio::time::Instant::now();
                loop {
                    tokio::time::sleep(every).await;
                    let running: Vec<i64> = svc
                        .running
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .iter()
                        .copied()
                        .collect();
                    let s = svc.clone();
                    let beat = tokio::task::spawn_blocking(move || {
                        s.queue.heartbeat(&running, running.len())
                    })
                    .await;
                    let lost = match beat {
                        Ok(Ok(lost)) => {
                            renewed = tokio::time::Instant::now();
                            lost
                        }
                        Ok(Err(e)) => {
                            eprintln!("{} queue heartbeat: {e:#}", timestamp());
                            // Unrenewed for a lease: other workers may have taken every build here.
                            if renewed.elapsed() >= lease {
                                svc.running_set().iter().copied().collect()
                            } else {
                                Vec::new()
                            }
                        }
                        Err(_) => Vec::new(),
                    };
                    for id in lost {
                        if svc.lost.lock().unwrap_or_else(|e| e.into_inner()).insert(id) {
                            eprintln!(
                                "{} lost the lease of build #{id}: stopping it (another worker runs it)",
                                timestamp()
                            );
                            svc.runner.abort(&svc.config.state_dir.join("work").join(id.to_string()));
                        }
                    }
                }
            }));
        }
        let workers = if self.config.role.runs_builds() {
            self.config.concurrency
        } else {
            0
        };
        for _ in 0..workers {
            let svc = self.clone();
            tasks.push(tokio::spawn(async move {
                loop {
                    if svc.stopping.load(Ordering::SeqCst) {
                        break;
                    }
                    let s = svc.clone();
                    let claimed = tokio::task::spawn_blocking(move || s.queue.claim())
                        .await
                        .unwrap_or_else(|e| Err(anyhow::anyhow!("claim: {e}")));
                    match claimed {
                        Ok(Some(build)) => {
                            svc.in_flight.fetch_add(1, Ordering::SeqCst);
                            let id = build.id;
                            svc.running_set().insert(id);
                            let s = svc.clone();
                            let _ = tokio::task::spawn_blocking(move || s.execute(build)).await;
                            svc.running_set().remove(&id);
                            svc.in_flight.fetch_sub(1, Ordering::SeqCst);
                            if let Ok(pruned) = svc.queue.prune(svc.config.keep_builds) {
                                for id in pruned {
                                    let _ = std::fs::remove_file(svc.log_path(id));
                                }
                            }
                        }
                        Ok(None) => {
                            let _ =
                                tokio::time::timeout(Duration::from_secs(1), svc.wake.notified())
                                    .await;
                        }
                        Err(e) => {
                            eprintln!("{} queue error: {e:#}", timestamp());
                            tokio::time::sleep(Duration::from_secs(1)).await;
                        }
                    }
                }
            }));
        }
        shutdown.await;
        self.stopping.store(true, Ordering::SeqCst);
        self.runner.interrupt();
        // Interrupted builds return quickly; give them a bounded time to record that.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while self.in_flight.load(Ordering::SeqCst) > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        for t in tasks {
            t.abort();
        }
        // Shared queue: gone from the worker list (and its name free for the next start) at once.
        let s = self.clone();
        let _ = tokio::task::spawn_blocking(move || s.queue.leave()).await;
    }

    fn is_lost(&self, id: i64) -> bool {
        self.lost
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&id)
    }

    fn running_set(&self) -> std::sync::MutexGuard<'_, HashSet<i64>> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn named_lock(&self, repo: &str) -> Arc<Mutex<()>> {
        self.mirror_locks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(repo.to_string())
            .or_default()
            .clone()
    }

    /// Fetches, checks out, builds and pushes one claimed build, recording the outcome.
    fn execute(&self, build: Build) {
        let result = match Log::open(&self.log_path(build.id)) {
            Ok(mut log) => {
                // Shared queue: the log goes to the database as it grows, for every process to serve.
                let _shipper = self
                    .queue
                    .is_shared()
                    .then(|| LogShipper::start(self.queue.clone(), build.id, &log));
                let r = self.execute_logged(&build, &mut log);
                if self
                    .lost
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&build.id)
                {
                    let _ = writeln!(
                        log,
                        "{} build #{} stopped on worker {}: its lease was lost, another worker runs it",
                        timestamp(),
                        build.id,
                        self.config.worker_name()
                    );
                    drop(_shipper);
                    self.remove_work(build.id);
                    return;
                }
                if r.is_err() && self.stopping.load(Ordering::SeqCst) {
                    // SQLite: left `running`, the next start requeues it. Shared: requeued now.
                    let _ = writeln!(
                        log,
                        "{} build #{} interrupted: hoist serve is stopping; it runs again on the next start",
                        timestamp(),
                        build.id
                    );
                    let _ = std::fs::remove_dir_all(
                        self.config
                            .state_dir
                            .join("work")
                            .join(build.id.to_string()),
                    );
                    drop(_shipper);
                    if let Err(e) = self.queue.release(build.id) {
                        eprintln!("{} requeueing build #{}: {e:#}", timestamp(), build.id);
                    }
                    return;
                }
                if let Ok(Outcome::Superseded(why)) = &r {
                    let _ = writeln!(log, "{} build #{} not built: {why}", timestamp(), build.id);
                    eprintln!(
                        "{} build #{} {} {}: {why}",
                        timestamp(),
                        build.id,
                        build.repo,
                        build.git_ref
                    );
                    self.remove_work(build.id);
                    drop(_shipper);
                    if let Err(e) = self.queue.supersede(build.id, why) {
                        eprintln!("{} recording build #{}: {e:#}", timestamp(), build.id);
                    }
                    return;
                }
                let r = r.map(|o| match o {
                    Outcome::Built(d) => d,
                    Outcome::Superseded(_) => None,
                });
                let _ = match &r {
                    Ok(out) => writeln!(
                        log,
                        "{} build #{} succeeded{}",
                        timestamp(),
                        build.id,
                        out.as_deref().map(|d| format!(": {d}")).unwrap_or_default()
                    ),
                    Err(e) => writeln!(log, "{} build #{} failed: {e:#}", timestamp(), build.id),
                };
                drop(_shipper);
                r.map_err(|e| format!("{e:#}"))
            }
            Err(e) => Err(format!("{e:#}")),
        };
        self.remove_work(build.id);
        eprintln!(
            "{} build #{} {} {}: {}",
            timestamp(),
            build.id,
            build.repo,
            build.git_ref,
            match &result {
                Ok(_) => "succeeded".to_string(),
                Err(e) => format!("failed: {e}"),
            }
        );
        if let Err(e) = self.queue.finish(build.id, result) {
            eprintln!("{} recording build #{}: {e:#}", timestamp(), build.id);
        }
    }

    fn remove_work(&self, id: i64) {
        let _ = std::fs::remove_dir_all(self.config.state_dir.join("work").join(id.to_string()));
    }

    fn execute_logged(&self, build: &Build, log: &mut Log) -> anyhow::Result<Outcome> {
        writeln!(
            log,
            "{} build #{} (attempt {}): {} {} at {}",
            timestamp(),
            build.id,
            build.attempts,
            build.repo,
            build.git_ref,
            build.sha
        )?;
        let repo = self
            .config
            .repository(&build.repo)
            .with_context(|| format!("repository {:?} is no longer configured", build.repo))?;
        let mirror = mirror::mirror_path(&self.config.state_dir.join("mirrors"), &repo.name);
        // Held until the push is done: builds sharing a tag push in the order they passed the tip check.
        let mut tags = build.tags.clone();
        tags.sort();
        tags.dedup();
        let tag_locks: Vec<_> = tags
            .iter()
            .map(|t| self.named_lock(&format!("tag:{t}")))
            .collect();
        let mut _held = Vec::new();
        for (lock, tag) in tag_locks.iter().zip(&tags) {
            let guard = match lock.try_lock() {
                Ok(g) => g,
                Err(_) => {
                    writeln!(log, "{} waiting for another build of {tag}", timestamp())?;
                    lock.lock().unwrap_or_else(|e| e.into_inner())
                }
            };
            _held.push(guard);
        }
        // Across processes (shared queue): a row per tag, taken in the same order.
        for tag in &tags {
            let mut said = false;
            while !self.queue.try_lock_tag(build.id, tag)? {
                if self.stopping.load(Ordering::SeqCst) {
                    anyhow::bail!("interrupted: hoist serve is stopping");
                }
                if self.is_lost(build.id) {
                    anyhow::bail!("lease lost");
                }
                if !said {
                    writeln!(log, "{} waiting for another build of {tag}", timestamp())?;
                    said = true;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        {
            let lock = self.named_lock(&format!("mirror:{}", repo.name));
            let _held = lock.lock().unwrap_or_else(|e| e.into_inner());
            writeln!(log, "{} fetching {}", timestamp(), repo.url)?;
            mirror::update(&mirror, &repo.url, &build.sha, log)?;
            let tip = mirror::tip(&mirror, &build.git_ref)?;
            let commit = mirror::commit_of(&mirror, &build.sha)?;
            if tip.as_deref() != Some(commit.as_str()) {
                return Ok(Outcome::Superseded(match tip {
                    Some(t) => format!(
                        "superseded: {} is now at {} (this build's commit {} is not its tip)",
                        build.git_ref,
                        &t[..t.len().min(12)],
                        &build.sha[..build.sha.len().min(12)]
                    ),
                    None => format!("superseded: {} no longer exists", build.git_ref),
                }));
            }
        }
        let checkout = self
            .config
            .state_dir
            .join("work")
            .join(build.id.to_string());
        writeln!(log, "{} checking out {}", timestamp(), build.sha)?;
        mirror::checkout(&mirror, &build.sha, &checkout, log)?;
        let plan = build.plan();
        let request = BuildRequest {
            dockerfile: inside(&checkout, &plan.dockerfile)?,
            context: inside(&checkout, &plan.context)?,
            checkout: checkout.clone(),
            build_args: plan.build_args,
            tags: build.tags.clone(),
            cache_ref: self
                .config
                .uses_registry_cache()
                .then(|| format!("{}:buildcache", build.image)),
        };
        if self.is_lost(build.id) {
            anyhow::bail!("lease lost");
        }
        writeln!(log, "{} building {}", timestamp(), build.tags.join(", "))?;
        let out = self.runner.run(&request, log)?;
        Ok(Outcome::Built(out.digest))
    }
}

/// Copies a build's log file into the shared queue as it grows, until dropped (then the rest).
struct LogShipper {
    done: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl LogShipper {
    fn start(queue: Queue, id: i64, log: &Log) -> LogShipper {
        let done = Arc::new(AtomicBool::new(false));
        let path = log.path().to_path_buf();
        let mut offset = log.len();
        let stop = done.clone();
        let thread = std::thread::spawn(move || {
            loop {
                let last = stop.load(Ordering::SeqCst);
                let bytes = std::fs::read(&path).unwrap_or_default();
                if bytes.len() as u64 > offset
                    && queue.append_log(id, &bytes[offset as usize..]).is_ok()
                {
                    offset = bytes.len() as u64;
                }
                if last {
                    return;
                }
                // Woken early by drop, so the build's end is recorded without waiting here.
                std::thread::park_timeout(Duration::from_millis(250));
            }
        });
        LogShipper {
            done,
            thread: Some(thread),
        }
    }
}

impl Drop for LogShipper {
    fn drop(&mut self) {
        self.done.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

/// What running a claimed build came to.
enum Outcome {
    /// Built and pushed (the manifest digest, when reported).
    Built(Option<String>),
    /// Not built: its commit is no longer its ref's tip (why).
    Superseded(String),
}

/// `rel` under `root`, refusing paths that leave it through symlinks in the checkout.
fn inside(root: &Path, rel: &str) -> anyhow::Result<PathBuf> {
    let p = root.join(rel);
    let real = p
        .canonicalize()
        .with_context(|| format!("{rel} does not exist in the checkout"))?;
    let real_root = root.canonicalize()?;
    if !real.starts_with(&real_root) {
        anyhow::bail!("{rel} leaves the repository");
    }
    Ok(real)
}

/// Creates `dir` (and missing parents) owner-only, or tightens it when it is open to others.
fn private_dir(dir: &std::path::Path) -> anyhow::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating {}", dir.display()))?;
    let mode = std::fs::metadata(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode & 0o7700))
            .with_context(|| format!("making {} owner-only", dir.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::sync::Arc;

    struct NoBuilds;
    impl crate::runner::BuildRunner for NoBuilds {
        fn run(
            &self,
            _: &crate::runner::BuildRequest,
            _: &mut crate::runner::Log,
        ) -> anyhow::Result<crate::runner::BuildOutput> {
            anyhow::bail!("no builds here")
        }
    }

    #[test]
    fn the_state_directory_and_queue_are_owner_only_even_when_left_open() {
        let t = tempfile::tempdir().unwrap();
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        for fresh in [true, false] {
            let state = t.path().join(if fresh { "fresh" } else { "old" });
            if !fresh {
                // As an older hoist serve left it, under umask 022.
                for d in ["", "logs", "work", "mirrors"] {
                    std::fs::create_dir_all(state.join(d)).unwrap();
                    std::fs::set_permissions(state.join(d), std::fs::Permissions::from_mode(0o755))
                        .unwrap();
                }
            }
            let text = format!(
                "state_dir = \"{}\"\nregistry = \"r\"\nsecret = \"s\"\n[[repository]]\nname = \"a\"\nurl = \"u\"\n",
                state.display()
            );
            let config = crate::config::Config::parse(&text).unwrap();
            let _service = super::Service::open(config, Arc::new(NoBuilds)).unwrap();
            for d in ["", "logs", "work", "mirrors"] {
                assert_eq!(mode(&state.join(d)), 0o700, "{fresh} {d}");
            }
            assert_eq!(mode(&state.join("queue.sqlite")), 0o600);
        }
    }

    #[test]
    fn the_embedded_queue_refuses_rules_its_one_worker_cannot_run() {
        let t = tempfile::tempdir().unwrap();
        let text = |labels: &str| {
            format!(
                "state_dir = \"{}\"\nregistry = \"r\"\nsecret = \"s\"\n{labels}\n[[repository]]\nname = \"a\"\nurl = \"u\"\n[[repository.rule]]\nsource_type = \"tag\"\nsource = \"/.*/\"\nlabels = [\"gpu\"]\n",
                t.path().display()
            )
        };
        let config = crate::config::Config::parse(&text("")).unwrap();
        let e = format!(
            "{:#}",
            super::Service::open(config, Arc::new(NoBuilds))
                .err()
                .unwrap()
        );
        assert!(e.contains("rule 1") && e.contains("\"gpu\""), "{e}");
        let config = crate::config::Config::parse(&text("labels = [\"gpu\"]")).unwrap();
        assert!(super::Service::open(config, Arc::new(NoBuilds)).is_ok());
    }
}
