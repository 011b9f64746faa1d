//! `sha256:<hex>` digests and streaming hashers (nothing is ever buffered whole), plus
//! [`AlgoHasher`]/[`verify`] for digests a registry or descriptor names (`sha256:` or `sha512:`).

use std::fmt;
use std::io::{self, Read, Write};
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest as _, Sha256, Sha512};

use crate::Error;

/// A validated `sha256:<64 lowercase hex>` content digest.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(String);

impl Digest {
    /// Digest of a byte slice.
    pub fn of(bytes: &[u8]) -> Digest {
        Digest::from_sha256(Sha256::digest(bytes).into())
    }

    /// Wraps a raw sha256 output.
    pub fn from_sha256(raw: [u8; 32]) -> Digest {
        Digest(format!("sha256:{}", hex::encode(raw)))
    }

    /// The 64 hex characters after `sha256:`.
    pub fn hex(&self) -> &str {
        &self.0[7..]
    }

    /// The first 12 hex characters, as Docker shows image IDs.
    pub fn short(&self) -> &str {
        &self.0[7..19]
    }

    /// The full `sha256:<hex>` string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Converts to oci-spec's digest type.
    pub fn to_oci(&self) -> oci_spec::image::Digest {
        oci_spec::image::Digest::from_str(&self.0).expect("a valid sha256 digest")
    }

    /// Converts from oci-spec's digest type (only sha256 is supported).
    pub fn from_oci(d: &oci_spec::image::Digest) -> Result<Digest, Error> {
        d.to_string().parse()
    }
}

impl FromStr for Digest {
    type Err = Error;
    fn from_str(s: &str) -> Result<Digest, Error> {
        let hex = s.strip_prefix("sha256:").ok_or_else(|| {
            Error::InvalidDigest(format!("{s:?}: expected sha256:<64 hex digits>"))
        })?;
        if hex.len() != 64
            || !hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(Error::InvalidDigest(format!(
                "{s:?}: expected sha256:<64 lowercase hex digits>"
            )));
        }
        Ok(Digest(s.to_string()))
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for Digest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Digest, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Incremental sha256 with a byte count.
#[derive(Clone, Default)]
pub struct Hasher {
    sha: Sha256,
    len: u64,
}

impl Hasher {
    pub fn new() -> Hasher {
        Hasher::default()
    }
    pub fn update(&mut self, bytes: &[u8]) {
        self.sha.update(bytes);
        self.len += bytes.len() as u64;
    }
    /// Bytes hashed so far.
    pub fn len(&self) -> u64 {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    pub fn finish(self) -> Digest {
        Digest::from_sha256(self.sha.finalize().into())
    }
}

/// A writer that hashes everything passing through to `inner`.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Hasher,
}

impl<W: Write> HashingWriter<W> {
    pub fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Hasher::new(),
        }
    }
    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.hasher.len()
    }
    pub fn is_empty(&self) -> bool {
        self.hasher.is_empty()
    }
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.inner
    }
    /// The digest of what was written so far.
    pub fn digest(&self) -> Digest {
        self.hasher.clone().finish()
    }
    /// Returns the inner writer, the digest and the byte count.
    pub fn finish(self) -> (W, Digest, u64) {
        let len = self.hasher.len();
        (self.inner, self.hasher.finish(), len)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A reader that hashes everything read from `inner`.
pub struct HashingReader<R> {
    inner: R,
    hasher: Hasher,
}

impl<R: Read> HashingReader<R> {
    pub fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Hasher::new(),
        }
    }
    pub fn len(&self) -> u64 {
        self.hasher.len()
    }
    pub fn is_empty(&self) -> bool {
        self.hasher.is_empty()
    }
    /// Returns the inner reader, the digest and the byte count of what was read.
    pub fn finish(self) -> (R, Digest, u64) {
        let len = self.hasher.len();
        (self.inner, self.hasher.finish(), len)
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// A reader that fails with `InvalidData` at EOF if the content does not match `expected`.
/// Used for every blob read from the store or a registry.
pub struct VerifyingReader<R> {
    inner: HashingReader<R>,
    expected: Digest,
    done: bool,
}

impl<R: Read> VerifyingReader<R> {
    pub fn new(inner: R, expected: Digest) -> Self {
        VerifyingReader {
            inner: HashingReader::new(inner),
            expected,
            done: false,
        }
    }
}

impl<R: Read> Read for VerifyingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let n = self.inner.read(buf)?;
        if n == 0 && !self.done {
            self.done = true;
            let actual = self.inner.hasher.clone().finish();
            if actual != self.expected {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "digest mismatch: expected {}, content is {}",
                        self.expected, actual
                    ),
                ));
            }
        }
        Ok(n)
    }
}

/// Hashes a stream with the algorithm a descriptor's digest names (`sha256:` or `sha512:`).
#[derive(Clone)]
pub enum AlgoHasher {
    Sha256(Sha256),
    Sha512(Sha512),
}

impl AlgoHasher {
    /// A hasher for the algorithm of `digest` (`sha256:...`).
    pub fn for_digest(digest: &str) -> Result<AlgoHasher, Error> {
        match digest.split_once(':').map(|(a, _)| a) {
            Some("sha256") => Ok(AlgoHasher::Sha256(Sha256::new())),
            Some("sha512") => Ok(AlgoHasher::Sha512(Sha512::new())),
            _ => Err(Error::Other(format!("unsupported digest {digest:?}"))),
        }
    }

    pub fn update(&mut self, bytes: &[u8]) {
        match self {
            AlgoHasher::Sha256(h) => h.update(bytes),
            AlgoHasher::Sha512(h) => h.update(bytes),
        }
    }

    /// `algo:hex` of everything seen.
    pub fn finish(self) -> String {
        match self {
            AlgoHasher::Sha256(h) => format!("sha256:{}", hex::encode(h.finalize())),
            AlgoHasher::Sha512(h) => format!("sha512:{}", hex::encode(h.finalize())),
        }
    }
}

/// Checks that `bytes` hash to `expected` (`sha256:` or `sha512:`), with `expected`'s algorithm.
pub fn verify(bytes: &[u8], expected: &str) -> Result<(), Error> {
    let mut h = AlgoHasher::for_digest(expected)?;
    h.update(bytes);
    let actual = h.finish();
    if actual != expected {
        return Err(Error::ContentMismatch {
            expected: expected.to_string(),
            actual,
        });
    }
    Ok(())
}

/// The first 12 hex characters of any `algo:hex` digest string, as Docker shows layer ids.
pub fn short(digest: &str) -> &str {
    let hex = digest.split_once(':').map_or(digest, |(_, h)| h);
    &hex[..hex.len().min(12)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_digest_and_parse() {
        let d = Digest::of(b"");
        assert_eq!(
            d.as_str(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(d.short(), "e3b0c44298fc");
        assert!("sha256:abc".parse::<Digest>().is_err());
        assert!("md5:e3b0".parse::<Digest>().is_err());
        assert_eq!(d.as_str().parse::<Digest>().unwrap(), d);
        assert_eq!(Digest::from_oci(&d.to_oci()).unwrap(), d);
    }

    #[test]
    fn verifying_reader_rejects_wrong_content() {
        let mut ok = VerifyingReader::new(&b"hello"[..], Digest::of(b"hello"));
        io::copy(&mut ok, &mut io::sink()).unwrap();
        let mut bad = VerifyingReader::new(&b"hellO"[..], Digest::of(b"hello"));
        let err = io::copy(&mut bad, &mut io::sink()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn verify_uses_the_named_algorithm() {
        let d512 = AlgoHasher::for_digest("sha512:").map(|mut h| {
            h.update(b"x");
            h.finish()
        });
        let d512 = d512.unwrap();
        assert!(d512.starts_with("sha512:") && d512.len() == 7 + 128);
        verify(b"x", &d512).unwrap();
        verify(b"x", Digest::of(b"x").as_str()).unwrap();
        let err = verify(b"y", &d512).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("digest mismatch: expected {d512}, got sha512:")),
            "{err}"
        );
        assert!(verify(b"x", "md5:00").is_err());
        assert_eq!(short("sha512:0123456789abcdef"), "0123456789ab");
    }
}
