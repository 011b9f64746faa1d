//! The shared queue backend, PostgreSQL: any number of `hoist serve` processes on any machines use one
//! database. The database assigns build ids; a worker claims the oldest build it may run with
//! `SELECT … FOR UPDATE SKIP LOCKED` and holds it under a lease it renews by heartbeat; a build whose
//! lease expired (its worker died) goes back to the queue and is claimed again (`attempts` counts).
//! Routing: a build needs its rule's labels, and prefers the worker that last built its repository
//! while that worker is alive, until the build has waited `sticky_wait`. Tags are locked by a row per
//! tag under the same lease, so builds of one tag publish one at a time across processes. Logs are
//! stored as chunks, so every process serves every build's live log.
//!
//! Queries run on a few connection threads (the `postgres` client blocks on its own runtime, which
//! must not run inside the service's).

use std::str::FromStr;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use postgres::{Client, NoTls, Row};
use serde::Serialize;

use super::{Build, State};
use crate::clock::now_ms;
use crate::queue::sqlite::{DELIVERY_CAP, DELIVERY_TTL_MS};
use crate::rules::{BuildPlan, Push};

/// Versioned schema migrations, applied in order at start (refinery records them).
const MIGRATIONS: &[(&str, &str)] = &[("V1__shared_queue", include_str!("V1__shared_queue.sql"))];

/// Connections per process.
const POOL: usize = 3;

/// This process as a worker of the shared queue.
#[derive(Debug, Clone)]
pub struct WorkerIdentity {
    /// Unique among the processes sharing the queue (stable across restarts, for sticky routing).
    pub name: String,
    /// Platform (`linux/amd64`) and free-form labels.
    pub labels: Vec<String>,
    /// Builds this process runs at once (0: it runs none, `--role web`).
    pub capacity: usize,
    /// A running build's lease: renewed every third of it; a build whose lease lapsed is requeued.
    pub lease: Duration,
    /// How long a build waits for the worker that last built its repository before any worker takes it.
    pub sticky_wait: Duration,
}

/// A worker as the status API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct WorkerStatus {
    pub name: String,
    pub labels: Vec<String>,
    /// Builds running on it now.
    pub load: i64,
    pub capacity: i64,
    /// Unix milliseconds of its last heartbeat.
    pub seen_at: i64,
    /// Whether its heartbeat is within a lease.
    pub alive: bool,
}

type Job = Box<dyn FnOnce(&mut Client) + Send>;

/// The shared queue: a small pool of connection threads, and who this process is.
#[derive(Clone)]
pub struct PgQueue {
    jobs: Arc<Mutex<mpsc::Sender<Job>>>,
    me: Arc<WorkerIdentity>,
}

const COLUMNS: &str = "id, repo, git_ref, sha, state, image, dockerfile, context, build_args, tags, \
                       queued_at, started_at, finished_at, digest, error, attempts, worker, labels";

fn row_to_build(r: &Row) -> Build {
    let started_at: Option<i64> = r.get(11);
    let finished_at: Option<i64> = r.get(12);
    let build_args: String = r.get(8);
    let tags: String = r.get(9);
    Build {
        id: r.get(0),
        repo: r.get(1),
        git_ref: r.get(2),
        sha: r.get(3),
        state: State::parse(r.get(4)),
        image: r.get(5),
        dockerfile: r.get(6),
        context: r.get(7),
        build_args: serde_json::from_str(&build_args).unwrap_or_default(),
        tags: serde_json::from_str(&tags).unwrap_or_default(),
        queued_at: r.get(10),
        started_at,
        finished_at,
        duration_ms: Build::duration(started_at, finished_at),
        digest: r.get(13),
        error: r.get(14),
        attempts: r.get(15),
        worker: r.get(16),
        labels: r.get(17),
    }
}

/// The URL without its password, for messages.
fn redacted(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let userinfo = &url[s + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

fn connect(url: &str) -> anyhow::Result<Client> {
    let config = postgres::Config::from_str(url)
        .with_context(|| format!("queue URL {}: not a PostgreSQL URL", redacted(url)))?;
    config
        .connect(NoTls)
        .with_context(|| format!("connecting to the queue database {}", redacted(url)))
}

fn migrate(client: &mut Client) -> anyhow::Result<()> {
    // One process migrates at a time: others starting together wait, then find nothing to do.
    client.execute("SELECT pg_advisory_lock(4242019)", &[])?;
    let migrations = MIGRATIONS
        .iter()
        .map(|(name, sql)| refinery::Migration::unapplied(name, sql))
        .collect::<Result<Vec<_>, _>>()?;
    let result = refinery::Runner::new(&migrations)
        .set_migration_table_name("hoist_schema_history")
        .run(client);
    client.execute("SELECT pg_advisory_unlock(4242019)", &[])?;
    result.context("applying the queue schema migrations")?;
    Ok(())
}

fn lease_secs(me: &WorkerIdentity) -> f64 {
    me.lease.as_secs_f64()
}

impl PgQueue {
    /// Connects, applies migrations, and requeues builds this worker (by name) left running when it
    /// last stopped. Returns the queue and how many builds were requeued.
    pub fn open(url: &str, me: WorkerIdentity) -> anyhow::Result<(PgQueue, usize)> {
        // Off the caller's thread: the client must not block inside the service's runtime.
        let (url, who) = (url.to_string(), me.clone());
        let (jobs, requeued) = std::thread::spawn(move || Self::start_pool(&url, &who))
            .join()
            .map_err(|_| anyhow::anyhow!("the queue database connection thread panicked"))??;
        let q = PgQueue {
            jobs: Arc::new(Mutex::new(jobs)),
            me: Arc::new(me),
        };
        q.heartbeat(&[], 0)?;
        Ok((q, requeued))
    }

    /// Connects [`POOL`] clients (migrating and requeueing on the first), each on its own thread.
    fn start_pool(url: &str, me: &WorkerIdentity) -> anyhow::Result<(mpsc::Sender<Job>, usize)> {
        let name = &me.name;
        let mut first = connect(url)?;
        migrate(&mut first)?;
        let live = first.query_opt(
            "SELECT 1 FROM workers WHERE name = $1 AND seen_at > now() - make_interval(secs => $2)",
            &[name, &lease_secs(me)],
        )?;
        if live.is_some() {
            anyhow::bail!(
                "worker name {name:?} is in use by a running hoist serve on this queue (it sent a \
                 heartbeat within lease_seconds): give each process its own `worker_name` or \
                 --worker-name (after a crash, start again once its lease has lapsed)"
            );
        }
        let requeued = first.execute(
            "UPDATE builds SET state = 'queued', started_at = NULL, worker = NULL, lease_until = NULL \
             WHERE state = 'running' AND worker = $1",
            &[name],
        )? as usize;
        first.execute("DELETE FROM tag_locks WHERE worker = $1", &[name])?;
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        let mut clients = vec![first];
        for _ in 1..POOL {
            clients.push(connect(url)?);
        }
        for mut client in clients {
            let rx = rx.clone();
            let url = url.to_string();
            std::thread::Builder::new()
                .name("hoist-queue".into())
                .spawn(move || {
                    loop {
                        let job = match rx.lock().unwrap_or_else(|e| e.into_inner()).recv() {
                            Ok(j) => j,
                            Err(_) => return,
                        };
                        if client.is_closed() {
                            match connect(&url) {
                                Ok(c) => client = c,
                                Err(e) => eprintln!("queue database: {e:#}"),
                            }
                        }
                        job(&mut client);
                    }
                })?;
        }
        Ok((tx, requeued))
    }

    /// Runs `f` on a connection thread and waits for its result.
    fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Client, &WorkerIdentity) -> anyhow::Result<T> + Send + 'static,
    ) -> anyhow::Result<T> {
        let (tx, rx) = mpsc::sync_channel(1);
        let me = self.me.clone();
        self.jobs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .send(Box::new(move |c: &mut Client| {
                let _ = tx.send(f(c, &me));
            }))
            .map_err(|_| anyhow::anyhow!("the queue database connections are gone"))?;
        rx.recv()
            .map_err(|_| anyhow::anyhow!("the queue database connection failed"))?
    }

    pub fn enqueue(
        &self,
        repo: &str,
        image: &str,
        push: &Push,
        plans: &[BuildPlan],
    ) -> anyhow::Result<(Vec<i64>, Vec<i64>)> {
        let (repo, image, push, plans) = (
            repo.to_string(),
            image.to_string(),
            push.clone(),
            plans.to_vec(),
        );
        self.with(move |c, _| {
            let mut tx = c.transaction()?;
            let now = now_ms();
            let msg = format!(
                "superseded by a newer push of {} ({})",
                push.git_ref,
                &push.sha[..push.sha.len().min(12)]
            );
            let cancelled: Vec<i64> = tx
                .query(
                    "UPDATE builds SET state = 'cancelled', finished_at = $3, error = $4 \
                     WHERE repo = $1 AND git_ref = $2 AND state = 'queued' RETURNING id",
                    &[&repo, &push.git_ref, &now, &msg],
                )?
                .iter()
                .map(|r| r.get(0))
                .collect();
            let mut ids = Vec::new();
            for plan in &plans {
                let tags: Vec<String> = plan.tags.iter().map(|t| format!("{image}:{t}")).collect();
                let row = tx.query_one(
                    "INSERT INTO builds (repo, git_ref, sha, state, image, dockerfile, context, \
                     build_args, tags, labels, queued_at) \
                     VALUES ($1, $2, $3, 'queued', $4, $5, $6, $7, $8, $9, $10) RETURNING id",
                    &[
                        &repo,
                        &push.git_ref,
                        &push.sha,
                        &image,
                        &plan.dockerfile,
                        &plan.context,
                        &serde_json::to_string(&plan.build_args)?,
                        &serde_json::to_string(&tags)?,
                        &plan.labels,
                        &now,
                    ],
                )?;
                ids.push(row.get(0));
            }
            tx.commit()?;
            let mut cancelled = cancelled;
            cancelled.sort();
            Ok((ids, cancelled))
        })
    }

    pub fn remember_delivery(&self, repo: &str, delivery: &str) -> anyhow::Result<bool> {
        let (repo, delivery) = (repo.to_string(), delivery.to_string());
        self.with(move |c, _| {
            let now = now_ms();
            let mut tx = c.transaction()?;
            tx.execute(
                "DELETE FROM deliveries WHERE seen_at < $1",
                &[&(now - DELIVERY_TTL_MS)],
            )?;
            let new = tx.execute(
                "INSERT INTO deliveries (repo, delivery, seen_at) VALUES ($1, $2, $3) \
                 ON CONFLICT DO NOTHING",
                &[&repo, &delivery, &now],
            )? == 1;
            tx.execute(
                "DELETE FROM deliveries WHERE (repo, delivery) IN (SELECT repo, delivery FROM \
                 deliveries ORDER BY seen_at DESC OFFSET $1)",
                &[&DELIVERY_CAP],
            )?;
            tx.commit()?;
            Ok(new)
        })
    }

    pub fn forget_delivery(&self, repo: &str, delivery: &str) -> anyhow::Result<()> {
        let (repo, delivery) = (repo.to_string(), delivery.to_string());
        self.with(move |c, _| {
            c.execute(
                "DELETE FROM deliveries WHERE repo = $1 AND delivery = $2",
                &[&repo, &delivery],
            )?;
            Ok(())
        })
    }

    pub fn supersede(&self, id: i64, why: &str) -> anyhow::Result<()> {
        let why = why.to_string();
        self.with(move |c, me| {
            let mut tx = c.transaction()?;
            tx.execute(
                "UPDATE builds SET state = 'cancelled', finished_at = $2, error = $3, lease_until = NULL \
                 WHERE id = $1 AND state = 'running' AND worker = $4",
                &[&id, &now_ms(), &why, &me.name],
            )?;
            tx.execute("DELETE FROM tag_locks WHERE build_id = $1", &[&id])?;
            tx.commit()?;
            Ok(())
        })
    }

    /// Requeues builds whose lease lapsed, then claims the oldest build this worker may run: its
    /// labels cover the build's, and the repository's last worker is this one, is gone, or had
    /// `sticky_wait` to take it.
    pub fn claim(&self) -> anyhow::Result<Option<Build>> {
        self.with(|c, me| {
            let mut tx = c.transaction()?;
            let expired = tx.query(
                "UPDATE builds SET state = 'queued', started_at = NULL, lease_until = NULL \
                 WHERE state = 'running' AND lease_until < now() RETURNING id, worker",
                &[],
            )?;
            for r in &expired {
                let (id, worker): (i64, Option<String>) = (r.get(0), r.get(1));
                let note = format!(
                    "{} lease of worker {} expired: build #{id} requeued\n",
                    crate::clock::timestamp(),
                    worker.as_deref().unwrap_or("?")
                );
                tx.execute(
                    "INSERT INTO log_chunks (build_id, data) VALUES ($1, $2)",
                    &[&id, &note.as_bytes()],
                )?;
            }
            tx.execute("DELETE FROM tag_locks WHERE lease_until < now()", &[])?;
            let sticky_ms = me.sticky_wait.as_millis() as i64;
            let sql = "SELECT b.id FROM builds b \
                 LEFT JOIN repo_affinity a ON a.repo = b.repo \
                 LEFT JOIN workers w ON w.name = a.worker \
                 WHERE b.state = 'queued' AND b.labels <@ $1::text[] \
                 AND (a.worker IS NULL OR a.worker = $2 OR w.seen_at IS NULL \
                      OR w.seen_at < now() - make_interval(secs => $3) OR b.queued_at < $4) \
                 ORDER BY b.id LIMIT 1 FOR UPDATE OF b SKIP LOCKED";
            let picked = tx.query_opt(
                sql,
                &[
                    &me.labels,
                    &me.name,
                    &lease_secs(me),
                    &(now_ms() - sticky_ms),
                ],
            )?;
            let Some(picked) = picked else {
                tx.commit()?;
                return Ok(None);
            };
            let id: i64 = picked.get(0);
            let row = tx.query_one(
                &format!(
                    "UPDATE builds SET state = 'running', started_at = $2, attempts = attempts + 1, \
                     worker = $3, lease_until = now() + make_interval(secs => $4) \
                     WHERE id = $1 RETURNING {COLUMNS}"
                ),
                &[&id, &now_ms(), &me.name, &lease_secs(me)],
            )?;
            let build = row_to_build(&row);
            tx.execute(
                "INSERT INTO repo_affinity (repo, worker, at) VALUES ($1, $2, now()) \
                 ON CONFLICT (repo) DO UPDATE SET worker = EXCLUDED.worker, at = EXCLUDED.at",
                &[&build.repo, &me.name],
            )?;
            tx.commit()?;
            Ok(Some(build))
        })
    }

    pub fn finish(&self, id: i64, result: Result<Option<String>, String>) -> anyhow::Result<()> {
        self.with(move |c, me| {
            let (state, digest, error) = match result {
                Ok(d) => (State::Succeeded, d, None),
                Err(e) => (State::Failed, None, Some(e)),
            };
            let mut tx = c.transaction()?;
            tx.execute(
                "UPDATE builds SET state = $2, finished_at = $3, digest = $4, error = $5, \
                 lease_until = NULL WHERE id = $1 AND state = 'running' AND worker = $6",
                &[&id, &state.as_str(), &now_ms(), &digest, &error, &me.name],
            )?;
            tx.execute("DELETE FROM tag_locks WHERE build_id = $1", &[&id])?;
            tx.commit()?;
            Ok(())
        })
    }

    pub fn cancel(&self, id: i64) -> anyhow::Result<bool> {
        self.with(move |c, _| {
            let n = c.execute(
                "UPDATE builds SET state = 'cancelled', finished_at = $2, error = 'cancelled' \
                 WHERE id = $1 AND state = 'queued'",
                &[&id, &now_ms()],
            )?;
            Ok(n == 1)
        })
    }

    pub fn get(&self, id: i64) -> anyhow::Result<Option<Build>> {
        self.with(move |c, _| {
            let sql = format!("SELECT {COLUMNS} FROM builds WHERE id = $1");
            Ok(c.query_opt(&sql, &[&id])?.as_ref().map(row_to_build))
        })
    }

    pub fn list(&self, limit: usize) -> anyhow::Result<Vec<Build>> {
        self.with(move |c, _| {
            let sql = format!("SELECT {COLUMNS} FROM builds ORDER BY id DESC LIMIT $1");
            Ok(c.query(&sql, &[&(limit as i64)])?
                .iter()
                .map(row_to_build)
                .collect())
        })
    }

    pub fn prune(&self, keep: usize) -> anyhow::Result<Vec<i64>> {
        self.with(move |c, _| {
            Ok(c.query(
                "DELETE FROM builds WHERE state IN ('succeeded', 'failed', 'cancelled') AND id <= \
                 (SELECT id FROM builds ORDER BY id DESC LIMIT 1 OFFSET $1) RETURNING id",
                &[&(keep as i64)],
            )?
            .iter()
            .map(|r| r.get(0))
            .collect())
        })
    }

    /// Renews this worker's row and the leases of `running` (and their tag locks); returns the ids
    /// of `running` whose lease was lost (another worker may have them now).
    pub fn heartbeat(&self, running: &[i64], load: usize) -> anyhow::Result<Vec<i64>> {
        let running = running.to_vec();
        self.with(move |c, me| {
            let mut tx = c.transaction()?;
            tx.execute(
                "INSERT INTO workers (name, labels, load, capacity, seen_at) \
                 VALUES ($1, $2, $3, $4, now()) ON CONFLICT (name) DO UPDATE SET \
                 labels = EXCLUDED.labels, load = EXCLUDED.load, capacity = EXCLUDED.capacity, \
                 seen_at = EXCLUDED.seen_at",
                &[&me.name, &me.labels, &(load as i64), &(me.capacity as i64)],
            )?;
            let renewed: Vec<i64> = tx
                .query(
                    "UPDATE builds SET lease_until = now() + make_interval(secs => $3) \
                     WHERE id = ANY($1) AND state = 'running' AND worker = $2 RETURNING id",
                    &[&running, &me.name, &lease_secs(me)],
                )?
                .iter()
                .map(|r| r.get(0))
                .collect();
            tx.execute(
                "UPDATE tag_locks SET lease_until = now() + make_interval(secs => $3) \
                 WHERE build_id = ANY($1) AND worker = $2",
                &[&renewed, &me.name, &lease_secs(me)],
            )?;
            tx.commit()?;
            Ok(running
                .into_iter()
                .filter(|id| !renewed.contains(id))
                .collect())
        })
    }

    /// Takes `tag` for build `id` unless a live lease of another build holds it.
    pub fn try_lock_tag(&self, id: i64, tag: &str) -> anyhow::Result<bool> {
        let tag = tag.to_string();
        self.with(move |c, me| {
            let n = c.execute(
                "INSERT INTO tag_locks (tag, build_id, worker, lease_until) \
                 VALUES ($1, $2, $3, now() + make_interval(secs => $4)) \
                 ON CONFLICT (tag) DO UPDATE SET build_id = EXCLUDED.build_id, \
                 worker = EXCLUDED.worker, lease_until = EXCLUDED.lease_until \
                 WHERE tag_locks.lease_until < now() OR tag_locks.build_id = EXCLUDED.build_id",
                &[&tag, &id, &me.name, &lease_secs(me)],
            )?;
            Ok(n == 1)
        })
    }

    /// Puts a build this worker runs back in the queue now (the process is stopping).
    pub fn release(&self, id: i64) -> anyhow::Result<()> {
        self.with(move |c, me| {
            let mut tx = c.transaction()?;
            tx.execute(
                "UPDATE builds SET state = 'queued', started_at = NULL, lease_until = NULL \
                 WHERE id = $1 AND state = 'running' AND worker = $2",
                &[&id, &me.name],
            )?;
            tx.execute("DELETE FROM tag_locks WHERE build_id = $1", &[&id])?;
            tx.commit()?;
            Ok(())
        })
    }

    pub fn append_log(&self, id: i64, data: &[u8]) -> anyhow::Result<()> {
        let data = data.to_vec();
        self.with(move |c, _| {
            c.execute(
                "INSERT INTO log_chunks (build_id, data) VALUES ($1, $2)",
                &[&id, &data],
            )?;
            Ok(())
        })
    }

    pub fn read_log(&self, id: i64, offset: u64) -> anyhow::Result<String> {
        self.with(move |c, _| {
            // Only the chunks that end past `offset` cross the wire; each with where it starts.
            let mut out = Vec::new();
            for r in c.query(
                "SELECT data, stop - length(data) FROM (SELECT seq, data, \
                 sum(length(data)) OVER (ORDER BY seq) AS stop \
                 FROM log_chunks WHERE build_id = $1) c WHERE stop > $2 ORDER BY seq",
                &[&id, &(offset as i64)],
            )? {
                let data: &[u8] = r.get(0);
                let start: i64 = r.get(1);
                let skip = (offset as i64 - start).clamp(0, data.len() as i64) as usize;
                out.extend_from_slice(&data[skip..]);
            }
            Ok(String::from_utf8_lossy(&out).into_owned())
        })
    }

    pub fn leave(&self) -> anyhow::Result<()> {
        self.with(|c, me| {
            c.execute("DELETE FROM workers WHERE name = $1", &[&me.name])?;
            Ok(())
        })
    }

    pub fn workers(&self) -> anyhow::Result<Vec<WorkerStatus>> {
        self.with(|c, me| {
            Ok(c.query(
                "SELECT name, labels, load, capacity, \
                 (extract(epoch from seen_at) * 1000)::bigint, \
                 seen_at > now() - make_interval(secs => $1) \
                 FROM workers ORDER BY name",
                &[&lease_secs(me)],
            )?
            .iter()
            .map(|r| WorkerStatus {
                name: r.get(0),
                labels: r.get(1),
                load: r.get(2),
                capacity: r.get(3),
                seen_at: r.get(4),
                alive: r.get(5),
            })
            .collect())
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn urls_in_messages_hide_the_password() {
        assert_eq!(
            super::redacted("postgres://hoist:s3cret@db:5432/q"),
            "postgres://hoist:***@db:5432/q"
        );
        assert_eq!(
            super::redacted("postgres://db/q"),
            "postgres://db/q",
            "nothing to hide"
        );
    }
}
