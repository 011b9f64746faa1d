//! Build checks (`hoist build --check`, `hoist lint FILE`): runs the parser's BuildKit lint rules
//! over a Dockerfile and renders the findings as `docker build --check` does, honouring the
//! `# check=skip=...;error=true` directive.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Result, anyhow};
use hoist_parser::lint::{BaseEnv, CheckConfig, LintWarning};

use crate::frontend::FrontendOptions;

/// The findings for one Dockerfile.
#[derive(Debug, Clone)]
pub struct CheckReport {
    /// The Dockerfile's display name (`Dockerfile`).
    pub file: String,
    pub warnings: Vec<LintWarning>,
    pub config: CheckConfig,
    /// The error BuildKit's conversion stops at (line, message), e.g. a blank base name: the
    /// check fails with it.
    pub error: Option<(usize, String)>,
    lines: Vec<String>,
    /// Each instruction's last line by its first (a snippet marks all of its lines).
    spans: BTreeMap<usize, usize>,
}

/// Parses, validates and lints a Dockerfile's text. Syntax and instruction errors are errors.
/// Base images are not resolved: `UndefinedVar` assumes they define `PATH` only.
pub fn check(text: &str, file: &str) -> Result<CheckReport> {
    check_with(
        text,
        file,
        &|_| BaseEnv::Unknown,
        &FrontendOptions::new(file),
    )
}

/// [`check`] as a build sees the file (`hoist lint`, `hoist build --check`): base images are looked
/// up in the store at `store_root` when it exists (never pulled, never created), so `UndefinedVar`
/// knows their ENV; an image the store lacks is assumed to define `PATH` only. `FROM` is expanded
/// with `build_args` and `platform` (default: the host's) as a build expands it.
pub fn check_in_store(
    text: &str,
    file: &str,
    store_root: &Path,
    build_args: &BTreeMap<String, String>,
    platform: Option<&str>,
) -> Result<CheckReport> {
    let store = store_root
        .join("index.json")
        .is_file()
        .then(|| hoist_image::Store::open(store_root).ok())
        .flatten();
    let mut opts = FrontendOptions::new(file);
    opts.build_args = build_args.clone();
    if let Some(p) = platform {
        // Every value of a `--platform` list checked as a build does; FROM expanded for the first.
        let mut all = p.split(',').map(str::trim).map(|one| {
            hoist_image::Platform::parse(one)
                .map(|x| x.normalize().to_string())
                .map_err(|e| anyhow!("invalid platform {one:?} in --platform {p:?}: {e}"))
        });
        opts.platform = all.next().unwrap_or_else(|| Ok(opts.platform.clone()))?;
        all.collect::<Result<Vec<_>>>()?;
        opts.platform_explicit = true;
    }
    let Some(store) = store else {
        return check_with(text, file, &|_| BaseEnv::Unknown, &opts);
    };
    let ast = hoist_parser::parse(text.as_bytes(), file).map_err(|e| anyhow!("{e}"))?;
    let df = hoist_parser::parse_dockerfile(&ast).map_err(|e| anyhow!(located(text, &e)))?;
    let envs: Vec<BaseEnv> = crate::frontend::base_names(&df, &opts)
        .unwrap_or_default()
        .iter()
        .map(|b| match b.as_deref() {
            Some("scratch") => BaseEnv::Known(Vec::new()),
            Some(name) => store.resolve(name).map_or(BaseEnv::Unknown, |img| {
                BaseEnv::Known(img.config.config.and_then(|c| c.env).unwrap_or_default())
            }),
            None => BaseEnv::Unknown,
        })
        .collect();
    check_with(
        text,
        file,
        &|i| envs.get(i).cloned().unwrap_or(BaseEnv::Unknown),
        &opts,
    )
}

/// [`check`] knowing what each stage's base image defines (by stage index), as a build does once
/// it loaded their metadata.
pub fn check_with_bases(
    text: &str,
    file: &str,
    base_env: &dyn Fn(usize) -> BaseEnv,
) -> Result<CheckReport> {
    check_with(text, file, base_env, &FrontendOptions::new(file))
}

/// Rules BuildKit reports before it converts the stages' instructions: all it reports when the
/// conversion stops at a FROM line.
const BEFORE_CONVERSION: &[&str] = &[
    "NoEmptyContinuation",
    "StageNameCasing",
    "FromAsCasing",
    "DuplicateStageName",
    "ReservedStageName",
    "ConsistentInstructionCasing",
    "InvalidDefaultArgInFrom",
];

/// Rules about a FROM line, reported as BuildKit reaches each stage.
const FROM_LINE: &[&str] = &[
    "UndefinedArgInFrom",
    "RedundantTargetPlatform",
    "FromPlatformFlagConstDisallowed",
];

fn check_with(
    text: &str,
    file: &str,
    base_env: &dyn Fn(usize) -> BaseEnv,
    opts: &FrontendOptions,
) -> Result<CheckReport> {
    let ast = hoist_parser::parse(text.as_bytes(), file).map_err(|e| anyhow!("{e}"))?;
    let df = hoist_parser::parse_dockerfile(&ast).map_err(|e| anyhow!(located(text, &e)))?;
    let (mut warnings, config) = hoist_parser::lint::lint(&ast, &df).map_err(|e| anyhow!("{e}"))?;
    if !config.skips("UndefinedVar") {
        warnings.extend(hoist_parser::lint::undefined_vars(&df, base_env));
    }
    // InvalidDefaultArgInFrom: each FROM expanded with the global ARGs' defaults only (no build
    // args) must be a valid image reference.
    let mut defaults = opts.clone();
    defaults.build_args.clear();
    if !config.skips("InvalidDefaultArgInFrom")
        && let Ok(bases) = crate::frontend::expanded_bases(&df, &defaults)
        && bases.iter().all(|b| b.is_ok())
    {
        for (stage, base) in df.stages.iter().zip(bases.into_iter().flatten()) {
            if hoist_image::Reference::parse(&base).is_err() {
                warnings.push(LintWarning {
                    rule: "InvalidDefaultArgInFrom",
                    message: format!(
                        "Default value for ARG {} results in empty or invalid base image name",
                        stage.base
                    ),
                    line: stage.source.start_line,
                });
            }
        }
    }
    // The conversion error a build would stop at: a FROM that does not expand, or to nothing.
    let error = crate::frontend::expanded_bases(&df, opts)?
        .into_iter()
        .zip(&df.stages)
        .find_map(|(b, stage)| {
            let line = stage.source.start_line;
            match b {
                Err(e) => Some((line, e)),
                Ok(b) if b.is_empty() => Some((
                    line,
                    format!("base name ({}) should not be blank", stage.base),
                )),
                Ok(_) => None,
            }
        });
    if let Some((at, _)) = &error {
        warnings.retain(|w| {
            BEFORE_CONVERSION.contains(&w.rule) || (FROM_LINE.contains(&w.rule) && w.line <= *at)
        });
    }
    warnings.sort_by_key(|w| w.line);
    Ok(CheckReport {
        file: file.to_string(),
        warnings,
        config,
        error,
        spans: ast
            .children
            .iter()
            .map(|n| (n.start_line, n.end_line))
            .collect(),
        // As BuildKit's snippets: split at newlines, so a final newline shows an empty last line.
        lines: text
            .split('\n')
            .map(|l| l.strip_suffix('\r').unwrap_or(l).to_string())
            .collect(),
    })
}

/// An instruction error as BuildKit shows it: `FILE:LINE`, the line, then the message.
pub fn located(text: &str, e: &hoist_parser::ParseError) -> String {
    if e.start_line == 0 {
        return e.message.clone();
    }
    let line = text.lines().nth(e.start_line - 1).unwrap_or("").trim();
    format!(
        "{}:{}\n--------------------\n>>> {line}\n--------------------\n{}",
        e.file,
        e.start_line,
        e.buildkit_message()
    )
}

/// The findings as a build lists them after it finished.
pub fn summary(warnings: &[LintWarning]) -> String {
    let n = warnings.len();
    let mut s = format!("{n} warning{} found:\n", if n == 1 { "" } else { "s" });
    for w in warnings {
        s.push_str(&format!(" - {}: {} (line {})\n", w.rule, w.message, w.line));
    }
    s
}

/// `FromAsCasing` -> `from-as-casing`, `JSONArgsRecommended` -> `json-args-recommended`.
pub fn kebab(rule: &str) -> String {
    let c: Vec<char> = rule.chars().collect();
    let mut out = String::new();
    for (i, ch) in c.iter().enumerate() {
        if ch.is_ascii_uppercase() && i > 0 {
            let prev_lower = c[i - 1].is_ascii_lowercase() || c[i - 1].is_ascii_digit();
            let next_lower = c.get(i + 1).is_some_and(|n| n.is_ascii_lowercase());
            if prev_lower || (c[i - 1].is_ascii_uppercase() && next_lower) {
                out.push('-');
            }
        }
        out.push(ch.to_ascii_lowercase());
    }
    out
}

impl CheckReport {
    /// Whether the checks fail: a conversion error, or `# check=error=true` and something was
    /// found.
    pub fn failed(&self) -> bool {
        self.error.is_some() || (self.config.error && !self.warnings.is_empty())
    }

    /// The instruction starting at `line` as BuildKit's `errdefs.Source.Print` shows it
    /// ([`crate::frontend::snippet::render`]).
    fn snippet(&self, line: usize) -> String {
        let last = self.spans.get(&line).copied().unwrap_or(line);
        crate::frontend::snippet::render(&self.file, &self.lines.join("\n"), line, last)
    }

    /// The conversion error as `docker build --check` prints it on stderr, if there is one.
    pub fn render_error(&self) -> Option<String> {
        self.error
            .as_ref()
            .map(|(line, msg)| format!("ERROR: {msg}\n{}\n", self.snippet(*line)))
    }

    /// The report as `docker build --check` prints it.
    pub fn render(&self) -> String {
        let n = self.warnings.len();
        let mut s = match n {
            0 => return "Check complete, no warnings found.\n".into(),
            1 => "Check complete, 1 warning has been found!\n".to_string(),
            n => format!("Check complete, {n} warnings have been found!\n"),
        };
        for w in &self.warnings {
            s.push_str(&format!(
                "\nWARNING: {} - https://docs.docker.com/go/dockerfile/rule/{}/\n{}\n",
                w.rule,
                kebab(w.rule),
                w.message,
            ));
            s.push_str(&self.snippet(w.line));
        }
        // Docker's client ends the list with an empty line when the check also failed to convert.
        if self.error.is_some() {
            s.push('\n');
        }
        if self.config.error && !self.warnings.is_empty() {
            let mut rules: Vec<&str> = self.warnings.iter().map(|w| w.rule).collect();
            rules.dedup();
            s.push_str(&format!(
                "ERROR: lint violation found for rules: {}\n",
                rules.join(", ")
            ));
        }
        s
    }

    /// One line per finding, as a build prints them at its end.
    pub fn summary(&self) -> String {
        summary(&self.warnings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kebab_names() {
        assert_eq!(kebab("FromAsCasing"), "from-as-casing");
        assert_eq!(kebab("JSONArgsRecommended"), "json-args-recommended");
        assert_eq!(kebab("UndefinedArgInFrom"), "undefined-arg-in-from");
        assert_eq!(kebab("WorkdirRelativePath"), "workdir-relative-path");
    }

    #[test]
    fn report_and_directives() {
        let r = check(
            "FROM busybox as base\nMAINTAINER me\nCMD echo hi\n",
            "Dockerfile",
        )
        .unwrap();
        let rules: Vec<&str> = r.warnings.iter().map(|w| w.rule).collect();
        assert_eq!(
            rules,
            [
                "FromAsCasing",
                "MaintainerDeprecated",
                "JSONArgsRecommended"
            ]
        );
        let out = r.render();
        assert!(out.starts_with("Check complete, 3 warnings have been found!"));
        assert!(out.contains(
            "WARNING: JSONArgsRecommended - https://docs.docker.com/go/dockerfile/rule/json-args-recommended/"
        ));
        assert!(out.contains("   3 | >>> CMD echo hi"), "{out}");
        assert!(!r.failed());
        let r = check(
            "# check=skip=FromAsCasing,MaintainerDeprecated;error=true\nFROM busybox as base\nMAINTAINER me\nCMD echo hi\n",
            "Dockerfile",
        )
        .unwrap();
        assert_eq!(r.warnings.len(), 1);
        assert!(r.failed());
        assert!(
            r.render()
                .contains("ERROR: lint violation found for rules: JSONArgsRecommended")
        );
        let r = check(
            "FROM busybox\nARG A=1\nENV B=$A C=${NOPE:-x}\nWORKDIR /$B/$a\nRUN echo $UNDEF_IN_SHELL\nCOPY $Missing /x\n",
            "Dockerfile",
        )
        .unwrap();
        let msgs: Vec<(usize, &str)> = r
            .warnings
            .iter()
            .map(|w| (w.line, w.message.as_str()))
            .collect();
        assert_eq!(
            msgs,
            [
                (4, "Usage of undefined variable '$a' (did you mean $A?)"),
                (6, "Usage of undefined variable '$Missing'"),
            ]
        );
        assert!(
            check("FROM busybox\nCMD [\"x\"]\n", "Dockerfile")
                .unwrap()
                .render()
                .contains("no warnings found")
        );
    }
}
