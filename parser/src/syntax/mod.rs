//! The syntax layer: bytes to [`Ast`] exactly as BuildKit's `parser.Parse` does it
//! (directives, BOM, CRLF, continuations, comments, flag extraction, per-instruction argument rules,
//! heredocs). See `testdata/conformance/FORMAT.md`.

use nom::{
    IResult, Parser,
    bytes::complete::{tag, take_while},
    character::complete::{char as nchar, digit0, satisfy},
    combinator::{opt, recognize},
    sequence::pair,
};

use crate::ast::{Ast, Directive, Directives, Heredoc, Node, Warning};
use crate::error::ParseError;
use crate::shell::{EmptyEnv, Lexer, is_space};

/// Longest physical line BuildKit accepts (bufio.MaxScanTokenSize - 1).
pub const MAX_LINE: usize = 65535;

/// Deepest ONBUILD nesting accepted (BuildKit has no limit; this guards the stack).
const MAX_ONBUILD_DEPTH: usize = 64;

/// Go's `regexp` `\s`: ASCII tab, newline, form feed, carriage return, space.
fn is_re_space(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\x0c' | '\r' | ' ')
}

/// The separator set of BuildKit's `reWhitespace` (`[\t\v\f\r ]+`).
fn is_sep(c: char) -> bool {
    matches!(c, '\t' | '\x0b' | '\x0c' | '\r' | ' ')
}

/// Go's `unicode.IsSpace` applied to a single byte taken as a Latin-1 rune.
fn is_space_byte(b: u8) -> bool {
    matches!(b, b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | b' ' | 0x85 | 0xa0)
}

fn trim_newline(s: &str) -> &str {
    s.trim_end_matches(['\r', '\n'])
}

fn is_comment(s: &str) -> bool {
    trim_newline(s)
        .trim_start_matches(is_space)
        .starts_with('#')
}

/// `# name = value` at the top of the file: (name as written, value).
fn directive_line(input: &str) -> IResult<&str, (&str, &str)> {
    let (input, _) = nchar('#')(input)?;
    let (input, _) = take_while(is_re_space)(input)?;
    let (input, name) = recognize(pair(
        satisfy(|c| c.is_ascii_alphabetic()),
        take_while(|c: char| c.is_ascii_alphanumeric()),
    ))
    .parse(input)?;
    let (input, _) = take_while(is_re_space)(input)?;
    let (rest, _) = nchar('=')(input)?;
    let trimmed = rest
        .trim_start_matches(is_re_space)
        .trim_end_matches(is_re_space);
    let value = if trimmed.is_empty() {
        // `(.+?)` must take one character: the last blank of the value.
        match rest.char_indices().last() {
            Some((i, _)) => &rest[i..],
            None => {
                return Err(nom::Err::Error(nom::error::Error::new(
                    rest,
                    nom::error::ErrorKind::Verify,
                )));
            }
        }
    } else {
        trimmed
    };
    Ok(("", (name, value)))
}

/// The `^(\d*)<<(-?)\s*([^<]*)$` heredoc opener: (fd digits, chomp, rest).
fn heredoc_opener(input: &str) -> IResult<&str, (&str, bool, &str)> {
    let (input, fd) = digit0(input)?;
    let (input, _) = tag("<<")(input)?;
    let (input, dash) = opt(nchar('-')).parse(input)?;
    let (input, _) = take_while(is_re_space)(input)?;
    let (input, rest) = take_while(|c| c != '<')(input)?;
    if !input.is_empty() {
        return Err(nom::Err::Error(nom::error::Error::new(
            input,
            nom::error::ErrorKind::Eof,
        )));
    }
    Ok(("", (fd, dash.is_some(), rest)))
}

/// Parses one heredoc opener word (`<<EOF`, `<<-'EOF'`, `3<<X`); `Ok(None)` if it is not one.
pub fn parse_heredoc(word: &str) -> Result<Option<Heredoc>, String> {
    let Ok((_, (fd, chomp, rest))) = heredoc_opener(word) else {
        return Ok(None);
    };
    if rest.is_empty() {
        return Ok(None);
    }
    let mut lex = Lexer::new('\\');
    lex.skip_unset_env = true;
    let words = lex
        .process_words(rest, &EmptyEnv)
        .map_err(|e| e.to_string())?;
    if words.len() != 1 {
        return Ok(None);
    }
    lex.raw_quotes = true;
    let raw = lex
        .process_words(rest, &EmptyEnv)
        .map_err(|e| e.to_string())?;
    if raw.len() != words.len() {
        return Err(format!(
            "internal lexing of heredoc produced inconsistent results: {rest}"
        ));
    }
    let quotes = |s: &str| s.chars().filter(|c| *c == '\'' || *c == '"').count();
    Ok(Some(Heredoc {
        name: words[0].clone(),
        file_descriptor: if fd.is_empty() {
            0
        } else {
            fd.parse().unwrap_or(u32::MAX)
        },
        expand: quotes(&words[0]) == quotes(&raw[0]),
        chomp,
        content: String::new(),
    }))
}

/// The heredoc openers of a logical line, in order (none if the line does not split into words).
pub fn heredocs_from_line(line: &str) -> Result<Vec<Heredoc>, String> {
    let mut lex = Lexer::new('\\');
    lex.raw_quotes = true;
    lex.raw_escapes = true;
    lex.skip_unset_env = true;
    let Ok(words) = lex.process_words(line, &EmptyEnv) else {
        return Ok(Vec::new());
    };
    let mut docs = Vec::new();
    for w in words {
        if let Some(h) = parse_heredoc(&w)? {
            docs.push(h);
        }
    }
    Ok(docs)
}

/// Directive-section state while reading the top of the file.
struct DirectiveState {
    directives: Directives,
    done: bool,
}

impl DirectiveState {
    /// Records `line` if it is a directive; `Ok(true)` when it was one.
    fn check(&mut self, line: &str, lineno: usize) -> Result<bool, String> {
        if self.done {
            return Ok(false);
        }
        let Ok((_, (name, value))) = directive_line(line) else {
            self.done = true;
            return Ok(false);
        };
        let name = name.to_ascii_lowercase();
        if !matches!(name.as_str(), "syntax" | "escape" | "check") {
            self.done = true;
            return Ok(false);
        }
        if self.directives.all.iter().any(|d| d.name == name) {
            return Err(format!("only one {name} parser directive can be used"));
        }
        match name.as_str() {
            "escape" => {
                if value != "`" && value != "\\" {
                    return Err(format!(
                        "invalid escape token '{value}' does not match ` or \\"
                    ));
                }
                self.directives.escape = value.chars().next().unwrap_or('\\');
            }
            "syntax" => self.directives.syntax = Some(value.to_string()),
            _ => self.directives.check = Some(value.to_string()),
        }
        self.directives.all.push(Directive {
            name,
            value: value.to_string(),
            line: lineno,
        });
        Ok(true)
    }
}

/// Removes a trailing continuation mark; returns (text, is_end_of_line).
fn trim_continuation(line: &str, escape: char) -> (&str, bool) {
    let t = line.trim_end_matches([' ', '\t']);
    if let Some(before) = t.strip_suffix(escape) {
        if before.is_empty() || !before.ends_with(escape) {
            return (before, false);
        }
    }
    (line, true)
}

/// Splits at runs of `[\t\v\f\r ]`, like Go's `reWhitespace.Split(s, -1)`.
fn split_ws(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_sep = false;
    for c in s.chars() {
        if is_sep(c) {
            if !in_sep {
                out.push(std::mem::take(&mut cur));
                in_sep = true;
            }
        } else {
            in_sep = false;
            cur.push(c);
        }
    }
    out.push(cur);
    out
}

/// Splits once at the first run of `[\t\v\f\r ]`.
fn split_ws2(s: &str) -> (&str, Option<&str>) {
    match s.find(is_sep) {
        None => (s, None),
        Some(i) => (&s[..i], Some(s[i..].trim_start_matches(is_sep))),
    }
}

/// BuildKit's `extractBuilderFlags`: leading `--` words (byte-wise), then the rest of the text.
fn extract_flags(line: &str, escape: char) -> (String, Vec<String>) {
    #[derive(PartialEq)]
    enum Phase {
        Spaces,
        Word,
        Quote,
    }
    let b = line.as_bytes();
    let esc = if escape.is_ascii() {
        escape as u8
    } else {
        b'\\'
    };
    let rest = |pos: usize| String::from_utf8_lossy(&b[pos..]).into_owned();
    let mut words = Vec::new();
    let mut phase = Phase::Spaces;
    let mut word = String::new();
    let mut quote = 0u8;
    let mut blank_ok = false;
    let mut pos = 0;
    while pos <= b.len() {
        let mut ch = if pos < b.len() { b[pos] } else { 0 };
        if phase == Phase::Spaces {
            if pos == b.len() {
                break;
            }
            if is_space_byte(ch) {
                pos += 1;
                continue;
            }
            if ch != b'-' || pos + 1 == b.len() || b[pos + 1] != b'-' {
                return (rest(pos), words);
            }
            phase = Phase::Word;
        }
        if pos == b.len() {
            if word != "--" && (blank_ok || !word.is_empty()) {
                words.push(word);
            }
            break;
        }
        if phase == Phase::Word {
            if is_space_byte(ch) {
                phase = Phase::Spaces;
                if word == "--" {
                    return (rest(pos), words);
                }
                if blank_ok || !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
                word.clear();
                blank_ok = false;
                pos += 1;
                continue;
            }
            if ch == b'\'' || ch == b'"' {
                quote = ch;
                blank_ok = true;
                phase = Phase::Quote;
                pos += 1;
                continue;
            }
            if ch == esc {
                if pos + 1 == b.len() {
                    pos += 1;
                    continue;
                }
                pos += 1;
                ch = b[pos];
            }
            word.push(ch as char);
            pos += 1;
            continue;
        }
        // Phase::Quote
        if ch == quote {
            phase = Phase::Word;
            pos += 1;
            continue;
        }
        if ch == esc {
            if pos + 1 == b.len() {
                phase = Phase::Word;
                pos += 1;
                continue;
            }
            pos += 1;
            ch = b[pos];
        }
        word.push(ch as char);
        pos += 1;
    }
    (String::new(), words)
}

/// BuildKit's `parseWords` for ENV/LABEL/ARG: quotes and escapes kept raw.
fn parse_words(rest: &str, escape: char) -> Vec<String> {
    #[derive(PartialEq)]
    enum Phase {
        Spaces,
        Word,
        Quote,
    }
    let chars: Vec<char> = rest.chars().collect();
    let mut words = Vec::new();
    let mut phase = Phase::Spaces;
    let mut word = String::new();
    let mut quote = '\0';
    let mut blank_ok = false;
    let mut pos = 0;
    while pos <= chars.len() {
        let mut ch = chars.get(pos).copied().unwrap_or('\0');
        if phase == Phase::Spaces {
            if pos == chars.len() {
                break;
            }
            if is_space(ch) {
                pos += 1;
                continue;
            }
            phase = Phase::Word;
        }
        if pos == chars.len() {
            if blank_ok || !word.is_empty() {
                words.push(word);
            }
            break;
        }
        if phase == Phase::Word {
            if is_space(ch) {
                phase = Phase::Spaces;
                if blank_ok || !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
                blank_ok = false;
                pos += 1;
                continue;
            }
            if ch == '\'' || ch == '"' {
                quote = ch;
                blank_ok = true;
                phase = Phase::Quote;
            }
            if ch == escape {
                if pos + 1 == chars.len() {
                    pos += 1;
                    continue;
                }
                word.push(ch);
                pos += 1;
                ch = chars[pos];
            }
            word.push(ch);
            pos += 1;
            continue;
        }
        // Phase::Quote
        if ch == quote {
            phase = Phase::Word;
        }
        if ch == escape && quote != '\'' {
            if pos + 1 == chars.len() {
                phase = Phase::Word;
                pos += 1;
                continue;
            }
            pos += 1;
            word.push(ch);
            ch = chars[pos];
        }
        word.push(ch);
        pos += 1;
    }
    words
}

const NOT_STRINGS: &str = "when using JSON array syntax, arrays must be comprised of strings only";

/// A JSON array of strings: `Ok(Some)` if `rest` is one, `Ok(None)` if it is not JSON, `Err` if it is
/// a JSON array holding something other than strings.
fn parse_json(rest: &str) -> Result<Option<Vec<String>>, String> {
    let rest = rest.trim_start_matches(is_space);
    if !rest.starts_with('[') {
        return Ok(None);
    }
    match serde_json::from_str::<Vec<serde_json::Value>>(rest) {
        Err(_) => Ok(None),
        Ok(values) => values
            .into_iter()
            .map(|v| match v {
                serde_json::Value::String(s) => Ok(s),
                _ => Err(NOT_STRINGS.to_string()),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
    }
}

/// RUN/CMD/ENTRYPOINT/SHELL: JSON array or one string. Returns (args, json).
fn parse_maybe_json(rest: &str) -> Result<(Vec<String>, bool), String> {
    if rest.is_empty() {
        return Ok((Vec::new(), false));
    }
    match parse_json(rest)? {
        Some(v) => Ok((v, true)),
        None => Ok((vec![rest.to_string()], false)),
    }
}

/// ADD/COPY/VOLUME: JSON array or white-space separated list.
fn parse_maybe_json_to_list(rest: &str) -> Result<(Vec<String>, bool), String> {
    match parse_json(rest)? {
        Some(v) => Ok((v, true)),
        None => Ok((parse_strings_ws(rest), false)),
    }
}

fn parse_strings_ws(rest: &str) -> Vec<String> {
    if rest.is_empty() {
        Vec::new()
    } else {
        split_ws(rest)
    }
}

/// ENV/LABEL: `k=v ...` (name, value, "=") or legacy `k v` (name, value, "").
fn parse_name_val(rest: &str, key: &str, escape: char) -> Result<Vec<String>, String> {
    let words = parse_words(rest, escape);
    if words.is_empty() {
        return Ok(Vec::new());
    }
    if !words[0].contains('=') {
        let (name, value) = split_ws2(rest);
        return match value {
            Some(v) => Ok(vec![name.to_string(), v.to_string(), String::new()]),
            None => Err(format!("{key} must have two arguments")),
        };
    }
    let mut out = Vec::new();
    for w in words {
        let Some((k, v)) = w.split_once('=') else {
            return Err(format!(
                "Syntax error - can't find = in {}. Must be of the form: name=value",
                crate::dump::go_quote(&w)
            ));
        };
        out.extend([k.to_string(), v.to_string(), "=".to_string()]);
    }
    Ok(out)
}

/// HEALTHCHECK: type word, then the command as RUN would parse it.
fn parse_health(rest: &str) -> Result<(Vec<String>, bool), String> {
    let b = rest.as_bytes();
    let sep = b.iter().position(|c| is_space_byte(*c)).unwrap_or(b.len());
    if sep == 0 {
        return Ok((Vec::new(), false));
    }
    let next = b[sep..]
        .iter()
        .position(|c| !is_space_byte(*c))
        .map_or(b.len(), |p| sep + p);
    let typ = String::from_utf8_lossy(&b[..sep]).into_owned();
    let cmd = String::from_utf8_lossy(&b[next..]).into_owned();
    let (mut args, json) = parse_maybe_json(&cmd)?;
    args.insert(0, typ);
    Ok((args, json))
}

/// Builds a node from a logical line: keyword, flags, and arguments by the keyword's rule.
fn node_from_line(line: &str, escape: char, depth: usize) -> Result<Node, String> {
    let trimmed = line.trim();
    let (keyword, rest) = split_ws2(trimmed);
    let (args_text, flags) = match rest {
        Some(r) => {
            let (a, f) = extract_flags(r, escape);
            (a.trim().to_string(), f)
        }
        None => (String::new(), Vec::new()),
    };
    let mut node = Node {
        keyword: keyword.to_string(),
        flags,
        original: line.to_string(),
        ..Node::default()
    };
    let rest = args_text.as_str();
    match keyword.to_ascii_lowercase().as_str() {
        "run" | "cmd" | "entrypoint" | "shell" => {
            (node.args, node.json) = parse_maybe_json(rest)?;
        }
        "add" | "copy" | "volume" => {
            (node.args, node.json) = parse_maybe_json_to_list(rest)?;
        }
        "from" | "expose" => node.args = parse_strings_ws(rest),
        "maintainer" | "user" | "workdir" | "stopsignal" => {
            if !rest.is_empty() {
                node.args = vec![rest.to_string()];
            }
        }
        "arg" => node.args = parse_words(rest, escape),
        "env" => node.args = parse_name_val(rest, "ENV", escape)?,
        "label" => node.args = parse_name_val(rest, "LABEL", escape)?,
        "healthcheck" => (node.args, node.json) = parse_health(rest)?,
        "onbuild" => {
            if !rest.is_empty() {
                if depth >= MAX_ONBUILD_DEPTH {
                    return Err("ONBUILD nested too deeply".into());
                }
                node.sub = Some(Box::new(node_from_line(rest, escape, depth + 1)?));
            }
        }
        _ => node.args = vec![String::new()],
    }
    Ok(node)
}

/// Whether RUN/COPY/ADD (possibly inside ONBUILD) in shell form: heredocs are looked for.
fn can_contain_heredoc(node: &Node) -> bool {
    let n = match (&node.sub, node.name().as_str()) {
        (Some(sub), "onbuild") => sub,
        _ => node,
    };
    matches!(n.name().as_str(), "run" | "copy" | "add") && !n.json
}

fn set_lines(node: &mut Node, start: usize, end: usize) {
    node.start_line = start;
    node.end_line = end;
    if let Some(sub) = node.sub.as_deref_mut() {
        set_lines(sub, start, end);
    }
}

/// Splits bytes into physical lines, each keeping its `\n`; rejects lines of 64 KiB or more.
fn physical_lines(bytes: &[u8], file: &str) -> Result<Vec<String>, ParseError> {
    let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    let mut lines = Vec::new();
    for (i, chunk) in bytes.split_inclusive(|b| *b == b'\n').enumerate() {
        let content = chunk.strip_suffix(b"\n").unwrap_or(chunk);
        if content.len() > MAX_LINE {
            return Err(ParseError::new(
                file,
                i + 1,
                i + 1,
                format!("dockerfile line greater than max allowed size of {MAX_LINE}"),
            ));
        }
        lines.push(String::from_utf8_lossy(chunk).into_owned());
    }
    Ok(lines)
}

/// Parses a Dockerfile's bytes into an [`Ast`]; `file` names it in errors.
pub fn parse(bytes: &[u8], file: &str) -> Result<Ast, ParseError> {
    let lines = physical_lines(bytes, file)?;
    let mut d = DirectiveState {
        directives: Directives::default(),
        done: false,
    };
    let mut children: Vec<Node> = Vec::new();
    let mut warnings = Vec::new();
    let mut comments: Vec<String> = Vec::new();
    let mut current = 0usize;
    let mut i = 0usize;
    let err = |start: usize, end: usize, msg: String| ParseError::new(file, start, end, msg);

    while i < lines.len() {
        let raw = lines[i].as_str();
        i += 1;
        if is_comment(raw) {
            let t = trim_newline(raw).trim_start_matches(is_space);
            let c = t[1..].trim();
            if c.is_empty() {
                comments.clear();
            } else {
                comments.push(c.to_string());
            }
        }
        let token = trim_newline(raw).trim_start_matches(is_space);
        if d.check(token, current + 1)
            .map_err(|m| err(current + 1, current + 1, m))?
        {
            comments.pop();
        }
        let token = if is_comment(token) { "" } else { token };
        current += 1;
        let start = current;
        let escape = d.directives.escape;
        let (first, mut end_of_line) = trim_continuation(token, escape);
        if end_of_line && first.is_empty() {
            continue;
        }
        let mut line = first.to_string();
        let mut empty_continuation = false;
        while !end_of_line && i < lines.len() {
            let raw = lines[i].as_str();
            i += 1;
            let token = trim_newline(raw);
            d.check(token, current + 1)
                .map_err(|m| err(current + 1, current + 1, m))?;
            current += 1;
            if is_comment(raw) {
                continue;
            }
            if token.trim_start_matches(is_space).is_empty() {
                empty_continuation = true;
                continue;
            }
            let (part, eol) = trim_continuation(token, d.directives.escape);
            end_of_line = eol;
            line.push_str(part);
        }
        if empty_continuation {
            warnings.push(Warning {
                message: format!("Empty continuation line found in: {line}"),
                start_line: start,
                end_line: current,
            });
        }
        let mut child =
            node_from_line(&line, d.directives.escape, 0).map_err(|m| err(start, current, m))?;
        if can_contain_heredoc(&child) && line.contains("<<") {
            let docs = heredocs_from_line(&line).map_err(|m| err(start, current, m))?;
            for mut doc in docs {
                let mut terminated = false;
                while i < lines.len() {
                    let raw = lines[i].as_str();
                    i += 1;
                    current += 1;
                    let mut candidate = trim_newline(raw);
                    if doc.chomp {
                        candidate = candidate.trim_start_matches('\t');
                    }
                    if candidate == doc.name {
                        terminated = true;
                        break;
                    }
                    doc.content.push_str(raw);
                }
                if !terminated {
                    return Err(err(start, current, "unterminated heredoc".into()));
                }
                child.heredocs.push(doc);
            }
        }
        set_lines(&mut child, start, current);
        child.comments = std::mem::take(&mut comments);
        children.push(child);
    }
    if children.is_empty() {
        return Err(err(current, current, "file with no instructions".into()));
    }
    Ok(Ast {
        file: file.to_string(),
        directives: d.directives,
        start_line: children[0].start_line,
        end_line: children[children.len() - 1].end_line,
        children,
        warnings,
    })
}

/// Parses a single instruction line (as for ONBUILD triggers); no heredocs, no directives.
pub fn parse_line(line: &str, escape: char) -> Result<Node, String> {
    node_from_line(line, escape, 0)
}
