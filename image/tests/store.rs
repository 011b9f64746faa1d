//! The store on a real directory: verified blobs, images and tags, GC, compressed and unpacked layers.

use std::fs;
use std::io::Read;
use std::os::unix::fs::MetadataExt;

use hoist_image::layer::{Compression, LayerOptions};
use hoist_image::{Digest, Error, ImageConfig, Reference, Store};

fn store() -> (tempfile::TempDir, Store) {
    let d = tempfile::tempdir().unwrap();
    let s = Store::open(d.path().join("store")).unwrap();
    (d, s)
}

fn image_with(s: &Store, content: &[u8], tag: Option<&str>) -> hoist_image::Image {
    let src = tempfile::tempdir().unwrap();
    fs::write(src.path().join("f"), content).unwrap();
    let l = s.commit_dir(src.path(), &LayerOptions::default()).unwrap();
    let mut c = ImageConfig::new_for_host();
    c.rootfs.diff_ids.push(l.diff_id.clone());
    let tags: Vec<Reference> = tag
        .map(|t| Reference::parse(t).unwrap())
        .into_iter()
        .collect();
    s.write_image(&c, &[l.descriptor()], &tags).unwrap()
}

#[test]
fn layout_files_exist_and_blobs_are_verified() {
    let (_d, s) = store();
    assert!(s.root().join("oci-layout").is_file());
    assert!(s.root().join("index.json").is_file());
    let (d, n) = s
        .put_blob(&b"hello"[..], Some(&Digest::of(b"hello")))
        .unwrap();
    assert_eq!((d.clone(), n), (Digest::of(b"hello"), 5));
    assert!(s.has_blob(&d));
    // Wrong content for the expected digest: refused, nothing visible, no temp left behind.
    let want = Digest::of(b"other");
    let err = s.put_blob(&b"hellO"[..], Some(&want)).unwrap_err();
    assert!(matches!(err, Error::DigestMismatch { .. }), "{err}");
    assert!(!s.has_blob(&want));
    assert_eq!(fs::read_dir(s.tmp_dir()).unwrap().count(), 0);
    // A blob corrupted on disk is detected when read.
    fs::write(s.blob_path(&d), b"HELLO").unwrap();
    assert!(s.read_blob(&d).is_err());
    let mut buf = Vec::new();
    assert!(s.open_blob(&d).unwrap().read_to_end(&mut buf).is_err());
}

#[test]
fn images_resolve_by_name_id_and_digest() {
    let (_d, s) = store();
    let img = image_with(&s, b"one", Some("busybox"));
    for q in [
        "busybox",
        "busybox:latest",
        "docker.io/library/busybox:latest",
        img.id().short(),
        img.id().as_str(),
        &format!("busybox@{}", img.manifest_digest),
    ] {
        assert_eq!(s.resolve(q).unwrap().id(), img.id(), "{q}");
    }
    assert!(matches!(s.resolve("nope"), Err(Error::ImageNotFound(_))));
    assert!(matches!(
        s.resolve("Bad Name"),
        Err(Error::InvalidReference(_))
    ));
    assert_eq!(img.names, [Reference::parse("busybox").unwrap()]);
}

#[test]
fn retagging_leaves_the_old_image_dangling_and_prune_removes_it() {
    let (_d, s) = store();
    let old = image_with(&s, b"old", Some("app:1"));
    let new = image_with(&s, b"new", Some("app:1"));
    assert_ne!(old.id(), new.id());
    let list = s.list_images().unwrap();
    assert_eq!(list.len(), 2);
    assert!(list.iter().any(|r| r.id == *old.id() && r.name.is_none()));
    let old_layer = old.config.rootfs.diff_ids[0].clone();
    assert!(s.has_blob(&old_layer));
    let (pruned, gc) = s.prune(false).unwrap();
    assert_eq!(pruned, [old.id().clone()]);
    assert!(gc.ran && gc.blobs_removed == 3, "{gc:?}");
    assert!(!s.has_blob(&old_layer));
    assert!(s.has_blob(&new.config.rootfs.diff_ids[0]));
    assert_eq!(s.list_images().unwrap().len(), 1);
}

#[test]
fn rmi_untags_then_deletes() {
    let (_d, s) = store();
    let img = image_with(&s, b"x", Some("a:1"));
    s.tag("a:1", &Reference::parse("b:2").unwrap()).unwrap();
    assert_eq!(s.remove_image("b:2", false).unwrap(), ["Untagged: b:2"]);
    s.tag("a:1", &Reference::parse("b:2").unwrap()).unwrap();
    let err = s
        .remove_image(img.id().short(), false)
        .unwrap_err()
        .to_string();
    assert!(err.contains("must be forced"), "{err}");
    let ev = s.remove_image(img.id().short(), true).unwrap();
    assert_eq!(ev.last().unwrap(), &format!("Deleted: {}", img.id()));
    assert!(s.list_images().unwrap().is_empty());
    assert_eq!(
        fs::read_dir(s.root().join("blobs/sha256")).unwrap().count(),
        0
    );
}

#[test]
fn gc_waits_for_leases_and_keeps_gc_roots() {
    let (_d, s) = store();
    let (loose, _) = s.put_blob(&b"loose"[..], None).unwrap();
    let (rooted, _) = s.put_blob(&b"rooted"[..], None).unwrap();
    s.set_gc_root("build-cache", std::slice::from_ref(&rooted))
        .unwrap();
    {
        let _lease = s.lease().unwrap();
        assert!(!s.gc().unwrap().ran);
        assert!(s.has_blob(&loose));
    }
    assert!(s.gc().unwrap().ran);
    assert!(!s.has_blob(&loose));
    assert!(s.has_blob(&rooted));
}

#[test]
fn compressed_layers_are_cached_and_unpacked_layers_are_overlay_lowers() {
    let (_d, s) = store();
    let img = image_with(&s, &vec![b'z'; 200_000], Some("z"));
    let diff_id = img.config.rootfs.diff_ids[0].clone();
    for c in [Compression::Gzip, Compression::Zstd] {
        let desc = s.compressed_layer(&diff_id, c).unwrap();
        assert_eq!(desc.media_type().to_string(), c.media_type());
        assert!(desc.size() < 10_000);
        let again = s.compressed_layer(&diff_id, c).unwrap();
        assert_eq!(again.digest(), desc.digest(), "cached");
    }
    // With the uncompressed blob gone, the layer is still readable (from the gzip copy) and verified.
    fs::remove_file(s.blob_path(&diff_id)).unwrap();
    let mut tar = Vec::new();
    s.open_layer(&diff_id)
        .unwrap()
        .read_to_end(&mut tar)
        .unwrap();
    assert_eq!(Digest::of(&tar), diff_id);

    let dir = s.unpacked_layer(&diff_id).unwrap();
    assert_eq!(fs::read(dir.join("f")).unwrap().len(), 200_000);
    let ino = fs::metadata(&dir).unwrap().ino();
    assert_eq!(
        fs::metadata(s.unpacked_layer(&diff_id).unwrap())
            .unwrap()
            .ino(),
        ino,
        "extracted once"
    );
    assert_eq!(s.unpacked_layers(&img).unwrap(), [dir]);
}

#[test]
fn concurrent_writers_share_one_store() {
    let (_d, s) = store();
    let handles: Vec<_> = (0..8)
        .map(|i| {
            let s = s.clone();
            std::thread::spawn(move || {
                image_with(&s, format!("c{i}").as_bytes(), Some(&format!("t:{i}")))
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let list = s.list_images().unwrap();
    assert_eq!(list.len(), 8);
    for i in 0..8 {
        assert!(s.resolve(&format!("t:{i}")).is_ok());
    }
}

#[test]
fn reserved_dirs() {
    let (_d, s) = store();
    let v = s.dir("volumes").unwrap();
    assert!(v.is_dir() && v.starts_with(s.root()));
    assert!(s.dir("blobs").is_err());
    assert!(s.dir("../x").is_err());
}

#[test]
fn unpacked_layers_stack_as_overlay_lowers_with_whiteouts() {
    let (d, s) = store();
    // Base layer: a, keep, dir/old.
    let base = tempfile::tempdir().unwrap();
    fs::write(base.path().join("a"), b"a").unwrap();
    fs::write(base.path().join("keep"), b"k").unwrap();
    fs::create_dir(base.path().join("dir")).unwrap();
    fs::write(base.path().join("dir/old"), b"o").unwrap();
    let l1 = s.commit_dir(base.path(), &LayerOptions::default()).unwrap();
    // Second layer from an overlay upper: `a` deleted, `dir` made opaque with a new file.
    let upper = tempfile::tempdir().unwrap();
    let u = upper.path();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        u.join("a"),
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::Mode::empty(),
        0,
    )
    .unwrap();
    fs::create_dir(u.join("dir")).unwrap();
    rustix::fs::setxattr(
        u.join("dir").as_path(),
        "trusted.overlay.opaque",
        b"y",
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
    fs::write(u.join("dir/new"), b"n").unwrap();
    let l2 = s.commit_overlay_upper(u, &LayerOptions::default()).unwrap();

    let lower1 = s.unpacked_layer(&l1.diff_id).unwrap();
    let lower2 = s.unpacked_layer(&l2.diff_id).unwrap();
    let merged = d.path().join("merged");
    fs::create_dir(&merged).unwrap();
    let status = std::process::Command::new("mount")
        .args(["-t", "overlay", "overlay", "-o"])
        .arg(format!(
            "ro,lowerdir={}:{}",
            lower2.display(),
            lower1.display()
        ))
        .arg(&merged)
        .status()
        .unwrap();
    assert!(status.success(), "mounting overlay (tests run as root)");
    let list = |p: &std::path::Path| {
        let mut v: Vec<String> = fs::read_dir(p)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    };
    let seen = (list(&merged), list(&merged.join("dir")));
    std::process::Command::new("umount")
        .arg(&merged)
        .status()
        .unwrap();
    assert_eq!(seen.0, ["dir", "keep"], "the whiteout hides `a`");
    assert_eq!(seen.1, ["new"], "the opaque dir hides the lower `dir/old`");
}

/// The manifest of `image` with its one layer replaced by the blob `layer` (media type `mt`).
fn manifest_over(image: &hoist_image::Image, layer: &Digest, size: u64, mt: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": image.config_digest,
            "size": image.manifest.config().size(),
        },
        "layers": [{ "mediaType": mt, "digest": layer, "size": size }],
    }))
    .unwrap()
}

#[test]
fn a_manifest_whose_layers_are_not_its_diff_ids_is_refused_and_changes_nothing() {
    let (_d, s) = store();
    let good = image_with(&s, b"good", Some("good:1"));
    let diff_id = good.config.rootfs.diff_ids[0].clone();
    let gz = s.compressed_layer(&diff_id, Compression::Gzip).unwrap();
    let gz = Digest::from_oci(gz.digest()).unwrap();
    let other = image_with(&s, b"other", None);
    let other_gz = s
        .compressed_layer(&other.config.rootfs.diff_ids[0], Compression::Gzip)
        .unwrap();
    let other_gz_digest = Digest::from_oci(other_gz.digest()).unwrap();
    let index_before = fs::read(s.root().join("index.json")).unwrap();
    for (blob, size, mt) in [
        // Another layer's gzip blob, or its uncompressed blob, under good's diff_id.
        (
            &other_gz_digest,
            other_gz.size(),
            hoist_image::media_type::LAYER_GZIP,
        ),
        (
            &other.config.rootfs.diff_ids[0],
            s.blob_size(&other.config.rootfs.diff_ids[0]).unwrap(),
            hoist_image::media_type::LAYER,
        ),
    ] {
        let bytes = manifest_over(&good, blob, size, mt);
        let err = s
            .put_manifest(&bytes, &[Reference::parse("good:1").unwrap()])
            .unwrap_err();
        assert!(matches!(err, Error::LayerMismatch { .. }), "{err}");
        assert_eq!(fs::read(s.root().join("index.json")).unwrap(), index_before);
        assert_eq!(s.layer_blob(&diff_id, Compression::Gzip), Some(gz.clone()));
    }
    // A record naming a stored blob is never repointed, even by a caller that skips verification.
    s.register_layer_blob(&diff_id, &other_gz_digest, Compression::Gzip)
        .unwrap();
    assert_eq!(s.layer_blob(&diff_id, Compression::Gzip), Some(gz.clone()));
    // The true gzip form verifies and is stored.
    let bytes = manifest_over(
        &good,
        &gz,
        s.blob_size(&gz).unwrap(),
        hoist_image::media_type::LAYER_GZIP,
    );
    s.put_manifest(&bytes, &[Reference::parse("gz:1").unwrap()])
        .unwrap();
}
