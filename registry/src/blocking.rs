//! Synchronous one-call entry points for callers without a tokio runtime (the builder pulling a
//! missing base image, `hoist build --push`). Each creates a runtime, so never call them from
//! inside one: async callers use [`crate::pull`]/[`crate::push`] directly.

use anyhow::Result;
use hoist_image::Store;

use crate::client::{Client, ClientOptions};
use crate::manifest::Platform;
use crate::progress::{Progress, ProgressMode};
use crate::transfer::{PullOptions, PulledImage, PushOptions, PushedImage};
use hoist_image::Reference;

/// Pulls `name` (Docker syntax) into `store` for `platform` (host when `None`).
pub fn pull_image(
    store: &Store,
    name: &str,
    platform: Option<Platform>,
    insecure_registries: &[String],
    progress: ProgressMode,
) -> Result<PulledImage> {
    let r = Reference::parse(name)?;
    let client = Client::new(ClientOptions {
        insecure_registries: insecure_registries.to_vec(),
        ..ClientOptions::default()
    })?;
    let opts = PullOptions {
        platform,
        ..PullOptions::default()
    };
    crate::runtime()?.block_on(crate::pull(
        &client,
        store,
        &r,
        &opts,
        &Progress::new(progress),
    ))
}

/// Pushes the local image `local` to `dest` (both Docker syntax; usually the same name).
pub fn push_image(
    store: &Store,
    local: &str,
    dest: &str,
    insecure_registries: &[String],
    progress: ProgressMode,
) -> Result<PushedImage> {
    let r = Reference::parse(dest)?;
    let client = Client::new(ClientOptions {
        insecure_registries: insecure_registries.to_vec(),
        ..ClientOptions::default()
    })?;
    let (body, media_type) = crate::ContentStore::resolve_image(store, local)?;
    let opts = PushOptions {
        mount_from: crate::store::mount_candidates(store, &r, &body),
        ..PushOptions::default()
    };
    crate::runtime()?.block_on(crate::push_manifest(
        &client,
        store,
        &r,
        body,
        &media_type,
        &opts,
        &Progress::new(progress),
    ))
}
