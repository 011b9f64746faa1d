//! Builds: turning parsed Dockerfiles into images, BuildKit-style (a frontend lowers the Dockerfile
//! into a plan; a solver runs the plan, cached by content).
//!
//! Owns the pipeline, one module per stage:
//! - [`frontend`]: typed instructions -> [`plan::Plan`] (stages, ARG scoping, RUN/COPY/ADD lowering,
//!   `RUN --mount` specs, named contexts, ONBUILD, image-config changes, lint glue, `>>>` snippets).
//! - [`plan`]: the leaf data model every other module shares (chains, steps, ops, mounts, inputs).
//! - [`solver`]: runs a plan's chains in parallel, keys each step by content, executes RUN through
//!   the runtime, mounts at run time, file ops, `SOURCE_DATE_EPOCH` clamping, step errors.
//! - [`copy`]: COPY/ADD without a container (planned in memory as a [`copy::dest_tree`], written by
//!   [`copy::layer_out`] in one pass), layered views ([`copy::union`]) and `--chown` users.
//! - [`context`]: what a build reads from outside: the build context and `.dockerignore`, git and
//!   http sources, remote contexts, archives ADD unpacks, secrets and SSH agents.
//! - [`cache`]: step key -> layer records, local and remote (`--cache-to`/`--cache-from`).
//! - [`export`]: `--output` exporters and registry pushes.
//! - [`build()`] ties them together for `hoist build`; [`progress`], [`trash`], [`paths`] and
//!   [`prune`] serve them all; [`usage`] is what the build cache holds on disk (`builder du`).
//!
//! Must not touch: Dockerfile text directly (the parser owns that), kernel primitives (the runtime
//! owns those), the store's layout (the image crate owns it) or bytes on the wire (the registry
//! crate's).

pub mod build;
pub mod cache;
pub mod context;
pub mod copy;
pub mod export;
pub mod frontend;
pub mod paths;
pub mod plan;
pub mod progress;
pub mod prune;
pub mod solver;
pub mod trash;
pub mod usage;

pub use build::{BuildOptions, BuildOutput, build};
