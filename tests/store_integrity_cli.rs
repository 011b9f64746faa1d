//! The store is never damaged by bad input and is never a way in for local users: owner-only
//! permissions, layers verified against the config's diff_ids, loads that change nothing when they
//! fail, no temp files left by an interrupted save, and docker-save archives as Docker writes them.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
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
    for d in ["", "blobs", "blobs/sha256", "unpacked", "layerdb", "tmp", "locks"] {
        fs::set_permissions(store.join(d), fs::Permissions::from_mode(0o755)).unwrap();
    }
    assert!(
        !nobody_can_reach(&store, &suid).is_empty(),
        "the open store is reachable before hoist opens it"
    );
    Hoist::new(&store).ok(&["images"]);
    for d in ["", "blobs", "blobs/sha256", "unpacked", "layerdb", "tmp", "locks"] {
        assert_eq!(mode(&store.join(d)), 0o700, "{d}");
    }
    assert_eq!(nobody_can_reach(&store, &suid), Vec::<String>::new());
    // Still usable by its owner.
    Hoist::new(&store).ok(&["run", "--rm", "busybox", "true"]);
}
