//! Automated builds: the `hoist serve` HTTP service (push webhooks from GitHub, GitLab, Gitea/Forgejo and
//! plain git hooks), build rules, repository mirrors, the durable build queue and the status API/page.
//!
//! Owns: its config file, its queue (embedded SQLite, or a shared PostgreSQL database) and mirrors
//! under its state directory. Must not touch: how images are built or pushed (it runs `hoist build
//! --push` as a child process through [`runner::HoistCli`], behind the [`BuildRunner`] trait), or the
//! store's layout.
//!
//! Flow: [`server`] binds the listener and runs the routes and workers until a signal; a webhook is
//! authenticated ([`webhook`]), its ref matched against the repository's rules ([`rules`], tags from
//! [`tag_template`]), one build per distinct Dockerfile/context/args/labels queued ([`queue`]) before
//! the sender gets its 202 (a delivery id seen before gets 409: a replay); `concurrency` workers
//! ([`service`]) claim builds, bring the repository's bare mirror up to date and export the pushed
//! commit into a clean directory ([`mirror`]), then build and push every tag, only while the commit is
//! still its ref's tip and holding each tag's lock, so no older commit ever moves a tag back
//! ([`service`]). Logs stream into `state_dir/logs/<id>.log`, served by the status API and page
//! ([`http`]), which an optional `status_token` guards. `hoist trigger` prints a post-receive hook
//! ([`trigger`]) for plain git servers; it keeps the webhook key off every command line.
//!
//! Shared queue (`queue = "postgres://…"`): any number of processes, each `--role web|worker|all`,
//! share one database ([`queue::postgres`]): ids come from the database, workers claim under leases
//! renewed by heartbeat (a dead worker's build is requeued and run elsewhere; a worker that lost a
//! lease kills its build), tag locks are database rows, routing follows labels and sticks to a
//! repository's last worker, logs are copied into the database so every process serves them, and
//! builds use the registry as their cache.
//!
//! State directory: `queue.sqlite` (embedded queue only; WAL: builds and recent webhook delivery ids),
//! `mirrors/<repo>.git`, `work/<build id>/` (removed after each build and on start), `logs/<build id>.log`.

pub mod clock;
pub mod config;
pub mod http;
pub mod mirror;
pub mod queue;
pub mod rules;
pub mod runner;
pub mod server;
pub mod service;
pub mod tag_template;
pub mod trigger;
pub mod webhook;

pub use config::Config;
pub use queue::{Build, Queue, State};
pub use runner::{BuildOutput, BuildRequest, BuildRunner, HoistCli, Log};
pub use service::Service;
