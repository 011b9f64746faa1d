//! The glob patterns of `${V#p}`, `${V%p}` and `${V/p/r}`: `*`, `?` and `\\` escapes, matched
//! leftmost-longest with a bound on the work one substitution may do.

use super::{MAX_EXPANSION, too_long};

type Res<T> = Result<T, String>;

/// How many pattern-match cells one `${V/p/r}` may compute (a fraction of a second): a long value
/// and a pattern with `*` cost quadratic time.
const MAX_PATTERN_WORK: usize = 50_000_000;

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
pub(super) struct Pattern {
    toks: Vec<Tok>,
}

impl Pattern {
    /// Parses a pattern; `\}` and `\/` are `}` and `/`; `\` may only escape `*`, `?`, `\`.
    pub(super) fn parse(src: &str, _greedy: bool) -> Result<Pattern, String> {
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

    pub(super) fn trim_prefix(&self, value: &str, greedy: bool) -> String {
        let s: Vec<char> = value.chars().collect();
        match self.prefix_len(&s, greedy) {
            Some(n) => s[n..].iter().collect(),
            None => value.to_string(),
        }
    }

    pub(super) fn trim_suffix(&self, value: &str, greedy: bool) -> String {
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

    pub(super) fn replace(&self, value: &str, replacement: &str, all: bool) -> Res<String> {
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
