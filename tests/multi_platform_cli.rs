//! Multi-platform images from the CLI: the two-platform busybox (fixtures/make-busybox-multi.sh)
//! pushed to the real registry as an index, pulled one platform or all, run per platform,
//! inspected, saved and loaded, removed.

mod common;

use std::path::Path;

use common::{HOIST, Hoist, TestRegistry, skopeo_inspect};

fn inspect(h: &Hoist, args: &[&str]) -> serde_json::Value {
    let out = h.ok(&[&["inspect"], args].concat());
    serde_json::from_str::<serde_json::Value>(&out).unwrap()[0].clone()
}

/// The one row `hoist images -q --no-trunc` shows.
fn only_id(h: &Hoist) -> String {
    let ids = h.ok(&["images", "-q", "--no-trunc"]);
    let ids: Vec<&str> = ids.lines().collect();
    assert_eq!(ids.len(), 1, "{ids:?}");
    ids[0].to_string()
}

#[test]
fn two_platform_busybox_push_pull_run_save_load() {
    let reg = TestRegistry::start(None);
    let tmp = tempfile::tempdir().unwrap();
    let name = format!("{}/multi/busybox:1", reg.host());
    let src = Hoist::new(&tmp.path().join("src"));
    hoist_test_support::busybox::make_multi(Path::new(HOIST), src.root(), &name);

    // One row, under the index's digest; inspect shows the index and picks a platform.
    let index = only_id(&src);
    let top = inspect(&src, &[&name]);
    assert_eq!(top["Id"], index.as_str());
    assert_eq!(
        top["Descriptor"]["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    assert_eq!(top["Descriptor"]["digest"], index.as_str());
    let arm = inspect(&src, &["--platform", "linux/arm64", &name]);
    assert_eq!(arm["Architecture"], "arm64");
    let amd = inspect(&src, &["--platform", "linux/amd64", &name]);
    assert_eq!(amd["Architecture"], "amd64");
    let err = src.fails(&["inspect", "--platform", "linux/s390x", &name]);
    assert!(err.contains("linux/s390x"), "{err}");
    let err = src.fails(&["inspect", "--platform", "foo", &name]);
    assert!(
        err.contains("\"foo\": unknown operating system or architecture: invalid argument"),
        "{err}"
    );

    // Push: every manifest, then the index; the registry serves the index.
    // Local layers are kept uncompressed: the pushed (gzip) manifests, and so the index, get new
    // digests, which the registry and every later pull show.
    let pushed = src.ok(&["push", &name]);
    let pushed = pushed
        .split("digest: ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .unwrap_or_else(|| panic!("no digest in {pushed}"))
        .to_string();
    let raw = skopeo_inspect(&name, true);
    assert_eq!(raw["mediaType"], "application/vnd.oci.image.index.v1+json");
    let platforms: Vec<String> = raw["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            format!(
                "{}/{}",
                m["platform"]["os"].as_str().unwrap(),
                m["platform"]["architecture"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(platforms, ["linux/amd64", "linux/arm64"]);
    for m in raw["manifests"].as_array().unwrap() {
        let by_digest = format!(
            "{}/multi/busybox@{}",
            reg.host(),
            m["digest"].as_str().unwrap()
        );
        let one = skopeo_inspect(&by_digest, false);
        assert_eq!(one["Architecture"], m["platform"]["architecture"]);
    }

    // One platform into a fresh store.
    let one = Hoist::new(&tmp.path().join("one"));
    one.ok(&["pull", "--platform", "linux/arm64", &name]);
    let img = inspect(&one, &[&name]);
    assert_eq!(img["Architecture"], "arm64");
    // The arm64 image runs under QEMU; hoist registers qemu-user-static's entry when it is missing.
    let out = one.ok(&[
        "run",
        "--rm",
        "--platform",
        "linux/arm64",
        &name,
        "uname",
        "-m",
    ]);
    assert_eq!(out.trim(), "aarch64");
    let err =
        Hoist::new(&tmp.path().join("none")).fails(&["pull", "--platform", "linux/s390x", &name]);
    assert!(
        err.contains("no matching manifest for linux/s390x in the manifest list entries"),
        "{err}"
    );
    let err = Hoist::new(&tmp.path().join("none")).fails(&[
        "pull",
        "--platform",
        "linux/arm64",
        "--all-platforms",
        &name,
    ]);
    assert!(err.contains("conflicting options"), "{err}");

    // All platforms: the index again, the host's image runs by default.
    let all = Hoist::new(&tmp.path().join("all"));
    let out = all.ok(&["pull", "--all-platforms", &name]);
    assert!(out.contains(&format!("Digest: {pushed}")), "{out}");
    assert_eq!(only_id(&all), pushed);
    let index = pushed;
    let host = all.ok(&["run", "--rm", &name, "uname", "-m"]);
    assert_eq!(host.trim(), std::env::consts::ARCH);
    assert_eq!(
        inspect(&all, &["--platform", "linux/arm64", &name])["Architecture"],
        "arm64"
    );
    let check = all.ok(&["system", "check"]);
    assert!(check.contains("no problems found"), "{check}");

    // save/load: an OCI archive holds the whole index, a docker archive one platform.
    let oci = tmp.path().join("oci.tar");
    all.ok(&[
        "save",
        "--format",
        "oci",
        "-o",
        oci.to_str().unwrap(),
        &name,
    ]);
    let back = Hoist::new(&tmp.path().join("back"));
    let loaded = back.ok(&["load", "-i", oci.to_str().unwrap()]);
    assert!(loaded.contains("Loaded image: "), "{loaded}");
    assert_eq!(only_id(&back), index);
    assert_eq!(
        inspect(&back, &["--platform", "linux/arm64", &name])["Architecture"],
        "arm64"
    );
    let docker = tmp.path().join("docker.tar");
    all.ok(&[
        "save",
        "--platform",
        "linux/arm64",
        "-o",
        docker.to_str().unwrap(),
        &name,
    ]);
    let flat = Hoist::new(&tmp.path().join("flat"));
    flat.ok(&["load", "-i", docker.to_str().unwrap()]);
    let img = inspect(&flat, &[&name]);
    assert_eq!(img["Architecture"], "arm64");
    assert_ne!(img["Id"], index.as_str());

    // rmi: the tag goes, then the index and (gc) its content.
    let out = all.ok(&["rmi", &name]);
    assert!(out.contains(&format!("Deleted: {index}")), "{out}");
    assert_eq!(all.ok(&["images", "-q"]).trim(), "");
    let blobs = std::fs::read_dir(all.root().join("blobs/sha256"))
        .unwrap()
        .count();
    assert_eq!(blobs, 0);
}
