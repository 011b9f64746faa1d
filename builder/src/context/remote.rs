//! A build context given as a URL, as `docker build` (buildx and BuildKit's Dockerfile frontend)
//! takes it:
//!
//! - a git repository (`https://host/repo.git#ref:subdir`, `git@host:repo.git`, `git://...`,
//!   `ssh://...`, `github.com/owner/repo`, query forms of [`crate::context::git::GitRef`]): the checkout of
//!   the ref (its subdir) is the context, `.git` dropped unless the build arg
//!   `BUILDKIT_CONTEXT_KEEP_GIT_DIR` is true; the Dockerfile is read from it (`-f` relative to it);
//! - an http(s) URL: a tar archive (plain, gzip, bzip2 or xz) is unpacked as the context; anything
//!   else is the Dockerfile itself, with an otherwise empty context.
//!
//! As in BuildKit, whose frontend reads `.dockerignore` from local contexts only, a remote
//! context's ignore files are not applied: every file of the checkout or archive is in it.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, Result};

use super::archive::{is_archive, unpack_archive};
use crate::progress::Progress;

/// Whether a context argument names a remote context rather than a directory.
pub fn is_remote(arg: &str) -> bool {
    crate::context::git::is_git_url(arg)
        || arg.starts_with("http://")
        || arg.starts_with("https://")
}

/// A fetched remote context, removed when dropped.
pub struct RemoteContext {
    _dir: tempfile::TempDir,
    /// The context's root directory.
    pub root: PathBuf,
    /// The Dockerfile when the URL was one (not an archive).
    pub dockerfile: Option<PathBuf>,
}

/// Fetches `url` into a temp dir under `tmp`, reporting a BuildKit-named vertex.
pub fn fetch(
    url: &str,
    tmp: &Path,
    keep_git_dir: bool,
    progress: &Arc<Progress>,
) -> Result<RemoteContext> {
    if crate::context::git::is_git_url(url) {
        let v = progress.vertex(&format!("[internal] load git source {url}"));
        let co = crate::context::git::checkout(url, tmp, keep_git_dir, None)
            .with_context(|| format!("failed to read dockerfile: failed to load git source {url}"));
        let co = match co {
            Ok(co) => co,
            Err(e) => {
                v.error(&format!("{e:#}"));
                return Err(e);
            }
        };
        v.log(&co.commit);
        v.done();
        let root = fs::canonicalize(co.dir.path().join(&co.subdir))?;
        return Ok(RemoteContext {
            _dir: co.dir,
            root,
            dockerfile: None,
        });
    }
    let v = progress.vertex("[internal] load remote build context");
    let dl =
        crate::context::fetch::download(url, tmp, None).context("failed to resolve httpcontext");
    let dl = match dl {
        Ok(dl) => dl,
        Err(e) => {
            v.error(&format!("{e:#}"));
            return Err(e);
        }
    };
    let file = dl.dir.path().join(&dl.name);
    let root = dl.dir.path().join("context.d");
    fs::create_dir(&root)?;
    // A tar (plain or compressed, recognised by content as ADD does) is the context; anything
    // else is the Dockerfile.
    let dockerfile = if is_archive(&file) {
        unpack_archive(&file, &root, false)
            .with_context(|| format!("unpacking the build context from {url}"))?;
        None
    } else {
        // The frontend names the downloaded Dockerfile "context".
        let df = root.join("context");
        fs::rename(&file, &df)?;
        Some(df)
    };
    v.done();
    Ok(RemoteContext {
        root: fs::canonicalize(&root)?,
        _dir: dl.dir,
        dockerfile,
    })
}

/// The Dockerfile of a build with a remote context: the URL itself when it was one, else `-f`
/// relative to the context (kept inside it) or an absolute `-f` on this machine, else
/// `CONTEXT/Dockerfile`.
pub fn dockerfile_path(remote: &RemoteContext, f: Option<&Path>) -> Result<PathBuf> {
    if let Some(df) = &remote.dockerfile {
        return Ok(df.clone());
    }
    Ok(match f {
        Some(p) if p.is_absolute() => p.to_path_buf(),
        Some(p) => crate::paths::resolve_in_root(&remote.root, &p.to_string_lossy(), true)?,
        None => remote.root.join("Dockerfile"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_arguments() {
        assert!(is_remote("https://h/r.git#main:sub"));
        assert!(is_remote("git@github.com:a/b.git"));
        assert!(is_remote("github.com/a/b"));
        assert!(is_remote("http://127.0.0.1:8080/ctx.tar.gz"));
        assert!(!is_remote("."));
        assert!(!is_remote("some/dir"));
    }
}
