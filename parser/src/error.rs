//! The one error type of the crate: a message tied to a file and a line range.

use serde::Serialize;

/// A parse or validation error naming the file, the lines and what was expected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{}", self.render())]
pub struct ParseError {
    /// The Dockerfile's name as given to the parser.
    pub file: String,
    /// First line (1-based) of the offending instruction, 0 when there is none.
    pub start_line: usize,
    /// Last line (1-based) of the offending instruction.
    pub end_line: usize,
    /// BuildKit's message, without location.
    pub message: String,
}

/// Errors BuildKit raises while grouping instructions into stages, not while parsing one.
const STAGE_ERRORS: [&str; 1] = ["no build stage in current context"];

impl ParseError {
    /// A new error at `start..=end` in `file`.
    pub fn new(file: &str, start_line: usize, end_line: usize, message: impl Into<String>) -> Self {
        ParseError {
            file: file.to_string(),
            start_line,
            end_line,
            message: message.into(),
        }
    }

    /// BuildKit's wording for instruction errors: `dockerfile parse error on line N: <message>`
    /// (a stage-level error, such as an instruction before any FROM, is the bare message).
    pub fn buildkit_message(&self) -> String {
        if STAGE_ERRORS.contains(&self.message.as_str()) {
            return self.message.clone();
        }
        format!(
            "dockerfile parse error on line {}: {}",
            self.start_line, self.message
        )
    }

    fn render(&self) -> String {
        if self.start_line == 0 {
            format!("{}: {}", self.file, self.message)
        } else {
            format!("{}:{}: {}", self.file, self.start_line, self.message)
        }
    }
}
