//! Builds: build context and `.dockerignore`, the stage DAG, content-addressed cache keys, the
//! executor that runs steps (COPY/ADD without a container, RUN through the runtime), and progress.
//!
//! Owns: turning parsed Dockerfiles into images. Must not touch: Dockerfile text directly (the parser
//! owns that), kernel primitives (the runtime owns those) or the store's layout (the image crate owns it).
//!
//! Layers, BuildKit-style: [`dockerfile`] (frontend: instructions -> [`plan::Plan`]) -> [`solver`]
//! (runs the plan's chains in parallel, cached by content) over [`copy`] (COPY/ADD planned in memory
//! as a [`dest_tree`], written by [`layer_out`] in one pass), [`context`], [`cache`] and the runtime;
//! scratch trees go to the [`trash`]. [`build()`] ties them together for `hoist build`. [`registry`]
//! pushes the result (`--push`, `-o type=registry`) and [`remote_cache`] shares [`cache`] records
//! through registries (`--cache-to`/`--cache-from`); bytes on the wire are the registry crate's.

pub mod build;
pub mod cache;
pub mod context;
pub mod copy;
pub mod dest_tree;
pub mod dockerfile;
pub mod dockerignore;
pub mod fetch;
pub mod fileops;
pub mod git;
pub mod lay_pool;
pub mod layer_out;
pub mod lint;
pub mod mount_key;
pub mod mounts;
pub mod named_context;
pub mod outputs;
pub mod paths;
pub mod plan;
pub mod progress;
pub mod prune;
pub mod registry;
pub mod remote_cache;
pub mod remote_context;
pub mod reproducible;
pub mod secrets;
pub mod snippet;
pub mod solver;
pub mod trash;
pub mod union;
pub mod users;

pub use build::{BuildOptions, BuildOutput, build};
