//! A layer tar written entry by entry, for callers that know a layer's tree without a directory to
//! walk (a COPY planned in memory): the same bytes [`super::write_dir`] would write for that tree
//! (ustar headers, PAX for long names and big ids, `SOURCE_DATE_EPOCH` clamping, no xattrs), provided
//! entries come in its order: a directory before its content, siblings sorted by name bytes.

use std::io::{self, Read, Write};

use tar::EntryType;

use super::LayerOptions;
use super::tarw::{EntryMeta, TarWriter};

/// What an entry is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind {
    Dir,
    File,
    /// A hardlink to an earlier entry (`link` names it).
    HardLink,
    Symlink,
    Char,
    Block,
    Fifo,
}

/// One entry of a layer.
#[derive(Clone, Copy, Debug)]
pub struct Entry<'a> {
    /// Path relative to the layer root, `/`-separated, without a trailing `/` (added for directories).
    pub path: &'a [u8],
    pub kind: EntryKind,
    /// Permission bits (`0o7777`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Seconds since the epoch, before clamping.
    pub mtime: i64,
    /// Content length (regular files only).
    pub size: u64,
    /// A symlink's target or the path a hardlink points at.
    pub link: Option<&'a [u8]>,
    /// Device number of a character or block device.
    pub rdev: u64,
}

/// An mtime as layers store it: clamped to `SOURCE_DATE_EPOCH` (`epoch`), never negative.
pub fn clamp_mtime(mtime: i64, epoch: Option<i64>) -> i64 {
    match epoch {
        Some(e) if mtime > e => e,
        _ => mtime,
    }
    .max(0)
}

/// Writes a layer tar into `W` one [`Entry`] at a time.
pub struct LayerTar<W: Write> {
    tw: TarWriter<W>,
    epoch: Option<i64>,
    name: Vec<u8>,
}

impl<W: Write> LayerTar<W> {
    pub fn new(out: W, opts: &LayerOptions) -> Self {
        LayerTar {
            tw: TarWriter::new(out),
            epoch: opts.source_date_epoch,
            name: Vec::new(),
        }
    }

    /// The mtime an entry gets in the tar ([`clamp_mtime`]).
    pub fn mtime(&self, mtime: i64) -> i64 {
        clamp_mtime(mtime, self.epoch)
    }

    /// Appends one entry; `data` must yield exactly `e.size` bytes for a regular file.
    pub fn append(&mut self, e: &Entry<'_>, data: &mut dyn Read) -> io::Result<()> {
        self.name.clear();
        self.name.extend_from_slice(e.path);
        let (kind, size) = match e.kind {
            EntryKind::Dir => {
                self.name.push(b'/');
                (EntryType::Directory, 0)
            }
            EntryKind::File => (EntryType::Regular, e.size),
            EntryKind::HardLink => (EntryType::Link, 0),
            EntryKind::Symlink => (EntryType::Symlink, 0),
            EntryKind::Char => (EntryType::Char, 0),
            EntryKind::Block => (EntryType::Block, 0),
            EntryKind::Fifo => (EntryType::Fifo, 0),
        };
        let dev = matches!(e.kind, EntryKind::Char | EntryKind::Block)
            .then(|| (rustix::fs::major(e.rdev), rustix::fs::minor(e.rdev)));
        let meta = EntryMeta {
            path: &self.name,
            kind,
            mode: e.mode & 0o7777,
            uid: e.uid as u64,
            gid: e.gid as u64,
            mtime: self.mtime(e.mtime) as u64,
            size,
            link: e.link,
            dev,
            xattrs: &[],
        };
        if size == 0 {
            self.tw.append(&meta, &mut io::empty())
        } else {
            self.tw.append(&meta, data)
        }
    }

    /// Writes the end-of-archive marker and returns the writer.
    pub fn finish(self) -> io::Result<W> {
        self.tw.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    fn set_mtime(p: &std::path::Path, secs: i64) {
        let t = rustix::fs::Timespec {
            tv_sec: secs,
            tv_nsec: 0,
        };
        let ts = rustix::fs::Timestamps {
            last_access: t,
            last_modification: t,
        };
        rustix::fs::utimensat(
            rustix::fs::CWD,
            p,
            &ts,
            rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
        )
        .unwrap();
    }

    /// The same tree written entry by entry and by walking a directory gives the same bytes.
    #[test]
    fn matches_write_dir() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        let long = format!("a/{}", "n".repeat(120));
        fs::create_dir_all(r.join("a/b")).unwrap();
        fs::write(r.join("a/b/f.txt"), "hello").unwrap();
        fs::write(r.join(&long), "").unwrap();
        std::os::unix::fs::symlink("b/f.txt", r.join("a/l")).unwrap();
        for (p, m) in [
            ("a", 0o755),
            ("a/b", 0o750),
            ("a/b/f.txt", 0o640),
            (&long, 0o604),
        ] {
            fs::set_permissions(r.join(p), fs::Permissions::from_mode(m)).unwrap();
        }
        for p in ["a/b/f.txt", &long, "a/l", "a/b", "a"] {
            set_mtime(&r.join(p), 2_000_000_000);
        }
        let md = fs::metadata(r).unwrap();
        let (uid, gid) = (md.uid(), md.gid());
        let opts = LayerOptions {
            source_date_epoch: Some(1_000_000_000),
        };
        let walked = super::super::write_dir(r, &opts, Vec::new()).unwrap();

        let mut lt = LayerTar::new(Vec::new(), &opts);
        let e = |path, kind, mode, size, link| Entry {
            path,
            kind,
            mode,
            uid,
            gid,
            mtime: 2_000_000_000,
            size,
            link,
            rdev: 0,
        };
        let entries = [
            (e(b"a", EntryKind::Dir, 0o755, 0, None), &b""[..]),
            (e(b"a/b", EntryKind::Dir, 0o750, 0, None), b""),
            (e(b"a/b/f.txt", EntryKind::File, 0o640, 5, None), b"hello"),
            (
                e(b"a/l", EntryKind::Symlink, 0o777, 0, Some(b"b/f.txt")),
                b"",
            ),
            (e(long.as_bytes(), EntryKind::File, 0o604, 0, None), b""),
        ];
        for (entry, mut data) in entries {
            lt.append(&entry, &mut data).unwrap();
        }
        assert_eq!(lt.finish().unwrap(), walked);
    }
}
