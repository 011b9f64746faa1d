//! Owner-only store directories. Unpacked layers hold setuid-root files and device nodes exactly as
//! the image has them, so no other user may reach them: like Docker's data root (0710) and layer
//! directories (0700), the store root and its content directories are made 0700 when created (never
//! briefly open: created with that mode, not chmodded after) and tightened when an older store has
//! them open to group or others.

use std::fs;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;

use crate::{Error, IoContext, Result};

/// Bits no store directory may have: any access for group or others.
const OPEN: u32 = 0o077;

/// Makes `dir` (creating it, but not its parents, owner-only) a directory only its owner can enter.
pub fn private_dir(dir: &Path) -> Result<()> {
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent).ctx(|| format!("creating {}", parent.display()))?;
    }
    match fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => {
            return Err(Error::Io {
                context: format!("creating {}", dir.display()),
                error: e,
            });
        }
    }
    let mode = fs::metadata(dir)
        .ctx(|| format!("reading {}", dir.display()))?
        .permissions()
        .mode();
    if mode & OPEN != 0 {
        let tight = mode & 0o7700;
        fs::set_permissions(dir, fs::Permissions::from_mode(tight)).map_err(|e| Error::Io {
            context: format!(
                "{} is open to other users (mode {:04o}) and could not be made {:04o}",
                dir.display(),
                mode & 0o7777,
                tight
            ),
            error: e,
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_owner_only_and_tightens_an_open_directory() {
        let t = tempfile::tempdir().unwrap();
        let fresh = t.path().join("a/b");
        private_dir(&fresh).unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode(&fresh), 0o700);
        let old = t.path().join("old");
        fs::create_dir(&old).unwrap();
        fs::set_permissions(&old, fs::Permissions::from_mode(0o755)).unwrap();
        private_dir(&old).unwrap();
        assert_eq!(mode(&old), 0o700);
    }
}
