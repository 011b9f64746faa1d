//! Builds: build context and `.dockerignore`, the stage DAG, content-addressed cache keys, the
//! executor that runs steps (COPY/ADD without a container, RUN through the runtime), and progress.
//!
//! Owns: turning parsed Dockerfiles into images. Must not touch: Dockerfile text directly (the parser
//! owns that), kernel primitives (the runtime owns those) or the store's layout (the image crate owns it).

pub mod context;
pub mod copy;
pub mod dockerignore;
pub mod paths;
