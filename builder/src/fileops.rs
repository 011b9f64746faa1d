//! File steps beyond plain copies: creating WORKDIR's directory in a step's upper directory
//! (BuildKit's mkdir action with parents), and a symbolic `--chmod` applied to what a COPY planned.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt, lchown};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};

use hoist_parser::chmod::{Chmod, ModeSet};

use crate::copy::DestFs;
use crate::dest_tree::{Kind, Node};
use crate::paths::clean;
use crate::plan::{FileOp, MkdirOp};
use crate::union::Union;

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

/// A symbolic `--chmod` of a COPY/ADD (an octal one is the copy's own business), applied to what
/// it planned in `dest_fs`: the destination when it is a file, else everything below it (the
/// directory itself keeps its mode, as with an octal `--chmod`). Symlinks have no mode of their own.
pub fn chmod_planned(f: &FileOp, dest_fs: &DestFs) -> Result<()> {
    let Some(Chmod::Symbolic(set)) = &f.chmod else {
        return Ok(());
    };
    let dest = dest_fs.resolve(&clean(&f.dest), true)?;
    let mut tree = dest_fs.tree.borrow_mut();
    let mut node = &mut tree.root;
    for c in dest.split('/').filter(|c| !c.is_empty()) {
        match node.children.get_mut(c.as_bytes()) {
            Some(n) => node = n,
            None => return Ok(()),
        }
    }
    if node.is_dir() {
        node.children.values_mut().for_each(|n| remode(n, set));
    } else {
        remode(node, set);
    }
    Ok(())
}

/// Applies `set` to `n` and everything below it.
fn remode(n: &mut Node, set: &ModeSet) {
    if !matches!(n.kind, Kind::Symlink(_)) {
        n.mode = set.apply(n.mode, n.is_dir());
    }
    n.children.values_mut().for_each(|c| remode(c, set));
}
