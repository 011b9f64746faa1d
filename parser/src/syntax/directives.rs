//! Parser directives at the top of a Dockerfile (`# syntax=`, `# escape=`, `# check=`).

use nom::{
    IResult, Parser,
    bytes::complete::take_while,
    character::complete::{char as nchar, satisfy},
    combinator::recognize,
    sequence::pair,
};

use super::is_re_space;
use crate::ast::{Directive, Directives};

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

/// Directive-section state while reading the top of the file.
#[derive(Default)]
pub(super) struct DirectiveState {
    /// The directives read so far.
    pub(super) directives: Directives,
    /// Past the directive section: later `# x=y` lines are comments.
    done: bool,
}

impl DirectiveState {
    /// Records `line` if it is a directive; `Ok(true)` when it was one.
    pub(super) fn check(&mut self, line: &str, lineno: usize) -> Result<bool, String> {
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
