//! Foreign RUN steps: a step whose stage platform the host cannot run natively needs QEMU user
//! emulation registered in binfmt_misc with the `F` flag (the kernel then opens the interpreter
//! itself, so the sandbox needs nothing more). [`ensure`] is the one place the solver asks for it;
//! it is meant to call `hoist_runtime::binfmt::ensure` (which also registers a missing entry),
//! and until that lands checks that the entry is there.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Mutex;

use anyhow::{Result, anyhow, bail};
use hoist_image::Platform;

/// Architectures already checked by this process.
static READY: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

/// Whether a step for `platform` runs natively on this machine (containerd's matching: an amd64
/// host runs 386, an arm64 host arm/v8 down to v5).
pub fn is_native(platform: &Platform) -> bool {
    Platform::host().matches(platform)
}

/// The name QEMU and binfmt_misc give `arch` (`arm64` → `aarch64`).
fn qemu_name(arch: &str) -> &str {
    match arch {
        "amd64" => "x86_64",
        "arm64" => "aarch64",
        "386" => "i386",
        "mips64le" => "mips64el",
        "mipsle" => "mipsel",
        other => other,
    }
}

/// Makes sure a RUN step for `platform` (`linux/arm64`) can run: nothing for the host's own
/// platform; for another, the binfmt_misc entry for its QEMU interpreter, else an error saying
/// what an admin installs.
pub fn ensure(platform: &str) -> Result<()> {
    let p = Platform::parse(platform)
        .map_err(|e| anyhow!("platform {platform:?}: {e}"))?
        .normalize();
    if is_native(&p) {
        return Ok(());
    }
    let mut ready = READY.lock().unwrap_or_else(|e| e.into_inner());
    if ready.contains(&p.architecture) {
        return Ok(());
    }
    let name = qemu_name(&p.architecture);
    let entry = Path::new("/proc/sys/fs/binfmt_misc").join(format!("qemu-{name}"));
    let text = std::fs::read_to_string(&entry).unwrap_or_default();
    if !text.lines().any(|l| l == "enabled") || !flags_have_f(&text) {
        bail!(
            "cannot run a RUN step for {p} on this {} machine: no QEMU emulation registered for {name} \
             with the F flag ({} missing or without it); install Debian's qemu-user-static as root \
             (apt-get install qemu-user-static binfmt-support) so that binfmt_misc has the entry",
            Platform::host(),
            entry.display()
        );
    }
    ready.insert(p.architecture);
    Ok(())
}

/// Whether a binfmt_misc entry's `flags:` line has `F` (interpreter opened at registration).
fn flags_have_f(entry: &str) -> bool {
    entry
        .lines()
        .find_map(|l| l.strip_prefix("flags:"))
        .is_some_and(|f| f.contains('F'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_platform_never_needs_emulation() {
        ensure(&Platform::host().to_string()).unwrap();
        if Platform::host().architecture == "amd64" {
            ensure("linux/386").unwrap();
            assert!(!is_native(&Platform::parse("linux/arm64").unwrap()));
        }
    }

    #[test]
    fn flags_are_read_from_the_entry() {
        assert!(flags_have_f("enabled\ninterpreter /x\nflags: POF\n"));
        assert!(!flags_have_f("enabled\ninterpreter /x\nflags: P\n"));
        assert_eq!(qemu_name("arm64"), "aarch64");
    }

    #[test]
    fn an_unknown_foreign_arch_is_a_clear_error() {
        let e = ensure("linux/loong64").map(|_| ()).unwrap_err().to_string();
        if !Path::new("/proc/sys/fs/binfmt_misc/qemu-loong64").exists() {
            assert!(e.contains("qemu-user-static"), "{e}");
            assert!(e.contains("linux/loong64"), "{e}");
        }
    }
}
