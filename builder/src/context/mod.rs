//! The build context: a directory filtered by `.dockerignore` (or `FILE.dockerignore` next to the
//! Dockerfile), and content hashing of what COPY/ADD read, with a persistent metadata index
//! (path, size, mtime, ctime, inode -> sha256) so an unchanged context is never re-read; small files
//! it does read are kept ([`Contents`]) for the copy that follows, so no file is read twice.
//!
//! Owns what a build reads from outside the store: the context and `.dockerignore`
//! ([`dockerignore`]), git checkouts ([`git`]), http downloads ([`fetch`]), remote contexts
//! ([`remote`]), archives ADD unpacks ([`archive`]), `--secret`/`--ssh` ([`secrets`]).
//! Must not touch: the destination image (COPY's, in [`crate::copy`]) or the solver.

pub mod archive;
pub mod dockerignore;
pub mod fetch;
pub mod git;
pub mod remote;
pub mod secrets;

use std::collections::HashMap;
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{Context as _, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::context::dockerignore::Ignore;

/// A directory that COPY/ADD read from, with the ignore rules that hide part of it.
#[derive(Debug, Clone)]
pub struct SourceRoot {
    pub root: PathBuf,
    pub ignore: Ignore,
}

impl SourceRoot {
    /// An unfiltered directory (another stage's or image's root filesystem).
    pub fn plain(root: impl Into<PathBuf>) -> SourceRoot {
        SourceRoot {
            root: root.into(),
            ignore: Ignore::default(),
        }
    }

    /// Whether `rel` (relative, `/`-separated) is hidden by the ignore rules.
    pub fn is_excluded(&self, rel: &str) -> bool {
        !self.ignore.is_empty() && !rel.is_empty() && rel != "." && self.ignore.is_excluded(rel)
    }
}

/// Opens a context directory with its ignore file: `<dockerfile>.dockerignore` when it exists next to the
/// Dockerfile, else `<context>/.dockerignore`.
pub fn open_context(dir: &Path, dockerfile: Option<&Path>) -> Result<SourceRoot> {
    let root = fs::canonicalize(dir)
        .with_context(|| format!("unable to prepare context: path {:?} not found", dir))?;
    if !root.is_dir() {
        anyhow::bail!(
            "unable to prepare context: context must be a directory: {}",
            dir.display()
        );
    }
    let mut candidates = Vec::new();
    if let Some(df) = dockerfile {
        let mut name = df.as_os_str().to_owned();
        name.push(".dockerignore");
        candidates.push(PathBuf::from(name));
    }
    candidates.push(root.join(".dockerignore"));
    let mut ignore = Ignore::default();
    for c in candidates {
        match fs::read_to_string(&c) {
            Ok(text) => {
                ignore = Ignore::parse(&text).with_context(|| format!("{}", c.display()))?;
                break;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).with_context(|| format!("reading {}", c.display())),
        }
    }
    Ok(SourceRoot { root, ignore })
}

/// One remembered file digest.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct IndexEntry {
    size: u64,
    mtime: i64,
    mtime_ns: i64,
    ctime: i64,
    ctime_ns: i64,
    ino: u64,
    digest: String,
}

/// File digests keyed by absolute path, valid while size, mtime, ctime and inode are unchanged.
#[derive(Debug, Default)]
pub struct HashIndex {
    path: Option<PathBuf>,
    entries: Mutex<HashMap<PathBuf, IndexEntry>>,
    dirty: Mutex<bool>,
}

impl HashIndex {
    /// Loads the index file (a missing or unreadable one is an empty index).
    pub fn load(path: &Path) -> HashIndex {
        let entries = fs::read(path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        HashIndex {
            path: Some(path.to_path_buf()),
            entries: Mutex::new(entries),
            dirty: Mutex::new(false),
        }
    }

    /// Writes the index back atomically if it changed.
    pub fn save(&self) -> Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        if !*self.dirty.lock().unwrap() {
            return Ok(());
        }
        let dir = path.parent().unwrap_or(Path::new("."));
        fs::create_dir_all(dir)?;
        let bytes = serde_json::to_vec(&*self.entries.lock().unwrap())?;
        let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
        io::Write::write_all(&mut tmp, &bytes)?;
        tmp.persist(path)?;
        *self.dirty.lock().unwrap() = false;
        Ok(())
    }

    /// sha256 of a regular file's content, from the index when its metadata is unchanged.
    pub fn file_digest(&self, path: &Path, meta: &fs::Metadata) -> io::Result<String> {
        self.file_digest_keeping(path, meta, None)
    }

    /// [`HashIndex::file_digest`]; a file it has to read is added to `keep` when it fits there.
    pub fn file_digest_keeping(
        &self,
        path: &Path,
        meta: &fs::Metadata,
        keep: Option<&mut Contents>,
    ) -> io::Result<String> {
        let key = IndexEntry {
            size: meta.size(),
            mtime: meta.mtime(),
            mtime_ns: meta.mtime_nsec(),
            ctime: meta.ctime(),
            ctime_ns: meta.ctime_nsec(),
            ino: meta.ino(),
            digest: String::new(),
        };
        if let Some(e) = self.entries.lock().unwrap().get(path)
            && (IndexEntry {
                digest: String::new(),
                ..e.clone()
            }) == key
        {
            return Ok(e.digest.clone());
        }
        let digest = match keep.filter(|k| k.fits(meta.size())) {
            Some(k) => {
                let bytes = read_file(path, meta.size())?;
                let d = sha256_bytes(&bytes);
                k.insert(path, bytes);
                d
            }
            None => sha256_file(path)?,
        };
        self.entries.lock().unwrap().insert(
            path.to_path_buf(),
            IndexEntry {
                digest: digest.clone(),
                ..key
            },
        );
        *self.dirty.lock().unwrap() = true;
        Ok(digest)
    }
}

/// Small files' content read while hashing, by path, so that the copy which follows takes it from
/// memory instead of opening and reading each file a second time (bounded: 1 MiB per file, 256 MiB
/// in all).
#[derive(Debug, Default)]
pub struct Contents {
    files: HashMap<PathBuf, Vec<u8>>,
    bytes: u64,
}

impl Contents {
    const MAX_FILE: u64 = 1 << 20;
    const MAX_TOTAL: u64 = 256 << 20;

    fn fits(&self, size: u64) -> bool {
        size <= Self::MAX_FILE && self.bytes + size <= Self::MAX_TOTAL
    }

    fn insert(&mut self, path: &Path, bytes: Vec<u8>) {
        self.bytes += bytes.len() as u64;
        if let Some(old) = self.files.insert(path.to_path_buf(), bytes) {
            self.bytes -= old.len() as u64;
        }
    }

    /// The content of `path` read while hashing, if kept (given once).
    pub fn take(&mut self, path: &Path) -> Option<Vec<u8>> {
        let b = self.files.remove(path)?;
        self.bytes -= b.len() as u64;
        Some(b)
    }
}

/// A file's whole content. `size` (from a recent stat) sizes the buffer, and a read that stops short
/// there is taken as the end (saving the read that would return 0); a file that grew is read on.
pub fn read_file(path: &Path, size: u64) -> io::Result<Vec<u8>> {
    let mut f = fs::File::open(path)?;
    let mut buf = vec![0u8; size as usize + 1];
    let mut filled = 0;
    loop {
        if filled == buf.len() {
            buf.resize(buf.len() * 2, 0);
        }
        match io::Read::read(&mut f, &mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => {
                filled += n;
                if filled as u64 == size {
                    break;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(filled);
    Ok(buf)
}

/// `sha256:<hex>` of a file's content.
pub fn sha256_file(path: &Path) -> io::Result<String> {
    let mut f = fs::File::open(path)?;
    let mut h = Sha256::new();
    io::copy(&mut f, &mut h)?;
    Ok(format!("sha256:{}", hex::encode(h.finalize())))
}

/// `sha256:<hex>` of bytes.
pub fn sha256_bytes(b: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(b)))
}

/// An entry found while walking a source tree.
#[derive(Debug)]
pub struct WalkEntry {
    /// Path relative to the walk's start, `/`-separated ("" for the start itself).
    pub rel: String,
    pub path: PathBuf,
    pub meta: fs::Metadata,
}

/// Walks `start` (inside `src.root`, `start_rel` its path relative to the root) in sorted order,
/// never following symlinks, skipping what the ignore rules and `exclude` hide. Excluded
/// directories are still entered when an exception may re-include something below them; such a
/// directory is then listed only if something inside it is.
pub fn walk(
    src: &SourceRoot,
    start_rel: &str,
    exclude: Option<&Ignore>,
) -> io::Result<Vec<WalkEntry>> {
    let start = if start_rel.is_empty() || start_rel == "." {
        src.root.clone()
    } else {
        src.root.join(start_rel)
    };
    let mut out = Vec::new();
    walk_dir(src, start_rel, &start, "", exclude, &mut out)?;
    Ok(out)
}

fn walk_dir(
    src: &SourceRoot,
    start_rel: &str,
    dir: &Path,
    rel: &str,
    exclude: Option<&Ignore>,
    out: &mut Vec<WalkEntry>,
) -> io::Result<()> {
    let mut names: Vec<_> = fs::read_dir(dir)?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<io::Result<_>>()?;
    names.sort();
    for name in names {
        let name = name.to_string_lossy().into_owned();
        let child_rel = if rel.is_empty() {
            name.clone()
        } else {
            format!("{rel}/{name}")
        };
        let root_rel = join_rel(start_rel, &child_rel);
        let path = dir.join(&name);
        let meta = fs::symlink_metadata(&path)?;
        let hidden =
            src.is_excluded(&root_rel) || exclude.is_some_and(|x| x.is_excluded(&child_rel));
        if meta.is_dir() {
            if hidden {
                let may = src.ignore.may_reinclude_under(&root_rel)
                    || exclude.is_some_and(|x| x.may_reinclude_under(&child_rel));
                if !may {
                    continue;
                }
                let mark = out.len();
                out.push(WalkEntry {
                    rel: child_rel.clone(),
                    path: path.clone(),
                    meta,
                });
                walk_dir(src, start_rel, &path, &child_rel, exclude, out)?;
                if out.len() == mark + 1 {
                    out.pop();
                }
            } else {
                out.push(WalkEntry {
                    rel: child_rel.clone(),
                    path: path.clone(),
                    meta,
                });
                walk_dir(src, start_rel, &path, &child_rel, exclude, out)?;
            }
        } else if !hidden {
            out.push(WalkEntry {
                rel: child_rel,
                path,
                meta,
            });
        }
    }
    Ok(())
}

/// Joins two relative `/` paths, either possibly empty or ".".
pub fn join_rel(a: &str, b: &str) -> String {
    let a = a.trim_matches('/');
    match (a.is_empty() || a == ".", b.is_empty()) {
        (true, _) => b.to_string(),
        (false, true) => a.to_string(),
        (false, false) => format!("{a}/{b}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_skips_rehash_and_sees_changes() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("a");
        fs::write(&f, "one").unwrap();
        let idx = HashIndex::load(&d.path().join("index.json"));
        let m = fs::metadata(&f).unwrap();
        let d1 = idx.file_digest(&f, &m).unwrap();
        assert_eq!(d1, sha256_bytes(b"one"));
        idx.save().unwrap();
        let idx = HashIndex::load(&d.path().join("index.json"));
        assert_eq!(idx.file_digest(&f, &m).unwrap(), d1);
        fs::write(&f, "two!").unwrap();
        let m = fs::metadata(&f).unwrap();
        assert_eq!(idx.file_digest(&f, &m).unwrap(), sha256_bytes(b"two!"));
    }

    #[test]
    fn walk_honours_ignore_with_reinclusion() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        fs::create_dir_all(r.join("docs/deep")).unwrap();
        fs::write(r.join("docs/a.txt"), "").unwrap();
        fs::write(r.join("docs/deep/keep.txt"), "").unwrap();
        fs::write(r.join("main.go"), "").unwrap();
        fs::write(r.join(".dockerignore"), "docs\n!docs/deep/keep.txt\n*.go\n").unwrap();
        let src = open_context(r, None).unwrap();
        let rels: Vec<String> = walk(&src, "", None)
            .unwrap()
            .into_iter()
            .map(|e| e.rel)
            .collect();
        assert_eq!(
            rels,
            [".dockerignore", "docs", "docs/deep", "docs/deep/keep.txt"]
        );
    }

    #[test]
    fn dockerfile_specific_ignore_wins() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        fs::write(r.join(".dockerignore"), "a\n").unwrap();
        fs::write(r.join("x.Dockerfile.dockerignore"), "b\n").unwrap();
        let src = open_context(r, Some(&r.join("x.Dockerfile"))).unwrap();
        assert!(src.is_excluded("b"));
        assert!(!src.is_excluded("a"));
    }
}
