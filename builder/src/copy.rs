//! COPY/ADD without a container: resolves sources (Go `filepath.Match` wildcards) in a source root,
//! hashes them for cache keys, and copies them into a destination root filesystem with Docker's rules
//! (a directory's contents rather than the directory, trailing-slash destinations, `--chown`,
//! `--chmod`, `--exclude`, `--parents`), unpacking local archives for ADD.

use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use sha2::{Digest, Sha256};

use crate::context::{HashIndex, SourceRoot, WalkEntry, join_rel, walk};
use crate::dockerignore::{Ignore, glob_match, has_wildcard};
use crate::paths::{clean, resolve_in_root};

/// How sources are copied.
#[derive(Debug, Clone, Default)]
pub struct CopyOptions {
    /// `--chown` resolved to numeric ids.
    pub chown: Option<(u32, u32)>,
    /// `--chmod` as permission bits.
    pub chmod: Option<u32>,
    /// `--exclude` patterns, relative to each source.
    pub exclude: Vec<String>,
    /// `--parents`: keep each source's path (from `/./` on when present).
    pub parents: bool,
    /// Keep the sources' owners (copies from a stage or image); otherwise files are owned by 0:0.
    pub preserve_owner: bool,
    /// ADD: unpack local tar archives (plain, gzip, bzip2, xz, zstd) instead of copying them.
    pub unpack_archives: bool,
}

/// One source path matched in a source root.
#[derive(Debug, Clone, PartialEq)]
pub struct Matched {
    /// Path relative to the source root, cleaned, `/`-separated ("" = the root itself).
    pub rel: String,
    /// The part of the path `--parents` keeps.
    pub keep: String,
}

/// A source that matched nothing: displays as BuildKit does (`"/missing": not found`).
#[derive(Debug, thiserror::Error)]
#[error("{0:?}: not found")]
pub struct NotFound(pub String);

/// Resolves one source as written in COPY/ADD (already variable-expanded) to the paths it names.
pub fn resolve_sources(src: &SourceRoot, pattern: &str) -> Result<Vec<Matched>> {
    let shown = clean(&format!("/{pattern}"));
    // `--parents` keeps what follows a `/./` marker, else the whole path.
    let keep_from = pattern.find("/./").map(|i| {
        clean(&format!("/{}", &pattern[..i]))
            .trim_start_matches('/')
            .to_string()
    });
    let rel = shown.trim_start_matches('/').to_string();
    let mut found: Vec<String> = vec![String::new()];
    for comp in rel.split('/').filter(|c| !c.is_empty()) {
        let mut next = Vec::new();
        for base in &found {
            if has_wildcard(comp) {
                let dir = resolve_in_root(&src.root, base, true)?;
                let Ok(rd) = fs::read_dir(&dir) else { continue };
                let mut names: Vec<String> = rd
                    .filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| glob_match(comp, n))
                    .collect();
                names.sort();
                next.extend(names.into_iter().map(|n| join_rel(base, &n)));
            } else {
                next.push(join_rel(base, comp));
            }
        }
        found = next;
    }
    let out: Vec<Matched> = found
        .into_iter()
        .filter(|r| visible(src, r))
        .map(|r| Matched {
            keep: match &keep_from {
                Some(k) if r.starts_with(&format!("{k}/")) => r[k.len() + 1..].to_string(),
                Some(k) if &r == k => String::new(),
                _ => r.clone(),
            },
            rel: r,
        })
        .collect();
    if out.is_empty() {
        return Err(NotFound(shown).into());
    }
    Ok(out)
}

/// Whether a matched path exists and is not hidden by the ignore rules (a hidden directory with
/// re-included content is visible).
fn visible(src: &SourceRoot, rel: &str) -> bool {
    let Ok(p) = resolve_in_root(&src.root, rel, true) else {
        return false;
    };
    let Ok(meta) = fs::symlink_metadata(&p) else {
        return false;
    };
    if !src.is_excluded(rel) {
        return true;
    }
    meta.is_dir()
        && src.ignore.may_reinclude_under(rel)
        && walk(src, rel, None).is_ok_and(|w| !w.is_empty())
}

/// A digest of everything the matched sources would copy: names, types, permission bits, symlink
/// targets and file contents (never mtimes or owners).
pub fn digest_sources(
    src: &SourceRoot,
    matched: &[Matched],
    opts: &CopyOptions,
    index: &HashIndex,
) -> Result<String> {
    let exclude = exclude_of(opts)?;
    let mut h = Sha256::new();
    for m in matched {
        h.update(format!("src {} {}\n", m.rel, m.keep));
        let path = resolve_in_root(&src.root, &m.rel, true)?;
        let meta = fs::symlink_metadata(&path)?;
        hash_entry(&mut h, "", &path, &meta, index)?;
        if meta.is_dir() {
            for e in walk(src, &rel_of(src, &path, &m.rel), exclude.as_ref())? {
                hash_entry(&mut h, &e.rel, &e.path, &e.meta, index)?;
            }
        }
    }
    Ok(format!("sha256:{}", hex::encode(h.finalize())))
}

/// The path relative to the root of a resolved source (symlinks followed at the top level).
fn rel_of(src: &SourceRoot, path: &Path, fallback: &str) -> String {
    path.strip_prefix(&src.root)
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|_| fallback.to_string())
}

fn hash_entry(
    h: &mut Sha256,
    rel: &str,
    path: &Path,
    meta: &fs::Metadata,
    index: &HashIndex,
) -> Result<()> {
    let mode = meta.mode() & 0o7777;
    let ft = meta.file_type();
    let content = if ft.is_file() {
        index.file_digest(path, meta)?
    } else if ft.is_symlink() {
        fs::read_link(path)?.to_string_lossy().into_owned()
    } else {
        String::new()
    };
    let kind = if ft.is_dir() {
        'd'
    } else if ft.is_symlink() {
        'l'
    } else if ft.is_file() {
        'f'
    } else {
        'o'
    };
    h.update(format!("{kind} {mode:o} {rel}\0{content}\n"));
    Ok(())
}

fn exclude_of(opts: &CopyOptions) -> Result<Option<Ignore>> {
    if opts.exclude.is_empty() {
        return Ok(None);
    }
    Ok(Some(Ignore::new(&opts.exclude)?))
}

/// Where a COPY writes: a fresh layer directory (`upper`) over the image's layers (`view` = the
/// lower layers plus `upper` on top). Paths are resolved in the merged view, written into `upper`;
/// directories created in `upper` that exist below keep their metadata.
#[derive(Debug, Clone)]
pub struct DestFs {
    pub upper: PathBuf,
    pub view: crate::union::Union,
}

impl DestFs {
    /// A destination over `lowers` (image order) writing into `upper`.
    pub fn new(lowers: Vec<PathBuf>, upper: PathBuf) -> DestFs {
        let mut layers = lowers;
        layers.push(upper.clone());
        DestFs {
            upper,
            view: crate::union::Union::new(layers),
        }
    }

    fn is_dir(&self, path: &str) -> bool {
        let r = self.view.resolve(path, true);
        self.view.lookup(&r).is_some_and(|(_, m)| m.is_dir())
    }
}

/// Copies the matched sources into `dest_fs` at `dest` (absolute, in-image).
/// `several` says whether the instruction names more than one source (then `dest` must be a dir).
pub fn copy_into(
    src: &SourceRoot,
    matched: &[Matched],
    dest_fs: &DestFs,
    dest: &str,
    several: bool,
    opts: &CopyOptions,
) -> Result<()> {
    let exclude = exclude_of(opts)?;
    let dest_is_dir_syntax = dest.ends_with('/') || dest.ends_with("/.") || dest == ".";
    let dest_clean = clean(dest);
    let dest_exists_dir = dest_fs.is_dir(&dest_clean);
    if (several || matched.len() > 1) && !dest_is_dir_syntax && !dest_exists_dir {
        bail!(
            "When using COPY with more than one source file, the destination must be a directory and end with a /"
        );
    }
    let into_dir = dest_is_dir_syntax || dest_exists_dir || several || matched.len() > 1;
    for m in matched {
        let path = resolve_in_root(&src.root, &m.rel, true)?;
        let meta = fs::symlink_metadata(&path)?;
        if meta.is_dir() {
            let target_rel = if opts.parents {
                join_rel(&dest_clean, &m.keep)
            } else {
                dest_clean.clone()
            };
            let target = ensure_dir(dest_fs, &target_rel, Some(&meta), opts)?;
            let start = rel_of(src, &path, &m.rel);
            for e in walk(src, &start, exclude.as_ref())? {
                copy_one(&e, &target.join(&e.rel), opts)?;
            }
        } else if opts.unpack_archives && meta.is_file() && archive_kind(&path)?.is_some() {
            let target = ensure_dir(dest_fs, &dest_clean, None, opts)?;
            unpack_archive(&path, &target, opts)?;
        } else {
            let name = Path::new(&m.rel)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let file_rel = if opts.parents {
                join_rel(&dest_clean, &m.keep)
            } else if into_dir {
                join_rel(&dest_clean, &name)
            } else {
                dest_clean.clone()
            };
            let parent = Path::new(&file_rel)
                .parent()
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_else(|| "/".into());
            let pdir = ensure_dir(dest_fs, &parent, None, opts)?;
            let fname = Path::new(&file_rel).file_name().unwrap_or_default();
            let e = WalkEntry {
                rel: String::new(),
                path: path.clone(),
                meta,
            };
            copy_one(&e, &pdir.join(fname), opts)?;
        }
    }
    Ok(())
}

/// Makes `rel` (in-image path, symlinks resolved in the image) a directory in the upper layer.
/// Directories that exist below are recreated with their metadata (copy-up); new ones get `like`'s
/// mode (or 0755) and the chown owner.
fn ensure_dir(
    dest_fs: &DestFs,
    rel: &str,
    like: Option<&fs::Metadata>,
    opts: &CopyOptions,
) -> Result<PathBuf> {
    let resolved = dest_fs.view.resolve(rel, true);
    let mut cur = dest_fs.upper.clone();
    let mut in_image = String::new();
    for comp in resolved.split('/').filter(|c| !c.is_empty()) {
        in_image.push('/');
        in_image.push_str(comp);
        cur.push(comp);
        if let Ok(m) = fs::symlink_metadata(&cur) {
            if m.is_dir() {
                continue;
            }
            bail!("cannot copy to non-directory: {in_image}");
        }
        match dest_fs.view.lookup(&in_image) {
            Some((_, m)) if m.is_dir() => {
                fs::create_dir(&cur).with_context(|| format!("mkdir {}", cur.display()))?;
                std::os::unix::fs::lchown(&cur, Some(m.uid()), Some(m.gid()))?;
                fs::set_permissions(&cur, fs::Permissions::from_mode(m.mode() & 0o7777))?;
                let t = filetime::FileTime::from_last_modification_time(&m);
                filetime::set_file_times(&cur, t, t)?;
            }
            Some(_) => bail!("cannot copy to non-directory: {in_image}"),
            None => {
                fs::create_dir(&cur).with_context(|| format!("mkdir {}", cur.display()))?;
                // `--chmod` is for the copied files, not for the directories created to hold them.
                let mode = like.map(|m| m.mode() & 0o7777).unwrap_or(0o755);
                fs::set_permissions(&cur, fs::Permissions::from_mode(mode))?;
                if let Some((u, g)) = opts.chown {
                    std::os::unix::fs::lchown(&cur, Some(u), Some(g))?;
                }
            }
        }
    }
    Ok(cur)
}

/// Copies one file, directory (not its content), symlink or special file to `to`, replacing what is
/// there unless both are directories.
fn copy_one(e: &WalkEntry, to: &Path, opts: &CopyOptions) -> Result<()> {
    let ft = e.meta.file_type();
    if let Ok(existing) = fs::symlink_metadata(to) {
        if existing.is_dir() && ft.is_dir() {
            // Merge: keep the directory, update its metadata below.
        } else if existing.is_dir() {
            fs::remove_dir_all(to)?;
        } else {
            fs::remove_file(to)?;
        }
    }
    if ft.is_dir() {
        if !to.is_dir() {
            fs::create_dir(to).with_context(|| format!("mkdir {}", to.display()))?;
        }
    } else if ft.is_symlink() {
        std::os::unix::fs::symlink(fs::read_link(&e.path)?, to)?;
    } else if ft.is_file() {
        fs::copy(&e.path, to).with_context(|| format!("copying {}", e.path.display()))?;
    } else {
        // Devices, fifos, sockets: recreate the node.
        let mode = rustix::fs::Mode::from_raw_mode(e.meta.mode() & 0o7777);
        let kind = rustix::fs::FileType::from_raw_mode(e.meta.mode());
        rustix::fs::mknodat(rustix::fs::CWD, to, kind, mode, e.meta.rdev())?;
    }
    let (uid, gid) = match opts.chown {
        Some(o) => o,
        None if opts.preserve_owner => (e.meta.uid(), e.meta.gid()),
        None => (0, 0),
    };
    std::os::unix::fs::lchown(to, Some(uid), Some(gid))?;
    if !ft.is_symlink() {
        let mode = opts.chmod.unwrap_or(e.meta.mode() & 0o7777);
        fs::set_permissions(to, fs::Permissions::from_mode(mode))?;
    }
    let mtime = filetime::FileTime::from_last_modification_time(&e.meta);
    filetime::set_symlink_file_times(to, mtime, mtime)?;
    Ok(())
}

/// The compression of a tar archive, or None when the file is not an archive.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ArchiveKind {
    Tar,
    Gzip,
    Bzip2,
    Xz,
    Zstd,
}

/// Detects an archive by its magic bytes (compressed) or the `ustar` header (plain tar).
pub fn archive_kind(path: &Path) -> io::Result<Option<ArchiveKind>> {
    let mut head = [0u8; 512];
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
    Ok(if h.starts_with(&[0x1f, 0x8b]) {
        Some(ArchiveKind::Gzip)
    } else if h.starts_with(b"BZh") {
        Some(ArchiveKind::Bzip2)
    } else if h.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        Some(ArchiveKind::Xz)
    } else if h.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Some(ArchiveKind::Zstd)
    } else if n >= 262 && &h[257..262] == b"ustar" {
        Some(ArchiveKind::Tar)
    } else {
        None
    })
}

/// Unpacks a (possibly compressed) tar into `dir`; entries never land outside it.
pub fn unpack_archive(path: &Path, dir: &Path, opts: &CopyOptions) -> Result<()> {
    let f = io::BufReader::new(fs::File::open(path)?);
    let reader: Box<dyn Read> = match archive_kind(path)? {
        Some(ArchiveKind::Gzip) => Box::new(flate2::read::MultiGzDecoder::new(f)),
        Some(ArchiveKind::Bzip2) => Box::new(bzip2::read::MultiBzDecoder::new(f)),
        Some(ArchiveKind::Xz) => Box::new(xz2::read::XzDecoder::new_multi_decoder(f)),
        Some(ArchiveKind::Zstd) => Box::new(zstd::stream::read::Decoder::new(f)?),
        Some(ArchiveKind::Tar) => Box::new(f),
        None => bail!("{} is not an archive", path.display()),
    };
    let mut ar = tar::Archive::new(reader);
    ar.set_preserve_permissions(true);
    ar.set_preserve_ownerships(opts.chown.is_none());
    ar.set_preserve_mtime(true);
    ar.set_overwrite(true);
    ar.set_unpack_xattrs(false);
    for entry in ar.entries()? {
        let mut entry = entry?;
        let name = entry.path()?.into_owned();
        if !entry.unpack_in(dir)? {
            bail!("archive entry {} escapes the destination", name.display());
        }
        if let Some((u, g)) = opts.chown {
            let p = dir.join(&name);
            std::os::unix::fs::lchown(&p, Some(u), Some(g))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn setup() -> (tempfile::TempDir, SourceRoot, tempfile::TempDir) {
        let ctx = tempfile::tempdir().unwrap();
        let r = ctx.path();
        fs::create_dir_all(r.join("dir/sub")).unwrap();
        fs::write(r.join("dir/a.txt"), "a").unwrap();
        fs::write(r.join("dir/sub/b.txt"), "b").unwrap();
        fs::write(r.join("one.txt"), "1").unwrap();
        fs::write(r.join("two.txt"), "2").unwrap();
        symlink("/etc/passwd", r.join("escape")).unwrap();
        let src = SourceRoot::plain(fs::canonicalize(r).unwrap());
        (ctx, src, tempfile::tempdir().unwrap())
    }

    fn cp(
        src: &SourceRoot,
        root: &Path,
        srcs: &[&str],
        dest: &str,
        opts: &CopyOptions,
    ) -> Result<()> {
        let mut all = Vec::new();
        for s in srcs {
            all.extend(resolve_sources(src, s)?);
        }
        let d = DestFs::new(Vec::new(), root.to_path_buf());
        copy_into(src, &all, &d, dest, srcs.len() > 1, opts)
    }

    #[test]
    fn directory_contents_not_directory() {
        let (_c, src, dst) = setup();
        cp(&src, dst.path(), &["dir"], "/app", &CopyOptions::default()).unwrap();
        assert_eq!(
            fs::read_to_string(dst.path().join("app/a.txt")).unwrap(),
            "a"
        );
        assert!(dst.path().join("app/sub/b.txt").exists());
        assert!(!dst.path().join("app/dir").exists());
    }

    #[test]
    fn trailing_slash_rules() {
        let (_c, src, dst) = setup();
        cp(
            &src,
            dst.path(),
            &["one.txt"],
            "/x",
            &CopyOptions::default(),
        )
        .unwrap();
        assert!(dst.path().join("x").is_file());
        cp(
            &src,
            dst.path(),
            &["one.txt"],
            "/y/",
            &CopyOptions::default(),
        )
        .unwrap();
        assert!(dst.path().join("y/one.txt").is_file());
        let e = cp(
            &src,
            dst.path(),
            &["one.txt", "two.txt"],
            "/z",
            &CopyOptions::default(),
        );
        assert!(e.unwrap_err().to_string().contains("must be a directory"));
        cp(&src, dst.path(), &["*.txt"], "/w/", &CopyOptions::default()).unwrap();
        assert!(dst.path().join("w/one.txt").is_file() && dst.path().join("w/two.txt").is_file());
    }

    #[test]
    fn missing_source_message() {
        let (_c, src, _d) = setup();
        let e = resolve_sources(&src, "./nope/../missing").unwrap_err();
        assert_eq!(e.to_string(), "\"/missing\": not found");
        assert!(resolve_sources(&src, "*.md").is_err());
    }

    #[test]
    fn symlink_source_never_leaves_the_root() {
        let (_c, src, _d) = setup();
        // /etc/passwd is resolved inside the context, where it does not exist.
        assert!(resolve_sources(&src, "escape").is_err());
    }

    #[test]
    fn chmod_chown_exclude_parents() {
        let (_c, src, dst) = setup();
        let opts = CopyOptions {
            chown: Some((1000, 1001)),
            chmod: Some(0o640),
            exclude: vec!["sub".into()],
            ..Default::default()
        };
        cp(&src, dst.path(), &["dir"], "/d", &opts).unwrap();
        let m = fs::metadata(dst.path().join("d/a.txt")).unwrap();
        assert_eq!((m.uid(), m.gid(), m.mode() & 0o7777), (1000, 1001, 0o640));
        assert!(!dst.path().join("d/sub").exists());
        let opts = CopyOptions {
            parents: true,
            ..Default::default()
        };
        cp(&src, dst.path(), &["dir/sub/b.txt"], "/p/", &opts).unwrap();
        assert!(dst.path().join("p/dir/sub/b.txt").is_file());
        cp(&src, dst.path(), &["./dir/./sub/b.txt"], "/q/", &opts).unwrap();
        assert!(dst.path().join("q/sub/b.txt").is_file());
    }

    #[test]
    fn digest_ignores_mtime_but_not_content() {
        let (c, src, _d) = setup();
        let idx = HashIndex::default();
        let m = resolve_sources(&src, "dir").unwrap();
        let d1 = digest_sources(&src, &m, &CopyOptions::default(), &idx).unwrap();
        let t = filetime::FileTime::from_unix_time(1_000_000, 0);
        filetime::set_file_mtime(c.path().join("dir/a.txt"), t).unwrap();
        let idx = HashIndex::default();
        assert_eq!(
            digest_sources(&src, &m, &CopyOptions::default(), &idx).unwrap(),
            d1
        );
        fs::write(c.path().join("dir/a.txt"), "changed").unwrap();
        assert_ne!(
            digest_sources(&src, &m, &CopyOptions::default(), &idx).unwrap(),
            d1
        );
    }

    #[test]
    fn add_unpacks_archives() {
        let (c, _src, dst) = setup();
        let tgz = c.path().join("a.tar.gz");
        {
            let f = fs::File::create(&tgz).unwrap();
            let gz = flate2::write::GzEncoder::new(f, flate2::Compression::fast());
            let mut b = tar::Builder::new(gz);
            b.append_dir_all("inner", c.path().join("dir")).unwrap();
            b.into_inner().unwrap().finish().unwrap();
        }
        let src = SourceRoot::plain(fs::canonicalize(c.path()).unwrap());
        let opts = CopyOptions {
            unpack_archives: true,
            ..Default::default()
        };
        cp(&src, dst.path(), &["a.tar.gz"], "/u", &opts).unwrap();
        assert_eq!(
            fs::read_to_string(dst.path().join("u/inner/sub/b.txt")).unwrap(),
            "b"
        );
    }
}
