//! Commands on images in the local store, with Docker's output shapes: `images`, `tag`, `rmi`,
//! `inspect`, `history`, `image prune|ls|rm|inspect|history|tag|save|load|import`, `save`, `load`,
//! `import`, `export`.

use std::fs::File;
use std::io::{self, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use hoist_image::archive::{self, ImportOptions, ImportSource, SaveFormat};
use hoist_image::display::human_size;
use hoist_image::views::{self, HistoryView, ImagesView};
use hoist_image::{Platform, Reference, Store};

use super::Global;

#[derive(Debug, Subcommand)]
pub enum Commands {
    /// List images
    Images(ImagesArgs),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE
    Tag(TagArgs),
    /// Remove one or more images
    Rmi(RmiArgs),
    /// Display detailed information on one or more images (JSON)
    Inspect(InspectArgs),
    /// Show the history of an image
    History(HistoryArgs),
    /// Save one or more images to a tar archive (streamed to STDOUT by default)
    Save(SaveArgs),
    /// Load an image from a tar archive or STDIN
    Load(LoadArgs),
    /// Import the contents from a tarball or directory to create a filesystem image
    Import(ImportArgs),
    /// Export an image's flattened filesystem as a tar archive
    Export(ExportArgs),
    /// Manage images
    #[command(subcommand)]
    Image(ImageCommands),
}

#[derive(Debug, Subcommand)]
pub enum ImageCommands {
    /// Remove unused images
    Prune(PruneArgs),
    /// List images
    #[command(alias = "list")]
    Ls(ImagesArgs),
    /// Remove one or more images
    Rm(RmiArgs),
    /// Display detailed information on one or more images
    Inspect(InspectArgs),
    /// Show the history of an image
    History(HistoryArgs),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE
    Tag(TagArgs),
    /// Save one or more images to a tar archive
    Save(SaveArgs),
    /// Load an image from a tar archive or STDIN
    Load(LoadArgs),
    /// Import the contents from a tarball or directory to create a filesystem image
    Import(ImportArgs),
    /// Show the files and config that differ from image A to image B
    Diff(DiffArgs),
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The image to compare from
    a: String,
    /// The image to compare to
    b: String,
    /// Output format: "table" (A/D/C lines, then config lines) or "json"
    #[arg(long, default_value = "table")]
    format: String,
    /// Compare this platform of multi-platform images (os/arch[/variant])
    #[arg(long)]
    platform: Option<String>,
}

#[derive(Debug, Args)]
pub struct ImagesArgs {
    /// Only show images matching REPOSITORY[:TAG]
    repository: Option<String>,
    /// Only show image IDs
    #[arg(short, long)]
    quiet: bool,
    /// Show all images (untagged ones are always shown)
    #[arg(short, long)]
    all: bool,
    /// Don't truncate output
    #[arg(long)]
    no_trunc: bool,
    /// Show digests
    #[arg(long)]
    digests: bool,
    /// Output format: "table" or "json" (one JSON object per line)
    #[arg(long, default_value = "table")]
    format: String,
    /// Filter output: dangling=true|false, reference=PATTERN (with * globs), label=KEY[=VALUE]
    #[arg(short, long)]
    filter: Vec<String>,
}

#[derive(Debug, Args)]
pub struct TagArgs {
    source: String,
    target: String,
}

#[derive(Debug, Args)]
pub struct RmiArgs {
    #[arg(required = true)]
    images: Vec<String>,
    /// Force removal of the image
    #[arg(short, long)]
    force: bool,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    #[arg(required = true)]
    images: Vec<String>,
    /// Inspect a specific platform of a multi-platform image (os/arch[/variant])
    #[arg(long)]
    platform: Option<String>,
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    image: String,
    /// Show history for the given platform of a multi-platform image (os/arch[/variant])
    #[arg(long)]
    platform: Option<String>,
    /// Don't truncate output
    #[arg(long)]
    no_trunc: bool,
    /// Only show image IDs
    #[arg(short, long)]
    quiet: bool,
    /// Print sizes and dates in human readable format
    #[arg(short = 'H', long, default_value_t = true, action = clap::ArgAction::Set)]
    human: bool,
    /// Output format: "table" or "json"
    #[arg(long, default_value = "table")]
    format: String,
    /// Per layer: its size and the bytes later layers delete or overwrite (wasted space), then
    /// the wasted files
    #[arg(long)]
    layers: bool,
}

#[derive(Debug, Args)]
pub struct SaveArgs {
    #[arg(required = true)]
    images: Vec<String>,
    /// Write to a file, instead of STDOUT
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// Archive format: "docker" (docker-archive plus OCI layout, as Docker 25+) or "oci"
    #[arg(long, default_value = "docker")]
    format: String,
    /// Save only the given platform of a multi-platform image (os/arch[/variant]); a docker
    /// archive holds one platform (default: this machine's), an OCI archive the whole index
    #[arg(long)]
    platform: Option<String>,
}

#[derive(Debug, Args)]
pub struct LoadArgs {
    /// Read from tar archive file, instead of STDIN
    #[arg(short, long)]
    input: Option<PathBuf>,
    /// Suppress the load output
    #[arg(short, long)]
    quiet: bool,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// A rootfs tarball (plain, gzip, bzip2, xz or zstd), its http(s) URL, a directory, or - for STDIN
    source: String,
    /// REPOSITORY[:TAG] to give the image
    name: Option<String>,
    /// Set commit message for imported image
    #[arg(short, long)]
    message: Option<String>,
    /// Apply a Dockerfile instruction to the image (CMD, ENTRYPOINT, ENV, EXPOSE, HEALTHCHECK,
    /// LABEL, ONBUILD, STOPSIGNAL, USER, VOLUME, WORKDIR)
    #[arg(short, long = "change")]
    change: Vec<String>,
    /// Set platform if server is multi-platform capable: the platform the image's config names
    /// (os/arch[/variant])
    #[arg(long)]
    platform: Option<String>,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    image: String,
    /// Write to a file, instead of STDOUT
    #[arg(short, long)]
    output: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Remove all unused images, not just dangling ones
    #[arg(short, long)]
    all: bool,
    /// Do not prompt for confirmation
    #[arg(short, long)]
    force: bool,
}

fn open_store(global: &Global) -> anyhow::Result<Store> {
    let root = global
        .root
        .clone()
        .unwrap_or_else(hoist_image::default_root);
    Store::open(&root).with_context(|| format!("opening store {}", root.display()))
}

impl Commands {
    pub fn run(self, global: &Global) -> anyhow::Result<ExitCode> {
        let store = open_store(global)?;
        match self {
            Commands::Images(a) | Commands::Image(ImageCommands::Ls(a)) => images(&store, a),
            Commands::Tag(a) | Commands::Image(ImageCommands::Tag(a)) => {
                store.tag(&a.source, &Reference::parse(&a.target)?)?;
                Ok(ExitCode::SUCCESS)
            }
            Commands::Rmi(a) | Commands::Image(ImageCommands::Rm(a)) => rmi(&store, a),
            Commands::Inspect(a) | Commands::Image(ImageCommands::Inspect(a)) => inspect(&store, a),
            Commands::History(a) | Commands::Image(ImageCommands::History(a)) => history(&store, a),
            Commands::Save(a) | Commands::Image(ImageCommands::Save(a)) => save(&store, a),
            Commands::Load(a) | Commands::Image(ImageCommands::Load(a)) => load(&store, a),
            Commands::Import(a) | Commands::Image(ImageCommands::Import(a)) => import(&store, a),
            Commands::Export(a) => export(&store, a),
            Commands::Image(ImageCommands::Prune(a)) => prune(&store, a),
            Commands::Image(ImageCommands::Diff(a)) => diff(&store, a),
        }
    }
}

fn diff(store: &Store, a: DiffArgs) -> anyhow::Result<ExitCode> {
    let platform = a.platform.as_deref().map(Platform::parse).transpose()?;
    let ia = store.resolve_platform(&a.a, platform.as_ref())?;
    let ib = store.resolve_platform(&a.b, platform.as_ref())?;
    let d = hoist_image::diff::diff(store, &ia, &ib)?;
    match a.format.as_str() {
        "json" => println!("{}", serde_json::to_string_pretty(&d)?),
        "table" | "" => print!("{}", hoist_image::diff::render(&d)),
        f => bail!("invalid --format {f:?}: expected \"table\" or \"json\""),
    }
    Ok(ExitCode::SUCCESS)
}

fn images(store: &Store, a: ImagesArgs) -> anyhow::Result<ExitCode> {
    let rows = views::list_images(store, a.repository.as_deref(), &a.filter)?;
    let view = ImagesView {
        quiet: a.quiet,
        no_trunc: a.no_trunc,
        digests: a.digests,
        format: a.format,
    };
    print!("{}", views::render_images(&rows, &view)?);
    Ok(ExitCode::SUCCESS)
}

fn rmi(store: &Store, a: RmiArgs) -> anyhow::Result<ExitCode> {
    let mut code = ExitCode::SUCCESS;
    for i in &a.images {
        match store.remove_image(i, a.force) {
            Ok(events) => events.iter().for_each(|e| println!("{e}")),
            Err(e) => {
                eprintln!("Error: {e}");
                code = ExitCode::FAILURE;
            }
        }
    }
    Ok(code)
}

/// What `inspect` found for one name.
#[derive(serde::Serialize)]
#[serde(untagged)]
enum Inspected {
    Image(Box<views::Inspect>),
    Container(serde_json::Value),
}

fn inspect(store: &Store, a: InspectArgs) -> anyhow::Result<ExitCode> {
    let mut out = Vec::new();
    let mut code = ExitCode::SUCCESS;
    let platform = a.platform.as_deref().map(Platform::parse).transpose()?;
    for i in &a.images {
        match store.resolve_platform(i, platform.as_ref()) {
            Ok(img) => out.push(Inspected::Image(Box::new(views::inspect(store, &img)?))),
            // Not an image: a container of that name or id (as `docker inspect` finds either).
            Err(_) if let Some(c) = super::container::find(store, i) => {
                out.push(Inspected::Container(c))
            }
            Err(e) => {
                eprintln!("Error: {e}");
                code = ExitCode::FAILURE;
            }
        }
    }
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(code)
}

fn history(store: &Store, a: HistoryArgs) -> anyhow::Result<ExitCode> {
    let platform = a.platform.as_deref().map(Platform::parse).transpose()?;
    let img = store.resolve_platform(&a.image, platform.as_ref())?;
    let view = HistoryView {
        no_trunc: a.no_trunc,
        quiet: a.quiet,
        human: a.human,
        format: a.format,
    };
    if a.layers {
        print!("{}", views::render_history_layers(store, &img, &view)?);
    } else {
        print!("{}", views::render_history(store, &img, &view));
    }
    Ok(ExitCode::SUCCESS)
}

fn save(store: &Store, a: SaveArgs) -> anyhow::Result<ExitCode> {
    let format = match a.format.as_str() {
        "docker" | "docker-archive" => SaveFormat::Docker,
        "oci" | "oci-archive" => SaveFormat::Oci,
        f => bail!("unsupported --format {f:?} (expected \"docker\" or \"oci\")"),
    };
    let platform = a.platform.as_deref().map(Platform::parse).transpose()?;
    let platform = platform.as_ref();
    match &a.output {
        Some(p) => archive::save_to_file(store, &a.images, format, platform, p)?,
        None => {
            if io::stdout().is_terminal() {
                bail!("cowardly refusing to save to a terminal. Use the -o flag or redirect");
            }
            let mut w = archive::save_platform(
                store,
                &a.images,
                format,
                platform,
                io::BufWriter::new(io::stdout().lock()),
            )?;
            w.flush()?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn load(store: &Store, a: LoadArgs) -> anyhow::Result<ExitCode> {
    let lines = match &a.input {
        Some(p) => archive::load(
            store,
            File::open(p).with_context(|| format!("opening {}", p.display()))?,
        )?,
        None => {
            if io::stdin().is_terminal() {
                bail!("requested load from stdin, but stdin is empty");
            }
            archive::load(store, io::stdin().lock())?
        }
    };
    if !a.quiet {
        lines.iter().for_each(|l| println!("{l}"));
    }
    Ok(ExitCode::SUCCESS)
}

fn import(store: &Store, a: ImportArgs) -> anyhow::Result<ExitCode> {
    let path = PathBuf::from(&a.source);
    // `docker import URL`: fetched into the store's temp space (streamed, hashed), then imported.
    let download = if a.source.starts_with("http://") || a.source.starts_with("https://") {
        Some(hoist_builder::context::fetch::download(
            &a.source,
            &store.tmp_dir(),
            None,
        )?)
    } else {
        None
    };
    let src = if let Some(d) = &download {
        let file = d.dir.path().join(&d.name);
        ImportSource::Tar(Box::new(
            File::open(&file).with_context(|| format!("opening {}", file.display()))?,
        ))
    } else if a.source == "-" {
        ImportSource::Tar(Box::new(io::stdin().lock()))
    } else if path.is_dir() {
        ImportSource::Dir(&path)
    } else {
        ImportSource::Tar(Box::new(
            File::open(&path).with_context(|| format!("opening {}", path.display()))?,
        ))
    };
    let mut config = hoist_image::ImageConfig::default();
    hoist_builder::frontend::apply_changes(&mut config, &a.change)?;
    let opts = ImportOptions {
        source_name: a.source.clone(),
        message: a.message,
        config: config.config,
        tag: a.name.as_deref().map(Reference::parse).transpose()?,
        platform: a.platform.as_deref().map(Platform::parse).transpose()?,
    };
    let img = archive::import(store, src, &opts)?;
    println!("{}", img.config_digest);
    Ok(ExitCode::SUCCESS)
}

fn export(store: &Store, a: ExportArgs) -> anyhow::Result<ExitCode> {
    let img = store.resolve(&a.image)?;
    match &a.output {
        Some(p) => {
            let f = File::create(p).with_context(|| format!("creating {}", p.display()))?;
            archive::export(store, &img, io::BufWriter::new(f))?.flush()?;
        }
        None => {
            if io::stdout().is_terminal() {
                bail!("cowardly refusing to save to a terminal. Use the -o flag or redirect");
            }
            archive::export(store, &img, io::BufWriter::new(io::stdout().lock()))?.flush()?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn prune(store: &Store, a: PruneArgs) -> anyhow::Result<ExitCode> {
    if !a.force && io::stdin().is_terminal() {
        let what = if a.all {
            "all images without at least one container associated to them"
        } else {
            "all dangling images"
        };
        eprint!("WARNING! This will remove {what}.\nAre you sure you want to continue? [y/N] ");
        let mut line = String::new();
        io::stdin().read_line(&mut line)?;
        if !matches!(line.trim(), "y" | "Y" | "yes") {
            return Ok(ExitCode::SUCCESS);
        }
    }
    let (ids, gc) = store.prune(a.all)?;
    if !ids.is_empty() {
        println!("Deleted Images:");
        for id in &ids {
            println!("deleted: {id}");
        }
        println!();
    }
    println!("Total reclaimed space: {}", human_size(gc.bytes_removed));
    Ok(ExitCode::SUCCESS)
}
