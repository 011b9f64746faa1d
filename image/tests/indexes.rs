//! Image indexes in the store: stored once under a tag, platform picked on resolve, gc keeps
//! what they reference, rmi removes them, bad indexes change nothing.

use hoist_image::layer::LayerOptions;
use hoist_image::{Digest, ImageConfig, Platform, Reference, Store, media_type};
use serde_json::json;

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path().join("store")).unwrap();
    (dir, s)
}

/// A one-layer manifest for `arch` (config and layer stored, manifest not): its bytes.
fn manifest_for(s: &Store, arch: &str, variant: Option<&str>) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("arch"), arch).unwrap();
    let info = s
        .commit_dir(
            dir.path(),
            &LayerOptions {
                source_date_epoch: Some(0),
            },
        )
        .unwrap();
    let mut config = ImageConfig::new_for_host();
    config.architecture = arch.into();
    config.variant = variant.map(String::from);
    config.rootfs.diff_ids = vec![info.diff_id.clone()];
    let cfg = config.to_bytes();
    let cd = s.put_blob_bytes(&cfg).unwrap();
    serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": media_type::MANIFEST,
        "config": {"mediaType": media_type::CONFIG, "digest": cd, "size": cfg.len()},
        "layers": [info.descriptor()],
    }))
    .unwrap()
}

fn index_of(entries: &[(&[u8], &str)]) -> Vec<u8> {
    let manifests: Vec<_> = entries
        .iter()
        .map(|(m, p)| {
            let p = Platform::parse(p).unwrap();
            json!({"mediaType": media_type::MANIFEST, "digest": Digest::of(m), "size": m.len(),
                   "platform": p})
        })
        .collect();
    serde_json::to_vec(&json!({"schemaVersion": 2, "mediaType": media_type::INDEX,
                               "manifests": manifests}))
    .unwrap()
}

fn arch_of(s: &Store, name: &str, p: Option<&str>) -> Result<String, String> {
    let p = p.map(|p| Platform::parse(p).unwrap());
    s.resolve_platform(name, p.as_ref())
        .map(|i| i.config.architecture)
        .map_err(|e| e.to_string())
}

#[test]
fn an_index_is_one_image_whose_platforms_resolve() {
    let (_d, s) = store();
    let amd = manifest_for(&s, "amd64", None);
    let arm = manifest_for(&s, "arm64", Some("v8"));
    let arm7 = manifest_for(&s, "arm", Some("v7"));
    let index = index_of(&[
        (&amd, "linux/amd64"),
        (&arm, "linux/arm64/v8"),
        (&arm7, "linux/arm/v7"),
    ]);
    let tag = Reference::parse("multi:1").unwrap();
    let d = s
        .put_index(&index, &[amd.clone(), arm.clone(), arm7.clone()], &[tag])
        .unwrap();
    assert_eq!(d, Digest::of(&index));

    // One row, under the index's digest.
    let rows = s.list_images().unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].id, d);
    assert_eq!(rows[0].name.as_ref().unwrap().familiar(), "multi:1");

    let host = Platform::host().architecture;
    assert_eq!(arch_of(&s, "multi:1", None).unwrap(), host);
    assert_eq!(
        arch_of(&s, "multi:1", Some("linux/arm64")).unwrap(),
        "arm64"
    );
    assert_eq!(arch_of(&s, "multi:1", Some("aarch64")).unwrap(), "arm64");
    assert_eq!(arch_of(&s, "multi:1", Some("linux/arm")).unwrap(), "arm");
    // arm/v6 cannot run the arm/v7 image (containerd's variant compatibility goes down only).
    assert!(arch_of(&s, "multi:1", Some("linux/arm/v6")).is_err());
    assert_eq!(arch_of(&s, "multi:1", Some("x86_64")).unwrap(), "amd64");
    let err = arch_of(&s, "multi:1", Some("linux/s390x")).unwrap_err();
    assert!(err.contains("linux/s390x"), "{err}");
    // By the index's digest and a prefix of it too.
    assert_eq!(arch_of(&s, &format!("multi@{d}"), None).unwrap(), host);
    assert_eq!(
        arch_of(&s, &d.hex()[..12], Some("linux/arm64")).unwrap(),
        "arm64"
    );
    // A platform's manifest digest within the index names that image.
    let by_child = s.resolve(&format!("multi@{}", Digest::of(&arm))).unwrap();
    assert_eq!(by_child.config.architecture, "arm64");
    assert_eq!(by_child.index_digest, None);
    assert!(s.resolve(&format!("other@{}", Digest::of(&arm))).is_err());
    let img = s.resolve("multi:1").unwrap();
    assert_eq!(img.index_digest.as_ref(), Some(&d));
    assert_eq!(img.names, vec![Reference::parse("multi:1").unwrap()]);

    // A second tag points at the index, not at one platform's image.
    s.tag("multi:1", &Reference::parse("multi:2").unwrap())
        .unwrap();
    assert_eq!(s.resolve("multi:2").unwrap().index_digest, Some(d.clone()));

    // GC keeps every manifest and blob the index references.
    let before: usize = std::fs::read_dir(s.root().join("blobs/sha256"))
        .unwrap()
        .count();
    let report = s.gc().unwrap();
    assert!(report.ran);
    assert_eq!(report.blobs_removed, 0);
    for m in [&amd, &arm, &arm7] {
        assert!(s.has_blob(&Digest::of(m)));
    }

    // rmi untags, then deletes the index and (gc) its blobs.
    assert_eq!(
        s.remove_image("multi:2", false).unwrap(),
        vec!["Untagged: multi:2".to_string()]
    );
    assert_eq!(
        s.remove_image("multi:1", false).unwrap(),
        vec!["Untagged: multi:1".to_string(), format!("Deleted: {d}")]
    );
    assert!(s.list_images().unwrap().is_empty());
    assert!(!s.has_blob(&d));
    for m in [&amd, &arm, &arm7] {
        assert!(!s.has_blob(&Digest::of(m)));
    }
    let after: usize = std::fs::read_dir(s.root().join("blobs/sha256"))
        .unwrap()
        .count();
    assert!(after < before);
}

#[test]
fn an_index_holding_one_platform_resolves_to_it_and_refuses_others() {
    let (_d, s) = store();
    let amd = manifest_for(&s, "amd64", None);
    let arm = manifest_for(&s, "arm64", None);
    let index = index_of(&[(&amd, "linux/amd64"), (&arm, "linux/arm64")]);
    s.put_index(
        &index,
        std::slice::from_ref(&arm),
        &[Reference::parse("one:1").unwrap()],
    )
    .unwrap();
    // Only arm64 is stored: it is what the tag shows, whatever the host.
    assert_eq!(arch_of(&s, "one:1", None).unwrap(), "arm64");
    let err = arch_of(&s, "one:1", Some("linux/amd64")).unwrap_err();
    assert!(err.contains("linux/amd64"), "{err}");
    assert_eq!(s.list_images().unwrap().len(), 1);
}

#[test]
fn a_bad_index_changes_nothing() {
    let (_d, s) = store();
    let amd = manifest_for(&s, "amd64", None);
    let arm = manifest_for(&s, "arm64", None);
    let index = index_of(&[(&amd, "linux/amd64")]);
    let tags = vec![Reference::parse("bad:1").unwrap()];
    // A manifest the index does not list.
    let err = s
        .put_index(&index, &[amd.clone(), arm.clone()], &tags)
        .unwrap_err();
    assert!(err.to_string().contains("not listed"), "{err}");
    // Not an index at all.
    let err = s.put_index(&amd, &[], &tags).unwrap_err();
    assert!(err.to_string().contains("image index"), "{err}");
    // A manifest whose layer is not in the store.
    let mut broken: serde_json::Value = serde_json::from_slice(&amd).unwrap();
    broken["layers"][0]["digest"] = json!(Digest::of(b"nothing"));
    let broken = serde_json::to_vec(&broken).unwrap();
    let index2 = index_of(&[(&broken, "linux/amd64")]);
    assert!(s.put_index(&index2, &[broken], &tags).is_err());
    assert!(s.list_images().unwrap().is_empty());
    assert!(s.resolve("bad:1").is_err());
    assert!(!s.has_blob(&Digest::of(&index)));
    assert!(!s.has_blob(&Digest::of(&index2)));
}

#[test]
fn save_and_load_carry_the_index_or_one_platform() {
    use hoist_image::archive::{SaveFormat, load, save_platform};
    let (_d, s) = store();
    let amd = manifest_for(&s, "amd64", None);
    let arm = manifest_for(&s, "arm64", None);
    let index = index_of(&[(&amd, "linux/amd64"), (&arm, "linux/arm64")]);
    let d = s
        .put_index(&index, &[amd, arm], &[Reference::parse("multi:1").unwrap()])
        .unwrap();
    let names = vec!["multi:1".to_string()];
    let save = |format, p: Option<&str>| {
        let p = p.map(|p| Platform::parse(p).unwrap());
        save_platform(&s, &names, format, p.as_ref(), Vec::new()).unwrap()
    };

    // OCI: the whole index comes back, under its digest, both platforms there.
    let (_e, t) = store();
    let lines = load(&t, &save(SaveFormat::Oci, None)[..]).unwrap();
    assert_eq!(lines, ["Loaded image: multi:1"]);
    let rows = t.list_images().unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].id, d);
    assert_eq!(
        arch_of(&t, "multi:1", Some("linux/arm64")).unwrap(),
        "arm64"
    );
    assert_eq!(
        arch_of(&t, "multi:1", Some("linux/amd64")).unwrap(),
        "amd64"
    );

    // docker-archive: one platform, the host's unless --platform says otherwise.
    let host = Platform::host().architecture;
    for (p, want) in [(None, host.as_str()), (Some("linux/arm64"), "arm64")] {
        let (_f, u) = store();
        load(&u, &save(SaveFormat::Docker, p)[..]).unwrap();
        let img = u.resolve("multi:1").unwrap();
        assert_eq!(img.index_digest, None, "{p:?}");
        assert_eq!(img.config.architecture, want, "{p:?}");
    }
    // OCI with --platform: that platform's image alone.
    let (_g, v) = store();
    load(&v, &save(SaveFormat::Oci, Some("linux/arm64"))[..]).unwrap();
    let img = v.resolve("multi:1").unwrap();
    assert_eq!(
        (img.index_digest, img.config.architecture.as_str()),
        (None, "arm64")
    );
    // A platform the index lacks: an error naming it.
    let err = save_platform(
        &s,
        &names,
        SaveFormat::Docker,
        Some(&Platform::parse("linux/s390x").unwrap()),
        Vec::new(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("linux/s390x"), "{err}");
}
