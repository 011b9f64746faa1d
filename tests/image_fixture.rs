//! The busybox base image for tests, shared by every test file that needs one:
//!
//! ```ignore
//! #[path = "image_fixture.rs"]
//! mod image_fixture;
//! image_fixture::make_busybox(&store_root); // busybox:latest, CMD ["sh"]
//! ```
//!
//! (Compiled on its own too, as an empty test target.)
#![allow(dead_code)]

use std::path::Path;
use std::process::Command;

/// The `hoist` binary under test.
pub const HOIST: &str = env!("CARGO_BIN_EXE_hoist");

/// Makes `busybox:latest` in the store at `root` with fixtures/make-busybox.sh: /bin/busybox from
/// Debian's busybox-static, an applet symlink per applet, /etc/passwd and /etc/group (root,
/// nobody), /root, a sticky /tmp, `ENV PATH=...` and `CMD ["sh"]`. Reproducible: same image ID.
pub fn make_busybox(root: &Path) {
    make_busybox_named(root, "busybox:latest");
}

/// As [`make_busybox`], with another name.
pub fn make_busybox_named(root: &Path, name: &str) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/make-busybox.sh");
    let out = Command::new("bash")
        .arg(&script)
        .arg(root)
        .arg(name)
        .env("HOIST", HOIST)
        .output()
        .expect("run bash");
    assert!(
        out.status.success(),
        "{} failed: {}{}",
        script.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
