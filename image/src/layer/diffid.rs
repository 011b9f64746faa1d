//! A layer's diff_id computed from its blob's bytes as they arrive (compressed or not), so a
//! download is checked against the image config while it streams, with no second pass.

use std::io::{self, Sink, Write};

use super::Compression;
use crate::{Digest, HashingWriter};

/// A writer taking a layer blob's bytes: detects gzip or zstd from the first bytes, decompresses,
/// and hashes the uncompressed tar. [`DiffIdWriter::finish`] gives the diff_id.
pub struct DiffIdWriter {
    state: State,
}

enum State {
    /// Fewer bytes than the longest magic number seen so far.
    Head(Vec<u8>),
    Plain(HashingWriter<Sink>),
    Gzip(Box<flate2::write::MultiGzDecoder<HashingWriter<Sink>>>),
    Zstd(Box<zstd::stream::write::Decoder<'static, HashingWriter<Sink>>>),
}

/// Bytes needed to tell the compression apart.
const MAGIC_LEN: usize = 4;

impl Default for DiffIdWriter {
    fn default() -> Self {
        DiffIdWriter::new()
    }
}

impl DiffIdWriter {
    pub fn new() -> DiffIdWriter {
        DiffIdWriter {
            state: State::Head(Vec::new()),
        }
    }

    /// Picks the decoder for `head` and feeds it `head`.
    fn start(head: &[u8]) -> io::Result<State> {
        let sink = HashingWriter::new(io::sink());
        let mut state = if head.starts_with(&[0x1f, 0x8b]) {
            State::Gzip(Box::new(flate2::write::MultiGzDecoder::new(sink)))
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            State::Zstd(Box::new(zstd::stream::write::Decoder::new(sink)?))
        } else {
            State::Plain(sink)
        };
        state.write_all(head)?;
        Ok(state)
    }

    /// The uncompressed content's digest and the compression the blob had. Fails on a corrupt
    /// compressed stream.
    pub fn finish(self) -> io::Result<(Digest, Compression)> {
        let state = match self.state {
            State::Head(h) => Self::start(&h)?,
            s => s,
        };
        let (hasher, c) = match state {
            State::Head(_) => unreachable!("started above"),
            State::Plain(h) => (h, Compression::None),
            State::Gzip(d) => (d.finish()?, Compression::Gzip),
            State::Zstd(mut d) => {
                d.flush()?;
                (d.into_inner(), Compression::Zstd)
            }
        };
        Ok((hasher.finish().1, c))
    }
}

impl State {
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            State::Head(h) => {
                h.extend_from_slice(buf);
                Ok(())
            }
            State::Plain(w) => w.write_all(buf),
            State::Gzip(w) => w.write_all(buf),
            State::Zstd(w) => w.write_all(buf),
        }
    }
}

impl Write for DiffIdWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.state.write_all(buf)?;
        if let State::Head(h) = &mut self.state
            && h.len() >= MAGIC_LEN
        {
            let head = std::mem::take(h);
            self.state = Self::start(&head)?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_gzip_and_zstd_in_small_pieces_give_the_uncompressed_digest() {
        let tar: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let want = Digest::of(&tar);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&tar).unwrap();
        let gz = gz.finish().unwrap();
        let zst = zstd::encode_all(&tar[..], 1).unwrap();
        for (blob, c) in [
            (&tar, Compression::None),
            (&gz, Compression::Gzip),
            (&zst, Compression::Zstd),
        ] {
            let mut w = DiffIdWriter::new();
            for piece in blob.chunks(3) {
                w.write_all(piece).unwrap();
            }
            assert_eq!(w.finish().unwrap(), (want.clone(), c));
        }
        let mut bad = gz.clone();
        let n = bad.len();
        bad[n / 2] ^= 0x10;
        let mut w = DiffIdWriter::new();
        let r = w.write_all(&bad).and_then(|()| w.finish());
        assert!(
            r.map(|(d, _)| d != want).unwrap_or(true),
            "corruption unnoticed"
        );
        assert_eq!(DiffIdWriter::new().finish().unwrap().0, Digest::of(b""));
    }
}
