//! The error of a layer blob whose content is not the layer its diff_id names.

use std::fmt;

/// A layer blob (verified against its own digest) that decompresses to another layer than the
/// diff_id it was fetched for. Callers downcast to it to word the refusal in their terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerMismatch {
    /// The blob's digest.
    pub blob: String,
    /// Where it came from (a repository or a directory).
    pub source: String,
    /// What its content hashes to, uncompressed.
    pub actual: String,
    /// The diff_id it was expected to be.
    pub expected: String,
}

impl fmt::Display for LayerMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "layer {} from {} does not match the image config: its content is {} but the \
             config's rootfs.diff_ids say {}",
            self.blob, self.source, self.actual, self.expected
        )
    }
}

impl std::error::Error for LayerMismatch {}
