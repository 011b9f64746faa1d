//! The Dockerfile excerpt BuildKit prints above an error: `FILE:LINE`, then the numbered lines
//! around the failing instruction between rules, its own lines marked `>>>`.

/// An error the frontend raised, shown as BuildKit shows it: the excerpt (possibly empty)
/// above `ERROR: failed to build: failed to solve: MESSAGE`.
#[derive(Debug, thiserror::Error)]
#[error("failed to solve: {message}")]
pub struct Located {
    pub excerpt: String,
    pub message: String,
}

impl Located {
    /// A parser error on `text`: the excerpt at its lines and BuildKit's message.
    pub fn parse(text: &str, e: &hoist_parser::ParseError) -> Located {
        Located {
            excerpt: render(&e.file, text, e.start_line, e.end_line),
            message: e.buildkit_message(),
        }
    }
}

/// BuildKit's `errdefs.Source.Print` for the instruction at `start..=end` (1-based) of `text`:
/// lines are `text` split at `\n` (a final newline shows an empty last line), with two lines of
/// context each side for a one-line instruction and one for a longer one. Empty when `start`
/// is outside the file.
pub fn render(file: &str, text: &str, start: usize, end: usize) -> String {
    let lines: Vec<&str> = text.split('\n').collect();
    if start < 1 || start > lines.len() {
        return String::new();
    }
    let (first, mut from, mut to) = (start, start, end.max(start).min(lines.len()));
    let pad = if to == from { 4 } else { 2 };
    let mut p = 0;
    while p < pad {
        if from > 1 {
            from -= 1;
            p += 1;
        }
        if to != lines.len() {
            to += 1;
            p += 1;
        }
        p += 1;
    }
    let rule = "-".repeat(20);
    let mut out = format!("{file}:{first}\n{rule}\n");
    for (i, line) in lines.iter().enumerate().take(to).skip(from - 1) {
        let n = i + 1;
        let mark = if (start..=end.max(start)).contains(&n) {
            ">>>"
        } else {
            "   "
        };
        out.push_str(&format!(" {n:>3} | {mark} {line}\n"));
    }
    out.push_str(&rule);
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::render;

    #[test]
    fn one_line_gets_two_lines_each_side_and_the_final_empty_line() {
        let text = "FROM busybox\nRUN false\n";
        assert_eq!(
            render("Dockerfile", text, 2, 2),
            "Dockerfile:2\n--------------------\n   1 |     FROM busybox\n   2 | >>> RUN false\n   3 |     \n--------------------\n"
        );
        let text: String = (1..=12).map(|i| format!("L{i}\n")).collect();
        let out = render("D", &text, 7, 7);
        assert!(
            out.starts_with("D:7\n--------------------\n   5 |     L5\n"),
            "{out}"
        );
        assert!(
            out.ends_with("   9 |     L9\n--------------------\n"),
            "{out}"
        );
    }

    #[test]
    fn a_continued_instruction_gets_one_line_each_side() {
        let text = "FROM b\nENV A=1\nRUN a \\\n  b\nENV X=1\nENV Y=2\n";
        assert_eq!(
            render("Dockerfile", text, 3, 4),
            "Dockerfile:3\n--------------------\n   2 |     ENV A=1\n   3 | >>> RUN a \\\n   4 | >>>   b\n   5 |     ENV X=1\n--------------------\n"
        );
    }

    #[test]
    fn the_first_line_pads_after_only_and_outside_lines_give_nothing() {
        let text = "RUN true\nFROM busybox\n";
        assert_eq!(
            render("Dockerfile", text, 1, 1),
            "Dockerfile:1\n--------------------\n   1 | >>> RUN true\n   2 |     FROM busybox\n   3 |     \n--------------------\n"
        );
        assert_eq!(render("Dockerfile", text, 9, 9), "");
        assert_eq!(render("Dockerfile", text, 0, 0), "");
    }
}
