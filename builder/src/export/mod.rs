//! Exporters: where a built image goes besides the store. Owns `--output` archives and directories
//! ([`outputs`]) and registry pushes plus the registry side of `--cache-to`/`--cache-from`
//! ([`registry`]). Must not touch: how an image is built (the solver's) or wire formats (the image
//! and registry crates write tars and speak HTTP).

pub mod outputs;
pub mod registry;
