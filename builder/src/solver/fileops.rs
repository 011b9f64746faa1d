//! File steps beyond plain copies: creating WORKDIR's directory in a step's upper directory
//! (BuildKit's mkdir action with parents).

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt, lchown};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};

use crate::copy::union::Union;
use crate::plan::MkdirOp;

/// Creates `op.path` over the image layers `lowers`, writing into `upper`: missing directories get
/// mode 0755 and `op.user`'s ids; existing parents are copied up with their metadata so the layer
/// holds them as the image has them. A directory that already exists leaves `upper` empty.
pub fn mkdir(op: &MkdirOp, lowers: Vec<PathBuf>, upper: &Path) -> Result<()> {
    let view = Union::new(lowers);
    let path = view.resolve(&op.path, true)?;
    if view.lookup(&path).is_some_and(|(_, m)| m.is_dir()) {
        return Ok(());
    }
    let owner = op
        .user
        .as_deref()
        .map(|u| crate::copy::users::resolve_chown(u, &view))
        .transpose()?;
    let mut in_image = String::new();
    for comp in path.split('/').filter(|c| !c.is_empty()) {
        in_image.push('/');
        in_image.push_str(comp);
        let here = upper.join(&in_image[1..]);
        match view.lookup(&in_image) {
            Some((_, m)) if m.is_dir() => {
                fs::create_dir(&here).with_context(|| format!("mkdir {}", here.display()))?;
                lchown(&here, Some(m.uid()), Some(m.gid()))?;
                fs::set_permissions(&here, fs::Permissions::from_mode(m.mode() & 0o7777))?;
                let t = filetime::FileTime::from_last_modification_time(&m);
                filetime::set_file_times(&here, t, t)?;
            }
            Some(_) => bail!("mkdir {in_image}: not a directory"),
            None => {
                fs::create_dir(&here).with_context(|| format!("mkdir {}", here.display()))?;
                fs::set_permissions(&here, fs::Permissions::from_mode(0o755))?;
                if let Some((uid, gid)) = owner {
                    lchown(&here, Some(uid), Some(gid))?;
                }
            }
        }
    }
    Ok(())
}
