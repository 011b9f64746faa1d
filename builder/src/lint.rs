//! Build checks (`hoist build --check`, `hoist lint FILE`): runs the parser's BuildKit lint rules
//! over a Dockerfile and renders the findings as `docker build --check` does, honouring the
//! `# check=skip=...;error=true` directive.

use anyhow::{Result, anyhow};
use hoist_parser::lint::{CheckConfig, LintWarning};

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
pub fn check(text: &str, file: &str) -> Result<CheckReport> {
    let ast = hoist_parser::parse(text.as_bytes(), file).map_err(|e| anyhow!("{e}"))?;
    let df = hoist_parser::parse_dockerfile(&ast).map_err(|e| {
        let line = text
            .lines()
            .nth(e.start_line.saturating_sub(1))
            .unwrap_or("")
            .trim();
        anyhow!(
            "{}:{}\n--------------------\n>>> {line}\n--------------------\n{}",
            e.file,
            e.start_line,
            e.buildkit_message()
        )
    })?;
    let (mut warnings, config) = hoist_parser::lint::lint(&ast, &df).map_err(|e| anyhow!("{e}"))?;
    let skipped = |rule: &str| {
        config
            .skip
            .iter()
            .any(|s| s == "all" || s.eq_ignore_ascii_case(rule))
    };
    if !skipped("UndefinedVar") {
        warnings.extend(undefined_vars(&ast));
    }
    warnings.sort_by_key(|w| w.line);
    Ok(CheckReport {
        file: file.to_string(),
        warnings,
        config,
        lines: text.lines().map(String::from).collect(),
    })
}

/// Build args defined in every stage without an ARG.
const PREDEFINED: &[&str] = &[
    "TARGETPLATFORM",
    "TARGETOS",
    "TARGETARCH",
    "TARGETVARIANT",
    "BUILDPLATFORM",
    "BUILDOS",
    "BUILDARCH",
    "BUILDVARIANT",
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
    // Every base image's environment has it (and BuildKit sets it for scratch).
    "PATH",
];

/// BuildKit's `UndefinedVar`: a `$VAR` the builder expands (not RUN/CMD/ENTRYPOINT, which the
/// shell expands) that no ARG or ENV before it in its stage defines. Base images' own ENV is not
/// known without pulling them, so only `PATH` is assumed from them.
fn undefined_vars(ast: &hoist_parser::Ast) -> Vec<LintWarning> {
    use hoist_parser::shell::Lexer;
    let lex = Lexer::new(ast.directives.escape);
    let mut out = Vec::new();
    let mut defined: Vec<(String, String)> = Vec::new();
    let reset = |d: &mut Vec<(String, String)>| {
        d.clear();
        d.extend(PREDEFINED.iter().map(|k| (k.to_string(), String::new())));
    };
    reset(&mut defined);
    let mut in_stage = false;
    for n in &ast.children {
        let kw = n.name();
        let mut check = |words: &[&str], defined: &Vec<(String, String)>| {
            for w in words {
                let Ok(e) = lex.process(w, defined) else {
                    continue;
                };
                for name in e.unmatched {
                    // `${VAR:-default}` and friends handle an unset VAR on purpose.
                    if [':', '-', '+', '?']
                        .iter()
                        .any(|op| w.contains(&format!("${{{name}{op}")))
                    {
                        continue;
                    }
                    let hint = defined
                        .iter()
                        .find(|(k, _)| k.eq_ignore_ascii_case(&name))
                        .map(|(k, _)| format!(" (did you mean ${k}?)"))
                        .unwrap_or_default();
                    out.push(LintWarning {
                        rule: "UndefinedVar",
                        message: format!("Usage of undefined variable '${name}'{hint}"),
                        line: n.start_line,
                    });
                }
            }
        };
        match kw.as_str() {
            "from" => {
                reset(&mut defined);
                in_stage = true;
            }
            "arg" if in_stage => {
                for a in &n.args {
                    let (k, v) = a.split_once('=').unwrap_or((a, ""));
                    if a.contains('=') {
                        check(&[v], &defined);
                    }
                    defined.push((k.to_string(), String::new()));
                }
            }
            "env" | "label" => {
                for t in n.args.chunks(3) {
                    let v = t.get(1).map(String::as_str).unwrap_or("");
                    check(&[t[0].as_str(), v], &defined);
                    if kw == "env" {
                        defined.push((t[0].clone(), String::new()));
                    }
                }
            }
            "copy" | "add" | "workdir" | "user" | "expose" | "volume" | "stopsignal"
                if in_stage =>
            {
                let words: Vec<&str> = n
                    .args
                    .iter()
                    .filter(|a| !a.starts_with("<<"))
                    .map(String::as_str)
                    .collect();
                check(&words, &defined);
            }
            _ => {}
        }
    }
    out
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
