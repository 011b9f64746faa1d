//! Test harnesses shared by hoist's crates and its root integration tests (a dev-dependency only).
//!
//! Owns: starting and stopping test fixtures — [`registry`] (the real CNCF registry on a loopback
//! port, htpasswd, a fault-injecting proxy, tiny images made through the image crate) and
//! [`busybox`] (the reproducible `busybox:latest` made by `fixtures/make-busybox.sh`). Must not
//! touch: anything but loopback addresses and temp directories; it holds no product logic.

pub mod busybox;
pub mod registry;

pub use registry::*;
