//! COPY/ADD written in one pass (hoist_builder::copy::layer_out): what a later step sees, what the store
//! keeps, and that the layer is the one extracting it would give. Drives the real `hoist` binary.

mod common;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use common::{Hoist, make_busybox};
use hoist_image::{Digest, Store};

struct Env {
    _dir: tempfile::TempDir,
    store: PathBuf,
    ctx: PathBuf,
}

impl Env {
    fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("store");
        make_busybox(&store);
        let ctx = dir.path().join("ctx");
        fs::create_dir(&ctx).unwrap();
        Env {
            _dir: dir,
            store,
            ctx,
        }
    }

    fn hoist(&self) -> Hoist {
        Hoist::new(&self.store)
    }

    fn write(&self, rel: &str, body: &str) {
        let p = self.ctx.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, body).unwrap();
    }

    fn build(&self, tag: &str, extra: &[&str]) {
        let ctx = self.ctx.to_str().unwrap();
        let mut args = vec!["build", "--progress", "plain", "-t", tag];
        args.extend_from_slice(extra);
        args.push(ctx);
        self.hoist().ok(&args);
    }

    fn diff_ids(&self, tag: &str) -> Vec<Digest> {
        Store::open(&self.store)
            .unwrap()
            .resolve(tag)
            .unwrap()
            .config
            .rootfs
            .diff_ids
    }

    fn unpacked(&self, d: &Digest) -> PathBuf {
        self.store.join("unpacked").join(d.hex())
    }

    fn run(&self, tag: &str, cmd: &str) -> String {
        self.hoist().ok(&["run", "--rm", tag, "sh", "-c", cmd])
    }
}

/// One entry: path, mode, uid, gid, mtime, content or link target, link count (0 for directories).
type Snap = (String, u32, u32, u32, i64, Vec<u8>, u64);

/// Every entry under `root`, sorted.
fn snapshot(root: &Path) -> Vec<Snap> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let m = p.symlink_metadata().unwrap();
            let body = if m.is_file() {
                fs::read(&p).unwrap()
            } else if m.file_type().is_symlink() {
                fs::read_link(&p)
                    .unwrap()
                    .into_os_string()
                    .into_encoded_bytes()
            } else {
                Vec::new()
            };
            if m.is_dir() {
                stack.push(p.clone());
            }
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            let links = if m.is_dir() { 0 } else { m.nlink() };
            out.push((rel, m.mode(), m.uid(), m.gid(), m.mtime(), body, links));
        }
    }
    out.sort();
    out
}

/// The files a COPY laid down for the RUN after it are the layer's unpacked form, identical to
/// extracting its blob; nothing is left in the store's staging or trash areas.
#[test]
fn copy_then_run_sees_the_layer_it_wrote() {
    let env = Env::new();
    env.write("src/a.txt", "alpha\n");
    env.write("src/sub/b.txt", "beta\n");
    std::os::unix::fs::symlink("sub/b.txt", env.ctx.join("src/link")).unwrap();
    fs::set_permissions(env.ctx.join("src/sub"), fs::Permissions::from_mode(0o750)).unwrap();
    env.write(
        "Dockerfile",
        "FROM busybox:latest\n\
         COPY --chown=1000:1001 --chmod=640 src /src\n\
         RUN stat -c '%n %u:%g %a' /src/a.txt /src/sub/b.txt /src/sub > /out && \
         readlink /src/link >> /out && cat /src/link >> /out\n",
    );
    env.build("cr", &[]);
    assert_eq!(
        env.run("cr", "cat /out"),
        "/src/a.txt 1000:1001 640\n/src/sub/b.txt 1000:1001 640\n/src/sub 1000:1001 640\nsub/b.txt\nbeta\n"
    );
    let ids = env.diff_ids("cr");
    let copy = &ids[ids.len() - 2];
    // Laid down by the COPY itself (the RUN needed it), and equal to extracting the blob.
    let store = Store::open(&env.store).unwrap();
    let fresh = env._dir.path().join("extracted");
    fs::create_dir(&fresh).unwrap();
    hoist_image::layer::apply_layer(
        store.open_layer(copy).unwrap(),
        &fresh,
        hoist_image::layer::ApplyMode::OverlayLower,
    )
    .unwrap();
    assert_eq!(snapshot(&env.unpacked(copy)), snapshot(&fresh));
    let leftovers: Vec<_> = fs::read_dir(env.store.join("unpacked"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let trash = env.store.join("build-trash");
    assert_eq!(fs::read_dir(&trash).map(|r| r.count()).unwrap_or(0), 0);
}

/// A copied directory keeps its source's mtime (BuildKit's rule), so copying the same context again
/// without the cache gives the same layer.
#[test]
fn uncached_copy_of_the_same_context_gives_the_same_layer() {
    let env = Env::new();
    env.write("src/d/f.txt", "x\n");
    env.write("Dockerfile", "FROM busybox:latest\nCOPY src /src\n");
    env.build("one", &[]);
    // A build a second later must not stamp the directories with its own time.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    env.build("two", &["--no-cache"]);
    assert_eq!(env.diff_ids("one"), env.diff_ids("two"));
    let t = fs::metadata(env.ctx.join("src/d")).unwrap().mtime();
    let shown = env.run("one", "stat -c %Y /src/d");
    assert_eq!(shown.trim(), t.to_string());
}

/// A COPY no later step reads is not laid down while building; running the image extracts it.
#[test]
fn last_copy_is_unpacked_only_when_needed() {
    let env = Env::new();
    env.write("f.txt", "last\n");
    env.write("Dockerfile", "FROM busybox:latest\nCOPY f.txt /f.txt\n");
    env.build("last", &[]);
    let ids = env.diff_ids("last");
    let copy = ids.last().unwrap();
    assert!(!env.unpacked(copy).exists());
    assert_eq!(env.run("last", "cat /f.txt"), "last\n");
    assert!(env.unpacked(copy).is_dir());
}

/// A stage's last COPY that another stage copies from is laid down for it.
#[test]
fn copy_from_a_stage_ending_in_copy() {
    let env = Env::new();
    env.write("in.txt", "staged\n");
    env.write(
        "Dockerfile",
        "FROM busybox:latest AS a\nCOPY in.txt /in.txt\n\
         FROM busybox:latest\nCOPY --from=a /in.txt /got.txt\nRUN cat /got.txt > /seen\n",
    );
    env.build("ms", &[]);
    assert_eq!(env.run("ms", "cat /seen"), "staged\n");
}

/// ADD of an archive: its entries keep owners, modes and hardlinks (moved from the scratch tree,
/// not copied), in the layer and in the files the next RUN sees.
#[test]
fn add_archive_keeps_hardlinks() {
    let env = Env::new();
    let stage = env._dir.path().join("arch");
    fs::create_dir_all(stage.join("pkg")).unwrap();
    fs::write(stage.join("pkg/one"), "same\n").unwrap();
    fs::hard_link(stage.join("pkg/one"), stage.join("pkg/two")).unwrap();
    fs::set_permissions(stage.join("pkg/one"), fs::Permissions::from_mode(0o754)).unwrap();
    let st = std::process::Command::new("tar")
        .args(["--owner=7", "--group=8", "-C"])
        .arg(&stage)
        .args(["-czf"])
        .arg(env.ctx.join("pkg.tgz"))
        .arg("pkg")
        .status()
        .unwrap();
    assert!(st.success());
    env.write(
        "Dockerfile",
        "FROM busybox:latest\nADD pkg.tgz /opt/\nRUN stat -c '%n %h %u:%g %a' /opt/pkg/one /opt/pkg/two > /out\n",
    );
    env.build("add", &[]);
    assert_eq!(
        env.run("add", "cat /out"),
        "/opt/pkg/one 2 7:8 754\n/opt/pkg/two 2 7:8 754\n"
    );
    // The layer itself holds the second name as a hardlink entry (`tar -tv` shows "link to").
    let ids = env.diff_ids("add");
    let store = Store::open(&env.store).unwrap();
    let blob = store.blob_path(&ids[ids.len() - 2]);
    let out = std::process::Command::new("tar")
        .arg("-tvf")
        .arg(&blob)
        .output()
        .unwrap();
    assert!(out.status.success());
    let listing = String::from_utf8_lossy(&out.stdout);
    let links: Vec<&str> = listing.lines().filter(|l| l.starts_with('h')).collect();
    assert_eq!(links.len(), 1, "{listing}");
    assert!(
        links[0].ends_with("opt/pkg/two link to opt/pkg/one"),
        "{listing}"
    );
}

/// Names created in `dir` while `f` runs (inotify).
fn created_during(dir: &Path, f: impl FnOnce()) -> Vec<String> {
    use std::os::unix::ffi::OsStrExt;
    // SAFETY: inotify_init1 takes only flags and returns a new descriptor (checked below).
    let fd = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
    assert!(fd >= 0);
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).unwrap();
    // SAFETY: `fd` is our inotify descriptor and `c` a NUL-terminated path that outlives the call.
    assert!(unsafe { libc::inotify_add_watch(fd, c.as_ptr(), libc::IN_CREATE) } >= 0);
    f();
    let mut names = Vec::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        // SAFETY: `buf` is a live, writable buffer of exactly `buf.len()` bytes.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 {
            break;
        }
        let mut at = 0;
        while at < n as usize {
            // struct inotify_event { int wd; u32 mask, cookie, len; char name[len]; }
            let len = u32::from_ne_bytes(buf[at + 12..at + 16].try_into().unwrap()) as usize;
            let name = &buf[at + 16..at + 16 + len];
            let end = name.iter().position(|b| *b == 0).unwrap_or(len);
            names.push(String::from_utf8_lossy(&name[..end]).into_owned());
            at += 16 + len;
        }
    }
    // SAFETY: `fd` is ours, still open, and not used after this.
    unsafe { libc::close(fd) };
    names
}

/// A COPY that has to run again (its parent changed) but plans exactly the layer already stored
/// reuses it as it is: same diff_id, and nothing is laid down for it (only the changed COPY before
/// it gets a staging directory).
#[test]
fn identical_copy_layer_is_reused_without_writing() {
    let env = Env::new();
    env.write("first.txt", "1\n");
    env.write("data/big.txt", &"payload\n".repeat(10_000));
    env.write(
        "Dockerfile",
        "FROM busybox:latest\nCOPY first.txt /first.txt\nCOPY data /data\nRUN wc -l /data/big.txt > /n\n",
    );
    env.build("re", &[]);
    let before = env.diff_ids("re");
    env.write("first.txt", "2\n");
    let staged = |names: Vec<String>| names.iter().filter(|n| n.starts_with(".stage-")).count();
    let created = created_during(&env.store.join("unpacked"), || env.build("re", &[]));
    let after = env.diff_ids("re");
    assert_ne!(before[before.len() - 3], after[after.len() - 3]);
    assert_eq!(before[before.len() - 2], after[after.len() - 2]);
    assert_eq!(staged(created), 1);
    assert_eq!(
        env.run("re", "cat /n /first.txt"),
        "10000 /data/big.txt\n2\n"
    );
    // Changed content is a new layer, laid down for the RUN.
    env.write("data/big.txt", "other\n");
    let created = created_during(&env.store.join("unpacked"), || env.build("re", &[]));
    assert_ne!(env.diff_ids("re")[after.len() - 2], after[after.len() - 2]);
    assert_eq!(staged(created), 1);
}
