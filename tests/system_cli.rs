//! `hoist system check [--repair]` and `hoist system df [-v]` on real stores with real damage, and
//! `hoist images` SIZE as Docker computes it, the same however the image got into the store.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::{Hoist, make_busybox};
use serde_json::Value;

/// busybox plus `two` (busybox + one COPY layer) in a fresh store.
fn two_images(dir: &Path) -> Hoist {
    let h = Hoist::new(&dir.join("store"));
    make_busybox(h.root());
    let ctx = dir.join("ctx");
    fs::create_dir_all(&ctx).unwrap();
    fs::write(ctx.join("Dockerfile"), "FROM busybox\nCOPY f /f\n").unwrap();
    fs::write(ctx.join("f"), "second image\n").unwrap();
    h.ok(&["build", "-q", "-t", "two", ctx.to_str().unwrap()]);
    h
}

fn inspect(h: &Hoist, image: &str) -> Value {
    let v: Value = serde_json::from_str(&h.ok(&["image", "inspect", image])).unwrap();
    v[0].clone()
}

/// The diff_ids of an image.
fn diff_ids(h: &Hoist, image: &str) -> Vec<String> {
    inspect(h, image)["RootFS"]["Layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap().to_string())
        .collect()
}

fn blob(h: &Hoist, digest: &str) -> PathBuf {
    h.root()
        .join("blobs/sha256")
        .join(digest.trim_start_matches("sha256:"))
}

/// The manifest digest `hoist images --digests` shows for `repo`.
fn manifest_digest(h: &Hoist, repo: &str) -> String {
    h.ok(&["images", "--digests", "--no-trunc", repo])
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .nth(2)
        .unwrap()
        .to_string()
}

/// The layer blobs the image's manifest names.
fn manifest_layers(h: &Hoist, repo: &str) -> Vec<String> {
    let m: Value =
        serde_json::from_slice(&fs::read(blob(h, &manifest_digest(h, repo))).unwrap()).unwrap();
    m["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_string())
        .collect()
}

fn flip_byte(path: &Path, at: usize) {
    let mut bytes = fs::read(path).unwrap();
    let i = at.min(bytes.len() - 1);
    bytes[i] ^= 0x5a;
    fs::write(path, bytes).unwrap();
}

fn check(h: &Hoist, args: &[&str]) -> (bool, String) {
    let mut all = vec!["system", "check"];
    all.extend_from_slice(args);
    let out = h.output(&all);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

fn assert_busybox_runs(h: &Hoist) {
    let passwd = h.ok(&["run", "--rm", "busybox", "cat", "/etc/passwd"]);
    assert!(
        passwd.starts_with("root:x:0:0:root:/root:/bin/sh\n"),
        "{passwd}"
    );
}

#[test]
fn a_sound_store_checks_clean() {
    let tmp = tempfile::tempdir().unwrap();
    let h = two_images(tmp.path());
    h.ok(&["run", "--rm", "two", "cat", "/f"]);
    let (ok, out) = check(&h, &[]);
    assert!(ok, "{out}");
    assert!(
        out.contains("2 images") && out.contains("no problems found"),
        "{out}"
    );
}

#[test]
fn a_corrupt_layer_blob_is_found_and_repair_removes_only_its_image() {
    let tmp = tempfile::tempdir().unwrap();
    let h = two_images(tmp.path());
    let top = manifest_layers(&h, "two")[1].clone();
    flip_byte(&blob(&h, &top), 700);

    let (ok, out) = check(&h, &[]);
    assert!(!ok, "{out}");
    assert!(
        out.contains(&format!("blob {top}: content hashes to")),
        "{out}"
    );
    assert!(out.contains("image docker.io/library/two:latest"), "{out}");
    assert!(!out.contains("image docker.io/library/busybox"), "{out}");

    let (ok, out) = check(&h, &["--repair"]);
    assert!(ok, "{out}");
    assert!(
        out.contains(&format!("removed corrupt blob {top}")),
        "{out}"
    );
    assert!(
        out.contains("images affected: docker.io/library/two:latest"),
        "{out}"
    );
    assert!(out.contains("no problems left"), "{out}");
    assert!(!blob(&h, &top).exists());
    let images = h.ok(&["images"]);
    assert!(
        !images.contains("two") && images.contains("busybox"),
        "{images}"
    );
    assert!(check(&h, &[]).0);
    assert_busybox_runs(&h);
}

#[test]
fn a_tampered_unpacked_layer_is_found_and_unpacked_again() {
    let tmp = tempfile::tempdir().unwrap();
    let h = Hoist::new(&tmp.path().join("store"));
    make_busybox(h.root());
    assert_busybox_runs(&h);
    let diff = diff_ids(&h, "busybox")[0].clone();
    let tree = h
        .root()
        .join("unpacked")
        .join(diff.trim_start_matches("sha256:"));
    assert!(tree.is_dir());
    // Same size, other bytes; a setuid bit; a file the layer does not have; a changed symlink.
    let passwd = fs::read_to_string(tree.join("etc/passwd")).unwrap();
    fs::write(
        tree.join("etc/passwd"),
        passwd.replacen("root:x", "root::", 1),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(tree.join("bin/busybox"), fs::Permissions::from_mode(0o4755)).unwrap();
    fs::write(tree.join("etc/evil"), "x").unwrap();
    fs::remove_file(tree.join("bin/sh")).unwrap();
    std::os::unix::fs::symlink("/tmp/elsewhere", tree.join("bin/sh")).unwrap();

    let (ok, out) = check(&h, &[]);
    assert!(!ok, "{out}");
    for want in [
        format!("unpacked layer {diff}: differs from the layer"),
        "/etc/passwd content differs".into(),
        "/bin/busybox has mode 4755, not 755".into(),
        "/etc/evil is not in the layer".into(),
        "/bin/sh symlink target differs".into(),
    ] {
        assert!(out.contains(&want), "{want:?} in\n{out}");
    }
    // The tree is a cache: the image is not broken.
    assert!(!out.contains("image docker.io"), "{out}");
    let (ok, out) = check(&h, &["--repair"]);
    assert!(ok, "{out}");
    assert!(out.contains("removed unpacked layer"), "{out}");
    assert!(!out.contains("images affected"), "{out}");
    assert_busybox_runs(&h);
    assert!(check(&h, &[]).0);
}

#[test]
fn missing_manifests_and_lying_layer_records_are_found_and_repaired() {
    let tmp = tempfile::tempdir().unwrap();
    let h = two_images(tmp.path());
    h.ok(&["tag", "two", "alias:1"]);
    // two (and its alias) lose their manifest: the tags point at nothing.
    fs::remove_file(blob(&h, &manifest_digest(&h, "two"))).unwrap();
    // A compressed-layer record for busybox's layer naming a blob that holds something else.
    let diff = diff_ids(&h, "busybox")[0].clone();
    let rec_dir = h
        .root()
        .join("layerdb")
        .join(diff.trim_start_matches("sha256:"));
    fs::create_dir_all(&rec_dir).unwrap();
    let config = inspect(&h, "busybox")["Id"].as_str().unwrap().to_string();
    fs::write(rec_dir.join("gzip"), &config).unwrap();

    let (ok, out) = check(&h, &[]);
    assert!(!ok, "{out}");
    assert!(out.contains("is missing"), "{out}");
    assert!(
        out.contains("image docker.io/library/alias:1, docker.io/library/two:latest")
            || out.contains("image docker.io/library/two:latest, docker.io/library/alias:1"),
        "{out}"
    );
    assert!(
        out.contains("layerdb") && out.contains("not sha256:"),
        "{out}"
    );

    let (ok, out) = check(&h, &["--repair"]);
    assert!(ok, "{out}");
    assert!(out.contains("removed layer record"), "{out}");
    assert!(
        out.contains("images affected:") && out.contains("alias:1"),
        "{out}"
    );
    assert!(!rec_dir.join("gzip").exists());
    let images = h.ok(&["images"]);
    assert!(
        !images.contains("alias") && !images.contains("two"),
        "{images}"
    );
    assert_busybox_runs(&h);
    assert!(check(&h, &[]).0);
}

/// Docker's size of a layer tar: regular file bytes plus symlink target lengths.
fn docker_layer_size(tar_bytes: &[u8]) -> u64 {
    let mut a = tar::Archive::new(tar_bytes);
    a.entries()
        .unwrap()
        .map(|e| e.unwrap())
        .map(|e| match e.header().entry_type() {
            tar::EntryType::Regular => e.size(),
            tar::EntryType::Symlink => e.link_name_bytes().unwrap().len() as u64,
            _ => 0,
        })
        .sum()
}

#[test]
fn image_size_is_dockers_and_the_same_in_every_store() {
    let tmp = tempfile::tempdir().unwrap();
    let h = Hoist::new(&tmp.path().join("a"));
    make_busybox(h.root());
    let diff = diff_ids(&h, "busybox")[0].clone();
    let layer = fs::read(blob(&h, &diff)).expect("the imported layer is stored uncompressed");
    let want = docker_layer_size(&layer);
    assert!(want < layer.len() as u64);
    assert_eq!(inspect(&h, "busybox")["Size"], want);
    let shown = h.ok(&["images", "busybox"]);
    let size = shown
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .last()
        .unwrap()
        .to_string();
    assert_eq!(size, "1.98MB", "{shown}");
    let history = h.ok(&["history", "busybox"]);
    assert!(history.contains("   1.98MB   "), "{history}");

    // The same image through `save` (gzip layers in an OCI archive) into another store.
    let archive = tmp.path().join("bb.tar");
    h.ok(&[
        "save",
        "--format",
        "oci",
        "-o",
        archive.to_str().unwrap(),
        "busybox",
    ]);
    let other = Hoist::new(&tmp.path().join("b"));
    other.ok(&["load", "-i", archive.to_str().unwrap()]);
    assert_eq!(inspect(&other, "busybox")["Size"], want);
    assert_eq!(other.ok(&["images", "busybox"]), shown);
    assert_eq!(other.ok(&["history", "busybox"]), history);
}

#[test]
fn system_df_counts_images_layers_once_and_volumes() {
    let tmp = tempfile::tempdir().unwrap();
    let h = two_images(tmp.path());
    h.ok(&["volume", "create", "data"]);
    fs::write(h.root().join("volumes/data/blob"), vec![7u8; 5000]).unwrap();
    let bb = inspect(&h, "busybox")["Size"].as_u64().unwrap();
    let two = inspect(&h, "two")["Size"].as_u64().unwrap();
    assert_eq!(two, bb + "second image\n".len() as u64);

    let out = h.ok(&["system", "df"]);
    let rows: Vec<Vec<&str>> = out
        .lines()
        .map(|l| {
            l.split("   ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .collect()
        })
        .collect();
    assert_eq!(
        rows[0],
        ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"],
        "{out}"
    );
    assert_eq!(rows[1][..3], ["Images", "2", "0"], "{out}");
    // The shared busybox layer counts once.
    let total = hoist_image::display::human_size4(two);
    assert_eq!(rows[1][3], total, "{out}");
    assert_eq!(rows[1][4], format!("{total} (100%)"), "{out}");
    assert_eq!(rows[2][..4], ["Containers", "0", "0", "0B"], "{out}");
    assert_eq!(rows[3][..4], ["Local Volumes", "1", "0", "5kB"], "{out}");
    assert_eq!(rows[4][0], "Build Cache", "{out}");

    let v = h.ok(&["system", "df", "-v"]);
    assert!(v.starts_with("Images space usage:\n\nREPOSITORY"), "{v}");
    assert!(v.contains("SHARED SIZE   UNIQUE SIZE   CONTAINERS"), "{v}");
    let two_row = v.lines().find(|l| l.starts_with("two ")).unwrap();
    let cells: Vec<&str> = two_row.split_whitespace().collect();
    assert_eq!(
        cells[cells.len() - 3..],
        [hoist_image::display::human_size4(bb).as_str(), "13B", "0"],
        "{two_row}"
    );
    assert!(
        v.contains("Local Volumes space usage:\n\nVOLUME NAME   LINKS     SIZE\ndata"),
        "{v}"
    );
    assert!(v.contains("\nBuild cache usage: "), "{v}");
}
