//! Directory tree / overlayfs upper directory -> layer tar.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use tar::EntryType;
use walkdir::WalkDir;

use super::tarw::{EntryMeta, TarWriter};
use super::{LayerOptions, WHITEOUT_OPAQUE, WHITEOUT_PREFIX};
use crate::{Error, IoContext, Result};

/// Writes every entry under `root` (not `root` itself) as a layer tar into `out`.
/// Entries are in a stable sorted order; returns `out` after the end-of-archive marker.
pub fn write_dir<W: Write>(root: &Path, opts: &LayerOptions, out: W) -> Result<W> {
    write_tree(root, opts, out, false)
}

/// Writes an overlayfs upper directory as a layer diff: a 0/0 character device becomes a
/// `.wh.NAME` whiteout and a directory marked opaque (`trusted.overlay.opaque=y`, or
/// `user.overlay.opaque=y` when rootless: see [`super::opaque_xattr`]) is followed by a
/// `.wh..wh..opq` entry. Overlay's private xattrs are never archived.
pub fn write_overlay_upper<W: Write>(upper: &Path, opts: &LayerOptions, out: W) -> Result<W> {
    write_tree(upper, opts, out, true)
}

fn write_tree<W: Write>(root: &Path, opts: &LayerOptions, out: W, overlay: bool) -> Result<W> {
    let mut tw = TarWriter::new(out);
    let mut links: HashMap<(u64, u64), Vec<u8>> = HashMap::new();
    let walker = WalkDir::new(root)
        .min_depth(1)
        .follow_links(false)
        .sort_by(|a, b| a.file_name().as_bytes().cmp(b.file_name().as_bytes()));
    for entry in walker {
        let entry = entry.map_err(|e| Error::Io {
            context: format!("walking {}", root.display()),
            error: e.into(),
        })?;
        let path = entry.path();
        let rel = path
            .strip_prefix(root)
            .expect("walkdir yields paths under root");
        let mut name = rel.as_os_str().as_bytes().to_vec();
        let md = entry.metadata().map_err(|e| Error::Io {
            context: format!("stat {}", path.display()),
            error: e.into(),
        })?;
        let ft = md.file_type();
        let mtime = clamp(md.mtime(), opts.source_date_epoch);
        let xattrs = read_xattrs(path)?;
        let wio = |e: io::Error| Error::Io {
            context: format!("archiving {}", path.display()),
            error: e,
        };

        if overlay && ft.is_char_device() && md.rdev() == 0 {
            let mut wh = parent_of(&name);
            wh.extend_from_slice(WHITEOUT_PREFIX.as_bytes());
            wh.extend_from_slice(entry.file_name().as_bytes());
            let meta = simple(&wh, EntryType::Regular, 0, mtime);
            tw.append(&meta, &mut io::empty()).map_err(wio)?;
            continue;
        }
        let mut meta = EntryMeta {
            path: &[],
            kind: EntryType::Regular,
            mode: md.mode() & 0o7777,
            uid: md.uid() as u64,
            gid: md.gid() as u64,
            mtime,
            size: 0,
            link: None,
            dev: None,
            xattrs: &xattrs,
        };
        let link_target;
        if ft.is_dir() {
            name.push(b'/');
            meta.kind = EntryType::Directory;
            meta.path = &name;
            tw.append(&meta, &mut io::empty()).map_err(wio)?;
            if overlay && is_opaque(path) {
                let mut opq = name.clone();
                opq.extend_from_slice(WHITEOUT_OPAQUE.as_bytes());
                tw.append(
                    &simple(&opq, EntryType::Regular, 0, mtime),
                    &mut io::empty(),
                )
                .map_err(wio)?;
            }
            continue;
        } else if ft.is_file() {
            meta.path = &name;
            if md.nlink() > 1 {
                let key = (md.dev(), md.ino());
                if let Some(first) = links.get(&key).cloned() {
                    meta.kind = EntryType::Link;
                    meta.link = Some(&first);
                    tw.append(&meta, &mut io::empty()).map_err(wio)?;
                    continue;
                }
                links.insert(key, name.clone());
            }
            meta.size = md.len();
            let mut f = File::open(path).ctx(|| format!("opening {}", path.display()))?;
            tw.append(&meta, &mut f).map_err(wio)?;
            continue;
        } else if ft.is_symlink() {
            link_target = fs::read_link(path).ctx(|| format!("readlink {}", path.display()))?;
            meta.kind = EntryType::Symlink;
            meta.link = Some(link_target.as_os_str().as_bytes());
        } else if ft.is_char_device() || ft.is_block_device() {
            meta.kind = if ft.is_char_device() {
                EntryType::Char
            } else {
                EntryType::Block
            };
            let dev = md.rdev();
            meta.dev = Some((rustix::fs::major(dev), rustix::fs::minor(dev)));
        } else if ft.is_fifo() {
            meta.kind = EntryType::Fifo;
        } else {
            continue; // sockets are not archived (as Docker)
        }
        meta.path = &name;
        tw.append(&meta, &mut io::empty()).map_err(wio)?;
    }
    tw.finish().ctx(|| "finishing layer tar")
}

fn simple(path: &[u8], kind: EntryType, mode: u32, mtime: u64) -> EntryMeta<'_> {
    EntryMeta {
        path,
        kind,
        mode,
        uid: 0,
        gid: 0,
        mtime,
        size: 0,
        link: None,
        dev: None,
        xattrs: &[],
    }
}

fn parent_of(name: &[u8]) -> Vec<u8> {
    match name.iter().rposition(|b| *b == b'/') {
        Some(i) => name[..=i].to_vec(),
        None => Vec::new(),
    }
}

fn clamp(mtime: i64, epoch: Option<i64>) -> u64 {
    let t = match epoch {
        Some(e) if mtime > e => e,
        _ => mtime,
    };
    t.max(0) as u64
}

/// Opaque as this process's overlay mounts mark it (a container cannot set that name through the
/// overlay; the other name would be an ordinary xattr it wrote).
fn is_opaque(path: &Path) -> bool {
    super::rootless::has_y(path, super::opaque_xattr())
}

/// Extended attributes worth archiving: everything except overlayfs' own and SELinux labels.
pub(crate) fn read_xattrs(path: &Path) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let mut names = vec![0u8; 4096];
    let n = match rustix::fs::llistxattr(path, &mut names[..]) {
        Ok(n) => n,
        Err(rustix::io::Errno::NOTSUP) => return Ok(Vec::new()),
        Err(rustix::io::Errno::RANGE) => {
            let len = rustix::fs::llistxattr_query(path)
                .ctx(|| format!("listxattr {}", path.display()))?;
            names.resize(len, 0);
            rustix::fs::llistxattr(path, &mut names[..])
                .ctx(|| format!("listxattr {}", path.display()))?
        }
        Err(e) => return Err(e).ctx(|| format!("listxattr {}", path.display())),
    };
    let mut out = Vec::new();
    for name in names[..n].split(|b| *b == 0).filter(|s| !s.is_empty()) {
        if name.starts_with(b"trusted.overlay.")
            || name.starts_with(b"user.overlay.")
            || name == b"security.selinux"
        {
            continue;
        }
        let name_str =
            std::str::from_utf8(name).map_err(|_| Error::Other("non-UTF-8 xattr name".into()))?;
        let mut val = vec![0u8; 65536];
        match rustix::fs::lgetxattr(path, name_str, &mut val[..]) {
            Ok(len) => {
                val.truncate(len);
                out.push((name.to_vec(), val));
            }
            Err(rustix::io::Errno::NODATA) => {}
            Err(e) => return Err(e).ctx(|| format!("getxattr {} {}", path.display(), name_str)),
        }
    }
    out.sort();
    Ok(out)
}
