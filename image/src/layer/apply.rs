//! Applying a layer tar onto a directory.
//!
//! Safety: every path is resolved with `openat2(RESOLVE_IN_ROOT)` against the target directory, so a
//! symlink in a parent path (`a -> /etc` then `a/passwd`) resolves *inside* the target like a chroot
//! would, never onto the host; `..` components are rejected; hardlink targets are resolved inside the
//! target too (an absolute target means "from the layer root"); the final component of an entry is
//! never followed (`O_NOFOLLOW`, `AT_SYMLINK_NOFOLLOW`), and xattrs that could steer overlayfs
//! (`trusted.overlay.*`, `user.overlay.*`) are dropped.
//!
//! Rootless (hoist as root of a user namespace): device nodes cannot be created and are skipped with
//! a warning, as podman does (whiteouts, 0/0 character devices, can be made since Linux 5.8); a file
//! owned by an id outside the namespace's mapping is an error naming it, except with a single
//! mapping (no subordinate ids), where everything stays owned by root, with a warning.

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags, Timestamps, XattrFlags};
use rustix::io::Errno;
use tar::EntryType;

use super::{WHITEOUT_OPAQUE, WHITEOUT_PREFIX, decompress};
use crate::{Digest, Error, HashingReader, IoContext, Result};

/// How whiteouts are materialised.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApplyMode {
    /// Flatten: `.wh.NAME` deletes NAME, `.wh..wh..opq` empties the directory of lower entries.
    Merge,
    /// Extract a single layer for use as an overlayfs lowerdir: `.wh.NAME` becomes a 0/0 character
    /// device and `.wh..wh..opq` the `trusted.overlay.opaque=y` xattr (as containerd does), or
    /// `user.overlay.opaque=y` when rootless ([`super::opaque_xattr`]).
    OverlayLower,
}

/// Applies the layer in `reader` (uncompressed, gzip or zstd; auto-detected) onto `target`.
/// Returns the diff_id (sha256 of the uncompressed tar) and its size.
pub fn apply_layer<R: Read>(reader: R, target: &Path, mode: ApplyMode) -> Result<(Digest, u64)> {
    let root = rustix::fs::open(
        target,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ctx(|| format!("opening {}", target.display()))?;
    let mut hr = HashingReader::new(decompress(reader)?);
    {
        let mut ar = tar::Archive::new(&mut hr);
        let mut ap = Applier {
            root,
            mode,
            created: HashSet::new(),
            dir_times: Vec::new(),
            cache: None,
            privileged: rustix::process::geteuid().is_root(),
            ns: super::rootless::namespace(),
            skipped_devices: Skipped::default(),
            root_owned: Skipped::default(),
            buf: vec![0; 256 * 1024],
        };
        let entries = ar.entries().ctx(|| "reading layer")?;
        for e in entries {
            let mut e = e.ctx(|| "reading layer entry")?;
            ap.entry(&mut e)?;
        }
        ap.finish()?;
        ap.skipped_devices
            .warn("device nodes of a layer skipped (a user namespace cannot create them)");
        ap.root_owned.warn(
            "files of a layer left owned by root (without subordinate ids only root is mapped)",
        );
    }
    io::copy(&mut hr, &mut io::sink()).ctx(|| "reading layer")?;
    let (_, digest, size) = hr.finish();
    Ok((digest, size))
}

type Comps = Vec<Vec<u8>>;

struct Applier {
    root: OwnedFd,
    mode: ApplyMode,
    /// Paths written by this layer (kept by an opaque marker).
    created: HashSet<Vec<u8>>,
    dir_times: Vec<(Comps, u64)>,
    cache: Option<(Comps, OwnedFd)>,
    privileged: bool,
    ns: super::rootless::Namespace,
    skipped_devices: Skipped,
    root_owned: Skipped,
    buf: Vec<u8>,
}

/// Entries a rootless extraction could not reproduce exactly: a count and the first one.
#[derive(Default)]
struct Skipped {
    count: usize,
    first: Option<String>,
}

impl Skipped {
    fn add(&mut self, path: &[u8]) {
        self.count += 1;
        self.first
            .get_or_insert_with(|| String::from_utf8_lossy(path).into_owned());
    }

    /// One warning line for the whole layer.
    fn warn(&self, what: &str) {
        if let Some(first) = &self.first {
            eprintln!(
                "hoist: warning: rootless: {} {what}, e.g. /{}",
                self.count,
                first.trim_start_matches("./")
            );
        }
    }
}

fn unsafe_path(path: &[u8], why: &str) -> Error {
    Error::UnsafePath {
        path: String::from_utf8_lossy(path).into_owned(),
        why: why.into(),
    }
}

/// Splits a tar path into clean components; rejects `..`.
fn clean(path: &[u8]) -> Result<Comps> {
    let mut out = Vec::new();
    for c in path.split(|b| *b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => return Err(unsafe_path(path, "contains a '..' component")),
            c => out.push(c.to_vec()),
        }
    }
    Ok(out)
}

fn join(comps: &[Vec<u8>]) -> Vec<u8> {
    comps.join(&b'/')
}

fn os(b: &[u8]) -> &std::ffi::OsStr {
    std::os::unix::ffi::OsStrExt::from_bytes(b)
}

fn proc_path(dir: BorrowedFd<'_>, name: &[u8]) -> std::path::PathBuf {
    let mut p = std::path::PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd()));
    p.push(os(name));
    p
}

const IN_ROOT: ResolveFlags = ResolveFlags::IN_ROOT.union(ResolveFlags::NO_MAGICLINKS);

impl Applier {
    fn entry<R: Read>(&mut self, e: &mut tar::Entry<'_, R>) -> Result<()> {
        let raw = e.path_bytes().into_owned();
        let comps = clean(&raw)?;
        let Some((name, parent_comps)) = comps.split_last() else {
            return Ok(()); // the root itself
        };
        let kind = e.header().entry_type();
        let full = join(&comps);
        let ctx = || format!("extracting {}", String::from_utf8_lossy(&raw));

        if let Some(hidden) = name.strip_prefix(WHITEOUT_PREFIX.as_bytes()) {
            let parent = self.dir(parent_comps, true)?;
            if name == WHITEOUT_OPAQUE.as_bytes() {
                return self.opaque(parent.as_fd(), parent_comps);
            }
            if hidden.is_empty() || hidden == b"." || hidden == b".." || hidden.contains(&b'/') {
                return Err(unsafe_path(&raw, "invalid whiteout"));
            }
            remove(parent.as_fd(), hidden, false)?;
            if self.mode == ApplyMode::OverlayLower {
                rustix::fs::mknodat(
                    &parent,
                    os(hidden),
                    FileType::CharacterDevice,
                    Mode::empty(),
                    0,
                )
                .ctx(ctx)?;
                let mut p = parent_comps.to_vec();
                p.push(hidden.to_vec());
                self.created.insert(join(&p));
            }
            return Ok(());
        }

        let parent = self.dir(parent_comps, true)?;
        let pfd = parent.as_fd();
        let hdr = e.header();
        let perm = hdr.mode().ctx(ctx)? & 0o7777;
        let uid = hdr.uid().ctx(ctx)?;
        let gid = hdr.gid().ctx(ctx)?;
        let mtime = hdr.mtime().ctx(ctx)?;
        let dev = device(hdr)?;
        let xattrs = entry_xattrs(e)?;
        self.created.insert(full.clone());

        match kind {
            EntryType::Directory => {
                let existing = rustix::fs::statat(pfd, os(name), AtFlags::SYMLINK_NOFOLLOW);
                match existing {
                    Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {}
                    Ok(_) => {
                        remove(pfd, name, false)?;
                        rustix::fs::mkdirat(pfd, os(name), Mode::from_raw_mode(0o700)).ctx(ctx)?;
                    }
                    Err(Errno::NOENT) => {
                        rustix::fs::mkdirat(pfd, os(name), Mode::from_raw_mode(0o700)).ctx(ctx)?
                    }
                    Err(err) => return Err(err).ctx(ctx),
                }
                self.set_meta(pfd, name, &raw, uid, gid, Some(perm), &xattrs)
                    .map_err(|e| wrap(e, &raw))?;
                self.dir_times.push((comps.clone(), mtime));
            }
            EntryType::Regular | EntryType::Continuous => {
                remove(pfd, name, false)?;
                let fd = rustix::fs::openat(
                    pfd,
                    os(name),
                    OFlags::WRONLY
                        | OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o600),
                )
                .ctx(ctx)?;
                let mut f = File::from(fd);
                super::tarw::copy_buf(e, &mut f, &mut self.buf).ctx(ctx)?;
                self.set_meta(pfd, name, &raw, uid, gid, Some(perm), &xattrs)
                    .map_err(|e| wrap(e, &raw))?;
                let ts = times(mtime);
                rustix::fs::futimens(&f, &ts).ctx(ctx)?;
            }
            EntryType::Link => {
                let target = e
                    .link_name_bytes()
                    .ok_or_else(|| unsafe_path(&raw, "hardlink without target"))?;
                let tcomps = clean(&target)?;
                let Some((tname, tparent)) = tcomps.split_last() else {
                    return Err(unsafe_path(&raw, "hardlink to the root directory"));
                };
                if tcomps == comps {
                    return Ok(());
                }
                let tdir = self.dir(tparent, false)?;
                remove(pfd, name, false)?;
                rustix::fs::linkat(&tdir, os(tname), pfd, os(name), AtFlags::empty()).ctx(ctx)?;
            }
            EntryType::Symlink => {
                let target = e
                    .link_name_bytes()
                    .ok_or_else(|| unsafe_path(&raw, "symlink without target"))?;
                remove(pfd, name, false)?;
                rustix::fs::symlinkat(os(&target), pfd, os(name)).ctx(ctx)?;
                self.set_meta(pfd, name, &raw, uid, gid, None, &xattrs)
                    .map_err(|e| wrap(e, &raw))?;
                rustix::fs::utimensat(pfd, os(name), &times(mtime), AtFlags::SYMLINK_NOFOLLOW)
                    .ctx(ctx)?;
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                remove(pfd, name, false)?;
                let (ft, dev) = match kind {
                    EntryType::Char => (FileType::CharacterDevice, dev),
                    EntryType::Block => (FileType::BlockDevice, dev),
                    _ => (FileType::Fifo, 0),
                };
                match rustix::fs::mknodat(pfd, os(name), ft, Mode::from_raw_mode(0o600), dev) {
                    Ok(()) => {}
                    // Unprivileged or rootless: device nodes cannot be made; skip them as podman does.
                    Err(Errno::PERM)
                        if kind != EntryType::Fifo && (!self.privileged || self.ns.rootless) =>
                    {
                        self.skipped_devices.add(&raw);
                        return Ok(());
                    }
                    Err(err) => return Err(err).ctx(ctx),
                }
                self.set_meta(pfd, name, &raw, uid, gid, Some(perm), &xattrs)
                    .map_err(|e| wrap(e, &raw))?;
                rustix::fs::utimensat(pfd, os(name), &times(mtime), AtFlags::SYMLINK_NOFOLLOW)
                    .ctx(ctx)?;
            }
            EntryType::XGlobalHeader
            | EntryType::XHeader
            | EntryType::GNULongName
            | EntryType::GNULongLink => {}
            other => {
                return Err(Error::Invalid {
                    what: format!("layer entry {}", String::from_utf8_lossy(&raw)),
                    why: format!("unsupported tar entry type {other:?}"),
                });
            }
        }
        Ok(())
    }

    /// Owner, mode and xattrs of `name` in `dir` (mode `None` for symlinks); `path` is the entry's.
    #[allow(clippy::too_many_arguments)]
    fn set_meta(
        &mut self,
        dir: BorrowedFd<'_>,
        name: &[u8],
        path: &[u8],
        uid: u64,
        gid: u64,
        mode: Option<u32>,
        xattrs: &[(String, Vec<u8>)],
    ) -> Result<()> {
        if self.privileged {
            let (u, g) = (
                rustix::fs::Uid::from_raw(uid as u32),
                rustix::fs::Gid::from_raw(gid as u32),
            );
            match rustix::fs::chownat(dir, os(name), Some(u), Some(g), AtFlags::SYMLINK_NOFOLLOW) {
                Ok(()) => {}
                // An id the user namespace does not map.
                Err(Errno::INVAL) if self.ns.single => self.root_owned.add(path),
                Err(Errno::INVAL) if self.ns.rootless => {
                    return Err(Error::Other(format!(
                        "extracting {}: owner {uid}:{gid} is outside hoist's user namespace \
                         (rootless: uids 0-{} are mapped); give the user a larger range in \
                         /etc/subuid and /etc/subgid (65536 ids cover most images), or run as root",
                        String::from_utf8_lossy(path),
                        self.ns.max_uid
                    )));
                }
                Err(err) => return Err(err).ctx(|| "chown"),
            }
        }
        if let Some(m) = mode {
            rustix::fs::chmodat(dir, os(name), Mode::from_raw_mode(m), AtFlags::empty())
                .ctx(|| "chmod")?;
        }
        if !xattrs.is_empty() {
            let p = proc_path(dir, name);
            for (k, v) in xattrs {
                match rustix::fs::lsetxattr(&p, k.as_str(), v, XattrFlags::empty()) {
                    Ok(()) | Err(Errno::NOTSUP) => {}
                    // trusted.* and the like: only the host's root may set them.
                    Err(Errno::PERM) if !self.privileged || self.ns.rootless => {}
                    Err(err) => return Err(err).ctx(|| format!("setxattr {k}")),
                }
            }
        }
        Ok(())
    }

    /// Opens (creating if asked) the directory at `comps`, resolving inside the root.
    fn dir(&mut self, comps: &[Vec<u8>], create: bool) -> Result<OwnedFd> {
        if let Some((c, fd)) = &self.cache
            && c.as_slice() == comps
        {
            return fd.try_clone().ctx(|| "dup");
        }
        let mut cur = self.root.try_clone().ctx(|| "dup")?;
        for i in 0..comps.len() {
            let sub = join(&comps[..=i]);
            let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
            match rustix::fs::openat2(&self.root, os(&sub), flags, Mode::empty(), IN_ROOT) {
                Ok(fd) => cur = fd,
                Err(Errno::NOENT) if create => {
                    rustix::fs::mkdirat(&cur, os(&comps[i]), Mode::from_raw_mode(0o755)).map_err(
                        |e| {
                            unsafe_path(
                                &sub,
                                &format!(
                                    "cannot create parent directory ({e}); is a symlink in the way?"
                                ),
                            )
                        },
                    )?;
                    self.created.insert(sub.clone());
                    cur = rustix::fs::openat2(
                        &cur,
                        os(&comps[i]),
                        flags,
                        Mode::empty(),
                        ResolveFlags::NO_SYMLINKS | ResolveFlags::BENEATH,
                    )
                    .ctx(|| format!("opening {}", String::from_utf8_lossy(&sub)))?;
                }
                Err(Errno::NOTDIR) => {
                    return Err(unsafe_path(
                        &sub,
                        "a parent path component is not a directory",
                    ));
                }
                Err(e) => {
                    return Err(e).ctx(|| format!("resolving {}", String::from_utf8_lossy(&sub)));
                }
            }
        }
        self.cache = Some((comps.to_vec(), cur.try_clone().ctx(|| "dup")?));
        Ok(cur)
    }

    fn opaque(&mut self, dir: BorrowedFd<'_>, comps: &[Vec<u8>]) -> Result<()> {
        let rd = rustix::fs::openat(
            dir,
            ".",
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .ctx(|| "opening opaque directory")?;
        if self.mode == ApplyMode::OverlayLower {
            return rustix::fs::fsetxattr(&rd, super::opaque_xattr(), b"y", XattrFlags::empty())
                .ctx(|| format!("marking {} opaque", String::from_utf8_lossy(&join(comps))));
        }
        let mut names = Vec::new();
        for ent in rustix::fs::Dir::read_from(&rd).ctx(|| "reading directory")? {
            let ent = ent.ctx(|| "reading directory")?;
            let n = ent.file_name().to_bytes();
            if n == b"." || n == b".." {
                continue;
            }
            let mut p = comps.to_vec();
            p.push(n.to_vec());
            if !self.created.contains(&join(&p)) {
                names.push(n.to_vec());
            }
        }
        for n in names {
            remove(dir, &n, false)?;
        }
        Ok(())
    }

    /// Directory mtimes last (creating children changes them).
    fn finish(&mut self) -> Result<()> {
        self.cache = None;
        let dirs = std::mem::take(&mut self.dir_times);
        for (comps, mtime) in dirs.iter().rev() {
            let (name, parent) = comps.split_last().expect("non-empty");
            let p = self.dir(parent, false)?;
            rustix::fs::utimensat(&p, os(name), &times(*mtime), AtFlags::SYMLINK_NOFOLLOW)
                .ctx(|| format!("setting mtime of {}", String::from_utf8_lossy(&join(comps))))?;
        }
        Ok(())
    }
}

fn wrap(e: Error, path: &[u8]) -> Error {
    match e {
        Error::Io { context, error } => Error::Io {
            context: format!("extracting {}: {context}", String::from_utf8_lossy(path)),
            error,
        },
        e => e,
    }
}

fn times(mtime: u64) -> Timestamps {
    let t = rustix::fs::Timespec {
        tv_sec: mtime as i64,
        tv_nsec: 0,
    };
    Timestamps {
        last_access: t,
        last_modification: t,
    }
}

fn device(h: &tar::Header) -> Result<u64> {
    let maj = h.device_major().ok().flatten().unwrap_or(0);
    let min = h.device_minor().ok().flatten().unwrap_or(0);
    Ok(rustix::fs::makedev(maj, min))
}

fn entry_xattrs<R: Read>(e: &mut tar::Entry<'_, R>) -> Result<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    if let Some(exts) = e.pax_extensions().ctx(|| "reading PAX headers")? {
        for ext in exts {
            let ext = ext.ctx(|| "reading PAX header")?;
            let Ok(key) = ext.key() else { continue };
            if let Some(name) = key.strip_prefix("SCHILY.xattr.")
                && !name.starts_with("trusted.overlay.")
                && !name.starts_with("user.overlay.")
            {
                out.push((name.to_string(), ext.value_bytes().to_vec()));
            }
        }
    }
    Ok(out)
}

/// Removes `name` from `dir` if present (directories recursively, unless `keep_dir`).
fn remove(dir: BorrowedFd<'_>, name: &[u8], keep_dir: bool) -> Result<()> {
    match rustix::fs::statat(dir, os(name), AtFlags::SYMLINK_NOFOLLOW) {
        Err(Errno::NOENT) => Ok(()),
        Err(e) => Err(e).ctx(|| "stat"),
        Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {
            if keep_dir {
                return Ok(());
            }
            // std's remove_dir_all never follows symlinks below the start path; the start path is
            // our already-resolved directory fd plus a final component that is a real directory.
            std::fs::remove_dir_all(proc_path(dir, name))
                .ctx(|| format!("removing {}", String::from_utf8_lossy(name)))
        }
        Ok(_) => rustix::fs::unlinkat(dir, os(name), AtFlags::empty())
            .ctx(|| format!("removing {}", String::from_utf8_lossy(name))),
    }
}
