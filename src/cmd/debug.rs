//! Commands: `hoist debug parse [--json | --typed] [--validate] FILE` (FILE `-` reads stdin),
//! `hoist debug dump-image [--base IMAGE] IMAGE` (the conformance suite's normalised image), and
//! `hoist lint FILE`: the build checks of `docker build --check`.

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
    /// Run the build checks on a Dockerfile (as `docker build --check`) without building
    Lint {
        /// The Dockerfile (`-` for standard input).
        file: PathBuf,
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
    /// Print an image as stable JSON: config, history and merged filesystem, without dates.
    DumpImage {
        /// Leave out the files and history this image shares with IMAGE (when built on it).
        #[arg(long, value_name = "IMAGE")]
        base: Option<String>,
        /// Leave out PATH and everything under it (repeatable).
        #[arg(long, value_name = "PATH")]
        exclude: Vec<String>,
        /// The image (name or ID) in the store.
        image: String,
    },
}

impl Commands {
    pub fn run(self, global: &Global) -> anyhow::Result<ExitCode> {
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
            Commands::Debug {
                command:
                    DebugCommand::DumpImage {
                        base,
                        exclude,
                        image,
                    },
            } => dump_image(global, &image, base.as_deref(), &exclude),
            Commands::Lint { file } => lint(&file, global),
        }
    }
}

/// Prints the check report (base images' ENV from the store when it has them); exits 1 when
/// `# check=error=true` and something was found.
pub fn lint(file: &PathBuf, global: &Global) -> anyhow::Result<ExitCode> {
    let (text, name) = if file.as_os_str() == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("reading standard input")?;
        (s, "Dockerfile".to_string())
    } else {
        let s = std::fs::read_to_string(file)
            .with_context(|| format!("failed to read dockerfile: open {}", file.display()))?;
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "Dockerfile".into());
        (s, name)
    };
    let root = global
        .root
        .clone()
        .unwrap_or_else(hoist_image::default_root);
    let report = hoist_builder::frontend::lint::check_in_store(
        &text,
        &name,
        &root,
        &Default::default(),
        None,
    )?;
    print!("{}", report.render());
    if let Some(e) = report.render_error() {
        eprint!("{e}");
    }
    Ok(if report.failed() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
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

fn dump_image(
    global: &Global,
    image: &str,
    base: Option<&str>,
    exclude: &[String],
) -> anyhow::Result<ExitCode> {
    let root = global
        .root
        .clone()
        .unwrap_or_else(hoist_image::default_root);
    let store = hoist_image::Store::open(&root)
        .with_context(|| format!("opening store {}", root.display()))?;
    let img = store.resolve(image)?;
    let base = base.map(|b| store.resolve(b)).transpose()?;
    let dump = hoist_image::tree_dump::dump(&store, &img, base.as_ref(), exclude)?;
    println!("{}", serde_json::to_string_pretty(&dump)?);
    Ok(ExitCode::SUCCESS)
}
