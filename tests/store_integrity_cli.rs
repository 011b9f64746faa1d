//! The store is never damaged by bad input and is never a way in for local users: owner-only
//! permissions, layers verified against the config's diff_ids, loads that change nothing when they
//! fail, no temp files left by an interrupted save, and docker-save archives as Docker writes them.

use std::fs::{self, File};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::{Value, json};

mod common;
use common::{Hoist, make_busybox};

/// The `nobody` user's ids: an unprivileged local user.
const NOBODY: u32 = 65534;

/// A temp dir every user may traverse (0755), so only the store's own modes protect it.
fn open_tempdir() -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    fs::set_permissions(t.path(), fs::Permissions::from_mode(0o755)).unwrap();
    t
}

/// `program args` run as `nobody` with no supplementary groups.
fn as_nobody(program: &Path, args: &[&str]) -> Output {
    Command::new("setpriv")
        .args([format!("--reuid={NOBODY}"), format!("--regid={NOBODY}")])
        .arg("--clear-groups")
        .arg(program)
        .args(args)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .current_dir("/")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn mode(p: &Path) -> u32 {
    fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

/// An image `suid:1` whose `/suid/sh` is busybox, setuid root, unpacked into the store by a run.
fn store_with_unpacked_setuid_shell(store: &Path) -> PathBuf {
    let h = Hoist::new(store);
    make_busybox(store);
    let rootfs = tempfile::tempdir().unwrap();
    fs::create_dir(rootfs.path().join("suid")).unwrap();
    let sh = rootfs.path().join("suid/sh");
    fs::copy("/bin/busybox", &sh).unwrap();
    fs::set_permissions(&sh, fs::Permissions::from_mode(0o4755)).unwrap();
    h.ok(&["import", rootfs.path().to_str().unwrap(), "suid:1"]);
    // Any run unpacks the layer as an overlay lower directory.
    let _ = h.output(&["run", "--rm", "suid:1", "/suid/sh", "-c", "true"]);
    let unpacked: Vec<PathBuf> = fs::read_dir(store.join("unpacked"))
        .unwrap()
        .flatten()
        .map(|e| e.path().join("suid/sh"))
        .filter(|p| p.exists())
        .collect();
    assert_eq!(unpacked.len(), 1, "the setuid shell is unpacked once");
    let sh = unpacked[0].clone();
    assert_eq!(mode(&sh), 0o4755, "unpacked as in the image");
    sh
}

/// What `nobody` can do with `suid` (a setuid-root shell in the store) and the store's index.
fn nobody_can_reach(store: &Path, suid: &Path) -> Vec<String> {
    let mut reached = Vec::new();
    let out = as_nobody(suid, &["-p", "-c", "id -u"]);
    if out.status.success() {
        reached.push(format!(
            "ran {} (euid {})",
            suid.display(),
            String::from_utf8_lossy(&out.stdout).trim()
        ));
    }
    for f in ["index.json", "oci-layout"] {
        if as_nobody(Path::new("/bin/cat"), &[store.join(f).to_str().unwrap()])
            .status
            .success()
        {
            reached.push(format!("read {f}"));
        }
    }
    for d in ["", "blobs/sha256", "unpacked", "containers"] {
        if as_nobody(Path::new("/bin/ls"), &[store.join(d).to_str().unwrap()])
            .status
            .success()
        {
            reached.push(format!("listed {}", store.join(d).display()));
        }
    }
    reached
}

#[test]
fn other_users_cannot_reach_a_setuid_file_or_anything_else_in_the_store() {
    let t = open_tempdir();
    let store = t.path().join("store");
    let suid = store_with_unpacked_setuid_shell(&store);
    assert_eq!(mode(&store), 0o700);
    assert_eq!(nobody_can_reach(&store, &suid), Vec::<String>::new());
}

#[test]
fn a_store_left_open_by_an_older_hoist_is_tightened_on_open() {
    let t = open_tempdir();
    let store = t.path().join("store");
    let suid = store_with_unpacked_setuid_shell(&store);
    // As an older hoist left it: everything 0755 under the default umask.
    for d in [
        "",
        "blobs",
        "blobs/sha256",
        "unpacked",
        "layerdb",
        "tmp",
        "locks",
    ] {
        fs::set_permissions(store.join(d), fs::Permissions::from_mode(0o755)).unwrap();
    }
    assert!(
        !nobody_can_reach(&store, &suid).is_empty(),
        "the open store is reachable before hoist opens it"
    );
    Hoist::new(&store).ok(&["images"]);
    for d in [
        "",
        "blobs",
        "blobs/sha256",
        "unpacked",
        "layerdb",
        "tmp",
        "locks",
    ] {
        assert_eq!(mode(&store.join(d)), 0o700, "{d}");
    }
    assert_eq!(nobody_can_reach(&store, &suid), Vec::<String>::new());
    // Still usable by its owner.
    Hoist::new(&store).ok(&["run", "--rm", "busybox", "true"]);
}

/// `tar -c` of `names` (in that order) under `dir` into `out`.
fn tar_c(dir: &Path, names: &[&str], out: &Path) {
    common::run(
        Command::new("tar")
            .arg("-C")
            .arg(dir)
            .arg("-cf")
            .arg(out)
            .args(names),
    );
}

fn gzip(src: &Path, dst: &Path) {
    let out = Command::new("gzip").arg("-nc").arg(src).output().unwrap();
    assert!(out.status.success());
    fs::write(dst, out.stdout).unwrap();
}

/// busybox saved by hoist and extracted into `dir`: its config (bytes) and the path of its one
/// uncompressed layer tar in `dir`.
fn extracted_busybox(store: &Path, dir: &Path) -> (Vec<u8>, PathBuf) {
    let tar = dir.join("bb.tar");
    Hoist::new(store).ok(&["save", "-o", tar.to_str().unwrap(), "busybox"]);
    common::run(Command::new("tar").arg("-C").arg(dir).arg("-xf").arg(&tar));
    fs::remove_file(&tar).unwrap();
    let m: Value = serde_json::from_slice(&fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    let cfg = fs::read(dir.join(m[0]["Config"].as_str().unwrap())).unwrap();
    (cfg, dir.join(m[0]["Layers"][0].as_str().unwrap()))
}

/// One image of [`docker_archive`]: config bytes, layer file, tags.
type ArchiveItem<'a> = (&'a [u8], &'a str, &'a [&'a str]);

/// A docker-archive at `out` of one image per item (all files in `dir`).
fn docker_archive(dir: &Path, items: &[ArchiveItem], out: &Path) {
    let mut manifest = Vec::new();
    let mut names = vec!["manifest.json".to_string()];
    for (i, (cfg, layer, tags)) in items.iter().enumerate() {
        let cfg_name = format!("config{i}.json");
        fs::write(dir.join(&cfg_name), cfg).unwrap();
        manifest.push(json!({ "Config": cfg_name, "RepoTags": tags, "Layers": [layer] }));
        names.push(cfg_name);
        if !names.iter().any(|n| n == layer) {
            names.push(layer.to_string());
        }
    }
    fs::write(
        dir.join("manifest.json"),
        serde_json::to_vec(&manifest).unwrap(),
    )
    .unwrap();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    tar_c(dir, &names, out);
}

/// A config like `cfg` but another image (another ID).
fn other_config(cfg: &[u8], comment: &str) -> Vec<u8> {
    let mut v: Value = serde_json::from_slice(cfg).unwrap();
    v["comment"] = json!(comment);
    serde_json::to_vec(&v).unwrap()
}

/// What must not change when a load fails: the image list and every layer record.
fn store_state(store: &Path) -> (String, Vec<(String, String)>) {
    let images = Hoist::new(store).ok(&["images", "--no-trunc"]);
    let mut records = Vec::new();
    for d in fs::read_dir(store.join("layerdb")).unwrap().flatten() {
        for f in fs::read_dir(d.path()).unwrap().flatten() {
            records.push((
                f.path().display().to_string(),
                fs::read_to_string(f.path()).unwrap(),
            ));
        }
    }
    records.sort();
    (images, records)
}

#[test]
fn a_failed_load_changes_no_name_and_no_layer_of_the_store() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    make_busybox(&src);
    let work = t.path().join("work");
    fs::create_dir(&work).unwrap();
    let (cfg, layer) = extracted_busybox(&src, &work);
    gzip(&layer, &work.join("good.tar.gz"));
    let good = t.path().join("good.tar");
    docker_archive(&work, &[(&cfg, "good.tar.gz", &["good:1"])], &good);

    // The store holds good:1 with its layer only gzip-compressed (as a pull would leave it).
    let store = t.path().join("store");
    let h = Hoist::new(&store);
    assert!(
        h.ok(&["load", "-i", good.to_str().unwrap()])
            .contains("Loaded image: good:1")
    );
    let before = store_state(&store);
    let blob_records: Vec<_> = before
        .1
        .iter()
        .filter(|(p, _)| p.ends_with("/gzip"))
        .collect();
    assert_eq!(
        blob_records.len(),
        1,
        "the gzip blob is recorded for the layer: {:?}",
        before.1
    );

    // (a) One flipped byte in the middle of the compressed layer.
    let mut flipped = fs::read(work.join("good.tar.gz")).unwrap();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x01;
    fs::write(work.join("flipped.tar.gz"), &flipped).unwrap();
    // (b) A well-formed layer that is not the one the config's diff_ids name.
    let other = t.path().join("other");
    fs::create_dir(&other).unwrap();
    fs::write(other.join("evil"), b"not busybox").unwrap();
    tar_c(&other, &["evil"], &work.join("other.tar"));
    gzip(&work.join("other.tar"), &work.join("lie.tar.gz"));

    let bad_a = other_config(&cfg, "flipped");
    let bad_b = other_config(&cfg, "lie");
    let cases: Vec<(&str, Vec<ArchiveItem>)> = vec![
        (
            "flipped byte",
            vec![(&bad_a, "flipped.tar.gz", &["good:1"])],
        ),
        ("lying diff_ids", vec![(&bad_b, "lie.tar.gz", &["good:1"])]),
        // A good image first, then a bad one: neither is loaded.
        (
            "second image bad",
            vec![
                (&cfg, "good.tar.gz", &["new:1"]),
                (&bad_b, "lie.tar.gz", &["good:1", "other:1"]),
            ],
        ),
    ];
    for (what, items) in cases {
        let archive = t.path().join("bad.tar");
        docker_archive(&work, &items, &archive);
        let err = h.fails(&["load", "-i", archive.to_str().unwrap()]);
        assert!(!err.trim().is_empty(), "{what}: no error message");
        assert_eq!(store_state(&store), before, "{what}: the store changed");
    }
    let err = {
        let archive = t.path().join("bad.tar");
        docker_archive(&work, &[(&bad_b, "lie.tar.gz", &["x:1"])], &archive);
        h.fails(&["load", "-i", archive.to_str().unwrap()])
    };
    assert!(
        err.contains("does not match the image config"),
        "unclear error: {err}"
    );
    // The good image still runs (its layer unpacks from the gzip blob, verified).
    h.ok(&["run", "--rm", "good:1", "true"]);
}

#[test]
fn docker_archives_with_layers_linked_to_another_images_layer_load() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    make_busybox(&src);
    let work = t.path().join("work");
    fs::create_dir(&work).unwrap();
    let (cfg, layer) = extracted_busybox(&src, &work);
    // Legacy `docker save`: one directory per layer; a layer shared by a second image is a symlink
    // to the first copy, and here it sorts (and is archived) before its target.
    let (first, second) = ("a".repeat(64), "b".repeat(64));
    fs::create_dir(work.join(&first)).unwrap();
    fs::create_dir(work.join(&second)).unwrap();
    fs::rename(&layer, work.join(&second).join("layer.tar")).unwrap();
    std::os::unix::fs::symlink(
        format!("../{second}/layer.tar"),
        work.join(&first).join("layer.tar"),
    )
    .unwrap();
    let other = other_config(&cfg, "second");
    let l1 = format!("{first}/layer.tar");
    let l2 = format!("{second}/layer.tar");
    let archive = t.path().join("legacy.tar");
    let mut manifest = Vec::new();
    for (i, (c, l, tag)) in [(&cfg, &l1, "one:1"), (&other, &l2, "two:1")]
        .into_iter()
        .enumerate()
    {
        fs::write(work.join(format!("c{i}.json")), c).unwrap();
        manifest.push(json!({ "Config": format!("c{i}.json"), "RepoTags": [tag], "Layers": [l] }));
    }
    fs::write(
        work.join("manifest.json"),
        serde_json::to_vec(&manifest).unwrap(),
    )
    .unwrap();
    tar_c(
        &work,
        &[&first, &second, "c0.json", "c1.json", "manifest.json"],
        &archive,
    );
    let store = t.path().join("store");
    let h = Hoist::new(&store);
    let out = h.ok(&["load", "-i", archive.to_str().unwrap()]);
    assert!(
        out.contains("Loaded image: one:1") && out.contains("Loaded image: two:1"),
        "{out}"
    );
    h.ok(&["run", "--rm", "one:1", "true"]);
    h.ok(&["run", "--rm", "two:1", "true"]);

    // A link out of the archive is never followed, however it is spelled.
    for target in [
        "../../outside.tar".to_string(),
        format!("{}", t.path().join("outside.tar").display()),
    ] {
        fs::copy(
            work.join(&second).join("layer.tar"),
            t.path().join("outside.tar"),
        )
        .unwrap();
        let evil = t.path().join("evil");
        let _ = fs::remove_dir_all(&evil);
        fs::create_dir_all(evil.join("x")).unwrap();
        std::os::unix::fs::symlink(&target, evil.join("x/layer.tar")).unwrap();
        fs::write(evil.join("c.json"), &cfg).unwrap();
        fs::write(
            evil.join("manifest.json"),
            serde_json::to_vec(
                &json!([{ "Config": "c.json", "RepoTags": ["evil:1"], "Layers": ["x/layer.tar"] }]),
            )
            .unwrap(),
        )
        .unwrap();
        let a = t.path().join("evil.tar");
        tar_c(&evil, &["x", "c.json", "manifest.json"], &a);
        h.fails(&["load", "-i", a.to_str().unwrap()]);
        assert!(!h.ok(&["images"]).contains("evil"), "{target}");
    }
}

/// Names in `dir`, sorted.
fn names_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn a_save_killed_mid_write_leaves_no_temp_file_after_the_next_save() {
    let t = tempfile::tempdir().unwrap();
    let store = t.path().join("store");
    let h = Hoist::new(&store);
    let rootfs = t.path().join("rootfs");
    fs::create_dir(&rootfs).unwrap();
    // 128 MiB of layer: the save takes long enough to be killed while writing.
    File::create(rootfs.join("big"))
        .unwrap()
        .set_len(128 << 20)
        .unwrap();
    h.ok(&["import", rootfs.to_str().unwrap(), "big:1"]);
    let out_dir = t.path().join("out");
    fs::create_dir(&out_dir).unwrap();
    let out = out_dir.join("big.tar");
    let mut child = h
        .command(&["save", "-o", out.to_str().unwrap(), "big:1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    let temp_size = || {
        fs::read_dir(&out_dir)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
            .map(|e| e.metadata().map(|m| m.len()).unwrap_or(0))
            .max()
    };
    while temp_size().unwrap_or(0) == 0 {
        assert!(
            child.try_wait().unwrap().is_none(),
            "save finished before it could be killed"
        );
        assert!(start.elapsed().as_secs() < 60, "no temp file appeared");
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let left = names_in(&out_dir);
    assert!(
        !out.exists(),
        "a killed save left a partial {}",
        out.display()
    );
    assert_eq!(left.len(), 1, "the killed save's temp file: {left:?}");

    // The next save to that directory (of any file) removes it.
    let other = out_dir.join("small.tar");
    make_busybox(&store);
    h.ok(&["save", "-o", other.to_str().unwrap(), "busybox"]);
    assert_eq!(names_in(&out_dir), vec!["small.tar".to_string()]);
    let loaded = h.ok(&["load", "-i", other.to_str().unwrap()]);
    assert!(loaded.contains("Loaded image: busybox:latest"), "{loaded}");
}

#[test]
fn what_the_current_docker_save_writes_loads() {
    let t = tempfile::tempdir().unwrap();
    let h = Hoist::new(&t.path().join("store"));
    let archive =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/store-integrity/docker-28-save.tar");
    let out = h.ok(&["load", "-i", archive.to_str().unwrap()]);
    assert_eq!(
        out,
        "Loaded image: wtf-scratch:1\nLoaded image: wtf-scratch:2\n"
    );
    assert_eq!(
        h.ok(&["images", "-q", "--no-trunc"]).trim(),
        "sha256:0349cf1c666abe78c415f89b827860454146b7c565db0db1c9987839664e4049"
    );
    // Saved again and loaded into another store: the same image.
    let again = t.path().join("again.tar");
    h.ok(&["save", "-o", again.to_str().unwrap(), "wtf-scratch:2"]);
    let h2 = Hoist::new(&t.path().join("store2"));
    assert_eq!(
        h2.ok(&["load", "-i", again.to_str().unwrap()]),
        "Loaded image: wtf-scratch:2\n"
    );
    assert_eq!(
        h2.ok(&["images", "-q", "--no-trunc"]).trim(),
        "sha256:0349cf1c666abe78c415f89b827860454146b7c565db0db1c9987839664e4049"
    );
}

#[test]
fn what_a_killed_load_left_in_the_store_tmp_is_removed_on_the_next_run() {
    let t = tempfile::tempdir().unwrap();
    let store = t.path().join("store");
    let h = Hoist::new(&store);
    make_busybox(&store);
    // As a `hoist load` killed while extracting leaves it: an old directory in tmp/, and a blob
    // being written by a load still running (young).
    let left = store.join("tmp/load-AbC123");
    fs::create_dir_all(left.join("blobs/sha256")).unwrap();
    File::create(left.join("blobs/sha256/big"))
        .unwrap()
        .set_len(64 << 20)
        .unwrap();
    common::run(
        Command::new("touch")
            .args(["-h", "-d", "2 hours ago"])
            .arg(&left),
    );
    let young = store.join("tmp/.tmpXyZ987");
    fs::write(&young, b"being written").unwrap();
    h.ok(&["images"]);
    assert!(!left.exists(), "a killed load's files kept");
    assert!(young.exists(), "a file still being written removed");
}

#[test]
fn volumes_cache_mounts_and_scratch_dirs_are_owner_only() {
    let t = open_tempdir();
    let store = t.path().join("store");
    make_busybox(&store);
    let scratch = t.path().join("scratch/hoist");
    let h = Hoist::new(&store).env("HOIST_RUNTIME_TMP", &scratch);
    h.ok(&["volume", "create", "vol1"]);
    h.ok(&[
        "run",
        "--rm",
        "-v",
        "vol1:/data",
        "busybox",
        "sh",
        "-c",
        "echo secret > /data/s",
    ]);
    let ctx = t.path().join("ctx");
    fs::create_dir(&ctx).unwrap();
    fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\nRUN --mount=type=cache,target=/c echo secret > /c/s\n",
    )
    .unwrap();
    h.ok(&["build", "-q", "-t", "c", ctx.to_str().unwrap()]);
    assert_eq!(mode(&scratch), 0o700, "HOIST_RUNTIME_TMP");
    for d in ["volumes", "cache", "containers"] {
        assert_eq!(mode(&store.join(d)), 0o700, "{d}");
    }
    // Even with the store root opened by hand, nothing containers or builds wrote is readable.
    fs::set_permissions(&store, fs::Permissions::from_mode(0o755)).unwrap();
    let secrets = [store.join("volumes/vol1/s")]
        .into_iter()
        .chain(
            fs::read_dir(store.join("cache/mounts"))
                .unwrap()
                .flatten()
                .map(|e| e.path().join("s")),
        )
        .collect::<Vec<_>>();
    assert_eq!(secrets.len(), 2, "{secrets:?}");
    for s in &secrets {
        assert_eq!(fs::read_to_string(s).unwrap(), "secret\n");
        let out = as_nobody(Path::new("/bin/cat"), &[s.to_str().unwrap()]);
        assert!(!out.status.success(), "nobody read {}", s.display());
    }
    for d in ["volumes", "cache", "containers"] {
        let out = as_nobody(Path::new("/bin/ls"), &[store.join(d).to_str().unwrap()]);
        assert!(!out.status.success(), "nobody listed {d}");
    }
}

/// Every file under the store's `blobs/` and its `index.json`: what a failed command must not
/// change.
fn blobs_and_index(store: &Path) -> (Vec<String>, String) {
    let mut blobs: Vec<String> = fs::read_dir(store.join("blobs/sha256"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    blobs.sort();
    (blobs, fs::read_to_string(store.join("index.json")).unwrap())
}

#[test]
fn an_import_of_a_broken_tar_changes_nothing() {
    let t = tempfile::tempdir().unwrap();
    let store = t.path().join("store");
    make_busybox(&store);
    let h = Hoist::new(&store);
    let rootfs = t.path().join("rootfs");
    fs::create_dir_all(rootfs.join("etc")).unwrap();
    fs::write(rootfs.join("etc/big"), vec![b'x'; 5000]).unwrap();
    let good = t.path().join("good.tar");
    tar_c(&rootfs, &["etc"], &good);
    let bytes = fs::read(&good).unwrap();
    let garbage: Vec<u8> = fs::read("/bin/busybox").unwrap()[..3000].to_vec();
    let gz = t.path().join("cut.tar.gz");
    gzip(&good, &gz);
    let cut_gz = fs::read(&gz).unwrap()[..fs::read(&gz).unwrap().len() - 30].to_vec();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("garbage", garbage, "invalid tar header"),
        ("cut in a file", bytes[..3000].to_vec(), "unexpected EOF"),
        ("cut in a header", bytes[..1600].to_vec(), "unexpected EOF"),
        ("cut gzip", cut_gz, ""),
    ];
    let before = blobs_and_index(&store);
    for (what, data, why) in cases {
        let file = t.path().join("bad.tar");
        fs::write(&file, &data).unwrap();
        let url = format!(
            "http://127.0.0.1:{}/bad.tar",
            common::serve_http(data.clone())
        );
        for src in [file.to_str().unwrap(), "-", url.as_str()] {
            // Into an existing name too: it must not move.
            let out = h.output_with(&["import", src, "busybox:latest"], Some(&data));
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success(), "{what} from {src}: imported");
            assert!(
                err.contains(&format!("invalid tar archive {src}")) && err.contains(why),
                "{what} from {src}: {err}"
            );
            assert_eq!(blobs_and_index(&store), before, "{what} from {src}");
        }
    }
    h.ok(&["run", "--rm", "busybox", "true"]);
    // The whole archive imports.
    h.ok(&["import", good.to_str().unwrap(), "good:1"]);
    assert!(h.ok(&["image", "inspect", "good:1"]).contains("sha256:"));
}
