//! Layers: tar streams with OCI whiteouts.
//!
//! - [`write_dir`] / [`write_overlay_upper`] turn a directory tree or an overlayfs upper directory
//!   into a layer tar (stable sorted order, PAX for long names and xattrs, hardlinks kept,
//!   `SOURCE_DATE_EPOCH` clamping) while hashing it (the diff_id) in the same pass.
//! - [`LayerTar`] writes the same tar entry by entry, for a tree known without a directory to walk.
//! - [`compress`] / [`Decompressor`]: gzip and zstd, auto-detected on read.
//! - [`apply`]: extract a layer onto a directory, safely (never outside the target).
//! - Rootless (in a user namespace): overlay's xattrs are `user.overlay.*` ([`opaque_xattr`]), device
//!   nodes are skipped with a warning, and only mapped ids can own files.

pub mod apply;
mod diffid;
pub mod entries;
mod pargz;
mod rootless;
mod tarcheck;
mod tarw;
mod write;

use std::io::{self, BufRead, BufReader, Read, Write};

use crate::{Digest, Error, Result};

pub use apply::{ApplyMode, apply_layer};
pub use diffid::DiffIdWriter;
pub use entries::{Entry, EntryKind, LayerTar};
pub use rootless::{in_user_namespace, is_opaque, opaque_xattr};
pub use tarcheck::copy_checked_tar;
pub use write::{write_dir, write_overlay_upper};

/// The OCI whiteout prefix (`.wh.NAME` deletes NAME from lower layers).
pub const WHITEOUT_PREFIX: &str = ".wh.";
/// The OCI opaque-directory marker (hides every lower entry of its directory).
pub const WHITEOUT_OPAQUE: &str = ".wh..wh..opq";

/// How a layer blob is (or should be) compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    /// The OCI layer media type for this compression.
    pub fn media_type(self) -> &'static str {
        match self {
            Compression::None => crate::media_type::LAYER,
            Compression::Gzip => crate::media_type::LAYER_GZIP,
            Compression::Zstd => crate::media_type::LAYER_ZSTD,
        }
    }

    /// The compression a layer media type implies (OCI or Docker).
    pub fn from_media_type(mt: &str) -> Compression {
        if mt.ends_with("+zstd") || mt.ends_with(".zstd") {
            Compression::Zstd
        } else if mt.ends_with("gzip") {
            Compression::Gzip
        } else {
            Compression::None
        }
    }

    /// Short name used in file names and flags: `none`, `gzip`, `zstd`.
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
        }
    }
}

/// Options for writing a layer.
#[derive(Clone, Debug, Default)]
pub struct LayerOptions {
    /// Clamp every mtime to at most this (seconds since the epoch) for reproducible layers.
    pub source_date_epoch: Option<i64>,
}

impl LayerOptions {
    /// Options from the environment (`SOURCE_DATE_EPOCH`).
    pub fn from_env() -> LayerOptions {
        LayerOptions {
            source_date_epoch: source_date_epoch(),
        }
    }
}

/// `SOURCE_DATE_EPOCH` from the environment, if set to an integer.
pub fn source_date_epoch() -> Option<i64> {
    std::env::var("SOURCE_DATE_EPOCH").ok()?.trim().parse().ok()
}

/// The result of writing a layer: its uncompressed digest and size, and the stored blob.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerInfo {
    /// sha256 of the uncompressed tar (what goes in the config's `rootfs.diff_ids`).
    pub diff_id: Digest,
    /// Uncompressed tar size.
    pub size: u64,
    /// The blob as referenced from a manifest (digest, size, media type).
    pub blob_digest: Digest,
    pub blob_size: u64,
    pub compression: Compression,
}

impl LayerInfo {
    /// A layer stored uncompressed: its blob is the tar itself.
    pub fn uncompressed(diff_id: Digest, size: u64) -> LayerInfo {
        LayerInfo {
            blob_digest: diff_id.clone(),
            blob_size: size,
            diff_id,
            size,
            compression: Compression::None,
        }
    }

    /// The manifest descriptor of this layer's blob.
    pub fn descriptor(&self) -> oci_spec::image::Descriptor {
        oci_spec::image::Descriptor::new(
            self.compression.media_type().into(),
            self.blob_size,
            self.blob_digest.to_oci(),
        )
    }
}

/// Layers at least this big are gzip-compressed on all cores (pigz-style blocks, incompressible ones
/// stored: see `pargz`).
pub const PARALLEL_GZIP_THRESHOLD: u64 = 8 << 20;

/// Compresses `input` into `out` (gzip level 6 / zstd level 3), on all cores.
pub fn compress<R: Read, W: Write + Send + 'static>(
    mut input: R,
    c: Compression,
    out: W,
) -> io::Result<W> {
    let mut enc = Compressor::new(out, c, u64::MAX)?;
    io::copy(&mut input, &mut enc)?;
    enc.finish()
}

/// A streaming compressor. Gzip runs on all cores for large inputs (`size_hint`, bytes); zstd
/// always uses its own worker threads.
pub enum Compressor<W: Write + Send + 'static> {
    None(W),
    Gzip(flate2::write::GzEncoder<W>),
    ParGzip(gzp::par::compress::ParCompress<'static, pargz::StoringGzip, W>),
    Zstd(zstd::stream::write::Encoder<'static, W>),
}

impl<W: Write + Send + 'static> Compressor<W> {
    pub fn new(out: W, c: Compression, size_hint: u64) -> io::Result<Self> {
        let threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        Ok(match c {
            Compression::None => Compressor::None(out),
            // The block layout depends only on the size threshold, not on the core count, so the
            // compressed digest of a layer is the same on every machine. Incompressible blocks are
            // stored, not deflated (see [`pargz`]).
            Compression::Gzip if size_hint >= PARALLEL_GZIP_THRESHOLD => {
                let par = gzp::par::compress::ParCompressBuilder::<pargz::StoringGzip>::new()
                    .num_threads(threads)
                    .map_err(io::Error::other)?
                    .compression_level(gzp::Compression::new(6))
                    .from_writer(out);
                Compressor::ParGzip(par)
            }
            Compression::Gzip => Compressor::Gzip(flate2::write::GzEncoder::new(
                out,
                flate2::Compression::new(6),
            )),
            Compression::Zstd => {
                let mut enc = zstd::stream::write::Encoder::new(out, 3)?;
                enc.multithread(threads as u32)?;
                Compressor::Zstd(enc)
            }
        })
    }

    /// Flushes the compressed stream's trailer and returns the inner writer.
    pub fn finish(self) -> io::Result<W> {
        match self {
            Compressor::None(mut w) => {
                w.flush()?;
                Ok(w)
            }
            Compressor::Gzip(e) => e.finish(),
            Compressor::ParGzip(mut p) => gzp::ZWriter::finish(&mut p).map_err(io::Error::other),
            Compressor::Zstd(e) => e.finish(),
        }
    }
}

impl<W: Write + Send + 'static> Write for Compressor<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Compressor::None(w) => w.write(buf),
            Compressor::Gzip(w) => w.write(buf),
            Compressor::ParGzip(w) => w.write(buf),
            Compressor::Zstd(w) => w.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Compressor::None(w) => w.flush(),
            Compressor::Gzip(w) => w.flush(),
            Compressor::ParGzip(w) => w.flush(),
            Compressor::Zstd(w) => w.flush(),
        }
    }
}

/// Writes everything to two writers (an uncompressed blob and a compressor, for one-pass commits).
pub struct Tee<A, B>(pub A, pub B);

impl<A: Write, B: Write> Write for Tee<A, B> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write_all(buf)?;
        self.1.write_all(buf)?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()?;
        self.1.flush()
    }
}

/// Detects the compression of a stream from its first bytes.
pub fn detect<R: BufRead>(r: &mut R) -> Result<Compression> {
    let head = r.fill_buf().map_err(|e| Error::Io {
        context: "reading layer".into(),
        error: e,
    })?;
    Ok(if head.starts_with(&[0x1f, 0x8b]) {
        Compression::Gzip
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Compression::Zstd
    } else if head.starts_with(b"BZh") {
        return Err(Error::Other(
            "bzip2-compressed archives are not supported; decompress first".into(),
        ));
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        return Err(Error::Other(
            "xz-compressed archives are not supported; decompress first".into(),
        ));
    } else {
        Compression::None
    })
}

/// Wraps `r` in the decompressor its first bytes call for: gzip, zstd, bzip2, xz or none (the
/// formats Docker's `load` and `import` accept; layers in OCI media types are only gzip or zstd).
pub fn decompress<'a, R: Read + 'a>(r: R) -> Result<Box<dyn Read + 'a>> {
    let mut br = BufReader::with_capacity(256 * 1024, r);
    let head = br.fill_buf().map_err(|e| Error::Io {
        context: "reading archive".into(),
        error: e,
    })?;
    if head.starts_with(b"BZh") {
        return Ok(Box::new(bzip2::bufread::MultiBzDecoder::new(br)));
    }
    if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        return Ok(Box::new(xz2::bufread::XzDecoder::new_multi_decoder(br)));
    }
    Ok(match detect(&mut br)? {
        Compression::None => Box::new(br),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(br)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(br).map_err(
            |e| Error::Io {
                context: "starting zstd".into(),
                error: e,
            },
        )?),
    })
}
