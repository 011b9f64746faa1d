//! The block format of hoist's parallel gzip: gzp's pigz-style gzip (fixed 128 KiB blocks, each
//! ending in a sync flush, so the output never depends on the core count), except that a block
//! whose samples do not compress is written as deflate stored blocks instead of being searched at
//! level 6. Random or already compressed content (media, archives, `.jar`/`.gz` files in a layer)
//! then costs a copy rather than a deflate (~40 MB/s per core on such data), for the same size.

use gzp::deflate::Gzip;
use gzp::{Compression, FormatSpec, GzpError};

/// Bytes compressed from each of three places of a block to judge it.
const SAMPLE: usize = 4096;

/// A block is stored when its samples shrink by less than 1/32 at level 2 (zlib-rs 0.6's level 1,
/// deflate_quick, panicked finishing a random sample into the sample's size plus 64 bytes).
fn incompressible(block: &[u8], probe: &mut flate2::Compress) -> Result<bool, GzpError> {
    if block.len() < 4 * SAMPLE {
        return Ok(false);
    }
    let mid = block.len() / 2 - SAMPLE / 2;
    let mut sampled = 0;
    let mut out = Vec::with_capacity(SAMPLE + 64);
    let mut produced = 0;
    for at in [0, mid, block.len() - SAMPLE] {
        out.clear();
        probe.reset();
        probe.compress_vec(
            &block[at..at + SAMPLE],
            &mut out,
            flate2::FlushCompress::Finish,
        )?;
        sampled += SAMPLE;
        produced += out.len();
    }
    Ok(produced >= sampled - sampled / 32)
}

/// `input` as deflate stored blocks (RFC 1951 3.2.4: a byte-aligned header, LEN, NLEN, the bytes),
/// the last one final when `is_last`. Every block gzp writes ends byte-aligned (a sync flush), so a
/// stored run fits between them.
fn stored(input: &[u8], is_last: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len() + input.len() / 65535 * 5 + 5);
    let mut chunks = input.chunks(65535).peekable();
    if chunks.peek().is_none() {
        out.extend_from_slice(&[u8::from(is_last), 0, 0, 0xff, 0xff]);
    }
    while let Some(c) = chunks.next() {
        let last = is_last && chunks.peek().is_none();
        let len = c.len() as u16;
        out.push(u8::from(last));
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(c);
    }
    out
}

/// gzp's gzip with incompressible blocks stored (see the module docs).
#[derive(Clone, Copy, Debug)]
pub struct StoringGzip(Gzip);

/// Per-thread encoders: the level's, and level 1 for samples.
pub struct Encoders {
    deflate: flate2::Compress,
    probe: flate2::Compress,
}

impl FormatSpec for StoringGzip {
    type C = gzp::check::Crc32;
    type Compressor = Encoders;

    fn new() -> Self {
        StoringGzip(Gzip::new())
    }

    fn needs_dict(&self) -> bool {
        self.0.needs_dict()
    }

    fn create_compressor(&self, level: Compression) -> Result<Encoders, GzpError> {
        Ok(Encoders {
            deflate: self.0.create_compressor(level)?,
            probe: flate2::Compress::new(Compression::new(2), false),
        })
    }

    fn encode(
        &self,
        input: &[u8],
        enc: &mut Encoders,
        level: Compression,
        dict: Option<&bytes::Bytes>,
        is_last: bool,
    ) -> Result<Vec<u8>, GzpError> {
        if incompressible(input, &mut enc.probe)? {
            Ok(stored(input, is_last))
        } else {
            self.0.encode(input, &mut enc.deflate, level, dict, is_last)
        }
    }

    fn header(&self, level: Compression) -> Vec<u8> {
        self.0.header(level)
    }

    fn footer(&self, check: &Self::C) -> Vec<u8> {
        self.0.footer(check)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut w =
            super::super::Compressor::new(Vec::new(), super::super::Compression::Gzip, u64::MAX)
                .unwrap();
        w.write_all(data).unwrap();
        w.finish().unwrap()
    }

    fn gunzip(gz: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(gz)
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    /// Random blocks are stored (a few bytes of framing per 64 KiB), text blocks deflated, both in
    /// one stream that any gzip reader takes.
    #[test]
    fn stores_random_blocks_and_deflates_the_rest() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let random: Vec<u8> = (0..3 << 20)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let text = b"hoist layer line of text 0123456789\n".repeat(90_000);
        let gz = gzip(&random);
        assert!(
            gz.len() < random.len() + random.len() / 1000,
            "{}",
            gz.len()
        );
        assert_eq!(gunzip(&gz), random);
        let mixed: Vec<u8> = [&random[..], &text[..], &random[..1 << 20]].concat();
        let gz = gzip(&mixed);
        assert!(gz.len() < random.len() + (1 << 20) + text.len() / 10);
        assert_eq!(gunzip(&gz), mixed);
        assert_eq!(gzip(&mixed), gz);
        // An empty final block, and chunks of exactly 64 KiB - 1.
        assert_eq!(gunzip(&gzip(b"")), b"");
        let mut probe = flate2::Compress::new(Compression::new(2), false);
        assert!(incompressible(&random[..128 << 10], &mut probe).unwrap());
        assert!(!incompressible(&text[..128 << 10], &mut probe).unwrap());
    }
}
