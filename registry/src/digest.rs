//! Digest computation while bytes stream past (`sha256:` and `sha512:`).

use anyhow::{Result, bail};
use sha2::{Digest as _, Sha256, Sha512};

/// Hashes a stream incrementally for one expected digest algorithm.
#[derive(Clone)]
pub enum Hasher {
    Sha256(Sha256),
    Sha512(Sha512),
}

impl Hasher {
    /// A hasher for the algorithm of `digest` (`sha256:...`).
    pub fn for_digest(digest: &str) -> Result<Hasher> {
        match digest.split_once(':').map(|(a, _)| a) {
            Some("sha256") => Ok(Hasher::Sha256(Sha256::new())),
            Some("sha512") => Ok(Hasher::Sha512(Sha512::new())),
            _ => bail!("unsupported digest {digest:?}"),
        }
    }

    pub fn update(&mut self, bytes: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(bytes),
            Hasher::Sha512(h) => h.update(bytes),
        }
    }

    /// `algo:hex` of everything seen.
    pub fn finish(self) -> String {
        match self {
            Hasher::Sha256(h) => format!("sha256:{}", hex::encode(h.finalize())),
            Hasher::Sha512(h) => format!("sha512:{}", hex::encode(h.finalize())),
        }
    }
}

/// `sha256:<hex>` of a byte slice.
pub fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// Computes the digest of `bytes` with `expected`'s algorithm and checks it matches.
pub fn verify(bytes: &[u8], expected: &str) -> Result<()> {
    let mut h = Hasher::for_digest(expected)?;
    h.update(bytes);
    let got = h.finish();
    if got != expected {
        bail!("digest mismatch: expected {expected}, got {got}");
    }
    Ok(())
}

/// The first 12 hex characters, as Docker shows layer ids.
pub fn short(digest: &str) -> &str {
    let hex = digest.split_once(':').map_or(digest, |(_, h)| h);
    &hex[..hex.len().min(12)]
}
