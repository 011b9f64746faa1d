//! The generic step graph the solver runs: chains of layer-producing operations (exec, file copy)
//! over a base (an image, another chain, or nothing). Nothing here knows about Dockerfiles: the
//! frontend lowers a Dockerfile into a [`Plan`]; the solver executes it.
//!
//! A leaf: owns every op, input, source and mount type, and imports nothing of this crate. Plan
//! types are deliberately not `Serialize`: step keys are the solver's explicit encoding
//! (`solver::key`), never a serialization of these structs.

use hoist_image::ImageConfig;

/// The whole build graph.
#[derive(Debug, Clone)]
pub struct Plan {
    pub chains: Vec<Chain>,
    /// The chain whose result is the image.
    pub target: usize,
}

impl Plan {
    /// Whether any step reads the build context (a COPY/ADD from it, a mount of it).
    pub fn reads_context(&self) -> bool {
        self.reads(&Input::Context)
    }

    /// Whether any step reads `input` (a COPY/ADD from it, a mount of it).
    pub fn reads(&self, input: &Input) -> bool {
        self.chains
            .iter()
            .flat_map(|c| &c.steps)
            .any(|s| match &s.op {
                Op::File(f) => f.from == *input,
                Op::Exec(e) => e.mounts.iter().any(|m| match m {
                    ExecMount::Bind { from, .. } => from == input,
                    ExecMount::Cache(c) => c.from.as_ref() == Some(input),
                    _ => false,
                }),
                Op::Mkdir(_) => false,
            })
    }
}

/// What a chain starts from.
#[derive(Debug, Clone)]
pub enum Base {
    /// No layers.
    Scratch,
    /// An image in the store: its id and layer diff_ids.
    Image {
        reference: String,
        id: String,
        diff_ids: Vec<String>,
    },
    /// The result of another chain.
    Chain(usize),
}

/// A sequence of operations, each producing one layer.
#[derive(Debug, Clone)]
pub struct Chain {
    /// Display prefix for progress (`build`, `stage-1`, or empty for a single-stage build).
    pub label: String,
    /// The FROM line as displayed.
    pub base_display: String,
    pub base: Base,
    /// The platform its steps run for (`FROM --platform=…`, else the target's), normalised.
    pub platform: String,
    pub steps: Vec<Step>,
    /// The final image config's metadata (its `history` and `rootfs` are ignored: the solver builds them
    /// from the base's plus `history` below and the layers it commits).
    pub config: ImageConfig,
    /// The history entries this chain adds, in order; those with `empty_layer == false` correspond
    /// one-to-one to `steps`. The solver stamps their `created` time.
    pub history: Vec<hoist_image::History>,
}

/// One layer-producing operation.
#[derive(Debug, Clone)]
pub struct Step {
    /// The instruction as progress shows it (`RUN echo hi`).
    pub display: String,
    /// Where it came from, as the excerpt a failure shows (`Dockerfile:12`, the numbered lines).
    pub location: String,
    pub op: Op,
    /// Run even when the cache has the result (`--no-cache-filter` names the step's stage).
    pub no_cache: bool,
}

/// An operation.
#[derive(Debug, Clone)]
pub enum Op {
    Exec(ExecOp),
    File(FileOp),
    Mkdir(MkdirOp),
}

/// Create a directory and its missing parents, mode 0755, owned by `user` (resolved in the image's
/// `/etc/passwd`; root when None). Nothing changes when it exists: the layer is then empty.
#[derive(Debug, Clone)]
pub struct MkdirOp {
    /// Absolute, clean.
    pub path: String,
    /// `user[:group]`, names or ids.
    pub user: Option<String>,
}

/// Run a process over the current root filesystem; its changes are the layer.
#[derive(Debug, Clone)]
pub struct ExecOp {
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    pub user: Option<String>,
    pub network: NetworkMode,
    pub mounts: Vec<ExecMount>,
    /// Build-wide sandbox settings.
    pub sandbox: RunOptions,
}

/// What every RUN of a build gets from `docker build --add-host`, `--shm-size`, `--ulimit` and
/// `--build-arg BUILDKIT_SANDBOX_HOSTNAME`; part of a step's key, as these are of BuildKit's exec op.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunOptions {
    /// `/etc/hosts` lines (`IP\tNAME`) after the default entries.
    pub extra_hosts: Vec<String>,
    /// `/dev/shm` size in bytes (default: 64 MiB).
    pub shm_size: Option<u64>,
    pub ulimits: Vec<Ulimit>,
    /// The step's host name (None: BuildKit's `buildkitsandbox`).
    pub hostname: Option<String>,
}

impl RunOptions {
    pub fn is_empty(&self) -> bool {
        *self == RunOptions::default()
    }
}

/// One `--ulimit`: a `libc::RLIMIT_*` resource and its limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ulimit {
    pub resource: u32,
    pub soft: u64,
    pub hard: u64,
}

/// Network for an exec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetworkMode {
    Host,
    None,
}

/// An extra mount for an exec.
#[derive(Debug, Clone)]
pub enum ExecMount {
    /// A persistent cache directory kept across builds under the cache id (never in a layer).
    Cache(CacheMount),
    /// A build secret (`--secret id=...`): a file at `target` and/or an env var; only its id is
    /// part of the plan (and so of cache keys), never its value.
    Secret(SecretMount),
    /// An SSH agent socket forwarded from the host (`--ssh id=...`).
    Ssh(SshMount),
    /// A fresh tmpfs.
    Tmpfs { target: String, size: Option<u64> },
    /// A read-only (or discarded-writes) view of a path of another input.
    Bind {
        target: String,
        from: Input,
        source: String,
        readwrite: bool,
    },
}

/// Where files come from.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// The build context.
    Context,
    /// A named local context (`--build-context NAME=DIR`), by name.
    Local(String),
    /// The result of another chain.
    Chain(usize),
    /// An image from the store (by reference).
    Image(String),
    /// Inline files (heredocs): name -> content.
    Inline(Vec<(String, String)>),
}

/// One COPY/ADD source. The frontend decides what a source string is; the solver never does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A path (wildcards allowed) in the op's `from` input.
    Path(String),
    /// A file downloaded over http(s) (ADD only); `checksum`: `ADD --checksum`, verified.
    Http {
        url: String,
        checksum: Option<String>,
    },
    /// A git repository checked out (ADD only): the URL as written, with its ref, subdir and query;
    /// `ADD --keep-git-dir` and `--checksum` (the commit the checkout must be).
    Git {
        url: String,
        keep_git_dir: bool,
        checksum: Option<String>,
    },
}

/// Copy files into the current root filesystem.
#[derive(Debug, Clone)]
pub struct FileOp {
    pub from: Input,
    /// Sources, typed by the frontend (expanded).
    pub sources: Vec<Source>,
    /// Absolute destination, trailing `/` kept.
    pub dest: String,
    pub chown: Option<String>,
    /// Octal bits, or a symbolic mode applied to each copied file's own mode.
    pub chmod: Option<hoist_parser::chmod::Chmod>,
    pub exclude: Vec<String>,
    pub parents: bool,
    pub link: bool,
    /// ADD: unpack local archives.
    pub unpack: bool,
}

/// How concurrent builds share a cache mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Sharing {
    /// Everyone uses the same directory at once.
    #[default]
    Shared,
    /// A writer gets its own directory when the cache is in use.
    Private,
    /// Writers take turns.
    Locked,
}

/// `--mount=type=cache`.
#[derive(Debug, Clone, PartialEq)]
pub struct CacheMount {
    pub target: String,
    /// The cache's name across builds (default: the target).
    pub id: String,
    pub sharing: Sharing,
    /// Mode, uid and gid of the cache directory when it is created.
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    /// Seeds a new cache from this input's `source` path.
    pub from: Option<Input>,
    pub source: String,
    pub readonly: bool,
}

/// `--mount=type=secret`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretMount {
    pub id: String,
    /// Where the file appears; None when the secret is only exposed through `env`.
    pub target: Option<String>,
    /// Expose the value as this environment variable.
    pub env: Option<String>,
    pub required: bool,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// `--mount=type=ssh`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshMount {
    pub id: String,
    pub target: String,
    pub required: bool,
}
