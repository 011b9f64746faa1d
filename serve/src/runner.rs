//! The build step behind a small trait, so the service does not depend on the builder's Rust API.
//! [`HoistCli`], the production runner, runs the `hoist` binary itself: `hoist build` with the rule's
//! Dockerfile, context, build args and tags, then pushes every tag (`hoist build --push` when the
//! builder offers it, `hoist push TAG` per tag otherwise). Its output streams into the build's log.

use std::collections::BTreeMap;
use std::collections::HashSet;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

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
    /// Children running now, by pid, for [`BuildRunner::interrupt`].
    children: Arc<Mutex<HashSet<u32>>>,
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
        let mut cmd = Command::new(&self.exe);
        if let Some(root) = &self.root {
            cmd.arg("--root").arg(root);
        }
        cmd.stdin(Stdio::null());
        cmd
    }

    /// `hoist build --help`, asked once: which flags this build of hoist offers.
    fn build_help(&self) -> &'static str {
        static HELP: OnceLock<String> = OnceLock::new();
        HELP.get_or_init(|| {
            self.command()
                .args(["build", "--help"])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default()
        })
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
        self.children
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(pid);
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

/// The last `digest: sha256:...` a push printed (Docker's `TAG: digest: D size: N` line).
pub fn pushed_digest(output: &str) -> Option<String> {
    output.lines().rev().find_map(|l| {
        let i = l.find("digest: sha256:")?;
        let d = l[i + 8..].split_whitespace().next()?;
        (d.len() == 71 && d[7..].bytes().all(|b| b.is_ascii_hexdigit())).then(|| d.to_string())
    })
}

impl BuildRunner for HoistCli {
    fn interrupt(&self) {
        self.interrupted.store(true, Ordering::SeqCst);
        for pid in self
            .children
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            // SIGTERM: hoist cleans up its sandboxes and exits; the wait in run_logged reaps it.
            if let Some(pid) = rustix::process::Pid::from_raw(*pid as i32) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
            }
        }
    }

    fn run(&self, req: &BuildRequest, log: &mut Log) -> anyhow::Result<BuildOutput> {
        let mut build = self.command();
        build.arg("build").arg("-f").arg(&req.dockerfile);
        for t in &req.tags {
            build.arg("-t").arg(t);
        }
        for (k, v) in &req.build_args {
            build.arg("--build-arg").arg(format!("{k}={v}"));
        }
        let help = self.build_help();
        if help.contains("--progress") {
            build.arg("--progress=plain");
        }
        // `hoist build --push` when the builder offers it (and can reach plain-http registries if any
        // are configured); otherwise `hoist push` per tag after the build.
        let push_in_build = help.contains("--push")
            && (self.insecure_registries.is_empty() || help.contains("--insecure-registry"));
        if push_in_build {
            build.arg("--push");
            for r in &self.insecure_registries {
                build.arg("--insecure-registry").arg(r);
            }
        }
        build.arg(&req.context).current_dir(&req.checkout);
        let mut out = self.run_logged(build, log)?;
        if !push_in_build {
            for t in &req.tags {
                let mut push = self.command();
                push.arg("push").arg(t);
                for r in &self.insecure_registries {
                    push.arg("--insecure-registry").arg(r);
                }
                out.push_str(&self.run_logged(push, log)?);
            }
        }
        Ok(BuildOutput {
            digest: pushed_digest(&out),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_from_push_output() {
        let d = format!("sha256:{}", "ab".repeat(32));
        let out = format!("Pushing\nlatest: digest: {d} size: 528\nv1: digest: {d} size: 528\n");
        assert_eq!(pushed_digest(&out), Some(d));
        assert_eq!(pushed_digest("digest: sha256:short"), None);
    }

    #[test]
    fn failing_command_fails_the_build_with_its_output_logged() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = Log::open(&dir.path().join("log")).unwrap();
        // A real executable that is not hoist: `build` is not something `false` can do.
        let runner = HoistCli::new(PathBuf::from("/bin/false"), None, vec![]);
        let req = BuildRequest {
            checkout: dir.path().to_path_buf(),
            dockerfile: dir.path().join("Dockerfile"),
            context: dir.path().to_path_buf(),
            build_args: [("A".into(), "b".into())].into(),
            tags: vec!["r/x:1".into()],
        };
        let err = runner.run(&req, &mut log).unwrap_err();
        assert!(err.to_string().contains("failed"), "{err}");
        let text = log.read_from(0);
        assert!(text.contains("$ /bin/false build -f"), "{text}");
        assert!(
            text.contains("-t r/x:1") && text.contains("--build-arg A=b"),
            "{text}"
        );
    }
}
