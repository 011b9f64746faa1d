//! Shell-word expansion as BuildKit's shell lexer does it: quotes, escapes, `$V`, `${V}`, `${V:-w}`,
//! `${V-w}`, `${V:+w}`, `${V+w}`, `${V:?m}`, `${V?m}`, `${V#p}`, `${V##p}`, `${V%p}`, `${V%%p}`,
//! `${V/p/r}`, `${V//p/r}`, positional and special parameters, and word splitting.
//!
//! The builder calls [`Lexer::process_word`] / [`Lexer::process_words`] with a step's environment.
//!
//! Owns: expansion of one word against an [`Env`]. Must not touch: where the values come from.

mod env;
mod pattern;
mod word;

use std::collections::BTreeSet;

pub use env::{EmptyEnv, Env};

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
        word::expand(*self, word, env)
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

/// The longest expansion of one word, in bytes. BuildKit has no limit, so a chain of ARGs that
/// doubles at each step (`ARG B=$A$A`, ...) eats all memory; `hoist serve` builds untrusted files.
/// 4 MiB is 32 times what Linux accepts for one exec argument or environment string
/// (MAX_ARG_STRLEN, 128 KiB), so no RUN can use a longer value anyway, and leaves room for large
/// expanded COPY heredocs.
pub const MAX_EXPANSION: usize = 4 << 20;

fn too_long() -> String {
    format!(
        "expansion exceeds {} MiB (the limit on one expanded word)",
        MAX_EXPANSION >> 20
    )
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
