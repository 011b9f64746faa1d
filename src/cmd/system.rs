//! `hoist system check [--repair]` and `hoist system df [-v]`: the store's health and disk usage.

use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use hoist_image::Store;

use super::Global;

#[derive(Debug, Subcommand)]
pub enum Commands {
    /// Manage the store
    #[command(subcommand)]
    System(SystemCommands),
}

#[derive(Debug, Subcommand)]
pub enum SystemCommands {
    /// Verify the store (blobs, layers, unpacked layers, images, tags); exit 1 when it is damaged
    Check(CheckArgs),
    /// Show disk usage
    Df(DfArgs),
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Remove what is broken (corrupt blobs, wrong layer records, untrusted unpacked layers, the
    /// images that lost a blob) and name the images affected
    #[arg(long)]
    repair: bool,
}

#[derive(Debug, Args)]
pub struct DfArgs {
    /// Show detailed information on space usage
    #[arg(short, long)]
    verbose: bool,
}

impl Commands {
    pub fn run(self, global: &Global) -> anyhow::Result<ExitCode> {
        let root = global
            .root
            .clone()
            .unwrap_or_else(hoist_image::default_root);
        let store =
            Store::open(&root).with_context(|| format!("opening store {}", root.display()))?;
        match self {
            Commands::System(SystemCommands::Check(a)) => check(&store, a.repair),
            Commands::System(SystemCommands::Df(a)) => {
                let usage = hoist_image::df::usage(&store)?;
                print!("{}", hoist_image::df::render(&usage, a.verbose));
                Ok(ExitCode::SUCCESS)
            }
        }
    }
}

fn check(store: &Store, repair: bool) -> anyhow::Result<ExitCode> {
    let r = hoist_image::check::check(store, repair)?;
    println!(
        "checked {} blobs, {} layers ({} unpacked), {} images",
        r.blobs, r.layers, r.unpacked, r.images
    );
    for p in &r.problems {
        println!("{}: {}", p.subject, p.why);
    }
    if !repair {
        if r.is_clean() {
            println!("no problems found");
            return Ok(ExitCode::SUCCESS);
        }
        println!(
            "{} problem(s) found: `hoist system check --repair` removes what is broken",
            r.problems.len()
        );
        return Ok(ExitCode::FAILURE);
    }
    for line in &r.repaired {
        println!("{line}");
    }
    if !r.images_removed.is_empty() {
        println!("images affected: {}", r.images_removed.join(", "));
    }
    // What the repair left must be sound.
    let after = hoist_image::check::check(store, false)?;
    for p in &after.problems {
        println!("still damaged: {}: {}", p.subject, p.why);
    }
    if after.is_clean() {
        if !r.is_clean() {
            let _ = store.gc();
        }
        println!("no problems left");
        Ok(ExitCode::SUCCESS)
    } else {
        Ok(ExitCode::FAILURE)
    }
}
