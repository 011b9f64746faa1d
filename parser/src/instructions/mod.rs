//! Typed, validated instructions (BuildKit's `frontend/dockerfile/instructions`): an [`Ast`] becomes a
//! [`Dockerfile`] of global ARGs and [`Stage`]s, each instruction a [`Instruction`] variant with its
//! flags checked. Values stay unexpanded where BuildKit expands them later with the step's
//! environment; [`expand`] and friends do that expansion with [`crate::shell`].

use std::collections::BTreeMap;

use serde::Serialize;

use crate::ast::{Ast, Directives, Heredoc, Node};
use crate::error::ParseError;
use crate::shell::{Env, Lexer, ShellError};
use crate::syntax::parse_heredoc;

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
        /// `--mount` values (CSV), raw; see [`parse_mount`].
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

fn src(node: &Node) -> Source {
    Source {
        keyword: node.keyword.clone(),
        original: node.original.clone(),
        start_line: node.start_line,
        end_line: node.end_line,
    }
}

/// Levenshtein distance for "did you mean" suggestions.
fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for i in 1..=a.len() {
        let mut cur = vec![i; b.len() + 1];
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            cur[j] = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Appends ` (did you mean x?)` when a candidate is within edit distance 2 (the first closest
/// one). Case-insensitively, the suggestion takes the value's case as BuildKit's `matchCase`:
/// upper for an upper-case value (`FRM` gives `FROM`), lower for a lower-case or mixed one.
fn suggest(msg: String, value: &str, candidates: &[&str], case_sensitive: bool) -> String {
    let v = if case_sensitive {
        value.to_string()
    } else {
        value.to_lowercase()
    };
    let best = candidates
        .iter()
        .map(|c| {
            let c = if case_sensitive {
                c.to_string()
            } else {
                c.to_lowercase()
            };
            (distance(&v, &c), c)
        })
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d);
    match best {
        Some((_, c)) if c != v => {
            let c = if !case_sensitive && value == value.to_uppercase() && value != v {
                c.to_uppercase()
            } else {
                c
            };
            format!("{msg} (did you mean {c}?)")
        }
        _ => msg,
    }
}

#[derive(Clone, Copy, PartialEq)]
enum FlagType {
    Bool,
    Str,
    Strings,
}

/// BuildKit's `BFlags`: declared flags, then `parse` checks the node's flags against them.
struct Flags<'a> {
    args: &'a [String],
    decl: Vec<(&'static str, FlagType)>,
    values: BTreeMap<&'static str, Vec<String>>,
}

impl<'a> Flags<'a> {
    fn new(args: &'a [String]) -> Self {
        Flags {
            args,
            decl: Vec::new(),
            values: BTreeMap::new(),
        }
    }

    fn add(&mut self, name: &'static str, t: FlagType) {
        self.decl.push((name, t));
    }

    fn parse(&mut self) -> Result<(), String> {
        for arg in self.args {
            let Some(body) = arg.strip_prefix("--") else {
                return Err(format!("arg should start with -- : {arg}"));
            };
            if body.is_empty() {
                return Ok(());
            }
            let (name, value) = match body.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (body, None),
            };
            let Some(&(key, t)) = self.decl.iter().find(|(n, _)| *n == name) else {
                let names: Vec<&str> = self.decl.iter().map(|(n, _)| *n).collect();
                return Err(suggest(
                    format!("unknown flag: --{name}"),
                    name,
                    &names,
                    true,
                ));
            };
            if t != FlagType::Strings && self.values.contains_key(key) {
                return Err(format!("duplicate flag specified: --{name}"));
            }
            let v = match t {
                FlagType::Bool => match value {
                    Some("") => return Err(format!("missing a value on flag: --{name}")),
                    None => "true".to_string(),
                    Some(v) => match v.to_lowercase().as_str() {
                        "true" => "true".to_string(),
                        "false" => "false".to_string(),
                        _ => {
                            return Err(format!(
                                "expecting boolean value for flag --{name}, not: {v}"
                            ));
                        }
                    },
                },
                FlagType::Str | FlagType::Strings => match value {
                    None => return Err(format!("missing a value on flag: --{name}")),
                    Some(v) => v.to_string(),
                },
            };
            self.values.entry(key).or_default().push(v);
        }
        Ok(())
    }

    fn string(&self, name: &str) -> Option<String> {
        self.values.get(name).and_then(|v| v.last().cloned())
    }

    fn strings(&self, name: &str) -> Vec<String> {
        self.values.get(name).cloned().unwrap_or_default()
    }

    fn bool(&self, name: &str) -> Option<bool> {
        self.string(name).map(|v| v == "true")
    }
}

fn at_least_one(cmd: &str) -> String {
    format!("{cmd} requires at least one argument")
}

fn exactly_one(cmd: &str) -> String {
    format!("{cmd} requires exactly one argument")
}

fn no_flags(node: &Node) -> Result<(), String> {
    Flags::new(&node.flags).parse()
}

fn shell_or_exec(node: &Node, args: &[String]) -> ShellOrExec {
    if node.json {
        ShellOrExec::Exec(args.to_vec())
    } else {
        ShellOrExec::Shell(args.join(" "))
    }
}

fn kvps(args: &[String], cmd: &str) -> Result<Vec<KeyValue>, String> {
    if args.is_empty() {
        return Err(at_least_one(cmd));
    }
    if args.len() % 3 != 0 {
        return Err(format!("Bad input to {cmd}, too many arguments"));
    }
    args.chunks(3)
        .map(|c| {
            if c[0].is_empty() {
                return Err(format!("{cmd} names can not be blank"));
            }
            Ok(KeyValue {
                key: c[0].clone(),
                value: c[1].clone(),
                legacy: c[2].is_empty(),
            })
        })
        .collect()
}

fn copy_args(node: &Node, add: bool) -> Result<CopyArgs, String> {
    let cmd = if add { "ADD" } else { "COPY" };
    if node.args.len() < 2 {
        return Err(format!(
            "{cmd} requires at least two arguments, but only one was provided. Destination could not be determined"
        ));
    }
    let mut f = Flags::new(&node.flags);
    f.add("chown", FlagType::Str);
    f.add("chmod", FlagType::Str);
    f.add("link", FlagType::Bool);
    f.add("exclude", FlagType::Strings);
    if add {
        f.add("keep-git-dir", FlagType::Bool);
        f.add("checksum", FlagType::Str);
        f.add("unpack", FlagType::Bool);
    } else {
        f.add("from", FlagType::Str);
        f.add("parents", FlagType::Bool);
    }
    f.parse()?;
    let (srcs, dest) = node.args.split_at(node.args.len() - 1);
    let dest = dest[0].clone();
    if parse_heredoc(&dest).ok().flatten().is_some() {
        return Err(format!("{cmd} cannot accept a heredoc as a destination"));
    }
    let mut out = CopyArgs {
        dest,
        from: f.string("from"),
        chown: f.string("chown"),
        chmod: f.string("chmod"),
        link: f.bool("link").unwrap_or(false),
        parents: f.bool("parents").unwrap_or(false),
        exclude: f.strings("exclude"),
        checksum: f.string("checksum"),
        keep_git_dir: f.bool("keep-git-dir"),
        unpack: f.bool("unpack"),
        heredocs: node.heredocs.clone(),
        json: node.json,
        ..CopyArgs::default()
    };
    for s in srcs {
        match parse_heredoc(s).ok().flatten() {
            Some(h) => {
                let body = node
                    .heredocs
                    .iter()
                    .find(|d| d.name == h.name)
                    .map(|d| Heredoc {
                        chomp: h.chomp,
                        ..d.clone()
                    })
                    .map(|d| d.body())
                    .unwrap_or_default();
                out.inline.push(InlineFile {
                    name: h.name,
                    data: body,
                    expand: h.expand,
                });
            }
            None => out.sources.push(s.clone()),
        }
    }
    Ok(out)
}

fn run(node: &Node) -> Result<Instruction, String> {
    let mut f = Flags::new(&node.flags);
    f.add("mount", FlagType::Strings);
    f.add("network", FlagType::Str);
    f.add("security", FlagType::Str);
    f.add("device", FlagType::Strings);
    f.parse()?;
    let mounts = f.strings("mount");
    for m in &mounts {
        parse_mount(m, None)?;
    }
    let network = match f.string("network").as_deref() {
        None | Some("default") => NetworkMode::Default,
        Some("none") => NetworkMode::None,
        Some("host") => NetworkMode::Host,
        Some(v) => return Err(format!("invalid network mode {}", crate::dump::go_quote(v))),
    };
    let security = match f.string("security").as_deref() {
        None | Some("sandbox") => SecurityMode::Sandbox,
        Some("insecure") => SecurityMode::Insecure,
        Some(v) => {
            return Err(format!(
                "security {} is not valid",
                crate::dump::go_quote(v)
            ));
        }
    };
    Ok(Instruction::Run {
        mounts,
        network,
        security,
        devices: f.strings("device"),
        cmd: shell_or_exec(node, &node.args),
        heredocs: node.heredocs.clone(),
    })
}

fn healthcheck(node: &Node) -> Result<Instruction, String> {
    if node.args.is_empty() {
        return Err(at_least_one("HEALTHCHECK"));
    }
    let typ = node.args[0].to_uppercase();
    let args = &node.args[1..];
    if typ == "NONE" {
        if !args.is_empty() {
            return Err("HEALTHCHECK NONE takes no arguments".into());
        }
        return Ok(Instruction::Healthcheck(Healthcheck::None));
    }
    let mut f = Flags::new(&node.flags);
    for n in [
        "interval",
        "timeout",
        "start-period",
        "start-interval",
        "retries",
    ] {
        f.add(n, FlagType::Str);
    }
    f.parse()?;
    if typ != "CMD" {
        return Err(format!(
            "Unknown type {} in HEALTHCHECK (try CMD)",
            crate::dump::go_quote(&typ)
        ));
    }
    if args.is_empty() {
        return Err("Missing command after HEALTHCHECK CMD".into());
    }
    let mut test = vec![if node.json { "CMD" } else { "CMD-SHELL" }.to_string()];
    if node.json {
        test.extend(args.iter().cloned());
    } else {
        test.push(args.join(" "));
    }
    let interval = |name: &str| -> Result<u64, String> {
        let Some(v) = f.string(name).filter(|v| !v.is_empty()) else {
            return Ok(0);
        };
        let d = parse_go_duration(&v)?;
        if d == 0 {
            return Ok(0);
        }
        if d < 1_000_000 {
            return Err(format!(
                "Interval {} cannot be less than 1ms",
                crate::dump::go_quote(name)
            ));
        }
        Ok(d as u64)
    };
    let retries = match f.string("retries").filter(|v| !v.is_empty()) {
        None => 0,
        Some(v) => {
            let n = parse_go_int32(&v)?;
            if n < 0 {
                return Err(format!("--retries cannot be negative ({n})"));
            }
            n as u32
        }
    };
    Ok(Instruction::Healthcheck(Healthcheck::Cmd {
        test,
        interval_ns: interval("interval")?,
        timeout_ns: interval("timeout")?,
        start_period_ns: interval("start-period")?,
        start_interval_ns: interval("start-interval")?,
        retries,
    }))
}

/// Go's `strconv.ParseInt(v, 10, 32)` with its error text.
fn parse_go_int32(v: &str) -> Result<i64, String> {
    let digits = v.strip_prefix(['+', '-']).unwrap_or(v);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "strconv.ParseInt: parsing {}: invalid syntax",
            crate::dump::go_quote(v)
        ));
    }
    match v.parse::<i64>() {
        Ok(n) if (i32::MIN as i64..=i32::MAX as i64).contains(&n) => Ok(n),
        _ => Err(format!(
            "strconv.ParseInt: parsing {}: value out of range",
            crate::dump::go_quote(v)
        )),
    }
}

/// Go's `time.ParseDuration`, in nanoseconds (may be negative).
pub fn parse_go_duration(s: &str) -> Result<i128, String> {
    let invalid = || format!("time: invalid duration {}", crate::dump::go_quote(s));
    let (neg, mut rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let num = &rest[..num_len];
        if num.is_empty() || num == "." || num.matches('.').count() > 1 {
            return Err(invalid());
        }
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let mult: f64 = match unit {
            "" => {
                return Err(format!(
                    "time: missing unit in duration {}",
                    crate::dump::go_quote(s)
                ));
            }
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            u => {
                return Err(format!(
                    "time: unknown unit {} in duration {}",
                    crate::dump::go_quote(u),
                    crate::dump::go_quote(s)
                ));
            }
        };
        let n: f64 = num.parse().map_err(|_| invalid())?;
        total += n * mult;
    }
    if total > i64::MAX as f64 {
        return Err(invalid());
    }
    let t = total as i128;
    Ok(if neg { -t } else { t })
}

/// Parses one AST node into a typed instruction; `Ok(None)` for FROM (handled by the caller).
fn instruction(node: &Node) -> Result<Instruction, String> {
    let a = &node.args;
    Ok(match node.name().as_str() {
        "run" => run(node)?,
        "copy" => Instruction::Copy(copy_args(node, false)?),
        "add" => Instruction::Add(copy_args(node, true)?),
        "env" => {
            no_flags(node)?;
            Instruction::Env(kvps(a, "ENV")?)
        }
        "label" => {
            no_flags(node)?;
            Instruction::Label(kvps(a, "LABEL")?)
        }
        "arg" => Instruction::Arg(arg_decls(a)?),
        "expose" => {
            if a.is_empty() {
                return Err(at_least_one("EXPOSE"));
            }
            no_flags(node)?;
            Instruction::Expose(a.clone())
        }
        "volume" => {
            if a.is_empty() {
                return Err(at_least_one("VOLUME"));
            }
            no_flags(node)?;
            if a.iter().any(|v| v.trim().is_empty()) {
                return Err("VOLUME specified can not be an empty string".into());
            }
            Instruction::Volume(a.iter().map(|v| v.trim().to_string()).collect())
        }
        "user" | "workdir" | "maintainer" | "stopsignal" => {
            let upper = node.name().to_uppercase();
            if a.len() != 1 {
                return Err(exactly_one(&upper));
            }
            if upper != "STOPSIGNAL" {
                no_flags(node)?;
            }
            let v = a[0].clone();
            match upper.as_str() {
                "USER" => Instruction::User(v),
                "WORKDIR" => Instruction::Workdir(v),
                "MAINTAINER" => Instruction::Maintainer(v),
                _ => Instruction::StopSignal(v),
            }
        }
        "cmd" => {
            no_flags(node)?;
            Instruction::Cmd(shell_or_exec(node, a))
        }
        "entrypoint" => {
            no_flags(node)?;
            Instruction::Entrypoint(shell_or_exec(node, a))
        }
        "shell" => {
            no_flags(node)?;
            if a.is_empty() {
                return Err(at_least_one("SHELL"));
            }
            if !node.json {
                return Err("SHELL requires the arguments to be in JSON form".into());
            }
            Instruction::Shell(a.clone())
        }
        "healthcheck" => healthcheck(node)?,
        "onbuild" => {
            let Some(trigger) = &node.sub else {
                return Err(at_least_one("ONBUILD"));
            };
            no_flags(node)?;
            let t = trigger.keyword.trim().to_uppercase();
            match t.as_str() {
                "ONBUILD" => {
                    return Err("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed".into());
                }
                "MAINTAINER" | "FROM" => {
                    return Err(format!("{t} isn't allowed as an ONBUILD trigger"));
                }
                _ => {}
            }
            let orig = node.original.trim_start();
            let mut expression = match orig.get(..7) {
                Some(k) if k.eq_ignore_ascii_case("onbuild") => orig[7..].trim_start().to_string(),
                _ => orig.to_string(),
            };
            for h in &node.heredocs {
                expression.push('\n');
                expression.push_str(&h.content);
                expression.push_str(&h.name);
            }
            Instruction::OnBuild {
                expression,
                trigger: trigger.clone(),
            }
        }
        _ => {
            return Err(suggest(
                format!("unknown instruction: {}", node.keyword),
                &node.keyword,
                &INSTRUCTIONS,
                false,
            ));
        }
    })
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

fn arg_decls(args: &[String]) -> Result<Vec<ArgDecl>, String> {
    if args.is_empty() {
        return Err(at_least_one("ARG"));
    }
    args.iter()
        .map(|a| match a.split_once('=') {
            Some(("", _)) => Err("ARG names can not be blank".to_string()),
            Some((k, v)) => Ok(ArgDecl {
                name: k.to_string(),
                default: Some(v.to_string()),
            }),
            None => Ok(ArgDecl {
                name: a.clone(),
                default: None,
            }),
        })
        .collect()
}

fn valid_stage_name(s: &str) -> bool {
    let mut c = s.chars();
    matches!(c.next(), Some('a'..='z'))
        && c.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c))
}

fn from(node: &Node, index: usize) -> Result<Stage, String> {
    let a = &node.args;
    let name = match a.len() {
        3 if a[1].eq_ignore_ascii_case("as") => {
            let n = a[2].to_lowercase();
            if !valid_stage_name(&n) {
                return Err(format!(
                    "invalid name for build stage: {}, name can't start with a number or contain symbols",
                    crate::dump::go_quote(&a[2])
                ));
            }
            Some(n)
        }
        1 => None,
        _ => return Err("FROM requires either one or three arguments".into()),
    };
    let mut f = Flags::new(&node.flags);
    f.add("platform", FlagType::Str);
    f.parse()?;
    Ok(Stage {
        index,
        name,
        base: a[0].clone(),
        platform: f.string("platform"),
        source: src(node),
        commands: Vec::new(),
    })
}

/// Parses one node into a command (not FROM), with BuildKit's message on error.
pub fn parse_instruction(node: &Node, file: &str) -> Result<Command, ParseError> {
    instruction(node)
        .map(|instruction| Command {
            source: src(node),
            instruction,
        })
        .map_err(|m| ParseError::new(file, node.start_line, node.end_line, m))
}

/// Turns an [`Ast`] into stages and global ARGs, validating every instruction (reachable or not).
pub fn parse_dockerfile(ast: &Ast) -> Result<Dockerfile, ParseError> {
    let file = ast.file.as_str();
    let mut df = Dockerfile {
        file: ast.file.clone(),
        escape: ast.directives.escape,
        directives: ast.directives.clone(),
        global_args: Vec::new(),
        stages: Vec::new(),
    };
    for node in &ast.children {
        let e = |m: String| ParseError::new(file, node.start_line, node.end_line, m);
        if node.name() == "from" {
            let stage = from(node, df.stages.len()).map_err(e)?;
            df.stages.push(stage);
            continue;
        }
        let cmd = parse_instruction(node, file)?;
        match df.stages.last_mut() {
            Some(stage) => stage.commands.push(cmd),
            None if matches!(cmd.instruction, Instruction::Arg(_)) => df.global_args.push(cmd),
            None => return Err(e("no build stage in current context".into())),
        }
    }
    if df.stages.is_empty() {
        return Err(ParseError::new(
            file,
            0,
            0,
            "dockerfile contains no stages to build",
        ));
    }
    Ok(df)
}

/// Parses an ONBUILD trigger stored in a base image (e.g. `RUN <<EOF\necho\nEOF`) when that image is
/// used as a base: it must be exactly one instruction, checked like any other.
pub fn parse_onbuild_trigger(expression: &str, file: &str) -> Result<Command, ParseError> {
    let ast = crate::syntax::parse(expression.as_bytes(), file)?;
    if ast.children.len() != 1 {
        return Err(ParseError::new(
            file,
            ast.start_line,
            ast.end_line,
            "onbuild trigger should be a single expression",
        ));
    }
    let node = &ast.children[0];
    if matches!(node.name().as_str(), "onbuild" | "from" | "maintainer") {
        let k = node.keyword.to_uppercase();
        return Err(ParseError::new(
            file,
            node.start_line,
            node.end_line,
            if k == "ONBUILD" {
                "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed".to_string()
            } else {
                format!("{k} isn't allowed as an ONBUILD trigger")
            },
        ));
    }
    parse_instruction(node, file)
}

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

/// Expands one word (quotes removed) with `env`, as BuildKit does for ENV, COPY paths, WORKDIR...
pub fn expand<E: Env + ?Sized>(word: &str, env: &E, escape: char) -> Result<String, ShellError> {
    Lexer::new(escape).process_word(word, env)
}

/// Expands and word-splits (EXPOSE).
pub fn expand_words<E: Env + ?Sized>(
    word: &str,
    env: &E,
    escape: char,
) -> Result<Vec<String>, ShellError> {
    Lexer::new(escape).process_words(word, env)
}

/// Expands a COPY/ADD heredoc body: variables only, quotes are ordinary characters.
pub fn expand_heredoc<E: Env + ?Sized>(
    body: &str,
    env: &E,
    escape: char,
) -> Result<String, ShellError> {
    let mut l = Lexer::new(escape);
    l.skip_process_quotes = true;
    l.process_word(body, env)
}

/// `RUN --mount` type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
pub enum MountType {
    /// Read-only view of a stage, image or the context.
    #[default]
    Bind,
    /// Persistent cache directory.
    Cache,
    /// Fresh in-memory directory.
    Tmpfs,
    /// A build secret as a file or env var.
    Secret,
    /// An SSH agent socket.
    Ssh,
}

impl MountType {
    /// BuildKit's lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            MountType::Bind => "bind",
            MountType::Cache => "cache",
            MountType::Tmpfs => "tmpfs",
            MountType::Secret => "secret",
            MountType::Ssh => "ssh",
        }
    }
}

/// Cache mount sharing mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Sharing {
    /// Concurrent writers share it.
    Shared,
    /// A writer gets its own copy.
    Private,
    /// Writers wait for each other.
    Locked,
}

/// A validated `RUN --mount` (values expanded by the caller's expander).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct Mount {
    /// Mount type.
    pub mount_type: MountType,
    /// `from` (stage, index or image); never expanded.
    pub from: Option<String>,
    /// `source`/`src`.
    pub source: Option<String>,
    /// `target`/`dst`/`destination`.
    pub target: Option<String>,
    /// Read-only (defaults: bind/secret/ssh yes, cache/tmpfs no).
    pub read_only: bool,
    /// `id`.
    pub id: Option<String>,
    /// `sharing` (cache only).
    pub sharing: Option<Sharing>,
    /// `size` in bytes (tmpfs only).
    pub size: Option<u64>,
    /// `mode` (cache/secret/ssh).
    pub mode: Option<u32>,
    /// `uid` (cache/secret/ssh).
    pub uid: Option<u32>,
    /// `gid` (cache/secret/ssh).
    pub gid: Option<u32>,
    /// `required` (secret/ssh).
    pub required: bool,
    /// `env` (secret only): expose as this environment variable.
    pub env: Option<String>,
}

/// Go's encoding/csv reading one record (fields separated by `,`, `"` quoting).
fn csv_record(s: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    loop {
        let mut f = String::new();
        if chars.get(i) == Some(&'"') {
            i += 1;
            loop {
                match chars.get(i) {
                    None => {
                        return Err(format!(
                            "failed to parse csv mounts: parse error on line 1, column {}: extraneous or missing \" in quoted-field",
                            i + 1
                        ));
                    }
                    Some('"') if chars.get(i + 1) == Some(&'"') => {
                        f.push('"');
                        i += 2;
                    }
                    Some('"') => {
                        i += 1;
                        break;
                    }
                    Some(c) => {
                        f.push(*c);
                        i += 1;
                    }
                }
            }
            match chars.get(i) {
                None => {
                    fields.push(f);
                    return Ok(fields);
                }
                Some(',') => {
                    fields.push(f);
                    i += 1;
                }
                Some(_) => {
                    return Err(format!(
                        "failed to parse csv mounts: parse error on line 1, column {}: extraneous or missing \" in quoted-field",
                        i + 1
                    ));
                }
            }
        } else {
            loop {
                match chars.get(i) {
                    None => {
                        fields.push(f);
                        return Ok(fields);
                    }
                    Some(',') => {
                        fields.push(f);
                        i += 1;
                        break;
                    }
                    Some('"') => {
                        return Err(format!(
                            "failed to parse csv mounts: parse error on line 1, column {}: bare \" in non-quoted-field",
                            i + 1
                        ));
                    }
                    Some(c) => {
                        f.push(*c);
                        i += 1;
                    }
                }
            }
        }
    }
}

/// Go's `strconv.ParseBool`.
pub fn parse_go_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// docker/go-units `RAMInBytes`: `64m`, `1g`, `512kb`, `100` (binary multiples).
pub fn parse_ram_bytes(v: &str) -> Option<u64> {
    let num_end = v
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(v.len());
    let (num, unit) = v.split_at(num_end);
    let n: f64 = num.parse().ok()?;
    let unit = unit.strip_prefix(' ').unwrap_or(unit).to_ascii_lowercase();
    let unit = unit.strip_suffix('b').unwrap_or(&unit);
    let unit = unit.strip_suffix('i').unwrap_or(unit);
    let mult: u64 = match unit {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        "t" => 1 << 40,
        "p" => 1 << 50,
        _ => return None,
    };
    Some((n * mult as f64) as u64)
}

const MOUNT_KEYS: [&str; 19] = [
    "type",
    "from",
    "source",
    "target",
    "readonly",
    "id",
    "sharing",
    "required",
    "size",
    "mode",
    "uid",
    "gid",
    "src",
    "dst",
    "destination",
    "ro",
    "rw",
    "readwrite",
    "env",
];

/// A value expander for mount options (e.g. a closure over [`expand`] with the step's env).
pub type Expander<'a> = &'a dyn Fn(&str) -> Result<String, String>;

/// Parses a `--mount` value. With `expand = None` (instruction parse) only the structure and `from`
/// are checked; with an expander (conversion) every value is expanded and validated.
pub fn parse_mount(value: &str, expand: Option<Expander>) -> Result<Mount, String> {
    let fields = csv_record(value)?;
    let mut m = Mount::default();
    let mut ro_auto = true;
    // The type decides which keys are allowed; read it first.
    for field in &fields {
        if let Some((k, v)) = field.split_once('=') {
            if k.eq_ignore_ascii_case("type") {
                let v = match expand {
                    Some(x) => x(v)?,
                    None if v.contains('$') => continue,
                    None => v.to_string(),
                };
                m.mount_type = match v.to_lowercase().as_str() {
                    "bind" => MountType::Bind,
                    "cache" => MountType::Cache,
                    "tmpfs" => MountType::Tmpfs,
                    "secret" => MountType::Secret,
                    "ssh" => MountType::Ssh,
                    _ => {
                        return Err(suggest(
                            format!("unsupported mount type {}", crate::dump::go_quote(&v)),
                            &v,
                            &["bind", "cache", "tmpfs", "secret", "ssh"],
                            true,
                        ));
                    }
                };
            }
        }
    }
    let t = m.mount_type;
    let secret_or_ssh = matches!(t, MountType::Secret | MountType::Ssh);
    let unexpected = |k: &str| format!("unexpected key '{k}' for mount type '{}'", t.as_str());
    for field in &fields {
        if field.is_empty() {
            continue;
        }
        let Some((key, raw)) = field.split_once('=') else {
            match field.to_lowercase().as_str() {
                "readonly" | "ro" => {
                    m.read_only = true;
                    ro_auto = false;
                }
                "readwrite" | "rw" => {
                    m.read_only = false;
                    ro_auto = false;
                }
                "required" if secret_or_ssh => m.required = true,
                "required" => return Err(unexpected("required")),
                _ => return Err(format!("invalid field '{field}' must be a key=value pair")),
            }
            continue;
        };
        let key = key.to_lowercase();
        let value = match expand {
            _ if key == "from" => {
                if let Some(i) = raw.find('$') {
                    if i != raw.len() - 1 {
                        return Err(
                            "'from' doesn't support variable expansion, define alias stage instead"
                                .into(),
                        );
                    }
                }
                raw.to_string()
            }
            Some(x) => x(raw)?,
            None => continue,
        };
        let bad = || format!("invalid value for {key}: {value}");
        match key.as_str() {
            "type" => {}
            "from" => m.from = Some(value),
            "source" | "src" => m.source = Some(value),
            "target" | "dst" | "destination" => m.target = Some(value),
            "readonly" | "ro" => {
                m.read_only = parse_go_bool(&value).ok_or_else(bad)?;
                ro_auto = false;
            }
            "readwrite" | "rw" => {
                m.read_only = !parse_go_bool(&value).ok_or_else(bad)?;
                ro_auto = false;
            }
            "required" if secret_or_ssh => m.required = parse_go_bool(&value).ok_or_else(bad)?,
            "required" => return Err(unexpected("required")),
            "size" if t == MountType::Tmpfs => {
                m.size = Some(parse_ram_bytes(&value).ok_or_else(bad)?)
            }
            "size" => return Err(unexpected("size")),
            "id" => m.id = Some(value),
            "sharing" => {
                m.sharing = Some(match value.to_lowercase().as_str() {
                    "shared" => Sharing::Shared,
                    "private" => Sharing::Private,
                    "locked" => Sharing::Locked,
                    _ => {
                        return Err(suggest(
                            format!(
                                "unsupported sharing value {}",
                                crate::dump::go_quote(&value)
                            ),
                            &value,
                            &["shared", "private", "locked"],
                            true,
                        ));
                    }
                })
            }
            "mode" => {
                m.mode = Some(
                    u32::from_str_radix(&value, 8)
                        .map_err(|_| format!("invalid value {value} for mode"))?,
                )
            }
            "uid" | "gid" => {
                let n: u32 = value
                    .parse()
                    .map_err(|_| format!("invalid value {value} for {key}"))?;
                if key == "uid" {
                    m.uid = Some(n);
                } else {
                    m.gid = Some(n);
                }
            }
            "env" => m.env = Some(value),
            _ => {
                return Err(suggest(
                    format!("unexpected key '{key}' in '{field}'"),
                    &key,
                    &MOUNT_KEYS,
                    true,
                ));
            }
        }
    }
    if expand.is_none() {
        return Ok(m);
    }
    let file_info = matches!(t, MountType::Secret | MountType::Ssh | MountType::Cache);
    if !file_info {
        for (set, what) in [
            (m.mode.is_some(), "mode"),
            (m.uid.is_some(), "uid"),
            (m.gid.is_some(), "gid"),
        ] {
            if set {
                return Err(format!(
                    "{what} not allowed for \"{}\" type mounts",
                    t.as_str()
                ));
            }
        }
    }
    if ro_auto {
        m.read_only = !matches!(t, MountType::Cache | MountType::Tmpfs);
    }
    if t == MountType::Secret {
        if m.from.is_some() {
            return Err("secret mount should not have a from".into());
        }
        if m.sharing.is_some() {
            return Err("secret mount should not define sharing".into());
        }
        if m.source.is_none() && m.target.is_none() && m.id.is_none() && m.env.is_none() {
            return Err("invalid secret mount. one of source, target required".into());
        }
        if m.source.is_some() && m.id.is_some() {
            return Err("both source and id can't be set".into());
        }
    } else if m.sharing.is_some() && t != MountType::Cache {
        return Err(format!(
            "invalid cache sharing set for {} mount",
            t.as_str()
        ));
    }
    if t == MountType::Ssh && m.source.is_some() {
        return Err("ssh does not support source".into());
    }
    if m.target
        .as_deref()
        .is_some_and(|t| !t.is_empty() && t.trim_end_matches('/').is_empty())
    {
        return Err("invalid mount target \"/\"".into());
    }
    Ok(m)
}
