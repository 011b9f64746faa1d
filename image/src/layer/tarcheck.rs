//! A tar stream copied only if it is a whole, well-formed tar archive: what `docker import` accepts
//! (it refuses an invalid header and a stream that ends inside an entry).

use std::io::{self, Read, Write};

/// Copies the tar stream `r` to `out` while parsing it: every header must be valid and every entry
/// complete. Returns the bytes copied. On an error `out` holds a prefix only, for the caller to
/// discard.
/// Errors are Docker's: `unexpected EOF` for a stream that ends inside an entry, `invalid tar
/// header: ...` for a block that is no tar header; errors reading `r` (a corrupt compressed
/// stream) or writing `out` pass through as they are.
pub fn copy_checked_tar<R: Read, W: Write>(r: R, out: W) -> io::Result<u64> {
    let mut tee = Tee {
        r,
        w: out,
        n: 0,
        io_failed: false,
    };
    let parsed = (|| {
        let mut archive = tar::Archive::new(&mut tee);
        for entry in archive.entries()? {
            // Reading the data through (and then the next header, past it) fails on a stream that
            // ends inside an entry.
            io::copy(&mut entry?, &mut io::sink())?;
        }
        Ok(())
    })();
    if let Err(e) = parsed {
        return Err(if tee.io_failed {
            e
        } else if e.kind() == io::ErrorKind::UnexpectedEof
            || e.to_string().contains("EOF")
            || e.to_string().contains("entire block")
        {
            io::Error::new(io::ErrorKind::UnexpectedEof, "unexpected EOF")
        } else {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("invalid tar header: {e}"),
            )
        });
    }
    // The end-of-archive blocks and anything after them.
    io::copy(&mut tee, &mut io::sink())?;
    Ok(tee.n)
}

/// A reader that writes what it reads to `w`, noting when either side fails.
struct Tee<R, W> {
    r: R,
    w: W,
    n: u64,
    io_failed: bool,
}

impl<R: Read, W: Write> Read for Tee<R, W> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self
            .r
            .read(buf)
            .and_then(|n| self.w.write_all(&buf[..n]).map(|()| n))
            .inspect_err(|_| self.io_failed = true)?;
        self.n += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_of(files: &[(&str, usize)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, size) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(*size as u64);
            h.set_mode(0o644);
            h.set_cksum();
            b.append_data(&mut h, name, &vec![7u8; *size][..]).unwrap();
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn whole_archives_copy_byte_for_byte_and_broken_ones_fail() {
        let good = tar_of(&[("a", 10), ("b", 5000)]);
        let mut out = Vec::new();
        assert_eq!(
            copy_checked_tar(&good[..], &mut out).unwrap(),
            good.len() as u64
        );
        assert_eq!(out, good);
        assert_eq!(copy_checked_tar(&[][..], io::sink()).unwrap(), 0);
        // Cut inside b's data, inside b's header, and not a tar at all.
        for cut in [&good[..3000], &good[..1100]] {
            let e = copy_checked_tar(cut, io::sink()).unwrap_err();
            assert_eq!(e.to_string(), "unexpected EOF", "{}", cut.len());
        }
        let garbage: Vec<u8> = (0..3000u32).map(|i| (i * 7 % 251) as u8 + 1).collect();
        let e = copy_checked_tar(&garbage[..], io::sink()).unwrap_err();
        assert!(e.to_string().starts_with("invalid tar header"), "{e}");
    }
}
