//! Automated builds: the `hoist serve` HTTP service (push webhooks from GitHub, GitLab, Gitea/Forgejo and
//! plain git hooks), build rules, repository mirrors, the durable build queue and the status API/page.
//!
//! Owns: its config file, its SQLite queue and mirrors under its state directory. Must not touch: how
//! images are built or pushed (it calls the builder and registry crates), or the store's layout.
