//! `.dockerignore` patterns with Docker's exact rules (moby/patternmatcher), not gitignore's:
//!
//! - every pattern is cleaned (Go `filepath.Clean`) and anchored at the context root; a leading `/` is
//!   stripped, so `*.go` matches only `a.go` at the root, never `sub/a.go` (gitignore would match both);
//! - `*` and `?` never cross `/`, `[...]` is a character class, `\` escapes the next character;
//! - `**` matches any number of directories (including none);
//! - a pattern that matches a directory excludes everything below it;
//! - `!pattern` re-includes; the LAST matching pattern wins;
//! - lines starting with `#` are comments, surrounding whitespace is trimmed.
//!
//! Patterns become anchored regexes (exactly Go's semantics: `{`, `[!` and `\` as Go reads them,
//! which glob crates such as `globset` read differently), each compiled once per process.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use regex::Regex;

use crate::paths::clean;

/// Compiled patterns by their regex text, shared by the whole process (one build): a pattern used
/// by `.dockerignore`, `COPY --exclude` or a COPY wildcard is compiled once, however many names,
/// steps or stages it is matched against.
fn compiled(re: &str) -> Result<Arc<Regex>, regex::Error> {
    static MEMO: OnceLock<Mutex<HashMap<String, Arc<Regex>>>> = OnceLock::new();
    let memo = MEMO.get_or_init(Default::default);
    if let Some(r) = memo.lock().unwrap_or_else(|p| p.into_inner()).get(re) {
        return Ok(r.clone());
    }
    let r = Arc::new(Regex::new(re)?);
    memo.lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(re.to_string(), r.clone());
    Ok(r)
}

/// One compiled pattern line.
#[derive(Debug, Clone)]
struct Pattern {
    /// The cleaned pattern text without the `!`.
    text: String,
    exclusion: bool,
    regex: Arc<Regex>,
}

/// A compiled `.dockerignore` file.
#[derive(Debug, Clone, Default)]
pub struct Ignore {
    patterns: Vec<Pattern>,
    exclusions: bool,
}

/// A pattern that does not compile (e.g. an unterminated `[`).
#[derive(Debug, thiserror::Error)]
#[error("invalid .dockerignore pattern {pattern:?}: {reason}")]
pub struct PatternError {
    pub pattern: String,
    pub reason: String,
}

/// Reads `.dockerignore` text into pattern lines exactly as Docker's `ignorefile.ReadAll` does.
pub fn read_patterns(text: &str) -> Vec<String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut out = Vec::new();
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        let mut p = line.trim();
        if p.is_empty() {
            continue;
        }
        let invert = p.starts_with('!');
        if invert {
            p = p[1..].trim();
        }
        let mut pat = String::new();
        if !p.is_empty() {
            pat = clean(p);
            if pat.len() > 1 && pat.starts_with('/') {
                pat.remove(0);
            }
        }
        out.push(if invert { format!("!{pat}") } else { pat });
    }
    out
}

impl Ignore {
    /// Parses `.dockerignore` text.
    pub fn parse(text: &str) -> Result<Ignore, PatternError> {
        Ignore::new(&read_patterns(text))
    }

    /// Compiles pattern lines (as returned by [`read_patterns`], or `COPY --exclude` values).
    pub fn new<S: AsRef<str>>(lines: &[S]) -> Result<Ignore, PatternError> {
        let mut patterns = Vec::new();
        let mut exclusions = false;
        for line in lines {
            let p = line.as_ref().trim();
            if p.is_empty() {
                continue;
            }
            let mut p = clean(p);
            let exclusion = p.starts_with('!');
            if exclusion {
                if p.len() == 1 {
                    return Err(PatternError {
                        pattern: p,
                        reason: "illegal exclusion pattern: \"!\"".into(),
                    });
                }
                p.remove(0);
                exclusions = true;
            }
            let regex = compiled(&to_regex(&p)).map_err(|e| PatternError {
                pattern: p.clone(),
                reason: e.to_string(),
            })?;
            patterns.push(Pattern {
                text: p,
                exclusion,
                regex,
            });
        }
        Ok(Ignore {
            patterns,
            exclusions,
        })
    }

    /// No pattern at all.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Whether some `!` pattern exists (then excluded directories must still be walked).
    pub fn has_exclusions(&self) -> bool {
        self.exclusions
    }

    /// Whether `path` (relative to the context, `/`-separated) is excluded: the last pattern that matches
    /// the path or one of its parent directories decides (`MatchesOrParentMatches`).
    pub fn is_excluded(&self, path: &str) -> bool {
        let path = path.trim_start_matches('/');
        let parents: Vec<&str> = match path.rfind('/') {
            Some(i) => path[..i].split('/').collect(),
            None => Vec::new(),
        };
        let mut matched = false;
        for p in &self.patterns {
            if p.exclusion != matched {
                continue;
            }
            let mut m = p.regex.is_match(path);
            if !m {
                let mut prefix = String::new();
                for (i, d) in parents.iter().enumerate() {
                    if i > 0 {
                        prefix.push('/');
                    }
                    prefix.push_str(d);
                    if p.regex.is_match(&prefix) {
                        m = true;
                        break;
                    }
                }
            }
            if m {
                matched = !p.exclusion;
            }
        }
        matched
    }

    /// Whether a directory that is itself excluded may still contain re-included paths, so a walker
    /// must descend into it.
    pub fn may_reinclude_under(&self, dir: &str) -> bool {
        self.patterns.iter().any(|p| {
            if !p.exclusion {
                return false;
            }
            // The literal part of the pattern before its first wildcard.
            let lit: String = p
                .text
                .chars()
                .take_while(|c| !matches!(c, '*' | '?' | '[' | '\\'))
                .collect();
            let d = format!("{dir}/");
            lit.starts_with(&d) || d.starts_with(&lit) || lit.is_empty()
        })
    }

    /// The cleaned pattern texts, `!` included, for cache keys.
    pub fn texts(&self) -> Vec<String> {
        self.patterns
            .iter()
            .map(|p| {
                if p.exclusion {
                    format!("!{}", p.text)
                } else {
                    p.text.clone()
                }
            })
            .collect()
    }
}

/// Translates a cleaned pattern into an anchored regex, as patternmatcher's `compile` does.
fn to_regex(pattern: &str) -> String {
    let mut re = String::from("^");
    let chars: Vec<char> = pattern.chars().collect();
    let mut i = 0;
    let mut in_class = false;
    while i < chars.len() {
        let ch = chars[i];
        i += 1;
        match ch {
            '*' if chars.get(i) == Some(&'*') => {
                i += 1;
                if chars.get(i) == Some(&'/') {
                    i += 1;
                }
                if i >= chars.len() {
                    re.push_str(".*");
                } else {
                    re.push_str("(.*/)?");
                }
            }
            '*' => re.push_str("[^/]*"),
            '?' => re.push_str("[^/]"),
            '.' | '+' | '(' | ')' | '|' | '{' | '}' | '$' => {
                re.push('\\');
                re.push(ch);
            }
            '\\' => {
                if i < chars.len() {
                    re.push_str(&regex::escape(&chars[i].to_string()));
                    i += 1;
                } else {
                    re.push_str("\\\\");
                }
            }
            '[' => {
                in_class = true;
                re.push(ch)
            }
            ']' => {
                in_class = false;
                re.push(ch)
            }
            '^' if re.ends_with('[') => re.push('^'),
            '-' if in_class => re.push('-'),
            c => re.push_str(&regex::escape(&c.to_string())),
        }
    }
    re.push('$');
    re
}

/// Go's `filepath.Match` for one name or path (`*`/`?` do not cross `/`), used for COPY wildcards.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    match compiled(&to_regex_plain(pattern)) {
        Ok(r) => r.is_match(name),
        Err(_) => false,
    }
}

/// Like [`to_regex`] but without `**` handling (filepath.Match treats `**` as two `*`).
fn to_regex_plain(pattern: &str) -> String {
    let mut re = String::from("^");
    let chars: Vec<char> = pattern.chars().collect();
    let mut i = 0;
    let mut in_class = false;
    while i < chars.len() {
        let ch = chars[i];
        i += 1;
        match ch {
            '*' => re.push_str("[^/]*"),
            '?' => re.push_str("[^/]"),
            '\\' if i < chars.len() => {
                re.push_str(&regex::escape(&chars[i].to_string()));
                i += 1;
            }
            '[' => {
                in_class = true;
                re.push(ch)
            }
            ']' => {
                in_class = false;
                re.push(ch)
            }
            '^' if re.ends_with('[') => re.push('^'),
            '-' if in_class => re.push('-'),
            c => re.push_str(&regex::escape(&c.to_string())),
        }
    }
    re.push('$');
    re
}

/// Whether a path component contains a `filepath.Match` metacharacter.
pub fn has_wildcard(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ig(text: &str) -> Ignore {
        Ignore::parse(text).unwrap()
    }

    #[test]
    fn star_is_root_anchored_unlike_gitignore() {
        let i = ig("*.go\n");
        assert!(i.is_excluded("main.go"));
        // gitignore would exclude this one too; Docker does not.
        assert!(!i.is_excluded("cmd/main.go"));
    }

    #[test]
    fn plain_name_matches_only_at_root() {
        let i = ig("node_modules");
        assert!(i.is_excluded("node_modules"));
        assert!(i.is_excluded("node_modules/x/y.js"));
        // gitignore's `node_modules` matches at any depth; Docker's does not.
        assert!(!i.is_excluded("web/node_modules"));
        assert!(ig("**/node_modules").is_excluded("web/node_modules/a"));
    }

    #[test]
    fn double_star_matches_zero_or_more_dirs() {
        let i = ig("**/*.log");
        assert!(i.is_excluded("a.log"));
        assert!(i.is_excluded("x/y/z.log"));
        assert!(!i.is_excluded("x/y/z.txt"));
        let i = ig("a/**/b");
        assert!(i.is_excluded("a/b"));
        assert!(i.is_excluded("a/x/y/b"));
        assert!(!i.is_excluded("c/a/b"));
        assert!(ig("foo**").is_excluded("foobar/baz"));
    }

    #[test]
    fn last_match_wins_with_exceptions() {
        let i = ig("*.md\n!README.md\n");
        assert!(i.is_excluded("CHANGES.md"));
        assert!(!i.is_excluded("README.md"));
        // Order matters: a later exclusion overrides an earlier exception (gitignore agrees, but
        // gitignore cannot re-include a file inside an excluded dir; Docker can).
        let i = ig("!README.md\n*.md\n");
        assert!(i.is_excluded("README.md"));
        let i = ig("docs\n!docs/keep.txt\n");
        assert!(i.is_excluded("docs/other.txt"));
        assert!(!i.is_excluded("docs/keep.txt"));
        assert!(i.may_reinclude_under("docs"));
        assert!(!ig("docs").may_reinclude_under("docs"));
    }

    #[test]
    fn leading_slash_and_dots_are_cleaned() {
        let i = ig("/build\n./tmp/../out\n");
        assert!(i.is_excluded("build/x"));
        assert!(i.is_excluded("out"));
        assert!(!i.is_excluded("tmp"));
        // A trailing slash is cleaned away too: `dir/` also matches a FILE named dir (gitignore: dirs only).
        assert!(ig("dir/").is_excluded("dir"));
    }

    #[test]
    fn comments_whitespace_and_classes() {
        let i = ig("# comment\n   \n  spaced.txt  \n[ab].c\n?.h\n \\#lit\n");
        assert!(i.is_excluded("spaced.txt"));
        assert!(i.is_excluded("a.c"));
        assert!(!i.is_excluded("c.c"));
        assert!(i.is_excluded("x.h"));
        assert!(!i.is_excluded("xy.h"));
        assert!(i.is_excluded("#lit"));
        assert!(!i.is_excluded("comment"));
        // `*` never crosses a slash, `?` neither.
        assert!(!ig("a*b").is_excluded("a/b"));
        assert!(!ig("a?b").is_excluded("a/b"));
        // Regex metacharacters are literal.
        assert!(ig("a+(b).txt").is_excluded("a+(b).txt"));
        assert!(!ig("a.txt").is_excluded("abtxt"));
    }

    #[test]
    fn bad_patterns_are_errors() {
        assert!(Ignore::parse("[abc").is_err());
        assert!(Ignore::new(&["!"]).is_err());
    }

    #[test]
    fn filepath_match() {
        assert!(glob_match("*.txt", "a.txt"));
        assert!(!glob_match("*.txt", "d/a.txt"));
        assert!(glob_match("file?", "file1"));
        assert!(glob_match("[a-c]x", "bx"));
        assert!(!glob_match("[^a-c]x", "bx"));
    }

    #[test]
    fn a_pattern_is_compiled_once() {
        let re = to_regex_plain("once-[0-9]*.txt");
        assert!(Arc::ptr_eq(
            &compiled(&re).unwrap(),
            &compiled(&re).unwrap()
        ));
        assert!(glob_match("once-[0-9]*.txt", "once-1a.txt"));
        let (a, b) = (ig("once-*.log"), ig("once-*.log"));
        assert!(Arc::ptr_eq(&a.patterns[0].regex, &b.patterns[0].regex));
        assert!(a.is_excluded("once-x.log") && !a.is_excluded("d/once-x.log"));
    }
}
