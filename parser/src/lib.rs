//! Dockerfile syntax: lexing and parsing into an AST with exact line numbers, parser directives,
//! heredocs, shell-word expansion, typed and validated instructions, and lint checks.
//!
//! Owns: everything about reading Dockerfile text. Must not touch: the filesystem beyond reading the
//! Dockerfile it is given, images, the network, or execution of any kind.
