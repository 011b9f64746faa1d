//! The typed instruction data: a [`Dockerfile`] of stages and commands, each command an
//! [`Instruction`] with its flags already checked, and the name lists BuildKit predefines.

use serde::Serialize;

use crate::ast::{Directives, Heredoc, Node};

/// A Dockerfile after instruction parsing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Dockerfile {
    /// File name (for errors).
    pub file: String,
    /// The escape character in force (`\` or `` ` ``).
    pub escape: char,
    /// Parser directives.
    pub directives: Directives,
    /// ARGs before the first FROM (usable in FROM lines).
    pub global_args: Vec<Command>,
    /// Build stages in file order.
    pub stages: Vec<Stage>,
}

/// Where an instruction came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct Source {
    /// The keyword as written.
    pub keyword: String,
    /// The logical line as read (continuations joined).
    pub original: String,
    /// 1-based first line.
    pub start_line: usize,
    /// 1-based last line (heredoc terminators included).
    pub end_line: usize,
}

/// One build stage: `FROM [--platform=p] base [AS name]` and its commands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Stage {
    /// Position among the stages (0-based), usable as `--from=<index>`.
    pub index: usize,
    /// Lower-cased stage name, if `AS name` was given.
    pub name: Option<String>,
    /// The base image expression, unexpanded (expand with global ARGs only).
    pub base: String,
    /// `--platform` value, unexpanded.
    pub platform: Option<String>,
    /// The FROM line.
    pub source: Source,
    /// The stage's instructions.
    pub commands: Vec<Command>,
}

/// An instruction with its source location.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Command {
    /// Location and original text.
    pub source: Source,
    /// The typed instruction.
    pub instruction: Instruction,
}

/// Shell form (run through the shell) or exec form (JSON array).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum ShellOrExec {
    /// `RUN echo hi`: the text handed to the shell.
    Shell(String),
    /// `RUN ["echo", "hi"]`: argv as is.
    Exec(Vec<String>),
}

/// A `key=value` pair (ENV, LABEL), value raw: quotes and escapes still in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyValue {
    /// Key, unexpanded.
    pub key: String,
    /// Value, unexpanded, quotes kept.
    pub value: String,
    /// True for the legacy `ENV k v` form.
    pub legacy: bool,
}

/// An ARG declaration: name and optional default (unexpanded).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ArgDecl {
    /// Variable name.
    pub name: String,
    /// Default value, unexpanded, if `=` was given.
    pub default: Option<String>,
}

/// RUN `--network` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
pub enum NetworkMode {
    /// The build's network.
    #[default]
    Default,
    /// Loopback only.
    None,
    /// The host's network (needs the `network.host` entitlement).
    Host,
}

/// RUN `--security` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
pub enum SecurityMode {
    /// Normal sandbox.
    #[default]
    Sandbox,
    /// Privileged (needs the `security.insecure` entitlement).
    Insecure,
}

/// A heredoc source of COPY/ADD: an inline file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InlineFile {
    /// File name (the heredoc's name).
    pub name: String,
    /// Body, `<<-` tabs already stripped.
    pub data: String,
    /// Whether the body is variable-expanded (name was not quoted).
    pub expand: bool,
}

/// COPY and ADD arguments and flags (ADD-only fields stay `None`/false for COPY).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct CopyArgs {
    /// Source paths (or URLs for ADD), unexpanded.
    pub sources: Vec<String>,
    /// Heredoc sources.
    pub inline: Vec<InlineFile>,
    /// Destination, unexpanded.
    pub dest: String,
    /// `--from` (COPY only): stage name, index or image; never expanded.
    pub from: Option<String>,
    /// `--chown`, unexpanded.
    pub chown: Option<String>,
    /// `--chmod`, unexpanded.
    pub chmod: Option<String>,
    /// `--link`.
    pub link: bool,
    /// `--parents` (COPY only).
    pub parents: bool,
    /// `--exclude` patterns (not expanded).
    pub exclude: Vec<String>,
    /// `--checksum` (ADD only), unexpanded.
    pub checksum: Option<String>,
    /// `--keep-git-dir` (ADD only).
    pub keep_git_dir: Option<bool>,
    /// `--unpack` (ADD only).
    pub unpack: Option<bool>,
    /// The heredocs of the line.
    pub heredocs: Vec<Heredoc>,
    /// True when written as a JSON array.
    pub json: bool,
}

/// HEALTHCHECK settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Healthcheck {
    /// `HEALTHCHECK NONE`: disable the inherited check.
    None,
    /// `HEALTHCHECK [flags] CMD ...`.
    Cmd {
        /// `["CMD", argv...]` or `["CMD-SHELL", text]`, as Docker stores it.
        test: Vec<String>,
        /// `--interval` in nanoseconds (0 = default).
        interval_ns: u64,
        /// `--timeout` in nanoseconds.
        timeout_ns: u64,
        /// `--start-period` in nanoseconds.
        start_period_ns: u64,
        /// `--start-interval` in nanoseconds.
        start_interval_ns: u64,
        /// `--retries` (0 = default).
        retries: u32,
    },
}

/// A typed instruction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Instruction {
    /// `RUN`.
    Run {
        /// `--mount` values (CSV), raw; see [`parse_mount`](super::parse_mount).
        mounts: Vec<String>,
        /// `--network`.
        network: NetworkMode,
        /// `--security`.
        security: SecurityMode,
        /// `--device` values (labs only; conversion rejects them).
        devices: Vec<String>,
        /// The command.
        cmd: ShellOrExec,
        /// Heredocs opened on the line (bodies unexpanded, tabs kept).
        heredocs: Vec<Heredoc>,
    },
    /// `COPY`.
    Copy(CopyArgs),
    /// `ADD`.
    Add(CopyArgs),
    /// `ENV`.
    Env(Vec<KeyValue>),
    /// `ARG` (inside a stage).
    Arg(Vec<ArgDecl>),
    /// `LABEL`.
    Label(Vec<KeyValue>),
    /// `EXPOSE` ports, unexpanded.
    Expose(Vec<String>),
    /// `VOLUME` paths, unexpanded.
    Volume(Vec<String>),
    /// `USER`, unexpanded.
    User(String),
    /// `WORKDIR`, unexpanded.
    Workdir(String),
    /// `CMD`.
    Cmd(ShellOrExec),
    /// `ENTRYPOINT`.
    Entrypoint(ShellOrExec),
    /// `HEALTHCHECK`.
    Healthcheck(Healthcheck),
    /// `SHELL` argv.
    Shell(Vec<String>),
    /// `STOPSIGNAL`, unexpanded.
    StopSignal(String),
    /// `ONBUILD` trigger text (heredoc bodies appended) and its parsed node.
    OnBuild {
        /// The trigger as stored in the image config.
        expression: String,
        /// The parsed trigger.
        trigger: Box<Node>,
    },
    /// `MAINTAINER` (deprecated).
    Maintainer(String),
}

/// Every instruction name, lower-case.
pub const INSTRUCTIONS: [&str; 18] = [
    "add",
    "arg",
    "cmd",
    "copy",
    "entrypoint",
    "env",
    "expose",
    "from",
    "healthcheck",
    "label",
    "maintainer",
    "onbuild",
    "run",
    "shell",
    "stopsignal",
    "user",
    "volume",
    "workdir",
];

/// The platform ARGs every build predefines in the global scope (Dockerfile reference, "Automatic
/// platform ARGs in the global scope"); a stage sees them only after `ARG NAME`.
pub const PLATFORM_ARGS: [&str; 8] = [
    "TARGETPLATFORM",
    "TARGETOS",
    "TARGETARCH",
    "TARGETVARIANT",
    "BUILDPLATFORM",
    "BUILDOS",
    "BUILDARCH",
    "BUILDVARIANT",
];

/// The proxy ARGs a RUN receives from `--build-arg` without an `ARG` line (Dockerfile reference,
/// "Predefined ARGs"), kept out of the image history.
pub const PROXY_ARGS: [&str; 10] = [
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

impl Dockerfile {
    /// The stage named `name` (case-insensitive) or with that index.
    pub fn stage(&self, name: &str) -> Option<&Stage> {
        let lower = name.to_lowercase();
        self.stages
            .iter()
            .find(|s| s.name.as_deref() == Some(lower.as_str()))
            .or_else(|| name.parse::<usize>().ok().and_then(|i| self.stages.get(i)))
    }

    /// Global ARG declarations, in order.
    pub fn global_arg_decls(&self) -> Vec<ArgDecl> {
        self.global_args
            .iter()
            .flat_map(|c| match &c.instruction {
                Instruction::Arg(a) => a.clone(),
                _ => Vec::new(),
            })
            .collect()
    }
}
