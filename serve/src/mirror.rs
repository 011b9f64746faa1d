//! Repository mirrors and checkouts, through the git CLI: one bare `--mirror` clone per repository
//! (cloned once, then `git fetch` brings only what is new), and a pushed commit exported into a clean
//! directory with `git archive` (no `.git`, no leftovers from earlier builds).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, bail};

/// Runs git, appending its output to `log`; fails with its stderr.
fn git(args: &[&str], cwd: Option<&Path>, log: &mut dyn Write) -> anyhow::Result<String> {
    let mut cmd = Command::new("git");
    if let Some(d) = cwd {
        cmd.current_dir(d);
    }
    cmd.args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("LC_ALL", "C")
        .stdin(Stdio::null());
    let out = cmd
        .output()
        .with_context(|| format!("running git {}", args.join(" ")))?;
    log.write_all(&out.stderr).ok();
    if !out.status.success() {
        bail!(
            "git {} failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The mirror directory of a repository under `mirrors_dir`.
pub fn mirror_path(mirrors_dir: &Path, repo_name: &str) -> PathBuf {
    mirrors_dir.join(format!("{}.git", repo_name.replace('/', "%2F")))
}

/// Brings the mirror of `url` up to date (cloning it the first time, fetching every time after, so
/// that [`tip`] is current) and makes sure `sha` is in it. Callers serialise calls per mirror.
pub fn update(mirror: &Path, url: &str, sha: &str, log: &mut dyn Write) -> anyhow::Result<()> {
    if !mirror.join("HEAD").exists() {
        let parent = mirror.parent().context("mirror path has no parent")?;
        std::fs::create_dir_all(parent)?;
        let tmp = parent.join(format!(
            ".{}.tmp-{}",
            mirror.file_name().unwrap().to_string_lossy(),
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&tmp);
        writeln!(log, "$ git clone --mirror {url}").ok();
        git(
            &[
                "clone",
                "--mirror",
                "--quiet",
                "--",
                url,
                &tmp.to_string_lossy(),
            ],
            None,
            log,
        )?;
        std::fs::rename(&tmp, mirror)
            .with_context(|| format!("moving new mirror into {}", mirror.display()))?;
    } else {
        writeln!(log, "$ git fetch --prune origin").ok();
        git(
            &["fetch", "--prune", "--quiet", "origin"],
            Some(mirror),
            log,
        )?;
    }
    if !has_commit(mirror, sha) {
        bail!("commit {sha} is not in {url} (was the ref force-pushed away?)");
    }
    Ok(())
}

/// The commit `git_ref` (`refs/heads/main`, `refs/tags/v1`) points at in the mirror (tags peeled);
/// None when the ref does not exist.
pub fn tip(mirror: &Path, git_ref: &str) -> anyhow::Result<Option<String>> {
    let out = Command::new("git")
        .args(["rev-parse", "--verify", "--quiet", "--end-of-options"])
        .arg(format!("{git_ref}^{{commit}}"))
        .current_dir(mirror)
        .stderr(Stdio::null())
        .output()
        .context("running git rev-parse")?;
    let name = String::from_utf8_lossy(&out.stdout).trim().to_string();
    Ok((out.status.success() && !name.is_empty()).then_some(name))
}

/// The commit object `sha` names (peeling an annotated tag object).
pub fn commit_of(mirror: &Path, sha: &str) -> anyhow::Result<String> {
    let mut log = Vec::new();
    Ok(git(
        &["rev-parse", "--verify", &format!("{sha}^{{commit}}")],
        Some(mirror),
        &mut log,
    )?
    .trim()
    .to_string())
}

/// Whether the mirror holds commit `sha`.
pub fn has_commit(mirror: &Path, sha: &str) -> bool {
    Command::new("git")
        .args(["cat-file", "-e", &format!("{sha}^{{commit}}")])
        .current_dir(mirror)
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Exports commit `sha` of the mirror into `dest`, which must not exist yet.
pub fn checkout(mirror: &Path, sha: &str, dest: &Path, log: &mut dyn Write) -> anyhow::Result<()> {
    if dest.exists() {
        std::fs::remove_dir_all(dest)
            .with_context(|| format!("clearing checkout {}", dest.display()))?;
    }
    std::fs::create_dir_all(dest)?;
    writeln!(
        log,
        "$ git archive {sha} | (extract into {})",
        dest.display()
    )
    .ok();
    let mut archive = Command::new("git")
        .args(["archive", "--format=tar", sha])
        .current_dir(mirror)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("running git archive")?;
    // The tar crate refuses entries that would land outside `dest`; owners are not kept (the
    // files belong to whoever runs the build, as `tar --no-same-owner` would leave them).
    let mut tar = tar::Archive::new(archive.stdout.take().expect("piped stdout"));
    tar.set_preserve_permissions(true);
    tar.set_preserve_ownerships(false);
    let extracted = tar.unpack(dest);
    // Drain what git still writes if extraction stopped early, so it can exit.
    std::io::copy(&mut tar.into_inner(), &mut std::io::sink()).ok();
    let archived = archive.wait_with_output()?;
    log.write_all(&archived.stderr).ok();
    if !archived.status.success() {
        bail!(
            "git archive {sha} failed: {}",
            String::from_utf8_lossy(&archived.stderr).trim()
        );
    }
    extracted.with_context(|| format!("extracting {sha} into {}", dest.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn run(dir: &Path, args: &[&str]) -> String {
        let out = Command::new("git")
            .args([
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@t",
                "-c",
                "init.defaultBranch=main",
            ])
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    #[test]
    fn mirror_fetches_only_when_needed_and_checks_out_clean() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        std::fs::create_dir(&src).unwrap();
        run(&src, &["init", "-q"]);
        std::fs::write(src.join("a"), "one").unwrap();
        run(&src, &["add", "a"]);
        run(&src, &["commit", "-qm", "1"]);
        let c1 = run(&src, &["rev-parse", "HEAD"]);

        let mirror = mirror_path(&tmp.path().join("mirrors"), "team/app");
        let url = format!("file://{}", src.display());
        let mut log = Vec::new();
        update(&mirror, &url, &c1, &mut log).unwrap();
        assert!(String::from_utf8_lossy(&log).contains("clone --mirror"));

        std::fs::write(src.join("a"), "two").unwrap();
        std::fs::write(src.join("b"), "new").unwrap();
        std::fs::create_dir(src.join("bin")).unwrap();
        std::fs::write(src.join("bin/run.sh"), "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(src.join("bin/run.sh"), PermissionsExt::from_mode(0o755)).unwrap();
        std::os::unix::fs::symlink("a", src.join("link")).unwrap();
        run(&src, &["add", "a", "b", "bin", "link"]);
        run(&src, &["commit", "-qm", "2"]);
        let c2 = run(&src, &["rev-parse", "HEAD"]);
        assert!(!has_commit(&mirror, &c2));
        let mut log = Vec::new();
        update(&mirror, &url, &c2, &mut log).unwrap();
        let log = String::from_utf8_lossy(&log);
        assert!(log.contains("git fetch") && !log.contains("clone"), "{log}");
        assert_eq!(tip(&mirror, "refs/heads/main").unwrap(), Some(c2.clone()));
        run(&src, &["reset", "-q", "--hard", &c1]);
        update(&mirror, &url, &c1, &mut Vec::new()).unwrap();
        assert_eq!(
            tip(&mirror, "refs/heads/main").unwrap(),
            Some(c1.clone()),
            "every update fetches: the tip follows a rewind"
        );
        assert_eq!(tip(&mirror, "refs/heads/gone").unwrap(), None);
        run(&src, &["tag", "-a", "-m", "t", "v1", &c1]);
        update(&mirror, &url, &c1, &mut Vec::new()).unwrap();
        assert_eq!(tip(&mirror, "refs/tags/v1").unwrap(), Some(c1.clone()));
        let tag_object = run(&src, &["rev-parse", "v1"]);
        assert_ne!(tag_object, c1);
        assert_eq!(commit_of(&mirror, &tag_object).unwrap(), c1);

        let dest = tmp.path().join("work");
        checkout(&mirror, &c2, &dest, &mut Vec::new()).unwrap();
        assert_eq!(std::fs::read_to_string(dest.join("a")).unwrap(), "two");
        // Modes, directories and symlinks come out as git stores them.
        let mode = std::fs::metadata(dest.join("bin/run.sh"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o111, 0o111, "{mode:o}");
        assert_eq!(
            std::fs::read_link(dest.join("link")).unwrap(),
            Path::new("a")
        );
        checkout(&mirror, &c1, &dest, &mut Vec::new()).unwrap();
        assert_eq!(std::fs::read_to_string(dest.join("a")).unwrap(), "one");
        assert!(!dest.join("b").exists(), "checkout is clean");
        assert!(!dest.join(".git").exists());

        let missing = "1".repeat(40);
        let err = update(&mirror, &url, &missing, &mut Vec::new()).unwrap_err();
        assert!(err.to_string().contains("not in"), "{err}");
    }
}
