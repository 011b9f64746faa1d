//! ADD of a git repository (`ADD https://host/repo.git#ref:subdir /dst`, `--keep-git-dir`), with
//! the git CLI: a shallow fetch of the ref into a temp dir, checked out, `.git` dropped unless
//! kept. The cache key is the commit (plus subdir and `--keep-git-dir`), as in BuildKit.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, Result, anyhow, bail};

/// Whether an ADD source or a build context names a git repository (BuildKit's rules: `git://`,
/// `git@host:`, `ssh://`, `github.com/...`, or an http(s)/file URL whose path ends in `.git`).
pub fn is_git_url(s: &str) -> bool {
    let base = s.split(['#', '?']).next().unwrap_or(s);
    if s.starts_with("git://") || s.starts_with("git@") || s.starts_with("ssh://") {
        return true;
    }
    if s.starts_with("github.com/") {
        return true;
    }
    (base.starts_with("http://") || base.starts_with("https://") || base.starts_with("file://"))
        && base.trim_end_matches('/').ends_with(".git")
}

/// A git URL taken apart as BuildKit's `dfgitutil.ParseGitRef` does: `REPO[?QUERY][#REF[:SUBDIR]]`,
/// the query holding `ref`, `tag`, `branch`, `subdir`, `checksum`/`commit`, `keep-git-dir` and
/// `submodules`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GitRef {
    /// What `git fetch` is given.
    pub remote: String,
    /// A branch, tag or commit; empty for the remote's HEAD.
    pub reference: String,
    /// A directory inside the repository ("" for its root).
    pub subdir: String,
    /// The commit the checkout must be (a prefix of it).
    pub checksum: Option<String>,
    pub keep_git_dir: Option<bool>,
    pub submodules: Option<bool>,
}

/// Parses a git URL (see [`GitRef`]); errors name what is wrong with the query.
pub fn parse_git_ref(url: &str) -> Result<GitRef> {
    let (base, fragment) = url.split_once('#').unwrap_or((url, ""));
    let (repo, query) = base.split_once('?').unwrap_or((base, ""));
    let (reference, subdir) = fragment.split_once(':').unwrap_or((fragment, ""));
    let mut g = GitRef {
        remote: match repo.strip_prefix("github.com/") {
            Some(rest) => format!("https://github.com/{rest}"),
            None => repo.to_string(),
        },
        reference: reference.to_string(),
        subdir: subdir.to_string(),
        ..Default::default()
    };
    let (mut tag, mut branch) = (None, None);
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = match pair.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (pair, None),
        };
        let flag = |v: Option<&str>| -> Result<bool> {
            match v {
                None | Some("") => Ok(true),
                Some(v) => parse_bool(v).ok_or_else(|| anyhow!("invalid {k} value: {v:?}")),
            }
        };
        let value = || -> Result<String> {
            v.filter(|v| !v.is_empty())
                .map(String::from)
                .ok_or_else(|| anyhow!("query {k:?} has no value"))
        };
        match k {
            "ref" => {
                let v = value()?;
                if !g.reference.is_empty() && g.reference != v {
                    bail!("ref conflicts: {:?} vs {v:?}", g.reference);
                }
                g.reference = v;
            }
            "tag" => tag = Some(value()?),
            "branch" => branch = Some(value()?),
            "subdir" => {
                let v = value()?;
                if !g.subdir.is_empty() && g.subdir != v {
                    bail!("subdir conflicts: {:?} vs {v:?}", g.subdir);
                }
                g.subdir = v;
            }
            "checksum" | "commit" => g.checksum = Some(value()?),
            "keep-git-dir" => g.keep_git_dir = Some(flag(v)?),
            "submodules" => g.submodules = Some(flag(v)?),
            other => bail!("unexpected query {other:?} in git URL {url}"),
        }
    }
    match (tag, branch) {
        (Some(_), Some(_)) => bail!("tag and branch cannot both be set in git URL {url}"),
        (Some(t), None) | (None, Some(t)) if !g.reference.is_empty() && g.reference != t => {
            bail!("ref conflicts: {:?} vs {t:?}", g.reference)
        }
        (Some(t), None) => g.reference = format!("refs/tags/{t}"),
        (None, Some(b)) => g.reference = format!("refs/heads/{b}"),
        (None, None) => {}
    }
    Ok(g)
}

/// Go's `strconv.ParseBool`.
fn parse_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
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

/// Fetches `url` (see [`GitRef`]) into a temp dir under `tmp`. With `checksum` (or a
/// `checksum=` in the URL), the commit must start with it; `keep_git_dir` (or the URL's
/// `keep-git-dir`) keeps `.git`.
pub fn checkout(
    url: &str,
    tmp: &Path,
    keep_git_dir: bool,
    checksum: Option<&str>,
) -> Result<Checkout> {
    let g = parse_git_ref(url)?;
    let keep_git_dir = keep_git_dir || g.keep_git_dir == Some(true);
    let repo = g.remote.as_str();
    let reference = if g.reference.is_empty() {
        "HEAD"
    } else {
        g.reference.as_str()
    };
    let dir = tempfile::Builder::new().prefix("git-").tempdir_in(tmp)?;
    let d = dir.path();
    git(d, &["init", "-q"])?;
    git(d, &["remote", "add", "origin", repo])?;
    // Shallow when the server allows it (smart http, ssh, git, file); a dumb-http server or a
    // commit some servers will not hand out shallowly need a full fetch.
    let fetched = git(d, &["fetch", "-q", "--depth", "1", "origin", reference])
        .or_else(|_| git(d, &["fetch", "-q", "origin", reference]));
    if fetched.is_ok() {
        git(d, &["checkout", "-q", "FETCH_HEAD"])?;
    } else {
        git(
            d,
            &[
                "fetch",
                "-q",
                "origin",
                "+refs/heads/*:refs/remotes/origin/*",
                "+refs/tags/*:refs/tags/*",
            ],
        )
        .with_context(|| format!("failed to fetch {repo}"))?;
        git(d, &["checkout", "-q", reference])
            .with_context(|| format!("failed to check out {reference} of {repo}"))?;
    }
    let commit = git(d, &["rev-parse", "HEAD"])?;
    if let Some(want) = checksum.or(g.checksum.as_deref()) {
        let want = want.trim_start_matches("sha1:");
        if want.is_empty() || !commit.starts_with(want) {
            bail!("expected checksum to match {want}, got {commit}");
        }
    }
    if g.submodules != Some(false) && git(d, &["submodule", "status"]).is_ok_and(|s| !s.is_empty())
    {
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
    let subdir = g.subdir.trim_matches('/');
    let subdir = if subdir.is_empty() {
        ".".to_string()
    } else {
        let p: PathBuf = d.join(subdir);
        if !p.is_dir() {
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
        assert!(is_git_url("https://example.com/r.git?ref=main&subdir=a"));
    }

    #[test]
    fn parses_refs_as_buildkit() {
        let g = parse_git_ref("https://h/r.git#v1:sub/dir").unwrap();
        assert_eq!(
            (g.remote.as_str(), g.reference.as_str(), g.subdir.as_str()),
            ("https://h/r.git", "v1", "sub/dir")
        );
        let g =
            parse_git_ref("https://h/r.git?branch=dev&subdir=x&keep-git-dir&checksum=ab").unwrap();
        assert_eq!(g.reference, "refs/heads/dev");
        assert_eq!(g.subdir, "x");
        assert_eq!(g.keep_git_dir, Some(true));
        assert_eq!(g.checksum.as_deref(), Some("ab"));
        assert_eq!(
            parse_git_ref("https://h/r.git?tag=v2").unwrap().reference,
            "refs/tags/v2"
        );
        assert_eq!(
            parse_git_ref("github.com/a/b").unwrap().remote,
            "https://github.com/a/b"
        );
        let g = parse_git_ref("git@github.com:a/b.git#main").unwrap();
        assert_eq!(
            (g.remote.as_str(), g.reference.as_str()),
            ("git@github.com:a/b.git", "main")
        );
        let e = |u: &str| parse_git_ref(u).unwrap_err().to_string();
        assert_eq!(
            e("https://h/r.git?ref=a#b"),
            "ref conflicts: \"b\" vs \"a\""
        );
        assert_eq!(
            e("https://h/r.git?subdir="),
            "query \"subdir\" has no value"
        );
        assert_eq!(
            e("https://h/r.git?submodules=maybe"),
            "invalid submodules value: \"maybe\""
        );
        assert!(e("https://h/r.git?bogus=1").starts_with("unexpected query \"bogus\""));
    }
}
