//! Command groups, one module per owning crate, and the flags every command shares.

pub mod build;
pub mod builder;
pub mod container;
pub mod debug;
pub mod image;
pub mod registry;
pub mod run;
pub mod serve;
pub mod system;

use std::path::PathBuf;

use clap::Args;

/// Flags accepted before any command (`hoist --root DIR images`).
#[derive(Debug, Args)]
pub struct Global {
    /// Store directory [default: /var/lib/hoist for root, $XDG_DATA_HOME/hoist otherwise]
    #[arg(long, global = true, env = "HOIST_ROOT", value_name = "DIR", value_parser = absolute_dir)]
    pub root: Option<PathBuf>,
}

/// `--root` as an absolute path: the store's paths go to the sandbox's mount calls, which run
/// after the working directory has changed.
fn absolute_dir(s: &str) -> Result<PathBuf, String> {
    std::path::absolute(s).map_err(|e| format!("{s}: {e}"))
}
