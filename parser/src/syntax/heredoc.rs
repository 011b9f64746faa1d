//! Heredoc openers (`<<EOF`, `<<-"EOF"`, `3<<X`) in instruction words.

use nom::{
    IResult, Parser,
    bytes::complete::{tag, take_while},
    character::complete::{char as nchar, digit0},
    combinator::opt,
};

use super::is_re_space;
use crate::ast::Heredoc;
use crate::shell::{EmptyEnv, Lexer};

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
