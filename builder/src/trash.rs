//! Scratch trees off the build's critical path: a directory no longer needed (a RUN's overlay upper
//! and work directories, a flattened stage, an unneeded staging directory) is renamed into the
//! store's `build-trash/` directory, which takes no time, instead of being deleted file by file
//! while the build runs. What a build trashed is deleted when its solver is dropped (after the image
//! is written); what an interrupted build left there is swept by the next one, in the background.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use hoist_image::Store;

/// A build's trash can.
#[derive(Debug)]
pub struct Trash {
    /// `build-trash/` in the store, or None when it cannot be made (then trees are deleted in place).
    dir: Option<PathBuf>,
    /// What this build put there.
    items: Mutex<Vec<PathBuf>>,
    /// Deleting what earlier builds left.
    sweeper: Mutex<Option<JoinHandle<()>>>,
}

static SERIAL: AtomicUsize = AtomicUsize::new(0);

fn remove(p: &Path) {
    let _ = match std::fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(p),
        Ok(_) => std::fs::remove_file(p),
        Err(_) => Ok(()),
    };
}

impl Trash {
    /// The store's trash; leftovers of earlier builds start being deleted in a background thread.
    pub fn open(store: &Store) -> Trash {
        let dir = store.dir("build-trash").ok();
        let leftovers: Vec<PathBuf> = dir
            .as_ref()
            .and_then(|d| std::fs::read_dir(d).ok())
            .map(|rd| rd.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        let sweeper = (!leftovers.is_empty()).then(|| {
            std::thread::spawn(move || {
                for p in leftovers {
                    remove(&p);
                }
            })
        });
        Trash {
            dir,
            items: Mutex::new(Vec::new()),
            sweeper: Mutex::new(sweeper),
        }
    }

    /// Moves `path` (on the store's filesystem) out of the way, to be deleted later.
    pub fn discard(&self, path: &Path) {
        if let Some(dir) = &self.dir {
            let to = dir.join(format!(
                "{}-{}",
                std::process::id(),
                SERIAL.fetch_add(1, Ordering::Relaxed)
            ));
            if std::fs::rename(path, &to).is_ok() {
                self.items.lock().unwrap().push(to);
                return;
            }
        }
        remove(path);
    }

    /// Deletes everything this build trashed and waits for the sweep of earlier leftovers.
    pub fn empty(&self) {
        for p in std::mem::take(&mut *self.items.lock().unwrap()) {
            remove(&p);
        }
        if let Some(h) = self.sweeper.lock().unwrap().take() {
            let _ = h.join();
        }
    }
}

impl Drop for Trash {
    fn drop(&mut self) {
        self.empty();
    }
}

/// A scratch directory that goes to the trash when dropped.
#[derive(Debug)]
pub struct Scratch {
    path: PathBuf,
    trash: Arc<Trash>,
}

impl Scratch {
    /// A new directory named `prefix...` in `parent`.
    pub fn new(trash: &Arc<Trash>, parent: &Path, prefix: &str) -> std::io::Result<Scratch> {
        std::fs::create_dir_all(parent)?;
        let path = tempfile::Builder::new()
            .prefix(prefix)
            .tempdir_in(parent)?
            .keep();
        Ok(Scratch::adopt(trash, path))
    }

    /// A directory made elsewhere, trashed when dropped.
    pub fn adopt(trash: &Arc<Trash>, path: PathBuf) -> Scratch {
        Scratch {
            path,
            trash: trash.clone(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Keeps the directory (it was moved or is owned elsewhere now).
    pub fn forget(mut self) {
        self.path = PathBuf::new();
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !self.path.as_os_str().is_empty() {
            self.trash.discard(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discarded_trees_leave_at_once_and_are_deleted_later() {
        let d = tempfile::tempdir().unwrap();
        let store = Store::open(d.path().join("store")).unwrap();
        let trash = Arc::new(Trash::open(&store));
        let s = Scratch::new(&trash, &store.tmp_dir(), "x-").unwrap();
        std::fs::create_dir_all(s.path().join("a/b")).unwrap();
        std::fs::write(s.path().join("a/b/f"), "x").unwrap();
        let p = s.path().to_path_buf();
        drop(s);
        assert!(!p.exists());
        let can = store.dir("build-trash").unwrap();
        assert_eq!(std::fs::read_dir(&can).unwrap().count(), 1);
        trash.empty();
        assert_eq!(std::fs::read_dir(&can).unwrap().count(), 0);
        // A leftover (an interrupted build's) is swept by the next build.
        std::fs::create_dir_all(can.join("old/deep")).unwrap();
        let next = Arc::new(Trash::open(&store));
        next.empty();
        assert_eq!(std::fs::read_dir(&can).unwrap().count(), 0);
        // forget() keeps the directory.
        let s = Scratch::new(&next, &store.tmp_dir(), "y-").unwrap();
        let p = s.path().to_path_buf();
        s.forget();
        assert!(p.is_dir());
    }
}
