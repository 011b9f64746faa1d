//! Commands: none yet.

use std::process::ExitCode;

use clap::Subcommand;

use super::Global;

#[derive(Debug, Subcommand)]
pub enum Commands {}

impl Commands {
    pub fn run(self, _global: &Global) -> anyhow::Result<ExitCode> {
        match self {}
    }
}
