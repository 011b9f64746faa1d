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
