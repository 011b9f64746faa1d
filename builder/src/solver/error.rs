//! A failed step, as BuildKit reports it.

/// A failed step. It displays as the last line of BuildKit's report (`failed to solve: MESSAGE`,
/// which the CLI prefixes with `ERROR: failed to build: `); [`StepError::report`] is what
/// precedes it.
#[derive(Debug, thiserror::Error)]
#[error("failed to solve: {message}")]
pub struct StepError {
    pub title: String,
    /// The Dockerfile excerpt at the step (all a quiet build shows above the error).
    pub location: String,
    pub display: String,
    pub message: String,
    pub tail: String,
}

impl StepError {
    /// The lines BuildKit prints above the error: the step and the end of its output between
    /// `------` rules, then where it is in the Dockerfile.
    pub fn report(&self) -> String {
        format!(
            "------\n{}\n{}------\n{}",
            self.title, self.tail, self.location
        )
    }
}
