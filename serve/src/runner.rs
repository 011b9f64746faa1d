//! The build step behind a small trait, so the service does not depend on the builder's Rust API.
//! [`HoistCli`], the production runner, runs the `hoist` binary itself: one
//! `hoist build --progress=plain --push` with the rule's Dockerfile, context, build args and tags, whose
//! output streams into the build's log; the pushed manifest digest comes from its `--metadata-file`.

use std::collections::BTreeMap;
use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{Context, bail};

/// What to build: paths are absolute, inside a clean checkout.
#[derive(Debug, Clone)]
pub struct BuildRequest {
    pub checkout: PathBuf,
    pub dockerfile: PathBuf,
    pub context: PathBuf,
    pub build_args: BTreeMap<String, String>,
    /// Full references (`registry/name:tag`), all pushed.
    pub tags: Vec<String>,
    /// Registry build cache imported before and exported (`mode=max`) after the build.
    pub cache_ref: Option<String>,
}

/// What a successful build produced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BuildOutput {
    /// Manifest digest pushed, when the pusher reported one.
    pub digest: Option<String>,
}

/// A build log: an append-only file that child processes can write to directly.
pub struct Log {
    file: File,
    path: PathBuf,
}

impl Log {
    /// Opens (creating) a log file for appending.
    pub fn open(path: &Path) -> anyhow::Result<Log> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("opening build log {}", path.display()))?;
        Ok(Log {
            file,
            path: path.to_path_buf(),
        })
    }

    /// A handle for a child's stdout or stderr.
    pub fn stdio(&self) -> anyhow::Result<Stdio> {
        Ok(Stdio::from(self.file.try_clone()?))
    }

    /// The log file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Current length, to read back what a command wrote from here on.
    pub fn len(&self) -> u64 {
        self.file.metadata().map(|m| m.len()).unwrap_or(0)
    }

    /// Whether nothing was logged yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The text logged from byte `offset` on.
    pub fn read_from(&self, offset: u64) -> String {
        let mut f = match File::open(&self.path) {
            Ok(f) => f,
            Err(_) => return String::new(),
        };
        let mut buf = Vec::new();
        if f.seek(SeekFrom::Start(offset)).is_ok() {
            let _ = f.read_to_end(&mut buf);
        }
        String::from_utf8_lossy(&buf).into_owned()
    }
}

impl Write for Log {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.file.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

/// Runs a build and pushes its tags.
pub trait BuildRunner: Send + Sync + 'static {
    fn run(&self, request: &BuildRequest, log: &mut Log) -> anyhow::Result<BuildOutput>;
    /// Asks every running build to stop now (the service is shutting down); their `run` calls return
    /// errors soon after.
    fn interrupt(&self) {}
    /// Stops the build running in `checkout` at once: its lease was lost, another worker runs it.
    fn abort(&self, _checkout: &Path) {}
}

/// The production runner: the `hoist` binary as a child process.
#[derive(Debug, Clone)]
pub struct HoistCli {
    /// The `hoist` executable (normally `std::env::current_exe()`).
    pub exe: PathBuf,
    /// Store shared by every build (`--root`), i.e. the shared build cache.
    pub root: Option<PathBuf>,
    /// Registries pushed to over plain http.
    pub insecure_registries: Vec<String>,
    /// Children running now, by pid, with their working directory (the build's checkout), for
    /// [`BuildRunner::interrupt`] and [`BuildRunner::abort`].
    children: Arc<Mutex<HashMap<u32, PathBuf>>>,
    /// Set by [`BuildRunner::interrupt`]: no new child starts.
    interrupted: Arc<AtomicBool>,
}

impl HoistCli {
    /// A runner invoking `exe` with `--root root` when given.
    pub fn new(exe: PathBuf, root: Option<PathBuf>, insecure_registries: Vec<String>) -> HoistCli {
        HoistCli {
            exe,
            root,
            insecure_registries,
            children: Arc::default(),
            interrupted: Arc::default(),
        }
    }

    fn command(&self) -> Command {
        use std::os::unix::process::CommandExt;
        let mut cmd = Command::new(&self.exe);
        if let Some(root) = &self.root {
            cmd.arg("--root").arg(root);
        }
        cmd.stdin(Stdio::null());
        let worker = rustix::process::getpid();
        // SAFETY: the closure runs in the child between fork and exec and only makes the prctl and
        // getppid system calls, which are async-signal-safe; it allocates nothing and takes no lock.
        unsafe {
            cmd.pre_exec(move || {
                // A build must not outlive its worker: once the worker is gone (kill -9), its lease
                // lapses and another worker runs the build, so this one must not push.
                rustix::process::set_parent_process_death_signal(Some(
                    rustix::process::Signal::KILL,
                ))?;
                if rustix::process::getppid() != Some(worker) {
                    // The worker died before the death signal was armed.
                    return Err(rustix::io::Errno::SRCH.into());
                }
                Ok(())
            });
        }
        cmd
    }

    fn run_logged(&self, mut cmd: Command, log: &mut Log) -> anyhow::Result<String> {
        let shown: Vec<String> = std::iter::once(cmd.get_program())
            .chain(cmd.get_args())
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        writeln!(log, "$ {}", shown.join(" "))?;
        let start = log.len();
        if self.interrupted.load(Ordering::SeqCst) {
            bail!("interrupted: hoist serve is stopping");
        }
        let mut child = cmd
            .stdout(log.stdio()?)
            .stderr(log.stdio()?)
            .spawn()
            .with_context(|| format!("running {}", self.exe.display()))?;
        let pid = child.id();
        let cwd = cmd
            .get_current_dir()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        self.children
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(pid, cwd);
        if self.interrupted.load(Ordering::SeqCst) {
            self.interrupt();
        }
        let status = child.wait();
        self.children
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&pid);
        let status = status?;
        let out = log.read_from(start);
        if !status.success() {
            bail!("`hoist {}` failed ({status})", shown[1..].join(" "));
        }
        Ok(out)
    }
}

/// The manifest digest `hoist build --metadata-file` recorded (`containerimage.digest`, as Docker's).
pub fn metadata_digest(metadata: &[u8]) -> anyhow::Result<String> {
    let v: serde_json::Value =
        serde_json::from_slice(metadata).context("build metadata is not JSON")?;
    let d = v["containerimage.digest"]
        .as_str()
        .context("build metadata has no containerimage.digest")?;
    let hex = d.strip_prefix("sha256:").unwrap_or_default();
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        bail!("build metadata: containerimage.digest {d:?} is not a sha256 digest");
    }
    Ok(d.to_string())
}

impl BuildRunner for HoistCli {
    fn interrupt(&self) {
        self.interrupted.store(true, Ordering::SeqCst);
        for pid in self
            .children
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
        {
            // SIGTERM: hoist cleans up its sandboxes and exits; the wait in run_logged reaps it.
            if let Some(pid) = rustix::process::Pid::from_raw(*pid as i32) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
            }
        }
    }

    fn abort(&self, checkout: &Path) {
        for (pid, cwd) in self
            .children
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            if cwd == checkout {
                // SIGKILL: another worker owns the build now; this one must not get to its push.
                if let Some(pid) = rustix::process::Pid::from_raw(*pid as i32) {
                    let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
                }
            }
        }
    }

    fn run(&self, req: &BuildRequest, log: &mut Log) -> anyhow::Result<BuildOutput> {
        // The metadata file sits next to the checkout (inside the build's work directory, outside the
        // build context), so it is removed with the checkout.
        let metadata = req.checkout.with_extension("metadata.json");
        let _ = std::fs::remove_file(&metadata);
        let mut build = self.command();
        build.args(["build", "--progress=plain", "--push"]);
        for t in &req.tags {
            build.arg("-t").arg(t);
        }
        for (k, v) in &req.build_args {
            build.arg("--build-arg").arg(format!("{k}={v}"));
        }
        if let Some(cache) = &req.cache_ref {
            build
                .arg("--cache-from")
                .arg(format!("type=registry,ref={cache}"))
                .arg("--cache-to")
                .arg(format!("type=registry,ref={cache},mode=max"));
        }
        for r in &self.insecure_registries {
            build.arg("--insecure-registry").arg(r);
        }
        build
            .arg("--metadata-file")
            .arg(&metadata)
            .arg("-f")
            .arg(&req.dockerfile)
            .arg(&req.context)
            .current_dir(&req.checkout);
        self.run_logged(build, log)?;
        let recorded = std::fs::read(&metadata)
            .with_context(|| format!("reading build metadata {}", metadata.display()));
        let _ = std::fs::remove_file(&metadata);
        Ok(BuildOutput {
            digest: Some(metadata_digest(&recorded?)?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_from_build_metadata() {
        let d = format!("sha256:{}", "ab".repeat(32));
        let meta = format!(
            r#"{{"containerimage.config.digest":"sha256:00","containerimage.digest":"{d}"}}"#
        );
        assert_eq!(metadata_digest(meta.as_bytes()).unwrap(), d);
        for bad in [
            "{}",
            r#"{"containerimage.digest":"sha256:short"}"#,
            r#"{"containerimage.digest":42}"#,
            "not json",
        ] {
            assert!(metadata_digest(bad.as_bytes()).is_err(), "{bad}");
        }
    }

    #[test]
    fn failing_command_fails_the_build_with_its_output_logged() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = Log::open(&dir.path().join("log")).unwrap();
        // A real executable that is not hoist: `build` is not something `false` can do.
        let runner = HoistCli::new(PathBuf::from("/bin/false"), None, vec!["r:5000".into()]);
        let req = BuildRequest {
            checkout: dir.path().to_path_buf(),
            dockerfile: dir.path().join("Dockerfile"),
            context: dir.path().to_path_buf(),
            build_args: [("A".into(), "b".into())].into(),
            tags: vec!["r/x:1".into()],
            cache_ref: Some("r/x:buildcache".into()),
        };
        let err = runner.run(&req, &mut log).unwrap_err();
        assert!(err.to_string().contains("failed"), "{err}");
        let text = log.read_from(0);
        assert!(
            text.contains(
                "$ /bin/false build --progress=plain --push -t r/x:1 --build-arg A=b \
                 --cache-from type=registry,ref=r/x:buildcache \
                 --cache-to type=registry,ref=r/x:buildcache,mode=max --insecure-registry"
            ),
            "{text}"
        );
        assert!(
            text.contains("--insecure-registry r:5000 --metadata-file"),
            "{text}"
        );
    }
}
