//! COPY/ADD sources: matching patterns (Go `filepath.Match` wildcards) in a source root or in a
//! stage's layers, and hashing what matched for the step's key (reads kept for the copy).

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use sha2::{Digest, Sha256};

use super::{CopyOptions, Walks};
pub use crate::context::dockerignore::has_wildcard;
use crate::context::dockerignore::{Ignore, glob_match};
use crate::context::{Contents, HashIndex, SourceRoot, join_rel, walk};
use crate::copy::union::Union;
use crate::paths::{clean, resolve_in_root};

/// One source path matched in a source root.
#[derive(Debug, Clone, PartialEq)]
pub struct Matched {
    /// Path relative to the source root, cleaned, `/`-separated ("" = the root itself).
    pub rel: String,
    /// The part of the path `--parents` keeps.
    pub keep: String,
}

/// A source that matched nothing in a context: displays as BuildKit does (`failed to calculate
/// checksum of ref SHARED::REF: "/missing": not found`).
#[derive(Debug, thiserror::Error)]
#[error("failed to calculate checksum of ref {reference}: {path:?}: not found")]
pub struct NotFound {
    /// BuildKit names the context's snapshot (its session's key, then the ref); hoist names the
    /// context directory the same way, by a digest of its path.
    pub reference: String,
    pub path: String,
}

impl NotFound {
    /// `path` (absolute, as BuildKit prints it) is missing from the context rooted at `root`.
    pub fn in_root(root: &Path, path: &str) -> NotFound {
        NotFound {
            reference: reference_of(root),
            path: path.to_string(),
        }
    }
}

/// The name [`NotFound`] gives the source root `root`, shaped as BuildKit's `SHARED::REF`.
fn reference_of(root: &Path) -> String {
    let h = hex::encode(Sha256::digest(root.as_os_str().as_encoded_bytes()));
    format!(
        "{}-{}-{}-{}-{}::{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32],
        &h[32..57]
    )
}

/// Resolves one source as written in COPY/ADD (already variable-expanded) to the paths it names.
pub fn resolve_sources(src: &SourceRoot, pattern: &str) -> Result<Vec<Matched>> {
    let list = |base: &str, comp: &str| -> Result<Vec<String>> {
        let dir = resolve_in_root(&src.root, base, true)?;
        let Ok(rd) = fs::read_dir(&dir) else {
            return Ok(Vec::new());
        };
        Ok(rd
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| glob_match(comp, n))
            .collect())
    };
    let missing = |path: &str| -> anyhow::Error { NotFound::in_root(&src.root, path).into() };
    let real_dir = |rel: &str| {
        resolve_in_root(&src.root, rel, false)
            .and_then(fs::symlink_metadata)
            .is_ok_and(|m| m.is_dir())
    };
    match_sources(pattern, &list, &|r| visible(src, r), &real_dir, &missing)
}

/// [`resolve_sources`] for an image or a stage seen through its layers (no flattened copy needed),
/// for a `pattern` without wildcards (see [`has_wildcard`]).
pub fn resolve_in_layers(view: &Union, pattern: &str) -> Result<Vec<Matched>> {
    let unlisted = |_: &str, _: &str| -> Result<Vec<String>> { Ok(Vec::new()) };
    let exists = |r: &str| {
        view.resolve(r, true)
            .is_ok_and(|p| view.lookup(&p).is_some())
    };
    // BuildKit copies from a stage's or an image's snapshot, whose missing paths fail to `lstat`.
    let missing = |path: &str| anyhow::anyhow!("lstat {path}: no such file or directory");
    match_sources(pattern, &unlisted, &exists, &|_| true, &missing)
}

/// The paths `pattern` names: wildcard components matched against `list(base dir, component)`,
/// then kept when `visible`. As in BuildKit, a path without wildcards must exist (else
/// `missing`), while a wildcard may match nothing (an empty list) as long as the directory
/// before its first wildcard exists (else `lstat /dir: no such file or directory`). From the
/// first wildcard on, the path is matched by walking the tree: only `real_dir`s (not symlinks
/// to directories) lead further.
fn match_sources(
    pattern: &str,
    list: &dyn Fn(&str, &str) -> Result<Vec<String>>,
    visible: &dyn Fn(&str) -> bool,
    real_dir: &dyn Fn(&str) -> bool,
    missing: &dyn Fn(&str) -> anyhow::Error,
) -> Result<Vec<Matched>> {
    let shown = clean(&format!("/{pattern}"));
    // `--parents` keeps what follows a `/./` marker, else the whole path.
    let keep_from = pattern.find("/./").map(|i| {
        clean(&format!("/{}", &pattern[..i]))
            .trim_start_matches('/')
            .to_string()
    });
    let rel = shown.trim_start_matches('/').to_string();
    let comps: Vec<&str> = rel.split('/').filter(|c| !c.is_empty()).collect();
    let wild_at = comps.iter().position(|c| has_wildcard(c));
    if let Some(i) = wild_at {
        let base = comps[..i].join("/");
        if !base.is_empty() && !visible(&base) {
            bail!("lstat /{base}: no such file or directory");
        }
    }
    let mut found: Vec<String> = vec![String::new()];
    for (i, comp) in comps.into_iter().enumerate() {
        if wild_at.is_some_and(|w| i > w) {
            found.retain(|b| real_dir(b));
        }
        let mut next = Vec::new();
        for base in &found {
            if has_wildcard(comp) {
                let mut names = list(base, comp)?;
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
        .filter(|r| visible(r))
        .map(|r| Matched {
            keep: match &keep_from {
                Some(k) if r.starts_with(&format!("{k}/")) => r[k.len() + 1..].to_string(),
                Some(k) if &r == k => String::new(),
                _ => r.clone(),
            },
            rel: r,
        })
        .collect();
    if out.is_empty() && wild_at.is_none() {
        return Err(missing(&shown));
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

/// What hashing the sources read, kept for the copy that may follow: the directories walked, small
/// files' content and every file's content digest.
#[derive(Debug, Default)]
pub struct Reads {
    pub walks: Walks,
    pub contents: Contents,
    pub digests: std::collections::HashMap<PathBuf, String>,
}

/// A digest of everything the matched sources would copy: names, types, permission bits, symlink
/// targets and file contents (never mtimes or owners). With `reads`, what it walks and reads is kept.
pub fn digest_sources(
    src: &SourceRoot,
    matched: &[Matched],
    opts: &CopyOptions,
    index: &HashIndex,
    mut reads: Option<&mut Reads>,
) -> Result<String> {
    let exclude = exclude_of(opts)?;
    let mut h = Sha256::new();
    for m in matched {
        h.update(format!("src {} {}\n", m.rel, m.keep));
        let path = resolve_in_root(&src.root, &m.rel, true)?;
        let meta = fs::symlink_metadata(&path)?;
        hash_entry(&mut h, "", &path, &meta, index, reads.as_deref_mut())?;
        if meta.is_dir() {
            let start = rel_of(src, &path, &m.rel);
            let entries = walk(src, &start, exclude.as_ref())?;
            // Which files are hardlinks of which (kept in the layer) is part of what is copied.
            let mut inodes = std::collections::HashMap::new();
            for e in &entries {
                if e.meta.is_file() && e.meta.nlink() > 1 {
                    let first = inodes.entry((e.meta.dev(), e.meta.ino())).or_insert(&e.rel);
                    h.update(format!("link {} {first}\n", e.rel));
                }
                hash_entry(
                    &mut h,
                    &e.rel,
                    &e.path,
                    &e.meta,
                    index,
                    reads.as_deref_mut(),
                )?;
            }
            if let Some(r) = reads.as_deref_mut() {
                r.walks.insert(start, entries);
            }
        }
    }
    Ok(format!("sha256:{}", hex::encode(h.finalize())))
}

/// The path relative to the root of a resolved source (symlinks followed at the top level).
pub(super) fn rel_of(src: &SourceRoot, path: &Path, fallback: &str) -> String {
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
    reads: Option<&mut Reads>,
) -> Result<()> {
    let mode = meta.mode() & 0o7777;
    let ft = meta.file_type();
    let content = if ft.is_file() {
        match reads {
            Some(r) => {
                let d = index.file_digest_keeping(path, meta, Some(&mut r.contents))?;
                r.digests.insert(path.to_path_buf(), d.clone());
                d
            }
            None => index.file_digest(path, meta)?,
        }
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

pub(super) fn exclude_of(opts: &CopyOptions) -> Result<Option<Ignore>> {
    if opts.exclude.is_empty() {
        return Ok(None);
    }
    Ok(Some(Ignore::new(&opts.exclude)?))
}
