//! Pull and push against the real CNCF registry (Debian's docker-registry), interop with skopeo and
//! umoci, platform selection, digest verification and resume through a tampering proxy, auth, and
//! the build-cache primitives (an arbitrary manifest plus blobs).

use std::process::Command;

use bytes::Bytes;
use hoist_image::{Reference, Store};
use hoist_registry::manifest::{Descriptor, Index, Manifest, OCI_INDEX, OCI_MANIFEST};
use hoist_registry::{
    Client, ClientOptions, Credentials, Platform, PullOptions, PushOptions, fetch_blobs, pull,
    push, push_manifest,
};
use hoist_test_support::*;

fn client() -> Client {
    let dir = tempfile::tempdir().unwrap();
    Client::new(ClientOptions {
        config_path: Some(dir.path().join("config.json")),
        backoff: std::time::Duration::from_millis(20),
        ..Default::default()
    })
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn push_pull_round_trip_by_tag_and_digest_and_skopeo_reads_it() {
    let reg = TestRegistry::start(None);
    let (_a, src) = store();
    let name = format!("{}/hoist/app:1.0", reg.host());
    let img = make_image(&src, &name, "hello.txt", &noise(300_000, 1), "amd64");
    let c = client();
    let r = Reference::parse(&name).unwrap();
    let pushed = push(&c, &src, &name, &r, &PushOptions::default(), &quiet())
        .await
        .unwrap();
    assert_eq!(pushed.uploaded, 2, "layer and config uploaded");
    // A second push skips every blob (HEAD).
    let again = push(&c, &src, &name, &r, &PushOptions::default(), &quiet())
        .await
        .unwrap();
    assert_eq!((again.uploaded, &again.digest), (0, &pushed.digest));

    // skopeo sees the same manifest digest and can copy the image out.
    let inspect = run(Command::new("skopeo").args([
        "inspect",
        "--tls-verify=false",
        &format!("docker://{name}"),
    ]));
    let v: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    assert_eq!(v["Digest"], pushed.digest.as_str());
    assert_eq!(v["Architecture"], "amd64");
    let out = tempfile::tempdir().unwrap();
    run(Command::new("skopeo").args([
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{name}"),
        &format!("oci:{}:copied", out.path().display()),
    ]));
    assert!(out.path().join("index.json").is_file());

    // Pull by tag into a clean store: same image ID, layer readable.
    let (_b, dst) = store();
    let pulled = pull(&c, &dst, &r, &PullOptions::default(), &quiet())
        .await
        .unwrap();
    assert_eq!(pulled.config_digest, img.config_digest.to_string());
    assert_eq!(pulled.manifest_digest, pushed.digest);
    assert!(pulled.downloaded >= 2);
    let local = dst.resolve(&name).unwrap();
    assert_eq!(local.config_digest, img.config_digest);
    let mut tar = dst.open_layer(&local.config.rootfs.diff_ids[0]).unwrap();
    std::io::copy(&mut tar, &mut std::io::sink()).unwrap();
    // Pulling again downloads nothing.
    let pulled2 = pull(&c, &dst, &r, &PullOptions::default(), &quiet())
        .await
        .unwrap();
    assert_eq!(pulled2.downloaded, 0);

    // Pull by digest into another clean store.
    let (_c, dst2) = store();
    let by_digest =
        Reference::parse(&format!("{}/hoist/app@{}", reg.host(), pushed.digest)).unwrap();
    let p = pull(&c, &dst2, &by_digest, &PullOptions::default(), &quiet())
        .await
        .unwrap();
    assert_eq!(p.config_digest, img.config_digest.to_string());
    assert!(dst2.has_blob(&img.config_digest));
}

#[tokio::test(flavor = "multi_thread")]
async fn image_pushed_by_skopeo_from_umoci_layout_is_pulled() {
    let reg = TestRegistry::start(None);
    let work = tempfile::tempdir().unwrap();
    let layout = work.path().join("layout");
    let bundle = work.path().join("bundle");
    let l = layout.display().to_string();
    run(Command::new("umoci").args(["init", "--layout", &l]));
    run(Command::new("umoci").args(["new", "--image", &format!("{l}:v1")]));
    run(Command::new("umoci").args([
        "unpack",
        "--image",
        &format!("{l}:v1"),
        &bundle.display().to_string(),
    ]));
    std::fs::write(bundle.join("rootfs/greeting"), b"from umoci\n").unwrap();
    run(Command::new("umoci").args([
        "repack",
        "--image",
        &format!("{l}:v1"),
        &bundle.display().to_string(),
    ]));
    let name = format!("{}/interop/umoci:v1", reg.host());
    run(Command::new("skopeo").args([
        "copy",
        "--dest-tls-verify=false",
        &format!("oci:{l}:v1"),
        &format!("docker://{name}"),
    ]));
    let inspect = run(Command::new("skopeo").args([
        "inspect",
        "--tls-verify=false",
        &format!("docker://{name}"),
    ]));
    let v: serde_json::Value = serde_json::from_str(&inspect).unwrap();

    let (_d, dst) = store();
    let c = client();
    let pulled = pull(
        &c,
        &dst,
        &Reference::parse(&name).unwrap(),
        &PullOptions::default(),
        &quiet(),
    )
    .await
    .unwrap();
    assert_eq!(v["Digest"], pulled.manifest_digest.as_str());
    let img = dst.resolve(&name).unwrap();
    // The layer umoci wrote holds the file.
    let diff = img.config.rootfs.diff_ids.last().unwrap().clone();
    let mut archive = tar::Archive::new(dst.open_layer(&diff).unwrap());
    let found = archive
        .entries()
        .unwrap()
        .filter_map(|e| e.ok())
        .any(|e| e.path().unwrap().to_string_lossy().trim_start_matches("./") == "greeting");
    assert!(found, "greeting not in the pulled layer");
}

#[tokio::test(flavor = "multi_thread")]
async fn multi_platform_index_selects_the_right_manifest() {
    let reg = TestRegistry::start(None);
    let (_a, src) = store();
    let c = client();
    let repo = format!("{}/multi/app", reg.host());
    let mut entries = Vec::new();
    let mut ids = Vec::new();
    for (i, arch) in ["amd64", "arm64", "s390x"].iter().enumerate() {
        let local = format!("{repo}:{arch}");
        let img = make_image(&src, &local, "arch", arch.as_bytes(), arch);
        let dest = Reference::parse(&repo).unwrap();
        let dest = Reference { tag: None, ..dest };
        let pushed = push(&c, &src, &local, &dest, &PushOptions::default(), &quiet())
            .await
            .unwrap();
        let mut d = Descriptor::new(OCI_MANIFEST, &pushed.digest, pushed.size);
        d.platform = Some(Platform::parse(&format!("linux/{arch}")).unwrap());
        entries.push(d);
        ids.push(img.config_digest.to_string());
        assert_eq!(i + 1, entries.len());
    }
    let index = Index {
        schema_version: 2,
        media_type: Some(OCI_INDEX.into()),
        manifests: entries,
        annotations: None,
    };
    let body = Bytes::from(serde_json::to_vec(&index).unwrap());
    let tagged = Reference::parse(&format!("{repo}:multi")).unwrap();
    let index_digest = c
        .put_manifest(&tagged, "multi", OCI_INDEX, body)
        .await
        .unwrap();

    for (arch, id) in [
        ("linux/arm64", &ids[1]),
        ("linux/s390x", &ids[2]),
        ("linux/amd64", &ids[0]),
    ] {
        let (_d, dst) = store();
        let opts = PullOptions {
            platform: Some(Platform::parse(arch).unwrap()),
            ..Default::default()
        };
        let p = pull(&c, &dst, &tagged, &opts, &quiet()).await.unwrap();
        assert_eq!(&p.config_digest, id, "{arch}");
        assert_eq!(p.index_digest.as_deref(), Some(index_digest.as_str()));
        assert_eq!(
            dst.resolve(&tagged.to_string())
                .unwrap()
                .config
                .architecture,
            arch.rsplit('/').next().unwrap()
        );
        // The index's digest names the platform's image locally too (Docker's RepoDigests).
        let by_index = dst.resolve(&format!("{repo}@{index_digest}")).unwrap();
        assert_eq!(&by_index.config_digest.to_string(), id, "{arch}");
    }
    // A pull by the index digest alone (no tag) resolves by that digest afterwards.
    let (_d, dst) = store();
    let pinned = Reference::parse(&format!("{repo}@{index_digest}")).unwrap();
    let opts = PullOptions {
        platform: Some(Platform::parse("linux/s390x").unwrap()),
        ..Default::default()
    };
    let p = pull(&c, &dst, &pinned, &opts, &quiet()).await.unwrap();
    assert_eq!(p.config_digest, ids[2]);
    let img = dst.resolve(&format!("{repo}@{index_digest}")).unwrap();
    assert_eq!(img.config_digest.to_string(), ids[2]);
    assert!(
        dst.resolve(&format!("{repo}@{}", p.manifest_digest))
            .is_ok()
    );
    // Tagging keeps the alias.
    dst.tag(
        &format!("{repo}@{index_digest}"),
        &hoist_image::Reference::parse("local/s390x:1").unwrap(),
    )
    .unwrap();
    let img = dst.resolve(&format!("{repo}@{index_digest}")).unwrap();
    assert_eq!(img.config_digest.to_string(), ids[2]);
    let (_d, dst) = store();
    let opts = PullOptions {
        platform: Some(Platform::parse("linux/ppc64le").unwrap()),
        ..Default::default()
    };
    let err = pull(&c, &dst, &tagged, &opts, &quiet()).await.unwrap_err();
    assert!(
        format!("{err:#}").contains("no matching manifest for linux/ppc64le"),
        "{err:#}"
    );
}

async fn push_big(
    reg: &TestRegistry,
    size: usize,
) -> (String, hoist_image::Image, Store, tempfile::TempDir) {
    let (dir, src) = store();
    let name = format!("{}/big/app:1", reg.host());
    let img = make_image(&src, &name, "blob", &noise(size, 7), "amd64");
    let r = Reference::parse(&name).unwrap();
    push(
        &client(),
        &src,
        &name,
        &r,
        &PushOptions::default(),
        &quiet(),
    )
    .await
    .unwrap();
    (name, img, src, dir)
}

fn layer_digest_in_registry(name: &str) -> String {
    let out = run(Command::new("skopeo").args([
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{name}"),
    ]));
    let m: Manifest = serde_json::from_str(&out).unwrap();
    m.layers[0].digest.clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn blob_with_wrong_digest_is_rejected_and_nothing_stored() {
    let reg = TestRegistry::start(None);
    let (name, _img, _src, _d) = push_big(&reg, 200_000).await;
    let layer = layer_digest_in_registry(&name);
    let proxy = Proxy::start(
        reg.port,
        layer.trim_start_matches("sha256:"),
        Tamper::Corrupt,
    );
    let via = name.replace(&reg.host(), &format!("127.0.0.1:{}", proxy.port));
    let (_d, dst) = store();
    let err = pull(
        &client(),
        &dst,
        &Reference::parse(&via).unwrap(),
        &PullOptions::default(),
        &quiet(),
    )
    .await
    .unwrap_err();
    assert!(
        format!("{err:#}").contains("failed verification"),
        "{err:#}"
    );
    assert!(!hoist_registry::ContentStore::has_blob(&dst, &layer));
    assert!(
        dst.resolve(&via).is_err(),
        "image recorded despite a bad blob"
    );
    assert_eq!(files_in(&dst.tmp_dir()), 0, "temp files left behind");
    assert!(dst.list_images().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn cut_connection_is_resumed_with_range() {
    let reg = TestRegistry::start(None);
    let (name, img, _src, _d) = push_big(&reg, 3_000_000).await;
    let layer = layer_digest_in_registry(&name);
    let proxy = Proxy::start(
        reg.port,
        layer.trim_start_matches("sha256:"),
        Tamper::CutOnceAfter(700_000),
    );
    let via = name.replace(&reg.host(), &format!("127.0.0.1:{}", proxy.port));
    let (_d, dst) = store();
    let p = pull(
        &client(),
        &dst,
        &Reference::parse(&via).unwrap(),
        &PullOptions::default(),
        &quiet(),
    )
    .await
    .unwrap();
    assert_eq!(p.config_digest, img.config_digest.to_string());
    let reqs = proxy.requests.lock().unwrap().clone();
    let blob_gets: Vec<&String> = reqs
        .iter()
        .filter(|r| r.starts_with("GET") && r.contains(layer.trim_start_matches("sha256:")))
        .collect();
    assert_eq!(
        blob_gets.len(),
        2,
        "one cut download and one resume: {blob_gets:?}"
    );
    assert!(
        blob_gets[1]
            .to_ascii_lowercase()
            .contains("range: bytes=700000-"),
        "{}",
        blob_gets[1]
    );
    let local = dst.resolve(&via).unwrap();
    let mut tar = dst.open_layer(&local.config.rootfs.diff_ids[0]).unwrap();
    std::io::copy(&mut tar, &mut std::io::sink()).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn basic_auth_registry_needs_and_takes_credentials() {
    let reg = TestRegistry::start(Some(("alice", "wonder-land")));
    let (_a, src) = store();
    let name = format!("{}/private/app:1", reg.host());
    make_image(&src, &name, "f", b"secret stuff", "amd64");
    let r = Reference::parse(&name).unwrap();
    let err = push(
        &client(),
        &src,
        &name,
        &r,
        &PushOptions::default(),
        &quiet(),
    )
    .await
    .unwrap_err();
    assert!(
        format!("{err:#}").contains("authentication required"),
        "{err:#}"
    );

    // Credentials from a Docker config file, as `hoist login` writes it.
    let cfgdir = tempfile::tempdir().unwrap();
    let cfg_path = cfgdir.path().join("config.json");
    let mut cfg = hoist_registry::DockerConfig::load(&cfg_path).unwrap();
    cfg.store(
        &reg.host(),
        &Credentials {
            username: "alice".into(),
            password: "wonder-land".into(),
        },
    )
    .unwrap();
    let c = Client::new(ClientOptions {
        config_path: Some(cfg_path),
        ..Default::default()
    })
    .unwrap();
    c.ping(&reg.host()).await.unwrap();
    push(&c, &src, &name, &r, &PushOptions::default(), &quiet())
        .await
        .unwrap();
    let (_b, dst) = store();
    pull(&c, &dst, &r, &PullOptions::default(), &quiet())
        .await
        .unwrap();

    let wrong = Client::new(ClientOptions {
        credentials: Some(Credentials {
            username: "alice".into(),
            password: "nope".into(),
        }),
        config_path: Some(cfgdir.path().join("none.json")),
        ..Default::default()
    })
    .unwrap();
    assert!(wrong.ping(&reg.host()).await.is_err());
}

#[tokio::test(flavor = "multi_thread")]
async fn cache_primitives_push_and_fetch_an_artifact_manifest() {
    let reg = TestRegistry::start(None);
    let (_a, src) = store();
    let c = client();
    let img = make_image(&src, "local/base:1", "layer", &noise(50_000, 3), "amd64");
    // Mount test: the layer's blob already lives in another repository of this registry.
    let base = Reference::parse(&format!("{}/cache/base:1", reg.host())).unwrap();
    push(
        &c,
        &src,
        "local/base:1",
        &base,
        &PushOptions::default(),
        &quiet(),
    )
    .await
    .unwrap();

    let (manifest_bytes, _) =
        hoist_registry::ContentStore::resolve_image(&src, "local/base:1").unwrap();
    let image_manifest: Manifest = serde_json::from_slice(&manifest_bytes).unwrap();
    let layer = image_manifest.layers[0].clone();
    let meta = Bytes::from_static(br#"{"steps":{"k1":0}}"#);
    let cache_ref = Reference::parse(&format!("{}/cache/app:buildcache", reg.host())).unwrap();
    let config = c
        .push_bytes(
            &cache_ref,
            "application/vnd.hoist.cache.config.v1+json",
            meta.clone(),
        )
        .await
        .unwrap();
    let artifact = Manifest {
        schema_version: 2,
        media_type: Some(OCI_MANIFEST.into()),
        artifact_type: Some("application/vnd.hoist.cache.v1".into()),
        config,
        layers: vec![layer.clone()],
        annotations: None,
    };
    let body = Bytes::from(serde_json::to_vec(&artifact).unwrap());
    let opts = PushOptions {
        mount_from: vec!["cache/base".into()],
        ..Default::default()
    };
    let pushed = push_manifest(&c, &src, &cache_ref, body, OCI_MANIFEST, &opts, &quiet())
        .await
        .unwrap();
    assert_eq!(pushed.uploaded, 0, "the layer is mounted, not uploaded");

    // A clean store fetches the manifest and its blobs.
    let (_b, dst) = store();
    let (got, mt, digest) = c.get_manifest(&cache_ref, "buildcache").await.unwrap();
    assert_eq!(
        (mt.as_str(), digest.as_str()),
        (OCI_MANIFEST, pushed.digest.as_str())
    );
    let m: Manifest = serde_json::from_slice(&got).unwrap();
    assert_eq!(
        m.artifact_type.as_deref(),
        Some("application/vnd.hoist.cache.v1")
    );
    assert_eq!(c.get_blob_bytes(&cache_ref, &m.config).await.unwrap(), meta);
    let n = fetch_blobs(&c, &dst, &cache_ref, &m.layers, 2, &quiet())
        .await
        .unwrap();
    assert_eq!(n, 1);
    assert!(hoist_registry::ContentStore::has_blob(&dst, &layer.digest));
    let _ = img;
}

#[tokio::test(flavor = "multi_thread")]
async fn chunked_upload_round_trips() {
    let reg = TestRegistry::start(None);
    let (_a, src) = store();
    let name = format!("{}/chunked/app:1", reg.host());
    let img = make_image(&src, &name, "f", &noise(1_000_000, 9), "amd64");
    let dir = tempfile::tempdir().unwrap();
    let c = Client::new(ClientOptions {
        config_path: Some(dir.path().join("config.json")),
        chunked_threshold: 100_000,
        chunk_size: 256 << 10,
        ..Default::default()
    })
    .unwrap();
    let r = Reference::parse(&name).unwrap();
    let pushed = push(&c, &src, &name, &r, &PushOptions::default(), &quiet())
        .await
        .unwrap();
    assert_eq!(pushed.uploaded, 2);
    let (_b, dst) = store();
    let p = pull(&client(), &dst, &r, &PullOptions::default(), &quiet())
        .await
        .unwrap();
    assert_eq!(p.config_digest, img.config_digest.to_string());
}

#[tokio::test(flavor = "multi_thread")]
async fn explicit_platform_mismatch_on_a_single_manifest_is_refused() {
    let reg = TestRegistry::start(None);
    let (_a, src) = store();
    let name = format!("{}/single/app:1", reg.host());
    make_image(&src, &name, "f", b"x", "amd64");
    let r = Reference::parse(&name).unwrap();
    let c = client();
    push(&c, &src, &name, &r, &PushOptions::default(), &quiet())
        .await
        .unwrap();
    let (_b, dst) = store();
    let opts = PullOptions {
        platform: Some(Platform::parse("linux/arm64").unwrap()),
        ..Default::default()
    };
    let err = pull(&c, &dst, &r, &opts, &quiet()).await.unwrap_err();
    assert!(
        format!("{err:#}").contains("does not match the specified platform"),
        "{err:#}"
    );
    assert!(dst.list_images().unwrap().is_empty());
    let opts = PullOptions {
        platform: Some(Platform::parse("linux/amd64").unwrap()),
        ..Default::default()
    };
    pull(&c, &dst, &r, &opts, &quiet()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn service_unavailable_is_retried() {
    let reg = TestRegistry::start(None);
    let (name, img, _src, _d) = push_big(&reg, 100_000).await;
    let layer = layer_digest_in_registry(&name);
    let proxy = Proxy::start(
        reg.port,
        layer.trim_start_matches("sha256:"),
        Tamper::UnavailableOnce,
    );
    let via = name.replace(&reg.host(), &format!("127.0.0.1:{}", proxy.port));
    let (_d, dst) = store();
    let p = pull(
        &client(),
        &dst,
        &Reference::parse(&via).unwrap(),
        &PullOptions::default(),
        &quiet(),
    )
    .await
    .unwrap();
    assert_eq!(p.config_digest, img.config_digest.to_string());
    let reqs = proxy.requests.lock().unwrap().clone();
    let gets = reqs
        .iter()
        .filter(|r| r.starts_with("GET") && r.contains(layer.trim_start_matches("sha256:")))
        .count();
    assert_eq!(gets, 2, "a 503 then a successful retry");
}

#[tokio::test(flavor = "multi_thread")]
async fn build_cache_export_then_import_into_a_clean_store() {
    use hoist_registry::cache::{CACHE_ARTIFACT_TYPE, export_cache, import_cache};
    let reg = TestRegistry::start(None);
    let (_a, src) = store();
    let c = client();
    let img = make_image(&src, "local/step:1", "layer", &noise(80_000, 5), "amd64");
    let diff = img.config.rootfs.diff_ids[0].clone();
    let gz = src
        .compressed_layer(&diff, hoist_image::layer::Compression::Gzip)
        .unwrap();
    let layer = Descriptor::new(gz.media_type().as_ref(), gz.digest().as_ref(), gz.size());
    let cache = Reference::parse(&format!("{}/app/cache:buildcache", reg.host())).unwrap();
    assert!(
        import_cache(&c, &cache).await.unwrap().is_none(),
        "no cache before export"
    );
    let meta = Bytes::from(format!(r#"{{"step-key":"{}"}}"#, layer.digest));
    export_cache(
        &c,
        &src,
        &cache,
        meta.clone(),
        vec![layer.clone()],
        &PushOptions::default(),
        &quiet(),
    )
    .await
    .unwrap();

    let (_b, dst) = store();
    let remote = import_cache(&c, &cache)
        .await
        .unwrap()
        .expect("cache exported");
    assert_eq!(remote.metadata, meta);
    assert_eq!(
        remote.manifest.artifact_type.as_deref(),
        Some(CACHE_ARTIFACT_TYPE)
    );
    assert_eq!(remote.layers(), std::slice::from_ref(&layer));
    assert_eq!(
        fetch_blobs(&c, &dst, &cache, remote.layers(), 2, &quiet())
            .await
            .unwrap(),
        1
    );
    // The fetched layer decompresses to the step's diff_id.
    let d: hoist_image::Digest = layer.digest.parse().unwrap();
    dst.register_layer_blob(&diff, &d, hoist_image::layer::Compression::Gzip)
        .unwrap();
    let mut r = dst.open_layer(&diff).unwrap();
    std::io::copy(&mut r, &mut std::io::sink()).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn pull_reuses_a_layer_held_locally_in_another_form() {
    use hoist_image::layer::Compression;
    let reg = TestRegistry::start(None);
    let c = client();
    let content = noise(300_000, 11);
    let name = format!("{}/reuse/app:1", reg.host());
    let r = Reference::parse(&name).unwrap();
    let (_a, src) = store();
    make_image(&src, &name, "data", &content, "amd64");
    push(&c, &src, &name, &r, &PushOptions::default(), &quiet())
        .await
        .unwrap();

    // A store that built the same layer itself (uncompressed only), in an image of its own.
    let (_b, dst) = store();
    let local = make_image(&dst, "local/other:1", "data", &content, "arm64");
    let diff = local.config.rootfs.diff_ids[0].clone();
    assert!(dst.layer_blob(&diff, Compression::Gzip).is_none());
    let p = pull(&c, &dst, &r, &PullOptions::default(), &quiet())
        .await
        .unwrap();
    assert_eq!(p.downloaded, 1, "only the config is downloaded");
    let img = dst.resolve(&name).unwrap();
    let (d, blob) = &img.layers().unwrap()[0];
    assert_eq!(d, &diff);
    // The manifest's blob is in the store, whole and verified.
    let blob: hoist_image::Digest = blob.digest().as_ref().parse().unwrap();
    std::io::copy(&mut dst.open_blob(&blob).unwrap(), &mut std::io::sink()).unwrap();

    // Without the layer at hand, it is downloaded.
    let (_c, empty) = store();
    let p = pull(&c, &empty, &r, &PullOptions::default(), &quiet())
        .await
        .unwrap();
    assert_eq!(p.downloaded, 2);
}
