//! Commands: `hoist debug parse [--json | --typed] [--validate] FILE` (FILE `-` reads stdin).

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;

use super::Global;

/// Developer tools.
#[derive(Debug, Subcommand)]
pub enum Commands {
    /// Inspect hoist internals.
    Debug {
        #[command(subcommand)]
        command: DebugCommand,
    },
}

/// `hoist debug` subcommands.
#[derive(Debug, Subcommand)]
pub enum DebugCommand {
    /// Parse a Dockerfile and print its AST (BuildKit dump format, or JSON).
    Parse {
        /// Print the AST as JSON instead of the dump format.
        #[arg(long)]
        json: bool,
        /// Also check instructions (flags, argument counts) as a build would, and lint.
        #[arg(long)]
        validate: bool,
        /// Print the typed instructions (stages, global ARGs) as JSON; implies --validate.
        #[arg(long, conflicts_with = "json")]
        typed: bool,
        /// The Dockerfile (`-` for standard input).
        file: PathBuf,
    },
}

impl Commands {
    pub fn run(self, _global: &Global) -> anyhow::Result<ExitCode> {
        match self {
            Commands::Debug {
                command:
                    DebugCommand::Parse {
                        json,
                        validate,
                        typed,
                        file,
                    },
            } => parse(&file, json, validate || typed, typed),
        }
    }
}

fn parse(file: &PathBuf, json: bool, validate: bool, typed: bool) -> anyhow::Result<ExitCode> {
    let (bytes, name) = if file.as_os_str() == "-" {
        let mut b = Vec::new();
        std::io::stdin()
            .read_to_end(&mut b)
            .context("reading standard input")?;
        (b, "-".to_string())
    } else {
        let b = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
        (b, file.display().to_string())
    };
    let ast = hoist_parser::parse(&bytes, &name)?;
    if validate {
        let df = hoist_parser::parse_dockerfile(&ast)?;
        let (warnings, _) = hoist_parser::lint::lint(&ast, &df)?;
        if !warnings.is_empty() {
            let n = warnings.len();
            eprintln!("{n} warning{} found:", if n == 1 { "" } else { "s" });
            for w in &warnings {
                eprintln!(" - {}: {} (line {})", w.rule, w.message, w.line);
            }
        }
    }
    if typed {
        let df = hoist_parser::parse_dockerfile(&ast)?;
        println!("{}", serde_json::to_string_pretty(&df)?);
    } else if json {
        println!("{}", serde_json::to_string_pretty(&ast)?);
    } else {
        println!("{}", hoist_parser::dump(&ast));
    }
    Ok(ExitCode::SUCCESS)
}
