//! Layer writer and applier on real files: round trips, whiteouts, reproducibility, and
//! malicious layers that try to write outside the target.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::Path;

use hoist_image::layer::{self, ApplyMode, LayerOptions, apply_layer};
use hoist_image::{Digest, Error};

fn tar_of(dir: &Path, opts: &LayerOptions) -> Vec<u8> {
    layer::write_dir(dir, opts, Vec::new()).unwrap()
}

fn names(tar: &[u8]) -> Vec<String> {
    let mut ar = tar::Archive::new(tar);
    ar.entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
        .collect()
}

fn mknod(path: &Path, kind: rustix::fs::FileType, dev: u64) {
    rustix::fs::mknodat(
        rustix::fs::CWD,
        path,
        kind,
        rustix::fs::Mode::from_raw_mode(0o644),
        dev,
    )
    .unwrap();
}

/// A tree with every kind of entry a layer must carry.
fn rich_tree(root: &Path) {
    fs::create_dir_all(root.join("dir/sub")).unwrap();
    fs::write(root.join("dir/file"), b"hello").unwrap();
    fs::set_permissions(root.join("dir/file"), fs::Permissions::from_mode(0o4755)).unwrap();
    fs::hard_link(root.join("dir/file"), root.join("dir/hardlink")).unwrap();
    symlink("../dir/file", root.join("dir/sub/link")).unwrap();
    mknod(&root.join("fifo"), rustix::fs::FileType::Fifo, 0);
    mknod(
        &root.join("null"),
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::makedev(1, 3),
    );
    let long = "x".repeat(120);
    let deep = root.join(format!("{long}/{long}"));
    fs::create_dir_all(&deep).unwrap();
    fs::write(deep.join(&long), b"long").unwrap();
    fs::write(root.join("owned"), b"").unwrap();
    std::os::unix::fs::chown(root.join("owned"), Some(1234), Some(5678)).unwrap();
    rustix::fs::setxattr(
        root.join("dir/file").as_path(),
        "user.hoist",
        b"v1",
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
}

#[test]
fn round_trip_keeps_every_kind_of_entry() {
    let src = tempfile::tempdir().unwrap();
    rich_tree(src.path());
    let tar = tar_of(src.path(), &LayerOptions::default());
    let n = names(&tar);
    let mut sorted = n.clone();
    sorted.sort_by(|a, b| {
        let key = |s: &str| {
            s.trim_end_matches('/')
                .split('/')
                .map(String::from)
                .collect::<Vec<_>>()
        };
        key(a).cmp(&key(b))
    });
    assert_eq!(n, sorted, "entries in a stable sorted order");

    let dst = tempfile::tempdir().unwrap();
    let (diff_id, size) = apply_layer(&tar[..], dst.path(), ApplyMode::Merge).unwrap();
    assert_eq!(diff_id, Digest::of(&tar));
    assert_eq!(size, tar.len() as u64);

    let d = dst.path();
    assert_eq!(fs::read(d.join("dir/file")).unwrap(), b"hello");
    let m = fs::metadata(d.join("dir/file")).unwrap();
    assert_eq!(m.mode() & 0o7777, 0o4755, "setuid kept");
    assert_eq!(
        m.ino(),
        fs::metadata(d.join("dir/hardlink")).unwrap().ino(),
        "hardlink kept as a hardlink"
    );
    assert_eq!(
        fs::read_link(d.join("dir/sub/link")).unwrap(),
        Path::new("../dir/file")
    );
    assert!(
        fs::symlink_metadata(d.join("fifo"))
            .unwrap()
            .file_type()
            .is_fifo_like()
    );
    let null = fs::symlink_metadata(d.join("null")).unwrap();
    assert_eq!(null.rdev(), rustix::fs::makedev(1, 3));
    let long = "x".repeat(120);
    assert_eq!(
        fs::read(d.join(format!("{long}/{long}/{long}"))).unwrap(),
        b"long"
    );
    let o = fs::metadata(d.join("owned")).unwrap();
    assert_eq!((o.uid(), o.gid()), (1234, 5678));
    let mut buf = [0u8; 16];
    let n = rustix::fs::getxattr(d.join("dir/file").as_path(), "user.hoist", &mut buf[..]).unwrap();
    assert_eq!(&buf[..n], b"v1");
    assert_eq!(
        fs::metadata(d.join("dir/file")).unwrap().mtime(),
        fs::metadata(src.path().join("dir/file")).unwrap().mtime()
    );

    // Writing the extracted tree again gives the same bytes.
    assert_eq!(Digest::of(&tar_of(d, &LayerOptions::default())), diff_id);
}

trait FifoLike {
    fn is_fifo_like(&self) -> bool;
}
impl FifoLike for fs::FileType {
    fn is_fifo_like(&self) -> bool {
        std::os::unix::fs::FileTypeExt::is_fifo(self)
    }
}

#[test]
fn source_date_epoch_makes_layers_reproducible() {
    let make = |mtime: i64| {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir(d.path().join("a")).unwrap();
        fs::write(d.path().join("a/f"), b"same").unwrap();
        let t = rustix::fs::Timespec {
            tv_sec: mtime,
            tv_nsec: 0,
        };
        let ts = rustix::fs::Timestamps {
            last_access: t,
            last_modification: t,
        };
        for p in ["a/f", "a"] {
            rustix::fs::utimensat(
                rustix::fs::CWD,
                d.path().join(p).as_path(),
                &ts,
                rustix::fs::AtFlags::empty(),
            )
            .unwrap();
        }
        d
    };
    let (a, b) = (make(2_000_000_000), make(2_000_000_500));
    let plain = LayerOptions::default();
    assert_ne!(
        Digest::of(&tar_of(a.path(), &plain)),
        Digest::of(&tar_of(b.path(), &plain))
    );
    let clamp = LayerOptions {
        source_date_epoch: Some(1_000_000_000),
    };
    let (ta, tb) = (tar_of(a.path(), &clamp), tar_of(b.path(), &clamp));
    assert_eq!(Digest::of(&ta), Digest::of(&tb));
    let mut ar = tar::Archive::new(&ta[..]);
    for e in ar.entries().unwrap() {
        assert_eq!(e.unwrap().header().mtime().unwrap(), 1_000_000_000);
    }
}

#[test]
fn overlay_upper_becomes_oci_whiteouts_and_applies() {
    let upper = tempfile::tempdir().unwrap();
    let u = upper.path();
    mknod(&u.join("gone"), rustix::fs::FileType::CharacterDevice, 0);
    fs::create_dir(u.join("opq")).unwrap();
    rustix::fs::setxattr(
        u.join("opq").as_path(),
        "trusted.overlay.opaque",
        b"y",
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
    fs::write(u.join("opq/new"), b"n").unwrap();
    let mut tar = Vec::new();
    tar = layer::write_overlay_upper(u, &LayerOptions::default(), tar).unwrap();
    let n = names(&tar);
    assert!(n.contains(&".wh.gone".to_string()), "{n:?}");
    assert!(n.contains(&"opq/.wh..wh..opq".to_string()), "{n:?}");
    assert!(!n.contains(&"gone".to_string()));

    // Merge onto a lower tree: deletions and the opaque dir take effect, new entries stay.
    let lower = tempfile::tempdir().unwrap();
    let l = lower.path();
    fs::write(l.join("gone"), b"old").unwrap();
    fs::write(l.join("kept"), b"k").unwrap();
    fs::create_dir(l.join("opq")).unwrap();
    fs::write(l.join("opq/old"), b"o").unwrap();
    apply_layer(&tar[..], l, ApplyMode::Merge).unwrap();
    assert!(!l.join("gone").exists());
    assert!(l.join("kept").exists());
    assert!(!l.join("opq/old").exists());
    assert_eq!(fs::read(l.join("opq/new")).unwrap(), b"n");

    // As an overlay lowerdir: whiteouts are 0/0 char devices, opaque dirs carry the xattr.
    let lowerdir = tempfile::tempdir().unwrap();
    apply_layer(&tar[..], lowerdir.path(), ApplyMode::OverlayLower).unwrap();
    let wh = fs::symlink_metadata(lowerdir.path().join("gone")).unwrap();
    assert!(std::os::unix::fs::FileTypeExt::is_char_device(
        &wh.file_type()
    ));
    assert_eq!(wh.rdev(), 0);
    let mut buf = [0u8; 4];
    let n = rustix::fs::getxattr(
        lowerdir.path().join("opq").as_path(),
        "trusted.overlay.opaque",
        &mut buf[..],
    )
    .unwrap();
    assert_eq!(&buf[..n], b"y");
    assert!(!lowerdir.path().join(".wh.gone").exists());
}

#[test]
fn compressed_layers_apply_to_the_same_diff_id() {
    let src = tempfile::tempdir().unwrap();
    fs::write(src.path().join("f"), vec![7u8; 100_000]).unwrap();
    let tar = tar_of(src.path(), &LayerOptions::default());
    for c in [layer::Compression::Gzip, layer::Compression::Zstd] {
        let z = layer::compress(&tar[..], c, Vec::new()).unwrap();
        assert!(z.len() < tar.len() / 10);
        let dst = tempfile::tempdir().unwrap();
        let (d, _) = apply_layer(&z[..], dst.path(), ApplyMode::Merge).unwrap();
        assert_eq!(d, Digest::of(&tar), "{c:?}");
        assert_eq!(fs::read(dst.path().join("f")).unwrap().len(), 100_000);
    }
}

// ---- malicious layers ----

enum Kind {
    File(&'static [u8]),
    Dir,
    Symlink(String),
    Hardlink(String),
}

/// A tar whose names are written raw (the tar crate would refuse them).
fn raw_tar(entries: &[(&str, Kind)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, kind) in entries {
        let mut h = tar::Header::new_gnu();
        let data: &[u8] = match kind {
            Kind::File(d) => d,
            _ => b"",
        };
        {
            let old = h.as_old_mut();
            old.name[..name.len()].copy_from_slice(name.as_bytes());
            if let Kind::Symlink(t) | Kind::Hardlink(t) = kind {
                old.linkname[..t.len()].copy_from_slice(t.as_bytes());
            }
        }
        h.set_entry_type(match kind {
            Kind::File(_) => tar::EntryType::Regular,
            Kind::Dir => tar::EntryType::Directory,
            Kind::Symlink(_) => tar::EntryType::Symlink,
            Kind::Hardlink(_) => tar::EntryType::Link,
        });
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_size(data.len() as u64);
        h.set_cksum();
        out.write_all(h.as_bytes()).unwrap();
        out.write_all(data).unwrap();
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.resize(out.len() + 1024, 0);
    out
}

struct Sandbox {
    _dir: tempfile::TempDir,
    target: std::path::PathBuf,
    outside: std::path::PathBuf,
}

fn sandbox() -> Sandbox {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("target");
    let outside = dir.path().join("outside");
    fs::create_dir_all(&target).unwrap();
    fs::create_dir_all(&outside).unwrap();
    fs::write(outside.join("passwd"), b"host secret").unwrap();
    Sandbox {
        _dir: dir,
        target,
        outside,
    }
}

fn assert_outside_untouched(s: &Sandbox) {
    assert_eq!(fs::read(s.outside.join("passwd")).unwrap(), b"host secret");
    let names: Vec<_> = fs::read_dir(&s.outside)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["passwd"], "nothing new outside the target");
    assert_eq!(
        fs::metadata(s.outside.join("passwd")).unwrap().nlink(),
        1,
        "no hardlink to an outside file"
    );
}

#[test]
fn dotdot_entries_are_rejected() {
    for mode in [ApplyMode::Merge, ApplyMode::OverlayLower] {
        let s = sandbox();
        let tar = raw_tar(&[("../outside/evil", Kind::File(b"x"))]);
        let err = apply_layer(&tar[..], &s.target, mode).unwrap_err();
        assert!(matches!(err, Error::UnsafePath { .. }), "{err}");
        let tar = raw_tar(&[("a/../../outside/passwd", Kind::File(b"pwned"))]);
        assert!(apply_layer(&tar[..], &s.target, mode).is_err());
        assert_outside_untouched(&s);
    }
}

#[test]
fn symlinked_parent_never_leads_outside() {
    let s = sandbox();
    let abs = s.outside.to_string_lossy().into_owned();
    // a -> /abs/outside, then a/passwd; b -> ../../.. (relative escape), then b/outside/passwd.
    let tar = raw_tar(&[
        ("a", Kind::Symlink(abs.clone())),
        ("a/passwd", Kind::File(b"pwned")),
        ("b", Kind::Symlink("../../../../../..".into())),
        ("b/passwd", Kind::File(b"pwned")),
    ]);
    let _ = apply_layer(&tar[..], &s.target, ApplyMode::Merge);
    assert_outside_untouched(&s);
    // Whatever was written stayed inside the target (b resolves to the target root, chroot-style).
    if let Ok(b) = fs::read(s.target.join("passwd")) {
        assert_eq!(b, b"pwned");
    }
}

#[test]
fn symlink_then_file_of_the_same_name_replaces_the_link() {
    let s = sandbox();
    let target = format!("{}/passwd", s.outside.display());
    let tar = raw_tar(&[("p", Kind::Symlink(target)), ("p", Kind::File(b"pwned"))]);
    apply_layer(&tar[..], &s.target, ApplyMode::Merge).unwrap();
    assert_outside_untouched(&s);
    assert!(fs::symlink_metadata(s.target.join("p")).unwrap().is_file());
}

#[test]
fn hardlinks_stay_inside() {
    let s = sandbox();
    let abs = format!("{}/passwd", s.outside.display());
    // Absolute target: resolved from the layer root, so it does not exist there -> error, host untouched.
    let tar = raw_tar(&[("h", Kind::Hardlink(abs))]);
    assert!(apply_layer(&tar[..], &s.target, ApplyMode::Merge).is_err());
    let tar = raw_tar(&[("h", Kind::Hardlink("../outside/passwd".into()))]);
    assert!(matches!(
        apply_layer(&tar[..], &s.target, ApplyMode::Merge),
        Err(Error::UnsafePath { .. })
    ));
    // Through a symlinked directory: the link points outside, the hardlink target is resolved inside.
    let tar = raw_tar(&[
        ("d", Kind::Symlink(s.outside.to_string_lossy().into_owned())),
        ("h2", Kind::Hardlink("d/passwd".into())),
    ]);
    let _ = apply_layer(&tar[..], &s.target, ApplyMode::Merge);
    assert_outside_untouched(&s);
    // A legitimate absolute hardlink target inside the layer works.
    let ok = sandbox();
    let tar = raw_tar(&[
        ("etc", Kind::Dir),
        ("etc/f", Kind::File(b"x")),
        ("g", Kind::Hardlink("/etc/f".into())),
    ]);
    apply_layer(&tar[..], &ok.target, ApplyMode::Merge).unwrap();
    assert_eq!(fs::metadata(ok.target.join("g")).unwrap().nlink(), 2);
}

#[test]
fn whiteouts_cannot_escape() {
    let s = sandbox();
    fs::create_dir(s.target.join("a")).unwrap();
    let tar = raw_tar(&[("a/.wh..", Kind::File(b""))]);
    assert!(apply_layer(&tar[..], &s.target, ApplyMode::Merge).is_err());
    assert!(s.target.join("a").exists());
    // A whiteout under a symlink to the outside deletes nothing outside.
    let tar = raw_tar(&[
        ("l", Kind::Symlink(s.outside.to_string_lossy().into_owned())),
        ("l/.wh.passwd", Kind::File(b"")),
    ]);
    let _ = apply_layer(&tar[..], &s.target, ApplyMode::Merge);
    assert_outside_untouched(&s);
}

#[test]
fn parallel_gzip_is_deterministic_and_readable_by_gzip() {
    let data: Vec<u8> = (0..8_500_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 24) as u8 % 7)
        .collect();
    let a = layer::compress(&data[..], layer::Compression::Gzip, Vec::new()).unwrap();
    let b = layer::compress(&data[..], layer::Compression::Gzip, Vec::new()).unwrap();
    assert_eq!(a, b);
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&a[..]), &mut out).unwrap();
    assert!(out == data);
    // The system gzip accepts it too.
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("x.gz"), &a).unwrap();
    let st = std::process::Command::new("gzip")
        .arg("-t")
        .arg(dir.path().join("x.gz"))
        .status()
        .unwrap();
    assert!(st.success());
}
