//! Dockerfile syntax: lexing and parsing into an AST with exact line numbers, parser directives,
//! heredocs, shell-word expansion, typed and validated instructions, and lint checks.
//!
//! Owns: everything about reading Dockerfile text. Must not touch: the filesystem beyond reading the
//! Dockerfile it is given, images (it borrows only the image crate's `Platform` value type, so a
//! platform is parsed one way everywhere), the network, or execution of any kind.
//!
//! Layers, as in BuildKit: [`parse`] (bytes to [`Ast`], syntax only) -> [`instructions::parse_dockerfile`]
//! (typed, validated instructions grouped in stages) -> the builder, which expands values with
//! [`shell::Lexer`] and the step's environment.

#![warn(missing_docs)]

pub mod ast;
pub mod chmod;
pub mod dump;
pub mod error;
pub mod go_csv;
pub mod gofmt;
pub mod instructions;
pub mod lint;
pub mod shell;
pub mod suggest;
pub mod syntax;
pub mod values;

pub use ast::{Ast, Directive, Directives, Heredoc, Node, Warning};
pub use dump::dump;
pub use error::ParseError;
pub use instructions::{Dockerfile, parse_dockerfile};
pub use syntax::parse;

/// Parses bytes and validates instructions in one call.
pub fn parse_and_validate(bytes: &[u8], file: &str) -> Result<Dockerfile, ParseError> {
    parse_dockerfile(&parse(bytes, file)?)
}
