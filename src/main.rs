//! The `hoist` binary: clap definitions and dispatch only. Every command's logic lives in a library
//! crate (`parser`, `image`, `runtime`, `builder`, `registry`); the modules under `cmd/` translate
//! flags into calls and results into Docker-shaped output.

mod cmd;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// hoist: build, run and ship OCI images from Dockerfiles, without a daemon.
#[derive(Debug, Parser)]
#[command(name = "hoist", version, about, propagate_version = true)]
struct Cli {
    #[command(flatten)]
    global: cmd::Global,

    #[command(subcommand)]
    command: Command,
}

/// Every top-level command. Each group is owned by one module under `cmd/`.
#[derive(Debug, Subcommand)]
enum Command {
    #[command(flatten)]
    Debug(cmd::debug::Commands),
    #[command(flatten)]
    Image(cmd::image::Commands),
    #[command(flatten)]
    Run(cmd::run::Commands),
    #[command(flatten)]
    Container(cmd::container::Commands),
    #[command(flatten)]
    Build(cmd::build::Commands),
    #[command(flatten)]
    Builder(cmd::builder::Commands),
    #[command(flatten)]
    Registry(cmd::registry::Commands),
    #[command(flatten)]
    Serve(cmd::serve::Commands),
    #[command(flatten)]
    System(cmd::system::Commands),
}

impl Command {
    /// Commands that only print (listings, JSON, archives) die quietly when their reader goes away,
    /// as `docker images | head` does. Commands that feed pipes of their own (run, build, serve)
    /// keep Rust's default of seeing EPIPE as an error instead.
    fn dies_on_broken_pipe(&self) -> bool {
        matches!(
            self,
            Command::Debug(_) | Command::Image(_) | Command::System(_)
        )
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Unprivileged: carry on as root of a user namespace (rootless); pure commands need none.
    if !matches!(cli.command, Command::Debug(_)) {
        hoist_runtime::userns::enter();
    }
    if cli.command.dies_on_broken_pipe() {
        // SAFETY: restoring a default disposition before any thread exists.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    }
    let result = match cli.command {
        Command::Debug(c) => c.run(&cli.global),
        Command::Image(c) => c.run(&cli.global),
        Command::Run(c) => c.run(&cli.global),
        Command::Container(c) => c.run(&cli.global),
        Command::Build(c) => c.run(&cli.global),
        Command::Builder(c) => c.run(&cli.global),
        Command::Registry(c) => c.run(&cli.global),
        Command::Serve(c) => c.run(&cli.global),
        Command::System(c) => c.run(&cli.global),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("Error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
