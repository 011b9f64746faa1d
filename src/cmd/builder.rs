//! `hoist builder ...`: build cache management (`docker builder prune`).

use std::io::{BufRead, Write};
use std::process::ExitCode;

use clap::{Args, Subcommand};

use super::Global;

#[derive(Debug, Subcommand)]
pub enum Commands {
    /// Manage builds
    #[command(subcommand)]
    Builder(BuilderCommand),
}

#[derive(Debug, Subcommand)]
pub enum BuilderCommand {
    /// Remove build cache (RUN cache mounts, step cache and the layers only it used)
    Prune(PruneArgs),
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Remove all unused build cache, not just dangling ones (hoist keeps no other kind)
    #[arg(short, long)]
    all: bool,
    /// Do not prompt for confirmation
    #[arg(short, long)]
    force: bool,
}

impl Commands {
    pub fn run(self, global: &Global) -> anyhow::Result<ExitCode> {
        let Commands::Builder(BuilderCommand::Prune(a)) = self;
        if !a.force {
            eprint!(
                "WARNING! This will remove all dangling build cache.\nAre you sure you want to continue? [y/N] "
            );
            std::io::stderr().flush()?;
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line)?;
            if !line.trim().eq_ignore_ascii_case("y") {
                return Ok(ExitCode::SUCCESS);
            }
        }
        let _ = a.all;
        let root = global
            .root
            .clone()
            .unwrap_or_else(hoist_image::default_root);
        let store = hoist_image::Store::open(&root)?;
        let r = hoist_builder::prune::prune(&store)?;
        println!(
            "Total reclaimed space: {}",
            hoist_image::display::human_size(r.bytes)
        );
        Ok(ExitCode::SUCCESS)
    }
}
