//! What the `hoist build` test files (build_cli, build_advanced_cli) share: a store with the
//! busybox fixture ([`Env`]), reading a built image back from it, and throwaway build contexts.
//! Needs the shared harness as `crate::common`.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Output};

use hoist_builder::copy::union::Union;
use hoist_image::{ImageConfig, Store};

use crate::common::{HOIST, make_busybox};

/// A temp store with busybox:latest in it.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub root: PathBuf,
}

impl Env {
    pub fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("store");
        make_busybox(&root);
        Env { dir, root }
    }

    /// `hoist --root STORE ARGS`, not run yet.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(HOIST);
        c.arg("--root").arg(&self.root).args(args);
        c
    }

    pub fn hoist(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    /// Runs a command, asserting success; returns stdout + stderr.
    pub fn ok(&self, c: &mut Command) -> String {
        let out = c.output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "{c:?} failed:\n{text}");
        text
    }

    /// `hoist build --progress plain ARGS`, asserting success; returns the output (the progress).
    pub fn build(&self, args: &[&str]) -> String {
        let mut a = vec!["build", "--progress", "plain"];
        a.extend_from_slice(args);
        self.ok(&mut self.cmd(&a))
    }

    pub fn config(&self, name: &str) -> ImageConfig {
        Store::open(&self.root)
            .unwrap()
            .resolve(name)
            .unwrap()
            .config
    }

    pub fn image_id(&self, name: &str) -> String {
        Store::open(&self.root)
            .unwrap()
            .resolve(name)
            .unwrap()
            .id()
            .to_string()
    }

    /// The merged view of the image's layers.
    pub fn view(&self, name: &str) -> Union {
        let store = Store::open(&self.root).unwrap();
        let img = store.resolve(name).unwrap();
        Union::new(store.unpacked_layers(&img).unwrap())
    }

    /// A file of the image as text (panics when it is missing).
    pub fn read(&self, name: &str, path: &str) -> String {
        let bytes = self
            .view(name)
            .read(path)
            .unwrap_or_else(|| panic!("{path} missing in {name}"));
        String::from_utf8(bytes).unwrap()
    }

    pub fn exists(&self, name: &str, path: &str) -> bool {
        self.view(name).lookup(path).is_some()
    }
}

/// A context directory holding `dockerfile` as its Dockerfile and `files` (path, content).
pub fn context_with(dockerfile: &str, files: &[(&str, &[u8])]) -> tempfile::TempDir {
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(ctx.path().join("Dockerfile"), dockerfile).unwrap();
    for (p, content) in files {
        let path = ctx.path().join(p);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }
    ctx
}

/// Step vertices of plain progress: (`[...] INSTRUCTION` line, status: `CACHED`, `DONE ...`, `ERROR ...`).
pub fn step_statuses(progress: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for l in progress.lines() {
        let Some(rest) = l.strip_prefix('#') else {
            continue;
        };
        let (id, text) = rest.split_once(' ').unwrap_or((rest, ""));
        if text.starts_with('[') && !text.starts_with("[internal]") {
            let status = progress
                .lines()
                .filter(|x| x.starts_with(&format!("#{id} ")))
                .map(|x| x[id.len() + 2..].to_string())
                .find(|x| x == "CACHED" || x.starts_with("DONE") || x.starts_with("ERROR"))
                .unwrap_or_default();
            out.push((text.to_string(), status));
        }
    }
    out
}

/// The instructions (`RUN ...`, `COPY ...`) of the Dockerfile steps (`[stage N/M] ...`) a build
/// ran rather than took from the cache, in order.
pub fn steps_run(progress: &str) -> Vec<String> {
    step_statuses(progress)
        .into_iter()
        .filter(|(_, s)| s != "CACHED")
        .filter_map(|(t, _)| {
            let (label, instruction) = t.strip_prefix('[')?.split_once("] ")?;
            let n = label.rsplit(' ').next()?;
            let (i, total) = n.split_once('/')?;
            (i.parse::<u32>().is_ok() && total.parse::<u32>().is_ok())
                .then(|| instruction.to_string())
        })
        .collect()
}
