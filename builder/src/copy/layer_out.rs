//! A planned COPY ([`Tree`]) made real in one pass: each source file is read once (or taken from
//! what hashing already read) and streamed into the layer tar, whose sha256 is the diff_id, and, when
//! a later step needs the files, into a staging directory that then becomes the layer's unpacked form
//! ([`Store::adopt_unpacked`]), so the layer is never extracted again. The files laid down are exactly
//! what extracting the tar gives (same owners, modes, clamped mtimes, directory mtimes set after
//! their content). Without a tar, [`lay_down`] writes a plan into an existing directory.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, Result};
use hoist_image::layer::entries::clamp_mtime;
use hoist_image::layer::{Entry, EntryKind, LayerTar};
use hoist_image::{LayerInfo, LayerOptions, Store};
use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;

use crate::context::{Contents, read_file};
use crate::copy::dest_tree::{FileSource, Kind, LinkKey, Node, Tree};
use crate::copy::lay_pool::{Job, Pool, own, times, write_file};

/// Writes `tree` as a layer blob in `store` and returns it; with `lay`, also lays its files down in
/// that (empty) directory. Content in `contents` is used instead of reading the file again.
pub fn commit(
    store: &Store,
    tree: &Tree,
    contents: Option<&mut Contents>,
    opts: &LayerOptions,
    lay: Option<&Path>,
) -> Result<LayerInfo> {
    let mut pass = Pass {
        tar: Some(LayerTar::new(store.blob_writer()?, opts)),
        lay: lay.map(|p| Lay::open(p, false)).transpose()?,
        contents,
        epoch: opts.source_date_epoch,
        links: HashMap::new(),
    };
    pass.run(tree)?;
    let w = pass.tar.take().expect("tar").finish()?;
    let (digest, size) = w.commit(None)?;
    Ok(LayerInfo::uncompressed(digest, size))
}

/// Writes `tree` into the directory `dir`, replacing what is there (directories merge).
pub fn lay_down(tree: &Tree, dir: &Path) -> Result<()> {
    let mut pass: Pass<'_, io::Sink> = Pass {
        tar: None,
        lay: Some(Lay::open(dir, true)?),
        contents: None,
        epoch: None,
        links: HashMap::new(),
    };
    pass.run(tree)
}

/// Files up to this size are read whole and, when laying down a new tree, created by the pool.
const SMALL: u64 = 1 << 20;

/// The directory files are laid down in.
struct Lay {
    root: PathBuf,
    root_fd: Arc<OwnedFd>,
    /// Entries may exist already (else the directory is new and empty, and small files are created
    /// by `pool`).
    existing: bool,
    pool: Option<Pool>,
    /// Directories' mtimes, set last (creating their content changes them).
    dir_times: Vec<(Vec<u8>, i64)>,
}

impl Lay {
    fn open(root: &Path, existing: bool) -> Result<Lay> {
        let workers = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
        Ok(Lay {
            root: root.to_path_buf(),
            root_fd: Arc::new(
                open_dir(rustix::fs::CWD, root.as_os_str().as_encoded_bytes())
                    .with_context(|| format!("opening {}", root.display()))?,
            ),
            existing,
            pool: (!existing && workers > 1).then(|| Pool::new(workers)),
            dir_times: Vec::new(),
        })
    }

    /// Waits for the pool, then sets the directories' mtimes.
    fn finish(&mut self) -> Result<()> {
        if let Some(p) = self.pool.take() {
            p.finish()?;
        }
        for (path, mtime) in self.dir_times.drain(..).rev() {
            rustix::fs::utimensat(
                &*self.root_fd,
                os(&path),
                &times(mtime),
                AtFlags::SYMLINK_NOFOLLOW,
            )
            .with_context(|| format!("setting the mtime of {}", String::from_utf8_lossy(&path)))?;
        }
        Ok(())
    }
}

struct Pass<'a, W: Write> {
    tar: Option<LayerTar<W>>,
    lay: Option<Lay>,
    contents: Option<&'a mut Contents>,
    epoch: Option<i64>,
    /// The first file of each hardlink group written: its layer path.
    links: HashMap<LinkKey, Vec<u8>>,
}

/// A directory being laid down and the pool worker its small files go to.
struct Dir {
    fd: Arc<OwnedFd>,
    lane: usize,
}

fn os(b: &[u8]) -> &std::ffi::OsStr {
    std::os::unix::ffi::OsStrExt::from_bytes(b)
}

fn open_dir(dir: impl AsFd, name: &[u8]) -> io::Result<OwnedFd> {
    Ok(rustix::fs::openat(
        dir,
        os(name),
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// Copies everything `src` yields into `dst` as it is read.
struct Tee<'a> {
    src: &'a mut dyn Read,
    dst: Option<&'a mut File>,
}

impl Read for Tee<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.src.read(buf)?;
        if let Some(d) = &mut self.dst {
            d.write_all(&buf[..n])?;
        }
        Ok(n)
    }
}

impl<W: Write> Pass<'_, W> {
    fn run(&mut self, tree: &Tree) -> Result<()> {
        let root = self.lay.as_mut().map(|l| Dir {
            fd: l.root_fd.clone(),
            lane: l.pool.as_mut().map_or(0, Pool::lane),
        });
        let mut path = Vec::new();
        let r = self.children(&tree.root, root.as_ref(), &mut path);
        drop(root);
        // Wait for the workers even after an error, so no file is written afterwards.
        let f = self.lay.as_mut().map_or(Ok(()), Lay::finish);
        r.and(f)
    }

    fn children(&mut self, dir: &Node, fd: Option<&Dir>, path: &mut Vec<u8>) -> Result<()> {
        for (name, node) in &dir.children {
            let len = path.len();
            if len > 0 {
                path.push(b'/');
            }
            path.extend_from_slice(name);
            self.entry(node, fd, name, path)
                .with_context(|| format!("writing {}", String::from_utf8_lossy(path)))?;
            path.truncate(len);
        }
        Ok(())
    }

    fn entry(
        &mut self,
        node: &Node,
        dir: Option<&Dir>,
        name: &[u8],
        path: &mut Vec<u8>,
    ) -> Result<()> {
        let mtime = clamp_mtime(node.mtime, self.epoch);
        let mut e = Entry {
            path,
            kind: EntryKind::Dir,
            mode: node.mode,
            uid: node.uid,
            gid: node.gid,
            mtime,
            size: 0,
            link: None,
            rdev: 0,
        };
        if let (Some(dir), true) = (dir, self.lay.as_ref().is_some_and(|l| l.existing)) {
            self.clear(dir.fd.as_fd(), name, node.is_dir(), path)?;
        }
        match &node.kind {
            Kind::Dir => {
                if let Some(t) = &mut self.tar {
                    t.append(&e, &mut io::empty())?;
                }
                let sub = match (dir, &mut self.lay) {
                    (Some(d), Some(lay)) => {
                        match rustix::fs::mkdirat(&*d.fd, os(name), Mode::from_raw_mode(0o700)) {
                            Ok(()) | Err(Errno::EXIST) => {}
                            Err(err) => return Err(err.into()),
                        }
                        let fd = open_dir(&*d.fd, name)?;
                        own(&fd, node.uid, node.gid, node.mode)?;
                        lay.dir_times.push((path.clone(), mtime));
                        Some(Dir {
                            fd: Arc::new(fd),
                            lane: lay.pool.as_mut().map_or(0, Pool::lane),
                        })
                    }
                    _ => None,
                };
                self.children(node, sub.as_ref(), path)?;
            }
            Kind::File(src) => {
                let first = src.link.and_then(|k| self.links.get(&k).cloned());
                if let Some(first) = first {
                    e.kind = EntryKind::HardLink;
                    e.link = Some(&first);
                    if let Some(t) = &mut self.tar {
                        t.append(&e, &mut io::empty())?;
                    }
                    if let (Some(d), Some(l)) = (dir, &self.lay) {
                        rustix::fs::linkat(
                            &*l.root_fd,
                            os(&first),
                            &*d.fd,
                            os(name),
                            AtFlags::empty(),
                        )?;
                    }
                    return Ok(());
                }
                if let Some(k) = src.link {
                    self.links.insert(k, path.clone());
                }
                e.kind = EntryKind::File;
                self.file(&mut e, src, node, dir, name)?;
            }
            Kind::Symlink(target) => {
                e.kind = EntryKind::Symlink;
                e.link = Some(target);
                if let Some(t) = &mut self.tar {
                    t.append(&e, &mut io::empty())?;
                }
                if let Some(d) = dir {
                    rustix::fs::symlinkat(os(target), &*d.fd, os(name))?;
                    own_at(d.fd.as_fd(), name, node, false, mtime)?;
                }
            }
            Kind::Special { file_type, rdev } => {
                let ft = FileType::from_raw_mode(*file_type);
                e.kind = match ft {
                    FileType::CharacterDevice => EntryKind::Char,
                    FileType::BlockDevice => EntryKind::Block,
                    _ => EntryKind::Fifo,
                };
                e.rdev = *rdev;
                if let Some(t) = &mut self.tar {
                    t.append(&e, &mut io::empty())?;
                }
                if let Some(d) = dir {
                    rustix::fs::mknodat(&*d.fd, os(name), ft, Mode::from_raw_mode(0o600), *rdev)?;
                    own_at(d.fd.as_fd(), name, node, true, mtime)?;
                }
            }
        }
        Ok(())
    }

    /// A regular file: its content into the tar and the laid-down copy in one read.
    fn file(
        &mut self,
        e: &mut Entry<'_>,
        src: &FileSource,
        node: &Node,
        dir: Option<&Dir>,
        name: &[u8],
    ) -> Result<()> {
        let opening =
            || File::open(&src.path).with_context(|| format!("opening {}", src.path.display()));
        // A scratch file is moved into place rather than copied.
        if let (Some(d), true) = (dir, src.scratch) {
            if let Some(t) = &mut self.tar {
                e.size = src.size;
                t.append(e, &mut opening()?)?;
            }
            rustix::fs::renameat(rustix::fs::CWD, &src.path, &*d.fd, os(name))?;
            return Ok(own_at(d.fd.as_fd(), name, node, true, e.mtime)?);
        }
        let pooled = self.lay.as_ref().is_some_and(|l| l.pool.is_some());
        let kept = match self.contents.as_mut().and_then(|c| c.take(&src.path)) {
            Some(b) => Some(b),
            None if pooled && dir.is_some() && src.size <= SMALL => Some(
                read_file(&src.path, src.size)
                    .with_context(|| format!("reading {}", src.path.display()))?,
            ),
            None => None,
        };
        if let Some(data) = kept {
            e.size = data.len() as u64;
            if let Some(t) = &mut self.tar {
                t.append(e, &mut &data[..])?;
            }
            if let Some(d) = dir {
                let job = Job {
                    dir: d.fd.clone(),
                    name: name.to_vec(),
                    data,
                    uid: node.uid,
                    gid: node.gid,
                    mode: node.mode,
                    mtime: e.mtime,
                };
                // A file other names will link to must exist before they do: not pooled.
                match self.lay.as_ref().and_then(|l| l.pool.as_ref()) {
                    Some(p) if src.link.is_none() => p.send(d.lane, job)?,
                    _ => write_file(d.fd.as_fd(), &job)?,
                }
            }
            return Ok(());
        }
        // Streamed: a big file (or no copy to make).
        e.size = src.size;
        let mut input = opening()?;
        let mut out = match dir {
            Some(d) => Some(File::from(rustix::fs::openat(
                &*d.fd,
                os(name),
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::from_raw_mode(0o600),
            )?)),
            None => None,
        };
        match &mut self.tar {
            Some(t) => t.append(
                e,
                &mut Tee {
                    src: &mut input,
                    dst: out.as_mut(),
                },
            )?,
            None => {
                if let Some(o) = &mut out {
                    io::copy(&mut input, o)?;
                }
            }
        }
        if let Some(o) = out {
            own(&o, node.uid, node.gid, node.mode)?;
            rustix::fs::futimens(&o, &times(e.mtime))?;
        }
        Ok(())
    }

    /// Makes room for a new entry in an existing directory: anything but a directory meeting a
    /// directory goes.
    fn clear(&self, dir: BorrowedFd<'_>, name: &[u8], is_dir: bool, path: &[u8]) -> Result<()> {
        let st = match rustix::fs::statat(dir, os(name), AtFlags::SYMLINK_NOFOLLOW) {
            Err(Errno::NOENT) => return Ok(()),
            r => r?,
        };
        if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
            if !is_dir {
                let root = &self.lay.as_ref().expect("laying down").root;
                std::fs::remove_dir_all(root.join(os(path)))?;
            }
        } else {
            rustix::fs::unlinkat(dir, os(name), AtFlags::empty())?;
        }
        Ok(())
    }
}

/// Owner, mode (`with_mode`: not for symlinks) and mtime of `name` in `dir`, never following it.
fn own_at(
    dir: BorrowedFd<'_>,
    name: &[u8],
    node: &Node,
    with_mode: bool,
    mtime: i64,
) -> io::Result<()> {
    rustix::fs::chownat(
        dir,
        os(name),
        Some(rustix::fs::Uid::from_raw(node.uid)),
        Some(rustix::fs::Gid::from_raw(node.gid)),
        AtFlags::SYMLINK_NOFOLLOW,
    )?;
    if with_mode {
        rustix::fs::chmodat(
            dir,
            os(name),
            Mode::from_raw_mode(node.mode),
            AtFlags::empty(),
        )?;
    }
    rustix::fs::utimensat(dir, os(name), &times(mtime), AtFlags::SYMLINK_NOFOLLOW)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::{HashIndex, SourceRoot};
    use crate::copy::{CopyOptions, DestFs, Reads, digest_sources, plan_copy, resolve_sources};
    use std::collections::BTreeMap;
    use std::fs;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    /// Every entry under `root`: path -> (type and mode, owner, mtime, content or link target).
    fn snapshot(root: &Path) -> BTreeMap<String, (u32, u32, u32, i64, Vec<u8>)> {
        walkdir::WalkDir::new(root)
            .min_depth(1)
            .into_iter()
            .map(|e| {
                let e = e.unwrap();
                let m = e.path().symlink_metadata().unwrap();
                let body = if m.is_file() {
                    fs::read(e.path()).unwrap()
                } else if m.file_type().is_symlink() {
                    fs::read_link(e.path())
                        .unwrap()
                        .into_os_string()
                        .into_encoded_bytes()
                } else {
                    Vec::new()
                };
                let rel = e
                    .path()
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                (rel, (m.mode(), m.uid(), m.gid(), m.mtime(), body))
            })
            .collect()
    }

    fn context() -> (tempfile::TempDir, SourceRoot) {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        fs::create_dir_all(r.join("src/sub")).unwrap();
        fs::write(r.join("src/a.txt"), "a").unwrap();
        fs::write(r.join("src/sub/b.sh"), "#!/bin/sh\n").unwrap();
        fs::set_permissions(r.join("src/sub/b.sh"), fs::Permissions::from_mode(0o4755)).unwrap();
        std::os::unix::fs::symlink("sub/b.sh", r.join("src/link")).unwrap();
        fs::write(r.join("src/big.bin"), vec![7u8; 3 << 20]).unwrap();
        for p in ["src/a.txt", "src/sub/b.sh", "src/big.bin", "src/sub", "src"] {
            let t = filetime::FileTime::from_unix_time(1_700_000_000, 5);
            filetime::set_file_mtime(r.join(p), t).unwrap();
        }
        let src = SourceRoot::plain(fs::canonicalize(r).unwrap());
        (d, src)
    }

    /// One pass gives the tar that walking the laid-down files gives, and those files are what
    /// extracting that tar gives.
    #[test]
    fn tar_and_unpacked_files_agree() {
        let (_c, src) = context();
        let s = tempfile::tempdir().unwrap();
        let store = Store::open(s.path()).unwrap();
        for (epoch, chown) in [(None, None), (Some(1_600_000_000), Some((1000, 1001)))] {
            let opts = CopyOptions {
                chown,
                ..Default::default()
            };
            let matched = resolve_sources(&src, "src").unwrap();
            let mut reads = Reads::default();
            let idx = HashIndex::default();
            digest_sources(&src, &matched, &opts, &idx, Some(&mut reads)).unwrap();
            let dest = DestFs::plan(Vec::new(), store.tmp_dir());
            plan_copy(&src, &matched, &dest, "/app/", &opts, Some(&reads.walks)).unwrap();
            let lopts = LayerOptions {
                source_date_epoch: epoch,
            };
            let staging = store.staging_dir().unwrap();
            let info = commit(
                &store,
                &dest.tree.borrow(),
                Some(&mut reads.contents),
                &lopts,
                Some(&staging),
            )
            .unwrap();
            let walked =
                hoist_image::layer::write_overlay_upper(&staging, &lopts, Vec::new()).unwrap();
            assert_eq!(hoist_image::Digest::of(&walked), info.diff_id);

            let applied = s.path().join(format!("applied-{}", epoch.is_some()));
            fs::create_dir(&applied).unwrap();
            hoist_image::layer::apply_layer(
                store.open_layer(&info.diff_id).unwrap(),
                &applied,
                hoist_image::layer::ApplyMode::OverlayLower,
            )
            .unwrap();
            let (got, want) = (snapshot(&staging), snapshot(&applied));
            assert_eq!(got, want);
            let (mode, uid, gid, mtime, _) = got["app/sub/b.sh"];
            assert_eq!(mode & 0o7777, 0o4755);
            assert_eq!((uid, gid), chown.unwrap_or((0, 0)));
            // A copied directory keeps its source's mtime; files theirs (clamped when reproducible).
            assert_eq!(mtime, epoch.unwrap_or(1_700_000_000));
            assert_eq!(got["app/sub"].3, epoch.unwrap_or(1_700_000_000));
            assert!(store.adopt_unpacked(&info.diff_id, &staging).unwrap());
            assert_eq!(
                store.unpacked_layer(&info.diff_id).unwrap(),
                s.path().join("unpacked").join(info.diff_id.hex())
            );
        }
    }

    /// Laying a plan down into an existing directory replaces files and merges directories.
    #[test]
    fn lay_down_replaces_and_merges() {
        let (_c, src) = context();
        let out = tempfile::tempdir().unwrap();
        fs::write(out.path().join("a.txt"), "old").unwrap();
        fs::create_dir_all(out.path().join("sub")).unwrap();
        fs::write(out.path().join("sub/keep"), "k").unwrap();
        fs::write(out.path().join("link"), "was a file").unwrap();
        let d = DestFs::new(Vec::new(), out.path().to_path_buf());
        let m = resolve_sources(&src, "src").unwrap();
        crate::copy::copy_into(&src, &m, &d, "/", &CopyOptions::default()).unwrap();
        assert_eq!(fs::read(out.path().join("a.txt")).unwrap(), b"a");
        assert_eq!(fs::read(out.path().join("sub/keep")).unwrap(), b"k");
        assert_eq!(
            fs::read(out.path().join("sub/b.sh")).unwrap(),
            b"#!/bin/sh\n"
        );
        assert_eq!(
            fs::read_link(out.path().join("link")).unwrap(),
            Path::new("sub/b.sh")
        );
    }
}
