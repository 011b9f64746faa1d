//! `RUN --mount` at solve time: plan mounts -> runtime mounts: persistent cache directories (shared,
//! private or locked), binds of the context, a stage or an image, tmpfs, build secrets and forwarded
//! SSH agent sockets. Lowering a mount spec is the frontend's (`frontend::mount`).
//!
//! Nothing mounted here lands in a layer: mounts live outside the overlay upper dir, and the runtime
//! removes the mountpoints it had to create.

use std::fs::{self, File};
use std::os::unix::fs::{PermissionsExt, chown};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, Result, anyhow, bail};
use hoist_runtime as rt;

use super::{ChainResult, Solver};
use crate::context::SourceRoot;
use crate::copy::{CopyOptions, DestFs, copy_into, resolve_sources};
use crate::plan::{CacheMount, ExecMount, ExecOp, Sharing};

/// Runtime mounts for one exec, plus what must live until it ends.
#[derive(Default)]
pub struct PreparedMounts {
    pub mounts: Vec<rt::Mount>,
    /// Extra environment (`env=` secrets, `SSH_AUTH_SOCK`); never part of a key or a log.
    pub env: Vec<String>,
    /// `/etc/hosts` with `--add-host` entries; None: the runtime's default.
    pub hosts: Option<String>,
    /// `--ulimit`s.
    pub rlimits: Vec<rt::Rlimit>,
    keep: Vec<tempfile::TempDir>,
    locks: Vec<File>,
}

impl PreparedMounts {
    /// Number of held cache locks (for tests and diagnostics).
    pub fn locks_held(&self) -> usize {
        self.locks.len()
    }
}

/// The build-wide sandbox settings of a RUN: a `/dev/shm` of `--shm-size` (mounted before the
/// step's own mounts, which may replace it), `--add-host` lines (after the host name's), `--ulimit`s.
fn sandbox(o: &crate::plan::RunOptions) -> PreparedMounts {
    let mut p = PreparedMounts::default();
    if let Some(size) = o.shm_size {
        // nosuid,nodev,noexec as the runtime's own /dev/shm.
        let opts = ["mode=1777".to_string(), format!("size={size}")];
        if let Ok((flags, data)) = rt::container::mount_args::tmpfs_options(&opts) {
            p.mounts.push(rt::Mount {
                target: "/dev/shm".into(),
                kind: rt::MountKind::TmpfsOptions { flags, data },
            });
        }
    }
    if !o.extra_hosts.is_empty() {
        let mut hosts = rt::build_hosts(o.hostname.as_deref().unwrap_or(rt::BUILD_HOSTNAME));
        for h in &o.extra_hosts {
            hosts.push_str(h);
            hosts.push('\n');
        }
        p.hosts = Some(hosts);
    }
    p.rlimits = o
        .ulimits
        .iter()
        .map(|u| rt::Rlimit {
            resource: u.resource,
            soft: u.soft,
            hard: u.hard,
        })
        .collect();
    p
}

/// A file name for a cache id (ids are free-form: `/root/.cache`, `go-build`, ...).
fn cache_dir_name(id: &str) -> String {
    id.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The directory holding every cache mount of a store.
pub fn cache_mounts_dir(store: &hoist_image::Store) -> Result<PathBuf> {
    Ok(store.dir("cache")?.join("mounts"))
}

/// Takes the exclusive lock at `path` without waiting; None when someone holds it.
pub fn try_lock(path: &Path) -> Result<Option<File>> {
    lock_file(path, false)
}

fn lock_file(path: &Path, block: bool) -> Result<Option<File>> {
    use rustix::fs::{FlockOperation, flock};
    let f = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    let op = if block {
        FlockOperation::LockExclusive
    } else {
        FlockOperation::NonBlockingLockExclusive
    };
    match flock(&f, op) {
        Ok(()) => Ok(Some(f)),
        Err(rustix::io::Errno::WOULDBLOCK) if !block => Ok(None),
        Err(e) => Err(anyhow!("locking {}: {e}", path.display())),
    }
}

impl Solver {
    /// Turns the plan mounts of an exec into runtime mounts.
    pub(crate) fn prepare_mounts(
        &self,
        e: &ExecOp,
        wait: &dyn Fn(usize) -> Result<Arc<ChainResult>>,
    ) -> Result<PreparedMounts> {
        let mut p = sandbox(&e.sandbox);
        for m in &e.mounts {
            match m {
                ExecMount::Cache(c) => {
                    let src = self.cache_dir(c, &mut p, wait)?;
                    p.mounts.push(rt::Mount {
                        target: c.target.clone(),
                        kind: rt::MountKind::Bind {
                            src,
                            readonly: c.readonly,
                        },
                    });
                }
                ExecMount::Tmpfs { target, size } => p.mounts.push(rt::Mount {
                    target: target.clone(),
                    kind: rt::MountKind::Tmpfs {
                        size: *size,
                        mode: None,
                    },
                }),
                ExecMount::Bind {
                    target,
                    from,
                    source,
                    readwrite,
                } => {
                    let root = self.input_root(from, wait)?;
                    // The context is seen through its .dockerignore, as BuildKit sends it (ignored
                    // files are absent), and a rw mount's writes are discarded: both get a copy.
                    let src = if *readwrite || !root.ignore.is_empty() {
                        let d = tempfile::Builder::new()
                            .prefix("bind-")
                            .tempdir_in(self.store.tmp_dir())?;
                        let src = copy_of(&root, source, d.path())?;
                        p.keep.push(d);
                        src
                    } else {
                        crate::paths::resolve_in_root(&root.root, source, true)?
                    };
                    p.mounts.push(rt::Mount {
                        target: target.clone(),
                        kind: rt::MountKind::Bind {
                            src,
                            readonly: !readwrite,
                        },
                    });
                }
                ExecMount::Secret(s) => {
                    let Some(value) = self.secrets.get(&s.id) else {
                        if s.required {
                            bail!("secret {}: not found", s.id);
                        }
                        continue;
                    };
                    if let Some(env) = &s.env {
                        p.env
                            .push(format!("{env}={}", String::from_utf8_lossy(value)));
                    }
                    if let Some(target) = &s.target {
                        // Outside the store (tmpfs when there is one), removed when the step ends.
                        let shm = Path::new("/dev/shm");
                        let parent = if shm.is_dir() {
                            shm.to_path_buf()
                        } else {
                            std::env::temp_dir()
                        };
                        let d = tempfile::Builder::new()
                            .prefix("hoist-secret-")
                            .tempdir_in(parent)?;
                        let f = d.path().join("secret");
                        fs::write(&f, value)?;
                        fs::set_permissions(&f, fs::Permissions::from_mode(s.mode))?;
                        chown(&f, Some(s.uid), Some(s.gid))?;
                        p.mounts.push(rt::Mount {
                            target: target.clone(),
                            kind: rt::MountKind::Bind {
                                src: f,
                                readonly: true,
                            },
                        });
                        p.keep.push(d);
                    }
                }
                ExecMount::Ssh(s) => {
                    let Some(sock) = self.ssh.get(&s.id) else {
                        if s.required {
                            bail!(
                                "no SSH key {:?} forwarded from the client (use --ssh {})",
                                s.id,
                                s.id
                            );
                        }
                        continue;
                    };
                    p.mounts.push(rt::Mount {
                        target: s.target.clone(),
                        kind: rt::MountKind::Bind {
                            src: sock.clone(),
                            readonly: false,
                        },
                    });
                    p.env.push(format!("SSH_AUTH_SOCK={}", s.target));
                }
            }
        }
        Ok(p)
    }
    /// The directory of a cache mount (created, and seeded from its `from`, on first use), with
    /// the lock its sharing mode takes held in `p`.
    fn cache_dir(
        &self,
        c: &CacheMount,
        p: &mut PreparedMounts,
        wait: &dyn Fn(usize) -> Result<Arc<ChainResult>>,
    ) -> Result<PathBuf> {
        let base = cache_mounts_dir(&self.store)?;
        fs::create_dir_all(&base)?;
        let name = cache_dir_name(&c.id);
        let dir = match c.sharing {
            Sharing::Shared => base.join(&name),
            Sharing::Locked => {
                let l = lock_file(&base.join(format!("{name}.lock")), true)?;
                p.locks.extend(l);
                base.join(&name)
            }
            Sharing::Private => {
                // The first instance nobody holds; a new one when all are in use.
                let mut i = 0;
                loop {
                    let n = if i == 0 {
                        name.clone()
                    } else {
                        format!("{name}-{i}")
                    };
                    if let Some(l) = lock_file(&base.join(format!("{n}.lock")), false)? {
                        p.locks.push(l);
                        break base.join(n);
                    }
                    i += 1;
                }
            }
        };
        if !dir.exists() {
            let tmp = tempfile::Builder::new().prefix(".new-").tempdir_in(&base)?;
            if let Some(from) = &c.from {
                let root = self.input_root(from, wait)?;
                copy_of(&root, &c.source, tmp.path())?;
            }
            fs::set_permissions(
                tmp.path(),
                fs::Permissions::from_mode(c.mode.unwrap_or(0o755)),
            )?;
            chown(
                tmp.path(),
                Some(c.uid.unwrap_or(0)),
                Some(c.gid.unwrap_or(0)),
            )?;
            let tmp = tmp.keep();
            if fs::rename(&tmp, &dir).is_err() {
                // Another build created it meanwhile.
                let _ = fs::remove_dir_all(&tmp);
            }
        }
        Ok(dir)
    }
}

/// Copies `source` of `root` (what its ignore rules leave, owners and modes kept) into the empty
/// directory `dir`. Returns the copy: `dir` itself for a directory, `dir/file` for a file.
fn copy_of(root: &SourceRoot, source: &str, dir: &Path) -> Result<PathBuf> {
    let matched = resolve_sources(root, source)?;
    let path = crate::paths::resolve_in_root(&root.root, source, true)?;
    if !path.is_dir() {
        let f = dir.join("file");
        fs::copy(&path, &f).with_context(|| format!("copying {}", path.display()))?;
        return Ok(f);
    }
    let opts = CopyOptions {
        preserve_owner: true,
        ..Default::default()
    };
    let dest = DestFs::new(Vec::new(), dir.to_path_buf());
    copy_into(root, &matched, &dest, "/", &opts)?;
    Ok(dir.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_and_locked_caches_exclude_each_other() {
        let d = tempfile::tempdir().unwrap();
        let l = d.path().join("c.lock");
        let held = try_lock(&l).unwrap().expect("free");
        assert!(
            try_lock(&l).unwrap().is_none(),
            "a second holder got the lock"
        );
        drop(held);
        assert!(try_lock(&l).unwrap().is_some());
    }
}
