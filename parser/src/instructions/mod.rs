//! Typed, validated instructions (BuildKit's `frontend/dockerfile/instructions`): an
//! [`Ast`](crate::Ast) becomes a [`Dockerfile`] of global ARGs and [`Stage`]s, each instruction an
//! [`Instruction`] variant with its flags checked. Values stay unexpanded where BuildKit expands
//! them later with the step's environment; [`expand`] and friends do that with [`crate::shell`].
//!
//! Owns: turning syntax nodes into typed instructions and parsing their flag values. Must not
//! touch: the filesystem, images, or anything the builder does with the instructions.

mod expand;
mod flags;
mod goparse;
mod mount;
mod parse;
mod types;

pub use expand::{expand, expand_heredoc, expand_words};
pub use goparse::{parse_go_bool, parse_go_duration};
pub use mount::{Expander, Mount, MountType, Sharing, parse_mount};
pub use parse::{parse_dockerfile, parse_instruction, parse_onbuild_trigger};
pub use types::{
    ArgDecl, Command, CopyArgs, Dockerfile, Healthcheck, INSTRUCTIONS, InlineFile, Instruction,
    KeyValue, NetworkMode, PLATFORM_ARGS, PROXY_ARGS, SecurityMode, ShellOrExec, Source, Stage,
};
