//! Build checks (`hoist build --check`, `hoist lint FILE`): runs the parser's BuildKit lint rules
//! over a Dockerfile and renders the findings as `docker build --check` does, honouring the
//! `# check=skip=...;error=true` directive.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Result, anyhow};
use hoist_parser::lint::{BaseEnv, CheckConfig, LintWarning};

use crate::dockerfile::FrontendOptions;

/// The findings for one Dockerfile.
#[derive(Debug, Clone)]
pub struct CheckReport {
    /// The Dockerfile's display name (`Dockerfile`).
    pub file: String,
    pub warnings: Vec<LintWarning>,
    pub config: CheckConfig,
    lines: Vec<String>,
}

/// Parses, validates and lints a Dockerfile's text. Syntax and instruction errors are errors.
/// Base images are not resolved: `UndefinedVar` assumes they define `PATH` only.
pub fn check(text: &str, file: &str) -> Result<CheckReport> {
    check_with_bases(text, file, &|_| BaseEnv::Unknown)
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
    let Some(store) = store else {
        return check(text, file);
    };
    let ast = hoist_parser::parse(text.as_bytes(), file).map_err(|e| anyhow!("{e}"))?;
    let df = hoist_parser::parse_dockerfile(&ast).map_err(|e| anyhow!(located(text, &e)))?;
    let mut opts = FrontendOptions::new(file);
    opts.build_args = build_args.clone();
    if let Some(p) = platform {
        opts.platform = p.to_string();
    }
    let envs: Vec<BaseEnv> = crate::dockerfile::base_names(&df, &opts)
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
    check_with_bases(text, file, &|i| {
        envs.get(i).cloned().unwrap_or(BaseEnv::Unknown)
    })
}

/// [`check`] knowing what each stage's base image defines (by stage index), as a build does once
/// it loaded their metadata.
pub fn check_with_bases(
    text: &str,
    file: &str,
    base_env: &dyn Fn(usize) -> BaseEnv,
) -> Result<CheckReport> {
    let ast = hoist_parser::parse(text.as_bytes(), file).map_err(|e| anyhow!("{e}"))?;
    let df = hoist_parser::parse_dockerfile(&ast).map_err(|e| anyhow!(located(text, &e)))?;
    let (mut warnings, config) = hoist_parser::lint::lint(&ast, &df).map_err(|e| anyhow!("{e}"))?;
    if !config.skips("UndefinedVar") {
        warnings.extend(hoist_parser::lint::undefined_vars(&df, base_env));
    }
    warnings.sort_by_key(|w| w.line);
    Ok(CheckReport {
        file: file.to_string(),
        warnings,
        config,
        lines: text.lines().map(String::from).collect(),
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
    /// Whether the checks fail the build (`# check=error=true` and something was found).
    pub fn failed(&self) -> bool {
        self.config.error && !self.warnings.is_empty()
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
                "\nWARNING: {} - https://docs.docker.com/go/dockerfile/rule/{}/\n{} (line {})\n",
                w.rule,
                kebab(w.rule),
                w.message,
                w.line
            ));
            if w.line > 0 && w.line <= self.lines.len() {
                s.push_str(&format!("{}:{}\n--------------------\n", self.file, w.line));
                let from = w.line.saturating_sub(1).max(1);
                let to = (w.line + 1).min(self.lines.len());
                for l in from..=to {
                    let mark = if l == w.line { ">>>" } else { "   " };
                    s.push_str(&format!(" {l:>3} | {mark} {}\n", self.lines[l - 1]));
                }
                s.push_str("--------------------\n");
            }
        }
        if self.failed() {
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
