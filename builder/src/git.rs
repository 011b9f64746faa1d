//! ADD of a git repository (`ADD https://host/repo.git#ref:subdir /dst`, `--keep-git-dir`), with
//! the git CLI: a shallow fetch of the ref into a temp dir, checked out, `.git` dropped unless
//! kept. The cache key is the commit (plus subdir and `--keep-git-dir`), as in BuildKit.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, Result, anyhow, bail};

/// Whether an ADD source names a git repository (BuildKit's rules: `git://`, `git@host:`,
/// `ssh://`, `github.com/...`, or an http(s)/file URL whose path ends in `.git`).
pub fn is_git_url(s: &str) -> bool {
    let base = s.split('#').next().unwrap_or(s);
    if s.starts_with("git://") || s.starts_with("git@") || s.starts_with("ssh://") {
        return true;
    }
    if s.starts_with("github.com/") {
        return true;
    }
    (base.starts_with("http://") || base.starts_with("https://") || base.starts_with("file://"))
        && base.trim_end_matches('/').ends_with(".git")
}

/// A checked-out repository.
#[derive(Debug)]
pub struct Checkout {
    pub dir: tempfile::TempDir,
    /// The path inside `dir` to copy (the `:subdir` of the fragment, or `.`).
    pub subdir: String,
    /// The commit checked out.
    pub commit: String,
}

fn git(dir: &Path, args: &[&str]) -> Result<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()
        .context("running git (is it installed?)")?;
    if !out.status.success() {
        bail!(
            "git {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Fetches `url` (`REPO[#REF[:SUBDIR]]`) into a temp dir under `tmp`. With `checksum`, the commit
/// must start with it.
pub fn checkout(
    url: &str,
    tmp: &Path,
    keep_git_dir: bool,
    checksum: Option<&str>,
) -> Result<Checkout> {
    let (repo, fragment) = url.split_once('#').unwrap_or((url, ""));
    let (reference, subdir) = fragment.split_once(':').unwrap_or((fragment, ""));
    let repo = match repo.strip_prefix("github.com/") {
        Some(rest) => format!("https://github.com/{rest}"),
        None => repo.to_string(),
    };
    let reference = if reference.is_empty() {
        "HEAD"
    } else {
        reference
    };
    let dir = tempfile::Builder::new().prefix("git-").tempdir_in(tmp)?;
    let d = dir.path();
    git(d, &["init", "-q"])?;
    git(d, &["remote", "add", "origin", &repo])?;
    if git(d, &["fetch", "-q", "--depth", "1", "origin", reference]).is_err() {
        // A commit some servers will not hand out shallowly: fetch everything.
        git(d, &["fetch", "-q", "origin"]).with_context(|| format!("failed to fetch {repo}"))?;
        git(d, &["checkout", "-q", reference])
            .with_context(|| format!("failed to check out {reference} of {repo}"))?;
    } else {
        git(d, &["checkout", "-q", "FETCH_HEAD"])?;
    }
    let commit = git(d, &["rev-parse", "HEAD"])?;
    if let Some(want) = checksum {
        let want = want.trim_start_matches("sha1:");
        if want.is_empty() || !commit.starts_with(want) {
            bail!("expected checksum to match {want}, got {commit}");
        }
    }
    if git(d, &["submodule", "status"]).is_ok_and(|s| !s.is_empty()) {
        git(
            d,
            &[
                "submodule",
                "update",
                "-q",
                "--init",
                "--recursive",
                "--depth",
                "1",
            ],
        )?;
    }
    if !keep_git_dir {
        std::fs::remove_dir_all(d.join(".git"))?;
    }
    let subdir = subdir.trim_matches('/');
    let subdir = if subdir.is_empty() {
        ".".to_string()
    } else {
        let p: PathBuf = d.join(subdir);
        if !p.exists() {
            return Err(anyhow!("{subdir}: no such directory in {repo}@{commit}"));
        }
        subdir.to_string()
    };
    Ok(Checkout {
        dir,
        subdir,
        commit,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_git_urls() {
        assert!(is_git_url("https://github.com/moby/buildkit.git#v0.10.1"));
        assert!(is_git_url("https://example.com/r.git"));
        assert!(is_git_url("git@github.com:moby/buildkit.git"));
        assert!(is_git_url("git://host/r"));
        assert!(is_git_url("file:///srv/r.git#main:sub"));
        assert!(!is_git_url("https://example.com/file.tar.gz"));
        assert!(!is_git_url("src/app.git"));
    }
}
