//! `hoist build` with registries, end to end against the real registry (Debian's docker-registry on
//! a free loopback port): `--push`, `--output type=registry`, `--pull`, and the build cache through
//! a registry (`--cache-to/--cache-from type=registry`, `type=inline`) into a wiped store.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::{Hoist, TestRegistry, make_busybox, skopeo_inspect};
use hoist_image::Store;

/// A store with busybox:latest, and a context directory.
struct Env {
    dir: tempfile::TempDir,
    root: PathBuf,
}

impl Env {
    fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("store");
        make_busybox(&root);
        Env { dir, root }
    }

    /// Wipes the store: a new empty root with only the busybox fixture.
    fn wipe(&mut self) {
        std::fs::remove_dir_all(&self.root).unwrap();
        make_busybox(&self.root);
        assert!(!self.root.join("cache").exists() || self.cache_is_empty());
    }

    fn cache_is_empty(&self) -> bool {
        std::fs::read_dir(self.root.join("cache/keys"))
            .map(|mut d| d.next().is_none())
            .unwrap_or(true)
    }

    fn context(&self, dockerfile: &str) -> PathBuf {
        let ctx = self.dir.path().join("ctx");
        std::fs::create_dir_all(&ctx).unwrap();
        std::fs::write(ctx.join("Dockerfile"), dockerfile).unwrap();
        std::fs::write(ctx.join("a.txt"), "from the context\n").unwrap();
        ctx
    }

    fn hoist(&self, args: &[&str]) -> Output {
        Hoist::new(&self.root)
            .docker_config(&self.dir.path().join("docker"))
            .output(args)
    }

    /// `hoist build --progress=plain ARGS CONTEXT`, asserting success; returns the progress.
    fn build(&self, args: &[&str], ctx: &Path) -> String {
        let mut a = vec!["build", "--progress=plain"];
        a.extend_from_slice(args);
        a.push(ctx.to_str().unwrap());
        let out = self.hoist(&a);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "build {args:?} failed:\n{err}");
        err
    }

    fn store(&self) -> Store {
        Store::open(&self.root).unwrap()
    }
}

/// (step line, final status) of every `[...]` step vertex in plain progress.
fn steps(progress: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for l in progress.lines() {
        let Some((id, text)) = l.strip_prefix('#').and_then(|r| r.split_once(' ')) else {
            continue;
        };
        if !text.starts_with('[') || text.starts_with("[internal]") {
            continue;
        }
        let status = progress
            .lines()
            .filter_map(|x| x.strip_prefix(&format!("#{id} ")))
            .find(|x| *x == "CACHED" || x.starts_with("DONE") || x.starts_with("ERROR"))
            .unwrap_or_default()
            .to_string();
        out.push((text.to_string(), status));
    }
    out
}

/// Whether a RUN printed `word` as an output line (`#N 0.012 word`), not just in its command line.
fn ran(progress: &str, word: &str) -> bool {
    progress.lines().any(|l| {
        l.starts_with('#')
            && l.split_once(' ').is_some_and(|(_, r)| {
                r.split_once(' ')
                    .is_some_and(|(t, w)| t.parse::<f64>().is_ok() && w == word)
            })
    })
}

const MULTISTAGE: &str = "\
FROM busybox AS builder
RUN echo builder-ran && echo built > /artifact && echo not-copied > /scratch
FROM busybox
COPY a.txt /a.txt
COPY --from=builder /artifact /artifact
RUN echo final-ran && cat /a.txt /artifact > /out
ENV DONE=1
";

#[test]
fn push_and_output_type_registry() {
    let reg = TestRegistry::start(None);
    let env = Env::new();
    let ctx = env.context("FROM busybox\nRUN echo pushed > /p.txt\n");
    let (t1, t2) = (
        format!("{}/app/web:1", reg.host()),
        format!("{}/app/web:latest", reg.host()),
    );
    let meta_file = env.dir.path().join("metadata.json");
    let progress = env.build(
        &[
            "--push",
            "-t",
            &t1,
            "-t",
            &t2,
            "--metadata-file",
            meta_file.to_str().unwrap(),
        ],
        &ctx,
    );
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&meta_file).unwrap()).unwrap();
    let image = env.store().resolve(&t1).unwrap();
    let pushed: Vec<&str> = progress
        .lines()
        .filter_map(|l| l.split_once("pushing manifest for ").map(|(_, r)| r))
        .collect();
    assert_eq!(pushed.len(), 2, "{progress}");
    for t in [&t1, &t2] {
        let v = skopeo_inspect(t, false);
        let digest = v["Digest"].as_str().unwrap();
        // buildx's metadata names the pushed manifest.
        assert_eq!(meta["containerimage.digest"], digest);
        assert!(
            pushed.contains(&format!("{t}@{digest} done").as_str()),
            "{t} {digest}: {progress}"
        );
        let diff_ids: Vec<String> = image
            .config
            .rootfs
            .diff_ids
            .iter()
            .map(|d| d.to_string())
            .collect();
        assert_eq!(v["Layers"].as_array().unwrap().len(), diff_ids.len());
    }

    // --output type=registry: the same push, and a pull into an empty store gets the image.
    let out_name = format!("{}/app/out:2", reg.host());
    env.build(
        &["--output", &format!("type=registry,name={out_name}")],
        &ctx,
    );
    let other = tempfile::tempdir().unwrap();
    Hoist::new(other.path()).ok(&["pull", &out_name]);
    let pulled = Store::open(other.path())
        .unwrap()
        .resolve(&out_name)
        .unwrap();
    assert_eq!(pulled.id(), image.id(), "the pushed image is the built one");

    // type=image names the store image without pushing.
    env.build(&["-o", "type=image,name=local/named:1"], &ctx);
    assert_eq!(
        env.store().resolve("local/named:1").unwrap().id(),
        image.id()
    );

    // No name to push to: Docker's refusal, before anything is built.
    let out = env.hoist(&["build", "--push", ctx.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("tag is needed when pushing to registry"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Builds MULTISTAGE with `--cache-to` into the registry, wipes the store, and builds again from
/// the cache only. Returns the rebuild's progress and both image IDs.
fn cache_round_trip(reg: &TestRegistry, cache_ref: &str, mode: &str) -> (String, String, String) {
    let mut env = Env::new();
    let ctx = env.context(MULTISTAGE);
    let first = env.build(
        &[
            "-t",
            "app:1",
            "--cache-to",
            &format!("type=registry,ref={cache_ref},mode={mode}"),
        ],
        &ctx,
    );
    assert!(ran(&first, "final-ran"), "{first}");
    assert!(first.contains("exporting cache to registry"), "{first}");
    let id1 = env.store().resolve("app:1").unwrap().id().to_string();
    let _ = reg;

    env.wipe();
    assert!(env.store().resolve("app:1").is_err());
    let second = env.build(
        &[
            "-t",
            "app:1",
            "--cache-from",
            &format!("type=registry,ref={cache_ref}"),
        ],
        &ctx,
    );
    let id2 = env.store().resolve("app:1").unwrap().id().to_string();

    // The layers came from the registry: each cache blob the manifest lists is now in the store.
    let manifest = skopeo_inspect(cache_ref, true);
    let layers = manifest["layers"].as_array().unwrap();
    assert!(!layers.is_empty());
    let store = env.store();
    for l in layers {
        let d: hoist_image::Digest = l["digest"].as_str().unwrap().parse().unwrap();
        let used = second.contains(&format!("importing cache layer {d}"));
        assert_eq!(store.has_blob(&d), used, "{d}: {second}");
    }
    (second, id1, id2)
}

#[test]
fn registry_cache_max_makes_every_step_a_hit_in_a_wiped_store() {
    let reg = TestRegistry::start(None);
    let cache_ref = format!("{}/app/cache:main", reg.host());
    let (second, id1, id2) = cache_round_trip(&reg, &cache_ref, "max");
    let st = steps(&second);
    assert_eq!(st.len(), 6, "{second}");
    for (step, status) in &st {
        assert_eq!(status, "CACHED", "{step}: {second}");
    }
    assert!(!ran(&second, "builder-ran"), "no RUN executed: {second}");
    assert!(!ran(&second, "final-ran"), "no RUN executed: {second}");
    assert_eq!(
        second.matches("importing cache layer").count(),
        4,
        "every step's layer fetched once: {second}"
    );
    assert_eq!(id1, id2, "same image from the cache");
}

/// `--cache-to type=local,dest=DIR` writes an OCI layout (what a CI job saves between machines);
/// a wiped store built with `--cache-from type=local,src=DIR` runs no step and gets the same image.
#[test]
fn local_cache_directory_makes_every_step_a_hit_in_a_wiped_store() {
    let mut env = Env::new();
    let ctx = env.context(MULTISTAGE);
    let cache = env.dir.path().join("ci-cache");
    let first = env.build(
        &[
            "-t",
            "app:1",
            "--cache-to",
            &format!("type=local,dest={},mode=max", cache.display()),
        ],
        &ctx,
    );
    assert!(ran(&first, "final-ran"), "{first}");
    assert!(
        first.contains("exporting cache to client directory"),
        "{first}"
    );
    let id1 = env.store().resolve("app:1").unwrap().id().to_string();

    // An OCI layout: index.json names the cache manifest "latest"; every blob is what it claims.
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(cache.join("index.json")).unwrap()).unwrap();
    let entry = &index["manifests"][0];
    assert_eq!(
        entry["annotations"]["org.opencontainers.image.ref.name"],
        "latest"
    );
    let blob = |d: &str| std::fs::read(cache.join("blobs/sha256").join(&d[7..])).unwrap();
    let manifest: serde_json::Value =
        serde_json::from_slice(&blob(entry["digest"].as_str().unwrap())).unwrap();
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 4, "{manifest}");
    for d in layers.iter().chain([&manifest["config"], entry]) {
        let d = d["digest"].as_str().unwrap();
        let got = hoist_image::Digest::of(&blob(d));
        assert_eq!(got.to_string(), d);
    }

    env.wipe();
    let second = env.build(
        &[
            "-t",
            "app:1",
            "--cache-from",
            &format!("type=local,src={}", cache.display()),
        ],
        &ctx,
    );
    for (step, status) in &steps(&second) {
        assert_eq!(status, "CACHED", "{step}: {second}");
    }
    assert!(!ran(&second, "builder-ran"), "no RUN executed: {second}");
    assert!(!ran(&second, "final-ran"), "no RUN executed: {second}");
    assert_eq!(env.store().resolve("app:1").unwrap().id().to_string(), id1);

    // A directory that is not a layout is a warning, as a missing registry cache is.
    env.wipe();
    let third = env.build(
        &[
            "--cache-from",
            &format!("type=local,src={}", env.dir.path().join("nope").display()),
        ],
        &ctx,
    );
    assert!(third.contains("WARNING: failed to import cache"), "{third}");
    assert!(ran(&third, "final-ran"), "{third}");
}

#[test]
fn registry_cache_min_covers_the_final_stage_only() {
    let reg = TestRegistry::start(None);
    let cache_ref = format!("{}/app/cache:min", reg.host());
    let (second, id1, id2) = cache_round_trip(&reg, &cache_ref, "min");
    // The builder stage is not in the final image: rebuilt. The final stage's steps are hits
    // (COPY --from keys on the builder stage's key, which is the same).
    assert!(ran(&second, "builder-ran"), "{second}");
    assert!(!ran(&second, "final-ran"), "{second}");
    for (step, status) in steps(&second) {
        let want = if step.starts_with("[builder 2/2]") {
            "DONE"
        } else {
            "CACHED"
        };
        assert!(status.starts_with(want), "{step}: {status}\n{second}");
    }
    assert_eq!(id1, id2);
}

#[test]
fn inline_cache_rides_in_the_pushed_image() {
    let reg = TestRegistry::start(None);
    let mut env = Env::new();
    let ctx =
        env.context("FROM busybox\nCOPY a.txt /a.txt\nRUN echo inline-ran && echo x > /i.txt\n");
    let name = format!("{}/app/inline:1", reg.host());
    let first = env.build(&["--push", "-t", &name, "--cache-to", "type=inline"], &ctx);
    assert!(ran(&first, "inline-ran"));
    let id1 = env.store().resolve(&name).unwrap().id().to_string();
    let raw = skopeo_inspect(&name, true);
    assert!(
        raw["annotations"]["io.hoist.buildcache.v1"].is_string(),
        "{raw}"
    );

    env.wipe();
    // A bare reference as --cache-from, as with docker build.
    let second = env.build(&["-t", "again", "--cache-from", &name], &ctx);
    assert!(!ran(&second, "inline-ran"), "{second}");
    for (step, status) in steps(&second) {
        assert_eq!(status, "CACHED", "{step}: {second}");
    }
    assert_eq!(env.store().resolve("again").unwrap().id().to_string(), id1);
}

#[test]
fn missing_cache_is_a_warning_and_bad_specs_are_errors() {
    let reg = TestRegistry::start(None);
    let env = Env::new();
    let ctx = env.context("FROM busybox\nRUN echo ran > /r\n");
    let progress = env.build(
        &[
            "--cache-from",
            &format!("type=registry,ref={}/none/cache:x", reg.host()),
        ],
        &ctx,
    );
    assert!(progress.contains("no cache found"), "{progress}");
    for bad in [
        "type=local,src=/tmp",
        "type=registry",
        "type=registry,ref=a,mode=all",
    ] {
        let out = env.hoist(&["build", "--cache-to", bad, ctx.to_str().unwrap()]);
        assert!(!out.status.success(), "{bad}");
    }
}

#[test]
fn pull_flag_rechecks_the_base_in_its_registry() {
    let reg = TestRegistry::start(None);
    let env = Env::new();
    let base = format!("{}/base/busybox:1", reg.host());
    assert!(
        env.hoist(&["tag", "busybox:latest", &base])
            .status
            .success()
    );
    assert!(env.hoist(&["push", &base]).status.success());

    // Another store pushes a newer base under the same tag.
    let other = Env::new();
    let newer = other.context(&format!("FROM {base}\nRUN touch /new\n"));
    other.build(&["--pull", "--push", "-t", &base], &newer);

    let ctx = env.context(&format!(
        "FROM {base}\nRUN if [ -f /new ]; then echo base-is-new; else echo base-is-old; fi\n"
    ));
    let stale = env.build(&[], &ctx);
    assert!(ran(&stale, "base-is-old"), "the local base: {stale}");
    let fresh = env.build(&["--pull"], &ctx);
    assert!(ran(&fresh, "base-is-new"), "--pull re-resolved it: {fresh}");
}

#[test]
fn a_cache_layer_that_is_not_the_claimed_layer_is_refused() {
    use hoist_builder::cache::remote::Metadata;
    use hoist_image::Reference;
    use hoist_registry::{Client, ClientOptions, Progress, ProgressMode, PushOptions};
    let reg = TestRegistry::start(None);
    let mut env = Env::new();
    let ctx = env.context("FROM busybox\nCOPY a.txt /a.txt\nRUN echo run-ran && echo r > /r\n");
    let (good, bad) = (
        format!("{}/app/cache:good", reg.host()),
        format!("{}/app/cache:bad", reg.host()),
    );
    env.build(
        &[
            "-t",
            "app",
            "--cache-to",
            &format!("type=registry,ref={good},mode=max"),
        ],
        &ctx,
    );
    let diff_ids: Vec<String> = env.store().resolve("app").unwrap().config.rootfs.diff_ids[1..]
        .iter()
        .map(|d| d.to_string())
        .collect();

    // A cache whose records point at each other's blobs (consistent digests, wrong content).
    let rt = hoist_registry::runtime().unwrap();
    let client = Client::new(ClientOptions::default()).unwrap();
    let remote = rt
        .block_on(hoist_registry::cache::import_cache(
            &client,
            &Reference::parse(&good).unwrap(),
        ))
        .unwrap()
        .unwrap();
    let mut meta: Metadata = serde_json::from_slice(&remote.metadata).unwrap();
    assert_eq!(meta.records.len(), 2);
    let copy = meta
        .records
        .iter()
        .position(|r| r.diff_id == diff_ids[0])
        .unwrap();
    let run = 1 - copy;
    let run_blob = meta.records[run].layer.clone().unwrap();
    let copy_blob = meta.records[copy].layer.clone().unwrap();
    meta.records[copy].layer = Some(run_blob.clone());
    meta.records[run].layer = Some(copy_blob.clone());
    rt.block_on(hoist_registry::cache::export_cache(
        &client,
        &env.store(),
        &Reference::parse(&bad).unwrap(),
        serde_json::to_vec(&meta).unwrap().into(),
        remote.layers().to_vec(),
        &PushOptions::default(),
        &Progress::new(ProgressMode::Quiet),
    ))
    .unwrap();
    // The same lying cache as a local directory (`type=local`).
    let local = env.dir.path().join("bad-cache");
    hoist_registry::cache::export_cache_local(
        &env.store(),
        &hoist_registry::LayoutStore::open(&local).unwrap(),
        "latest",
        &serde_json::to_vec(&meta).unwrap(),
        remote.layers().to_vec(),
    )
    .unwrap();

    let from_local = format!("type=local,src={}", local.display());
    for from in [bad.as_str(), from_local.as_str()] {
        env.wipe();
        let second = env.build(&["-t", "app", "--cache-from", from], &ctx);
        assert!(
            second.contains(&format!(
                "cache layer {run_blob} holds {}, not {}",
                diff_ids[1], diff_ids[0]
            )),
            "{from}: {second}"
        );
        let st = steps(&second);
        assert!(
            st[1].0.contains("COPY a.txt") && st[1].1.starts_with("DONE"),
            "{from}: {second}"
        );
        // Checked while it streamed in: neither wrong blob was stored, so none was recorded as
        // a layer's compressed form (a push would send it).
        let store = env.store();
        for b in [&run_blob, &copy_blob] {
            let d: hoist_image::Digest = b.parse().unwrap();
            assert!(!store.has_blob(&d), "{from}: {b} was stored");
        }
        let img = store.resolve("app").unwrap();
        assert_eq!(img.config.rootfs.diff_ids[1].to_string(), diff_ids[0]);
    }
}
