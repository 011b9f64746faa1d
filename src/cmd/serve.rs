//! Commands: serve (automated builds on git push), trigger (prints or writes a post-receive hook), over
//! `hoist_serve`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Subcommand;
use hoist_serve::{Config, HoistCli};

use super::Global;

#[derive(Debug, Subcommand)]
pub enum Commands {
    /// Run the automated-build service: push webhooks in, images built and pushed out
    Serve {
        /// Configuration file
        #[arg(long, short = 'c', default_value = "hoist.toml", value_name = "FILE")]
        config: PathBuf,
        /// Listen on this address instead of the configuration's `listen`
        #[arg(long, value_name = "ADDR")]
        listen: Option<std::net::SocketAddr>,
        /// What this process does: accept webhooks (web), run builds (worker), or both (all)
        /// [default: the configuration's `role`, else all]
        #[arg(long, value_name = "ROLE")]
        role: Option<hoist_serve::config::Role>,
        /// Worker name in a shared queue, unique among its processes [default: <hostname>:<port>]
        #[arg(long, value_name = "NAME")]
        worker_name: Option<String>,
        /// Worker label to advertise, added to the configuration's `labels` (repeatable)
        #[arg(long = "label", value_name = "LABEL")]
        labels: Vec<String>,
    },
    /// Print a git post-receive hook that triggers `hoist serve` builds for REPOSITORY
    Trigger {
        /// Repository name, as in the configuration
        repository: String,
        /// Configuration file
        #[arg(long, short = 'c', default_value = "hoist.toml", value_name = "FILE")]
        config: PathBuf,
        /// Service URL the hook posts to [default: http://<listen>/hooks/<repository>]
        #[arg(long, value_name = "URL")]
        url: Option<String>,
        /// Write the hook to FILE (mode 0700: it holds the webhook key) instead of printing it
        #[arg(long, short = 'o', value_name = "FILE")]
        output: Option<PathBuf>,
    },
}

impl Commands {
    pub fn run(self, global: &Global) -> anyhow::Result<ExitCode> {
        match self {
            Commands::Serve {
                config,
                listen,
                role,
                worker_name,
                labels,
            } => {
                let mut config = Config::load(&config)?;
                if let Some(l) = listen {
                    config.listen = l;
                }
                if let Some(r) = role {
                    config.role = r;
                }
                if worker_name.is_some() {
                    config.worker_name = worker_name;
                }
                config.labels.extend(labels);
                let root = match config.store.clone().or_else(|| global.root.clone()) {
                    Some(r) => Some(std::path::absolute(&r)?),
                    None => None,
                };
                let runner = HoistCli::new(
                    std::env::current_exe().context("locating the hoist binary")?,
                    root,
                    config.insecure_registries.clone(),
                );
                hoist_serve::server::serve_until_signal(config, Arc::new(runner))?;
                Ok(ExitCode::SUCCESS)
            }
            Commands::Trigger {
                repository,
                config,
                url,
                output,
            } => {
                let config = Config::load(&config)?;
                let repo = config.repository(&repository).with_context(|| {
                    format!("no repository {repository:?} in the configuration")
                })?;
                let url =
                    url.unwrap_or_else(|| format!("http://{}/hooks/{}", config.listen, repo.name));
                let hook = hoist_serve::trigger::post_receive_hook(&url, config.secret_for(repo));
                match output {
                    Some(path) => hoist_serve::trigger::write_hook(&path, &hook)?,
                    None => print!("{hook}"),
                }
                Ok(ExitCode::SUCCESS)
            }
        }
    }
}
