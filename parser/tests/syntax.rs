//! Syntax-layer behaviour the conformance data does not cover: heredocs, directives, line numbers,
//! BOM, CRLF, continuation edge cases, and error locations.

use hoist_parser::{Node, dump, parse};

fn p(src: &str) -> hoist_parser::Ast {
    parse(src.as_bytes(), "Dockerfile").unwrap_or_else(|e| panic!("{e}"))
}

fn lines(ast: &hoist_parser::Ast) -> Vec<(usize, usize)> {
    ast.children
        .iter()
        .map(|n| (n.start_line, n.end_line))
        .collect()
}

fn only(ast: &hoist_parser::Ast, i: usize) -> &Node {
    &ast.children[i]
}

#[test]
fn heredoc_empty_and_fd() {
    let ast = p("FROM busybox\nRUN <<EMPTY\nEMPTY\nRUN 3<<EMPTY2\nEMPTY2\n");
    let h = &only(&ast, 1).heredocs[0];
    assert_eq!(
        (h.name.as_str(), h.file_descriptor, h.expand, h.chomp),
        ("EMPTY", 0, true, false)
    );
    assert_eq!(h.content, "");
    let h = &only(&ast, 2).heredocs[0];
    assert_eq!((h.name.as_str(), h.file_descriptor), ("EMPTY2", 3));
    assert_eq!(lines(&ast), [(1, 1), (2, 3), (4, 5)]);
    assert_eq!(
        dump(&ast),
        "(from \"busybox\")\n(run \"<<EMPTY\")\n(run \"3<<EMPTY2\")"
    );
}

#[test]
fn heredoc_chomp_keeps_tabs_in_content() {
    let ast = p("FROM x\nRUN <<-UNINDENT2\n\tbaz\n\tquux\n\tUNINDENT2\nRUN true\n");
    let h = &only(&ast, 1).heredocs[0];
    assert!(h.chomp);
    assert_eq!(h.content, "\tbaz\n\tquux\n");
    assert_eq!(h.body(), "baz\nquux\n");
    assert_eq!(lines(&ast), [(1, 1), (2, 5), (6, 6)]);
}

#[test]
fn several_heredocs_on_one_line_in_order() {
    let ast = p("FROM x\nCOPY <<X <<Y /dest\nY\nX\nX\nY\n");
    let n = only(&ast, 1);
    assert_eq!(n.args, ["<<X", "<<Y", "/dest"]);
    assert_eq!(n.heredocs.len(), 2);
    assert_eq!(
        (n.heredocs[0].name.as_str(), n.heredocs[0].content.as_str()),
        ("X", "Y\n")
    );
    assert_eq!(
        (n.heredocs[1].name.as_str(), n.heredocs[1].content.as_str()),
        ("Y", "X\n")
    );
    assert_eq!((n.start_line, n.end_line), (2, 6));
}

#[test]
fn heredoc_quoting_controls_expansion() {
    let cases = [
        ("RUN <<'EOF'", "EOF", false),
        ("RUN <<\"EOF\"", "EOF", false),
        ("RUN <<eo'f'", "eof", false),
        ("RUN <<eo\\'f", "eo'f", true),
        ("RUN <<'one two'", "one two", false),
        ("RUN <<$EOF", "$EOF", true),
        ("RUN <<  EOF", "EOF", true),
        ("RUN <<  EOF  > foo", "EOF", true),
    ];
    for (line, name, expand) in cases {
        let src = format!("FROM x\n{line}\nbody $X\n{name}\n");
        let ast = p(&src);
        let h = &only(&ast, 1).heredocs;
        assert_eq!(h.len(), 1, "{line}");
        assert_eq!((h[0].name.as_str(), h[0].expand), (name, expand), "{line}");
        assert_eq!(h[0].content, "body $X\n");
    }
}

#[test]
fn no_heredoc_for_json_user_or_quoted_word() {
    let ast = p("FROM x\nRUN [\"<<EOF\"]\nUSER <<INVALID\nINVALID\nRUN echo \"<<EOF\"\n");
    assert!(ast.children.iter().all(|n| n.heredocs.is_empty()));
    // The INVALID line is an instruction of its own (unknown keyword), as in BuildKit.
    assert_eq!(only(&ast, 3).keyword, "INVALID");
    assert_eq!(ast.children.len(), 5);
    // `<<`, `<<-`, `<EOF`, `<<<EOF` are not openers.
    let ast = p("FROM x\nRUN cat << <<- <EOF <<<EOF\n");
    assert!(only(&ast, 1).heredocs.is_empty());
}

#[test]
fn heredoc_body_is_plain_content_and_crlf_terminator() {
    let ast = p("FROM x\r\nRUN <<EOF\r\n# not a comment \\\r\n\r\nEOF\r\nRUN b\r\n");
    let h = &only(&ast, 1).heredocs[0];
    assert_eq!(h.content, "# not a comment \\\r\n\r\n");
    assert_eq!(lines(&ast), [(1, 1), (2, 5), (6, 6)]);
}

#[test]
fn heredoc_in_onbuild_and_python_pipe() {
    let ast = p("FROM x\nONBUILD RUN <<EOF\necho hi\nEOF\nRUN <<EOF python3\nprint(1)\nEOF\n");
    assert_eq!(only(&ast, 1).heredocs[0].content, "echo hi\n");
    assert_eq!(dump(&ast).lines().nth(1), Some("(onbuild (run \"<<EOF\"))"));
    assert_eq!(only(&ast, 2).args, ["<<EOF python3"]);
}

#[test]
fn unterminated_heredoc_is_an_error_with_lines() {
    let e = parse(b"FROM x\nRUN <<EOF\necho\n", "df").unwrap_err();
    assert_eq!(e.message, "unterminated heredoc");
    assert_eq!((e.start_line, e.end_line), (2, 3));
    assert_eq!(e.to_string(), "df:2: unterminated heredoc");
}

#[test]
fn unbalanced_quote_means_no_heredoc() {
    let ast = p("FROM x\nRUN <<'EOF\nEOF\n");
    assert!(only(&ast, 1).heredocs.is_empty());
    assert_eq!(ast.children.len(), 3);
}

#[test]
fn directives_are_read_only_at_the_top() {
    let ast =
        p("# syntax=docker/dockerfile:1\n# check=skip=all\n#escape=`\nFROM x\nRUN a `\n  b\n");
    assert_eq!(ast.directives.escape, '`');
    assert_eq!(
        ast.directives.syntax.as_deref(),
        Some("docker/dockerfile:1")
    );
    assert_eq!(ast.directives.check.as_deref(), Some("skip=all"));
    assert_eq!(ast.directives.all.len(), 3);
    assert_eq!(only(&ast, 1).args, ["a   b"]);
    // After a plain comment, `# escape` is just a comment.
    let ast = p("# hello\n# escape=`\nFROM x\nRUN a \\\n b\n");
    assert_eq!(ast.directives.escape, '\\');
    assert_eq!(only(&ast, 1).args, ["a  b"]);
    // Unknown directive name ends the section.
    let ast = p("# foo=bar\n# escape=`\nFROM x\n");
    assert_eq!(ast.directives.escape, '\\');
    // Shebang ends the section too.
    let ast = p("#!/usr/bin/env hoist\n# escape=`\nFROM x\n");
    assert_eq!(ast.directives.escape, '\\');
    // Directive names are case-insensitive; blanks around `=` allowed.
    let ast = p("#  ESCAPE = `  \nFROM x\n");
    assert_eq!(ast.directives.escape, '`');
}

#[test]
fn directive_errors() {
    let e = parse(b"# escape=`\n# escape=\\\nFROM x\n", "df").unwrap_err();
    assert_eq!(e.message, "only one escape parser directive can be used");
    assert_eq!(e.start_line, 2);
    let e = parse(b"# escape=x\nFROM x\n", "df").unwrap_err();
    assert_eq!(e.message, "invalid escape token 'x' does not match ` or \\");
    let e = parse(b"# syntax=a\n# syntax=b\nFROM x\n", "df").unwrap_err();
    assert_eq!(e.message, "only one syntax parser directive can be used");
}

#[test]
fn bom_crlf_and_eof_continuation() {
    let ast = p("\u{feff}FROM x\r\nRUN a \\\r\n  b\r\nRUN c \\");
    assert_eq!(dump(&ast), "(from \"x\")\n(run \"a   b\")\n(run \"c\")");
    assert_eq!(lines(&ast), [(1, 1), (2, 3), (4, 4)]);
}

#[test]
fn comments_and_blank_lines_inside_continuations() {
    let ast = p("FROM x\nRUN a \\\n# comment\n\n   \n    b\nRUN c\n");
    assert_eq!(only(&ast, 1).args, ["a     b"]);
    assert_eq!(lines(&ast), [(1, 1), (2, 6), (7, 7)]);
    assert_eq!(ast.warnings.len(), 1);
    assert!(
        ast.warnings[0]
            .message
            .starts_with("Empty continuation line found in: RUN a")
    );
    assert_eq!(only(&ast, 0).comments.len(), 0);
}

#[test]
fn comments_before_an_instruction_are_kept() {
    let ast = p("# syntax=x\n# build base\nFROM x\n# say hi\n# twice\nRUN hi\n");
    assert_eq!(only(&ast, 0).comments, ["build base"]);
    assert_eq!(only(&ast, 1).comments, ["say hi", "twice"]);
}

#[test]
fn json_errors_and_forms() {
    let e = parse(b"FROM x\nRUN [\"a\", 1]\n", "df").unwrap_err();
    assert_eq!(
        e.message,
        "when using JSON array syntax, arrays must be comprised of strings only"
    );
    assert_eq!(e.start_line, 2);
    let ast = p("FROM x\nCMD []\nENTRYPOINT [\"a\\u0000\\/b\"]\nCMD ['a']\n");
    assert!(only(&ast, 1).json && only(&ast, 1).args.is_empty());
    assert_eq!(only(&ast, 2).args, ["a\0/b"]);
    assert!(!only(&ast, 3).json);
}

#[test]
fn env_label_errors() {
    let e = parse(b"FROM x\nLABEL a=b c\n", "df").unwrap_err();
    assert_eq!(
        e.message,
        "Syntax error - can't find = in \"c\". Must be of the form: name=value"
    );
    let e = parse(b"FROM x\nLABEL single\n", "df").unwrap_err();
    assert_eq!(e.message, "LABEL must have two arguments");
}

#[test]
fn long_line_is_rejected() {
    let mut src = b"FROM x\nRUN ".to_vec();
    src.extend(std::iter::repeat_n(b'a', 70_000));
    let e = parse(&src, "df").unwrap_err();
    assert_eq!(
        e.message,
        "dockerfile line greater than max allowed size of 65535"
    );
    assert_eq!(e.start_line, 2);
}

#[test]
fn healthcheck_and_onbuild_shapes() {
    let ast = p(
        "FROM x\nHEALTHCHECK --interval=5s CMD [\"curl\", \"-f\"]\nHEALTHCHECK NONE\nONBUILD --x COPY --from=a b c\n",
    );
    assert_eq!(only(&ast, 1).args, ["CMD", "curl", "-f"]);
    assert_eq!(only(&ast, 1).flags, ["--interval=5s"]);
    assert_eq!(
        dump(&ast).lines().nth(3),
        Some("(onbuild [\"--x\"] (copy [\"--from=a\"] \"b\" \"c\"))")
    );
}

#[test]
fn flag_extraction_quotes_and_escapes() {
    let ast =
        p("FROM x\nRUN --mount=type=secret,id=\"a b\" --network=none echo hi\nCOPY --\"\" a b\n");
    assert_eq!(
        only(&ast, 1).flags,
        ["--mount=type=secret,id=a b", "--network=none"]
    );
    assert_eq!(only(&ast, 1).args, ["echo hi"]);
    assert!(only(&ast, 2).flags.is_empty());
}
