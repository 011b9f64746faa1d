//! Errors: hoist's own failures (Docker exit code 125) versus the command's exec failures (126/127).

use std::fmt;
use std::io;

/// A failed run (the command's own non-zero exit is not an error: see [`crate::ExitStatus`]).
#[derive(Debug)]
pub enum Error {
    /// The spec is unusable (bad user, relative path, ...).
    Invalid(String),
    /// Setting up the sandbox failed at `step` (hoist's own failure: exit code 125).
    Setup { step: String, source: io::Error },
    /// The command could not be started: not found (`ENOENT`, exit code 127) or not executable (126).
    Exec { program: String, source: io::Error },
}

impl Error {
    /// Docker's exit code for this failure: 125, 126 or 127.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Exec { source, .. } if source.raw_os_error() == Some(libc::ENOENT) => 127,
            Error::Exec { .. } => 126,
            _ => 125,
        }
    }

    pub(crate) fn setup(step: impl Into<String>, source: io::Error) -> Self {
        Error::Setup {
            step: step.into(),
            source,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Invalid(msg) => write!(f, "invalid container spec: {msg}"),
            Error::Setup { step, source } => write!(f, "sandbox setup failed: {step}: {source}"),
            Error::Exec { program, source } if source.raw_os_error() == Some(libc::ENOENT) => {
                write!(f, "exec: \"{program}\": executable file not found in $PATH")
            }
            Error::Exec { program, source } => write!(f, "exec: \"{program}\": {source}"),
        }
    }
}

/// The source is part of the message already, so it is not repeated as `source()`.
impl std::error::Error for Error {}

pub type Result<T> = std::result::Result<T, Error>;
