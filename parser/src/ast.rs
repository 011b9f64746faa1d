//! The syntax tree: one [`Node`] per instruction, with flags, arguments, heredocs and line range.

use serde::Serialize;

/// A parsed Dockerfile: directives plus its instructions in file order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ast {
    /// The file name the AST was parsed from (for error messages).
    pub file: String,
    /// Parser directives found at the top of the file.
    pub directives: Directives,
    /// The instructions, in file order.
    pub children: Vec<Node>,
    /// Non-fatal findings (e.g. empty continuation lines).
    pub warnings: Vec<Warning>,
    /// First line of the first instruction.
    pub start_line: usize,
    /// Last line of the last instruction.
    pub end_line: usize,
}

/// Parser directives (`# syntax=`, `# escape=`, `# check=`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Directives {
    /// The escape / line-continuation character: `\` (default) or `` ` ``.
    pub escape: char,
    /// `# syntax=` value, if any.
    pub syntax: Option<String>,
    /// `# check=` value, if any.
    pub check: Option<String>,
    /// Every directive in order: (lower-cased name, value, line).
    pub all: Vec<Directive>,
}

impl Default for Directives {
    fn default() -> Self {
        Directives {
            escape: '\\',
            syntax: None,
            check: None,
            all: Vec::new(),
        }
    }
}

/// One parser directive line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Directive {
    /// Lower-cased name: `syntax`, `escape` or `check`.
    pub name: String,
    /// The value, trailing white space removed.
    pub value: String,
    /// 1-based line.
    pub line: usize,
}

/// A warning found while parsing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Warning {
    /// Short text, e.g. `Empty continuation line found in: RUN ...`.
    pub message: String,
    /// First line of the instruction concerned.
    pub start_line: usize,
    /// Last line of the instruction concerned.
    pub end_line: usize,
}

/// One instruction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct Node {
    /// The keyword exactly as written (`From`, `RUN`, `foo`); compare case-insensitively.
    pub keyword: String,
    /// Leading `--flag[=value]` words, quotes removed.
    pub flags: Vec<String>,
    /// Arguments by the instruction's rule (FORMAT.md 1.6).
    pub args: Vec<String>,
    /// ONBUILD's trigger instruction.
    pub sub: Option<Box<Node>>,
    /// True when the arguments came from a JSON array.
    pub json: bool,
    /// Heredocs opened on this line, in order.
    pub heredocs: Vec<Heredoc>,
    /// The logical line (continuations joined) as read.
    pub original: String,
    /// Comment lines directly before this instruction (without `#`).
    pub comments: Vec<String>,
    /// 1-based first physical line.
    pub start_line: usize,
    /// 1-based last physical line (including heredoc terminators).
    pub end_line: usize,
}

impl Node {
    /// The keyword lower-cased (`run`, `copy`, ...).
    pub fn name(&self) -> String {
        self.keyword.to_ascii_lowercase()
    }
}

/// A heredoc attached to a RUN/COPY/ADD.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Heredoc {
    /// Terminator word with quotes removed (`EOF`).
    pub name: String,
    /// File descriptor prefix (`3<<EOF` gives 3), 0 when none.
    pub file_descriptor: u32,
    /// False when any part of the name was quoted (body not expanded).
    pub expand: bool,
    /// True for `<<-` (leading tabs are stripped when used).
    pub chomp: bool,
    /// Body lines, each with its own line ending, tabs kept.
    pub content: String,
}

impl Heredoc {
    /// The body as used: with `<<-`, leading tabs removed from every line.
    pub fn body(&self) -> String {
        if !self.chomp {
            return self.content.clone();
        }
        self.content
            .split_inclusive('\n')
            .map(|l| l.trim_start_matches('\t'))
            .collect()
    }
}
