//! File steps beyond plain copies, in a step's upper directory: creating WORKDIR's directory
//! (BuildKit's mkdir action with parents), and a symbolic `--chmod` applied to what a COPY wrote.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt, lchown};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};

use hoist_parser::chmod::Chmod;

use crate::paths::clean;
use crate::plan::{FileOp, MkdirOp};
use crate::union::Union;

/// Creates `op.path` over the image layers `lowers`, writing into `upper`: missing directories get
/// mode 0755 and `op.user`'s ids; existing parents are copied up with their metadata so the layer
/// holds them as the image has them. A directory that already exists leaves `upper` empty.
pub fn mkdir(op: &MkdirOp, lowers: Vec<PathBuf>, upper: &Path) -> Result<()> {
    let view = Union::new(lowers);
    let path = view.resolve(&op.path, true);
    if view.lookup(&path).is_some_and(|(_, m)| m.is_dir()) {
        return Ok(());
    }
    let owner = op
        .user
        .as_deref()
        .map(|u| crate::users::resolve_chown(u, &view))
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

/// A symbolic `--chmod` of a COPY/ADD (an octal one is the copy's own business), applied to what it
/// wrote into `upper` (`view`: the image with `upper` on top): the destination when it is a file,
/// else everything below it (the directory itself keeps its mode, as with an octal `--chmod`).
/// Symlinks have no mode of their own.
pub fn chmod_copied(f: &FileOp, view: &Union, upper: &Path) -> Result<()> {
    let Some(Chmod::Symbolic(set)) = &f.chmod else {
        return Ok(());
    };
    let dest = view.resolve(&clean(&f.dest), true);
    let root = upper.join(dest.trim_start_matches('/'));
    let Ok(meta) = fs::symlink_metadata(&root) else {
        return Ok(());
    };
    let remode = |path: &Path, m: &fs::Metadata| -> Result<()> {
        if m.file_type().is_symlink() {
            return Ok(());
        }
        let mode = set.apply(m.mode(), m.is_dir());
        fs::set_permissions(path, fs::Permissions::from_mode(mode))
            .with_context(|| format!("chmod {}", path.display()))
    };
    if !meta.is_dir() {
        return remode(&root, &meta);
    }
    for e in crate::context::walk(&crate::context::SourceRoot::plain(&root), "", None)? {
        remode(&e.path, &e.meta)?;
    }
    Ok(())
}
