//! Shell-word expansion as BuildKit's shell lexer does it: quotes, escapes, `$V`, `${V}`, `${V:-w}`,
//! `${V-w}`, `${V:+w}`, `${V+w}`, `${V:?m}`, `${V?m}`, `${V#p}`, `${V##p}`, `${V%p}`, `${V%%p}`,
//! `${V/p/r}`, `${V//p/r}`, positional and special parameters, and word splitting.
//!
//! The builder calls [`Lexer::process_word`] / [`Lexer::process_words`] with a step's environment.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use unicode_general_category::{GeneralCategory, get_general_category};

/// A source of variable values for expansion.
pub trait Env {
    /// The value of `name`, or `None` when it is not set.
    fn lookup(&self, name: &str) -> Option<&str>;
}

impl Env for [(String, String)] {
    fn lookup(&self, name: &str) -> Option<&str> {
        self.iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

impl Env for Vec<(String, String)> {
    fn lookup(&self, name: &str) -> Option<&str> {
        self.as_slice().lookup(name)
    }
}

impl Env for [(&str, &str)] {
    fn lookup(&self, name: &str) -> Option<&str> {
        self.iter().rev().find(|(k, _)| *k == name).map(|(_, v)| *v)
    }
}

impl<const N: usize> Env for [(&str, &str); N] {
    fn lookup(&self, name: &str) -> Option<&str> {
        self.as_slice().lookup(name)
    }
}

impl Env for HashMap<String, String> {
    fn lookup(&self, name: &str) -> Option<&str> {
        self.get(name).map(String::as_str)
    }
}

impl Env for BTreeMap<String, String> {
    fn lookup(&self, name: &str) -> Option<&str> {
        self.get(name).map(String::as_str)
    }
}

/// An environment with nothing set.
#[derive(Debug, Clone, Copy, Default)]
pub struct EmptyEnv;

impl Env for EmptyEnv {
    fn lookup(&self, _name: &str) -> Option<&str> {
        None
    }
}

/// An expansion failure (unterminated quote, bad substitution, `${V:?msg}` on an unset variable...).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("failed to process {}: {message}", crate::dump::go_quote(word))]
pub struct ShellError {
    /// The word that was being expanded.
    pub word: String,
    /// What went wrong.
    pub message: String,
}

/// The result of an expansion with the variables it looked at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expansion {
    /// The expanded single word (quote-removed unless raw quotes were asked).
    pub result: String,
    /// The expansion split into words.
    pub words: Vec<String>,
    /// Variable names referenced and found set.
    pub matched: BTreeSet<String>,
    /// Variable names referenced but unset.
    pub unmatched: BTreeSet<String>,
}

/// BuildKit's shell lexer: an escape character plus mode switches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lexer {
    /// The escape character (`\` or `` ` ``).
    pub escape: char,
    /// Keep quote characters in the output.
    pub raw_quotes: bool,
    /// Keep escape characters in the output.
    pub raw_escapes: bool,
    /// Treat quotes as ordinary characters (used for heredoc bodies).
    pub skip_process_quotes: bool,
    /// Leave `$X`, `${X}`, `${X:-y}` untouched when X is unset.
    pub skip_unset_env: bool,
}

impl Lexer {
    /// A lexer in the normal mode with the given escape character.
    pub fn new(escape: char) -> Self {
        Lexer {
            escape,
            raw_quotes: false,
            raw_escapes: false,
            skip_process_quotes: false,
            skip_unset_env: false,
        }
    }

    /// Expands `word` into a single string (no word splitting).
    pub fn process_word<E: Env + ?Sized>(&self, word: &str, env: &E) -> Result<String, ShellError> {
        self.process(word, env).map(|e| e.result)
    }

    /// Expands `word` and splits the result into words as the shell would.
    pub fn process_words<E: Env + ?Sized>(
        &self,
        word: &str,
        env: &E,
    ) -> Result<Vec<String>, ShellError> {
        self.process(word, env).map(|e| e.words)
    }

    /// Expands `word`, returning the single word, the split words and the variables seen.
    pub fn process<E: Env + ?Sized>(&self, word: &str, env: &E) -> Result<Expansion, ShellError> {
        let mut sw = ShellWord {
            chars: word.chars().collect(),
            pos: 0,
            env,
            lexer: *self,
            raw_escapes: self.raw_escapes,
            depth: 0,
            matched: BTreeSet::new(),
            unmatched: BTreeSet::new(),
        };
        match sw.process_stop_on(None, self.raw_escapes) {
            Ok((result, words)) => Ok(Expansion {
                result,
                words,
                matched: sw.matched,
                unmatched: sw.unmatched,
            }),
            Err(message) => Err(ShellError {
                word: word.to_string(),
                message,
            }),
        }
    }
}

impl Default for Lexer {
    fn default() -> Self {
        Lexer::new('\\')
    }
}

/// Go's `unicode.IsSpace` (the same set as Rust's `char::is_whitespace`).
pub(crate) fn is_space(c: char) -> bool {
    c.is_whitespace()
}

/// Go's `unicode.IsLetter` (general category L).
fn is_letter(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_alphabetic();
    }
    matches!(
        get_general_category(c),
        GeneralCategory::UppercaseLetter
            | GeneralCategory::LowercaseLetter
            | GeneralCategory::TitlecaseLetter
            | GeneralCategory::ModifierLetter
            | GeneralCategory::OtherLetter
    )
}

/// Go's `unicode.IsDigit` (general category Nd).
fn is_digit(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_digit();
    }
    get_general_category(c) == GeneralCategory::DecimalNumber
}

fn is_special_param(c: char) -> bool {
    matches!(c, '@' | '*' | '#' | '?' | '-' | '$' | '!' | '0')
}

/// Accumulates the split words of an expansion.
#[derive(Default)]
struct Words {
    word: String,
    words: Vec<String>,
    in_word: bool,
}

impl Words {
    fn add_char(&mut self, c: char) {
        if is_space(c) {
            if self.in_word && !self.word.is_empty() {
                self.words.push(std::mem::take(&mut self.word));
                self.in_word = false;
            }
        } else {
            self.add_raw_char(c);
        }
    }

    fn add_raw_char(&mut self, c: char) {
        self.word.push(c);
        self.in_word = true;
    }

    fn add_string(&mut self, s: &str) {
        for c in s.chars() {
            self.add_char(c);
        }
    }

    fn add_raw_string(&mut self, s: &str) {
        self.word.push_str(s);
        self.in_word = true;
    }

    fn finish(mut self) -> Vec<String> {
        if !self.word.is_empty() {
            self.words.push(std::mem::take(&mut self.word));
        }
        self.words
    }
}

struct ShellWord<'a, E: Env + ?Sized> {
    chars: Vec<char>,
    pos: usize,
    env: &'a E,
    lexer: Lexer,
    raw_escapes: bool,
    depth: usize,
    matched: BTreeSet<String>,
    unmatched: BTreeSet<String>,
}

/// Deepest `${...${...}}` nesting accepted (BuildKit has none; this guards the stack).
const MAX_NESTING: usize = 200;

/// The longest expansion of one word, in bytes. BuildKit has no limit, so a chain of ARGs that
/// doubles at each step (`ARG B=$A$A`, ...) eats all memory; `hoist serve` builds untrusted files.
/// 4 MiB is 32 times what Linux accepts for one exec argument or environment string
/// (MAX_ARG_STRLEN, 128 KiB), so no RUN can use a longer value anyway, and leaves room for large
/// expanded COPY heredocs.
pub const MAX_EXPANSION: usize = 4 << 20;

/// How many pattern-match cells one `${V/p/r}` may compute (a fraction of a second): a long value
/// and a pattern with `*` cost quadratic time.
const MAX_PATTERN_WORK: usize = 50_000_000;

fn too_long() -> String {
    format!(
        "expansion exceeds {} MiB (the limit on one expanded word)",
        MAX_EXPANSION >> 20
    )
}

type Res<T> = Result<T, String>;

impl<E: Env + ?Sized> ShellWord<'_, E> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.chars.get(self.pos).copied();
        if c.is_some() {
            self.pos += 1;
        }
        c
    }

    fn get_env(&mut self, name: &str) -> Option<String> {
        match self.env.lookup(name) {
            Some(v) => {
                self.matched.insert(name.to_string());
                Some(v.to_string())
            }
            None => {
                self.unmatched.insert(name.to_string());
                None
            }
        }
    }

    /// Processes until `stop` (consumed) or the end; returns the word and the split words.
    fn process_stop_on(
        &mut self,
        stop: Option<char>,
        raw_escapes: bool,
    ) -> Res<(String, Vec<String>)> {
        let saved = self.raw_escapes;
        self.raw_escapes = raw_escapes;
        let r = self.process_stop_on_inner(stop);
        self.raw_escapes = saved;
        r
    }

    fn process_stop_on_inner(&mut self, stop: Option<char>) -> Res<(String, Vec<String>)> {
        let mut result = String::new();
        let mut words = Words::default();
        while let Some(ch) = self.peek() {
            if Some(ch) == stop {
                self.next();
                return Ok((result, words.finish()));
            }
            if result.len() > MAX_EXPANSION {
                return Err(too_long());
            }
            if ch == '$' {
                let tmp = self.process_dollar()?;
                result.push_str(&tmp);
                words.add_string(&tmp);
            } else if ch == '<' {
                let tmp = self.process_possible_heredoc();
                result.push_str(&tmp);
                words.add_raw_string(&tmp);
            } else if !self.lexer.skip_process_quotes && ch == '\'' {
                let tmp = self.process_single_quote()?;
                result.push_str(&tmp);
                words.add_raw_string(&tmp);
            } else if !self.lexer.skip_process_quotes && ch == '"' {
                let tmp = self.process_double_quote()?;
                result.push_str(&tmp);
                words.add_raw_string(&tmp);
            } else {
                self.next();
                if ch == self.lexer.escape {
                    if self.raw_escapes {
                        words.add_raw_char(ch);
                        result.push(ch);
                    }
                    match self.next() {
                        None => break,
                        Some(c) => {
                            words.add_raw_char(c);
                            result.push(c);
                        }
                    }
                } else {
                    words.add_char(ch);
                    result.push(ch);
                }
            }
        }
        if let Some(stop) = stop {
            return Err(format!(
                "unexpected end of statement while looking for matching {stop}"
            ));
        }
        if result.len() > MAX_EXPANSION {
            return Err(too_long());
        }
        Ok((result, words.finish()))
    }

    /// `<<` plus the blanks after it stay one raw token, so `<<  EOF` is one word.
    fn process_possible_heredoc(&mut self) -> String {
        self.next();
        if self.peek() != Some('<') {
            return "<".into();
        }
        self.next();
        let mut out = String::from("<<");
        while let Some(c) = self.peek().filter(|c| is_space(*c)) {
            out.push(c);
            self.next();
        }
        out
    }

    fn process_single_quote(&mut self) -> Res<String> {
        let mut result = String::new();
        let open = self.next();
        if self.lexer.raw_quotes {
            result.extend(open);
        }
        loop {
            match self.next() {
                None => {
                    return Err(
                        "unexpected end of statement while looking for matching single-quote"
                            .into(),
                    );
                }
                Some('\'') => {
                    if self.lexer.raw_quotes {
                        result.push('\'');
                    }
                    return Ok(result);
                }
                Some(c) => result.push(c),
            }
        }
    }

    fn process_double_quote(&mut self) -> Res<String> {
        let mut result = String::new();
        let open = self.next();
        if self.lexer.raw_quotes {
            result.extend(open);
        }
        loop {
            match self.peek() {
                None => {
                    return Err(
                        "unexpected end of statement while looking for matching double-quote"
                            .into(),
                    );
                }
                Some('"') => {
                    self.next();
                    if self.lexer.raw_quotes {
                        result.push('"');
                    }
                    return Ok(result);
                }
                Some('$') => {
                    let v = self.process_dollar()?;
                    result.push_str(&v);
                    if result.len() > MAX_EXPANSION {
                        return Err(too_long());
                    }
                }
                Some(_) => {
                    let mut ch = self.next().unwrap_or_default();
                    if ch == self.lexer.escape {
                        // Like BuildKit: in raw mode the escape is written even when what
                        // follows is not escapable (it then appears twice).
                        if self.raw_escapes {
                            result.push(ch);
                        }
                        match self.peek() {
                            None => continue,
                            Some(c) if c == '"' || c == '$' || c == self.lexer.escape => {
                                ch = self.next().unwrap_or_default();
                            }
                            Some(_) => {}
                        }
                    }
                    result.push(ch);
                }
            }
        }
    }

    fn process_name(&mut self) -> String {
        let mut name = String::new();
        while let Some(ch) = self.peek() {
            if name.is_empty() && is_digit(ch) {
                while let Some(c) = self.peek().filter(|c| is_digit(*c)) {
                    self.next();
                    name.push(c);
                }
                return name;
            }
            if name.is_empty() && is_special_param(ch) {
                self.next();
                return ch.to_string();
            }
            if !is_letter(ch) && !is_digit(ch) && ch != '_' {
                break;
            }
            self.next();
            name.push(ch);
        }
        name
    }

    fn process_dollar(&mut self) -> Res<String> {
        self.next(); // '$'
        if self.peek() != Some('{') {
            let name = self.process_name();
            if name.is_empty() {
                return Ok("$".into());
            }
            return Ok(match self.get_env(&name) {
                Some(v) => v,
                None if self.lexer.skip_unset_env => format!("${name}"),
                None => String::new(),
            });
        }
        self.next(); // '{'
        if self.depth >= MAX_NESTING {
            return Err("syntax error: substitutions nested too deeply".into());
        }
        self.depth += 1;
        let r = self.process_braced();
        self.depth -= 1;
        r
    }

    /// The `${...}` forms, after the opening brace.
    fn process_braced(&mut self) -> Res<String> {
        match self.peek() {
            None => return Err("syntax error: missing '}'".into()),
            Some('{' | '}' | ':') => return Err("syntax error: bad substitution".into()),
            _ => {}
        }
        let name = self.process_name();
        let first = self.next();
        let mut chs: String = first.map(String::from).unwrap_or_else(|| "\u{fffd}".into());
        match first {
            Some('}') => Ok(match self.get_env(&name) {
                Some(v) => v,
                None if self.lexer.skip_unset_env => format!("${{{name}}}"),
                None => String::new(),
            }),
            Some(':' | '+' | '-' | '?' | '#' | '%') => {
                let mut ch = first;
                let null_is_unset = ch == Some(':');
                if null_is_unset {
                    ch = self.next();
                    chs.push(ch.unwrap_or('\u{fffd}'));
                }
                let raw = matches!(ch, Some('#' | '%'));
                if null_is_unset && raw {
                    return Err(format!("unsupported modifier ({chs}) in substitution"));
                }
                let word = match self.process_stop_on(Some('}'), raw) {
                    Ok((w, _)) => w,
                    Err(e) => {
                        if self.peek().is_none() {
                            return Err("syntax error: missing '}'".into());
                        }
                        return Err(e);
                    }
                };
                let value = self.get_env(&name);
                if self.lexer.skip_unset_env && value.is_none() {
                    return Ok(format!("${{{name}{chs}{word}}}"));
                }
                let empty = value
                    .as_deref()
                    .is_none_or(|v| null_is_unset && v.is_empty());
                match ch {
                    Some('-') => Ok(if empty {
                        word
                    } else {
                        value.unwrap_or_default()
                    }),
                    Some('+') => Ok(if empty { String::new() } else { word }),
                    Some('?') => match value {
                        None => Err(format!(
                            "{name}: {}",
                            if word.is_empty() {
                                "is not allowed to be unset"
                            } else {
                                &word
                            }
                        )),
                        Some(v) if null_is_unset && v.is_empty() => Err(format!(
                            "{name}: {}",
                            if word.is_empty() {
                                "is not allowed to be empty"
                            } else {
                                &word
                            }
                        )),
                        Some(v) => Ok(v),
                    },
                    Some(c @ ('#' | '%')) => {
                        let value = value.unwrap_or_default();
                        let (greedy, pat) = match word.strip_prefix(c) {
                            Some(rest) => (true, rest),
                            None => (false, word.as_str()),
                        };
                        let pattern = Pattern::parse(pat, true)
                            .map_err(|e| format!("invalid pattern ({pat}) in substitution: {e}"))?;
                        Ok(if c == '%' {
                            pattern.trim_suffix(&value, greedy)
                        } else {
                            pattern.trim_prefix(&value, greedy)
                        })
                    }
                    _ => Err(format!("unsupported modifier ({chs}) in substitution")),
                }
            }
            Some('/') => {
                let replace_all = self.peek() == Some('/');
                if replace_all {
                    self.next();
                }
                let pattern = match self.process_stop_on(Some('/'), true) {
                    Ok((w, _)) => w,
                    Err(e) => {
                        if self.peek().is_none() {
                            return Err("syntax error: missing '/' in ${}".into());
                        }
                        return Err(e);
                    }
                };
                let replacement = match self.process_stop_on(Some('}'), true) {
                    Ok((w, _)) => w,
                    Err(e) => {
                        if self.peek().is_none() {
                            return Err("syntax error: missing '}'".into());
                        }
                        return Err(e);
                    }
                };
                let value = self.get_env(&name);
                if self.lexer.skip_unset_env && value.is_none() {
                    return Ok(format!("${{{name}/{pattern}/{replacement}}}"));
                }
                let value = value.unwrap_or_default();
                let pat = Pattern::parse(&pattern, true)
                    .map_err(|e| format!("invalid pattern ({pattern}) in substitution: {e}"))?;
                pat.replace(&value, &replacement, replace_all)
            }
            _ => Err(format!("unsupported modifier ({chs}) in substitution")),
        }
    }
}

/// One element of a shell pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tok {
    /// `*`: any run of characters except newline.
    Star,
    /// `?`: one character except newline.
    One,
    /// A literal character.
    Lit(char),
}

/// A `${V#pattern}`-style glob: `*`, `?`, `\` escapes; no classes.
#[derive(Debug, Clone)]
struct Pattern {
    toks: Vec<Tok>,
}

impl Pattern {
    /// Parses a pattern; `\}` and `\/` are `}` and `/`; `\` may only escape `*`, `?`, `\`.
    fn parse(src: &str, _greedy: bool) -> Result<Pattern, String> {
        let chars: Vec<char> = src.chars().collect();
        let mut toks = Vec::new();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            i += 1;
            match c {
                '*' => toks.push(Tok::Star),
                '?' => toks.push(Tok::One),
                '\\' => {
                    if matches!(chars.get(i), Some('}' | '/')) {
                        continue;
                    }
                    match chars.get(i) {
                        Some(&e @ ('*' | '?' | '\\')) => {
                            toks.push(Tok::Lit(e));
                            i += 1;
                        }
                        Some(&e) => return Err(format!("invalid escape '\\{e}'")),
                        None => return Err("invalid escape '\\\u{fffd}'".into()),
                    }
                }
                c => toks.push(Tok::Lit(c)),
            }
        }
        Ok(Pattern { toks })
    }

    /// For each `j`, whether the pattern matches exactly `s[..j]` (dynamic programming, no
    /// backtracking, one pass per token).
    fn prefix_matches(&self, s: &[char]) -> Vec<bool> {
        // reach[j]: the tokens seen so far can match exactly s[..j].
        let mut reach = vec![false; s.len() + 1];
        reach[0] = true;
        for tok in &self.toks {
            if !reach.contains(&true) {
                break;
            }
            let mut next = vec![false; s.len() + 1];
            match tok {
                Tok::Star => {
                    for j in 0..=s.len() {
                        next[j] = reach[j] || (j > 0 && next[j - 1] && s[j - 1] != '\n');
                    }
                }
                Tok::One => {
                    for j in 1..=s.len() {
                        next[j] = reach[j - 1] && s[j - 1] != '\n';
                    }
                }
                Tok::Lit(c) => {
                    for j in 1..=s.len() {
                        next[j] = reach[j - 1] && s[j - 1] == *c;
                    }
                }
            }
            reach = next;
        }
        reach
    }

    /// The pattern read backwards: it matches a reversed string where this one matches the
    /// string.
    fn reversed(&self) -> Pattern {
        Pattern {
            toks: self.toks.iter().rev().copied().collect(),
        }
    }

    /// Length of the shortest (or longest) prefix of `s` that matches.
    fn prefix_len(&self, s: &[char], greedy: bool) -> Option<usize> {
        let m = self.prefix_matches(s);
        if greedy {
            m.iter().rposition(|&b| b)
        } else {
            m.iter().position(|&b| b)
        }
    }

    /// The longest text a match can span, when the pattern has no `*`.
    fn fixed_len(&self) -> Option<usize> {
        (!self.toks.contains(&Tok::Star)).then_some(self.toks.len())
    }

    fn trim_prefix(&self, value: &str, greedy: bool) -> String {
        let s: Vec<char> = value.chars().collect();
        match self.prefix_len(&s, greedy) {
            Some(n) => s[n..].iter().collect(),
            None => value.to_string(),
        }
    }

    fn trim_suffix(&self, value: &str, greedy: bool) -> String {
        let s: Vec<char> = value.chars().collect();
        // Suffixes of `s` matching: prefixes of reversed `s` matching the reversed pattern.
        let rev: Vec<char> = s.iter().rev().copied().collect();
        let len = self.reversed().prefix_len(&rev, greedy);
        match len {
            Some(n) => s[..s.len() - n].iter().collect(),
            None => value.to_string(),
        }
    }

    /// Leftmost-longest match starting at or after `from`: (start, end). `work` counts the
    /// cells computed, bounded by [`MAX_PATTERN_WORK`].
    fn find(&self, s: &[char], from: usize, work: &mut usize) -> Res<Option<(usize, usize)>> {
        let first = match self.toks.first() {
            Some(Tok::Lit(c)) => Some(*c),
            _ => None,
        };
        let leading_star = self.toks.first() == Some(&Tok::Star);
        let mut skip_to = from;
        for i in from..=s.len() {
            if i < skip_to || (first.is_some() && s.get(i).copied() != first) {
                continue;
            }
            let end = self.fixed_len().map_or(s.len(), |n| (i + n).min(s.len()));
            *work += (end - i + 1) * self.toks.len().max(1);
            if *work > MAX_PATTERN_WORK {
                return Err("pattern substitution too costly on a value this long".into());
            }
            if let Some(n) = self.prefix_len(&s[i..end], true) {
                return Ok(Some((i, i + n)));
            }
            if leading_star {
                // `*P` failing at i fails at every later start on the same line (the star could
                // have absorbed the characters in between): go on after the next newline.
                skip_to = s[i..]
                    .iter()
                    .position(|&c| c == '\n')
                    .map_or(s.len() + 1, |p| i + p + 1);
            }
        }
        Ok(None)
    }

    fn replace(&self, value: &str, replacement: &str, all: bool) -> Res<String> {
        let s: Vec<char> = value.chars().collect();
        let mut out = String::new();
        let mut last_end = 0;
        let mut search = 0;
        let mut work = 0;
        while search <= s.len() {
            if out.len() > MAX_EXPANSION {
                return Err(too_long());
            }
            let Some((a, b)) = self.find(&s, search, &mut work)? else {
                break;
            };
            out.extend(&s[last_end..a]);
            if b > last_end || a == 0 {
                out.push_str(replacement);
            }
            last_end = b;
            if !all {
                break;
            }
            search = if b > search { b } else { search + 1 };
        }
        out.extend(&s[last_end.min(s.len())..]);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> Vec<(String, String)> {
        [
            ("FOO", "foo/bar/baz.tar.gz"),
            ("EMPTY", ""),
            ("BAR", "bar"),
            ("SP", "a b"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    fn w(s: &str) -> Result<String, ShellError> {
        Lexer::new('\\').process_word(s, &env())
    }

    #[test]
    fn defaults_and_alternatives() {
        assert_eq!(w("${EMPTY-x}").unwrap(), "");
        assert_eq!(w("${EMPTY:-x}").unwrap(), "x");
        assert_eq!(w("${UNSET-x}").unwrap(), "x");
        assert_eq!(w("${EMPTY+x}").unwrap(), "x");
        assert_eq!(w("${EMPTY:+x}").unwrap(), "");
        assert_eq!(w("${BAR:+-${BAR}}").unwrap(), "-bar");
        assert_eq!(w("${UNSET:-$BAR}").unwrap(), "bar");
    }

    #[test]
    fn required() {
        let e = w("${UNSET?}").unwrap_err();
        assert!(e.message.contains("is not allowed to be unset"), "{e}");
        let e = w("${EMPTY:?}").unwrap_err();
        assert!(e.message.contains("is not allowed to be empty"), "{e}");
        let e = w("${UNSET:?need $BAR}").unwrap_err();
        assert_eq!(e.message, "UNSET: need bar");
        assert_eq!(w("${EMPTY?}").unwrap(), "");
        assert!(w("${BAR=x}").is_err());
        assert!(w("${BAR:=x}").is_err());
    }

    #[test]
    fn prefix_suffix() {
        assert_eq!(w("${FOO#*/}").unwrap(), "bar/baz.tar.gz");
        assert_eq!(w("${FOO##*/}").unwrap(), "baz.tar.gz");
        assert_eq!(w("${FOO%.*}").unwrap(), "foo/bar/baz.tar");
        assert_eq!(w("${FOO%%.*}").unwrap(), "foo/bar/baz");
        assert_eq!(w("${FOO#$BAR}").unwrap(), "foo/bar/baz.tar.gz");
        assert_eq!(w("${FOO#foo}").unwrap(), "/bar/baz.tar.gz");
        assert_eq!(w("${FOO#}").unwrap(), "foo/bar/baz.tar.gz");
        assert_eq!(w("${FOO%?z}").unwrap(), "foo/bar/baz.tar.");
        assert!(w("${FOO:#x}").is_err());
        assert!(w("${FOO:%x}").is_err());
        assert!(w("${FOO#\\a}").is_err());
        assert_eq!(w("${FOO#\\*}").unwrap(), "foo/bar/baz.tar.gz");
    }

    #[test]
    fn replace() {
        assert_eq!(w("${FOO/bar/X}").unwrap(), "foo/X/baz.tar.gz");
        assert_eq!(w("${FOO//a/A}").unwrap(), "foo/bAr/bAz.tAr.gz");
        assert_eq!(w("${FOO/\\//_}").unwrap(), "foo_bar/baz.tar.gz");
        assert_eq!(w("${FOO//\\//_}").unwrap(), "foo_bar_baz.tar.gz");
        assert_eq!(w("${FOO/b*z/Q}").unwrap(), "foo/Q");
        assert_eq!(w("${FOO/b*r/Q}").unwrap(), "foo/Q.gz");
        assert_eq!(w("${FOO///}").unwrap(), "foo/bar/baz.tar.gz");
        assert_eq!(w("${BAR/$EMPTY/ww}").unwrap(), "wwbar");
        assert!(w("${FOO//}").is_err());
        assert!(w("${FOO//ww}").is_err());
    }

    #[test]
    fn words_and_modes() {
        let l = Lexer::new('\\');
        assert_eq!(
            l.process_words("a $SP \"$SP\"", &env()).unwrap(),
            ["a", "a", "b", "a b"]
        );
        let mut raw = Lexer::new('\\');
        raw.raw_quotes = true;
        raw.skip_unset_env = true;
        assert_eq!(
            raw.process_word("'x' \"$UNSET\" ${U:-y}", &env()).unwrap(),
            "'x' \"$UNSET\" ${U:-y}"
        );
        let mut noq = Lexer::new('\\');
        noq.skip_process_quotes = true;
        assert_eq!(
            noq.process_word("'$BAR' \"x\"", &env()).unwrap(),
            "'bar' \"x\""
        );
        let bt = Lexer::new('`');
        assert_eq!(bt.process_word("a`$b\\c", &env()).unwrap(), "a$b\\c");
    }

    #[test]
    fn matches_reported() {
        let e = Lexer::new('\\')
            .process("$BAR $NOPE ${X:-$EMPTY}", &env())
            .unwrap();
        assert_eq!(e.matched.into_iter().collect::<Vec<_>>(), ["BAR", "EMPTY"]);
        assert_eq!(e.unmatched.into_iter().collect::<Vec<_>>(), ["NOPE", "X"]);
    }
}
