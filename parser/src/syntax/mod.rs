//! The syntax layer: bytes to [`Ast`] exactly as BuildKit's `parser.Parse` does it
//! (directives, BOM, CRLF, continuations, comments, flag extraction, per-instruction argument rules,
//! heredocs). See `testdata/conformance/FORMAT.md`.
//!
//! Owns: bytes to [`Ast`]. Must not touch: what instructions mean (see [`crate::instructions`]).

mod args;
mod directives;
mod heredoc;

use crate::ast::{Ast, Node, Warning};
use crate::error::ParseError;
use crate::shell::is_space;

use args::{
    extract_flags, parse_health, parse_maybe_json, parse_maybe_json_to_list, parse_name_val,
    parse_strings_ws, parse_words, split_ws2,
};
use directives::DirectiveState;
pub use heredoc::{heredocs_from_line, parse_heredoc};

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
    let mut d = DirectiveState::default();
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
