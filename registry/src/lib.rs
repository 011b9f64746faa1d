//! Registries: the OCI distribution protocol, authentication (`~/.docker/config.json`, bearer tokens,
//! basic auth), pull, push, and build cache import/export through a registry.
//!
//! Owns: every byte that crosses the network to a registry. Must not touch: the store's layout (it
//! reads and writes blobs through the image crate), execution, or Dockerfile syntax.
//!
//! Layers: image names are [`hoist_image::Reference`] and digests [`hoist_image::Digest`] (this
//! crate has no name or digest type of its own); [`endpoint`] (registry name -> scheme and API
//! host), [`auth`] (credentials, challenges), [`client`] (the HTTP protocol: transport, retries and
//! tokens apart from manifests, streamed verified downloads and uploads), [`error`]
//! ([`RegistryError`], what retries match on), [`transfer`] (pull/push of images and arbitrary
//! manifests against a [`ContentStore`]; `pull_index`: [`pull`], whole indexes with `--all-platforms`), [`store`] (that trait for the hoist store), [`layout`]
//! (that trait for an OCI layout directory), [`blocking`] (one-call sync pull/push), [`cache`]
//! (build cache as an artifact manifest), [`progress`] (bars or lines).

pub mod auth;
pub mod blocking;
pub mod cache;
pub mod client;
pub mod endpoint;
pub mod error;
pub mod layout;
pub mod login;
pub mod manifest;
mod mismatch;
pub mod progress;
mod pull_index;
pub mod store;
pub mod transfer;
mod verify;

pub use auth::{Credentials, DockerConfig};
pub use client::{Access, BlobPush, BlobSource, Client, ClientOptions, OnBytes};
pub use endpoint::Endpoint;
pub use error::RegistryError;
pub use layout::LayoutStore;
pub use manifest::{Descriptor, Index, Manifest, Platform};
pub use mismatch::LayerMismatch;
pub use progress::{Progress, ProgressMode};
pub use pull_index::pull;
pub use transfer::{
    ContentStore, PullOptions, PulledImage, PushOptions, PushedImage, fetch_blobs, fetch_verified,
    pull_one, push, push_blobs, push_manifest,
};

/// A multi-threaded tokio runtime for synchronous callers (the CLI, the builder):
/// `hoist_registry::runtime()?.block_on(hoist_registry::pull(...))`.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .worker_threads(4)
        .build()?)
}
