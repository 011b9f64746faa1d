//! Pulled layers are verified against the config's diff_ids: an image whose config lies about its
//! layers is refused and changes nothing in the store, not even for a good image sharing the diff_id.

use bytes::Bytes;
use hoist_image::Reference;
use hoist_registry::manifest::{Manifest, OCI_MANIFEST};
use hoist_registry::{
    Client, ClientOptions, ContentStore, PullOptions, PushOptions, pull, push, push_manifest,
};
use hoist_test_support::*;

fn client() -> Client {
    let dir = tempfile::tempdir().unwrap();
    Client::new(ClientOptions {
        config_path: Some(dir.path().join("config.json")),
        ..Default::default()
    })
    .unwrap()
}

fn reads_whole(store: &hoist_image::Store, diff_id: &hoist_image::Digest) -> Result<(), String> {
    let mut r = store.open_layer(diff_id).map_err(|e| e.to_string())?;
    std::io::copy(&mut r, &mut std::io::sink())
        .map(drop)
        .map_err(|e| e.to_string())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_config_lying_about_its_layers_is_refused_and_the_good_image_keeps_working() {
    let reg = TestRegistry::start(None);
    let c = client();
    let (_a, src) = store();
    let good = make_image(&src, "local/good:1", "data", &noise(100_000, 1), "amd64");
    make_image(&src, "local/other:1", "data", &noise(100_000, 2), "amd64");
    let good_ref = Reference::parse(&format!("{}/lie/app:good", reg.host())).unwrap();
    push(
        &c,
        &src,
        "local/good:1",
        &good_ref,
        &PushOptions::default(),
        &quiet(),
    )
    .await
    .unwrap();
    // The evil manifest: the good image's config (diff_ids name the good layer) over the gzip
    // blob of another layer.
    let (other, _) = ContentStore::resolve_image(&src, "local/other:1").unwrap();
    let other: Manifest = serde_json::from_slice(&other).unwrap();
    let (good_manifest, _) = ContentStore::resolve_image(&src, "local/good:1").unwrap();
    let mut evil: Manifest = serde_json::from_slice(&good_manifest).unwrap();
    evil.layers = other.layers.clone();
    let evil_ref = Reference::parse(&format!("{}/lie/app:evil", reg.host())).unwrap();
    let body = Bytes::from(serde_json::to_vec(&evil).unwrap());
    push_manifest(
        &c,
        &src,
        &evil_ref,
        body,
        OCI_MANIFEST,
        &PushOptions::default(),
        &quiet(),
    )
    .await
    .unwrap();

    let diff_id = good.config.rootfs.diff_ids[0].clone();
    for good_first in [true, false] {
        let (_d, dst) = store();
        if good_first {
            pull(&c, &dst, &good_ref, &PullOptions::default(), &quiet())
                .await
                .unwrap();
            reads_whole(&dst, &diff_id).unwrap();
        }
        let err = pull(&c, &dst, &evil_ref, &PullOptions::default(), &quiet())
            .await
            .unwrap_err();
        let msg = format!("{err:#}");
        assert!(
            msg.contains("does not match the image config") && msg.contains(diff_id.as_str()),
            "{msg}"
        );
        assert!(
            dst.resolve(&evil_ref.to_string()).is_err(),
            "evil image recorded"
        );
        // Refused while it streamed: the lying blob never entered the store.
        assert!(!ContentStore::has_blob(&dst, &other.layers[0].digest));
        assert_eq!(files_in(&dst.tmp_dir()), 0, "temp files left behind");
        if good_first {
            // The good image's layer still reads as itself: its record was not repointed.
            reads_whole(&dst, &diff_id).unwrap();
            assert_eq!(dst.list_images().unwrap().len(), 1);
        } else {
            assert!(dst.list_images().unwrap().is_empty());
            assert!(
                reads_whole(&dst, &diff_id).is_err(),
                "no record for the lie"
            );
        }
    }
}
