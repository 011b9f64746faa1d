//! Multi-platform images against the real registry: `--all-platforms` keeps the index with every
//! manifest (attestations too), the store shows it once, a push of that tag pushes every manifest
//! then the index (skopeo reads it back), and a one-platform pull of it picks the platform.

use std::process::Command;

use bytes::Bytes;
use hoist_image::{Reference, Store};
use hoist_registry::manifest::{Descriptor, Index, Manifest, OCI_EMPTY, OCI_INDEX, OCI_MANIFEST};
use hoist_registry::{Client, ClientOptions, Platform, PullOptions, PushOptions, pull, push};
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

/// Pushes an amd64 and an arm64 image and an attestation manifest by digest, then an index
/// listing them under `repo:multi`; returns the index digest.
async fn push_index(c: &Client, repo: &str) -> String {
    let (_a, src) = store();
    let untagged = Reference {
        tag: None,
        ..Reference::parse(repo).unwrap()
    };
    let mut entries = Vec::new();
    for arch in ["amd64", "arm64"] {
        let local = format!("{repo}:{arch}");
        make_image(&src, &local, "arch", arch.as_bytes(), arch);
        let pushed = push(
            c,
            &src,
            &local,
            &untagged,
            &PushOptions::default(),
            &quiet(),
        )
        .await
        .unwrap();
        let mut d = Descriptor::new(OCI_MANIFEST, &pushed.digest, pushed.size);
        d.platform = Some(Platform::parse(&format!("linux/{arch}")).unwrap());
        entries.push(d);
    }
    // An attestation: an artifact manifest on `unknown/unknown`, as BuildKit attaches them.
    let empty = src.put_blob_bytes(b"{}").unwrap();
    let statement = br#"{"_type":"https://in-toto.io/Statement/v0.1"}"#;
    let layer = src.put_blob_bytes(statement).unwrap();
    let att = Manifest {
        schema_version: 2,
        media_type: Some(OCI_MANIFEST.into()),
        artifact_type: None,
        config: Descriptor::new(OCI_EMPTY, empty.as_str(), 2),
        layers: vec![Descriptor::new(
            "application/vnd.in-toto+json",
            layer.as_str(),
            statement.len() as u64,
        )],
        annotations: None,
    };
    let att_body = Bytes::from(serde_json::to_vec(&att).unwrap());
    let pushed = hoist_registry::push_manifest(
        c,
        &src,
        &untagged,
        att_body,
        OCI_MANIFEST,
        &PushOptions::default(),
        &quiet(),
    )
    .await
    .unwrap();
    let mut d = Descriptor::new(OCI_MANIFEST, &pushed.digest, pushed.size);
    d.platform = Some(Platform::new("unknown", "unknown", None));
    entries.push(d);
    let index = Index {
        schema_version: 2,
        media_type: Some(OCI_INDEX.into()),
        manifests: entries,
        annotations: None,
    };
    let body = Bytes::from(serde_json::to_vec(&index).unwrap());
    let tagged = Reference::parse(&format!("{repo}:multi")).unwrap();
    c.put_manifest(&tagged, "multi", OCI_INDEX, body)
        .await
        .unwrap()
}

fn arch(s: &Store, name: &str, p: Option<&str>) -> String {
    let p = p.map(|p| Platform::parse(p).unwrap());
    s.resolve_platform(name, p.as_ref())
        .unwrap()
        .config
        .architecture
}

#[tokio::test(flavor = "multi_thread")]
async fn all_platforms_pull_keeps_the_index_and_push_sends_it_whole() {
    let reg = TestRegistry::start(None);
    let c = client();
    let repo = format!("{}/multi/app", reg.host());
    let index_digest = push_index(&c, &repo).await;
    let tagged = Reference::parse(&format!("{repo}:multi")).unwrap();

    // --all-platforms: the index and every manifest, one row in `images`.
    let (_d, dst) = store();
    let opts = PullOptions {
        all_platforms: true,
        ..Default::default()
    };
    let p = pull(&c, &dst, &tagged, &opts, &quiet()).await.unwrap();
    assert_eq!(p.repo_digest(), index_digest);
    let rows = dst.list_images().unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].id.to_string(), index_digest);
    let name = tagged.to_string();
    assert_eq!(arch(&dst, &name, Some("linux/arm64")), "arm64");
    assert_eq!(arch(&dst, &name, Some("linux/amd64")), "amd64");
    assert_eq!(arch(&dst, &name, None), Platform::host().architecture);
    let children = dst.index_children(&index_digest.parse().unwrap()).unwrap();
    assert_eq!(children.len(), 3);
    assert!(children.iter().all(|(_, have)| *have), "{children:?}");
    // GC keeps all of it (the attestation's blobs too).
    assert_eq!(dst.gc().unwrap().blobs_removed, 0);
    let report = hoist_image::check::check(&dst, false).unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);

    // Push that tag elsewhere: every manifest, then the same index.
    let dest = Reference::parse(&format!("{}/copy/app:2", reg.host())).unwrap();
    let pushed = push(&c, &dst, &name, &dest, &PushOptions::default(), &quiet())
        .await
        .unwrap();
    assert_eq!(pushed.digest, index_digest);
    let raw = run(Command::new("skopeo").args([
        "inspect",
        "--tls-verify=false",
        "--raw",
        &format!("docker://{dest}"),
    ]));
    let idx: Index = serde_json::from_str(&raw).unwrap();
    assert_eq!(idx.media_type.as_deref(), Some(OCI_INDEX));
    let plats: Vec<String> = idx
        .manifests
        .iter()
        .filter_map(|d| d.platform.as_ref().map(|p| p.to_string()))
        .collect();
    assert_eq!(plats, ["linux/amd64", "linux/arm64", "unknown/unknown"]);
    for m in &idx.manifests {
        run(Command::new("skopeo").args([
            "inspect",
            "--tls-verify=false",
            "--raw",
            &format!("docker://{}/copy/app@{}", reg.host(), m.digest),
        ]));
    }

    // One platform of the copy into a fresh store.
    let (_e, one) = store();
    let opts = PullOptions {
        platform: Some(Platform::parse("linux/arm64").unwrap()),
        ..Default::default()
    };
    pull(&c, &one, &dest, &opts, &quiet()).await.unwrap();
    assert_eq!(arch(&one, &dest.to_string(), None), "arm64");

    // No manifest for the platform: Docker's words.
    let opts = PullOptions {
        platform: Some(Platform::parse("linux/s390x").unwrap()),
        ..Default::default()
    };
    let (_f, none) = store();
    let err = pull(&c, &none, &dest, &opts, &quiet()).await.unwrap_err();
    assert!(
        format!("{err:#}")
            .contains("no matching manifest for linux/s390x in the manifest list entries"),
        "{err:#}"
    );
    assert!(none.list_images().unwrap().is_empty());
}
