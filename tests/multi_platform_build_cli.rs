//! `hoist build --platform`: values validated as containerd parses them, BuildKit's automatic
//! platform ARGs, `FROM --platform=…` resolving a two-platform base per stage, and the result's
//! config saying the asked-for platform.

mod common;

use std::fs;
use std::path::Path;

use common::{HOIST, Hoist, TestRegistry, skopeo_inspect};

fn inspect(h: &Hoist, args: &[&str]) -> serde_json::Value {
    let out = h.ok(&[&["inspect"], args].concat());
    serde_json::from_str::<serde_json::Value>(&out).unwrap()[0].clone()
}

fn host() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => panic!("no test for host {other}"),
    }
}

#[test]
fn bad_platform_values_are_errors_naming_them() {
    let tmp = tempfile::tempdir().unwrap();
    let h = Hoist::new(&tmp.path().join("store"));
    let ctx = tmp.path().join("ctx");
    fs::create_dir_all(&ctx).unwrap();
    fs::write(ctx.join("Dockerfile"), "FROM scratch\nLABEL a=b\n").unwrap();
    let ctx = ctx.to_str().unwrap();
    for (spec, bad) in [
        ("linux/amd64,foo", "foo"),
        ("linux/amd64/v2/x", "linux/amd64/v2/x"),
        ("linux/am d64", "linux/am d64"),
    ] {
        let err = h.fails(&["build", "--platform", spec, "-t", "x", ctx]);
        assert!(err.contains(&format!("{bad:?}")), "{spec}: {err}");
    }
    // `--check` parses it the same way.
    let err = h.fails(&["build", "--check", "--platform", "linux/amd64,foo", ctx]);
    assert!(err.contains("\"foo\""), "{err}");
    // Nothing was built.
    assert!(h.ok(&["images", "-q"]).trim().is_empty());
}

#[test]
fn target_platform_is_normalised_into_config_and_args() {
    let tmp = tempfile::tempdir().unwrap();
    let h = Hoist::new(&tmp.path().join("store"));
    let ctx = tmp.path().join("ctx");
    fs::create_dir_all(&ctx).unwrap();
    fs::write(
        ctx.join("Dockerfile"),
        "FROM scratch\nARG TARGETPLATFORM TARGETOS TARGETARCH TARGETVARIANT BUILDPLATFORM\n\
         LABEL t=\"$TARGETPLATFORM|$TARGETOS|$TARGETARCH|$TARGETVARIANT|$BUILDPLATFORM\"\n",
    )
    .unwrap();
    let ctx = ctx.to_str().unwrap();
    for (spec, want, arch, variant) in [
        ("arm64", "linux/arm64", "arm64", ""),
        ("linux/aarch64", "linux/arm64", "arm64", ""),
        ("linux/arm", "linux/arm/v7", "arm", "v7"),
        ("linux/arm/v6", "linux/arm/v6", "arm", "v6"),
        ("linux/s390x", "linux/s390x", "s390x", ""),
    ] {
        h.ok(&["build", "-q", "--platform", spec, "-t", "p", ctx]);
        let img = inspect(&h, &["p"]);
        assert_eq!(img["Os"], "linux", "{spec}");
        assert_eq!(img["Architecture"], arch, "{spec}");
        assert_eq!(img["Variant"].as_str().unwrap_or(""), variant, "{spec}");
        assert_eq!(
            img["Config"]["Labels"]["t"],
            format!("{want}|linux|{arch}|{variant}|linux/{}", host()),
            "{spec}"
        );
    }
}

/// A cross-compiling stage (`FROM --platform=$BUILDPLATFORM`) starts from the host's busybox and
/// its RUN sees the target's args; the final stage starts from the target's busybox.
#[test]
fn from_platform_resolves_the_base_per_stage() {
    let tmp = tempfile::tempdir().unwrap();
    let h = Hoist::new(&tmp.path().join("store"));
    hoist_test_support::busybox::make_multi(Path::new(HOIST), h.root(), "bb:multi");
    let ctx = tmp.path().join("ctx");
    fs::create_dir_all(&ctx).unwrap();
    fs::write(
        ctx.join("Dockerfile"),
        "FROM --platform=$BUILDPLATFORM bb:multi AS build\n\
         ARG TARGETPLATFORM TARGETARCH BUILDPLATFORM\n\
         RUN echo \"$TARGETPLATFORM $TARGETARCH $BUILDPLATFORM $(uname -m)\" > /out\n\
         FROM bb:multi\n\
         COPY --from=build /out /out\n",
    )
    .unwrap();
    let ctx_s = ctx.to_str().unwrap();
    let dest = tmp.path().join("dest");
    let dest_s = format!("type=local,dest={}", dest.display());
    h.ok(&[
        "build",
        "-q",
        "--platform",
        "linux/arm64",
        "-o",
        &dest_s,
        ctx_s,
    ]);
    let uname = if host() == "amd64" {
        "x86_64"
    } else {
        "aarch64"
    };
    assert_eq!(
        fs::read_to_string(dest.join("out")).unwrap(),
        format!("linux/arm64 arm64 linux/{} {uname}\n", host())
    );

    h.ok(&[
        "build",
        "-q",
        "--platform",
        "linux/arm64",
        "-t",
        "app",
        ctx_s,
    ]);
    let img = inspect(&h, &["app"]);
    assert_eq!(img["Architecture"], "arm64");
    let base = inspect(&h, &["--platform", "linux/arm64", "bb:multi"]);
    let host_base = inspect(
        &h,
        &["--platform", &format!("linux/{}", host()), "bb:multi"],
    );
    let first = |v: &serde_json::Value| v["RootFS"]["Layers"][0].clone();
    assert_eq!(
        first(&img),
        first(&base),
        "the final stage is on arm64 busybox"
    );
    assert_ne!(first(&base), first(&host_base));

    // A bad FROM --platform is BuildKit's error, at its line.
    fs::write(
        ctx.join("Dockerfile"),
        "FROM scratch\nFROM --platform=$NOPE bb:multi\n",
    )
    .unwrap();
    let err = h.fails(&["build", "-q", ctx_s]);
    assert!(
        err.contains("empty platform value from expression $NOPE"),
        "{err}"
    );
    assert!(err.contains("Dockerfile:2"), "{err}");
}

/// Steps of a stage for one platform never reuse another's results; a stage built
/// `FROM --platform=$BUILDPLATFORM` that does not read the target's args is the same for any
/// target, and is reused.
#[test]
fn cache_keys_follow_the_stage_platform() {
    let tmp = tempfile::tempdir().unwrap();
    let h = Hoist::new(&tmp.path().join("store"));
    let ctx = tmp.path().join("ctx");
    fs::create_dir_all(&ctx).unwrap();
    fs::write(ctx.join("f"), "x").unwrap();
    fs::write(
        ctx.join("Dockerfile"),
        "FROM --platform=$BUILDPLATFORM scratch AS tools\nCOPY f /tool\n\
         FROM scratch\nCOPY f /f\nCOPY --from=tools /tool /tool\n",
    )
    .unwrap();
    let ctx = ctx.to_str().unwrap();
    // The names of the vertices `--progress=plain` reports CACHED (`#4 [tools 1/1] COPY f /tool`,
    // later `#4 CACHED`).
    let cached_lines = |out: &str| -> Vec<String> {
        let names: Vec<(&str, &str)> = out
            .lines()
            .filter_map(|l| l.split_once(' '))
            .filter(|(_, rest)| rest.starts_with('['))
            .collect();
        out.lines()
            .filter_map(|l| l.strip_suffix(" CACHED"))
            .filter_map(|n| names.iter().find(|(m, _)| *m == n))
            .map(|(_, name)| name.to_string())
            .collect()
    };
    let build = |p: &str| {
        let out = h
            .command(&["build", "--progress=plain", "--platform", p, "-t", "c", ctx])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    build("linux/amd64");
    let arm = build("linux/arm64");
    let cached = cached_lines(&arm);
    assert!(cached.iter().any(|l| l.contains("COPY f /tool")), "{arm}");
    assert!(!cached.iter().any(|l| l.contains("COPY f /f")), "{arm}");
    let again = build("linux/arm64");
    assert!(
        cached_lines(&again).iter().any(|l| l.contains("COPY f /f")),
        "{again}"
    );
}

/// `--platform linux/amd64,linux/arm64 -t app`: one index under the tag, one image per platform;
/// the arm64 RUN really runs as aarch64 (under QEMU), the cross-compiling stage on the host only.
#[test]
fn two_platform_build_writes_an_index() {
    // hoist registers Debian's qemu-user-static itself (as root) when binfmt_misc lacks the entry.
    let entry = Path::new("/proc/sys/fs/binfmt_misc/qemu-aarch64");
    let had_entry = entry.exists();
    let tmp = tempfile::tempdir().unwrap();
    let h = Hoist::new(&tmp.path().join("store"));
    hoist_test_support::busybox::make_multi(Path::new(HOIST), h.root(), "bb:multi");
    let ctx = tmp.path().join("ctx");
    fs::create_dir_all(&ctx).unwrap();
    fs::write(
        ctx.join("Dockerfile"),
        "FROM --platform=$BUILDPLATFORM bb:multi AS build\n\
         ARG TARGETARCH\n\
         RUN echo \"$TARGETARCH on $(uname -m)\" > /cross\n\
         FROM bb:multi\n\
         ARG TARGETPLATFORM BUILDPLATFORM\n\
         COPY --from=build /cross /cross\n\
         RUN echo \"$TARGETPLATFORM $BUILDPLATFORM $(uname -m)\" > /out\n",
    )
    .unwrap();
    let ctx = ctx.to_str().unwrap();
    let out = h.output(&[
        "build",
        "-q",
        "--platform",
        "linux/amd64,linux/arm64",
        "-t",
        "app",
        ctx,
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(entry.exists(), "no {} after the build", entry.display());
    if !had_entry {
        assert!(
            stderr.contains("registered qemu-aarch64 (binfmt_misc, F)"),
            "hoist registered the entry without saying so: {stderr}"
        );
    }
    let top = inspect(&h, &["app"]);
    assert_eq!(
        top["Descriptor"]["mediaType"], "application/vnd.oci.image.index.v1+json",
        "{top}"
    );
    // One row: the index.
    assert_eq!(
        h.ok(&["images", "-q"]).lines().count(),
        2,
        "bb:multi and app"
    );
    let uname = if host() == "amd64" {
        "x86_64"
    } else {
        "aarch64"
    };
    for (arch, machine) in [("amd64", "x86_64"), ("arm64", "aarch64")] {
        let p = format!("linux/{arch}");
        let img = inspect(&h, &["--platform", &p, "app"]);
        assert_eq!(img["Architecture"], arch);
        let out = h.ok(&[
            "run",
            "--rm",
            "--platform",
            &p,
            "app",
            "cat",
            "/out",
            "/cross",
        ]);
        assert_eq!(
            out,
            format!("{p} linux/{} {machine}\n{arch} on {uname}\n", host())
        );
    }
}

/// `--push` of a two-platform build: the registry serves the index, each platform's manifest
/// under it, and a fresh store pulls the arm64 one.
#[test]
fn two_platform_build_pushes_the_index() {
    let reg = TestRegistry::start(None);
    let tmp = tempfile::tempdir().unwrap();
    let h = Hoist::new(&tmp.path().join("store"));
    hoist_test_support::busybox::make_multi(Path::new(HOIST), h.root(), "bb:multi");
    let ctx = tmp.path().join("ctx");
    fs::create_dir_all(&ctx).unwrap();
    fs::write(
        ctx.join("Dockerfile"),
        "FROM bb:multi\nARG TARGETARCH\nLABEL arch=$TARGETARCH\n",
    )
    .unwrap();
    let name = format!("{}/multi/app:1", reg.host());
    let ctx = ctx.to_str().unwrap();
    h.ok(&[
        "build",
        "-q",
        "--platform",
        "linux/arm64,linux/amd64",
        "-t",
        &name,
        "--push",
        ctx,
    ]);
    let raw = skopeo_inspect(&name, true);
    assert_eq!(
        raw["mediaType"], "application/vnd.oci.image.index.v1+json",
        "{raw}"
    );
    let archs: Vec<&str> = raw["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["platform"]["architecture"].as_str().unwrap())
        .collect();
    assert_eq!(archs, ["arm64", "amd64"], "{raw}");

    let fresh = Hoist::new(&tmp.path().join("fresh"));
    fresh.ok(&["pull", "-q", "--platform", "linux/arm64", &name]);
    let img = inspect(&fresh, &["--platform", "linux/arm64", &name]);
    assert_eq!(img["Architecture"], "arm64");
    assert_eq!(img["Config"]["Labels"]["arch"], "arm64");
}

/// `-o type=oci` of a two-platform build: the archive's index lists both platforms; the docker
/// exporter, which holds one image, is refused.
#[test]
fn two_platform_build_exports_an_oci_index() {
    let tmp = tempfile::tempdir().unwrap();
    let h = Hoist::new(&tmp.path().join("store"));
    let ctx = tmp.path().join("ctx");
    fs::create_dir_all(&ctx).unwrap();
    fs::write(
        ctx.join("Dockerfile"),
        "FROM scratch\nARG TARGETARCH\nLABEL a=$TARGETARCH\n",
    )
    .unwrap();
    let ctx = ctx.to_str().unwrap();
    let tar = tmp.path().join("out.tar");
    let spec = format!("type=oci,dest={}", tar.display());
    h.ok(&[
        "build",
        "-q",
        "--platform",
        "linux/amd64,linux/arm64",
        "-o",
        &spec,
        ctx,
    ]);
    let dir = tmp.path().join("x");
    fs::create_dir_all(&dir).unwrap();
    let st = std::process::Command::new("tar")
        .arg("-xf")
        .arg(&tar)
        .arg("-C")
        .arg(&dir)
        .status()
        .unwrap();
    assert!(st.success());
    let top: serde_json::Value =
        serde_json::from_slice(&fs::read(dir.join("index.json")).unwrap()).unwrap();
    // index.json names the image index, which lists the two platforms.
    let d = top["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .replace("sha256:", "");
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(dir.join("blobs/sha256").join(d)).unwrap()).unwrap();
    let archs: Vec<&str> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["platform"]["architecture"].as_str().unwrap())
        .collect();
    assert_eq!(archs, ["amd64", "arm64"], "{index}");
    // Nothing stays in the store (no -t).
    assert!(h.ok(&["images", "-q"]).trim().is_empty());
    let spec = format!("type=docker,dest={}", tar.display());
    let err = h.fails(&[
        "build",
        "-q",
        "--platform",
        "linux/amd64,linux/arm64",
        "-o",
        &spec,
        ctx,
    ]);
    assert!(err.contains("multi-platform"), "{err}");
}
