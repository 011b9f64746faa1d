//! The Dockerfile frontend: typed instructions ([`hoist_parser::instructions`], flags and arguments
//! already parsed and validated there) -> a [`Plan`]. Resolves stages and what the target needs, ARG
//! scoping (global, per stage, predefined), variable expansion where Docker expands (values checked
//! after expansion with [`hoist_parser::values`]), ONBUILD triggers of base images, and computes the
//! image config and history each stage produces.
//!
//! Owns: `stages` (which stages, FROM, lowering), `state` (a stage's variables, config, steps),
//! `config` (instruction dispatch, image-config changes), `run`, `copy` (typed sources),
//! [`mount`] (`RUN --mount` specs), [`named_context`] (`--build-context`), `changes`
//! (`--change`), [`lint`] and the `>>>` excerpts of errors ([`snippet`]).
//! Must not touch: the file system, the store's layers or the runtime (the solver runs the plan);
//! Dockerfile text (the parser's).

mod changes;
mod config;
mod copy;
pub mod lint;
pub mod mount;
pub mod named_context;
mod run;
pub mod snippet;
mod stages;
mod state;
#[cfg(test)]
mod tests;

pub use changes::apply_changes;
pub use stages::{base_names, expanded_bases, lower};

use std::collections::BTreeMap;

use anyhow::{Result, bail};
use hoist_parser::instructions::Source;
use hoist_parser::lint::BaseEnv;

use crate::frontend::snippet::Located;
use crate::plan::{NetworkMode, Plan, RunOptions};

/// Build-wide frontend settings.
#[derive(Debug, Clone)]
pub struct FrontendOptions {
    pub build_args: BTreeMap<String, String>,
    pub target: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub network: NetworkMode,
    /// `os/arch[/variant]` of the result, normalised as containerd does (`linux/arm64`,
    /// `linux/arm/v7`).
    pub platform: String,
    /// Whether `platform` was asked for (`--platform`): as BuildKit does, the result's config then
    /// says that platform even when its stage was built `FROM --platform=…` another one.
    pub platform_explicit: bool,
    /// The Dockerfile's display name in locations (`Dockerfile`).
    pub file_name: String,
    /// The Dockerfile's text, for the excerpt a failed step shows ([`crate::frontend::snippet`]).
    pub text: String,
    /// `--build-context`s by normalised name ([`crate::frontend::named_context::context_name`]).
    pub contexts: BTreeMap<String, NamedInput>,
    /// `--no-cache-filter`: stages (by name, any case) whose steps run even when cached.
    pub no_cache_filter: Vec<String>,
    /// `--add-host`, `--shm-size`, `--ulimit`: what every RUN gets.
    pub run: RunOptions,
}

impl FrontendOptions {
    /// Defaults for `file_name`: no build args, target, labels or contexts; the host's platform.
    pub fn new(file_name: &str) -> FrontendOptions {
        FrontendOptions {
            build_args: BTreeMap::new(),
            target: None,
            labels: BTreeMap::new(),
            network: NetworkMode::Host,
            platform: hoist_image::Platform::host().to_string(),
            platform_explicit: false,
            file_name: file_name.into(),
            text: String::new(),
            contexts: BTreeMap::new(),
            no_cache_filter: Vec::new(),
            run: RunOptions::default(),
        }
    }
}

/// A named context (`--build-context`) as the frontend uses it. As in BuildKit, one replaces a
/// stage of its name (whose instructions then do not run) and an image of its name, in `FROM`,
/// `COPY --from` and `RUN --mount=from=`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NamedInput {
    /// An image, resolved (pulled when missing) through the [`ImageResolver`].
    Image(String),
    /// A local directory the solver holds under the context's name ([`Input::Local`]).
    Local,
    /// Nothing (`docker-image://scratch`).
    Scratch,
}

/// The named context `name` refers to, with its normalised name.
fn named_context<'a>(opts: &'a FrontendOptions, name: &str) -> Option<(String, &'a NamedInput)> {
    if opts.contexts.is_empty() {
        return None;
    }
    let key = crate::frontend::named_context::context_name(name).ok()?;
    opts.contexts.get(&key).map(|n| (key, n))
}

/// Resolves a base image name to an image of the store, for a platform (`FROM --platform=p`, else
/// the build's target platform).
pub type ImageResolver<'a> =
    dyn FnMut(&str, &hoist_image::Platform) -> Result<hoist_image::Image> + 'a;

/// What lowering produced.
#[derive(Debug, Clone)]
pub struct Lowered {
    pub plan: Plan,
    /// Per stage, in file order, for the `UndefinedVar` check: the environment its base image
    /// starts it with (empty for scratch; a stage base passes its own on), or `Skip` for the
    /// stages the target does not need.
    pub base_env: Vec<BaseEnv>,
}

const HISTORY_COMMENT: &str = "buildkit.dockerfile.v0";

/// The most bytes one build's frontend may produce from expansion (values, RUN environments,
/// history text), in total. One expanded word is bounded by [`hoist_parser::shell::MAX_EXPANSION`];
/// this bounds their sum, so a file repeating a 4 MiB value (`ARG B1=$A`, `ARG B2=$A`, ... or
/// RUNs that each carry it in their environment and history) cannot eat the memory either. Real
/// files use well under 1 MiB.
const MAX_FRONTEND_BYTES: usize = 64 << 20;

/// What expansion produced so far in one lowering, against [`MAX_FRONTEND_BYTES`].
#[derive(Debug, Default)]
struct Budget(std::cell::Cell<usize>);

impl Budget {
    fn charge(&self, bytes: usize) -> Result<()> {
        let total = self.0.get().saturating_add(bytes);
        self.0.set(total);
        if total > MAX_FRONTEND_BYTES {
            bail!(
                "the Dockerfile expands to more than {} MiB of values, RUN environments and history (the limit on one build)",
                MAX_FRONTEND_BYTES >> 20
            );
        }
        Ok(())
    }
}

/// An error of the instruction at `src`, with its excerpt, as BuildKit reports it.
fn line_error(opts: &FrontendOptions, src: &Source, message: String) -> anyhow::Error {
    Located {
        excerpt: crate::frontend::snippet::render(
            &opts.file_name,
            &opts.text,
            src.start_line,
            src.end_line,
        ),
        message,
    }
    .into()
}
