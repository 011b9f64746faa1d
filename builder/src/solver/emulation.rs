//! Foreign RUN steps: a step whose stage platform the host cannot run natively needs QEMU user
//! emulation registered in binfmt_misc. [`ensure`] is the one place the solver asks for it, once
//! per architecture per process: the runtime ([`hoist_runtime::binfmt::ensure`]) finds the entry,
//! or registers Debian's qemu-user-static with the `F` flag when it is missing and hoist runs as
//! root (then hoist says so on stderr), or explains what an admin runs.
//!
//! With `F` the kernel opens the interpreter itself, so the sandbox needs nothing more; an entry
//! without it would need the interpreter inside every step's root filesystem, which a build base
//! does not have, so such an entry is an error naming the fix.

use std::collections::BTreeSet;
use std::sync::Mutex;

use anyhow::{Result, anyhow, bail};
use hoist_image::Platform;
use hoist_runtime::binfmt;

/// Architectures already made ready by this process.
static READY: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

/// Whether a step for `platform` runs natively on this machine (containerd's matching: an amd64
/// host runs 386, an arm64 host arm/v8 down to v5).
pub fn is_native(platform: &Platform) -> bool {
    Platform::host().matches(platform)
}

/// Makes sure a RUN step for `platform` (`linux/arm64`) can run: nothing for the host's own
/// platform; for another, a binfmt_misc entry for its QEMU interpreter with the `F` flag
/// (registered now if missing and possible), else an error saying what an admin does.
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
    let arch = match &p.variant {
        Some(v) if p.architecture == "arm" => format!("arm/{v}"),
        _ => p.architecture.clone(),
    };
    let emulation = binfmt::ensure(&arch).map_err(|e| {
        anyhow!(
            "cannot run a RUN step for {p} on this {} machine: {e}",
            Platform::host()
        )
    })?;
    if let Some(line) = emulation.announcement() {
        eprintln!("{line}");
    }
    if let Some(entry) = emulation.entry()
        && !entry.fix_binary()
    {
        bail!(
            "cannot run a RUN step for {p}: the binfmt_misc entry {} has no F flag, so its \
             interpreter {} would have to exist inside the build's root filesystem; re-register it \
             with F (as root: update-binfmts --disable {0} && echo -1 > /proc/sys/fs/binfmt_misc/{0}, \
             then run hoist again, which registers Debian's qemu-user-static with F)",
            entry.name,
            entry.interpreter.display()
        );
    }
    ready.insert(p.architecture);
    Ok(())
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
    fn an_architecture_qemu_lacks_is_a_clear_error() {
        // No QEMU user emulator exists for wasm: nothing is registered, the error says why.
        let e = ensure("linux/wasm").unwrap_err().to_string();
        assert!(e.contains("cannot run a RUN step for linux/wasm"), "{e}");
    }
}
