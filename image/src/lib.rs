//! OCI images on disk: types, digests, layer tars with whiteouts, compression, the content-addressed
//! local store, tags and references, save/load/import/export.
//!
//! Owns: the store directory and every byte written to it. Must not touch: the network, process
//! execution or namespaces, or Dockerfile syntax.
