//! BuildKit's Dockerfile lint rules (warnings, never errors by themselves) and the `# check=`
//! directive that configures them (`skip=`, `error=`, `experimental=`).

use serde::Serialize;

use crate::ast::{Ast, Node};
use crate::error::ParseError;
use crate::instructions::{Dockerfile, Instruction, PLATFORM_ARGS, ShellOrExec};
use crate::shell::{EmptyEnv, Lexer};

/// One lint finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LintWarning {
    /// BuildKit's rule name, e.g. `StageNameCasing`.
    pub rule: &'static str,
    /// The message BuildKit prints.
    pub message: String,
    /// First line of the instruction concerned.
    pub line: usize,
}

/// The parsed `# check=` directive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct CheckConfig {
    /// Rules not to report (`all` skips everything).
    pub skip: Vec<String>,
    /// Whether findings should fail the build.
    pub error: bool,
    /// Experimental rules turned on.
    pub experimental: Vec<String>,
}

impl CheckConfig {
    /// Parses `skip=A,B;error=true;experimental=all`.
    pub fn parse(value: &str) -> Result<CheckConfig, String> {
        let mut c = CheckConfig::default();
        for opt in value.split(';').map(str::trim).filter(|o| !o.is_empty()) {
            let Some((k, v)) = opt.split_once('=') else {
                return Err(format!(
                    "invalid check option {}",
                    crate::dump::go_quote(opt)
                ));
            };
            let list = || {
                v.split(',')
                    .map(|s| s.trim().to_string())
                    .collect::<Vec<_>>()
            };
            match k.trim().to_lowercase().as_str() {
                "skip" => c.skip = list(),
                "experimental" => c.experimental = list(),
                "error" => {
                    c.error = crate::instructions::parse_go_bool(v.trim()).ok_or_else(|| {
                        format!(
                            "failed to parse check option {}: strconv.ParseBool: parsing {}: invalid syntax",
                            crate::dump::go_quote(opt),
                            crate::dump::go_quote(v.trim())
                        )
                    })?
                }
                _ => return Err(format!("invalid check option {}", crate::dump::go_quote(opt))),
            }
        }
        Ok(c)
    }

    /// Whether `rule` is turned off (`skip=all` or its name).
    pub fn skips(&self, rule: &str) -> bool {
        self.skip
            .iter()
            .any(|s| s == "all" || s.eq_ignore_ascii_case(rule))
    }
}

/// ARGs BuildKit defines for FROM lines beside the platform ones (not the proxy ARGs).
const MORE_FROM_ARGS: [&str; 3] = ["BUILDOSVERSION", "TARGETOSVERSION", "TARGETSTAGE"];

/// Build args every Dockerfile may use in FROM without declaring them.
fn predefined(name: &str) -> bool {
    PLATFORM_ARGS.contains(&name) || MORE_FROM_ARGS.contains(&name)
}

/// BuildKit's suggestion for a misspelt name (`suggest.Search`): the first option at the
/// smallest Levenshtein distance under 3, case-sensitive; none when `name` is an option.
pub fn suggest<'a>(name: &str, options: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    crate::suggest::closest(name, options, true)
}

/// Words that make an ARG/ENV name look like a secret (BuildKit's `secretTokens`).
const SECRET_TOKENS: [&str; 10] = [
    "apikey",
    "auth",
    "credential",
    "credentials",
    "key",
    "password",
    "pword",
    "passwd",
    "secret",
    "token",
];

/// Words that clear such a name (BuildKit's `allowTokens`): `SSH_PUBLIC_KEY`, `KEY_FILE`.
const ALLOW_TOKENS: [&str; 3] = ["public", "file", "version"];

/// BuildKit's `(?i)(?:_|^)(?:token)(?:_|$)` deny and allow patterns: a `_`-separated word of the
/// name is a secret token and none is an allow token.
fn looks_secret(name: &str) -> bool {
    let lower = name.to_lowercase();
    let words: Vec<&str> = lower.split('_').collect();
    words.iter().any(|t| SECRET_TOKENS.contains(t))
        && !words.iter().any(|t| ALLOW_TOKENS.contains(t))
}

/// BuildKit's EXPOSE checks on one port word as written (words with variables are skipped):
/// an upper-case protocol, an IP or host port.
fn expose_findings(word: &str) -> Vec<(&'static str, String)> {
    if word.contains('$') {
        return Vec::new();
    }
    let parts: Vec<&str> = word.split(':').collect();
    let container = parts[parts.len() - 1];
    let (_, proto) = container.split_once('/').unwrap_or((container, "tcp"));
    let mut out = Vec::new();
    if proto != proto.to_lowercase() {
        out.push((
            "ExposeProtoCasing",
            format!("Defined protocol '{word}' in EXPOSE instruction should be lowercase"),
        ));
    }
    let ip_or_host = match parts.len() {
        1 => false,
        2 => !parts[0].is_empty(),
        n => !parts[..n - 1].iter().all(|p| p.is_empty()),
    };
    if ip_or_host {
        out.push((
            "ExposeInvalidFormat",
            format!(
                "EXPOSE instruction should not define an IP address or host-port mapping, found '{word}'"
            ),
        ));
    }
    out
}

fn casing(word: &str) -> Option<bool> {
    if word == word.to_uppercase() {
        Some(true)
    } else if word == word.to_lowercase() {
        Some(false)
    } else {
        None
    }
}

/// Runs every rule over a parsed and validated Dockerfile. Fails only on a malformed `# check=`.
pub fn lint(ast: &Ast, df: &Dockerfile) -> Result<(Vec<LintWarning>, CheckConfig), ParseError> {
    let config = match &ast.directives.check {
        None => CheckConfig::default(),
        Some(v) => {
            let line = ast
                .directives
                .all
                .iter()
                .find(|d| d.name == "check")
                .map_or(1, |d| d.line);
            CheckConfig::parse(v).map_err(|m| ParseError::new(&ast.file, line, line, m))?
        }
    };
    let mut out = Vec::new();
    let mut warn = |rule: &'static str, line: usize, message: String| {
        if !config.skips(rule) {
            out.push(LintWarning {
                rule,
                message,
                line,
            });
        }
    };

    for w in &ast.warnings {
        warn(
            "NoEmptyContinuation",
            w.start_line,
            "Empty continuation line".into(),
        );
    }

    // ConsistentInstructionCasing: flag keywords not in the majority's case (ties: upper). As
    // BuildKit, only stages count: not the global ARGs before the first FROM.
    let stage_nodes: Vec<&Node> = ast
        .children
        .iter()
        .skip_while(|n| n.name() != "from")
        .collect();
    let (mut upper, mut lower) = (0, 0);
    for n in &stage_nodes {
        match casing(&n.keyword) {
            Some(true) => upper += 1,
            Some(false) => lower += 1,
            None => {}
        }
    }
    let majority_upper = upper >= lower;
    for n in &stage_nodes {
        if casing(&n.keyword) != Some(majority_upper) {
            let case = if majority_upper {
                "uppercase"
            } else {
                "lowercase"
            };
            warn(
                "ConsistentInstructionCasing",
                n.start_line,
                format!(
                    "Command '{}' should match the case of the command majority ({case})",
                    n.keyword
                ),
            );
        }
    }

    // (Global ARGs are not checked for secrets: BuildKit checks ARG and ENV in stages only.)
    let globals: Vec<String> = df.global_arg_decls().into_iter().map(|a| a.name).collect();
    let mut seen_names: Vec<String> = Vec::new();
    let lex = {
        let mut l = Lexer::new(df.escape);
        l.skip_unset_env = false;
        l
    };
    let from_nodes: Vec<&Node> = ast.children.iter().filter(|n| n.name() == "from").collect();
    // Per stage (by name): whether SHELL and WORKDIR were set by its end.
    let mut stage_flags: Vec<(Option<String>, (bool, bool))> = Vec::new();
    for (stage, node) in df.stages.iter().zip(from_nodes) {
        let line = stage.source.start_line;
        if let (Some(name), Some(written)) = (&stage.name, node.args.get(2)) {
            if written != name {
                warn(
                    "StageNameCasing",
                    line,
                    format!("Stage name '{written}' should be lowercase"),
                );
            }
            let as_kw = &node.args[1];
            if casing(&node.keyword).is_some()
                && casing(as_kw).is_some()
                && casing(&node.keyword) != casing(as_kw)
            {
                warn(
                    "FromAsCasing",
                    line,
                    format!(
                        "'{as_kw}' and '{}' keywords' casing do not match",
                        node.keyword
                    ),
                );
            }
            if seen_names.contains(name) {
                warn(
                    "DuplicateStageName",
                    line,
                    format!(
                        "Duplicate stage name {}, stage names should be unique",
                        crate::dump::go_quote(name)
                    ),
                );
            }
            if name == "scratch" || name == "context" {
                warn(
                    "ReservedStageName",
                    line,
                    format!(
                        "Stage name should not use the same name as reserved stage {}",
                        crate::dump::go_quote(name)
                    ),
                );
            }
            seen_names.push(name.clone());
        }
        for expr in std::iter::once(&stage.base).chain(stage.platform.iter()) {
            if let Ok(e) = lex.process(expr, &EmptyEnv) {
                for v in e.unmatched {
                    if !globals.contains(&v) && !predefined(&v) {
                        let options = globals
                            .iter()
                            .map(String::as_str)
                            .chain(PLATFORM_ARGS)
                            .chain(MORE_FROM_ARGS);
                        let hint = suggest(&v, options)
                            .map(|m| format!(" (did you mean {m}?)"))
                            .unwrap_or_default();
                        warn(
                            "UndefinedArgInFrom",
                            line,
                            format!("FROM argument '{v}' is not declared{hint}"),
                        );
                    }
                }
            }
        }
        if let Some(p) = &stage.platform {
            // As BuildKit: redundant when TARGETPLATFORM alone was substituted and the result is
            // its value; constant when nothing was substituted and the value parses, unless the
            // stage name mentions its OS or architecture.
            const MARK: &str = "\u{1}target\u{1}";
            let target = [("TARGETPLATFORM", MARK)];
            let plain = Lexer::new(df.escape);
            if let Ok(e) = plain.process(p, &target) {
                let only_target = e.matched.len() == 1
                    && e.matched.contains("TARGETPLATFORM")
                    && e.unmatched.is_empty();
                if only_target && e.result == MARK {
                    warn(
                        "RedundantTargetPlatform",
                        line,
                        format!(
                            "Setting platform to predefined {p} in FROM is redundant as this is the default behavior"
                        ),
                    );
                } else if e.matched.is_empty()
                    && e.unmatched.is_empty()
                    && let Ok(parsed) = hoist_image::Platform::parse(&e.result)
                {
                    let name = stage.name.as_deref().unwrap_or("");
                    if !name.contains(parsed.os.as_str())
                        && !name.contains(parsed.architecture.as_str())
                    {
                        warn(
                            "FromPlatformFlagConstDisallowed",
                            line,
                            format!(
                                "FROM --platform flag should not use constant value {}",
                                crate::dump::go_quote(&e.result)
                            ),
                        );
                    }
                }
            }
        }

        // A stage built on an earlier one starts with its SHELL and WORKDIR state (BuildKit's
        // image config and `workdirSet` carry over).
        let base = lex
            .process_word(&stage.base, &EmptyEnv)
            .unwrap_or_default()
            .to_lowercase();
        let (mut shell_set, mut workdir_set) = stage_flags
            .iter()
            .rev()
            .find(|(n, _)| n.as_deref() == Some(base.as_str()))
            .map_or((false, false), |(_, f)| *f);
        let mut last: Vec<(&str, usize)> = Vec::new();
        for c in &stage.commands {
            let line = c.source.start_line;
            match &c.instruction {
                Instruction::Shell(_) => shell_set = true,
                Instruction::Cmd(cmd) | Instruction::Entrypoint(cmd) => {
                    let kw = if matches!(c.instruction, Instruction::Cmd(_)) {
                        "CMD"
                    } else {
                        "ENTRYPOINT"
                    };
                    if matches!(cmd, ShellOrExec::Shell(_)) && !shell_set {
                        warn(
                            "JSONArgsRecommended",
                            line,
                            format!(
                                "JSON arguments recommended for {kw} to prevent unintended behavior related to OS signals"
                            ),
                        );
                    }
                    last.push((kw, line));
                }
                Instruction::Healthcheck(_) => last.push(("HEALTHCHECK", line)),
                Instruction::Maintainer(_) => warn(
                    "MaintainerDeprecated",
                    line,
                    "Maintainer instruction is deprecated in favor of using label".into(),
                ),
                Instruction::Workdir(w) => {
                    // Only the first WORKDIR is checked; a variable is taken as absolute.
                    let relative = !(w.starts_with('/') || w.starts_with('$'));
                    if relative && !workdir_set {
                        warn(
                            "WorkdirRelativePath",
                            line,
                            format!(
                                "Relative workdir {} can have unexpected results if the base image changes",
                                crate::dump::go_quote(w)
                            ),
                        );
                    }
                    workdir_set = true;
                }
                Instruction::Expose(words) => {
                    // In BuildKit's order: the words sorted as written.
                    let mut sorted = words.clone();
                    sorted.sort();
                    for w in &sorted {
                        for (rule, message) in expose_findings(w) {
                            warn(rule, line, message);
                        }
                    }
                }
                Instruction::Env(kvs) | Instruction::Label(kvs) => {
                    let kw = if matches!(c.instruction, Instruction::Env(_)) {
                        "ENV"
                    } else {
                        "LABEL"
                    };
                    if kvs.iter().any(|kv| kv.legacy) {
                        warn(
                            "LegacyKeyValueFormat",
                            line,
                            format!(
                                "\"{kw} key=value\" should be used instead of legacy \"{kw} key value\" format"
                            ),
                        );
                    }
                    if kw == "ENV" {
                        for kv in kvs.iter().filter(|kv| looks_secret(&kv.key)) {
                            warn(
                                "SecretsUsedInArgOrEnv",
                                line,
                                format!(
                                    "Do not use ARG or ENV instructions for sensitive data (ENV {})",
                                    crate::dump::go_quote(&kv.key)
                                ),
                            );
                        }
                    }
                }
                Instruction::Arg(decls) => {
                    for a in decls.iter().filter(|a| looks_secret(&a.name)) {
                        warn(
                            "SecretsUsedInArgOrEnv",
                            line,
                            format!(
                                "Do not use ARG or ENV instructions for sensitive data (ARG {})",
                                crate::dump::go_quote(&a.name)
                            ),
                        );
                    }
                }
                _ => {}
            }
        }
        stage_flags.push((stage.name.clone(), (shell_set, workdir_set)));
        for kw in ["CMD", "ENTRYPOINT", "HEALTHCHECK"] {
            let lines: Vec<usize> = last
                .iter()
                .filter(|(k, _)| *k == kw)
                .map(|(_, l)| *l)
                .collect();
            for l in lines.iter().take(lines.len().saturating_sub(1)) {
                warn(
                    "MultipleInstructionsDisallowed",
                    *l,
                    format!(
                        "Multiple {kw} instructions should not be used in the same stage because only the last one will be used"
                    ),
                );
            }
        }
    }
    out.sort_by_key(|w| w.line);
    Ok((out, config))
}

/// What [`undefined_vars`] knows of a stage's base image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BaseEnv {
    /// Not resolved: only `PATH` is assumed (BuildKit sets it on every stage).
    Unknown,
    /// The image config's environment (`KEY=value` list).
    Known(Vec<String>),
    /// Not checked: a build converts only the stages its target needs, and BuildKit reports
    /// undefined variables while converting.
    Skip,
}

/// BuildKit's `UndefinedVar`: a `$VAR` the builder expands (ENV, LABEL, ARG defaults, COPY/ADD,
/// WORKDIR, USER, EXPOSE, VOLUME, STOPSIGNAL; RUN, CMD and ENTRYPOINT are the shell's business)
/// that nothing defines at that point: no ARG before it in its stage, no earlier ENV line, not the
/// environment the stage starts from. A stage built on an earlier stage starts from that stage's
/// environment and ARGs (declared with or without a value); one built on an image from what
/// `base_env(stage index)` says of it.
/// `${VAR:-default}` and the other modifiers handle an unset variable on purpose: not reported.
pub fn undefined_vars(df: &Dockerfile, base_env: &dyn Fn(usize) -> BaseEnv) -> Vec<LintWarning> {
    let lex = Lexer::new(df.escape);
    let globals: Vec<(String, String)> = df
        .global_arg_decls()
        .into_iter()
        .map(|a| (a.name, a.default.unwrap_or_default()))
        .collect();
    let mut out = Vec::new();
    // Each stage's name and the variable names its environment ends with.
    let mut finals: Vec<(Option<String>, Vec<String>)> = Vec::new();
    for (i, stage) in df.stages.iter().enumerate() {
        let base = lex
            .process_word(&stage.base, &globals)
            .unwrap_or_else(|_| stage.base.clone())
            .to_lowercase();
        let known = base_env(i);
        let mut env: Vec<String> = match finals
            .iter()
            .rev()
            .find(|(name, _)| name.as_deref() == Some(base.as_str()))
        {
            Some((_, names)) => names.clone(),
            None => match &known {
                BaseEnv::Known(kvs) => kvs
                    .iter()
                    .map(|kv| {
                        kv.split_once('=')
                            .map_or(kv.as_str(), |(k, _)| k)
                            .to_string()
                    })
                    .collect(),
                BaseEnv::Unknown | BaseEnv::Skip => Vec::new(),
            },
        };
        let report = known != BaseEnv::Skip;
        if !env.iter().any(|k| k == "PATH") {
            env.push("PATH".into());
        }
        let mut defined: Vec<(String, String)> =
            env.iter().map(|k| (k.clone(), String::new())).collect();
        for c in &stage.commands {
            let line = c.source.start_line;
            let mut check = |words: &[&str], defined: &[(String, String)]| {
                for w in words {
                    let Ok(e) = lex.process(w, defined) else {
                        continue;
                    };
                    for name in e.unmatched {
                        if [':', '-', '+', '?']
                            .iter()
                            .any(|op| w.contains(&format!("${{{name}{op}")))
                        {
                            continue;
                        }
                        let hint = suggest(&name, defined.iter().map(|(k, _)| k.as_str()))
                            .map(|k| format!(" (did you mean ${k}?)"))
                            .unwrap_or_default();
                        if !report {
                            continue;
                        }
                        out.push(LintWarning {
                            rule: "UndefinedVar",
                            message: format!("Usage of undefined variable '${name}'{hint}"),
                            line,
                        });
                    }
                }
            };
            match &c.instruction {
                Instruction::Arg(decls) => {
                    for d in decls {
                        if let Some(v) = &d.default {
                            check(&[v], &defined);
                        }
                        defined.push((d.name.clone(), String::new()));
                    }
                }
                Instruction::Env(kvs) | Instruction::Label(kvs) => {
                    for kv in kvs {
                        check(&[&kv.key, &kv.value], &defined);
                    }
                    // Pairs on one line see the environment from before the line.
                    if matches!(c.instruction, Instruction::Env(_)) {
                        for kv in kvs {
                            env.push(kv.key.clone());
                            defined.push((kv.key.clone(), String::new()));
                        }
                    }
                }
                Instruction::Copy(a) | Instruction::Add(a) => {
                    let mut words: Vec<&str> = a.sources.iter().map(String::as_str).collect();
                    words.push(&a.dest);
                    words.extend(a.chown.as_deref());
                    words.extend(a.chmod.as_deref());
                    check(&words, &defined);
                }
                Instruction::Workdir(w) | Instruction::User(w) | Instruction::StopSignal(w) => {
                    check(&[w], &defined)
                }
                Instruction::Expose(ws) | Instruction::Volume(ws) => {
                    let words: Vec<&str> = ws.iter().map(String::as_str).collect();
                    check(&words, &defined);
                }
                _ => {}
            }
        }
        // A stage built on this one sees its ENV and every ARG it declared (BuildKit's
        // dispatch state passes its environment and build args on).
        finals.push((
            stage.name.clone(),
            defined.into_iter().map(|(k, _)| k).collect(),
        ));
    }
    out.sort_by_key(|w| w.line);
    out
}
