//! AST nodes to typed instructions (BuildKit's `instructions.Parse`): argument counts, flags and
//! values checked with BuildKit's messages; values stay unexpanded.

use crate::ast::{Ast, Heredoc, Node};
use crate::error::ParseError;
use crate::suggest::with_suggestion;
use crate::syntax::parse_heredoc;

use super::flags::{FlagType, Flags};
use super::goparse::{parse_go_duration, parse_go_int32};
use super::mount::parse_mount;
use super::types::{
    ArgDecl, Command, CopyArgs, Dockerfile, Healthcheck, INSTRUCTIONS, InlineFile, Instruction,
    KeyValue, NetworkMode, SecurityMode, ShellOrExec, Source, Stage,
};

fn src(node: &Node) -> Source {
    Source {
        keyword: node.keyword.clone(),
        original: node.original.clone(),
        start_line: node.start_line,
        end_line: node.end_line,
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
            return Err(with_suggestion(
                format!("unknown instruction: {}", node.keyword),
                &node.keyword,
                &INSTRUCTIONS,
                false,
            ));
        }
    })
}

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
