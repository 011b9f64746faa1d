//! Archives ADD unpacks: recognised by content (a tar, possibly gzip/bzip2/xz/zstd compressed, as
//! BuildKit decides), never by name, and unpacked without leaving the destination.

use std::fs;
use std::io::{self, Read};
use std::path::Path;

use anyhow::{Result, bail};

/// Compressions BuildKit (moby's archive package) recognises by their magic bytes.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Compression {
    None,
    Gzip,
    Bzip2,
    Xz,
    Zstd,
}

fn compression_of(path: &Path) -> io::Result<Compression> {
    let mut head = [0u8; 6];
    let mut f = fs::File::open(path)?;
    let mut n = 0;
    while n < head.len() {
        let r = f.read(&mut head[n..])?;
        if r == 0 {
            break;
        }
        n += r;
    }
    let h = &head[..n];
    Ok(if h.starts_with(&[0x1f, 0x8b, 0x08]) {
        Compression::Gzip
    } else if h.starts_with(b"BZh") {
        Compression::Bzip2
    } else if h.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        Compression::Xz
    } else if h.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Compression::Zstd
    } else {
        Compression::None
    })
}

/// The file's content, decompressed by its magic bytes.
fn decompressed(path: &Path) -> io::Result<Box<dyn Read>> {
    let f = io::BufReader::new(fs::File::open(path)?);
    Ok(match compression_of(path)? {
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(f)),
        Compression::Bzip2 => Box::new(bzip2::read::MultiBzDecoder::new(f)),
        Compression::Xz => Box::new(xz2::read::XzDecoder::new_multi_decoder(f)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(f)?),
        Compression::None => Box::new(f),
    })
}

/// Whether ADD unpacks `path`: as BuildKit decides, by content and never by name, when its
/// (decompressed) content starts with a valid tar header. Anything else (an empty file, a
/// compressed file that is not a tar, a `.tar` of text, a bad header) is copied as it is.
pub fn is_archive(path: &Path) -> bool {
    let Ok(r) = decompressed(path) else {
        return false;
    };
    let mut ar = tar::Archive::new(r);
    ar.entries()
        .is_ok_and(|mut it| matches!(it.next(), Some(Ok(_))))
}

/// Unpacks a (possibly compressed) tar into `dir` with its modes, mtimes (directories' set after
/// their content) and, with `owners`, owners; entries never land outside it.
pub fn unpack_archive(path: &Path, dir: &Path, owners: bool) -> Result<()> {
    let mut ar = tar::Archive::new(decompressed(path)?);
    ar.set_preserve_permissions(true);
    ar.set_preserve_ownerships(owners);
    ar.set_preserve_mtime(true);
    ar.set_overwrite(true);
    ar.set_unpack_xattrs(false);
    let mut dir_times = Vec::new();
    for entry in ar.entries()? {
        let mut entry = entry?;
        let name = entry.path()?.into_owned();
        if !entry.unpack_in(dir)? {
            bail!(
                "{}: archive entry {} escapes the destination",
                path.display(),
                name.display()
            );
        }
        if entry.header().entry_type().is_dir() {
            let mtime = entry.header().mtime().unwrap_or(0) as i64;
            dir_times.push((dir.join(&name), mtime));
        }
    }
    for (p, t) in dir_times.into_iter().rev() {
        let t = filetime::FileTime::from_unix_time(t, 0);
        filetime::set_symlink_file_times(&p, t, t)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archives_are_recognised_by_content() {
        let d = tempfile::tempdir().unwrap();
        let p = |n: &str| d.path().join(n);
        let tar_of = |dir: &Path| {
            let mut b = tar::Builder::new(Vec::new());
            fs::write(dir.join("in"), "in").unwrap();
            b.append_path_with_name(dir.join("in"), "in").unwrap();
            b.into_inner().unwrap()
        };
        let tar = tar_of(d.path());
        let gz = |data: &[u8]| {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            std::io::Write::write_all(&mut e, data).unwrap();
            e.finish().unwrap()
        };
        fs::write(p("a.tar"), &tar).unwrap();
        fs::write(p("named-anything"), gz(&tar)).unwrap();
        fs::write(p("zst"), zstd::encode_all(&tar[..], 1).unwrap()).unwrap();
        fs::write(p("text.gz"), gz(b"just text\n")).unwrap();
        fs::write(
            p("text.zst"),
            zstd::encode_all(&b"just text\n"[..], 1).unwrap(),
        )
        .unwrap();
        fs::write(p("plain.tar"), "not a tar\n").unwrap();
        fs::write(p("empty.tar.gz"), "").unwrap();
        fs::write(p("short.tar"), &tar[..100]).unwrap();
        fs::write(p("zeros.tar"), vec![0u8; 1024]).unwrap();
        let mut bad = tar.clone();
        bad[148..152].copy_from_slice(b"ZZZZ");
        fs::write(p("badsum.tar"), bad).unwrap();
        for yes in ["a.tar", "named-anything", "zst"] {
            assert!(is_archive(&p(yes)), "{yes}");
        }
        for no in [
            "text.gz",
            "text.zst",
            "plain.tar",
            "empty.tar.gz",
            "short.tar",
            "zeros.tar",
            "badsum.tar",
            "in",
        ] {
            assert!(!is_archive(&p(no)), "{no}");
        }
    }
}
