//! Expansion is bounded: one expanded word stops at `MAX_EXPANSION` with a clear error, and
//! pattern substitutions on long values stay linear or stop, instead of eating memory or time.

use std::time::{Duration, Instant};

use hoist_parser::shell::{Lexer, MAX_EXPANSION};

fn env(pairs: &[(&str, String)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

#[test]
fn a_word_longer_than_the_limit_is_an_error() {
    let half = "x".repeat(MAX_EXPANSION / 2 + 1);
    let vars = env(&[("A", half.clone())]);
    let lex = Lexer::new('\\');
    // At the limit: fine.
    assert_eq!(
        lex.process_word("$A", &vars).unwrap().len(),
        MAX_EXPANSION / 2 + 1
    );
    for word in ["$A$A", "${A}${A}", "\"$A$A\"", "${B:-$A$A}", "${A/x/$A}"] {
        let e = lex.process_word(word, &vars).unwrap_err();
        assert!(
            e.to_string()
                .contains("expansion exceeds 4 MiB (the limit on one expanded word)"),
            "{word}: {e}"
        );
    }
    // A doubling chain stops within a few levels past the limit.
    let mut vars = env(&[("A0", "xx".into())]);
    let mut failed_at = None;
    for i in 1..40 {
        match lex.process_word(&format!("$A{p}$A{p}", p = i - 1), &vars) {
            Ok(v) => vars.push((format!("A{i}"), v)),
            Err(_) => {
                failed_at = Some(i);
                break;
            }
        }
    }
    assert_eq!(failed_at, Some(22), "2^23 bytes is the first over 4 MiB");
}

#[test]
fn pattern_substitutions_on_long_values_are_fast_or_refused() {
    let long = "a".repeat(1 << 18);
    let vars = env(&[("A", long.clone())]);
    let lex = Lexer::new('\\');
    let start = Instant::now();
    // Trims are one pass over the value.
    assert_eq!(lex.process_word("${A%%a*}", &vars).unwrap(), "");
    assert_eq!(
        lex.process_word("${A#*a}", &vars).unwrap().len(),
        long.len() - 1
    );
    assert_eq!(lex.process_word("${A%x*}", &vars).unwrap(), long);
    // A literal pattern only tries the places it can start.
    assert_eq!(lex.process_word("${A//x/y}", &vars).unwrap(), long);
    assert_eq!(
        lex.process_word("${A//aa/b}", &vars).unwrap(),
        "b".repeat(1 << 17)
    );
    // A leading `*` that fails at one start fails on the rest of its line.
    assert_eq!(lex.process_word("${A//*x/y}", &vars).unwrap(), long);
    // Quadratic work is refused: `?*x` tries every start, each over the rest of the value.
    let e = lex.process_word("${A//?*x/y}", &vars).unwrap_err();
    assert!(
        e.to_string().contains("pattern substitution too costly"),
        "{e}"
    );
    assert!(
        start.elapsed() < Duration::from_secs(60),
        "took {:?}",
        start.elapsed()
    );
    // Small values keep shell semantics.
    let vars = env(&[("V", "a.b.c".into())]);
    assert_eq!(lex.process_word("${V%.*}", &vars).unwrap(), "a.b");
    assert_eq!(lex.process_word("${V%%.*}", &vars).unwrap(), "a");
    assert_eq!(lex.process_word("${V#*.}", &vars).unwrap(), "b.c");
    assert_eq!(lex.process_word("${V##*.}", &vars).unwrap(), "c");
    assert_eq!(lex.process_word("${V//./-}", &vars).unwrap(), "a-b-c");
    assert_eq!(lex.process_word("${V/*./X}", &vars).unwrap(), "Xc");
}
