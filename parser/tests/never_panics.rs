//! Property tests: no input makes the parser, the instruction layer, the dump or the shell lexer panic.

use hoist_parser::shell::{EmptyEnv, Lexer};
use proptest::prelude::*;

/// Runs every layer on `bytes`; only panics matter, errors are fine.
fn exercise(bytes: &[u8]) {
    if let Ok(ast) = hoist_parser::parse(bytes, "fuzz") {
        let _ = hoist_parser::dump(&ast);
        let _ = serde_json::to_string(&ast).expect("AST serializes");
        if let Ok(df) = hoist_parser::parse_dockerfile(&ast) {
            for c in df.stages.iter().flat_map(|s| &s.commands) {
                if let hoist_parser::instructions::Instruction::Run { mounts, .. } = &c.instruction
                {
                    let id = |s: &str| Ok(s.to_string());
                    for m in mounts {
                        let _ = hoist_parser::instructions::parse_mount(m, Some(&id));
                    }
                }
            }
        }
    }
    let text = String::from_utf8_lossy(bytes);
    let env = [("A", "a b"), ("EMPTY", "")];
    for esc in ['\\', '`'] {
        let mut lex = Lexer::new(esc);
        let _ = lex.process_word(&text, &env);
        let _ = lex.process_words(&text, &env);
        lex.raw_quotes = true;
        lex.raw_escapes = true;
        lex.skip_unset_env = true;
        let _ = lex.process_words(&text, &EmptyEnv);
        lex.skip_process_quotes = true;
        let _ = lex.process_word(&text, &env);
    }
}

/// Fragments that reach the interesting code paths far more often than random bytes.
fn token() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("FROM ".to_string()),
        Just("RUN ".to_string()),
        Just("COPY ".to_string()),
        Just("ONBUILD ".to_string()),
        Just("ENV ".to_string()),
        Just("ARG ".to_string()),
        Just("HEALTHCHECK ".to_string()),
        Just("LABEL ".to_string()),
        Just("# escape=`\n".to_string()),
        Just("# syntax=x\n".to_string()),
        Just("\n".to_string()),
        Just("\r\n".to_string()),
        Just("\\\n".to_string()),
        Just("`\n".to_string()),
        Just("<<EOF".to_string()),
        Just("<<-'E F'".to_string()),
        Just("EOF\n".to_string()),
        Just("--mount=type=cache,target=/x ".to_string()),
        Just("--flag=\"a b\" ".to_string()),
        Just("[\"a\", \"b\"]".to_string()),
        Just("[1]".to_string()),
        Just("${A:-x}".to_string()),
        Just("${A/a/b}".to_string()),
        Just("${A%%*}".to_string()),
        Just("$".to_string()),
        Just("${".to_string()),
        Just("'".to_string()),
        Just("\"".to_string()),
        Just("=".to_string()),
        Just(" ".to_string()),
        Just("\t".to_string()),
        Just("\u{a0}\u{85}é한".to_string()),
        "[a-zA-Z0-9 ./-]{0,8}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        exercise(&bytes);
    }

    #[test]
    fn dockerfile_like_text(parts in proptest::collection::vec(token(), 0..40)) {
        exercise(parts.concat().as_bytes());
    }
}

#[test]
fn deep_onbuild_nesting_does_not_overflow() {
    let src = format!("FROM x\n{}RUN y\n", "ONBUILD ".repeat(8000));
    assert!(hoist_parser::parse(src.as_bytes(), "deep").is_err());
}

#[test]
fn deeply_nested_substitution_is_an_error_not_a_crash() {
    let word = format!("{}{}", "${a:-".repeat(10_000), "}".repeat(10_000));
    let e = Lexer::new('\\').process_word(&word, &EmptyEnv).unwrap_err();
    assert!(e.message.contains("nested too deeply"), "{e}");
    let src = format!("FROM x\nRUN <<EOF {word}\nEOF\n");
    // The heredoc scan fails to split the line, so it is a plain RUN; no crash either way.
    assert!(hoist_parser::parse(src.as_bytes(), "deep").is_ok());
    let ok = format!("{}x{}", "${a:-".repeat(50), "}".repeat(50));
    assert_eq!(Lexer::new('\\').process_word(&ok, &EmptyEnv).unwrap(), "x");
}
