//! OCI images on disk: types, digests, layer tars with whiteouts, compression, the content-addressed
//! local store, tags and references, save/load/import/export.
//!
//! Owns: the store directory and every byte written to it. Must not touch: the network, process
//! execution or namespaces, or Dockerfile syntax.
//!
//! Map:
//! - [`Digest`], [`digest`]: `sha256:` digests, streaming hashing/verifying readers and writers.
//! - [`Reference`]: Docker-normalised image names.
//! - [`Platform`]: `os/arch[/variant]`, parsed, normalised and matched as containerd does.
//! - [`ImageConfig`]: the config blob, OCI plus Docker's extensions.
//! - [`layer`]: writing layer tars (from a directory or an overlayfs upper dir), compression, and
//!   applying layers safely onto a directory, a layer's diff_id from its blob as it streams.
//! - [`Store`]: the OCI image-layout store (blobs, index/tags, images, GC, unpacked layer cache).
//! - [`perms`]: owner-only store directories.
//! - [`archive`]: `save`/`load` (OCI and docker-archive), `import`, `export`; `index_archive`:
//!   image indexes in those archives.
//! - [`oci_layout`]: the OCI image layout's names and a layout directory writer.
//! - [`outfile`]: a user's output file written whole or not at all (`save -o`).
//! - [`diff`]: `image diff`, files and config that differ between two images.
//! - [`tree_dump`]: the date-free JSON description of an image (config, history, merged files).
//!
//! Store format: layers are kept **uncompressed** in the local store (`application/vnd.oci.image.layer.v1.tar`,
//! so a layer's blob digest is its diff_id), as Docker's and buildah's stores do: committing a layer is
//! one hashing pass with no compression cost. Compressed forms are made on demand for push
//! ([`Store::compressed_layer`]) and cached as ordinary blobs with a diff_id -> compressed-digest map
//! under `layerdb/`. Images pulled with compressed layers keep their blobs as they came.

pub mod archive;
pub mod check;
pub mod config;
pub mod df;
pub mod diff;
pub mod digest;
pub mod display;
mod index_archive;
pub mod layer;
pub mod oci_layout;
pub mod outfile;
pub mod perms;
pub mod platform;
pub mod reference;
pub mod store;
pub mod tree_dump;
pub mod views;
pub mod waste;

pub use config::{ContainerConfig, Healthcheck, History, ImageConfig, RootFs};
pub use digest::{Digest, HashingReader, HashingWriter, VerifyingReader};
pub use layer::{Compression, LayerInfo, LayerOptions};
pub use oci_spec;
pub use platform::Platform;
pub use reference::Reference;
pub use store::{Image, ImageSummary, Store, default_root};

/// OCI media types hoist writes and reads.
pub mod media_type {
    pub const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    pub const INDEX: &str = "application/vnd.oci.image.index.v1+json";
    pub const CONFIG: &str = "application/vnd.oci.image.config.v1+json";
    pub const LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
    pub const LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
    pub const LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
    pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
    pub const DOCKER_MANIFEST_LIST: &str =
        "application/vnd.docker.distribution.manifest.list.v2+json";
    pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
    pub const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar";
    pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
}

/// Everything that can go wrong in this crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{context}: {error}")]
    Io {
        context: String,
        error: std::io::Error,
    },
    #[error("invalid reference format: {0}")]
    InvalidReference(String),
    #[error("invalid digest {0}")]
    InvalidDigest(String),
    #[error("digest mismatch for {what}: expected {expected}, got {actual}")]
    DigestMismatch {
        what: String,
        expected: Digest,
        actual: Digest,
    },
    #[error(
        "layer {blob} does not match the image config: its content is {actual} but the config's rootfs.diff_ids say {expected}"
    )]
    LayerMismatch {
        blob: Digest,
        expected: Digest,
        actual: Digest,
    },
    /// Content named by a descriptor's digest (any algorithm) hashed to something else.
    #[error("digest mismatch: expected {expected}, got {actual}")]
    ContentMismatch { expected: String, actual: String },
    #[error("No such image: {0}")]
    ImageNotFound(String),
    #[error("blob {0} not found in the store")]
    BlobNotFound(Digest),
    #[error("unsafe layer entry {path:?}: {why}")]
    UnsafePath { path: String, why: String },
    #[error("invalid {what}: {why}")]
    Invalid { what: String, why: String },
    #[error("{0}")]
    Other(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Adds a context message to io errors: `fs::read(p).ctx(|| format!("reading {}", p.display()))`.
pub(crate) trait IoContext<T> {
    fn ctx<S: Into<String>>(self, f: impl FnOnce() -> S) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn ctx<S: Into<String>>(self, f: impl FnOnce() -> S) -> Result<T> {
        self.map_err(|error| Error::Io {
            context: f().into(),
            error,
        })
    }
}

impl<T> IoContext<T> for rustix::io::Result<T> {
    fn ctx<S: Into<String>>(self, f: impl FnOnce() -> S) -> Result<T> {
        self.map_err(|e| Error::Io {
            context: f().into(),
            error: e.into(),
        })
    }
}
