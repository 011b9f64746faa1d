//! Registries: the OCI distribution protocol, authentication (`~/.docker/config.json`, bearer tokens,
//! basic auth), pull, push, and build cache import/export through a registry.
//!
//! Owns: every byte that crosses the network to a registry. Must not touch: the store's layout (it
//! reads and writes blobs through the image crate), execution, or Dockerfile syntax.
