//! The test base image: `fixtures/make-busybox.sh` run with a given `hoist` binary.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The workspace's `fixtures/make-busybox.sh`.
pub fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/make-busybox.sh")
}

/// Makes the image `name` in the store at `root` with `hoist` (the binary under test): /bin/busybox
/// from Debian's busybox-static, an applet symlink per applet, /etc/passwd and /etc/group (root,
/// nobody), /root, a sticky /tmp, `ENV PATH=...` and `CMD ["sh"]`. Reproducible: same image ID.
/// Panics with the script's output when it fails.
pub fn make(hoist: &Path, root: &Path, name: &str) {
    let script = script();
    let out = Command::new("bash")
        .arg(&script)
        .arg(root)
        .arg(name)
        .env("HOIST", hoist)
        .output()
        .expect("run bash");
    assert!(
        out.status.success(),
        "{} failed ({}): {}\n{}",
        script.display(),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Makes the two-platform image `name` (an OCI index: linux/amd64 and linux/arm64 busybox from
/// Debian's busybox-static) in the store at `root` with `fixtures/make-busybox-multi.sh`.
/// Panics with the script's output when it fails (e.g. the other architecture's .deb is missing:
/// run fixtures/install-deps.sh).
pub fn make_multi(hoist: &Path, root: &Path, name: &str) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/make-busybox-multi.sh");
    let out = Command::new("bash")
        .arg(&script)
        .arg(root)
        .arg(name)
        .env("HOIST", hoist)
        .output()
        .expect("run bash");
    assert!(
        out.status.success(),
        "{} failed ({}): {}\n{}",
        script.display(),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Why a linux/arm64 binary cannot run here, or `None` when it can (natively, or through a
/// binfmt_misc entry for qemu-aarch64).
pub fn arm64_unavailable() -> Option<String> {
    if std::env::consts::ARCH == "aarch64" {
        return None;
    }
    let dir = Path::new("/proc/sys/fs/binfmt_misc");
    let entry = std::fs::read_dir(dir).ok().and_then(|rd| {
        rd.flatten()
            .find(|e| e.file_name().to_string_lossy().contains("aarch64"))
    });
    match entry {
        Some(e) if std::fs::read_to_string(e.path()).is_ok_and(|s| s.starts_with("enabled")) => {
            None
        }
        Some(e) => Some(format!("{} is disabled", e.path().display())),
        None => Some(format!(
            "no qemu-aarch64 entry in {} (qemu-user-static's binfmt entry is not registered)",
            dir.display()
        )),
    }
}
