//! The durable build queue behind one interface, [`Queue`], with two backends: embedded SQLite
//! ([`sqlite`], the default: one `hoist serve` process) and PostgreSQL ([`postgres`], `queue =
//! "postgres://…"`: any number of processes share it, claiming builds under leases).
//!
//! Owns: the build records, delivery ids, and (PostgreSQL) leases, tag locks, worker rows and log
//! chunks. Must not touch: how builds run ([`crate::service`]) or HTTP ([`crate::http`]).

pub mod postgres;
pub mod sqlite;

use std::path::Path;

use serde::Serialize;

use crate::clock::now_ms;
use crate::rules::{BuildPlan, Push};

pub use self::postgres::{PgQueue, WorkerIdentity, WorkerStatus};
pub use self::sqlite::{DELIVERY_CAP, DELIVERY_TTL_MS, SqliteQueue};

/// A build's lifecycle state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl State {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            State::Queued => "queued",
            State::Running => "running",
            State::Succeeded => "succeeded",
            State::Failed => "failed",
            State::Cancelled => "cancelled",
        }
    }
    pub(crate) fn parse(s: &str) -> State {
        match s {
            "queued" => State::Queued,
            "running" => State::Running,
            "succeeded" => State::Succeeded,
            "cancelled" => State::Cancelled,
            _ => State::Failed,
        }
    }
    /// Whether the build will not change any more.
    pub fn is_final(self) -> bool {
        matches!(self, State::Succeeded | State::Failed | State::Cancelled)
    }
}

/// One build as stored (and as the JSON API shows it, less its log).
#[derive(Debug, Clone, Serialize)]
pub struct Build {
    pub id: i64,
    pub repo: String,
    #[serde(rename = "ref")]
    pub git_ref: String,
    pub sha: String,
    pub state: State,
    /// The image name tags apply to.
    pub image: String,
    pub dockerfile: String,
    pub context: String,
    pub build_args: std::collections::BTreeMap<String, String>,
    /// Full references (`image:tag`).
    pub tags: Vec<String>,
    /// Unix milliseconds.
    pub queued_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    /// Run time in milliseconds (so far, for a running build).
    pub duration_ms: Option<i64>,
    /// Manifest digest pushed.
    pub digest: Option<String>,
    pub error: Option<String>,
    /// How many times the build was started (more than 1 after a restart or an expired lease).
    pub attempts: i64,
    /// The worker running (or that ran) it; shared queues only.
    pub worker: Option<String>,
    /// Worker labels the build needs (its rule's `labels`).
    pub labels: Vec<String>,
}

impl Build {
    /// The plan this build runs.
    pub fn plan(&self) -> BuildPlan {
        BuildPlan {
            dockerfile: self.dockerfile.clone(),
            context: self.context.clone(),
            build_args: self.build_args.clone(),
            tags: self
                .tags
                .iter()
                .map(|t| t.rsplit_once(':').map_or(t.as_str(), |x| x.1).to_string())
                .collect(),
            labels: self.labels.clone(),
        }
    }

    /// Run time so far or in all, from the stored times.
    pub(crate) fn duration(started_at: Option<i64>, finished_at: Option<i64>) -> Option<i64> {
        started_at.map(|s| finished_at.unwrap_or_else(now_ms) - s)
    }
}

/// The queue of one `hoist serve` process: SQLite or a shared PostgreSQL database.
#[derive(Clone)]
pub enum Queue {
    Sqlite(SqliteQueue),
    Postgres(PgQueue),
}

macro_rules! both {
    ($self:ident, $q:ident => $e:expr) => {
        match $self {
            Queue::Sqlite($q) => $e,
            Queue::Postgres($q) => $e,
        }
    };
}

impl Queue {
    /// Opens the SQLite queue at `path`; returns it and how many builds a stop had interrupted.
    pub fn open_sqlite(path: &Path) -> anyhow::Result<(Queue, usize)> {
        let (q, n) = SqliteQueue::open(path)?;
        Ok((Queue::Sqlite(q), n))
    }

    /// Connects to a PostgreSQL queue, applying migrations; `me` is this process as a worker.
    pub fn open_postgres(url: &str, me: WorkerIdentity) -> anyhow::Result<(Queue, usize)> {
        let (q, n) = PgQueue::open(url, me)?;
        Ok((Queue::Postgres(q), n))
    }

    /// Whether other processes share this queue.
    pub fn is_shared(&self) -> bool {
        matches!(self, Queue::Postgres(_))
    }

    /// Queues one build per plan for a push, cancelling the ref's older queued builds, atomically.
    /// Returns the new build ids and the ids cancelled.
    pub fn enqueue(
        &self,
        repo: &str,
        image: &str,
        push: &Push,
        plans: &[BuildPlan],
    ) -> anyhow::Result<(Vec<i64>, Vec<i64>)> {
        both!(self, q => q.enqueue(repo, image, push, plans))
    }

    /// Records a webhook delivery id; false when it was seen before (a replay).
    pub fn remember_delivery(&self, repo: &str, delivery: &str) -> anyhow::Result<bool> {
        both!(self, q => q.remember_delivery(repo, delivery))
    }

    /// Forgets a delivery id (its push could not be queued).
    pub fn forget_delivery(&self, repo: &str, delivery: &str) -> anyhow::Result<()> {
        both!(self, q => q.forget_delivery(repo, delivery))
    }

    /// Records that a running build did not publish: its commit is no longer the ref's tip.
    pub fn supersede(&self, id: i64, why: &str) -> anyhow::Result<()> {
        both!(self, q => q.supersede(id, why))
    }

    /// Takes the oldest queued build this process may run and marks it running.
    pub fn claim(&self) -> anyhow::Result<Option<Build>> {
        both!(self, q => q.claim())
    }

    /// Records a running build's outcome.
    pub fn finish(&self, id: i64, result: Result<Option<String>, String>) -> anyhow::Result<()> {
        both!(self, q => q.finish(id, result))
    }

    /// Cancels a queued build; returns whether it was queued.
    pub fn cancel(&self, id: i64) -> anyhow::Result<bool> {
        both!(self, q => q.cancel(id))
    }

    /// One build.
    pub fn get(&self, id: i64) -> anyhow::Result<Option<Build>> {
        both!(self, q => q.get(id))
    }

    /// The most recent builds, newest first.
    pub fn list(&self, limit: usize) -> anyhow::Result<Vec<Build>> {
        both!(self, q => q.list(limit))
    }

    /// Deletes finished builds beyond the newest `keep`; returns the ids deleted.
    pub fn prune(&self, keep: usize) -> anyhow::Result<Vec<i64>> {
        both!(self, q => q.prune(keep))
    }

    /// Shared queues: renews the leases of this process's running builds (and their tag locks) and
    /// its worker row. Returns the ids whose lease was lost. SQLite: nothing to do.
    pub fn heartbeat(&self, running: &[i64], load: usize) -> anyhow::Result<Vec<i64>> {
        match self {
            Queue::Sqlite(_) => Ok(Vec::new()),
            Queue::Postgres(q) => q.heartbeat(running, load),
        }
    }

    /// Shared queues: takes the cross-process lock on `tag` for build `id` (false: another build holds
    /// it). SQLite: the process's own locks suffice.
    pub fn try_lock_tag(&self, id: i64, tag: &str) -> anyhow::Result<bool> {
        match self {
            Queue::Sqlite(_) => Ok(true),
            Queue::Postgres(q) => q.try_lock_tag(id, tag),
        }
    }

    /// Shared queues: puts a build this process stopped running back in the queue at once.
    pub fn release(&self, id: i64) -> anyhow::Result<()> {
        match self {
            Queue::Sqlite(_) => Ok(()),
            Queue::Postgres(q) => q.release(id),
        }
    }

    /// Shared queues: appends to a build's log as every process sees it.
    pub fn append_log(&self, id: i64, data: &[u8]) -> anyhow::Result<()> {
        match self {
            Queue::Sqlite(_) => Ok(()),
            Queue::Postgres(q) => q.append_log(id, data),
        }
    }

    /// Shared queues: a build's log from byte `offset` on. `None`: the log is the local file.
    pub fn read_log(&self, id: i64, offset: u64) -> anyhow::Result<Option<String>> {
        match self {
            Queue::Sqlite(_) => Ok(None),
            Queue::Postgres(q) => q.read_log(id, offset).map(Some),
        }
    }

    /// Shared queues: removes this process from the workers (a graceful stop).
    pub fn leave(&self) -> anyhow::Result<()> {
        match self {
            Queue::Sqlite(_) => Ok(()),
            Queue::Postgres(q) => q.leave(),
        }
    }

    /// Shared queues: the workers seen recently, with labels and load.
    pub fn workers(&self) -> anyhow::Result<Vec<WorkerStatus>> {
        match self {
            Queue::Sqlite(_) => Ok(Vec::new()),
            Queue::Postgres(q) => q.workers(),
        }
    }
}
