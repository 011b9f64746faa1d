//! Expansion of instruction values with the step's environment, as BuildKit does after parsing.

use crate::shell::{Env, Lexer, ShellError};

/// Expands one word (quotes removed) with `env`, as BuildKit does for ENV, COPY paths, WORKDIR...
pub fn expand<E: Env + ?Sized>(word: &str, env: &E, escape: char) -> Result<String, ShellError> {
    Lexer::new(escape).process_word(word, env)
}

/// Expands and word-splits (EXPOSE).
pub fn expand_words<E: Env + ?Sized>(
    word: &str,
    env: &E,
    escape: char,
) -> Result<Vec<String>, ShellError> {
    Lexer::new(escape).process_words(word, env)
}

/// Expands a COPY/ADD heredoc body: variables only, quotes are ordinary characters.
pub fn expand_heredoc<E: Env + ?Sized>(
    body: &str,
    env: &E,
    escape: char,
) -> Result<String, ShellError> {
    let mut l = Lexer::new(escape);
    l.skip_process_quotes = true;
    l.process_word(body, env)
}
