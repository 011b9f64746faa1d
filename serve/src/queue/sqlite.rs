//! The embedded queue backend, SQLite (one `hoist serve` process): an accepted build is committed (WAL,
//! `synchronous=FULL`) before the webhook is answered; builds left `running` by a stop go back to
//! `queued` on open; a newer push to the same ref cancels that ref's older queued builds.

use std::path::Path;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::{Build, State};
use crate::clock::now_ms;
use crate::rules::{BuildPlan, Push};

/// The queue: one SQLite database, shared by the HTTP handlers and the workers.
#[derive(Clone)]
pub struct SqliteQueue {
    conn: Arc<Mutex<Connection>>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS builds (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    repo        TEXT NOT NULL,
    git_ref     TEXT NOT NULL,
    sha         TEXT NOT NULL,
    state       TEXT NOT NULL,
    image       TEXT NOT NULL,
    dockerfile  TEXT NOT NULL,
    context     TEXT NOT NULL,
    build_args  TEXT NOT NULL,
    tags        TEXT NOT NULL,
    queued_at   INTEGER NOT NULL,
    started_at  INTEGER,
    finished_at INTEGER,
    digest      TEXT,
    error       TEXT,
    attempts    INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS builds_state ON builds(state, id);
CREATE INDEX IF NOT EXISTS builds_ref ON builds(repo, git_ref, state);
CREATE TABLE IF NOT EXISTS deliveries (
    repo     TEXT NOT NULL,
    delivery TEXT NOT NULL,
    seen_at  INTEGER NOT NULL,
    PRIMARY KEY (repo, delivery)
);
CREATE INDEX IF NOT EXISTS deliveries_seen ON deliveries(seen_at);
";

/// How long a delivery id is remembered: longer than any sender redelivers or retries (GitHub offers
/// redelivery for 3 days, GitLab retries for hours). An older replay is still kept from rolling a tag
/// back: a build only publishes while its commit is the ref's tip (see `service`).
pub const DELIVERY_TTL_MS: i64 = 30 * 24 * 3600 * 1000;
/// At most this many delivery ids are kept (the least recently seen go first).
pub const DELIVERY_CAP: i64 = 100_000;

const COLUMNS: &str = "id, repo, git_ref, sha, state, image, dockerfile, context, build_args, tags, \
                       queued_at, started_at, finished_at, digest, error, attempts";

fn row_to_build(r: &Row) -> rusqlite::Result<Build> {
    let started_at: Option<i64> = r.get(11)?;
    let finished_at: Option<i64> = r.get(12)?;
    let build_args: String = r.get(8)?;
    let tags: String = r.get(9)?;
    Ok(Build {
        id: r.get(0)?,
        repo: r.get(1)?,
        git_ref: r.get(2)?,
        sha: r.get(3)?,
        state: State::parse(&r.get::<_, String>(4)?),
        image: r.get(5)?,
        dockerfile: r.get(6)?,
        context: r.get(7)?,
        build_args: serde_json::from_str(&build_args).unwrap_or_default(),
        tags: serde_json::from_str(&tags).unwrap_or_default(),
        queued_at: r.get(10)?,
        started_at,
        finished_at,
        duration_ms: started_at.map(|s| finished_at.unwrap_or_else(now_ms) - s),
        digest: r.get(13)?,
        error: r.get(14)?,
        attempts: r.get(15)?,
        worker: None,
        labels: Vec::new(),
    })
}

impl SqliteQueue {
    /// Opens (creating) the queue database and puts builds interrupted by a stop back in the queue.
    /// Returns the queue and how many builds were requeued.
    pub fn open(path: &Path) -> anyhow::Result<(SqliteQueue, usize)> {
        let conn = Connection::open(path)
            .with_context(|| format!("opening queue database {}", path.display()))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.execute_batch(SCHEMA)
            .with_context(|| format!("creating schema in {}", path.display()))?;
        let requeued = conn.execute(
            "UPDATE builds SET state = 'queued', started_at = NULL WHERE state = 'running'",
            [],
        )?;
        Ok((
            SqliteQueue {
                conn: Arc::new(Mutex::new(conn)),
            },
            requeued,
        ))
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues one build per plan for a push, cancelling the ref's older queued builds, in one
    /// transaction. Returns the new build ids and the ids cancelled.
    pub fn enqueue(
        &self,
        repo: &str,
        image: &str,
        push: &Push,
        plans: &[BuildPlan],
    ) -> anyhow::Result<(Vec<i64>, Vec<i64>)> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let now = now_ms();
        let cancelled: Vec<i64> = {
            let mut stmt = tx.prepare(
                "SELECT id FROM builds WHERE repo = ?1 AND git_ref = ?2 AND state = 'queued'",
            )?;
            stmt.query_map(params![repo, push.git_ref], |r| r.get(0))?
                .collect::<Result<_, _>>()?
        };
        let mut ids = Vec::new();
        for plan in plans {
            let tags: Vec<String> = plan.tags.iter().map(|t| format!("{image}:{t}")).collect();
            tx.execute(
                "INSERT INTO builds (repo, git_ref, sha, state, image, dockerfile, context, build_args, \
                 tags, queued_at) VALUES (?1, ?2, ?3, 'queued', ?4, ?5, ?6, ?7, ?8, ?9)",
                params![
                    repo,
                    push.git_ref,
                    push.sha,
                    image,
                    plan.dockerfile,
                    plan.context,
                    serde_json::to_string(&plan.build_args)?,
                    serde_json::to_string(&tags)?,
                    now
                ],
            )?;
            ids.push(tx.last_insert_rowid());
        }
        if !cancelled.is_empty() {
            let msg = format!(
                "superseded by a newer push of {} ({})",
                push.git_ref,
                &push.sha[..push.sha.len().min(12)]
            );
            for id in &cancelled {
                tx.execute(
                    "UPDATE builds SET state = 'cancelled', finished_at = ?2, error = ?3 \
                     WHERE id = ?1 AND state = 'queued'",
                    params![id, now, msg],
                )?;
            }
        }
        tx.commit()?;
        Ok((ids, cancelled))
    }

    /// Records a webhook delivery id for `repo`, dropping expired ones and keeping at most
    /// [`DELIVERY_CAP`]. Returns false (and records nothing) when the id was seen before: a replay.
    pub fn remember_delivery(&self, repo: &str, delivery: &str) -> anyhow::Result<bool> {
        self.remember_delivery_at(repo, delivery, now_ms())
    }

    fn remember_delivery_at(&self, repo: &str, delivery: &str, now: i64) -> anyhow::Result<bool> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.execute(
            "DELETE FROM deliveries WHERE seen_at < ?1",
            params![now - DELIVERY_TTL_MS],
        )?;
        let new = tx.execute(
            "INSERT OR IGNORE INTO deliveries (repo, delivery, seen_at) VALUES (?1, ?2, ?3)",
            params![repo, delivery, now],
        )? == 1;
        tx.execute(
            "DELETE FROM deliveries WHERE rowid IN (SELECT rowid FROM deliveries \
             ORDER BY seen_at DESC, rowid DESC LIMIT -1 OFFSET ?1)",
            params![DELIVERY_CAP],
        )?;
        tx.commit()?;
        Ok(new)
    }

    /// Forgets a delivery id (its push could not be queued: a redelivery must be accepted).
    pub fn forget_delivery(&self, repo: &str, delivery: &str) -> anyhow::Result<()> {
        self.conn().execute(
            "DELETE FROM deliveries WHERE repo = ?1 AND delivery = ?2",
            params![repo, delivery],
        )?;
        Ok(())
    }

    /// Records that a running build did not publish because its commit is no longer the ref's tip.
    pub fn supersede(&self, id: i64, why: &str) -> anyhow::Result<()> {
        self.conn().execute(
            "UPDATE builds SET state = 'cancelled', finished_at = ?2, error = ?3 \
             WHERE id = ?1 AND state = 'running'",
            params![id, now_ms(), why],
        )?;
        Ok(())
    }

    /// Takes the oldest queued build and marks it running.
    pub fn claim(&self) -> anyhow::Result<Option<Build>> {
        let conn = self.conn();
        let sql = format!(
            "UPDATE builds SET state = 'running', started_at = ?1, attempts = attempts + 1 \
             WHERE id = (SELECT id FROM builds WHERE state = 'queued' ORDER BY id LIMIT 1) \
             RETURNING {COLUMNS}"
        );
        Ok(conn
            .query_row(&sql, params![now_ms()], row_to_build)
            .optional()?)
    }

    /// Records a running build's outcome.
    pub fn finish(&self, id: i64, result: Result<Option<String>, String>) -> anyhow::Result<()> {
        let conn = self.conn();
        let (state, digest, error) = match result {
            Ok(d) => (State::Succeeded, d, None),
            Err(e) => (State::Failed, None, Some(e)),
        };
        conn.execute(
            "UPDATE builds SET state = ?2, finished_at = ?3, digest = ?4, error = ?5 \
             WHERE id = ?1 AND state = 'running'",
            params![id, state.as_str(), now_ms(), digest, error],
        )?;
        Ok(())
    }

    /// Cancels a queued build; returns whether it was queued.
    pub fn cancel(&self, id: i64) -> anyhow::Result<bool> {
        let conn = self.conn();
        let n = conn.execute(
            "UPDATE builds SET state = 'cancelled', finished_at = ?2, error = 'cancelled' \
             WHERE id = ?1 AND state = 'queued'",
            params![id, now_ms()],
        )?;
        Ok(n == 1)
    }

    /// One build.
    pub fn get(&self, id: i64) -> anyhow::Result<Option<Build>> {
        let conn = self.conn();
        let sql = format!("SELECT {COLUMNS} FROM builds WHERE id = ?1");
        Ok(conn.query_row(&sql, params![id], row_to_build).optional()?)
    }

    /// The most recent builds, newest first.
    pub fn list(&self, limit: usize) -> anyhow::Result<Vec<Build>> {
        let conn = self.conn();
        let sql = format!("SELECT {COLUMNS} FROM builds ORDER BY id DESC LIMIT ?1");
        let mut stmt = conn.prepare(&sql)?;
        let builds = stmt
            .query_map(params![limit as i64], row_to_build)?
            .collect::<Result<_, _>>()?;
        Ok(builds)
    }

    /// Deletes finished builds beyond the newest `keep`; returns the ids deleted (their logs go too).
    pub fn prune(&self, keep: usize) -> anyhow::Result<Vec<i64>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "DELETE FROM builds WHERE state IN ('succeeded', 'failed', 'cancelled') AND id <= \
             (SELECT id FROM builds ORDER BY id DESC LIMIT 1 OFFSET ?1) RETURNING id",
        )?;
        let ids = stmt
            .query_map(params![keep as i64], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        Ok(ids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn push(r: &str, sha: char) -> Push {
        Push {
            git_ref: r.into(),
            sha: sha.to_string().repeat(40),
        }
    }

    fn plan(tag: &str) -> BuildPlan {
        BuildPlan {
            dockerfile: "Dockerfile".into(),
            context: ".".into(),
            build_args: [("A".to_string(), "1".to_string())].into(),
            tags: vec![tag.into()],
            labels: Vec::new(),
        }
    }

    #[test]
    fn newer_push_cancels_older_queued_only() {
        let dir = tempfile::tempdir().unwrap();
        let (q, _) = SqliteQueue::open(&dir.path().join("q.db")).unwrap();
        let (a, _) = q
            .enqueue(
                "app",
                "r/app",
                &push("refs/heads/main", 'a'),
                &[plan("latest")],
            )
            .unwrap();
        let running = q.claim().unwrap().unwrap();
        assert_eq!(running.id, a[0]);
        assert_eq!(running.tags, ["r/app:latest"]);
        assert_eq!(running.plan(), plan("latest"));
        let (b, c) = q
            .enqueue(
                "app",
                "r/app",
                &push("refs/heads/main", 'b'),
                &[plan("latest"), plan("x")],
            )
            .unwrap();
        assert!(c.is_empty(), "a running build is not cancelled");
        let (other, _) = q
            .enqueue("app", "r/app", &push("refs/heads/dev", 'd'), &[plan("dev")])
            .unwrap();
        let (newest, cancelled) = q
            .enqueue(
                "app",
                "r/app",
                &push("refs/heads/main", 'c'),
                &[plan("latest")],
            )
            .unwrap();
        assert_eq!(cancelled, b);
        for id in &b {
            let build = q.get(*id).unwrap().unwrap();
            assert_eq!(build.state, State::Cancelled);
            assert!(build.error.unwrap().contains("superseded"));
        }
        assert_eq!(q.get(a[0]).unwrap().unwrap().state, State::Running);
        assert_eq!(q.claim().unwrap().unwrap().id, other[0]);
        assert_eq!(q.claim().unwrap().unwrap().id, newest[0]);
        assert!(q.claim().unwrap().is_none());
    }

    #[test]
    fn reopen_requeues_running_and_keeps_queued() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.db");
        let (q, n) = SqliteQueue::open(&path).unwrap();
        assert_eq!(n, 0);
        let (ids, _) = q
            .enqueue("app", "r/app", &push("refs/heads/main", 'a'), &[plan("1")])
            .unwrap();
        q.enqueue("app", "r/app", &push("refs/tags/v1", 'b'), &[plan("2")])
            .unwrap();
        q.enqueue("app", "r/app", &push("refs/tags/v2", 'c'), &[plan("3")])
            .unwrap();
        let first = q.claim().unwrap().unwrap();
        assert_eq!(first.id, ids[0]);
        let second = q.claim().unwrap().unwrap();
        q.finish(second.id, Ok(Some("sha256:00".into()))).unwrap();
        drop(q);

        let (q, n) = SqliteQueue::open(&path).unwrap();
        assert_eq!(n, 1);
        let again = q.claim().unwrap().unwrap();
        assert_eq!(again.id, first.id, "the interrupted build runs first");
        assert_eq!(again.attempts, 2);
        let done = q.get(second.id).unwrap().unwrap();
        assert_eq!(done.state, State::Succeeded);
        assert_eq!(done.digest.as_deref(), Some("sha256:00"));
        assert!(done.duration_ms.unwrap() >= 0);
        assert!(q.claim().unwrap().is_some());
        assert!(q.claim().unwrap().is_none());
        assert_eq!(q.list(10).unwrap().len(), 3);
    }

    #[test]
    fn deliveries_are_refused_once_seen_and_expire() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.db");
        let (q, _) = SqliteQueue::open(&path).unwrap();
        assert!(q.remember_delivery_at("app", "d1", 1_000).unwrap());
        assert!(!q.remember_delivery_at("app", "d1", 2_000).unwrap());
        assert!(
            q.remember_delivery_at("other", "d1", 2_000).unwrap(),
            "ids are per repository"
        );
        drop(q);
        let (q, _) = SqliteQueue::open(&path).unwrap();
        assert!(
            !q.remember_delivery_at("app", "d1", 3_000).unwrap(),
            "remembered across a restart"
        );
        q.forget_delivery("app", "d1").unwrap();
        assert!(q.remember_delivery_at("app", "d1", 4_000).unwrap());
        let later = 4_000 + DELIVERY_TTL_MS + 1;
        assert!(
            q.remember_delivery_at("app", "d1", later).unwrap(),
            "expired ids are dropped"
        );
        let n: i64 = q
            .conn()
            .query_row("SELECT count(*) FROM deliveries", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 1, "the expired 'other' id went too");
    }

    #[test]
    fn prune_keeps_newest() {
        let dir = tempfile::tempdir().unwrap();
        let (q, _) = SqliteQueue::open(&dir.path().join("q.db")).unwrap();
        for i in 0..5 {
            q.enqueue(
                "a",
                "i",
                &push(&format!("refs/tags/{i}"), 'a'),
                &[plan("t")],
            )
            .unwrap();
            let b = q.claim().unwrap().unwrap();
            q.finish(b.id, Err("boom".into())).unwrap();
        }
        let deleted = q.prune(2).unwrap();
        assert_eq!(deleted.len(), 3);
        assert_eq!(q.list(10).unwrap().len(), 2);
    }
}
