//! Automated builds: the `hoist serve` HTTP service (push webhooks from GitHub, GitLab, Gitea/Forgejo and
//! plain git hooks), build rules, repository mirrors, the durable build queue and the status API/page.
//!
//! Owns: its config file, its SQLite queue and mirrors under its state directory. Must not touch: how
//! images are built or pushed (it calls the builder and registry crates), or the store's layout.

pub mod config;
pub mod http;
pub mod mirror;
pub mod queue;
pub mod rules;
pub mod runner;
pub mod service;
pub mod trigger;
pub mod webhook;

pub use config::Config;
pub use queue::{Build, Queue, State};
pub use runner::{BuildOutput, BuildRequest, BuildRunner, HoistCli, Log};
pub use service::Service;
