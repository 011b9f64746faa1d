//! End-to-end tests of the image commands through the real `hoist` binary, with skopeo and umoci
//! reading what hoist writes and hoist loading what skopeo writes.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

mod common;
use common::{HOIST, Hoist, make_busybox, run};

fn hoist(root: &Path, args: &[&str]) -> Output {
    Hoist::new(root).output(args)
}

fn ok(root: &Path, args: &[&str]) -> String {
    Hoist::new(root).ok(args)
}

/// A rootfs with the kinds of entries images carry.
fn sample_rootfs(dir: &Path) {
    fs::create_dir_all(dir.join("etc/app")).unwrap();
    fs::create_dir_all(dir.join("usr/bin")).unwrap();
    fs::write(dir.join("etc/app/conf"), b"key=value\n").unwrap();
    fs::write(dir.join("usr/bin/tool"), b"#!/bin/sh\necho hi\n").unwrap();
    fs::set_permissions(dir.join("usr/bin/tool"), fs::Permissions::from_mode(0o755)).unwrap();
    fs::write(dir.join("usr/bin/suid"), b"s").unwrap();
    fs::set_permissions(dir.join("usr/bin/suid"), fs::Permissions::from_mode(0o4711)).unwrap();
    symlink("usr/bin", dir.join("bin")).unwrap();
    fs::hard_link(dir.join("etc/app/conf"), dir.join("etc/app/conf.link")).unwrap();
    fs::write(dir.join("owned"), b"o").unwrap();
    std::os::unix::fs::chown(dir.join("owned"), Some(1000), Some(1000)).unwrap();
    fs::write(dir.join("x".repeat(150)), b"long name").unwrap();
}

/// (path, kind, mode, uid, gid, content or link target) for every entry under `root`.
fn tree(root: &Path) -> Vec<(String, String, u32, u32, u32, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let m = fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            let (kind, data) = if m.is_dir() {
                stack.push(p.clone());
                ("dir", Vec::new())
            } else if m.file_type().is_symlink() {
                (
                    "symlink",
                    fs::read_link(&p)
                        .unwrap()
                        .to_string_lossy()
                        .into_owned()
                        .into_bytes(),
                )
            } else {
                ("file", fs::read(&p).unwrap())
            };
            out.push((
                rel,
                kind.to_string(),
                m.mode() & 0o7777,
                m.uid(),
                m.gid(),
                data,
            ));
        }
    }
    out.sort();
    out
}

#[test]
fn busybox_fixture_lists_inspects_and_shows_history() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("store");
    make_busybox(&root);

    let table = ok(&root, &["images"]);
    let mut lines = table.lines();
    let header = lines.next().unwrap();
    assert!(
        header.starts_with("REPOSITORY   TAG       IMAGE ID       CREATED"),
        "{header}"
    );
    assert!(header.ends_with("SIZE"));
    let row: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(&row[..2], ["busybox", "latest"]);
    assert_eq!(row[2].len(), 12);

    let id = ok(&root, &["images", "-q"]);
    assert_eq!(id.trim(), row[2]);
    let js: Value = serde_json::from_str(
        ok(&root, &["images", "--format", "json"])
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(js["Repository"], "busybox");
    assert_eq!(js["Tag"], "latest");
    assert_eq!(js["ID"], row[2]);

    let inspect: Value = serde_json::from_str(&ok(&root, &["inspect", "busybox"])).unwrap();
    let img = &inspect[0];
    assert_eq!(img["RepoTags"][0], "busybox:latest");
    assert!(
        img["Id"]
            .as_str()
            .unwrap()
            .starts_with(&format!("sha256:{}", row[2]))
    );
    assert_eq!(img["Config"]["Cmd"][0], "sh");
    assert_eq!(img["Os"], "linux");
    assert_eq!(img["RootFS"]["Layers"].as_array().unwrap().len(), 1);

    let hist = ok(&root, &["history", "busybox"]);
    assert!(hist.starts_with("IMAGE          CREATED"), "{hist}");
    assert!(hist.contains("busybox from Debian busybox-static"));

    // The fixture is reproducible: same input, same image ID.
    let again = t.path().join("store2");
    make_busybox(&again);
    assert_eq!(ok(&again, &["images", "-q"]), id);

    // The rootfs has what tests rely on.
    let out = t.path().join("rootfs.tar");
    ok(&root, &["export", "busybox", "-o", out.to_str().unwrap()]);
    let list = run(Command::new("tar").arg("tvf").arg(&out));
    for want in [
        "bin/busybox",
        "bin/sh -> busybox",
        "bin/ls -> busybox",
        "etc/passwd",
        "etc/group",
        "tmp/",
    ] {
        assert!(list.contains(want), "{want} missing from\n{list}");
    }
    assert!(
        list.lines()
            .any(|l| l.starts_with("drwxrwxrwt") && l.ends_with("tmp/")),
        "sticky /tmp"
    );
}

#[test]
fn tag_rmi_and_prune() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("store");
    make_busybox(&root);
    ok(&root, &["tag", "busybox", "localhost:5000/team/app:v1"]);
    let table = ok(&root, &["images"]);
    assert!(table.contains("localhost:5000/team/app   v1"), "{table}");
    let bad = hoist(&root, &["tag", "busybox", "Not/Valid"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("invalid reference format"));

    assert_eq!(
        ok(&root, &["rmi", "localhost:5000/team/app:v1"]),
        "Untagged: localhost:5000/team/app:v1\n"
    );
    let missing = hoist(&root, &["rmi", "nothere"]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("No such image: nothere"));

    // An untagged import is dangling: listed as <none>, removed by prune with its blobs.
    let dir = t.path().join("rootfs");
    fs::create_dir(&dir).unwrap();
    fs::write(dir.join("f"), b"dangling").unwrap();
    let id = ok(&root, &["import", dir.to_str().unwrap()]);
    assert!(ok(&root, &["images"]).contains("<none>       <none>"));
    let short = &id.trim()["sha256:".len()..][..12];
    assert_eq!(
        ok(&root, &["images", "-q", "-f", "dangling=true"]).trim(),
        short
    );
    assert!(!ok(&root, &["images", "-f", "dangling=false"]).contains("<none>"));
    let by_ref = ok(&root, &["images", "--filter", "reference=busy*"]);
    assert_eq!(by_ref.lines().count(), 2, "{by_ref}");
    let blobs = || fs::read_dir(root.join("blobs/sha256")).unwrap().count();
    let before = blobs();
    let pruned = ok(&root, &["image", "prune", "-f"]);
    assert!(
        pruned.contains(&format!("deleted: {}", id.trim())),
        "{pruned}"
    );
    assert!(pruned.contains("Total reclaimed space:"));
    assert_eq!(blobs(), before - 3);
    assert!(!ok(&root, &["images"]).contains("<none>"));

    let out = ok(&root, &["rmi", "busybox"]);
    assert!(
        out.starts_with("Untagged: busybox:latest\nDeleted: sha256:"),
        "{out}"
    );
    assert_eq!(blobs(), 0);
}

#[test]
fn import_tarballs_from_file_and_stdin() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("store");
    let dir = t.path().join("rootfs");
    fs::create_dir(&dir).unwrap();
    sample_rootfs(&dir);
    let tgz = t.path().join("rootfs.tar.gz");
    run(Command::new("tar")
        .arg("-C")
        .arg(&dir)
        .arg("-czf")
        .arg(&tgz)
        .arg("."));
    ok(&root, &["import", tgz.to_str().unwrap(), "fromfile:1"]);
    let stdin = fs::File::open(&tgz).unwrap();
    let o = Command::new(HOIST)
        .arg("--root")
        .arg(&root)
        .args([
            "import",
            "-c",
            "CMD [\"/usr/bin/tool\"]",
            "-c",
            "ENV A=1",
            "-",
            "fromstdin",
        ])
        .stdin(Stdio::from(stdin))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let a: Value =
        serde_json::from_str(&ok(&root, &["inspect", "fromfile:1", "fromstdin"])).unwrap();
    assert_eq!(a[0]["RootFS"], a[1]["RootFS"], "same tar, same diff_id");
    assert_eq!(a[1]["Config"]["Cmd"][0], "/usr/bin/tool");
    assert_eq!(a[1]["Config"]["Env"][0], "A=1");
    assert_eq!(a[1]["Comment"], "Imported from -");
    // Changes are Dockerfile lines the builder applies (ENV expansion, SHELL-less shell form);
    // instructions that would run or copy are refused with Docker's error.
    ok(
        &root,
        &[
            "import",
            "-c",
            "ENV DIR=/srv",
            "-c",
            "WORKDIR $DIR/app",
            "-c",
            "ENTRYPOINT exec tool",
            tgz.to_str().unwrap(),
            "changed",
        ],
    );
    let c: Value = serde_json::from_str(&ok(&root, &["inspect", "changed"])).unwrap();
    assert_eq!(c[0]["Config"]["WorkingDir"], "/srv/app");
    assert_eq!(
        c[0]["Config"]["Entrypoint"],
        serde_json::json!(["/bin/sh", "-c", "exec tool"])
    );
    let o = Command::new(HOIST)
        .arg("--root")
        .arg(&root)
        .args(["import", "-c", "RUN make", tgz.to_str().unwrap(), "refused"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("run is not a valid change command"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        hoist_image::Store::open(&root)
            .unwrap()
            .resolve("refused")
            .is_err()
    );

    let out = t.path().join("export");
    fs::create_dir(&out).unwrap();
    let tar = t.path().join("x.tar");
    ok(&root, &["export", "fromstdin", "-o", tar.to_str().unwrap()]);
    run(Command::new("tar")
        .arg("-C")
        .arg(&out)
        .arg("-xpf")
        .arg(&tar));
    assert_eq!(tree(&out), tree(&dir));
}

/// `docker import` and `docker load` take archives compressed with gzip, bzip2, xz or zstd.
#[test]
fn import_and_load_read_every_compression_docker_accepts() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("store");
    let dir = t.path().join("rootfs");
    fs::create_dir(&dir).unwrap();
    sample_rootfs(&dir);
    let plain = t.path().join("rootfs.tar");
    run(Command::new("tar")
        .arg("-C")
        .arg(&dir)
        .arg("-cf")
        .arg(&plain)
        .arg("."));
    ok(&root, &["import", plain.to_str().unwrap(), "plain"]);
    let mut names = vec!["plain".to_string()];
    for tool in ["gzip", "bzip2", "xz", "zstd"] {
        let packed = t.path().join(format!("rootfs.tar.{tool}"));
        let out = Command::new(tool)
            .args(["-c", plain.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(out.status.success(), "{tool} failed");
        fs::write(&packed, out.stdout).unwrap();
        ok(&root, &["import", packed.to_str().unwrap(), tool]);
        names.push(tool.to_string());
    }
    let mut args = vec!["inspect"];
    args.extend(names.iter().map(String::as_str));
    let all: Value = serde_json::from_str(&ok(&root, &args)).unwrap();
    for (i, name) in names.iter().enumerate() {
        assert_eq!(
            all[i]["RootFS"], all[0]["RootFS"],
            "{name}: same content, same diff_id"
        );
    }

    // `docker import URL`: the same tarball over http.
    let port = common::serve_http(fs::read(t.path().join("rootfs.tar.xz")).unwrap());
    let url = format!("http://127.0.0.1:{port}/images/rootfs.tar.xz");
    ok(&root, &["import", &url, "fromurl"]);
    let v: Value = serde_json::from_str(&ok(&root, &["inspect", "fromurl"])).unwrap();
    assert_eq!(v[0]["RootFS"], all[0]["RootFS"]);
    assert_eq!(v[0]["Comment"], format!("Imported from {url}"));

    // `hoist save | xz` loads into a fresh store, as `docker load < image.tar.xz` does.
    let archive = t.path().join("image.tar");
    ok(&root, &["save", "-o", archive.to_str().unwrap(), "xz"]);
    run(Command::new("xz").arg(&archive));
    let other = t.path().join("other");
    let loaded = ok(
        &other,
        &[
            "load",
            "-i",
            t.path().join("image.tar.xz").to_str().unwrap(),
        ],
    );
    assert!(loaded.contains("Loaded image: xz:latest"), "{loaded}");
    let back: Value = serde_json::from_str(&ok(&other, &["inspect", "xz"])).unwrap();
    assert_eq!(back[0]["RootFS"], all[0]["RootFS"]);
}

#[test]
fn saved_archives_are_read_by_skopeo_and_umoci() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("store");
    let dir = t.path().join("rootfs");
    fs::create_dir(&dir).unwrap();
    sample_rootfs(&dir);
    ok(&root, &["import", dir.to_str().unwrap(), "sample:1"]);
    let id = ok(&root, &["images", "-q", "--no-trunc"])
        .trim()
        .to_string();

    let docker = t.path().join("docker.tar");
    let oci = t.path().join("oci.tar");
    ok(&root, &["save", "-o", docker.to_str().unwrap(), "sample:1"]);
    ok(
        &root,
        &[
            "save",
            "--format",
            "oci",
            "-o",
            oci.to_str().unwrap(),
            "sample:1",
        ],
    );

    let di: Value = serde_json::from_str(&run(Command::new("skopeo").args([
        "inspect",
        "--config",
        &format!("docker-archive:{}", docker.display()),
    ])))
    .unwrap();
    assert_eq!(di["rootfs"]["diff_ids"].as_array().unwrap().len(), 1);
    let oi: Value = serde_json::from_str(&run(
        Command::new("skopeo").args(["inspect", &format!("oci-archive:{}", oci.display())])
    ))
    .unwrap();
    assert_eq!(oi["Layers"].as_array().unwrap().len(), 1);
    assert_eq!(oi["Os"], "linux");

    // umoci unpacks exactly the files we put in.
    let layout = t.path().join("layout");
    fs::create_dir(&layout).unwrap();
    run(Command::new("tar")
        .arg("-C")
        .arg(&layout)
        .arg("-xf")
        .arg(&oci));
    let bundle = t.path().join("bundle");
    run(Command::new("umoci")
        .args(["unpack", "--image"])
        .arg(format!("{}:1", layout.display()))
        .arg(&bundle));
    assert_eq!(tree(&bundle.join("rootfs")), tree(&dir));

    // Round trip through our own load into a fresh store keeps the image ID and name.
    let other = t.path().join("store2");
    assert_eq!(
        ok(&other, &["load", "-i", docker.to_str().unwrap()]),
        "Loaded image: sample:1\n"
    );
    assert_eq!(ok(&other, &["images", "-q", "--no-trunc"]).trim(), id);
    let other2 = t.path().join("store3");
    assert_eq!(
        ok(&other2, &["load", "-i", oci.to_str().unwrap()]),
        "Loaded image: sample:1\n"
    );
    assert_eq!(ok(&other2, &["images", "-q", "--no-trunc"]).trim(), id);

    // stdout is the default destination.
    let o = hoist(&root, &["save", "sample:1"]);
    assert!(o.status.success());
    assert_eq!(
        o.stdout,
        fs::read(&docker).unwrap(),
        "save is deterministic"
    );
}

#[test]
fn archives_made_by_skopeo_load_into_hoist() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("store");
    make_busybox(&root);
    let id = ok(&root, &["images", "-q", "--no-trunc"])
        .trim()
        .to_string();
    let src = format!("oci:{}:docker.io/library/busybox:latest", root.display());
    let cases: [(&str, &str, &[&str]); 3] = [
        ("docker-archive", "busybox:from-skopeo", &[]),
        ("oci-archive", "localhost/bb:gzip", &[]),
        (
            "oci-archive",
            "localhost/bb:zstd",
            &["--dest-compress-format", "zstd", "--dest-compress"],
        ),
    ];
    let fresh = t.path().join("fresh");
    for (i, (transport, name, extra)) in cases.iter().enumerate() {
        let archive = t.path().join(format!("a{i}.tar"));
        let mut cmd = Command::new("skopeo");
        cmd.arg("copy")
            .args(*extra)
            .arg(&src)
            .arg(format!("{transport}:{}:{name}", archive.display()));
        run(&mut cmd);
        let out = ok(&fresh, &["load", "-i", archive.to_str().unwrap()]);
        assert_eq!(out, format!("Loaded image: {name}\n"));
        let inspect: Value = serde_json::from_str(&ok(&fresh, &["inspect", name])).unwrap();
        assert_eq!(inspect[0]["Id"], id, "{transport} {name}");
        // The layers are usable: export flattens them (decompressing as needed).
        let tar = t.path().join(format!("e{i}.tar"));
        ok(&fresh, &["export", name, "-o", tar.to_str().unwrap()]);
        assert!(
            run(Command::new("tar").arg("tf").arg(&tar))
                .lines()
                .any(|l| l == "bin/busybox")
        );
    }
}

#[test]
fn concurrent_processes_share_a_store() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("store");
    let dirs: Vec<PathBuf> = (0..4)
        .map(|i| {
            let d = t.path().join(format!("r{i}"));
            fs::create_dir(&d).unwrap();
            fs::write(d.join("f"), format!("{i}")).unwrap();
            d
        })
        .collect();
    let children: Vec<_> = dirs
        .iter()
        .enumerate()
        .map(|(i, d)| {
            Command::new(HOIST)
                .arg("--root")
                .arg(&root)
                .args(["import", d.to_str().unwrap(), &format!("c:{i}")])
                .stdout(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    let table = ok(&root, &["images"]);
    for i in 0..4 {
        assert!(
            table
                .lines()
                .any(|l| l.starts_with(&format!("c            {i} "))),
            "c:{i} in\n{table}"
        );
    }
}

#[test]
fn killed_import_leaves_no_bad_blob_visible() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("store");
    make_busybox(&root);
    let dir = t.path().join("big");
    fs::create_dir(&dir).unwrap();
    run(Command::new("head")
        .args(["-c", "150M", "/dev/urandom"])
        .stdout(fs::File::create(dir.join("data")).unwrap()));
    for delay_ms in [50, 300] {
        let mut child = Command::new(HOIST)
            .arg("--root")
            .arg(&root)
            .args(["import", dir.to_str().unwrap(), "big:1"])
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        child.kill().unwrap();
        child.wait().unwrap();
        // Every visible blob is complete: its content hashes to its name.
        for e in fs::read_dir(root.join("blobs/sha256")).unwrap() {
            let p = e.unwrap().path();
            let sum = run(Command::new("sha256sum").arg(&p));
            assert_eq!(
                sum.split_whitespace().next().unwrap(),
                p.file_name().unwrap().to_str().unwrap()
            );
        }
        // The store still works, and a later import succeeds.
        assert!(ok(&root, &["images"]).contains("busybox"));
    }
    ok(&root, &["import", dir.to_str().unwrap(), "big:1"]);
    assert!(ok(&root, &["images"]).contains("big "));
    ok(&root, &["image", "prune", "-f"]);
    assert_eq!(
        fs::read_dir(root.join("tmp")).unwrap().count(),
        0,
        "prune clears abandoned temp files"
    );
}
